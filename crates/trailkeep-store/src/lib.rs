//! The storage interface: what Trailkeep asks of any engine that keeps its logs.
//!
//! Handlers hold an `Arc<dyn Store>`; each engine (the embedded SQLite store today, PostgreSQL next)
//! implements [`Store`] and must pass the same conformance suite (`conformance` feature). Every method
//! that touches events takes the tenant — an [`OrgId`] inside a [`ReadScope`] or inside each event — so
//! no query can be unscoped.
//!
//! **Invariant:** an `append` that returns `Ok` has been durably committed: each event has its `seq`, the
//! organisation's sequence has no gap, and a crash after the return loses nothing.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use trailkeep_core::cursor::{Cursor, Order};
use trailkeep_core::merkle::{Hash, NodeId};
use trailkeep_core::{Event, Filter, NewEvent, OrgId, ProjectId};
use uuid::Uuid;

pub mod aggregates;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod exports;
pub mod orgs;
pub mod retention;
pub mod sessions;

/// A claim that a request is a retry of an earlier one: the same `key` from the same `scope` (the API
/// key that sent it) with the same body `fingerprint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub scope: String,
    pub key: String,
    pub fingerprint: [u8; 32],
}

/// A batch to append, all or nothing.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub events: Vec<NewEvent>,
    pub idempotency: Option<IdempotencyClaim>,
}

/// Where one appended event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub id: Uuid,
    pub seq: u64,
    pub received_at: i64,
}

/// The acknowledgement of a batch, one [`Ack`] per event in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    pub acks: Vec<Ack>,
    /// True when an idempotency key matched an earlier request and nothing new was stored.
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("idempotency key was already used with a different request body")]
    IdempotencyConflict,
    #[error("the write queue is full")]
    Overloaded { retry_after: Duration },
    #[error("store failure: {0}")]
    Failed(String),
    /// The store cannot write for now — its disk is full, its data directory read-only, its database
    /// unreachable — and stored nothing of the request; the same request may succeed later. The message
    /// says what to fix.
    #[error("the store cannot write: {0}")]
    Unavailable(String),
}

/// A store failure other than bad input: the disk, the database, a closed store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store failure: {0}")]
pub struct StoreError(pub String);

/// Whose events a reader may see: one organisation, optionally narrowed to some of its projects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadScope {
    pub org: OrgId,
    /// `None` is the whole organisation; `Some` only events of these projects.
    pub projects: Option<Vec<ProjectId>>,
}

impl ReadScope {
    pub fn org(org: OrgId) -> ReadScope {
        ReadScope { org, projects: None }
    }
}

/// One page request over an organisation's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    pub filter: Filter,
    pub order: Order,
    /// 1 to 1000.
    pub limit: usize,
    /// Resume strictly after this position.
    pub after: Option<Cursor>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Present when more events may follow.
    pub next: Option<Cursor>,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "events:write")]
    EventsWrite,
    #[serde(rename = "events:read")]
    EventsRead,
    #[serde(rename = "admin")]
    Admin,
}

impl Permission {
    pub const ALL: [Permission; 3] = [Permission::EventsWrite, Permission::EventsRead, Permission::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::EventsWrite => "events:write",
            Permission::EventsRead => "events:read",
            Permission::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// An API key as stored: never the secret, only its SHA-256 hash and a short displayable prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    /// The first characters of the secret, to recognise a key in lists.
    pub prefix: String,
    pub hash: [u8; 32],
    /// `None` for a platform key, which may act on every organisation.
    pub org: Option<OrgId>,
    pub permissions: Vec<Permission>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl ApiKeyRecord {
    pub fn allows(&self, permission: Permission) -> bool {
        self.permissions.contains(&Permission::Admin) || self.permissions.contains(&permission)
    }

    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// A signed checkpoint of one organisation's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub root: Hash,
    /// The checkpoint as a signed note (C2SP tlog-checkpoint body and signature lines).
    pub note: String,
    pub created_at: i64,
}

/// What the ledger keeps of one sealed event, apart from its payload: enough to prove it belongs to the
/// log even after the payload is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub seq: u64,
    pub id: Uuid,
    pub received_at: i64,
    /// The event's Merkle leaf hash: leaf `seq - 1` of its organisation's tree.
    pub leaf: Hash,
}

/// A sealed event as an export reads it: its receipt and the payload stored for its seq now — the
/// event's JSON exactly as kept, or `None` when no event row holds that seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEvent {
    pub receipt: Receipt,
    pub payload: Option<String>,
    /// When retention deleted the payload: the seq of the `retention.deleted` event that records it.
    pub pruned_by: Option<u64>,
}

