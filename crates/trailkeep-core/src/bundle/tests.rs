//! The bundle format and its verifier against hand-made logs: every tampering is named, and the fast line reader agrees with `serde_json`.

use super::*;
use crate::checkpoint::{Ed25519Signer, sign_note};
use crate::merkle::MemoryTree;

const ORG: &str = "org_acme";
const ORIGIN: &str = "audit.test/org_acme";

fn signer() -> Ed25519Signer {
    Ed25519Signer::from_seed("audit.test", &[7; 32]).unwrap()
}

fn event_id(seq: u64) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + seq as u128)
}

fn received_at(seq: u64) -> String {
    format!("2026-03-01T00:00:{:02}.{:03}Z", seq % 60, seq % 1000)
}

/// The canonical bytes of a small event with the given seq.
fn event_bytes(seq: u64, action: &str) -> String {
    format!(
        "{{\"action\":\"{action}\",\"id\":\"{}\",\"organization_id\":\"{ORG}\",\"received_at\":\"{}\",\"seq\":{seq}}}",
        event_id(seq),
        received_at(seq)
    )
}

fn receipt(seq: u64, leaf: Hash) -> Receipt {
    Receipt { seq, id: event_id(seq), received_at: received_at(seq), leaf_hash: leaf }
}

struct Log {
    events: Vec<String>,
    tree: MemoryTree,
}

fn log(size: u64) -> Log {
    let events: Vec<String> = (1..=size).map(|seq| event_bytes(seq, "user.signed_in")).collect();
    let tree = MemoryTree::from_leaves(events.iter().map(|e| merkle::leaf_hash(e.as_bytes())));
    Log { events, tree }
}

fn note(size: u64, root: Hash) -> String {
    let body = Checkpoint { origin: ORIGIN.into(), size, root, extensions: vec![] }.to_body();
    sign_note(&body, &[&signer()]).unwrap()
}

fn manifest(kind: BundleKind, size: u64, range: Option<(u64, u64)>) -> String {
    serde_json::to_string(&Manifest {
        format: FORMAT.into(),
        version: VERSION,
        organization_id: ORG.into(),
        origin: ORIGIN.into(),
        kind,
        proves: kind.proves().into(),
        tree_size: size,
        from_seq: range.map(|r| r.0),
        to_seq: range.map(|r| r.1),
        filter: None,
        created_at: "2026-03-02T00:00:00.000Z".into(),
    })
    .unwrap()
}

/// The lines of a range bundle of seq `from..=to` of `log`.
fn range_bundle(log: &Log, from: u64, to: u64, consistency_from: &[u64]) -> Vec<String> {
    let size = log.tree.size();
    let proof = merkle::range_proof(from - 1, to, size, &log.tree).unwrap();
    let consistency = consistency_from
        .iter()
        .map(|m| ConsistencyProof {
            from_size: *m,
            proof: merkle::consistency_proof(*m, size, &log.tree).unwrap().iter().map(encode_hash).collect(),
        })
        .collect();
    let proofs = ProofLine {
        checkpoint: note(size, log.tree.root()),
        range_proof: Some(proof.iter().map(encode_hash).collect()),
        consistency,
    };
    let mut lines = vec![manifest(BundleKind::Range, size, Some((from, to))), serde_json::to_string(&proofs).unwrap()];
    for seq in from..=to {
        let leaf = *log.tree.leaf(seq - 1).unwrap();
        lines.push(entry_line(&receipt(seq, leaf), None, Some(log.events[seq as usize - 1].as_bytes())));
    }
    lines.push(end_line(to - from + 1));
    lines
}

fn selection_bundle(log: &Log, seqs: &[u64]) -> Vec<String> {
    let size = log.tree.size();
    let proofs = ProofLine { checkpoint: note(size, log.tree.root()), range_proof: None, consistency: vec![] };
    let mut lines = vec![manifest(BundleKind::Selection, size, None), serde_json::to_string(&proofs).unwrap()];
    for seq in seqs {
        let leaf = *log.tree.leaf(seq - 1).unwrap();
        let proof = merkle::inclusion_proof(seq - 1, size, &log.tree).unwrap();
        lines.push(entry_line(&receipt(*seq, leaf), Some(&proof), Some(log.events[*seq as usize - 1].as_bytes())));
    }
    lines.push(end_line(seqs.len() as u64));
    lines
}

