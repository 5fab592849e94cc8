//! Phase (d): query latency on a store holding many events.
//!
//! The store is filled through its own append path (`Store::append`, in requests of [`LOAD_BATCH`]
//! events, two in flight) rather than over HTTP, which would only make loading slower; a blocking
//! thread generates and validates the next requests meanwhile. Once the full-text indexer has caught up
//! (its watermark in `search.db` reaches the newest row), the server starts serving the same store and
//! each of five typical queries runs [`WARMUP`] times unmeasured, then `runs` times measured, one at a
//! time over HTTP through the client. Parameters vary from run to run: the organisation rotates, and
//! actors and words are drawn at random.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OpenFlags};
use tokio::task::JoinSet;
use trailkeep_client::Client;
use trailkeep_core::NewEvent;
use trailkeep_core::validate::{IngestContext, parse_event};
use trailkeep_store::AppendRequest;

use crate::dataset::{Generator, Org, Population, TOPICS};
use crate::harness::{Prepared, Server};
use crate::stats::{Samples, progress};

/// Events per append while loading.
pub const LOAD_BATCH: u64 = 5000;
/// Unmeasured runs of each query before the measured ones.
pub const WARMUP: usize = 10;
/// The p99 targets, in milliseconds.
pub const FILTERED_TARGET_MS: f64 = 50.0;
pub const FULL_TEXT_TARGET_MS: f64 = 200.0;

/// The page a deep-pagination query reads, following the cursors from the first.
pub const DEEP_PAGE: usize = 20;

/// The five typical queries, and paging deep into an organisation's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Recent,
    ActionWildcard,
    Actor,
    FullText,
    CostRange,
    DeepPage,
}

impl Shape {
    pub const ALL: [Shape; 5] = [Shape::Recent, Shape::ActionWildcard, Shape::Actor, Shape::FullText, Shape::CostRange];
    /// The five, then the deep page.
    pub const WITH_DEEP_PAGE: [Shape; 6] =
        [Shape::Recent, Shape::ActionWildcard, Shape::Actor, Shape::FullText, Shape::CostRange, Shape::DeepPage];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Recent => "org + last 24 h, newest 50",
            Shape::ActionWildcard => "action wildcard",
            Shape::Actor => "actor",
            Shape::FullText => "full-text",
            Shape::CostRange => "AI cost range",
            Shape::DeepPage => "page 20 of the timeline, through cursors",
        }
    }

    /// The query string, with placeholders for what varies.
    pub fn example(self) -> &'static str {
        match self {
            Shape::Recent => "range=24h&limit=50",
            Shape::ActionWildcard => "action=api_key.*&limit=50",
            Shape::Actor => "actor=<email>&limit=50",
            Shape::FullText => "text=<word>&limit=50",
            Shape::CostRange => "cost_min=0.5&limit=50",
            Shape::DeepPage => "limit=50&cursor=<page 19's>",
        }
    }

    /// The p99 target: [`FULL_TEXT_TARGET_MS`] for full text, `filtered_ms` for the others.
    pub fn target_ms(self, filtered_ms: f64) -> f64 {
        if self == Shape::FullText { FULL_TEXT_TARGET_MS } else { filtered_ms }
    }

    /// The query's parameters for `org`; a deep page's cursor is added as the pages are read.
    pub fn params(self, org: &Org, rng: &mut StdRng) -> Vec<(&'static str, String)> {
        let mut params = vec![("organization_id", org.id.clone())];
        match self {
            Shape::Recent => params.push(("range", "24h".into())),
            Shape::ActionWildcard => params.push(("action", "api_key.*".into())),
            Shape::Actor => {
                let member = &org.members[rng.random_range(0..org.members.len())];
                params.push(("actor", member.email.clone()));
            }
            Shape::FullText => params.push(("text", (*TOPICS.choose(rng).unwrap_or(&"invoice")).to_owned())),
            Shape::CostRange => params.push(("cost_min", "0.5".into())),
            Shape::DeepPage => {}
        }
        params.push(("limit", "50".into()));
        params
    }
}

#[derive(Debug, Clone)]
pub struct QueryFigures {
    pub shape: Shape,
    /// The p99 target, in milliseconds.
    pub target_ms: f64,
    pub latency: Samples,
    /// Events returned, over all measured runs.
    pub rows: u64,
}

#[derive(Debug, Clone)]
pub struct QueryPhase {
    pub events: u64,
    pub load: Duration,
    /// From the end of loading until the full-text index held every event.
    pub index_lag: Duration,
    pub queries: Vec<QueryFigures>,
}

