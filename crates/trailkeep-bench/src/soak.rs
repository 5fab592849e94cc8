//! Phase (s): a long mixed load on one server, the way a busy deployment sees it.
//!
//! For `--soak-secs` (ten minutes by default) the real server, in-process on loopback, takes at once:
//! batches of 1,000 events at a steady rate, one-event requests from many clients, dashboard queries
//! (the timeline, an action wildcard, full text, an AI cost range, the last 24 hours), inclusion proofs
//! of events acknowledged a few seconds before, the newest checkpoint, and every 30 s an export of the
//! last hour as NDJSON or CSV. The load is open: each kind of request goes out on its own clock whether or
//! not the server has answered the ones before, up to a bound of requests in flight per kind (a request
//! the bound holds back is counted as not sent, and says the server fell behind).
//!
//! It reports, per kind, the answers (2xx, the intended 429 and 503, anything else), p50/p99 latency,
//! the process's resident memory over time, and at the end whether every organisation's log holds
//! exactly what was acknowledged: its newest seq equals the events acknowledged to it plus the exports
//! recorded in it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use trailkeep_client::{Client, Method};
use uuid::Uuid;

use crate::dataset::{Population, TOPICS, generate};
use crate::harness::Server;
use crate::stats::{Samples, progress, rate, thousands};

/// How often the process's resident memory is sampled.
const RSS_EVERY: Duration = Duration::from_secs(5);
/// How long after its acknowledgement an event's inclusion proof is asked for: by then a signed
/// checkpoint covers it.
const PROOF_AFTER: Duration = Duration::from_secs(5);
/// Events in the pool the ingest requests cycle through.
const POOL: u64 = 100_000;

/// The rates of the mixed load.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub seconds: u64,
    /// Events a second in batches of 1,000.
    pub batch_events: f64,
    /// One-event requests a second.
    pub single_requests: f64,
    /// Queries a second.
    pub queries: f64,
    /// Inclusion proofs a second.
    pub proofs: f64,
}

/// What one kind of request met.
#[derive(Debug, Clone, Default)]
pub struct Kind {
    pub ok: u64,
    /// 429 and 503: the service asking to come back later, as it is meant to when full.
    pub refused: u64,
    /// Any other status, or no answer at all, with an example of each.
    pub errors: BTreeMap<String, u64>,
    /// Held back because this kind already had its bound of requests in flight.
    pub not_sent: u64,
    pub latency: Samples,
}

