//! Scheduled exports: every closed window of an organisation's log lands at its destination once — a
//! local directory, or a real S3-compatible server (`moto_server`) — as gzip NDJSON or Parquet with a
//! manifest that matches its data; the windows' seq ranges follow each other without a gap or an
//! overlap, and together hold exactly the organisation's events, even when the process is killed
//! between writing a window's data and recording it. The scheduler's clock is moved three days ahead
//! (a test-only setting), so the day of the test and the two after it are closed windows.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use trailkeep_client::{Client, Method};
use trailkeep_server::config::DestinationSettings;
use trailkeep_wire::UpdateOrgRequest;

use crate::helpers::{TestApp, on_postgres, spawn_app_with};

const ORG: &str = "acme";
const THREE_DAYS_MS: i64 = 3 * 86_400_000;

async fn set_plan(client: &Client, org: &str, plan: &str) {
    let request = UpdateOrgRequest { name: None, plan: Some(plan.into()) };
    let _: Value = client.send_json(Method::PATCH, &format!("/v1/orgs/{org}"), &request).await.unwrap();
}

async fn send_events(client: &Client, n: usize) {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"organization_id": ORG, "action": "doc.created", "metadata": {"n": i}, "actor": {"type": "user", "id": format!("u{i}")}}))
        .collect();
    for chunk in events.chunks(500) {
        client.send_events(chunk).await.unwrap();
    }
}

async fn create_schedule(client: &Client, destination: &str, format: &str) -> Value {
    let body = json!({"destination": destination, "format": format, "period": "daily"});
    client.send_json(Method::POST, &format!("/v1/orgs/{ORG}/export-schedules"), &body).await.unwrap()
}

