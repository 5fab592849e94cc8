//! Trailkeep's embedded store: everything in one data directory, on SQLite.
//!
//! `trailkeep.db` holds events, keys and idempotency records, in WAL mode with `synchronous=FULL`, so a
//! commit is on disk before it is acknowledged. One writer thread group-commits every write
//! ([`writer`]); a small pool of read connections serves queries ([`read`]); a second thread keeps the
//! full-text index in `search.db` up to date off the commit path ([`indexer`]).
//!
//! **Boundary:** this crate is the only place (with its PostgreSQL sibling) that speaks SQL.

mod admin;
mod aggregates;
mod exports;
mod follow;
pub mod indexer;
pub mod ledger;
pub mod read;
pub mod row;
pub mod schema;
mod sessions;
mod sweep;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tokio::sync::{Semaphore, mpsc, oneshot};
use trailkeep_core::merkle::{Hash, NodeId, NodeSource};
use trailkeep_core::{Event, NewEvent, OrgId, ProjectId};
use trailkeep_store::orgs::{AdminChange, AdminError, AdminWrite, MemberRecord, OrgRecord, ProjectRecord};
use trailkeep_store::sessions::{FoundSession, OperatorRecord, PortalLinkRecord, SessionRecord, SessionStart};
use trailkeep_store::{
    ApiKeyRecord, AppendError, AppendOutcome, AppendRequest, EventPage, EventQuery, Permission, ReadScope, Receipt,
    SealedEvent, Store, StoreError, StoredCheckpoint,
};
use uuid::Uuid;

use crate::sessions::{SessionChange, SessionWrite};
use crate::writer::{GroupLimits, WriteOp, Writer};

/// Where and how the store keeps its files.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub data_dir: PathBuf,
    /// Read connections, each on a blocking thread while in use.
    pub read_connections: usize,
    /// Write requests that may wait for the writer; beyond this appends answer `Overloaded`.
    pub queue_capacity: usize,
    /// The most requests and events one group commit takes on.
    pub group: GroupLimits,
    /// How checkpoints are signed; without it, no tree is built and no checkpoint issued.
    pub sealing: Option<ledger::Sealing>,
}

impl SqliteConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> SqliteConfig {
        SqliteConfig {
            data_dir: data_dir.into(),
            read_connections: 4,
            queue_capacity: 1024,
            group: GroupLimits { max_ops: 1024, max_events: 20_000 },
            sealing: None,
        }
    }

    pub fn with_sealing(mut self, sealing: ledger::Sealing) -> SqliteConfig {
        self.sealing = Some(sealing);
        self
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.data_dir.join("ledger.db")
    }

    pub fn main_path(&self) -> PathBuf {
        self.data_dir.join("trailkeep.db")
    }

    pub fn search_path(&self) -> PathBuf {
        self.data_dir.join("search.db")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open {path}: {source}{}", hint(source))]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error(transparent)]
    Migrate(#[from] schema::MigrateError),
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
}

/// What to do about an error opening a database file, when there is something to do.
fn hint(e: &rusqlite::Error) -> &'static str {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ReadOnly) => {
            " (the data directory or its files are read-only: the service must be able to write there)"
        }
        Some(rusqlite::ErrorCode::DiskFull) => " (the disk is full: free space on the data directory's disk)",
        Some(rusqlite::ErrorCode::CannotOpen) => " (check that the data directory exists and may be written)",
        _ => "",
    }
}

/// Opens the write connection with the durability settings every commit relies on.
pub fn open_write_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    // The nine indexes insert at scattered points: keep their pages in memory rather than re-reading them.
    conn.pragma_update(None, "cache_size", -262_144)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Planner statistics, sampled so that refreshing them stays cheap on a large table.
    conn.pragma_update(None, "analysis_limit", 1000)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

struct ReadPool {
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl ReadPool {
    async fn with<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _permit = self.permits.acquire().await.map_err(|_| StoreError("the store is closed".into()))?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some(conn) = conn else { return Err(StoreError("no idle read connection".into())) };
            let result = f(&conn).map_err(|e| StoreError(e.to_string()));
            pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            result
        })
        .await
        .map_err(|e| StoreError(format!("read task failed: {e}")))?
    }
}

