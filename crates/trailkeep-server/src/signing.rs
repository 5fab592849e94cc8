//! The deployment's checkpoint signing keys: the active key, created on first start; every key it
//! replaced, kept so that checkpoints signed before a rotation still verify; and rotation from one key to
//! the next, with an overlap period in which checkpoints carry both signatures.
//!
//! Two files in the data directory hold the keys, both mode 0600 and both replaced atomically (written to
//! a temporary file, synced, renamed over the old one):
//!
//! - `signing.key`: the active key, in the signed-note signer-key format.
//! - `signing-keys.json`: the history, oldest key first — every key that ever signed, with when it was
//!   created and retired and until when it signs next to its successor; the private key of a retired key
//!   only while that overlap lasts; and, for each rotation, the id of the event that records it.
//!
//! A rotation writes the history first and `signing.key` second. A crash between the two leaves a history
//! whose newest key is not the one in `signing.key`; the next start drops that key, which never signed
//! anything, and the old key stays active. The rotation event (`checkpoint_key.rotated`, in the `_platform`
//! organisation) is appended after both files are written, under an id kept in the history: until the
//! store acknowledges it, every start appends it again, and the store keeps one event per id.
//!
//! The sealer sees the keys only as `trailkeep_core::checkpoint::Signer`s in a shared
//! [`SignerSet`], so a rotation reaches it without a restart, and a key kept in a KMS can take a key
//! file's place later without changing it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use trailkeep_core::checkpoint::{Ed25519Signer, SharedSigner, SignerSet, Verifier};
use trailkeep_core::time::format_millis;
use trailkeep_core::{Action, Actor, Context, NewEvent, OrgId, Outcome, Target};
use trailkeep_store::{AppendError, AppendRequest, Permission, Store};
use trailkeep_wire::{CheckpointKeyInfo, CheckpointKeyList, RotatedCheckpointKey};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::keys::write_secret_file;
use crate::{AppState, now_ms};

const ACTIVE_FILE: &str = "signing.key";
const HISTORY_FILE: &str = "signing-keys.json";

/// How long a replaced key keeps signing when the rotation names no overlap.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// The longest overlap a rotation may ask for.
pub const MAX_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);

/// The key history as `signing-keys.json` holds it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct History {
    keys: Vec<KeyRecord>,
}

/// One key that signed checkpoints. Times are milliseconds since the Unix epoch.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRecord {
    verifier_key: String,
    created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<i64>,
    /// Until when (exclusive) a retired key still signs next to the active key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    overlap_until: Option<i64>,
    /// A retired key's signer key, kept only while its overlap lasts. A secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signer_key: Option<String>,
    /// The rotation that made this key active, unless it was the first key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotation: Option<RotationRecord>,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("verifier_key", &self.verifier_key)
            .field("retired_at", &self.retired_at)
            .field("overlap_until", &self.overlap_until)
            .field("signer_key", &self.signer_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// What the event recording a rotation says, kept so that the event can be appended again after a crash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotationRecord {
    event_id: Uuid,
    /// The verifier key of the key this one replaced.
    previous: String,
    /// The replaced key's overlap end as the rotation set it.
    overlap_until: i64,
    by: Actor,
    /// Where the rotation was asked from: the caller's address and user agent.
    #[serde(default)]
    context: Context,
    /// Whether the store acknowledged the event.
    recorded: bool,
}

/// A rotation that took effect, with the event that records it.
#[derive(Debug)]
pub struct Rotation {
    pub info: RotatedCheckpointKey,
    pub event: NewEvent,
}

/// The deployment's signing keys: what is on disk, and the [`SignerSet`] the sealer signs with.
pub struct SigningKeys {
    dir: PathBuf,
    signers: Arc<SignerSet>,
    /// The active key and the history, changed only together with the files.
    state: Mutex<KeyState>,
}

