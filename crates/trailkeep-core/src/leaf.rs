//! What a Merkle leaf commits to: the exact bytes of a stored event, canonicalised.
//!
//! The event with `seq` n is leaf n-1 of its organisation's tree. Its leaf data is the RFC 8785 (JSON
//! Canonicalization Scheme) serialisation of the event as the API returns it — every field, including
//! `id`, `seq`, `organization_id` and `received_at` — so that the same event always yields the same bytes
//! whatever order its keys were stored or sent in, and any change to any field, however small, changes
//! the leaf hash.

use std::ops::Range;

use crate::event::{Event, NewEvent};
use crate::merkle::{Hash, leaf_hash};
use crate::time::format_millis;

#[derive(Debug, thiserror::Error)]
#[error("cannot canonicalise the event: {0}")]
pub struct LeafError(String);

/// The RFC 8785 bytes of `event`.
pub fn leaf_bytes(event: &Event) -> Result<Vec<u8>, LeafError> {
    let value = serde_json::to_value(event).map_err(|e| LeafError(e.to_string()))?;
    Ok(canonical(&value))
}

/// The RFC 8785 (JSON Canonicalization Scheme) serialisation of `value`: object members sorted by the
/// UTF-16 code units of their names, no whitespace, strings escaped as ECMAScript's `JSON.stringify`
/// escapes them, and numbers in ECMAScript's shortest form. It is the sealer's hot path, so it writes
/// straight into one buffer; the tests hold it byte for byte to the `serde_json_canonicalizer` crate.
pub fn canonical(value: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            // ASCII names (nearly all) compare the same as bytes and as UTF-16 code units.
            sorted.sort_by(|a, b| {
                if a.0.is_ascii() && b.0.is_ascii() { a.0.cmp(b.0) } else { a.0.encode_utf16().cmp(b.0.encode_utf16()) }
            });
            out.push(b'{');
            for (i, (name, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(name, out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
    }
}

/// Numbers as ECMAScript prints the IEEE 754 double they denote.
fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) {
    const EXACT: u64 = 1 << 53;
    if let Some(u) = n.as_u64().filter(|u| *u <= EXACT) {
        out.extend_from_slice(u.to_string().as_bytes());
    } else if let Some(i) = n.as_i64().filter(|i| i.unsigned_abs() <= EXACT) {
        out.extend_from_slice(i.to_string().as_bytes());
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        let mut buffer = ryu_js::Buffer::new();
        out.extend_from_slice(buffer.format(f).as_bytes());
    }
}

/// A string as ECMAScript's `JSON.stringify` writes it.
fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// An event's canonical bytes before the store has placed it, with room left for the two fields it
/// assigns: `received_at` and `seq`. Made where the request is handled, so that the single thread that
/// places events only splices two values in, and the stored JSON is already the leaf data: the sealer
/// hashes it as it is, without parsing it again.
#[derive(Debug, Clone)]
pub struct CanonicalTemplate {
    bytes: Vec<u8>,
    received_at: Range<usize>,
    seq: Range<usize>,
}

impl CanonicalTemplate {
    pub fn new(event: &NewEvent) -> Result<CanonicalTemplate, LeafError> {
        let value = serde_json::to_value(event.clone().into_event(0, 0)).map_err(|e| LeafError(e.to_string()))?;
        let serde_json::Value::Object(members) = &value else {
            return Err(LeafError("an event is not a JSON object".into()));
        };
        let mut sorted: Vec<(&String, &serde_json::Value)> = members.iter().collect();
        sorted.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
        let mut bytes = Vec::with_capacity(1024);
        let (mut received_at, mut seq) = (None, None);
        bytes.push(b'{');
        for (i, (name, item)) in sorted.into_iter().enumerate() {
            if i > 0 {
                bytes.push(b',');
            }
            write_string(name, &mut bytes);
            bytes.push(b':');
            let start = bytes.len();
            write_canonical(item, &mut bytes);
            match name.as_str() {
                "received_at" => received_at = Some(start..bytes.len()),
                "seq" => seq = Some(start..bytes.len()),
                _ => {}
            }
        }
        bytes.push(b'}');
        match (received_at, seq) {
            // Members are sorted, so `received_at` comes before `seq`.
            (Some(received_at), Some(seq)) if received_at.end <= seq.start => {
                Ok(CanonicalTemplate { bytes, received_at, seq })
            }
            _ => Err(LeafError("an event without received_at and seq".into())),
        }
    }

    /// The canonical bytes of the event placed at `seq` and received at `received_at`: byte for byte
    /// what [`leaf_bytes`] gives for the stored event.
    pub fn fill(&self, seq: u64, received_at: i64) -> String {
        let (at, n) = (format_millis(received_at), seq.to_string());
        let mut out = Vec::with_capacity(self.bytes.len() + at.len() + n.len());
        out.extend_from_slice(&self.bytes[..self.received_at.start]);
        // An RFC 3339 timestamp has nothing JSON would escape.
        out.push(b'"');
        out.extend_from_slice(at.as_bytes());
        out.push(b'"');
        out.extend_from_slice(&self.bytes[self.received_at.end..self.seq.start]);
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(&self.bytes[self.seq.end..]);
        String::from_utf8(out).expect("JSON written from strings is UTF-8")
    }
}

/// The RFC 9162 leaf hash of `event`: SHA-256 of `0x00` followed by its canonical bytes.
pub fn event_leaf_hash(event: &Event) -> Result<Hash, LeafError> {
    Ok(leaf_hash(&leaf_bytes(event)?))
}

/// The leaf hash of an event given as the JSON the API returns (or the store keeps): the same hash as
/// [`event_leaf_hash`] of that event, without building the typed event first.
pub fn json_leaf_hash(json: &str) -> Result<Hash, LeafError> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| LeafError(e.to_string()))?;
    Ok(leaf_hash(&canonical(&value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any JSON value: strings over the whole of Unicode (controls and U+2028 included), integers of
    /// every size, doubles of every magnitude, nested arrays and objects.
    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let number = prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            (-30i32..30, any::<f64>()).prop_map(|(e, f)| Value::from((f % 10.0) * 10f64.powi(e))),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            number,
            any::<String>().prop_map(Value::String),
            "[\\x00-\\x20\"\\\\a\u{7f}\u{2028}é😀]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_canonical_form_is_byte_for_byte_the_reference_implementations(value in any_json()) {
            let reference = serde_json_canonicalizer::to_vec(&value).unwrap();
            prop_assert_eq!(canonical(&value), reference);
        }
    }

    fn event(json: &str) -> Event {
        serde_json::from_str(json).unwrap()
    }

    const STORED: &str = r#"{"id":"0190f8a4-7f3c-7cc0-8000-000000000001","seq":3,"received_at":"2026-01-02T03:04:05.678Z",
        "organization_id":"acme","action":"api_key.created","category":"api_key","occurred_at":"2026-01-02T03:04:05.000Z",
        "actor":{"type":"user","email":"é@example.com"},"outcome":"success",
        "metadata":{"z":1,"a":[1.5,true,null],"m":{"y":"\u2028","b":1e2}}}"#;

    #[test]
    fn leaf_bytes_are_the_rfc_8785_form_of_the_event() {
        let bytes = leaf_bytes(&event(STORED)).unwrap();
        // Keys sorted, no whitespace, numbers in their shortest ECMAScript form, U+2028 and é kept as UTF-8.
        let expected = "{\"action\":\"api_key.created\",\"actor\":{\"email\":\"é@example.com\",\"type\":\"user\"},\
            \"category\":\"api_key\",\"id\":\"0190f8a4-7f3c-7cc0-8000-000000000001\",\
            \"metadata\":{\"a\":[1.5,true,null],\"m\":{\"b\":100,\"y\":\"\u{2028}\"},\"z\":1},\
            \"occurred_at\":\"2026-01-02T03:04:05.000Z\",\"organization_id\":\"acme\",\"outcome\":\"success\",\
            \"received_at\":\"2026-01-02T03:04:05.678Z\",\"seq\":3}";
        assert_eq!(String::from_utf8(bytes).unwrap(), expected);
    }

    #[test]
    fn hashing_the_stored_json_equals_hashing_the_typed_event() {
        let typed = event(STORED);
        let stored = serde_json::to_string(&typed).unwrap();
        assert_eq!(json_leaf_hash(&stored).unwrap(), event_leaf_hash(&typed).unwrap());
        assert_eq!(json_leaf_hash(STORED).unwrap(), event_leaf_hash(&typed).unwrap());
    }

    #[test]
    fn the_leaf_hash_ignores_key_order_and_sees_every_change() {
        let a = event_leaf_hash(&event(STORED)).unwrap();
        let reordered = STORED.replace(r#""z":1,"a":[1.5,true,null]"#, r#""a":[1.5,true,null],"z":1"#);
        assert_ne!(reordered, STORED);
        assert_eq!(event_leaf_hash(&event(&reordered)).unwrap(), a);
        for (from, to) in
            [(r#""seq":3"#, r#""seq":4"#), ("05.678Z", "05.679Z"), (r#""z":1"#, r#""z":2"#), ("acme", "acmf")]
        {
            let changed = STORED.replacen(from, to, 1);
            assert_ne!(event_leaf_hash(&event(&changed)).unwrap(), a, "{from} -> {to}");
        }
    }

    fn new_event(description: String, metadata: serde_json::Map<String, serde_json::Value>) -> NewEvent {
        let typed = event(STORED);
        NewEvent {
            id: typed.id,
            client_id: false,
            organization_id: typed.organization_id,
            project_id: None,
            action: typed.action,
            category: typed.category,
            occurred_at: typed.occurred_at,
            actor: typed.actor,
            targets: Vec::new(),
            context: Default::default(),
            description: Some(description),
            outcome: typed.outcome,
            error: None,
            changes: Vec::new(),
            metadata,
            ai: None,
        }
    }

    proptest! {
        #[test]
        fn a_filled_template_is_the_leaf_data_of_the_placed_event(
            description in any::<String>(),
            metadata in prop::collection::vec((any::<String>(), any_json()), 0..4),
            seq in 1u64..(1 << 53),
            received_at in 0i64..253_402_300_799_999,
        ) {
            let new = new_event(description, metadata.into_iter().collect());
            let template = CanonicalTemplate::new(&new).unwrap();
            let expected = leaf_bytes(&new.into_event(seq, received_at)).unwrap();
            prop_assert_eq!(template.fill(seq, received_at).into_bytes(), expected);
        }
    }
}
