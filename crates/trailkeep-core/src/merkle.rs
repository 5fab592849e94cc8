//! Merkle trees over an organisation's log, hashed as RFC 9162 (the successor of RFC 6962) defines them,
//! and the proofs that let a reader check the log without trusting the server that holds it.
//!
//! # Hashing
//!
//! The event with sequence number `n` is leaf `n - 1`. A leaf's hash is `SHA-256(0x00 || data)` and an
//! interior node's hash is `SHA-256(0x01 || left || right)`, so a leaf can never be passed off as a node.
//! The root of a tree of `n` leaves, `MTH(D[n])`, is `SHA-256("")` for the empty tree, the leaf hash for a
//! single leaf, and otherwise the node hash of `MTH(D[0:k])` and `MTH(D[k:n])` where `k` is the largest
//! power of two smaller than `n`. Everything in this module works on leaf hashes: what a leaf's data is
//! (the canonical bytes of an event) is decided elsewhere.
//!
//! # Node coordinates
//!
//! A *perfect* subtree is one whose leaves number a power of two and whose first leaf is a multiple of that
//! power. [`NodeId`] names it by `level` and `index`: it covers leaves `index * 2^level` up to, but not
//! including, `(index + 1) * 2^level`. Level 0 holds the leaf hashes, and node `(l + 1, i)` is the node hash
//! of nodes `(l, 2i)` and `(l, 2i + 1)`. Perfect subtrees never change once their last leaf is appended,
//! which is why a store can write each of them once and keep it forever.
//!
//! Every subtree that RFC 9162 ever hashes is either perfect or lies on the right edge of the tree, and a
//! right-edge subtree is the right-to-left fold, with the node hash, of the perfect subtrees that the binary
//! digits of its size pick out. So any root, sibling or proof element is computed from `O(log n)` perfect
//! nodes, which a [`NodeSource`] supplies.
//!
//! # Proofs
//!
//! * An **inclusion proof** for leaf `index` in a tree of `tree_size` leaves is RFC 9162 §2.1.3.1's
//!   `PATH(index, D[tree_size])`: the sibling hashes on the way from the leaf up to the root, nearest the
//!   leaf first. It is checked with [`verify_inclusion`] (§2.1.3.2).
//! * A **consistency proof** from tree size `m` to tree size `n` is §2.1.4.1's `PROOF(m, D[n])`. It is
//!   empty when `m` is 0 or `m == n`, and is checked with [`verify_consistency`] (§2.1.4.2).
//! * A **range proof** shows that the leaves `start..end`, given in full, are the leaves at those positions
//!   of a tree of `tree_size` leaves with a given root. It is what a self-proving export carries next to its
//!   events. It is defined by walking the tree of RFC 9162 from the root, visiting the left child before the
//!   right child, and looking at each subtree covering leaves `lo..hi`:
//!   - if `lo..hi` lies wholly outside `start..end`, the proof holds `MTH(D[lo:hi])` and the walk does not
//!     go below that subtree;
//!   - if `lo..hi` lies wholly inside `start..end`, the proof holds nothing, because the reader computes
//!     that subtree from the leaves it was given;
//!   - otherwise the walk goes on into the two children, split at `lo + k` where `k` is the largest power of
//!     two smaller than `hi - lo`.
//!
//!   The proof is the hashes so collected, in the order the walk meets them. It holds at most two hashes per
//!   level of the tree, so `O(log n)` of them. For example, for leaves `2..5` of a tree of 7, the walk meets
//!   `0..2` (outside), `2..4` (inside), `4..5` (inside), `5..6` (outside) and `6..7` (outside), so the proof
//!   is `[node(1, 0), leaf 5, leaf 6]`. The range must not be empty: `start < end <= tree_size`. It is
//!   checked with [`verify_range`], which walks the same way, takes hashes from the proof in order, and
//!   fails unless the leaves and the proof are used up exactly and the result is the expected root.
//!
//! Verification can only tell which tree sizes and indices a proof was made for through the root it leads
//! to: proofs for some neighbouring sizes have the same shape (an inclusion proof for leaf 0 reads the same
//! in trees of 7 and of 8 leaves). That is why a checkpoint signs the size together with the root, and why
//! a reader takes both from the same checkpoint.
//!
//! # Storing the tree
//!
//! A writer keeps a [`CompactRange`], the roots of the `O(log n)` perfect subtrees along the right edge of
//! the tree, and feeds it each new leaf hash. [`CompactRange::append`] reports the leaf and every perfect
//! subtree that the leaf completes (two nodes per leaf on average, `2n - popcount(n)` in all). A store that
//! writes exactly those, keyed by organisation, level and index, in the same transaction as the events they
//! cover, has every node a proof needs. The nodes are immutable: a write that finds a node already present
//! with another hash means the log has forked and must stop. Level 0 may instead be served from a leaf hash
//! kept with each event. After a restart, [`CompactRange::from_nodes`] rebuilds the writer's state from the
//! store in `popcount(n)` reads. A store answering over a network can fetch a proof's nodes in one query:
//! [`inclusion_proof_nodes`], [`consistency_proof_nodes`], [`range_proof_nodes`] and [`root_nodes`] list
//! them, and a `HashMap<NodeId, Hash>` of the results is itself a [`NodeSource`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::BuildHasher;