/// The SQLite [`Store`].
pub struct SqliteStore {
    queue: RwLock<Option<mpsc::Sender<WriteOp>>>,
    reads: std::sync::Arc<ReadPool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl SqliteStore {
    /// Opens (creating and migrating as needed) the store in `config.data_dir` and starts its threads.
    pub fn open(config: &SqliteConfig) -> Result<SqliteStore, OpenError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| OpenError::DataDir { path: config.data_dir.clone(), source })?;
        let main_path = config.main_path();
        let search_path = config.search_path();
        let open_err = |path: &Path| {
            let path = path.to_owned();
            move |source| OpenError::Open { path, source }
        };

        let mut write = open_write_connection(&main_path).map_err(open_err(&main_path))?;
        schema::migrate_main(&mut write)?;
        let mut search = Connection::open(&search_path).map_err(open_err(&search_path))?;
        search.pragma_update(None, "journal_mode", "WAL").map_err(open_err(&search_path))?;
        schema::migrate_search(&mut search)?;
        drop(search);
        let ledger_path = config.ledger_path();
        let mut ledger = Connection::open(&ledger_path).map_err(open_err(&ledger_path))?;
        ledger.pragma_update(None, "journal_mode", "WAL").map_err(open_err(&ledger_path))?;
        schema::migrate_ledger(&mut ledger)?;
        let sealed = ledger::sealed_sizes(&ledger).map_err(open_err(&ledger_path))?;
        drop(ledger);

        let mut idle = Vec::with_capacity(config.read_connections);
        for _ in 0..config.read_connections.max(1) {
            let conn = Connection::open_with_flags(
                &main_path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(open_err(&main_path))?;
            conn.busy_timeout(Duration::from_secs(10)).map_err(open_err(&main_path))?;
            conn.pragma_update(None, "cache_size", -65_536).map_err(open_err(&main_path))?;
            conn.execute("ATTACH DATABASE ?1 AS search", [search_path.to_string_lossy()])
                .map_err(open_err(&search_path))?;
            conn.execute("ATTACH DATABASE ?1 AS ledger", [ledger_path.to_string_lossy()])
                .map_err(open_err(&ledger_path))?;
            read::register_functions(&conn).map_err(open_err(&main_path))?;
            idle.push(conn);
        }
        let reads = std::sync::Arc::new(ReadPool { permits: Semaphore::new(idle.len()), idle: Mutex::new(idle) });

        let (notify_tx, notify_rx) = std::sync::mpsc::sync_channel(1);
        let mut followers = vec![notify_tx];
        let mut sealer = None;
        if let Some(sealing) = &config.sealing {
            let (seal_tx, seal_rx) = std::sync::mpsc::sync_channel(1);
            followers.push(seal_tx);
            let s = ledger::Sealer::open(&main_path, &ledger_path, sealing.clone()).map_err(open_err(&ledger_path))?;
            sealer = Some((s, seal_rx));
        }
        let writer = Writer::new(write, config.group, followers, sealed).map_err(open_err(&main_path))?;
        let indexer = indexer::Indexer::open(&main_path, &search_path).map_err(open_err(&search_path))?;
        let (queue_tx, queue_rx) = mpsc::channel(config.queue_capacity.max(1));
        let writer_thread = std::thread::Builder::new()
            .name("trailkeep-writer".into())
            .spawn(move || writer.run(queue_rx))
            .map_err(|e| OpenError::Thread("writer", e))?;
        let indexer_thread = std::thread::Builder::new()
            .name("trailkeep-indexer".into())
            .spawn(move || indexer.run(notify_rx))
            .map_err(|e| OpenError::Thread("indexer", e))?;

        let mut threads = vec![writer_thread, indexer_thread];
        if let Some((sealer, commits)) = sealer {
            threads.push(
                std::thread::Builder::new()
                    .name("trailkeep-sealer".into())
                    .spawn(move || sealer.run(commits))
                    .map_err(|e| OpenError::Thread("sealer", e))?,
            );
        }
        Ok(SqliteStore { queue: RwLock::new(Some(queue_tx)), reads, threads: Mutex::new(threads) })
    }

    fn sender(&self) -> Option<mpsc::Sender<WriteOp>> {
        self.queue.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn session_write(&self, change: SessionChange, audit: Option<NewEvent>) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(WriteOp::Session(SessionWrite { change, audit }, tx), rx).await
    }

    async fn submit<T>(&self, op: WriteOp, rx: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
        let sender = self.sender().ok_or_else(|| StoreError("the store is shut down".into()))?;
        sender.send(op).await.map_err(|_| StoreError("the writer has stopped".into()))?;
        rx.await.map_err(|_| StoreError("the writer stopped before answering".into()))?
    }
}

