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
/// The most leaf hashes a verifier makes room for before it has read them (128 MiB).
const RESERVED_LEAVES: u64 = 1 << 22;

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

/// The entry of an event whose payload retention deleted: its receipt, still a leaf of the tree, and the
/// seq of the `retention.deleted` event that records the deletion.
pub fn pruned_entry_line(receipt: &Receipt, pruned_by: u64) -> String {
    format!(
        "{{\"seq\":{},\"id\":\"{}\",\"received_at\":{},\"leaf_hash\":\"{}\",\"pruned_by\":{pruned_by}}}",
        receipt.seq,
        receipt.id,
        serde_json::Value::String(receipt.received_at.clone()),
        encode_hash(&receipt.leaf_hash)
    )
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
    /// Entries whose payload retention deleted: their receipts are leaves like any other.
    pub pruned: u64,
    /// Of those, the ones whose retention record lies outside the bundle, so could not be checked here.
    pub pruned_unconfirmed: u64,
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
#[derive(Debug, PartialEq, Eq, Deserialize)]
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
    pruned_by: Option<u64>,
    #[serde(default)]
    end: Option<bool>,
    #[serde(default)]
    events: Option<u64>,
}

impl<'a> EntryIn<'a> {
    /// The entry, or `None` when one of the receipt's fields is absent.
    fn into_entry(self) -> Option<Entry<'a>> {
        let event = self.event.map(RawValue::get);
        Some(Entry {
            seq: self.seq?,
            id: self.id?,
            received_at: self.received_at?,
            leaf_hash: self.leaf_hash?,
            proof: self.proof,
            event,
            head: event.and_then(event_head),
            pruned_by: self.pruned_by,
        })
    }
}

/// An entry line as it is judged, however it was read.
struct Entry<'a> {
    seq: u64,
    id: Uuid,
    received_at: &'a str,
    leaf_hash: &'a str,
    proof: Option<Vec<&'a str>>,
    /// The event's exact bytes, when the entry carries them.
    event: Option<&'a str>,
    /// The fields the receipt repeats, when the event's bytes are an event.
    head: Option<EventHead<'a>>,
    /// The seq of the `retention.deleted` event that records deleting this event's payload.
    pruned_by: Option<u64>,
}

/// The head of an event's bytes, as `serde_json` reads it into [`EventHead`].
fn event_head(event: &str) -> Option<EventHead<'_>> {
    Scan::new(event).whole_event().or_else(|| serde_json::from_str(event).ok())
}

/// How deep [`Scan`] follows nested arrays and objects before it leaves a line to `serde_json`.
const SCAN_DEPTH: u32 = 64;

