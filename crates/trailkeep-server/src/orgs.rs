//! Handlers for `/v1/orgs`: organisations, their projects and their members.
//!
//! Platform keys manage every organisation; an organisation's administrators (its admin keys, and its
//! owners and admins) manage their own, except its plan and its existence, which are the platform's.
//! Every change is recorded in the organisation's own log, in the same store call, with the values
//! before and after (see [`crate::audit`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use trailkeep_core::time::format_millis;
use trailkeep_core::{OrgId, ProjectId, Target};
use trailkeep_store::orgs::{
    AdminChange, AdminError, MemberRecord, MemberStatus, OrgRecord, PLANS, ProjectRecord, Role,
};
use trailkeep_wire::{
    CreateOrgRequest, List, MemberInfo, MemberRequest, OrgInfo, ProjectInfo, ProjectRequest, UpdateOrgRequest,
};

use crate::audit::{self, Origin, Record, change};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::{AppState, now_ms};

const MAX_NAME: usize = 200;
const MAX_EMAIL: usize = 254;
const MAX_PROJECTS: usize = 100;

pub fn org_info(o: &OrgRecord) -> OrgInfo {
    OrgInfo {
        id: o.id.to_string(),
        name: o.name.clone(),
        plan: o.plan.clone(),
        created_at: format_millis(o.created_at),
        updated_at: format_millis(o.updated_at),
        deleted_at: o.deleted_at.map(format_millis),
    }
}

fn project_info(p: &ProjectRecord) -> ProjectInfo {
    ProjectInfo {
        organization_id: p.org.to_string(),
        id: p.id.to_string(),
        name: p.name.clone(),
        created_at: format_millis(p.created_at),
        updated_at: format_millis(p.updated_at),
    }
}

fn member_info(m: &MemberRecord) -> MemberInfo {
    MemberInfo {
        organization_id: m.org.to_string(),
        email: m.email.clone(),
        name: m.name.clone(),
        role: m.role.as_str().to_owned(),
        projects: m.projects.iter().map(|p| p.to_string()).collect(),
        status: m.status.as_str().to_owned(),
        created_at: format_millis(m.created_at),
        updated_at: format_millis(m.updated_at),
    }
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).with_field(field)
}

pub(crate) fn body<T: DeserializeOwned>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b).map_err(ApiError::from)
}

fn name(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > MAX_NAME || value.chars().any(char::is_control) {
        return Err(invalid(field, format!("{field} must be 1-{MAX_NAME} characters without control characters")));
    }
    Ok(value.to_owned())
}

fn plan(value: &str) -> Result<String, ApiError> {
    PLANS
        .contains(&value)
        .then(|| value.to_owned())
        .ok_or_else(|| invalid("plan", format!("plan must be one of {}", PLANS.join(", "))))
}

fn org_param(org: &str) -> Result<OrgId, ApiError> {
    OrgId::parse(org).map_err(|e| ApiError::bad_param("org", format!("organization id {e}")))
}

/// An email as members are known by: trimmed, lowercase, one `@` with text on both sides.
fn email(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim().to_lowercase();
    let valid = value.len() <= MAX_EMAIL
        && !value.chars().any(|c| c.is_control() || c.is_whitespace())
        && value
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && !host.is_empty() && !host.contains('@'));
    if !valid {
        return Err(invalid(field, format!("{field} must be an email address of at most {MAX_EMAIL} characters")));
    }
    Ok(value)
}

pub(crate) fn admin_error(e: AdminError, what: &str) -> ApiError {
    match e {
        AdminError::Exists => ApiError::new(StatusCode::CONFLICT, "already_exists", format!("{what} already exists")),
        AdminError::NotFound => ApiError::not_found(format!("no such {what}")),
        AdminError::Failed(detail) => ApiError::internal(detail),
    }
}

