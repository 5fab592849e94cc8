//! The single writer: one thread that owns the write connection and group-commits whatever is queued.
//!
//! Requests from every connection land in one bounded queue. The writer takes the first, then drains
//! whatever else is already waiting (up to a bound), applies them all in one transaction, each inside its
//! own savepoint so one failing request does not sink its neighbours, commits with a full fsync, and only
//! then answers each request. Many concurrent one-event requests thus share one fsync.
//!
//! Sequence numbers are handed out here, inside the transaction, from a per-organisation counter that is
//! advanced only once the commit succeeded; a crash before the commit loses the whole transaction and the
//! counters are reloaded from the table at the next start, so a `seq` never has a gap.

use std::collections::HashMap;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};
use trailkeep_core::NewEvent;
use trailkeep_core::leaf::CanonicalTemplate;
use trailkeep_store::orgs::{AdminError, AdminWrite};
use trailkeep_store::retention::{SweepOutcome, SweepRequest};
use trailkeep_store::{Ack, ApiKeyRecord, AppendError, AppendOutcome, AppendRequest, StoreError};

use crate::row::{INSERT_EVENT, event_params};

const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3_600_000;

/// Work for the writer thread.
pub enum WriteOp {
    /// A request's events, each with its canonical form made on the caller's thread (see
    /// [`CanonicalTemplate`]).
    Append(AppendRequest, Vec<CanonicalTemplate>, oneshot::Sender<Result<AppendOutcome, AppendError>>),
    CreateKey(ApiKeyRecord, Option<NewEvent>, oneshot::Sender<Result<(), StoreError>>),
    RevokeKey(String, i64, Option<NewEvent>, oneshot::Sender<Result<bool, StoreError>>),
    Admin(AdminWrite, oneshot::Sender<Result<(), AdminError>>),
    Sweep(SweepRequest, oneshot::Sender<Result<SweepOutcome, StoreError>>),
    /// A portal link, session or operator change; answers whether it happened.
    Session(crate::sessions::SessionWrite, oneshot::Sender<Result<bool, StoreError>>),
    /// An export job or schedule change; answers whether it happened.
    Export(crate::exports::ExportWrite, oneshot::Sender<Result<bool, StoreError>>),
}

/// How much one group commit may take on.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    pub max_ops: usize,
    pub max_events: usize,
}

pub struct Writer {
    conn: Connection,
    /// The last committed `seq` of each organisation.
    last_seq: HashMap<String, u64>,
    limits: GroupLimits,
    /// Told after each commit, so the full-text indexer and the sealer wake.
    committed: Vec<std::sync::mpsc::SyncSender<()>>,
    commits_since_purge: u32,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A write's failure as the caller sees it: a full disk, a read-only or unwritable data directory is
/// something the operator can fix and the client can retry; anything else is a store failure.
pub(crate) fn failed(e: rusqlite::Error) -> AppendError {
    use rusqlite::ErrorCode;
    let why = match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => "the disk holding the data directory is full; free space there",
        Some(ErrorCode::ReadOnly) => "the data directory is read-only; make it writable",
        Some(ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => {
            "the data directory cannot be written (an I/O error); check its disk and permissions"
        }
        _ => return AppendError::Failed(e.to_string()),
    };
    tracing::warn!(error = %e, "a write failed: {why}");
    AppendError::Unavailable(why.to_owned())
}

impl Writer {
    pub fn new(
        conn: Connection,
        limits: GroupLimits,
        committed: Vec<std::sync::mpsc::SyncSender<()>>,
        sealed: HashMap<String, u64>,
    ) -> rusqlite::Result<Writer> {
        let mut last_seq = HashMap::new();
        {
            let mut stmt = conn.prepare("SELECT org_id, MAX(seq) FROM events GROUP BY org_id")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (org, seq) = row?;
                last_seq.insert(org, seq as u64);
            }
        }
        for (org, size) in sealed {
            let last = last_seq.entry(org.clone()).or_insert(0);
            if *last < size {
                tracing::error!(
                    org = %org,
                    events = *last,
                    sealed = size,
                    "the events table ends before the sealed log: events were removed behind the service's back; \
                     new events continue after the sealed ones and the missing ones show in every verification"
                );
                *last = size;
            }
        }
        // Statistics for the planner from the start, where none were gathered yet.
        conn.execute_batch("PRAGMA optimize = 0x10002")?;
        Ok(Writer { conn, last_seq, limits, committed, commits_since_purge: 0 })
    }

