//! Who reads what: every role (through a real session from a portal link) and every kind of key, on
//! every endpoint that reads an organisation's log.
//!
//! Owners and admins read the whole timeline; project admins read their projects' events, their
//! inclusion proofs and the checkpoint those proofs lead to, and a selection bundle of them — but not a
//! seq range or a consistency proof, which span every project; members and viewers read nothing. Keys
//! with `events:read` (or `admin`) read everything of their organisation; a write-only key reads nothing.

use serde_json::{Value, json};
use trailkeep_client::{Client, Method};

use crate::helpers::{TestApp, spawn_app};
use crate::sessions::{Session, link, org_admin};

const ORG: &str = "acme";

/// Whoever is calling: a key, or a session.
enum Caller {
    Key(Client),
    Session(Session),
}

impl Caller {
    async fn get(&self, path: &str) -> (u16, String) {
        match self {
            Caller::Key(client) => {
                let r = client.raw(Method::GET, path, None, &[]).await.unwrap();
                (r.status, String::from_utf8_lossy(&r.body).into_owned())
            }
            Caller::Session(session) => {
                let (status, body) = session.get(path).await;
                (status, body.as_str().map(str::to_owned).unwrap_or_else(|| body.to_string()))
            }
        }
    }
}

/// Polls until the organisation's newest checkpoint covers its whole log as it stands.
async fn wait_sealed(admin: &Client) {
    let size = admin.list_all_events(&[("organization_id", ORG)]).await.unwrap().len();
    for _ in 0..400 {
        let r = admin.raw(Method::GET, &format!("/v1/checkpoint?organization_id={ORG}"), None, &[]).await.unwrap();
        if r.status == 200 && r.json().unwrap()["size"] == size {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the log of {size} events was not sealed");
}

struct World {
    app: TestApp,
    callers: Vec<(&'static str, Caller)>,
    p1_event: String,
    p2_event: String,
}

async fn world() -> World {
    let app = spawn_app().await;
    let events = [
        json!({"organization_id": ORG, "project_id": "p1", "action": "doc.created"}),
        json!({"organization_id": ORG, "project_id": "p2", "action": "doc.created"}),
        json!({"organization_id": ORG, "action": "billing.updated"}),
        json!({"organization_id": ORG, "project_id": "p1", "action": "doc.shared"}),
        json!({"organization_id": "globex", "project_id": "p1", "action": "doc.created"}),
    ];
    let sent = app.admin.send_events(&events).await.unwrap();
    let (p1_event, p2_event) = (sent.acks[0].id.to_string(), sent.acks[1].id.to_string());

    let mut callers = Vec::new();
    for role in ["owner", "admin", "member", "viewer"] {
        let url = link(&app.admin, ORG, &format!("{role}@example.com"), role, &[]).await;
        callers.push((role, Caller::Session(Session::from_link(&app.base_url, &url).await)));
    }
    let url = link(&app.admin, ORG, "pa@example.com", "project_admin", &["p1"]).await;
    callers.push(("project_admin of p1", Caller::Session(Session::from_link(&app.base_url, &url).await)));
    callers.push(("platform admin key", Caller::Key(app.admin.clone())));
    callers.push(("org admin key", Caller::Key(org_admin(&app, ORG).await.1)));
    callers.push(("org events:read key", Caller::Key(app.org_client(ORG, &["events:read"]).await)));
    callers.push(("org events:write key", Caller::Key(app.org_client(ORG, &["events:write"]).await)));
    wait_sealed(&app.admin).await;
    World { app, callers, p1_event, p2_event }
}

fn events_of(body: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(body).unwrap()["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn each_role_and_key_reads_exactly_what_its_role_allows_on_every_read_endpoint() {
    let w = world().await;
    let endpoints = [
        "/v1/events".to_owned(),
        format!("/v1/events/{}", w.p1_event),
        format!("/v1/events/{}/proof", w.p1_event),
        "/v1/checkpoint".to_owned(),
        "/v1/bundle".to_owned(),
        "/v1/proofs/consistency?from=1".to_owned(),
    ];
    let all = [200; 6];
    let none = [403; 6];
    let expected: [(&str, [u16; 6]); 9] = [
        ("owner", all),
        ("admin", all),
        ("member", none),
        ("viewer", none),
        ("project_admin of p1", [200, 200, 200, 200, 403, 403]),
        ("platform admin key", all),
        ("org admin key", all),
        ("org events:read key", all),
        ("org events:write key", none),
    ];
    let mut seen = Vec::new();
    for ((name, caller), (expected_name, _)) in w.callers.iter().zip(&expected) {
        assert_eq!(name, expected_name);
        let mut statuses = [0u16; 6];
        for (i, endpoint) in endpoints.iter().enumerate() {
            // Platform keys name the organisation; everyone else reads their own.
            let path = match name.starts_with("platform") {
                true if endpoint.contains('?') => format!("{endpoint}&organization_id={ORG}"),
                true => format!("{endpoint}?organization_id={ORG}"),
                false => endpoint.clone(),
            };
            let (status, body) = caller.get(&path).await;
            statuses[i] = status;
            if status == 403 {
                assert!(body.contains("\"forbidden\""), "{name} {path}: {body}");
            }
        }
        seen.push((*name, statuses));
    }
    assert_eq!(seen, expected, "columns: {endpoints:?}");
    w.app.stop().await;
}

#[tokio::test]
async fn a_project_admin_sees_only_their_projects_events_proofs_and_selections() {
    let w = world().await;
    let (_, pa) = w.callers.iter().find(|(n, _)| n.starts_with("project_admin")).unwrap();
    let (_, owner) = w.callers.iter().find(|(n, _)| *n == "owner").unwrap();

    let (status, body) = pa.get("/v1/events?limit=1000").await;
    assert_eq!(status, 200);
    let mine = events_of(&body);
    assert_eq!(mine.len(), 2, "the two p1 events and nothing else: {body}");
    assert!(mine.iter().all(|e| e["project_id"] == "p1" && e["organization_id"] == ORG));
    let everything = events_of(&owner.get("/v1/events?limit=1000").await.1);
    assert!(everything.len() > mine.len() + 2, "the owner sees p2's, unprojected and audit events too");

    // Another project's event, its proof, and a filter naming it answer as if they did not exist.
    assert_eq!(pa.get(&format!("/v1/events/{}", w.p2_event)).await.0, 404);
    assert_eq!(pa.get(&format!("/v1/events/{}/proof", w.p2_event)).await.0, 404);
    assert!(events_of(&pa.get("/v1/events?project_id=p2").await.1).is_empty());
    assert!(events_of(&pa.get("/v1/events?q=project:p2").await.1).is_empty());
    assert_eq!(pa.get("/v1/events?organization_id=globex").await.0, 403, "globex also has a p1");

    let (status, proof) = pa.get(&format!("/v1/events/{}/proof", w.p1_event)).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&proof).unwrap()["status"], "verified");
    let (status, with_proof) = pa.get(&format!("/v1/events/{}?proof=true", w.p1_event)).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&with_proof).unwrap()["integrity"]["status"], "verified");

    // A selection bundle holds p1's events only, whatever the filter asks for.
    for filter in ["action=doc.*", "project_id=p1", "project_id=p2"] {
        let (status, bundle) = pa.get(&format!("/v1/bundle?{filter}")).await;
        assert_eq!(status, 200, "{filter}: {bundle}");
        let entries: Vec<Value> = bundle
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l.get("leaf_hash").is_some())
            .collect();
        let expected = if filter == "project_id=p2" { 0 } else { 2 };
        assert_eq!(entries.len(), expected, "{filter}: {bundle}");
        assert!(!bundle.contains(&w.p2_event), "{filter}");
    }
    for path in ["/v1/bundle?from_seq=1&to_seq=2", "/v1/bundle?project_id=p1&since_size=1"] {
        assert_eq!(pa.get(path).await.0, 403, "{path}");
    }
    w.app.stop().await;
}

#[tokio::test]
async fn a_cursor_from_a_wider_reader_pages_only_what_the_project_admin_may_see() {
    let w = world().await;
    let (_, pa) = w.callers.iter().find(|(n, _)| n.starts_with("project_admin")).unwrap();
    let (_, owner) = w.callers.iter().find(|(n, _)| *n == "owner").unwrap();
    let page: Value = serde_json::from_str(&owner.get("/v1/events?limit=1&order=asc").await.1).unwrap();
    let cursor = page["next_cursor"].as_str().unwrap();
    let (status, body) = pa.get(&format!("/v1/events?limit=1000&order=asc&cursor={cursor}")).await;
    assert_eq!(status, 200);
    let rest = events_of(&body);
    assert!(!rest.is_empty() && rest.iter().all(|e| e["project_id"] == "p1"), "{body}");
    w.app.stop().await;
}
