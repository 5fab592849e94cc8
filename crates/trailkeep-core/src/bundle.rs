//! Self-proving export bundles: an organisation's events together with everything needed to prove, with
//! no server and no database, that they are exactly what the log holds.
//!
//! # The format
//!
//! A bundle is JSON Lines (UTF-8, one JSON object per line, each ending in `\n`):
//!
//! 1. the **manifest** — format name and version, the organisation, the checkpoint's origin and tree
//!    size, what the bundle proves (`kind`), the seq range or the filter, and when it was made;
//! 2. the **proof line** — the signed checkpoint note, and for a range bundle the range proof: the
//!    hashes of the subtrees outside the range, so that the exported leaves recompute the checkpoint's
//!    root; optionally consistency proofs from earlier tree sizes;
//! 3. one **entry** per event in seq order: its receipt (`seq`, `id`, `received_at`, `leaf_hash`), the
//!    event itself as its exact RFC 8785 bytes under `event` (absent when its payload was deleted), and,
//!    in a selection bundle, its own inclusion `proof`;
//! 4. the **end line** `{"end":true,"events":N}`, so that a cut-off file is noticed.
//!
//! A *range* bundle holds every event from `from_seq` to `to_seq`: it proves the range complete and
//! unaltered. A *selection* bundle holds the events a filter chose, each with an inclusion proof: it
//! proves each event authentic, not that none is missing.
//!
//! # Verifying
//!
//! [`BundleVerifier`] takes the lines one at a time, so a bundle of millions of events is checked in one
//! pass, and ends with a [`Report`] that names every event found altered, missing, inserted or
//! reordered. Bad form or a bad signature stops it with a [`BundleError`].

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::checkpoint::{Checkpoint, NoteError, VerifiedBy, Verifier, open_note};
use crate::merkle::{self, Hash};

/// The `format` every manifest names.
pub const FORMAT: &str = "trailkeep-bundle";
/// The version of the format this build writes and reads.
pub const VERSION: u32 = 1;
/// The most problems a report lists one by one; beyond it they are only counted.
pub const MAX_LISTED_PROBLEMS: usize = 1000;

/// What a bundle proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BundleKind {
    /// Every event of a seq range: complete and unaltered.
    Range,
    /// Events chosen by a filter, each proven on its own: authentic, not complete.
    Selection,
}

impl BundleKind {
    /// The sentence the manifest carries, for whoever opens the file.
    pub fn proves(self) -> &'static str {
        match self {
            BundleKind::Range => {
                "every event of the seq range, unaltered and complete: none removed, inserted or reordered"
            }
            BundleKind::Selection => {
                "each event is authentic and unaltered; the selection was filtered, so it does not prove that no event is missing"
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub organization_id: String,
    /// The origin line of the checkpoint the bundle is proven against.
    pub origin: String,
    pub kind: BundleKind,
    pub proves: String,
    /// The size of the tree the checkpoint signs.
    pub tree_size: u64,
    /// The first and last seq of a range bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_seq: Option<u64>,
    /// The filter or query that chose a selection bundle's events, as the export request gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    pub created_at: String,
}

/// A consistency proof from an earlier tree size to the bundle's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    pub from_size: u64,
    pub proof: Vec<String>,
}

/// The second line: the signed checkpoint and the proofs that tie the entries to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofLine {
    pub checkpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_proof: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency: Vec<ConsistencyProof>,
}

/// An event's receipt: where it sits in the log and the hash of its leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub seq: u64,
    pub id: Uuid,
    /// RFC 3339 with milliseconds, as the event's `received_at`.
    pub received_at: String,
    pub leaf_hash: Hash,
}

pub fn encode_hash(hash: &Hash) -> String {
    BASE64.encode(hash)
}

pub fn decode_hash(text: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    // 32 bytes are 44 base64 characters; decoding into a fixed buffer refuses anything longer.
    match BASE64.decode_slice(text, &mut out) {
        Ok(32) if text.len() == 44 => Some(out),
        _ => None,
    }
}

