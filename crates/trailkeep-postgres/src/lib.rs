//! Trailkeep's PostgreSQL store: several Trailkeep nodes on one database, with the same behaviour as the
//! embedded SQLite engine (the same conformance suite runs against both).
//!
//! Each node has one writer task that group-commits every write ([`writer`]), a pool of connections for
//! reads ([`read`]), and two followers that one node of the deployment at a time runs, elected through
//! advisory locks ([`follow`]): the sealer, which builds each organisation's Merkle tree and signs its
//! checkpoints ([`ledger`]), and the full-text indexer ([`indexer`]). Retention's deletion runs in the
//! writer, one bounded pass at a time ([`sweep`]). The schema, its migrations and its row-level security
//! are in [`schema`].
//!
//! The store connects as a role that owns nothing and cannot bypass row-level security; every
//! transaction names the organisations it may see in `trailkeep.org`. Migrations run as the owner, from
//! [`PostgresConfig::with_migrations`] or `trailkeep migrate`.
//!
//! **Boundary:** this crate is the only place (with its SQLite sibling) that speaks SQL.

pub mod admin;
pub mod exports;
pub mod follow;
pub mod indexer;
pub mod ledger;
pub mod read;
pub mod row;
pub mod schema;
pub mod sessions;
pub mod sweep;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod tls;
pub mod writer;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use trailkeep_core::merkle::{Hash, NodeId};
use trailkeep_core::{Event, NewEvent, OrgId, ProjectId};
use trailkeep_store::orgs::{AdminChange, AdminError, AdminWrite, MemberRecord, OrgRecord, ProjectRecord};
use trailkeep_store::sessions::{FoundSession, OperatorRecord, PortalLinkRecord, SessionRecord, SessionStart};
use trailkeep_store::{
    ApiKeyRecord, AppendError, AppendOutcome, AppendRequest, EventPage, EventQuery, Permission, ReadScope, Receipt,
    SealedEvent, Store, StoreError, StoredCheckpoint,
};
use uuid::Uuid;

pub use ledger::Sealing;
pub use tls::{Endpoint, TlsError};
pub use writer::GroupLimits;

use crate::sessions::{SessionChange, SessionWrite};
use crate::writer::{WriteOp, Writer};

/// How to reach the database and how the store runs on it.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// The store's own role: owns nothing, cannot bypass row-level security.
    pub service: tokio_postgres::Config,
    /// The role that owns the schema, to migrate as before starting; `None` to only check that the
    /// database is migrated.
    pub owner: Option<tokio_postgres::Config>,
    /// Connections in the read pool.
    pub read_connections: usize,
    /// Write requests that may wait for the writer; beyond this appends answer `Overloaded`.
    pub queue_capacity: usize,
    /// The most requests and events one group commit takes on.
    pub group: GroupLimits,
    /// How checkpoints are signed; without it, no tree is built and no checkpoint issued.
    pub sealing: Option<Sealing>,
    /// PEM certificates to verify the server's TLS certificate against, instead of the system's roots
    /// (for connection strings with `sslmode=require`; see [`tls`]).
    pub ca: Option<std::path::PathBuf>,
}

impl PostgresConfig {
    pub fn new(service: tokio_postgres::Config) -> PostgresConfig {
        PostgresConfig {
            service,
            owner: None,
            read_connections: 8,
            queue_capacity: 1024,
            group: GroupLimits { max_ops: 1024, max_events: 20_000 },
            sealing: None,
            ca: None,
        }
    }

    /// Migrates as `owner` before starting.
    pub fn with_migrations(mut self, owner: tokio_postgres::Config) -> PostgresConfig {
        self.owner = Some(owner);
        self
    }

