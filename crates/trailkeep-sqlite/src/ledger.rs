//! The sealer: folds committed events into each organisation's Merkle tree and signs checkpoints.
//!
//! Like the full-text indexer it follows the events table by row position, off the commit path, in a
//! database file of its own (`ledger.db`) with its own write lock. For each event it checks that the
//! `seq` is the next leaf of its organisation's tree, hashes the event's canonical bytes into a leaf,
//! appends it to the organisation's compact range, and stores its receipt (seq, id, receipt time, leaf
//! hash) and every perfect subtree the append completes — all in one transaction with its watermark. An organisation whose tree grew gets a
//! signed checkpoint at most every [`CHECKPOINT_INTERVAL`], so an acknowledged event is covered by a
//! signed checkpoint within about a second, and an idle log gets no new checkpoint.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use trailkeep_core::checkpoint::{Checkpoint, SignerSet};

use trailkeep_core::merkle::{CompactRange, Hash, NodeSource, leaf_hash};

const BATCH: i64 = 5000;
/// The least time between two checkpoints of one organisation.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);
/// How long the sealer lets commits gather before sealing them.
const SETTLE: Duration = Duration::from_millis(100);

/// How the sealer signs: the keys, and the deployment name that starts every checkpoint's origin line.
/// The set is shared with whoever rotates the keys, so a rotation reaches the sealer without a restart.
#[derive(Clone)]
pub struct Sealing {
    pub signers: Arc<SignerSet>,
    pub deployment: String,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealing").field("deployment", &self.deployment).field("signers", &self.signers).finish()
    }
}

/// The origin line of an organisation's checkpoints.
pub fn origin(deployment: &str, org: &str) -> String {
    format!("{deployment}/{org}")
}

/// The tree nodes of one organisation, read from a ledger connection.
pub struct LedgerNodes<'a> {
    pub conn: &'a Connection,
    pub org: &'a str,
    /// `ledger.` when the ledger is attached to a connection of the main database.
    pub schema: &'a str,
}

impl NodeSource for LedgerNodes<'_> {
    type Error = rusqlite::Error;

    fn node(&self, level: u8, index: u64) -> Result<Hash, rusqlite::Error> {
        let hash: Vec<u8> = if level == 0 {
            // Leaves are the receipts' hashes; leaf n-1 is the event with seq n.
            self.conn
                .prepare_cached(&format!("SELECT leaf FROM {}receipts WHERE org_id = ?1 AND seq = ?2", self.schema))?
                .query_row(params![self.org, index as i64 + 1], |r| r.get(0))?
        } else {
            self.conn
                .prepare_cached(&format!(
                    "SELECT hash FROM {}tree_nodes WHERE org_id = ?1 AND level = ?2 AND idx = ?3",
                    self.schema
                ))?
                .query_row(params![self.org, level, index as i64], |r| r.get(0))?
        };
        hash.try_into().map_err(|_| rusqlite::Error::InvalidColumnType(0, "hash".into(), rusqlite::types::Type::Blob))
    }
}

/// One event as the sealer reads it.
struct Row {
    pos: i64,
    org: String,
    seq: i64,
    id: Vec<u8>,
    received_at: i64,
    payload: String,
}

pub struct Sealer {
    main: Connection,
    ledger: Connection,
    sealing: Sealing,
    trees: HashMap<String, CompactRange>,
    last_signed: HashMap<String, Instant>,
    /// Organisations whose tree grew since their last checkpoint.
    unsigned: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(
        "organisation {org}: event seq {seq} arrived where leaf {expected} was due; the events table has a gap or a duplicate"
    )]
    OutOfOrder { org: String, seq: u64, expected: u64 },
    #[error("organisation {org}: cannot rebuild the tree's right edge: {message}")]
    Tree { org: String, message: String },
    #[error("signing a checkpoint failed: {0}")]
    Sign(String),
}