use sha2::{Digest, Sha256};

/// A SHA-256 hash: of a leaf, of an interior node, or of a whole tree.
pub type Hash = [u8; 32];

/// The root of the empty tree, `SHA-256("")`.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41,
    0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Hashes a leaf's data: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    hasher.finalize().into()
}

/// Hashes an interior node from its children: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the tree whose leaves have the given hashes, `MTH` in RFC 9162.
///
/// This takes linear time and logarithmic memory; a writer that appends leaf by leaf should keep a
/// [`CompactRange`] instead.
pub fn root(leaves: &[Hash]) -> Hash {
    let mut range = CompactRange::new();
    for leaf in leaves {
        range.push(*leaf);
    }
    range.root()
}

/// Where a perfect subtree sits: it covers leaves `index * 2^level` up to `(index + 1) * 2^level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// The height above the leaves: 0 for a leaf, 1 for a pair of leaves, and so on up to 63.
    pub level: u8,
    /// The position among the nodes of the same level, counting from the left.
    pub index: u64,
}

impl NodeId {
    /// Names the perfect subtree at `level` and `index`.
    pub fn new(level: u8, index: u64) -> NodeId {
        NodeId { level, index }
    }
}

/// Gives the hashes of perfect subtrees, so that roots and proofs need only `O(log n)` of them.
///
/// A store implements this over the nodes it persisted from [`CompactRange::append`]; [`MemoryTree`] and
/// `HashMap<NodeId, Hash>` implement it in memory.
pub trait NodeSource {
    /// Why a node could not be read.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The hash of the perfect subtree at `level` and `index` (see [`NodeId`]).
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;

    /// The hashes of several perfect subtrees, in the order asked for. The default asks [`NodeSource::node`]
    /// for each in turn; a store may answer them all with one query instead.
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error> {
        ids.iter().map(|id| self.node(id.level, id.index)).collect()
    }
}

impl<S: NodeSource + ?Sized> NodeSource for &S {
    type Error = S::Error;

    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        (**self).node(level, index)
    }

    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error> {
        (**self).nodes(ids)
    }
}

/// An in-memory node source was asked for a node it does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no tree node at level {level} index {index}")]
pub struct MissingNode {
    /// The level of the node asked for.
    pub level: u8,
    /// The index of the node asked for.
    pub index: u64,
}

impl<S: BuildHasher> NodeSource for HashMap<NodeId, Hash, S> {
    type Error = MissingNode;

    fn node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        self.get(&NodeId { level, index }).copied().ok_or(MissingNode { level, index })
    }
}