    /// Runs until every sender is gone, then returns.
    pub fn run(mut self, mut queue: mpsc::Receiver<WriteOp>) {
        while let Some(first) = queue.blocking_recv() {
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
            self.commit_group(ops);
        }
    }

    fn commit_group(&mut self, ops: Vec<WriteOp>) {
        let started = Instant::now();
        let received_at = now_ms();
        // Savepoints let one failing request leave the rest of its group intact, but they copy every page
        // a request touches. Failures are rare (a full disk, a broken file), so a group first runs
        // without them; only if some request fails is the group rolled back and run again with them.
        let mut attempt = self.apply_group(&ops, received_at, false);
        if let Ok(applied) = &attempt
            && applied.results.iter().any(OpResult::failed)
        {
            attempt = self.apply_group(&ops, received_at, true);
        }
        let applied = match attempt {
            Ok(applied) => applied,
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                return fail_all(ops, failed(e));
            }
        };
        self.last_seq.extend(applied.pending);
        metrics::counter!("trailkeep_events_ingested_total").increment(applied.stored_events as u64);
        metrics::histogram!("trailkeep_commit_batch_events").record(applied.stored_events as f64);
        metrics::histogram!("trailkeep_commit_seconds").record(started.elapsed().as_secs_f64());
        // A full notice channel already holds a wake-up; nothing is lost by dropping this one.
        for follower in &self.committed {
            let _ = follower.try_send(());
        }
        // A caller that went away (timed out, disconnected) no longer wants the answer; the write stands.
        for (op, result) in ops.into_iter().zip(applied.results) {
            match (op, result) {
                (WriteOp::Append(_, _, tx), OpResult::Append(r)) => drop(tx.send(r)),
                (WriteOp::CreateKey(_, _, tx), OpResult::Key(r)) => drop(tx.send(r.map_err(to_store))),
                (WriteOp::RevokeKey(_, _, _, tx), OpResult::Revoke(r)) => drop(tx.send(r.map_err(to_store))),
                (WriteOp::Admin(_, tx), OpResult::Admin(r)) => drop(tx.send(r)),
                (WriteOp::Session(_, tx), OpResult::Session(r)) => drop(tx.send(r.map_err(to_store))),
                (WriteOp::Sweep(_, tx), OpResult::Sweep(r)) => drop(tx.send(r.map_err(to_store))),
                (WriteOp::Export(_, tx), OpResult::Session(r)) => drop(tx.send(r.map_err(to_store))),
                _ => unreachable!("results are produced in the order of their operations"),
            }
        }
    }

    /// Runs every operation of a group in one transaction and commits it; an `Err` means the transaction
    /// itself could not be opened or committed, and nothing of it is stored.
    fn apply_group(&mut self, ops: &[WriteOp], received_at: i64, savepoints: bool) -> rusqlite::Result<Applied> {
        let mut pending: HashMap<String, u64> = HashMap::new();
        let mut results = Vec::with_capacity(ops.len());
        let mut stored_events = 0usize;
        let tx = self.conn.transaction()?;
        let last_seq = &self.last_seq;
        for op in ops {
            let result = match op {
                WriteOp::Append(req, forms, _) => {
                    let result =
                        guarded(&tx, savepoints, |c| append_one(c, req, forms, received_at, last_seq, &mut pending));
                    if let Ok(outcome) = &result
                        && !outcome.replayed
                    {
                        stored_events += req.events.len();
                    }
                    OpResult::Append(result)
                }
                WriteOp::CreateKey(key, audit, _) => OpResult::Key(guarded(&tx, savepoints, |c| {
                    insert_key(c, key)?;
                    if let Some(event) = audit {
                        let req = AppendRequest { events: vec![event.clone()], idempotency: None };
                        append_one(c, &req, &[], received_at, last_seq, &mut pending)?;
                    }
                    Ok(())
                })),
                WriteOp::RevokeKey(id, at, audit, _) => OpResult::Revoke(guarded(&tx, savepoints, |c| {
                    let changed = c
                        .execute(
                            "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                            params![id, at],
                        )
                        .map_err(|e| failed(e))?;
                    if let (1, Some(event)) = (changed, audit) {
                        let req = AppendRequest { events: vec![event.clone()], idempotency: None };
                        append_one(c, &req, &[], received_at, last_seq, &mut pending)?;
                    }
                    Ok(changed == 1)
                })),
                WriteOp::Admin(write, _) => OpResult::Admin(
                    guarded(&tx, savepoints, |c| {
                        // A refusal (exists, not found) is an answer, not a failure: it writes nothing.
                        if let Err(refused) = crate::admin::apply(c, &write.change) {
                            return Ok(Err(refused));
                        }
                        let req = AppendRequest { events: vec![write.audit.clone()], idempotency: None };
                        append_one(c, &req, &[], received_at, last_seq, &mut pending)?;
                        Ok(Ok(()))
                    })
                    .unwrap_or_else(|e| Err(AdminError::Failed(e.to_string()))),
                ),
                WriteOp::Sweep(req, _) => OpResult::Sweep(guarded(&tx, savepoints, |c| {
                    crate::sweep::sweep(c, req, |c, event| {
                        let req = AppendRequest { events: vec![event], idempotency: None };
                        let outcome = append_one(c, &req, &[], received_at, last_seq, &mut pending)?;
                        outcome.acks.into_iter().next().ok_or_else(|| AppendError::Failed("no ack".into()))
                    })
                })),
                WriteOp::Session(write, _) => OpResult::Session(guarded(&tx, savepoints, |c| {
                    let changed = crate::sessions::apply(c, &write.change).map_err(|e| failed(e))?;
                    if let (true, Some(event)) = (changed, &write.audit) {
                        let req = AppendRequest { events: vec![event.clone()], idempotency: None };
                        append_one(c, &req, &[], received_at, last_seq, &mut pending)?;
                    }
                    Ok(changed)
                })),
                WriteOp::Export(write, _) => OpResult::Session(guarded(&tx, savepoints, |c| {
                    let changed = crate::exports::apply(c, &write.change).map_err(failed)?;
                    if let (true, Some(event)) = (changed, &write.audit) {
                        let req = AppendRequest { events: vec![event.clone()], idempotency: None };
                        append_one(c, &req, &[], received_at, last_seq, &mut pending)?;
                    }
                    Ok(changed)
                })),
            };
            if !savepoints && result.failed() {
                // The caller reruns the group with savepoints; stop here and undo everything.
                results.push(result);
                tx.rollback()?;
                return Ok(Applied { results, pending: HashMap::new(), stored_events: 0 });
            }
            results.push(result);
        }
        self.commits_since_purge += 1;
        if self.commits_since_purge >= 1000 {
            self.commits_since_purge = 0;
            // Expired idempotency records are dropped in passing; a failure here only delays it.
            let _ = tx.execute("DELETE FROM idempotency WHERE created_at < ?1", [received_at - IDEMPOTENCY_WINDOW_MS]);
            // Refreshes planner statistics where the data has grown enough to matter.
            let _ = tx.execute_batch("PRAGMA optimize");
        }
        tx.commit()?;
        Ok(Applied { results, pending, stored_events })
    }
}

