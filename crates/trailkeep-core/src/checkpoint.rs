//! Checkpoints, the signed statements "this log had this many events, and this was their Merkle root", in
//! the formats of the C2SP `tlog-checkpoint` and `signed-note` specifications, so that tools written for
//! other transparency logs can read and check them.
//!
//! # The checkpoint body
//!
//! ```text
//! <origin>
//! <tree size in decimal, without leading zeros>
//! <base64 of the 32-byte root hash>
//! [<extension line>...]
//! ```
//!
//! Every line ends with a newline, extension lines included, and none may be empty. The origin names the
//! log; it should be a schema-less URL such as `audit.example.com/org/1234`, and the key that signs the
//! checkpoint should carry the same name.
//!
//! # The signed note
//!
//! A signed note is a body ending in a newline, a blank line, and one or more signature lines, each
//! `— <key name> <base64(4-byte key id || signature)>` and a newline, where the dash is the em dash U+2014.
//! A note holds no ASCII control character other than newline. The signature covers the body exactly,
//! final newline included. A note may carry several signatures, for instance the old and the new key while
//! a key is rotated, or a witness's cosignature.
//!
//! # Keys
//!
//! Only Ed25519 keys (signature type 0x01) are supported. A key is named, and its id is the first four
//! bytes of `SHA-256(name || 0x0A || 0x01 || 32-byte public key)`. A verifier key is written
//! `<name>+<key id as eight lowercase hex digits>+<base64(0x01 || public key)>`, and a signer key, which is
//! secret, `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || 32-byte seed)>`, as Go's `golang.org/x/mod/sumdb/note`
//! writes them. Key names are non-empty and hold neither Unicode white space nor `+`.
//!
//! # Opening a note
//!
//! [`open_note`] is strict. It rejects a note that is malformed in any way (no blank line before the
//! signatures, a line in the signature block that is not a signature, bad or non-canonical base64, a body
//! not ending in a newline, more than [`MAX_SIGNATURES`] signature lines, the same key signing twice), a
//! note with a signature from a known key that does not verify, and a note with no signature from a known
//! key at all. Signatures from unknown keys are skipped, as the specification requires, so that cosigners
//! and keys being rotated in do not break readers. It reports which known keys signed.
//!
//! # Rotating keys
//!
//! A [`SignerSet`] holds the key that signs now and the keys being retired, each of which keeps adding its
//! signature until its overlap period ends. Old and new key may share a name: notes and readers tell keys
//! apart by name and key id together.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer as _;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// The most signature lines a note may carry before it is rejected unread.
pub const MAX_SIGNATURES: usize = 100;

/// The signature type byte of Ed25519 in the signed-note specification.
const ALG_ED25519: u8 = 0x01;

/// What starts every signature line: an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// What a signer key starts with, so that it is never mistaken for a verifier key.
const SIGNER_KEY_PREFIX: &str = "PRIVATE+KEY+";

/// A log's signed statement of its size and root, before signing or after opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name, which the signing key's name should match.
    pub origin: String,
    /// How many leaves (events) the tree holds.
    pub size: u64,
    /// The Merkle root of those leaves.
    pub root: Hash,
    /// Opaque extra lines, signed with the rest; none is empty or holds a newline.
    pub extensions: Vec<String>,
}

/// Why a checkpoint body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint does not end with a newline")]
    MissingFinalNewline,
    #[error("checkpoint contains a control character other than newline")]
    ControlCharacter,
    #[error("checkpoint has fewer than three lines")]
    TooFewLines,
    #[error("checkpoint origin is empty")]
    EmptyOrigin,
    #[error("checkpoint tree size is not a decimal number without leading zeros")]
    BadSize,
    #[error("checkpoint root hash is not the base64 of 32 bytes")]
    BadRoot,
    #[error("checkpoint line {line} is an empty extension line")]
    EmptyExtension { line: usize },
}

