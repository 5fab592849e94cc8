//! Export jobs (`POST /v1/exports`, `trailkeep export --job`): a job runs in the background and its
//! file is exactly the filtered events; the signed link downloads it without a key and refuses a
//! tampered or expired link with 403; another organisation's job is a 404; the plan decides; the request
//! is recorded in the log; a job left running by a dead process runs again after a restart.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use trailkeep_client::{Client, Method, RawResponse};
use trailkeep_wire::UpdateOrgRequest;

use crate::helpers::{TestApp, spawn_app};

const ORG: &str = "acme";

async fn set_plan(app: &TestApp, org: &str, plan: &str) {
    let request = UpdateOrgRequest { name: None, plan: Some(plan.into()) };
    let _: Value = app.admin.send_json(Method::PATCH, &format!("/v1/orgs/{org}"), &request).await.unwrap();
}

async fn send_events(app: &TestApp, org: &str, n: usize) {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "organization_id": org,
                "action": if i % 2 == 0 { "doc.created" } else { "billing.updated" },
                "actor": {"type": "user", "id": format!("u{i}")},
                "metadata": {"n": i},
            })
        })
        .collect();
    for chunk in events.chunks(500) {
        app.admin.send_events(chunk).await.unwrap();
    }
}

async fn post_job(client: &Client, body: Value) -> RawResponse {
    let bytes = serde_json::to_vec(&body).unwrap();
    client.raw(Method::POST, "/v1/exports", Some(bytes), &[("content-type", "application/json")]).await.unwrap()
}

fn error_of(r: &RawResponse) -> (String, Option<String>) {
    let body = r.json().unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or_default().to_owned();
    (code, body["error"]["field"].as_str().map(str::to_owned))
}

