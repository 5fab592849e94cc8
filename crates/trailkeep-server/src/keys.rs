//! Handlers for `/v1/keys`, the first-start admin key, and the events that record key changes.
//!
//! Creating or revoking a key is itself an event in the affected organisation's log (`api_key.created`,
//! `api_key.revoked`), written in the same transaction as the key; platform keys belong to no
//! organisation, so their changes go to the reserved platform log.

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::json;
use trailkeep_core::time::format_millis;
use trailkeep_core::{Action, Actor, ActorType, Context, NewEvent, OrgId, Outcome, Target};
use trailkeep_store::{ApiKeyRecord, Permission, Store};
use trailkeep_wire::{CreateKeyRequest, CreatedKey, KeyInfo, KeyList};
use uuid::Uuid;

use crate::auth::{Principal, generate_secret, hash_secret};
use crate::error::ApiError;
use crate::{AppState, now_ms};

const MAX_NAME: usize = 200;

pub fn key_info(k: &ApiKeyRecord) -> KeyInfo {
    KeyInfo {
        id: k.id.clone(),
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        organization_id: k.org.as_ref().map(|o| o.to_string()),
        permissions: k.permissions.iter().map(|p| p.as_str().to_owned()).collect(),
        created_at: format_millis(k.created_at),
        revoked_at: k.revoked_at.map(format_millis),
    }
}

/// The event recording a change to `key`, made by `actor` at `at`.
fn key_event(action: &str, key: &ApiKeyRecord, actor: Actor, at: i64, context: Context) -> NewEvent {
    let org = key.org.clone().unwrap_or_else(OrgId::platform);
    let verb = action.rsplit('.').next().unwrap_or(action);
    let who = actor.name.clone().or(actor.id.clone()).unwrap_or_else(|| "the system".into());
    let mut metadata = serde_json::Map::new();
    metadata.insert("scope".into(), json!(if key.org.is_some() { "organization" } else { "platform" }));
    metadata.insert("permissions".into(), json!(key.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>()));
    metadata.insert("prefix".into(), json!(key.prefix));
    NewEvent {
        id: Uuid::now_v7(),
        client_id: false,
        organization_id: org,
        project_id: None,
        action: Action::parse(action).unwrap_or_else(|_| unreachable!("key actions are valid")),
        category: "api_key".into(),
        occurred_at: at,
        actor: Some(actor),
        targets: vec![Target { target_type: "api_key".into(), id: key.id.clone(), name: Some(key.name.clone()) }],
        context,
        description: Some(format!("{who} {verb} API key {}", key.name)),
        outcome: Outcome::Success,
        error: None,
        changes: Vec::new(),
        metadata,
        ai: None,
    }
}

fn system_actor() -> Actor {
    Actor { actor_type: ActorType::System, id: Some("trailkeep".into()), name: Some("Trailkeep".into()), email: None }
}

fn new_key(name: String, org: Option<OrgId>, permissions: Vec<Permission>) -> (String, ApiKeyRecord) {
    let secret = generate_secret();
    let record = ApiKeyRecord {
        id: format!("key_{}", Uuid::now_v7().simple()),
        name,
        prefix: secret.chars().take(10).collect(),
        hash: hash_secret(&secret),
        org,
        permissions,
        created_at: now_ms(),
        revoked_at: None,
    };
    (secret, record)
}