impl Checkpoint {
    /// Writes the checkpoint body that gets signed. [`Checkpoint::parse_body`] reads it back unchanged as
    /// long as the origin is not empty and neither it nor any extension line holds a control character or is
    /// empty.
    pub fn to_body(&self) -> String {
        let mut body = format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(self.root));
        for line in &self.extensions {
            body.push_str(line);
            body.push('\n');
        }
        body
    }

    /// Reads a checkpoint body, strictly: three lines at least, a canonical size and a 32-byte root.
    pub fn parse_body(body: &str) -> Result<Checkpoint, CheckpointError> {
        let content = body.strip_suffix('\n').ok_or(CheckpointError::MissingFinalNewline)?;
        if has_control_character(body) {
            return Err(CheckpointError::ControlCharacter);
        }
        let mut lines = content.split('\n');
        let origin = lines.next().unwrap_or_default();
        let (Some(size), Some(root)) = (lines.next(), lines.next()) else {
            return Err(CheckpointError::TooFewLines);
        };
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let size = parse_size(size).ok_or(CheckpointError::BadSize)?;
        let root = decode_base64(root).and_then(|bytes| Hash::try_from(bytes).ok()).ok_or(CheckpointError::BadRoot)?;
        let mut extensions = Vec::new();
        for (i, line) in lines.enumerate() {
            if line.is_empty() {
                return Err(CheckpointError::EmptyExtension { line: i + 4 });
            }
            extensions.push(line.to_owned());
        }
        Ok(Checkpoint { origin: origin.to_owned(), size, root, extensions })
    }
}

/// Reads a tree size: ASCII digits without a leading zero, except for `0` itself, that fit in 64 bits.
fn parse_size(text: &str) -> Option<u64> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

/// Decodes standard base64 with padding, accepting only the one canonical encoding of each byte string.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = BASE64.decode(text).ok()?;
    (BASE64.encode(&bytes) == text).then_some(bytes)
}

fn has_control_character(text: &str) -> bool {
    text.chars().any(|c| c < ' ' && c != '\n')
}

/// Whether a key name is allowed: non-empty, without white space or `+`.
fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// The id of an Ed25519 key: the first four bytes of `SHA-256(name || 0x0A || 0x01 || public key)`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([ALG_ED25519]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn key_id_hex(id: &[u8; 4]) -> String {
    format!("{:08x}", u32::from_be_bytes(*id))
}

fn parse_key_id(text: &str) -> Option<[u8; 4]> {
    let lowercase_hex = text.len() == 8 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !lowercase_hex {
        return None;
    }
    u32::from_str_radix(text, 16).ok().map(u32::to_be_bytes)
}

/// Why a verifier or signer key could not be read or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is not of the form <name>+<key id>+<base64 key>")]
    BadFormat,
    #[error("signer key does not start with PRIVATE+KEY+")]
    NotASignerKey,
    #[error("key name {0:?} is empty or holds white space or `+`")]
    BadName(String),
    #[error("key id is not eight lowercase hexadecimal digits")]
    BadKeyId,
    #[error("key is not canonical base64")]
    BadBase64,
    #[error("key type {0:#04x} is not supported, only Ed25519 (0x01) is")]
    UnsupportedAlgorithm(u8),
    #[error("key has {0} bytes after its type, not 32")]
    BadKeyLength(usize),
    #[error("key id {stated} does not match the key, whose id is {actual}")]
    KeyIdMismatch { stated: String, actual: String },
    #[error("public key is not a valid Ed25519 point")]
    InvalidPublicKey,
}

/// Splits `<name>+<key id>+<base64 of type byte and 32 key bytes>` and checks every part but the key id.
fn parse_key_parts(text: &str) -> Result<(&str, [u8; 4], [u8; 32]), KeyError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(KeyError::BadFormat);
    };
    if !is_valid_key_name(name) {
        return Err(KeyError::BadName(name.to_owned()));
    }
    let id = parse_key_id(id).ok_or(KeyError::BadKeyId)?;
    let key = decode_base64(key).ok_or(KeyError::BadBase64)?;
    let Some((&alg, material)) = key.split_first() else {
        return Err(KeyError::BadFormat);
    };
    if alg != ALG_ED25519 {
        return Err(KeyError::UnsupportedAlgorithm(alg));
    }
    let material = <[u8; 32]>::try_from(material).map_err(|_| KeyError::BadKeyLength(material.len()))?;
    Ok((name, id, material))
}