/// Polls until every schedule exported at least `windows` windows; panics after four minutes (on
/// PostgreSQL a schedule left claimed by a killed process waits for its two-minute lease).
async fn wait_for_windows(client: &Client, windows: u64) -> Vec<Value> {
    for _ in 0..2400 {
        if let Ok(list) = client.get_json::<Value>(&format!("/v1/orgs/{ORG}/export-schedules")).await {
            let schedules = list["data"].as_array().cloned().unwrap_or_default();
            if !schedules.is_empty() && schedules.iter().all(|s| s["windows_exported"].as_u64() >= Some(windows)) {
                return schedules;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the schedules did not export {windows} windows within four minutes");
}

/// One exported window: its manifest and its data object's bytes.
struct Window {
    manifest: Value,
    data: Vec<u8>,
}

/// Checks what a schedule wrote against the organisation's log: one data object per manifest, each
/// manifest's hash and count right, seq ranges contiguous from 1, and the events (decoded by `decode`)
/// exactly the log's, in seq order. Answers the windows' events.
fn check_windows(objects: &BTreeMap<String, Vec<u8>>, schedule: &str, log: &[Value], decode: fn(&[u8]) -> Vec<Value>) {
    let manifests: Vec<(&String, Value)> = objects
        .iter()
        .filter(|(name, _)| name.contains(schedule) && name.ends_with(".manifest.json"))
        .map(|(name, bytes)| (name, serde_json::from_slice(bytes).unwrap()))
        .collect();
    let data_objects = objects.keys().filter(|n| n.contains(schedule) && !n.ends_with(".manifest.json")).count();
    assert!(manifests.len() >= 3, "{:?}", objects.keys().collect::<Vec<_>>());
    assert_eq!(data_objects, manifests.len(), "one data object per window, no duplicate");
    let mut windows: Vec<Window> = manifests
        .into_iter()
        .map(|(name, manifest)| {
            let dir = &name[..name.rfind('/').unwrap()];
            let data_name = format!("{dir}/{}", manifest["data_object"].as_str().unwrap());
            let data = objects.get(&data_name).unwrap_or_else(|| panic!("no {data_name}")).clone();
            Window { manifest, data }
        })
        .collect();
    windows.sort_by_key(|w| w.manifest["window_start"].as_str().unwrap().to_owned());
    let mut after = 0u64;
    let mut exported: Vec<Value> = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        let m = &w.manifest;
        assert_eq!(m["organization_id"], ORG);
        assert_eq!(m["after_seq"].as_u64(), Some(after), "window {i} starts where the one before ended: {m}");
        let last = m["last_seq"].as_u64().unwrap();
        assert!(last >= after);
        assert_eq!(m["sha256"].as_str().unwrap(), hex(&Sha256::digest(&w.data)), "window {i}");
        assert_eq!(m["bytes"].as_u64(), Some(w.data.len() as u64));
        let events = decode(&w.data);
        assert_eq!(m["event_count"].as_u64(), Some(events.len() as u64), "window {i}");
        if let (Some(first), Some(last_event)) = (events.first(), events.last()) {
            assert_eq!(first["seq"].as_u64(), Some(after + 1));
            assert_eq!(last_event["seq"].as_u64(), Some(last));
        }
        if i > 0 {
            assert_eq!(m["window_start"], windows[i - 1].manifest["window_end"], "windows follow each other");
        }
        exported.extend(events);
        after = last;
    }
    let want: Vec<&Value> = log.iter().filter(|e| e["seq"].as_u64().unwrap() <= after).collect();
    assert_eq!(exported.len(), want.len());
    for (got, want) in exported.iter().zip(want) {
        assert_eq!(got["id"], want["id"]);
        assert_eq!(got["seq"], want["seq"]);
        assert_eq!(got["action"], want["action"]);
        // Parquet has no metadata column value for an event without any; JSON may leave it out too.
        let metadata = |v: &Value| if v.is_null() { json!({}) } else { v.clone() };
        assert_eq!(metadata(&got["metadata"]), metadata(&want["metadata"]));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_gzip_ndjson(data: &[u8]) -> Vec<Value> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(data).read_to_string(&mut text).expect("gzip");
    text.lines().map(|l| serde_json::from_str(l).expect("one event per line")).collect()
}

fn decode_parquet(data: &[u8]) -> Vec<Value> {
    use arrow_array::{Array, Int64Array, StringArray};
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes_of(data)).expect("parquet").build().unwrap();
    let mut events = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let ids = batch.column_by_name("id").unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
        let seqs = batch.column_by_name("seq").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().clone();
        let actions = batch.column_by_name("action").unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
        let metadata =
            batch.column_by_name("metadata").unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
        for i in 0..batch.num_rows() {
            let meta = if metadata.is_null(i) { json!({}) } else { serde_json::from_str(metadata.value(i)).unwrap() };
            events
                .push(json!({"id": ids.value(i), "seq": seqs.value(i), "action": actions.value(i), "metadata": meta}));
        }
    }
    events
}

/// Parquet reads from a file.
fn bytes_of(data: &[u8]) -> std::fs::File {
    use std::io::{Seek, Write};
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(data).unwrap();
    file.rewind().unwrap();
    file
}

/// The organisation's log as JSON, in seq order.
async fn log(client: &Client) -> Vec<Value> {
    let events =
        client.list_all_events(&[("organization_id", ORG), ("limit", "1000"), ("order", "asc")]).await.unwrap();
    let mut events: Vec<Value> = events.iter().map(|e| serde_json::to_value(e).unwrap()).collect();
    events.sort_by_key(|e| e["seq"].as_u64());
    events
}

fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let name = path.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
                found.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    found
}