fn verify_with(lines: &[String], since: Option<Checkpoint>) -> Result<Report, BundleError> {
    let mut verifier = BundleVerifier::new(vec![signer().verifier()], since);
    for line in lines {
        verifier.line(line)?;
    }
    verifier.finish()
}

fn verify(lines: &[String]) -> Report {
    verify_with(lines, None).unwrap()
}

fn kinds(report: &Report) -> Vec<(ProblemKind, Option<u64>)> {
    report.problems.iter().map(|p| (p.kind, p.seq)).collect()
}

/// Index of the entry line of `seq` in a range bundle starting at seq 1.
fn at(seq: u64) -> usize {
    seq as usize + 1
}

#[test]
fn an_untouched_range_bundle_verifies_for_every_range_shape() {
    let log = log(37);
    for (from, to) in [(1, 37), (1, 1), (37, 37), (5, 20), (16, 32), (2, 36)] {
        let report = verify(&range_bundle(&log, from, to, &[]));
        assert!(report.is_valid(), "{from}..={to}: {:?}", report.problems);
        assert_eq!(report.verified, to - from + 1);
        assert_eq!(report.entries, to - from + 1);
        assert_eq!(report.signed_by.len(), 1);
    }
}

#[test]
fn an_altered_event_is_named() {
    let log = log(20);
    let mut lines = range_bundle(&log, 1, 20, &[]);
    lines[at(7)] = lines[at(7)].replace("user.signed_in", "user.signed_out");
    let report = verify(&lines);
    assert_eq!(kinds(&report), vec![(ProblemKind::Altered, Some(7))]);
    assert_eq!(report.problems[0].id, Some(event_id(7)));
}

#[test]
fn an_altered_receipt_breaks_the_root() {
    let log = log(20);
    let mut lines = range_bundle(&log, 1, 20, &[]);
    // Change the event and its receipt together: each entry is self-consistent, the tree is not.
    let forged = event_bytes(7, "user.deleted");
    let leaf = merkle::leaf_hash(forged.as_bytes());
    lines[at(7)] = entry_line(&receipt(7, leaf), None, Some(forged.as_bytes()));
    let report = verify(&lines);
    assert_eq!(kinds(&report), vec![(ProblemKind::Receipts, None)]);
}

#[test]
fn a_removed_event_is_missing_and_a_removed_payload_too() {
    let log = log(20);
    let mut lines = range_bundle(&log, 1, 20, &[]);
    lines.remove(at(9));
    let last = lines.len() - 1;
    lines[last] = end_line(19);
    assert_eq!(kinds(&verify(&lines)), vec![(ProblemKind::Missing, Some(9))]);

    let mut lines = range_bundle(&log, 1, 20, &[]);
    lines[at(4)] = entry_line(&receipt(4, *log.tree.leaf(3).unwrap()), None, None);
    let report = verify(&lines);
    assert_eq!(kinds(&report), vec![(ProblemKind::Missing, Some(4))]);
    assert_eq!(report.problems[0].id, Some(event_id(4)));
}

#[test]
fn swapped_events_are_reordered() {
    let log = log(20);
    let mut lines = range_bundle(&log, 1, 20, &[]);
    // Swap the payloads, keep the receipts where they were.
    let (five, six) = (log.events[4].clone(), log.events[5].clone());
    lines[at(5)] = entry_line(&receipt(5, *log.tree.leaf(4).unwrap()), None, Some(six.as_bytes()));
    lines[at(6)] = entry_line(&receipt(6, *log.tree.leaf(5).unwrap()), None, Some(five.as_bytes()));
    let report = verify(&lines);
    assert_eq!(kinds(&report), vec![(ProblemKind::Reordered, Some(5)), (ProblemKind::Reordered, Some(6))]);
    assert!(report.problems[0].detail.contains("seq 6"), "{}", report.problems[0].detail);

    // Swapping whole lines puts them out of seq order.
    let mut lines = range_bundle(&log, 1, 20, &[]);
    lines.swap(at(5), at(6));
    let report = verify(&lines);
    assert!(kinds(&report).contains(&(ProblemKind::Reordered, Some(5))), "{:?}", report.problems);
}

