//! The results: a table on stdout, and optionally a Markdown section with the command and the machine.
//!
//! Every figure is set against its target: batch ingest over HTTP against the raw engine's ceilings
//! (at least half the plain-SQLite rate, and at least the SQLite-with-FTS5 rate, since indexing is
//! kept off the commit path), a just-acknowledged event searchable within a second, sealing costing
//! batch ingest at most a tenth of its rate (both until acknowledgement and until every event is under a
//! signed checkpoint), 20,000 one-event requests a second, query p99s of 50 ms for filtered pages and
//! 200 ms for full text, a p99 of a second from an acknowledged append to a signed checkpoint
//! covering it, and verification of a self-proving bundle at 500,000 events a second on one core, set
//! beside the SHA-256 leaf hashing of the same bytes that any verifier pays.

use std::fmt::Write as _;

use crate::batch_ingest::{BATCH, BatchIngest};
use crate::engine::{EngineCeilings, EngineRun, ROWS_PER_TRANSACTION};
use crate::pg_ingest::PgIngest;
use crate::pg_queries::PgQueryPhase;
use crate::probe::Activity;
use crate::queries::QueryPhase;
use crate::seal_delay::{COVER_DEADLINE, SealDelay};
use crate::single_ingest::SingleIngest;
use crate::stats::{rate, thousands};
use crate::verify_bundle::{BundleVerify, RUNS};
use crate::wrk_ingest::WrkIngest;

pub const BATCH_VS_PLAIN: f64 = 0.5;
pub const BATCH_VS_FTS: f64 = 1.0;
pub const SEARCHABLE_MS: f64 = 1000.0;
pub const SINGLE_EVENTS_PER_SEC: f64 = 20_000.0;
/// Batch ingest with sealing on, as a share of the same ingest with sealing off.
pub const SEALED_VS_UNSEALED: f64 = 0.9;
pub const SEAL_DELAY_P99_MS: f64 = 1000.0;
/// Bundle verification on one core.
pub const VERIFY_EVENTS_PER_SEC: f64 = 500_000.0;
/// HTTP batch ingest into PostgreSQL, as a share of a raw `COPY` of the same rows.
pub const PG_HTTP_VS_COPY: f64 = 0.4;

/// What the figures were measured on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
    pub sqlite: &'static str,
}

impl Machine {
    pub fn detect() -> Machine {
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, v)| v.trim()))
            .unwrap_or("unknown")
            .to_owned();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine { cores, cpu, memory_gib: kib / (1024.0 * 1024.0), sqlite: rusqlite::version() }
    }
}

/// Everything one run measured; a phase that was not run is `None`.
#[derive(Debug, Clone)]
pub struct Report {
    pub command: String,
    pub machine: Machine,
    pub mean_event_bytes: Option<f64>,
    pub batch: Option<BatchIngest>,
    /// Phase (a) again, on the same events, with sealing off.
    pub batch_unsealed: Option<BatchIngest>,
    /// With `--seal-pairs` above 1: every interleaved pair of phase (a) runs, sealing on then off.
    pub seal_pairs: Vec<(BatchIngest, BatchIngest)>,
    pub single: Option<SingleIngest>,
    pub wrk: Option<WrkIngest>,
    pub engine: Option<EngineCeilings>,
    pub queries: Option<QueryPhase>,
    pub seal_delay: Option<SealDelay>,
    pub bundle: Option<BundleVerify>,
    pub pg_ingest: Option<PgIngest>,
    pub pg_queries: Option<PgQueryPhase>,
}

/// One line of the table.
struct Row {
    measure: String,
    result: String,
    target: String,
    verdict: String,
}

impl Row {
    fn info(measure: impl Into<String>, result: impl Into<String>) -> Row {
        Row { measure: measure.into(), result: result.into(), target: String::new(), verdict: String::new() }
    }

