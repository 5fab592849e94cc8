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

/// One checkpoint signing key as `GET /v1/checkpoint-keys` lists it; every key that ever signed is
/// listed, so that checkpoints signed before a rotation still verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointKeyInfo {
    /// The signed-note verifier key, `<name>+<key id>+<base64(0x01 || public key)>`.
    pub verifier_key: String,
    pub name: String,
    /// Eight lowercase hexadecimal digits, as in the verifier key.
    pub key_id: String,
    pub created_at: String,
    /// When a newer key replaced it; `null` for the active key.
    pub retired_at: Option<String>,
    /// Until when a replaced key still signs next to the active one.
    pub overlap_until: Option<String>,
    /// Whether this is the key that signs now, and is published at `GET /v1/checkpoint-key`.
    pub active: bool,
    /// Whether new checkpoints carry its signature: the active key, and a replaced key in its overlap.
    pub signing: bool,
}

/// The answer to `GET /v1/checkpoint-keys`, oldest key first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointKeyList {
    pub data: Vec<CheckpointKeyInfo>,
}

/// The body of `POST /v1/checkpoint-key/rotate`; an empty body takes the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateCheckpointKeyRequest {
    /// How long the replaced key keeps signing next to the new one: a number of seconds, or a duration
    /// such as `90s`, `30m`, `24h`, `7d` or `1h30m`. Defaults to 24 hours.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub overlap: Option<String>,
}

/// The answer to `POST /v1/checkpoint-key/rotate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotatedCheckpointKey {
    /// The new active key's verifier key.
    pub verifier_key: String,
    /// The verifier key of the key it replaced, which signs next to it until `overlap_until`.
    pub previous_verifier_key: String,
    pub rotated_at: String,
    pub overlap_until: String,
    /// The `checkpoint_key.rotated` event in the `_platform` organisation that records the rotation.
    pub event_id: Uuid,
}

/// An organisation as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgInfo {
    pub id: String,
    pub name: String,
    pub plan: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

/// `POST /v1/orgs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

/// `PATCH /v1/orgs/{org}`: the fields to change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrgRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectInfo {
    pub organization_id: String,
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /v1/orgs/{org}/projects`; `PATCH` takes `name` only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub organization_id: String,
    pub email: String,
    pub name: Option<String>,
    /// `owner`, `admin`, `project_admin`, `member` or `viewer`.
    pub role: String,
    /// The projects a `project_admin` administers.
    pub projects: Vec<String>,
    /// `invited` or `active`.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /v1/orgs/{org}/members` (all but `email` optional on `PATCH .../members/{email}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<Vec<String>>,
    /// `invited` (the default: an invitation) or `active` (added directly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A list answer of the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
}
