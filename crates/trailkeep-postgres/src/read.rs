//! Reading: a [`Filter`] compiled to one parameterised SQL statement over the indexed columns, the
//! PostgreSQL twin of the SQLite engine's `read.rs`, term for term.
//!
//! Every statement runs in a read-only transaction whose `trailkeep.org` and `trailkeep.projects`
//! settings name the reader's scope, so row-level security holds it there even if a condition below were
//! wrong; and every statement still starts with `org_id = $1` (and the project list), which is what the
//! indexes are built for. User text never enters SQL: values are bound, full text becomes a `tsquery`
//! built from its words ([`crate::text`]), and an action pattern with a wildcard segment becomes a
//! regular expression in which every character that is not a letter, digit or underscore is escaped.
//!
//! Statements are sent with their parameter types (`query_typed`), unnamed, so each is planned for its
//! own values — the plans of a generic prepared statement are far worse for skewed tenants.

use std::ops::Bound;

use ipnet::IpNet;
use tokio_postgres::Transaction;
use tokio_postgres::types::{ToSql, Type};
use trailkeep_core::cursor::{Cursor, Order};
use trailkeep_core::filter::StatusMatch;
use trailkeep_core::{ActionPattern, Event, Predicate, RangeField, Term};
use trailkeep_store::{EventPage, EventQuery, ReadScope};

use crate::row::{column_text, ip_key};

type Param = Box<dyn ToSql + Sync + Send>;

/// A SQL condition and its bound values, built up term by term.
#[derive(Default)]
struct Sql {
    conditions: Vec<String>,
    values: Vec<(Param, Type)>,
    /// Each value as Rust's `Debug` shows it, for [`explain_events`].
    shown: Vec<String>,
}

impl Sql {
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static, ty: Type) -> String {
        self.shown.push(format!("{value:?}"));
        self.values.push((Box::new(value), ty));
        format!("${}", self.values.len())
    }

    fn bind_text(&mut self, s: &str) -> String {
        self.bind(column_text(s), Type::TEXT)
    }

    /// `column` equal to one of `values`: a plain equality for one value, which the planner estimates
    /// from the column's statistics and matches to an index as it does a constant, `= ANY` of an array
    /// for several.
    fn in_list(&mut self, column: &str, values: &[String]) -> String {
        match values {
            [one] => format!("{column} = {}", self.bind_text(one)),
            _ => {
                let values: Vec<String> = values.iter().map(|v| column_text(v)).collect();
                format!("{column} = ANY({})", self.bind(values, Type::TEXT_ARRAY))
            }
        }
    }

    fn params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.values.iter().map(|(v, t)| (v.as_ref() as &(dyn ToSql + Sync), t.clone())).collect()
    }
}

/// The regular expression matching exactly the actions a segment pattern matches.
fn action_regex(segments: &[Option<String>], open_end: bool) -> String {
    let escape = |s: &str| {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_string() } else { format!("\\{c}") })
            .collect::<String>()
    };
    let body: Vec<String> = segments.iter().map(|s| s.as_deref().map_or("[^.]+".to_owned(), escape)).collect();
    format!("^{}{}$", body.join("\\."), if open_end { "(\\.[^.]+)+" } else { "" })
}

fn action_condition(sql: &mut Sql, patterns: &[ActionPattern]) -> String {
    let parts: Vec<String> = patterns
        .iter()
        .map(|p| match p {
            ActionPattern::Exact(a) => format!("action = {}", sql.bind_text(a)),
            ActionPattern::Prefix(prefix) if prefix.is_empty() => "true".to_owned(),
            ActionPattern::Prefix(prefix) => {
                // Every action under `p` sorts between `p.` and `p/` (`/` follows `.`): an index range.
                let lo = sql.bind_text(&format!("{prefix}."));
                let hi = sql.bind_text(&format!("{prefix}/"));
                format!("(action >= {lo} AND action < {hi})")
            }
            ActionPattern::Segments { segments, open_end } => {
                let literal = p.literal_prefix();
                let matcher = format!("action ~ {}", sql.bind_text(&action_regex(segments, *open_end)));
                if literal.is_empty() {
                    matcher
                } else {
                    let lo = sql.bind_text(&literal);
                    let hi = sql.bind_text(&format!("{}/", &literal[..literal.len() - 1]));
                    format!("(action >= {lo} AND action < {hi} AND {matcher})")
                }
            }
        })
        .collect();
    format!("({})", parts.join(" OR "))
}

