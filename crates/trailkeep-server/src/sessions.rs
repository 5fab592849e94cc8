//! Dashboard sessions: the cookie that authenticates a browser, CSRF protection, `GET /v1/session` and
//! `POST /v1/session/logout`.
//!
//! A session starts from a redeemed portal link ([`crate::portal`]) or an operator's sign-in
//! ([`crate::operators`]). Its cookie value is `tks_` and 256 random bits; only its SHA-256 is stored, so
//! the lookup is by hash and no secret-dependent comparison happens outside SHA-256. The cookie is
//! `HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure` when the public URL is `https`, and lives at most as
//! long as the session.
//!
//! Every state-changing request (POST, PUT, PATCH, DELETE) a cookie authenticates must carry
//! `X-CSRF-Token` equal to the session's CSRF token, and, when the browser sends `Origin`, come from the
//! service's own origin. The CSRF token is derived from the cookie value (SHA-256 under a label), so it is
//! never stored and cannot be computed without the cookie; it is compared in constant time.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use trailkeep_core::time::format_millis;
use trailkeep_core::{Actor, ActorType, NewEvent, OrgId};
use trailkeep_store::sessions::{SessionRecord, SessionRole, SessionStart, SessionUser};
use trailkeep_store::{ApiKeyRecord, Permission};
use uuid::Uuid;

use crate::audit::{Origin, Record};
use crate::auth::{Principal, hash_secret};
use crate::error::ApiError;
use crate::{AppState, now_ms};

/// The session cookie's name.
pub const COOKIE: &str = "trailkeep_session";
/// Every session cookie value begins with this.
pub const SESSION_PREFIX: &str = "tks_";
/// The header that must repeat the session's CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// `prefix` and 256 random bits, base64url: a portal link token or a session cookie value.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The CSRF token of the session whose cookie value is `secret`.
pub fn csrf_token(secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"trailkeep csrf token\0");
    hasher.update(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

/// Session settings, fixed at start.
pub struct Sessions {
    /// The public URL: configured, or the bound address once [`Sessions::bind`] saw it.
    public_url: OnceLock<String>,
    pub link_lifetime: Duration,
    pub session_lifetime: Duration,
    /// Failed sign-ins, for the login rate limit.
    pub login_failures: crate::operators::LoginLimiter,
}

impl Sessions {
    pub fn new(public_url: Option<String>, link_lifetime: Duration, session_lifetime: Duration) -> Sessions {
        let cell = OnceLock::new();
        if let Some(url) = public_url {
            let _ = cell.set(url);
        }
        Sessions {
            public_url: cell,
            link_lifetime,
            session_lifetime,
            login_failures: crate::operators::LoginLimiter::default(),
        }
    }

    /// Adopts `http://<addr>` as the public URL unless one was configured.
    pub fn bind(&self, addr: std::net::SocketAddr) {
        let _ = self.public_url.set(format!("http://{addr}"));
    }

    /// The origin browsers reach the service at, without a trailing slash.
    pub fn public_url(&self) -> &str {
        self.public_url.get().map(String::as_str).unwrap_or("http://127.0.0.1")
    }

    /// Cookies are `Secure` when the service is reached over TLS.
    pub fn secure(&self) -> bool {
        self.public_url().starts_with("https://")
    }

    /// The `Set-Cookie` value carrying a new session.
    pub fn cookie(&self, secret: &str) -> HeaderValue {
        let secure = if self.secure() { "; Secure" } else { "" };
        let value = format!(
            "{COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
            self.session_lifetime.as_secs()
        );
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clearing_cookie(&self) -> HeaderValue {
        let secure = if self.secure() { "; Secure" } else { "" };
        HeaderValue::from_str(&format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"))
            .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Whether a request's `Origin` header, when sent, is this service's own origin.
    pub fn same_origin(&self, headers: &HeaderMap) -> bool {
        match headers.get(header::ORIGIN) {
            None => true,
            Some(origin) => origin.to_str().is_ok_and(|o| o.eq_ignore_ascii_case(self.public_url())),
        }
    }
}

/// An authenticated session, as a request's [`Principal`] carries it.
pub struct SessionAuth {
    pub record: SessionRecord,
    /// The token state-changing requests must repeat in `X-CSRF-Token`.
    pub csrf_token: String,
}

impl std::fmt::Debug for SessionAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionAuth").field("record", &self.record).field("csrf_token", &"<redacted>").finish()
    }
}

/// The actor recorded for what a session's user does.
pub fn user_actor(user: &SessionUser) -> Actor {
    Actor {
        actor_type: ActorType::User,
        id: Some(user.email.clone()),
        name: user.name.clone(),
        email: Some(user.email.clone()),
    }
}

/// The session cookie's value among the request's cookies, if any.
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

/// The caller a session cookie authenticates, if the request carries one; errors for a cookie that
/// names no live session, and for a state-changing request that fails the CSRF checks.
pub async fn authenticate(parts: &Parts, state: &Arc<AppState>) -> Result<Option<Principal>, ApiError> {
    let Some(secret) = cookie_value(&parts.headers) else { return Ok(None) };
    let ended = || ApiError::unauthorized("this session has ended or is not valid; open a new portal link or sign in");
    if !secret.starts_with(SESSION_PREFIX) || secret.len() > 128 {
        return Err(ended());
    }
    let Some(found) = state.store.find_session(&hash_secret(secret)).await? else { return Err(ended()) };
    let session = found.session;
    if session.ended_at.is_some() || session.expires_at <= now_ms() {
        return Err(ended());
    }
    if found.issuer_revoked {
        return Err(ApiError::unauthorized("the API key that issued this session's portal link was revoked"));
    }
    if let (SessionRole::Org(_), Some(org)) = (session.role, &session.org) {
        if state.store.get_org(org).await?.is_some_and(|o| o.deleted_at.is_some()) {
            return Err(ApiError::unauthorized("this session's organisation was deleted"));
        }
        if session.member_bound && state.store.get_member(org, &session.user.email).await?.is_none() {
            return Err(ApiError::unauthorized("this session's membership of the organisation was removed"));
        }
    }
    let csrf = csrf_token(secret);
    if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let sent = parts.headers.get(CSRF_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
        if !bool::from(sent.ct_eq(csrf.as_bytes())) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "a state-changing request made with a session must carry its CSRF token in X-CSRF-Token (see GET /v1/session)",
            ));
        }
        if !state.sessions.same_origin(&parts.headers) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "a state-changing request made with a session must come from this service's own origin",
            ));
        }
    }
    state.rate_limits.check_key(&session.id)?;
    Ok(Some(Principal {
        key: session_key(&session),
        session: Some(Arc::new(SessionAuth { record: session, csrf_token: csrf })),
    }))
}