/// What one group's transaction did.
struct Applied {
    results: Vec<OpResult>,
    /// The organisations' new last `seq`, to adopt once committed.
    pending: HashMap<String, u64>,
    stored_events: usize,
}

enum OpResult {
    Append(Result<AppendOutcome, AppendError>),
    Key(Result<(), AppendError>),
    Revoke(Result<bool, AppendError>),
    Admin(Result<(), AdminError>),
    Session(Result<bool, AppendError>),
    Sweep(Result<SweepOutcome, AppendError>),
}

impl OpResult {
    /// Whether the operation hit a storage failure (as opposed to a refusal such as an idempotency
    /// conflict, which writes nothing).
    fn failed(&self) -> bool {
        matches!(
            self,
            OpResult::Append(Err(AppendError::Failed(_) | AppendError::Unavailable(_)))
                | OpResult::Key(Err(_))
                | OpResult::Revoke(Err(_))
                | OpResult::Admin(Err(AdminError::Failed(_)))
                | OpResult::Session(Err(_))
                | OpResult::Sweep(Err(_))
        )
    }
}

fn op_events(op: &WriteOp) -> usize {
    match op {
        WriteOp::Append(req, _, _) => req.events.len(),
        WriteOp::CreateKey(..)
        | WriteOp::RevokeKey(..)
        | WriteOp::Admin(..)
        | WriteOp::Session(..)
        | WriteOp::Export(..)
        | WriteOp::Sweep(..) => 1,
    }
}