impl Sealer {
    pub fn open(main_path: &Path, ledger_path: &Path, sealing: Sealing) -> rusqlite::Result<Sealer> {
        let main =
            Connection::open_with_flags(main_path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        let ledger = Connection::open(ledger_path)?;
        ledger.pragma_update(None, "journal_mode", "WAL")?;
        // Everything here is derived from the events, deterministically: a transaction lost to a power
        // failure is sealed again from the watermark into the same receipts and roots, so a checkpoint
        // already handed out is re-issued with the same root and contradicts nothing a reader kept.
        // Durability against a process crash (WAL) is all the ledger needs.
        ledger.pragma_update(None, "synchronous", "NORMAL")?;
        ledger.busy_timeout(Duration::from_secs(5))?;
        Ok(Sealer {
            main,
            ledger,
            sealing,
            trees: HashMap::new(),
            last_signed: HashMap::new(),
            unsigned: BTreeSet::new(),
        })
    }

    fn tree(&mut self, org: &str) -> Result<&mut CompactRange, SealError> {
        if !self.trees.contains_key(org) {
            // Receipts are stored gap-free from seq 1, so the highest seq is the tree's size.
            let size: i64 =
                self.ledger
                    .query_row("SELECT COALESCE(MAX(seq), 0) FROM receipts WHERE org_id = ?1", [org], |r| r.get(0))?;
            let nodes = LedgerNodes { conn: &self.ledger, org, schema: "" };
            let range = CompactRange::from_nodes(size as u64, &nodes)
                .map_err(|e| SealError::Tree { org: org.to_owned(), message: e.to_string() })?;
            self.trees.insert(org.to_owned(), range);
        }
        Ok(self.trees.get_mut(org).expect("inserted above"))
    }

    /// Seals up to one batch of events past the watermark and signs the checkpoints that are due; returns
    /// how many events it sealed.
    pub fn step(&mut self) -> Result<usize, SealError> {
        let from: i64 = self.ledger.query_row("SELECT pos FROM watermark WHERE id = 1", [], |r| r.get(0))?;
        let mut rows: Vec<Row> = Vec::new();
        {
            let mut stmt = self.main.prepare_cached(
                "SELECT pos, org_id, seq, id, received_at, payload FROM events WHERE pos > ?1 ORDER BY pos LIMIT ?2",
            )?;
            let mut q = stmt.query(params![from, BATCH])?;
            while let Some(row) = q.next()? {
                rows.push(Row {
                    pos: row.get(0)?,
                    org: row.get(1)?,
                    seq: row.get(2)?,
                    id: row.get(3)?,
                    received_at: row.get(4)?,
                    payload: row.get(5)?,
                });
            }
        }
        let mut receipts: Vec<(usize, Hash)> = Vec::with_capacity(rows.len());
        let mut nodes: Vec<(String, u8, u64, Hash)> = Vec::with_capacity(rows.len());
        let mut grown: Vec<String> = Vec::new();
        for (i, Row { org, seq, payload, .. }) in rows.iter().enumerate() {
            // The payload is kept in its canonical form, which is the leaf data.
            let leaf = leaf_hash(payload.as_bytes());
            let tree = self.tree(org)?;
            if *seq as u64 != tree.size() + 1 {
                return Err(SealError::OutOfOrder { org: org.clone(), seq: *seq as u64, expected: tree.size() + 1 });
            }
            tree.append(leaf, |id, hash| {
                if id.level > 0 {
                    nodes.push((org.clone(), id.level, id.index, *hash));
                }
            });
            receipts.push((i, leaf));
            if grown.last() != Some(org) {
                grown.push(org.clone());
            }
        }
        self.unsigned.extend(grown);
        let now = Instant::now();
        let due: Vec<String> = self
            .unsigned
            .iter()
            .filter(|org| self.last_signed.get(*org).is_none_or(|at| now.duration_since(*at) >= CHECKPOINT_INTERVAL))
            .cloned()
            .collect();
        if rows.is_empty() && due.is_empty() {
            return Ok(0);
        }
        let mut checkpoints = Vec::with_capacity(due.len());
        for org in &due {
            let tree = &self.trees[org];
            let checkpoint = Checkpoint {
                origin: origin(&self.sealing.deployment, org),
                size: tree.size(),
                root: tree.root(),
                extensions: Vec::new(),
            };
            let note = self
                .sealing
                .signers
                .sign_note(&checkpoint.to_body(), std::time::SystemTime::now())
                .map_err(|e| SealError::Sign(e.to_string()))?;
            checkpoints.push((org.clone(), checkpoint, note));
        }
        let created_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let tx = self.ledger.transaction()?;
        {
            // A node that exists already with another hash means the history forked: the insert fails
            // on the primary key and nothing of this batch is kept.
            let mut insert = tx.prepare_cached(
                "INSERT INTO receipts (org_id, seq, id, received_at, leaf) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (i, leaf) in &receipts {
                let row = &rows[*i];
                insert.execute(params![row.org, row.seq, row.id, row.received_at, leaf.as_slice()])?;
            }
            let mut insert =
                tx.prepare_cached("INSERT INTO tree_nodes (org_id, level, idx, hash) VALUES (?1, ?2, ?3, ?4)")?;
            for (org, level, index, hash) in &nodes {
                insert.execute(params![org, level, *index as i64, hash.as_slice()])?;
            }
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO checkpoints (org_id, size, root, note, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (org, checkpoint, note) in &checkpoints {
                insert.execute(params![org, checkpoint.size as i64, checkpoint.root.as_slice(), note, created_at])?;
            }
            if let Some(last) = rows.last() {
                tx.execute("UPDATE watermark SET pos = ?1 WHERE id = 1", [last.pos])?;
            }
        }
        tx.commit()?;
        for (org, ..) in checkpoints {
            self.unsigned.remove(&org);
            self.last_signed.insert(org, now);
        }
        metrics::counter!("trailkeep_events_sealed_total").increment(rows.len() as u64);
        Ok(rows.len())
    }

    /// Seals until the writer hangs up, waking on each commit notice and every 100 ms, so that due
    /// checkpoints are signed even when no new event arrives. Sealing stops at the first event it cannot
    /// place: the log keeps accepting events, and the error repeats loudly until an operator looks.
    pub fn run(self, commits: mpsc::Receiver<()>) {
        let sealer = std::cell::RefCell::new(self);
        crate::follow::follow(
            commits,
            crate::follow::Pace {
                batch: BATCH as usize,
                idle_wait: Duration::from_millis(100),
                backoff: Duration::from_secs(1),
                // Checkpoints are due only every CHECKPOINT_INTERVAL: sealing in a few larger
                // transactions costs the writer's disk far less than one per commit.
                settle: SETTLE,
            },
            "sealing",
            || sealer.borrow_mut().step(),
            || sealer.borrow_mut().trees.clear(),
            |step| {
                // One last pass signs whatever is still due, however recently its organisation was signed.
                sealer.borrow_mut().last_signed.clear();
                let _ = step();
            },
        );
    }
}

/// The newest checkpoint of `org`, or the one of exactly `size` leaves.
pub fn read_checkpoint(
    conn: &Connection,
    org: &str,
    size: Option<u64>,
) -> rusqlite::Result<Option<trailkeep_store::StoredCheckpoint>> {
    let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, Vec<u8>, String, i64)> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    };
    let row = match size {
        None => conn
            .prepare_cached(
                "SELECT size, root, note, created_at FROM ledger.checkpoints WHERE org_id = ?1 ORDER BY size DESC LIMIT 1",
            )?
            .query_row([org], map)
            .optional()?,
        Some(n) => conn
            .prepare_cached("SELECT size, root, note, created_at FROM ledger.checkpoints WHERE org_id = ?1 AND size = ?2")?
            .query_row(params![org, n as i64], map)
            .optional()?,
    };
    Ok(row.map(|(size, root, note, created_at)| trailkeep_store::StoredCheckpoint {
        size: size as u64,
        root: root.try_into().unwrap_or([0; 32]),
        note,
        created_at,
    }))
}