/// The key-shaped description of a session, so that every permission check made for keys holds for it.
fn session_key(session: &SessionRecord) -> ApiKeyRecord {
    let reads = match session.role {
        SessionRole::Operator => true,
        SessionRole::Org(role) => role.reads_everything() || role == trailkeep_store::orgs::Role::ProjectAdmin,
    };
    ApiKeyRecord {
        id: session.id.clone(),
        name: session.user.name.clone().unwrap_or_else(|| session.user.email.clone()),
        prefix: String::new(),
        hash: [0; 32],
        // An operator reads every organisation, like a platform key.
        org: match session.role {
            SessionRole::Operator => None,
            SessionRole::Org(_) => session.org.clone(),
        },
        permissions: if reads { vec![Permission::EventsRead] } else { Vec::new() },
        created_at: session.created_at,
        revoked_at: None,
    }
}

/// A session about to start: who, as what, where.
pub struct NewSession {
    pub user: SessionUser,
    pub role: SessionRole,
    pub org: Option<OrgId>,
    pub projects: Vec<trailkeep_core::ProjectId>,
    pub issued_by: Option<String>,
    pub member_bound: bool,
    /// How it started, for the event's metadata: `portal_link` or `login`.
    pub via: &'static str,
}

/// Starts a session with a fresh id (whatever cookie the request carried is ignored and replaced) and
/// records `session.started` — in the session's organisation, or `_platform` for an operator — in the same
/// transaction. `None` when a portal link turned out used or expired meanwhile.
pub async fn start(
    state: &AppState,
    new: NewSession,
    start: SessionStart,
    origin: &Origin,
) -> Result<Option<String>, ApiError> {
    let secret = random_token(SESSION_PREFIX);
    let now = now_ms();
    let record = SessionRecord {
        hash: hash_secret(&secret),
        id: format!("ses_{}", Uuid::now_v7().simple()),
        user: new.user,
        role: new.role,
        org: new.org,
        projects: new.projects,
        issued_by: new.issued_by,
        member_bound: new.member_bound,
        created_at: now,
        expires_at: now + state.sessions.session_lifetime.as_millis() as i64,
        ended_at: None,
    };
    let audit = session_event("session.started", &record, new.via, origin);
    let started = state.store.start_session(record.clone(), start, audit).await?;
    if started {
        tracing::info!(session = %record.id, role = record.role.as_str(), via = new.via, "session started");
    }
    Ok(started.then_some(secret))
}

