//! Phase (b): one event per request from many concurrent clients.
//!
//! Each of the clients is its own task looping over "take the next event, POST it, wait for the 201",
//! all through one client (one connection each, from its pool), as many small producers would. Events
//! cycle through the shared event set. Throughput depends on the writer's group commit: with one event
//! per request, only sharing an fsync between requests can go past the disk's fsync rate.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use uuid::Uuid;

use crate::harness::Server;
use crate::probe::{Activity, Probe};
use crate::stats::{Samples, progress};

#[derive(Debug, Clone)]
pub struct SingleIngest {
    pub events: u64,
    pub clients: usize,
    pub elapsed: Duration,
    /// Time from sending a request to its acknowledgement.
    pub latency: Samples,
    /// What the server did meanwhile.
    pub activity: Activity,
}

/// Runs the phase on a fresh server under `parent`: `total` requests from `clients` concurrent tasks.
pub async fn run(
    events: Arc<Vec<String>>,
    total: usize,
    clients: usize,
    parent: &Path,
) -> anyhow::Result<SingleIngest> {
    ensure!(!events.is_empty(), "no events to send");
    let server = Server::start(parent, "single").await?;
    let bar = progress(total as u64, "(b) one-event requests");
    let next = Arc::new(AtomicUsize::new(0));
    let probe = Probe::start(&server.client).await;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients.max(1) {
        let (client, events, next, bar) = (server.client.clone(), events.clone(), next.clone(), bar.clone());
        tasks.spawn(async move {
            let mut latency = Samples::with_capacity(total / clients.max(1) + 1);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return anyhow::Ok(latency);
                }
                let body = events[i % events.len()].clone().into_bytes();
                let sent_at = Instant::now();
                let sent =
                    client.send_body(body, &Uuid::now_v7().to_string()).await.context("one-event ingest failed")?;
                ensure!(sent.acks.len() == 1, "one event came back with {} acks", sent.acks.len());
                latency.push(sent_at.elapsed());
                bar.inc(1);
            }
        });
    }
    let mut latency = Samples::with_capacity(total);
    while let Some(result) = tasks.join_next().await {
        latency.extend(result.context("a client task panicked")??);
    }
    let elapsed = started.elapsed();
    let activity = probe.finish(&server.client).await;
    bar.finish_and_clear();
    server.stop().await?;
    Ok(SingleIngest { events: total as u64, clients, elapsed, latency, activity })
}