fn check_key_id(stated: [u8; 4], actual: [u8; 4]) -> Result<(), KeyError> {
    if stated == actual {
        Ok(())
    } else {
        Err(KeyError::KeyIdMismatch { stated: key_id_hex(&stated), actual: key_id_hex(&actual) })
    }
}

/// Encodes key material as a key string's last part, `base64(0x01 || key)`.
fn encode_key(key: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(ALG_ED25519);
    bytes.extend_from_slice(key);
    BASE64.encode(bytes)
}

/// A known public key that checkpoints are checked against, with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl Verifier {
    /// The verifier of an Ed25519 public key under a name.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Verifier, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::BadName(name.to_owned()));
        }
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| KeyError::InvalidPublicKey)?;
        Ok(Verifier { name: name.to_owned(), key_id: key_id(name, public_key), key })
    }

    /// Reads a verifier key, `<name>+<key id>+<base64(0x01 || public key)>`, checking that the key id is
    /// the key's.
    pub fn parse(text: &str) -> Result<Verifier, KeyError> {
        let (name, stated, public_key) = parse_key_parts(text)?;
        let verifier = Verifier::new(name, &public_key)?;
        check_key_id(stated, verifier.key_id)?;
        Ok(verifier)
    }

    /// The key's name, which appears in the signature lines it made.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's four-byte id.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Whether `signature` is this key's signature of `message`. Verification is strict: non-canonical
    /// and small-order encodings are refused, so a signature cannot be altered into another valid one.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.key.verify_strict(message, &Signature::from_bytes(signature)).is_ok()
    }
}

impl fmt::Display for Verifier {
    /// Writes the verifier key, `<name>+<key id>+<base64(0x01 || public key)>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}+{}", self.name, key_id_hex(&self.key_id), encode_key(self.key.as_bytes()))
    }
}

impl FromStr for Verifier {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Verifier, KeyError> {
        Verifier::parse(text)
    }
}

/// A signer failed to sign, for instance because a remote key service was out of reach.
#[derive(Debug, thiserror::Error)]
#[error("signing failed")]
pub struct SignError(#[source] Box<dyn std::error::Error + Send + Sync>);

impl SignError {
    /// Wraps whatever made signing fail.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> SignError {
        SignError(source.into())
    }
}

/// Something that signs notes with an Ed25519 key: a key held in memory, or one held by a key service.
pub trait Signer {
    /// The key's name, written in each signature line.
    fn name(&self) -> &str;

    /// The key's four-byte id, as [`key_id`] computes it from the name and public key.
    fn key_id(&self) -> [u8; 4];

    /// The Ed25519 signature of `message`.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignError>;
}

/// An Ed25519 signing key held in memory. Its secret is wiped when it is dropped and never shown by
/// `Debug`.
#[derive(Clone)]
pub struct Ed25519Signer {
    name: String,
    key_id: [u8; 4],
    key: SigningKey,
}

impl Ed25519Signer {
    /// The signer of the Ed25519 key with the given 32-byte seed (the RFC 8032 private key).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Ed25519Signer, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::BadName(name.to_owned()));
        }
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, key.verifying_key().as_bytes());
        Ok(Ed25519Signer { name: name.to_owned(), key_id, key })
    }

    /// Reads a signer key, `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`, checking that the key id
    /// is that of the public key the seed gives.
    pub fn parse(text: &str) -> Result<Ed25519Signer, KeyError> {
        let rest = text.strip_prefix(SIGNER_KEY_PREFIX).ok_or(KeyError::NotASignerKey)?;
        let (name, stated, seed) = parse_key_parts(rest)?;
        let signer = Ed25519Signer::from_seed(name, &seed)?;
        check_key_id(stated, signer.key_id)?;
        Ok(signer)
    }

    /// Writes the signer key, `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`. It is a secret.
    pub fn to_signer_key(&self) -> String {
        format!("{SIGNER_KEY_PREFIX}{}+{}+{}", self.name, key_id_hex(&self.key_id), encode_key(self.key.as_bytes()))
    }

    /// The verifier of this signer's public key.
    pub fn verifier(&self) -> Verifier {
        Verifier { name: self.name.clone(), key_id: self.key_id, key: self.key.verifying_key() }
    }
}

