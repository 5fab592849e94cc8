//! Several `trailkeep serve` processes on one PostgreSQL database: `trailkeep migrate` prepares it, the
//! nodes ingest into the same organisations at once, idempotency holds across them, and when the node
//! that seals (the holder of the advisory lock) is killed with `kill -9`, another takes over: every
//! acknowledged event is kept, seqs stay contiguous, and one signed tree covers them all.
//!
//! A PostgreSQL restart in the middle of the load (as a crash would) loses nothing either: requests fail
//! with an answer or are retried, and the node recovers by itself.
//!
//! These tests always use PostgreSQL (a throwaway cluster), so they run in the default pass only.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use trailkeep_client::{Client, RetryPolicy};
use trailkeep_postgres::testing::{OWNER_ROLE, SERVICE_ROLE, TestDatabase, cluster};

use crate::helpers::on_postgres;

const ORGS: [&str; 2] = ["acme", "globex"];

/// `trailkeep serve` on a free port, on `db` as the service role, named `name` in PostgreSQL's activity
/// view; returns the process and its base URL once it listens.
fn start_node(db: &TestDatabase, data_dir: &Path, name: &str) -> (Child, String) {
    let url = format!("{} application_name={name}", db.url(SERVICE_ROLE));
    let mut child = Command::new(env!("CARGO_BIN_EXE_trailkeep"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url, "--data-dir"])
        .arg(data_dir)
        .env("TRAILKEEP_LOG", "warn")
        .env_remove("TRAILKEEP_DATABASE_OWNER_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start trailkeep");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = loop {
        let line = lines.next().expect("the node printed its address before exiting").expect("read stdout");
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

fn trailkeep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trailkeep")).args(args).output().expect("run trailkeep")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The application name of the connection holding the sealer's advisory lock, if any.
async fn sealer(db: &TestDatabase) -> Option<String> {
    let client = db.connect("postgres").await.expect("connect as the superuser");
    let rows = client
        .query(
            "SELECT DISTINCT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()",
            &[],
        )
        .await
        .expect("read the locks");
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    names.into_iter().find(|n| n.starts_with("node-"))
}

/// Sends `batches` batches of three events per organisation through `client`, returning every ack.
async fn ingest(client: &Client, tag: &str, batches: usize) -> Vec<(String, String, u64)> {
    let mut acked = Vec::new();
    for b in 0..batches {
        for org in ORGS {
            let events: Vec<Value> = (0..3)
                .map(|i| json!({"organization_id": org, "action": "document.updated", "metadata": {"tag": tag, "b": b, "i": i}}))
                .collect();
            match client.send_events(&events).await {
                Ok(sent) => acked.extend(sent.acks.into_iter().map(|a| (org.to_owned(), a.id.to_string(), a.seq))),
                // A node killed mid-request: the batch was not acknowledged, so nothing is owed.
                Err(_) => return acked,
            }
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_share_one_log_and_a_killed_sequencer_is_replaced() {
    if on_postgres() {
        return; // This test always runs on PostgreSQL: once, in the default pass.
    }
    let db = cluster().database().expect("a PostgreSQL database");
    let dir = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));

    // Serving without owner credentials needs a migrated database, and says how to get one.
    std::fs::create_dir_all(&dir_a).unwrap();
    let refused = trailkeep(&["migrate", "--database-url", &db.url(SERVICE_ROLE)]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("--database-owner-url"), "{}", text(&refused));
    let migrated =
        trailkeep(&["migrate", "--database-url", &db.url(SERVICE_ROLE), "--database-owner-url", &db.url(OWNER_ROLE)]);
    assert!(migrated.status.success(), "{}", text(&migrated));
    assert!(text(&migrated).contains("may use it"), "{}", text(&migrated));

    // Node A starts first: it creates the admin key and the signing key, which node B is given.
    let (mut a, url_a) = start_node(&db, &dir_a, "node-a");
    std::fs::create_dir_all(&dir_b).unwrap();
    for file in ["signing.key", "signing-keys.json"] {
        let from = dir_a.join(file);
        if from.exists() {
            std::fs::copy(&from, dir_b.join(file)).unwrap();
        }
    }
    let (mut b, url_b) = start_node(&db, &dir_b, "node-b");
    assert!(!dir_b.join("admin.key").exists(), "a second node creates no second admin key");
    let key = std::fs::read_to_string(dir_a.join("admin.key")).unwrap().trim().to_owned();
    let no_retry = RetryPolicy { attempts: 1, ..RetryPolicy::default() };
    let client_a = Client::new(&url_a, Some(key.clone())).unwrap().with_retry(no_retry.clone());
    let client_b = Client::new(&url_b, Some(key.clone())).unwrap().with_retry(no_retry.clone());

    // Idempotency holds across nodes: the same key and body on B replays A's answer.
    let batch = [json!({"organization_id": "acme", "action": "document.created"})];
    let first = client_a.send_events_with_key(&batch, "same-request").await.unwrap();
    let again = client_b.send_events_with_key(&batch, "same-request").await.unwrap();
    assert!(again.replayed, "the second node recognised the key");
    assert_eq!(first.acks[0].id, again.acks[0].id);
    let mut acked: Vec<(String, String, u64)> =
        first.acks.iter().map(|a| ("acme".to_owned(), a.id.to_string(), a.seq)).collect();

    // Both nodes ingest at once.
    let (from_a, from_b) = tokio::join!(ingest(&client_a, "a", 15), ingest(&client_b, "b", 15));
    acked.extend(from_a);
    acked.extend(from_b);

    // Find the sequencer and kill it while the other node keeps ingesting.
    let mut holder = None;
    for _ in 0..200 {
        holder = sealer(&db).await;
        if holder.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let holder = holder.expect("one node holds the sealer's lock");
    let (killed, mut survivor, survivor_client, survivor_name) = if holder == "node-a" {
        (&mut a, b, client_b.clone(), "node-b")
    } else {
        (&mut b, a, client_a.clone(), "node-a")
    };
    let victim_client = if holder == "node-a" { client_a.clone() } else { client_b.clone() };
    let during = tokio::spawn(async move { ingest(&victim_client, "victim", 200).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    killed.kill().expect("kill -9 the sequencer");
    killed.wait().unwrap();
    acked.extend(during.await.unwrap());
    acked.extend(ingest(&survivor_client, "after", 10).await);

    // The survivor takes the lock over and seals everything acknowledged.
    let mut took_over = None;
    for _ in 0..400 {
        took_over = sealer(&db).await;
        if took_over.as_deref() == Some(survivor_name) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(took_over.as_deref(), Some(survivor_name), "the surviving node took over sealing");

    for org in ORGS {
        let mine: Vec<&(String, String, u64)> = acked.iter().filter(|(o, _, _)| o == org).collect();
        let stored = survivor_client.list_all_events(&[("organization_id", org), ("order", "asc")]).await.unwrap();
        // The timeline is ordered by when events occurred, which nodes stamp independently of seq.
        let mut seqs: Vec<u64> = stored.iter().map(|e| e.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=stored.len() as u64).collect::<Vec<_>>(), "{org}: seqs contiguous from 1");
        let ids: HashSet<String> = stored.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(ids.len(), stored.len(), "{org}: no event stored twice");
        let by_id: BTreeMap<String, u64> = stored.iter().map(|e| (e.id.to_string(), e.seq)).collect();
        for (_, id, seq) in &mine {
            assert_eq!(by_id.get(id), Some(seq), "{org}: acknowledged event {id} kept at its seq");
        }

        // One tree: a checkpoint covering every event, and a bundle of the whole range that verifies.
        let size = stored.len() as u64;
        let mut covered = false;
        for _ in 0..400 {
            let checkpoint = survivor_client.checkpoint(Some(org)).await.unwrap();
            if checkpoint["size"].as_u64() == Some(size) {
                covered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(covered, "{org}: a signed checkpoint covers all {size} events");
        let keys = dir.path().join("keys.txt");
        let out = trailkeep(&["keys", "public", "--all", "--url", &url_of(&survivor_client), "--key", &key]);
        assert!(out.status.success(), "{}", text(&out));
        std::fs::write(&keys, &out.stdout).unwrap();
        let bundle = dir.path().join(format!("{org}.jsonl"));
        let out = trailkeep(&[
            "export",
            "--verifiable",
            "--org",
            org,
            "-o",
            bundle.to_str().unwrap(),
            "--url",
            &url_of(&survivor_client),
            "--key",
            &key,
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let out = trailkeep(&["verify", bundle.to_str().unwrap(), "--key", keys.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    survivor.kill().unwrap();
    survivor.wait().unwrap();
}

fn url_of(client: &Client) -> String {
    client.base_url().trim_end_matches('/').to_owned()
}

/// One batch per worker and loop: acknowledged batches as (org, batch, acks), and the answers that
/// were neither an acknowledgement nor a transport error retried away.
type Outcomes = (Vec<(String, String, Vec<(String, u64)>)>, Vec<String>);

async fn ingest_through_restart(client: Client, worker: usize, stop: Arc<AtomicBool>) -> Outcomes {
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let org = ORGS[(worker + n) % ORGS.len()];
        let batch = format!("w{worker}-b{n}");
        let events: Vec<Value> = (0..4)
            .map(|i| json!({"organization_id": org, "action": "restart.test", "metadata": {"batch": batch, "i": i}}))
            .collect();
        match client.send_events(&events).await {
            Ok(sent) => {
                acked.push((org.to_owned(), batch, sent.acks.into_iter().map(|a| (a.id.to_string(), a.seq)).collect()))
            }
            Err(e) => refused.push(format!("{batch}: {e}")),
        }
    }
    (acked, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_restarted_mid_load_loses_nothing_and_the_service_recovers() {
    if on_postgres() {
        return; // This test always runs on PostgreSQL: once, in the default pass.
    }
    let cluster = trailkeep_postgres::testing::private_cluster().expect("a PostgreSQL cluster of this test's own");
    let db = cluster.database().expect("a database");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");
    let mut child = Command::new(env!("CARGO_BIN_EXE_trailkeep"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db.url(SERVICE_ROLE)])
        .args(["--database-owner-url", &db.url(OWNER_ROLE), "--data-dir"])
        .arg(&data_dir)
        .env("TRAILKEEP_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start trailkeep");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the node printed its address").expect("read stdout");
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let key = std::fs::read_to_string(data_dir.join("admin.key")).unwrap().trim().to_owned();
    // The client retries transport errors and 503s with the same Idempotency-Key, as any client should.
    let retrying = RetryPolicy { attempts: 8, ..RetryPolicy::default() };
    let client = Client::new(&url, Some(key.clone())).unwrap().with_retry(retrying);

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> =
        (0..6).map(|w| tokio::spawn(ingest_through_restart(client.clone(), w, stop.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::spawn_blocking(move || cluster.restart()).await.unwrap().expect("restart PostgreSQL");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for w in workers {
        let (a, r) = w.await.unwrap();
        acked.extend(a);
        refused.extend(r);
    }
    // Requests that were not acknowledged failed with an answer, never a hang: each is an error the
    // client saw. Whatever they were, the service is back.
    for r in &refused {
        assert!(r.contains("50") || r.contains("transport"), "an unclear failure: {r}");
    }
    let after = client.send_events(&[json!({"organization_id": "acme", "action": "restart.after"})]).await;
    assert!(after.is_ok(), "ingest works after the restart: {after:?}");

    for org in ORGS {
        let stored = client.list_all_events(&[("organization_id", org)]).await.unwrap();
        let mut seqs: Vec<u64> = stored.iter().map(|e| e.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=stored.len() as u64).collect::<Vec<_>>(), "{org}: seqs contiguous");
        let by_id: BTreeMap<String, u64> = stored.iter().map(|e| (e.id.to_string(), e.seq)).collect();
        let mut batches: BTreeMap<String, usize> = BTreeMap::new();
        for e in &stored {
            if let Some(b) = e.metadata.get("batch").and_then(Value::as_str) {
                *batches.entry(b.to_owned()).or_default() += 1;
            }
        }
        for (batch, count) in &batches {
            assert_eq!(*count, 4, "{org}: batch {batch} stored in part");
        }
        for (o, batch, acks) in acked.iter().filter(|a| a.0 == org) {
            for (id, seq) in acks {
                assert_eq!(by_id.get(id), Some(seq), "{o}: acknowledged {batch} event {id} kept at its seq");
            }
        }
        let size = stored.len() as u64;
        let mut covered = false;
        for _ in 0..400 {
            if client.checkpoint(Some(org)).await.ok().and_then(|c| c["size"].as_u64()) == Some(size) {
                covered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(covered, "{org}: sealing caught up with all {size} events after the restart");
    }
    assert!(acked.len() > 20, "too little was acknowledged to judge: {}", acked.len());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_over_tls_verifies_the_server_certificate() {
    if on_postgres() {
        return; // This test always runs on PostgreSQL: once, in the default pass.
    }
    let cluster = trailkeep_postgres::testing::private_cluster().expect("a PostgreSQL cluster of this test's own");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let served = cert_pem.clone();
    tokio::task::spawn_blocking(move || cluster.enable_tls(&served, &key_pem))
        .await
        .unwrap()
        .expect("TLS on the cluster");
    let db = cluster.database().expect("a database");
    let dir = tempfile::tempdir().unwrap();
    // The certificate is its own issuer: the CA file a deployment would name.
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert_pem).unwrap();
    let ca = ca.to_str().unwrap().to_owned();
    let tcp = |role: &str, tls: bool| {
        let mode = if tls { "?sslmode=require" } else { "" };
        format!("postgres://{role}@127.0.0.1:{}/{}{mode}", cluster.port(), db.name())
    };

    // Not verified against the system's roots, which never signed it: refused, naming the certificate.
    let out = trailkeep(&[
        "migrate",
        "--database-url",
        &tcp(SERVICE_ROLE, true),
        "--database-owner-url",
        &tcp(OWNER_ROLE, true),
    ]);
    assert!(!out.status.success(), "an unverified server was trusted: {}", text(&out));
    assert!(text(&out).to_lowercase().contains("certificate"), "{}", text(&out));
    // A CA file with plain connection strings is a mistake worth saying.
    let out = trailkeep(&[
        "migrate",
        "--database-url",
        &tcp(SERVICE_ROLE, false),
        "--database-owner-url",
        &tcp(OWNER_ROLE, false),
        "--database-ca",
        &ca,
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("sslmode=require"), "{}", text(&out));
    // Verified against the CA it names: migrated, then served.
    let out = trailkeep(&[
        "migrate",
        "--database-url",
        &tcp(SERVICE_ROLE, true),
        "--database-owner-url",
        &tcp(OWNER_ROLE, true),
        "--database-ca",
        &ca,
    ]);
    assert!(out.status.success(), "{}", text(&out));

    let data_dir = dir.path().join("node");
    let mut child = Command::new(env!("CARGO_BIN_EXE_trailkeep"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &tcp(SERVICE_ROLE, true), "--database-ca", &ca])
        .arg("--data-dir")
        .arg(&data_dir)
        .env("TRAILKEEP_LOG", "warn")
        .env_remove("TRAILKEEP_DATABASE_OWNER_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start trailkeep");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the node printed its address").expect("read stdout");
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let key = std::fs::read_to_string(data_dir.join("admin.key")).unwrap().trim().to_owned();
    let client = Client::new(&url, Some(key)).unwrap();
    let sent = client.send_events(&[json!({"organization_id": "acme", "action": "tls.checked"})]).await.unwrap();
    let stored = client.get_event(&sent.acks[0].id.to_string(), Some("acme")).await.unwrap();
    assert_eq!(stored.action.as_str(), "tls.checked");
    // Every connection the node holds came over TLS (the cluster refuses plain TCP, too). Only a
    // superuser sees other roles' sessions in full.
    let admin = db.connect("postgres").await.unwrap();
    let row = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.usename = $1",
            &[&SERVICE_ROLE],
        )
        .await
        .unwrap();
    let (tls, all): (i64, i64) = (row.get(0), row.get(1));
    assert!(all > 0 && tls == all, "{tls} of the node's {all} connections use TLS");
    child.kill().unwrap();
    child.wait().unwrap();
}
