//! Export jobs: `POST /v1/exports` queues an export of any size, a background worker writes it into the
//! export directory, and `GET /v1/exports/{id}` reports its progress and, once it succeeded, a signed
//! download link valid for ten minutes (`GET /v1/exports/{id}/download`, no API key needed).
//!
//! A job takes the parameters of `GET /v1/export` and is allowed and scoped exactly as that export is;
//! asking for one is recorded in the organisation's log as `audit_log.export_requested`, in the same
//! transaction that stores the job. The encoding is `export.rs`'s, written into a file instead of a body.
//!
//! Jobs live in the store, so they survive a restart: the worker leases the job it runs and extends the
//! lease as it writes; a job whose lease lapsed (its node died) is run again from the start by whichever
//! node claims it next. On the embedded store, whose data directory one process owns, a job left running
//! by the previous process is taken back at once on start.
//!
//! Download links are `HMAC-SHA256(key, org \n id \n expires)` with a 32-byte key created once in the data
//! directory (`export-link.key`, mode 0600) — every node of a deployment shares it, as it shares the
//! checkpoint signing key. Finished jobs and their files are deleted after `export_job_retention_days`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use trailkeep_core::cursor::Order;
use trailkeep_core::plans::ExportFormat;
use trailkeep_core::{Filter, OrgId, ProjectId, Target};
use trailkeep_store::exports::{ExportChange, ExportJob, JobStatus};
use trailkeep_store::{EventQuery, ReadScope};
use uuid::Uuid;

use crate::audit::{Origin, Record};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::export::{ExportRequest, FileEncoder};
use crate::{AppState, now_ms};

/// How long a download link stays valid.
pub const LINK_LIFETIME_MS: i64 = 10 * 60 * 1000;
/// How long a claim on a job lasts without progress; the worker renews it after every page.
const LEASE_MS: i64 = 60_000;
/// Events read per store call.
const PAGE: usize = 1000;
/// The name of the download link key in the data directory.
pub const LINK_KEY_FILE: &str = "export-link.key";

/// What the worker and the handlers share.
pub struct ExportJobs {
    /// Where job files are written.
    pub dir: PathBuf,
    /// The key signing download links.
    link_key: [u8; 32],
    /// Who this process is, in leases.
    pub node: String,
    /// How long finished jobs and their files are kept.
    pub retention: Duration,
    /// Wakes the worker when a job is queued.
    pub wake: tokio::sync::Notify,
    /// On the embedded store, jobs another process left running are taken back at once.
    pub single_node: bool,
}

impl ExportJobs {
    /// Opens (or creates) the link key in `data_dir` and the export directory `dir`.
    pub fn open(data_dir: &Path, dir: PathBuf, retention: Duration, single_node: bool) -> anyhow::Result<ExportJobs> {
        std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        let link_key = link_key(data_dir)?;
        Ok(ExportJobs {
            dir,
            link_key,
            node: format!("node_{}", Uuid::new_v4().simple()),
            retention,
            wake: tokio::sync::Notify::new(),
            single_node,
        })
    }

    /// The signature of a link to `org`'s job `id` that expires at `expires` (Unix seconds).
    fn signature(&self, org: &OrgId, id: &str, expires: i64) -> String {
        hex::encode(hmac_sha256(&self.link_key, format!("{org}\n{id}\n{expires}").as_bytes()))
    }
}