impl Kind {
    fn record(&mut self, took: Duration, outcome: &Result<u16, String>) {
        self.latency.push(took);
        match outcome {
            Ok(s) if (200..300).contains(s) => self.ok += 1,
            Ok(429 | 503) => self.refused += 1,
            Ok(s) => *self.errors.entry(format!("HTTP {s}")).or_default() += 1,
            Err(e) => *self.errors.entry(e.clone()).or_default() += 1,
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[derive(Debug, Clone)]
pub struct Soak {
    pub load: Load,
    pub elapsed: Duration,
    pub kinds: Vec<(&'static str, Kind)>,
    pub events_acked: u64,
    /// (seconds since the start, resident bytes).
    pub rss: Vec<(f64, u64)>,
    /// Organisations whose newest seq is not what was acknowledged, with both figures.
    pub mismatched: Vec<(String, u64, u64)>,
    pub orgs_checked: usize,
}

#[derive(Default)]
struct Shared {
    kinds: BTreeMap<&'static str, Kind>,
    /// Per organisation: events acknowledged, exports answered.
    acked: BTreeMap<String, (u64, u64)>,
    /// Recently acknowledged events, for proofs: (when, organisation, id).
    recent: std::collections::VecDeque<(Instant, String, String)>,
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .map(|kib: u64| kib * 1024)
        .unwrap_or(0)
}

/// One request; its status, or what went wrong in a few words.
async fn call(client: &Client, method: Method, path: &str, body: Option<Vec<u8>>) -> (Result<u16, String>, Vec<u8>) {
    let key = Uuid::now_v7().to_string();
    let headers: Vec<(&str, &str)> = match body {
        Some(_) => vec![("content-type", "application/json"), ("idempotency-key", key.as_str())],
        None => Vec::new(),
    };
    match client.raw(method, path, body, &headers).await {
        Ok(r) => (Ok(r.status), r.body),
        Err(e) => (Err(format!("no answer: {}", e.to_string().chars().take(80).collect::<String>())), Vec::new()),
    }
}

/// Runs `job` every `1 / per_second` seconds from `from` until `until`, at most `bound` at a time.
#[allow(clippy::too_many_arguments)]
fn open_loop<F, Fut>(
    tasks: &mut JoinSet<()>,
    shared: Arc<Mutex<Shared>>,
    name: &'static str,
    per_second: f64,
    bound: usize,
    from: Instant,
    until: Instant,
    job: F,
) where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if per_second <= 0.0 {
        return;
    }
    let permits = Arc::new(Semaphore::new(bound));
    tasks.spawn(async move {
        let mut tick = tokio::time::interval_at(from.into(), Duration::from_secs_f64(1.0 / per_second));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut inflight = JoinSet::new();
        for n in 0.. {
            if tokio::time::timeout_at(until.into(), tick.tick()).await.is_err() {
                break;
            }
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                shared.lock().unwrap().kinds.entry(name).or_default().not_sent += 1;
                continue;
            };
            let work = job(n);
            inflight.spawn(async move {
                work.await;
                drop(permit);
            });
            while inflight.try_join_next().is_some() {}
        }
        while inflight.join_next().await.is_some() {}
    });
}

/// Runs the load on a fresh server under `parent`.
pub async fn run(population: &Arc<Population>, seed: u64, load: Load, parent: &Path) -> anyhow::Result<Soak> {
    let server = Server::start(parent, "soak").await?;
    let pool = Arc::new(generate(population, seed, POOL, trailkeep_server::now_ms()));
    let batches: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
        // Each batch holds one organisation's events, so that its acknowledgements count for that organisation.
        population
            .orgs
            .iter()
            .flat_map(|org| {
                let mine: Vec<&String> =
                    pool.iter().filter(|e| e.contains(&format!("\"organization_id\":\"{}\"", org.id))).collect();
                mine.chunks(1000)
                    .filter(|c| c.len() == 1000)
                    .map(|c| {
                        let body =
                            format!("{{\"events\":[{}]}}", c.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","));
                        (org.id.clone(), body.into_bytes())
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
    );
    anyhow::ensure!(!batches.is_empty(), "the event pool yielded no full batch");
    let orgs: Vec<String> = population.orgs.iter().map(|o| o.id.clone()).collect();
    let shared = Arc::new(Mutex::new(Shared::default()));
    let started = Instant::now();
    let until = started + Duration::from_secs(load.seconds);
    let mut tasks = JoinSet::new();

    let (client, s, b) = (server.client.clone(), shared.clone(), batches.clone());
    open_loop(&mut tasks, shared.clone(), "batch of 1,000", load.batch_events / 1000.0, 16, started, until, move |n| {
        let (client, s, b) = (client.clone(), s.clone(), b.clone());
        async move {
            let (org, body) = &b[n as usize % b.len()];
            let at = Instant::now();
            let (outcome, _) = call(&client, Method::POST, "/v1/events", Some(body.clone())).await;
            let mut s = s.lock().unwrap();
            s.kinds.entry("batch of 1,000").or_default().record(at.elapsed(), &outcome);
            if outcome == Ok(201) {
                s.acked.entry(org.clone()).or_default().0 += 1000;
            }
        }
    });

    let (client, s, p) = (server.client.clone(), shared.clone(), pool.clone());
    open_loop(&mut tasks, shared.clone(), "one event", load.single_requests, 256, started, until, move |n| {
        let (client, s, p) = (client.clone(), s.clone(), p.clone());
        async move {
            let event = &p[n as usize % p.len()];
            let org = serde_json::from_str::<serde_json::Value>(event)
                .ok()
                .and_then(|v| v["organization_id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let at = Instant::now();
            let (outcome, body) = call(&client, Method::POST, "/v1/events", Some(event.clone().into_bytes())).await;
            let mut s = s.lock().unwrap();
            s.kinds.entry("one event").or_default().record(at.elapsed(), &outcome);
            if outcome == Ok(201) {
                s.acked.entry(org.clone()).or_default().0 += 1;
                let id = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["events"][0]["id"].as_str().map(str::to_owned));
                if let Some(id) = id {
                    s.recent.push_back((Instant::now(), org, id));
                    if s.recent.len() > 10_000 {
                        s.recent.pop_front();
                    }
                }
            }
        }
    });

    let (client, s, o) = (server.client.clone(), shared.clone(), orgs.clone());
    open_loop(&mut tasks, shared.clone(), "query", load.queries, 64, started, until, move |n| {
        let (client, s) = (client.clone(), s.clone());
        let org = &o[n as usize % o.len()];
        let word = TOPICS[n as usize % TOPICS.len()].split_whitespace().next().unwrap_or("invoice");
        let filter = match n % 5 {
            0 => String::new(),
            1 => "&action=user.*".to_owned(),
            2 => format!("&text={}", trailkeep_client::encode(word)),
            3 => "&cost_min=0.5".to_owned(),
            _ => "&range=24h".to_owned(),
        };
        let path = format!("/v1/events?organization_id={org}&limit=50{filter}");
        async move {
            let at = Instant::now();
            let (outcome, _) = call(&client, Method::GET, &path, None).await;
            s.lock().unwrap().kinds.entry("query").or_default().record(at.elapsed(), &outcome);
        }
    });

    let (client, s) = (server.client.clone(), shared.clone());
    open_loop(
        &mut tasks,
        shared.clone(),
        "inclusion proof",
        load.proofs,
        32,
        started + PROOF_AFTER,
        until,
        move |_| {
            let (client, s) = (client.clone(), s.clone());
            async move {
                let picked = {
                    let mut s = s.lock().unwrap();
                    match s.recent.front() {
                        Some((at, _, _)) if at.elapsed() >= PROOF_AFTER => s.recent.pop_front(),
                        _ => None,
                    }
                };
                let Some((_, org, id)) = picked else { return };
                let at = Instant::now();
                let path = format!("/v1/events/{id}/proof?organization_id={org}");
                let (outcome, _) = call(&client, Method::GET, &path, None).await;
                s.lock().unwrap().kinds.entry("inclusion proof").or_default().record(at.elapsed(), &outcome);
            }
        },
    );

    let (client, s, o) = (server.client.clone(), shared.clone(), orgs.clone());
    open_loop(&mut tasks, shared.clone(), "checkpoint", 1.0, 4, started + PROOF_AFTER, until, move |n| {
        let (client, s) = (client.clone(), s.clone());
        let path = format!("/v1/checkpoint?organization_id={}", o[n as usize % o.len()]);
        async move {
            let at = Instant::now();
            let (outcome, _) = call(&client, Method::GET, &path, None).await;
            s.lock().unwrap().kinds.entry("checkpoint").or_default().record(at.elapsed(), &outcome);
        }
    });

    let (client, s, o) = (server.client.clone(), shared.clone(), orgs.clone());
    open_loop(&mut tasks, shared.clone(), "export, last hour", 1.0 / 30.0, 2, started + PROOF_AFTER, until, move |n| {
        let (client, s) = (client.clone(), s.clone());
        let org = o[n as usize % o.len()].clone();
        let format = if n % 2 == 0 { "ndjson" } else { "csv" };
        let path = format!("/v1/export?organization_id={org}&format={format}&range=1h");
        async move {
            let at = Instant::now();
            let (outcome, _) = call(&client, Method::GET, &path, None).await;
            let mut s = s.lock().unwrap();
            s.kinds.entry("export, last hour").or_default().record(at.elapsed(), &outcome);
            if outcome == Ok(200) {
                s.acked.entry(org).or_default().1 += 1;
            }
        }
    });

    let bar = progress(load.seconds, "(s) mixed load, seconds");
    let mut rss = vec![(0.0, rss_bytes())];
    let mut sampler = tokio::time::interval(RSS_EVERY);
    sampler.tick().await;
    while Instant::now() < until {
        sampler.tick().await;
        rss.push((started.elapsed().as_secs_f64(), rss_bytes()));
        bar.set_position(started.elapsed().as_secs().min(load.seconds));
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a load task panicked")?;
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();

    let shared = Arc::try_unwrap(shared).map_err(|_| anyhow::anyhow!("a load task outlived the run"))?;
    let shared = shared.into_inner().map_err(|_| anyhow::anyhow!("a load task panicked holding the results"))?;
    // Each organisation's log must hold exactly what was acknowledged: once the sealer has caught up,
    // its newest signed checkpoint covers seqs 1 to that count, and no more.
    let mut mismatched = Vec::new();
    for org in &orgs {
        let (events, exports) = shared.acked.get(org).copied().unwrap_or_default();
        let want = events + exports;
        let org_id = trailkeep_core::OrgId::try_from(org.clone())?;
        let mut size = 0;
        for _ in 0..600 {
            size = server.store.latest_checkpoint(&org_id).await?.map(|c| c.size).unwrap_or(0);
            if size >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let newest = server
            .client
            .list_events(&[("organization_id", org), ("q", &format!("seq:>{size}")), ("limit", "1")])
            .await?;
        if size != want || !newest.data.is_empty() {
            mismatched.push((org.clone(), want, size.max(newest.data.first().map(|e| e.seq).unwrap_or(0))));
        }
    }
    let events_acked = shared.acked.values().map(|(e, _)| e).sum();
    server.stop().await?;
    Ok(Soak {
        load,
        elapsed,
        kinds: shared.kinds.into_iter().collect(),
        events_acked,
        rss,
        mismatched,
        orgs_checked: orgs.len(),
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl Soak {
    /// The largest resident size in the samples taken from `from` to `to` seconds.
    fn rss_between(&self, from: f64, to: f64) -> u64 {
        self.rss.iter().filter(|(t, _)| *t >= from && *t <= to).map(|(_, b)| *b).max().unwrap_or(0)
    }

    /// Rows of (measure, result, target, verdict).
    fn rows(&self) -> Vec<[String; 4]> {
        let secs = self.elapsed.as_secs_f64();
        let mut rows = vec![[
            format!("(s) mixed load for {:.0} s", secs),
            format!(
                "offered: {} events/s in batches, {} one-event requests/s, {} queries/s, {} proofs/s, \
                 a checkpoint a second, an export every 30 s",
                thousands(self.load.batch_events),
                thousands(self.load.single_requests),
                thousands(self.load.queries),
                thousands(self.load.proofs)
            ),
            String::new(),
            String::new(),
        ]];
        rows.push([
            "— events acknowledged".into(),
            format!(
                "{} ({} events/s)",
                thousands(self.events_acked as f64),
                thousands(rate(self.events_acked, self.elapsed))
            ),
            String::new(),
            String::new(),
        ]);
        let mut errors = 0;
        for (name, kind) in &self.kinds {
            let mut latency = kind.latency.clone();
            errors += kind.error_count();
            let mut result = format!(
                "{} sent, {} ok, {} refused (429/503), {} errors; p50 {:.1} / p99 {:.1} ms",
                thousands(kind.latency.len() as f64),
                thousands(kind.ok as f64),
                thousands(kind.refused as f64),
                kind.error_count(),
                latency.percentile_ms(50.0),
                latency.percentile_ms(99.0)
            );
            if kind.not_sent > 0 {
                result.push_str(&format!("; {} held back (server behind)", thousands(kind.not_sent as f64)));
            }
            for (what, n) in &kind.errors {
                result.push_str(&format!("; {n}× {what}"));
            }
            rows.push([format!("— {name}"), result, String::new(), String::new()]);
        }
        rows.push([
            "— answers besides 2xx, 429 and 503".into(),
            errors.to_string(),
            "0".into(),
            if errors == 0 { "ok".into() } else { "MISSED".into() },
        ]);
        let early = self.rss_between(60.0, 120.0);
        let late = self.rss_between(secs - 60.0, secs + 1.0);
        let peak = self.rss.iter().map(|(_, b)| *b).max().unwrap_or(0);
        let growth = if early > 0 { late as f64 / early as f64 - 1.0 } else { 0.0 };
        rows.push([
            "— resident memory: start → 2nd minute → last minute (peak)".into(),
            format!(
                "{:.0} → {:.0} → {:.0} MiB ({:.0}); {:+.1}% from the 2nd minute to the last",
                mib(self.rss.first().map(|r| r.1).unwrap_or(0)),
                mib(early),
                mib(late),
                mib(peak),
                growth * 100.0
            ),
            "flat: within 10%".into(),
            if secs < 180.0 {
                "n/a: under 3 minutes".into()
            } else if growth <= 0.10 {
                "ok".into()
            } else {
                "MISSED".into()
            },
        ]);
        rows.push([
            "— every organisation's log, once sealed = events acknowledged + exports recorded".into(),
            if self.mismatched.is_empty() {
                format!("{} of {} organisations", self.orgs_checked, self.orgs_checked)
            } else {
                self.mismatched
                    .iter()
                    .map(|(o, want, got)| format!("{o}: {want} acknowledged, {got} stored"))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
            "all".into(),
            if self.mismatched.is_empty() { "ok".into() } else { "MISSED".into() },
        ]);
        rows
    }

    pub fn table(&self) -> String {
        let rows = self.rows();
        let width = rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
        rows.iter()
            .map(|r| format!("{:width$}  {}  {}  {}", r[0], r[1], r[2], r[3]).trim_end().to_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn markdown(&self) -> String {
        let mut out = String::from("\n| measure | result | target | verdict |\n|---|---|---|---|\n");
        for r in self.rows() {
            out.push_str(&format!("| {} | {} | {} | {} |\n", r[0], r[1], r[2], r[3]));
        }
        out.push_str("\nResident memory, sampled every 5 s (seconds: MiB): ");
        let samples: Vec<String> =
            self.rss.iter().step_by(6).map(|(t, b)| format!("{:.0}: {:.0}", t, mib(*b))).collect();
        out.push_str(&samples.join(", "));
        out.push('\n');
        out
    }
}
