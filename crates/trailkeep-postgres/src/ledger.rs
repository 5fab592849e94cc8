//! The sealer: folds committed events into each organisation's Merkle tree and signs checkpoints, as the
//! SQLite engine's `ledger.rs` does, into the same receipts, tree nodes and checkpoints.
//!
//! It runs on one node of the deployment at a time ([`crate::follow`]). Each step asks which
//! organisations have events past their sealed size, reads them in `seq` order, checks that each `seq` is
//! the next leaf, hashes each event's stored JSON into its leaf, appends it to the organisation's compact
//! range, and stores the receipts (seq, id, receipt time, leaf hash), every perfect subtree the appends
//! complete, the new sealed size and any checkpoint due — in one transaction, with the organisations'
//! `follower_heads` rows locked. An organisation whose tree grew gets a signed checkpoint at most every
//! [`CHECKPOINT_INTERVAL`]. Receipts and tree nodes are insert-only, for the service's role too: a
//! rewritten history fails on their primary keys instead of overwriting.
//!
//! An organisation whose events cannot be placed (a gap or a repeated seq: rows removed or forged behind
//! the service's back) is left unsealed and reported at every step, without holding up the others.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::GenericClient;
use trailkeep_core::checkpoint::{Checkpoint, SignerSet};
use trailkeep_core::leaf::json_leaf_hash;
use trailkeep_core::merkle::{CompactRange, Hash, NodeId, root_nodes};
use trailkeep_store::{Receipt, SealedEvent, StoredCheckpoint};

use crate::FollowError;

/// The most events one step seals.
pub const BATCH: usize = 5000;
/// The most organisations one step looks at.
const MAX_ORGS: i64 = 500;
/// The least time between two checkpoints of one organisation.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

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

fn hash(bytes: Vec<u8>) -> Result<Hash, FollowError> {
    bytes.try_into().map_err(|_| FollowError::Damaged("a stored hash is not 32 bytes".into()))
}

/// The hashes of perfect subtrees of `org`'s tree, in the order asked for; `None` where none is stored.
/// Leaves are the receipts' hashes (leaf n-1 is the event with seq n).
pub async fn tree_nodes(
    client: &impl GenericClient,
    org: &str,
    ids: &[NodeId],
) -> Result<Vec<Option<Hash>>, FollowError> {
    let leaves: Vec<i64> = ids.iter().filter(|id| id.level == 0).map(|id| id.index as i64 + 1).collect();
    let (levels, indexes): (Vec<i16>, Vec<i64>) =
        ids.iter().filter(|id| id.level > 0).map(|id| (i16::from(id.level), id.index as i64)).unzip();
    let mut found: HashMap<NodeId, Hash> = HashMap::new();
    if !leaves.is_empty() {
        for row in
            client.query("SELECT seq, leaf FROM receipts WHERE org_id = $1 AND seq = ANY($2)", &[&org, &leaves]).await?
        {
            found.insert(NodeId::new(0, row.get::<_, i64>(0) as u64 - 1), hash(row.get(1))?);
        }
    }
    if !levels.is_empty() {
        for row in client
            .query(
                "SELECT t.level, t.idx, t.hash FROM tree_nodes t \
                 JOIN unnest($2::int2[], $3::int8[]) AS n(level, idx) ON t.level = n.level AND t.idx = n.idx \
                 WHERE t.org_id = $1",
                &[&org, &levels, &indexes],
            )
            .await?
        {
            found.insert(NodeId::new(row.get::<_, i16>(0) as u8, row.get::<_, i64>(1) as u64), hash(row.get(2))?);
        }
    }
    Ok(ids.iter().map(|id| found.get(id).copied()).collect())
}

/// One event as the sealer reads it.
struct Row {
    seq: i64,
    id: uuid::Uuid,
    received_at: i64,
    payload: String,
}

pub struct Sealer {
    sealing: Sealing,
    trees: HashMap<String, CompactRange>,
    last_signed: HashMap<String, Instant>,
    /// Organisations whose tree grew since their last checkpoint.
    unsigned: BTreeSet<String>,
}

