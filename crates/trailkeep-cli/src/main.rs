//! The `trailkeep` command: runs the service and talks to it.
//!
//! `serve` starts the service on the embedded store; `demo`, `send`, `search` and `keys` are clients of a
//! running service, reached at `--url` with the key from `--key`, `TRAILKEEP_API_KEY`, or the
//! `admin.key` file the first start wrote into the data directory.

mod demo;
mod demo_data;
mod export;
mod keys;
mod migrate;
mod orgs;
mod search;
mod send;
mod serve;
mod term;
mod users;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use trailkeep_client::Client;

/// Audit events are many small JSON values: parsing, canonicalising and serialising them allocates
/// heavily, and mimalloc serves those allocations faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "trailkeep", version, about = "A verifiable audit log service", propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How client commands find the service and authenticate.
#[derive(clap::Args, Clone)]
pub struct Remote {
    /// The service's base URL.
    #[arg(long, env = "TRAILKEEP_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The API key; defaults to `<data-dir>/admin.key`.
    #[arg(long, env = "TRAILKEEP_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Where to look for `admin.key` when no key is given.
    #[arg(long = "data-dir", env = "TRAILKEEP_DATA_DIR", default_value = "trailkeep-data")]
    data_dir: PathBuf,
}

impl Remote {
    /// A client for endpoints that need no key.
    pub fn anonymous_client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(&self.url, None)?)
    }

    pub fn client(&self) -> anyhow::Result<Client> {
        let key = match &self.key {
            Some(k) => k.clone(),
            None => {
                let path = self.data_dir.join("admin.key");
                std::fs::read_to_string(&path).map(|s| s.trim().to_owned()).with_context(|| {
                    format!(
                        "no API key: pass --key or set TRAILKEEP_API_KEY (the first `trailkeep serve` wrote one to {})",
                        path.display()
                    )
                })?
            }
        };
        Ok(Client::new(&self.url, Some(key))?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the service on the embedded store.
    Serve(serve::ServeArgs),
    /// Load realistic demo data into a running service.
    Demo(demo::DemoArgs),
    /// Send events from a JSON or NDJSON file (or `-` for stdin).
    Send(send::SendArgs),
    /// Search an organisation's events with the query language.
    Search(search::SearchArgs),
    /// Create, list, update and delete organisations.
    #[command(subcommand)]
    Orgs(orgs::OrgsCommand),
    /// Manage an organisation's projects.
    #[command(subcommand)]
    Projects(orgs::ProjectsCommand),
    /// Invite, list, change and remove an organisation's members.
    #[command(subcommand)]
    Members(orgs::MembersCommand),
    /// Export an organisation's events to a file: CSV, JSON, NDJSON, Parquet, or a self-proving bundle.
    Export(export::ExportArgs),
    /// Check a bundle offline, or watch a service's log as a witness (exit codes in --help).
    Verify(verify::VerifyArgs),
    /// Create, list and revoke API keys; print or rotate the checkpoint signing key.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Create and list operator accounts (they sign in at /login).
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Bring the store's schema up to this version without starting the service.
    Migrate(migrate::MigrateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Send(args) => send::run(args).await,
            Command::Search(args) => search::run(args).await,
            Command::Export(args) => export::run(args).await,
            Command::Orgs(cmd) => orgs::run_orgs(cmd).await,
            Command::Projects(cmd) => orgs::run_projects(cmd).await,
            Command::Members(cmd) => orgs::run_members(cmd).await,
            Command::Keys(cmd) => keys::run(cmd).await,
            Command::Users(cmd) => users::run(cmd).await,
            Command::Migrate(args) => migrate::run(args).await,
            // Verification has exit codes of its own.
            Command::Verify(args) => return Ok(verify::run(args).await),
        }
        .map(|()| ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", term::sanitize(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
