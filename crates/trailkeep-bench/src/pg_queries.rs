//! Phase (q): the dashboard's queries on a PostgreSQL store holding many events.
//!
//! The store is filled as (d) fills its own, through its own append path (`Store::append`, requests of
//! 5,000 events, two in flight), on a server whose store has no sealer: the reads measured here touch no
//! receipt, tree node or checkpoint, and sealing millions of events would only lengthen loading (and,
//! left running, compete with the queries). The full-text indexer runs as in the service; once it has
//! caught up with every organisation's log, `VACUUM (ANALYZE)` of `events` and `event_search` gives the
//! planner its statistics (autovacuum would, some minutes later) and the visibility map that
//! index-only scans need. Then the server serves the store and each query of (d), and page 20 of the
//! timeline through cursors, runs [`WARMUP`](crate::queries::WARMUP) times unmeasured and `runs` times
//! measured, over HTTP.
//!
//! With a plans file, each query is then explained as the store runs it: a store opened on the same
//! database hands back its own statement for the query, with the same values, run as `EXPLAIN
//! (ANALYZE, BUFFERS)` in the same kind of transaction (`PostgresStore::explain_events`).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::SeedableRng;
use rand::rngs::StdRng;
use trailkeep_core::cursor::{Cursor, Order};
use trailkeep_core::{Filter, OrgId};
use trailkeep_postgres::{PostgresConfig, PostgresStore};
use trailkeep_store::{EventQuery, ReadScope, Store};

use crate::dataset::Population;
use crate::harness::{Prepared, Sealing};
use crate::pg::Cluster;
use crate::queries::{self, DEEP_PAGE, QueryPhase, Shape};
use crate::stats::progress;

const DATABASE: &str = "bench_query";
/// The p99 target of filtered pages, in milliseconds.
pub const FILTERED_TARGET_MS: f64 = 100.0;

#[derive(Debug, Clone)]
pub struct PgQueryPhase {
    pub version: String,
    pub phase: QueryPhase,
    /// How long `VACUUM (ANALYZE)` took after loading.
    pub vacuum: Duration,
    /// The database's size once loaded and indexed.
    pub disk_bytes: u64,
}

/// Runs the phase in `cluster`; the server's data directory goes under `parent`. With `keep`, the
/// database is kept that long after the queries (for a look with `psql`) before it is dropped.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    cluster: &Cluster,
    population: Arc<Population>,
    seed: u64,
    total: u64,
    runs: usize,
    parent: &Path,
    plans: Option<&Path>,
    keep: Duration,
) -> anyhow::Result<PgQueryPhase> {
    cluster.create(DATABASE)?;
    let result = run_in(cluster, population, seed, total, runs, parent, plans).await;
    if !keep.is_zero() {
        eprintln!("(q) keeping the database {DATABASE} for {} s", keep.as_secs());
        tokio::time::sleep(keep).await;
    }
    cluster.drop_database(DATABASE)?;
    result
}

async fn run_in(
    cluster: &Cluster,
    population: Arc<Population>,
    seed: u64,
    total: u64,
    runs: usize,
    parent: &Path,
    plans: Option<&Path>,
) -> anyhow::Result<PgQueryPhase> {
    let prepared = Prepared::build_on(parent, "pg-query", Sealing::Off, &cluster.backend(DATABASE)).await?;
    let now_ms = trailkeep_server::now_ms();
    let started = Instant::now();
    queries::load(prepared.store(), population.clone(), seed, total, now_ms, "(q) loading the store").await?;
    let load = started.elapsed();
    let loaded = Instant::now();
    let owner = cluster.owner(DATABASE).await?;
    wait_for_index(&owner).await?;
    let index_lag = loaded.elapsed();
    eprintln!("(q) loaded in {:.1} s, indexed {:.1} s later", load.as_secs_f64(), index_lag.as_secs_f64());
    let vacuuming = Instant::now();
    owner.batch_execute("VACUUM (ANALYZE) events, event_search").await.context("VACUUM failed")?;
    let vacuum = vacuuming.elapsed();
    let disk_bytes = cluster.database_bytes(DATABASE).await?;

    let server = prepared.serve().await?;
    let measured =
        queries::measure(&server, &population, seed, runs, &Shape::WITH_DEEP_PAGE, FILTERED_TARGET_MS, "(q) queries")
            .await;
    server.stop().await?;
    let measured = measured?;
    if let Some(path) = plans {
        explain(cluster, &population, seed, path).await?;
    }
    Ok(PgQueryPhase {
        version: cluster.version.clone(),
        phase: QueryPhase { events: total, load, index_lag, queries: measured },
        vacuum,
        disk_bytes,
    })
}

