//! The `event` target: a request body, from raw bytes through JSON parsing into validated events.
//!
//! Properties: `parse_batch` never panics, with or without an org-scoped key's default organisation;
//! every error carries a code and a message; and every event it accepts can be stored and proven — it
//! serialises, reads back equal, hashes to the same leaf from its typed form and from its JSON, and a
//! range bundle holding it verifies.

use arbitrary::{Result, Unstructured};
use trailkeep_core::validate::{IngestContext, is_batch, parse_batch};
use trailkeep_core::{Event, Limits, OrgId, leaf};

use super::{NOW_MS, Target, bundle, path_shape};
use crate::json;

pub struct EventTarget;

const DICTIONARY: &[&str] = &[
    "\"organization_id\":",
    "\"project_id\":",
    "\"action\":",
    "\"category\":",
    "\"occurred_at\":",
    "\"actor\":",
    "\"type\":",
    "\"id\":",
    "\"name\":",
    "\"email\":",
    "\"targets\":",
    "\"context\":",
    "\"ip\":",
    "\"user_agent\":",
    "\"description\":",
    "\"outcome\":",
    "\"error\":",
    "\"changes\":",
    "\"field\":",
    "\"before\":",
    "\"after\":",
    "\"metadata\":",
    "\"ai\":",
    "\"usage\":",
    "\"cost_usd\":",
    "\"latency_ms\":",
    "\"status_code\":",
    "\"security\":",
    "\"prompt_injection_score\":",
    "\"events\":",
    "\"acme\"",
    "\"_platform\"",
    "\"user.login\"",
    "\"2026-03-01T11:00:00.000Z\"",
    "\"2026-03-01T11:00:00+14:00\"",
    "\"0190f2a4-3b1c-7def-8abc-1234567890ab\"",
    "\"::ffff:10.0.0.1\"",
    "\"fe80::1%eth0\"",
    "\"failure\"",
    "\"user\"",
    "\"api_key\"",
];

/// The events of the built-in seeds, as a platform sends them.
const SEEDS: &[&str] = &[
    r#"{"organization_id":"acme","action":"user.login"}"#,
    r#"{"organization_id": "acme", "action": "api_key.created",
        "actor": {"type": "user", "id": "usr_1", "email": "alice@example.com", "name": "Alice"},
        "targets": [{"type": "api_key", "id": "key_42", "name": "CI deploy key"}],
        "context": {"ip": "203.0.113.7", "user_agent": "curl/8", "location": "Lisbon", "request_id": "req_1",
                    "session_id": "s_1", "trace_id": "t_1"},
        "description": "Alice created API key CI deploy key", "occurred_at": "2026-03-01T11:59:00.123Z"}"#,
    r#"{"organization_id":"acme","project_id":"web","action":"ai.request","category":"ai","outcome":"failure",
        "error":"rate limited","ai":{"provider":"openai","model":"gpt-4o","parameters":{"temperature":0.2,
        "max_tokens":512},"api_key_id":"key_9","user_id":"u_1","session_id":"s_9","prompt":"Summarise",
        "response":"","usage":{"input_tokens":120,"output_tokens":0,"total_tokens":120},"cost_usd":0.0012,
        "latency_ms":830,"status_code":429,"error":"rate limited","security":{"pii_types":["email"],
        "content_filter_flags":["violence"],"prompt_injection_score":0.7,"incident_ids":["inc_1"]}}}"#,
    r#"{"events":[{"organization_id":"acme","action":"team.member.added","changes":[{"field":"role",
        "before":"viewer","after":"admin"}],"metadata":{"plan":"pro","seats":12,"nested":{"a":[1,2.5,null,true]}}},
        {"organization_id":"globex","action":"billing.invoice.paid","context":{"ip":"2001:db8::1"}}]}"#,
    r#"{"action":"user.logout","actor":{"type":"system"},"description":"Zoë signed out — 😀"}"#,
];

