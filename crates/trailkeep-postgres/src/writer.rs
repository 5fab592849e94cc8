//! The writer: one task per node, on a connection of its own, that group-commits whatever is queued.
//!
//! As in the SQLite engine, requests land in one bounded queue; the writer takes the first, drains
//! whatever else is waiting (up to a bound) and applies them all in one transaction, so many concurrent
//! one-event requests share one commit and one WAL flush. It answers only after `COMMIT` returned.
//!
//! **Several nodes, one log.** Each node has its own writer, so sequence numbers cannot come from memory.
//! Each organisation has a counter row in `org_seq`; a group locks the rows of every organisation it
//! writes to, in sorted order (one upsert that creates missing rows and locks the rest), assigns seqs
//! from them and writes the new values back before committing. Another node's group for the same
//! organisation waits on the row lock until this one has committed or rolled back, so seqs are unique
//! and gap-free across nodes, and a failed transaction leaves no gap. Idempotency keys are serialised the
//! same way, by a transaction-level advisory lock per key taken (sorted, before the counters) at the start
//! of the group, so a retry sent to another node while the first attempt is still in flight waits for it
//! and is then answered from its record. Taking every lock up front, always in the same order, keeps
//! groups on different nodes from deadlocking; should PostgreSQL still report a deadlock, the group is
//! run again.
//!
//! **Row-level security.** The group's transaction sets `trailkeep.org` to the comma list of the
//! organisations its requests touch (and `trailkeep.projects` to `*`), so every row it reads or writes
//! must belong to one of them.
//!
//! **Retention.** A retention pass is a write like the others: it runs in the group's transaction, under
//! its organisation's counter, so the `retention.deleted` event recording it takes the next seq and the
//! deletion commits with it or not at all (see [`crate::sweep`]).
//!
//! A request that fails (rather than being refused) aborts the group's transaction; the group is then
//! rolled back and each request run again in a transaction of its own, so one bad request does not sink
//! its neighbours. A lost connection fails the whole group without a second attempt: whether its
//! `COMMIT` happened is unknown, and a client retrying with its idempotency key is answered correctly
//! either way.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_postgres::Transaction;
use tokio_postgres::error::SqlState;
use trailkeep_core::{NewEvent, OrgId};
use trailkeep_store::orgs::{AdminChange, AdminError, AdminWrite};
use trailkeep_store::retention::{SweepOutcome, SweepRequest, deleted_event, ranges};
use trailkeep_store::{Ack, ApiKeyRecord, AppendError, AppendOutcome, AppendRequest, IdempotencyClaim, StoreError};

use crate::row::EventRows;
use crate::sessions::{SessionChange, SessionWrite};

pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3_600_000;
/// How long ended and expired sessions and links are kept before they are dropped.
const KEEP_EXPIRED_MS: i64 = 24 * 3_600_000;
/// The advisory-lock class of idempotency keys (`pg_advisory_xact_lock(int, int)`).
const IDEMPOTENCY_LOCK_CLASS: i32 = 0x544b_4944; // "TKID"
/// The platform's own log, where organisations created by their first event are recorded.
const PLATFORM: &str = trailkeep_core::ids::PLATFORM_ORG;

/// Work for the writer.
pub enum WriteOp {
    Append(AppendRequest, oneshot::Sender<Result<AppendOutcome, AppendError>>),
    CreateKey(ApiKeyRecord, Option<NewEvent>, oneshot::Sender<Result<(), StoreError>>),
    RevokeKey(String, i64, Option<NewEvent>, oneshot::Sender<Result<bool, StoreError>>),
    Admin(AdminWrite, oneshot::Sender<Result<(), AdminError>>),
    /// A portal link, session or operator change; answers whether it happened.
    Session(SessionWrite, oneshot::Sender<Result<bool, StoreError>>),
    /// One pass of retention over an organisation.
    Sweep(SweepRequest, oneshot::Sender<Result<SweepOutcome, StoreError>>),
    /// An export job or schedule change; answers whether it happened.
    Export(crate::exports::ExportWrite, oneshot::Sender<Result<bool, StoreError>>),
}

