//! Self-auditing: the events Trailkeep writes about changes made inside it.
//!
//! Every administrative change — an organisation, project or member created, changed or removed, a key
//! created or revoked, a portal link issued, a session started — is recorded in the affected
//! organisation's own log, in the same store call as the change, with who made it, from where (the TCP
//! peer's address and the user agent) and the values before and after. It cannot be switched off: the
//! handlers have no way to make such a change without handing the store its event.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use serde_json::Value;
use trailkeep_core::{Action, Actor, ActorType, Change, Context, NewEvent, OrgId, Outcome, Target};
use uuid::Uuid;

use crate::now_ms;

/// Where a request came from, for the `context` of the events it causes.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub context: Context,
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Origin, Self::Rejection> {
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            // An event's user agent is capped well below the field limit; the rest says nothing new.
            .map(|ua| ua.chars().take(512).collect());
        let request_id = parts.headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(Origin { context: Context { ip, user_agent, request_id, ..Context::default() } })
    }
}

/// The actor of changes Trailkeep makes on its own (organisations created by ingest, expiries).
pub fn system_actor() -> Actor {
    Actor { actor_type: ActorType::System, id: Some("trailkeep".into()), name: Some("Trailkeep".into()), email: None }
}

/// One field's value before and after a change; `None` when it did not change.
pub fn change(field: &str, before: impl Into<Value>, after: impl Into<Value>) -> Option<Change> {
    let (before, after) = (before.into(), after.into());
    (before != after).then(|| Change { field: field.to_owned(), before, after })
}

/// What a change did, to whom, for the event that records it.
pub struct Record<'a> {
    pub org: OrgId,
    pub project: Option<trailkeep_core::ProjectId>,
    /// A valid action, such as `member.role_changed`.
    pub action: &'a str,
    pub category: &'a str,
    pub target: Target,
    pub description: String,
    pub changes: Vec<Change>,
    pub metadata: serde_json::Map<String, Value>,
}

/// The event recording `record`, made by `actor` from `origin`.
pub fn event(record: Record<'_>, actor: Actor, origin: &Origin) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        client_id: false,
        organization_id: record.org,
        project_id: record.project,
        action: Action::parse(record.action).unwrap_or_else(|e| panic!("audit action {}: {e}", record.action)),
        category: record.category.to_owned(),
        occurred_at: now_ms(),
        actor: Some(actor),
        targets: vec![record.target],
        context: origin.context.clone(),
        description: Some(record.description),
        outcome: Outcome::Success,
        error: None,
        changes: record.changes,
        metadata: record.metadata,
        ai: None,
    }
}

/// The event recording an export of `org`'s log (`audit_log.exported`, category `audit_log`, the log
/// itself as target), with what was exported in `metadata` — its `format` first. Every export is recorded
/// before its first byte leaves.
pub fn export_event(
    org: &OrgId,
    description: String,
    metadata: serde_json::Map<String, Value>,
    actor: Actor,
    origin: &Origin,
) -> NewEvent {
    event(
        Record {
            org: org.clone(),
            project: None,
            action: "audit_log.exported",
            category: "audit_log",
            target: Target { target_type: "audit_log".into(), id: org.to_string(), name: None },
            description,
            changes: Vec::new(),
            metadata,
        },
        actor,
        origin,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_recorded_only_when_the_value_differs() {
        assert!(change("name", "a", "a").is_none());
        let c = change("role", "member", "admin").unwrap();
        assert_eq!((c.field.as_str(), c.before, c.after), ("role", Value::from("member"), Value::from("admin")));
        assert!(change("projects", Value::Null, serde_json::json!(["p1"])).is_some());
    }
}
