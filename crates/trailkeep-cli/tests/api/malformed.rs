//! Malformed ingest: a table of bad requests sent raw, each with the exact status, error code and
//! field path it must be answered with, and proof that none of them stored anything.
//!
//! Every case is sent as bytes through `Client::raw`, so the server sees exactly what a buggy or
//! hostile sender would send. After each case the event count of every organisation involved (the
//! one named, the other one some batches name, and the reserved platform log) is read back through
//! the list endpoint and must not have changed: one bad event rejects its whole batch.

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use trailkeep_client::{Client, Method};

use crate::helpers::{TestApp, spawn_app};

const ORG: &str = "acme";
const OTHER: &str = "globex";
const PLATFORM: &str = "_platform";
const DAY_MS: i64 = 86_400_000;

/// Which key sends a case.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sender {
    /// The platform admin key: every event must name its organisation.
    Platform,
    /// A key of `acme` allowed to write: events may leave the organisation out.
    Org,
}

struct Case {
    name: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    sender: Sender,
    status: u16,
    code: &'static str,
    field: Option<String>,
}

impl Case {
    fn new(name: &'static str, body: impl Into<Vec<u8>>, status: u16, code: &'static str, field: &str) -> Case {
        Case {
            name,
            body: body.into(),
            headers: vec![("content-type", "application/json".to_owned())],
            sender: Sender::Platform,
            status,
            code,
            field: (!field.is_empty()).then(|| field.to_owned()),
        }
    }

    fn by(mut self, sender: Sender) -> Case {
        self.sender = sender;
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.into()));
        self
    }
}

/// A valid event for `acme`, with `extra` fields merged over it.
fn ev(extra: Value) -> Value {
    let mut event = json!({"organization_id": ORG, "action": "user.login"});
    for (k, v) in extra.as_object().unwrap() {
        event[k] = v.clone();
    }
    event
}

fn one(event: Value) -> Vec<u8> {
    serde_json::to_vec(&event).unwrap()
}

fn batch(events: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({ "events": events })).unwrap()
}

/// Ten valid events for both organisations, with event `bad` replaced.
fn batch_with_bad(bad: usize, event: Value) -> Vec<u8> {
    let mut events: Vec<Value> = (0..10)
        .map(|i| json!({"organization_id": if i % 2 == 0 { ORG } else { OTHER }, "action": "batch.item", "metadata": {"i": i}}))
        .collect();
    events[bad] = event;
    batch(events)
}

