//! Reading: a [`Filter`] compiled to one parameterised SQL statement over the indexed columns.
//!
//! Every statement starts with `org_id = ?` (and the project scope, when there is one), so no read is
//! unscoped. User text never enters SQL: values are bound, full-text input is turned into quoted FTS5
//! phrases, and action patterns are matched by a registered function rather than a `LIKE` or `GLOB`
//! whose metacharacters a user could smuggle in.

use std::ops::Bound;

use ipnet::IpNet;
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value as SqlValue;
use trailkeep_core::cursor::{Cursor, Order};
use trailkeep_core::filter::StatusMatch;
use trailkeep_core::{ActionPattern, Event, Predicate, RangeField, Term};
use trailkeep_store::{EventPage, EventQuery, ReadScope};

use crate::row::ip_key;

/// Registers `tk_action_match(pattern, action)` on a connection.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "tk_action_match",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let pattern: String = ctx.get(0)?;
            let action: String = ctx.get(1)?;
            Ok(ActionPattern::parse(&pattern).is_ok_and(|p| p.matches(&action)))
        },
    )
}

/// A SQL condition and its bound values, built up term by term.
#[derive(Default)]
pub(crate) struct Sql {
    pub(crate) conditions: Vec<String>,
    pub(crate) values: Vec<SqlValue>,
}

impl Sql {
    fn bind(&mut self, v: SqlValue) -> String {
        self.values.push(v);
        format!("?{}", self.values.len())
    }

    pub(crate) fn bind_text(&mut self, s: &str) -> String {
        self.bind(SqlValue::Text(s.to_owned()))
    }

    pub(crate) fn in_list(&mut self, column: &str, values: &[String]) -> String {
        let placeholders: Vec<String> = values.iter().map(|v| self.bind_text(v)).collect();
        format!("{column} IN ({})", placeholders.join(", "))
    }
}

/// Quotes user text as one FTS5 phrase: the words must appear adjacent and in order. Quotes inside are
/// doubled, so FTS5 operators in the text (`OR`, `NEAR`, `*`, `:`) are plain words. FTS5 reads a query
/// only up to its first NUL, which would leave the phrase unterminated; a NUL separates words like any
/// other character that is not part of one, so it becomes a space.
pub fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\"").replace('\0', " "))
}

fn action_condition(sql: &mut Sql, patterns: &[ActionPattern]) -> String {
    let parts: Vec<String> = patterns
        .iter()
        .map(|p| match p {
            ActionPattern::Exact(a) => format!("action = {}", sql.bind_text(a)),
            ActionPattern::Prefix(prefix) if prefix.is_empty() => "1".to_owned(),
            ActionPattern::Prefix(prefix) => {
                // Every action under `p` sorts between `p.` and `p/` (`/` follows `.`): an index range.
                let lo = sql.bind_text(&format!("{prefix}."));
                let hi = sql.bind_text(&format!("{prefix}/"));
                format!("(action >= {lo} AND action < {hi})")
            }
            ActionPattern::Segments { .. } => {
                let literal = p.literal_prefix();
                let matcher = format!("tk_action_match({}, action)", sql.bind_text(&p.to_string()));
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
            let lo = sql.bind(SqlValue::Blob(lo.to_vec()));
            let hi = sql.bind(SqlValue::Blob(hi.to_vec()));
            format!("(ip >= {lo} AND ip <= {hi})")
        })
        .collect();
    format!("({})", parts.join(" OR "))
}

fn range_condition(sql: &mut Sql, column: &str, lower: Bound<f64>, upper: Bound<f64>) -> String {
    let mut parts = vec![format!("{column} IS NOT NULL")];
    let mut bound = |b: Bound<f64>, incl: &str, excl: &str| match b {
        Bound::Included(v) => parts.push(format!("{column} {incl} {}", bind_number(sql, v))),
        Bound::Excluded(v) => parts.push(format!("{column} {excl} {}", bind_number(sql, v))),
        Bound::Unbounded => {}
    };
    bound(lower, ">=", ">");
    bound(upper, "<=", "<");
    format!("({})", parts.join(" AND "))
}

fn bind_number(sql: &mut Sql, v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        sql.bind(SqlValue::Integer(v as i64))
    } else {
        sql.bind(SqlValue::Real(v))
    }
}

