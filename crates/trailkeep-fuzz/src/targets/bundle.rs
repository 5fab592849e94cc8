//! The `bundle` target: the offline bundle verifier, fed the lines of real bundles and their mutations.
//!
//! The seeds are bundles of one small log — 24 events of organisation `acme`, made by the same
//! validation the API runs and sealed the way the sealer seals them, one of them the retention record of
//! two pruned payloads — signed with a key of this crate's own. Since only that key is trusted and it
//! signed nothing else, a bundle that verifies can hold no event but that log's: the property is that a
//! report without problems only ever comes with event bytes identical to the logged ones at their seq,
//! and with every entry either verified or pruned. The verifier must never panic, whatever the lines,
//! with or without an earlier checkpoint to check the history against.

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use serde::Deserialize;
use serde_json::value::RawValue;
use trailkeep_core::bundle::{
    BundleKind, BundleVerifier, ConsistencyProof, FORMAT, Manifest, ProofLine, Receipt, VERSION, encode_hash, end_line,
    entry_line, pruned_entry_line,
};
use trailkeep_core::checkpoint::{Checkpoint, Ed25519Signer, Verifier, sign_note};
use trailkeep_core::merkle::{self, MemoryTree};
use trailkeep_core::validate::{IngestContext, parse_batch};
use trailkeep_core::{Event, Limits, leaf};

use super::{NOW_MS, Target, shape};

pub struct BundleTarget;

const ORG: &str = "acme";
const ORIGIN: &str = "fuzz.test/acme";
/// The seq of the `retention.deleted` event, and the seqs whose payloads it records deleting.
const RETENTION_SEQ: u64 = 20;
const PRUNED: [u64; 2] = [3, 4];
const LOG_SIZE: u64 = 24;
/// The size of the earlier checkpoint the history is checked against.
const EARLIER: u64 = 10;

/// The key that signs every seed bundle.
pub(crate) fn signer() -> Ed25519Signer {
    Ed25519Signer::from_seed("fuzz.test", &[7; 32]).unwrap()
}

/// A second key, trusted too, that signs nothing: a signature by it can only be forged.
pub(crate) fn bystander() -> Ed25519Signer {
    Ed25519Signer::from_seed("witness.test", &[9; 32]).unwrap()
}

fn verifiers() -> Vec<Verifier> {
    vec![signer().verifier(), bystander().verifier()]
}

/// The sealed log every seed bundle is cut from.
struct Log {
    /// Each event's canonical bytes, index `seq - 1`.
    bytes: Vec<String>,
    /// Each event's `received_at` as its JSON writes it.
    received: Vec<String>,
    ids: Vec<uuid::Uuid>,
    tree: MemoryTree,
}

fn log() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let limits = Limits::default();
        let cx = IngestContext { limits: &limits, now_ms: NOW_MS, default_org: None };
        let mut log = Log { bytes: Vec::new(), received: Vec::new(), ids: Vec::new(), tree: MemoryTree::new() };
        for seq in 1..=LOG_SIZE {
            let id = format!("0190f2a4-3b1c-7def-8abc-{seq:012}");
            let body = match seq {
                RETENTION_SEQ => serde_json::json!({"id": id, "organization_id": ORG, "action": "retention.deleted",
                    "actor": {"type": "system"}, "metadata": {"seq_ranges": [PRUNED]}}),
                s if s % 5 == 0 => serde_json::json!({"id": id, "organization_id": ORG, "action": "ai.request",
                    "ai": {"model": "gpt-4o", "prompt": "Résumé \"quoted\"\n", "cost_usd": 0.0012, "usage": {"input_tokens": s}}}),
                s => serde_json::json!({"id": id, "organization_id": ORG, "action": "user.login",
                    "actor": {"type": "user", "id": format!("u_{s}"), "email": "zoë@example.com"},
                    "context": {"ip": "203.0.113.7"}, "metadata": {"n": s, "tags": ["a", "b"]}}),
            };
            let new = parse_batch(body.to_string().as_bytes(), cx).expect("a seed event is valid").remove(0);
            let event = new.into_event(seq, NOW_MS - 60_000 + seq as i64 * 997);
            let bytes = String::from_utf8(leaf::leaf_bytes(&event).unwrap()).unwrap();
            log.tree.push(merkle::leaf_hash(bytes.as_bytes()));
            log.received.push(received_at(&event));
            log.ids.push(event.id);
            log.bytes.push(bytes);
        }
        log
    })
}

fn received_at(event: &Event) -> String {
    serde_json::to_value(event).unwrap()["received_at"].as_str().unwrap().to_owned()
}

fn note(size: u64, root: merkle::Hash, origin: &str) -> String {
    let body = Checkpoint { origin: origin.into(), size, root, extensions: vec![] }.to_body();
    sign_note(&body, &[&signer()]).unwrap()
}

