//! Who is calling: API keys sent as `Authorization: Bearer tk_…`, and what each may do.
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
use trailkeep_store::{ApiKeyRecord, Permission, Store};

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
#[derive(Debug, Clone)]
pub struct Principal {
    pub key: ApiKeyRecord,
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

    /// The organisation a read of events acts on, for a key that may read events: its own, or the one
    /// named by the `organization_id` query parameter.
    pub fn events_reader(&self, params: &[(String, String)]) -> Result<OrgId, ApiError> {
        self.require(Permission::EventsRead)?;
        self.read_org(crate::param(params, "organization_id"))
    }

    /// May this caller administer `org` — its projects, members, plan and keys? Platform keys and an
    /// organisation's own keys with the `admin` permission may.
    pub fn administers(&self, org: &OrgId) -> Result<(), ApiError> {
        self.require(Permission::Admin)?;
        if self.covers(org) {
            Ok(())
        } else {
            Err(ApiError::forbidden("this key belongs to another organisation"))
        }
    }

    /// Whether this key may act on `org`.
    pub fn covers(&self, org: &OrgId) -> bool {
        self.key.org.as_ref().is_none_or(|own| own == org)
    }

    /// The actor recorded in events this key causes.
    pub fn actor(&self) -> trailkeep_core::Actor {
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
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("send an API key as `Authorization: Bearer tk_…`"))?;
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
                Ok(Principal { key })
            }
            Some(_) => Err(ApiError::unauthorized("this API key has been revoked")),
            None => Err(ApiError::unauthorized("unknown API key")),
        }
    }
}