/// `POST /v1/keys`.
pub async fn create_key(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: crate::audit::Origin,
    body: Result<Json<CreateKeyRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    principal.require(Permission::Admin)?;
    let Json(request) = body.map_err(ApiError::from)?;
    let name = request.name.trim().to_owned();
    if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("name must be 1-{MAX_NAME} characters without control characters"),
        )
        .with_field("name"));
    }
    let org = request
        .organization_id
        .as_deref()
        .map(|o| {
            if o.starts_with('_') {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_organization_id",
                    "ids starting with `_` are reserved",
                )
                .with_field("organization_id"));
            }
            OrgId::parse(o).map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_organization_id",
                    format!("organization_id {e}"),
                )
                .with_field("organization_id")
            })
        })
        .transpose()?;
    match (&principal.key.org, &org) {
        (None, _) => {}
        (Some(own), Some(o)) if own == o => {}
        (Some(_), _) => {
            return Err(ApiError::forbidden("an organisation's key may only create keys for its own organisation")
                .with_field("organization_id"));
        }
    }
    if request.permissions.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "permissions must name at least one of events:write, events:read, admin",
        )
        .with_field("permissions"));
    }
    let mut permissions = Vec::new();
    for (i, p) in request.permissions.iter().enumerate() {
        let permission = Permission::parse(p).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_permission",
                format!("`{}` is not one of events:write, events:read, admin", p.chars().take(64).collect::<String>()),
            )
            .with_field(format!("permissions[{i}]"))
        })?;
        if !permissions.contains(&permission) {
            permissions.push(permission);
        }
    }
    let (secret, record) = new_key(name, org, permissions);
    let audit = key_event("api_key.created", &record, principal.actor(), record.created_at, origin.context);
    state.store.create_api_key(record.clone(), Some(audit)).await?;
    tracing::info!(key_id = %record.id, by = %principal.key.id, "api key created");
    Ok((StatusCode::CREATED, Json(CreatedKey { info: key_info(&record), key: secret })))
}

/// `GET /v1/keys`: an org key lists its organisation's keys; a platform key lists all, or one
/// organisation's with `?organization_id=`.
pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<KeyList>, ApiError> {
    principal.require(Permission::Admin)?;
    let params = crate::query_pairs(params)?;
    let requested = crate::param(&params, "organization_id");
    let org = match (&principal.key.org, requested) {
        (None, None) => None,
        _ => Some(principal.read_org(requested)?),
    };
    let keys = state.store.list_api_keys(org.as_ref()).await?;
    Ok(Json(KeyList { data: keys.iter().map(key_info).collect() }))
}

/// `DELETE /v1/keys/{id}`: revokes a key at once.
pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: crate::audit::Origin,
    Path(id): Path<String>,
) -> Result<Json<KeyInfo>, ApiError> {
    principal.require(Permission::Admin)?;
    let key = state.store.get_api_key(&id).await?;
    // Another organisation's key answers like a missing one.
    let Some(key) = key.filter(|k| principal.key.org.is_none() || k.org == principal.key.org) else {
        return Err(ApiError::not_found("no such key"));
    };
    let at = now_ms();
    let audit = key_event("api_key.revoked", &key, principal.actor(), at, origin.context);
    if !state.store.revoke_api_key(&key.id, at, Some(audit)).await? {
        return Err(ApiError::new(StatusCode::CONFLICT, "already_revoked", "this key was already revoked"));
    }
    state.keys.forget(&key.id);
    tracing::info!(key_id = %key.id, by = %principal.key.id, "api key revoked");
    let revoked = ApiKeyRecord { revoked_at: Some(at), ..key };
    Ok(Json(key_info(&revoked)))
}

/// On a store with no key at all, creates a platform admin key, writes it to `<data-dir>/admin.key`
/// (mode 0600) and returns it so the caller can show it once.
pub async fn bootstrap_admin_key(store: &dyn Store, data_dir: &FsPath) -> anyhow::Result<Option<String>> {
    if !store.list_api_keys(None).await?.is_empty() {
        return Ok(None);
    }
    let (secret, record) = new_key("bootstrap admin".into(), None, Permission::ALL.to_vec());
    let path = data_dir.join("admin.key");
    write_secret_file(&path, &secret)?;
    let audit = key_event("api_key.created", &record, system_actor(), record.created_at, Context::default());
    store.create_api_key(record, Some(audit)).await?;
    Ok(Some(secret))
}

/// Writes a secret to a new file readable by its owner only (mode 0600 on Unix), synced to disk.
pub(crate) fn write_secret_file(path: &FsPath, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    writeln!(file, "{secret}")?;
    file.sync_all()?;
    Ok(())
}