/// One entry line (without its newline): the receipt, the proof when there is one, and the event's
/// canonical bytes when its payload still exists.
pub fn entry_line(receipt: &Receipt, proof: Option<&[Hash]>, event: Option<&[u8]>) -> String {
    let mut line = String::with_capacity(160 + event.map_or(0, <[u8]>::len));
    line.push_str(&format!(
        "{{\"seq\":{},\"id\":\"{}\",\"received_at\":{},\"leaf_hash\":\"{}\"",
        receipt.seq,
        receipt.id,
        serde_json::Value::String(receipt.received_at.clone()),
        encode_hash(&receipt.leaf_hash)
    ));
    if let Some(proof) = proof {
        let hashes: Vec<String> = proof.iter().map(encode_hash).collect();
        line.push_str(",\"proof\":");
        line.push_str(&serde_json::Value::from(hashes).to_string());
    }
    if let Some(bytes) = event {
        line.push_str(",\"event\":");
        // Canonical JSON is UTF-8 by definition; bytes that are not are written lossily and then fail
        // verification, which is the truth about them.
        line.push_str(&String::from_utf8_lossy(bytes));
    }
    line.push('}');
    line
}

/// The last line of a bundle of `events` entries.
pub fn end_line(events: u64) -> String {
    format!("{{\"end\":true,\"events\":{events}}}")
}

/// Why a bundle could not be verified at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("line {line}: {message}")]
    Malformed { line: u64, message: String },
    #[error("the checkpoint's signature does not verify with the given keys: {0}")]
    BadSignature(#[source] NoteError),
    #[error("the bundle is cut short: {0}")]
    Truncated(String),
}

/// What is wrong with one event or with the bundle's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The event's bytes are not the ones the log sealed.
    Altered,
    /// An event of the range is absent.
    Missing,
    /// An event that the log never held.
    Inserted,
    /// An event in another event's place.
    Reordered,
    /// The receipts do not recompute the signed root.
    Receipts,
    /// The log's history disagrees with a checkpoint kept from earlier.
    Inconsistent,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProblemKind::Altered => "altered",
            ProblemKind::Missing => "missing",
            ProblemKind::Inserted => "inserted",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Receipts => "receipts do not match the checkpoint",
            ProblemKind::Inconsistent => "inconsistent history",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(seq) = self.seq {
            write!(f, ": seq {seq}")?;
        }
        if let Some(id) = self.id {
            write!(f, " id {id}")?;
        }
        write!(f, " — {}", self.detail)
    }
}

/// The verdict on a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub organization_id: String,
    pub origin: String,
    pub kind: BundleKind,
    pub tree_size: u64,
    pub from_seq: Option<u64>,
    pub to_seq: Option<u64>,
    /// Entry lines read.
    pub entries: u64,
    /// Entries whose event bytes were present and matched their sealed leaf.
    pub verified: u64,
    /// Keys whose signature on the checkpoint verified, as `name+keyid`.
    pub signed_by: Vec<String>,
    /// The earlier checkpoint size the history was checked against, when one was given.
    pub consistent_with: Option<u64>,
    pub problems: Vec<Problem>,
    /// Problems found beyond [`MAX_LISTED_PROBLEMS`].
    pub unlisted_problems: u64,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    /// Whether the failure is of history (a fork or a shrunken log) rather than of events.
    pub fn history_broken(&self) -> bool {
        self.problems.iter().any(|p| p.kind == ProblemKind::Inconsistent)
    }
}

/// The fields of an event that its receipt repeats.
#[derive(Deserialize)]
struct EventHead<'a> {
    id: Uuid,
    seq: u64,
    #[serde(borrow)]
    organization_id: &'a str,
    #[serde(borrow)]
    received_at: &'a str,
}

