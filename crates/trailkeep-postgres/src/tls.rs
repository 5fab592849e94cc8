//! How the store's connections are secured.
//!
//! A connection string with `sslmode=require` is connected over TLS, and the server's certificate is
//! always verified: its chain against the system's trusted roots, or against the certificates of
//! `database_ca` (a PEM file) when one is given, and its name against the host the string names. This is
//! stricter than libpq's `require`, which encrypts without checking whom it talks to; Trailkeep has no
//! mode that sends audit events and credentials to a server it has not verified. Without `sslmode=require`
//! connections are plain, as suits a unix socket or a private network.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the database CA certificates from {path}: {message}")]
    Ca { path: PathBuf, message: String },
    #[error("{path} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    NoCertificate { path: PathBuf },
    #[error("no trusted root certificates were found on this system; name the database's CA with database_ca")]
    NoRoots,
    #[error("database_ca is set, but {role}'s connection string does not ask for TLS: add sslmode=require")]
    CaWithoutTls { role: String },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// A connection string and how to secure it.
#[derive(Clone)]
pub struct Endpoint {
    pub config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config may hold a password; only where it leads is shown.
        f.debug_struct("Endpoint")
            .field("user", &self.config.get_user())
            .field("dbname", &self.config.get_dbname())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Endpoint {
    /// `config`, over TLS verified against `ca` (or the system's roots) when it asks for TLS.
    pub fn new(config: tokio_postgres::Config, ca: Option<&Path>) -> Result<Endpoint, TlsError> {
        if config.get_ssl_mode() != SslMode::Require {
            if ca.is_some() {
                return Err(TlsError::CaWithoutTls {
                    role: config.get_user().unwrap_or("the service role").to_owned(),
                });
            }
            return Ok(Endpoint { config, tls: None });
        }
        let roots = match ca {
            Some(path) => roots_from_file(path)?,
            None => system_roots()?,
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Endpoint { config, tls: Some(MakeRustlsConnect::new(client)) })
    }

    /// Whether connections are made over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a connection and drives it on the runtime.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let report = |e: tokio_postgres::Error| tracing::warn!(error = %e, "a PostgreSQL connection closed");
        match &self.tls {
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                tokio::spawn(async move { connection.await.err().map(report) });
                Ok(client)
            }
            None => {
                let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(async move { connection.await.err().map(report) });
                Ok(client)
            }
        }
    }

    /// A pool manager that connects as this endpoint does.
    pub fn pool_manager(&self) -> deadpool_postgres::Manager {
        let recycling = deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast };
        match &self.tls {
            Some(tls) => deadpool_postgres::Manager::from_config(self.config.clone(), tls.clone(), recycling),
            None => deadpool_postgres::Manager::from_config(self.config.clone(), tokio_postgres::NoTls, recycling),
        }
    }
}

fn roots_from_file(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let ca = |message: String| TlsError::Ca { path: path.to_owned(), message };
    let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.map_err(|e| ca(e.to_string()))?).map_err(|e| ca(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(roots)
}

fn system_roots() -> Result<rustls::RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsError::NoRoots);
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_unless_the_string_asks_for_tls() {
        let plain: tokio_postgres::Config = "postgres://svc@db.internal/audit".parse().unwrap();
        assert!(!Endpoint::new(plain.clone(), None).unwrap().is_tls());
        let err = Endpoint::new(plain, Some(Path::new("ca.pem"))).unwrap_err();
        assert!(err.to_string().contains("sslmode=require"), "{err}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let tls: tokio_postgres::Config = "postgres://svc@db.internal/audit?sslmode=require".parse().unwrap();
        let err = Endpoint::new(tls.clone(), Some(&path)).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        let err = Endpoint::new(tls, Some(&dir.path().join("missing.pem"))).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
