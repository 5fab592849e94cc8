//! Who is calling: API keys sent as `Authorization: Bearer tk_…`, or a dashboard session's cookie
//! (see [`crate::sessions`]), and what each may do.
//!
//! A key's secret is never stored: only its SHA-256, which is also how it is looked up. Lookups are
//! cached for a few seconds so that ingest at thousands of requests a second does not query the key table
//! for each; revoking a key through this node clears it from the cache at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use trailkeep_core::OrgId;
use trailkeep_store::orgs::Role;
use trailkeep_store::sessions::SessionRole;
use trailkeep_store::{ApiKeyRecord, Permission, ReadScope, Store};

use crate::AppState;
use crate::error::ApiError;

/// Every key begins with this, so leaked keys are easy to spot and scan for.
pub const KEY_PREFIX: &str = "tk_";
const CACHE_TTL: Duration = Duration::from_secs(5);

/// A new random key: `tk_` and 256 random bits, base64url.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Recently seen keys by hash. The hash itself is the index, so no secret-dependent comparison happens
/// outside SHA-256.
#[derive(Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<[u8; 32], CachedKey>>,
    /// Bumped by every revocation, so that a lookup which started before it cannot cache the old record.
    generation: AtomicU64,
}

type CachedKey = (Instant, Option<ApiKeyRecord>);

impl KeyCache {
    pub async fn lookup(&self, store: &dyn Store, hash: [u8; 32]) -> Result<Option<ApiKeyRecord>, ApiError> {
        if let Some((at, record)) = self.entries.read().unwrap_or_else(|p| p.into_inner()).get(&hash)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(record.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let record = store.find_api_key(&hash).await?;
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::SeqCst) != generation {
            // A key was revoked meanwhile: this answer may predate it, so use it once but keep it out.
            return Ok(record);
        }
        if entries.len() > 100_000 {
            entries.clear();
        }
        entries.insert(hash, (Instant::now(), record.clone()));
        Ok(record)
    }

    pub fn forget(&self, key_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (_, r)| r.as_ref().is_none_or(|r| r.id != key_id));
    }
}

/// The authenticated caller of a request.
///
/// A dashboard session is described by a key-shaped record too — its id is the session's public id
/// (`ses_…`), its organisation the session's, and it holds `events:read` only when its role reads events
/// — so every permission check written for keys holds for sessions: no session may write events, manage
/// keys or administer anything.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key: ApiKeyRecord,
    /// Set when the caller authenticated with a session cookie instead of a key.
    pub session: Option<Arc<crate::sessions::SessionAuth>>,
}