/// The engine behind the service.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Appends a batch atomically and durably, honouring idempotency claims and client-supplied ids
    /// (an id already stored for the organisation is acknowledged with its original place, not stored
    /// again).
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError>;

    /// One page of the scope's timeline matching the query.
    async fn list_events(&self, scope: &ReadScope, query: &EventQuery) -> Result<EventPage, StoreError>;

    /// One event by id, if it belongs to the scope.
    async fn get_event(&self, scope: &ReadScope, id: Uuid) -> Result<Option<Event>, StoreError>;

    /// Stores a new key together with the event that records its creation, atomically.
    async fn create_api_key(&self, key: ApiKeyRecord, audit: Option<NewEvent>) -> Result<(), StoreError>;

    /// Marks a key revoked at `at` together with the event that records it; false when no active key
    /// has that id.
    async fn revoke_api_key(&self, id: &str, at: i64, audit: Option<NewEvent>) -> Result<bool, StoreError>;

    /// The key whose secret hashes to `hash`, revoked or not.
    async fn find_api_key(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError>;

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Keys of one organisation, or every key when `org` is `None`; newest first.
    async fn list_api_keys(&self, org: Option<&OrgId>) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// The newest signed checkpoint of the organisation's tree, if one was issued.
    async fn latest_checkpoint(&self, org: &OrgId) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// The checkpoint issued for exactly `size` leaves, if there was one.
    async fn checkpoint_at(&self, org: &OrgId, size: u64) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Hashes of perfect subtrees of the organisation's tree, in the order asked for; `None` where the
    /// store holds no such node (not sealed yet, or never).
    async fn tree_nodes(&self, org: &OrgId, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, StoreError>;

    /// The receipt of the event with this id, once it is sealed.
    async fn receipt(&self, org: &OrgId, id: Uuid) -> Result<Option<Receipt>, StoreError>;

    /// The sealed events of seq `from..=to` in seq order, each receipt with the payloads stored under its
    /// seq: one normally, none when the event row is gone, several if rows were forged. Callers keep the
    /// range small enough to hold in memory.
    async fn sealed_events(&self, org: &OrgId, from: u64, to: u64) -> Result<Vec<SealedEvent>, StoreError>;

    // Organisations, projects and members

    /// Applies one change together with the event that records it, atomically.
    async fn apply_admin(&self, change: orgs::AdminChange, audit: NewEvent) -> Result<(), orgs::AdminError>;

    /// The organisation, deleted or not.
    async fn get_org(&self, id: &OrgId) -> Result<Option<orgs::OrgRecord>, StoreError>;

    /// Live organisations in id order (the reserved `_` ones left out), up to `limit` after `after`.
    async fn list_orgs(&self, after: Option<&OrgId>, limit: usize) -> Result<Vec<orgs::OrgRecord>, StoreError>;

    async fn list_projects(&self, org: &OrgId) -> Result<Vec<orgs::ProjectRecord>, StoreError>;

    async fn get_project(&self, org: &OrgId, id: &ProjectId) -> Result<Option<orgs::ProjectRecord>, StoreError>;

    async fn list_members(&self, org: &OrgId) -> Result<Vec<orgs::MemberRecord>, StoreError>;

    /// The member with this (lowercase) email.
    async fn get_member(&self, org: &OrgId, email: &str) -> Result<Option<orgs::MemberRecord>, StoreError>;

    // Retention

    /// Legal holds of the organisation, lifted ones included, oldest first.
    async fn list_holds(&self, org: &OrgId) -> Result<Vec<retention::LegalHold>, StoreError>;

    /// Deletes up to one batch of the organisation's expired, sealed, unheld events, recording the pass
    /// as a `retention.deleted` event in the same transaction.
    async fn sweep(&self, request: retention::SweepRequest) -> Result<retention::SweepOutcome, StoreError>;

    /// Whether the store answers reads and accepts writes.
    async fn ready(&self) -> Result<(), StoreError>;

    /// Commits outstanding work and stops background tasks; appends after this fail.
    async fn shutdown(&self);

    // Portal links, sessions and operators

    /// Stores a new portal link together with the event that records it, atomically.
    async fn create_portal_link(&self, link: sessions::PortalLinkRecord, audit: NewEvent) -> Result<(), StoreError>;

    /// The portal link whose token hashes to `hash`, used or not, expired or not.
    async fn find_portal_link(&self, hash: &[u8; 32]) -> Result<Option<sessions::PortalLinkRecord>, StoreError>;

    /// Starts a session together with the event that records it, atomically. From a portal link, the link
    /// is consumed in the same transaction; false (and nothing written) when it was used already or has
    /// expired, so a link starts at most one session however many redeem it at once.
    async fn start_session(
        &self,
        session: sessions::SessionRecord,
        start: sessions::SessionStart,
        audit: NewEvent,
    ) -> Result<bool, StoreError>;

    /// The session whose cookie value hashes to `hash`, ended or not.
    async fn find_session(&self, hash: &[u8; 32]) -> Result<Option<sessions::FoundSession>, StoreError>;

    /// Ends a live session at `at` together with the event that records it; false when no live session
    /// has that hash.
    async fn end_session(&self, hash: &[u8; 32], at: i64, audit: Option<NewEvent>) -> Result<bool, StoreError>;

    /// Stores a new operator account with the event that records it; false (nothing written) when the
    /// email is taken.
    async fn create_operator(&self, operator: sessions::OperatorRecord, audit: NewEvent) -> Result<bool, StoreError>;

    /// The operator with this (lower-case) email.
    async fn find_operator(&self, email: &str) -> Result<Option<sessions::OperatorRecord>, StoreError>;

    /// Every operator account, oldest first.
    async fn list_operators(&self) -> Result<Vec<sessions::OperatorRecord>, StoreError>;

    // Export jobs and schedules

    /// Applies one change to export jobs or schedules, with the event that records it (when given) in
    /// the same transaction; false (and nothing written) when the change found nothing to change.
    async fn export_write(&self, change: exports::ExportChange, audit: Option<NewEvent>) -> Result<bool, StoreError>;

    /// The organisation's job with this id.
    async fn get_export_job(&self, org: &OrgId, id: &str) -> Result<Option<exports::ExportJob>, StoreError>;

    /// The organisation's jobs, newest first, at most `limit`.
    async fn list_export_jobs(&self, org: &OrgId, limit: usize) -> Result<Vec<exports::ExportJob>, StoreError>;

    /// Every organisation's jobs that are queued, or running with a lease that lapsed before `now`,
    /// oldest first: the work waiting for a worker.
    async fn export_jobs_due(&self, now: i64) -> Result<Vec<exports::ExportJob>, StoreError>;

    /// Every organisation's jobs that finished before `before`, for the clean-up of old files.
    async fn export_jobs_finished_before(&self, before: i64) -> Result<Vec<exports::ExportJob>, StoreError>;

    /// The organisation's schedules, or every organisation's when `org` is `None`, oldest first.
    async fn list_export_schedules(&self, org: Option<&OrgId>) -> Result<Vec<exports::ExportSchedule>, StoreError>;

    // ---- Dashboard aggregates (issue 5) ----
    // Each engine implements these; the SQLite store in `trailkeep-sqlite/src/aggregates.rs`.

    /// Totals (requests, tokens, cost) of the AI requests in the scope that `filter` selects: the events
    /// that carry an `ai` record, within the scope's projects when it names some.
    async fn ai_totals(&self, scope: &ReadScope, filter: &Filter) -> Result<aggregates::AiTotals, StoreError>;
}
