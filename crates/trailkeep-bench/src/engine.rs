//! Phase (c): the raw SQLite engine's own ceilings for the very same writes.
//!
//! The events of phase (a) are validated into `NewEvent`s up front (as the server would on receipt),
//! then written to a fresh database opened exactly as the store opens its own (`open_write_connection`:
//! WAL, `synchronous=FULL`) and migrated with the store's schema, in transactions of 1,000 rows. Inside
//! the clock each row costs what the writer pays for it: number it from a per-organisation counter,
//! serialise the stored event to JSON and bind [`INSERT_EVENT`] with `event_params`. Neither HTTP, nor
//! validation, nor savepoints, nor idempotency records are included: this is the ceiling, not a model
//! of the server.
//!
//! The second run also fills a contentless FTS5 index with `Event::searchable_text` in the same
//! transaction. That index is created by the store's own `migrate_search` in a `search.db` attached to
//! the write connection (the store's layout), with `synchronous=NORMAL` like the store's indexer uses.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rusqlite::{Connection, params, params_from_iter};
use trailkeep_core::NewEvent;
use trailkeep_core::validate::{IngestContext, parse_event};
use trailkeep_sqlite::open_write_connection;
use trailkeep_sqlite::row::{INSERT_EVENT, event_params};
use trailkeep_sqlite::schema::{migrate_main, migrate_search};

use crate::harness::scratch_dir;
use crate::stats::progress;

/// Rows per transaction.
pub const ROWS_PER_TRANSACTION: usize = 1000;

#[derive(Debug, Clone, Copy)]
pub struct EngineRun {
    pub rows: u64,
    pub elapsed: Duration,
    /// The size of the database files afterwards (WAL included).
    pub disk_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct EngineCeilings {
    pub plain: EngineRun,
    pub fts: EngineRun,
}

/// Validates the wire events as ingest does, with the server's default limits.
pub fn validate(events: &[String], now_ms: i64) -> anyhow::Result<Vec<NewEvent>> {
    let limits = trailkeep_core::Limits::default();
    let cx = IngestContext { limits: &limits, now_ms, default_org: None };
    events
        .iter()
        .enumerate()
        .map(|(i, text)| parse_event(text, "", cx).with_context(|| format!("generated event {i} is invalid")))
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// Opens a fresh database in `dir` as the store would; with `fts`, attaches a fresh `search.db` as
/// `search`.
fn open(dir: &Path, fts: bool) -> anyhow::Result<Connection> {
    let mut conn = open_write_connection(&dir.join("trailkeep.db")).context("cannot open the database")?;
    migrate_main(&mut conn)?;
    if fts {
        let search_path = dir.join("search.db");
        let mut search = Connection::open(&search_path).context("cannot open the search database")?;
        search.pragma_update(None, "journal_mode", "WAL")?;
        migrate_search(&mut search)?;
        drop(search);
        conn.execute("ATTACH DATABASE ?1 AS search", [search_path.to_string_lossy()])?;
        conn.pragma_update(Some("search"), "synchronous", "NORMAL")?;
    }
    Ok(conn)
}

fn run_once(events: &[NewEvent], parent: &Path, fts: bool) -> anyhow::Result<EngineRun> {
    let dir = scratch_dir(parent, if fts { "engine-fts" } else { "engine" })?;
    let mut conn = open(dir.path(), fts)?;
    let bar = progress(events.len() as u64, if fts { "(c) SQLite + FTS5" } else { "(c) SQLite" });
    let mut last_seq: HashMap<&str, u64> = HashMap::new();
    let started = Instant::now();
    for chunk in events.chunks(ROWS_PER_TRANSACTION) {
        let received_at = now_ms();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT_EVENT)?;
            let mut index = if fts {
                Some(tx.prepare_cached("INSERT INTO search.fts (rowid, body) VALUES (?1, ?2)")?)
            } else {
                None
            };
            for event in chunk {
                let seq = last_seq.entry(event.organization_id.as_str()).or_insert(0);
                *seq += 1;
                let stored = event.clone().into_event(*seq, received_at);
                let payload = serde_json::to_string(&stored)?;
                insert.execute(params_from_iter(event_params(event, *seq, received_at, payload)))?;
                if let Some(index) = index.as_mut() {
                    index.execute(params![tx.last_insert_rowid(), stored.searchable_text()])?;
                }
            }
        }
        tx.commit()?;
        bar.inc(chunk.len() as u64);
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    drop(conn);
    Ok(EngineRun { rows: events.len() as u64, elapsed, disk_bytes: disk_bytes(dir.path()) })
}

/// Writes `events` twice, each time into a fresh database under `parent`: without and with FTS5.
pub fn run(events: &[String], parent: &Path) -> anyhow::Result<EngineCeilings> {
    let events = validate(events, now_ms())?;
    let plain = run_once(&events, parent, false)?;
    let fts = run_once(&events, parent, true)?;
    Ok(EngineCeilings { plain, fts })
}
