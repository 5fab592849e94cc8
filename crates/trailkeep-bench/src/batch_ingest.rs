//! Phase (a): HTTP batch ingest, then the "searchable within a second" check.
//!
//! The event set is cut into batches of [`BATCH`] events, each serialised once up front so that the
//! clock measures the server rather than the load generator. A few senders share one client and take
//! batches from a common counter until all but the last are acknowledged; the last batch, whose final
//! event carries the marker word, then goes alone, so its acknowledgement is the last one and its
//! commit the newest. From that acknowledgement the phase polls a full-text query for the marker until
//! the event comes back: how long a just-acknowledged event takes to become searchable, with whatever
//! indexing backlog the ingest left behind.
//!
//! With sealing on, the phase also waits, from that same acknowledgement, until every organisation's
//! newest signed checkpoint covers its last event: ingest counted to that point is the rate at which
//! events end up sealed, which the sealer, off the commit path, may trail. Run again with sealing off,
//! on the same events, it gives the rate that sealing's cost is read against.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use trailkeep_client::Client;
use trailkeep_core::OrgId;
use uuid::Uuid;

use crate::coverage::{Coverage, organisation, wait_until_covered};
use crate::harness::{Sealing, Server};
use crate::probe::{Activity, Probe};
use crate::stats::{Samples, progress};

