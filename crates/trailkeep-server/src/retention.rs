//! Retention and legal holds: `/v1/orgs/{org}/retention` and `/v1/orgs/{org}/legal-holds`, and the
//! sweeper that deletes expired events.
//!
//! How long an organisation's events are kept comes from its plan, unless the organisation has its own
//! retention (overall and per category). The sweeper runs every `retention_sweep_secs` and on demand; it
//! deletes only events already sealed under a signed checkpoint, never those a legal hold keeps, in
//! bounded passes, each recorded as a `retention.deleted` event. Receipts stay, so every proof and every
//! self-proving export across the pruned range still verifies. Setting retention and placing or lifting
//! a hold are the platform's to do, and each is recorded in the organisation's log.

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use trailkeep_core::plans::{Plan, Retention};
use trailkeep_core::time::{format_millis, parse_time_or_date_millis};
use trailkeep_core::{OrgId, Target};
use trailkeep_store::orgs::{AdminChange, OrgRecord};
use trailkeep_store::retention::{LegalHold, SweepRequest};
use uuid::Uuid;

use crate::audit::{self, Origin, Record, change};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::orgs::{admin_error, administered, invalid, platform_only};
use crate::{AppState, now_ms};

/// Events one sweep pass deletes at most: one short write, so ingest waits no longer than usual.
const SWEEP_BATCH: usize = 2000;

/// The deployment's plan of that name; an unknown name (a plan removed from the configuration) keeps
/// events as long as the longest plan does, so nothing is deleted by mistake.
pub fn plan_named(plans: &[Plan], name: &str) -> Plan {
    plans.iter().find(|p| p.name == name).cloned().unwrap_or_else(|| Plan {
        name: name.to_owned(),
        retention_days: plans.iter().map(|p| p.retention_days).max().unwrap_or(365),
        exports: Vec::new(),
    })
}

fn plans(state: &AppState) -> Vec<Plan> {
    state.plans.clone()
}

#[derive(Debug, Serialize)]
pub struct RetentionInfo {
    pub organization_id: String,
    pub plan: String,
    pub plan_days: u32,
    /// The organisation's own retention; `null` follows the plan.
    pub retention: Option<Retention>,
}

fn info(org: &OrgRecord, plans: &[Plan]) -> RetentionInfo {
    RetentionInfo {
        organization_id: org.id.to_string(),
        plan: org.plan.clone(),
        plan_days: plan_named(plans, &org.plan).retention_days,
        retention: org.retention.clone(),
    }
}

/// `GET /v1/orgs/{org}/retention`.
pub async fn get_retention(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(org): Path<String>,
) -> Result<Json<RetentionInfo>, ApiError> {
    let org = administered(&state, &principal, &org).await?;
    Ok(Json(info(&org, &plans(&state))))
}

/// `PUT /v1/orgs/{org}/retention`: `{"days"?, "categories"?: [{"category", "days"}]}`; `{}` follows the
/// plan again.
pub async fn put_retention(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(org): Path<String>,
    body: Result<Json<Retention>, JsonRejection>,
) -> Result<Json<RetentionInfo>, ApiError> {
    platform_only(&principal, "change retention")?;
    let org = administered(&state, &principal, &org).await?;
    let retention = crate::orgs::body(body)?;
    retention.validate().map_err(|(field, message)| invalid(&field, message))?;
    let retention = (retention != Retention::default()).then_some(retention);
    let Some(changed) = change("retention", json!(org.retention), json!(retention)) else {
        return Ok(Json(info(&org, &plans(&state))));
    };
    let event = audit::event(
        Record {
            org: org.id.clone(),
            project: None,
            action: "retention.changed",
            category: "retention",
            target: Target { target_type: "organization".into(), id: org.id.to_string(), name: Some(org.name.clone()) },
            description: format!("Retention of {} was changed", org.name),
            changes: vec![changed],
            metadata: serde_json::Map::new(),
        },
        principal.actor(),
        &origin,
    );
    let change = AdminChange::SetRetention { org: org.id.clone(), retention: retention.clone(), at: now_ms() };
    state.store.apply_admin(change, event).await.map_err(|e| admin_error(e, "organisation or legal hold in force"))?;
    Ok(Json(info(&OrgRecord { retention, ..org }, &plans(&state))))
}