impl fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("name", &self.name)
            .field("key_id", &key_id_hex(&self.key_id))
            .finish_non_exhaustive()
    }
}

impl Signer for Ed25519Signer {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        Ok(self.key.sign(message).to_bytes())
    }
}

/// Why a note could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignNoteError {
    #[error("note body does not end with a newline")]
    MissingFinalNewline,
    #[error("note body contains a control character other than newline")]
    ControlCharacter,
    #[error("a note needs at least one signer")]
    NoSigners,
    #[error("a note takes at most {MAX_SIGNATURES} signatures")]
    TooManySigners,
    #[error("signer name {0:?} is empty or holds white space or `+`")]
    BadSignerName(String),
    #[error("key {name}+{} signs twice", key_id_hex(.key_id))]
    DuplicateSigner { name: String, key_id: [u8; 4] },
    #[error("key {name}+{} could not sign", key_id_hex(.key_id))]
    Signer {
        name: String,
        key_id: [u8; 4],
        #[source]
        source: SignError,
    },
}

/// Signs a note body with each signer in turn and returns the signed note. The body must end with a newline
/// and hold no control character other than newline; for a checkpoint it is [`Checkpoint::to_body`].
pub fn sign_note(body: &str, signers: &[&dyn Signer]) -> Result<String, SignNoteError> {
    if !body.ends_with('\n') {
        return Err(SignNoteError::MissingFinalNewline);
    }
    if has_control_character(body) {
        return Err(SignNoteError::ControlCharacter);
    }
    if signers.is_empty() {
        return Err(SignNoteError::NoSigners);
    }
    if signers.len() > MAX_SIGNATURES {
        return Err(SignNoteError::TooManySigners);
    }
    let mut seen = Vec::with_capacity(signers.len());
    for signer in signers {
        let (name, key_id) = (signer.name(), signer.key_id());
        if !is_valid_key_name(name) {
            return Err(SignNoteError::BadSignerName(name.to_owned()));
        }
        if seen.contains(&(name, key_id)) {
            return Err(SignNoteError::DuplicateSigner { name: name.to_owned(), key_id });
        }
        seen.push((name, key_id));
    }
    let mut note = String::with_capacity(body.len() + 1 + signers.len() * 110);
    note.push_str(body);
    note.push('\n');
    for signer in signers {
        let (name, key_id) = (signer.name(), signer.key_id());
        let signature = signer.sign(body.as_bytes()).map_err(|source| SignNoteError::Signer {
            name: name.to_owned(),
            key_id,
            source,
        })?;
        let mut bytes = Vec::with_capacity(68);
        bytes.extend_from_slice(&key_id);
        bytes.extend_from_slice(&signature);
        note.push_str(SIGNATURE_PREFIX);
        note.push_str(name);
        note.push(' ');
        note.push_str(&BASE64.encode(bytes));
        note.push('\n');
    }
    Ok(note)
}

/// A known key whose signature on a note verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBy {
    /// The key's name, as its signature line gave it.
    pub name: String,
    /// The key's four-byte id.
    pub key_id: [u8; 4],
}

/// Why a signed note was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note contains a control character other than newline")]
    ControlCharacter,
    #[error("note does not end with a newline")]
    MissingFinalNewline,
    #[error("note has no blank line followed by signature lines")]
    MissingSignatures,
    #[error("note has more than {MAX_SIGNATURES} signature lines")]
    TooManySignatures,
    #[error("signature line {line} is malformed")]
    MalformedSignature { line: usize },
    #[error("signature line {line} repeats key {name}+{}", key_id_hex(.key_id))]
    DuplicateSignature { line: usize, name: String, key_id: [u8; 4] },
    #[error("more than one known key is {name}+{}", key_id_hex(.key_id))]
    AmbiguousKey { name: String, key_id: [u8; 4] },
    #[error("signature by known key {name}+{} does not verify", key_id_hex(.key_id))]
    InvalidSignature { name: String, key_id: [u8; 4] },
    #[error("note has no signature from a known key")]
    NoKnownSignature,
    #[error("note body is not a checkpoint")]
    Checkpoint(#[source] CheckpointError),
}