#[test]
fn an_inserted_event_is_named() {
    let log = log(20);
    let mut lines = range_bundle(&log, 1, 20, &[]);
    let forged = event_bytes(3, "admin.granted");
    let forged_line = entry_line(&receipt(3, merkle::leaf_hash(forged.as_bytes())), None, Some(forged.as_bytes()));
    lines.insert(at(4), forged_line);
    let last = lines.len() - 1;
    lines[last] = end_line(21);
    let report = verify(&lines);
    assert_eq!(kinds(&report), vec![(ProblemKind::Inserted, Some(3))]);
}

#[test]
fn a_cut_short_bundle_is_refused() {
    let log = log(10);
    let lines = range_bundle(&log, 1, 10, &[]);
    assert!(matches!(verify_with(&lines[..lines.len() - 1], None), Err(BundleError::Truncated(_))));
    // An end line that counts more than the bundle holds.
    let mut short = lines[..lines.len() - 3].to_vec();
    short.push(end_line(10));
    assert!(matches!(verify_with(&short, None), Err(BundleError::Truncated(_))));
    // Entries dropped from the tail with a matching count: the missing seqs are named.
    let mut short = lines[..lines.len() - 3].to_vec();
    short.push(end_line(8));
    assert_eq!(kinds(&verify(&short)), vec![(ProblemKind::Missing, Some(9)), (ProblemKind::Missing, Some(10))]);
}

#[test]
fn a_bad_signature_or_unknown_key_is_refused() {
    let log = log(10);
    let mut lines = range_bundle(&log, 1, 10, &[]);
    let mut proofs: ProofLine = serde_json::from_str(&lines[1]).unwrap();
    // Flip one character of the signature's base64.
    let at = proofs.checkpoint.len() - 5;
    let flipped = if &proofs.checkpoint[at..at + 1] == "A" { "B" } else { "A" };
    proofs.checkpoint.replace_range(at..at + 1, flipped);
    lines[1] = serde_json::to_string(&proofs).unwrap();
    assert!(matches!(verify_with(&lines, None), Err(BundleError::BadSignature(_))));

    let lines = range_bundle(&log, 1, 10, &[]);
    let other = Ed25519Signer::from_seed("audit.test", &[8; 32]).unwrap().verifier();
    let mut verifier = BundleVerifier::new(vec![other], None);
    assert!(matches!(
        verifier.line(&lines[0]).and_then(|_| verifier.line(&lines[1])),
        Err(BundleError::BadSignature(_))
    ));
}

#[test]
fn malformed_lines_name_their_line() {
    let log = log(5);
    let lines = range_bundle(&log, 1, 5, &[]);
    for (index, replacement) in [
        (0, "{\"format\":\"zip\"}"),
        (2, "not json"),
        (3, "{\"seq\":2}"),
        (3, &lines[3].replace("\"leaf_hash\":\"", "\"leaf_hash\":\"AA")),
    ] {
        let mut bad = lines.clone();
        bad[index] = replacement.to_owned();
        match verify_with(&bad, None) {
            Err(BundleError::Malformed { line, .. }) => assert_eq!(line, index as u64 + 1, "{replacement}"),
            other => panic!("{replacement}: {other:?}"),
        }
    }
    let mut after = lines.clone();
    after.push("{}".into());
    assert!(matches!(verify_with(&after, None), Err(BundleError::Malformed { line: 9, .. })));
}

