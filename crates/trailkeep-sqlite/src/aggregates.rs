//! Aggregates for the dashboard: one `SELECT` each over the rows a filter selects, compiled by the same
//! term compiler as [`crate::read::list_events`], so a total always covers exactly the events a listing
//! with the same filter pages through.
//!
//! Unlike a page, a total reads every matching row: its cost grows with the number of matches (about a
//! second per million on one core), which is why the dashboard fetches totals after the page itself.

use rusqlite::Connection;
use trailkeep_core::Filter;
use trailkeep_store::ReadScope;
use trailkeep_store::aggregates::AiTotals;

use crate::read::{Sql, term_condition};

/// The totals of the AI requests of `scope` that `filter` selects. `ai_failed` is set for every event
/// with an `ai` record and for no other, so it marks AI requests.
pub fn ai_totals(conn: &Connection, scope: &ReadScope, filter: &Filter) -> rusqlite::Result<AiTotals> {
    let (statement, values) = totals_statement(scope, filter);
    conn.prepare_cached(&statement)?.query_row(rusqlite::params_from_iter(values), |row| {
        let requests: i64 = row.get(0)?;
        let tokens: f64 = row.get(1)?;
        let cost_usd: f64 = row.get(2)?;
        Ok(AiTotals { requests: requests.max(0) as u64, tokens: tokens.max(0.0) as u64, cost_usd })
    })
}

pub(crate) fn totals_statement(scope: &ReadScope, filter: &Filter) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = Sql::default();
    let org = sql.bind_text(scope.org.as_str());
    sql.conditions.push(format!("org_id = {org}"));
    if let Some(projects) = &scope.projects {
        let projects: Vec<String> = projects.iter().map(|p| p.to_string()).collect();
        let c = if projects.is_empty() { "0".to_owned() } else { sql.in_list("project_id", &projects) };
        sql.conditions.push(c);
    }
    sql.conditions.push("ai_failed IS NOT NULL".to_owned());
    for term in &filter.terms {
        let c = term_condition(&mut sql, term);
        sql.conditions.push(c);
    }
    // TOTAL rather than SUM: a float that cannot overflow, where SUM of integers fails past i64.
    let statement =
        format!("SELECT COUNT(*), TOTAL(ai_tokens), TOTAL(ai_cost) FROM events WHERE {}", sql.conditions.join(" AND "));
    (statement, sql.values)
}