/// One parsed signature line.
struct SignatureLine<'a> {
    name: &'a str,
    key_id: [u8; 4],
    signature: Vec<u8>,
}

fn parse_signature_line(line: &str) -> Option<SignatureLine<'_>> {
    let (name, encoded) = line.strip_prefix(SIGNATURE_PREFIX)?.split_once(' ')?;
    if !is_valid_key_name(name) {
        return None;
    }
    let bytes = decode_base64(encoded)?;
    if bytes.len() < 5 {
        return None;
    }
    let key_id = [bytes[0], bytes[1], bytes[2], bytes[3]];
    Some(SignatureLine { name, key_id, signature: bytes[4..].to_vec() })
}

/// Opens a signed note whose body may be any text: checks its form and its signatures against the known
/// verifiers, and returns the body with the known keys that signed it. [`open_note`] does the same for a
/// checkpoint.
pub fn open_note_body<'a>(text: &'a str, verifiers: &[Verifier]) -> Result<(&'a str, Vec<VerifiedBy>), NoteError> {
    if has_control_character(text) {
        return Err(NoteError::ControlCharacter);
    }
    if !text.ends_with('\n') {
        return Err(NoteError::MissingFinalNewline);
    }
    // The body ends at the last blank line; the body may itself hold blank lines.
    let split = text.rfind("\n\n").ok_or(NoteError::MissingSignatures)?;
    let (body, block) = (&text[..split + 1], &text[split + 2..]);
    if block.is_empty() {
        return Err(NoteError::MissingSignatures);
    }
    let lines: Vec<&str> = block[..block.len() - 1].split('\n').collect();
    if lines.len() > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures);
    }

    // Read every line before checking any signature, so that a malformed note costs no cryptography.
    let mut parsed: Vec<SignatureLine<'_>> = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let signature = parse_signature_line(line).ok_or(NoteError::MalformedSignature { line: i + 1 })?;
        if parsed.iter().any(|seen| seen.name == signature.name && seen.key_id == signature.key_id) {
            return Err(NoteError::DuplicateSignature {
                line: i + 1,
                name: signature.name.to_owned(),
                key_id: signature.key_id,
            });
        }
        parsed.push(signature);
    }

    let mut verified = Vec::new();
    for signature in &parsed {
        let mut known = verifiers.iter().filter(|v| v.name == signature.name && v.key_id == signature.key_id);
        let Some(verifier) = known.next() else {
            continue;
        };
        if known.any(|other| other.key != verifier.key) {
            return Err(NoteError::AmbiguousKey { name: signature.name.to_owned(), key_id: signature.key_id });
        }
        let valid = <&[u8; 64]>::try_from(signature.signature.as_slice())
            .is_ok_and(|bytes| verifier.verify(body.as_bytes(), bytes));
        if !valid {
            return Err(NoteError::InvalidSignature { name: signature.name.to_owned(), key_id: signature.key_id });
        }
        verified.push(VerifiedBy { name: signature.name.to_owned(), key_id: signature.key_id });
    }
    if verified.is_empty() {
        return Err(NoteError::NoKnownSignature);
    }
    Ok((body, verified))
}

/// Opens a signed checkpoint: checks the note as [`open_note_body`] does, then reads its body as a
/// checkpoint. The caller should still check that the origin is the log it expected.
pub fn open_note(text: &str, verifiers: &[Verifier]) -> Result<(Checkpoint, Vec<VerifiedBy>), NoteError> {
    let (body, verified) = open_note_body(text, verifiers)?;
    let checkpoint = Checkpoint::parse_body(body).map_err(NoteError::Checkpoint)?;
    Ok((checkpoint, verified))
}

mod signer_set;
pub use signer_set::{SharedSigner, SignerSet};

#[cfg(test)]
mod tests;
