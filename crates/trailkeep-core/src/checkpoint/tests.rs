//! Tests of checkpoints and signed notes: known answers from Go's reference implementation of the
//! signed-note format and from the Go checksum database's published checkpoint, strict parsing, and
//! properties that round trips hold and that any tampering is caught.

use base64::Engine as _;
use proptest::prelude::*;

use super::*;

// Known answers from Go's reference implementation of signed notes, golang.org/x/mod `sumdb/note/note_test.go`
// (`TestNewVerifier`, `TestNewSigner`, `TestSign`, `TestOpen`): a published signer key, its verifier key,
// a second verifier key, and the notes they sign. Ed25519 signatures are deterministic, so signing the same
// text with the same key must give the same bytes.

const PETER_SIGNER: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VERIFIER: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const GO_TEXT: &str =
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str =
    "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

// A real checkpoint of the Go checksum database with its published verifier key, as transparency-dev/formats
// `log/note_test.go` (`TestSumDBNoteParsing`) carries it.

const SUMDB_VERIFIER: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
const SUMDB_NOTE: &str = "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\n\u{2014} sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=\n";

fn verifier(text: &str) -> Verifier {
    Verifier::parse(text).unwrap()
}

fn peter() -> Ed25519Signer {
    Ed25519Signer::parse(PETER_SIGNER).unwrap()
}

fn signer(name: &str, byte: u8) -> Ed25519Signer {
    Ed25519Signer::from_seed(name, &[byte; 32]).unwrap()
}

fn sample_checkpoint() -> Checkpoint {
    Checkpoint {
        origin: "audit.example.com/org/42".to_owned(),
        size: 1234,
        root: crate::merkle::leaf_hash(b"root"),
        extensions: vec![],
    }
}

#[test]
fn the_published_signer_key_gives_the_published_verifier_key() {
    let signer = peter();
    assert_eq!(signer.verifier().to_string(), PETER_VERIFIER);
    assert_eq!(signer.verifier(), verifier(PETER_VERIFIER));
    assert_eq!(signer.to_signer_key(), PETER_SIGNER);
    assert_eq!(Signer::key_id(&signer), [0xc7, 0x4f, 0x20, 0xa3]);
    assert_eq!(key_id("PeterNeumann", &signer.verifier().public_key()), [0xc7, 0x4f, 0x20, 0xa3]);
}

#[test]
fn signing_the_published_text_gives_the_published_note() {
    let signer = peter();
    let note = sign_note(GO_TEXT, &[&signer]).unwrap();
    assert_eq!(note, format!("{GO_TEXT}\n{PETER_SIG}"));
}