/// Fills `store` with `total` generated events; returns when every append is acknowledged. `what` labels
/// the progress bar.
pub async fn load(
    store: Arc<dyn trailkeep_store::Store>,
    population: Arc<Population>,
    seed: u64,
    total: u64,
    now_ms: i64,
    what: &str,
) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<NewEvent>>(2);
    let producer = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut generator = Generator::new(population, seed, total, now_ms);
        let limits = trailkeep_core::Limits::default();
        let cx = IngestContext { limits: &limits, now_ms, default_org: None };
        let mut left = total;
        while left > 0 {
            let n = left.min(LOAD_BATCH);
            let batch = (0..n)
                .map(|_| parse_event(&generator.next_event(), "", cx))
                .collect::<Result<Vec<_>, _>>()
                .context("a generated event is invalid")?;
            if tx.blocking_send(batch).is_err() {
                break;
            }
            left -= n;
        }
        Ok(())
    });
    let bar = progress(total, what);
    let mut in_flight = JoinSet::new();
    let finish = |result: Result<anyhow::Result<u64>, tokio::task::JoinError>| -> anyhow::Result<()> {
        bar.inc(result.context("an append task panicked")??);
        Ok(())
    };
    while let Some(events) = rx.recv().await {
        while in_flight.len() >= 2 {
            if let Some(result) = in_flight.join_next().await {
                finish(result)?;
            }
        }
        let store = store.clone();
        in_flight.spawn(async move {
            let n = events.len() as u64;
            store.append(AppendRequest { events, idempotency: None }).await.context("append failed")?;
            anyhow::Ok(n)
        });
    }
    while let Some(result) = in_flight.join_next().await {
        finish(result)?;
    }
    producer.await.context("the generator panicked")??;
    bar.finish_and_clear();
    Ok(())
}

/// Waits until the full-text watermark in `search.db` reaches the newest row of the events table. `what`
/// labels the progress bar.
pub fn wait_for_index(data_dir: &Path, what: &str) -> anyhow::Result<()> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let main = Connection::open_with_flags(data_dir.join("trailkeep.db"), flags)?;
    let search = Connection::open_with_flags(data_dir.join("search.db"), flags)?;
    let newest: i64 = main.query_row("SELECT COALESCE(MAX(pos), 0) FROM events", [], |r| r.get(0))?;
    let bar = progress(newest.max(0) as u64, what);
    loop {
        let watermark: i64 = search.query_row("SELECT pos FROM watermark WHERE id = 1", [], |r| r.get(0))?;
        bar.set_position(watermark.max(0) as u64);
        if watermark >= newest {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
    Ok(())
}

/// Runs the phase on a fresh server under `parent`.
pub async fn run(
    population: Arc<Population>,
    seed: u64,
    total: u64,
    runs: usize,
    parent: &Path,
) -> anyhow::Result<QueryPhase> {
    let prepared = Prepared::build(parent, "query").await?;
    let now_ms = trailkeep_server::now_ms();
    let started = Instant::now();
    load(prepared.store(), population.clone(), seed, total, now_ms, "(d) loading the store").await?;
    let load_time = started.elapsed();
    let loaded = Instant::now();
    let data_dir = prepared.data_dir();
    tokio::task::spawn_blocking(move || wait_for_index(&data_dir, "(d) full-text indexing"))
        .await
        .context("the index wait panicked")??;
    let index_lag = loaded.elapsed();

    let server = prepared.serve().await?;
    let queries = measure(&server, &population, seed, runs, &Shape::ALL, FILTERED_TARGET_MS, "(d) queries").await?;
    server.stop().await?;
    Ok(QueryPhase { events: total, load: load_time, index_lag, queries })
}

/// The seed of the parameters' random choices, derived from the data set's.
pub fn params_seed(seed: u64) -> u64 {
    seed ^ 0x7175_6572_7900
}

/// Runs each of `shapes` [`WARMUP`] times unmeasured, then `runs` times measured, one at a time over HTTP
/// through `server`'s client. A deep page follows the cursors from the first page, unmeasured, and only
/// the request for page [`DEEP_PAGE`] is timed. `what` labels the progress bar.
pub async fn measure(
    server: &Server,
    population: &Population,
    seed: u64,
    runs: usize,
    shapes: &[Shape],
    filtered_target_ms: f64,
    what: &str,
) -> anyhow::Result<Vec<QueryFigures>> {
    let mut rng = StdRng::seed_from_u64(params_seed(seed));
    let mut queries = Vec::new();
    let bar = progress((shapes.len() * (runs + WARMUP)) as u64, what);
    for &shape in shapes {
        let target_ms = shape.target_ms(filtered_target_ms);
        let mut figures = QueryFigures { shape, target_ms, latency: Samples::with_capacity(runs), rows: 0 };
        for i in 0..WARMUP + runs {
            let org = &population.orgs[i % population.orgs.len()];
            let mut params = shape.params(org, &mut rng);
            if shape == Shape::DeepPage {
                let cursor = cursor_to_page(&server.client, &params, DEEP_PAGE).await?;
                params.push(("cursor", cursor));
            }
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let sent = Instant::now();
            let page = server.client.list_events(&params).await.with_context(|| format!("{} failed", shape.name()))?;
            let took = sent.elapsed();
            if i >= WARMUP {
                figures.latency.push(took);
                figures.rows += page.data.len() as u64;
            }
            bar.inc(1);
        }
        queries.push(figures);
    }
    bar.finish_and_clear();
    Ok(queries)
}

/// The cursor that reads page `page` (from 1) of the query `params`, found by reading the pages before it.
async fn cursor_to_page(client: &Client, params: &[(&'static str, String)], page: usize) -> anyhow::Result<String> {
    let mut cursor: Option<String> = None;
    for n in 1..page {
        let mut query: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Some(c) = &cursor {
            query.push(("cursor", c));
        }
        let read = client.list_events(&query).await.context("reading the pages before a deep page failed")?;
        cursor = Some(read.next_cursor.with_context(|| format!("the timeline ended at page {n}"))?);
    }
    cursor.context("page 1 has no cursor")
}
