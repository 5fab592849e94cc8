//! `trailkeep-bench`: measures, in one run, what Trailkeep promises about throughput and latency.
//!
//! (a) HTTP batch ingest through the real server and client, how soon the last event is searchable
//! and how soon it is sealed, then the same ingest with sealing off; (b) one-event requests from many
//! concurrent clients; (c) the raw SQLite engine writing the same rows, without and with FTS5, as the
//! ceilings (a) is judged against; (d) p50/p99 latency of five typical queries on a store of a million
//! events; (e) the delay from an acknowledged append to a signed checkpoint covering it, under a steady
//! moderate load; (v) exporting a self-proving bundle of a million events and verifying it on one
//! thread, beside SHA-256 leaf hashing of the same bytes alone; (p) HTTP batch ingest into PostgreSQL
//! beside a raw `COPY` of the same rows, and (q) the queries of (d), and a deep page, on a PostgreSQL
//! store, with `--pg-plans` writing each statement's plan. Results go to stdout as a table, and with
//! `--out` to a Markdown section; progress goes to stderr.
//!
//! ```sh
//! cargo run --release -p trailkeep-bench -- [--events N] [--query-events N] [--phases a,e,v] [--out FILE]
//! ```

mod batch_ingest;
mod coverage;
mod dataset;
mod engine;
mod export_throughput;
mod harness;
mod pg;
mod pg_ingest;
mod pg_queries;
mod probe;
mod queries;
mod report;
mod seal_delay;
mod single_ingest;
mod soak;
mod stats;
mod verify_bundle;
mod wrk_ingest;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};

use crate::dataset::{Population, generate, marker_word};
use crate::harness::Sealing;
use crate::report::{Machine, Report};

/// Audit events are many small JSON values: parsing, canonicalising and serialising them allocates
/// heavily, and mimalloc serves those allocations faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// HTTP batch ingest, the searchability and sealing checks, then the same with sealing off.
    A,
    /// One event per request from many clients.
    B,
    /// The raw SQLite engine, without and with FTS5.
    C,
    /// Query latency on a large store.
    D,
    /// Delay from an acknowledged append to a signed checkpoint covering it.
    E,
    /// Export of a self-proving bundle, and its verification on one thread beside the hashing floor.
    V,
    /// Export of a million events over HTTP as NDJSON, CSV and Parquet beside the raw engine, with the
    /// server's memory watched (its own command: not in the default phases).
    X,
    /// A long mixed load (ingest, queries, proofs, exports) with memory watched (its own command: not in
    /// the default phases).
    S,
    /// HTTP batch ingest into PostgreSQL beside a raw `COPY` of the same rows (needs PostgreSQL's
    /// binaries; not in the default phases).
    P,
    /// Query latency on a large PostgreSQL store, and with `--pg-plans` the plans of its statements (needs
    /// PostgreSQL's binaries; not in the default phases).
    Q,
}

