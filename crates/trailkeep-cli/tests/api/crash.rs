//! Durability: `kill -9` of the real `trailkeep` process in the middle of concurrent ingest loses no
//! acknowledged event, shows no partial batch, and leaves every organisation's `seq` contiguous.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use tokio::sync::Mutex;
use trailkeep_client::{Client, RetryPolicy};

/// A `trailkeep serve` process on a free port; returns it with its base URL once it is listening.
fn start_server(data_dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trailkeep"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("TRAILKEEP_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start trailkeep");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("the server printed its address before exiting").expect("read stdout");
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

fn admin_key(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("admin.key")).expect("admin.key").trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_concurrent_ingest_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let orgs = ["acme", "globex", "initech"];
    let batch_size = 10;

    for round in 0..3 {
        let (mut child, url) = start_server(&data_dir);
        let client = Client::new(&url, Some(admin_key(&data_dir)))
            .unwrap()
            .with_retry(RetryPolicy { attempts: 1, ..RetryPolicy::default() });
        let acked: Arc<Mutex<Vec<(String, String, u64)>>> = Arc::default();
        let sent_batches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for worker in 0..16 {
            let client = client.clone();
            let acked = acked.clone();
            let sent_batches = sent_batches.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let org = orgs[(worker + n) % orgs.len()];
                    let batch_id = format!("r{round}-w{worker}-b{n}");
                    let events: Vec<_> = (0..batch_size)
                        .map(|i| json!({"organization_id": org, "action": "crash.test", "metadata": {"batch": batch_id, "i": i}}))
                        .collect();
                    match client.send_events(&events).await {
                        Ok(sent) => {
                            let mut acked = acked.lock().await;
                            for ack in sent.acks {
                                acked.push((org.to_owned(), ack.id.to_string(), ack.seq));
                            }
                            sent_batches.fetch_add(1, Ordering::SeqCst);
                        }
                        // The server is gone: whatever was not acknowledged may or may not be stored.
                        Err(_) => return,
                    }
                }
            }));
        }
        // Kill once a good number of batches have been acknowledged (a bounded wait, not a timing guess).
        let target = 100 + round * 50;
        for _ in 0..2000 {
            if sent_batches.load(Ordering::SeqCst) >= target {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        child.kill().expect("kill -9");
        child.wait().unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        let acked = acked.lock().await.clone();
        assert!(acked.len() >= target * batch_size, "round {round}: only {} events acknowledged", acked.len());

        let (mut child, url) = start_server(&data_dir);
        let client = Client::new(&url, Some(admin_key(&data_dir))).unwrap();
        for org in orgs {
            let stored =
                client.list_all_events(&[("organization_id", org), ("limit", "1000"), ("order", "asc")]).await.unwrap();
            // The timeline is ordered by occurred_at, which concurrent requests stamp before they commit.
            let mut seqs: Vec<u64> = stored.iter().map(|e| e.seq).collect();
            seqs.sort_unstable();
            assert_eq!(seqs, (1..=stored.len() as u64).collect::<Vec<_>>(), "round {round}: {org} seqs have a gap");
            let by_id: HashMap<String, u64> = stored.iter().map(|e| (e.id.to_string(), e.seq)).collect();
            for (o, id, seq) in acked.iter().filter(|(o, ..)| o == org) {
                assert_eq!(by_id.get(id), Some(seq), "round {round}: acknowledged event {id} of {o} is missing");
            }
            let mut batches: HashMap<String, usize> = HashMap::new();
            for e in &stored {
                *batches.entry(e.metadata["batch"].as_str().unwrap().to_owned()).or_default() += 1;
            }
            for (batch, count) in batches {
                assert_eq!(count, batch_size, "round {round}: batch {batch} is partially stored");
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