/// The right edge of a tree: the roots of the perfect subtrees that its size's binary digits pick out,
/// largest (leftmost) first.
///
/// It takes `O(log n)` memory, appends a leaf with amortised constant work and gives the root of the
/// tree so far in `O(log n)`. It is the state a log writer keeps between appends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    peaks: Vec<Hash>,
}

/// Why a compact range could not be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactRangeError<E = Infallible> {
    #[error("a tree of {size} leaves has {expected} peaks, not {actual}")]
    WrongPeakCount { size: u64, expected: usize, actual: usize },
    #[error("reading a tree node failed")]
    Nodes(#[source] E),
    #[error("node source returned {actual} hashes for {expected} nodes")]
    WrongNodeCount { expected: usize, actual: usize },
}

impl CompactRange {
    /// The right edge of the empty tree.
    pub fn new() -> CompactRange {
        CompactRange::default()
    }

    /// Rebuilds the right edge of a tree of `size` leaves from its peaks, as [`CompactRange::peaks`] gave
    /// them.
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Result<CompactRange, CompactRangeError> {
        let expected = size.count_ones() as usize;
        if peaks.len() != expected {
            return Err(CompactRangeError::WrongPeakCount { size, expected, actual: peaks.len() });
        }
        Ok(CompactRange { size, peaks })
    }

    /// Rebuilds the right edge of a tree of `size` leaves by reading its peaks from a node source.
    pub fn from_nodes<S: NodeSource>(size: u64, nodes: &S) -> Result<CompactRange, CompactRangeError<S::Error>> {
        let ids = root_nodes(size);
        let peaks = nodes.nodes(&ids).map_err(CompactRangeError::Nodes)?;
        if peaks.len() != ids.len() {
            return Err(CompactRangeError::WrongNodeCount { expected: ids.len(), actual: peaks.len() });
        }
        Ok(CompactRange { size, peaks })
    }

    /// How many leaves have been appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the perfect subtrees along the right edge, largest first; [`root_nodes`] says where
    /// each sits.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends a leaf hash, telling `completed` about the leaf itself and then every perfect subtree that it
    /// completes, from the bottom up. A store that persists what it is told has every node a proof needs.
    ///
    /// # Panics
    ///
    /// If the tree already holds `u64::MAX` leaves.
    pub fn append(&mut self, leaf_hash: Hash, mut completed: impl FnMut(NodeId, &Hash)) {
        assert!(self.size < u64::MAX, "a tree cannot hold more than u64::MAX leaves");
        let mut index = self.size;
        let mut level = 0u8;
        let mut hash = leaf_hash;
        completed(NodeId { level, index }, &hash);
        // Each trailing one bit of the old size is a peak of the same height as the new node, which the new
        // node now completes into a subtree twice as large.
        while index & 1 == 1 {
            let left = self.peaks.pop().expect("a set bit of the size has a peak");
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            completed(NodeId { level, index }, &hash);
        }
        self.peaks.push(hash);
        self.size += 1;
    }

    /// Appends a leaf hash when only the root is wanted.
    pub fn push(&mut self, leaf_hash: Hash) {
        self.append(leaf_hash, |_, _| {});
    }

    /// The root of the tree of the leaves appended so far.
    pub fn root(&self) -> Hash {
        fold_right(&self.peaks).unwrap_or(EMPTY_ROOT)
    }
}

