//! Retention's deletion, one bounded pass at a time inside the writer's group transaction, as the SQLite
//! engine's `sweep.rs` does it.
//!
//! A pass reads the organisation's oldest events that may be due, in timeline order `(occurred_at, seq)`
//! after a cursor, and picks those whose category's retention has run out and that no legal hold in force
//! keeps. The writer then records the pass as a `retention.deleted` event in the organisation's own log,
//! and [`prune`] deletes the picked events through `tk_prune`, which marks each seq pruned by that event
//! and refuses anything unsealed, held or outside the transaction's organisation. Only sealed events are
//! deleted: their receipts stay, so every proof through them stays valid.
//!
//! **Concurrency.** The group has locked the organisation's seq counter before the pass reads the holds,
//! and placing or lifting a hold locks it too, so a hold committed on another node is either seen by the
//! pass or placed after it. The group also locks the full-text indexer's head of the organisation (as
//! the indexer does for each step), so the indexer cannot be indexing an event while the pass deletes it and
//! its full-text row: a row it inserted afterwards would make a deleted event searchable again.

use tokio_postgres::GenericClient;
use trailkeep_core::plans::Plan;
use trailkeep_store::retention::{LegalHold, SweepOutcome, SweepRequest};

const DAY_MS: i64 = 86_400_000;

/// What a pass decided before anything is written.
pub struct Pass {
    /// The seqs to delete, in timeline order.
    pub seqs: Vec<u64>,
    pub held: u64,
    pub next: Option<(i64, u64)>,
}

impl Pass {
    /// The outcome of a pass that deleted nothing.
    pub fn outcome(&self) -> SweepOutcome {
        SweepOutcome { deleted: 0, held: self.held, event_seq: None, next: self.next }
    }
}

/// Why a pass could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Sql(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Damaged(#[from] crate::admin::Damaged),
}

/// Locks the full-text indexer's heads of `orgs` (sorted, as the indexer takes them, so that neither
/// waits for the other in a cycle), creating missing ones; the writer calls it, after the seq counters,
/// for every organisation its group sweeps.
pub async fn lock_index_heads(tx: &impl GenericClient, orgs: &[String]) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO follower_heads (follower, org_id, done) SELECT 'index', o, 0 FROM unnest($1::text[]) o \
         ORDER BY o ON CONFLICT (follower, org_id) DO UPDATE SET done = follower_heads.done",
        &[&orgs],
    )
    .await?;
    Ok(())
}

/// Reads the holds and the candidates of one pass and picks what is due. The caller holds the
/// organisation's seq counter and its full-text indexer's head ([`lock_index_heads`]).
pub async fn plan(tx: &impl GenericClient, req: &SweepRequest) -> Result<Pass, SweepError> {
    let org = req.org.as_str();
    let holds: Vec<LegalHold> = crate::admin::list_holds(tx, org)
        .await?
        .iter()
        .map(crate::admin::hold_from_row)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|h| h.lifted_at.is_none())
        .collect();
    if holds.iter().any(|h| h.is_org_wide()) {
        return Ok(Pass { seqs: Vec::new(), held: 0, next: None });
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
    let as_i64 = |n: u64| n.min(i64::MAX as u64) as i64;
    let rows = tx
        .query(
            "SELECT seq, category, occurred_at, actor_id, actor_email FROM events \
             WHERE org_id = $1 AND occurred_at < $2 AND seq <= $3 AND (occurred_at, seq) > ($4, $5) \
             ORDER BY occurred_at, seq LIMIT $6",
            &[&org, &horizon, &as_i64(req.max_seq), &after_time, &as_i64(after_seq), &as_i64(req.batch as u64)],
        )
        .await?;
    let next = (rows.len() == req.batch)
        .then(|| rows.last().map(|r| (r.get::<_, i64>(2), r.get::<_, i64>(0) as u64)))
        .flatten();
    let plan = Plan { name: String::new(), retention_days: req.plan_days, exports: vec![] };
    let mut pass = Pass { seqs: Vec::new(), held: 0, next };
    for row in &rows {
        let (category, occurred_at): (&str, i64) = (row.get(1), row.get(2));
        let cutoff = req.now - i64::from(req.retention.days_for(&plan, category)) * DAY_MS;
        if occurred_at >= cutoff {
            continue;
        }
        let (actor_id, actor_email): (Option<&str>, Option<&str>) = (row.get(3), row.get(4));
        if holds.iter().any(|h| h.holds(actor_id, actor_email, occurred_at)) {
            pass.held += 1;
            continue;
        }
        pass.seqs.push(row.get::<_, i64>(0) as u64);
    }
    Ok(pass)
}

/// The cutoff the `retention.deleted` event names: that of categories without a rule of their own.
pub fn default_cutoff(req: &SweepRequest) -> i64 {
    req.now - i64::from(req.retention.days.unwrap_or(req.plan_days)) * DAY_MS
}

/// Deletes the pass's events and their full-text rows, marking them pruned by the event `by`.
pub async fn prune(tx: &impl GenericClient, org: &str, seqs: &[u64], by: u64) -> Result<u64, tokio_postgres::Error> {
    let seqs: Vec<i64> = seqs.iter().map(|&s| s as i64).collect();
    let row = tx.query_one("SELECT tk_prune($1, $2, $3)", &[&org, &seqs, &(by as i64)]).await?;
    Ok(row.get::<_, i64>(0) as u64)
}
