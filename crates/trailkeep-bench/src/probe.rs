//! What the server was doing during a phase: CPU time by thread, and the writer's commit metrics.
//!
//! CPU time comes from `/proc/self/stat` and `/proc/self/task/*/stat` (Linux; elsewhere it reads as
//! zero), grouped by thread name: the store's writer, indexer and sealer threads are named (Linux keeps
//! the first 15 bytes of a name), everything else is the async runtime (server and load generator
//! alike, since both run in this process). Commit figures are differences of the server's own
//! Prometheus histograms (`trailkeep_commit_batch_events`, `trailkeep_commit_seconds`), read over HTTP
//! at both ends of the phase.

use std::collections::HashMap;
use std::time::Instant;

use trailkeep_client::Client;

/// Linux reports CPU time in clock ticks of 1/100 s (`USER_HZ`) on every mainstream architecture.
const TICKS_PER_SECOND: f64 = 100.0;
const WRITER_THREAD: &str = "trailkeep-write";
const INDEXER_THREAD: &str = "trailkeep-index";
const SEALER_THREAD: &str = "trailkeep-seale";

/// User plus system ticks from a `stat` line, and the thread's name.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat[open + 1..close].to_owned();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After the name: state is field 3 of the line, utime field 14 and stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

fn process_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| parse_stat(&s)).map_or(0, |(_, t)| t)
}

fn thread_ticks() -> HashMap<u32, (String, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc/self/task") else { return HashMap::new() };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            Some((tid, parse_stat(&stat)?))
        })
        .collect()
}

/// The sums and counts of the writer's commit histograms.
#[derive(Debug, Clone, Copy, Default)]
struct Commits {
    count: f64,
    events: f64,
    seconds: f64,
}

impl Commits {
    async fn read(client: &Client) -> Commits {
        let text = client.metrics().await.unwrap_or_default();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0)
        };
        Commits {
            count: value("trailkeep_commit_batch_events_count"),
            events: value("trailkeep_commit_batch_events_sum"),
            seconds: value("trailkeep_commit_seconds_sum"),
        }
    }
}

/// Readings at the start of a phase.
pub struct Probe {
    at: Instant,
    process: u64,
    threads: HashMap<u32, (String, u64)>,
    commits: Commits,
}

/// What happened between [`Probe::start`] and [`Probe::finish`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Activity {
    /// CPU used by the whole process, in cores (2.0 is both cores of a 2-core machine).
    pub process_cores: f64,
    pub writer_cores: f64,
    pub indexer_cores: f64,
    pub sealer_cores: f64,
    pub commits: f64,
    pub events_per_commit: f64,
    /// The share of the time the writer spent inside commits (building and committing transactions).
    pub writer_busy: f64,
}

impl Probe {
    pub async fn start(client: &Client) -> Probe {
        let commits = Commits::read(client).await;
        Probe { at: Instant::now(), process: process_ticks(), threads: thread_ticks(), commits }
    }

    pub async fn finish(self, client: &Client) -> Activity {
        let elapsed = self.at.elapsed();
        let (process, threads) = (process_ticks(), thread_ticks());
        let commits = Commits::read(client).await;
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / seconds;
        let named = |wanted: &str| {
            threads
                .iter()
                .filter(|(_, (name, _))| name == wanted)
                .map(|(tid, (_, now))| now - self.threads.get(tid).map_or(0, |(_, before)| *before).min(*now))
                .sum::<u64>()
        };
        let count = commits.count - self.commits.count;
        Activity {
            process_cores: cores(process.saturating_sub(self.process)),
            writer_cores: cores(named(WRITER_THREAD)),
            indexer_cores: cores(named(INDEXER_THREAD)),
            sealer_cores: cores(named(SEALER_THREAD)),
            commits: count,
            events_per_commit: (commits.events - self.commits.events) / count.max(1.0),
            writer_busy: (commits.seconds - self.commits.seconds) / seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_the_name_and_cpu_ticks() {
        let line = "4242 (trailkeep-write) S 1 2 3 4 5 6 7 8 9 10 120 30 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat(line), Some(("trailkeep-write".to_owned(), 150)));
        let odd = "7 (a) b (c) R 1 2 3 4 5 6 7 8 9 10 5 6 0";
        assert_eq!(parse_stat(odd), Some(("a) b (c".to_owned(), 11)));
    }
}
