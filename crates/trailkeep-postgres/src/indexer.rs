//! The full-text indexer: keeps `event_search` in step with the events, off the commit path.
//!
//! A GIN index costs several times what storing an event does, so the writer does not touch it. Like the
//! sealer, the indexer runs on one node at a time ([`crate::follow`]) and follows each organisation's
//! log by `seq`: it reads the events past its head, turns each event's searchable text into a `tsvector`
//! of the words the SQLite engine's FTS5 index would find ([`crate::text`]), and inserts them with the
//! new head in one transaction. An event is searchable within a fraction of a second of its
//! acknowledgement; filters other than full text see it at once.

use std::collections::HashMap;

use trailkeep_core::Event;

use crate::FollowError;

const BATCH: usize = 5000;
const MAX_ORGS: i64 = 500;

pub struct Indexer;

impl crate::follow::Follower for Indexer {
    const WHAT: &'static str = "full-text indexer";
    const LOCK: i64 = 0x5452_4b4c_494e_4458; // "TRKLINDX"

    async fn step(&mut self, client: &mut tokio_postgres::Client) -> Result<usize, FollowError> {
        let stale = client.query("SELECT org_id, done, last_seq FROM tk_stale_orgs('index', $1)", &[&MAX_ORGS]).await?;
        let mut work: Vec<(String, i64)> = Vec::new();
        let mut budget = BATCH as i64;
        for row in &stale {
            if budget == 0 {
                break;
            }
            let (org, done, last): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
            let hi = last.min(done + budget);
            budget -= hi - done;
            work.push((org, hi));
        }
        if work.is_empty() {
            return Ok(0);
        }
        let mut orgs: Vec<String> = work.iter().map(|(o, _)| o.clone()).collect();
        orgs.sort();
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT set_config('trailkeep.org', $1, true), set_config('trailkeep.projects', '*', true)",
            &[&orgs.join(",")],
        )
        .await?;
        let heads: HashMap<String, i64> = tx
            .query(
                "INSERT INTO follower_heads (follower, org_id, done) SELECT 'index', o, 0 FROM unnest($1::text[]) o \
                 ORDER BY o ON CONFLICT (follower, org_id) DO UPDATE SET done = follower_heads.done \
                 RETURNING org_id, done",
                &[&orgs],
            )
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let (mut org_col, mut seq_col, mut received_col, mut body_col) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut head_orgs, mut head_done) = (Vec::new(), Vec::new());
        for (org, hi) in &work {
            let done = heads.get(org).copied().unwrap_or(0);
            if done >= *hi {
                continue;
            }
            let rows = tx
                .query(
                    "SELECT seq, received_at, payload FROM events WHERE org_id = $1 AND seq > $2 AND seq <= $3",
                    &[org, &done, hi],
                )
                .await?;
            for row in rows {
                // A payload that does not parse cannot be searched; it stays readable and is skipped here.
                let Ok(event) = serde_json::from_str::<Event>(row.get(2)) else { continue };
                org_col.push(org.clone());
                seq_col.push(row.get::<_, i64>(0));
                received_col.push(row.get::<_, i64>(1));
                body_col.push(crate::text::tsvector_literal(&event.searchable_text()));
            }
            head_orgs.push(org.clone());
            head_done.push(*hi);
        }
        tx.execute(
            "INSERT INTO event_search (org_id, seq, received_at, body) \
             SELECT o, s, r, b::tsvector FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[]) AS t(o, s, r, b) \
             ON CONFLICT DO NOTHING",
            &[&org_col, &seq_col, &received_col, &body_col],
        )
        .await?;
        tx.execute(
            "UPDATE follower_heads h SET done = v.done FROM unnest($1::text[], $2::int8[]) AS v(org, done) \
             WHERE h.follower = 'index' AND h.org_id = v.org",
            &[&head_orgs, &head_done],
        )
        .await?;
        tx.commit().await?;
        metrics::counter!("trailkeep_events_indexed_total").increment(seq_col.len() as u64);
        Ok(seq_col.len())
    }

    fn reset(&mut self) {}
}
