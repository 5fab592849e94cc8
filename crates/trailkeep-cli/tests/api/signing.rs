//! The checkpoint signing key: created once per data directory, kept secret on disk, published as a
//! signed-note verifier key by the API and the CLI; rotated with an overlap in which checkpoints carry
//! both the old and the new key's signature, every key ever used kept listed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::oneshot;
use trailkeep_client::{Client, Method};
use trailkeep_core::checkpoint::{Signer, Verifier, open_note, sign_note};
use trailkeep_server::{App, Config, serve};
use trailkeep_wire::CreateKeyRequest;

use crate::helpers::{event, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread")]
async fn the_checkpoint_key_is_published_and_matches_the_key_on_disk() {
    let app = spawn_app_with(|c| c.deployment = "audit.example.test".into()).await;
    let anonymous = trailkeep_client::Client::new(&app.base_url, None).unwrap();
    let published = anonymous.checkpoint_key().await.unwrap();
    let verifier = Verifier::parse(published.trim()).expect("a signed-note verifier key");
    assert_eq!(verifier.name(), "audit.example.test");

    let path = app.data_dir.join("signing.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // The key on disk signs what the published key verifies.
    let text = std::fs::read_to_string(&path).unwrap();
    let signer = trailkeep_core::checkpoint::Ed25519Signer::parse(text.trim()).unwrap();
    assert_eq!(signer.key_id(), verifier.key_id());
    let note =
        sign_note("audit.example.test/acme\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", &[&signer]).unwrap();
    assert!(trailkeep_core::checkpoint::open_note(&note, &[verifier]).is_ok());
    assert!(!published.contains(text.trim()), "the secret key is never published");

    let url = app.base_url.clone();
    let cli = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_trailkeep")).args(["keys", "public", "--url", &url]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(cli.status.success());
    assert_eq!(String::from_utf8(cli.stdout).unwrap(), published);
    app.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_the_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
    let first = App::build(&config).await.unwrap();
    let key = first.state.signing.active_verifier_key();
    first.state.store.shutdown().await;
    drop(first);
    let renamed = Config { deployment: "renamed.example".into(), ..config };
    let second = App::build(&renamed).await.unwrap();
    assert_eq!(second.state.signing.active_verifier_key(), key, "an existing key keeps its name and secret");
    second.state.store.shutdown().await;
}

/// Whether `note` verifies with the verifier key `key` alone.
fn verifies(note: &str, key: &str) -> bool {
    open_note(note, &[Verifier::parse(key.trim()).expect("a verifier key")]).is_ok()
}

/// Sends one event to `org` and polls (sealing is asynchronous) until a checkpoint covers it; returns the
/// checkpoint's signed note.
async fn seal_one_more(client: &Client, org: &str) -> String {
    let sent = client.send_events(&[event(org, "a.b")]).await.expect("send");
    let size = sent.acks[0].seq;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client.raw(Method::GET, &format!("/v1/checkpoint?organization_id={org}"), None, &[]).await.unwrap();
        let body = r.json().unwrap_or(Value::Null);
        if r.status == 200 && body["size"] == size {
            return body["note"].as_str().expect("a note").to_owned();
        }
        assert!(Instant::now() < deadline, "no checkpoint of {size} events for {org}; last answer {body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn post_rotate(client: &Client, body: &str) -> (u16, Value) {
    let headers = [("content-type", "application/json")];
    let r = client.raw(Method::POST, "/v1/checkpoint-key/rotate", Some(body.into()), &headers).await.unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_rotation_checkpoints_verify_under_both_keys_and_the_rotation_is_recorded() {
    let app = spawn_app().await;
    let old_key = app.admin.checkpoint_key().await.unwrap();
    let before = seal_one_more(&app.admin, "acme").await;

    let rotated = app.admin.rotate_checkpoint_key(Some("1h")).await.unwrap();
    assert_eq!(rotated.previous_verifier_key, old_key.trim());
    assert_ne!(rotated.verifier_key, rotated.previous_verifier_key);
    let new_key = app.admin.checkpoint_key().await.unwrap();
    assert_eq!(new_key.trim(), rotated.verifier_key, "GET /v1/checkpoint-key serves the new key at once");
    let (old, new) = (Verifier::parse(old_key.trim()).unwrap(), Verifier::parse(new_key.trim()).unwrap());
    assert_eq!(old.name(), new.name(), "the key name, and so every origin, stays the same");
    assert_ne!(old.key_id(), new.key_id());

    let during = seal_one_more(&app.admin, "acme").await;
    assert!(verifies(&during, &old_key), "a reader that knows only the old key still verifies:\n{during}");
    assert!(verifies(&during, &new_key), "a reader that knows only the new key verifies:\n{during}");
    let (_, signed_by) = open_note(&during, &[old.clone(), new.clone()]).unwrap();
    assert_eq!(signed_by.len(), 2);
    assert!(verifies(&before, &old_key) && !verifies(&before, &new_key), "older checkpoints keep their signature");

    let keys = app.admin.checkpoint_keys().await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!((keys[0].verifier_key.as_str(), keys[0].active, keys[0].signing), (old_key.trim(), false, true));
    assert_eq!(keys[0].retired_at.as_deref(), Some(rotated.rotated_at.as_str()));
    assert_eq!(keys[0].overlap_until.as_deref(), Some(rotated.overlap_until.as_str()));
    assert_eq!((keys[1].verifier_key.as_str(), keys[1].active, keys[1].signing), (new_key.trim(), true, true));
    assert_eq!(keys[1].key_id, hex(new.key_id()));
    assert_eq!(keys[1].retired_at, None);

    let recorded = app.admin.get_event(&rotated.event_id.to_string(), Some("_platform")).await.unwrap();
    assert_eq!(recorded.action.as_str(), "checkpoint_key.rotated");
    assert_eq!(recorded.metadata["old_verifier_key"], old_key.trim());
    assert_eq!(recorded.metadata["new_verifier_key"], new_key.trim());
    assert_eq!(recorded.metadata["overlap_until"], rotated.overlap_until.as_str());
    assert_eq!(recorded.metadata["overlap_seconds"], 3600);
    let admin_id = app.admin.list_keys(None).await.unwrap().last().unwrap().id.clone();
    assert_eq!(recorded.actor.as_ref().and_then(|a| a.id.as_deref()), Some(admin_id.as_str()));
    assert_eq!(recorded.targets[0].id, hex(new.key_id()));
    assert_eq!(recorded.context.ip, Some("127.0.0.1".parse().unwrap()), "the rotation says where it came from");
    app.stop().await;
}

fn hex(id: [u8; 4]) -> String {
    format!("{:08x}", u32::from_be_bytes(id))
}

#[tokio::test(flavor = "multi_thread")]
async fn once_the_overlap_ends_only_the_new_key_signs_and_old_checkpoints_still_verify() {
    let app = spawn_app().await;
    let old_key = app.admin.checkpoint_key().await.unwrap();
    let before = seal_one_more(&app.admin, "acme").await;
    let rotated = app.admin.rotate_checkpoint_key(Some("1s")).await.unwrap();

    // Poll rather than time the overlap: keep sealing until a checkpoint no longer carries the old key.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let note = seal_one_more(&app.admin, "acme").await;
        if !verifies(&note, &old_key) {
            break note;
        }
        assert!(Instant::now() < deadline, "the old key still signs long after its overlap ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(verifies(&after, &rotated.verifier_key));
    assert_eq!(after.matches('\u{2014}').count(), 1, "one signature line:\n{after}");
    for _ in 0..2 {
        let note = seal_one_more(&app.admin, "acme").await;
        assert!(verifies(&note, &rotated.verifier_key) && !verifies(&note, &old_key), "{note}");
    }
    assert!(verifies(&before, &old_key), "a checkpoint from before the rotation still verifies with the old key");

    let keys = app.admin.checkpoint_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(!keys[0].signing && !keys[0].active, "{:?}", keys[0]);
    assert_eq!(keys[0].verifier_key, old_key.trim(), "the old public key stays listed");

    // The old private key leaves the disk once its overlap is over; the public key stays in the history.
    let history = app.data_dir.join("signing-keys.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&history).unwrap().contains("PRIVATE+KEY") {
        assert!(Instant::now() < deadline, "the retired private key is still on disk");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(std::fs::read_to_string(&history).unwrap().contains(old_key.trim()));
    app.stop().await;
}

#[tokio::test]
async fn only_a_platform_admin_key_may_rotate_and_a_bad_overlap_is_refused_with_its_field() {
    let app = spawn_app().await;
    let org_admin = app.org_client("acme", &["admin"]).await;
    let (status, body) = post_rotate(&org_admin, r#"{"overlap": "1h"}"#).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let platform_reader = app
        .admin
        .create_key(&CreateKeyRequest {
            name: "platform reader".into(),
            organization_id: None,
            permissions: vec!["events:read".into()],
        })
        .await
        .unwrap();
    let (status, _) = post_rotate(&app.admin.with_key(platform_reader.key), "{}").await;
    assert_eq!(status, 403, "a platform key without `admin` may not rotate");
    let anonymous = Client::new(&app.base_url, None).unwrap();
    assert_eq!(post_rotate(&anonymous, "{}").await.0, 401);

    for overlap in [r#""soon""#, r#""31d""#, "-5", "1.5", r#""5h3""#, "true", r#""""#] {
        let (status, body) = post_rotate(&app.admin, &format!(r#"{{"overlap": {overlap}}}"#)).await;
        assert_eq!((status, body["error"]["field"].as_str()), (422, Some("overlap")), "{overlap}: {body}");
    }
    let (status, body) = post_rotate(&app.admin, r#"{"overlap": "1h", "keep": true}"#).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("keep")), "{body}");
    let (status, _) = post_rotate(&app.admin, "not json").await;
    assert_eq!(status, 400);

    let keys = app.admin.checkpoint_keys().await.unwrap();
    assert_eq!(keys.len(), 1, "no refused request rotated anything: {keys:?}");
    let events = app.admin.list_events(&[("organization_id", "_platform"), ("action", "checkpoint_key.*")]).await;
    assert!(events.unwrap().data.is_empty());

    // An empty body takes the default overlap of 24 hours.
    let (status, body) = post_rotate(&app.admin, "").await;
    assert_eq!(status, 200, "{body}");
    let keys = app.admin.checkpoint_keys().await.unwrap();
    let (rotated_at, until) = (&keys[0].retired_at, &keys[0].overlap_until);
    let ms = |t: &Option<String>| trailkeep_core::time::parse_rfc3339_millis(t.as_deref().unwrap()).unwrap();
    assert_eq!(ms(until) - ms(rotated_at), 24 * 3600 * 1000);
    app.stop().await;
}

/// A server on the data directory `dir`, with the admin key its first start wrote there.
struct Running {
    client: Client,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(dir: &Path) -> Running {
    let config = Config { data_dir: dir.to_owned(), listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = App::build(&config).await.unwrap();
    let key = std::fs::read_to_string(dir.join("admin.key")).unwrap().trim().to_owned();
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app, async {
        let _ = stopped.await;
    }));
    Running { client: Client::new(&url, Some(key)).unwrap(), shutdown, task }
}

impl Running {
    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_during_the_overlap_keeps_both_keys_signing() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path()).await;
    let old_key = first.client.checkpoint_key().await.unwrap();
    let rotated = first.client.rotate_checkpoint_key(Some("1h")).await.unwrap();
    first.stop().await;

    let second = start(dir.path()).await;
    assert_eq!(second.client.checkpoint_key().await.unwrap().trim(), rotated.verifier_key);
    let note = seal_one_more(&second.client, "acme").await;
    assert!(verifies(&note, &old_key), "the old key still signs after the restart:\n{note}");
    assert!(verifies(&note, &rotated.verifier_key), "{note}");
    assert_eq!(second.client.checkpoint_keys().await.unwrap().len(), 2);
    let events = second
        .client
        .list_events(&[("organization_id", "_platform"), ("action", "checkpoint_key.rotated")])
        .await
        .unwrap();
    assert_eq!(events.data.len(), 1, "the rotation is recorded once, restart or not");
    assert_eq!(events.data[0].id, rotated.event_id);
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_rotates_the_signing_key_and_prints_every_key_ever_used() {
    let app = spawn_app().await;
    let old_key = app.admin.checkpoint_key().await.unwrap();
    let admin = std::fs::read_to_string(app.data_dir.join("admin.key")).unwrap().trim().to_owned();
    let run = |args: &'static [&'static str]| {
        let (url, admin) = (app.base_url.clone(), admin.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_trailkeep"))
                .args(args)
                .env("TRAILKEEP_URL", url)
                .env("TRAILKEEP_API_KEY", admin)
                .output()
                .unwrap()
        })
    };
    let rotated = run(&["keys", "rotate-signing", "--overlap", "90m"]).await.unwrap();
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    let new_key = app.admin.checkpoint_key().await.unwrap();
    let printed = String::from_utf8(rotated.stdout).unwrap();
    assert!(printed.contains(new_key.trim()) && printed.contains(old_key.trim()), "{printed}");

    let public = run(&["keys", "public"]).await.unwrap();
    assert_eq!(String::from_utf8(public.stdout).unwrap(), new_key);
    let all = run(&["keys", "public", "--all"]).await.unwrap();
    assert!(all.status.success());
    assert_eq!(String::from_utf8(all.stdout).unwrap(), format!("{old_key}{new_key}"), "oldest first, one per line");

    let refused = run(&["keys", "rotate-signing", "--overlap", "later"]).await.unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("overlap"));
    app.stop().await;
}
