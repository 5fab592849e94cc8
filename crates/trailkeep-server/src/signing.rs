//! The deployment's checkpoint signing key: created on first start in the data directory, and published
//! as a signed-note verifier key at `GET /v1/checkpoint-key`.
//!
//! The key lives in `<data-dir>/signing.key` (mode 0600) in the signed-note signer-key format. Code that
//! signs holds it as a `trailkeep_core::checkpoint::Signer`, so a key kept in a KMS can take its place
//! later without changing the callers.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use rand::RngCore;
use trailkeep_core::checkpoint::Ed25519Signer;

use crate::AppState;
use crate::keys::write_secret_file;

const FILE: &str = "signing.key";

/// Loads the signing key, creating one named `deployment` when the data directory has none. A key that
/// exists keeps its own name: renaming the deployment does not silently change which key signs.
pub fn load_or_create(data_dir: &Path, deployment: &str) -> anyhow::Result<Ed25519Signer> {
    let path = data_dir.join(FILE);
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
            Ok(signer)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand::rng().fill_bytes(&mut seed);
            let signer = Ed25519Signer::from_seed(deployment, &seed)
                .with_context(|| format!("`{deployment}` cannot name a signing key"))?;
            write_secret_file(&path, &signer.to_signer_key())?;
            tracing::info!(key = %signer.verifier(), "created the checkpoint signing key");
            Ok(signer)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// `GET /v1/checkpoint-key`: the public key that verifies this deployment's checkpoints, as one line in
/// the signed-note verifier-key format. Public by nature, so it needs no API key.
pub async fn get_checkpoint_key(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{}\n", state.checkpoint_key))
}
