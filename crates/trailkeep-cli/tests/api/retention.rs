//! Retention: expired events deleted by plan and by the organisation's own rules, legal holds that
//! pause it, every step recorded, and proofs that stay valid across what was pruned.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use trailkeep_client::{Client, Method};
use trailkeep_core::checkpoint::{Verifier, open_note};
use trailkeep_core::merkle::{Hash, verify_inclusion};

use crate::helpers::{TestApp, spawn_app};

const DAY_MS: i64 = 86_400_000;

async fn call(client: &Client, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| serde_json::to_vec(&b).unwrap());
    let r = client.raw(method, path, body, &[("content-type", "application/json")]).await.unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

async fn ok(client: &Client, method: Method, path: &str, body: Option<Value>) -> Value {
    let (status, answer) = call(client, method.clone(), path, body).await;
    assert!((200..300).contains(&status), "{method} {path}: {status} {answer}");
    answer
}

fn iso(ms: i64) -> String {
    trailkeep_core::time::format_millis(ms)
}

fn now() -> i64 {
    trailkeep_server::now_ms()
}

/// An event of `org` that occurred `days_ago` days ago.
fn old_event(org: &str, action: &str, category: &str, actor: &str, days_ago: i64) -> Value {
    json!({
        "organization_id": org,
        "action": action,
        "category": category,
        "occurred_at": iso(now() - days_ago * DAY_MS),
        "actor": {"type": "user", "id": actor},
    })
}