/// A whole tree in memory: every perfect subtree of every level. For tests, and for checking small
/// exports, where holding `2n` hashes is no burden.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    range: CompactRange,
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    /// The tree of the given leaf hashes.
    pub fn from_leaves(leaf_hashes: impl IntoIterator<Item = Hash>) -> MemoryTree {
        let mut tree = MemoryTree::new();
        for leaf in leaf_hashes {
            tree.push(leaf);
        }
        tree
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf_hash: Hash) {
        let levels = &mut self.levels;
        self.range.append(leaf_hash, |id, hash| {
            let level = usize::from(id.level);
            if levels.len() <= level {
                levels.resize_with(level + 1, Vec::new);
            }
            debug_assert_eq!(levels[level].len() as u64, id.index);
            levels[level].push(*hash);
        });
    }

    /// How many leaves the tree holds.
    pub fn size(&self) -> u64 {
        self.range.size()
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        self.range.root()
    }

    /// The hash of leaf `index`, if the tree has that many leaves.
    pub fn leaf(&self, index: u64) -> Option<&Hash> {
        self.levels.first()?.get(usize::try_from(index).ok()?)
    }

    /// The right edge of the whole tree, for appending to it elsewhere.
    pub fn compact_range(&self) -> &CompactRange {
        &self.range
    }
}

impl NodeSource for MemoryTree {
    type Error = MissingNode;

    fn node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        let found = self.levels.get(usize::from(level)).and_then(|nodes| nodes.get(usize::try_from(index).ok()?));
        found.copied().ok_or(MissingNode { level, index })
    }
}

/// Why a proof could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError<E = Infallible> {
    #[error("leaf index {index} is outside a tree of {tree_size} leaves")]
    IndexOutOfRange { index: u64, tree_size: u64 },
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    SizesOutOfOrder { old_size: u64, new_size: u64 },
    #[error("range {start}..{end} is empty or reaches past a tree of {tree_size} leaves")]
    InvalidRange { start: u64, end: u64, tree_size: u64 },
    #[error("reading a tree node failed")]
    Nodes(#[source] E),
    #[error("node source returned {actual} hashes for {expected} nodes")]
    WrongNodeCount { expected: usize, actual: usize },
}

impl ProofError {
    /// Carries an argument error over to a proof error of any node source.
    fn widen<E>(self) -> ProofError<E> {
        match self {
            ProofError::IndexOutOfRange { index, tree_size } => ProofError::IndexOutOfRange { index, tree_size },
            ProofError::SizesOutOfOrder { old_size, new_size } => ProofError::SizesOutOfOrder { old_size, new_size },
            ProofError::InvalidRange { start, end, tree_size } => ProofError::InvalidRange { start, end, tree_size },
            ProofError::Nodes(never) => match never {},
            ProofError::WrongNodeCount { expected, actual } => ProofError::WrongNodeCount { expected, actual },
        }
    }
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("leaf index {index} is outside a tree of {tree_size} leaves")]
    IndexOutOfRange { index: u64, tree_size: u64 },
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    SizesOutOfOrder { old_size: u64, new_size: u64 },
    #[error("range {start}..{end} is empty or reaches past a tree of {tree_size} leaves")]
    InvalidRange { start: u64, end: u64, tree_size: u64 },
    #[error("range of {expected} leaves came with {actual} leaf hashes")]
    WrongLeafCount { expected: u64, actual: usize },
    #[error("proof has {actual} hashes where {expected} are needed")]
    WrongProofLength { expected: usize, actual: usize },
    #[error("proof does not lead to the expected root")]
    RootMismatch,
}

/// The perfect subtrees a proof or root reads, grouped by the hash they make: each group is folded from
/// right to left into one element of the proof.
#[derive(Debug, Default)]
struct Plan {
    ids: Vec<NodeId>,
    groups: Vec<std::ops::Range<usize>>,
}

impl Plan {
    /// Adds the subtree covering leaves `lo..hi`, which must be perfect or on the right edge of a subtree
    /// that is, as every subtree RFC 9162 hashes is.
    fn push_subtree(&mut self, lo: u64, hi: u64) {
        debug_assert!(lo < hi);
        let first = self.ids.len();
        let mut pos = lo;
        let mut len = hi - lo;
        while len > 0 {
            let level = 63 - len.leading_zeros();
            debug_assert_eq!(pos % (1u64 << level), 0, "subtree {lo}..{hi} is not aligned");
            self.ids.push(NodeId { level: level as u8, index: pos >> level });
            pos += 1 << level;
            len -= 1 << level;
        }
        self.groups.push(first..self.ids.len());
    }