/// Measures Trailkeep's ingest throughput, the raw engine's ceilings, query latency, what sealing
/// costs and delays, and how fast a self-proving bundle is exported and verified, against the project's
/// targets.
#[derive(Debug, Parser)]
#[command(name = "trailkeep-bench")]
struct Args {
    /// Events sent in batches of 1,000 in phase (a) and written by the raw engine in phase (c).
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Events in the store that phase (d) queries.
    #[arg(long, default_value_t = 1_000_000)]
    query_events: u64,
    /// One-event requests in phase (b).
    #[arg(long, default_value_t = 40_000)]
    single_events: u64,
    /// Concurrent clients in phase (b).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// How long phase (b) runs again with `wrk` as the load generator, in seconds.
    #[arg(long, default_value_t = 10)]
    wrk_seconds: u64,
    /// Pairs of phase (a) runs, sealing on and off, interleaved (on-off, off-on, …) so that drift in the
    /// machine's speed falls on both sides; the cost of sealing is the median of the pairs' ratios.
    #[arg(long, default_value_t = 1)]
    seal_pairs: usize,
    /// Concurrent batch senders in phase (a).
    #[arg(long, default_value_t = 4)]
    senders: usize,
    /// Measured runs of each query in phase (d).
    #[arg(long, default_value_t = 200)]
    query_runs: usize,
    /// One-event requests in phase (e), each a sample of the delay to a covering checkpoint.
    #[arg(long, default_value_t = 2_000)]
    seal_requests: u64,
    /// Requests a second in phase (e): a steady, moderate load.
    #[arg(long, default_value_t = 200.0)]
    seal_rate: f64,
    /// Events of one organisation in the bundle that phase (v) exports and verifies.
    #[arg(long, default_value_t = 1_000_000)]
    verify_events: u64,
    /// Events of one organisation that phase (x) exports.
    #[arg(long, default_value_t = 1_000_000)]
    export_events: u64,
    /// How long phase (s) runs, in seconds.
    #[arg(long, default_value_t = 600)]
    soak_secs: u64,
    /// Events a second that phase (s) sends in batches of 1,000.
    #[arg(long, default_value_t = 10_000.0)]
    soak_batch_events: f64,
    /// One-event requests a second in phase (s).
    #[arg(long, default_value_t = 1_000.0)]
    soak_single: f64,
    /// Queries a second in phase (s).
    #[arg(long, default_value_t = 20.0)]
    soak_queries: f64,
    /// Inclusion proofs a second in phase (s).
    #[arg(long, default_value_t = 10.0)]
    soak_proofs: f64,
    /// Events in the PostgreSQL store that phase (q) queries.
    #[arg(long, default_value_t = 1_000_000)]
    pg_events: u64,
    /// Write `EXPLAIN (ANALYZE, BUFFERS)` of each query of phase (q), as the store runs it, to FILE.
    #[arg(long, value_name = "FILE")]
    pg_plans: Option<PathBuf>,
    /// Keep phase (q)'s database this many seconds after its queries before dropping it, to look at it.
    #[arg(long, default_value_t = 0)]
    pg_keep_secs: u64,
    /// Seed of the event generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Phases to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "a,b,c,d,e,v")]
    phases: Vec<Phase>,
    /// Where the scratch data directories go (default: the system's temporary directory). It should be
    /// on the kind of disk being measured: fsync speed decides the ingest figures.
    #[arg(long, value_name = "DIR")]
    scratch: Option<PathBuf>,
    /// Also write the results as a Markdown section to FILE (replacing its contents).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

impl Args {
    /// The command that reproduces this run, without machine-specific paths.
    fn command(&self) -> String {
        let mut command = format!(
            "cargo run --release -p trailkeep-bench -- --events {} --query-events {}",
            self.events, self.query_events
        );
        let defaults = Args::parse_from(["trailkeep-bench"]);
        let mut flag = |name: &str, value: String, default: String| {
            if value != default {
                command.push_str(&format!(" --{name} {value}"));
            }
        };
        flag("single-events", self.single_events.to_string(), defaults.single_events.to_string());
        flag("clients", self.clients.to_string(), defaults.clients.to_string());
        flag("senders", self.senders.to_string(), defaults.senders.to_string());
        flag("seal-pairs", self.seal_pairs.to_string(), defaults.seal_pairs.to_string());
        flag("query-runs", self.query_runs.to_string(), defaults.query_runs.to_string());
        flag("seal-requests", self.seal_requests.to_string(), defaults.seal_requests.to_string());
        flag("seal-rate", self.seal_rate.to_string(), defaults.seal_rate.to_string());
        flag("verify-events", self.verify_events.to_string(), defaults.verify_events.to_string());
        flag("export-events", self.export_events.to_string(), defaults.export_events.to_string());
        flag("soak-secs", self.soak_secs.to_string(), defaults.soak_secs.to_string());
        flag("soak-batch-events", self.soak_batch_events.to_string(), defaults.soak_batch_events.to_string());
        flag("soak-single", self.soak_single.to_string(), defaults.soak_single.to_string());
        flag("soak-queries", self.soak_queries.to_string(), defaults.soak_queries.to_string());
        flag("soak-proofs", self.soak_proofs.to_string(), defaults.soak_proofs.to_string());
        flag("pg-events", self.pg_events.to_string(), defaults.pg_events.to_string());
        if let Some(plans) = &self.pg_plans {
            flag("pg-plans", plans.display().to_string(), String::new());
        }
        flag("seed", self.seed.to_string(), defaults.seed.to_string());
        let phases = |p: &[Phase]| p.iter().map(|p| format!("{p:?}").to_lowercase()).collect::<Vec<_>>().join(",");
        flag("phases", phases(&self.phases), phases(&defaults.phases));
        command
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scratch = args.scratch.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&scratch).context("cannot create the scratch directory")?;
    let run = |p: Phase| args.phases.contains(&p);
    let population = Arc::new(Population::new(args.seed));

    let mut report = Report {
        command: args.command(),
        machine: Machine::detect(),
        mean_event_bytes: None,
        batch: None,
        batch_unsealed: None,
        seal_pairs: Vec::new(),
        single: None,
        wrk: None,
        engine: None,
        queries: None,
        seal_delay: None,
        bundle: None,
        pg_ingest: None,
        pg_queries: None,
    };
    let cluster = match run(Phase::P) || run(Phase::Q) {
        true => Some(pg::Cluster::start()?),
        false => None,
    };