fn ip_condition(sql: &mut Sql, nets: &[IpNet]) -> String {
    let parts: Vec<String> = nets
        .iter()
        .map(|net| {
            let (lo, hi) = match net {
                IpNet::V4(n) => (ip_key(n.network().into()), ip_key(n.broadcast().into())),
                IpNet::V6(n) => (ip_key(n.network().into()), ip_key(n.broadcast().into())),
            };
            let lo = sql.bind(lo.to_vec(), Type::BYTEA);
            let hi = sql.bind(hi.to_vec(), Type::BYTEA);
            format!("(ip >= {lo} AND ip <= {hi})")
        })
        .collect();
    format!("({})", parts.join(" OR "))
}

/// Whether a range column holds integers (bounds are then rounded to integers, so that the comparison
/// stays on the column's own type and its index).
fn integer_column(column: &str) -> bool {
    !column.contains("ai_cost")
}

fn range_condition(sql: &mut Sql, column: &str, lower: Bound<f64>, upper: Bound<f64>) -> String {
    let mut parts = vec![format!("{column} IS NOT NULL")];
    let integer = integer_column(column);
    let mut bound = |b: Bound<f64>, lower: bool| {
        let (op, value) = match (b, lower) {
            (Bound::Unbounded, _) => return,
            (Bound::Included(v), true) => (">=", v.ceil()),
            (Bound::Excluded(v), true) => (">", v.floor()),
            (Bound::Included(v), false) => ("<=", v.floor()),
            (Bound::Excluded(v), false) => ("<", v.ceil()),
        };
        let placeholder = if integer {
            sql.bind(value as i64, Type::INT8)
        } else {
            let exact = match b {
                Bound::Included(v) | Bound::Excluded(v) => v,
                Bound::Unbounded => unreachable!(),
            };
            sql.bind(exact, Type::FLOAT8)
        };
        parts.push(format!("{column} {op} {placeholder}"));
    };
    bound(lower, true);
    bound(upper, false);
    format!("({})", parts.join(" AND "))
}

fn metadata_condition(sql: &mut Sql, key: &str, values: &[String]) -> String {
    let key = sql.bind_text(&key.replace('"', ""));
    let alternatives = sql.bind(values.to_vec(), Type::TEXT_ARRAY);
    // Compared as text: a string by its value, a number or a boolean by its JSON spelling, as in the
    // SQLite engine. Objects, arrays and null match nothing.
    format!(
        "(SELECT CASE json_typeof(v) WHEN 'string' THEN v #>> '{{}}' WHEN 'number' THEN v::text \
         WHEN 'boolean' THEN v::text END FROM (SELECT (payload::json) -> 'metadata' -> {key} AS v) m) = ANY({alternatives})"
    )
}

fn predicate_condition(sql: &mut Sql, org: &str, predicate: &Predicate) -> String {
    match predicate {
        Predicate::Action(patterns) => action_condition(sql, patterns),
        Predicate::Category(v) => sql.in_list("category", v),
        Predicate::Actor(v) => {
            let a = sql.in_list("actor_id", v);
            let b = sql.in_list("actor_email", v);
            format!("({a} OR {b})")
        }
        Predicate::ActorType(types) => {
            let v: Vec<String> = types.iter().map(|t| t.as_str().to_owned()).collect();
            sql.in_list("actor_type", &v)
        }
        Predicate::ResourceType(v) => sql.in_list("resource_type", v),
        Predicate::Resource(v) => sql.in_list("resource_id", v),
        Predicate::Project(v) => sql.in_list("project_id", v),
        Predicate::Outcome(o) => {
            let code: i16 = match o {
                trailkeep_core::Outcome::Success => 0,
                trailkeep_core::Outcome::Failure => 1,
            };
            format!("outcome = {}", sql.bind(code, Type::INT2))
        }
        Predicate::Ip(nets) => ip_condition(sql, nets),
        Predicate::Model(v) => sql.in_list("ai_model", v),
        Predicate::Provider(v) => sql.in_list("ai_provider", v),
        Predicate::ApiKey(v) => sql.in_list("ai_api_key", v),
        Predicate::Status(matches) => {
            let parts: Vec<String> = matches
                .iter()
                .map(|m| match m {
                    StatusMatch::Code(c) => format!("ai_status = {}", sql.bind(i64::from(*c), Type::INT8)),
                    StatusMatch::Success => "ai_failed = 0".to_owned(),
                    StatusMatch::Error => "ai_failed = 1".to_owned(),
                })
                .collect();
            format!("({})", parts.join(" OR "))
        }
        Predicate::Range { field, lower, upper } => {
            let column = match field {
                RangeField::Created => "occurred_at",
                RangeField::Cost => "ai_cost",
                RangeField::Tokens => "ai_tokens",
                RangeField::Latency => "ai_latency",
                RangeField::Seq => "seq",
            };
            range_condition(sql, column, *lower, *upper)
        }
        Predicate::Metadata { key, values } => metadata_condition(sql, key, values),
        Predicate::Text(text) => match crate::text::tsquery_literal(text) {
            Some(query) => {
                let org = sql.bind_text(org);
                let query = sql.bind_text(&query);
                format!("seq IN (SELECT tk_search({org}, {query}::tsquery))")
            }
            None => "false".to_owned(),
        },
    }
}