/// Polls the job until it finished; panics after a minute.
async fn finished(client: &Client, id: &str) -> Value {
    for _ in 0..600 {
        let job: Value = client.get_json(&format!("/v1/exports/{id}")).await.unwrap();
        if job["status"] == "succeeded" || job["status"] == "failed" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the export job {id} did not finish within a minute");
}

/// The path and query of a download link.
fn link_path(url: &str) -> String {
    url[url.find("/v1/exports/").expect("a download path")..].to_owned()
}

async fn anonymous_get(app: &TestApp, path: &str) -> RawResponse {
    Client::new(&app.base_url, None).unwrap().raw(Method::GET, path, None, &[]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_job_writes_exactly_the_filtered_events_and_its_signed_link_downloads_them() {
    let app = spawn_app().await;
    send_events(&app, ORG, 2500).await;
    set_plan(&app, ORG, "enterprise").await;
    let reader = app.org_client(ORG, &["events:read"]).await;

    let r = post_job(&reader, json!({"format": "ndjson", "filters": {"action": "doc.*"}})).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let job = r.json().unwrap();
    assert!(job["id"].as_str().unwrap().starts_with("exp_"));
    assert_eq!(job["status"], "queued");
    assert_eq!(job["progress"]["events_written"], 0);
    assert!(job.get("download_url").is_none());
    let id = job["id"].as_str().unwrap().to_owned();

    let job = finished(&reader, &id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["progress"]["events_written"], 1250);
    assert!(job["finished_at"].is_string());
    let url = job["download_url"].as_str().expect("a succeeded job has a link");
    assert!(url.starts_with(&app.base_url), "{url}");

    // The link needs no key; the file holds the filtered events, oldest first, as the events API has them.
    let r = anonymous_get(&app, &link_path(url)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<Value> =
        String::from_utf8(r.body.clone()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut want: Vec<Value> = app
        .admin
        .list_all_events(&[("organization_id", ORG), ("action", "doc.*"), ("limit", "1000")])
        .await
        .unwrap()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    want.reverse();
    assert_eq!(lines.len(), 1250);
    assert_eq!(lines, want);

    // Each read of the job issues a fresh link; a tampered one, or one past its expiry, is refused.
    let again: Value = reader.get_json(&format!("/v1/exports/{id}")).await.unwrap();
    assert!(again["download_url"].is_string());
    let tampered = link_path(url).replace("signature=", "signature=00");
    let r = anonymous_get(&app, &tampered).await;
    assert_eq!((r.status, error_of(&r).0.as_str()), (403, "invalid_download_link"));
    let other_job = link_path(url).replace(&id, "exp_0000");
    let r = anonymous_get(&app, &other_job).await;
    assert_eq!(r.status, 403);
    let key_hex = std::fs::read_to_string(app.data_dir.join("export-link.key")).unwrap();
    let key = hex_decode(key_hex.trim());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(app.data_dir.join("export-link.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let expired = 1_000_000i64;
    let signature = trailkeep_server::export_jobs::hmac_sha256(&key, format!("{ORG}\n{id}\n{expired}").as_bytes());
    let path =
        format!("/v1/exports/{id}/download?organization_id={ORG}&expires={expired}&signature={}", hex(&signature));
    let r = anonymous_get(&app, &path).await;
    assert_eq!(r.status, 403);
    let body = r.json().unwrap();
    assert_eq!(body["error"]["code"], "invalid_download_link");
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"), "{body}");
    let r = anonymous_get(&app, &format!("/v1/exports/{id}/download")).await;
    assert_eq!(r.status, 403);

    // The list shows the job; the request is in the log.
    let list: Value = reader.get_json("/v1/exports").await.unwrap();
    assert_eq!(list["data"][0]["id"], id.as_str());
    let requested =
        app.admin.list_all_events(&[("organization_id", ORG), ("action", "audit_log.export_requested")]).await.unwrap();
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0].metadata["job_id"], id.as_str());
    app.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn another_organisations_export_job_is_not_found() {
    let app = spawn_app().await;
    send_events(&app, "globex", 10).await;
    send_events(&app, ORG, 10).await;
    set_plan(&app, "globex", "enterprise").await;
    let globex = app.org_client("globex", &["events:read"]).await;
    let acme = app.org_client(ORG, &["events:read"]).await;
    let r = post_job(&globex, json!({"format": "json"})).await;
    assert_eq!(r.status, 202);
    let id = r.json().unwrap()["id"].as_str().unwrap().to_owned();
    let job = finished(&globex, &id).await;
    assert_eq!(job["status"], "succeeded");

    let r = acme.raw(Method::GET, &format!("/v1/exports/{id}"), None, &[]).await.unwrap();
    assert_eq!((r.status, error_of(&r).0.as_str()), (404, "not_found"));
    let r = acme.raw(Method::GET, &format!("/v1/exports/{id}?organization_id=globex"), None, &[]).await.unwrap();
    assert_eq!(r.status, 403);
    let list: Value = acme.get_json("/v1/exports").await.unwrap();
    assert_eq!(list["data"], json!([]));
    // A link signed for globex's job does not open it as acme's.
    let url = job["download_url"].as_str().unwrap();
    let r = anonymous_get(&app, &link_path(url).replace("organization_id=globex", "organization_id=acme")).await;
    assert_eq!(r.status, 403);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn export_jobs_follow_the_plan_and_bad_requests_are_refused_naming_the_field() {
    let app = spawn_app().await;
    send_events(&app, ORG, 5).await;
    let reader = app.org_client(ORG, &["events:read"]).await;

    // The free plan exports nothing; pro only CSV.
    let r = post_job(&reader, json!({"format": "ndjson"})).await;
    assert_eq!(error_of(&r), ("export_not_allowed".into(), Some("format".into())));
    assert_eq!(r.status, 403);
    set_plan(&app, ORG, "pro").await;
    assert_eq!(post_job(&reader, json!({"format": "parquet"})).await.status, 403);
    assert_eq!(post_job(&reader, json!({"format": "csv"})).await.status, 202);

    let cases = [
        (json!({}), "format"),
        (json!({"format": "xml"}), "format"),
        (json!({"format": "csv", "filters": {"bogus": "1"}}), "filters.bogus"),
        (json!({"format": "csv", "filters": {"format": "json"}}), "filters.format"),
        (json!({"format": "csv", "q": "action:("}), "q"),
        (json!({"format": "csv", "order": "sideways"}), "order"),
    ];
    for (body, field) in cases {
        let r = post_job(&reader, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(error_of(&r).1.as_deref(), Some(field), "{body}");
    }
    let r = post_job(&reader, json!({"format": "csv", "surprise": 1})).await;
    assert!((400..500).contains(&r.status));
    assert!(String::from_utf8_lossy(&r.body).contains("surprise"));
    let r = post_job(&reader, json!({"format": "csv", "organization_id": "globex"})).await;
    assert_eq!(r.status, 403);
    let r = reader.raw(Method::GET, "/v1/exports/exp_nothing", None, &[]).await.unwrap();
    assert_eq!(r.status, 404);
    // Only what the plan allows was queued, and each queued job is in the log once.
    let requested =
        app.admin.list_all_events(&[("organization_id", ORG), ("action", "audit_log.export_requested")]).await.unwrap();
    assert_eq!(requested.len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_left_running_by_a_process_that_died_runs_again_after_a_restart() {
    let app = spawn_app().await;
    send_events(&app, ORG, 50).await;
    set_plan(&app, ORG, "enterprise").await;
    let r = post_job(&app.admin, json!({"organization_id": ORG, "format": "ndjson"})).await;
    let id = r.json().unwrap()["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/exports/{id}?organization_id={ORG}");
    for _ in 0..600 {
        let job: Value = app.admin.get_json(&path).await.unwrap();
        if job["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // As a process killed half-way leaves it: running, leased to a process that is gone, no file.
    let sql = format!(
        "UPDATE export_jobs SET status = 'running', finished_at = NULL, file = NULL, events_written = 3, \
         lease_owner = 'node_gone', lease_until = 0 WHERE id = '{id}'"
    );
    let pg = format!("UPDATE trailkeep.{}", &sql["UPDATE ".len()..]);
    let app = app.tamper(&sql, &pg).await;
    let mut job = Value::Null;
    for _ in 0..600 {
        job = app.admin.get_json(&path).await.unwrap();
        if job["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(job["status"], "succeeded", "{job}");
    let r = app.admin.raw(Method::GET, &link_path(job["download_url"].as_str().unwrap()), None, &[]).await.unwrap();
    assert_eq!(r.status, 200);
    let lines = String::from_utf8(r.body).unwrap().lines().count() as u64;
    // The 50 events, the plan's change and the export request itself, written from the start again.
    assert!(lines >= 52, "{lines}");
    assert_eq!(job["progress"]["events_written"].as_u64(), Some(lines));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_runs_an_export_job_shows_its_progress_and_downloads_the_file() {
    let app = spawn_app().await;
    send_events(&app, ORG, 40).await;
    set_plan(&app, ORG, "enterprise").await;
    let dir = tempfile::tempdir().unwrap();
    let key = std::fs::read_to_string(app.data_dir.join("admin.key")).unwrap().trim().to_owned();
    let out = dir.path().join("docs.json");
    let run = |args: Vec<String>| {
        let (url, key) = (app.base_url.clone(), key.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_trailkeep"))
                .args(&args)
                .env("TRAILKEEP_URL", url)
                .env("TRAILKEEP_API_KEY", key)
                .output()
                .expect("run trailkeep")
        })
    };
    let args = ["export", "--job", "--format", "json", "--org", ORG, "--filter", "action=doc.*", "--asc", "-o"];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.push(out.to_str().unwrap().to_owned());
    let output = run(args).await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{text}");
    assert!(text.contains("(20 events,"), "{text}");
    let events: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(events.len(), 20);
    assert!(events.iter().all(|e| e["action"] == "doc.created"));
    assert!(events.windows(2).all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()), "oldest first");

    // A refusal says what to do and exits non-zero, leaving no file.
    let refused = dir.path().join("refused.json");
    let args =
        ["export", "--job", "--format", "json", "--org", ORG, "--filter", "bogus=1", "-o", refused.to_str().unwrap()];
    let output = run(args.iter().map(|s| s.to_string()).collect()).await.unwrap();
    let text = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success());
    assert!(text.contains("fix --filter filters.bogus") || text.contains("--filter bogus"), "{text}");
    assert!(!refused.exists());
    app.stop().await;
}