fn field_value(u: &mut Unstructured<'_>, name: &str) -> Result<String> {
    // Mostly a plausible value of the field's own type, sometimes anything at all.
    if u.ratio(1, 5)? {
        return json::value(u, 3);
    }
    let s = |v: &str| json::string_literal(v);
    Ok(match name {
        "id" => {
            s(u.choose(&["0190f2a4-3b1c-7def-8abc-1234567890ab", "evt_1", "", "00000000-0000-0000-0000-000000000000"])?)
        }
        "organization_id" => s(u.choose(&["acme", "globex", "_platform", "acme/../globex", "a b", ""])?),
        "project_id" => s(u.choose(&["web", "my project", "p_1", ""])?),
        "action" | "category" => {
            s(u.choose(&["user.login", "ai.request", "a", "User.Login", "a..b", "a.*", "billing"])?)
        }
        "occurred_at" => s(u.choose(&[
            "2026-03-01T11:00:00Z",
            "2026-03-01T11:00:00.999999999+01:00",
            "2025-01-25T00:00:00Z",
            "2026-03-03T00:00:00Z",
            "+002026-03-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "yesterday",
        ])?),
        "actor" => {
            let t = json::string_literal(u.choose(&["user", "system", "api_key", "webhook", "service", "robot"])?);
            let mut members = vec![("type".to_owned(), t)];
            for key in ["id", "name", "email"] {
                if u.arbitrary()? {
                    members.push((key.to_owned(), json::string_literal(&json::string(u)?)));
                }
            }
            json::object(&members)
        }
        "targets" => {
            let n = u.int_in_range(0..=3)?;
            let items = (0..n)
                .map(|_| {
                    Ok(json::object(&[
                        ("type".into(), s(u.choose(&["user", "api_key", ""])?)),
                        ("id".into(), json::string_literal(&json::string(u)?)),
                    ]))
                })
                .collect::<Result<Vec<_>>>()?;
            format!("[{}]", items.join(","))
        }
        "context" => json::object(&[
            ("ip".into(), s(u.choose(&["203.0.113.7", "::1", "999.1.1.1", "10.0.0.0/8", "fe80::1%eth0", "1.2.3"])?)),
            ("user_agent".into(), json::string_literal(&json::string(u)?)),
        ]),
        "outcome" => s(u.choose(&["success", "failure", "maybe", ""])?),
        "changes" => format!(
            "[{}]",
            json::object(&[
                ("field".into(), json::string_literal(&json::string(u)?)),
                ("before".into(), json::value(u, 2)?),
                ("after".into(), json::value(u, 2)?),
            ])
        ),
        "metadata" => {
            if u.ratio(1, 10)? {
                json::deep(u)?
            } else {
                json::value(u, 4)?
            }
        }
        "ai" => {
            let mut members = Vec::new();
            for key in ["provider", "model", "prompt", "response", "api_key_id"] {
                if u.arbitrary()? {
                    members.push((key.to_owned(), json::string_literal(&json::string(u)?)));
                }
            }
            for key in ["cost_usd", "latency_ms", "status_code"] {
                if u.arbitrary()? {
                    members.push((key.to_owned(), json::number(u)?));
                }
            }
            if u.arbitrary()? {
                members.push((
                    "usage".into(),
                    json::object(&[
                        ("input_tokens".into(), json::number(u)?),
                        ("output_tokens".into(), json::number(u)?),
                    ]),
                ));
            }
            if u.arbitrary()? {
                members.push(("security".into(), json::object(&[("prompt_injection_score".into(), json::number(u)?)])));
            }
            json::object(&members)
        }
        _ => json::string_literal(&json::string(u)?),
    })
}

fn event(u: &mut Unstructured<'_>) -> Result<String> {
    const FIELDS: &[&str] = &[
        "id",
        "organization_id",
        "project_id",
        "action",
        "category",
        "occurred_at",
        "actor",
        "targets",
        "context",
        "description",
        "outcome",
        "error",
        "changes",
        "metadata",
        "ai",
        "colour",
    ];
    let mut members = Vec::new();
    // Usually an organisation and an action, so that validation gets past its first checks.
    if u.ratio(9, 10)? {
        members.push(("organization_id".to_owned(), json::string_literal("acme")));
    }
    if u.ratio(9, 10)? {
        members.push(("action".to_owned(), json::string_literal("user.login")));
    }
    for _ in 0..u.int_in_range(0..=5)? {
        let name = *u.choose(FIELDS)?;
        let value = field_value(u, name)?;
        // Replace an earlier value, or (sometimes) repeat the key.
        match members.iter_mut().find(|(n, _)| n == name) {
            Some(member) if u.ratio(4, 5)? => member.1 = value,
            _ => members.push((name.to_owned(), value)),
        }
    }
    Ok(json::object(&members))
}