/// Events per request.
pub const BATCH: usize = 1000;
/// How long the searchability check, and the wait for checkpoints, wait before giving up.
const SEARCH_DEADLINE: Duration = Duration::from_secs(600);
const POLL_EVERY: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct BatchIngest {
    pub events: u64,
    pub senders: usize,
    /// From the first request until the last acknowledgement.
    pub elapsed: Duration,
    /// Time from sending a batch to its acknowledgement.
    pub latency: Samples,
    /// What the server did while ingesting.
    pub activity: Activity,
    /// Time from the last acknowledgement until the marker was found by full-text search.
    pub searchable_after: Duration,
    /// With sealing on, time from the last acknowledgement until signed checkpoints covered every event.
    pub sealed_after: Option<Duration>,
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

/// Sends one batch; returns how long it took and the `seq` given to each of its events, in order.
async fn send(client: &Client, body: &[u8], expected: usize) -> anyhow::Result<(Duration, Vec<u64>)> {
    let started = Instant::now();
    let sent = client.send_body(body.to_vec(), &Uuid::now_v7().to_string()).await.context("batch ingest failed")?;
    ensure!(
        sent.acks.len() == expected && !sent.replayed,
        "a batch of {expected} came back with {} acks",
        sent.acks.len()
    );
    Ok((started.elapsed(), sent.acks.iter().map(|a| a.seq).collect()))
}

/// The newest `seq` of each organisation: `orgs` holds each event's organisation, `seqs` each batch's
/// acknowledged `seq`s by batch number.
fn last_seqs(orgs: &[OrgId], seqs: &[(usize, Vec<u64>)]) -> HashMap<OrgId, u64> {
    let mut last: HashMap<OrgId, u64> = HashMap::new();
    for (batch, acked) in seqs {
        for (org, &seq) in orgs[batch * BATCH..].iter().zip(acked) {
            let newest = last.entry(org.clone()).or_default();
            *newest = (*newest).max(seq);
        }
    }
    last
}

/// Waits from `acked` until the newest checkpoint of every organisation covers its `last` event, and
/// returns how long that took.
async fn sealed_after(server: &Server, last: &HashMap<OrgId, u64>, acked: Instant) -> anyhow::Result<Duration> {
    let mut coverage = Coverage::default();
    for (org, &seq) in last {
        coverage.acknowledged(org, seq, acked);
    }
    if !wait_until_covered(server.store.as_ref(), &mut coverage, SEARCH_DEADLINE).await? {
        bail!(
            "the last events were still not under a signed checkpoint {} s after their acknowledgement",
            SEARCH_DEADLINE.as_secs()
        );
    }
    Ok(coverage.last_resolved().map_or(Duration::ZERO, |at| at.saturating_duration_since(acked)))
}

/// Polls a full-text query for the marker from `acked` until the event comes back.
async fn searchable_after(client: &Client, marker: &str, marker_org: &str, acked: Instant) -> anyhow::Result<Duration> {
    let params = [("organization_id", marker_org), ("text", marker), ("limit", "1")];
    loop {
        let page = client.list_events(&params).await.context("the full-text query failed")?;
        if !page.data.is_empty() {
            return Ok(acked.elapsed());
        }
        if acked.elapsed() > SEARCH_DEADLINE {
            bail!("the last event was still not searchable {} s after its acknowledgement", SEARCH_DEADLINE.as_secs());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Runs the phase on a fresh server under `parent`. `marker` is the word only the last event carries,
/// in organisation `marker_org`.
pub async fn run(
    events: &[String],
    marker: &str,
    marker_org: &str,
    senders: usize,
    sealing: Sealing,
    parent: &Path,
) -> anyhow::Result<BatchIngest> {
    let (label, what) = match sealing {
        Sealing::On => ("batch", "(a) batch ingest"),
        Sealing::Off => ("batch-unsealed", "(a) sealing off"),
    };
    let server = Server::start_with(parent, label, sealing).await?;
    run_on(server, events, marker, marker_org, senders, sealing, what).await
}

/// Runs the phase on `server`, whose store is empty, and stops it at the end. `sealing` says whether the
/// server's store seals; `what` labels the progress bar.
pub async fn run_on(
    server: Server,
    events: &[String],
    marker: &str,
    marker_org: &str,
    senders: usize,
    sealing: Sealing,
    what: &str,
) -> anyhow::Result<BatchIngest> {
    ensure!(!events.is_empty(), "no events to send");
    let bodies = Arc::new(bodies(events));
    let sizes: Arc<Vec<usize>> = Arc::new(events.chunks(BATCH).map(<[String]>::len).collect());
    // Read before the clock starts, so that waiting for checkpoints can begin at the last acknowledgement.
    let orgs = match sealing {
        Sealing::On => events.iter().map(|e| organisation(e)).collect::<anyhow::Result<Vec<_>>>()?,
        Sealing::Off => Vec::new(),
    };
    let bar = progress(events.len() as u64, what);

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
            let mut seqs = Vec::with_capacity(concurrent / senders.max(1) + 1);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= concurrent {
                    return anyhow::Ok((latency, seqs));
                }
                let (took, acked) = send(&client, &bodies[i], sizes[i]).await?;
                latency.push(took);
                seqs.push((i, acked));
                bar.inc(sizes[i] as u64);
            }
        });
    }
    let mut latency = Samples::default();
    let mut seqs = Vec::with_capacity(bodies.len());
    while let Some(result) = tasks.join_next().await {
        let (sender_latency, sender_seqs) = result.context("a sender panicked")??;
        latency.extend(sender_latency);
        seqs.extend(sender_seqs);
    }
    let last = bodies.len() - 1;
    let (took, acked_seqs) = send(&server.client, &bodies[last], sizes[last]).await?;
    let acked = Instant::now();
    let elapsed = acked - started;
    latency.push(took);
    seqs.push((last, acked_seqs));
    let activity = probe.finish(&server.client).await;
    bar.finish_and_clear();

    let searchable = searchable_after(&server.client, marker, marker_org, acked);
    let (searchable_after, sealed_after) = match sealing {
        Sealing::On => {
            let last_seqs = last_seqs(&orgs, &seqs);
            let (searchable, sealed) = tokio::join!(searchable, sealed_after(&server, &last_seqs, acked));
            (searchable?, Some(sealed?))
        }
        Sealing::Off => (searchable.await?, None),
    };
    server.stop().await?;
    Ok(BatchIngest { events: events.len() as u64, senders, elapsed, latency, activity, searchable_after, sealed_after })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_seq_of_each_organisation_comes_from_the_acks_of_its_events() {
        let org = |id: &str| OrgId::parse(id).unwrap();
        // Two batches, the second of two events only; answered in the other order.
        let mut orgs = vec![org("a"); BATCH];
        orgs[BATCH - 1] = org("b");
        orgs.extend([org("b"), org("a")]);
        let first: Vec<u64> = (1..BATCH as u64).chain([1]).collect();
        let seqs = vec![(1, vec![2, BATCH as u64]), (0, first)];
        let last = last_seqs(&orgs, &seqs);
        assert_eq!(last.len(), 2);
        assert_eq!(last[&org("a")], BATCH as u64);
        assert_eq!(last[&org("b")], 2);
    }
}