struct KeyState {
    active: Ed25519Signer,
    history: History,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys").field("dir", &self.dir).field("signers", &self.signers).finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// Loads the keys from the data directory, creating the first key, named `deployment`, when there is
    /// none; repairs a history left behind by an interrupted rotation; forgets the private keys of retired
    /// keys whose overlap has ended. Blocking.
    pub fn open(data_dir: &Path, deployment: &str) -> anyhow::Result<SigningKeys> {
        let (active, created_at) = load_or_create(data_dir, deployment)?;
        let history_path = data_dir.join(HISTORY_FILE);
        let mut history = match std::fs::read_to_string(&history_path) {
            Ok(text) => serde_json::from_str::<History>(&text)
                .with_context(|| format!("{} is not a signing key history", history_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => History::default(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", history_path.display())),
        };
        for record in &history.keys {
            Verifier::parse(&record.verifier_key)
                .with_context(|| format!("{}: a key is unreadable", history_path.display()))?;
        }
        let now = now_ms();
        if reconcile(&mut history, &active.verifier().to_string(), created_at, now) {
            write_history(data_dir, &history)?;
        }
        let signers = Arc::new(SignerSet::new(Arc::new(active.clone())));
        signers.replace(Arc::new(active.clone()), retiring(&history, now)?);
        Ok(SigningKeys { dir: data_dir.to_owned(), signers, state: Mutex::new(KeyState { active, history }) })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, KeyState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keys the sealer signs with, shared: a rotation changes them in place.
    pub fn signers(&self) -> Arc<SignerSet> {
        self.signers.clone()
    }

    /// The active key's name, which is also the deployment name in every checkpoint's origin. A key
    /// keeps the name it was created with, and a rotation keeps the name, so origins never change.
    pub fn deployment(&self) -> String {
        self.state().active.verifier().name().to_owned()
    }

    /// The active key's verifier key.
    pub fn active_verifier_key(&self) -> String {
        self.state().active.verifier().to_string()
    }

    /// Every key that ever signed, oldest first.
    pub fn list(&self, now: i64) -> Vec<CheckpointKeyInfo> {
        let state = self.state();
        let active = state.active.verifier().to_string();
        state
            .history
            .keys
            .iter()
            .map(|k| {
                let verifier = Verifier::parse(&k.verifier_key).ok();
                let is_active = k.verifier_key == active;
                CheckpointKeyInfo {
                    verifier_key: k.verifier_key.clone(),
                    name: verifier.as_ref().map(|v| v.name().to_owned()).unwrap_or_default(),
                    key_id: verifier.map(|v| hex::encode(v.key_id())).unwrap_or_default(),
                    created_at: format_millis(k.created_at),
                    retired_at: k.retired_at.map(format_millis),
                    overlap_until: k.overlap_until.map(format_millis),
                    active: is_active,
                    signing: is_active || (k.signer_key.is_some() && k.overlap_until.is_some_and(|u| now < u)),
                }
            })
            .collect()
    }

    /// Replaces the active key with a new one of the same name; the replaced key keeps signing next to
    /// it for `overlap`, and every earlier key still in its overlap stops no later than that. The new key
    /// is on disk before it signs anything. Blocking.
    pub fn rotate(&self, overlap: Duration, by: Actor, context: Context) -> anyhow::Result<Rotation> {
        let mut state = self.state();
        let now = now_ms();
        let until = now.saturating_add(i64::try_from(overlap.as_millis()).unwrap_or(i64::MAX));
        let old = state.active.verifier();
        let new = loop {
            // Old and new key share the name, so only the key id tells their signatures apart.
            let candidate = generate(old.name())?;
            let id = candidate.verifier().key_id();
            let taken =
                state.history.keys.iter().any(|k| Verifier::parse(&k.verifier_key).is_ok_and(|v| v.key_id() == id));
            if !taken {
                break candidate;
            }
        };
        let old_key = old.to_string();
        let mut history = state.history.clone();
        for record in &mut history.keys {
            if record.verifier_key == old_key {
                record.retired_at = Some(now);
                record.overlap_until = Some(until);
                record.signer_key = Some(state.active.to_signer_key());
            } else if record.overlap_until.is_some_and(|u| u > until) {
                record.overlap_until = Some(until);
            }
        }
        forget_ended_overlaps(&mut history, now);
        let event_id = Uuid::now_v7();
        let record = KeyRecord {
            verifier_key: new.verifier().to_string(),
            created_at: now,
            retired_at: None,
            overlap_until: None,
            signer_key: None,
            rotation: Some(RotationRecord {
                event_id,
                previous: old_key.clone(),
                overlap_until: until,
                by,
                context,
                recorded: false,
            }),
        };
        let event = rotation_event(&record).context("the rotation event")?;
        history.keys.push(record);
        let retiring = retiring(&history, now)?;

        write_history(&self.dir, &history)?;
        write_secret_file_atomically(&self.dir.join(ACTIVE_FILE), &new.to_signer_key())?;
        self.signers.replace(Arc::new(new.clone()), retiring);
        tracing::info!(new = %new.verifier(), old = %old_key, overlap_until = %format_millis(until), "rotated the checkpoint signing key");
        let info = RotatedCheckpointKey {
            verifier_key: new.verifier().to_string(),
            previous_verifier_key: old_key,
            rotated_at: format_millis(now),
            overlap_until: format_millis(until),
            event_id,
        };
        *state = KeyState { active: new, history };
        Ok(Rotation { info, event })
    }

    /// The events of rotations the store has not acknowledged yet.
    pub fn unrecorded_rotations(&self) -> Vec<NewEvent> {
        let state = self.state();
        state
            .history
            .keys
            .iter()
            .filter(|k| k.rotation.as_ref().is_some_and(|r| !r.recorded))
            .filter_map(|k| rotation_event(k).ok())
            .collect()
    }

    /// Notes that the store acknowledged the event of a rotation, so later starts do not append it again.
    /// Blocking.
    pub fn mark_recorded(&self, event_id: Uuid) -> anyhow::Result<()> {
        let mut state = self.state();
        let mut history = state.history.clone();
        let Some(rotation) =
            history.keys.iter_mut().filter_map(|k| k.rotation.as_mut()).find(|r| r.event_id == event_id)
        else {
            return Ok(());
        };
        if rotation.recorded {
            return Ok(());
        }
        rotation.recorded = true;
        write_history(&self.dir, &history)?;
        state.history = history;
        Ok(())
    }

    /// Removes from disk the private keys of retired keys whose overlap has ended; their public keys stay.
    /// Blocking.
    pub fn forget_ended_overlaps(&self) -> anyhow::Result<()> {
        let mut state = self.state();
        let mut history = state.history.clone();
        if forget_ended_overlaps(&mut history, now_ms()) {
            write_history(&self.dir, &history)?;
            state.history = history;
        }
        Ok(())
    }

    /// When the next overlap ends, if one is under way.
    fn next_overlap_end(&self) -> Option<i64> {
        self.state().history.keys.iter().filter(|k| k.signer_key.is_some()).filter_map(|k| k.overlap_until).min()
    }
}

/// Loads the active key, creating one named `deployment` when the data directory has none, with when it
/// was created (as well as the file tells). A key that exists keeps its own name: renaming the deployment
/// does not silently change which key signs.
fn load_or_create(data_dir: &Path, deployment: &str) -> anyhow::Result<(Ed25519Signer, i64)> {
    let path = data_dir.join(ACTIVE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let signer = Ed25519Signer::parse(text.trim())
                .with_context(|| format!("{} is not a signing key; restore it from a backup", path.display()))?;
            if signer.verifier().name() != deployment {
                tracing::warn!(
                    key = signer.verifier().name(),
                    configured = deployment,
                    "the signing key keeps the name it was created with"
                );
            }
            let created_at = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or_else(now_ms, |d| d.as_millis() as i64);
            Ok((signer, created_at))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = generate(deployment)?;
            write_secret_file_atomically(&path, &signer.to_signer_key())?;
            tracing::info!(key = %signer.verifier(), "created the checkpoint signing key");
            Ok((signer, now_ms()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn generate(name: &str) -> anyhow::Result<Ed25519Signer> {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    Ed25519Signer::from_seed(name, &seed).with_context(|| format!("`{name}` cannot name a signing key"))
}

/// Brings the history in line with the active key; returns whether it changed.
fn reconcile(history: &mut History, active: &str, created_at: i64, now: i64) -> bool {
    let mut changed = false;
    match history.keys.iter().position(|k| k.verifier_key == active) {
        Some(i) => {
            if history.keys[i].retired_at.is_some() {
                // A rotation wrote the history but not its new key: the rotation did not happen.
                tracing::warn!(key = active, "an interrupted rotation is undone; the previous key stays active");
                let record = &mut history.keys[i];
                (record.retired_at, record.overlap_until, record.signer_key) = (None, None, None);
                changed = true;
            }
            // Another key that is not retired is the new key of an interrupted rotation, which never signed.
            let before = history.keys.len();
            history.keys.retain(|k| k.verifier_key == active || k.retired_at.is_some());
            changed |= history.keys.len() != before;
        }
        None => {
            // The first start with a history, or a `signing.key` put back by hand: any other active key
            // retires now, without an overlap, since its private key is not here.
            for record in history.keys.iter_mut().filter(|k| k.retired_at.is_none()) {
                (record.retired_at, record.overlap_until, record.signer_key) = (Some(now), Some(now), None);
            }
            history.keys.push(KeyRecord {
                verifier_key: active.to_owned(),
                created_at,
                retired_at: None,
                overlap_until: None,
                signer_key: None,
                rotation: None,
            });
            changed = true;
        }
    }
    forget_ended_overlaps(history, now) || changed
}

/// Drops the private keys of retired keys whose overlap has ended; returns whether any was dropped.
fn forget_ended_overlaps(history: &mut History, now: i64) -> bool {
    let mut changed = false;
    for record in &mut history.keys {
        if record.signer_key.is_some() && record.overlap_until.is_none_or(|until| until <= now) {
            record.signer_key = None;
            changed = true;
        }
    }
    changed
}

/// The retired keys still in their overlap at `now`, with its end.
fn retiring(history: &History, now: i64) -> anyhow::Result<Vec<(SharedSigner, i64)>> {
    let mut keys: Vec<(SharedSigner, i64)> = Vec::new();
    for record in &history.keys {
        let (Some(secret), Some(until)) = (&record.signer_key, record.overlap_until) else { continue };
        if until <= now {
            continue;
        }
        let signer = Ed25519Signer::parse(secret).context("a retired signing key in the history is unreadable")?;
        anyhow::ensure!(
            signer.verifier().to_string() == record.verifier_key,
            "a retired signing key in the history does not match its public key"
        );
        keys.push((Arc::new(signer), until));
    }
    Ok(keys)
}

fn write_history(dir: &Path, history: &History) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(history).context("serialising the signing key history")?;
    write_secret_file_atomically(&dir.join(HISTORY_FILE), &json)
}

/// Replaces `path` with a file readable by its owner only holding `secret`: written beside it, synced,
/// and renamed over it, so that a crash leaves the old file or the new one, never a part.
fn write_secret_file_atomically(path: &Path, secret: &str) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    write_secret_file(&temporary, secret)?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot replace {}", path.display()))?;
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))?;
    }
    Ok(())
}

/// The `checkpoint_key.rotated` event of the rotation that made `record` the active key.
fn rotation_event(record: &KeyRecord) -> anyhow::Result<NewEvent> {
    let rotation = record.rotation.as_ref().context("the first key was not made by a rotation")?;
    let new = Verifier::parse(&record.verifier_key)?;
    let old = Verifier::parse(&rotation.previous)?;
    let (new_id, old_id) = (hex::encode(new.key_id()), hex::encode(old.key_id()));
    let who = rotation.by.name.clone().or(rotation.by.id.clone()).unwrap_or_else(|| "the system".into());
    let until = format_millis(rotation.overlap_until);
    let mut metadata = serde_json::Map::new();
    metadata.insert("old_verifier_key".into(), json!(rotation.previous));
    metadata.insert("new_verifier_key".into(), json!(record.verifier_key));
    metadata.insert("old_key_id".into(), json!(old_id));
    metadata.insert("new_key_id".into(), json!(new_id));
    metadata.insert("overlap_until".into(), json!(until));
    metadata.insert("overlap_seconds".into(), json!((rotation.overlap_until - record.created_at) / 1000));
    let target = |verifier: &Verifier, id: &str| Target {
        target_type: "checkpoint_key".into(),
        id: id.to_owned(),
        name: Some(verifier.name().to_owned()),
    };
    Ok(NewEvent {
        id: rotation.event_id,
        // The id is kept in the history, so appending the event again after a crash stores it once.
        client_id: true,
        organization_id: OrgId::platform(),
        project_id: None,
        action: Action::parse("checkpoint_key.rotated").unwrap_or_else(|_| unreachable!("the action is valid")),
        category: "checkpoint_key".into(),
        occurred_at: record.created_at,
        actor: Some(rotation.by.clone()),
        targets: vec![target(&new, &new_id), target(&old, &old_id)],
        context: rotation.context.clone(),
        description: Some(format!(
            "{who} rotated the checkpoint signing key from {old_id} to {new_id}; both sign until {until}"
        )),
        outcome: Outcome::Success,
        error: None,
        changes: Vec::new(),
        metadata,
        ai: None,
    })
}

/// Appends a rotation's event, waiting out a full write queue for a few seconds, and notes it recorded.
async fn record_rotation(keys: &Arc<SigningKeys>, store: &dyn Store, event: NewEvent) -> Result<(), AppendError> {
    let id = event.id;
    let mut wait = Duration::from_millis(100);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match store.append(AppendRequest { events: vec![event.clone()], idempotency: None }).await {
            Ok(_) => break,
            Err(AppendError::Overloaded { .. }) if attempts < 6 => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => return Err(e),
        }
    }
    let keys = keys.clone();
    match tokio::task::spawn_blocking(move || keys.mark_recorded(id)).await {
        Ok(Ok(())) => {}
        // The event is stored; the next start appends it again under the same id, which stores nothing.
        Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "cannot note the rotation event as recorded"),
        Err(e) => tracing::warn!(error = %e, "cannot note the rotation event as recorded"),
    }
    Ok(())
}

/// Appends the events of rotations whose recording a crash or a store failure interrupted. A failure is
/// logged, and the next start tries again.
pub async fn record_interrupted_rotations(keys: &Arc<SigningKeys>, store: &dyn Store) {
    for event in keys.unrecorded_rotations() {
        let id = event.id;
        if let Err(e) = record_rotation(keys, store, event).await {
            tracing::error!(event_id = %id, error = %e, "cannot record the checkpoint key rotation event; retrying on the next start");
        }
    }
}

/// Removes retired private keys from disk as their overlaps end, in the background.
pub fn forget_keys_as_overlaps_end(keys: Arc<SigningKeys>) {
    let Some(mut next) = keys.next_overlap_end() else { return };
    tokio::spawn(async move {
        loop {
            let wait = u64::try_from(next.saturating_sub(now_ms())).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(wait.saturating_add(10))).await;
            let forgetting = keys.clone();
            match tokio::task::spawn_blocking(move || forgetting.forget_ended_overlaps()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "cannot remove a retired signing key"),
                Err(e) => tracing::warn!(error = %e, "cannot remove a retired signing key"),
            }
            match keys.next_overlap_end() {
                Some(end) if end > next => next = end,
                _ => return,
            }
        }
    });
}

