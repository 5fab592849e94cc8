//! Portal links: `POST /v1/portal-links` lets a platform hand its customer's user a dashboard session
//! without a Trailkeep account, and `GET /portal/{token}` redeems one.
//!
//! A link is `<public URL>/portal/tkp_…` with 256 random bits; only its SHA-256 is stored. It is valid
//! for at most five minutes (`portal_link_lifetime_secs`) and usable once: redeeming consumes it in the
//! same transaction that starts the session, so two redemptions racing for one link start one session.
//! A used, expired or unknown link ends on an HTML page that says so (410 or 404) and nothing more; a link
//! whose issuing key was revoked before it was redeemed counts as expired.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use trailkeep_core::time::format_millis;
use trailkeep_core::{OrgId, ProjectId};
use trailkeep_store::orgs::Role;
use trailkeep_store::sessions::{Intent, PortalLinkRecord, SessionRole, SessionStart, SessionUser};

use crate::audit::{Origin, Record};
use crate::auth::{Principal, hash_secret};
use crate::error::ApiError;
use crate::sessions::{NewSession, random_token};
use crate::{AppState, now_ms, pages};

/// Every portal link token begins with this.
pub const LINK_PREFIX: &str = "tkp_";
const MAX_NAME: usize = 200;
const MAX_EMAIL: usize = 320;
const MAX_PROJECTS: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePortalLink {
    organization_id: String,
    user: LinkUser,
    role: String,
    #[serde(default)]
    projects: Option<Vec<String>>,
    intent: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkUser {
    email: String,
    #[serde(default)]
    name: Option<String>,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).with_field(field)
}

/// An email address as a user is known by: trimmed, lower-cased, `local@domain`, no spaces.
pub fn normalise_email(email: &str, field: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let at = email.find('@');
    let ok = matches!(at, Some(i) if i > 0 && i + 1 < email.len())
        && email.len() <= MAX_EMAIL
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(email)
    } else {
        Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_email", "must be an email address")
            .with_field(field))
    }
}

/// A display name: 1-200 characters without control characters.
pub fn check_name(name: Option<String>, field: &str) -> Result<Option<String>, ApiError> {
    let Some(name) = name.map(|n| n.trim().to_owned()) else { return Ok(None) };
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(invalid(field, format!("{field} must be 1-{MAX_NAME} characters without control characters")));
    }
    Ok(Some(name))
}

