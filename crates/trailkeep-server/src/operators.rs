//! Operator accounts and their password sign-in: `POST /v1/operators` and `GET /v1/operators` (platform
//! admin keys only), `GET /login` and `POST /login`.
//!
//! Passwords are kept as argon2id PHC strings (the `argon2` crate's default parameters) and checked with
//! its `verify_password`, which compares in constant time. An unknown email is checked against a dummy
//! hash, so a wrong email and a wrong password take about as long and answer the same page. Hashing runs
//! on the blocking pool, off the async workers.
//!
//! Sign-in is rate-limited in memory: after 5 failures for one email, or from one client address, within
//! 15 minutes, further attempts answer 429 with `Retry-After` until the oldest failure leaves the window.
//! The counts live in this process only (a restart forgets them; several nodes count apart).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::Json;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use trailkeep_core::OrgId;
use trailkeep_core::time::format_millis;
use trailkeep_store::Permission;
use trailkeep_store::sessions::{OperatorRecord, SessionRole, SessionStart, SessionUser};
use uuid::Uuid;

use crate::audit::{Origin, Record};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::portal::{check_name, normalise_email};
use crate::sessions::NewSession;
use crate::{AppState, now_ms, pages};

/// Failures that lock an email or address out.
const MAX_FAILURES: usize = 5;
const WINDOW: Duration = Duration::from_secs(15 * 60);
const MIN_PASSWORD: usize = 12;
const MAX_PASSWORD: usize = 1024;

/// Failed sign-ins per email and per client address, within the last [`WINDOW`].
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// How long until `keys` may try again, when any of them is locked out.
    fn locked(&self, keys: &[String]) -> Option<Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        keys.iter()
            .filter_map(|key| {
                let times = map.get_mut(key)?;
                while times.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                    times.pop_front();
                }
                (times.len() >= MAX_FAILURES).then(|| WINDOW.saturating_sub(now.duration_since(times[0])))
            })
            .max()
    }

    fn fail(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() > 100_000 {
            map.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        for key in keys {
            let times = map.entry(key.clone()).or_default();
            times.push_back(now);
            if times.len() > MAX_FAILURES {
                times.pop_front();
            }
        }
    }

    fn clear(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// The argon2id PHC string of `password`, computed off the async workers.
async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?
}

/// A hash of a random password nobody knows, checked when the email is unknown.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let unguessable = crate::sessions::random_token("");
        Argon2::default().hash_password(unguessable.as_bytes()).map(|h| h.to_string()).unwrap_or_default()
    })
}

/// Whether `password` matches `stored` (or, with `None`, spends the same effort on the dummy hash and
/// answers no).
async fn verify_password(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let matches = PasswordHash::new(&phc)
            .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false);
        known && matches
    })
    .await
    .map_err(ApiError::internal)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOperator {
    email: String,
    #[serde(default)]
    name: Option<String>,
    password: String,
}

fn operator_json(op: &OperatorRecord) -> serde_json::Value {
    json!({ "id": op.id, "email": op.email, "name": op.name, "created_at": format_millis(op.created_at) })
}

/// Operators are managed by platform keys with `admin` only.
fn require_platform_admin(principal: &Principal) -> Result<(), ApiError> {
    principal.require(Permission::Admin)?;
    if principal.key.org.is_some() || principal.session.is_some() {
        return Err(ApiError::forbidden("only a platform key with the admin permission manages operators"));
    }
    Ok(())
}

/// `POST /v1/operators`: `{"email", "name"?, "password"}`; answers the account (never the password).
pub async fn create_operator(
    State(state): State<Arc<AppState>>,
    origin: Origin,
    principal: Principal,
    body: Result<Json<CreateOperator>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    require_platform_admin(&principal)?;
    let Json(request) = body.map_err(ApiError::from)?;
    let email = normalise_email(&request.email, "email")?;
    let name = check_name(request.name, "name")?;
    let length = request.password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&length) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters"),
        )
        .with_field("password"));
    }
    let operator = OperatorRecord {
        id: format!("op_{}", Uuid::now_v7().simple()),
        email,
        name,
        password_hash: hash_password(request.password).await?,
        created_at: now_ms(),
    };
    let record = Record {
        org: OrgId::platform(),
        project: None,
        action: "operator.created",
        category: "operator",
        target: trailkeep_core::Target {
            target_type: "operator".into(),
            id: operator.id.clone(),
            name: Some(operator.email.clone()),
        },
        description: format!("{} created the operator account {}", principal.key.name, operator.email),
        changes: Vec::new(),
        metadata: serde_json::Map::new(),
    };
    let audit = crate::audit::event(record, principal.actor(), &origin);
    if !state.store.create_operator(operator.clone(), audit).await? {
        return Err(ApiError::new(StatusCode::CONFLICT, "operator_exists", "an operator with this email exists")
            .with_field("email"));
    }
    tracing::info!(operator = %operator.id, by = %principal.key.id, "operator created");
    Ok((StatusCode::CREATED, Json(operator_json(&operator))))
}