#[test]
fn a_selection_proves_each_event_and_catches_forgeries() {
    let log = log(50);
    let lines = selection_bundle(&log, &[3, 17, 18, 42]);
    let report = verify(&lines);
    assert!(report.is_valid(), "{:?}", report.problems);
    assert_eq!(report.verified, 4);
    // A selection follows the timeline, which need not be seq order; a seq given twice is an insertion.
    let report = verify(&selection_bundle(&log, &[18, 3, 42, 17]));
    assert!(report.is_valid(), "{:?}", report.problems);
    assert_eq!(kinds(&verify(&selection_bundle(&log, &[3, 17, 3]))), vec![(ProblemKind::Inserted, Some(3))]);

    let mut forged = lines.clone();
    forged[3] = forged[3].replace("user.signed_in", "user.signed_out");
    assert_eq!(kinds(&verify(&forged)), vec![(ProblemKind::Altered, Some(17))]);

    // A made-up entry with a valid-looking proof of someone else's leaf.
    let fake = event_bytes(20, "admin.granted");
    let proof = merkle::inclusion_proof(19, 50, &log.tree).unwrap();
    let mut inserted = lines.clone();
    inserted
        .insert(5, entry_line(&receipt(20, merkle::leaf_hash(fake.as_bytes())), Some(&proof), Some(fake.as_bytes())));
    let last = inserted.len() - 1;
    inserted[last] = end_line(5);
    assert_eq!(kinds(&verify(&inserted)), vec![(ProblemKind::Inserted, Some(20))]);
}

/// Found by fuzzing: a selection entry renumbered to seq 0 made the verifier subtract past zero (a panic
/// in a debug build) when it looked up the leaf's index.
#[test]
fn a_selection_entry_with_seq_zero_is_an_insertion_not_a_panic() {
    let log = log(24);
    let mut lines = selection_bundle(&log, &[7, 13]);
    lines[2] = lines[2].replacen("{\"seq\":7,", "{\"seq\":0,", 1);
    assert!(lines[2].starts_with("{\"seq\":0,"));
    assert_eq!(kinds(&verify(&lines)), vec![(ProblemKind::Inserted, Some(0))]);
}

#[test]
fn history_is_checked_against_an_earlier_checkpoint() {
    let log_ = log(40);
    let old_tree = MemoryTree::from_leaves((0..25).map(|i| *log_.tree.leaf(i).unwrap()));
    let old = Checkpoint { origin: ORIGIN.into(), size: 25, root: old_tree.root(), extensions: vec![] };

    // From seq 1, the earlier root is recomputed from the leaves.
    let report = verify_with(&range_bundle(&log_, 1, 40, &[]), Some(old.clone())).unwrap();
    assert!(report.is_valid(), "{:?}", report.problems);
    assert_eq!(report.consistent_with, Some(25));

    // A later range needs a consistency proof.
    let report = verify_with(&range_bundle(&log_, 30, 40, &[]), Some(old.clone())).unwrap();
    assert_eq!(kinds(&report), vec![(ProblemKind::Inconsistent, None)]);
    let report = verify_with(&range_bundle(&log_, 30, 40, &[25]), Some(old.clone())).unwrap();
    assert!(report.is_valid(), "{:?}", report.problems);

    // A forked history: an event before 25 rewritten and everything resealed.
    let mut forked_events = log_.events.clone();
    forked_events[10] = event_bytes(11, "user.deleted");
    let forked = Log {
        tree: MemoryTree::from_leaves(forked_events.iter().map(|e| merkle::leaf_hash(e.as_bytes()))),
        events: forked_events,
    };
    for consistency in [&[][..], &[25][..]] {
        let report = verify_with(&range_bundle(&forked, 1, 40, consistency), Some(old.clone())).unwrap();
        assert_eq!(kinds(&report), vec![(ProblemKind::Inconsistent, None)], "{consistency:?}");
    }
    let report = verify_with(&range_bundle(&forked, 30, 40, &[25]), Some(old.clone())).unwrap();
    assert_eq!(kinds(&report), vec![(ProblemKind::Inconsistent, None)]);

    // A log that shrank below the earlier checkpoint.
    let short = log(20);
    let report = verify_with(&range_bundle(&short, 1, 20, &[]), Some(old)).unwrap();
    assert_eq!(kinds(&report), vec![(ProblemKind::Inconsistent, None)]);
    assert!(report.problems[0].detail.contains("shrank"));
}

