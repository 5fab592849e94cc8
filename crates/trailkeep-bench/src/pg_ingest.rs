//! Phase (p): HTTP batch ingest into PostgreSQL, beside a raw `COPY` of the same rows in the same run.
//!
//! First the server, in-process as in (a), keeps its data in a fresh database of the phase's cluster
//! (as `trailkeep serve --database-url` does: migrated on start, the store running as a role that row-level
//! security binds, the sealer and the full-text indexer following the log off the commit path), and
//! the events of (a) are sent the same way: batches of 1,000 through the client crate from the same
//! number of senders, then the searchability and sealing checks.
//!
//! Then the ceiling: a second fresh database, migrated by the same migrations (the same `events` table,
//! partitions and indexes), takes the very same events as rows with `COPY … FROM STDIN (FORMAT binary)`
//! in transactions of 1,000 rows, from as many connections as there were senders, with the same
//! durability (`synchronous_commit` on). The events are validated up front, as the server would on
//! receipt; inside the clock each row costs what the writer pays for it: numbered from a
//! per-organisation counter, turned into the stored event, serialised to JSON and cut into the columns
//! the writer inserts ([`trailkeep_postgres::row::EventRows`]). Neither HTTP, nor idempotency records,
//! nor counter rows, nor the full-text index are included: this is the ceiling, not a model of the
//! server. `COPY` refuses roles that row-level security binds, so it runs as the schema's owner.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::task::JoinSet;
use trailkeep_core::NewEvent;
use trailkeep_postgres::row::EventRows;
use trailkeep_postgres::testing::SERVICE_ROLE;

use crate::batch_ingest::{self, BATCH, BatchIngest};
use crate::harness::{Sealing, Server};
use crate::pg::Cluster;
use crate::stats::progress;

const INGEST_DATABASE: &str = "bench_ingest";
const COPY_DATABASE: &str = "bench_copy";

#[derive(Debug, Clone, Copy)]
pub struct CopyRun {
    pub rows: u64,
    pub connections: usize,
    pub elapsed: Duration,
    /// The database's size afterwards.
    pub disk_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct PgIngest {
    pub version: String,
    pub http: BatchIngest,
    /// The ingest database's size once the server stopped: events, full-text rows, the ledger.
    pub http_disk_bytes: u64,
    pub copy: CopyRun,
}

fn now_ms() -> i64 {
    trailkeep_server::now_ms()
}

/// Runs the phase in `cluster`; the server's data directory goes under `parent`.
pub async fn run(
    cluster: &Cluster,
    events: &[String],
    marker: &str,
    marker_org: &str,
    senders: usize,
    parent: &Path,
) -> anyhow::Result<PgIngest> {
    cluster.create(INGEST_DATABASE)?;
    let http = async {
        let server = Server::start_on(parent, "pg-batch", Sealing::On, &cluster.backend(INGEST_DATABASE)).await?;
        let figures =
            batch_ingest::run_on(server, events, marker, marker_org, senders, Sealing::On, "(p) HTTP ingest").await?;
        let bytes = cluster.database_bytes(INGEST_DATABASE).await?;
        anyhow::Ok((figures, bytes))
    }
    .await;
    cluster.drop_database(INGEST_DATABASE)?;
    let (http, http_disk_bytes) = http?;
    eprintln!("(p) HTTP ingest done: {:.1} s", http.elapsed.as_secs_f64());

    cluster.create(COPY_DATABASE)?;
    let copy = copy(cluster, events, senders).await;
    cluster.drop_database(COPY_DATABASE)?;
    let copy = copy?;
    eprintln!("(p) COPY done: {:.1} s", copy.elapsed.as_secs_f64());
    Ok(PgIngest { version: cluster.version.clone(), http, http_disk_bytes, copy })
}

/// The raw `COPY` of `events` into a freshly migrated [`COPY_DATABASE`].
async fn copy(cluster: &Cluster, events: &[String], connections: usize) -> anyhow::Result<CopyRun> {
    let connections = connections.max(1);
    trailkeep_postgres::migrate(&cluster.owner_config(COPY_DATABASE), None, SERVICE_ROLE)
        .await
        .context("cannot migrate the COPY database")?;
    let events = crate::engine::validate(events, now_ms())?;
    // Each event's seq, numbered in order per organisation as the writer numbers them.
    let mut last: HashMap<&str, u64> = HashMap::new();
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| {
            let seq = last.entry(e.organization_id.as_str()).or_insert(0);
            *seq += 1;
            *seq
        })
        .collect();
    let batches: Arc<Vec<(Vec<NewEvent>, Vec<u64>)>> = Arc::new(
        events.chunks(BATCH).zip(seqs.chunks(BATCH)).map(|(events, seqs)| (events.to_vec(), seqs.to_vec())).collect(),
    );
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        clients.push(cluster.owner(COPY_DATABASE).await?);
    }

    let bar = progress(events.len() as u64, "(p) COPY");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for mut client in clients {
        let (batches, next, bar) = (batches.clone(), next.clone(), bar.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((events, seqs)) = batches.get(i) else { return anyhow::Ok(()) };
                let received_at = now_ms();
                let mut rows = EventRows::default();
                for (event, &seq) in events.iter().zip(seqs) {
                    let stored = event.clone().into_event(seq, received_at);
                    let payload = serde_json::to_string(&stored)?;
                    rows.push(&stored, payload);
                }
                let tx = client.transaction().await?;
                rows.copy(&tx).await.context("COPY failed")?;
                tx.commit().await?;
                bar.inc(events.len() as u64);
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.context("a COPY task panicked")??;
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let disk_bytes = cluster.database_bytes(COPY_DATABASE).await?;
    Ok(CopyRun { rows: events.len() as u64, connections, elapsed, disk_bytes })
}