fn receipt_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<trailkeep_store::Receipt> {
    let bad_blob =
        |column: usize| rusqlite::Error::InvalidColumnType(column, "blob".into(), rusqlite::types::Type::Blob);
    let id: Vec<u8> = r.get(1)?;
    let leaf: Vec<u8> = r.get(3)?;
    Ok(trailkeep_store::Receipt {
        seq: r.get::<_, i64>(0)? as u64,
        id: uuid::Uuid::from_slice(&id).map_err(|_| bad_blob(1))?,
        received_at: r.get(2)?,
        leaf: leaf.try_into().map_err(|_| bad_blob(3))?,
    })
}

/// The receipt of the event `id` of `org`, on a read connection with the ledger attached.
pub fn read_receipt(
    conn: &Connection,
    org: &str,
    id: uuid::Uuid,
) -> rusqlite::Result<Option<trailkeep_store::Receipt>> {
    conn.prepare_cached("SELECT seq, id, received_at, leaf FROM ledger.receipts WHERE org_id = ?1 AND id = ?2")?
        .query_row(params![org, id.as_bytes().as_slice()], receipt_from_row)
        .optional()
}

/// The receipts of seq `from..=to` of `org`, each with whatever payloads the events table holds under
/// its seq, on a read connection with the ledger attached.
pub fn read_sealed(
    conn: &Connection,
    org: &str,
    from: u64,
    to: u64,
) -> rusqlite::Result<Vec<trailkeep_store::SealedEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.seq, r.id, r.received_at, r.leaf, e.payload, p.by_seq FROM ledger.receipts r \
         LEFT JOIN events e ON e.org_id = r.org_id AND e.seq = r.seq \
         LEFT JOIN pruned p ON p.org_id = r.org_id AND p.seq = r.seq \
         WHERE r.org_id = ?1 AND r.seq BETWEEN ?2 AND ?3 ORDER BY r.seq, e.pos",
    )?;
    let rows = stmt.query_map(params![org, from as i64, to as i64], |r| {
        Ok(trailkeep_store::SealedEvent {
            receipt: receipt_from_row(r)?,
            payload: r.get(4)?,
            pruned_by: r.get::<_, Option<i64>>(5)?.map(|s| s as u64),
        })
    })?;
    rows.collect()
}

/// The size of every organisation's sealed tree. The writer never numbers an event below it, so that a
/// tail cut from the events table (or lost to a damaged file) cannot have its seqs handed out again to
/// other events: the cut stays visible as missing events, and new events are sealed after it.
pub fn sealed_sizes(ledger: &Connection) -> rusqlite::Result<HashMap<String, u64>> {
    let mut stmt = ledger.prepare("SELECT org_id, MAX(seq) FROM receipts GROUP BY org_id")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
    rows.collect()
}
