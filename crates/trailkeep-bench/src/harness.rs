//! The real server, in-process: a fresh data directory, `App::build`, then `serve` on `127.0.0.1:0`,
//! driven through the client crate with the bootstrap admin key.
//!
//! [`Prepared`] is a built but not yet serving app, so a phase can fill its store directly before the
//! first request; [`Server`] is one that serves, stopped by [`Server::stop`], which drains in-flight
//! commits (and lets the full-text indexer finish) before the data directory is removed.
//!
//! The service always seals; [`Sealing::Off`] assembles the same app around a store opened without a
//! sealer, so that a phase can measure what sealing costs by running twice.
//!
//! The store is the embedded SQLite one in the data directory unless [`Backend::Postgres`] names a
//! database, which the app then migrates and keeps everything in (the data directory still holds the
//! signing key and the bootstrap admin key), as `trailkeep serve --database-url` does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use trailkeep_client::Client;
use trailkeep_postgres::{PostgresConfig, PostgresStore};
use trailkeep_server::config::ConnectionString;
use trailkeep_server::{App, AppState, Config, serve};
use trailkeep_sqlite::{SqliteConfig, SqliteStore};
use trailkeep_store::Store;

/// Whether the store folds events into Merkle trees and signs checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealing {
    /// As the service runs: `App::build`, with a sealer thread.
    On,
    /// No tree, no checkpoints: the baseline that sealing's cost is read against.
    Off,
}

/// Where the app keeps its data.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded SQLite store in the data directory.
    Sqlite,
    /// A PostgreSQL database, given by the connection strings of the store's role and of the role that
    /// owns the schema (and migrates it on start).
    Postgres { service: String, owner: String },
}

/// A fresh data directory under `parent`, removed when dropped.
pub fn scratch_dir(parent: &Path, label: &str) -> anyhow::Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("trailkeep-bench-{label}-"))
        .tempdir_in(parent)
        .context("cannot create a scratch directory")
}

/// An app built on a fresh data directory, not yet serving.
pub struct Prepared {
    app: App,
    admin_key: String,
    dir: TempDir,
}

impl Prepared {
    pub async fn build(parent: &Path, label: &str) -> anyhow::Result<Prepared> {
        Prepared::build_with(parent, label, Sealing::On).await
    }

    pub async fn build_with(parent: &Path, label: &str, sealing: Sealing) -> anyhow::Result<Prepared> {
        Prepared::build_on(parent, label, sealing, &Backend::Sqlite).await
    }

    pub async fn build_on(parent: &Path, label: &str, sealing: Sealing, backend: &Backend) -> anyhow::Result<Prepared> {
        let dir = scratch_dir(parent, label)?;
        let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        if let Backend::Postgres { service, owner } = backend {
            config.database_url = Some(ConnectionString::new(service.clone()));
            config.database_owner_url = Some(ConnectionString::new(owner.clone()));
        }
        let app = match sealing {
            Sealing::On => App::build(&config).await,
            Sealing::Off => build_unsealed(&config).await,
        }
        .context("cannot build the server")?;
        let admin_key = app.new_admin_key.clone().context("a fresh data directory should yield an admin key")?;
        Ok(Prepared { app, admin_key, dir })
    }

    /// The store the app serves from.
    pub fn store(&self) -> Arc<dyn Store> {
        self.app.state.store.clone()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Binds `127.0.0.1:0` and serves until [`Server::stop`].
    pub async fn serve(self) -> anyhow::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("cannot bind a loopback port")?;
        let url = format!("http://{}", listener.local_addr()?);
        let store = self.store();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, self.app, async {
            let _ = stopped.await;
        }));
        let client = Client::new(&url, Some(self.admin_key.clone()))?;
        client.ready().await.context("the server did not become ready")?;
        Ok(Server { client, store, key: self.admin_key, stop, task, dir: self.dir })
    }
}

/// The app `App::build` makes, with its store reopened without a sealer. The server offers no switch
/// for sealing, since a deployment should always seal; reopening the store, rather than assembling an
/// app by hand, keeps everything else (keys, limits, signing) exactly as the service sets it up.
async fn build_unsealed(config: &Config) -> anyhow::Result<App> {
    let app = App::build(config).await?;
    app.state.store.shutdown().await;
    let state = Arc::try_unwrap(app.state)
        .map_err(|_| anyhow::anyhow!("the freshly built app's state is shared, so its store cannot be swapped"))?;
    let store: Arc<dyn Store> = match config.postgres()? {
        None => {
            let mut sqlite = SqliteConfig::new(&config.data_dir);
            sqlite.read_connections = config.read_connections;
            sqlite.queue_capacity = config.queue_capacity;
            Arc::new(tokio::task::spawn_blocking(move || SqliteStore::open(&sqlite)).await??)
        }
        Some((service, _)) => {
            // Migrated by the first opening.
            let mut postgres = PostgresConfig::new(service);
            postgres.read_connections = config.read_connections;
            postgres.queue_capacity = config.queue_capacity;
            Arc::new(PostgresStore::open(&postgres).await?)
        }
    };
    let state = AppState { store, ..state };
    Ok(App { state: Arc::new(state), new_admin_key: app.new_admin_key })
}

/// A serving app.
pub struct Server {
    pub client: Client,
    /// The store behind the server, for reading what a phase waits on without going through HTTP.
    pub store: Arc<dyn Store>,
    key: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
    dir: TempDir,
}

impl Server {
    /// A server on a fresh data directory under `parent`.
    pub async fn start(parent: &Path, label: &str) -> anyhow::Result<Server> {
        Server::start_with(parent, label, Sealing::On).await
    }

    pub async fn start_with(parent: &Path, label: &str, sealing: Sealing) -> anyhow::Result<Server> {
        Prepared::build_with(parent, label, sealing).await?.serve().await
    }

    pub async fn start_on(parent: &Path, label: &str, sealing: Sealing, backend: &Backend) -> anyhow::Result<Server> {
        Prepared::build_on(parent, label, sealing, backend).await?.serve().await
    }

    /// The admin key the client uses, for load generators outside this process.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Events stored so far by every server of this process, from the metrics counter.
    pub async fn stored_events(&self) -> anyhow::Result<u64> {
        let text = self.client.metrics().await?;
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix("trailkeep_events_ingested_total "))
            .map(|v| v.trim().parse::<f64>())
            .transpose()?
            .unwrap_or(0.0);
        Ok(value as u64)
    }

    /// Stops serving, waits for the store to drain, then removes the data directory.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("the server task panicked")??;
        drop(self.dir);
        Ok(())
    }
}