fn to_store(e: AppendError) -> StoreError {
    StoreError(e.to_string())
}

fn fail_all(ops: Vec<WriteOp>, error: AppendError) {
    let message = error.to_string();
    for op in ops {
        match op {
            WriteOp::Append(_, _, tx) => drop(tx.send(Err(error.clone()))),
            WriteOp::CreateKey(_, _, tx) => drop(tx.send(Err(StoreError(message.to_owned())))),
            WriteOp::RevokeKey(_, _, _, tx) => drop(tx.send(Err(StoreError(message.to_owned())))),
            WriteOp::Admin(_, tx) => drop(tx.send(Err(AdminError::Failed(message.to_owned())))),
            WriteOp::Session(_, tx) => drop(tx.send(Err(StoreError(message.to_owned())))),
            WriteOp::Sweep(_, tx) => drop(tx.send(Err(StoreError(message.to_owned())))),
            WriteOp::Export(_, tx) => drop(tx.send(Err(StoreError(message.to_owned())))),
        }
    }
}

/// Runs `f`, inside a savepoint when asked: kept when it succeeds, rolled back (leaving the rest of the
/// group intact) when it fails.
fn guarded<T>(
    tx: &rusqlite::Transaction<'_>,
    savepoint: bool,
    f: impl FnOnce(&Connection) -> Result<T, AppendError>,
) -> Result<T, AppendError> {
    if !savepoint {
        return f(tx);
    }
    tx.execute_batch("SAVEPOINT op").map_err(|e| failed(e))?;
    match f(tx) {
        Ok(v) => {
            tx.execute_batch("RELEASE op").map_err(|e| failed(e))?;
            Ok(v)
        }
        Err(e) => {
            let _ = tx.execute_batch("ROLLBACK TO op; RELEASE op");
            Err(e)
        }
    }
}