fn manifest(kind: BundleKind, origin: &str, size: u64, range: Option<(u64, u64)>) -> String {
    serde_json::to_string(&Manifest {
        format: FORMAT.into(),
        version: VERSION,
        organization_id: ORG.into(),
        origin: origin.into(),
        kind,
        proves: kind.proves().into(),
        tree_size: size,
        from_seq: range.map(|r| r.0),
        to_seq: range.map(|r| r.1),
        filter: (kind == BundleKind::Selection).then(|| "action:user.login".to_owned()),
        created_at: "2026-03-01T12:00:00.000Z".into(),
    })
    .unwrap()
}

fn receipt(log: &Log, seq: u64) -> Receipt {
    let i = seq as usize - 1;
    Receipt { seq, id: log.ids[i], received_at: log.received[i].clone(), leaf_hash: *log.tree.leaf(seq - 1).unwrap() }
}

/// The tree of the log's first `size` events.
fn prefix(size: u64) -> MemoryTree {
    MemoryTree::from_leaves((0..size).map(|i| *log().tree.leaf(i).unwrap()))
}

/// A range bundle of `from..=to` at tree size `size`, with the pruned payloads left out when `prune`.
fn range_bundle(from: u64, to: u64, size: u64, prune: bool, consistency_from: &[u64]) -> String {
    let log = log();
    let tree = prefix(size);
    let proof = merkle::range_proof(from - 1, to, size, &tree).unwrap();
    let consistency = consistency_from
        .iter()
        .map(|m| ConsistencyProof {
            from_size: *m,
            proof: merkle::consistency_proof(*m, size, &tree).unwrap().iter().map(encode_hash).collect(),
        })
        .collect();
    let proofs = ProofLine {
        checkpoint: note(size, tree.root(), ORIGIN),
        range_proof: Some(proof.iter().map(encode_hash).collect()),
        consistency,
    };
    let mut lines =
        vec![manifest(BundleKind::Range, ORIGIN, size, Some((from, to))), serde_json::to_string(&proofs).unwrap()];
    for seq in from..=to {
        lines.push(if prune && PRUNED.contains(&seq) {
            pruned_entry_line(&receipt(log, seq), RETENTION_SEQ)
        } else {
            entry_line(&receipt(log, seq), None, Some(log.bytes[seq as usize - 1].as_bytes()))
        });
    }
    lines.push(end_line(to - from + 1));
    lines.join("\n") + "\n"
}

fn selection_bundle(seqs: &[u64]) -> String {
    let log = log();
    let tree = &log.tree;
    let proofs = ProofLine { checkpoint: note(LOG_SIZE, tree.root(), ORIGIN), range_proof: None, consistency: vec![] };
    let mut lines =
        vec![manifest(BundleKind::Selection, ORIGIN, LOG_SIZE, None), serde_json::to_string(&proofs).unwrap()];
    for &seq in seqs {
        let proof = merkle::inclusion_proof(seq - 1, LOG_SIZE, tree).unwrap();
        lines.push(entry_line(&receipt(log, seq), Some(&proof), Some(log.bytes[seq as usize - 1].as_bytes())));
    }
    lines.push(end_line(seqs.len() as u64));
    lines.join("\n") + "\n"
}

fn seed_bundles() -> Vec<String> {
    vec![
        range_bundle(1, LOG_SIZE, LOG_SIZE, true, &[EARLIER]),
        range_bundle(1, LOG_SIZE, LOG_SIZE, false, &[]),
        range_bundle(5, 17, LOG_SIZE, false, &[EARLIER, 16]),
        range_bundle(1, EARLIER, EARLIER, false, &[]),
        range_bundle(7, 7, 8, false, &[]),
        selection_bundle(&[2, 7, 13, 20, 24]),
    ]
}

/// What the oracle reads of an entry line: its seq and the event's exact bytes.
#[derive(Deserialize)]
struct Seen<'a> {
    seq: Option<u64>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(default)]
    end: Option<bool>,
}