    fn resolve<S: NodeSource>(self, nodes: &S) -> Result<Vec<Hash>, ProofError<S::Error>> {
        if self.ids.is_empty() {
            return Ok(Vec::new());
        }
        let hashes = nodes.nodes(&self.ids).map_err(ProofError::Nodes)?;
        if hashes.len() != self.ids.len() {
            return Err(ProofError::WrongNodeCount { expected: self.ids.len(), actual: hashes.len() });
        }
        Ok(self
            .groups
            .into_iter()
            .map(|group| fold_right(&hashes[group]).expect("a subtree has at least one node"))
            .collect())
    }
}

/// Folds hashes from the right with the node hash: `[a, b, c]` becomes `node(a, node(b, c))`.
fn fold_right(hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = hashes.split_last()?;
    Some(rest.iter().rev().fold(*last, |acc, left| node_hash(left, &acc)))
}

/// The largest power of two smaller than `n`, where the tree of `n >= 2` leaves splits.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

fn inclusion_plan(index: u64, tree_size: u64) -> Result<Plan, ProofError> {
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    // Walk from the root down to the leaf, noting each sibling; the proof lists them from the leaf up.
    let mut siblings = Vec::new();
    let (mut lo, mut n, mut m) = (0u64, tree_size, index);
    while n > 1 {
        let k = split(n);
        if m < k {
            siblings.push((lo + k, lo + n));
            n = k;
        } else {
            siblings.push((lo, lo + k));
            lo += k;
            m -= k;
            n -= k;
        }
    }
    let mut plan = Plan::default();
    for (lo, hi) in siblings.into_iter().rev() {
        plan.push_subtree(lo, hi);
    }
    Ok(plan)
}

fn consistency_plan(old_size: u64, new_size: u64) -> Result<Plan, ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder { old_size, new_size });
    }
    let mut plan = Plan::default();
    if old_size == 0 || old_size == new_size {
        return Ok(plan);
    }
    // SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1, unrolled: walk down from the root and list what each step
    // contributes, then reverse, since each step's contribution follows those of the steps below it.
    let mut parts = Vec::new();
    let (mut lo, mut n, mut m, mut whole_old_tree) = (0u64, new_size, old_size, true);
    loop {
        if m == n {
            // The old tree's root is known to the verifier only while the walk has not left the left edge.
            if !whole_old_tree {
                parts.push((lo, lo + n));
            }
            break;
        }
        let k = split(n);
        if m <= k {
            parts.push((lo + k, lo + n));
            n = k;
        } else {
            parts.push((lo, lo + k));
            lo += k;
            m -= k;
            n -= k;
            whole_old_tree = false;
        }
    }
    for (lo, hi) in parts.into_iter().rev() {
        plan.push_subtree(lo, hi);
    }
    Ok(plan)
}

fn check_range(start: u64, end: u64, tree_size: u64) -> Result<(), ProofError> {
    if start < end && end <= tree_size { Ok(()) } else { Err(ProofError::InvalidRange { start, end, tree_size }) }
}

fn range_plan(start: u64, end: u64, tree_size: u64) -> Result<Plan, ProofError> {
    check_range(start, end, tree_size)?;
    fn walk(lo: u64, hi: u64, start: u64, end: u64, plan: &mut Plan) {
        if hi <= start || end <= lo {
            plan.push_subtree(lo, hi);
        } else if start <= lo && hi <= end {
            // The reader computes this subtree from the leaves themselves.
        } else {
            let k = split(hi - lo);
            walk(lo, lo + k, start, end, plan);
            walk(lo + k, hi, start, end, plan);
        }
    }
    let mut plan = Plan::default();
    walk(0, tree_size, start, end, &mut plan);
    Ok(plan)
}