/// A sealed event with a bit of everything JSON has: nesting, arrays, numbers of every form, literals,
/// escapes and characters beyond ASCII.
fn rich_event(seq: u64) -> String {
    format!(
        concat!(
            "{{\"action\":\"ai.chat.completion\",\"actor\":{{\"id\":\"usr_1\",\"name\":\"Zoë \\\"Z\\\" Ōkafor\",",
            "\"type\":\"user\"}},\"ai\":{{\"cost_usd\":0.0125,\"parameters\":{{\"temperature\":-1.5e-3}},",
            "\"prompt\":\"line one\\nline two\\t\\u00e9\\\\ \\ud83d\\ude00 🙂\",\"usage\":{{\"input_tokens\":0,",
            "\"output_tokens\":1200}}}},\"changes\":[],\"empty\":{{}},\"flags\":[true,false,null,[[1,2],{{}}]],",
            "\"id\":\"{}\",\"organization_id\":\"{}\",\"received_at\":\"{}\",\"seq\":{},\"ratio\":1E+2}}"
        ),
        event_id(seq),
        ORG,
        received_at(seq),
        seq
    )
}

fn rich_line(seq: u64) -> String {
    let event = rich_event(seq);
    entry_line(&receipt(seq, merkle::leaf_hash(event.as_bytes())), None, Some(event.as_bytes()))
}

/// What `serde_json` alone makes of an entry line, as the verifier read every line before [`Scan`].
fn read_by_serde(line: &str) -> Option<Entry<'_>> {
    let entry: EntryIn<'_> = serde_json::from_str(line).ok()?;
    if entry.end.is_some() || entry.events.is_some() {
        return None;
    }
    let event = entry.event.map(RawValue::get);
    Some(Entry {
        seq: entry.seq?,
        id: entry.id?,
        received_at: entry.received_at?,
        leaf_hash: entry.leaf_hash?,
        proof: entry.proof,
        event,
        head: event.and_then(|e| serde_json::from_str(e).ok()),
        pruned_by: entry.pruned_by,
    })
}

/// Whatever the fast reading accepts, `serde_json` reads to exactly the same entry.
fn assert_fast_agrees(line: &str) {
    let Some(fast) = Scan::new(line).range_entry() else { return };
    let slow = read_by_serde(line).unwrap_or_else(|| panic!("read fast, refused by serde_json: {line}"));
    assert_eq!(
        (fast.seq, fast.id, fast.received_at, fast.leaf_hash, fast.event),
        (slow.seq, slow.id, slow.received_at, slow.leaf_hash, slow.event),
        "{line}"
    );
    assert!(fast.proof.is_none() && slow.proof.is_none(), "{line}");
    assert_eq!(fast.head, slow.head, "{line}");
    assert!(fast.head.is_some(), "{line}");
    if let Some(event) = fast.event {
        assert_eq!(Scan::new(event).whole_event(), slow.head, "{line}");
    }
}

#[test]
fn the_fast_reading_takes_the_lines_the_service_writes() {
    let log = log(3);
    for line in &range_bundle(&log, 1, 3, &[])[2..5] {
        let entry = Scan::new(line).range_entry().expect("an entry as entry_line writes it");
        assert!(entry.head.is_some() && entry.event.is_some());
        assert_fast_agrees(line);
    }
    let line = rich_line(9);
    let entry = Scan::new(&line).range_entry().expect("a rich event");
    assert_eq!(entry.event, Some(rich_event(9).as_str()));
    assert_eq!(entry.head.map(|h| (h.id, h.seq)), Some((event_id(9), 9)));
    assert_fast_agrees(&line);
    // A deleted payload: a receipt alone.
    let bare = entry_line(&receipt(4, [3; 32]), None, None);
    let entry = Scan::new(&bare).range_entry().expect("a receipt without its event");
    assert!(entry.event.is_none() && entry.head.is_none());
}