/// Runs the verifier over `lines`, with `since` as the earlier checkpoint; the outcome signature.
fn verify(lines: &[&str], since: Option<Checkpoint>) -> String {
    let mut verifier = BundleVerifier::new(verifiers(), since);
    for line in lines {
        if let Err(e) = verifier.line(line) {
            return format!("error:{}", shape(&e.to_string()));
        }
    }
    let report = match verifier.finish() {
        Ok(report) => report,
        Err(e) => return format!("error:{}", shape(&e.to_string())),
    };
    if !report.is_valid() {
        let mut kinds: Vec<String> =
            report.problems.iter().map(|p| format!("problem:{:?}:{}", report.kind, p.kind)).collect();
        kinds.sort();
        kinds.dedup();
        return kinds.join(";");
    }
    // A clean report: every entry is one of the logged events, byte for byte, or a pruned receipt.
    let log = log();
    for line in &lines[2..] {
        let seen: Seen<'_> = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a clean report over a line serde_json cannot read ({e}): {line}"));
        if seen.end == Some(true) {
            continue;
        }
        let seq = seen.seq.expect("an entry of a clean report has a seq");
        assert!((1..=LOG_SIZE).contains(&seq), "a clean report with seq {seq}, which the log never held");
        if let Some(event) = seen.event {
            assert_eq!(event.get(), log.bytes[seq as usize - 1], "a clean report over altered bytes for seq {seq}");
        }
    }
    assert_eq!(report.entries, report.verified + report.pruned, "a clean report accounts for every entry");
    if report.kind == BundleKind::Range {
        let (from, to) = (report.from_seq.unwrap(), report.to_seq.unwrap());
        assert_eq!(report.entries, to - from + 1, "a clean range report holds the whole range");
    }
    format!("valid:{:?}:{}:{}", report.kind, report.pruned > 0, report.consistent_with.is_some())
}

/// A structured change to a bundle's lines: the tampering an attacker would try.
fn tamper(u: &mut Unstructured<'_>, lines: &mut Vec<String>) -> Result<()> {
    let entries = 2..lines.len().saturating_sub(1).max(2);
    let pick = |u: &mut Unstructured<'_>| -> Result<usize> {
        if entries.is_empty() { Ok(2.min(lines.len() - 1)) } else { u.int_in_range(entries.start..=entries.end - 1) }
    };
    let i = pick(u)?;
    let j = pick(u)?;
    match u.int_in_range(0..=11)? {
        // Change one byte of an event's bytes.
        0 => {
            if let Some(start) = lines[i].find(",\"event\":") {
                let line = &mut lines[i];
                let k = u.int_in_range(start + 9..=line.len() - 2)?;
                let mut bytes = std::mem::take(line).into_bytes();
                bytes[k] = u.arbitrary::<u8>()? & 0x7f;
                *line = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        // Re-serialise an event with the same content: other bytes, same meaning.
        1 => {
            if let Some(start) = lines[i].find(",\"event\":") {
                let line = lines[i].clone();
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line[start + 9..line.len() - 1]) {
                    let pretty = if u.arbitrary()? {
                        serde_json::to_string_pretty(&value).unwrap().replace('\n', " ")
                    } else {
                        format!(" {value}")
                    };
                    lines[i] = format!("{}{pretty}}}", &line[..start + 9]);
                }
            }
        }
        2 => lines.swap(i, j),
        3 => {
            lines.remove(i);
        }
        4 => {
            let copy = lines[i].clone();
            lines.insert(j, copy);
        }
        // Move an event's bytes under another receipt.
        5 => {
            let (a, b) = (lines[i].find(",\"event\":"), lines[j].find(",\"event\":"));
            if let (Some(a), Some(b)) = (a, b) {
                let (ea, eb) = (lines[i][a..].to_owned(), lines[j][b..].to_owned());
                lines[i] = format!("{}{eb}", &lines[i][..a]);
                lines[j] = format!("{}{ea}", &lines[j][..b]);
            }
        }
        // Renumber an entry.
        6 => {
            let seq: u64 = *u.choose(&[0, 1, 2, 3, 24, 25, u64::MAX, 1 << 53])?;
            if let Some(rest) = lines[i].strip_prefix("{\"seq\":") {
                let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
                lines[i] = format!("{{\"seq\":{seq}{rest}");
            }
        }
        // Claim the payload was pruned.
        7 => {
            if let Some(start) = lines[i].find(",\"event\":") {
                let by = *u.choose(&[RETENTION_SEQ, 1, 0, 99, u64::MAX])?;
                lines[i] = format!("{},\"pruned_by\":{by}}}", &lines[i][..start]);
            }
        }
        // Another entry's leaf hash.
        8 => {
            let grab = |l: &str| l.find("\"leaf_hash\":\"").map(|s| (s + 13, s + 13 + 44));
            if let (Some((a, a2)), Some((b, b2))) = (grab(&lines[i]), grab(&lines[j]))
                && a2 <= lines[i].len()
                && b2 <= lines[j].len()
            {
                let hash = lines[j][b..b2].to_owned();
                lines[i].replace_range(a..a2, &hash);
            }
        }
        // Change the manifest's claims.
        9 => {
            if let Ok(mut m) = serde_json::from_str::<Manifest>(&lines[0]) {
                match u.int_in_range(0..=3)? {
                    0 => m.from_seq = Some(*u.choose(&[0, 1, 2, 24, 25])?),
                    1 => m.to_seq = Some(*u.choose(&[0, 1, 23, 24, 25, u64::MAX])?),
                    2 => m.kind = if m.kind == BundleKind::Range { BundleKind::Selection } else { BundleKind::Range },
                    _ => m.organization_id = "globex".into(),
                }
                lines[0] = serde_json::to_string(&m).unwrap();
            }
        }
        // Re-sign a forged checkpoint with a key nobody trusts, or keep the signature over another body.
        10 => {
            if let Ok(mut p) = serde_json::from_str::<ProofLine>(&lines[1]) {
                let forged = Checkpoint { origin: ORIGIN.into(), size: LOG_SIZE, root: [1; 32], extensions: vec![] };
                p.checkpoint = if u.arbitrary()? {
                    let rogue = Ed25519Signer::from_seed("fuzz.test", &[8; 32]).unwrap();
                    sign_note(&forged.to_body(), &[&rogue]).unwrap()
                } else {
                    let genuine = p.checkpoint.clone();
                    let signatures = genuine.rsplit_once("\n\n").map_or("", |(_, s)| s).to_owned();
                    format!("{}\n{signatures}", forged.to_body())
                };
                lines[1] = serde_json::to_string(&p).unwrap();
            }
        }
        // Change the end line's count.
        _ => {
            if let Some(last) = lines.last_mut() {
                *last = end_line(u.arbitrary::<u8>()? as u64);
            }
        }
    }
    Ok(())
}