#[derive(Deserialize)]
struct EntryIn<'a> {
    seq: Option<u64>,
    id: Option<Uuid>,
    #[serde(borrow, default)]
    received_at: Option<&'a str>,
    #[serde(borrow, default)]
    leaf_hash: Option<&'a str>,
    #[serde(borrow, default)]
    proof: Option<Vec<&'a str>>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(default)]
    end: Option<bool>,
    #[serde(default)]
    events: Option<u64>,
}

/// An entry whose event did not hash to its receipt, judged once every receipt is known.
struct Mismatch {
    seq: u64,
    id: Uuid,
    hash: Hash,
}

enum Stage {
    Manifest,
    Proofs(Manifest),
    Entries(Box<Entries>),
    Finished(Box<Manifest>, u64),
    /// Only while a line is being taken.
    Taking,
}

struct Entries {
    manifest: Manifest,
    checkpoint: Checkpoint,
    range_proof: Vec<Hash>,
    consistency: Vec<(u64, Vec<Hash>)>,
    /// Leaf hashes of the range, in order, for the range proof.
    leaves: Vec<Hash>,
    next_seq: u64,
    last_seq: Option<u64>,
    /// A seq of the range had no entry, so the range proof cannot be checked.
    gap: bool,
    mismatches: Vec<Mismatch>,
    /// The seqs a selection has given, to notice one given twice.
    seen: std::collections::HashSet<u64>,
}

/// Checks a bundle line by line; see the module documentation.
pub struct BundleVerifier {
    keys: Vec<Verifier>,
    since: Option<Checkpoint>,
    stage: Stage,
    line: u64,
    entries: u64,
    verified: u64,
    signed_by: Vec<String>,
    problems: Vec<Problem>,
    unlisted: u64,
}

fn malformed(line: u64, message: impl Into<String>) -> BundleError {
    BundleError::Malformed { line, message: message.into() }
}

fn decode_proof(line: u64, what: &str, hashes: &[impl AsRef<str>]) -> Result<Vec<Hash>, BundleError> {
    hashes
        .iter()
        .map(|h| {
            decode_hash(h.as_ref())
                .ok_or_else(|| malformed(line, format!("{what} holds a hash that is not 32 bytes of base64")))
        })
        .collect()
}

impl BundleVerifier {
    /// A verifier trusting `keys`; with `since`, a checkpoint kept from earlier whose history the bundle's
    /// checkpoint must extend.
    pub fn new(keys: Vec<Verifier>, since: Option<Checkpoint>) -> BundleVerifier {
        BundleVerifier {
            keys,
            since,
            stage: Stage::Manifest,
            line: 0,
            entries: 0,
            verified: 0,
            signed_by: Vec::new(),
            problems: Vec::new(),
            unlisted: 0,
        }
    }