/// Waits until the full-text indexer's head has reached the last seq of every organisation.
async fn wait_for_index(owner: &tokio_postgres::Client) -> anyhow::Result<()> {
    let behind = || async {
        let row = owner
            .query_one(
                "SELECT COALESCE(sum(s.last_seq - COALESCE(h.done, 0)), 0)::int8, COALESCE(sum(s.last_seq), 0)::int8 \
                 FROM org_seq s LEFT JOIN follower_heads h ON h.follower = 'index' AND h.org_id = s.org_id",
                &[],
            )
            .await?;
        anyhow::Ok((row.get::<_, i64>(0).max(0) as u64, row.get::<_, i64>(1).max(0) as u64))
    };
    let (_, total) = behind().await?;
    let bar = progress(total, "(q) full-text indexing");
    loop {
        let (left, total) = behind().await?;
        bar.set_length(total);
        bar.set_position(total - left.min(total));
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish_and_clear();
    Ok(())
}

/// Writes `EXPLAIN (ANALYZE, BUFFERS)` of each query, for the first organisation, to `path`.
async fn explain(cluster: &Cluster, population: &Population, seed: u64, path: &Path) -> anyhow::Result<()> {
    let store = PostgresStore::open(&PostgresConfig::new(cluster.service_config(DATABASE)))
        .await
        .context("cannot open the store to explain its queries")?;
    let result = explain_each(&store, population, seed).await;
    store.shutdown().await;
    let text = result?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("(q) plans written to {}", path.display());
    Ok(())
}

async fn explain_each(store: &PostgresStore, population: &Population, seed: u64) -> anyhow::Result<String> {
    let mut rng = StdRng::seed_from_u64(queries::params_seed(seed));
    let org = &population.orgs[0];
    let scope =
        ReadScope { org: OrgId::parse(&org.id).context("a generated organisation id is invalid")?, projects: None };
    let mut out = String::from("# Plans of the store's page queries\n");
    for shape in Shape::WITH_DEEP_PAGE {
        let params = shape.params(org, &mut rng);
        let pairs: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| !matches!(*k, "organization_id" | "limit"))
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let filter = Filter::from_params(&pairs, trailkeep_server::now_ms())
            .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
        let mut query = EventQuery { filter, order: Order::Desc, limit: 50, after: None };
        if shape == Shape::DeepPage {
            query.after = Some(cursor_to_page(store, &scope, &query, DEEP_PAGE).await?);
        }
        let shown: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "\n## {} ({})\n\n```", shape.name(), shown.join("&"));
        let plan = store.explain_events(&scope, &query).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        out.push_str(plan.as_deref().unwrap_or("(reads nothing)"));
        out.push_str("\n```\n");
    }
    Ok(out)
}

/// The cursor that reads page `page` (from 1) of `query`, found through the store.
async fn cursor_to_page(
    store: &PostgresStore,
    scope: &ReadScope,
    query: &EventQuery,
    page: usize,
) -> anyhow::Result<Cursor> {
    let mut query = query.clone();
    for n in 1..page {
        let read = store.list_events(scope, &query).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        query.after = Some(read.next.with_context(|| format!("the timeline ended at page {n}"))?);
    }
    query.after.context("page 1 has no cursor")
}