fn metadata_condition(sql: &mut Sql, key: &str, values: &[String]) -> String {
    let path = sql.bind_text(&format!("$.metadata.\"{}\"", key.replace('"', "")));
    let alternatives: Vec<String> = values.iter().map(|v| sql.bind_text(v)).collect();
    // Compared as text: a string by its value, a number or a boolean by its JSON spelling. SQLite reads
    // `true` as the integer 1, so comparing extracted values would let `1` match `true` and `1.0`.
    // Objects, arrays and null match nothing.
    format!(
        "(CASE json_type(payload, {path}) WHEN 'text' THEN json_extract(payload, {path}) \
         WHEN 'integer' THEN payload -> {path} WHEN 'real' THEN payload -> {path} \
         WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END) IN ({})",
        alternatives.join(", ")
    )
}

fn predicate_condition(sql: &mut Sql, predicate: &Predicate) -> String {
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
            let code = match o {
                trailkeep_core::Outcome::Success => 0,
                trailkeep_core::Outcome::Failure => 1,
            };
            format!("outcome = {}", sql.bind(SqlValue::Integer(code)))
        }
        Predicate::Ip(nets) => ip_condition(sql, nets),
        Predicate::Model(v) => sql.in_list("ai_model", v),
        Predicate::Provider(v) => sql.in_list("ai_provider", v),
        Predicate::ApiKey(v) => sql.in_list("ai_api_key", v),
        Predicate::Status(matches) => {
            // Every condition names `ai_failed IS NOT NULL` itself, the partial index's own condition, so
            // that the planner may walk the AI requests' index (`events_org_ai`) in timeline order instead
            // of the whole timeline: SQLite uses a partial index only when a query's terms say its WHERE.
            if matches.contains(&StatusMatch::Success) && matches.contains(&StatusMatch::Error) {
                // Every AI request, whatever its code.
                return "ai_failed IS NOT NULL".to_owned();
            }
            let parts: Vec<String> = matches
                .iter()
                .map(|m| match m {
                    StatusMatch::Code(c) => format!("ai_status = {}", sql.bind(SqlValue::Integer(i64::from(*c)))),
                    StatusMatch::Success => "ai_failed = 0".to_owned(),
                    StatusMatch::Error => "ai_failed = 1".to_owned(),
                })
                .collect();
            format!("(ai_failed IS NOT NULL AND ({}))", parts.join(" OR "))
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
        Predicate::Text(text) => {
            let phrase = sql.bind_text(&fts_phrase(text));
            format!("pos IN (SELECT rowid FROM search.fts WHERE fts MATCH {phrase})")
        }
    }
}

pub(crate) fn term_condition(sql: &mut Sql, term: &Term) -> String {
    let condition = predicate_condition(sql, &term.predicate);
    if term.negated {
        // A missing value (an event with no actor, say) does not match `actor:x`, so it matches `-actor:x`.
        format!("NOT COALESCE({condition}, 0)")
    } else {
        condition
    }
}

/// The most index arms one page query is split into; beyond this a plain scan is cheaper.
const MAX_ARMS: usize = 64;

/// The distinct actions of `org` between `lo` (inclusive) and `hi` (exclusive), found by one index seek
/// each rather than by walking every event in the range.
fn distinct_actions(conn: &Connection, org: &str, lo: &str, hi: &str) -> rusqlite::Result<Option<Vec<String>>> {
    let mut stmt =
        conn.prepare_cached("SELECT MIN(action) FROM events WHERE org_id = ?1 AND action > ?2 AND action < ?3")?;
    let mut first =
        conn.prepare_cached("SELECT MIN(action) FROM events WHERE org_id = ?1 AND action >= ?2 AND action < ?3")?;
    let mut found = Vec::new();
    let mut next: Option<String> = first.query_row(rusqlite::params![org, lo, hi], |r| r.get(0))?;
    while let Some(action) = next {
        if found.len() == MAX_ARMS {
            return Ok(None);
        }
        next = stmt.query_row(rusqlite::params![org, action, hi], |r| r.get(0))?;
        found.push(action);
    }
    Ok(Some(found))
}