impl Target for BundleTarget {
    fn name(&self) -> &'static str {
        "bundle"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        seed_bundles().into_iter().map(String::into_bytes).collect()
    }

    fn dictionary(&self) -> &'static [&'static str] {
        &[
            "\"seq\":",
            "\"id\":",
            "\"received_at\":",
            "\"leaf_hash\":",
            "\"proof\":[]",
            "\"event\":",
            "\"pruned_by\":20",
            "{\"end\":true,\"events\":0}",
            "\"kind\":\"selection\"",
            "\"kind\":\"range\"",
            "\"from_seq\":",
            "\"to_seq\":",
            "\"tree_size\":",
            "\"range_proof\":[]",
            "\"consistency\":[{\"from_size\":1,\"proof\":[]}]",
            "\"action\":\"retention.deleted\"",
            "\"seq_ranges\":[[1,24]]",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "\\n\\n",
            "\\u2014 ",
            "\"organization_id\":\"acme\"",
        ]
    }

    fn generate(&self, u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
        let seeds = seed_bundles();
        let mut lines: Vec<String> = u.choose(&seeds)?.lines().map(str::to_owned).collect();
        for _ in 0..u.int_in_range(1..=3)? {
            tamper(u, &mut lines)?;
        }
        Ok((lines.join("\n") + "\n").into_bytes())
    }

    fn run(&self, input: &[u8]) -> String {
        let Ok(text) = std::str::from_utf8(input) else {
            // The command line refuses a line that is not UTF-8 before the verifier sees it.
            return "not utf-8".into();
        };
        let mut lines: Vec<&str> = text.split('\n').collect();
        if text.ends_with('\n') {
            lines.pop();
        }
        let earlier = prefix(EARLIER);
        let since = Checkpoint { origin: ORIGIN.into(), size: EARLIER, root: earlier.root(), extensions: vec![] };
        let first = verify(&lines, None);
        let second = verify(&lines, Some(since));
        format!("{first};since:{second}")
    }
}

/// Seals `event` (with canonical bytes `bytes`) as the only event of a log and checks that its range
/// bundle verifies: every event the API accepts can be proven.
pub(crate) fn assert_one_event_bundle_verifies(event: &Event, bytes: &str) {
    let org = event.organization_id.as_str();
    let origin = format!("fuzz.test/{org}");
    let leaf = merkle::leaf_hash(bytes.as_bytes());
    let receipt = Receipt { seq: 1, id: event.id, received_at: received_at(event), leaf_hash: leaf };
    let mut manifest: Manifest = serde_json::from_str(&manifest(BundleKind::Range, &origin, 1, Some((1, 1)))).unwrap();
    manifest.organization_id = org.to_owned();
    let proofs = ProofLine { checkpoint: note(1, leaf, &origin), range_proof: Some(vec![]), consistency: vec![] };
    let lines = [
        serde_json::to_string(&manifest).unwrap(),
        serde_json::to_string(&proofs).unwrap(),
        entry_line(&receipt, None, Some(bytes.as_bytes())),
        end_line(1),
    ];
    let mut verifier = BundleVerifier::new(verifiers(), None);
    for line in &lines {
        verifier.line(line).unwrap_or_else(|e| panic!("a bundle of an accepted event is refused: {e}: {line}"));
    }
    let report = verifier.finish().expect("the bundle is complete");
    assert!(report.is_valid(), "a bundle of an accepted event does not verify: {:?}", report.problems);
    assert_eq!(report.verified, 1);
}
