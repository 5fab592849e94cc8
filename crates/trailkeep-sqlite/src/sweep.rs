//! Retention's deletion, run by the writer one bounded pass at a time so ingest never waits long.
//!
//! A pass reads the organisation's oldest events that may be due, in timeline order from a cursor,
//! deletes those whose category's retention has run out and that no legal hold keeps, records the pass
//! as a `retention.deleted` event in the organisation's own log, and notes each deleted seq as pruned by
//! that event — so exports and proofs tell a pruned event from a missing one. Only sealed events are
//! deleted: their receipts stay in the ledger, and every proof through them stays valid.

use rusqlite::{Connection, params};
use trailkeep_core::NewEvent;
use trailkeep_store::retention::{SweepOutcome, SweepRequest, deleted_event, ranges};
use trailkeep_store::{Ack, AppendError};

const DAY_MS: i64 = 86_400_000;

fn failed(e: rusqlite::Error) -> AppendError {
    AppendError::Failed(e.to_string())
}

/// An event a pass looks at.
struct Candidate {
    pos: i64,
    seq: u64,
    category: String,
    occurred_at: i64,
    actor_id: Option<String>,
    actor_email: Option<String>,
}

/// One pass; `append` places an event in the log inside the same transaction.
pub fn sweep(
    conn: &Connection,
    req: &SweepRequest,
    mut append: impl FnMut(&Connection, NewEvent) -> Result<Ack, AppendError>,
) -> Result<SweepOutcome, AppendError> {
    let org = req.org.as_str();
    let holds: Vec<_> =
        crate::admin::list_holds(conn, org).map_err(failed)?.into_iter().filter(|h| h.lifted_at.is_none()).collect();
    if holds.iter().any(|h| h.is_org_wide()) {
        return Ok(SweepOutcome::default());
    }
    // Nothing younger than the shortest retention that applies anywhere can be due.
    let shortest = req
        .retention
        .categories
        .iter()
        .map(|c| c.days)
        .chain([req.retention.days.unwrap_or(req.plan_days)])
        .min()
        .unwrap_or(req.plan_days);
    let horizon = req.now - i64::from(shortest) * DAY_MS;
    let (after_time, after_seq) = req.after.unwrap_or((i64::MIN, 0));
    let mut candidates: Vec<Candidate> = Vec::new();
    {
        let mut stmt = conn
            .prepare_cached(
                "SELECT pos, seq, category, occurred_at, actor_id, actor_email FROM events \
                 WHERE org_id = ?1 AND occurred_at < ?2 AND seq <= ?3 AND (occurred_at, seq) > (?4, ?5) \
                 ORDER BY occurred_at, seq LIMIT ?6",
            )
            .map_err(failed)?;
        let mut rows = stmt
            .query(params![org, horizon, req.max_seq as i64, after_time, after_seq as i64, req.batch as i64])
            .map_err(failed)?;
        while let Some(r) = rows.next().map_err(failed)? {
            candidates.push(Candidate {
                pos: r.get(0).map_err(failed)?,
                seq: r.get::<_, i64>(1).map_err(failed)? as u64,
                category: r.get(2).map_err(failed)?,
                occurred_at: r.get(3).map_err(failed)?,
                actor_id: r.get(4).map_err(failed)?,
                actor_email: r.get(5).map_err(failed)?,
            });
        }
    }
    let next = (candidates.len() == req.batch).then(|| candidates.last().map(|c| (c.occurred_at, c.seq))).flatten();
    let plan = trailkeep_core::plans::Plan { name: String::new(), retention_days: req.plan_days, exports: vec![] };
    let mut doomed: Vec<(i64, u64)> = Vec::new();
    let mut held = 0u64;
    for Candidate { pos, seq, category, occurred_at, actor_id, actor_email } in &candidates {
        let cutoff = req.now - i64::from(req.retention.days_for(&plan, category)) * DAY_MS;
        if *occurred_at >= cutoff {
            continue;
        }
        if holds.iter().any(|h| h.holds(actor_id.as_deref(), actor_email.as_deref(), *occurred_at)) {
            held += 1;
            continue;
        }
        doomed.push((*pos, *seq));
    }
    let mut outcome = SweepOutcome { deleted: doomed.len() as u64, held, event_seq: None, next };
    if doomed.is_empty() {
        return Ok(outcome);
    }
    // The record is placed before anything is deleted, so it takes a row position above every deleted
    // one. Deleting the newest row first would let the next insert reuse its position (SQLite gives a
    // new row the largest position plus one), behind the sealer's and the indexer's watermarks, and the
    // event placed there would never be sealed or indexed.
    let deleted: Vec<u64> = doomed.iter().map(|(_, seq)| *seq).collect();
    let default_cutoff = req.now - i64::from(req.retention.days.unwrap_or(req.plan_days)) * DAY_MS;
    let event = deleted_event(&req.org, &ranges(deleted), outcome.deleted, default_cutoff, &req.policy, req.now);
    let ack = append(conn, event)?;
    let mut delete = conn.prepare_cached("DELETE FROM events WHERE pos = ?1").map_err(failed)?;
    let mut forget = conn.prepare_cached("INSERT INTO fts_deletions (pos) VALUES (?1)").map_err(failed)?;
    let mut mark =
        conn.prepare_cached("INSERT INTO pruned (org_id, seq, by_seq) VALUES (?1, ?2, ?3)").map_err(failed)?;
    for (pos, seq) in doomed {
        delete.execute([pos]).map_err(failed)?;
        forget.execute([pos]).map_err(failed)?;
        mark.execute(params![org, seq as i64, ack.seq as i64]).map_err(failed)?;
    }
    outcome.event_seq = Some(ack.seq);
    Ok(outcome)
}
