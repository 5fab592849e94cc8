//! The verifiable log: signed checkpoints that follow ingest, inclusion proofs for every event,
//! consistency proofs between checkpoints, and a stored event altered behind the service's back.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use trailkeep_client::{Client, Method};
use trailkeep_core::checkpoint::{Verifier, open_note};
use trailkeep_core::merkle::{Hash, verify_consistency, verify_inclusion};

use crate::helpers::{TestApp, event, spawn_app};

fn hash(v: &Value) -> Hash {
    STANDARD.decode(v.as_str().expect("a base64 hash")).unwrap().try_into().expect("32 bytes")
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array().unwrap().iter().map(hash).collect()
}

async fn get(client: &Client, path: &str) -> (u16, Value) {
    let r = client.raw(Method::GET, path, None, &[]).await.unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

/// Polls until the organisation's newest checkpoint covers `size` events (sealing runs off the commit
/// path and signs within a second), or gives up after a generous bound.
async fn checkpoint_of(client: &Client, org: &str, size: u64) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        let (status, body) = get(client, &format!("/v1/checkpoint?organization_id={org}")).await;
        if status == 200 && body["size"] == size {
            return body;
        }
        last = body;
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no checkpoint of {size} events for {org}; last answer {last}");
}

async fn verifier(app: &TestApp) -> Verifier {
    Verifier::parse(app.admin.checkpoint_key().await.unwrap().trim()).unwrap()
}

#[tokio::test]
async fn checkpoints_are_signed_and_every_event_has_an_inclusion_proof() {
    let app = spawn_app().await;
    for chunk in [10, 1, 26] {
        let batch: Vec<_> = (0..chunk).map(|_| event("acme", "team.member.added")).collect();
        app.admin.send_events(&batch).await.unwrap();
    }
    app.admin.send_events(&[event("globex", "x.y")]).await.unwrap();
    let checkpoint = checkpoint_of(&app.admin, "acme", 37).await;
    let (body, signed_by) = open_note(checkpoint["note"].as_str().unwrap(), &[verifier(&app).await]).unwrap();
    assert_eq!(signed_by.len(), 1);
    assert_eq!(body.origin, "trailkeep/acme");
    assert_eq!(body.size, 37);
    assert_eq!(body.root, hash(&checkpoint["root_hash"]));

    let events = app.admin.list_all_events(&[("organization_id", "acme"), ("order", "asc")]).await.unwrap();
    assert_eq!(events.len(), 37);
    for e in &events {
        let (status, proof) = get(&app.admin, &format!("/v1/events/{}/proof?organization_id=acme", e.id)).await;
        assert_eq!(status, 200, "{proof}");
        assert_eq!(proof["event_matches_leaf"], true);
        let leaf = hash(&proof["leaf_hash"]);
        assert_eq!(leaf, trailkeep_core::leaf::event_leaf_hash(e).unwrap(), "the receipt is the event's leaf hash");
        verify_inclusion(&leaf, e.seq - 1, 37, &hashes(&proof["proof"]), &body.root)
            .unwrap_or_else(|err| panic!("seq {}: {err}", e.seq));
    }
    // A proof against an older size verifies against the root the service computes for it.
    let first = &events[0];
    let (_, old) = get(&app.admin, &format!("/v1/events/{}/proof?organization_id=acme&tree_size=5", first.id)).await;
    verify_inclusion(&hash(&old["leaf_hash"]), 0, 5, &hashes(&old["proof"]), &hash(&old["root_hash"])).unwrap();
    assert!(verify_inclusion(&hash(&old["leaf_hash"]), 0, 5, &hashes(&old["proof"]), &body.root).is_err());
    app.stop().await;
}

#[tokio::test]
async fn consistency_proofs_link_successive_checkpoints() {
    let app = spawn_app().await;
    let batch: Vec<_> = (0..13).map(|_| event("acme", "a.b")).collect();
    app.admin.send_events(&batch).await.unwrap();
    let older = checkpoint_of(&app.admin, "acme", 13).await;
    let batch: Vec<_> = (0..30).map(|_| event("acme", "a.c")).collect();
    app.admin.send_events(&batch).await.unwrap();
    let newer = checkpoint_of(&app.admin, "acme", 43).await;
    let (status, proof) = get(&app.admin, "/v1/proofs/consistency?organization_id=acme&from=13&to=43").await;
    assert_eq!(status, 200, "{proof}");
    let (old_root, new_root) = (hash(&older["root_hash"]), hash(&newer["root_hash"]));
    assert_eq!(hash(&proof["from_root_hash"]), old_root);
    verify_consistency(13, 43, &hashes(&proof["proof"]), &old_root, &new_root).unwrap();
    let mut forged = old_root;
    forged[0] ^= 1;
    assert!(verify_consistency(13, 43, &hashes(&proof["proof"]), &forged, &new_root).is_err());
    app.stop().await;
}

