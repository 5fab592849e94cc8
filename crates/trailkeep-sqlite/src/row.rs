//! How an event maps onto the `events` table: indexed columns for every filter, plus the full JSON.

use std::net::IpAddr;

use rusqlite::types::Value as SqlValue;
use trailkeep_core::NewEvent;

/// The insert every append runs, one row per event; also used by the raw-engine benchmark so both
/// write the very same rows.
pub const INSERT_EVENT: &str = "INSERT INTO events (org_id, seq, id, project_id, action, category, occurred_at, \
     received_at, actor_type, actor_id, actor_email, resource_type, resource_id, outcome, ip, ai_model, \
     ai_provider, ai_status, ai_failed, ai_api_key, ai_cost, ai_tokens, ai_latency, payload) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)";

/// An address as 16 bytes, IPv4 mapped into IPv6, so that a CIDR block is one byte range.
pub fn ip_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn text(s: &Option<String>) -> SqlValue {
    s.as_ref().map_or(SqlValue::Null, |s| SqlValue::Text(s.clone()))
}

fn int(v: Option<u64>) -> SqlValue {
    v.map_or(SqlValue::Null, |v| SqlValue::Integer(v.min(i64::MAX as u64) as i64))
}

/// The parameters of [`INSERT_EVENT`] for one event placed at `seq`, received at `received_at`, and kept
/// as `payload`.
pub fn event_params(event: &NewEvent, seq: u64, received_at: i64, payload: String) -> [SqlValue; 24] {
    let actor = event.actor.as_ref();
    let target = event.targets.first();
    let ai = event.ai.as_ref();
    let ai_failed = ai.map(|a| {
        let failed = a.error.is_some() || a.status_code.is_some_and(|c| c >= 400);
        SqlValue::Integer(i64::from(failed))
    });
    [
        SqlValue::Text(event.organization_id.to_string()),
        SqlValue::Integer(seq as i64),
        SqlValue::Blob(event.id.as_bytes().to_vec()),
        event.project_id.as_ref().map_or(SqlValue::Null, |p| SqlValue::Text(p.to_string())),
        SqlValue::Text(event.action.to_string()),
        SqlValue::Text(event.category.clone()),
        SqlValue::Integer(event.occurred_at),
        SqlValue::Integer(received_at),
        actor.map_or(SqlValue::Null, |a| SqlValue::Text(a.actor_type.as_str().to_owned())),
        actor.map_or(SqlValue::Null, |a| text(&a.id)),
        actor.map_or(SqlValue::Null, |a| text(&a.email)),
        target.map_or(SqlValue::Null, |t| SqlValue::Text(t.target_type.clone())),
        target.map_or(SqlValue::Null, |t| SqlValue::Text(t.id.clone())),
        SqlValue::Integer(match event.outcome {
            trailkeep_core::Outcome::Success => 0,
            trailkeep_core::Outcome::Failure => 1,
        }),
        event.context.ip.map_or(SqlValue::Null, |ip| SqlValue::Blob(ip_key(ip).to_vec())),
        ai.map_or(SqlValue::Null, |a| text(&a.model)),
        ai.map_or(SqlValue::Null, |a| text(&a.provider)),
        ai.map_or(SqlValue::Null, |a| int(a.status_code.map(u64::from))),
        ai_failed.unwrap_or(SqlValue::Null),
        ai.map_or(SqlValue::Null, |a| text(&a.api_key_id)),
        ai.and_then(|a| a.cost_usd).map_or(SqlValue::Null, SqlValue::Real),
        ai.map_or(SqlValue::Null, |a| int(a.total_tokens())),
        ai.map_or(SqlValue::Null, |a| int(a.latency_ms)),
        SqlValue::Text(payload),
    ]
}
