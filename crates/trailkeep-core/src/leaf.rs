//! What a Merkle leaf commits to: the exact bytes of a stored event, canonicalised.
//!
//! The event with `seq` n is leaf n-1 of its organisation's tree. Its leaf data is the RFC 8785 (JSON
//! Canonicalization Scheme) serialisation of the event as the API returns it — every field, including
//! `id`, `seq`, `organization_id` and `received_at` — so that the same event always yields the same bytes
//! whatever order its keys were stored or sent in, and any change to any field, however small, changes
//! the leaf hash.

use crate::event::Event;
use crate::merkle::{Hash, leaf_hash};

#[derive(Debug, thiserror::Error)]
#[error("cannot canonicalise the event: {0}")]
pub struct LeafError(String);

/// The RFC 8785 bytes of `event`.
pub fn leaf_bytes(event: &Event) -> Result<Vec<u8>, LeafError> {
    let value = serde_json::to_value(event).map_err(|e| LeafError(e.to_string()))?;
    serde_json_canonicalizer::to_vec(&value).map_err(|e| LeafError(e.to_string()))
}

/// The RFC 9162 leaf hash of `event`: SHA-256 of `0x00` followed by its canonical bytes.
pub fn event_leaf_hash(event: &Event) -> Result<Hash, LeafError> {
    Ok(leaf_hash(&leaf_bytes(event)?))
}

/// The leaf hash of an event given as the JSON the API returns (or the store keeps): the same hash as
/// [`event_leaf_hash`] of that event, without building the typed event first.
pub fn json_leaf_hash(json: &str) -> Result<Hash, LeafError> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| LeafError(e.to_string()))?;
    let bytes = serde_json_canonicalizer::to_vec(&value).map_err(|e| LeafError(e.to_string()))?;
    Ok(leaf_hash(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
