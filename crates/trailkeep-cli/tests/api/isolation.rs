//! Tenant isolation and permissions: what each kind of key may and may not do, endpoint by endpoint.
//!
//! Two organisations, `acme` (A) and `globex` (B), each hold events and keys. A key of A must neither
//! read nor write anything of B through any endpoint, and every refusal must leave B exactly as it
//! was. Keys without a permission are refused with 403, keys that are missing, unknown or revoked with
//! 401, and a revoked key stops working at once. Key changes are themselves audit events, recorded in
//! the organisation they affect with the acting key as the actor, and no secret ever appears in a log
//! or a key listing.

use serde_json::{Value, json};
use trailkeep_client::{Client, ClientError, Method, RawResponse};
use trailkeep_wire::{CreateKeyRequest, CreatedKey, Event, KeyInfo};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

const A: &str = "acme";
const B: &str = "globex";
const PLATFORM: &str = "_platform";
const ALL: &[&str] = &["events:write", "events:read", "admin"];

/// A server where both organisations have an all-powerful key and a few events.
struct Tenants {
    app: TestApp,
    a: Client,
    a_key: CreatedKey,
    b: Client,
    b_key: CreatedKey,
    a_events: Vec<Uuid>,
    b_events: Vec<Uuid>,
}

fn request(name: &str, org: Option<&str>, permissions: &[&str]) -> CreateKeyRequest {
    CreateKeyRequest {
        name: name.to_owned(),
        organization_id: org.map(str::to_owned),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
    }
}

async fn tenants() -> Tenants {
    let app = spawn_app().await;
    let a_key = app.admin.create_key(&request("acme admin", Some(A), ALL)).await.unwrap();
    let b_key = app.admin.create_key(&request("globex admin", Some(B), ALL)).await.unwrap();
    let a = app.admin.with_key(a_key.key.clone());
    let b = app.admin.with_key(b_key.key.clone());
    let a_sent = a.send_events(&[json!({"action": "doc.created"}), json!({"action": "doc.shared"})]).await.unwrap();
    let b_sent = b.send_events(&[json!({"action": "doc.created"}), json!({"action": "doc.deleted"})]).await.unwrap();
    Tenants {
        a,
        a_key,
        b,
        b_key,
        a_events: a_sent.acks.iter().map(|a| a.id).collect(),
        b_events: b_sent.acks.iter().map(|a| a.id).collect(),
        app,
    }
}

impl Tenants {
    /// Everything in an organisation's log, read with the platform key.
    async fn log(&self, org: &str) -> Vec<Event> {
        self.app.admin.list_all_events(&[("organization_id", org), ("limit", "1000")]).await.unwrap()
    }

    async fn keys(&self, org: Option<&str>) -> Vec<KeyInfo> {
        match org {
            Some(org) => self.app.admin.list_keys(Some(org)).await.unwrap(),
            None => self.app.admin.list_keys(None).await.unwrap(),
        }
    }

    /// What the platform key sees of both organisations and the platform log, to compare before and after.
    async fn snapshot(&self) -> Value {
        let mut out = serde_json::Map::new();
        for org in [A, B, PLATFORM] {
            out.insert(format!("events of {org}"), serde_json::to_value(self.log(org).await).unwrap());
        }
        out.insert("keys".into(), serde_json::to_value(self.keys(None).await).unwrap());
        Value::Object(out)
    }
}

#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    code: String,
    field: Option<String>,
}

fn answer(e: ClientError) -> Answer {
    match e {
        ClientError::Api { status, code, field, .. } => Answer { status, code, field },
        other => panic!("expected an error answer, got {other}"),
    }
}

fn raw_answer(r: &RawResponse) -> Answer {
    let body = r.json().unwrap_or(Value::Null);
    Answer {
        status: r.status,
        code: body["error"]["code"].as_str().unwrap_or_default().to_owned(),
        field: body["error"]["field"].as_str().map(str::to_owned),
    }
}

fn forbidden(field: Option<&str>) -> Answer {
    Answer { status: 403, code: "forbidden".into(), field: field.map(str::to_owned) }
}

fn not_found() -> Answer {
    Answer { status: 404, code: "not_found".into(), field: None }
}