/// How much one group commit may take on.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    pub max_ops: usize,
    pub max_events: usize,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn op_events(op: &WriteOp) -> usize {
    match op {
        WriteOp::Append(req, _) => req.events.len(),
        WriteOp::CreateKey(..)
        | WriteOp::RevokeKey(..)
        | WriteOp::Admin(..)
        | WriteOp::Session(..)
        | WriteOp::Export(..)
        | WriteOp::Sweep(..) => 1,
    }
}

/// What one operation came to, refusals included; storage failures abort the group instead.
enum OpResult {
    Append(Result<AppendOutcome, AppendError>),
    Key,
    Revoke(bool),
    Admin(Result<(), AdminError>),
    Session(bool),
    Sweep(Result<SweepOutcome, StoreError>),
}

/// Why a group did not commit.
enum GroupError {
    /// The server refused or aborted the transaction: nothing of it was stored.
    Db(tokio_postgres::Error),
    /// The connection failed before the commit: nothing of the group was stored.
    Connection(String),
    /// The connection failed while committing: the group may or may not be stored.
    CommitUnknown(String),
}

impl From<tokio_postgres::Error> for GroupError {
    fn from(e: tokio_postgres::Error) -> GroupError {
        if e.is_closed() || e.as_db_error().is_none() {
            GroupError::Connection(e.to_string())
        } else {
            GroupError::Db(e)
        }
    }
}

impl GroupError {
    fn message(&self) -> String {
        match self {
            GroupError::Db(e) => e.as_db_error().map_or_else(|| e.to_string(), |d| d.to_string()),
            GroupError::Connection(m) => format!("the database cannot be reached ({m}); the service reconnects"),
            GroupError::CommitUnknown(m) => format!(
                "the connection to the database broke while committing ({m}), so the request may or may not be \
                 stored: send it again with the same Idempotency-Key"
            ),
        }
    }

    /// Whether running the same group again may succeed: a deadlock, or a month without its partition
    /// (created before the retry).
    fn retryable(&self) -> Option<Retry> {
        let GroupError::Db(e) = self else { return None };
        let db = e.as_db_error()?;
        if *db.code() == SqlState::T_R_DEADLOCK_DETECTED || *db.code() == SqlState::T_R_SERIALIZATION_FAILURE {
            Some(Retry::Again)
        } else if *db.code() == SqlState::CHECK_VIOLATION && db.message().contains("no partition") {
            Some(Retry::AfterPartitions)
        } else {
            None
        }
    }
}

enum Retry {
    Again,
    AfterPartitions,
}

pub struct Writer {
    endpoint: crate::Endpoint,
    client: Option<tokio_postgres::Client>,
    limits: GroupLimits,
    /// Organisations known to have events: a group writing to any other also locks the platform's log,
    /// where the organisation's creation may have to be recorded.
    known: HashSet<String>,
    /// Woken after each commit: the followers (sealer, indexer).
    committed: Vec<Arc<Notify>>,
    commits_since_purge: u32,
    partitions_checked: Option<Instant>,
}

impl Writer {
    pub fn new(endpoint: crate::Endpoint, limits: GroupLimits, committed: Vec<Arc<Notify>>) -> Writer {
        Writer {
            endpoint,
            client: None,
            limits,
            known: HashSet::new(),
            committed,
            commits_since_purge: 0,
            partitions_checked: None,
        }
    }

    /// Runs until every sender is gone, then returns.
    pub async fn run(mut self, mut queue: mpsc::Receiver<WriteOp>) {
        while let Some(first) = queue.recv().await {
            let mut ops = vec![first];
            let mut events = op_events(&ops[0]);
            while ops.len() < self.limits.max_ops && events < self.limits.max_events {
                match queue.try_recv() {
                    Ok(op) => {
                        events += op_events(&op);
                        ops.push(op);
                    }
                    Err(_) => break,
                }
            }
            metrics::gauge!("trailkeep_ingest_queue_depth").set(queue.len() as f64);
            self.commit_group(ops).await;
        }
    }