/// `POST /v1/portal-links`: for platform keys with `admin`, or an organisation's own admin key.
pub async fn create_portal_link(
    State(state): State<Arc<AppState>>,
    origin: Origin,
    principal: Principal,
    body: Result<Json<CreatePortalLink>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(request) = body.map_err(ApiError::from)?;
    let org =
        OrgId::parse(&request.organization_id).ok().filter(|o| !o.as_str().starts_with('_')).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_organization_id",
                "organization_id must be an organisation's id (ids starting with `_` are reserved)",
            )
            .with_field("organization_id")
        })?;
    // The platform hands out links, with its keys; a dashboard session cannot mint more sessions.
    if principal.session.is_some() {
        return Err(ApiError::forbidden("portal links are issued with an API key, not from a dashboard session"));
    }
    principal.administers(&org)?;
    let email = normalise_email(&request.user.email, "user.email")?;
    let name = check_name(request.user.name, "user.name")?;
    let role = Role::parse(&request.role)
        .ok_or_else(|| invalid("role", "role must be one of owner, admin, member, viewer, project_admin"))?;
    let projects = match (role, request.projects.unwrap_or_default()) {
        (Role::ProjectAdmin, list) if list.is_empty() => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "missing_field",
                "a project_admin link must list the projects it administers",
            )
            .with_field("projects"));
        }
        (Role::ProjectAdmin, list) => {
            if list.len() > MAX_PROJECTS {
                return Err(invalid("projects", format!("at most {MAX_PROJECTS} projects")));
            }
            let mut projects: Vec<ProjectId> = Vec::new();
            for (i, p) in list.iter().enumerate() {
                let id =
                    ProjectId::parse(p).map_err(|e| invalid(&format!("projects[{i}]"), format!("project id {e}")))?;
                if !projects.contains(&id) {
                    projects.push(id);
                }
            }
            projects
        }
        (_, list) if list.is_empty() => Vec::new(),
        (_, _) => return Err(invalid("projects", "only a project_admin link lists projects")),
    };
    let intent = Intent::parse(&request.intent)
        .ok_or_else(|| invalid("intent", "intent must be `audit_logs` or `log_streams`"))?;

    let token = random_token(LINK_PREFIX);
    let now = now_ms();
    let link = PortalLinkRecord {
        hash: hash_secret(&token),
        org: org.clone(),
        user: SessionUser { email, name },
        role,
        projects,
        intent,
        issued_by: principal.key.id.clone(),
        created_at: now,
        expires_at: now + state.sessions.link_lifetime.as_millis() as i64,
        used_at: None,
    };
    let mut metadata = serde_json::Map::new();
    metadata.insert("role".into(), json!(role.as_str()));
    if !link.projects.is_empty() {
        metadata.insert("projects".into(), json!(link.projects.iter().map(|p| p.as_str()).collect::<Vec<_>>()));
    }
    metadata.insert("intent".into(), json!(intent.as_str()));
    metadata.insert("expires_at".into(), json!(format_millis(link.expires_at)));
    let record = Record {
        org,
        project: None,
        action: "portal_link.created",
        category: "portal_link",
        target: trailkeep_core::Target {
            target_type: "user".into(),
            id: link.user.email.clone(),
            name: link.user.name.clone(),
        },
        description: format!("{} issued a {} portal link for {}", principal.key.name, role.as_str(), link.user.email),
        changes: Vec::new(),
        metadata,
    };
    let audit = crate::audit::event(record, principal.actor(), &origin);
    let expires_at = link.expires_at;
    state.store.create_portal_link(link, audit).await?;
    tracing::info!(by = %principal.key.id, role = role.as_str(), "portal link issued");
    let url = format!("{}/portal/{token}", state.sessions.public_url());
    Ok((StatusCode::CREATED, Json(json!({ "link": url, "expires_at": format_millis(expires_at) }))))
}

fn unusable() -> Response {
    pages::message(
        StatusCode::GONE,
        "This link can no longer be used",
        "Portal links work once and only for a few minutes. Go back to the application that sent you here and open the audit log again to get a new link.",
        None,
    )
}

fn unknown() -> Response {
    pages::message(
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "Check that the whole link was copied, or go back to the application that sent you here and open the audit log again.",
        None,
    )
}

/// `GET /portal/{token}`: starts a dashboard session for the link's user and sends the browser on to
/// the dashboard (`/`) or its streams page (`/streams`). A cookie sent along is ignored: the session
/// always gets a new id.
pub async fn redeem_portal_link(
    State(state): State<Arc<AppState>>,
    origin: Origin,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    if !token.starts_with(LINK_PREFIX) || token.len() > 128 {
        return Ok(unknown());
    }
    let hash = hash_secret(&token);
    let Some(link) = state.store.find_portal_link(&hash).await? else { return Ok(unknown()) };
    let now = now_ms();
    if link.used_at.is_some() || link.expires_at <= now {
        return Ok(unusable());
    }
    // A link from a key revoked since it was issued would start a session that could not act.
    if state.store.get_api_key(&link.issued_by).await?.is_none_or(|k| !k.is_active()) {
        return Ok(unusable());
    }
    let member_bound = state.store.get_member(&link.org, &link.user.email).await?.is_some();
    let new = NewSession {
        user: link.user.clone(),
        role: SessionRole::Org(link.role),
        org: Some(link.org.clone()),
        projects: link.projects.clone(),
        issued_by: Some(link.issued_by.clone()),
        member_bound,
        via: "portal_link",
    };
    let Some(secret) =
        crate::sessions::start(&state, new, SessionStart::PortalLink { link: hash, now }, &origin).await?
    else {
        return Ok(unusable());
    };
    let to = match link.intent {
        Intent::AuditLogs => "/",
        Intent::LogStreams => "/streams",
    };
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, axum::http::HeaderValue::from_static(to)),
            (header::SET_COOKIE, state.sessions.cookie(&secret)),
            (header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store")),
            (header::REFERRER_POLICY, axum::http::HeaderValue::from_static("no-referrer")),
        ],
    )
        .into_response())
}