impl Target for EventTarget {
    fn name(&self) -> &'static str {
        "event"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn dictionary(&self) -> &'static [&'static str] {
        DICTIONARY
    }

    fn generate(&self, u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
        let text = if u.ratio(1, 4)? {
            let n = u.int_in_range(0..=4)?;
            let events = (0..n).map(|_| event(u)).collect::<Result<Vec<_>>>()?;
            format!("{{\"events\":[{}]}}", events.join(","))
        } else {
            event(u)?
        };
        Ok(text.into_bytes())
    }

    fn run(&self, input: &[u8]) -> String {
        let limits = Limits::default();
        let acme = OrgId::parse("acme").unwrap();
        let mut signature = String::new();
        for default_org in [None, Some(&acme)] {
            let cx = IngestContext { limits: &limits, now_ms: NOW_MS, default_org };
            match parse_batch(input, cx) {
                Err(e) => {
                    assert!(!e.code.is_empty() && !e.message.is_empty(), "an error without a code or message: {e:?}");
                    signature.push_str(&format!("{:?}:{}:{};", e.kind, e.code, path_shape(&e.field)));
                }
                Ok(events) => {
                    assert!(!events.is_empty() && events.len() <= limits.max_batch_events);
                    assert!(events.len() == 1 || is_batch(input), "several events from a body that is no batch");
                    let sent: serde_json::Value = serde_json::from_slice(input).expect("an accepted body is JSON");
                    let sent = match sent.get("events") {
                        Some(serde_json::Value::Array(items)) if is_batch(input) => items.clone(),
                        _ => vec![sent],
                    };
                    assert_eq!(sent.len(), events.len());
                    for (i, new) in events.into_iter().enumerate() {
                        let event = new.into_event(i as u64 + 1, NOW_MS);
                        check_storable(&event, i == 0);
                        let stored = serde_json::to_value(&event).unwrap();
                        keys_kept(&sent[i], &stored, "");
                    }
                    signature.push_str("ok;");
                }
            }
        }
        signature
    }
}

/// An accepted event survives what the store and the sealer do with it.
fn check_storable(event: &Event, prove: bool) {
    let json = serde_json::to_string(event).expect("an accepted event serialises");
    let back: Event =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("an accepted event reads back: {e}: {json}"));
    assert_eq!(&back, event, "the stored form reads back to the same event");
    let leaf = leaf::event_leaf_hash(event).expect("an accepted event has a leaf");
    assert_eq!(leaf::json_leaf_hash(&json).expect("its JSON has a leaf"), leaf, "typed and JSON leaves agree");
    if prove {
        let bytes = leaf::leaf_bytes(event).unwrap();
        let text = String::from_utf8(bytes).expect("canonical bytes are UTF-8");
        bundle::assert_one_event_bundle_verifies(event, &text);
    }
}

/// Whether a value says nothing: the stored form leaves these out.
fn is_blank(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(members) => members.is_empty(),
        _ => false,
    }
}

/// Every field sent with a value is in the stored event, and no list became an object: an accepted event
/// loses nothing silently (an unknown field must be refused, not dropped) and means what it looks like.
fn keys_kept(sent: &serde_json::Value, stored: &serde_json::Value, path: &str) {
    use serde_json::Value;
    match (sent, stored) {
        (Value::Object(sent), Value::Object(stored)) => {
            for (key, value) in sent {
                if is_blank(value) {
                    continue;
                }
                let inner = stored.get(key).unwrap_or_else(|| panic!("the accepted field {path}.{key} was not stored"));
                keys_kept(value, inner, &format!("{path}.{key}"));
            }
        }
        (Value::Array(sent), Value::Array(stored)) => {
            assert_eq!(sent.len(), stored.len(), "the accepted list {path} was stored with another length");
            for (i, (a, b)) in sent.iter().zip(stored).enumerate() {
                keys_kept(a, b, &format!("{path}[{i}]"));
            }
        }
        // Serde would read a struct from an array of its fields: an event must not.
        (Value::Array(_), Value::Object(_)) => panic!("the list sent as {path} was stored as an object"),
        _ => {}
    }
}