impl Sealer {
    pub fn new(sealing: Sealing) -> Sealer {
        Sealer { sealing, trees: HashMap::new(), last_signed: HashMap::new(), unsigned: BTreeSet::new() }
    }

    /// The right edge of `org`'s tree of `size` leaves, from memory or rebuilt from its peaks.
    async fn tree(&self, client: &impl GenericClient, org: &str, size: u64) -> Result<CompactRange, FollowError> {
        if let Some(tree) = self.trees.get(org).filter(|t| t.size() == size) {
            return Ok(tree.clone());
        }
        let ids = root_nodes(size);
        let peaks =
            tree_nodes(client, org, &ids).await?.into_iter().collect::<Option<Vec<Hash>>>().ok_or_else(|| {
                FollowError::Damaged(format!("organisation {org}: a node of the tree's right edge is missing"))
            })?;
        CompactRange::from_peaks(size, peaks).map_err(|e| FollowError::Damaged(format!("organisation {org}: {e}")))
    }

    fn sign(&self, org: &str, tree: &CompactRange) -> Result<(Checkpoint, String), FollowError> {
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
            .map_err(|e| FollowError::Sign(e.to_string()))?;
        Ok((checkpoint, note))
    }
}

impl crate::follow::Follower for Sealer {
    const WHAT: &'static str = "sealer";
    const LOCK: i64 = 0x5452_4b4c_5345_414c; // "TRKLSEAL"

    async fn step(&mut self, client: &mut tokio_postgres::Client) -> Result<usize, FollowError> {
        let stale = client.query("SELECT org_id, done, last_seq FROM tk_stale_orgs('seal', $1)", &[&MAX_ORGS]).await?;
        let mut work: Vec<(String, i64)> = Vec::new();
        let mut budget = BATCH as i64;
        for row in &stale {
            if budget == 0 {
                break;
            }
            let (org, done, last): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
            let hi = last.min(done + budget);
            budget -= hi - done;
            work.push((org, hi));
        }
        let now = Instant::now();
        let due =
            |org: &String| self.last_signed.get(org).is_none_or(|at| now.duration_since(*at) >= CHECKPOINT_INTERVAL);
        let waiting: Vec<String> =
            self.unsigned.iter().filter(|o| due(o) && !work.iter().any(|(w, _)| w == *o)).cloned().collect();
        if work.is_empty() && waiting.is_empty() {
            return Ok(0);
        }
        let orgs: Vec<String> = work.iter().map(|(o, _)| o.clone()).chain(waiting.iter().cloned()).collect();
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT set_config('trailkeep.org', $1, true), set_config('trailkeep.projects', '*', true)",
            &[&orgs.join(",")],
        )
        .await?;
        let mut sorted = orgs.clone();
        sorted.sort();
        let heads: HashMap<String, i64> = tx
            .query(
                "INSERT INTO follower_heads (follower, org_id, done) SELECT 'seal', o, 0 FROM unnest($1::text[]) o \
                 ORDER BY o ON CONFLICT (follower, org_id) DO UPDATE SET done = follower_heads.done \
                 RETURNING org_id, done",
                &[&sorted],
            )
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();