/// The perfect subtrees whose hashes make up the root of a tree of `tree_size` leaves, largest first: the
/// peaks of its [`CompactRange`].
pub fn root_nodes(tree_size: u64) -> Vec<NodeId> {
    let mut plan = Plan::default();
    if tree_size > 0 {
        plan.push_subtree(0, tree_size);
    }
    plan.ids
}

/// The root of the first `tree_size` leaves of the tree that `nodes` holds, read in `O(log n)`.
pub fn root_at<S: NodeSource>(tree_size: u64, nodes: &S) -> Result<Hash, ProofError<S::Error>> {
    if tree_size == 0 {
        return Ok(EMPTY_ROOT);
    }
    let mut plan = Plan::default();
    plan.push_subtree(0, tree_size);
    Ok(plan.resolve(nodes)?.pop().expect("one subtree gives one hash"))
}

/// The perfect subtrees that [`inclusion_proof`] reads, for fetching them in one go.
pub fn inclusion_proof_nodes(index: u64, tree_size: u64) -> Result<Vec<NodeId>, ProofError> {
    Ok(inclusion_plan(index, tree_size)?.ids)
}

/// The inclusion proof of leaf `index` in the tree of the first `tree_size` leaves, in the order of RFC
/// 9162 §2.1.3.1: the sibling nearest the leaf first.
pub fn inclusion_proof<S: NodeSource>(
    index: u64,
    tree_size: u64,
    nodes: &S,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    inclusion_plan(index, tree_size).map_err(ProofError::widen)?.resolve(nodes)
}

/// The perfect subtrees that [`consistency_proof`] reads, for fetching them in one go.
pub fn consistency_proof_nodes(old_size: u64, new_size: u64) -> Result<Vec<NodeId>, ProofError> {
    Ok(consistency_plan(old_size, new_size)?.ids)
}

/// The proof that the tree of the first `old_size` leaves is a prefix of the tree of the first `new_size`
/// leaves, as RFC 9162 §2.1.4.1 defines it. It is empty when `old_size` is 0 or equals `new_size`.
pub fn consistency_proof<S: NodeSource>(
    old_size: u64,
    new_size: u64,
    nodes: &S,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    consistency_plan(old_size, new_size).map_err(ProofError::widen)?.resolve(nodes)
}

/// The perfect subtrees that [`range_proof`] reads, for fetching them in one go.
pub fn range_proof_nodes(start: u64, end: u64, tree_size: u64) -> Result<Vec<NodeId>, ProofError> {
    Ok(range_plan(start, end, tree_size)?.ids)
}

/// The proof that leaves `start..end` belong, at those positions, to the tree of the first `tree_size`
/// leaves: the hashes of the subtrees outside the range, in the order the module documentation gives.
pub fn range_proof<S: NodeSource>(
    start: u64,
    end: u64,
    tree_size: u64,
    nodes: &S,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    range_plan(start, end, tree_size).map_err(ProofError::widen)?.resolve(nodes)
}

/// How many hashes an inclusion proof for `index` in a tree of `tree_size > index` leaves holds.
fn inclusion_proof_len(index: u64, tree_size: u64) -> usize {
    let (mut n, mut m, mut len) = (tree_size, index, 0);
    while n > 1 {
        let k = split(n);
        if m < k {
            n = k;
        } else {
            m -= k;
            n -= k;
        }
        len += 1;
    }
    len
}

/// How many hashes a consistency proof from `0 < old_size` to `new_size > old_size` holds.
fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    let (mut n, mut m, mut len, mut whole_old_tree) = (new_size, old_size, 0, true);
    while m != n {
        let k = split(n);
        if m <= k {
            n = k;
        } else {
            m -= k;
            n -= k;
            whole_old_tree = false;
        }
        len += 1;
    }
    len + usize::from(!whole_old_tree)
}