fn key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    let hash: Vec<u8> = row.get("hash")?;
    let permissions: String = row.get("permissions")?;
    let org: Option<String> = row.get("org_id")?;
    Ok(ApiKeyRecord {
        id: row.get("id")?,
        name: row.get("name")?,
        prefix: row.get("prefix")?,
        hash: hash.try_into().unwrap_or([0; 32]),
        org: org.and_then(|o| OrgId::parse(&o).ok()),
        permissions: permissions.split(',').filter_map(Permission::parse).collect(),
        created_at: row.get("created_at")?,
        revoked_at: row.get("revoked_at")?,
    })
}

const KEY_COLUMNS: &str = "id, name, prefix, hash, org_id, permissions, created_at, revoked_at";

#[async_trait]
impl Store for SqliteStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        let sender = self.sender().ok_or_else(|| AppendError::Failed("the store is shut down".into()))?;
        // The canonical forms are made here, on the caller's thread, so that the writer only splices in
        // each event's seq and receipt time.
        let forms = request
            .events
            .iter()
            .map(trailkeep_core::leaf::CanonicalTemplate::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AppendError::Failed(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        match sender.try_send(WriteOp::Append(request, forms, tx)) {
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
        self.reads.with(move |conn| read::list_events(conn, &scope, &query)).await
    }

    async fn get_event(&self, scope: &ReadScope, id: Uuid) -> Result<Option<Event>, StoreError> {
        let scope = scope.clone();
        self.reads.with(move |conn| read::get_event(conn, &scope, id)).await
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
        let hash = *hash;
        self.reads
            .with(move |conn| {
                conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = ?1"))?
                    .query_row([hash.as_slice()], key_from_row)
                    .optional()
            })
            .await
    }

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let id = id.to_owned();
        self.reads
            .with(move |conn| {
                conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"))?
                    .query_row([id], key_from_row)
                    .optional()
            })
            .await
    }

    async fn list_api_keys(&self, org: Option<&OrgId>) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let org = org.map(|o| o.to_string());
        self.reads
            .with(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE ?1 IS NULL OR org_id = ?1 ORDER BY created_at DESC, id DESC"
                ))?;
                let rows = stmt.query_map([org], key_from_row)?;
                rows.collect()
            })
            .await
    }

    async fn latest_checkpoint(&self, org: &OrgId) -> Result<Option<StoredCheckpoint>, StoreError> {
        let org = org.to_string();
        self.reads.with(move |conn| ledger::read_checkpoint(conn, &org, None)).await
    }

    async fn checkpoint_at(&self, org: &OrgId, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        let org = org.to_string();
        self.reads.with(move |conn| ledger::read_checkpoint(conn, &org, Some(size))).await
    }

    async fn tree_nodes(&self, org: &OrgId, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, StoreError> {
        let (org, ids) = (org.to_string(), ids.to_vec());
        self.reads
            .with(move |conn| {
                let nodes = ledger::LedgerNodes { conn, org: &org, schema: "ledger." };
                ids.iter()
                    .map(|id| match nodes.node(id.level, id.index) {
                        Ok(hash) => Ok(Some(hash)),
                        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                        Err(e) => Err(e),
                    })
                    .collect()
            })
            .await
    }

    async fn receipt(&self, org: &OrgId, id: Uuid) -> Result<Option<Receipt>, StoreError> {
        let org = org.to_string();
        self.reads.with(move |conn| ledger::read_receipt(conn, &org, id)).await
    }

    async fn sealed_events(&self, org: &OrgId, from: u64, to: u64) -> Result<Vec<SealedEvent>, StoreError> {
        let org = org.to_string();
        self.reads.with(move |conn| ledger::read_sealed(conn, &org, from, to)).await
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
        self.reads.with(move |conn| admin::get_org(conn, &id)).await
    }

    async fn list_orgs(&self, after: Option<&OrgId>, limit: usize) -> Result<Vec<OrgRecord>, StoreError> {
        let after = after.map(|o| o.to_string());
        self.reads.with(move |conn| admin::list_orgs(conn, after.as_deref(), limit)).await
    }

    async fn list_projects(&self, org: &OrgId) -> Result<Vec<ProjectRecord>, StoreError> {
        let org = org.to_string();
        self.reads.with(move |conn| admin::list_projects(conn, &org)).await
    }

    async fn get_project(&self, org: &OrgId, id: &ProjectId) -> Result<Option<ProjectRecord>, StoreError> {
        let (org, id) = (org.to_string(), id.to_string());
        self.reads.with(move |conn| admin::get_project(conn, &org, &id)).await
    }

    async fn list_members(&self, org: &OrgId) -> Result<Vec<MemberRecord>, StoreError> {
        let org = org.to_string();
        self.reads.with(move |conn| admin::list_members(conn, &org)).await
    }

    async fn get_member(&self, org: &OrgId, email: &str) -> Result<Option<MemberRecord>, StoreError> {
        let (org, email) = (org.to_string(), email.to_owned());
        self.reads.with(move |conn| admin::get_member(conn, &org, &email)).await
    }

    async fn list_holds(&self, org: &OrgId) -> Result<Vec<trailkeep_store::retention::LegalHold>, StoreError> {
        let org = org.to_string();
        self.reads.with(move |conn| admin::list_holds(conn, &org)).await
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
        self.reads.with(|conn| conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))).await.map(|_| ())
    }

    async fn shutdown(&self) {
        // Dropping the only sender lets the writer finish what is queued, then stop; the indexer follows.
        self.queue.write().unwrap_or_else(|p| p.into_inner()).take();
        let threads: Vec<JoinHandle<()>> = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }

    // Portal links, sessions and operators

    async fn create_portal_link(&self, link: PortalLinkRecord, audit: NewEvent) -> Result<(), StoreError> {
        self.session_write(SessionChange::CreateLink(link), Some(audit)).await.map(|_| ())
    }

    async fn find_portal_link(&self, hash: &[u8; 32]) -> Result<Option<PortalLinkRecord>, StoreError> {
        let hash = *hash;
        self.reads.with(move |conn| sessions::find_link(conn, &hash)).await
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
        let hash = *hash;
        self.reads.with(move |conn| sessions::find_session(conn, &hash)).await
    }

    async fn end_session(&self, hash: &[u8; 32], at: i64, audit: Option<NewEvent>) -> Result<bool, StoreError> {
        self.session_write(SessionChange::End { hash: *hash, at }, audit).await
    }

    async fn create_operator(&self, operator: OperatorRecord, audit: NewEvent) -> Result<bool, StoreError> {
        self.session_write(SessionChange::CreateOperator(operator), Some(audit)).await
    }

    async fn find_operator(&self, email: &str) -> Result<Option<OperatorRecord>, StoreError> {
        let email = email.to_owned();
        self.reads.with(move |conn| sessions::find_operator(conn, &email)).await
    }

    async fn list_operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        self.reads.with(sessions::list_operators).await
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
        self.reads.with(move |conn| exports::get_job(conn, &org, &id)).await
    }

    async fn list_export_jobs(
        &self,
        org: &OrgId,
        limit: usize,
    ) -> Result<Vec<trailkeep_store::exports::ExportJob>, StoreError> {
        let org = org.to_string();
        self.reads.with(move |conn| exports::list_jobs(conn, &org, limit)).await
    }

    async fn export_jobs_due(&self, now: i64) -> Result<Vec<trailkeep_store::exports::ExportJob>, StoreError> {
        self.reads.with(move |conn| exports::jobs_due(conn, now)).await
    }

    async fn export_jobs_finished_before(
        &self,
        before: i64,
    ) -> Result<Vec<trailkeep_store::exports::ExportJob>, StoreError> {
        self.reads.with(move |conn| exports::jobs_finished_before(conn, before)).await
    }

    async fn list_export_schedules(
        &self,
        org: Option<&OrgId>,
    ) -> Result<Vec<trailkeep_store::exports::ExportSchedule>, StoreError> {
        let org = org.map(|o| o.to_string());
        self.reads.with(move |conn| exports::list_schedules(conn, org.as_deref())).await
    }

    // ---- Dashboard aggregates (issue 5) ----

    async fn ai_totals(
        &self,
        scope: &ReadScope,
        filter: &trailkeep_core::Filter,
    ) -> Result<trailkeep_store::aggregates::AiTotals, StoreError> {
        let (scope, filter) = (scope.clone(), filter.clone());
        self.reads.with(move |conn| aggregates::ai_totals(conn, &scope, &filter)).await
    }
}