    /// A figure with a target; `higher_is_better` says which side of the target passes.
    fn check(
        measure: impl Into<String>,
        result: impl Into<String>,
        target: impl Into<String>,
        value: f64,
        goal: f64,
        higher_is_better: bool,
    ) -> Row {
        let ok = if higher_is_better { value >= goal } else { value <= goal };
        let word = if ok { "ok" } else { "MISSED" };
        // A rate is read as a share of its target, a latency as a share of its budget.
        let verdict = if higher_is_better {
            format!("{word} ({:.0}% of target)", value / goal * 100.0)
        } else {
            format!("{word} ({:.0}% of budget)", value / goal * 100.0)
        };
        Row { measure: measure.into(), result: result.into(), target: target.into(), verdict }
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 0 { (sorted[mid - 1] + sorted[mid]) / 2.0 } else { sorted[mid] }
}

fn per_sec(items: u64, elapsed: std::time::Duration, unit: &str) -> String {
    format!("{} {unit}/s", thousands(rate(items, elapsed)))
}

/// The server's side of an ingest phase, on one line.
fn activity(a: &Activity) -> Row {
    Row::info(
        "    process CPU; writer commits",
        format!(
            "{:.2} cores (writer thread {:.2}, indexer {:.2}, sealer {:.2}); {} commits of {} events, \
             writer in commits {:.0}% of the time",
            a.process_cores,
            a.writer_cores,
            a.indexer_cores,
            a.sealer_cores,
            thousands(a.commits),
            thousands(a.events_per_commit),
            a.writer_busy * 100.0
        ),
    )
}

/// Phase (a) with sealing off, and what sealing costs next to it: from one pair of runs, or, with
/// several interleaved pairs, the median of their ratios.
fn unsealed_rows(off: &BatchIngest, on: Option<&BatchIngest>, pairs: &[(BatchIngest, BatchIngest)]) -> Vec<Row> {
    let mut latency = off.latency.clone();
    let unsealed = rate(off.events, off.elapsed);
    let mut rows = vec![
        Row::info("(a) the same with sealing off", per_sec(off.events, off.elapsed, "events")),
        Row::info(
            "    request latency p50 / p99",
            format!("{:.0} / {:.0} ms", latency.percentile_ms(50.0), latency.percentile_ms(99.0)),
        ),
        activity(&off.activity),
    ];
    let Some(on) = on else { return rows };
    let target = format!(">= {:.0}%", SEALED_VS_UNSEALED * 100.0);
    if pairs.len() > 1 {
        let ratios = |sealed: &dyn Fn(&BatchIngest) -> Option<f64>| -> Vec<f64> {
            pairs.iter().filter_map(|(on, off)| Some(sealed(on)? / rate(off.events, off.elapsed))).collect()
        };
        let acked = ratios(&|on| Some(rate(on.events, on.elapsed)));
        let sealed = ratios(&|on| on.sealed_after.map(|after| rate(on.events, on.elapsed + after)));
        let runs = pairs
            .iter()
            .map(|(on, off)| {
                format!("{} / {}", thousands(rate(on.events, on.elapsed)), thousands(rate(off.events, off.elapsed)))
            })
            .collect::<Vec<_>>()
            .join("; ");
        rows.push(Row::info(format!("    {} interleaved pairs, events/s on / off", pairs.len()), runs));
        for (measure, ratios) in [("until acknowledged", acked), ("until sealed", sealed)] {
            if ratios.is_empty() {
                continue;
            }
            let each = ratios.iter().map(|r| format!("{:.1}", r * 100.0)).collect::<Vec<_>>().join(", ");
            let median = median(&ratios);
            rows.push(Row::check(
                format!("    sealing on vs off, {measure}, median of pairs"),
                format!("{:.1}% (pairs: {each})", median * 100.0),
                &target,
                median,
                SEALED_VS_UNSEALED,
                true,
            ));
        }
        return rows;
    }
    let mut share = |measure: &str, sealed: f64| {
        let ratio = sealed / unsealed;
        rows.push(Row::check(measure, format!("{:.1}%", ratio * 100.0), &target, ratio, SEALED_VS_UNSEALED, true));
    };
    share("    sealing on vs off, until acknowledged", rate(on.events, on.elapsed));
    if let Some(after) = on.sealed_after {
        share("    sealing on vs off, until sealed", rate(on.events, on.elapsed + after));
    }
    rows
}

/// Phase (e): from acknowledgement to a covering checkpoint.
fn seal_delay_rows(e: &SealDelay) -> Vec<Row> {
    let (mut delays, mut latency) = (e.delays.clone(), e.latency.clone());
    let p99 = delays.percentile_ms(99.0);
    let mut rows = vec![
        Row::check(
            format!(
                "(e) ack to signed checkpoint, one-event requests at {}/s, {} samples",
                thousands(e.rate),
                thousands(delays.len() as f64)
            ),
            format!(
                "p50 {} / p99 {} / max {} ms",
                thousands(delays.percentile_ms(50.0)),
                thousands(p99),
                thousands(delays.percentile_ms(100.0))
            ),
            format!("p99 <= {} ms", thousands(SEAL_DELAY_P99_MS)),
            p99,
            SEAL_DELAY_P99_MS,
            false,
        ),
        Row::info(
            "    achieved rate; request latency p50 / p99",
            format!(
                "{}; {:.1} / {:.1} ms",
                per_sec(e.requests, e.elapsed, "requests"),
                latency.percentile_ms(50.0),
                latency.percentile_ms(99.0)
            ),
        ),
    ];
    if e.uncovered > 0 {
        // The percentiles above leave these out, so they alone decide the verdict.
        rows.push(Row {
            measure: format!("    appends never covered ({} s after the last ack)", COVER_DEADLINE.as_secs()),
            result: thousands(e.uncovered as f64),
            target: "0".into(),
            verdict: "MISSED".into(),
        });
    }
    rows
}

/// Phase (v): the bundle's export and its verification beside the hashing floor.
fn bundle_rows(v: &BundleVerify) -> Vec<Row> {
    let verified = rate(v.events, v.verify);
    let floor = rate(v.events, v.floor);
    vec![
        Row::info(
            format!("(v) bundle of {} events of one organisation", thousands(v.events as f64)),
            format!(
                "loaded at {}; sealed {:.1} s after the last ack",
                per_sec(v.events, v.load, "events"),
                v.sealed_after.as_secs_f64()
            ),
        ),
        Row::info(
            "    export, GET /v1/bundle to a file",
            format!(
                "{} ({}, {} bytes/event, of which {} the event)",
                per_sec(v.events, v.export, "events"),
                mib(v.bundle_bytes),
                thousands(v.bundle_bytes as f64 / v.events as f64),
                thousands(v.event_bytes as f64 / v.events as f64)
            ),
        ),
        Row::check(
            format!("    verify, one thread, as trailkeep verify reads (median of {RUNS})"),
            format!("{} ({:.2} s)", per_sec(v.events, v.verify, "events"), v.verify.as_secs_f64()),
            format!(">= {} events/s", thousands(VERIFY_EVENTS_PER_SEC)),
            verified,
            VERIFY_EVENTS_PER_SEC,
            true,
        ),
        Row::info(
            "    floor: SHA-256 leaf hash of the same event bytes, in memory",
            format!(
                "{} ({:.2} s, {:.0} MiB/s)",
                per_sec(v.events, v.floor, "events"),
                v.floor.as_secs_f64(),
                v.event_bytes as f64 / (1024.0 * 1024.0) / v.floor.as_secs_f64().max(1e-9)
            ),
        ),
        Row::info(
            "    verify vs floor",
            format!("{:.1}% of the floor's rate (the floor {:.1}x faster)", verified / floor * 100.0, floor / verified),
        ),
        Row::info(
            "    reading the file line by line alone",
            format!("{} ({:.2} s)", per_sec(v.events, v.read, "lines"), v.read.as_secs_f64()),
        ),
    ]
}

/// p50/p99 of each query of a query phase, against its target.
fn query_rows(q: &QueryPhase) -> Vec<Row> {
    q.queries
        .iter()
        .map(|figures| {
            let mut latency = figures.latency.clone();
            let (p50, p99) = (latency.percentile_ms(50.0), latency.percentile_ms(99.0));
            let rows_per_page = figures.rows as f64 / latency.len().max(1) as f64;
            Row::check(
                format!("    {} ({})", figures.shape.name(), figures.shape.example()),
                format!("p50 {p50:.1} / p99 {p99:.1} ms, {rows_per_page:.0} rows"),
                format!("p99 <= {:.0} ms", figures.target_ms),
                p99,
                figures.target_ms,
                false,
            )
        })
        .collect()
}

/// Phase (p): HTTP ingest into PostgreSQL beside a raw `COPY` of the same rows.
fn pg_ingest_rows(p: &PgIngest) -> Vec<Row> {
    let b = &p.http;
    let mut latency = b.latency.clone();
    let http = rate(b.events, b.elapsed);
    let copy = rate(p.copy.rows, p.copy.elapsed);
    let mut rows = vec![
        Row::info(
            format!(
                "(p) PostgreSQL {}: HTTP batch ingest, {}/request, {} senders",
                p.version,
                thousands(BATCH as f64),
                b.senders
            ),
            format!("{} ({} once indexed and sealed)", per_sec(b.events, b.elapsed, "events"), mib(p.http_disk_bytes)),
        ),
        Row::info(
            "    request latency p50 / p99",
            format!("{:.0} / {:.0} ms", latency.percentile_ms(50.0), latency.percentile_ms(99.0)),
        ),
        Row::info(
            "    process CPU (PostgreSQL's own processes not included)",
            format!("{:.2} cores", b.activity.process_cores),
        ),
        Row::info(
            "    last event searchable after its ack",
            format!("{} ms", thousands(b.searchable_after.as_secs_f64() * 1e3)),
        ),
    ];
    if let Some(after) = b.sealed_after {
        rows.push(Row::info(
            "    sealed: every event under a signed checkpoint",
            format!(
                "{}; last checkpoint {} ms after the last ack",
                per_sec(b.events, b.elapsed + after, "events"),
                thousands(after.as_secs_f64() * 1e3)
            ),
        ));
    }
    rows.push(Row::info(
        format!(
            "(p) raw COPY of the same rows, {}/transaction, {} connections",
            thousands(BATCH as f64),
            p.copy.connections
        ),
        format!("{} ({})", per_sec(p.copy.rows, p.copy.elapsed, "rows"), mib(p.copy.disk_bytes)),
    ));
    rows.push(Row::check(
        "    HTTP ingest vs raw COPY",
        format!("{:.1}%", http / copy * 100.0),
        format!(">= {:.0}%", PG_HTTP_VS_COPY * 100.0),
        http / copy,
        PG_HTTP_VS_COPY,
        true,
    ));
    rows
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl Report {
    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let engine_rate = |run: &EngineRun| rate(run.rows, run.elapsed);
        if let Some(b) = &self.batch {
            let mut latency = b.latency.clone();
            let achieved = rate(b.events, b.elapsed);
            rows.push(Row::info(
                format!("(a) HTTP batch ingest, {}/request, {} senders", thousands(BATCH as f64), b.senders),
                per_sec(b.events, b.elapsed, "events"),
            ));
            match &self.engine {
                Some(c) => {
                    let (plain, fts) = (engine_rate(&c.plain), engine_rate(&c.fts));
                    rows.push(Row::check(
                        "    vs (c) SQLite without FTS5",
                        format!("{:.1}%", achieved / plain * 100.0),
                        format!(">= {:.0}%", BATCH_VS_PLAIN * 100.0),
                        achieved / plain,
                        BATCH_VS_PLAIN,
                        true,
                    ));
                    rows.push(Row::check(
                        "    vs (c) SQLite with FTS5",
                        format!("{:.1}%", achieved / fts * 100.0),
                        format!(">= {:.0}%", BATCH_VS_FTS * 100.0),
                        achieved / fts,
                        BATCH_VS_FTS,
                        true,
                    ));
                }
                None => rows.push(Row::info("    vs (c)", "n/a: phase c not run")),
            }
            rows.push(Row::info(
                "    request latency p50 / p99",
                format!("{:.0} / {:.0} ms", latency.percentile_ms(50.0), latency.percentile_ms(99.0)),
            ));
            rows.push(activity(&b.activity));
            let searchable = b.searchable_after.as_secs_f64() * 1e3;
            rows.push(Row::check(
                "    last event searchable after its ack",
                format!("{} ms", thousands(searchable)),
                format!("<= {} ms", thousands(SEARCHABLE_MS)),
                searchable,
                SEARCHABLE_MS,
                false,
            ));
            if let Some(after) = b.sealed_after {
                rows.push(Row::info(
                    "    sealed: every event under a signed checkpoint",
                    format!(
                        "{}; last checkpoint {} ms after the last ack",
                        per_sec(b.events, b.elapsed + after, "events"),
                        thousands(after.as_secs_f64() * 1e3)
                    ),
                ));
            }
        }
        if let Some(u) = &self.batch_unsealed {
            rows.extend(unsealed_rows(u, self.batch.as_ref(), &self.seal_pairs));
        }
        if let Some(s) = &self.single {
            let mut latency = s.latency.clone();
            rows.push(Row::check(
                format!("(b) one event per request, {} clients", s.clients),
                per_sec(s.events, s.elapsed, "events"),
                format!(">= {} events/s", thousands(SINGLE_EVENTS_PER_SEC)),
                rate(s.events, s.elapsed),
                SINGLE_EVENTS_PER_SEC,
                true,
            ));
            rows.push(Row::info(
                "    request latency p50 / p99",
                format!("{:.1} / {:.1} ms", latency.percentile_ms(50.0), latency.percentile_ms(99.0)),
            ));
            rows.push(activity(&s.activity));
        }
        if let Some(w) = &self.wrk {
            rows.push(Row::check(
                format!("(b) the same, {} connections from wrk", w.connections),
                per_sec(w.events, w.elapsed, "events"),
                format!(">= {} events/s", thousands(SINGLE_EVENTS_PER_SEC)),
                rate(w.events, w.elapsed),
                SINGLE_EVENTS_PER_SEC,
                true,
            ));
            rows.push(Row::info(
                "    request latency p50 / p99; non-2xx",
                format!("{:.1} / {:.1} ms; {}", w.p50_ms, w.p99_ms, w.non_2xx),
            ));
            rows.push(activity(&w.activity));
        }
        if let Some(c) = &self.engine {
            rows.push(Row::info(
                format!("(c) SQLite, {} rows/transaction, no FTS5", thousands(ROWS_PER_TRANSACTION as f64)),
                format!("{} ({})", per_sec(c.plain.rows, c.plain.elapsed, "rows"), mib(c.plain.disk_bytes)),
            ));
            rows.push(Row::info(
                "(c) SQLite + FTS5 in the same transaction",
                format!("{} ({})", per_sec(c.fts.rows, c.fts.elapsed, "rows"), mib(c.fts.disk_bytes)),
            ));
        }
        if let Some(q) = &self.queries {
            rows.push(Row::info(
                format!("(d) store of {} events", thousands(q.events as f64)),
                format!(
                    "loaded at {}; index done {:.1} s later",
                    per_sec(q.events, q.load, "events"),
                    q.index_lag.as_secs_f64()
                ),
            ));
            rows.extend(query_rows(q));
        }
        if let Some(p) = &self.pg_ingest {
            rows.extend(pg_ingest_rows(p));
        }
        if let Some(q) = &self.pg_queries {
            rows.push(Row::info(
                format!("(q) PostgreSQL {} store of {} events", q.version, thousands(q.phase.events as f64)),
                format!(
                    "loaded at {}; index done {:.1} s later; VACUUM (ANALYZE) {:.1} s; {} ({} bytes/event)",
                    per_sec(q.phase.events, q.phase.load, "events"),
                    q.phase.index_lag.as_secs_f64(),
                    q.vacuum.as_secs_f64(),
                    mib(q.disk_bytes),
                    thousands(q.disk_bytes as f64 / q.phase.events.max(1) as f64)
                ),
            ));
            rows.extend(query_rows(&q.phase));
        }
        if let Some(e) = &self.seal_delay {
            rows.extend(seal_delay_rows(e));
        }
        if let Some(v) = &self.bundle {
            rows.extend(bundle_rows(v));
        }
        rows
    }

    fn machine_line(&self) -> String {
        let m = &self.machine;
        let mut line =
            format!("{} cores (`nproc`), {}, {:.1} GiB memory, SQLite {}", m.cores, m.cpu, m.memory_gib, m.sqlite);
        if let Some(bytes) = self.mean_event_bytes {
            let _ = write!(line, "; events average {bytes:.0} bytes of JSON");
        }
        line
    }

    /// The table for a terminal.
    pub fn table(&self) -> String {
        let rows = self.rows();
        let header = Row {
            measure: "measure".into(),
            result: "result".into(),
            target: "target".into(),
            verdict: "verdict".into(),
        };
        let width = |f: fn(&Row) -> &str| rows.iter().chain([&header]).map(|r| f(r).chars().count()).max().unwrap_or(0);
        let (w1, w2, w3) = (width(|r| &r.measure), width(|r| &r.result), width(|r| &r.target));
        let mut out = format!("Trailkeep benchmark: {}\n\n", self.machine_line());
        for row in [&header].into_iter().chain(&rows) {
            let line = format!("{:w1$}  {:w2$}  {:w3$}  {}", row.measure, row.result, row.target, row.verdict);
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// A Markdown section: the command, the machine and the table.
    pub fn markdown(&self, measured_at: &str) -> String {
        let mut out = String::from("## Benchmark results\n\n");
        let _ = writeln!(out, "Measured {measured_at} with:\n\n```sh\n{}\n```\n", self.command);
        let _ = writeln!(out, "Machine: {}.\n", self.machine_line());
        out.push_str("| measure | result | target | verdict |\n|---|---|---|---|\n");
        for row in self.rows() {
            let measure = row.measure.trim_start();
            let measure = if measure.len() < row.measure.len() { format!("— {measure}") } else { measure.to_owned() };
            let cells = [measure, row.result, row.target, row.verdict].map(|c| c.replace('|', "\\|"));
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push_str(
            "\nIngest and query figures come from the real server in-process on 127.0.0.1, with the load \
             generator sharing the same cores; the raw-engine rows are SQLite alone writing the same rows. \
             On a shared machine the figures are noisy: read them as orders of magnitude.\n",
        );
        if self.pg_ingest.is_some() || self.pg_queries.is_some() {
            out.push_str(&format!(
                "\nPostgreSQL runs on the same machine, on a unix socket, with these settings on top of its \
                 defaults: {}.\n",
                crate::pg::SETTINGS.iter().map(|(k, v)| format!("`{k}={v}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        out
    }
}
