//! The PostgreSQL phases' own server: a throwaway cluster started from the installed binaries
//! (`trailkeep_postgres::testing`), listening on a unix socket in a temporary directory, with settings
//! sized for a few million events. Each phase works in a database of its own, dropped when it is done.
//!
//! Durability is PostgreSQL's default (`fsync`, `synchronous_commit` and `full_page_writes` on): an
//! acknowledged commit is on disk. The settings only give the server memory and let WAL grow between
//! checkpoints, as a deployment would.

use anyhow::Context as _;
use trailkeep_postgres::testing::{OWNER_ROLE, SERVICE_ROLE, TestCluster};

use crate::harness::Backend;

/// Server settings on top of the defaults.
pub const SETTINGS: &[(&str, &str)] = &[
    ("shared_buffers", "1GB"),
    ("effective_cache_size", "8GB"),
    ("maintenance_work_mem", "256MB"),
    ("work_mem", "16MB"),
    ("max_wal_size", "8GB"),
    ("checkpoint_timeout", "15min"),
    ("random_page_cost", "1.1"),
];

/// A running cluster, stopped and removed when dropped (or, should the process be killed, by the
/// watchdog once it has exited).
pub struct Cluster {
    inner: TestCluster,
    /// `SHOW server_version`.
    pub version: String,
}

impl Cluster {
    pub fn start() -> anyhow::Result<Cluster> {
        let inner = TestCluster::start_with(SETTINGS).context("cannot start PostgreSQL")?;
        inner.watch_for_exit()?;
        let version = inner.server_version()?;
        Ok(Cluster { inner, version })
    }

    /// Creates the empty database `name`, owned by the schema's owner.
    pub fn create(&self, name: &str) -> anyhow::Result<()> {
        Ok(self.inner.create_database(name)?)
    }

    /// Drops the database `name` and everything in it.
    pub fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        Ok(self.inner.drop_database(name)?)
    }

    /// The app's settings for keeping its data in `database`.
    pub fn backend(&self, database: &str) -> Backend {
        Backend::Postgres {
            service: self.inner.url(SERVICE_ROLE, database),
            owner: self.inner.url(OWNER_ROLE, database),
        }
    }

    /// Connection settings of the store's role on `database`.
    pub fn service_config(&self, database: &str) -> tokio_postgres::Config {
        self.inner.config(SERVICE_ROLE, database)
    }

    /// Connection settings of the schema's owner on `database`, with the schema on the search path.
    pub fn owner_config(&self, database: &str) -> tokio_postgres::Config {
        let mut config = self.inner.config(OWNER_ROLE, database);
        config.options(format!("-c search_path={}", trailkeep_postgres::schema::SCHEMA));
        config
    }

    /// A connection as the schema's owner, which row-level security does not bind.
    pub async fn owner(&self, database: &str) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = self
            .owner_config(database)
            .connect(tokio_postgres::NoTls)
            .await
            .with_context(|| format!("cannot connect to {database}"))?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// The size of `database` on disk, tables, indexes and TOAST included.
    pub async fn database_bytes(&self, database: &str) -> anyhow::Result<u64> {
        let client = self.owner(database).await?;
        let bytes: i64 = client.query_one("SELECT pg_database_size(current_database())", &[]).await?.get(0);
        Ok(bytes.max(0) as u64)
    }
}
