//! Phase (e): how long after its acknowledgement an append is covered by a signed checkpoint.
//!
//! One-event requests go to the real server at a steady, moderate rate, open loop: a request starts
//! every 1/rate seconds whether or not earlier ones were answered, as independent producers would send
//! them, so a slow answer does not slow the load down and hide its own delay. Each request notes its
//! organisation, the `seq` it was given and when its 201 arrived; meanwhile the newest checkpoint of
//! every organisation with appends waiting is read every few milliseconds ([`crate::coverage`]). Every
//! append is a sample. The sealer signs an organisation at most every 500 ms, so the delays spread over
//! about that interval, plus however far the sealer trails the writer.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use trailkeep_client::Client;
use trailkeep_core::OrgId;
use uuid::Uuid;

use crate::coverage::{Coverage, POLL_EVERY, organisation, poll};
use crate::harness::Server;
use crate::stats::{Samples, progress};

/// The most requests in flight: beyond it the load generator waits, and the achieved rate shows it.
const MAX_IN_FLIGHT: usize = 256;
/// How long after the last acknowledgement appends may wait for a checkpoint before they count as
/// never covered.
pub const COVER_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct SealDelay {
    /// Requests sent (one event each), and the rate they were meant to go at.
    pub requests: u64,
    pub rate: f64,
    /// From the first request to the last acknowledgement.
    pub elapsed: Duration,
    /// Time from sending a request to its acknowledgement.
    pub latency: Samples,
    /// Time from an acknowledgement to the first read of a checkpoint covering it, one per append.
    pub delays: Samples,
    /// Appends no checkpoint covered by [`COVER_DEADLINE`] after the last acknowledgement.
    pub uncovered: usize,
}

/// One acknowledged append.
struct Acked {
    org: OrgId,
    seq: u64,
    at: Instant,
    latency: Duration,
}

async fn send_one(client: Client, event: String, org: OrgId) -> anyhow::Result<Acked> {
    let sent_at = Instant::now();
    let sent =
        client.send_body(event.into_bytes(), &Uuid::now_v7().to_string()).await.context("one-event ingest failed")?;
    let at = Instant::now();
    ensure!(sent.acks.len() == 1, "one event came back with {} acks", sent.acks.len());
    Ok(Acked { org, seq: sent.acks[0].seq, at, latency: at - sent_at })
}

/// Sends `requests` one-event requests at `rate` a second, passing each acknowledgement on as it
/// arrives; returns when every request is answered.
async fn send_paced(
    client: Client,
    events: Arc<Vec<String>>,
    requests: usize,
    rate: f64,
    acks: mpsc::UnboundedSender<Acked>,
) -> anyhow::Result<()> {
    // A period that rounds to zero would make `interval` panic; a microsecond is faster than any server.
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate).max(Duration::from_micros(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut in_flight = JoinSet::new();
    let pass_on = |result: Result<anyhow::Result<Acked>, tokio::task::JoinError>| -> anyhow::Result<()> {
        // The receiver only hangs up when the phase has failed already: nothing left to report to.
        let _ = acks.send(result.context("a request task panicked")??);
        Ok(())
    };
    for i in 0..requests {
        ticks.tick().await;
        while let Some(result) = in_flight.try_join_next() {
            pass_on(result)?;
        }
        while in_flight.len() >= MAX_IN_FLIGHT {
            if let Some(result) = in_flight.join_next().await {
                pass_on(result)?;
            }
        }
        let event = events[i % events.len()].clone();
        let org = organisation(&event)?;
        in_flight.spawn(send_one(client.clone(), event, org));
    }
    while let Some(result) = in_flight.join_next().await {
        pass_on(result)?;
    }
    Ok(())
}

/// Runs the phase on a fresh server under `parent`: `requests` one-event requests at `rate` a second.
pub async fn run(events: Arc<Vec<String>>, requests: usize, rate: f64, parent: &Path) -> anyhow::Result<SealDelay> {
    ensure!(!events.is_empty(), "no events to send");
    ensure!(rate.is_finite() && rate > 0.0, "the request rate must be above zero");
    let server = Server::start(parent, "seal-delay").await?;
    let bar = progress(requests as u64, "(e) ack to checkpoint");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    let sender = tokio::spawn(send_paced(server.client.clone(), events, requests, rate, tx));

    let mut coverage = Coverage::default();
    let mut latency = Samples::with_capacity(requests);
    let mut reads = tokio::time::interval(POLL_EVERY);
    reads.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_ack: Option<Instant> = None;
    loop {
        tokio::select! {
            acked = rx.recv(), if last_ack.is_none() => match acked {
                Some(a) => {
                    coverage.acknowledged(&a.org, a.seq, a.at);
                    latency.push(a.latency);
                    bar.inc(1);
                }
                None => last_ack = Some(Instant::now()),
            },
            _ = reads.tick() => {
                poll(server.store.as_ref(), &mut coverage).await?;
                let finished = last_ack.is_some_and(|at| coverage.waiting() == 0 || at.elapsed() > COVER_DEADLINE);
                if finished {
                    break;
                }
            }
        }
    }
    bar.finish_and_clear();
    sender.await.context("the load generator panicked")??;
    let elapsed = last_ack.unwrap_or_else(Instant::now) - started;
    let uncovered = coverage.waiting();
    server.stop().await?;
    Ok(SealDelay { requests: requests as u64, rate, elapsed, latency, delays: coverage.delays().clone(), uncovered })
}