/// Reads an overlap: seconds as a JSON number, or a string of seconds or of `<number><unit>` parts with
/// units `s`, `m`, `h` and `d`, such as `90s`, `24h` or `1h30m`.
pub fn parse_overlap(value: &Value) -> Option<Duration> {
    let seconds = match value {
        Value::Number(n) => n.as_u64()?,
        Value::String(text) => parse_duration_text(text.trim())?,
        _ => return None,
    };
    let overlap = Duration::from_secs(seconds);
    (overlap <= MAX_OVERLAP).then_some(overlap)
}

fn parse_duration_text(text: &str) -> Option<u64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
    }
    (digits.is_empty() && !text.is_empty()).then_some(total)
}

/// Reads the body of a rotation request: empty, or `{"overlap": …}`.
fn rotation_overlap(body: &[u8]) -> Result<Duration, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DEFAULT_OVERLAP);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("the body is not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", "the body must be a JSON object"));
    };
    if let Some(name) = fields.keys().find(|k| *k != "overlap") {
        let name: String = name.chars().take(64).collect();
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_field",
            format!("`{name}` is not a field of a rotation"),
        )
        .with_field(name));
    }
    match fields.get("overlap") {
        None | Some(Value::Null) => Ok(DEFAULT_OVERLAP),
        Some(value) => parse_overlap(value).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!(
                    "overlap must be seconds or a duration such as `24h` or `1h30m`, at most {} days",
                    MAX_OVERLAP.as_secs() / 86_400
                ),
            )
            .with_field("overlap")
        }),
    }
}