// ---- legal holds ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// Hold only this actor's events (their id or email).
    #[serde(default)]
    pub actor: Option<String>,
    /// Hold only events that occurred from this time (RFC 3339 or a date) …
    #[serde(default)]
    pub from: Option<String>,
    /// … and before this one.
    #[serde(default)]
    pub to: Option<String>,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct HoldInfo {
    pub id: String,
    pub organization_id: String,
    pub actor: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub reason: String,
    pub placed_at: String,
    pub placed_by: String,
    pub lifted_at: Option<String>,
    pub active: bool,
}

fn hold_info(h: &LegalHold) -> HoldInfo {
    HoldInfo {
        id: h.id.clone(),
        organization_id: h.org.to_string(),
        actor: h.actor.clone(),
        from: h.from.map(format_millis),
        to: h.to.map(format_millis),
        reason: h.reason.clone(),
        placed_at: format_millis(h.placed_at),
        placed_by: h.placed_by.clone(),
        lifted_at: h.lifted_at.map(format_millis),
        active: h.lifted_at.is_none(),
    }
}

fn hold_metadata(h: &LegalHold) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("reason".into(), json!(h.reason));
    m.insert("actor".into(), json!(h.actor));
    m.insert("from".into(), json!(h.from.map(format_millis)));
    m.insert("to".into(), json!(h.to.map(format_millis)));
    m
}

/// `GET /v1/orgs/{org}/legal-holds`.
pub async fn list_holds(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(org): Path<String>,
) -> Result<Json<trailkeep_wire::List<HoldInfo>>, ApiError> {
    let org = administered(&state, &principal, &org).await?;
    let holds = state.store.list_holds(&org.id).await?;
    Ok(Json(trailkeep_wire::List { data: holds.iter().map(hold_info).collect() }))
}

/// `POST /v1/orgs/{org}/legal-holds`: pauses retention's deletion for the whole organisation, one actor,
/// a time range, or an actor within a range.
pub async fn place_hold(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(org): Path<String>,
    body: Result<Json<HoldRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<HoldInfo>), ApiError> {
    platform_only(&principal, "place legal holds")?;
    let org = administered(&state, &principal, &org).await?;
    let request = crate::orgs::body(body)?;
    let reason = request.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(invalid("reason", "reason must be 1-500 characters without control characters"));
    }
    let time = |field: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|v| {
                parse_time_or_date_millis(v)
                    .ok_or_else(|| invalid(field, format!("{field} must be an RFC 3339 time or a date")))
            })
            .transpose()
    };
    let (from, to) = (time("from", &request.from)?, time("to", &request.to)?);
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(invalid("to", "to must come after from"));
    }
    let actor = request.actor.map(|a| a.trim().to_owned()).filter(|a| !a.is_empty());
    if actor.as_ref().is_some_and(|a| a.chars().count() > 320 || a.chars().any(char::is_control)) {
        return Err(invalid("actor", "actor must be an id or email of at most 320 characters"));
    }
    let actor_who = principal.actor();
    let hold = LegalHold {
        id: format!("hold_{}", Uuid::now_v7().simple()),
        org: org.id.clone(),
        actor,
        from,
        to,
        reason,
        placed_at: now_ms(),
        placed_by: actor_who.id.clone().unwrap_or_default(),
        lifted_at: None,
    };
    let event = audit::event(
        Record {
            org: org.id.clone(),
            project: None,
            action: "legal_hold.placed",
            category: "legal_hold",
            target: Target { target_type: "legal_hold".into(), id: hold.id.clone(), name: None },
            description: format!("A legal hold was placed: {}", hold.reason),
            changes: Vec::new(),
            metadata: hold_metadata(&hold),
        },
        actor_who,
        &origin,
    );
    state
        .store
        .apply_admin(AdminChange::PlaceHold(hold.clone()), event)
        .await
        .map_err(|e| admin_error(e, "organisation or legal hold in force"))?;
    Ok((StatusCode::CREATED, Json(hold_info(&hold))))
}

