//! The embedded store's data directory on a disk that fills up, and one that is read-only: writes are
//! refused with a clear 503 that stores nothing, reads go on, the service resumes by itself once space
//! returns, and nothing acknowledged is lost or damaged.
//!
//! The data directory is a small tmpfs the test mounts (and unmounts), so the test needs root, as the
//! test command runs in CI. It concerns the embedded store, so it runs in the default pass only.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use trailkeep_client::{Client, RetryPolicy};

use crate::helpers::on_postgres;

/// A tmpfs of a given size, unmounted when dropped.
struct SmallDisk {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> SmallDisk {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a {megabytes} MiB tmpfs failed: this test needs root");
        SmallDisk { dir, _parent: parent }
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount").args(["-o", &format!("remount,{options}")]).arg(&self.dir).status().unwrap();
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn serve(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trailkeep"));
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir).env("TRAILKEEP_LOG", "warn");
    command
}

fn start(data_dir: &Path) -> (Child, String) {
    let mut child = serve(data_dir).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start trailkeep");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the server printed its address before exiting").expect("read stdout");
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A batch of 50 events with about 2 KiB of metadata each.
fn batch(n: usize) -> Value {
    let filler = "x".repeat(2048);
    let events: Vec<Value> = (0..50)
        .map(|i| json!({"organization_id": "acme", "action": "disk.test", "metadata": {"batch": n, "i": i, "filler": filler}}))
        .collect();
    json!({ "events": events })
}

async fn post(client: &Client, body: &Value) -> (u16, Value) {
    let r = client
        .raw(Method::POST, "/v1/events", Some(body.to_string().into()), &[("content-type", "application/json")])
        .await
        .expect("the service answers");
    (r.status, r.json().unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_writes_clearly_and_the_service_resumes_when_space_returns() {
    if on_postgres() {
        return; // The embedded store's disk: tested in the default pass.
    }
    let disk = SmallDisk::mount(24);
    let (mut child, url) = start(&disk.dir);
    let key = std::fs::read_to_string(disk.dir.join("admin.key")).unwrap().trim().to_owned();
    let client =
        Client::new(&url, Some(key.clone())).unwrap().with_retry(RetryPolicy { attempts: 1, ..Default::default() });

    let mut acked = Vec::new();
    let mut refusal = None;
    for n in 0..2000 {
        let (status, body) = post(&client, &batch(n)).await;
        match status {
            201 => acked.extend(body["events"].as_array().unwrap().iter().map(|a| (a["id"].clone(), a["seq"].clone()))),
            _ => {
                refusal = Some((status, body));
                break;
            }
        }
    }
    let (status, body) = refusal.expect("the disk filled up");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("disk") && message.contains("full"), "{message}");
    assert!(acked.len() >= 500, "only {} events fitted", acked.len());
    // Refused again while full, and reads go on.
    assert_eq!(post(&client, &batch(9000)).await.0, 503);
    let page = client.list_events(&[("organization_id", "acme"), ("limit", "10")]).await.expect("reads work");
    assert_eq!(page.data.len(), 10);

    // Space returns: the service resumes by itself.
    disk.remount("size=256m");
    let mut resumed = false;
    for n in 0..100 {
        let (status, body) = post(&client, &batch(10_000 + n)).await;
        if status == 201 {
            acked.extend(body["events"].as_array().unwrap().iter().map(|a| (a["id"].clone(), a["seq"].clone())));
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(resumed, "ingest resumed once space returned");

    // Nothing acknowledged is lost or damaged, also across a kill -9 and a restart.
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, url) = start(&disk.dir);
    let client = Client::new(&url, Some(key.clone())).unwrap();
    let stored = client.list_all_events(&[("organization_id", "acme")]).await.unwrap();
    let mut seqs: Vec<u64> = stored.iter().map(|e| e.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=stored.len() as u64).collect::<Vec<_>>(), "seqs contiguous");
    let ids: std::collections::HashMap<String, u64> = stored.iter().map(|e| (e.id.to_string(), e.seq)).collect();
    for (id, seq) in &acked {
        assert_eq!(ids.get(id.as_str().unwrap()).copied(), seq.as_u64(), "acknowledged event {id} kept");
    }
    let size = stored.len() as u64;
    let mut covered = false;
    for _ in 0..400 {
        if client.checkpoint(Some("acme")).await.ok().and_then(|c| c["size"].as_u64()) == Some(size) {
            covered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(covered, "sealing caught up with all {size} events");
    let files = tempfile::tempdir().unwrap();
    let (bundle, keys) = (files.path().join("acme.jsonl"), files.path().join("keys.txt"));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_trailkeep"))
            .args(args)
            .env("TRAILKEEP_URL", &url)
            .env("TRAILKEEP_API_KEY", &key)
            .output()
            .unwrap()
    };
    let out = run(&["keys", "public", "--all"]);
    std::fs::write(&keys, &out.stdout).unwrap();
    let out = run(&["export", "--verifiable", "--org", "acme", "-o", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["verify", bundle.to_str().unwrap(), "--key", keys.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_data_directory_stops_the_start_with_a_clear_error() {
    if on_postgres() {
        return; // The embedded store's data directory: tested in the default pass.
    }
    let disk = SmallDisk::mount(16);
    let (mut child, url) = start(&disk.dir);
    let key = std::fs::read_to_string(disk.dir.join("admin.key")).unwrap().trim().to_owned();
    let client = Client::new(&url, Some(key)).unwrap();
    assert_eq!(post(&client, &batch(0)).await.0, 201);
    // Stopped gracefully, so that nothing holds a file open for writing and the disk can turn read-only.
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    child.wait().unwrap();
    disk.remount("ro");
    let out = serve(&disk.dir).output().expect("run trailkeep serve");
    assert!(!out.status.success(), "a read-only data directory must stop the start: {}", text(&out));
    let said = text(&out);
    assert!(said.contains(&disk.dir.display().to_string()), "the error names the directory: {said}");
    assert!(said.to_lowercase().contains("read-only"), "the error says what is wrong: {said}");

    // Writable again: the service starts on the same data, with everything in it.
    disk.remount("rw");
    let (mut child, url) = start(&disk.dir);
    let key = std::fs::read_to_string(disk.dir.join("admin.key")).unwrap().trim().to_owned();
    let client = Client::new(&url, Some(key)).unwrap();
    assert_eq!(client.list_all_events(&[("organization_id", "acme")]).await.unwrap().len(), 50);
    child.kill().unwrap();
    child.wait().unwrap();
}