fn at(offset_ms: i64) -> String {
    chrono::DateTime::<Utc>::from_timestamp_millis(Utc::now().timestamp_millis() + offset_ms)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn cases() -> Vec<Case> {
    let eleven_segments = ["a"; 11].join(".");
    let targets: Vec<Value> = (0..101).map(|i| json!({"type": "user", "id": format!("u_{i}")})).collect();
    let changes: Vec<Value> = (0..101).map(|i| json!({"field": format!("f{i}"), "before": 1, "after": 2})).collect();
    let too_many_events: Vec<Value> = (0..1001).map(|_| ev(json!({}))).collect();
    vec![
        // Not JSON, or not an object.
        Case::new("truncated JSON", r#"{"organization_id": "acme", "action": "#, 400, "invalid_json", ""),
        Case::new("a JSON array", r#"[{"organization_id": "acme", "action": "a.b"}]"#, 400, "invalid_json", ""),
        Case::new("a JSON string", r#""user.login""#, 400, "invalid_json", ""),
        Case::new("an empty body", "", 400, "invalid_json", ""),
        Case::new("trailing garbage", r#"{"organization_id": "acme", "action": "a.b"} x"#, 400, "invalid_json", ""),
        Case::new(
            "invalid UTF-8 in a string",
            b"{\"organization_id\": \"acme\", \"action\": \"a.b\", \"description\": \"\xff\xfe\"}".to_vec(),
            400,
            "invalid_json",
            "",
        ),
        Case::new("events that are not an array", r#"{"events": {"action": "a.b"}}"#, 400, "invalid_json", "events"),
        Case::new(
            "a batch item that is not an object",
            batch(vec![ev(json!({})), json!(5)]),
            422,
            "invalid_field",
            "events[1]",
        ),
        // Wrong types.
        Case::new("a number for the action", one(ev(json!({"action": 5}))), 422, "invalid_field", "action"),
        Case::new("a string for the targets", one(ev(json!({"targets": "u_1"}))), 422, "invalid_field", "targets"),
        Case::new(
            "a number for occurred_at",
            one(ev(json!({"occurred_at": 1_700_000_000}))),
            422,
            "invalid_field",
            "occurred_at",
        ),
        Case::new("a string for the actor", one(ev(json!({"actor": "alice"}))), 422, "invalid_field", "actor"),
        Case::new(
            "a string for the latency",
            one(ev(json!({"ai": {"latency_ms": "fast"}}))),
            422,
            "invalid_field",
            "ai.latency_ms",
        ),
        Case::new(
            "negative token counts",
            one(ev(json!({"ai": {"usage": {"input_tokens": -1}}}))),
            422,
            "invalid_field",
            "ai.usage.input_tokens",
        ),
        Case::new(
            "a status code beyond u16",
            one(ev(json!({"ai": {"status_code": 70000}}))),
            422,
            "invalid_field",
            "ai.status_code",
        ),
        Case::new(
            "a duplicated action",
            r#"{"organization_id": "acme", "action": "user.login", "action": "user.logout"}"#,
            422,
            "invalid_field",
            "action",
        ),
        Case::new(
            "a duplicated actor type in a batch",
            r#"{"events": [{"organization_id": "acme", "action": "a.b", "actor": {"type": "user", "type": "system"}}]}"#,
            422,
            "invalid_field",
            "events[0].actor.type",
        ),
        Case::new(
            "a cost beyond f64",
            r#"{"organization_id": "acme", "action": "a.b", "ai": {"cost_usd": 1e400}}"#,
            400,
            "invalid_json",
            "ai.cost_usd",
        ),
        // Unknown fields.
        Case::new("an unknown event field", one(ev(json!({"colour": "red"}))), 422, "invalid_field", "colour"),
        Case::new(
            "an unknown actor field in a batch",
            batch(vec![ev(json!({"actor": {"type": "user", "id": "u_1", "role": "admin"}}))]),
            422,
            "invalid_field",
            "events[0].actor.role",
        ),
        Case::new(
            "an unknown context field",
            one(ev(json!({"context": {"referrer": "x"}}))),
            422,
            "invalid_field",
            "context.referrer",
        ),
        Case::new("an unknown field beside events", r#"{"events": [], "extra": 1}"#, 400, "unknown_field", "extra"),
        // Actions.
        Case::new("no action", one(json!({"organization_id": ORG})), 422, "missing_field", "action"),
        Case::new("an uppercase action", one(ev(json!({"action": "User.Login"}))), 422, "invalid_action", "action"),
        Case::new(
            "an empty action segment",
            one(ev(json!({"action": "user..login"}))),
            422,
            "invalid_action",
            "action",
        ),
        Case::new("a trailing dot", one(ev(json!({"action": "user.login."}))), 422, "invalid_action", "action"),
        Case::new("a pattern as an action", one(ev(json!({"action": "user.*"}))), 422, "invalid_action", "action"),
        Case::new("a hyphen in an action", one(ev(json!({"action": "user.log-in"}))), 422, "invalid_action", "action"),
        Case::new(
            "eleven action segments",
            one(ev(json!({"action": eleven_segments}))),
            422,
            "invalid_action",
            "action",
        ),
        Case::new("a 129-byte action", one(ev(json!({"action": "a".repeat(129)}))), 422, "invalid_action", "action"),
        Case::new("an empty action", one(ev(json!({"action": ""}))), 422, "invalid_action", "action"),
        Case::new(
            "an uppercase category",
            one(ev(json!({"category": "Billing"}))),
            422,
            "invalid_category",
            "category",
        ),
        // Context and time.
        Case::new(
            "an IPv4 address out of range",
            one(ev(json!({"context": {"ip": "999.1.1.1"}}))),
            422,
            "invalid_ip",
            "context.ip",
        ),
        Case::new(
            "a network as the address",
            one(ev(json!({"context": {"ip": "10.0.0.0/8"}}))),
            422,
            "invalid_ip",
            "context.ip",
        ),
        Case::new(
            "a broken IPv6 address",
            one(ev(json!({"context": {"ip": "2001:db8:::1"}}))),
            422,
            "invalid_ip",
            "context.ip",
        ),
        Case::new(
            "occurred_at 401 days ago",
            one(ev(json!({"occurred_at": at(-401 * DAY_MS)}))),
            422,
            "timestamp_out_of_range",
            "occurred_at",
        ),
        Case::new(
            "occurred_at two days ahead",
            one(ev(json!({"occurred_at": at(2 * DAY_MS)}))),
            422,
            "timestamp_out_of_range",
            "occurred_at",
        ),
        Case::new(
            "occurred_at in words",
            one(ev(json!({"occurred_at": "yesterday"}))),
            422,
            "invalid_timestamp",
            "occurred_at",
        ),
        Case::new(
            "occurred_at without an offset",
            one(ev(json!({"occurred_at": "2026-01-01T00:00:00"}))),
            422,
            "invalid_timestamp",
            "occurred_at",
        ),
        // Sizes.
        Case::new(
            "an event over 256 KiB",
            one(ev(json!({"description": "x".repeat(300 * 1024)}))),
            413,
            "event_too_large",
            "",
        ),
        Case::new(
            "a batch whose second event is over 256 KiB",
            batch(vec![ev(json!({})), ev(json!({"metadata": {"blob": "x".repeat(300 * 1024)}}))]),
            413,
            "event_too_large",
            "events[1]",
        ),
        Case::new(
            "metadata over 64 KiB",
            one(ev(json!({"metadata": {"blob": "x".repeat(65 * 1024)}}))),
            413,
            "metadata_too_large",
            "metadata",
        ),
        Case::new("101 targets", one(ev(json!({ "targets": targets }))), 413, "too_many_targets", "targets"),
        Case::new("101 changes", one(ev(json!({ "changes": changes }))), 413, "too_many_changes", "changes"),
        Case::new("1001 events in a batch", batch(too_many_events), 413, "batch_too_large", "events"),
        Case::new("a body over 16 MiB", vec![b' '; 17 * 1024 * 1024], 413, "payload_too_large", ""),
        Case::new(
            "a 2000-byte actor name",
            one(ev(json!({"actor": {"type": "user", "name": "n".repeat(2000)}}))),
            413,
            "field_too_long",
            "actor.name",
        ),
        Case::new(
            "a 17 KiB description",
            one(ev(json!({"description": "d".repeat(17 * 1024)}))),
            413,
            "field_too_long",
            "description",
        ),
        // Actors and targets.
        Case::new(
            "an unknown actor type",
            one(ev(json!({"actor": {"type": "robot"}}))),
            422,
            "invalid_actor_type",
            "actor.type",
        ),
        Case::new(
            "an actor without a type",
            one(ev(json!({"actor": {"id": "u_1"}}))),
            422,
            "missing_field",
            "actor.type",
        ),
        Case::new(
            "an email without an at sign",
            one(ev(json!({"actor": {"type": "user", "email": "alice.example.com"}}))),
            422,
            "invalid_email",
            "actor.email",
        ),
        Case::new(
            "an email with a space",
            one(ev(json!({"actor": {"type": "user", "email": "alice smith@example.com"}}))),
            422,
            "invalid_email",
            "actor.email",
        ),
        Case::new(
            "an empty actor id",
            one(ev(json!({"actor": {"type": "user", "id": ""}}))),
            422,
            "empty_field",
            "actor.id",
        ),
        Case::new(
            "a target without an id",
            batch(vec![
                ev(json!({})),
                ev(json!({})),
                ev(json!({"targets": [{"type": "user", "id": "u_1"}, {"type": "team"}]})),
            ]),
            422,
            "missing_field",
            "events[2].targets[1].id",
        ),
        // Ids, outcome, changes, metadata.
        Case::new("an id that is not a UUID", one(ev(json!({"id": "evt_123"}))), 422, "invalid_id", "id"),
        Case::new("an empty batch", r#"{"events": []}"#, 422, "empty_batch", "events"),
        Case::new("an unknown outcome", one(ev(json!({"outcome": "maybe"}))), 422, "invalid_outcome", "outcome"),
        Case::new("an error on a success", one(ev(json!({"error": "boom"}))), 422, "invalid_field", "error"),
        Case::new(
            "a change without a field name",
            one(ev(json!({"changes": [{"field": ""}]}))),
            422,
            "invalid_field",
            "changes[0].field",
        ),
        Case::new(
            "metadata that is an array",
            one(ev(json!({"metadata": ["a"]}))),
            422,
            "invalid_metadata",
            "metadata",
        ),
        Case::new(
            "metadata that is a string",
            one(ev(json!({"metadata": "plan=pro"}))),
            422,
            "invalid_metadata",
            "metadata",
        ),
        // The AI block.
        Case::new("a negative cost", one(ev(json!({"ai": {"cost_usd": -0.01}}))), 422, "invalid_field", "ai.cost_usd"),
        Case::new(
            "status code 700",
            one(ev(json!({"ai": {"status_code": 700}}))),
            422,
            "invalid_field",
            "ai.status_code",
        ),
        Case::new(
            "status code 99",
            one(ev(json!({"ai": {"status_code": 99}}))),
            422,
            "invalid_field",
            "ai.status_code",
        ),
        Case::new(
            "a prompt injection score above 1",
            one(ev(json!({"ai": {"security": {"prompt_injection_score": 1.5}}}))),
            422,
            "invalid_field",
            "ai.security.prompt_injection_score",
        ),
        Case::new(
            "a negative prompt injection score",
            one(ev(json!({"ai": {"security": {"prompt_injection_score": -0.1}}}))),
            422,
            "invalid_field",
            "ai.security.prompt_injection_score",
        ),
        // Organisations.
        Case::new(
            "no organisation with a platform key",
            one(json!({"action": "user.login"})),
            422,
            "missing_field",
            "organization_id",
        ),
        Case::new(
            "the reserved platform organisation",
            one(ev(json!({"organization_id": PLATFORM}))),
            422,
            "invalid_organization_id",
            "organization_id",
        ),
        Case::new(
            "the reserved platform organisation with an org key",
            batch(vec![json!({"action": "user.login"}), json!({"organization_id": PLATFORM, "action": "user.login"})]),
            422,
            "invalid_organization_id",
            "events[1].organization_id",
        )
        .by(Sender::Org),
        Case::new(
            "an organisation id with a slash",
            one(ev(json!({"organization_id": "acme/../globex"}))),
            422,
            "invalid_organization_id",
            "organization_id",
        ),
        Case::new(
            "a project id with a space",
            one(ev(json!({"project_id": "my project"}))),
            422,
            "invalid_project_id",
            "project_id",
        ),
        // Headers.
        Case::new("a text/plain body", one(ev(json!({}))), 415, "unsupported_media_type", "")
            .header("content-type", "text/plain"),
        Case::new("a form body", "organization_id=acme&action=user.login", 415, "unsupported_media_type", "")
            .header("content-type", "application/x-www-form-urlencoded"),
        Case::new(
            "an Idempotency-Key with a space",
            one(ev(json!({}))),
            400,
            "invalid_idempotency_key",
            "Idempotency-Key",
        )
        .header("idempotency-key", "retry 1"),
        Case::new(
            "a 256-character Idempotency-Key",
            one(ev(json!({}))),
            400,
            "invalid_idempotency_key",
            "Idempotency-Key",
        )
        .header("idempotency-key", "k".repeat(256)),
        // One bad event among good ones, for both organisations.
        Case::new(
            "a batch where only event 7 has a bad address",
            batch_with_bad(
                7,
                json!({"organization_id": OTHER, "action": "batch.item", "context": {"ip": "10.0.0.256"}}),
            ),
            422,
            "invalid_ip",
            "events[7].context.ip",
        ),
        Case::new(
            "a batch where only event 7 has no action",
            batch_with_bad(7, json!({"organization_id": OTHER})),
            422,
            "missing_field",
            "events[7].action",
        ),
        Case::new(
            "a batch where only event 7 has a bad actor type, from an org key",
            batch(
                (0..10)
                    .map(|i| {
                        if i == 7 {
                            json!({"action": "a.b", "actor": {"type": "bot"}})
                        } else {
                            json!({"action": "a.b"})
                        }
                    })
                    .collect(),
            ),
            422,
            "invalid_actor_type",
            "events[7].actor.type",
        )
        .by(Sender::Org),
        Case::new(
            "a batch where only event 9 is for a reserved organisation",
            batch_with_bad(9, json!({"organization_id": "_internal", "action": "a.b"})),
            422,
            "invalid_organization_id",
            "events[9].organization_id",
        ),
    ]
}

/// How many events each organisation involved holds, read through the list endpoint.
async fn counts(app: &TestApp) -> Vec<(&'static str, usize)> {
    let mut out = Vec::new();
    for org in [ORG, OTHER, PLATFORM] {
        let all = app.admin.list_all_events(&[("organization_id", org), ("limit", "1000")]).await.unwrap();
        out.push((org, all.len()));
    }
    out
}

#[tokio::test]
async fn each_malformed_ingest_request_gets_its_status_code_and_field_and_stores_nothing() {
    let app = spawn_app().await;
    let org_key: Client = app.org_client(ORG, &["events:write", "events:read"]).await;
    // Both organisations hold events already, so "unchanged" is not "still empty".
    app.admin.send_events(&[ev(json!({})), ev(json!({"organization_id": OTHER}))]).await.unwrap();
    let baseline = counts(&app).await;
    assert!(baseline.iter().all(|(_, n)| *n > 0), "{baseline:?}");

    let cases = cases();
    assert!(cases.len() >= 30);
    for case in &cases {
        let client = match case.sender {
            Sender::Platform => &app.admin,
            Sender::Org => &org_key,
        };
        let headers: Vec<(&str, &str)> = case.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let response = client.raw(Method::POST, "/v1/events", Some(case.body.clone()), &headers).await.unwrap();
        let body = response.json().unwrap_or_else(|e| panic!("{}: the answer is not JSON: {e}", case.name));
        let error = &body["error"];
        let field = error.get("field").and_then(Value::as_str).map(str::to_owned);
        assert_eq!(
            (response.status, error["code"].as_str().unwrap_or_default(), field.as_deref()),
            (case.status, case.code, case.field.as_deref()),
            "{}: {}",
            case.name,
            error["message"]
        );
        assert!(!error["message"].as_str().unwrap_or_default().is_empty(), "{}: a message for people", case.name);
        assert_eq!(counts(&app).await, baseline, "{}: nothing may be stored", case.name);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_rejected_request_does_not_claim_its_idempotency_key() {
    let app = spawn_app().await;
    let headers = [("content-type", "application/json"), ("idempotency-key", "order-42")];
    let bad = one(ev(json!({"context": {"ip": "not-an-ip"}})));
    for _ in 0..2 {
        let r = app.admin.raw(Method::POST, "/v1/events", Some(bad.clone()), &headers).await.unwrap();
        assert_eq!(r.status, 422, "a retry of a bad request is judged again, not replayed");
        assert_eq!(r.header("idempotent-replayed"), None);
    }
    let good = one(ev(json!({"context": {"ip": "10.0.0.1"}})));
    let r = app.admin.raw(Method::POST, "/v1/events", Some(good), &headers).await.unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.header("idempotent-replayed"), None, "the key was still free");
    let stored = app.admin.list_all_events(&[("organization_id", ORG)]).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].context.ip.map(|ip| ip.to_string()).as_deref(), Some("10.0.0.1"));
    app.stop().await;
}