/// `GET /v1/checkpoint-key`: the public key that verifies this deployment's checkpoints, as one line in
/// the signed-note verifier-key format. Public by nature, so it needs no API key.
pub async fn get_checkpoint_key(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{}\n", state.signing.active_verifier_key()))
}

/// `GET /v1/checkpoint-keys`: every key that ever signed this deployment's checkpoints, oldest first, so
/// that checkpoints from before a rotation still verify. Public, like the active key.
pub async fn list_checkpoint_keys(State(state): State<Arc<AppState>>) -> Json<CheckpointKeyList> {
    Json(CheckpointKeyList { data: state.signing.list(now_ms()) })
}

/// `POST /v1/checkpoint-key/rotate`: a platform admin key replaces the signing key; the old key keeps
/// signing next to the new one for the overlap (`{"overlap": "24h"}`, default 24 hours).
pub async fn rotate_checkpoint_key(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: crate::audit::Origin,
    body: Bytes,
) -> Result<Json<RotatedCheckpointKey>, ApiError> {
    principal.require(Permission::Admin)?;
    if principal.key.org.is_some() {
        return Err(ApiError::forbidden("only a platform admin key may rotate the checkpoint signing key"));
    }
    let overlap = rotation_overlap(&body)?;
    let keys = state.signing.clone();
    let actor = principal.actor();
    let rotation = tokio::task::spawn_blocking(move || keys.rotate(overlap, actor, origin.context))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    forget_keys_as_overlaps_end(state.signing.clone());
    if let Err(e) = record_rotation(&state.signing, state.store.as_ref(), rotation.event).await {
        tracing::error!(error = %e, event_id = %rotation.info.event_id, "the key was rotated but its event is not recorded yet");
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the signing key was rotated, but its event could not be recorded yet; it is recorded on the next start",
        ));
    }
    tracing::info!(by = %principal.key.id, "checkpoint signing key rotated");
    Ok(Json(rotation.info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_are_seconds_or_durations_with_units() {
        let secs = |v: Value| parse_overlap(&v).map(|d| d.as_secs());
        assert_eq!(secs(json!(90)), Some(90));
        assert_eq!(secs(json!(0)), Some(0));
        assert_eq!(secs(json!("2")), Some(2));
        assert_eq!(secs(json!("24h")), Some(86_400));
        assert_eq!(secs(json!("1h30m")), Some(5_400));
        assert_eq!(secs(json!("7d")), Some(604_800));
        assert_eq!(secs(json!("30d")), Some(2_592_000));
        for bad in [json!("31d"), json!(""), json!("h"), json!("5x"), json!("5h3"), json!(-1), json!(1.5), json!(true)]
        {
            assert_eq!(secs(bad.clone()), None, "{bad}");
        }
        assert_eq!(secs(json!("99999999999999999999d")), None);
    }

    #[test]
    fn a_rotation_keeps_the_old_key_signing_until_the_overlap_ends_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let keys = SigningKeys::open(dir.path(), "example.test").unwrap();
        let old = keys.active_verifier_key();
        let by =
            Actor { actor_type: trailkeep_core::ActorType::System, id: Some("test".into()), name: None, email: None };
        let rotation = keys.rotate(Duration::from_secs(3600), by, Context::default()).unwrap();
        assert_eq!(rotation.info.previous_verifier_key, old);
        assert_eq!(keys.active_verifier_key(), rotation.info.verifier_key);
        assert_eq!(keys.signers().signers_at(now_ms()).len(), 2);
        assert_eq!(keys.deployment(), "example.test", "a rotation keeps the name");
        assert_eq!(keys.unrecorded_rotations().len(), 1);
        drop(keys);

        let reopened = SigningKeys::open(dir.path(), "example.test").unwrap();
        assert_eq!(reopened.active_verifier_key(), rotation.info.verifier_key);
        assert_eq!(reopened.signers().signers_at(now_ms()).len(), 2, "the overlap outlives a restart");
        assert_eq!(reopened.unrecorded_rotations()[0].id, rotation.info.event_id, "recorded again, same id");
        reopened.mark_recorded(rotation.info.event_id).unwrap();
        assert!(reopened.unrecorded_rotations().is_empty());
        let listed = reopened.list(now_ms());
        assert_eq!(listed.len(), 2);
        assert!(listed[0].signing && !listed[0].active && listed[1].active);
    }

    #[test]
    fn an_ended_overlap_leaves_only_the_public_key_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let keys = SigningKeys::open(dir.path(), "example.test").unwrap();
        let first = keys.active_verifier_key();
        let by = Actor { actor_type: trailkeep_core::ActorType::System, id: None, name: None, email: None };
        keys.rotate(Duration::ZERO, by, Context::default()).unwrap();
        assert_eq!(keys.signers().signers_at(now_ms()).len(), 1, "no overlap: only the new key signs");
        drop(keys);
        let history = std::fs::read_to_string(dir.path().join(HISTORY_FILE)).unwrap();
        assert!(history.contains(&first) && !history.contains("PRIVATE+KEY"), "{history}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(HISTORY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_rotation_interrupted_before_the_new_key_was_written_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        let keys = SigningKeys::open(dir.path(), "example.test").unwrap();
        let old = keys.active_verifier_key();
        let old_file = std::fs::read(dir.path().join(ACTIVE_FILE)).unwrap();
        let by = Actor { actor_type: trailkeep_core::ActorType::System, id: None, name: None, email: None };
        keys.rotate(Duration::from_secs(60), by, Context::default()).unwrap();
        drop(keys);
        // As if the process died after writing the history and before replacing `signing.key`.
        std::fs::write(dir.path().join(ACTIVE_FILE), old_file).unwrap();
        let reopened = SigningKeys::open(dir.path(), "example.test").unwrap();
        assert_eq!(reopened.active_verifier_key(), old);
        let listed = reopened.list(now_ms());
        assert_eq!(listed.len(), 1, "the never-used key is dropped");
        assert!(listed[0].active && listed[0].retired_at.is_none());
        assert!(reopened.unrecorded_rotations().is_empty());
        assert_eq!(reopened.signers().signers_at(now_ms()).len(), 1);
    }
}