fn term_condition(sql: &mut Sql, org: &str, term: &Term) -> String {
    let condition = predicate_condition(sql, org, &term.predicate);
    if term.negated {
        // A missing value (an event with no actor, say) does not match `actor:x`, so it matches `-actor:x`.
        format!("NOT COALESCE({condition}, false)")
    } else {
        condition
    }
}

/// The most index arms one page query is split into; beyond this a plain scan is cheaper.
const MAX_ARMS: usize = 64;

/// The distinct actions of `org` between `lo` (inclusive) and `hi` (exclusive), found by one index seek
/// each rather than by walking every event in the range.
async fn distinct_actions(
    tx: &Transaction<'_>,
    org: &str,
    lo: &str,
    hi: &str,
) -> Result<Option<Vec<String>>, tokio_postgres::Error> {
    let first = tx.prepare("SELECT MIN(action) FROM events WHERE org_id = $1 AND action >= $2 AND action < $3").await?;
    let next = tx.prepare("SELECT MIN(action) FROM events WHERE org_id = $1 AND action > $2 AND action < $3").await?;
    let mut found = Vec::new();
    let mut action: Option<String> = tx.query_one(&first, &[&org, &lo, &hi]).await?.get(0);
    while let Some(a) = action {
        if found.len() == MAX_ARMS {
            return Ok(None);
        }
        action = tx.query_one(&next, &[&org, &a, &hi]).await?.get(0);
        found.push(a);
    }
    Ok(Some(found))
}

/// Splits the term into conditions that each follow one index in timeline order, so a page reads at most
/// `limit + 1` entries per condition instead of every matching event. `None` when the term is not worth
/// splitting.
async fn index_arms(
    tx: &Transaction<'_>,
    sql: &mut Sql,
    org: &str,
    term: &Term,
) -> Result<Option<Vec<String>>, tokio_postgres::Error> {
    if term.negated {
        return Ok(None);
    }
    match &term.predicate {
        Predicate::Actor(values) if values.len() * 2 <= MAX_ARMS => Ok(Some(
            values
                .iter()
                .flat_map(|v| {
                    let p = sql.bind_text(v);
                    [format!("actor_id = {p}"), format!("actor_email = {p}")]
                })
                .collect(),
        )),
        Predicate::Action(patterns) => {
            let mut actions: Vec<String> = Vec::new();
            for pattern in patterns {
                match pattern {
                    ActionPattern::Exact(a) => actions.push(a.clone()),
                    _ => {
                        let lo = pattern.literal_prefix();
                        if lo.is_empty() {
                            return Ok(None);
                        }
                        let hi = format!("{}/", &lo[..lo.len() - 1]);
                        let Some(found) = distinct_actions(tx, org, &lo, &hi).await? else { return Ok(None) };
                        actions.extend(found.into_iter().filter(|a| pattern.matches(a)));
                    }
                }
            }
            actions.sort();
            actions.dedup();
            if actions.len() > MAX_ARMS {
                return Ok(None);
            }
            Ok(Some(actions.iter().map(|a| format!("action = {}", sql.bind_text(a))).collect()))
        }
        _ => Ok(None),
    }
}

/// Matches up to this many are read through the cost index and sorted; more are found by walking the
/// timeline, where a page fills after a few rows.
const COST_PROBE: i64 = 5000;