    pub fn with_sealing(mut self, sealing: Sealing) -> PostgresConfig {
        self.sealing = Some(sealing);
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot connect to PostgreSQL as {role}: {source}")]
    Connect { role: String, source: tokio_postgres::Error },
    #[error(transparent)]
    Migrate(#[from] schema::MigrateError),
    #[error(transparent)]
    Check(#[from] schema::CheckError),
    #[error("the service connection names no user")]
    NoUser,
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Why a follower's step failed.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Sql(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Damaged(String),
    #[error("signing a checkpoint failed: {0}")]
    Sign(String),
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `config` with the session settings every connection of the store uses: the schema on the search path,
/// and plans made for each statement's own values.
fn session_config(config: &tokio_postgres::Config) -> tokio_postgres::Config {
    let mut config = config.clone();
    let ours = format!("-c search_path={} -c plan_cache_mode=force_custom_plan", schema::SCHEMA);
    let options = match config.get_options() {
        Some(theirs) if !theirs.is_empty() => format!("{theirs} {ours}"),
        _ => ours,
    };
    config.options(&options);
    if config.get_application_name().is_none() {
        config.application_name("trailkeep");
    }
    config
}

/// Applies the migrations as `owner` (over TLS verified against `ca` when its string asks for TLS),
/// granting `service_role` what the store needs; what `trailkeep migrate` runs.
pub async fn migrate(
    owner: &tokio_postgres::Config,
    ca: Option<&std::path::Path>,
    service_role: &str,
) -> Result<i32, OpenError> {
    let role = owner.get_user().unwrap_or_default().to_owned();
    let owner = Endpoint::new(owner.clone(), ca)?;
    let client = owner.connect().await.map_err(|source| OpenError::Connect { role, source })?;
    Ok(schema::migrate(&client, service_role).await?)
}

/// The PostgreSQL [`Store`].
pub struct PostgresStore {
    queue: RwLock<Option<mpsc::Sender<WriteOp>>>,
    pool: deadpool_postgres::Pool,
    writer: Mutex<Option<JoinHandle<()>>>,
    followers: Mutex<Vec<JoinHandle<()>>>,
    stop: watch::Sender<bool>,
}

impl PostgresStore {
    /// Migrates (when an owner is configured), checks the database and the role, and starts the writer
    /// and the followers on the current runtime.
    pub async fn open(config: &PostgresConfig) -> Result<PostgresStore, OpenError> {
        let service = Endpoint::new(session_config(&config.service), config.ca.as_deref())?;
        let service_role = service.config.get_user().ok_or(OpenError::NoUser)?.to_owned();
        if let Some(owner) = &config.owner {
            migrate(owner, config.ca.as_deref(), &service_role).await?;
        }
        let check =
            service.connect().await.map_err(|source| OpenError::Connect { role: service_role.clone(), source })?;
        schema::check(&check).await?;
        drop(check);

        let pool = deadpool_postgres::Pool::builder(service.pool_manager())
            .max_size(config.read_connections.max(1))
            .build()
            .map_err(|e| OpenError::Pool(e.to_string()))?;

        let (stop, stopped) = watch::channel(false);
        let mut wakes = Vec::new();
        let mut followers = Vec::new();
        let index_wake = Arc::new(Notify::new());
        wakes.push(index_wake.clone());
        followers.push(tokio::spawn(follow::follow(
            indexer::Indexer,
            service.clone(),
            follow::Pace {
                batch: 5000,
                idle_wait: Duration::from_millis(250),
                backoff: Duration::from_millis(500),
                settle: Duration::ZERO,
            },
            index_wake,
            stopped.clone(),
        )));
        if let Some(sealing) = &config.sealing {
            let seal_wake = Arc::new(Notify::new());
            wakes.push(seal_wake.clone());
            followers.push(tokio::spawn(follow::follow(
                ledger::Sealer::new(sealing.clone()),
                service.clone(),
                follow::Pace {
                    batch: ledger::BATCH,
                    idle_wait: Duration::from_millis(100),
                    backoff: Duration::from_secs(1),
                    // Checkpoints are due only every CHECKPOINT_INTERVAL: sealing in fewer, larger
                    // transactions costs the database less than one per commit.
                    settle: Duration::from_millis(100),
                },
                seal_wake,
                stopped,
            )));
        }
        let writer = Writer::new(service, config.group, wakes);
        let (queue_tx, queue_rx) = mpsc::channel(config.queue_capacity.max(1));
        let writer = tokio::spawn(writer.run(queue_rx));
        Ok(PostgresStore {
            queue: RwLock::new(Some(queue_tx)),
            pool,
            writer: Mutex::new(Some(writer)),
            followers: Mutex::new(followers),
            stop,
        })
    }

    /// The plan of the statement [`Store::list_events`] runs for `query` in `scope`, as `EXPLAIN
    /// (ANALYZE, BUFFERS)` shows it, after the statement's text: for studying plans on a large store
    /// (`trailkeep-bench --pg-plans`). Runs in the same kind of transaction as the read, with the same
    /// settings and values. `None` when the query reads nothing.
    pub async fn explain_events(&self, scope: &ReadScope, query: &EventQuery) -> Result<Option<String>, StoreError> {
        let (scope, query) = (scope.clone(), query.clone());
        let (org, projects) = (scope.org.to_string(), projects_setting(&scope));
        self.read(&org, &projects, move |tx| {
            Box::pin(async move { read::explain_events(tx, &scope, &query).await.map_err(read_err) })
        })
        .await
    }

    fn sender(&self) -> Option<mpsc::Sender<WriteOp>> {
        self.queue.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn submit<T>(&self, op: WriteOp, rx: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
        let sender = self.sender().ok_or_else(|| StoreError("the store is shut down".into()))?;
        sender.send(op).await.map_err(|_| StoreError("the writer has stopped".into()))?;
        rx.await.map_err(|_| StoreError("the writer stopped before answering".into()))?
    }

    async fn session_write(&self, change: SessionChange, audit: Option<NewEvent>) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(WriteOp::Session(SessionWrite { change, audit }, tx), rx).await
    }

    /// Runs `f` in a read-only transaction whose row-level security admits `orgs` (a comma list) and, for
    /// events, `projects` (`*` for all).
    async fn read<T, F>(&self, orgs: &str, projects: &str, f: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(&'t tokio_postgres::Transaction<'t>) -> futures::future::BoxFuture<'t, Result<T, StoreError>>,
    {
        let mut client = self.pool.get().await.map_err(|e| StoreError(format!("no database connection: {e}")))?;
        let tx = client.build_transaction().read_only(true).start().await.map_err(sql)?;
        tx.execute(
            "SELECT set_config('trailkeep.org', $1, true), set_config('trailkeep.projects', $2, true)",
            &[&orgs, &projects],
        )
        .await
        .map_err(sql)?;
        let result = f(&tx).await?;
        tx.commit().await.map_err(sql)?;
        Ok(result)
    }

    async fn read_org<T, F>(&self, org: &str, f: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(&'t tokio_postgres::Transaction<'t>) -> futures::future::BoxFuture<'t, Result<T, StoreError>>,
    {
        self.read(org, "*", f).await
    }

    /// Runs `f` on a pooled connection outside any tenant: only the cross-tenant functions see rows.
    async fn platform<T>(
        &self,
        f: impl for<'c> FnOnce(&'c tokio_postgres::Client) -> futures::future::BoxFuture<'c, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let client = self.pool.get().await.map_err(|e| StoreError(format!("no database connection: {e}")))?;
        f(&client).await
    }
}

fn sql(e: tokio_postgres::Error) -> StoreError {
    StoreError(e.as_db_error().map_or_else(|| e.to_string(), |d| d.to_string()))
}

fn follow_err(e: FollowError) -> StoreError {
    match e {
        FollowError::Sql(e) => sql(e),
        other => StoreError(other.to_string()),
    }
}

fn read_err(e: read::ReadError) -> StoreError {
    match e {
        read::ReadError::Sql(e) => sql(e),
        other => StoreError(other.to_string()),
    }
}

fn damaged(e: admin::Damaged) -> StoreError {
    StoreError(e.to_string())
}

fn key_from_row(row: &tokio_postgres::Row) -> ApiKeyRecord {
    let hash: Vec<u8> = row.get("hash");
    let permissions: &str = row.get("permissions");
    let org: Option<&str> = row.get("org_id");
    ApiKeyRecord {
        id: row.get("id"),
        name: row.get("name"),
        prefix: row.get("prefix"),
        hash: hash.try_into().unwrap_or([0; 32]),
        org: org.and_then(|o| OrgId::parse(o).ok()),
        permissions: permissions.split(',').filter_map(Permission::parse).collect(),
        created_at: row.get("created_at"),
        revoked_at: row.get("revoked_at"),
    }
}

/// The comma list of a scope's projects for `trailkeep.projects`: `*` for the whole organisation.
fn projects_setting(scope: &ReadScope) -> String {
    match &scope.projects {
        None => "*".to_owned(),
        Some(projects) => projects.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(","),
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        let sender = self.sender().ok_or_else(|| AppendError::Failed("the store is shut down".into()))?;
        let (tx, rx) = oneshot::channel();
        match sender.try_send(WriteOp::Append(request, tx)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("trailkeep_ingest_rejected_total", "reason" => "queue_full").increment(1);
                return Err(AppendError::Overloaded { retry_after: Duration::from_secs(1) });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(AppendError::Failed("the writer has stopped".into()));
            }
        }
        rx.await.map_err(|_| AppendError::Failed("the writer stopped before answering".into()))?
    }

    async fn list_events(&self, scope: &ReadScope, query: &EventQuery) -> Result<EventPage, StoreError> {
        let (scope, query) = (scope.clone(), query.clone());
        let (org, projects) = (scope.org.to_string(), projects_setting(&scope));
        self.read(&org, &projects, move |tx| {
            Box::pin(async move { read::list_events(tx, &scope, &query).await.map_err(read_err) })
        })
        .await
    }

    async fn get_event(&self, scope: &ReadScope, id: Uuid) -> Result<Option<Event>, StoreError> {
        let scope = scope.clone();
        let (org, projects) = (scope.org.to_string(), projects_setting(&scope));
        self.read(&org, &projects, move |tx| {
            Box::pin(async move { read::get_event(tx, &scope, id).await.map_err(read_err) })
        })
        .await
    }

    async fn create_api_key(&self, key: ApiKeyRecord, audit: Option<NewEvent>) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(WriteOp::CreateKey(key, audit, tx), rx).await
    }

    async fn revoke_api_key(&self, id: &str, at: i64, audit: Option<NewEvent>) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(WriteOp::RevokeKey(id.to_owned(), at, audit, tx), rx).await
    }

    async fn find_api_key(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError> {
        let hash = hash.to_vec();
        self.platform(move |c| {
            Box::pin(async move {
                let row = c.query_opt("SELECT * FROM tk_api_key_by_hash($1)", &[&hash]).await.map_err(sql)?;
                Ok(row.as_ref().map(key_from_row))
            })
        })
        .await
    }

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let id = id.to_owned();
        self.platform(move |c| {
            Box::pin(async move {
                let row = c.query_opt("SELECT * FROM tk_api_key_by_id($1)", &[&id]).await.map_err(sql)?;
                Ok(row.as_ref().map(key_from_row))
            })
        })
        .await
    }

    async fn list_api_keys(&self, org: Option<&OrgId>) -> Result<Vec<ApiKeyRecord>, StoreError> {
        match org {
            None => {
                self.platform(|c| {
                    Box::pin(async move {
                        let rows = c.query("SELECT * FROM tk_api_keys()", &[]).await.map_err(sql)?;
                        Ok(rows.iter().map(key_from_row).collect())
                    })
                })
                .await
            }
            Some(org) => {
                let org = org.to_string();
                self.read_org(&org.clone(), move |tx| {
                    Box::pin(async move {
                        let rows = tx
                            .query(
                                "SELECT * FROM api_keys WHERE org_id = $1 ORDER BY created_at DESC, id DESC",
                                &[&org],
                            )
                            .await
                            .map_err(sql)?;
                        Ok(rows.iter().map(key_from_row).collect())
                    })
                })
                .await
            }
        }
    }

    async fn latest_checkpoint(&self, org: &OrgId) -> Result<Option<StoredCheckpoint>, StoreError> {
        let org = org.to_string();
        self.read_org(&org.clone(), move |tx| {
            Box::pin(async move { ledger::read_checkpoint(tx, &org, None).await.map_err(follow_err) })
        })
        .await
    }

    async fn checkpoint_at(&self, org: &OrgId, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        let org = org.to_string();
        self.read_org(&org.clone(), move |tx| {
            Box::pin(async move { ledger::read_checkpoint(tx, &org, Some(size)).await.map_err(follow_err) })
        })
        .await
    }

    async fn tree_nodes(&self, org: &OrgId, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, StoreError> {
        let (org, ids) = (org.to_string(), ids.to_vec());
        self.read_org(&org.clone(), move |tx| {
            Box::pin(async move { ledger::tree_nodes(tx, &org, &ids).await.map_err(follow_err) })
        })
        .await
    }

    async fn receipt(&self, org: &OrgId, id: Uuid) -> Result<Option<Receipt>, StoreError> {
        let org = org.to_string();
        self.read_org(&org.clone(), move |tx| {
            Box::pin(async move { ledger::read_receipt(tx, &org, id).await.map_err(follow_err) })
        })
        .await
    }

    async fn sealed_events(&self, org: &OrgId, from: u64, to: u64) -> Result<Vec<SealedEvent>, StoreError> {
        let org = org.to_string();
        self.read_org(&org.clone(), move |tx| {
            Box::pin(async move { ledger::read_sealed(tx, &org, from, to).await.map_err(follow_err) })
        })
        .await
    }

    async fn apply_admin(&self, change: AdminChange, audit: NewEvent) -> Result<(), AdminError> {
        let (tx, rx) = oneshot::channel();
        let sender = self.sender().ok_or_else(|| AdminError::Failed("the store is shut down".into()))?;
        sender
            .send(WriteOp::Admin(AdminWrite { change, audit }, tx))
            .await
            .map_err(|_| AdminError::Failed("the writer has stopped".into()))?;
        rx.await.map_err(|_| AdminError::Failed("the writer stopped before answering".into()))?
    }

    async fn get_org(&self, id: &OrgId) -> Result<Option<OrgRecord>, StoreError> {
        let id = id.to_string();
        self.read_org(&id.clone(), move |tx| {
            Box::pin(async move {
                let row = tx.query_opt("SELECT * FROM orgs WHERE id = $1", &[&id]).await.map_err(sql)?;
                row.as_ref().map(admin::org_from_row).transpose().map_err(damaged)
            })
        })
        .await
    }

    async fn list_orgs(&self, after: Option<&OrgId>, limit: usize) -> Result<Vec<OrgRecord>, StoreError> {
        let after = after.map_or(String::new(), |o| o.to_string());
        let limit = limit.min(i64::MAX as usize) as i64;
        self.platform(move |c| {
            Box::pin(async move {
                let rows = c.query("SELECT * FROM tk_live_orgs($1, $2)", &[&after, &limit]).await.map_err(sql)?;
                rows.iter().map(admin::org_from_row).collect::<Result<_, _>>().map_err(damaged)
            })
        })
        .await
    }

    async fn list_projects(&self, org: &OrgId) -> Result<Vec<ProjectRecord>, StoreError> {
        let org = org.to_string();
        self.read_org(&org.clone(), move |tx| {
            Box::pin(async move {
                let rows =
                    tx.query("SELECT * FROM projects WHERE org_id = $1 ORDER BY id", &[&org]).await.map_err(sql)?;
                rows.iter().map(admin::project_from_row).collect::<Result<_, _>>().map_err(damaged)
            })
        })
        .await
    }

    async fn get_project(&self, org: &OrgId, id: &ProjectId) -> Result<Option<ProjectRecord>, StoreError> {
        let (org, id) = (org.to_string(), id.to_string());
        self.read_org(&org.clone(), move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_opt("SELECT * FROM projects WHERE org_id = $1 AND id = $2", &[&org, &id])
                    .await
                    .map_err(sql)?;
                row.as_ref().map(admin::project_from_row).transpose().map_err(damaged)
            })
        })
        .await
    }