        let mut receipts = Receipts::default();
        let mut nodes = Nodes::default();
        let mut grown: Vec<(String, CompactRange)> = Vec::new();
        let mut sealed = 0;
        for (org, hi) in &work {
            let done = heads.get(org).copied().unwrap_or(0);
            if done >= *hi {
                continue;
            }
            let rows: Vec<Row> = tx
                .query(
                    "SELECT seq, id, received_at, payload FROM events WHERE org_id = $1 AND seq > $2 AND seq <= $3 \
                     ORDER BY seq",
                    &[org, &done, hi],
                )
                .await?
                .into_iter()
                .map(|r| Row { seq: r.get(0), id: r.get(1), received_at: r.get(2), payload: r.get(3) })
                .collect();
            let mut tree = self.tree(&tx, org, done as u64).await?;
            let mut org_receipts = Receipts::default();
            let mut org_nodes = Nodes::default();
            let placed = (|| {
                for row in &rows {
                    if row.seq as u64 != tree.size() + 1 {
                        return Err(format!(
                            "event seq {} arrived where leaf {} was due; the events table has a gap or a duplicate",
                            row.seq,
                            tree.size() + 1
                        ));
                    }
                    // The payload is the event exactly as the API returns it, so its canonical form is the leaf.
                    let leaf = json_leaf_hash(&row.payload).map_err(|e| format!("event seq {}: {e}", row.seq))?;
                    tree.append(leaf, |id, hash| {
                        if id.level > 0 {
                            org_nodes.push(org, id, hash);
                        }
                    });
                    org_receipts.push(org, row, &leaf);
                }
                if (tree.size() as i64) < *hi {
                    return Err(format!("events up to seq {hi} were committed but only {} are there", tree.size()));
                }
                Ok(())
            })();
            if let Err(message) = placed {
                tracing::error!(org = %org, "sealing stopped for this organisation: {message}");
                continue;
            }
            sealed += rows.len();
            receipts.extend(org_receipts);
            nodes.extend(org_nodes);
            grown.push((org.clone(), tree));
        }
        let mut signed = Vec::new();
        for (org, tree) in &grown {
            if due(org) {
                signed.push((org.clone(), self.sign(org, tree)?));
            }
        }
        for org in &waiting {
            let size = heads.get(org).copied().unwrap_or(0) as u64;
            let tree = self.tree(&tx, org, size).await?;
            signed.push((org.clone(), self.sign(org, &tree)?));
        }
        receipts.insert(&tx).await?;
        nodes.insert(&tx).await?;
        let (head_orgs, head_sizes): (Vec<&str>, Vec<i64>) =
            grown.iter().map(|(o, t)| (o.as_str(), t.size() as i64)).unzip();
        tx.execute(
            "UPDATE follower_heads h SET done = v.done FROM unnest($1::text[], $2::int8[]) AS v(org, done) \
             WHERE h.follower = 'seal' AND h.org_id = v.org",
            &[&head_orgs, &head_sizes],
        )
        .await?;
        let created_at = crate::now_ms();
        for (org, (checkpoint, note)) in &signed {
            tx.execute(
                "INSERT INTO checkpoints (org_id, size, root, note, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT DO NOTHING",
                &[org, &(checkpoint.size as i64), &checkpoint.root.as_slice(), note, &created_at],
            )
            .await?;
        }
        tx.commit().await?;
        for (org, tree) in grown {
            self.unsigned.insert(org.clone());
            self.trees.insert(org, tree);
        }
        for (org, _) in signed {
            self.unsigned.remove(&org);
            self.last_signed.insert(org, now);
        }
        metrics::counter!("trailkeep_events_sealed_total").increment(sealed as u64);
        // Checkpoints still waiting for their interval keep the follower stepping.
        Ok(sealed.max(usize::from(!self.unsigned.is_empty())))
    }

    fn reset(&mut self) {
        self.trees.clear();
    }

    fn finish(&mut self) {
        // The last pass signs whatever is still due, however recently its organisation was signed.
        self.last_signed.clear();
    }
}

/// Receipts to insert, column by column.
#[derive(Default)]
struct Receipts {
    org: Vec<String>,
    seq: Vec<i64>,
    id: Vec<uuid::Uuid>,
    received_at: Vec<i64>,
    leaf: Vec<Vec<u8>>,
}

impl Receipts {
    fn push(&mut self, org: &str, row: &Row, leaf: &Hash) {
        self.org.push(org.to_owned());
        self.seq.push(row.seq);
        self.id.push(row.id);
        self.received_at.push(row.received_at);
        self.leaf.push(leaf.to_vec());
    }

    fn extend(&mut self, other: Receipts) {
        self.org.extend(other.org);
        self.seq.extend(other.seq);
        self.id.extend(other.id);
        self.received_at.extend(other.received_at);
        self.leaf.extend(other.leaf);
    }

    async fn insert(&self, tx: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
        if !self.seq.is_empty() {
            tx.execute(
                "INSERT INTO receipts (org_id, seq, id, received_at, leaf) \
                 SELECT * FROM unnest($1::text[], $2::int8[], $3::uuid[], $4::int8[], $5::bytea[])",
                &[&self.org, &self.seq, &self.id, &self.received_at, &self.leaf],
            )
            .await?;
        }
        Ok(())
    }
}

