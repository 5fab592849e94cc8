//! Trailkeep's PostgreSQL store (issue 7, in progress): several Trailkeep nodes on one database, with the
//! same behaviour as the embedded SQLite engine.
//!
//! So far: the schema, its versioned migrations and its row-level security ([`schema`]), and
//! [`testing`], the throwaway PostgreSQL cluster the engine's tests run against. The store connects as a
//! role that owns nothing and cannot bypass row-level security; migrations run as the owner.
//!
//! **Boundary:** this crate is the only place (with its SQLite sibling) that speaks SQL.

pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot connect to PostgreSQL as {role}: {source}")]
    Connect { role: String, source: tokio_postgres::Error },
    #[error(transparent)]
    Migrate(#[from] schema::MigrateError),
    #[error(transparent)]
    Check(#[from] schema::CheckError),
}

/// Opens a connection and drives it on the runtime.
pub(crate) async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "a PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// Applies the migrations as `owner`, granting `service_role` what the store needs; what `trailkeep
/// migrate` will run.
pub async fn migrate(owner: &tokio_postgres::Config, service_role: &str) -> Result<i32, OpenError> {
    let role = owner.get_user().unwrap_or_default().to_owned();
    let client = connect(owner).await.map_err(|source| OpenError::Connect { role, source })?;
    Ok(schema::migrate(&client, service_role).await?)
}
