//! `trailkeep serve`: configuration, logging, the listener, and a clean stop on SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use trailkeep_server::config::{Config, LogFormat};
use trailkeep_server::{App, serve};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// A TOML configuration file; see docs/configuration.md.
    #[arg(long, env = "TRAILKEEP_CONFIG")]
    config: Option<PathBuf>,
    /// Where the embedded store keeps its files [default: ./trailkeep-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The address to listen on [default: 127.0.0.1:8080]; port 0 picks a free one.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// `text` or `json` logs.
    #[arg(long, value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Keep everything in this PostgreSQL database (the service role's connection string) instead of the
    /// embedded store; see docs/operating.md.
    #[arg(long, hide_env_values = true)]
    database_url: Option<String>,
    /// The connection string of the role that owns the schema, to migrate as on start.
    #[arg(long, hide_env_values = true)]
    database_owner_url: Option<String>,
    /// PEM certificates to verify PostgreSQL's TLS certificate against (connection strings with
    /// `sslmode=require`), instead of the system's trusted roots.
    #[arg(long, value_name = "FILE")]
    database_ca: Option<PathBuf>,
    /// Load demo data (3 organisations, 50,000 events over 90 days) once the service is up, if it is empty.
    #[arg(long)]
    demo: bool,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAILKEEP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests and commits");
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(url) = args.database_url {
        config.database_url = Some(trailkeep_server::config::ConnectionString::new(url));
    }
    if let Some(url) = args.database_owner_url {
        config.database_owner_url = Some(trailkeep_server::config::ConnectionString::new(url));
    }
    if let Some(ca) = args.database_ca {
        config.database_ca = Some(ca);
    }
    if let Some(f) = args.log_format {
        config.log_format = if f == "json" { LogFormat::Json } else { LogFormat::Text };
    }
    config.validate()?;
    init_logging(config.log_format);

    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| {
        format!("cannot listen on {}: is another service using it? pick another with --listen", config.listen)
    })?;
    let addr = listener.local_addr()?;
    let app = App::build(&config)
        .await
        .with_context(|| format!("cannot open the data directory {}", config.data_dir.display()))?;
    let base = format!("http://{addr}");
    {
        let mut out = std::io::stdout().lock();
        if let Some(key) = &app.new_admin_key {
            writeln!(
                out,
                "created a platform admin key; it is shown only this once and saved to {}:",
                config.data_dir.join("admin.key").display()
            )?;
            writeln!(out, "  {key}")?;
        }
        writeln!(out, "listening on {base}")?;
        out.flush()?;
    }
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "trailkeep is serving");

    if args.demo {
        let data_dir = config.data_dir.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::demo::load_if_empty(&base, &data_dir).await {
                tracing::error!(error = %format!("{e:#}"), "loading demo data failed");
            }
        });
    }
    serve(listener, app, shutdown_signal()).await
}
