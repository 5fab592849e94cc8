//! `trailkeep migrate`: brings the store's schema up to this build's, without starting the service.
//!
//! On PostgreSQL it runs as the role that owns the schema and grants the service role (the user of
//! `database_url`) what the store needs; the service itself can then run without owner credentials. On
//! the embedded store it opens the data directory, which migrates it, and closes it again.

use std::path::PathBuf;

use anyhow::Context as _;
use trailkeep_server::config::{Config, ConnectionString};

#[derive(clap::Args)]
pub struct MigrateArgs {
    /// A TOML configuration file; see docs/configuration.md.
    #[arg(long, env = "TRAILKEEP_CONFIG")]
    config: Option<PathBuf>,
    /// The embedded store's data directory [default: ./trailkeep-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The PostgreSQL service role's connection string: the role granted access to the migrated schema.
    #[arg(long, hide_env_values = true)]
    database_url: Option<String>,
    /// The connection string of the role that owns the schema, which the migrations run as.
    #[arg(long, hide_env_values = true)]
    database_owner_url: Option<String>,
    /// PEM certificates to verify PostgreSQL's TLS certificate against (connection strings with
    /// `sslmode=require`), instead of the system's trusted roots.
    #[arg(long, value_name = "FILE")]
    database_ca: Option<PathBuf>,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(url) = args.database_url {
        config.database_url = Some(ConnectionString::new(url));
    }
    if let Some(url) = args.database_owner_url {
        config.database_owner_url = Some(ConnectionString::new(url));
    }
    if let Some(ca) = args.database_ca {
        config.database_ca = Some(ca);
    }
    config.validate()?;
    match config.postgres()? {
        Some((service, Some(owner))) => {
            let role = service.get_user().context("database_url names no user")?.to_owned();
            let version = trailkeep_postgres::migrate(&owner, config.database_ca.as_deref(), &role).await.context(
                "migrating the PostgreSQL database failed; database_owner_url must name the role that owns \
                 (or may create) the trailkeep schema",
            )?;
            println!("the PostgreSQL schema is at version {version}; role {role} may use it");
        }
        Some((_, None)) => anyhow::bail!(
            "migrations run as the role that owns the schema: pass --database-owner-url or set database_owner_url \
             (TRAILKEEP_DATABASE_OWNER_URL)"
        ),
        None => {
            let dir = config.data_dir.clone();
            let sqlite = trailkeep_sqlite::SqliteConfig::new(&dir);
            let store = tokio::task::spawn_blocking(move || trailkeep_sqlite::SqliteStore::open(&sqlite))
                .await?
                .with_context(|| format!("cannot open the data directory {}", dir.display()))?;
            trailkeep_store::Store::shutdown(&store).await;
            println!("the embedded store in {} is migrated", dir.display());
        }
    }
    Ok(())
}