/// Reads the link key, creating it (32 random bytes, hex, mode 0600) the first time.
fn link_key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join(LINK_KEY_FILE);
    if !path.exists() {
        let key: [u8; 32] = rand::random();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(&path) {
            Ok(mut file) => {
                writeln!(file, "{}", hex::encode(key))?;
                file.sync_all()?;
            }
            // Another node sharing the directory created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => anyhow::bail!("cannot write {}: {e}", path.display()),
        }
    }
    let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let bytes = hex::decode(text.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
    bytes.ok_or_else(|| {
        anyhow::anyhow!("{} does not hold a 32-byte hex key; delete it to make a new one", path.display())
    })
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key` (at most one block long).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// One filter's value in a job request: a string, or several for a parameter that repeats.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FilterValue {
    One(String),
    Many(Vec<String>),
}

/// `POST /v1/exports`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJobRequest {
    pub organization_id: Option<String>,
    pub format: Option<String>,
    /// The filters of `GET /v1/events`, by name.
    #[serde(default)]
    pub filters: BTreeMap<String, FilterValue>,
    pub q: Option<String>,
    pub include_ai_text: Option<bool>,
    /// `asc` (the default: oldest first) or `desc`.
    pub order: Option<String>,
}

/// What a job stores about its request, for the worker.
#[derive(Debug, serde::Serialize, Deserialize)]
struct StoredRequest {
    params: Vec<(String, String)>,
    projects: Option<Vec<String>>,
    include_ai_text: bool,
}

/// `POST /v1/exports`: queues a job and answers 202 with it.
pub async fn create_export_job(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    body: Result<Json<CreateJobRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request = crate::orgs::body(body)?;
    let mut params: Vec<(String, String)> = Vec::new();
    if let Some(org) = &request.organization_id {
        params.push(("organization_id".into(), org.clone()));
    }
    if let Some(format) = &request.format {
        params.push(("format".into(), format.clone()));
    }
    params.push(("order".into(), request.order.clone().unwrap_or_else(|| "asc".into())));
    if let Some(include) = request.include_ai_text {
        params.push(("include_ai_text".into(), include.to_string()));
    }
    if let Some(q) = &request.q {
        params.push(("q".into(), q.clone()));
    }
    for (name, value) in &request.filters {
        if ["organization_id", "format", "order", "include_ai_text", "q"].contains(&name.as_str()) {
            return Err(ApiError::bad_param(
                &format!("filters.{name}"),
                format!("`{name}` is not a filter; give it at the top level of the body"),
            ));
        }
        match value {
            FilterValue::One(v) => params.push((name.clone(), v.clone())),
            FilterValue::Many(vs) => params.extend(vs.iter().map(|v| (name.clone(), v.clone()))),
        }
    }
    let now = now_ms();
    let parsed = ExportRequest::parse(&principal, &params, now).map_err(|mut e| {
        if let Some(field) = &e.field
            && request.filters.contains_key(field)
        {
            e.field = Some(format!("filters.{field}"));
        }
        e
    })?;
    crate::export::allowed_by_plan(&state, &principal, &parsed.scope.org, parsed.format).await?;
    let jobs = &state.export_jobs;

    let org = parsed.scope.org.clone();
    // The organisation's size is no business of a reader limited to some projects.
    let total_estimate = match &parsed.scope.projects {
        None => state.store.latest_checkpoint(&org).await?.map(|c| c.size),
        Some(_) => None,
    };
    let stored = StoredRequest {
        params: params.into_iter().filter(|(k, _)| k != "organization_id").collect(),
        projects: parsed.scope.projects.as_ref().map(|ps| ps.iter().map(|p| p.to_string()).collect()),
        include_ai_text: parsed.include_ai_text,
    };
    let actor = principal.actor();
    let job = ExportJob {
        id: format!("exp_{}", Uuid::now_v7().simple()),
        org: org.clone(),
        format: parsed.format.as_str().to_owned(),
        request: serde_json::to_string(&stored).map_err(ApiError::internal)?,
        status: JobStatus::Queued,
        events_written: 0,
        total_estimate,
        created_at: now,
        created_by: actor.id.clone().unwrap_or_default(),
        started_at: None,
        finished_at: None,
        error: None,
        file: None,
        bytes: None,
        lease_owner: None,
        lease_until: None,
        attempts: 0,
    };
    let mut metadata = serde_json::Map::new();
    metadata.insert("job_id".into(), job.id.clone().into());
    metadata.insert("format".into(), job.format.clone().into());
    metadata.insert("filter".into(), parsed.filter_text.clone().into());
    metadata.insert("order".into(), if parsed.order == Order::Asc { "asc" } else { "desc" }.into());
    if let Some(projects) = &stored.projects {
        metadata.insert("projects".into(), projects.clone().into());
    }
    let what = if parsed.filter_text.is_empty() {
        "the audit log".to_owned()
    } else {
        format!("the audit log ({})", parsed.filter_text)
    };
    let event = crate::audit::event(
        Record {
            org: org.clone(),
            project: None,
            action: "audit_log.export_requested",
            category: "audit_log",
            target: Target { target_type: "audit_log".into(), id: org.to_string(), name: None },
            description: format!("An export of {what} as {} was requested", job.format.to_uppercase()),
            changes: Vec::new(),
            metadata,
        },
        actor,
        &origin,
    );
    state.store.export_write(ExportChange::CreateJob(job.clone()), Some(event)).await?;
    metrics::counter!("trailkeep_export_jobs_total", "format" => parsed.format.as_str()).increment(1);
    jobs.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(job_json(&state, &job))))
}

/// The organisation whose jobs the caller reads: as `GET /v1/export` scopes an export.
fn jobs_org(principal: &Principal, params: &[(String, String)]) -> Result<ReadScope, ApiError> {
    if let Some((key, _)) = params.iter().find(|(k, _)| k != "organization_id") {
        return Err(ApiError::bad_param(key, format!("unknown parameter `{key}`")));
    }
    principal.events_reader(params)
}

/// `GET /v1/exports/{id}`.
pub async fn get_export_job(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    UrlPath(id): UrlPath<String>,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = crate::query_pairs(params)?;
    let scope = jobs_org(&principal, &params)?;
    let job = find_job(&state, &scope, &id).await?;
    Ok(Json(job_json(&state, &job)))
}

/// `GET /v1/exports`: the organisation's jobs, newest first (at most 100).
pub async fn list_export_jobs(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = crate::query_pairs(params)?;
    let scope = jobs_org(&principal, &params)?;
    let jobs = state.store.list_export_jobs(&scope.org, 100).await?;
    let visible = jobs.iter().filter(|j| visible_to(&scope, j)).map(|j| job_json(&state, j)).collect::<Vec<_>>();
    Ok(Json(json!({ "data": visible })))
}

/// A project admin sees only the jobs limited to their projects.
fn visible_to(scope: &ReadScope, job: &ExportJob) -> bool {
    let Some(projects) = &scope.projects else { return true };
    let Ok(stored) = serde_json::from_str::<StoredRequest>(&job.request) else { return false };
    stored.projects.is_some_and(|ps| ps.iter().all(|p| projects.iter().any(|q| q.as_str() == p)))
}

async fn find_job(state: &AppState, scope: &ReadScope, id: &str) -> Result<ExportJob, ApiError> {
    let missing = || ApiError::not_found("no such export job in this organisation");
    if id.len() > 64 {
        return Err(missing());
    }
    let job = state.store.get_export_job(&scope.org, id).await?.ok_or_else(missing)?;
    if !visible_to(scope, &job) {
        return Err(missing());
    }
    Ok(job)
}

/// A job as the API shows it; a succeeded job with a fresh download link.
fn job_json(state: &AppState, job: &ExportJob) -> Value {
    let time = |t: Option<i64>| t.map(trailkeep_core::time::format_millis);
    let mut value = json!({
        "id": job.id,
        "organization_id": job.org,
        "format": job.format,
        "status": job.status.as_str(),
        "progress": { "events_written": job.events_written, "total_estimate": job.total_estimate },
        "created_at": trailkeep_core::time::format_millis(job.created_at),
        "started_at": time(job.started_at),
        "finished_at": time(job.finished_at),
        "error": job.error,
        "bytes": job.bytes,
    });
    if job.status == JobStatus::Succeeded {
        let expires = (now_ms() + LINK_LIFETIME_MS) / 1000;
        let signature = state.export_jobs.signature(&job.org, &job.id, expires);
        let url = format!(
            "{}/v1/exports/{}/download?organization_id={}&expires={expires}&signature={signature}",
            state.sessions.public_url(),
            job.id,
            encode_query_value(job.org.as_str())
        );
        value["download_url"] = url.into();
        value["download_expires_at"] = trailkeep_core::time::format_millis(expires * 1000).into();
    }
    value
}

/// Percent-encodes a query value (organisation ids are plain, but the link must survive any).
fn encode_query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The query of a download link.
#[derive(Debug, Deserialize)]
pub struct DownloadQuery {
    organization_id: Option<String>,
    expires: Option<String>,
    signature: Option<String>,
}

fn link_refused(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "invalid_download_link", message.to_owned())
}

/// `GET /v1/exports/{id}/download?organization_id=…&expires=…&signature=…`: the job's file, for whoever
/// holds a link that has not expired; no API key.
pub async fn download_export(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    query: Result<Query<DownloadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|_| link_refused("this download link is malformed; ask for the job again"))?;
    let (Some(org), Some(expires), Some(signature)) = (query.organization_id, query.expires, query.signature) else {
        return Err(link_refused(
            "a download link needs organization_id, expires and signature; GET /v1/exports/{id} gives a fresh one",
        ));
    };
    let org = OrgId::parse(&org).map_err(|_| link_refused("this download link is not valid"))?;
    let expires: i64 = expires.parse().map_err(|_| link_refused("this download link is not valid"))?;
    let expected = state.export_jobs.signature(&org, &id, expires);
    let given = hex::decode(signature.as_bytes()).unwrap_or_default();
    let matches = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), hex::encode(&given).as_bytes());
    if !bool::from(matches) || given.len() != 32 {
        return Err(link_refused("this download link is not valid; GET /v1/exports/{id} gives a fresh one"));
    }
    if expires * 1000 < now_ms() {
        return Err(link_refused("this download link has expired; GET /v1/exports/{id} gives a fresh one"));
    }
    let job = state
        .store
        .get_export_job(&org, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("this export job no longer exists; its file was cleaned up"))?;
    let Some(file) = job.file.as_ref().filter(|_| job.status == JobStatus::Succeeded) else {
        return Err(ApiError::not_found("this export job has no file"));
    };
    let path = state.export_jobs.dir.join(file);
    let handle = tokio::fs::File::open(&path).await.map_err(|e| {
        tracing::error!(job = %id, error = %e, "an export job's file is missing");
        ApiError::not_found("this export job's file is not on this node; it may have been cleaned up")
    })?;
    let length = handle.metadata().await.map(|m| m.len()).unwrap_or(0);
    let format = ExportFormat::parse(&job.format).unwrap_or(ExportFormat::Ndjson);
    let (content_type, extension) = content_type(format);
    let stream = tokio_util_stream(handle);
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", crate::export::file_name(&job.org, extension)),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response();
    response.headers_mut().insert(header::CONTENT_LENGTH, length.into());
    Ok(response)
}

/// Reads a file as a stream of chunks, without holding it in memory.
fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = Result<axum::body::Bytes, std::io::Error>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(axum::body::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

pub(crate) fn content_type(format: ExportFormat) -> (&'static str, &'static str) {
    match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ExportFormat::Json => ("application/json", "json"),
        ExportFormat::Ndjson => ("application/x-ndjson", "ndjson"),
        _ => ("application/vnd.apache.parquet", "parquet"),
    }
}

/// Runs queued jobs one at a time, and cleans up old ones, until the service stops.
pub fn spawn_worker(state: Weak<AppState>) {
    tokio::spawn(async move {
        let mut last_cleanup = 0i64;
        loop {
            let Some(app) = state.upgrade() else { return };
            // The embedded store has one process, whose worker runs one job at a time: a job running when
            // it looks is one a previous process left, taken back at once.
            let now = if app.export_jobs.single_node { i64::MAX } else { now_ms() };
            match app.store.export_jobs_due(now).await {
                Ok(due) => {
                    for job in due {
                        run_claimed(&app, job, now).await;
                    }
                }
                Err(e) => tracing::error!(error = %e, "export jobs could not be listed; retrying"),
            }
            if now_ms() - last_cleanup > 60_000 {
                last_cleanup = now_ms();
                clean_up(&app).await;
            }
            let wake = async {
                app.export_jobs.wake.notified().await;
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), wake).await;
        }
    });
}

/// Claims `job` and runs it when the claim holds.
async fn run_claimed(state: &Arc<AppState>, job: ExportJob, now: i64) {
    let jobs = &state.export_jobs;
    let claim = ExportChange::ClaimJob {
        org: job.org.clone(),
        id: job.id.clone(),
        owner: jobs.node.clone(),
        now,
        lease_until: now_ms() + LEASE_MS,
    };
    match state.store.export_write(claim, None).await {
        Ok(true) => {}
        Ok(false) => return, // Another node took it.
        Err(e) => {
            tracing::error!(job = %job.id, error = %e, "an export job could not be claimed");
            return;
        }
    }
    let (status, written, file, bytes, error) = match run_job(state, &job).await {
        Ok((written, file, bytes)) => (JobStatus::Succeeded, written, Some(file), Some(bytes), None),
        Err(JobError::LeaseLost) => return,
        Err(JobError::Failed { written, message }) => {
            tracing::error!(job = %job.id, org = %job.org, error = %message, "an export job failed");
            (JobStatus::Failed, written, None, None, Some("the export failed; the service logged why".to_owned()))
        }
    };
    let finish = ExportChange::FinishJob {
        org: job.org.clone(),
        id: job.id.clone(),
        owner: jobs.node.clone(),
        status,
        at: now_ms(),
        events_written: written,
        file,
        bytes,
        error,
    };
    if let Err(e) = state.store.export_write(finish, None).await {
        tracing::error!(job = %job.id, error = %e, "an export job's end could not be recorded; it runs again");
    }
}

enum JobError {
    /// Another node took the job over: this run stops and records nothing.
    LeaseLost,
    Failed {
        written: u64,
        message: String,
    },
}

/// Writes the job's file; answers the events written, the file's name and its size.
async fn run_job(state: &Arc<AppState>, job: &ExportJob) -> Result<(u64, String, u64), JobError> {
    let failed = |written: u64, message: String| JobError::Failed { written, message };
    let stored: StoredRequest =
        serde_json::from_str(&job.request).map_err(|e| failed(0, format!("unreadable job request: {e}")))?;
    let format = ExportFormat::parse(&job.format).ok_or_else(|| failed(0, format!("unknown format {}", job.format)))?;
    let order = match stored.params.iter().find(|(k, _)| k == "order").map(|(_, v)| v.as_str()) {
        Some("desc") => Order::Desc,
        _ => Order::Asc,
    };
    // Relative times (`from=-24h`) mean what they meant when the job was asked for.
    let filter = Filter::from_params(&stored.params, job.created_at).map_err(|e| failed(0, e.message))?;
    let projects = stored
        .projects
        .map(|ps| ps.iter().map(|p| ProjectId::parse(p)).collect::<Result<Vec<_>, _>>())
        .transpose()
        .map_err(|e| failed(0, format!("unreadable project in job request: {e}")))?;
    let scope = ReadScope { org: job.org.clone(), projects };
    let row_limit = (format == ExportFormat::Csv).then_some(state.export_csv_max_rows);
    let (_, extension) = content_type(format);
    let name = format!("{}.{extension}", job.id);
    let path = state.export_jobs.dir.join(&name);
    let partial = state.export_jobs.dir.join(format!("{name}.partial"));

    // The encoder runs on a blocking thread, fed page by page.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<trailkeep_core::Event>>(2);
    let encode_path = partial.clone();
    let include_ai_text = stored.include_ai_text;
    let encoder = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, bool)> {
        let file = std::fs::File::create(&encode_path)?;
        let out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut encoder = FileEncoder::new(format, include_ai_text, row_limit.unwrap_or(0), out)?;
        let mut truncated = false;
        while let Some(events) = rx.blocking_recv() {
            if events.is_empty() {
                truncated = true;
                continue;
            }
            encoder.write(&events)?;
        }
        let out = encoder.finish(truncated)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((file.metadata()?.len(), truncated))
    });

    let mut query = EventQuery { filter, order, limit: PAGE, after: None };
    let mut written = 0u64;
    let read = async {
        loop {
            if let Some(max) = row_limit {
                query.limit = PAGE.min(usize::try_from(max - written + 1).unwrap_or(PAGE));
            }
            let page = state.store.list_events(&scope, &query).await.map_err(|e| failed(written, e.to_string()))?;
            let mut events = page.events;
            let mut truncated = false;
            if let Some(max) = row_limit
                && written + events.len() as u64 > max
            {
                events.truncate((max - written) as usize);
                truncated = true;
            }
            written += events.len() as u64;
            if !events.is_empty() && tx.send(events).await.is_err() {
                return Err(failed(written, "the encoder stopped".into()));
            }
            if truncated {
                // An empty page tells the encoder the file was cut.
                let _ = tx.send(Vec::new()).await;
            }
            let progress = ExportChange::JobProgress {
                org: job.org.clone(),
                id: job.id.clone(),
                owner: state.export_jobs.node.clone(),
                events_written: written,
                lease_until: now_ms() + LEASE_MS,
            };
            match state.store.export_write(progress, None).await {
                Ok(true) => {}
                Ok(false) => return Err(JobError::LeaseLost),
                Err(e) => return Err(failed(written, e.to_string())),
            }
            match page.next {
                Some(next) if !truncated => query.after = Some(next),
                _ => return Ok(()),
            }
        }
    };
    let result = read.await;
    drop(tx);
    let encoded = encoder.await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let (bytes, _) = match encoded {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return Err(failed(written, format!("writing {}: {e}", partial.display()))),
        Err(e) => return Err(failed(written, format!("the encoder panicked: {e}"))),
    };
    std::fs::rename(&partial, &path).map_err(|e| failed(written, format!("renaming {}: {e}", partial.display())))?;
    Ok((written, name, bytes))
}

/// Deletes jobs that finished more than the retention ago, file first, then the record.
async fn clean_up(state: &Arc<AppState>) {
    let jobs = &state.export_jobs;
    let before = now_ms() - i64::try_from(jobs.retention.as_millis()).unwrap_or(i64::MAX);
    let old = match state.store.export_jobs_finished_before(before).await {
        Ok(old) => old,
        Err(e) => {
            tracing::error!(error = %e, "old export jobs could not be listed; retrying later");
            return;
        }
    };
    for job in old {
        if let Some(file) = &job.file
            && let Err(e) = std::fs::remove_file(jobs.dir.join(file))
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(job = %job.id, error = %e, "an old export file could not be deleted");
            continue;
        }
        let delete = ExportChange::DeleteJob { org: job.org.clone(), id: job.id.clone() };
        if let Err(e) = state.store.export_write(delete, None).await {
            tracing::error!(job = %job.id, error = %e, "an old export job could not be deleted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231, test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // Test case 6: a key longer than a block.
        let mac = hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(hex::encode(mac), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }
}