/// The live organisation, which the caller must administer; a missing one and another tenant's answer
/// alike for organisation keys.
pub(crate) async fn administered(state: &AppState, principal: &Principal, org: &str) -> Result<OrgRecord, ApiError> {
    let id = org_param(org)?;
    principal.administers(&id)?;
    state
        .store
        .get_org(&id)
        .await?
        .filter(|o| o.deleted_at.is_none())
        .ok_or_else(|| ApiError::not_found("no such organisation"))
}

/// Only platform keys create, delete and change the plan of organisations.
pub(crate) fn platform_only(principal: &Principal, what: &str) -> Result<(), ApiError> {
    if principal.is_platform_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("only a platform admin key may {what}")))
    }
}

fn metadata(pairs: &[(&str, Value)]) -> serde_json::Map<String, Value> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

// ---- organisations ----

/// `GET /v1/orgs`: every live organisation for a platform key (`?after=ID&limit=N`), one's own for an
/// organisation's administrator.
pub async fn list_orgs(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<List<OrgInfo>>, ApiError> {
    let params = crate::query_pairs(params)?;
    if let Some(own) = principal.own_org() {
        principal.administers(&own)?;
        let org = state.store.get_org(&own).await?.filter(|o| o.deleted_at.is_none());
        return Ok(Json(List { data: org.iter().map(org_info).collect() }));
    }
    principal.administers(&OrgId::platform())?;
    let after = crate::param(&params, "after").map(org_param).transpose()?;
    let limit = match crate::param(&params, "limit") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_param("limit", "limit must be a whole number from 1 to 1000"))?,
    };
    let orgs = state.store.list_orgs(after.as_ref(), limit).await?;
    Ok(Json(List { data: orgs.iter().map(org_info).collect() }))
}

/// `POST /v1/orgs`.
pub async fn create_org(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    request: Result<Json<CreateOrgRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<OrgInfo>), ApiError> {
    platform_only(&principal, "create organisations")?;
    let request = body(request)?;
    if request.id.starts_with('_') {
        return Err(invalid("id", "organisation ids starting with `_` are reserved"));
    }
    let id = OrgId::parse(&request.id).map_err(|e| invalid("id", format!("id {e}")))?;
    let name = name("name", request.name.as_deref().unwrap_or(id.as_str()))?;
    let plan = plan(request.plan.as_deref().unwrap_or("free"))?;
    let now = now_ms();
    let record =
        OrgRecord { id: id.clone(), name, plan, created_at: now, updated_at: now, deleted_at: None, retention: None };
    let event = audit::event(
        Record {
            org: id.clone(),
            project: None,
            action: "organization.created",
            category: "organization",
            target: Target { target_type: "organization".into(), id: id.to_string(), name: Some(record.name.clone()) },
            description: format!("Organisation {} was created", record.name),
            changes: [
                change("name", Value::Null, record.name.clone()),
                change("plan", Value::Null, record.plan.clone()),
            ]
            .into_iter()
            .flatten()
            .collect(),
            metadata: metadata(&[("source", json!("api"))]),
        },
        principal.actor(),
        &origin,
    );
    state
        .store
        .apply_admin(AdminChange::CreateOrg(record.clone()), event)
        .await
        .map_err(|e| admin_error(e, "an organisation with this id"))?;
    Ok((StatusCode::CREATED, Json(org_info(&record))))
}

/// `GET /v1/orgs/{org}`.
pub async fn get_org(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(org): Path<String>,
) -> Result<Json<OrgInfo>, ApiError> {
    Ok(Json(org_info(&administered(&state, &principal, &org).await?)))
}