#[test]
fn the_fast_reading_leaves_anything_unusual_to_serde() {
    let line = rich_line(9);
    let event = rich_event(9);
    let with_event = |e: &str| line.replace(&event, e);
    let unusual = [
        // Not the shape entry_line writes.
        line.replacen("{\"seq\"", "{ \"seq\"", 1),
        line.replacen(",\"event\":", ", \"event\": ", 1),
        format!("{} }}", &line[..line.len() - 1]),
        format!("{}  ", line),
        line.replacen("{\"seq\":9,", "{\"seq\":9,\"end\":true,", 1),
        line.replacen("\"received_at\":\"", "\"received_at\":\"\\u0032", 1),
        line.replacen("\"seq\":9,", "\"seq\":09,", 1),
        line.replacen("\"seq\":9,", "\"seq\":9.0,", 1),
        line.replacen("\"seq\":9,", "\"seq\":18446744073709551616,", 1),
        // Events serde_json reads to no head, or refuses.
        with_event(&event.replacen("\"seq\":9", "\"seq\":9,\"seq\":9", 1)),
        with_event(&event.replacen("\"seq\":9", "\"seq\":9,\"id\":\"x\"", 1)),
        with_event(&event.replacen("\"id\":\"0", "\"\\u0069d\":\"0", 1)),
        with_event(&event.replacen("\"seq\":9", "\"seq\":-9", 1)),
        with_event(&event.replacen("\"seq\":9", "\"seq\":9e0", 1)),
        with_event(&event.replacen("\"organization_id\":\"", "\"organization_id\":\"\\u006f", 1)),
        with_event(&event.replacen(",\"seq\":9", "", 1)),
        with_event("[1,2]"),
        with_event("null"),
        with_event(&event.replacen("line one", "line\u{1}one", 1)),
        with_event(&event.replacen("\\n", "\\x", 1)),
        with_event(&event.replacen("\\u00e9", "\\u00g9", 1)),
        with_event(&event.replacen("0.0125", "01.5", 1)),
        with_event(&event.replacen("0.0125", "1.", 1)),
        with_event(&event.replacen("1E+2", "1E+", 1)),
        with_event(&event.replacen("[]", "[1,]", 1)),
        with_event(&event.replacen("true", "tru", 1)),
        with_event(&event.replacen("{}", "{\"a\"}", 1)),
        with_event(&format!("{}{}", event, " ")),
        // Deeper than the fast reading follows, though serde_json reads it.
        with_event(&event.replacen("[]", &format!("{}{}", "[".repeat(80), "]".repeat(80)), 1)),
    ];
    for line in &unusual {
        assert!(Scan::new(line).range_entry().is_none(), "read fast: {line}");
        assert_fast_agrees(line);
    }
    // An id in another form Uuid reads is read as serde_json reads it.
    let braced = line.replacen(&format!("\"id\":\"{}\"", event_id(9)), &format!("\"id\":\"{{{}}}\"", event_id(9)), 1);
    assert!(Scan::new(&braced).range_entry().is_some());
    assert_fast_agrees(&braced);
}

#[test]
fn a_bundle_reads_the_same_through_either_path() {
    let log = log(30);
    let lines = range_bundle(&log, 1, 30, &[]);
    let mut tampered = lines.clone();
    tampered[at(7)] = tampered[at(7)].replace("user.signed_in", "user.signed_out");
    tampered.swap(at(12), at(13));
    tampered[at(20)] = entry_line(&receipt(20, *log.tree.leaf(19).unwrap()), None, None);
    tampered[at(25)] = tampered[at(25)].replace("\"seq\":25}", "\"seq\":26}");
    for bundle in [lines, tampered] {
        // A space after the opening brace is valid JSON, but not the shape the fast reading takes.
        let slow: Vec<String> = bundle
            .iter()
            .enumerate()
            .map(|(i, l)| if i >= 2 && l.starts_with("{\"seq\"") { l.replacen('{', "{ ", 1) } else { l.clone() })
            .collect();
        assert_eq!(verify(&bundle), verify(&slow));
    }
}