/// The event recording a session's start or end, in its organisation's log (an operator's in
/// `_platform`), with the session's public id in `context.session_id`.
fn session_event(action: &str, session: &SessionRecord, via: &str, origin: &Origin) -> NewEvent {
    let org = match session.role {
        SessionRole::Operator => OrgId::platform(),
        SessionRole::Org(_) => session.org.clone().unwrap_or_else(OrgId::platform),
    };
    let mut metadata = serde_json::Map::new();
    metadata.insert("role".into(), json!(session.role.as_str()));
    if !session.projects.is_empty() {
        metadata.insert("projects".into(), json!(session.projects.iter().map(|p| p.as_str()).collect::<Vec<_>>()));
    }
    metadata.insert("via".into(), json!(via));
    metadata.insert("expires_at".into(), json!(format_millis(session.expires_at)));
    if let (SessionRole::Operator, Some(chosen)) = (session.role, &session.org) {
        metadata.insert("organization_id".into(), json!(chosen.as_str()));
    }
    if let Some(key) = &session.issued_by {
        metadata.insert("issued_by".into(), json!(key));
    }
    let verb = if action.ends_with("started") { "started" } else { "ended" };
    let record = Record {
        org,
        project: None,
        action,
        category: "session",
        target: trailkeep_core::Target { target_type: "session".into(), id: session.id.clone(), name: None },
        description: format!("{} {verb} a {} session", session.user.email, session.role.as_str()),
        changes: Vec::new(),
        metadata,
    };
    let mut origin = origin.clone();
    origin.context.session_id = Some(session.id.clone());
    crate::audit::event(record, user_actor(&session.user), &origin)
}

/// The session a request was made with, or 400 for a key.
fn require_session(principal: &Principal) -> Result<&SessionAuth, ApiError> {
    principal.session.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_a_session",
            "this endpoint describes a dashboard session; this request used an API key",
        )
    })
}

/// `GET /v1/session`: who the session acts as, until when, and its CSRF token.
pub async fn get_session(principal: Principal) -> Result<Response, ApiError> {
    let auth = require_session(&principal)?;
    let s = &auth.record;
    let body = json!({
        "id": s.id,
        "user": {"email": s.user.email, "name": s.user.name},
        "organization_id": s.org.as_ref().map(OrgId::as_str),
        "role": s.role.as_str(),
        "projects": s.projects.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "created_at": format_millis(s.created_at),
        "expires_at": format_millis(s.expires_at),
        "csrf_token": auth.csrf_token,
    });
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// `POST /v1/session/logout`: ends the session at once (and records `session.ended`); answers 204 and
/// clears the cookie.
pub async fn logout(
    State(state): State<Arc<AppState>>,
    origin: Origin,
    principal: Principal,
) -> Result<Response, ApiError> {
    let auth = require_session(&principal)?;
    let s = &auth.record;
    let audit = session_event("session.ended", s, "logout", &origin);
    state.store.end_session(&s.hash, now_ms(), Some(audit)).await?;
    tracing::info!(session = %s.id, "session ended");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, state.sessions.clearing_cookie())]).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others_and_its_csrf_token_depends_on_it() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; trailkeep_session=tks_abc ; b=2"));
        assert_eq!(cookie_value(&headers), Some("tks_abc"));
        headers.insert(header::COOKIE, HeaderValue::from_static("trailkeep_sessionx=tks_abc"));
        assert_eq!(cookie_value(&headers), None);
        assert_ne!(csrf_token("tks_a"), csrf_token("tks_b"));
        assert_eq!(csrf_token("tks_a"), csrf_token("tks_a"));
        assert!(!csrf_token("tks_a").contains("tks_a"));
    }

    #[test]
    fn cookies_are_secure_only_under_https_and_origins_must_match() {
        let plain = Sessions::new(None, Duration::from_secs(300), Duration::from_secs(3600));
        plain.bind("127.0.0.1:4000".parse().unwrap());
        let cookie = plain.cookie("tks_x");
        let text = cookie.to_str().unwrap();
        assert!(text.contains("HttpOnly") && text.contains("SameSite=Strict") && text.contains("Max-Age=3600"));
        assert!(!text.contains("Secure"));
        let tls =
            Sessions::new(Some("https://audit.example.com".into()), Duration::from_secs(300), Duration::from_secs(60));
        tls.bind("127.0.0.1:4000".parse().unwrap());
        assert_eq!(tls.public_url(), "https://audit.example.com", "a configured URL wins over the bound address");
        assert!(tls.cookie("tks_x").to_str().unwrap().ends_with("; Secure"));
        let mut headers = HeaderMap::new();
        assert!(tls.same_origin(&headers), "no Origin header: nothing to compare");
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://audit.example.com"));
        assert!(tls.same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!tls.same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!tls.same_origin(&headers));
    }
}