/// Places the events of `req`; `forms` holds their canonical forms when the caller made them (an event
/// without one has it made here).
fn append_one(
    conn: &Connection,
    req: &AppendRequest,
    forms: &[CanonicalTemplate],
    received_at: i64,
    committed: &HashMap<String, u64>,
    pending: &mut HashMap<String, u64>,
) -> Result<AppendOutcome, AppendError> {
    let failed = |e: rusqlite::Error| failed(e);
    if let Some(claim) = &req.idempotency {
        let found: Option<(Vec<u8>, String)> = conn
            .prepare_cached(
                "SELECT fingerprint, response FROM idempotency WHERE scope = ?1 AND key = ?2 AND created_at >= ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![claim.scope, claim.key, received_at - IDEMPOTENCY_WINDOW_MS], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(failed)?;
        if let Some((fingerprint, response)) = found {
            if fingerprint != claim.fingerprint {
                return Err(AppendError::IdempotencyConflict);
            }
            let acks: Vec<Ack> = serde_json::from_str(&response).map_err(|e| AppendError::Failed(e.to_string()))?;
            return Ok(AppendOutcome { acks, replayed: true });
        }
    }

    // Undo the counters of this request if a later statement fails, since the savepoint rolls back.
    let before = pending.clone();
    let result = (|| {
        let mut acks = Vec::with_capacity(req.events.len());
        let mut created = Vec::new();
        let mut insert = conn.prepare_cached(INSERT_EVENT).map_err(failed)?;
        for (i, event) in req.events.iter().enumerate() {
            let org = event.organization_id.as_str();
            if event.client_id {
                let existing: Option<(i64, i64)> = conn
                    .prepare_cached("SELECT seq, received_at FROM events WHERE org_id = ?1 AND id = ?2")
                    .and_then(|mut s| {
                        s.query_row(params![org, event.id.as_bytes().as_slice()], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(failed)?;
                if let Some((seq, at)) = existing {
                    acks.push(Ack { id: event.id, seq: seq as u64, received_at: at });
                    continue;
                }
            }
            let last = pending.get(org).or_else(|| committed.get(org)).copied().unwrap_or(0);
            // An organisation's first event creates it, unless it was created beforehand.
            if last == 0
                && !org.starts_with('_')
                && crate::admin::create_on_ingest(conn, org, received_at).map_err(failed)?
            {
                created.push(event.organization_id.clone());
            }
            acks.push(place(&mut insert, event, forms.get(i), received_at, last, pending)?);
        }
        // Recorded in the platform's log, so that each organisation's own log starts with what its
        // platform sent.
        for org in created {
            let record = org_created_on_ingest(org, received_at);
            let last = pending
                .get(record.organization_id.as_str())
                .or_else(|| committed.get(record.organization_id.as_str()))
                .copied()
                .unwrap_or(0);
            place(&mut insert, &record, None, received_at, last, pending)?;
        }
        if let Some(claim) = &req.idempotency {
            let response = serde_json::to_string(&acks).map_err(|e| AppendError::Failed(e.to_string()))?;
            conn.prepare_cached(
                "INSERT OR REPLACE INTO idempotency (scope, key, fingerprint, response, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![claim.scope, claim.key, claim.fingerprint.as_slice(), response, received_at])
            })
            .map_err(failed)?;
        }
        Ok(AppendOutcome { acks, replayed: false })
    })();
    if result.is_err() {
        *pending = before;
    }
    result
}

/// Gives `event` the next seq of its organisation (after `last`) and inserts it, its payload being its
/// canonical form (the leaf data the sealer hashes).
fn place(
    insert: &mut rusqlite::CachedStatement<'_>,
    event: &NewEvent,
    form: Option<&CanonicalTemplate>,
    received_at: i64,
    last: u64,
    pending: &mut HashMap<String, u64>,
) -> Result<Ack, AppendError> {
    let seq = last + 1;
    pending.insert(event.organization_id.as_str().to_owned(), seq);
    let payload = match form {
        Some(form) => form.fill(seq, received_at),
        None => CanonicalTemplate::new(event).map_err(|e| AppendError::Failed(e.to_string()))?.fill(seq, received_at),
    };
    insert
        .execute(rusqlite::params_from_iter(event_params(event, seq, received_at, payload)))
        .map_err(|e| failed(e))?;
    Ok(Ack { id: event.id, seq, received_at })
}

/// The platform's record of an organisation that its first ingested event created.
fn org_created_on_ingest(org: trailkeep_core::OrgId, at: i64) -> NewEvent {
    use trailkeep_core::{Action, Actor, ActorType, Context, OrgId, Outcome, Target};
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

fn insert_key(conn: &Connection, key: &ApiKeyRecord) -> Result<(), AppendError> {
    let permissions: Vec<&str> = key.permissions.iter().map(|p| p.as_str()).collect();
    conn.execute(
        "INSERT INTO api_keys (id, name, prefix, hash, org_id, permissions, created_at, revoked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            key.id,
            key.name,
            key.prefix,
            key.hash.as_slice(),
            key.org.as_ref().map(|o| o.as_str()),
            permissions.join(","),
            key.created_at,
            key.revoked_at
        ],
    )
    .map_err(|e| failed(e))?;
    Ok(())
}