/// `PATCH /v1/orgs/{org}`: the name (its administrators) and the plan (platform keys only).
pub async fn update_org(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(org): Path<String>,
    request: Result<Json<UpdateOrgRequest>, JsonRejection>,
) -> Result<Json<OrgInfo>, ApiError> {
    let before = administered(&state, &principal, &org).await?;
    let request = body(request)?;
    let mut after = before.clone();
    if let Some(n) = &request.name {
        after.name = name("name", n)?;
    }
    if let Some(p) = &request.plan {
        after.plan = plan(p)?;
        if after.plan != before.plan {
            platform_only(&principal, "change an organisation's plan").map_err(|e| e.with_field("plan"))?;
        }
    }
    let changes: Vec<_> = [
        change("name", before.name.clone(), after.name.clone()),
        change("plan", before.plan.clone(), after.plan.clone()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if changes.is_empty() {
        return Ok(Json(org_info(&before)));
    }
    after.updated_at = now_ms();
    let plan_changed = before.plan != after.plan;
    let event = audit::event(
        Record {
            org: after.id.clone(),
            project: None,
            action: if plan_changed { "organization.plan_changed" } else { "organization.updated" },
            category: "organization",
            target: Target {
                target_type: "organization".into(),
                id: after.id.to_string(),
                name: Some(after.name.clone()),
            },
            description: if plan_changed {
                format!("Organisation {} moved from the {} plan to {}", after.name, before.plan, after.plan)
            } else {
                format!("Organisation {} was renamed", after.name)
            },
            changes,
            metadata: serde_json::Map::new(),
        },
        principal.actor(),
        &origin,
    );
    state
        .store
        .apply_admin(AdminChange::UpdateOrg(after.clone()), event)
        .await
        .map_err(|e| admin_error(e, "organisation"))?;
    Ok(Json(org_info(&after)))
}

/// `DELETE /v1/orgs/{org}`: the organisation is marked deleted and no longer listed; its events stay.
pub async fn delete_org(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(org): Path<String>,
) -> Result<Json<OrgInfo>, ApiError> {
    platform_only(&principal, "delete organisations")?;
    let mut record = administered(&state, &principal, &org).await?;
    let at = now_ms();
    let event = audit::event(
        Record {
            org: record.id.clone(),
            project: None,
            action: "organization.deleted",
            category: "organization",
            target: Target {
                target_type: "organization".into(),
                id: record.id.to_string(),
                name: Some(record.name.clone()),
            },
            description: format!("Organisation {} was deleted", record.name),
            changes: change("deleted", false, true).into_iter().collect(),
            metadata: serde_json::Map::new(),
        },
        principal.actor(),
        &origin,
    );
    state
        .store
        .apply_admin(AdminChange::DeleteOrg { id: record.id.clone(), at }, event)
        .await
        .map_err(|e| admin_error(e, "organisation"))?;
    record.deleted_at = Some(at);
    record.updated_at = at;
    Ok(Json(org_info(&record)))
}

// ---- projects ----

fn project_param(id: &str) -> Result<ProjectId, ApiError> {
    ProjectId::parse(id).map_err(|e| ApiError::bad_param("project", format!("project id {e}")))
}

fn project_target(p: &ProjectRecord) -> Target {
    Target { target_type: "project".into(), id: p.id.to_string(), name: Some(p.name.clone()) }
}

/// `GET /v1/orgs/{org}/projects`.
pub async fn list_projects(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(org): Path<String>,
) -> Result<Json<List<ProjectInfo>>, ApiError> {
    let org = administered(&state, &principal, &org).await?;
    let projects = state.store.list_projects(&org.id).await?;
    Ok(Json(List { data: projects.iter().map(project_info).collect() }))
}

/// `POST /v1/orgs/{org}/projects`: `{"id", "name"?}`.
pub async fn create_project(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(org): Path<String>,
    request: Result<Json<ProjectRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<ProjectInfo>), ApiError> {
    let org = administered(&state, &principal, &org).await?;
    let request = body(request)?;
    let id = request.id.as_deref().ok_or_else(|| invalid("id", "id is required"))?;
    let id = ProjectId::parse(id).map_err(|e| invalid("id", format!("id {e}")))?;
    let name = name("name", request.name.as_deref().unwrap_or(id.as_str()))?;
    let now = now_ms();
    let record = ProjectRecord { org: org.id.clone(), id: id.clone(), name, created_at: now, updated_at: now };
    let event = audit::event(
        Record {
            org: org.id.clone(),
            project: Some(id.clone()),
            action: "project.created",
            category: "project",
            target: project_target(&record),
            description: format!("Project {} was created", record.name),
            changes: change("name", Value::Null, record.name.clone()).into_iter().collect(),
            metadata: serde_json::Map::new(),
        },
        principal.actor(),
        &origin,
    );
    state
        .store
        .apply_admin(AdminChange::CreateProject(record.clone()), event)
        .await
        .map_err(|e| admin_error(e, "a project with this id"))?;
    Ok((StatusCode::CREATED, Json(project_info(&record))))
}

async fn project(state: &AppState, org: &OrgRecord, id: &str) -> Result<ProjectRecord, ApiError> {
    let id = project_param(id)?;
    state.store.get_project(&org.id, &id).await?.ok_or_else(|| ApiError::not_found("no such project"))
}

/// `GET /v1/orgs/{org}/projects/{project}`.
pub async fn get_project(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<ProjectInfo>, ApiError> {
    let org = administered(&state, &principal, &org).await?;
    Ok(Json(project_info(&project(&state, &org, &id).await?)))
}

/// `PATCH /v1/orgs/{org}/projects/{project}`: `{"name"}`.
pub async fn update_project(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path((org, id)): Path<(String, String)>,
    request: Result<Json<ProjectRequest>, JsonRejection>,
) -> Result<Json<ProjectInfo>, ApiError> {
    let org = administered(&state, &principal, &org).await?;
    let before = project(&state, &org, &id).await?;
    let request = body(request)?;
    if request.id.as_deref().is_some_and(|new| new != before.id.as_str()) {
        return Err(invalid("id", "a project's id cannot change"));
    }
    let mut after = before.clone();
    if let Some(n) = &request.name {
        after.name = name("name", n)?;
    }
    let Some(renamed) = change("name", before.name.clone(), after.name.clone()) else {
        return Ok(Json(project_info(&before)));
    };
    after.updated_at = now_ms();
    let event = audit::event(
        Record {
            org: org.id.clone(),
            project: Some(after.id.clone()),
            action: "project.updated",
            category: "project",
            target: project_target(&after),
            description: format!("Project {} was renamed to {}", before.name, after.name),
            changes: vec![renamed],
            metadata: serde_json::Map::new(),
        },
        principal.actor(),
        &origin,
    );
    state
        .store
        .apply_admin(AdminChange::UpdateProject(after.clone()), event)
        .await
        .map_err(|e| admin_error(e, "project"))?;
    Ok(Json(project_info(&after)))
}

/// `DELETE /v1/orgs/{org}/projects/{project}`: the project's events stay.
pub async fn delete_project(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = administered(&state, &principal, &org).await?;
    let record = project(&state, &org, &id).await?;
    let event = audit::event(
        Record {
            org: org.id.clone(),
            project: Some(record.id.clone()),
            action: "project.deleted",
            category: "project",
            target: project_target(&record),
            description: format!("Project {} was deleted", record.name),
            changes: change("name", record.name.clone(), Value::Null).into_iter().collect(),
            metadata: serde_json::Map::new(),
        },
        principal.actor(),
        &origin,
    );
    state
        .store
        .apply_admin(AdminChange::DeleteProject { org: org.id.clone(), id: record.id.clone() }, event)
        .await
        .map_err(|e| admin_error(e, "project"))?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- members ----

fn role(value: &str) -> Result<Role, ApiError> {
    Role::parse(value)
        .ok_or_else(|| invalid("role", format!("role must be one of {}", Role::ALL.map(Role::as_str).join(", "))))
}

/// The projects of a membership: required (1 to 100) for a project admin, refused for other roles.
fn projects(role: Role, given: Option<&[String]>) -> Result<Vec<ProjectId>, ApiError> {
    match (role, given) {
        (Role::ProjectAdmin, None) => Err(invalid("projects", "a project_admin needs the projects they administer")),
        (Role::ProjectAdmin, Some(list)) => {
            if list.is_empty() || list.len() > MAX_PROJECTS {
                return Err(invalid("projects", format!("projects must list 1 to {MAX_PROJECTS} project ids")));
            }
            let mut ids = Vec::with_capacity(list.len());
            for (i, p) in list.iter().enumerate() {
                let id =
                    ProjectId::parse(p).map_err(|e| invalid(&format!("projects[{i}]"), format!("project id {e}")))?;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Ok(ids)
        }
        (_, Some(list)) if !list.is_empty() => {
            Err(invalid("projects", "only a project_admin's membership lists projects"))
        }
        (_, _) => Ok(Vec::new()),
    }
}

fn member_target(m: &MemberRecord) -> Target {
    Target { target_type: "member".into(), id: m.email.clone(), name: m.name.clone() }
}

fn projects_json(ids: &[ProjectId]) -> Value {
    json!(ids.iter().map(|p| p.as_str()).collect::<Vec<_>>())
}

/// Refuses a change that would leave the organisation without an owner.
async fn keep_an_owner(state: &AppState, before: &MemberRecord) -> Result<(), ApiError> {
    if before.role != Role::Owner {
        return Ok(());
    }
    let owners = state.store.list_members(&before.org).await?.iter().filter(|m| m.role == Role::Owner).count();
    if owners <= 1 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_owner",
            "this is the organisation's only owner; make another member owner first",
        ));
    }
    Ok(())
}

/// `GET /v1/orgs/{org}/members`.
pub async fn list_members(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(org): Path<String>,
) -> Result<Json<List<MemberInfo>>, ApiError> {
    let org = administered(&state, &principal, &org).await?;
    let members = state.store.list_members(&org.id).await?;
    Ok(Json(List { data: members.iter().map(member_info).collect() }))
}

/// `POST /v1/orgs/{org}/members`: `{"email", "name"?, "role", "projects"?, "status"?}`. An `invited`
/// member (the default) is recorded as `member.invited`, an `active` one as `member.added`.
pub async fn add_member(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(org): Path<String>,
    request: Result<Json<MemberRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<MemberInfo>), ApiError> {
    let org = administered(&state, &principal, &org).await?;
    let request = body(request)?;
    let email = email("email", request.email.as_deref().ok_or_else(|| invalid("email", "email is required"))?)?;
    let role = role(request.role.as_deref().ok_or_else(|| invalid("role", "role is required"))?)?;
    let projects = projects(role, request.projects.as_deref())?;
    let name = request.name.as_deref().map(|n| name("name", n)).transpose()?;
    let status = match request.status.as_deref() {
        None => MemberStatus::Invited,
        Some(s) => MemberStatus::parse(s).ok_or_else(|| invalid("status", "status must be `invited` or `active`"))?,
    };
    let now = now_ms();
    let record =
        MemberRecord { org: org.id.clone(), email, name, role, projects, status, created_at: now, updated_at: now };
    let invited = status == MemberStatus::Invited;
    let event = audit::event(
        Record {
            org: org.id.clone(),
            project: None,
            action: if invited { "member.invited" } else { "member.added" },
            category: "member",
            target: member_target(&record),
            description: format!(
                "{} was {} as {}",
                record.email,
                if invited { "invited" } else { "added" },
                role.as_str()
            ),
            changes: [
                change("role", Value::Null, role.as_str()),
                (!record.projects.is_empty())
                    .then(|| change("projects", Value::Null, projects_json(&record.projects)))
                    .flatten(),
            ]
            .into_iter()
            .flatten()
            .collect(),
            metadata: metadata(&[("status", json!(status.as_str()))]),
        },
        principal.actor(),
        &origin,
    );
    state
        .store
        .apply_admin(AdminChange::AddMember(record.clone()), event)
        .await
        .map_err(|e| admin_error(e, "a member with this email"))?;
    Ok((StatusCode::CREATED, Json(member_info(&record))))
}

async fn member(state: &AppState, org: &OrgRecord, raw: &str) -> Result<MemberRecord, ApiError> {
    let email = raw.trim().to_lowercase();
    state.store.get_member(&org.id, &email).await?.ok_or_else(|| ApiError::not_found("no such member"))
}

/// `GET /v1/orgs/{org}/members/{email}`.
pub async fn get_member(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((org, email)): Path<(String, String)>,
) -> Result<Json<MemberInfo>, ApiError> {
    let org = administered(&state, &principal, &org).await?;
    Ok(Json(member_info(&member(&state, &org, &email).await?)))
}

/// `PATCH /v1/orgs/{org}/members/{email}`: `role` (with `projects` for a project admin), `name`,
/// `status`. A role change is recorded as `member.role_changed`, anything else as `member.updated`.
pub async fn update_member(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path((org, email)): Path<(String, String)>,
    request: Result<Json<MemberRequest>, JsonRejection>,
) -> Result<Json<MemberInfo>, ApiError> {
    let org = administered(&state, &principal, &org).await?;
    let before = member(&state, &org, &email).await?;
    let request = body(request)?;
    if request.email.as_deref().is_some_and(|e| e.trim().to_lowercase() != before.email) {
        return Err(invalid("email", "a member's email cannot change; remove and add them again"));
    }
    let mut after = before.clone();
    if let Some(r) = &request.role {
        after.role = role(r)?;
    }
    after.projects = match (&request.projects, after.role) {
        (Some(list), role_now) => projects(role_now, Some(list))?,
        // A project admin who stays one keeps their projects unless new ones are given.
        (None, Role::ProjectAdmin) if before.role == Role::ProjectAdmin => before.projects.clone(),
        (None, role_now) => projects(role_now, None)?,
    };
    if let Some(n) = &request.name {
        after.name = Some(name("name", n)?);
    }
    if let Some(s) = &request.status {
        after.status =
            MemberStatus::parse(s).ok_or_else(|| invalid("status", "status must be `invited` or `active`"))?;
    }
    if after.role != Role::Owner {
        keep_an_owner(&state, &before).await?;
    }
    let changes: Vec<_> = [
        change("role", before.role.as_str(), after.role.as_str()),
        change("projects", projects_json(&before.projects), projects_json(&after.projects)),
        change("name", json!(before.name), json!(after.name)),
        change("status", before.status.as_str(), after.status.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if changes.is_empty() {
        return Ok(Json(member_info(&before)));
    }
    after.updated_at = now_ms();
    let role_changed = before.role != after.role || before.projects != after.projects;
    let event = audit::event(
        Record {
            org: org.id.clone(),
            project: None,
            action: if role_changed { "member.role_changed" } else { "member.updated" },
            category: "member",
            target: member_target(&after),
            description: if role_changed {
                format!("{}'s role changed from {} to {}", after.email, before.role.as_str(), after.role.as_str())
            } else {
                format!("{}'s membership was updated", after.email)
            },
            changes,
            metadata: serde_json::Map::new(),
        },
        principal.actor(),
        &origin,
    );
    state
        .store
        .apply_admin(AdminChange::UpdateMember(after.clone()), event)
        .await
        .map_err(|e| admin_error(e, "member"))?;
    Ok(Json(member_info(&after)))
}

/// `DELETE /v1/orgs/{org}/members/{email}`.
pub async fn remove_member(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path((org, email)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = administered(&state, &principal, &org).await?;
    let record = member(&state, &org, &email).await?;
    keep_an_owner(&state, &record).await?;
    let event = audit::event(
        Record {
            org: org.id.clone(),
            project: None,
            action: "member.removed",
            category: "member",
            target: member_target(&record),
            description: format!("{} was removed", record.email),
            changes: change("role", record.role.as_str(), Value::Null).into_iter().collect(),
            metadata: serde_json::Map::new(),
        },
        principal.actor(),
        &origin,
    );
    state
        .store
        .apply_admin(AdminChange::RemoveMember { org: org.id.clone(), email: record.email.clone() }, event)
        .await
        .map_err(|e| admin_error(e, "member"))?;
    Ok(StatusCode::NO_CONTENT)
}
