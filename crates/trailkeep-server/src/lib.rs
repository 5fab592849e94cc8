//! Trailkeep's HTTP service as a library: [`App::build`] wires the store, keys and router from a
//! [`Config`]; [`serve`] runs it on a bound listener until a shutdown future resolves, then drains
//! in-flight commits. The `trailkeep` binary and the integration tests both start it this way.
//!
//! **Boundary:** this crate knows HTTP; it speaks to storage only through `Arc<dyn Store>`.

pub mod audit;
pub mod auth;
pub mod bundles;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod export;
pub mod export_jobs;
pub mod export_schedules;
pub mod health;
pub mod keys;
pub mod limits;
pub mod operators;
pub mod orgs;
pub mod pages;
pub mod portal;
pub mod proofs;
pub mod retention;
pub mod sessions;
pub mod signing;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::routing::{delete, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use trailkeep_core::Limits;
use trailkeep_sqlite::{SqliteConfig, SqliteStore};
use trailkeep_store::Store;

pub use config::Config;

/// What every handler shares.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub limits: Limits,
    pub keys: auth::KeyCache,
    pub metrics: PrometheusHandle,
    /// The checkpoint signing keys: the active one, those it replaced, and rotation.
    pub signing: Arc<signing::SigningKeys>,
    /// The token buckets per API key and per client address.
    pub rate_limits: Arc<limits::RateLimits>,
    /// Dashboard sessions: the public URL, lifetimes and the sign-in rate limit.
    pub sessions: sessions::Sessions,
    /// The deployment's plans: retention and the export formats each allows.
    pub plans: Vec<trailkeep_core::plans::Plan>,
    /// The most rows a CSV export holds.
    pub export_csv_max_rows: u64,
    /// Export jobs: their directory, the download link key, the worker's wake-up.
    pub export_jobs: export_jobs::ExportJobs,
    /// Scheduled exports: the configured destinations and the scheduler's clock.
    pub export_schedules: export_schedules::Scheduler,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The query string as name-value pairs, in order, repeated names kept.
pub(crate) fn query_pairs(
    params: Result<axum::extract::Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Vec<(String, String)>, error::ApiError> {
    params.map(|axum::extract::Query(pairs)| pairs).map_err(|e| {
        error::ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_parameter",
            format!("cannot read the query string: {e}"),
        )
    })
}

/// The first value of the query parameter `name`.
pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// One event the caller may read by the id in the path; another organisation's (or project's) event and
/// a missing one answer alike, so ids reveal nothing across tenants.
pub(crate) async fn fetch_event(
    state: &AppState,
    scope: &trailkeep_store::ReadScope,
    id: &str,
) -> Result<trailkeep_core::Event, error::ApiError> {
    let id = uuid::Uuid::parse_str(id).map_err(|_| error::ApiError::bad_param("id", "an event id is a UUID"))?;
    state
        .store
        .get_event(scope, id)
        .await?
        .ok_or_else(|| error::ApiError::not_found("no such event in this organisation"))
}

/// The whole API on one screen.
pub fn router(state: Arc<AppState>) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/v1/events", get(events::list_events).post(events::create_events))
        .route("/v1/events/{id}", get(events::get_event))
        .route("/v1/events/{id}/proof", get(proofs::get_event_proof))
        .route("/v1/checkpoint", get(proofs::get_checkpoint))
        .route("/v1/proofs/consistency", get(proofs::get_consistency_proof))
        .route("/v1/bundle", get(bundles::get_bundle))
        .route("/v1/export", get(export::get_export))
        .route("/v1/exports", get(export_jobs::list_export_jobs).post(export_jobs::create_export_job))
        .route("/v1/exports/{id}", get(export_jobs::get_export_job))
        .route("/v1/exports/{id}/download", get(export_jobs::download_export))
        .route(
            "/v1/orgs/{org}/export-schedules",
            get(export_schedules::list_export_schedules).post(export_schedules::create_export_schedule),
        )
        .route("/v1/orgs/{org}/export-schedules/{id}", delete(export_schedules::delete_export_schedule))
        .route("/v1/orgs", get(orgs::list_orgs).post(orgs::create_org))
        .route("/v1/orgs/{org}", get(orgs::get_org).patch(orgs::update_org).delete(orgs::delete_org))
        .route("/v1/orgs/{org}/projects", get(orgs::list_projects).post(orgs::create_project))
        .route(
            "/v1/orgs/{org}/projects/{project}",
            get(orgs::get_project).patch(orgs::update_project).delete(orgs::delete_project),
        )
        .route("/v1/orgs/{org}/members", get(orgs::list_members).post(orgs::add_member))
        .route("/v1/orgs/{org}/retention", get(retention::get_retention).put(retention::put_retention))
        .route("/v1/orgs/{org}/retention/sweep", post(retention::post_sweep))
        .route("/v1/orgs/{org}/legal-holds", get(retention::list_holds).post(retention::place_hold))
        .route("/v1/orgs/{org}/legal-holds/{id}", delete(retention::lift_hold))
        .route(
            "/v1/orgs/{org}/members/{email}",
            get(orgs::get_member).patch(orgs::update_member).delete(orgs::remove_member),
        )
        .route("/v1/portal-links", post(portal::create_portal_link))
        .route("/v1/session", get(sessions::get_session))
        .route("/v1/session/logout", post(sessions::logout))
        .route("/v1/operators", get(operators::list_operators).post(operators::create_operator))
        .route("/portal/{token}", get(portal::redeem_portal_link))
        .route("/login", get(operators::get_login).post(operators::post_login))
        .route("/v1/keys", get(keys::list_keys).post(keys::create_key))
        .route("/v1/keys/{id}", delete(keys::revoke_key))
        .route("/v1/checkpoint-key", get(signing::get_checkpoint_key))
        .route("/v1/checkpoint-key/rotate", post(signing::rotate_checkpoint_key))
        .route("/v1/checkpoint-keys", get(signing::list_checkpoint_keys))
        .route("/healthz", get(health::get_health))
        .route("/readyz", get(health::get_ready))
        .route("/metrics", get(health::get_metrics))
        // The dashboard's pages, fragments and assets: see `dashboard::routes`.
        .merge(dashboard::routes())
        .fallback(|| async { error::ApiError::not_found("no such endpoint; the API lives under /v1") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::limit_by_address))
        .layer(axum::middleware::from_fn(health::track_requests))
        .layer(DefaultBodyLimit::max(state.limits.max_batch_bytes + 64 * 1024))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(60)))
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::from_fn(error::envelope_bare_errors))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &axum::http::Request<_>| {
                    // Method, path and request id only: headers (which carry keys) and bodies stay out of logs.
                    let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    // A portal link's token is its path: it stays out of logs too.
                    let path = request.uri().path();
                    let path = if path.starts_with("/portal/") { "/portal/{token}" } else { path };
                    tracing::info_span!("request", method = %request.method(), path = %path, request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// A built service, ready to serve.
pub struct App {
    pub state: Arc<AppState>,
    /// The platform admin key created on this start, when the data directory had none.
    pub new_admin_key: Option<String>,
}

impl App {
    /// Opens the store in the configured data directory and prepares the service.
    pub async fn build(config: &Config) -> anyhow::Result<App> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)?;
        let signing = Arc::new(signing::SigningKeys::open(&config.data_dir, &config.deployment)?);
        let store: Arc<dyn Store> = match config.postgres()? {
            None => {
                let sealing =
                    trailkeep_sqlite::ledger::Sealing { signers: signing.signers(), deployment: signing.deployment() };
                let mut sqlite = SqliteConfig::new(&config.data_dir).with_sealing(sealing);
                sqlite.read_connections = config.read_connections;
                sqlite.queue_capacity = config.queue_capacity;
                Arc::new(tokio::task::spawn_blocking(move || SqliteStore::open(&sqlite)).await??)
            }
            Some((service, owner)) => {
                let sealing =
                    trailkeep_postgres::Sealing { signers: signing.signers(), deployment: signing.deployment() };
                let mut postgres = trailkeep_postgres::PostgresConfig::new(service).with_sealing(sealing);
                if let Some(owner) = owner {
                    postgres = postgres.with_migrations(owner);
                }
                postgres.read_connections = config.read_connections;
                postgres.queue_capacity = config.queue_capacity;
                postgres.ca = config.database_ca.clone();
                Arc::new(trailkeep_postgres::PostgresStore::open(&postgres).await?)
            }
        };
        let new_admin_key = keys::bootstrap_admin_key(store.as_ref(), &config.data_dir).await?;
        signing::record_interrupted_rotations(&signing, store.as_ref()).await;
        signing::forget_keys_as_overlaps_end(signing.clone());
        let rate_limits = Arc::new(limits::RateLimits::new(config.key_rate_limit()?, config.ip_rate_limit()?));
        limits::forget_idle_buckets(&rate_limits);
        let state = Arc::new(AppState {
            store,
            limits: config.limits(),
            keys: auth::KeyCache::default(),
            metrics: health::metrics_handle(),
            signing,
            rate_limits,
            sessions: sessions::Sessions::new(
                config.public_url()?,
                Duration::from_secs(config.portal_link_lifetime_secs.into()),
                Duration::from_secs(config.session_lifetime_secs.into()),
            ),
            plans: config.plans()?,
            export_csv_max_rows: config.export_csv_max_rows,
            export_jobs: export_jobs::ExportJobs::open(
                &config.data_dir,
                config.export_dir(),
                Duration::from_secs(u64::from(config.export_job_retention_days) * 86_400),
                config.database_url.is_none(),
            )?,
            export_schedules: export_schedules::Scheduler::new(config)?,
        });
        retention::spawn_sweeper(Arc::downgrade(&state), Duration::from_secs(config.retention_sweep_secs));
        export_jobs::spawn_worker(Arc::downgrade(&state));
        export_schedules::spawn_scheduler(Arc::downgrade(&state));
        Ok(App { state, new_admin_key })
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes in-flight requests and commits.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = app.state.store.clone();
    // Portal links and cookies name the address actually bound, unless a public URL is configured.
    app.state.sessions.bind(listener.local_addr()?);
    // With the peer address of each connection, which the per-address rate limit is keyed by.
    let service = router(app.state).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, service).with_graceful_shutdown(shutdown).await;
    store.shutdown().await;
    result.map_err(Into::into)
}