#[tokio::test]
async fn proof_requests_outside_the_signed_tree_are_refused_clearly() {
    let app = spawn_app().await;
    let (status, body) = get(&app.admin, "/v1/checkpoint?organization_id=nobody").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let sent = app.admin.send_events(&[event("acme", "a.b"), event("acme", "a.b")]).await.unwrap();
    checkpoint_of(&app.admin, "acme", 2).await;
    let id = sent.acks[1].id;
    for (query, field) in [
        ("tree_size=0", "tree_size"),
        ("tree_size=3", "tree_size"),
        ("tree_size=1", "tree_size"),
        ("tree_size=x", "tree_size"),
    ] {
        let (status, body) = get(&app.admin, &format!("/v1/events/{id}/proof?organization_id=acme&{query}")).await;
        assert_eq!((status, body["error"]["field"].as_str()), (400, Some(field)), "{query}: {body}");
    }
    let (status, body) = get(&app.admin, "/v1/proofs/consistency?organization_id=acme&from=2&to=1").await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("from")), "{body}");
    let other = app.org_client("globex", &["events:read"]).await;
    let (status, _) = get(&other, &format!("/v1/events/{id}/proof")).await;
    assert_eq!(status, 404, "another organisation's event has no proof for this key");
    app.stop().await;
}

/// Starts the service in-process on an existing data directory; returns its base URL and a stop handle.
async fn serve_dir(
    data_dir: &std::path::Path,
) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let config = trailkeep_server::Config {
        data_dir: data_dir.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = trailkeep_server::App::build(&config).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(trailkeep_server::serve(listener, app, async {
        let _ = rx.await;
    }));
    (url, tx, task)
}

#[tokio::test]
async fn an_event_altered_in_the_database_file_no_longer_matches_its_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (url, stop, task) = serve_dir(&data_dir).await;
    let client = Client::new(&url, Some(client_key(&data_dir))).unwrap();
    let batch: Vec<_> =
        (0..5).map(|i| serde_json::json!({"organization_id": "acme", "action": "a.b", "metadata": {"n": i}})).collect();
    let sent = client.send_events(&batch).await.unwrap();
    checkpoint_of(&client, "acme", 5).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();

    // With the service stopped, rewrite one stored event the way someone with file access could.
    let db = rusqlite::Connection::open(data_dir.join("trailkeep.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE events SET payload = replace(payload, '\"n\":2', '\"n\":20') WHERE org_id = 'acme' AND seq = 3",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);

    let (url, stop, task) = serve_dir(&data_dir).await;
    let client = Client::new(&url, Some(client_key(&data_dir))).unwrap();
    for (i, ack) in sent.acks.iter().enumerate() {
        let (status, proof) = get(&client, &format!("/v1/events/{}/proof?organization_id=acme", ack.id)).await;
        assert_eq!(status, 200, "{proof}");
        assert_eq!(proof["event_matches_leaf"], i != 2, "seq {}", ack.seq);
    }
    // After the restart the tree grows on from its stored right edge, consistently with what was signed.
    let five = checkpoint_of(&client, "acme", 5).await;
    let batch: Vec<_> = (0..3).map(|_| event("acme", "a.c")).collect();
    client.send_events(&batch).await.unwrap();
    let eight = checkpoint_of(&client, "acme", 8).await;
    let (_, proof) = get(&client, "/v1/proofs/consistency?organization_id=acme&from=5&to=8").await;
    verify_consistency(5, 8, &hashes(&proof["proof"]), &hash(&five["root_hash"]), &hash(&eight["root_hash"])).unwrap();
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

fn client_key(data_dir: &std::path::Path) -> String {
    std::fs::read_to_string(data_dir.join("admin.key")).unwrap().trim().to_owned()
}

#[tokio::test]
async fn an_event_fetched_with_proof_true_carries_its_inclusion_proof() {
    let app = spawn_app().await;
    let batch: Vec<_> = (0..6).map(|_| event("acme", "a.b")).collect();
    let sent = app.admin.send_events(&batch).await.unwrap();
    let checkpoint = checkpoint_of(&app.admin, "acme", 6).await;
    let id = sent.acks[4].id;
    let (status, body) = get(&app.admin, &format!("/v1/events/{id}?organization_id=acme&proof=true")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["seq"], 5);
    let integrity = &body["integrity"];
    assert_eq!(integrity["event_matches_leaf"], true);
    verify_inclusion(
        &hash(&integrity["leaf_hash"]),
        4,
        6,
        &hashes(&integrity["proof"]),
        &hash(&checkpoint["root_hash"]),
    )
    .unwrap();
    let (_, plain) = get(&app.admin, &format!("/v1/events/{id}?organization_id=acme")).await;
    assert!(plain.get("integrity").is_none());
    let (status, bad) = get(&app.admin, &format!("/v1/events/{id}?organization_id=acme&proof=maybe")).await;
    assert_eq!((status, bad["error"]["field"].as_str()), (400, Some("proof")));
    app.stop().await;
}