    async fn client(&mut self) -> Result<&mut tokio_postgres::Client, GroupError> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = None;
            let client = self.endpoint.connect().await.map_err(|e| GroupError::Connection(e.to_string()))?;
            self.client = Some(client);
        }
        let daily = Duration::from_secs(24 * 3600);
        if self.partitions_checked.is_none_or(|at| at.elapsed() >= daily) {
            self.ensure_partitions().await?;
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    async fn ensure_partitions(&mut self) -> Result<(), GroupError> {
        let client = self.client.as_ref().ok_or_else(|| GroupError::Connection("not connected".into()))?;
        client.execute("SELECT tk_ensure_partitions($1)", &[&crate::schema::MONTHS_AHEAD]).await?;
        self.partitions_checked = Some(Instant::now());
        Ok(())
    }

    async fn commit_group(&mut self, ops: Vec<WriteOp>) {
        let started = Instant::now();
        let received_at = now_ms();
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            match self.apply_group(&ops, received_at).await {
                Err(e) if attempts < 4 => match e.retryable() {
                    Some(Retry::Again) => continue,
                    Some(Retry::AfterPartitions) => {
                        if let Err(e) = self.ensure_partitions().await {
                            break Err(e);
                        }
                        continue;
                    }
                    None => break Err(e),
                },
                other => break other,
            }
        };
        // A group that failed for want of a connection stored nothing: its requests may simply be retried.
        let unreachable = matches!(outcome, Err(GroupError::Connection(_)));
        let results: Vec<Result<OpResult, String>> = match outcome {
            Ok(results) => results.into_iter().map(Ok).collect(),
            Err(GroupError::Db(e)) if ops.len() > 1 => {
                // One request failed: run each alone, so that only that one fails.
                tracing::warn!(error = %GroupError::Db(e).message(), "group commit failed; retrying its requests one by one");
                let mut results = Vec::with_capacity(ops.len());
                for op in &ops {
                    results.push(match self.apply_group(std::slice::from_ref(op), received_at).await {
                        Ok(mut one) => Ok(one.pop().expect("one result per operation")),
                        Err(e) => Err(e.message()),
                    });
                }
                results
            }
            Err(e) => {
                let message = e.message();
                tracing::error!(error = %message, "group commit failed");
                ops.iter().map(|_| Err(message.clone())).collect()
            }
        };
        let stored: usize = ops
            .iter()
            .zip(&results)
            .filter_map(|(op, r)| match (op, r) {
                (WriteOp::Append(req, _), Ok(OpResult::Append(Ok(o)))) if !o.replayed => Some(req.events.len()),
                _ => None,
            })
            .sum();
        metrics::counter!("trailkeep_events_ingested_total").increment(stored as u64);
        metrics::histogram!("trailkeep_commit_batch_events").record(stored as f64);
        metrics::histogram!("trailkeep_commit_seconds").record(started.elapsed().as_secs_f64());
        for follower in &self.committed {
            follower.notify_one();
        }
        // A caller that went away no longer wants the answer; the write stands.
        for (op, result) in ops.into_iter().zip(results) {
            match (op, result) {
                (WriteOp::Append(_, tx), Ok(OpResult::Append(r))) => drop(tx.send(r)),
                (WriteOp::Append(_, tx), Err(m)) if unreachable => drop(tx.send(Err(AppendError::Unavailable(m)))),
                (WriteOp::Append(_, tx), Err(m)) => drop(tx.send(Err(AppendError::Failed(m)))),
                (WriteOp::CreateKey(_, _, tx), r) => drop(tx.send(r.map(|_| ()).map_err(StoreError))),
                (WriteOp::RevokeKey(_, _, _, tx), Ok(OpResult::Revoke(done))) => drop(tx.send(Ok(done))),
                (WriteOp::RevokeKey(_, _, _, tx), r) => drop(tx.send(r.map(|_| false).map_err(StoreError))),
                (WriteOp::Admin(_, tx), Ok(OpResult::Admin(r))) => drop(tx.send(r)),
                (WriteOp::Admin(_, tx), r) => drop(tx.send(r.map(|_| ()).map_err(AdminError::Failed))),
                (WriteOp::Session(_, tx), Ok(OpResult::Session(done))) => drop(tx.send(Ok(done))),
                (WriteOp::Session(_, tx), r) => drop(tx.send(r.map(|_| false).map_err(StoreError))),
                (WriteOp::Export(_, tx), Ok(OpResult::Session(done))) => drop(tx.send(Ok(done))),
                (WriteOp::Export(_, tx), r) => drop(tx.send(r.map(|_| false).map_err(StoreError))),
                (WriteOp::Sweep(_, tx), Ok(OpResult::Sweep(r))) => drop(tx.send(r)),
                (WriteOp::Sweep(_, tx), r) => drop(tx.send(r.map(|_| SweepOutcome::default()).map_err(StoreError))),
                (WriteOp::Append(_, tx), Ok(_)) => {
                    drop(tx.send(Err(AppendError::Failed("internal error: mismatched result".into()))))
                }
            }
        }
    }

    /// Runs every operation of a group in one transaction and commits it.
    async fn apply_group(&mut self, ops: &[WriteOp], received_at: i64) -> Result<Vec<OpResult>, GroupError> {
        self.commits_since_purge += 1;
        let purge = self.commits_since_purge >= 1000;
        let plan = Plan::of(ops, &self.known);
        self.client().await?;
        let client = self.client.as_mut().expect("connected by client()");
        let tx = client.transaction().await?;
        let mut group = Group { tx: &tx, received_at, seqs: HashMap::new() };
        let lookups = group.lookups(ops).await?;
        let mut orgs = plan.orgs.clone();
        orgs.extend(lookups.iter().flatten().cloned());
        let orgs: Vec<String> = orgs.into_iter().collect();
        tx.execute(
            "SELECT set_config('trailkeep.org', $1, true), set_config('trailkeep.projects', '*', true)",
            &[&orgs.join(",")],
        )
        .await?;
        if !plan.claims.is_empty() {
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, h) FROM (SELECT h FROM unnest($2::int4[]) h ORDER BY h OFFSET 0) s",
                &[&IDEMPOTENCY_LOCK_CLASS, &plan.claims],
            )
            .await?;
        }
        let counted: Vec<String> = plan.counters.iter().cloned().collect();
        group.lock(&counted).await?;
        if !plan.sweeps.is_empty() {
            let sweeps: Vec<String> = plan.sweeps.iter().cloned().collect();
            crate::sweep::lock_index_heads(&tx, &sweeps).await?;
        }
        let mut results = Vec::with_capacity(ops.len());
        for (op, lookup) in ops.iter().zip(&lookups) {
            results.push(group.apply(op, lookup.as_deref()).await?);
        }
        group.save_counters().await?;
        if purge {
            tx.execute(
                "SELECT tk_purge_expired($1, $2)",
                &[&(received_at - IDEMPOTENCY_WINDOW_MS), &(received_at - KEEP_EXPIRED_MS)],
            )
            .await?;
        }
        let written: Vec<String> = group.seqs.iter().filter(|(_, s)| s.last > 0).map(|(o, _)| o.clone()).collect();
        drop(group);
        tx.commit().await.map_err(|e| match GroupError::from(e) {
            GroupError::Connection(m) => GroupError::CommitUnknown(m),
            other => other,
        })?;
        if purge {
            self.commits_since_purge = 0;
        }
        self.known.extend(written);
        Ok(results)
    }
}