    fn problem(&mut self, kind: ProblemKind, seq: Option<u64>, id: Option<Uuid>, detail: impl Into<String>) {
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(Problem { kind, seq, id, detail: detail.into() });
        } else {
            self.unlisted += 1;
        }
    }

    /// Takes the next line, without its newline.
    pub fn line(&mut self, text: &str) -> Result<(), BundleError> {
        self.line += 1;
        let line = self.line;
        if matches!(self.stage, Stage::Finished(..)) {
            return Err(malformed(line, "text after the end line"));
        }
        match std::mem::replace(&mut self.stage, Stage::Taking) {
            Stage::Manifest => {
                let manifest: Manifest = serde_json::from_str(text)
                    .map_err(|e| malformed(line, format!("the manifest cannot be read: {e}")))?;
                if manifest.format != FORMAT {
                    return Err(malformed(
                        line,
                        format!("this is not a Trailkeep bundle (format `{}`)", manifest.format),
                    ));
                }
                if manifest.version != VERSION {
                    return Err(malformed(
                        line,
                        format!(
                            "bundle format version {} is not supported; this build reads version {VERSION}",
                            manifest.version
                        ),
                    ));
                }
                if manifest.kind == BundleKind::Range {
                    match (manifest.from_seq, manifest.to_seq) {
                        (Some(from), Some(to)) if 1 <= from && from <= to && to <= manifest.tree_size => {}
                        _ => return Err(malformed(line, "a range bundle needs 1 <= from_seq <= to_seq <= tree_size")),
                    }
                }
                self.stage = Stage::Proofs(manifest);
            }
            Stage::Proofs(manifest) => {
                let proofs: ProofLine = serde_json::from_str(text)
                    .map_err(|e| malformed(line, format!("the proof line cannot be read: {e}")))?;
                let (checkpoint, signers) =
                    open_note(&proofs.checkpoint, &self.keys).map_err(BundleError::BadSignature)?;
                self.signed_by = signers.iter().map(key_label).collect();
                if checkpoint.origin != manifest.origin {
                    return Err(malformed(
                        line,
                        format!(
                            "the checkpoint is for `{}`, the manifest names `{}`",
                            checkpoint.origin, manifest.origin
                        ),
                    ));
                }
                if checkpoint.size != manifest.tree_size {
                    return Err(malformed(
                        line,
                        format!(
                            "the checkpoint signs {} events, the manifest says {}",
                            checkpoint.size, manifest.tree_size
                        ),
                    ));
                }
                let range_proof = match (manifest.kind, &proofs.range_proof) {
                    (BundleKind::Range, Some(p)) => decode_proof(line, "range_proof", p)?,
                    (BundleKind::Range, None) => return Err(malformed(line, "a range bundle needs a range_proof")),
                    (BundleKind::Selection, _) => Vec::new(),
                };
                let consistency = proofs
                    .consistency
                    .iter()
                    .map(|c| Ok((c.from_size, decode_proof(line, "consistency", &c.proof)?)))
                    .collect::<Result<Vec<_>, BundleError>>()?;
                let next_seq = manifest.from_seq.unwrap_or(1);
                self.stage = Stage::Entries(Box::new(Entries {
                    manifest,
                    checkpoint,
                    range_proof,
                    consistency,
                    leaves: Vec::new(),
                    next_seq,
                    last_seq: None,
                    gap: false,
                    mismatches: Vec::new(),
                    seen: Default::default(),
                }));
            }
            Stage::Entries(mut entries) => {
                let entry: EntryIn<'_> = serde_json::from_str(text)
                    .map_err(|e| malformed(line, format!("the entry cannot be read: {e}")))?;
                if entry.end == Some(true) {
                    let count = entry.events.ok_or_else(|| malformed(line, "the end line needs `events`"))?;
                    if count != self.entries {
                        return Err(BundleError::Truncated(format!(
                            "the end line counts {count} events, the bundle holds {}",
                            self.entries
                        )));
                    }
                    self.finish_entries(*entries);
                    return Ok(());
                }
                self.entry(&mut entries, entry, line)?;
                self.stage = Stage::Entries(entries);
            }
            // An earlier line failed, and a failed bundle reads no further.
            Stage::Finished(..) | Stage::Taking => return Err(malformed(line, "an earlier line already failed")),
        }
        Ok(())
    }

    fn entry(&mut self, s: &mut Entries, entry: EntryIn<'_>, line: u64) -> Result<(), BundleError> {
        let (Some(seq), Some(id), Some(received_at), Some(leaf)) =
            (entry.seq, entry.id, entry.received_at, entry.leaf_hash)
        else {
            return Err(malformed(line, "an entry needs seq, id, received_at and leaf_hash"));
        };
        let leaf = decode_hash(leaf).ok_or_else(|| malformed(line, "leaf_hash is not 32 bytes of base64"))?;
        self.entries += 1;
        let head = entry.event.and_then(|e| serde_json::from_str::<EventHead<'_>>(e.get()).ok());
        // An entry that should not be there is named by the event it carries, when it carries one.
        let carried = head.as_ref().map_or(id, |h| h.id);
        let range = s.manifest.kind == BundleKind::Range;
        if range && s.manifest.to_seq.is_some_and(|to| seq > to) && Some(seq) != s.last_seq {
            self.problem(ProblemKind::Inserted, Some(seq), Some(carried), "lies beyond the bundle's range");
            return Ok(());
        }

        // Place the entry in the sequence. A selection follows the timeline, not seq order, so only a
        // range is held to seq order.
        let mut counts_as_leaf = true;
        let repeated = if range { Some(seq) == s.last_seq } else { !s.seen.insert(seq) };
        if repeated {
            self.problem(ProblemKind::Inserted, Some(seq), Some(carried), "a second entry for a seq already given");
            counts_as_leaf = false;
        } else if range && (s.last_seq.is_some_and(|last| seq < last) || seq < s.next_seq) {
            self.problem(ProblemKind::Reordered, Some(seq), Some(id), "out of seq order");
            counts_as_leaf = false;
        } else if range && seq > s.next_seq {
            for missing in s.next_seq..seq {
                self.problem(ProblemKind::Missing, Some(missing), None, "no entry for this seq");
            }
            s.gap = true;
            s.next_seq = seq;
        }
        if counts_as_leaf {
            s.last_seq = Some(seq);
            if range {
                s.leaves.push(leaf);
                s.next_seq = seq + 1;
            }
        }

        // A selection proves each receipt on its own.
        if !range {
            let proof = entry.proof.as_deref().ok_or_else(|| malformed(line, "a selection entry needs a proof"))?;
            let proof = decode_proof(line, "proof", proof)?;
            if merkle::verify_inclusion(&leaf, seq - 1, s.checkpoint.size, &proof, &s.checkpoint.root).is_err() {
                self.problem(ProblemKind::Inserted, Some(seq), Some(id), "its receipt is not in the signed tree");
                return Ok(());
            }
        }

        let Some(event) = entry.event else {
            self.problem(ProblemKind::Missing, Some(seq), Some(id), "the receipt is sealed but the event is absent");
            return Ok(());
        };
        let bytes = event.get().as_bytes();
        let hash = merkle::leaf_hash(bytes);
        if hash != leaf {
            // An entry already reported as out of place is not judged twice.
            if counts_as_leaf {
                s.mismatches.push(Mismatch { seq, id, hash });
            }
            return Ok(());
        }
        match head.ok_or(()) {
            Ok(head)
                if head.id == id
                    && head.seq == seq
                    && head.received_at == received_at
                    && head.organization_id == s.manifest.organization_id =>
            {
                if counts_as_leaf {
                    self.verified += 1;
                }
            }
            Ok(_) => self.problem(
                ProblemKind::Altered,
                Some(seq),
                Some(id),
                "the receipt's seq, id or received_at, or the organisation, differs from the sealed event's",
            ),
            Err(()) => self.problem(ProblemKind::Altered, Some(seq), Some(id), "the sealed bytes are not an event"),
        }
        Ok(())
    }

    fn finish_entries(&mut self, s: Entries) {
        // Judge the events whose bytes did not match their receipts: an event found under another seq's
        // receipt was moved; anything else was changed.
        if !s.mismatches.is_empty() {
            let first = s.manifest.from_seq.unwrap_or(1);
            let by_hash: HashMap<Hash, u64> =
                s.leaves.iter().enumerate().map(|(i, h)| (*h, first + i as u64)).collect();
            for m in &s.mismatches {
                match by_hash.get(&m.hash) {
                    Some(other) if *other != m.seq => self.problem(
                        ProblemKind::Reordered,
                        Some(m.seq),
                        Some(m.id),
                        format!("holds the event sealed as seq {other}"),
                    ),
                    _ => self.problem(
                        ProblemKind::Altered,
                        Some(m.seq),
                        Some(m.id),
                        "its bytes do not hash to the leaf sealed for it",
                    ),
                }
            }
        }

        if s.manifest.kind == BundleKind::Range {
            let (from, to) = (s.manifest.from_seq.unwrap_or(1), s.manifest.to_seq.unwrap_or(0));
            if !s.gap && s.next_seq <= to {
                for missing in s.next_seq..=to {
                    self.problem(ProblemKind::Missing, Some(missing), None, "no entry for this seq");
                }
            } else if !s.gap {
                let ok = merkle::verify_range(
                    from - 1,
                    to,
                    s.checkpoint.size,
                    &s.leaves,
                    &s.range_proof,
                    &s.checkpoint.root,
                );
                if ok.is_err() {
                    self.problem(
                        ProblemKind::Receipts,
                        None,
                        None,
                        format!(
                            "the receipts of seq {from}–{to} do not recompute the signed root of {} events: a receipt was altered, added or removed",
                            s.checkpoint.size
                        ),
                    );
                }
            }
        }

        if let Some(old) = self.since.clone() {
            self.check_history(&s, &old);
        }
        self.stage = Stage::Finished(Box::new(s.manifest), s.checkpoint.size);
    }

    fn inconsistent(&mut self, detail: String) {
        self.problem(ProblemKind::Inconsistent, None, None, detail);
    }

    fn check_history(&mut self, s: &Entries, old: &Checkpoint) {
        let new = &s.checkpoint;
        if old.origin != new.origin {
            self.inconsistent(format!(
                "the earlier checkpoint is of `{}`, this bundle of `{}`",
                old.origin, new.origin
            ));
            return;
        }
        if old.size > new.size {
            self.inconsistent(format!(
                "the log shrank: an earlier checkpoint signed {} events, this one {}",
                old.size, new.size
            ));
            return;
        }
        if old.size == new.size {
            if old.root != new.root {
                self.inconsistent(format!(
                    "two different roots were signed for {} events: the history was forked",
                    old.size
                ));
            }
            return;
        }
        if let Some((_, proof)) = s.consistency.iter().find(|(from, _)| *from == old.size) {
            if merkle::verify_consistency(old.size, new.size, proof, &old.root, &new.root).is_err() {
                self.inconsistent(format!(
                    "the log of {} events does not extend the earlier one of {}: the history was forked or rewritten",
                    new.size, old.size
                ));
            }
            return;
        }
        // A range from the first event recomputes any earlier root it covers.
        if s.manifest.kind == BundleKind::Range
            && s.manifest.from_seq == Some(1)
            && !s.gap
            && old.size <= s.leaves.len() as u64
        {
            if merkle::root(&s.leaves[..old.size as usize]) != old.root {
                self.inconsistent(format!("the first {} events of this bundle do not have the earlier checkpoint's root: the history was forked or rewritten", old.size));
            }
            return;
        }
        self.inconsistent(format!(
            "the bundle carries no consistency proof from {} events; export it again with the earlier checkpoint",
            old.size
        ));
    }

    /// The verdict, once the end line was read.
    pub fn finish(self) -> Result<Report, BundleError> {
        let Stage::Finished(manifest, tree_size) = self.stage else {
            return Err(BundleError::Truncated(match self.stage {
                Stage::Manifest => "it is empty".to_owned(),
                Stage::Proofs(_) => "it ends after the manifest".to_owned(),
                _ => format!("it ends after {} entries, without its end line", self.entries),
            }));
        };
        Ok(Report {
            organization_id: manifest.organization_id,
            origin: manifest.origin,
            kind: manifest.kind,
            tree_size,
            from_seq: manifest.from_seq,
            to_seq: manifest.to_seq,
            entries: self.entries,
            verified: self.verified,
            signed_by: self.signed_by,
            consistent_with: self.since.map(|c| c.size),
            problems: self.problems,
            unlisted_problems: self.unlisted,
        })
    }
}

fn key_label(v: &VerifiedBy) -> String {
    format!("{}+{}", v.name, v.key_id.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[cfg(test)]
mod tests;