/// Checks that `proof` shows leaf `index`, with hash `leaf_hash`, to be in the tree of `tree_size` leaves
/// whose root is `root`, following RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if index >= tree_size {
        return Err(VerifyError::IndexOutOfRange { index, tree_size });
    }
    let expected = inclusion_proof_len(index, tree_size);
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength { expected, actual: proof.len() });
    }
    let (mut fn_, mut sn) = (index, tree_size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if sn == 0 {
            return Err(VerifyError::WrongProofLength { expected, actual: proof.len() });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 || r != *root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// Checks that `proof` shows the tree of `old_size` leaves with root `old_root` to be a prefix of the tree
/// of `new_size` leaves with root `new_root`, following RFC 9162 §2.1.4.2.
///
/// The empty tree is a prefix of every tree, so when `old_size` is 0 the proof must be empty and `old_root`
/// must be [`EMPTY_ROOT`], and nothing is learnt of `new_root`. When the sizes are equal the proof must be
/// empty and the roots equal.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), VerifyError> {
    if old_size > new_size {
        return Err(VerifyError::SizesOutOfOrder { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(VerifyError::WrongProofLength { expected: 0, actual: proof.len() });
        }
        let empty_ok = old_size != 0 || *old_root == EMPTY_ROOT;
        let same_ok = old_size != new_size || old_root == new_root;
        return if empty_ok && same_ok { Ok(()) } else { Err(VerifyError::RootMismatch) };
    }
    let expected = consistency_proof_len(old_size, new_size);
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength { expected, actual: proof.len() });
    }
    // When the old tree is perfect, its root starts both computations and the proof leaves it out.
    let (seed, rest) = if old_size.is_power_of_two() { (*old_root, proof) } else { (proof[0], &proof[1..]) };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if sn == 0 {
            return Err(VerifyError::WrongProofLength { expected, actual: proof.len() });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 || fr != *old_root || sr != *new_root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// Checks that `leaves`, the hashes of leaves `start..end`, sit at those positions in the tree of
/// `tree_size` leaves whose root is `root`, given the range proof that [`range_proof`] made.
pub fn verify_range(
    start: u64,
    end: u64,
    tree_size: u64,
    leaves: &[Hash],
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if check_range(start, end, tree_size).is_err() {
        return Err(VerifyError::InvalidRange { start, end, tree_size });
    }
    if leaves.len() as u64 != end - start {
        return Err(VerifyError::WrongLeafCount { expected: end - start, actual: leaves.len() });
    }

    struct Walk<'a> {
        start: u64,
        end: u64,
        leaves: &'a [Hash],
        proof: &'a [Hash],
        used: usize,
    }

    impl Walk<'_> {
        /// The hash of the subtree over leaves `lo..hi`, or `None` if the proof ran out.
        fn subtree(&mut self, lo: u64, hi: u64) -> Option<Hash> {
            if hi <= self.start || self.end <= lo {
                let hash = self.proof.get(self.used)?;
                self.used += 1;
                Some(*hash)
            } else if self.start <= lo && hi <= self.end {
                // The bounds fit in usize: they index into `leaves`, whose length matches the range.
                Some(self::root(&self.leaves[(lo - self.start) as usize..(hi - self.start) as usize]))
            } else {
                let k = split(hi - lo);
                let left = self.subtree(lo, lo + k)?;
                let right = self.subtree(lo + k, hi)?;
                Some(node_hash(&left, &right))
            }
        }
    }

    let mut walk = Walk { start, end, leaves, proof, used: 0 };
    let computed = walk.subtree(0, tree_size);
    let needed = walk.used;
    match computed {
        Some(computed) if needed == proof.len() => {
            if computed == *root {
                Ok(())
            } else {
                Err(VerifyError::RootMismatch)
            }
        }
        _ => {
            Err(VerifyError::WrongProofLength { expected: range_plan_len(start, end, tree_size), actual: proof.len() })
        }
    }
}

/// How many hashes a range proof holds, for reporting a proof of the wrong length.
fn range_plan_len(start: u64, end: u64, tree_size: u64) -> usize {
    range_plan(start, end, tree_size).map(|plan| plan.groups.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests;
