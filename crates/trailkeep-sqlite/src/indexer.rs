//! The full-text indexer: keeps `search.db` in step with the events table, off the commit path.
//!
//! Indexing costs about three times what storing costs, so it is not done in the writer's transaction.
//! Instead this thread wakes after each commit, reads every row past its watermark, and adds their text
//! to the FTS5 index in one transaction together with the new watermark. The index lives in its own
//! database file with its own write lock, so it runs in parallel with ingest on another core. After a
//! crash it simply resumes from the watermark: the index is derived data.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};
use std::sync::mpsc;
use trailkeep_core::Event;

const BATCH: i64 = 5000;

pub struct Indexer {
    main: Connection,
    search: Connection,
}

impl Indexer {
    pub fn open(main_path: &Path, search_path: &Path) -> rusqlite::Result<Indexer> {
        let main =
            Connection::open_with_flags(main_path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        let search = Connection::open(search_path)?;
        search.pragma_update(None, "journal_mode", "WAL")?;
        search.pragma_update(None, "synchronous", "NORMAL")?;
        search.busy_timeout(Duration::from_secs(5))?;
        Ok(Indexer { main, search })
    }

    fn watermark(&self) -> rusqlite::Result<i64> {
        self.search.query_row("SELECT pos FROM watermark WHERE id = 1", [], |r| r.get(0))
    }

    /// Removes from the index the rows retention deleted since the last pass; returns how many.
    fn forget_deleted(&mut self) -> rusqlite::Result<usize> {
        let last: i64 = self.search.query_row("SELECT last FROM deletions_watermark WHERE id = 1", [], |r| r.get(0))?;
        let mut rows: Vec<(i64, i64)> = Vec::new();
        {
            let mut stmt =
                self.main.prepare_cached("SELECT id, pos FROM fts_deletions WHERE id > ?1 ORDER BY id LIMIT ?2")?;
            let mut q = stmt.query(params![last, BATCH])?;
            while let Some(row) = q.next()? {
                rows.push((row.get(0)?, row.get(1)?));
            }
        }
        let Some(&(newest, _)) = rows.last() else { return Ok(0) };
        let tx = self.search.transaction()?;
        {
            let mut delete = tx.prepare_cached("DELETE FROM fts WHERE rowid = ?1")?;
            for (_, pos) in &rows {
                delete.execute([pos])?;
            }
            tx.execute("UPDATE deletions_watermark SET last = ?1 WHERE id = 1", [newest])?;
        }
        tx.commit()?;
        Ok(rows.len())
    }

    /// Indexes up to one batch past the watermark, after forgetting deleted rows; returns how many rows it
    /// indexed or forgot.
    pub fn step(&mut self) -> rusqlite::Result<usize> {
        let forgotten = self.forget_deleted()?;
        Ok(forgotten + self.index_new()?)
    }

    fn index_new(&mut self) -> rusqlite::Result<usize> {
        let from = self.watermark()?;
        let mut rows: Vec<(i64, String)> = Vec::new();
        {
            let mut stmt =
                self.main.prepare_cached("SELECT pos, payload FROM events WHERE pos > ?1 ORDER BY pos LIMIT ?2")?;
            let mut q = stmt.query(params![from, BATCH])?;
            while let Some(row) = q.next()? {
                rows.push((row.get(0)?, row.get(1)?));
            }
        }
        let Some(&(last, _)) = rows.last() else { return Ok(0) };
        let tx = self.search.transaction()?;
        {
            let mut insert = tx.prepare_cached("INSERT INTO fts (rowid, body) VALUES (?1, ?2)")?;
            for (pos, payload) in &rows {
                // A payload that does not parse cannot be searched; it stays readable and is skipped here.
                if let Ok(event) = serde_json::from_str::<Event>(payload) {
                    insert.execute(params![pos, event.searchable_text()])?;
                }
            }
            tx.execute("UPDATE watermark SET pos = ?1 WHERE id = 1", [last])?;
        }
        tx.commit()?;
        metrics::counter!("trailkeep_events_indexed_total").increment(rows.len() as u64);
        Ok(rows.len())
    }

    /// Indexes until the writer hangs up, waking on each commit notice (or every 250 ms regardless).
    pub fn run(mut self, commits: mpsc::Receiver<()>) {
        crate::follow::follow(
            commits,
            crate::follow::Pace {
                batch: BATCH as usize,
                idle_wait: Duration::from_millis(250),
                backoff: Duration::from_millis(500),
                // Searchable as soon as committed.
                settle: Duration::ZERO,
            },
            "full-text indexing",
            || self.step(),
            || {},
            |_| {},
        );
    }
}