/// For the first cost range of a filter: its position, and whether it matches few enough events in the
/// organisation to be read through the cost index. One bounded index probe decides it, since the planner
/// cannot know how selective a given range is.
async fn cost_plan(
    tx: &Transaction<'_>,
    org: &str,
    terms: &[Term],
) -> Result<Option<(usize, bool)>, tokio_postgres::Error> {
    let Some((i, lower, upper)) = terms.iter().enumerate().find_map(|(i, t)| match &t.predicate {
        Predicate::Range { field: RangeField::Cost, lower, upper } if !t.negated => Some((i, *lower, *upper)),
        _ => None,
    }) else {
        return Ok(None);
    };
    let mut probe = Sql::default();
    let org = probe.bind_text(org);
    let c = range_condition(&mut probe, "ai_cost", lower, upper);
    let statement = format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE org_id = {org} AND {c} LIMIT {}) probe",
        COST_PROBE + 1
    );
    let n: i64 = tx.query_typed(&statement, &probe.params()).await?[0].get(0);
    Ok(Some((i, n <= COST_PROBE)))
}

/// Up to about this many full-text matches are read through the GIN index and their events sorted; a
/// phrase matching more is checked event by event along the timeline, where a page of 50 fills within
/// the first few thousand events. Each matched event read costs about what three events walked do.
const TEXT_PROBE: f64 = 2000.0;

/// The planner's estimate of the rows `statement` returns: the `rows=` of the top line of its plan.
async fn estimated_rows(
    tx: &Transaction<'_>,
    statement: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<f64, tokio_postgres::Error> {
    let rows = tx.query_typed(&format!("EXPLAIN {statement}"), params).await?;
    let top: Option<String> = rows.first().map(|r| r.get(0));
    Ok(top
        .as_deref()
        .and_then(|line| line.split("rows=").nth(1))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0))
}

/// For the first full-text term of a filter: its position, and whether it matches few enough events in
/// the organisation to be read through the GIN index.
///
/// PostgreSQL's own statistics decide it: `ANALYZE` keeps the most common words of `event_search` with
/// their frequencies, so the planner's estimates of the full-text rows with and without the phrase give
/// its share of the events, and the organisation's counter its number of events. Both estimates are
/// plans only, a fraction of a millisecond. Counting the matches instead would cost what reading them
/// does: the GIN index hands back every match of a word at once, hundreds of thousands for a common word
/// among millions of events. A word missing from the statistics is rare, and read through the index.
async fn text_plan(
    tx: &Transaction<'_>,
    org: &str,
    terms: &[Term],
) -> Result<Option<(usize, bool)>, tokio_postgres::Error> {
    let Some((i, query)) = terms.iter().enumerate().find_map(|(i, t)| match &t.predicate {
        Predicate::Text(text) if !t.negated => crate::text::tsquery_literal(text).map(|q| (i, q)),
        _ => None,
    }) else {
        return Ok(None);
    };
    let all = estimated_rows(tx, "SELECT 1 FROM event_search", &[]).await?;
    let matching =
        estimated_rows(tx, "SELECT 1 FROM event_search WHERE body @@ $1::tsquery", &[(&query, Type::TEXT)]).await?;
    let events: i64 =
        tx.query_opt("SELECT last_seq FROM org_seq WHERE org_id = $1", &[&org]).await?.map_or(0, |row| row.get(0));
    let share = if all > 0.0 { (matching / all).min(1.0) } else { 0.0 };
    Ok(Some((i, share * events as f64 <= TEXT_PROBE)))
}

/// A full-text condition checked on each event the query visits, through the full-text row's primary
/// key rather than the GIN index: for a phrase so common that walking the timeline finds a page's worth
/// of matches sooner than reading every match. Row-level security admits the row as for any read.
///
/// A scalar subquery rather than `EXISTS`: the planner turns `EXISTS` into a semi-join, which it may
/// run as a hash join over every full-text row of the organisation; a scalar subquery stays a check
/// on each row the timeline's index hands up, and the page stops the walk.
fn text_walk_condition(sql: &mut Sql, text: &str) -> String {
    match crate::text::tsquery_literal(text) {
        Some(query) => {
            let query = sql.bind_text(&query);
            format!(
                "COALESCE((SELECT s.body @@ {query}::tsquery FROM event_search s WHERE s.org_id = events.org_id \
                 AND s.seq = events.seq AND s.received_at = events.received_at), false)"
            )
        }
        None => "false".to_owned(),
    }
}