/// Splits the term at `terms[index]` into conditions that each follow one index in timeline order, so a
/// page reads at most `limit + 1` entries per condition instead of every matching event. `None` when the
/// term is not worth splitting.
fn index_arms(conn: &Connection, sql: &mut Sql, org: &str, term: &Term) -> rusqlite::Result<Option<Vec<String>>> {
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
                        let Some(found) = distinct_actions(conn, org, &lo, &hi)? else { return Ok(None) };
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
const COST_PROBE: usize = 5000;

/// For the first cost range of a filter: its position, and whether it matches few enough events in the
/// organisation to be read through the cost index. One bounded index probe decides it, since the planner
/// cannot know how selective a given range is.
fn cost_plan(conn: &Connection, org: &str, terms: &[Term]) -> rusqlite::Result<Option<(usize, bool)>> {
    let Some((i, lower, upper)) = terms.iter().enumerate().find_map(|(i, t)| match &t.predicate {
        Predicate::Range { field: RangeField::Cost, lower, upper } if !t.negated => Some((i, *lower, *upper)),
        _ => None,
    }) else {
        return Ok(None);
    };
    let mut probe = Sql::default();
    let org = probe.bind_text(org);
    let c = range_condition(&mut probe, "ai_cost", lower, upper);
    let statement =
        format!("SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE org_id = {org} AND {c} LIMIT {})", COST_PROBE + 1);
    let n: i64 = conn.prepare_cached(&statement)?.query_row(rusqlite::params_from_iter(probe.values), |r| r.get(0))?;
    Ok(Some((i, n as usize <= COST_PROBE)))
}

/// Runs one page query on a read connection.
pub fn list_events(conn: &Connection, scope: &ReadScope, query: &EventQuery) -> rusqlite::Result<EventPage> {
    let Some((statement, values)) = page_statement(conn, scope, query)? else {
        // An action pattern that matches no action this organisation has: nothing to read.
        return Ok(EventPage { events: Vec::new(), next: None });
    };
    let mut stmt = conn.prepare_cached(&statement)?;
    let mut events = Vec::with_capacity(query.limit + 1);
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    while let Some(row) = rows.next()? {
        let payload: String = row.get(0)?;
        let event: Event = serde_json::from_str(&payload)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))?;
        events.push(event);
    }
    let next = if events.len() > query.limit {
        events.truncate(query.limit);
        events.last().map(|e| Cursor { order: query.order, occurred_at: e.occurred_at, seq: e.seq })
    } else {
        None
    };
    Ok(EventPage { events, next })
}

/// The statement (and its values) that reads one page, or `None` when nothing can match.
fn page_statement(
    conn: &Connection,
    scope: &ReadScope,
    query: &EventQuery,
) -> rusqlite::Result<Option<(String, Vec<SqlValue>)>> {
    let mut sql = Sql::default();
    let org = sql.bind_text(scope.org.as_str());
    sql.conditions.push(format!("org_id = {org}"));
    if let Some(projects) = &scope.projects {
        let projects: Vec<String> = projects.iter().map(|p| p.to_string()).collect();
        let c = if projects.is_empty() { "0".to_owned() } else { sql.in_list("project_id", &projects) };
        sql.conditions.push(c);
    }
    // An actor or action term drives the query through its index when it can: the first one found.
    let mut arms = None;
    for (i, term) in query.filter.terms.iter().enumerate() {
        if let Some(found) = index_arms(conn, &mut sql, scope.org.as_str(), term)? {
            arms = Some((i, found));
            break;
        }
    }
    if arms.as_ref().is_some_and(|(_, a)| a.is_empty()) {
        return Ok(None);
    }
    let cost = match arms {
        None => cost_plan(conn, scope.org.as_str(), &query.filter.terms)?,
        Some(_) => None,
    };
    for (i, term) in query.filter.terms.iter().enumerate() {
        if arms.as_ref().is_some_and(|(driver, _)| *driver == i) {
            continue;
        }
        let c = match (&cost, &term.predicate) {
            (Some((at, selective)), Predicate::Range { lower, upper, .. }) if *at == i => {
                if *selective {
                    let c = range_condition(&mut sql, "ai_cost", *lower, *upper);
                    format!("pos IN (SELECT pos FROM events WHERE org_id = {org} AND {c})")
                } else {
                    // `+` keeps the planner off the cost index: walking the timeline fills a page quickly.
                    range_condition(&mut sql, "+ai_cost", *lower, *upper)
                }
            }
            _ => term_condition(&mut sql, term),
        };
        sql.conditions.push(c);
    }
    let (cmp, dir) = match query.order {
        Order::Desc => ("<", "DESC"),
        Order::Asc => (">", "ASC"),
    };
    if let Some(after) = &query.after {
        let t = sql.bind(SqlValue::Integer(after.occurred_at));
        let s = sql.bind(SqlValue::Integer(after.seq as i64));
        sql.conditions.push(format!("(occurred_at, seq) {cmp} ({t}, {s})"));
    }
    let limit = sql.bind(SqlValue::Integer(query.limit as i64 + 1));
    let order = format!("ORDER BY occurred_at {dir}, seq {dir}");
    let common = sql.conditions.join(" AND ");
    let statement = match &arms {
        None => format!("SELECT payload FROM events WHERE {common} {order} LIMIT {limit}"),
        Some((_, arms)) => {
            // Each arm reads its own index in timeline order and stops at the page size; the union (which also
            // drops an event two arms both found, such as an actor whose id is its email) is cut
            // to the page, and only then are the payloads read.
            let parts: Vec<String> = arms
                .iter()
                .map(|arm| {
                    format!("SELECT * FROM (SELECT pos, occurred_at, seq FROM events WHERE {common} AND {arm} {order} LIMIT {limit})")
                })
                .collect();
            format!(
                "WITH picked AS (SELECT pos, occurred_at, seq FROM ({}) {order} LIMIT {limit}) \
                 SELECT e.payload FROM picked JOIN events e ON e.pos = picked.pos \
                 ORDER BY picked.occurred_at {dir}, picked.seq {dir}",
                parts.join(" UNION ")
            )
        }
    };
    Ok(Some((statement, sql.values)))
}

