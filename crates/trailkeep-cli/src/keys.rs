//! `trailkeep keys`: create, list and revoke API keys through the running service; print and rotate the
//! key that signs its checkpoints.

use clap::Subcommand;
use trailkeep_wire::{CreateKeyRequest, KeyInfo};

use crate::Remote;
use crate::term::{cell, sanitize};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        #[command(flatten)]
        remote: Remote,
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
        /// The organisation the key is limited to; leave out for a platform key.
        #[arg(long)]
        org: Option<String>,
        /// Comma-separated: events:write, events:read, admin.
        #[arg(long, value_delimiter = ',', default_value = "events:write,events:read")]
        permissions: Vec<String>,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        org: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the public key that verifies this deployment's signed checkpoints.
    Public {
        #[command(flatten)]
        remote: Remote,
        /// Print every key that ever signed, one per line, oldest first: a key ring that verifies old
        /// checkpoints and exports as well as new ones.
        #[arg(long)]
        all: bool,
    },
    /// Replace the checkpoint signing key (needs a platform admin key).
    ///
    /// The old key keeps signing next to the new one during the overlap, so readers that know only the
    /// old key keep verifying; its public key stays listed by `keys public --all` for good.
    RotateSigning {
        #[command(flatten)]
        remote: Remote,
        /// How long the old key keeps signing next to the new one: seconds, or a duration such as
        /// `90m`, `24h`, `7d` or `1h30m`; the service's default is 24h. `0` stops the old key at once.
        #[arg(long)]
        overlap: Option<String>,
    },
    /// Revoke a key at once.
    Revoke {
        #[command(flatten)]
        remote: Remote,
        /// The key's id (`key_…`), as `keys list` shows it.
        id: String,
    },
}

fn row(k: &KeyInfo) -> String {
    format!(
        "{:<36}  {:<24}  {:<12}  {:<20}  {:<32}  {}",
        k.id,
        cell(&k.name, 24),
        k.prefix,
        cell(k.organization_id.as_deref().unwrap_or("(platform)"), 20),
        k.permissions.join(","),
        k.revoked_at.as_deref().map(|r| format!("revoked {r}")).unwrap_or_else(|| "active".into())
    )
}

pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { remote, name, org, permissions } => {
            let created =
                remote.client()?.create_key(&CreateKeyRequest { name, organization_id: org, permissions }).await?;
            println!("{}", row(&created.info));
            println!("secret (shown only now; store it safely):");
            println!("{}", created.key);
        }
        KeysCommand::List { remote, org, json } => {
            let keys = remote.client()?.list_keys(org.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                for k in &keys {
                    println!("{}", row(k));
                }
            }
        }
        KeysCommand::Public { remote, all: false } => {
            print!("{}", remote.anonymous_client()?.checkpoint_key().await?);
        }
        KeysCommand::Public { remote, all: true } => {
            for key in remote.anonymous_client()?.checkpoint_keys().await? {
                println!("{}", sanitize(&key.verifier_key));
            }
        }
        KeysCommand::RotateSigning { remote, overlap } => {
            let rotated = remote.client()?.rotate_checkpoint_key(overlap.as_deref()).await?;
            println!("new key:      {}", sanitize(&rotated.verifier_key));
            println!("previous key: {}", sanitize(&rotated.previous_verifier_key));
            println!("the previous key also signs until {}", sanitize(&rotated.overlap_until));
            println!("recorded as event {} in _platform", rotated.event_id);
        }
        KeysCommand::Revoke { remote, id } => {
            let key = remote.client()?.revoke_key(&id).await?;
            println!("{}", row(&key));
        }
    }
    Ok(())
}