fn parse_event(payload: &str) -> Result<Event, ReadError> {
    serde_json::from_str(payload).map_err(|e| ReadError::Payload(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Sql(#[from] tokio_postgres::Error),
    #[error("a stored event does not parse: {0}")]
    Payload(String),
}

/// A page query as it is sent: its SQL text and bound values.
struct PageStatement {
    sql: Sql,
    text: String,
}

/// Runs one page query in a transaction scoped to `scope`.
pub async fn list_events(tx: &Transaction<'_>, scope: &ReadScope, query: &EventQuery) -> Result<EventPage, ReadError> {
    let Some(statement) = page_statement(tx, scope, query).await? else {
        // An action pattern that matches no action this organisation has: nothing to read.
        return Ok(EventPage { events: Vec::new(), next: None });
    };
    let rows = tx.query_typed(&statement.text, &statement.sql.params()).await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        events.push(parse_event(row.get(0))?);
    }
    let next = if events.len() > query.limit {
        events.truncate(query.limit);
        events.last().map(|e| Cursor { order: query.order, occurred_at: e.occurred_at, seq: e.seq })
    } else {
        None
    };
    Ok(EventPage { events, next })
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the statement [`list_events`] runs for `query`, with the same values
/// bound, as text after the statement and its values: for studying the plans on a large store. `None` when the query reads nothing (an
/// action pattern matching none of the organisation's actions). The statement runs in full.
pub async fn explain_events(
    tx: &Transaction<'_>,
    scope: &ReadScope,
    query: &EventQuery,
) -> Result<Option<String>, ReadError> {
    let Some(statement) = page_statement(tx, scope, query).await? else { return Ok(None) };
    let explain = format!("EXPLAIN (ANALYZE, BUFFERS) {}", statement.text);
    let rows = tx.query_typed(&explain, &statement.sql.params()).await?;
    let plan: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    let values: Vec<String> =
        statement.sql.shown.iter().enumerate().map(|(i, v)| format!("-- ${} = {v}", i + 1)).collect();
    Ok(Some(format!("{}\n{}\n\n{}", statement.text, values.join("\n"), plan.join("\n"))))
}

/// The statement that reads one page, after the index probes that shape it; `None` when nothing can
/// match.
async fn page_statement(
    tx: &Transaction<'_>,
    scope: &ReadScope,
    query: &EventQuery,
) -> Result<Option<PageStatement>, ReadError> {
    let org_id = scope.org.as_str();
    let mut sql = Sql::default();
    let org = sql.bind_text(org_id);
    sql.conditions.push(format!("org_id = {org}"));
    if let Some(projects) = &scope.projects {
        let projects: Vec<String> = projects.iter().map(|p| p.to_string()).collect();
        let c = if projects.is_empty() { "false".to_owned() } else { sql.in_list("project_id", &projects) };
        sql.conditions.push(c);
    }
    // An actor or action term drives the query through its index when it can: the first one found.
    let mut arms = None;
    for (i, term) in query.filter.terms.iter().enumerate() {
        if let Some(found) = index_arms(tx, &mut sql, org_id, term).await? {
            arms = Some((i, found));
            break;
        }
    }
    if arms.as_ref().is_some_and(|(_, a)| a.is_empty()) {
        return Ok(None);
    }
    let cost = match arms {
        None => cost_plan(tx, org_id, &query.filter.terms).await?,
        Some(_) => None,
    };
    let text = text_plan(tx, org_id, &query.filter.terms).await?;
    for (i, term) in query.filter.terms.iter().enumerate() {
        if arms.as_ref().is_some_and(|(driver, _)| *driver == i) {
            continue;
        }
        let c = match (&cost, &term.predicate) {
            (Some((at, selective)), Predicate::Range { lower, upper, .. }) if *at == i => {
                if *selective {
                    let c = range_condition(&mut sql, "ai_cost", *lower, *upper);
                    format!("seq IN (SELECT seq FROM events WHERE org_id = {org} AND {c})")
                } else {
                    // An expression keeps the planner off the cost index: walking the timeline fills a
                    // page quickly.
                    range_condition(&mut sql, "(ai_cost + 0)", *lower, *upper)
                }
            }
            (_, Predicate::Text(phrase)) if text.is_some_and(|(at, selective)| at == i && !selective) => {
                text_walk_condition(&mut sql, phrase)
            }
            _ => term_condition(&mut sql, org_id, term),
        };
        sql.conditions.push(c);
    }
    let (cmp, dir) = match query.order {
        Order::Desc => ("<", "DESC"),
        Order::Asc => (">", "ASC"),
    };
    if let Some(after) = &query.after {
        let t = sql.bind(after.occurred_at, Type::INT8);
        let s = sql.bind(after.seq as i64, Type::INT8);
        sql.conditions.push(format!("(occurred_at, seq) {cmp} ({t}, {s})"));
    }
    let limit = sql.bind(query.limit as i64 + 1, Type::INT8);
    let order = format!("ORDER BY occurred_at {dir}, seq {dir}");
    let common = sql.conditions.join(" AND ");
    let statement = match &arms {
        None => format!("SELECT payload FROM events WHERE {common} {order} LIMIT {limit}"),
        Some((_, arms)) => {
            // Each arm reads its own index in timeline order and stops at the page size; the union (which
            // also drops an event two arms both found, such as an actor whose id is its email) is cut to
            // the page, and only then are the payloads read.
            let parts: Vec<String> = arms
                .iter()
                .map(|arm| {
                    format!(
                        "(SELECT seq, occurred_at, received_at FROM events WHERE {common} AND {arm} {order} LIMIT {limit})"
                    )
                })
                .collect();
            format!(
                "WITH picked AS (SELECT seq, occurred_at, received_at FROM ({}) u {order} LIMIT {limit}) \
                 SELECT e.payload FROM picked JOIN events e \
                 ON e.org_id = {org} AND e.seq = picked.seq AND e.received_at = picked.received_at \
                 ORDER BY picked.occurred_at {dir}, picked.seq {dir}",
                parts.join(" UNION ")
            )
        }
    };
    Ok(Some(PageStatement { sql, text: statement }))
}

/// Totals of the AI requests (events with an `ai` record, which always have `ai_failed`) that `filter`
/// selects in the scope, as the SQLite engine's `aggregates.rs` adds them up.
pub async fn ai_totals(
    tx: &Transaction<'_>,
    scope: &ReadScope,
    filter: &trailkeep_core::Filter,
) -> Result<trailkeep_store::aggregates::AiTotals, ReadError> {
    let org_id = scope.org.as_str();
    let mut sql = Sql::default();
    let org = sql.bind_text(org_id);
    sql.conditions.push(format!("org_id = {org}"));
    if let Some(projects) = &scope.projects {
        let projects: Vec<String> = projects.iter().map(|p| p.to_string()).collect();
        let c = if projects.is_empty() { "false".to_owned() } else { sql.in_list("project_id", &projects) };
        sql.conditions.push(c);
    }
    sql.conditions.push("ai_failed IS NOT NULL".to_owned());
    for term in &filter.terms {
        let c = term_condition(&mut sql, org_id, term);
        sql.conditions.push(c);
    }
    let statement = format!(
        "SELECT COUNT(*), COALESCE(SUM(ai_tokens), 0)::float8, COALESCE(SUM(ai_cost), 0)::float8 FROM events WHERE {}",
        sql.conditions.join(" AND ")
    );
    let row = tx.query_typed_one(&statement, &sql.params()).await?;
    let (requests, tokens, cost_usd): (i64, f64, f64) = (row.get(0), row.get(1), row.get(2));
    Ok(trailkeep_store::aggregates::AiTotals {
        requests: requests.max(0) as u64,
        tokens: tokens.max(0.0) as u64,
        cost_usd,
    })
}

/// One event by id within the scope.
pub async fn get_event(tx: &Transaction<'_>, scope: &ReadScope, id: uuid::Uuid) -> Result<Option<Event>, ReadError> {
    let row = tx
        .query_opt(
            "SELECT payload, project_id FROM events WHERE org_id = $1 AND id = $2 LIMIT 1",
            &[&scope.org.as_str(), &id],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let project: Option<&str> = row.get(1);
    if let Some(projects) = &scope.projects
        && !project.is_some_and(|p| projects.iter().any(|s| s.as_str() == p))
    {
        return Ok(None);
    }
    parse_event(row.get(0)).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_patterns_become_anchored_escaped_expressions() {
        let p = |s: &str| match ActionPattern::parse(s).unwrap() {
            ActionPattern::Segments { segments, open_end } => action_regex(&segments, open_end),
            other => panic!("{other:?} is not a segment pattern"),
        };
        assert_eq!(p("team.*.added"), "^team\\.[^.]+\\.added$");
        assert_eq!(p("*.member.*"), "^[^.]+\\.member(\\.[^.]+)+$");
        // Whatever the action grammar allows, only letters, digits and `_` go unescaped.
        assert_eq!(action_regex(&[Some("a-b$".into()), None], false), "^a\\-b\\$\\.[^.]+$");
    }
}