/// A one-pass reader for the entry lines the service writes, the verifier's fast path.
///
/// Read with `serde_json`, an entry costs two passes over its event — the line, keeping the event as
/// raw JSON, then the event again for the fields the receipt repeats — and that was most of the
/// verifier's time. `Scan` validates the event and picks out those fields in one pass, over exactly
/// the shape [`entry_line`] writes for a range bundle (no whitespace, the keys in that order). It is
/// strict: it answers only when the text is certainly valid JSON and it has read exactly what
/// `serde_json` would read (every receipt field, each head field once, no escapes where serde would
/// borrow); for anything else it answers `None` and the line is read by `serde_json` as before. So
/// every line, however strange, is judged exactly as before; only the common one is faster.
struct Scan<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// Marks the bytes of `word` (eight bytes, little-endian) that are `"`, `\\` or a control character
/// (below 0x20): the bytes that end a run of plain string content. Only the lowest mark is exact (a
/// borrow can mark a byte above a marked one), and only it is used.
fn specials(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let quote = zero_in(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

impl<'a> Scan<'a> {
    fn new(text: &'a str) -> Scan<'a> {
        Scan { text, bytes: text.as_bytes(), pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, literal: &[u8]) -> Option<()> {
        if self.bytes.get(self.pos..)?.starts_with(literal) {
            self.pos += literal.len();
            Some(())
        } else {
            None
        }
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// A string at `pos`: its text between the quotes, and whether it holds an escape.
    fn string(&mut self) -> Option<(&'a str, bool)> {
        if self.peek()? != b'"' {
            return None;
        }
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            self.skip_plain();
            match self.peek()? {
                b'"' => {
                    let text = self.text.get(start..self.pos)?;
                    self.pos += 1;
                    return Some((text, escaped));
                }
                b'\\' => {
                    escaped = true;
                    match self.bytes.get(self.pos + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 2,
                        b'u' => {
                            let hex = self.bytes.get(self.pos + 2..self.pos + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.pos += 6;
                        }
                        _ => return None,
                    }
                }
                // A control character, or the end of the text.
                _ => return None,
            }
        }
    }

    /// Moves `pos` to the next `"`, `\\` or control character, or to the end of the text; eight bytes
    /// at a time while eight remain.
    fn skip_plain(&mut self) {
        while let Some(chunk) = self.bytes.get(self.pos..self.pos + 8) {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            let marks = specials(u64::from_le_bytes(word));
            if marks != 0 {
                self.pos += marks.trailing_zeros() as usize / 8;
                return;
            }
            self.pos += 8;
        }
        while let Some(byte) = self.peek() {
            if byte == b'"' || byte == b'\\' || byte < 0x20 {
                return;
            }
            self.pos += 1;
        }
    }

    /// A string without escapes, which `serde_json` can lend as it stands.
    fn plain_string(&mut self) -> Option<&'a str> {
        match self.string()? {
            (text, false) => Some(text),
            _ => None,
        }
    }

    /// An unsigned integer that fits a `u64`, without sign, fraction or exponent.
    fn unsigned(&mut self) -> Option<u64> {
        let start = self.pos;
        let mut value = 0u64;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            value = value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
            self.pos += 1;
        }
        let digits = self.pos - start;
        // JSON allows no leading zero; a fraction or exponent would make it a float.
        let leading_zero = digits > 1 && self.bytes[start] == b'0';
        let float = matches!(self.peek(), Some(b'.' | b'e' | b'E'));
        (digits > 0 && !leading_zero && !float).then_some(value)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number, by JSON's grammar.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// Any JSON value, nested at most `depth` deep.
    fn value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' if depth == 0 => None,
            b'{' => {
                self.pos += 1;
                self.whitespace();
                if self.peek()? == b'}' {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    self.whitespace();
                    self.string()?;
                    self.whitespace();
                    self.eat(b":")?;
                    self.whitespace();
                    self.value(depth - 1)?;
                    self.whitespace();
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b'}' => {
                            self.pos += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                self.whitespace();
                if self.peek()? == b']' {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    self.whitespace();
                    self.value(depth - 1)?;
                    self.whitespace();
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b']' => {
                            self.pos += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.eat(b"true"),
            b'f' => self.eat(b"false"),
            b'n' => self.eat(b"null"),
            _ => self.number(),
        }
    }

    /// An event object at `pos`, validated, with the fields its receipt repeats: each present once,
    /// with no escape in its key or (for the strings) its value.
    fn event(&mut self) -> Option<EventHead<'a>> {
        let (mut id, mut seq, mut organization_id, mut received_at) = (None, None, None, None);
        self.eat(b"{")?;
        loop {
            self.whitespace();
            let key = self.plain_string()?;
            self.whitespace();
            self.eat(b":")?;
            self.whitespace();
            match key {
                "id" if id.is_none() => id = Some(self.plain_string()?.parse::<Uuid>().ok()?),
                "seq" if seq.is_none() => seq = Some(self.unsigned()?),
                "organization_id" if organization_id.is_none() => organization_id = Some(self.plain_string()?),
                "received_at" if received_at.is_none() => received_at = Some(self.plain_string()?),
                // A second one `serde_json` refuses; leave that to it.
                "id" | "seq" | "organization_id" | "received_at" => return None,
                _ => self.value(SCAN_DEPTH - 1)?,
            }
            self.whitespace();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    break;
                }
                _ => return None,
            }
        }
        Some(EventHead { id: id?, seq: seq?, organization_id: organization_id?, received_at: received_at? })
    }

    /// The whole text as one event object, nothing before or after it.
    fn whole_event(mut self) -> Option<EventHead<'a>> {
        let head = self.event()?;
        (self.pos == self.bytes.len()).then_some(head)
    }

    /// A whole entry line of a range bundle, exactly as [`entry_line`] writes it.
    fn range_entry(mut self) -> Option<Entry<'a>> {
        self.eat(b"{\"seq\":")?;
        let seq = self.unsigned()?;
        self.eat(b",\"id\":")?;
        let id = self.plain_string()?.parse::<Uuid>().ok()?;
        self.eat(b",\"received_at\":")?;
        let received_at = self.plain_string()?;
        self.eat(b",\"leaf_hash\":")?;
        let leaf_hash = self.plain_string()?;
        let (event, head) = if self.eat(b",\"event\":").is_some() {
            let start = self.pos;
            let head = self.event()?;
            (Some(self.text.get(start..self.pos)?), Some(head))
        } else {
            (None, None)
        };
        self.eat(b"}")?;
        (self.pos == self.bytes.len()).then_some(Entry {
            seq,
            id,
            received_at,
            leaf_hash,
            proof: None,
            event,
            head,
            pruned_by: None,
        })
    }
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
    /// Entries whose payload was deleted: (seq, id, seq of the retention record that says so).
    pruned: Vec<(u64, Uuid, u64)>,
    /// The seq ranges each `retention.deleted` event in the bundle records.
    retention_records: HashMap<u64, Vec<(u64, u64)>>,
}

/// Checks a bundle line by line; see the module documentation.
pub struct BundleVerifier {
    keys: Vec<Verifier>,
    since: Option<Checkpoint>,
    stage: Stage,
    line: u64,
    entries: u64,
    verified: u64,
    pruned: u64,
    pruned_unconfirmed: u64,
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
            pruned: 0,
            pruned_unconfirmed: 0,
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
                // Room for the range's leaves up front, rather than growing (and copying) the vector as
                // they arrive; bounded, since a manifest is not trusted to size memory.
                let expected = match (manifest.from_seq, manifest.to_seq) {
                    (Some(from), Some(to)) if manifest.kind == BundleKind::Range => {
                        (to - from + 1).min(RESERVED_LEAVES)
                    }
                    _ => 0,
                };
                self.stage = Stage::Entries(Box::new(Entries {
                    manifest,
                    checkpoint,
                    range_proof,
                    consistency,
                    leaves: Vec::with_capacity(expected as usize),
                    next_seq,
                    last_seq: None,
                    gap: false,
                    mismatches: Vec::new(),
                    seen: Default::default(),
                    pruned: Vec::new(),
                    retention_records: HashMap::new(),
                }));
            }
            Stage::Entries(mut entries) => {
                let entry = match Scan::new(text).range_entry() {
                    Some(entry) => entry,
                    None => {
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
                        entry
                            .into_entry()
                            .ok_or_else(|| malformed(line, "an entry needs seq, id, received_at and leaf_hash"))?
                    }
                };
                self.entry(&mut entries, entry, line)?;
                self.stage = Stage::Entries(entries);
            }
            // An earlier line failed, and a failed bundle reads no further.
            Stage::Finished(..) | Stage::Taking => return Err(malformed(line, "an earlier line already failed")),
        }
        Ok(())
    }

    fn entry(&mut self, s: &mut Entries, entry: Entry<'_>, line: u64) -> Result<(), BundleError> {
        let Entry { seq, id, received_at, leaf_hash, proof, event, head, pruned_by } = entry;
        let leaf = decode_hash(leaf_hash).ok_or_else(|| malformed(line, "leaf_hash is not 32 bytes of base64"))?;
        self.entries += 1;
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
            let proof = proof.as_deref().ok_or_else(|| malformed(line, "a selection entry needs a proof"))?;
            let proof = decode_proof(line, "proof", proof)?;
            // Seqs count from 1: a seq of 0 names no leaf, so it cannot be in the tree.
            let included = seq.checked_sub(1).is_some_and(|index| {
                merkle::verify_inclusion(&leaf, index, s.checkpoint.size, &proof, &s.checkpoint.root).is_ok()
            });
            if !included {
                self.problem(ProblemKind::Inserted, Some(seq), Some(id), "its receipt is not in the signed tree");
                return Ok(());
            }
        }

        let Some(event) = event else {
            match pruned_by {
                // Checked against the retention record once the whole bundle was read.
                Some(by) if counts_as_leaf => s.pruned.push((seq, id, by)),
                Some(_) => {}
                None => self.problem(
                    ProblemKind::Missing,
                    Some(seq),
                    Some(id),
                    "the receipt is sealed but the event is absent",
                ),
            }
            return Ok(());
        };
        let hash = merkle::leaf_hash(event.as_bytes());
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
                    // Canonical bytes have no spaces: a retention record names its action exactly so.
                    if event.contains("\"action\":\"retention.deleted\"") {
                        s.retention_records.insert(seq, retention_ranges(event));
                    }
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
        // A pruned entry is vouched for by the retention record it names, when the bundle holds it; a
        // record outside the bundle cannot be read here, and the report counts those apart.
        let (from, to) = (s.manifest.from_seq.unwrap_or(1), s.manifest.to_seq.unwrap_or(u64::MAX));
        for &(seq, id, by) in &s.pruned {
            match s.retention_records.get(&by) {
                Some(ranges) if ranges.iter().any(|&(a, b)| a <= seq && seq <= b) => self.pruned += 1,
                Some(_) => self.problem(
                    ProblemKind::Missing,
                    Some(seq),
                    Some(id),
                    format!("said to be deleted by retention in seq {by}, whose record does not list it"),
                ),
                None if s.manifest.kind == BundleKind::Range && (from..=to).contains(&by) => self.problem(
                    ProblemKind::Missing,
                    Some(seq),
                    Some(id),
                    format!("said to be deleted by retention in seq {by}, which is no retention record"),
                ),
                None => {
                    self.pruned += 1;
                    self.pruned_unconfirmed += 1;
                }
            }
        }
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
            pruned: self.pruned,
            pruned_unconfirmed: self.pruned_unconfirmed,
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

/// The `metadata.seq_ranges` of a `retention.deleted` event's canonical bytes.
fn retention_ranges(event: &str) -> Vec<(u64, u64)> {
    serde_json::from_str::<serde_json::Value>(event)
        .ok()
        .and_then(|v| {
            v["metadata"]["seq_ranges"]
                .as_array()
                .map(|ranges| ranges.iter().filter_map(|r| Some((r.get(0)?.as_u64()?, r.get(1)?.as_u64()?))).collect())
        })
        .unwrap_or_default()
}
