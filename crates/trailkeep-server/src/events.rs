//! Handlers for `/v1/events`: ingest, list and fetch one.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use trailkeep_core::Filter;
use trailkeep_core::cursor::{Cursor, Order};
use trailkeep_core::time::format_millis;
use trailkeep_core::validate::{IngestContext, is_batch, parse_batch};
use trailkeep_store::{AppendRequest, EventQuery, IdempotencyClaim, Permission};
use trailkeep_wire::{CreateEventsResponse, EventAck, EventPage};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::{AppState, now_ms};

pub const MAX_LIMIT: usize = 1000;
pub const DEFAULT_LIMIT: usize = 50;
const MAX_IDEMPOTENCY_KEY: usize = 255;

fn body_rejection(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is over the 16 MiB limit; split the batch",
        )
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", format!("cannot read the request body: {e}"))
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "send one Idempotency-Key, not several",
        )
        .with_field("Idempotency-Key"));
    }
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        )
        .with_field("Idempotency-Key")
    };
    let text = value.to_str().map_err(|_| bad())?;
    if text.is_empty() || text.len() > MAX_IDEMPOTENCY_KEY || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(text.to_owned()))
}

/// `POST /v1/events`: one event, or `{"events": [...]}`; 201 once durably committed.
pub async fn create_events(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    principal.require(Permission::EventsWrite)?;
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        // The media type without its parameters, compared without regard to case: `application/jsonp` and
        // `application/json-patch+json` are other formats.
        let essence = ct.to_str().unwrap_or_default().split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send events as `Content-Type: application/json`",
            ));
        }
    }
    // A compressed body would be read as if it were not: refuse what is not decoded here.
    if headers.get_all(header::CONTENT_ENCODING).iter().any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity")) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send events without a Content-Encoding; compressed bodies are not accepted",
        ));
    }
    let idempotency = idempotency_key(&headers)?;
    let body = body.map_err(body_rejection)?;
    let events = parse_batch(
        &body,
        IngestContext { limits: &state.limits, now_ms: now_ms(), default_org: principal.key.org.as_ref() },
    )?;
    for (i, event) in events.iter().enumerate() {
        if !principal.covers(&event.organization_id) {
            let field =
                if is_batch(&body) { format!("events[{i}].organization_id") } else { "organization_id".to_owned() };
            return Err(ApiError::forbidden("this key may not write to that organisation").with_field(field));
        }
    }
    let claim = idempotency.map(|key| IdempotencyClaim {
        scope: principal.key.id.clone(),
        key,
        fingerprint: Sha256::digest(&body).into(),
    });
    let count = events.len();
    let outcome = state.store.append(AppendRequest { events, idempotency: claim }).await?;
    metrics::counter!("trailkeep_ingest_requests_total").increment(1);
    if !outcome.replayed {
        metrics::counter!("trailkeep_ingest_events_total").increment(count as u64);
    }
    let response = CreateEventsResponse {
        events: outcome
            .acks
            .iter()
            .map(|a| EventAck { id: a.id, seq: a.seq, received_at: format_millis(a.received_at) })
            .collect(),
    };
    let mut response = (StatusCode::CREATED, Json(response)).into_response();
    if outcome.replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The page controls of a listing, apart from the filter parameters.
struct PageParams {
    limit: usize,
    order: Order,
    cursor: Option<String>,
}

fn page_params(params: &[(String, String)]) -> Result<PageParams, ApiError> {
    let mut page = PageParams { limit: DEFAULT_LIMIT, order: Order::Desc, cursor: None };
    for (key, value) in params {
        match key.as_str() {
            "limit" => {
                page.limit = value.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                    ApiError::bad_param("limit", format!("limit must be a whole number from 1 to {MAX_LIMIT}"))
                })?;
            }
            "order" => {
                page.order =
                    Order::parse(value).ok_or_else(|| ApiError::bad_param("order", "order must be `asc` or `desc`"))?;
            }
            "cursor" => page.cursor = Some(value.clone()),
            _ => {}
        }
    }
    Ok(page)
}

/// Parameters of a listing besides the filter's own ([`trailkeep_core::filter::FILTER_PARAMS`]); anything
/// else is refused so that a typo is not a silent no-op.
const PAGE_PARAMS: &[&str] = &["organization_id", "limit", "order", "cursor"];

fn is_known_param(name: &str) -> bool {
    PAGE_PARAMS.contains(&name) || trailkeep_core::filter::FILTER_PARAMS.contains(&name)
}

/// `GET /v1/events`: one page of the organisation's timeline.
pub async fn list_events(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let params = crate::query_pairs(params)?;
    let scope = principal.events_reader(&params)?;
    if let Some((key, _)) = params.iter().find(|(k, _)| !is_known_param(k)) {
        return Err(ApiError::bad_param(key, format!("unknown parameter `{key}`; see docs/query-language.md")));
    }
    let page = page_params(&params)?;
    let filter = Filter::from_params(&params, now_ms()).map_err(|e| {
        let code = if e.field == "q" { "invalid_query" } else { "invalid_parameter" };
        ApiError::new(StatusCode::BAD_REQUEST, code, e.message.clone()).with_field(e.field.clone())
    })?;
    let after = page
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c, page.order))
        .transpose()
        .map_err(|e| ApiError::bad_param("cursor", format!("cursor {e}")))?;
    let query = EventQuery { filter, order: page.order, limit: page.limit, after };
    let started = std::time::Instant::now();
    let result = state.store.list_events(&scope, &query).await?;
    metrics::histogram!("trailkeep_query_seconds").record(started.elapsed().as_secs_f64());
    Ok(Json(EventPage { data: result.events, next_cursor: result.next.map(|c| c.encode()) }))
}

/// `GET /v1/events/{id}`; with `?proof=true` the event carries an `integrity` object: its inclusion proof
/// against the newest checkpoint (`{"status": "pending"}` until one covers it).
pub async fn get_event(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = crate::query_pairs(params)?;
    let scope = principal.events_reader(&params)?;
    let with_proof = match crate::param(&params, "proof") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad_param("proof", "proof must be `true` or `false`")),
    };
    let event = crate::fetch_event(&state, &scope, &id).await?;
    let mut body = serde_json::to_value(&event).map_err(ApiError::internal)?;
    if with_proof {
        let integrity = crate::proofs::newest_inclusion(&state, &scope.org, &event)
            .await?
            .unwrap_or_else(|| serde_json::json!({ "status": "pending" }));
        body["integrity"] = integrity;
    }
    Ok(Json(body))
}