impl Principal {
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.key.allows(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this key lacks the `{}` permission", permission.as_str())))
        }
    }

    /// The organisation a read acts on: an org-scoped key's own, or the one a platform key names.
    pub fn read_org(&self, requested: Option<&str>) -> Result<OrgId, ApiError> {
        match (&self.key.org, requested) {
            (Some(own), None) => Ok(own.clone()),
            (Some(own), Some(req)) if req == own.as_str() => Ok(own.clone()),
            (Some(_), Some(_)) => {
                Err(ApiError::forbidden("this key belongs to another organisation").with_field("organization_id"))
            }
            (None, Some(req)) => {
                OrgId::parse(req).map_err(|e| ApiError::bad_param("organization_id", format!("organization_id {e}")))
            }
            (None, None) => Err(ApiError::bad_param(
                "organization_id",
                "a platform key must name the organisation: add ?organization_id=…",
            )),
        }
    }

    /// What a read of events may see: for a key that may read events, its own organisation or the one
    /// named by the `organization_id` query parameter, all of it. A session reads as its role allows:
    /// owners and admins the whole organisation, project admins their projects' events only, members
    /// and viewers nothing (403); an operator any organisation, by default the one chosen at sign-in.
    pub fn events_reader(&self, params: &[(String, String)]) -> Result<ReadScope, ApiError> {
        if params.iter().filter(|(k, _)| k == "organization_id").count() > 1 {
            return Err(ApiError::bad_param("organization_id", "name one organisation, once"));
        }
        let requested = crate::param(params, "organization_id");
        let Some(session) = &self.session else {
            self.require(Permission::EventsRead)?;
            return Ok(ReadScope::org(self.read_org(requested)?));
        };
        let session = &session.record;
        match session.role {
            SessionRole::Operator => {
                Ok(ReadScope::org(self.read_org(requested.or(session.org.as_ref().map(OrgId::as_str)))?))
            }
            SessionRole::Org(Role::Owner | Role::Admin) => Ok(ReadScope::org(self.read_org(requested)?)),
            SessionRole::Org(Role::ProjectAdmin) => {
                Ok(ReadScope { org: self.read_org(requested)?, projects: Some(session.projects.clone()) })
            }
            SessionRole::Org(Role::Member | Role::Viewer) => Err(ApiError::forbidden(
                "only an organisation's owners and admins (and project admins, for their projects) may read its audit log",
            )),
        }
    }

    /// May this caller administer `org` — its projects, members, plan and keys? Platform keys and an
    /// organisation's own keys with the `admin` permission may, and so may the organisation's owners and
    /// admins signed in with a session.
    pub fn administers(&self, org: &OrgId) -> Result<(), ApiError> {
        if let Some(session) = &self.session {
            let s = &session.record;
            return match s.role {
                SessionRole::Org(Role::Owner | Role::Admin) if s.org.as_ref() == Some(org) => Ok(()),
                _ => Err(ApiError::forbidden("only the organisation's owners and admins administer it")),
            };
        }
        self.require(Permission::Admin)?;
        if self.covers(org) { Ok(()) } else { Err(ApiError::forbidden("this key belongs to another organisation")) }
    }

    /// The organisation this caller belongs to; `None` for a platform key.
    pub fn own_org(&self) -> Option<OrgId> {
        self.key.org.clone()
    }

    /// Whether this is a platform key with the `admin` permission.
    pub fn is_platform_admin(&self) -> bool {
        self.key.org.is_none() && self.key.allows(Permission::Admin)
    }

    /// Whether this key may act on `org`.
    pub fn covers(&self, org: &OrgId) -> bool {
        self.key.org.as_ref().is_none_or(|own| own == org)
    }

    /// The actor recorded in events this key (or session's user) causes.
    pub fn actor(&self) -> trailkeep_core::Actor {
        if let Some(session) = &self.session {
            return crate::sessions::user_actor(&session.record.user);
        }
        trailkeep_core::Actor {
            actor_type: trailkeep_core::ActorType::ApiKey,
            id: Some(self.key.id.clone()),
            name: Some(self.key.name.clone()),
            email: None,
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Principal, ApiError> {
        let Some(header) = parts.headers.get(header::AUTHORIZATION) else {
            // Without a key, a dashboard session's cookie may authenticate the request.
            return match crate::sessions::authenticate(parts, state).await? {
                Some(principal) => Ok(principal),
                None => Err(ApiError::unauthorized("send an API key as `Authorization: Bearer tk_…`")),
            };
        };
        let value =
            header.to_str().map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
        let secret = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer tk_…`"))?;
        if !secret.starts_with(KEY_PREFIX) || secret.len() > 256 {
            return Err(ApiError::unauthorized("this is not a Trailkeep API key"));
        }
        let record = state.keys.lookup(state.store.as_ref(), hash_secret(secret)).await?;
        match record {
            Some(key) if key.is_active() => {
                state.rate_limits.check_key(&key.id)?;
                Ok(Principal { key, session: None })
            }
            Some(_) => Err(ApiError::unauthorized("this API key has been revoked")),
            None => Err(ApiError::unauthorized("unknown API key")),
        }
    }
}

/// The organisation of a read that covers its whole log — tree-wide proofs and seq ranges, which show
/// every event's place whatever its project — refused to a reader limited to some projects.
pub fn whole_log(scope: ReadScope) -> Result<OrgId, ApiError> {
    match scope.projects {
        None => Ok(scope.org),
        Some(_) => Err(ApiError::forbidden(
            "a project admin reads only their projects' events; proofs and ranges over the whole log are for owners and admins",
        )),
    }
}