/// `GET /v1/operators`: every operator account, oldest first.
pub async fn list_operators(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_platform_admin(&principal)?;
    let operators = state.store.list_operators().await?;
    Ok(Json(json!({ "data": operators.iter().map(operator_json).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    organization_id: Option<String>,
}

/// `GET /login`: the sign-in form. `?organization_id=` chooses the organisation the session opens on.
pub async fn get_login(query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>) -> Response {
    let org = query.ok().and_then(|Query(q)| q.organization_id).unwrap_or_default();
    pages::login(StatusCode::OK, None, "", &org)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    organization_id: Option<String>,
}

/// `POST /login`: checks the password and starts an operator session (recorded in `_platform`).
pub async fn post_login(
    State(state): State<Arc<AppState>>,
    origin: Origin,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, ApiError> {
    // A form posted from another site must not sign a browser in (login CSRF).
    if !state.sessions.same_origin(&headers) {
        return Ok(pages::message(
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            "Sign in from this service's own page.",
            Some(("/login", "Sign in")),
        ));
    }
    let Ok(Form(form)) = form else {
        return Ok(pages::login(StatusCode::BAD_REQUEST, Some("Enter an email and a password."), "", ""));
    };
    let chosen = form.organization_id.as_deref().map(str::trim).filter(|o| !o.is_empty());
    let org = match chosen.map(OrgId::parse).transpose() {
        Ok(org) => org,
        Err(_) => {
            return Ok(pages::login(
                StatusCode::BAD_REQUEST,
                Some("That organisation id is not valid."),
                &form.email,
                "",
            ));
        }
    };
    let email = form.email.trim().to_lowercase();
    let ip: Option<IpAddr> = origin.context.ip;
    let mut keys = vec![format!("email:{email}")];
    keys.extend(ip.map(|ip| format!("ip:{ip}")));
    if let Some(retry_after) = state.sessions.login_failures.locked(&keys) {
        tracing::warn!(ip = ?ip, "sign-in refused: too many failures");
        return Ok(pages::too_many_attempts(retry_after));
    }
    let operator = if email.is_empty() || email.len() > 320 { None } else { state.store.find_operator(&email).await? };
    let password = form.password;
    let ok = password.len() <= MAX_PASSWORD * 4
        && verify_password(password, operator.as_ref().map(|o| o.password_hash.clone())).await?;
    let Some(operator) = operator.filter(|_| ok) else {
        state.sessions.login_failures.fail(&keys);
        tracing::info!(ip = ?ip, "sign-in failed");
        let shown_org = org.as_ref().map(OrgId::as_str).unwrap_or("");
        return Ok(pages::login(
            StatusCode::UNAUTHORIZED,
            Some("The email or password is not right."),
            &form.email,
            shown_org,
        ));
    };
    state.sessions.login_failures.clear(&keys[0]);
    let new = NewSession {
        user: SessionUser { email: operator.email.clone(), name: operator.name.clone() },
        role: SessionRole::Operator,
        org,
        projects: Vec::new(),
        issued_by: None,
        member_bound: false,
        via: "login",
    };
    let Some(secret) = crate::sessions::start(&state, new, SessionStart::Login, &origin).await? else {
        return Err(ApiError::internal("a sign-in session did not start"));
    };
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, HeaderValue::from_static("/")),
            (header::SET_COOKIE, state.sessions.cookie(&secret)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_a_key_out_and_others_stay_free() {
        let limiter = LoginLimiter::default();
        let keys = vec!["email:a@b.c".to_string(), "ip:127.0.0.1".to_string()];
        for _ in 0..MAX_FAILURES - 1 {
            limiter.fail(&keys);
            assert_eq!(limiter.locked(&keys), None);
        }
        limiter.fail(&keys);
        let wait = limiter.locked(&keys).expect("locked after five failures");
        assert!(wait <= WINDOW && wait > Duration::from_secs(60));
        assert!(limiter.locked(&["ip:127.0.0.1".to_string()]).is_some(), "the address is locked too");
        assert_eq!(limiter.locked(&["email:other@b.c".to_string(), "ip:10.0.0.1".to_string()]), None);
        limiter.clear("email:a@b.c");
        assert!(limiter.locked(&["email:a@b.c".to_string()]).is_none());
    }

    #[tokio::test]
    async fn a_password_verifies_against_its_argon2id_hash_only() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse battery".into(), Some(hash.clone())).await.unwrap());
        assert!(!verify_password("correct horse batterx".into(), Some(hash)).await.unwrap());
        assert!(!verify_password("anything".into(), None).await.unwrap(), "an unknown email never signs in");
    }
}