fn dir_destination(path: &Path) -> DestinationSettings {
    DestinationSettings {
        kind: "dir".into(),
        path: Some(path.to_path_buf()),
        prefix: Some("audit".into()),
        ..DestinationSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_exports_to_a_directory_hold_every_event_once_as_gzip_ndjson_and_parquet() {
    let out = tempfile::tempdir().unwrap();
    let root = out.path().to_path_buf();
    let app: TestApp = spawn_app_with(|config| {
        config.export_destinations.insert("local".into(), dir_destination(&root));
        config.test_clock_offset_ms = THREE_DAYS_MS;
        config.export_schedule_check_secs = 1;
        config.export_schedule_grace_secs = 0;
    })
    .await;
    send_events(&app.admin, 1200).await;
    set_plan(&app.admin, ORG, "enterprise").await;
    let ndjson = create_schedule(&app.admin, "local", "ndjson").await;
    let parquet = create_schedule(&app.admin, "local", "parquet").await;
    assert_eq!(ndjson["period"], "daily");
    let schedules = wait_for_windows(&app.admin, 3).await;
    assert!(schedules.iter().all(|s| s["last_error"].is_null()), "{schedules:?}");

    let log = log(&app.admin).await;
    let objects = files_under(&root);
    assert!(objects.keys().all(|name| name.starts_with(&format!("audit/{ORG}/"))), "{:?}", objects.keys());
    check_windows(&objects, ndjson["id"].as_str().unwrap(), &log, decode_gzip_ndjson);
    check_windows(&objects, parquet["id"].as_str().unwrap(), &log, decode_parquet);

    // Both creations were recorded; a deleted schedule stops and says so in the log.
    let created =
        app.admin.list_all_events(&[("organization_id", ORG), ("action", "export_schedule.created")]).await.unwrap();
    assert_eq!(created.len(), 2);
    let id = ndjson["id"].as_str().unwrap();
    app.admin.delete(&format!("/v1/orgs/{ORG}/export-schedules/{id}")).await.unwrap();
    let r = app.admin.raw(Method::DELETE, &format!("/v1/orgs/{ORG}/export-schedules/{id}"), None, &[]).await.unwrap();
    assert_eq!(r.status, 404);
    let list: Value = app.admin.get_json(&format!("/v1/orgs/{ORG}/export-schedules")).await.unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn export_schedules_are_for_administrators_and_refuse_bad_input_naming_the_field() {
    let out = tempfile::tempdir().unwrap();
    let root = out.path().to_path_buf();
    let app = spawn_app_with(|config| {
        config.export_destinations.insert("local".into(), dir_destination(&root));
    })
    .await;
    send_events(&app.admin, 3).await;
    app.admin.send_events(&[json!({"organization_id": "globex", "action": "doc.created"})]).await.unwrap();
    let reader = app.org_client(ORG, &["events:read"]).await;
    let other = app.org_client("globex", &["admin"]).await;
    let body = json!({"destination": "local", "format": "ndjson", "period": "daily"});
    let path = format!("/v1/orgs/{ORG}/export-schedules");
    for client in [&reader, &other] {
        let r = client
            .raw(Method::POST, &path, Some(serde_json::to_vec(&body).unwrap()), &[("content-type", "application/json")])
            .await
            .unwrap();
        assert_eq!(r.status, 403);
        assert_eq!(client.raw(Method::GET, &path, None, &[]).await.unwrap().status, 403);
    }
    // The free plan exports nothing.
    let r = app
        .admin
        .raw(Method::POST, &path, Some(serde_json::to_vec(&body).unwrap()), &[("content-type", "application/json")])
        .await
        .unwrap();
    assert_eq!(r.status, 201, "platform keys may export whatever the plan");
    let owner = app.org_client(ORG, &["admin"]).await;
    let r = owner
        .raw(Method::POST, &path, Some(serde_json::to_vec(&body).unwrap()), &[("content-type", "application/json")])
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.json().unwrap()["error"]["code"], "export_not_allowed");

    set_plan(&app.admin, ORG, "enterprise").await;
    let cases = [
        (json!({"destination": "nowhere", "format": "ndjson", "period": "daily"}), "destination"),
        (json!({"destination": "local", "format": "csv", "period": "daily"}), "format"),
        (json!({"destination": "local", "format": "ndjson", "period": "hourly"}), "period"),
    ];
    for (body, field) in cases {
        let r = owner
            .raw(Method::POST, &path, Some(serde_json::to_vec(&body).unwrap()), &[("content-type", "application/json")])
            .await
            .unwrap();
        assert_eq!(r.status, 422, "{body}");
        assert_eq!(r.json().unwrap()["error"]["field"], field, "{body}");
    }
    let r = owner
        .raw(Method::POST, &path, Some(b"{\"destination\": 1}".to_vec()), &[("content-type", "application/json")])
        .await
        .unwrap();
    assert!((400..500).contains(&r.status));
    let r = owner.raw(Method::DELETE, &format!("{path}/sched_nothing"), None, &[]).await.unwrap();
    assert_eq!(r.status, 404);
    app.stop().await;
}

// ---- S3, through a real S3-compatible server, with a process killed half-way ----

/// A `moto_server` on a free loopback port, stopped when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start moto_server ({e}): the S3 export tests need an S3-compatible server; install it with \
                 `pip install 'moto[server]'` (./scripts/test does so when it can)"
            )
        });
    let moto = Moto { child, port };
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return moto;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto_server did not listen on 127.0.0.1:{port} within 30 seconds");
}