/// One event by id within the scope.
pub fn get_event(conn: &Connection, scope: &ReadScope, id: uuid::Uuid) -> rusqlite::Result<Option<Event>> {
    use rusqlite::OptionalExtension;
    let payload: Option<(String, Option<String>)> = conn
        .prepare_cached("SELECT payload, project_id FROM events WHERE org_id = ?1 AND id = ?2")?
        .query_row(rusqlite::params![scope.org.as_str(), id.as_bytes().as_slice()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((payload, project)) = payload else { return Ok(None) };
    if let Some(projects) = &scope.projects
        && !project.is_some_and(|p| projects.iter().any(|s| s.as_str() == p))
    {
        return Ok(None);
    }
    serde_json::from_str(&payload)
        .map(Some)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;
    use trailkeep_core::cursor::Order;
    use trailkeep_core::{Filter, OrgId};
    use trailkeep_store::{EventQuery, ReadScope};

    use super::page_statement;
    use crate::aggregates::totals_statement;
    use crate::schema::migrate_main;

    fn migrated() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::register_functions(&conn).unwrap();
        migrate_main(&mut conn).unwrap();
        conn
    }

    /// A store whose AI requests are rare (1 event in 25), with the planner statistics the writer keeps
    /// up to date (`PRAGMA optimize`).
    fn rare_ai_requests() -> Connection {
        let conn = migrated();
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
             INSERT INTO events (org_id, seq, id, action, category, occurred_at, received_at, outcome,
                                 ai_model, ai_status, ai_failed, ai_tokens, ai_cost, payload)
             SELECT 'acme', i, randomblob(16), CASE WHEN i % 25 = 0 THEN 'ai.request' ELSE 'user.login' END,
                    'audit', 1000 * i, 1000 * i, 0,
                    CASE WHEN i % 25 = 0 THEN 'model-' || (i % 3) END,
                    CASE WHEN i % 25 = 0 THEN 200 END,
                    CASE WHEN i % 25 = 0 THEN i % 2 END,
                    CASE WHEN i % 25 = 0 THEN 100 END,
                    CASE WHEN i % 25 = 0 THEN 0.01 END, '{}'
             FROM n;
             ANALYZE;",
        )
        .unwrap();
        conn
    }

    fn scope() -> ReadScope {
        ReadScope::org(OrgId::try_from("acme".to_owned()).unwrap())
    }

    fn filter(q: &str) -> Filter {
        trailkeep_core::query::parse(q, 0).unwrap()
    }

    /// The plan SQLite chooses for a statement, one line per step.
    fn plan(conn: &Connection, statement: &str, values: Vec<rusqlite::types::Value>) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {statement}")).unwrap();
        let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    fn page_plan(conn: &Connection, q: &str) -> String {
        let query = EventQuery { filter: filter(q), order: Order::Desc, limit: 50, after: None };
        let (statement, values) = page_statement(conn, &scope(), &query).unwrap().unwrap();
        plan(conn, &statement, values)
    }

    #[test]
    fn the_ai_view_walks_the_ai_requests_index_in_timeline_order() {
        let conn = rare_ai_requests();
        for q in ["status:success,error", "status:error", "status:success", "status:429", "status:success,500"] {
            let plan = page_plan(&conn, q);
            assert!(plan.contains("events_org_ai"), "{q}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{q} sorts instead of reading in order: {plan}");
        }
        // Without a status filter the timeline's own index serves.
        let plan = page_plan(&conn, "outcome:failure");
        assert!(!plan.contains("events_org_ai"), "{plan}");
    }

    #[test]
    fn ai_totals_read_only_the_ai_requests_index() {
        let conn = rare_ai_requests();
        let (statement, values) = totals_statement(&scope(), &filter("status:success,error"));
        let plan = plan(&conn, &statement, values);
        assert!(plan.contains("COVERING INDEX events_org_ai"), "{plan}");
    }
}
