//! The JSON shapes of Trailkeep's HTTP API, shared by the server that writes them and the client that
//! reads them, so the two cannot drift apart.
//!
//! Events themselves are [`trailkeep_core::Event`]; this crate adds the envelopes around them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use trailkeep_core::Event;

/// Every error answer: `{"error": {"code": "...", "message": "...", "field": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable and machine-readable; the table lives in `docs/api.md`.
    pub code: String,
    /// For people; may change between versions.
    pub message: String,
    /// The JSON path or parameter name at fault, when one field is.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
}

/// Where one ingested event landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAck {
    pub id: Uuid,
    pub seq: u64,
    /// RFC 3339, millisecond precision.
    pub received_at: String,
}

/// The answer to `POST /v1/events`: one ack per event, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateEventsResponse {
    pub events: Vec<EventAck>,
}

/// One page of `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    pub data: Vec<Event>,
    /// Pass as `cursor` to get the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// The body of `POST /v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub name: String,
    /// Omit for a platform key (only a platform admin key may create one).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub organization_id: Option<String>,
    /// Any of `events:write`, `events:read`, `admin`.
    pub permissions: Vec<String>,
}

/// A key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    /// The first characters of the secret, to tell keys apart.
    pub prefix: String,
    pub organization_id: Option<String>,
    pub permissions: Vec<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// The answer to `POST /v1/keys`: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub info: KeyInfo,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    pub data: Vec<KeyInfo>,
}