async fn post_json(client: &Client, path: &str, body: &[u8]) -> RawResponse {
    client.raw(Method::POST, path, Some(body.to_vec()), &[("content-type", "application/json")]).await.unwrap()
}

#[tokio::test]
async fn a_key_of_one_organisation_cannot_write_events_into_another() {
    let t = tenants().await;
    let before = t.snapshot().await;

    let single = t.a.send_events_with_key(&[json!({"organization_id": B, "action": "doc.created"})], "x-1").await;
    assert_eq!(answer(single.unwrap_err()), forbidden(Some("events[0].organization_id")));

    let r = post_json(&t.a, "/v1/events", br#"{"organization_id": "globex", "action": "doc.created"}"#).await;
    assert_eq!(raw_answer(&r), forbidden(Some("organization_id")));

    let mixed = vec![
        json!({"action": "doc.created"}),
        json!({"organization_id": A, "action": "doc.read"}),
        json!({"organization_id": B, "action": "doc.created"}),
    ];
    assert_eq!(answer(t.a.send_events(&mixed).await.unwrap_err()), forbidden(Some("events[2].organization_id")));

    // The field path follows the shape of the body, not its spelling.
    let spaced = b"{ \"events\" : [ {\"organization_id\": \"globex\", \"action\": \"doc.created\"} ] }";
    assert_eq!(raw_answer(&post_json(&t.a, "/v1/events", spaced).await), forbidden(Some("events[0].organization_id")));

    assert_eq!(t.snapshot().await, before, "nothing may change anywhere");
    t.app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_reused_by_another_organisation_stores_its_own_event_and_replays_nothing() {
    let t = tenants().await;
    let body = [json!({"action": "invoice.sent", "description": "same bytes from both tenants"})];
    let from_a = t.a.send_events_with_key(&body, "invoice-2026-001").await.unwrap();
    let from_b = t.b.send_events_with_key(&body, "invoice-2026-001").await.unwrap();
    assert!(!from_a.replayed && !from_b.replayed, "each key has its own idempotency scope");
    assert_ne!(from_a.acks[0].id, from_b.acks[0].id, "B must not be handed A's acknowledgement");
    assert_eq!(t.b.get_event(&from_b.acks[0].id.to_string(), None).await.unwrap().organization_id.as_str(), B);
    assert_eq!(answer(t.b.get_event(&from_a.acks[0].id.to_string(), None).await.unwrap_err()), not_found());
    t.app.stop().await;
}

#[tokio::test]
async fn a_key_of_one_organisation_cannot_list_another_organisations_events() {
    let t = tenants().await;
    for params in [
        vec![("organization_id", B)],
        vec![("organization_id", B), ("q", "action:doc.*")],
        vec![("organization_id", PLATFORM)],
        vec![("action", "doc.created"), ("organization_id", B)],
    ] {
        assert_eq!(
            answer(t.a.list_events(&params).await.unwrap_err()),
            forbidden(Some("organization_id")),
            "{params:?}"
        );
    }
    // Its own listing holds its own events and key changes, and nothing of B's.
    let own = t.a.list_all_events(&[]).await.unwrap();
    assert!(own.iter().all(|e| e.organization_id.as_str() == A));
    let own_docs: Vec<Uuid> =
        t.a.list_all_events(&[("action", "doc.*"), ("order", "asc")]).await.unwrap().iter().map(|e| e.id).collect();
    assert_eq!(own_docs, t.a_events);
    assert!(own.iter().all(|e| !t.b_events.contains(&e.id)));
    let named = t.a.list_all_events(&[("organization_id", A)]).await.unwrap();
    assert_eq!(named, own);
    t.app.stop().await;
}

#[tokio::test]
async fn a_key_of_one_organisation_gets_404_for_another_organisations_event_id() {
    let t = tenants().await;
    let theirs = t.b_events[0].to_string();
    let missing = answer(t.a.get_event(&Uuid::now_v7().to_string(), None).await.unwrap_err());
    assert_eq!(missing, not_found());
    // Another organisation's event answers exactly like one that does not exist.
    let r = t.a.raw(Method::GET, &format!("/v1/events/{theirs}"), None, &[]).await.unwrap();
    let m = t.a.raw(Method::GET, &format!("/v1/events/{}", Uuid::now_v7()), None, &[]).await.unwrap();
    assert_eq!(raw_answer(&r), not_found());
    assert_eq!(r.body, m.body);
    assert_eq!(answer(t.a.get_event(&theirs, Some(B)).await.unwrap_err()), forbidden(Some("organization_id")));
    // The owner and the platform can read it, and A can read its own.
    assert_eq!(t.b.get_event(&theirs, None).await.unwrap().id, t.b_events[0]);
    assert_eq!(t.app.admin.get_event(&theirs, Some(B)).await.unwrap().id, t.b_events[0]);
    assert_eq!(t.a.get_event(&t.a_events[0].to_string(), None).await.unwrap().id, t.a_events[0]);
    t.app.stop().await;
}

#[tokio::test]
async fn an_organisation_admin_key_cannot_create_a_key_for_another_organisation_or_the_platform() {
    let t = tenants().await;
    let before = t.snapshot().await;
    let for_b = t.a.create_key(&request("intruder", Some(B), &["events:read"])).await.unwrap_err();
    assert_eq!(answer(for_b), forbidden(Some("organization_id")));
    let platform = t.a.create_key(&request("intruder", None, &["events:read"])).await.unwrap_err();
    assert_eq!(answer(platform), forbidden(Some("organization_id")));
    let reserved = t.a.create_key(&request("intruder", Some(PLATFORM), &["events:read"])).await.unwrap_err();
    assert_eq!(answer(reserved).status, 422);
    assert_eq!(t.snapshot().await, before, "no key and no key event may appear");

    // For its own organisation it may.
    let own = t.a.create_key(&request("acme reader", Some(A), &["events:read"])).await.unwrap();
    assert_eq!(own.info.organization_id.as_deref(), Some(A));
    t.app.stop().await;
}

#[tokio::test]
async fn an_organisation_admin_key_lists_only_its_own_organisations_keys() {
    let t = tenants().await;
    t.b.create_key(&request("globex reader", Some(B), &["events:read"])).await.unwrap();
    t.a.create_key(&request("acme writer", Some(A), &["events:write"])).await.unwrap();
    let listed = t.a.list_keys(None).await.unwrap();
    let everything = t.keys(None).await;
    let expected: Vec<KeyInfo> =
        everything.iter().filter(|k| k.organization_id.as_deref() == Some(A)).cloned().collect();
    assert_eq!(listed, expected);
    assert_eq!(listed.len(), 2, "acme admin and acme writer");
    assert!(everything.iter().any(|k| k.organization_id.as_deref() == Some(B)), "B has keys to hide");
    assert_eq!(t.a.list_keys(Some(A)).await.unwrap(), expected);
    assert_eq!(answer(t.a.list_keys(Some(B)).await.unwrap_err()), forbidden(Some("organization_id")));
    t.app.stop().await;
}

#[tokio::test]
async fn an_organisation_admin_key_cannot_revoke_another_organisations_key_or_a_platform_key() {
    let t = tenants().await;
    let platform_key = t.app.admin.create_key(&request("ops", None, &["events:read"])).await.unwrap();
    let before = t.snapshot().await;
    for id in [t.b_key.info.id.as_str(), platform_key.info.id.as_str(), "key_does_not_exist"] {
        assert_eq!(answer(t.a.revoke_key(id).await.unwrap_err()), not_found(), "{id}");
    }
    assert_eq!(t.snapshot().await, before, "nothing revoked, nothing recorded");
    // B's key still works for everything it did before.
    assert_eq!(t.b.list_events(&[]).await.unwrap().data.len(), before["events of globex"].as_array().unwrap().len());
    t.b.send_events(&[json!({"action": "doc.read"})]).await.unwrap();
    assert!(t.b.list_keys(None).await.unwrap().iter().all(|k| k.revoked_at.is_none()));
    let ops = t.app.admin.with_key(platform_key.key.clone());
    ops.list_events(&[("organization_id", B)]).await.unwrap();
    t.app.stop().await;
}

#[tokio::test]
async fn each_permission_is_required_by_its_endpoints_with_403() {
    let t = tenants().await;
    let make = |name: &'static str, permissions: &'static [&'static str]| {
        let admin = t.a.clone();
        async move { admin.create_key(&request(name, Some(A), permissions)).await.unwrap() }
    };
    let reader = t.a.with_key(make("reader", &["events:read"]).await.key);
    let writer = t.a.with_key(make("writer", &["events:write"]).await.key);
    let both = t.a.with_key(make("reader and writer", &["events:read", "events:write"]).await.key);
    let before = t.snapshot().await;

    let err = reader.send_events(&[json!({"action": "doc.created"})]).await.unwrap_err();
    assert_eq!(answer(err), forbidden(None));
    let r = post_json(&reader, "/v1/events", br#"{"action": "doc.created"}"#).await;
    assert_eq!(raw_answer(&r), forbidden(None));
    assert!(r.json().unwrap()["error"]["message"].as_str().unwrap().contains("events:write"));

    assert_eq!(answer(writer.list_events(&[]).await.unwrap_err()), forbidden(None));
    assert_eq!(answer(writer.get_event(&t.a_events[0].to_string(), None).await.unwrap_err()), forbidden(None));
    let r = writer.raw(Method::GET, "/v1/events", None, &[]).await.unwrap();
    assert!(r.json().unwrap()["error"]["message"].as_str().unwrap().contains("events:read"));

    for (name, key) in [("reader", &reader), ("writer", &writer), ("reader and writer", &both)] {
        let create = key.create_key(&request("more", Some(A), &["events:read"])).await.unwrap_err();
        assert_eq!(answer(create), forbidden(None), "{name}");
        assert_eq!(answer(key.list_keys(None).await.unwrap_err()), forbidden(None), "{name}");
        assert_eq!(answer(key.revoke_key(&t.a_key.info.id).await.unwrap_err()), forbidden(None), "{name}");
    }
    assert_eq!(t.snapshot().await, before, "no refused request may change anything");

    // Each may do what it was given.
    reader.list_events(&[]).await.unwrap();
    writer.send_events(&[json!({"action": "doc.created"})]).await.unwrap();
    both.list_events(&[]).await.unwrap();
    t.app.stop().await;
}

/// One call to each endpoint, with bodies and ids that would be accepted from a key allowed to act.
async fn call_every_endpoint(client: &Client, own_event: Uuid, own_key: &str) -> Vec<(&'static str, RawResponse)> {
    let event = br#"{"action": "doc.created"}"#.to_vec();
    let key = serde_json::to_vec(&request("spare", Some(A), &["events:read"])).unwrap();
    let json = [("content-type", "application/json")];
    vec![
        ("POST /v1/events", client.raw(Method::POST, "/v1/events", Some(event), &json).await.unwrap()),
        ("GET /v1/events", client.raw(Method::GET, "/v1/events", None, &[]).await.unwrap()),
        ("GET /v1/events/{id}", client.raw(Method::GET, &format!("/v1/events/{own_event}"), None, &[]).await.unwrap()),
        ("POST /v1/keys", client.raw(Method::POST, "/v1/keys", Some(key), &json).await.unwrap()),
        ("GET /v1/keys", client.raw(Method::GET, "/v1/keys", None, &[]).await.unwrap()),
        ("DELETE /v1/keys/{id}", client.raw(Method::DELETE, &format!("/v1/keys/{own_key}"), None, &[]).await.unwrap()),
    ]
}

#[tokio::test]
async fn missing_unknown_and_malformed_keys_are_refused_with_401_on_every_endpoint() {
    let t = tenants().await;
    let victim = t.a.create_key(&request("victim", Some(A), &["events:read"])).await.unwrap();
    let before = t.snapshot().await;
    let anonymous = Client::new(&t.app.base_url, None).unwrap();
    let unknown_secret = format!("tk_{}", "A".repeat(43));
    // Each case is a client and, where the client cannot send it, a raw Authorization header.
    let cases: [(&str, Client, Option<String>); 7] = [
        ("no Authorization header", anonymous.clone(), None),
        ("an unknown key", anonymous.with_key(unknown_secret), None),
        ("garbage", anonymous.with_key("garbage"), None),
        ("an empty bearer", anonymous.clone(), Some("Bearer ".to_owned())),
        ("basic authentication", anonymous.clone(), Some("Basic YWNtZTpzZWNyZXQ=".to_owned())),
        ("the key without its scheme", anonymous.clone(), Some(t.a_key.key.clone())),
        ("a truncated key", anonymous.with_key(&t.a_key.key[..t.a_key.key.len() - 1]), None),
    ];
    for (name, client, authorization) in cases {
        let headers: Vec<(&str, &str)> = authorization.iter().map(|v| ("authorization", v.as_str())).collect();
        let event = br#"{"action": "doc.created"}"#.to_vec();
        let calls = [
            (Method::POST, "/v1/events".to_owned(), Some(event)),
            (Method::GET, "/v1/events".to_owned(), None),
            (Method::GET, format!("/v1/events/{}", t.a_events[0]), None),
            (
                Method::POST,
                "/v1/keys".to_owned(),
                Some(serde_json::to_vec(&request("x", Some(A), &["admin"])).unwrap()),
            ),
            (Method::GET, "/v1/keys".to_owned(), None),
            (Method::DELETE, format!("/v1/keys/{}", victim.info.id), None),
        ];
        for (method, path, body) in calls {
            let mut h = headers.clone();
            if body.is_some() {
                h.push(("content-type", "application/json"));
            }
            let r = client.raw(method.clone(), &path, body, &h).await.unwrap();
            assert_eq!((r.status, raw_answer(&r).code.as_str()), (401, "unauthorized"), "{name}: {method} {path}");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{name}: {method} {path}");
        }
    }
    assert_eq!(t.snapshot().await, before, "no refused request may change anything");
    t.app.stop().await;
}

#[tokio::test]
async fn a_key_revoked_mid_way_stops_working_at_once_on_every_endpoint() {
    let t = tenants().await;
    let doomed = t.a.create_key(&request("doomed", Some(A), ALL)).await.unwrap();
    let spare = t.a.create_key(&request("spare target", Some(A), &["events:read"])).await.unwrap();
    let client = t.a.with_key(doomed.key.clone());
    let first = call_every_endpoint(&client, t.a_events[0], &spare.info.id).await;
    let statuses: Vec<(&str, u16)> = first.iter().map(|(n, r)| (*n, r.status)).collect();
    assert_eq!(
        statuses,
        [
            ("POST /v1/events", 201),
            ("GET /v1/events", 200),
            ("GET /v1/events/{id}", 200),
            ("POST /v1/keys", 201),
            ("GET /v1/keys", 200),
            ("DELETE /v1/keys/{id}", 200)
        ],
        "the key works before it is revoked"
    );

    let revoked = t.a.revoke_key(&doomed.info.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let before = t.snapshot().await;
    let another_spare = t.a.create_key(&request("another spare", Some(A), &["events:read"])).await.unwrap();
    let before_calls = t.snapshot().await;
    for (name, r) in call_every_endpoint(&client, t.a_events[0], &another_spare.info.id).await {
        let body = r.json().unwrap();
        assert_eq!((r.status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{name}");
        assert!(body["error"]["message"].as_str().unwrap().contains("revoked"), "{name}: {body}");
    }
    assert_eq!(t.snapshot().await, before_calls, "a revoked key changes nothing");
    assert_ne!(before, before_calls);
    // Revoking twice is a conflict, not a second event.
    assert_eq!(answer(t.a.revoke_key(&doomed.info.id).await.unwrap_err()).status, 409);
    assert_eq!(t.snapshot().await, before_calls);
    t.app.stop().await;
}

/// A key event as `(action, actor type, actor id, target id)`.
type KeyEvent = (String, String, String, String);

/// The key events of a log, oldest first.
fn key_events(log: &[Event]) -> Vec<KeyEvent> {
    let mut out: Vec<KeyEvent> = log
        .iter()
        .filter(|e| e.action.as_str().starts_with("api_key."))
        .map(|e| {
            let actor = e.actor.as_ref().expect("a key event names its actor");
            assert_eq!(e.category, "api_key");
            assert_eq!(e.targets.len(), 1);
            assert_eq!(e.targets[0].target_type, "api_key");
            (
                e.action.to_string(),
                actor.actor_type.as_str().to_owned(),
                actor.id.clone().unwrap_or_default(),
                e.targets[0].id.clone(),
            )
        })
        .collect();
    out.reverse();
    out
}

fn entry(action: &str, actor_type: &str, actor: &str, target: &str) -> KeyEvent {
    (action.to_owned(), actor_type.to_owned(), actor.to_owned(), target.to_owned())
}

#[tokio::test]
async fn key_changes_are_recorded_in_the_affected_log_with_the_acting_key_and_never_reveal_a_secret() {
    let app = spawn_app().await;
    let platform_keys = app.admin.list_keys(None).await.unwrap();
    assert_eq!(platform_keys.len(), 1, "a fresh service has only its bootstrap key");
    let root = platform_keys[0].id.clone();

    let a_admin = app.admin.create_key(&request("acme admin", Some(A), ALL)).await.unwrap();
    let a = app.admin.with_key(a_admin.key.clone());
    let a_reader = a.create_key(&request("acme reader", Some(A), &["events:read"])).await.unwrap();
    a.revoke_key(&a_reader.info.id).await.unwrap();
    let b_admin = app.admin.create_key(&request("globex admin", Some(B), ALL)).await.unwrap();
    let ops = app.admin.create_key(&request("ops", None, &["events:read"])).await.unwrap();
    app.admin.revoke_key(&ops.info.id).await.unwrap();

    let log = |org: &'static str| {
        let admin = app.admin.clone();
        async move { admin.list_all_events(&[("organization_id", org), ("limit", "1000")]).await.unwrap() }
    };
    let (a_log, b_log, platform_log) = (log(A).await, log(B).await, log(PLATFORM).await);
    assert_eq!(
        key_events(&a_log),
        [
            entry("api_key.created", "api_key", &root, &a_admin.info.id),
            entry("api_key.created", "api_key", &a_admin.info.id, &a_reader.info.id),
            entry("api_key.revoked", "api_key", &a_admin.info.id, &a_reader.info.id),
        ]
    );
    assert_eq!(key_events(&b_log), [entry("api_key.created", "api_key", &root, &b_admin.info.id)]);
    assert_eq!(
        key_events(&platform_log),
        [
            entry("api_key.created", "system", "trailkeep", &root),
            entry("api_key.created", "api_key", &root, &ops.info.id),
            entry("api_key.revoked", "api_key", &root, &ops.info.id),
        ]
    );
    // The recorded actor is the acting key, by name too.
    let by_a = a_log.iter().find(|e| e.targets[0].id == a_reader.info.id).unwrap();
    assert_eq!(by_a.actor.as_ref().unwrap().name.as_deref(), Some("acme admin"));
    // The organisation can read its own key history through the query language.
    let own = a.list_all_events(&[("q", "action:api_key.* actor_type:api_key")]).await.unwrap();
    assert_eq!(own.len(), 3);

    // No secret appears in any log or key listing: only the short prefix does.
    let mut published = String::new();
    for part in [&a_log, &b_log, &platform_log] {
        published.push_str(&serde_json::to_string(part).unwrap());
    }
    for listing in [app.admin.list_keys(None).await.unwrap(), a.list_keys(None).await.unwrap()] {
        let text = serde_json::to_string(&listing).unwrap();
        assert!(!text.contains("\"key\""), "a listing has no secret field: {text}");
        published.push_str(&text);
    }
    for created in [&a_admin, &a_reader, &b_admin, &ops] {
        assert!(created.key.starts_with("tk_") && created.key.len() > 40);
        assert!(!published.contains(&created.key), "the secret of {} leaked", created.info.name);
        assert!(!published.contains(&created.key[..20]), "a long part of the secret of {} leaked", created.info.name);
        assert!(created.key.starts_with(&created.info.prefix));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_cursor_taken_from_another_organisations_listing_pages_only_the_readers_own_events() {
    let t = tenants().await;
    let theirs = t.b.list_events(&[("limit", "1"), ("order", "asc")]).await.unwrap();
    let cursor = theirs.next_cursor.expect("B has more than one event");
    // A cursor is a position in time, not a key to another log: A gets its own events after it.
    let page = t.a.list_all_events(&[("cursor", &cursor), ("order", "asc")]).await.unwrap();
    assert!(page.iter().all(|e| e.organization_id.as_str() == A), "{page:?}");
    assert!(page.iter().all(|e| !t.b_events.contains(&e.id)));
    // Naming B along with it is still refused.
    let named = t.a.list_events(&[("cursor", &cursor), ("order", "asc"), ("organization_id", B)]).await;
    assert_eq!(answer(named.unwrap_err()), forbidden(Some("organization_id")));
    t.app.stop().await;
}