#[test]
fn opening_the_published_note_reports_only_the_known_signer() {
    let note = format!("{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    let peter_by = VerifiedBy { name: "PeterNeumann".to_owned(), key_id: [0xc7, 0x4f, 0x20, 0xa3] };
    let enoch_by = VerifiedBy { name: "EnochRoot".to_owned(), key_id: [0xaf, 0x0c, 0xfe, 0x78] };

    let (body, by) = open_note_body(&note, &[verifier(PETER_VERIFIER)]).unwrap();
    assert_eq!(body, GO_TEXT);
    assert_eq!(by, vec![peter_by.clone()]);

    let (_, by) = open_note_body(&note, &[verifier(ENOCH_VERIFIER), verifier(PETER_VERIFIER)]).unwrap();
    assert_eq!(by, vec![peter_by, enoch_by]);

    assert_eq!(open_note_body(&note, &[]), Err(NoteError::NoKnownSignature));
    // The same verifier given twice is no ambiguity.
    assert!(open_note_body(&note, &[verifier(PETER_VERIFIER), verifier(PETER_VERIFIER)]).is_ok());
}

#[test]
fn the_published_malformed_notes_are_rejected() {
    let known = [verifier(PETER_VERIFIER)];
    let without_newline = &PETER_SIG[..PETER_SIG.len() - 1];
    let cases = [
        (GO_TEXT.to_owned(), NoteError::MissingSignatures),
        (format!("{GO_TEXT}\n"), NoteError::MissingSignatures),
        (format!("{GO_TEXT}\n{without_newline}"), NoteError::MissingFinalNewline),
        (format!("\x01{GO_TEXT}\n{PETER_SIG}"), NoteError::ControlCharacter),
        (
            format!(
                "{GO_TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            ),
            NoteError::MalformedSignature { line: 1 },
        ),
        (format!("{GO_TEXT}\n{PETER_SIG}Unexpected line.\n"), NoteError::MalformedSignature { line: 2 }),
        (format!("{GO_TEXT}\n{}", PETER_SIG.repeat(101)), NoteError::TooManySignatures),
        (
            format!("{GO_TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]),
            NoteError::InvalidSignature { name: "PeterNeumann".to_owned(), key_id: [0xc7, 0x4f, 0x20, 0xa3] },
        ),
        (
            format!("{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}{PETER_SIG}"),
            NoteError::DuplicateSignature {
                line: 3,
                name: "PeterNeumann".to_owned(),
                key_id: [0xc7, 0x4f, 0x20, 0xa3],
            },
        ),
    ];
    for (note, expected) in cases {
        assert_eq!(open_note_body(&note, &known), Err(expected), "note {note:?}");
    }
}

#[test]
fn the_go_checksum_database_checkpoint_opens_with_its_published_key() {
    let (checkpoint, by) = open_note(SUMDB_NOTE, &[verifier(SUMDB_VERIFIER)]).unwrap();
    assert_eq!(checkpoint.origin, "go.sum database tree");
    assert_eq!(checkpoint.size, 6476701);
    assert_eq!(BASE64.encode(checkpoint.root), "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=");
    assert!(checkpoint.extensions.is_empty());
    assert_eq!(by, vec![VerifiedBy { name: "sum.golang.org".to_owned(), key_id: [0x03, 0x3d, 0xe0, 0xae] }]);
    // And it is written back byte for byte.
    assert_eq!(format!("{}\n", checkpoint.to_body()), SUMDB_NOTE[..SUMDB_NOTE.find("\u{2014}").unwrap()]);
}

#[test]
fn every_mangling_of_the_published_verifier_key_is_rejected() {
    // The probes of Go's `TestNewVerifier`: every proper substring, and every byte changed by one.
    let bytes = PETER_VERIFIER.as_bytes();
    for i in 0..=bytes.len() {
        for j in i + 1..=bytes.len() {
            if (i, j) != (0, bytes.len()) {
                let text = std::str::from_utf8(&bytes[i..j]).unwrap();
                assert!(Verifier::parse(text).is_err(), "{text:?} was accepted");
            }
        }
    }
    for i in 0..bytes.len() {
        let mut changed = bytes.to_vec();
        changed[i] += 1;
        let text = String::from_utf8(changed).unwrap();
        assert!(Verifier::parse(&text).is_err(), "{text:?} was accepted");
    }
    // Go refuses this one for its length; its last character also leaves padding bits set, which the strict
    // decoding here refuses first.
    assert_eq!(
        Verifier::parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="),
        Err(KeyError::BadBase64)
    );
    assert_eq!(
        Verifier::parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEQ=="),
        Err(KeyError::BadKeyLength(36))
    );
    assert_eq!(
        Verifier::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(KeyError::UnsupportedAlgorithm(0x65))
    );
    assert_eq!(
        Verifier::parse("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(KeyError::BadKeyId),
        "key ids are written in lowercase"
    );
}

#[test]
fn every_mangling_of_the_published_signer_key_is_rejected() {
    // The probes of Go's `TestNewSigner`.
    let bytes = PETER_SIGNER.as_bytes();
    for i in 0..=bytes.len() {
        for j in i + 1..=bytes.len() {
            if (i, j) != (0, bytes.len()) {
                let text = std::str::from_utf8(&bytes[i..j]).unwrap();
                assert!(Ed25519Signer::parse(text).is_err(), "{text:?} was accepted");
            }
        }
    }
    for i in 0..bytes.len() {
        let mut changed = bytes.to_vec();
        changed[i] += 1;
        let text = String::from_utf8(changed).unwrap();
        assert!(Ed25519Signer::parse(&text).is_err(), "{text:?} was accepted");
    }
    assert_eq!(Ed25519Signer::parse(PETER_VERIFIER).unwrap_err(), KeyError::NotASignerKey);
}

#[test]
fn a_signed_checkpoint_opens_to_the_same_checkpoint() {
    let log = signer("audit.example.com/org/42", 7);
    let checkpoint = Checkpoint { extensions: vec!["timestamp 1700000000".to_owned()], ..sample_checkpoint() };
    let note = sign_note(&checkpoint.to_body(), &[&log]).unwrap();
    let (opened, by) = open_note(&note, &[log.verifier()]).unwrap();
    assert_eq!(opened, checkpoint);
    assert_eq!(by, vec![VerifiedBy { name: log.name().to_owned(), key_id: Signer::key_id(&log) }]);
}

#[test]
fn a_signature_by_another_key_does_not_open_the_note() {
    let log = signer("audit.example.com/org/42", 7);
    let other = signer("audit.example.com/org/42", 8);
    let stranger = signer("someone.else", 9);
    let note = sign_note(&sample_checkpoint().to_body(), &[&other]).unwrap();
    // Same name, other key: another key id, so the signature is from an unknown key.
    assert_eq!(open_note(&note, &[log.verifier()]), Err(NoteError::NoKnownSignature));
    let note = sign_note(&sample_checkpoint().to_body(), &[&stranger]).unwrap();
    assert_eq!(open_note(&note, &[log.verifier()]), Err(NoteError::NoKnownSignature));

    // A signature by one key relabelled with another key's name and id is checked, and fails.
    let forged =
        note.replace(&format!("{SIGNATURE_PREFIX}{} ", stranger.name()), &format!("{SIGNATURE_PREFIX}{} ", log.name()));
    let line = forged.lines().last().unwrap();
    let encoded = line.rsplit(' ').next().unwrap();
    let mut bytes = BASE64.decode(encoded).unwrap();
    bytes[..4].copy_from_slice(&Signer::key_id(&log));
    let forged = forged.replace(encoded, &BASE64.encode(bytes));
    assert_eq!(
        open_note(&forged, &[log.verifier()]),
        Err(NoteError::InvalidSignature { name: log.name().to_owned(), key_id: Signer::key_id(&log) })
    );
}

#[test]
fn a_note_signed_by_old_and_new_keys_opens_with_either() {
    let old = signer("audit.example.com/org/42", 1);
    let new = signer("audit.example.com/org/42", 2);
    let witness = signer("witness.example.org", 3);
    let note = sign_note(&sample_checkpoint().to_body(), &[&old, &new, &witness]).unwrap();
    let by_old = VerifiedBy { name: old.name().to_owned(), key_id: Signer::key_id(&old) };
    let by_new = VerifiedBy { name: new.name().to_owned(), key_id: Signer::key_id(&new) };
    assert_eq!(open_note(&note, &[old.verifier()]).unwrap().1, vec![by_old.clone()]);
    assert_eq!(open_note(&note, &[new.verifier()]).unwrap().1, vec![by_new.clone()]);
    assert_eq!(open_note(&note, &[new.verifier(), old.verifier()]).unwrap().1, vec![by_old, by_new]);
}

#[test]
fn any_bit_flipped_anywhere_in_a_signed_checkpoint_is_caught() {
    let log = signer("audit.example.com/org/42", 7);
    let witness = signer("witness.example.org", 3);
    let note = sign_note(&sample_checkpoint().to_body(), &[&log, &witness]).unwrap();
    let known = [log.verifier()];
    assert!(open_note(&note, &known).is_ok());
    let bytes = note.as_bytes();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut changed = bytes.to_vec();
            changed[i] ^= 1 << bit;
            // A note is text, so a change that breaks UTF-8 cannot even be offered.
            if let Ok(text) = String::from_utf8(changed) {
                // Flipping a bit of the witness's line leaves the log's signature standing, as it should.
                let in_witness_line = i >= note.rfind(SIGNATURE_PREFIX).unwrap();
                if !in_witness_line {
                    assert!(open_note(&text, &known).is_err(), "byte {i} bit {bit}: {text:?}");
                }
            }
        }
    }
}

#[test]
fn exactly_the_limit_of_signature_lines_is_accepted() {
    let log = signer("audit.example.com/org/42", 7);
    let others: Vec<Ed25519Signer> =
        (0..MAX_SIGNATURES as u8 - 1).map(|i| signer(&format!("cosigner{i}"), 100 + i)).collect();
    let mut signers: Vec<&dyn Signer> = vec![&log];
    signers.extend(others.iter().map(|s| s as &dyn Signer));
    let note = sign_note(&sample_checkpoint().to_body(), &signers).unwrap();
    assert!(open_note(&note, &[log.verifier()]).is_ok());
    let extra = signer("one.too.many", 250);
    signers.push(&extra);
    assert!(matches!(sign_note(&sample_checkpoint().to_body(), &signers), Err(SignNoteError::TooManySigners)));
}

#[test]
fn checkpoint_bodies_are_parsed_strictly() {
    let root = BASE64.encode([7u8; 32]);
    let cases = [
        ("Head\n9944\n".to_owned(), CheckpointError::TooFewLines),
        (format!("\n9944\n{root}\n"), CheckpointError::EmptyOrigin),
        (format!("Log\n123\n{root}"), CheckpointError::MissingFinalNewline),
        (format!("Log\nbananas\n{root}\n"), CheckpointError::BadSize),
        (format!("Log\n-34\n{root}\n"), CheckpointError::BadSize),
        (format!("Log\n+34\n{root}\n"), CheckpointError::BadSize),
        (format!("Log\n034\n{root}\n"), CheckpointError::BadSize),
        (format!("Log\n\n{root}\n"), CheckpointError::BadSize),
        (format!("Log\n3438945738945739845734895735\n{root}\n"), CheckpointError::BadSize),
        ("Log\n123\nThisIsn'tBase64\n".to_owned(), CheckpointError::BadRoot),
        ("Log\n123\nYmFuYW5hcw==\n".to_owned(), CheckpointError::BadRoot),
        // The same 32 bytes with non-zero padding bits: not the canonical encoding.
        (format!("Log\n123\n{}F=\n", &root[..root.len() - 2]), CheckpointError::BadRoot),
        (format!("Log\n123\n{root}\n\n"), CheckpointError::EmptyExtension { line: 4 }),
        (format!("Log\n123\n{root}\nok\n\n"), CheckpointError::EmptyExtension { line: 5 }),
        (format!("Log\t1\n123\n{root}\n"), CheckpointError::ControlCharacter),
    ];
    for (body, expected) in cases {
        assert_eq!(Checkpoint::parse_body(&body), Err(expected), "body {body:?}");
    }
    let zero = Checkpoint::parse_body(&format!("Log\n0\n{root}\n")).unwrap();
    assert_eq!(zero.size, 0);
    let max = Checkpoint::parse_body(&format!("Log\n{}\n{root}\nmore\nlines\n", u64::MAX)).unwrap();
    assert_eq!((max.size, max.extensions), (u64::MAX, vec!["more".to_owned(), "lines".to_owned()]));
}

#[test]
fn a_note_whose_body_is_not_a_checkpoint_is_rejected_after_its_signature_checks_out() {
    let log = signer("log", 1);
    let note = sign_note("if this is a valid checkpoint then I'll eat my hat\n", &[&log]).unwrap();
    assert_eq!(open_note(&note, &[log.verifier()]), Err(NoteError::Checkpoint(CheckpointError::TooFewLines)));
}

#[test]
fn a_body_with_blank_lines_is_separated_at_the_last_blank_line() {
    let log = signer("log", 1);
    let body = "first\n\n\u{2014} not a signature\n\n";
    let note = sign_note(body, &[&log]).unwrap();
    assert_eq!(open_note_body(&note, &[log.verifier()]).unwrap().0, body);
}

struct BadName;

impl Signer for BadName {
    fn name(&self) -> &str {
        "bad name"
    }
    fn key_id(&self) -> [u8; 4] {
        [0; 4]
    }
    fn sign(&self, _: &[u8]) -> Result<[u8; 64], SignError> {
        Ok([0; 64])
    }
}

struct Unreachable;

impl Signer for Unreachable {
    fn name(&self) -> &str {
        "kms.example.com/key"
    }
    fn key_id(&self) -> [u8; 4] {
        [1, 2, 3, 4]
    }
    fn sign(&self, _: &[u8]) -> Result<[u8; 64], SignError> {
        Err(SignError::new("key service unreachable"))
    }
}

#[test]
fn signing_refuses_bad_bodies_and_bad_signers() {
    let log = signer("log", 1);
    assert!(matches!(sign_note("no newline", &[&log]), Err(SignNoteError::MissingFinalNewline)));
    assert!(matches!(sign_note("tab\there\n", &[&log]), Err(SignNoteError::ControlCharacter)));
    assert!(matches!(sign_note("body\n", &[]), Err(SignNoteError::NoSigners)));
    assert!(matches!(sign_note("body\n", &[&log, &log]), Err(SignNoteError::DuplicateSigner { .. })));
    assert!(matches!(sign_note("body\n", &[&BadName]), Err(SignNoteError::BadSignerName(name)) if name == "bad name"));

    let err = sign_note("body\n", &[&log, &Unreachable]).unwrap_err();
    let mut chain = vec![err.to_string()];
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    assert_eq!(
        chain.join(": "),
        "key kms.example.com/key+01020304 could not sign: signing failed: key service unreachable"
    );
}

#[test]
fn keys_refuse_bad_names() {
    for name in ["", "a b", "a+b", "tab\tname", "nbsp\u{a0}name"] {
        assert_eq!(Ed25519Signer::from_seed(name, &[1; 32]).unwrap_err(), KeyError::BadName(name.to_owned()));
        let public_key = signer("ok", 1).verifier().public_key();
        assert_eq!(Verifier::new(name, &public_key).unwrap_err(), KeyError::BadName(name.to_owned()));
    }
}

#[test]
fn a_signer_never_shows_its_secret() {
    let log = signer("log", 0xab);
    let shown = format!("{log:?} {log:#?}");
    let secret = log.to_signer_key();
    let seed_b64 = secret.rsplit('+').next().unwrap();
    assert!(!shown.contains(&seed_b64[4..20]), "{shown}");
    assert!(!shown.to_lowercase().contains("abababab"), "{shown}");
    assert!(shown.contains("log"));
}

#[test]
fn error_messages_are_lowercase_without_a_trailing_period() {
    let messages = [
        NoteError::NoKnownSignature.to_string(),
        NoteError::InvalidSignature { name: "log".to_owned(), key_id: [0, 0, 0, 1] }.to_string(),
        NoteError::Checkpoint(CheckpointError::BadRoot).to_string(),
        CheckpointError::EmptyExtension { line: 4 }.to_string(),
        KeyError::BadKeyLength(3).to_string(),
        KeyError::KeyIdMismatch { stated: "00000000".to_owned(), actual: "00000001".to_owned() }.to_string(),
        SignNoteError::NoSigners.to_string(),
        SignError::new("x").to_string(),
    ];
    for message in messages {
        assert!(message.starts_with(|c: char| c.is_lowercase()), "{message}");
        assert!(!message.ends_with('.'), "{message}");
    }
    assert_eq!(
        NoteError::InvalidSignature { name: "log".to_owned(), key_id: [0, 0, 0, 1] }.to_string(),
        "signature by known key log+00000001 does not verify"
    );
}

fn checkpoints() -> impl Strategy<Value = Checkpoint> {
    ("[a-z0-9][a-z0-9./_-]{0,40}", any::<u64>(), any::<[u8; 32]>(), prop::collection::vec("[ -~]{1,30}", 0..3))
        .prop_map(|(origin, size, root, extensions)| Checkpoint { origin, size, root, extensions })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn checkpoint_bodies_round_trip(checkpoint in checkpoints()) {
        prop_assert_eq!(Checkpoint::parse_body(&checkpoint.to_body()), Ok(checkpoint));
    }

    #[test]
    fn verifier_and_signer_keys_round_trip(name in "[a-zA-Z0-9./_-]{1,40}", seed in any::<[u8; 32]>()) {
        let signer = Ed25519Signer::from_seed(&name, &seed).unwrap();
        let verifier = signer.verifier();
        let text = verifier.to_string();
        prop_assert_eq!(Verifier::parse(&text), Ok(verifier.clone()));
        prop_assert_eq!(text.parse::<Verifier>().unwrap().to_string(), text);
        let secret = signer.to_signer_key();
        let reread = Ed25519Signer::parse(&secret).unwrap();
        prop_assert_eq!(reread.to_signer_key(), secret);
        prop_assert_eq!(reread.verifier(), verifier);
    }

    #[test]
    fn signed_checkpoints_open_and_a_changed_character_of_the_body_does_not(
        checkpoint in checkpoints(),
        seed in any::<[u8; 32]>(),
        at in any::<prop::sample::Index>(),
    ) {
        let log = Ed25519Signer::from_seed("log.example.com", &seed).unwrap();
        let body = checkpoint.to_body();
        let note = sign_note(&body, &[&log]).unwrap();
        prop_assert_eq!(open_note(&note, &[log.verifier()]), Ok((checkpoint, vec![VerifiedBy {
            name: "log.example.com".to_owned(),
            key_id: Signer::key_id(&log),
        }])));

        let i = at.index(body.len());
        let original = body.as_bytes()[i];
        let replacement = if original == b'a' { "b" } else { "a" };
        let tampered = format!("{}{replacement}{}", &body[..i], &note[i + 1..]);
        prop_assert!(open_note(&tampered, &[log.verifier()]).is_err());
    }
}
