//! Phase (a): HTTP batch ingest, then the "searchable within a second" check.
//!
//! The event set is cut into batches of [`BATCH`] events, each serialised once up front so that the
//! clock measures the server rather than the load generator. A few senders share one client and take
//! batches from a common counter until all but the last are acknowledged; the last batch, whose final
//! event carries the marker word, then goes alone, so its acknowledgement is the last one and its
//! commit the newest. From that acknowledgement the phase polls a full-text query for the marker until
//! the event comes back: how long a just-acknowledged event takes to become searchable, with whatever
//! indexing backlog the ingest left behind.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use trailkeep_client::Client;
use uuid::Uuid;

use crate::harness::Server;
use crate::probe::{Activity, Probe};
use crate::stats::{Samples, progress};

/// Events per request.
pub const BATCH: usize = 1000;
/// How long the searchability check waits before giving up.
const SEARCH_DEADLINE: Duration = Duration::from_secs(600);
const POLL_EVERY: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct BatchIngest {
    pub events: u64,
    pub senders: usize,
    pub elapsed: Duration,
    /// Time from sending a batch to its acknowledgement.
    pub latency: Samples,
    /// What the server did while ingesting.
    pub activity: Activity,
    /// Time from the last acknowledgement until the marker was found by full-text search.
    pub searchable_after: Duration,
}

/// `{"events":[…]}` bodies of up to [`BATCH`] events each.
fn bodies(events: &[String]) -> Vec<Vec<u8>> {
    events
        .chunks(BATCH)
        .map(|chunk| {
            let mut body = Vec::with_capacity(chunk.iter().map(|e| e.len() + 1).sum::<usize>() + 16);
            body.extend_from_slice(b"{\"events\":[");
            for (i, event) in chunk.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(event.as_bytes());
            }
            body.extend_from_slice(b"]}");
            body
        })
        .collect()
}

async fn send(client: &Client, body: &[u8], expected: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let sent = client.send_body(body.to_vec(), &Uuid::now_v7().to_string()).await.context("batch ingest failed")?;
    ensure!(
        sent.acks.len() == expected && !sent.replayed,
        "a batch of {expected} came back with {} acks",
        sent.acks.len()
    );
    Ok(started.elapsed())
}

/// Runs the phase on a fresh server under `parent`. `marker` is the word only the last event carries,
/// in organisation `marker_org`.
pub async fn run(
    events: &[String],
    marker: &str,
    marker_org: &str,
    senders: usize,
    parent: &Path,
) -> anyhow::Result<BatchIngest> {
    ensure!(!events.is_empty(), "no events to send");
    let bodies = Arc::new(bodies(events));
    let sizes: Arc<Vec<usize>> = Arc::new(events.chunks(BATCH).map(<[String]>::len).collect());
    let server = Server::start(parent, "batch").await?;
    let bar = progress(events.len() as u64, "(a) batch ingest");

    let probe = Probe::start(&server.client).await;
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let concurrent = bodies.len() - 1;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..senders.max(1) {
        let (client, bodies, sizes, next, bar) =
            (server.client.clone(), bodies.clone(), sizes.clone(), next.clone(), bar.clone());
        tasks.spawn(async move {
            let mut latency = Samples::with_capacity(concurrent / senders.max(1) + 1);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= concurrent {
                    return anyhow::Ok(latency);
                }
                latency.push(send(&client, &bodies[i], sizes[i]).await?);
                bar.inc(sizes[i] as u64);
            }
        });
    }
    let mut latency = Samples::default();
    while let Some(result) = tasks.join_next().await {
        latency.extend(result.context("a sender panicked")??);
    }
    let last = bodies.len() - 1;
    latency.push(send(&server.client, &bodies[last], sizes[last]).await?);
    let acked = Instant::now();
    let elapsed = acked - started;
    let activity = probe.finish(&server.client).await;
    bar.finish_and_clear();

    let params = [("organization_id", marker_org), ("text", marker), ("limit", "1")];
    let searchable_after = loop {
        let page = server.client.list_events(&params).await.context("the full-text query failed")?;
        if !page.data.is_empty() {
            break acked.elapsed();
        }
        if acked.elapsed() > SEARCH_DEADLINE {
            bail!("the last event was still not searchable {} s after its acknowledgement", SEARCH_DEADLINE.as_secs());
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    server.stop().await?;
    Ok(BatchIngest { events: events.len() as u64, senders, elapsed, latency, activity, searchable_after })
}
