//! The `trailkeep` command against a real server: send, search and keys, and their failures.

use std::process::{Command, Output};

use crate::helpers::{TestApp, spawn_app};

fn admin_secret(app: &TestApp) -> String {
    std::fs::read_to_string(app.data_dir.join("admin.key")).unwrap().trim().to_owned()
}

/// Runs the binary on a blocking thread (so the in-process server keeps serving) with `args`.
async fn trailkeep(app: &TestApp, key: &str, args: &[&str]) -> Output {
    let url = app.base_url.clone();
    let key = key.to_owned();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_trailkeep"))
            .args(&args)
            .env("TRAILKEEP_URL", url)
            .env("TRAILKEEP_API_KEY", key)
            .output()
            .expect("run trailkeep")
    })
    .await
    .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn send_reads_ndjson_and_search_finds_the_events() {
    let app = spawn_app().await;
    let key = admin_secret(&app);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let lines: Vec<String> = (0..2500)
        .map(|i| {
            let action = if i % 5 == 0 { "api_key.rotated" } else { "team.member.added" };
            format!(
                r#"{{"action":"{action}","actor":{{"type":"user","email":"u{}@example.com"}},"metadata":{{"n":{i}}}}}"#,
                i % 7
            )
        })
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();

    let sent = trailkeep(&app, &key, &["send", file.to_str().unwrap(), "--org", "acme", "--batch", "1000"]).await;
    assert!(sent.status.success(), "{}", stderr(&sent));
    assert!(stdout(&sent).contains("sent 2500 events"), "{}", stdout(&sent));

    let found = trailkeep(
        &app,
        &key,
        &["search", "--org", "acme", "--all", "--limit", "200", "--format", "ndjson", "action:api_key.*"],
    )
    .await;
    assert!(found.status.success(), "{}", stderr(&found));
    let events: Vec<serde_json::Value> = stdout(&found).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 500);
    assert!(events.iter().all(|e| e["action"] == "api_key.rotated"));

    let table = trailkeep(&app, &key, &["search", "--org", "acme", "--limit", "3", "actor:u1@example.com"]).await;
    assert!(table.status.success());
    let text = stdout(&table);
    assert!(text.starts_with("OCCURRED"), "{text}");
    assert!(text.contains("(3 events)"), "{text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn search_strips_terminal_control_characters_from_event_content() {
    let app = spawn_app().await;
    let key = admin_secret(&app);
    let hostile = serde_json::json!({"organization_id": "acme", "action": "x.y", "description": "a\u{1b}]0;pwned\u{7}b\u{202e}c"});
    app.admin.send_events(&[hostile]).await.unwrap();
    let out = trailkeep(&app, &key, &["search", "--org", "acme"]).await;
    let text = stdout(&out);
    assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}') && !text.contains('\u{7}'), "{text:?}");
    assert!(text.contains("a\u{FFFD}]0;pwned\u{FFFD}b\u{FFFD}c"), "{text:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_create_list_and_revoke_through_the_command() {
    let app = spawn_app().await;
    let key = admin_secret(&app);
    let created =
        trailkeep(&app, &key, &["keys", "create", "--name", "ci", "--org", "acme", "--permissions", "events:write"])
            .await;
    assert!(created.status.success(), "{}", stderr(&created));
    let text = stdout(&created);
    let secret = text.lines().last().unwrap().trim().to_owned();
    assert!(secret.starts_with("tk_"), "{text}");
    let id = text.split_whitespace().next().unwrap().to_owned();

    let listed = trailkeep(&app, &key, &["keys", "list", "--org", "acme", "--json"]).await;
    let keys: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], id.as_str());
    assert!(!stdout(&listed).contains(&secret), "a listing never shows the secret");

    let revoked = trailkeep(&app, &key, &["keys", "revoke", &id]).await;
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let refused = trailkeep(&app, &secret, &["search", "--org", "acme"]).await;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("revoked"), "{}", stderr(&refused));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_fails_with_a_clear_message_and_a_nonzero_exit() {
    let app = spawn_app().await;
    let key = admin_secret(&app);
    let missing = trailkeep(&app, &key, &["send", "/nonexistent/events.json"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("cannot read /nonexistent/events.json"), "{}", stderr(&missing));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(
        &file,
        r#"[{"organization_id":"acme","action":"ok.one"},{"organization_id":"acme","action":"Bad Action"}]"#,
    )
    .unwrap();
    let bad = trailkeep(&app, &key, &["send", file.to_str().unwrap()]).await;
    assert_eq!(bad.status.code(), Some(1));
    let err = stderr(&bad);
    assert!(err.contains("invalid_action") && err.contains("events[1].action"), "{err}");
    assert!(app.admin.list_events(&[("organization_id", "acme")]).await.unwrap().data.is_empty());

    let query = trailkeep(&app, &key, &["search", "--org", "acme", "acton:x"]).await;
    assert_eq!(query.status.code(), Some(1));
    assert!(stderr(&query).contains("did you mean"), "{}", stderr(&query));

    let unreachable = Command::new(env!("CARGO_BIN_EXE_trailkeep"))
        .args(["search", "--org", "acme", "--url", "http://127.0.0.1:9", "--key", "tk_x"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(stderr(&unreachable).contains("cannot reach http://127.0.0.1:9"), "{}", stderr(&unreachable));
    app.stop().await;
}