/// A `trailkeep serve` process with `config`, and `env`; returns it with its base URL.
fn start_server(data_dir: &Path, config: &Path, env: &[(&str, String)]) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trailkeep"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .env("TRAILKEEP_LOG", "warn")
        .env_remove("TRAILKEEP_TEST_FAULT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start trailkeep");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = loop {
        let line = lines.next().expect("the server printed its address before exiting").expect("read stdout");
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

async fn bucket_objects(store: &dyn ObjectStore) -> BTreeMap<String, Vec<u8>> {
    let listed: Vec<object_store::ObjectMeta> = store.list(None).try_collect().await.unwrap();
    let mut objects = BTreeMap::new();
    for meta in listed {
        let data = store.get_opts(&meta.location, object_store::GetOptions::default()).await.unwrap();
        objects.insert(meta.location.to_string(), data.bytes().await.unwrap().to_vec());
    }
    objects
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_killed_between_writing_a_window_and_recording_it_leaves_no_gap_and_no_duplicate_in_s3() {
    let moto = start_moto();
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let created = reqwest::Client::new().put(format!("{endpoint}/trailkeep-exports")).send().await.unwrap();
    assert!(created.status().is_success(), "create the bucket: {}", created.status());

    let dir = tempfile::tempdir().unwrap();
    let data_dir: PathBuf = dir.path().join("data");
    let config = dir.path().join("trailkeep.toml");
    std::fs::write(
        &config,
        format!(
            "export_schedule_check_secs = 1\nexport_schedule_grace_secs = 0\n\n\
             [export_destinations.archive]\nkind = \"s3\"\nbucket = \"trailkeep-exports\"\nendpoint = \"{endpoint}\"\n\
             region = \"us-east-1\"\nprefix = \"trailkeep\"\naccess_key_id_env = \"TEST_S3_KEY_ID\"\n\
             secret_access_key_env = \"TEST_S3_SECRET\"\n"
        ),
    )
    .unwrap();
    let database = on_postgres().then(|| trailkeep_postgres::testing::cluster().database().expect("a database"));
    let mut env: Vec<(&str, String)> = vec![
        ("TEST_S3_KEY_ID", "testing".into()),
        ("TEST_S3_SECRET", "testing-secret".into()),
        ("TRAILKEEP_TEST_CLOCK_OFFSET_MS", THREE_DAYS_MS.to_string()),
    ];
    if let Some(db) = &database {
        env.push(("TRAILKEEP_DATABASE_URL", db.url(trailkeep_postgres::testing::SERVICE_ROLE)));
        env.push(("TRAILKEEP_DATABASE_OWNER_URL", db.url(trailkeep_postgres::testing::OWNER_ROLE)));
    }

    // First run: the process dies right after writing the first window's data object.
    let mut faulty = env.clone();
    faulty.push(("TRAILKEEP_TEST_FAULT", "after_export_object".into()));
    let (mut child, url) = start_server(&data_dir, &config, &faulty);
    let key = std::fs::read_to_string(data_dir.join("admin.key")).unwrap().trim().to_owned();
    let client = Client::new(&url, Some(key.clone())).unwrap();
    send_events(&client, 700).await;
    set_plan(&client, ORG, "enterprise").await;
    let schedule = create_schedule(&client, "archive", "ndjson").await;
    let id = schedule["id"].as_str().unwrap().to_owned();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(!status.success(), "the fault stopped the process");

    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("trailkeep-exports")
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing-secret")
        .build()
        .unwrap();
    let before = bucket_objects(&store).await;
    assert_eq!(before.len(), 1, "the data object of the first window, and no manifest: {:?}", before.keys());

    // Second run: the unrecorded window is written again under the same names, then the rest.
    let (mut child, url) = start_server(&data_dir, &config, &env);
    let client = Client::new(&url, Some(key)).unwrap();
    let schedules = wait_for_windows(&client, 3).await;
    assert_eq!(schedules[0]["id"], id.as_str());
    let objects = bucket_objects(&store).await;
    assert!(objects.keys().all(|k| k.starts_with(&format!("trailkeep/{ORG}/"))), "{:?}", objects.keys());
    assert!(before.keys().all(|k| objects.contains_key(k)), "the first window kept its name");
    let log = log(&client).await;
    assert!(log.len() >= 700);
    check_windows(&objects, &id, &log, decode_gzip_ndjson);
    let _ = child.kill();
    let _ = child.wait();
    drop(moto);
}
