//! The one error envelope of the HTTP API and the table of its codes.
//!
//! Every failure answers `{"error": {"code", "message", "field"?}}` with a status that fits. Store and
//! internal failures are logged with their detail and answered with a generic message: what went wrong
//! inside is the operator's business, not the caller's.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use trailkeep_core::ValidationError;
use trailkeep_core::validate::ErrorKind;
use trailkeep_store::{AppendError, StoreError};
use trailkeep_wire::{ErrorBody, ErrorDetail};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), field: None, retry_after: None }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_param(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", message).with_field(field)
    }

    /// 429 `rate_limited`, with `Retry-After`.
    pub fn rate_limited(message: impl Into<String>, retry_after: Duration) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the service failed to complete the request; try again",
        )
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> ApiError {
        let status = match e.kind {
            ErrorKind::Malformed => StatusCode::BAD_REQUEST,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let field = (!e.field.is_empty()).then_some(e.field);
        ApiError { status, code: e.code, message: e.message, field, retry_after: None }
    }
}

/// A JSON body the `Json` extractor refused: a wrong content type answers 415, anything else 400 naming
/// the field at fault when there is one.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> ApiError {
        use axum::extract::rejection::JsonRejection;
        match e {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as `Content-Type: application/json`",
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
            }
            other => {
                let text = other.body_text();
                // The extractor writes "<what failed>: <path>: <problem> at line L column C".
                let detail = text.split_once(": ").map_or(text.as_str(), |(_, rest)| rest);
                let detail = detail.rfind(" at line ").map_or(detail, |i| &detail[..i]);
                let path = detail.split_once(": ").map(|(path, _)| path).filter(|path| {
                    *path != "."
                        && path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'[' | b']'))
                });
                let error = ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", detail.to_owned());
                match path {
                    Some(path) => error.with_field(path),
                    None => error,
                }
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> ApiError {
        match e {
            AppendError::IdempotencyConflict => ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                "this Idempotency-Key was used with a different body; use a new key for a new request",
            )
            .with_field("Idempotency-Key"),
            AppendError::Overloaded { retry_after } => ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "the ingest queue is full; retry after the time in Retry-After",
                )
            },
            AppendError::Failed(detail) => ApiError::internal(detail),
            AppendError::Unavailable(why) => ApiError {
                retry_after: Some(std::time::Duration::from_secs(5)),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    format!("nothing was stored: {why}; retry the same request later"),
                )
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message, field: self.field } };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs().max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Gives errors produced outside the handlers (method not allowed, timeouts, panics) the same envelope
/// as every other error.
pub async fn envelope_bare_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    // JSON errors are already enveloped; HTML pages (sign-in, portal links) are meant for people.
    let is_own = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_own {
        return response;
    }
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this endpoint does not take that method"),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long; try again"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        s if s.is_server_error() => ("internal", "the service failed to complete the request; try again"),
        _ => ("bad_request", "the request could not be handled"),
    };
    let mut replaced = ApiError::new(status, code, message).into_response();
    if let Some(retry) = response.headers().get(header::RETRY_AFTER) {
        replaced.headers_mut().insert(header::RETRY_AFTER, retry.clone());
    }
    replaced
}