#[test]
fn the_lowest_special_byte_is_marked_exactly() {
    let naive = |bytes: &[u8; 8]| bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
    let mut cases: Vec<[u8; 8]> =
        vec![*b"abcdefgh", *b"abc\"efgh", *b"\\bcdefgh", *b"abcdefg\x1f", *b"\x00\x00\"\\\x01ab\xc3"];
    cases.push([0x20, 0x21, 0x1f, 0x22, 0x5b, 0x5c, 0x5d, 0x7f]);
    cases.push([0xc3, 0xa9, 0xf0, 0x9f, 0x99, 0x82, 0x80, 0x1f]);
    for b in 0..=255u8 {
        for at in 0..8 {
            let mut word = *b"plaintxt";
            word[at] = b;
            cases.push(word);
            let mut high = [0xe2; 8];
            high[at] = b;
            cases.push(high);
        }
    }
    for word in cases {
        let marks = specials(u64::from_le_bytes(word));
        let first = (marks != 0).then(|| marks.trailing_zeros() as usize / 8);
        assert_eq!(first, naive(&word), "{word:?}");
    }
}

mod mutations {
    use super::*;
    use proptest::prelude::*;

    const PIECES: &[&str] =
        &["\"", "\\", "{", "}", "[", "]", ",", ":", " ", "0", "1", "-", ".", "e", "+", "u", "n", "\u{1}", "é", "\\u"];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Any line the fast reading accepts, however it was mangled, `serde_json` reads the same.
        #[test]
        fn a_mangled_line_is_read_fast_only_as_serde_reads_it(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..3usize, 0..PIECES.len()), 1..4)
        ) {
            let mut line: Vec<char> = rich_line(9).chars().collect();
            for (at, kind, piece) in edits {
                let at = at.index(line.len());
                let piece: Vec<char> = PIECES[piece].chars().collect();
                match kind {
                    0 => {
                        line.remove(at);
                    }
                    1 => {
                        line.splice(at..at, piece);
                    }
                    _ => {
                        line.splice(at..at + 1, piece);
                    }
                }
            }
            let line: String = line.into_iter().collect();
            assert_fast_agrees(&line);
        }
    }
}

/// A log whose events 2 and 3 were deleted by retention, as recorded by event 6.
fn pruned_bundle(record_ranges: &str, by: u64) -> Vec<String> {
    let mut events: Vec<String> = (1..=5).map(|seq| event_bytes(seq, "user.signed_in")).collect();
    events.push(format!(
        "{{\"action\":\"retention.deleted\",\"id\":\"{}\",\"metadata\":{{\"seq_ranges\":{record_ranges}}},\"organization_id\":\"{ORG}\",\"received_at\":\"{}\",\"seq\":6}}",
        event_id(6),
        received_at(6)
    ));
    let log = Log { tree: MemoryTree::from_leaves(events.iter().map(|e| merkle::leaf_hash(e.as_bytes()))), events };
    let mut lines = range_bundle(&log, 1, 6, &[]);
    for seq in [2u64, 3] {
        lines[at(seq)] = pruned_entry_line(&receipt(seq, *log.tree.leaf(seq - 1).unwrap()), by);
    }
    lines
}

#[test]
fn pruned_events_verify_when_their_retention_record_lists_them() {
    let report = verify(&pruned_bundle("[[2,3]]", 6));
    assert!(report.is_valid(), "{:?}", report.problems);
    assert_eq!((report.pruned, report.pruned_unconfirmed, report.verified), (2, 0, 4));

    // A record that does not list them, or a seq that is no retention record, exposes a deletion.
    assert_eq!(kinds(&verify(&pruned_bundle("[[2,2]]", 6))), vec![(ProblemKind::Missing, Some(3))]);
    assert_eq!(
        kinds(&verify(&pruned_bundle("[[2,3]]", 5))),
        vec![(ProblemKind::Missing, Some(2)), (ProblemKind::Missing, Some(3))]
    );
    // A record beyond the bundle cannot be read here: counted, and said to be unconfirmed.
    let report = verify(&pruned_bundle("[[2,3]]", 9));
    assert!(report.is_valid(), "{:?}", report.problems);
    assert_eq!((report.pruned, report.pruned_unconfirmed), (2, 2));
}