    if run(Phase::A) || run(Phase::B) || run(Phase::C) || run(Phase::E) || run(Phase::P) {
        eprintln!("generating {} events", stats::thousands(args.events as f64));
        let events = Arc::new(generate(&population, args.seed, args.events.max(1), trailkeep_server::now_ms()));
        report.mean_event_bytes = Some(events.iter().map(String::len).sum::<usize>() as f64 / events.len() as f64);

        let last: serde_json::Value = serde_json::from_str(events.last().context("no events")?)?;
        let marker_org = last["organization_id"].as_str().context("the last event has no organisation")?;
        let marker = marker_word(args.seed);
        if let (true, Some(cluster)) = (run(Phase::P), &cluster) {
            report.pg_ingest =
                Some(pg_ingest::run(cluster, &events, &marker, marker_org, args.senders, &scratch).await?);
        }
        if run(Phase::A) {
            let pairs = args.seal_pairs.max(1);
            for pair in 0..pairs {
                let order = if pair % 2 == 0 { [Sealing::On, Sealing::Off] } else { [Sealing::Off, Sealing::On] };
                let (mut on, mut off) = (None, None);
                for sealing in order {
                    let figures =
                        batch_ingest::run(&events, &marker, marker_org, args.senders, sealing, &scratch).await?;
                    let (slot, label) = match sealing {
                        Sealing::On => (&mut on, "on"),
                        Sealing::Off => (&mut off, "off"),
                    };
                    eprintln!(
                        "(a) pair {}/{pairs} done, sealing {label}: {:.1} s",
                        pair + 1,
                        figures.elapsed.as_secs_f64()
                    );
                    *slot = Some(figures);
                }
                let (on, off) = (on.context("no sealing-on run")?, off.context("no sealing-off run")?);
                if pair == 0 {
                    report.batch = Some(on.clone());
                    report.batch_unsealed = Some(off.clone());
                }
                if pairs > 1 {
                    report.seal_pairs.push((on, off));
                }
            }
        }
        if run(Phase::B) {
            let figures =
                single_ingest::run(events.clone(), args.single_events as usize, args.clients, &scratch).await?;
            eprintln!("(b) done: {:.1} s", figures.elapsed.as_secs_f64());
            report.single = Some(figures);
            report.wrk = wrk_ingest::run(events.clone(), args.wrk_seconds, args.clients, &scratch).await?;
        }
        if run(Phase::C) {
            let (events, scratch) = (events.clone(), scratch.clone());
            let figures = tokio::task::spawn_blocking(move || engine::run(&events, &scratch))
                .await
                .context("the engine phase panicked")??;
            eprintln!("(c) done");
            report.engine = Some(figures);
        }
        if run(Phase::E) {
            let figures =
                seal_delay::run(events.clone(), args.seal_requests as usize, args.seal_rate, &scratch).await?;
            eprintln!("(e) done: {:.1} s", figures.elapsed.as_secs_f64());
            report.seal_delay = Some(figures);
        }
    }
    if run(Phase::D) {
        let figures =
            queries::run(population.clone(), args.seed, args.query_events.max(1), args.query_runs.max(1), &scratch)
                .await?;
        eprintln!("(d) done");
        report.queries = Some(figures);
    }
    if run(Phase::V) {
        let figures = verify_bundle::run(&population, args.seed, args.verify_events.max(1), &scratch).await?;
        eprintln!("(v) done");
        report.bundle = Some(figures);
    }

    if let (true, Some(cluster)) = (run(Phase::Q), &cluster) {
        let figures = pg_queries::run(
            cluster,
            population.clone(),
            args.seed,
            args.pg_events.max(1),
            args.query_runs.max(1),
            &scratch,
            args.pg_plans.as_deref(),
            std::time::Duration::from_secs(args.pg_keep_secs),
        )
        .await?;
        eprintln!("(q) done");
        report.pg_queries = Some(figures);
    }
    drop(cluster);

    let export = match run(Phase::X) {
        true => Some(export_throughput::run(&population, args.seed, args.export_events.max(1), &scratch).await?),
        false => None,
    };

    let soak = match run(Phase::S) {
        true => {
            let load = soak::Load {
                seconds: args.soak_secs.max(1),
                batch_events: args.soak_batch_events,
                single_requests: args.soak_single,
                queries: args.soak_queries,
                proofs: args.soak_proofs,
            };
            Some(soak::run(&population, args.seed, load, &scratch).await?)
        }
        false => None,
    };

    println!("{}", report.table());
    if let Some(export) = &export {
        println!("{}", export.table());
    }
    if let Some(soak) = &soak {
        println!("{}", soak.table());
    }
    if let Some(path) = &args.out {
        let measured_at = trailkeep_core::time::format_millis(trailkeep_server::now_ms());
        let export = export.as_ref().map(export_throughput::ExportPhase::markdown).unwrap_or_default();
        let soak = soak.as_ref().map(soak::Soak::markdown).unwrap_or_default();
        std::fs::write(path, report.markdown(&measured_at) + &export + &soak)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