/// The organisations and idempotency keys a group will lock.
struct Plan {
    /// Every organisation the group may touch, for the row-level security setting.
    orgs: BTreeSet<String>,
    /// The organisations whose counters the group locks: those it may write events to.
    counters: BTreeSet<String>,
    /// The idempotency keys' lock ids, sorted and unique.
    claims: Vec<i32>,
    /// The organisations retention passes run over.
    sweeps: BTreeSet<String>,
}

impl Plan {
    fn of(ops: &[WriteOp], known: &HashSet<String>) -> Plan {
        let mut counters = BTreeSet::new();
        let mut orgs = BTreeSet::new();
        let mut claims = Vec::new();
        // Organisations whose counters retention work locks whatever its events.
        let mut retention = BTreeSet::new();
        let mut sweeps = BTreeSet::new();
        let mut event = |e: &NewEvent| {
            counters.insert(e.organization_id.to_string());
        };
        for op in ops {
            match op {
                WriteOp::Append(req, _) => {
                    req.events.iter().for_each(&mut event);
                    if let Some(claim) = &req.idempotency {
                        claims.push(claim_lock(claim));
                    }
                }
                WriteOp::CreateKey(key, audit, _) => {
                    orgs.insert(key.org.as_ref().map_or(PLATFORM.to_owned(), |o| o.to_string()));
                    audit.iter().for_each(&mut event);
                }
                WriteOp::RevokeKey(_, _, audit, _) => audit.iter().for_each(&mut event),
                WriteOp::Admin(write, _) => {
                    orgs.insert(write.change.org().to_string());
                    // Placing or lifting a hold takes the organisation's counter, as a retention pass
                    // does, so a pass on another node sees every hold committed before it.
                    if matches!(write.change, AdminChange::PlaceHold(_) | AdminChange::LiftHold { .. }) {
                        retention.insert(write.change.org().to_string());
                    }
                    event(&write.audit);
                }
                WriteOp::Sweep(req, _) => {
                    retention.insert(req.org.to_string());
                    sweeps.insert(req.org.to_string());
                }
                WriteOp::Session(write, _) => {
                    match &write.change {
                        SessionChange::CreateLink(link) => {
                            orgs.insert(link.org.to_string());
                        }
                        SessionChange::Start(session, _) => {
                            orgs.insert(session.org.as_ref().map_or(PLATFORM.to_owned(), |o| o.to_string()));
                        }
                        SessionChange::End { .. } => {}
                        SessionChange::CreateOperator(_) => {
                            orgs.insert(PLATFORM.to_owned());
                        }
                    }
                    write.audit.iter().for_each(&mut event);
                }
                WriteOp::Export(write, _) => {
                    orgs.insert(write.change.org().to_string());
                    write.audit.iter().for_each(&mut event);
                }
            }
        }
        counters.extend(retention);
        // An organisation's first event creates it, recorded in the platform's log.
        if counters.iter().any(|o| !o.starts_with('_') && !known.contains(o)) {
            counters.insert(PLATFORM.to_owned());
        }
        orgs.extend(counters.iter().cloned());
        claims.sort_unstable();
        claims.dedup();
        Plan { orgs, counters, claims, sweeps }
    }
}