/// `DELETE /v1/orgs/{org}/legal-holds/{id}`: lifts a hold; retention resumes at the next sweep.
pub async fn lift_hold(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<HoldInfo>, ApiError> {
    platform_only(&principal, "lift legal holds")?;
    let org = administered(&state, &principal, &org).await?;
    let mut hold = state
        .store
        .list_holds(&org.id)
        .await?
        .into_iter()
        .find(|h| h.id == id && h.lifted_at.is_none())
        .ok_or_else(|| ApiError::not_found("no such legal hold in force"))?;
    let at = now_ms();
    let event = audit::event(
        Record {
            org: org.id.clone(),
            project: None,
            action: "legal_hold.lifted",
            category: "legal_hold",
            target: Target { target_type: "legal_hold".into(), id: hold.id.clone(), name: None },
            description: format!("A legal hold was lifted: {}", hold.reason),
            changes: change("active", true, false).into_iter().collect(),
            metadata: hold_metadata(&hold),
        },
        principal.actor(),
        &origin,
    );
    let change = AdminChange::LiftHold { org: org.id.clone(), id: hold.id.clone(), at };
    state.store.apply_admin(change, event).await.map_err(|e| admin_error(e, "organisation or legal hold in force"))?;
    hold.lifted_at = Some(at);
    Ok(Json(hold_info(&hold)))
}

// ---- the sweeper ----

#[derive(Debug, Default, Serialize)]
pub struct SweepSummary {
    pub organization_id: String,
    pub deleted: u64,
    pub held: u64,
    /// The seqs of the `retention.deleted` events that record the passes.
    pub events: Vec<u64>,
}

/// Runs retention over one organisation until nothing more is due.
pub async fn sweep_org(state: &AppState, org: &OrgRecord) -> Result<SweepSummary, ApiError> {
    let mut summary = SweepSummary { organization_id: org.id.to_string(), ..SweepSummary::default() };
    let Some(checkpoint) = state.store.latest_checkpoint(&org.id).await? else { return Ok(summary) };
    let plan = plan_named(&plans(state), &org.plan);
    let retention = org.retention.clone().unwrap_or_default();
    let policy = match &org.retention {
        None => format!("plan {}: {} days", plan.name, plan.retention_days),
        Some(r) => format!(
            "organisation retention: {} days{}",
            r.days.unwrap_or(plan.retention_days),
            r.categories.iter().map(|c| format!(", {} {} days", c.category, c.days)).collect::<String>()
        ),
    };
    let mut after = None;
    loop {
        let outcome = state
            .store
            .sweep(SweepRequest {
                org: org.id.clone(),
                now: now_ms(),
                plan_days: plan.retention_days,
                retention: retention.clone(),
                max_seq: checkpoint.size,
                batch: SWEEP_BATCH,
                policy: policy.clone(),
                after,
            })
            .await?;
        summary.deleted += outcome.deleted;
        summary.held += outcome.held;
        summary.events.extend(outcome.event_seq);
        match outcome.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if summary.deleted > 0 {
        metrics::counter!("trailkeep_retention_deleted_total").increment(summary.deleted);
        tracing::info!(org = %org.id, deleted = summary.deleted, held = summary.held, "retention deleted expired events");
    }
    Ok(summary)
}

/// `POST /v1/orgs/{org}/retention/sweep`: runs retention over the organisation now (platform only).
pub async fn post_sweep(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(org): Path<String>,
) -> Result<Json<SweepSummary>, ApiError> {
    platform_only(&principal, "run retention")?;
    let org = administered(&state, &principal, &org).await?;
    Ok(Json(sweep_org(&state, &org).await?))
}

/// Sweeps every organisation every `every`, for as long as the service runs.
pub fn spawn_sweeper(state: Weak<AppState>, every: Duration) {
    if every.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(state) = state.upgrade() else { return };
            let mut after: Option<OrgId> = None;
            loop {
                let orgs = match state.store.list_orgs(after.as_ref(), 500).await {
                    Ok(orgs) => orgs,
                    Err(e) => {
                        tracing::error!(error = %e, "retention could not list organisations; it retries at the next sweep");
                        break;
                    }
                };
                for org in &orgs {
                    if let Err(e) = sweep_org(&state, org).await {
                        tracing::error!(org = %org.id, error = %e.message, "retention failed for an organisation");
                    }
                }
                match orgs.last() {
                    Some(last) if orgs.len() == 500 => after = Some(last.id.clone()),
                    _ => break,
                }
            }
        }
    });
}