async fn sealed(app: &TestApp, org: &str) -> Value {
    let size = app.admin.list_all_events(&[("organization_id", org)]).await.unwrap().len() as u64;
    for _ in 0..400 {
        let (status, c) = call(&app.admin, Method::GET, &format!("/v1/checkpoint?organization_id={org}"), None).await;
        if status == 200 && c["size"].as_u64().is_some_and(|s| s >= size) {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{org} was not sealed");
}

async fn actions(app: &TestApp, org: &str) -> Vec<String> {
    let mut events = app.admin.list_all_events(&[("organization_id", org)]).await.unwrap();
    events.sort_by_key(|e| e.seq);
    events.iter().map(|e| e.action.to_string()).collect()
}

async fn sweep(app: &TestApp, org: &str) -> Value {
    ok(&app.admin, Method::POST, &format!("/v1/orgs/{org}/retention/sweep"), None).await
}

fn hash(v: &Value) -> Hash {
    STANDARD.decode(v.as_str().unwrap()).unwrap().try_into().unwrap()
}

#[tokio::test]
async fn expired_events_are_deleted_by_plan_recorded_and_their_proofs_stay_valid() {
    let app = spawn_app().await;
    ok(&app.admin, Method::POST, "/v1/orgs", Some(json!({"id": "acme", "plan": "free"}))).await;
    let events = vec![
        old_event("acme", "user.signed_in", "auth", "u1", 10),
        old_event("acme", "user.signed_out", "auth", "u1", 9),
        old_event("acme", "invoice.paid", "billing", "u2", 3),
    ];
    let sent = app.admin.send_events(&events).await.unwrap();
    sealed(&app, "acme").await;

    let summary = sweep(&app, "acme").await;
    assert_eq!((summary["deleted"].as_u64(), summary["held"].as_u64()), (Some(2), Some(0)), "{summary}");
    // The free plan keeps 7 days: the two older events are gone, the rest and the records stay.
    assert_eq!(actions(&app, "acme").await, vec!["organization.created", "invoice.paid", "retention.deleted"]);
    let deleted = app.admin.list_events(&[("organization_id", "acme"), ("action", "retention.deleted")]).await.unwrap();
    let record = serde_json::to_value(&deleted.data[0]).unwrap();
    assert_eq!(record["metadata"]["count"], 2);
    assert_eq!(record["metadata"]["seq_ranges"], json!([[2, 3]]));
    assert_eq!(record["actor"]["type"], "system");
    assert!(record["metadata"]["policy"].as_str().unwrap().contains("free"), "{record}");
    assert!(record["metadata"]["cutoff"].is_string());
    // Nothing more is due.
    assert_eq!(sweep(&app, "acme").await["deleted"], 0);

    // A pruned event's proof still verifies against the signed root, and says it was pruned.
    let record_seq = record["seq"].as_u64().unwrap();
    let mut checkpoint = sealed(&app, "acme").await;
    for _ in 0..400 {
        if checkpoint["size"].as_u64().unwrap() >= record_seq {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        checkpoint = call(&app.admin, Method::GET, "/v1/checkpoint?organization_id=acme", None).await.1;
    }
    let key = Verifier::parse(app.admin.checkpoint_key().await.unwrap().trim()).unwrap();
    let (signed, _) = open_note(checkpoint["note"].as_str().unwrap(), std::slice::from_ref(&key)).unwrap();
    let id = sent.acks[0].id;
    let (status, proof) =
        call(&app.admin, Method::GET, &format!("/v1/events/{id}/proof?organization_id=acme"), None).await;
    assert_eq!((status, proof["status"].as_str()), (200, Some("pruned")), "{proof}");
    assert_eq!(proof["pruned_by"], record["seq"]);
    let path: Vec<Hash> = proof["proof"].as_array().unwrap().iter().map(hash).collect();
    let size = proof["tree_size"].as_u64().unwrap();
    assert_eq!(size, signed.size);
    verify_inclusion(&hash(&proof["leaf_hash"]), proof["leaf_index"].as_u64().unwrap(), size, &path, &signed.root)
        .expect("the receipt outlives the payload");

    // A self-proving export across the pruned range verifies: the pruned entries are vouched for by the
    // retention record in the same bundle.
    let mut bundle = Vec::new();
    app.admin
        .download("/v1/bundle?organization_id=acme", |chunk| {
            bundle.extend_from_slice(chunk);
            Ok(())
        })
        .await
        .unwrap();
    let text = String::from_utf8(bundle).unwrap();
    let mut verifier = trailkeep_core::bundle::BundleVerifier::new(vec![key], None);
    for line in text.lines() {
        verifier.line(line).unwrap();
    }
    let report = verifier.finish().unwrap();
    assert!(report.is_valid(), "{:?}", report.problems);
    assert_eq!((report.pruned, report.pruned_unconfirmed), (2, 0));
    assert!(text.contains("\"pruned_by\""));
    app.stop().await;
}

#[tokio::test]
async fn category_rules_and_legal_holds_decide_what_is_kept_and_every_change_is_recorded() {
    let app = spawn_app().await;
    ok(&app.admin, Method::POST, "/v1/orgs", Some(json!({"id": "acme", "plan": "enterprise"}))).await;
    let org_admin = app.org_client("acme", &["admin"]).await;
    let (status, _) = call(&org_admin, Method::PUT, "/v1/orgs/acme/retention", Some(json!({"days": 30}))).await;
    assert_eq!(status, 403, "retention is the platform's to set");
    for (body, field) in [
        (json!({"days": 0}), "days"),
        (json!({"categories": [{"category": "a*b", "days": 3}]}), "categories[0].category"),
        (json!({"categories": [{"category": "ai.*", "days": 0}]}), "categories[0].days"),
    ] {
        let (status, answer) = call(&app.admin, Method::PUT, "/v1/orgs/acme/retention", Some(body)).await;
        assert_eq!((status, answer["error"]["field"].as_str()), (422, Some(field)), "{answer}");
    }
    let set = ok(
        &app.admin,
        Method::PUT,
        "/v1/orgs/acme/retention",
        Some(json!({"days": 365, "categories": [{"category": "ai.*", "days": 30}]})),
    )
    .await;
    assert_eq!(set["retention"]["categories"][0]["category"], "ai.*");
    assert_eq!(ok(&org_admin, Method::GET, "/v1/orgs/acme/retention", None).await["plan_days"], 365);

    app.admin
        .send_events(&[
            old_event("acme", "ai.completion", "ai", "u1", 40),
            old_event("acme", "ai.completion", "ai", "held-user", 40),
            old_event("acme", "ai.completion", "ai", "u1", 20),
            old_event("acme", "user.signed_in", "auth", "u1", 200),
        ])
        .await
        .unwrap();
    sealed(&app, "acme").await;

    // An organisation-wide hold pauses everything.
    let whole = ok(&app.admin, Method::POST, "/v1/orgs/acme/legal-holds", Some(json!({"reason": "audit 2026"}))).await;
    let actor_hold = ok(
        &app.admin,
        Method::POST,
        "/v1/orgs/acme/legal-holds",
        Some(json!({"actor": "held-user", "reason": "case 42"})),
    )
    .await;
    let (status, _) = call(&org_admin, Method::POST, "/v1/orgs/acme/legal-holds", Some(json!({"reason": "x"}))).await;
    assert_eq!(status, 403);
    let (status, answer) =
        call(&app.admin, Method::POST, "/v1/orgs/acme/legal-holds", Some(json!({"reason": "x", "from": "soon"}))).await;
    assert_eq!((status, answer["error"]["field"].as_str()), (422, Some("from")));
    assert_eq!(sweep(&app, "acme").await["deleted"], 0);

    // Lifted, only the actor's hold remains: the 40-day-old AI request of u1 goes; the held user's, the
    // 20-day-old one and the 200-day-old sign-in (365 days) stay.
    ok(&app.admin, Method::DELETE, &format!("/v1/orgs/acme/legal-holds/{}", whole["id"].as_str().unwrap()), None).await;
    let summary = sweep(&app, "acme").await;
    assert_eq!((summary["deleted"].as_u64(), summary["held"].as_u64()), (Some(1), Some(1)), "{summary}");
    let remaining =
        app.admin.list_all_events(&[("organization_id", "acme"), ("action", "ai.completion")]).await.unwrap();
    let actors: Vec<String> = remaining.iter().filter_map(|e| e.actor.as_ref().and_then(|a| a.id.clone())).collect();
    assert_eq!(remaining.len(), 2, "{actors:?}");
    assert!(actors.contains(&"held-user".to_owned()));

    let holds = ok(&org_admin, Method::GET, "/v1/orgs/acme/legal-holds", None).await;
    let active: Vec<bool> = holds["data"].as_array().unwrap().iter().map(|h| h["active"].as_bool().unwrap()).collect();
    assert_eq!(active, vec![false, true]);
    assert_eq!(holds["data"][1]["id"], actor_hold["id"]);
    let (status, _) =
        call(&app.admin, Method::DELETE, &format!("/v1/orgs/acme/legal-holds/{}", whole["id"].as_str().unwrap()), None)
            .await;
    assert_eq!(status, 404, "a hold is lifted once");

    let recorded = actions(&app, "acme").await;
    for action in ["retention.changed", "legal_hold.placed", "legal_hold.lifted", "retention.deleted"] {
        assert!(recorded.iter().any(|a| a == action), "{action} in {recorded:?}");
    }
    app.stop().await;
}