/// The advisory-lock id of an idempotency key: 32 bits of its SHA-256 (a collision only serialises two
/// unrelated requests).
fn claim_lock(claim: &IdempotencyClaim) -> i32 {
    let mut hasher = Sha256::new();
    hasher.update(claim.scope.as_bytes());
    hasher.update([0]);
    hasher.update(claim.key.as_bytes());
    let digest = hasher.finalize();
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// One organisation's counter in a group.
struct Counter {
    /// The last seq assigned, in this transaction or before it.
    last: u64,
    /// The value read when the row was locked.
    locked: u64,
}

/// A group's transaction and the counters it holds.
struct Group<'a> {
    tx: &'a Transaction<'a>,
    received_at: i64,
    seqs: HashMap<String, Counter>,
}

impl Group<'_> {
    /// What some operations must look up before their organisations are known: the organisation of the
    /// key to revoke, the session to end, the portal link to redeem. `None` when there is nothing to
    /// find (the operation then changes nothing).
    async fn lookups(&self, ops: &[WriteOp]) -> Result<Vec<Option<String>>, tokio_postgres::Error> {
        let mut found = Vec::with_capacity(ops.len());
        for op in ops {
            let row = match op {
                WriteOp::RevokeKey(id, ..) => {
                    self.tx.query_opt("SELECT COALESCE(org_id, '_platform') FROM tk_api_key_by_id($1)", &[id]).await?
                }
                WriteOp::Session(SessionWrite { change: SessionChange::End { hash, .. }, .. }, _) => {
                    self.tx
                        .query_opt(
                            "SELECT COALESCE(org_id, '_platform') FROM tk_session_by_hash($1)",
                            &[&hash.as_slice()],
                        )
                        .await?
                }
                WriteOp::Session(
                    SessionWrite {
                        change:
                            SessionChange::Start(_, trailkeep_store::sessions::SessionStart::PortalLink { link, .. }),
                        ..
                    },
                    _,
                ) => self.tx.query_opt("SELECT org_id FROM tk_portal_link_by_hash($1)", &[&link.as_slice()]).await?,
                _ => None,
            };
            found.push(row.map(|r| r.get::<_, String>(0)));
        }
        Ok(found)
    }

    /// Locks the counters of `orgs` (sorted), creating missing ones at zero.
    async fn lock(&mut self, orgs: &[String]) -> Result<(), tokio_postgres::Error> {
        let rows = self
            .tx
            .query(
                "INSERT INTO org_seq (org_id, last_seq) SELECT o, 0 FROM unnest($1::text[]) o ORDER BY o \
                 ON CONFLICT (org_id) DO UPDATE SET last_seq = org_seq.last_seq RETURNING org_id, last_seq",
                &[&orgs],
            )
            .await?;
        for row in rows {
            let last = row.get::<_, i64>(1) as u64;
            self.seqs.insert(row.get(0), Counter { last, locked: last });
        }
        Ok(())
    }

    async fn save_counters(&self) -> Result<(), tokio_postgres::Error> {
        let (orgs, lasts): (Vec<&str>, Vec<i64>) =
            self.seqs.iter().filter(|(_, c)| c.last != c.locked).map(|(o, c)| (o.as_str(), c.last as i64)).unzip();
        if orgs.is_empty() {
            return Ok(());
        }
        self.tx
            .execute(
                "UPDATE org_seq o SET last_seq = v.last FROM unnest($1::text[], $2::int8[]) AS v(org, last) \
                 WHERE o.org_id = v.org",
                &[&orgs, &lasts],
            )
            .await?;
        Ok(())
    }

    async fn apply(&mut self, op: &WriteOp, lookup: Option<&str>) -> Result<OpResult, tokio_postgres::Error> {
        Ok(match op {
            WriteOp::Append(req, _) => OpResult::Append(self.append(req).await?),
            WriteOp::CreateKey(key, audit, _) => {
                let permissions: Vec<&str> = key.permissions.iter().map(|p| p.as_str()).collect();
                self.tx
                    .execute(
                        "INSERT INTO api_keys (id, name, prefix, hash, org_id, permissions, created_at, revoked_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        &[
                            &key.id,
                            &key.name,
                            &key.prefix,
                            &key.hash.as_slice(),
                            &key.org.as_ref().map(|o| o.as_str()),
                            &permissions.join(","),
                            &key.created_at,
                            &key.revoked_at,
                        ],
                    )
                    .await?;
                self.audit(audit.as_ref()).await?;
                OpResult::Key
            }
            WriteOp::RevokeKey(id, at, audit, _) => {
                if lookup.is_none() {
                    return Ok(OpResult::Revoke(false));
                }
                let changed = self
                    .tx
                    .execute("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", &[id, at])
                    .await?;
                if changed == 1 {
                    self.audit(audit.as_ref()).await?;
                }
                OpResult::Revoke(changed == 1)
            }
            WriteOp::Admin(write, _) => match crate::admin::apply(self.tx, &write.change).await? {
                Err(refused) => OpResult::Admin(Err(refused)),
                Ok(()) => {
                    self.audit(Some(&write.audit)).await?;
                    OpResult::Admin(Ok(()))
                }
            },
            WriteOp::Session(write, _) => {
                let needs_lookup = matches!(
                    write.change,
                    SessionChange::End { .. }
                        | SessionChange::Start(_, trailkeep_store::sessions::SessionStart::PortalLink { .. })
                );
                if needs_lookup && lookup.is_none() {
                    return Ok(OpResult::Session(false));
                }
                let changed = crate::sessions::apply(self.tx, &write.change).await?;
                if changed {
                    self.audit(write.audit.as_ref()).await?;
                }
                OpResult::Session(changed)
            }
            WriteOp::Sweep(req, _) => OpResult::Sweep(self.sweep(req).await?),
            WriteOp::Export(write, _) => {
                let changed = crate::exports::apply(self.tx, &write.change).await?;
                if changed {
                    self.audit(write.audit.as_ref()).await?;
                }
                OpResult::Session(changed)
            }
        })
    }

    /// One retention pass: picks what is due, records the pass in the organisation's log and prunes.
    async fn sweep(&mut self, req: &SweepRequest) -> Result<Result<SweepOutcome, StoreError>, tokio_postgres::Error> {
        let pass = match crate::sweep::plan(self.tx, req).await {
            Ok(pass) => pass,
            Err(crate::sweep::SweepError::Sql(e)) => return Err(e),
            Err(crate::sweep::SweepError::Damaged(e)) => return Ok(Err(StoreError(e.to_string()))),
        };
        if pass.seqs.is_empty() {
            return Ok(Ok(pass.outcome()));
        }
        let count = pass.seqs.len() as u64;
        let event = deleted_event(
            &req.org,
            &ranges(pass.seqs.clone()),
            count,
            crate::sweep::default_cutoff(req),
            &req.policy,
            req.now,
        );
        let recorded = self.append(&AppendRequest { events: vec![event], idempotency: None }).await?;
        let Some(ack) = recorded.ok().and_then(|o| o.acks.first().copied()) else {
            return Ok(Err(StoreError("recording the retention.deleted event failed".into())));
        };
        let deleted = crate::sweep::prune(self.tx, req.org.as_str(), &pass.seqs, ack.seq).await?;
        Ok(Ok(SweepOutcome { deleted, held: pass.held, event_seq: Some(ack.seq), next: pass.next }))
    }

    async fn audit(&mut self, event: Option<&NewEvent>) -> Result<(), tokio_postgres::Error> {
        if let Some(event) = event {
            let req = AppendRequest { events: vec![event.clone()], idempotency: None };
            if let Err(AppendError::Failed(m)) = self.append(&req).await? {
                tracing::error!(error = %m, "recording an audit event failed");
            }
        }
        Ok(())
    }

    /// The next seq of `org`, which must be locked.
    async fn next_seq(&mut self, org: &str) -> Result<u64, tokio_postgres::Error> {
        if !self.seqs.contains_key(org) {
            // Not foreseen by the plan (the node's cache of known organisations was stale): lock it now.
            self.lock(&[org.to_owned()]).await?;
        }
        let counter = self.seqs.get_mut(org).expect("locked above");
        counter.last += 1;
        Ok(counter.last)
    }

    fn last_seq(&self, org: &str) -> u64 {
        self.seqs.get(org).map_or(0, |c| c.last)
    }

    async fn append(
        &mut self,
        req: &AppendRequest,
    ) -> Result<Result<AppendOutcome, AppendError>, tokio_postgres::Error> {
        if let Some(claim) = &req.idempotency {
            let found = self
                .tx
                .query_opt(
                    "SELECT fingerprint, response FROM idempotency WHERE scope = $1 AND key = $2 AND created_at >= $3",
                    &[&claim.scope, &claim.key, &(self.received_at - IDEMPOTENCY_WINDOW_MS)],
                )
                .await?;
            if let Some(row) = found {
                let fingerprint: &[u8] = row.get(0);
                if fingerprint != claim.fingerprint {
                    return Ok(Err(AppendError::IdempotencyConflict));
                }
                return Ok(serde_json::from_str::<Vec<Ack>>(row.get(1))
                    .map(|acks| AppendOutcome { acks, replayed: true })
                    .map_err(|e| AppendError::Failed(format!("a stored idempotency answer does not parse: {e}"))));
            }
        }
        // Client-supplied ids already stored are acknowledged with their original place.
        let (client_orgs, client_ids): (Vec<&str>, Vec<uuid::Uuid>) =
            req.events.iter().filter(|e| e.client_id).map(|e| (e.organization_id.as_str(), e.id)).unzip();
        let mut existing: HashMap<(String, uuid::Uuid), Ack> = HashMap::new();
        if !client_ids.is_empty() {
            let rows = self
                .tx
                .query(
                    "SELECT e.org_id, e.id, e.seq, e.received_at FROM events e \
                     JOIN unnest($1::text[], $2::uuid[]) AS c(org, id) ON e.org_id = c.org AND e.id = c.id",
                    &[&client_orgs, &client_ids],
                )
                .await?;
            for row in rows {
                let id: uuid::Uuid = row.get(1);
                let ack = Ack { id, seq: row.get::<_, i64>(2) as u64, received_at: row.get(3) };
                existing.insert((row.get(0), id), ack);
            }
        }
        let mut rows = EventRows::default();
        let mut acks = Vec::with_capacity(req.events.len());
        let mut created = Vec::new();
        for event in &req.events {
            let org = event.organization_id.as_str();
            if event.client_id
                && let Some(ack) = existing.get(&(org.to_owned(), event.id))
            {
                acks.push(*ack);
                continue;
            }
            // An organisation's first event creates it, unless it was created beforehand.
            if self.last_seq(org) == 0
                && !org.starts_with('_')
                && crate::admin::create_on_ingest(self.tx, org, self.received_at).await?
            {
                created.push(event.organization_id.clone());
            }
            let ack = self.place(event, &mut rows).await?;
            if event.client_id {
                existing.insert((org.to_owned(), event.id), ack);
            }
            acks.push(ack);
        }
        // Recorded in the platform's log, so that each organisation's own log starts with what its
        // platform sent.
        for org in created {
            self.place(&org_created_on_ingest(org, self.received_at), &mut rows).await?;
        }
        rows.insert(self.tx).await?;
        if let Some(claim) = &req.idempotency {
            let response = serde_json::to_string(&acks).expect("acks serialise");
            self.tx
                .execute(
                    "INSERT INTO idempotency (scope, key, fingerprint, response, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, \
                     response = EXCLUDED.response, created_at = EXCLUDED.created_at",
                    &[&claim.scope, &claim.key, &claim.fingerprint.as_slice(), &response, &self.received_at],
                )
                .await?;
        }
        Ok(Ok(AppendOutcome { acks, replayed: false }))
    }

    /// Gives `event` the next seq of its organisation and adds it to `rows`.
    async fn place(&mut self, event: &NewEvent, rows: &mut EventRows) -> Result<Ack, tokio_postgres::Error> {
        let seq = self.next_seq(event.organization_id.as_str()).await?;
        let stored = event.clone().into_event(seq, self.received_at);
        let payload = serde_json::to_string(&stored).expect("events serialise");
        rows.push(&stored, payload);
        Ok(Ack { id: event.id, seq, received_at: self.received_at })
    }
}

/// The platform's record of an organisation that its first ingested event created.
fn org_created_on_ingest(org: OrgId, at: i64) -> NewEvent {
    use trailkeep_core::{Action, Actor, ActorType, Context, Outcome, Target};
    let mut metadata = serde_json::Map::new();
    metadata.insert("source".into(), "ingest".into());
    NewEvent {
        id: uuid::Uuid::now_v7(),
        client_id: false,
        organization_id: OrgId::platform(),
        project_id: None,
        action: Action::parse("organization.created").expect("a valid action"),
        category: "organization".into(),
        occurred_at: at,
        actor: Some(Actor {
            actor_type: ActorType::System,
            id: Some("trailkeep".into()),
            name: Some("Trailkeep".into()),
            email: None,
        }),
        targets: vec![Target { target_type: "organization".into(), id: org.to_string(), name: None }],
        context: Context::default(),
        description: Some(format!("Organisation {org} was created by its first event")),
        outcome: Outcome::Success,
        error: None,
        changes: Vec::new(),
        metadata,
        ai: None,
    }
}