/// Tree nodes to insert, column by column.
#[derive(Default)]
struct Nodes {
    org: Vec<String>,
    level: Vec<i16>,
    idx: Vec<i64>,
    hash: Vec<Vec<u8>>,
}

impl Nodes {
    fn push(&mut self, org: &str, id: NodeId, hash: &Hash) {
        self.org.push(org.to_owned());
        self.level.push(i16::from(id.level));
        self.idx.push(id.index as i64);
        self.hash.push(hash.to_vec());
    }

    fn extend(&mut self, other: Nodes) {
        self.org.extend(other.org);
        self.level.extend(other.level);
        self.idx.extend(other.idx);
        self.hash.extend(other.hash);
    }

    async fn insert(&self, tx: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
        if !self.idx.is_empty() {
            tx.execute(
                "INSERT INTO tree_nodes (org_id, level, idx, hash) \
                 SELECT * FROM unnest($1::text[], $2::int2[], $3::int8[], $4::bytea[])",
                &[&self.org, &self.level, &self.idx, &self.hash],
            )
            .await?;
        }
        Ok(())
    }
}

/// The newest checkpoint of `org`, or the one of exactly `size` leaves.
pub async fn read_checkpoint(
    client: &impl GenericClient,
    org: &str,
    size: Option<u64>,
) -> Result<Option<StoredCheckpoint>, FollowError> {
    let row =
        match size {
            None => client
                .query_opt(
                    "SELECT size, root, note, created_at FROM checkpoints WHERE org_id = $1 ORDER BY size DESC LIMIT 1",
                    &[&org],
                )
                .await?,
            Some(n) => {
                client
                    .query_opt(
                        "SELECT size, root, note, created_at FROM checkpoints WHERE org_id = $1 AND size = $2",
                        &[&org, &(n as i64)],
                    )
                    .await?
            }
        };
    row.map(|r| {
        Ok(StoredCheckpoint {
            size: r.get::<_, i64>(0) as u64,
            root: hash(r.get(1))?,
            note: r.get(2),
            created_at: r.get(3),
        })
    })
    .transpose()
}

fn receipt_from_row(r: &tokio_postgres::Row) -> Result<Receipt, FollowError> {
    Ok(Receipt { seq: r.get::<_, i64>(0) as u64, id: r.get(1), received_at: r.get(2), leaf: hash(r.get(3))? })
}

/// The receipt of the event `id` of `org`.
pub async fn read_receipt(
    client: &impl GenericClient,
    org: &str,
    id: uuid::Uuid,
) -> Result<Option<Receipt>, FollowError> {
    client
        .query_opt(
            "SELECT seq, id, received_at, leaf FROM receipts WHERE org_id = $1 AND id = $2 LIMIT 1",
            &[&org, &id],
        )
        .await?
        .map(|r| receipt_from_row(&r))
        .transpose()
}

/// The receipts of seq `from..=to` of `org`, each with whatever payloads the events table holds under its
/// seq and, for an event retention deleted, the seq of the `retention.deleted` event recording it.
pub async fn read_sealed(
    client: &impl GenericClient,
    org: &str,
    from: u64,
    to: u64,
) -> Result<Vec<SealedEvent>, FollowError> {
    let rows = client
        .query(
            "SELECT r.seq, r.id, r.received_at, r.leaf, e.payload, p.by_seq FROM receipts r \
             LEFT JOIN events e ON e.org_id = r.org_id AND e.seq = r.seq \
             LEFT JOIN pruned p ON p.org_id = r.org_id AND p.seq = r.seq \
             WHERE r.org_id = $1 AND r.seq BETWEEN $2 AND $3 ORDER BY r.seq, e.received_at, e.id",
            &[&org, &(from.min(i64::MAX as u64) as i64), &(to.min(i64::MAX as u64) as i64)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(SealedEvent {
                receipt: receipt_from_row(r)?,
                payload: r.get(4),
                pruned_by: r.get::<_, Option<i64>>(5).map(|s| s as u64),
            })
        })
        .collect()
}