    async fn list_members(&self, org: &OrgId) -> Result<Vec<MemberRecord>, StoreError> {
        let org = org.to_string();
        self.read_org(&org.clone(), move |tx| {
            Box::pin(async move {
                let rows =
                    tx.query("SELECT * FROM members WHERE org_id = $1 ORDER BY email", &[&org]).await.map_err(sql)?;
                rows.iter().map(admin::member_from_row).collect::<Result<_, _>>().map_err(damaged)
            })
        })
        .await
    }

    async fn get_member(&self, org: &OrgId, email: &str) -> Result<Option<MemberRecord>, StoreError> {
        let (org, email) = (org.to_string(), email.to_owned());
        self.read_org(&org.clone(), move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_opt("SELECT * FROM members WHERE org_id = $1 AND email = $2", &[&org, &email])
                    .await
                    .map_err(sql)?;
                row.as_ref().map(admin::member_from_row).transpose().map_err(damaged)
            })
        })
        .await
    }

    // Retention

    async fn list_holds(&self, org: &OrgId) -> Result<Vec<trailkeep_store::retention::LegalHold>, StoreError> {
        let org = org.to_string();
        self.read_org(&org.clone(), move |tx| {
            Box::pin(async move {
                let rows = admin::list_holds(tx, &org).await.map_err(sql)?;
                rows.iter().map(admin::hold_from_row).collect::<Result<_, _>>().map_err(damaged)
            })
        })
        .await
    }

    async fn sweep(
        &self,
        request: trailkeep_store::retention::SweepRequest,
    ) -> Result<trailkeep_store::retention::SweepOutcome, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(WriteOp::Sweep(request, tx), rx).await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        if self.sender().is_none_or(|s| s.is_closed()) {
            return Err(StoreError("the writer has stopped".into()));
        }
        self.platform(|c| Box::pin(async move { c.execute("SELECT 1", &[]).await.map(|_| ()).map_err(sql) })).await
    }

    async fn shutdown(&self) {
        // Dropping the only sender lets the writer finish what is queued, then stop; the followers then
        // make their last pass.
        self.queue.write().unwrap_or_else(|p| p.into_inner()).take();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        let _ = self.stop.send(true);
        let followers = std::mem::take(&mut *self.followers.lock().unwrap_or_else(|p| p.into_inner()));
        for follower in followers {
            let _ = follower.await;
        }
        self.pool.close();
    }

    // Portal links, sessions and operators

    async fn create_portal_link(&self, link: PortalLinkRecord, audit: NewEvent) -> Result<(), StoreError> {
        self.session_write(SessionChange::CreateLink(link), Some(audit)).await.map(|_| ())
    }

    async fn find_portal_link(&self, hash: &[u8; 32]) -> Result<Option<PortalLinkRecord>, StoreError> {
        let hash = hash.to_vec();
        self.platform(move |c| {
            Box::pin(async move {
                let row = c.query_opt("SELECT * FROM tk_portal_link_by_hash($1)", &[&hash]).await.map_err(sql)?;
                row.as_ref().map(sessions::link_from_row).transpose().map_err(damaged)
            })
        })
        .await
    }

    async fn start_session(
        &self,
        session: SessionRecord,
        start: SessionStart,
        audit: NewEvent,
    ) -> Result<bool, StoreError> {
        self.session_write(SessionChange::Start(session, start), Some(audit)).await
    }

    async fn find_session(&self, hash: &[u8; 32]) -> Result<Option<FoundSession>, StoreError> {
        let hash = hash.to_vec();
        self.platform(move |c| {
            Box::pin(async move {
                let row = c.query_opt("SELECT * FROM tk_session_by_hash($1)", &[&hash]).await.map_err(sql)?;
                row.as_ref().map(sessions::found_session_from_row).transpose().map_err(damaged)
            })
        })
        .await
    }

    async fn end_session(&self, hash: &[u8; 32], at: i64, audit: Option<NewEvent>) -> Result<bool, StoreError> {
        self.session_write(SessionChange::End { hash: *hash, at }, audit).await
    }

    async fn create_operator(&self, operator: OperatorRecord, audit: NewEvent) -> Result<bool, StoreError> {
        self.session_write(SessionChange::CreateOperator(operator), Some(audit)).await
    }

    async fn find_operator(&self, email: &str) -> Result<Option<OperatorRecord>, StoreError> {
        let email = email.to_owned();
        self.read_org(trailkeep_core::ids::PLATFORM_ORG, move |tx| {
            Box::pin(async move {
                let row = tx.query_opt("SELECT * FROM operators WHERE email = $1", &[&email]).await.map_err(sql)?;
                Ok(row.as_ref().map(sessions::operator_from_row))
            })
        })
        .await
    }

    async fn list_operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        self.read_org(trailkeep_core::ids::PLATFORM_ORG, |tx| {
            Box::pin(async move {
                let rows = tx.query("SELECT * FROM operators ORDER BY created_at, id", &[]).await.map_err(sql)?;
                Ok(rows.iter().map(sessions::operator_from_row).collect())
            })
        })
        .await
    }

    // Export jobs and schedules

    async fn export_write(
        &self,
        change: trailkeep_store::exports::ExportChange,
        audit: Option<NewEvent>,
    ) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(WriteOp::Export(exports::ExportWrite { change, audit }, tx), rx).await
    }

    async fn get_export_job(
        &self,
        org: &OrgId,
        id: &str,
    ) -> Result<Option<trailkeep_store::exports::ExportJob>, StoreError> {
        let (org, id) = (org.to_string(), id.to_owned());
        self.read_org(&org.clone(), move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_opt("SELECT * FROM export_jobs WHERE org_id = $1 AND id = $2", &[&org, &id])
                    .await
                    .map_err(sql)?;
                row.as_ref().map(exports::job_from_row).transpose().map_err(damaged)
            })
        })
        .await
    }

    async fn list_export_jobs(
        &self,
        org: &OrgId,
        limit: usize,
    ) -> Result<Vec<trailkeep_store::exports::ExportJob>, StoreError> {
        let org = org.to_string();
        let limit = limit as i64;
        self.read_org(&org.clone(), move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT * FROM export_jobs WHERE org_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
                        &[&org, &limit],
                    )
                    .await
                    .map_err(sql)?;
                rows.iter().map(exports::job_from_row).collect::<Result<_, _>>().map_err(damaged)
            })
        })
        .await
    }

    async fn export_jobs_due(&self, now: i64) -> Result<Vec<trailkeep_store::exports::ExportJob>, StoreError> {
        self.platform(move |c| {
            Box::pin(async move {
                let rows = c.query("SELECT * FROM tk_export_jobs_due($1)", &[&now]).await.map_err(sql)?;
                rows.iter().map(exports::job_from_row).collect::<Result<_, _>>().map_err(damaged)
            })
        })
        .await
    }

    async fn export_jobs_finished_before(
        &self,
        before: i64,
    ) -> Result<Vec<trailkeep_store::exports::ExportJob>, StoreError> {
        self.platform(move |c| {
            Box::pin(async move {
                let rows =
                    c.query("SELECT * FROM tk_export_jobs_finished_before($1)", &[&before]).await.map_err(sql)?;
                rows.iter().map(exports::job_from_row).collect::<Result<_, _>>().map_err(damaged)
            })
        })
        .await
    }

    async fn list_export_schedules(
        &self,
        org: Option<&OrgId>,
    ) -> Result<Vec<trailkeep_store::exports::ExportSchedule>, StoreError> {
        match org {
            None => {
                self.platform(|c| {
                    Box::pin(async move {
                        let rows = c.query("SELECT * FROM tk_export_schedules()", &[]).await.map_err(sql)?;
                        rows.iter().map(exports::schedule_from_row).collect::<Result<_, _>>().map_err(damaged)
                    })
                })
                .await
            }
            Some(org) => {
                let org = org.to_string();
                self.read_org(&org.clone(), move |tx| {
                    Box::pin(async move {
                        let rows = tx
                            .query("SELECT * FROM export_schedules WHERE org_id = $1 ORDER BY created_at, id", &[&org])
                            .await
                            .map_err(sql)?;
                        rows.iter().map(exports::schedule_from_row).collect::<Result<_, _>>().map_err(damaged)
                    })
                })
                .await
            }
        }
    }

    // Dashboard aggregates

    async fn ai_totals(
        &self,
        scope: &ReadScope,
        filter: &trailkeep_core::Filter,
    ) -> Result<trailkeep_store::aggregates::AiTotals, StoreError> {
        let (scope, filter) = (scope.clone(), filter.clone());
        let (org, projects) = (scope.org.to_string(), projects_setting(&scope));
        self.read(&org, &projects, move |tx| {
            Box::pin(async move { read::ai_totals(tx, &scope, &filter).await.map_err(read_err) })
        })
        .await
    }
}
