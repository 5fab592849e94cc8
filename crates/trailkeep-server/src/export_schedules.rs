//! Scheduled exports: each organisation may have schedules that export every closed window — a UTC day,
//! or an ISO week (Monday to Monday, UTC) — of its log to a configured destination (a local directory or
//! an S3-compatible bucket), as gzip-compressed NDJSON or Parquet, with a manifest beside each data
//! object.
//!
//! **Windows are ranges of seq.** A window holds the events after the last seq of the window before it
//! up to the last one received (by `received_at`) before the window's end, read from the sealed log in
//! seq order. Consecutive windows therefore cover the log's seqs without a gap or an overlap, whatever
//! the clocks did; an event that commits late (after its window was exported) lands in the next window.
//! A window is exported once it ended more than `export_schedule_grace_secs` ago.
//!
//! **Exactly once.** The objects of a window have names fixed by the schedule and the window, and their
//! content by the seq range; the scheduler writes the data object, then the manifest, then records the
//! window as done in the store with a compare-and-set on the schedule's next window. A crash before the
//! record leaves the window to be written again under the same names with the same content (an
//! overwrite, not a duplicate); a crash after it leaves nothing to do. On several nodes, a node claims a
//! schedule with a lease before exporting, so one node exports each window.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutOptions, PutPayload};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use trailkeep_core::plans::ExportFormat;
use trailkeep_core::{Event, Target};
use trailkeep_store::exports::{ExportChange, ExportSchedule, Period};
use uuid::Uuid;

use crate::audit::{Origin, Record};
use crate::auth::Principal;
use crate::config::{Config, DestinationSettings};
use crate::error::ApiError;
use crate::export::FileEncoder;
use crate::orgs::{administered, invalid};
use crate::{AppState, now_ms};

const DAY_MS: i64 = 86_400_000;
/// How long a claim on a schedule lasts; it is renewed before each window, and a node that died holding
/// it delays its schedules by at most this much.
const LEASE_MS: i64 = 2 * 60_000;
/// Receipts read per store call.
const CHUNK: u64 = 1000;
/// Windows one schedule exports per pass, so one far behind does not hold up the others.
const WINDOWS_PER_PASS: usize = 64;

/// A configured destination, opened.
pub struct Destination {
    pub kind: &'static str,
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

/// The scheduler's settings and destinations.
pub struct Scheduler {
    pub destinations: BTreeMap<String, Destination>,
    grace_ms: i64,
    every: Duration,
    clock_offset_ms: i64,
    fault: Option<String>,
    node: String,
    /// On the embedded store one process runs everything, so a claim left by a process that died is
    /// taken over at once.
    single_node: bool,
}

impl Scheduler {
    /// Opens every configured destination; a missing credential variable is named, its value never shown.
    pub fn new(config: &Config) -> anyhow::Result<Scheduler> {
        let mut destinations = BTreeMap::new();
        for (name, settings) in &config.export_destinations {
            destinations.insert(name.clone(), open_destination(name, settings)?);
        }
        Ok(Scheduler {
            destinations,
            grace_ms: i64::try_from(config.export_schedule_grace_secs).unwrap_or(0) * 1000,
            every: Duration::from_secs(config.export_schedule_check_secs),
            clock_offset_ms: config.test_clock_offset_ms,
            fault: config.test_fault.clone(),
            node: format!("node_{}", Uuid::new_v4().simple()),
            single_node: config.database_url.is_none(),
        })
    }

    /// The scheduler's clock: the system's, moved by the test-only offset.
    fn now(&self) -> i64 {
        now_ms() + self.clock_offset_ms
    }
}

fn open_destination(name: &str, settings: &DestinationSettings) -> anyhow::Result<Destination> {
    let prefix = settings.prefix.clone().unwrap_or_default().trim_matches('/').to_owned();
    match settings.kind.as_str() {
        "dir" => {
            let path = settings.path.clone().unwrap_or_default();
            std::fs::create_dir_all(&path)
                .map_err(|e| anyhow::anyhow!("[export_destinations.{name}] cannot create {}: {e}", path.display()))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(&path)
                .map_err(|e| anyhow::anyhow!("[export_destinations.{name}] {e}"))?;
            Ok(Destination { kind: "dir", store: Arc::new(store), prefix })
        }
        _ => {
            let mut builder = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(settings.bucket.clone().unwrap_or_default())
                .with_region(settings.region.clone().unwrap_or_else(|| "us-east-1".into()));
            if let Some(endpoint) = &settings.endpoint {
                builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
            }
            if let (Some(id_var), Some(secret_var)) = (&settings.access_key_id_env, &settings.secret_access_key_env) {
                let read = |var: &str| {
                    std::env::var(var).map_err(|_| {
                        anyhow::anyhow!("[export_destinations.{name}] the environment variable {var} is not set")
                    })
                };
                builder = builder.with_access_key_id(read(id_var)?).with_secret_access_key(read(secret_var)?);
            }
            // The builder's error may quote settings but never the secret.
            let store = builder.build().map_err(|e| anyhow::anyhow!("[export_destinations.{name}] {e}"))?;
            Ok(Destination { kind: "s3", store: Arc::new(store), prefix })
        }
    }
}

/// The start of the window of `period` holding `t`: midnight UTC, or Monday midnight UTC.
pub fn window_start(period: Period, t: i64) -> i64 {
    match period {
        Period::Daily => t.div_euclid(DAY_MS) * DAY_MS,
        // 1970-01-05, four days after the epoch, was a Monday.
        Period::Weekly => (t - 4 * DAY_MS).div_euclid(7 * DAY_MS) * 7 * DAY_MS + 4 * DAY_MS,
    }
}

fn window_end(period: Period, start: i64) -> i64 {
    match period {
        Period::Daily => start + DAY_MS,
        Period::Weekly => start + 7 * DAY_MS,
    }
}

/// `POST /v1/orgs/{org}/export-schedules`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateScheduleRequest {
    pub destination: String,
    pub format: String,
    pub period: String,
}

fn schedule_json(s: &ExportSchedule) -> Value {
    let time = |t: Option<i64>| t.map(trailkeep_core::time::format_millis);
    let last_window = (s.windows_done > 0).then(|| {
        let end = s.next_window;
        let start = match s.period {
            Period::Daily => end - DAY_MS,
            Period::Weekly => end - 7 * DAY_MS,
        };
        json!({
            "start": trailkeep_core::time::format_millis(start),
            "end": trailkeep_core::time::format_millis(end),
            "last_seq": s.last_seq,
        })
    });
    json!({
        "id": s.id,
        "organization_id": s.org,
        "destination": s.destination,
        "format": s.format,
        "period": s.period.as_str(),
        "created_at": trailkeep_core::time::format_millis(s.created_at),
        "next_window_start": trailkeep_core::time::format_millis(s.next_window),
        "windows_exported": s.windows_done,
        "last_window": last_window,
        "last_exported_at": time(s.last_exported_at),
        "last_error": s.last_error,
    })
}

/// `GET /v1/orgs/{org}/export-schedules`.
pub async fn list_export_schedules(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    UrlPath(org): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let org = administered(&state, &principal, &org).await?;
    let schedules = state.store.list_export_schedules(Some(&org.id)).await?;
    Ok(Json(json!({ "data": schedules.iter().map(schedule_json).collect::<Vec<_>>() })))
}

/// `POST /v1/orgs/{org}/export-schedules`: exports from the window holding now on; the first window
/// also holds every event before it.
pub async fn create_export_schedule(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    UrlPath(org): UrlPath<String>,
    body: Result<Json<CreateScheduleRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let org = administered(&state, &principal, &org).await?;
    let request = crate::orgs::body(body)?;
    let scheduler = &state.export_schedules;
    if !scheduler.destinations.contains_key(&request.destination) {
        let known: Vec<&str> = scheduler.destinations.keys().map(String::as_str).collect();
        let choices = if known.is_empty() {
            "none is configured; add [export_destinations.NAME] to the server's configuration".to_owned()
        } else {
            format!("the configured ones are {}", known.join(", "))
        };
        return Err(invalid("destination", format!("no destination is called that; {choices}")));
    }
    let format = match request.format.as_str() {
        "ndjson" => ExportFormat::Ndjson,
        "parquet" => ExportFormat::Parquet,
        _ => return Err(invalid("format", "format must be `ndjson` (gzip-compressed) or `parquet`")),
    };
    let period = Period::parse(&request.period)
        .ok_or_else(|| invalid("period", "period must be `daily` or `weekly` (ISO weeks, in UTC)"))?;
    crate::export::allowed_by_plan(&state, &principal, &org.id, format).await?;
    let actor = principal.actor();
    let schedule = ExportSchedule {
        id: format!("sched_{}", Uuid::now_v7().simple()),
        org: org.id.clone(),
        destination: request.destination.clone(),
        format: format.as_str().to_owned(),
        period,
        created_at: now_ms(),
        created_by: actor.id.clone().unwrap_or_default(),
        // The window holding the moment the schedule starts, by the clock events are received by.
        next_window: window_start(period, now_ms()),
        last_seq: 0,
        windows_done: 0,
        last_exported_at: None,
        last_error: None,
        lease_owner: None,
        lease_until: None,
    };
    let mut metadata = serde_json::Map::new();
    metadata.insert("destination".into(), schedule.destination.clone().into());
    metadata.insert("format".into(), schedule.format.clone().into());
    metadata.insert("period".into(), period.as_str().into());
    let event = crate::audit::event(
        Record {
            org: org.id.clone(),
            project: None,
            action: "export_schedule.created",
            category: "export_schedule",
            target: Target { target_type: "export_schedule".into(), id: schedule.id.clone(), name: None },
            description: format!(
                "A {} export of the audit log as {} to `{}` was scheduled",
                period.as_str(),
                schedule.format,
                schedule.destination
            ),
            changes: Vec::new(),
            metadata,
        },
        actor,
        &origin,
    );
    state.store.export_write(ExportChange::CreateSchedule(schedule.clone()), Some(event)).await?;
    Ok((StatusCode::CREATED, Json(schedule_json(&schedule))))
}

/// `DELETE /v1/orgs/{org}/export-schedules/{id}`: stops the schedule; what it exported stays.
pub async fn delete_export_schedule(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    UrlPath((org, id)): UrlPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = administered(&state, &principal, &org).await?;
    let missing = || ApiError::not_found("no such export schedule in this organisation");
    let schedules = state.store.list_export_schedules(Some(&org.id)).await?;
    let schedule = schedules.into_iter().find(|s| s.id == id).ok_or_else(missing)?;
    let mut metadata = serde_json::Map::new();
    metadata.insert("destination".into(), schedule.destination.clone().into());
    metadata.insert("windows_exported".into(), schedule.windows_done.into());
    let event = crate::audit::event(
        Record {
            org: org.id.clone(),
            project: None,
            action: "export_schedule.deleted",
            category: "export_schedule",
            target: Target { target_type: "export_schedule".into(), id: schedule.id.clone(), name: None },
            description: format!("The {} export to `{}` was stopped", schedule.period.as_str(), schedule.destination),
            changes: Vec::new(),
            metadata,
        },
        principal.actor(),
        &origin,
    );
    let deleted = state
        .store
        .export_write(ExportChange::DeleteSchedule { org: org.id.clone(), id: id.clone() }, Some(event))
        .await?;
    if deleted { Ok(StatusCode::NO_CONTENT) } else { Err(missing()) }
}

/// Exports closed windows of every schedule every `export_schedule_check_secs`, until the service stops.
pub fn spawn_scheduler(state: Weak<AppState>) {
    let Some(every) = state.upgrade().map(|s| s.export_schedules.every) else { return };
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            let Some(app) = state.upgrade() else { return };
            let schedules = match app.store.list_export_schedules(None).await {
                Ok(schedules) => schedules,
                Err(e) => {
                    tracing::error!(error = %e, "scheduled exports could not be listed; retrying");
                    continue;
                }
            };
            for schedule in schedules {
                if let Err(e) = run_schedule(&app, schedule.clone()).await {
                    tracing::error!(schedule = %schedule.id, org = %schedule.org, error = %e, "a scheduled export failed; it is tried again");
                    let failed = ExportChange::ScheduleFailed {
                        org: schedule.org.clone(),
                        id: schedule.id.clone(),
                        error: "the export failed; the service logged why".into(),
                    };
                    let _ = app.store.export_write(failed, None).await;
                }
            }
        }
    });
}

/// Exports the schedule's closed windows, claiming it first.
async fn run_schedule(state: &Arc<AppState>, mut schedule: ExportSchedule) -> anyhow::Result<()> {
    let scheduler = &state.export_schedules;
    for _ in 0..WINDOWS_PER_PASS {
        let end = window_end(schedule.period, schedule.next_window);
        if end + scheduler.grace_ms > scheduler.now() {
            return Ok(());
        }
        let claim = ExportChange::ClaimSchedule {
            org: schedule.org.clone(),
            id: schedule.id.clone(),
            owner: scheduler.node.clone(),
            now: if scheduler.single_node { i64::MAX } else { now_ms() },
            lease_until: now_ms() + LEASE_MS,
        };
        if !state.store.export_write(claim, None).await? {
            return Ok(()); // Another node runs it.
        }
        // What the store holds now, not what was listed: another node may have moved it on.
        let Some(current) =
            state.store.list_export_schedules(Some(&schedule.org)).await?.into_iter().find(|s| s.id == schedule.id)
        else {
            return Ok(()); // Deleted meanwhile.
        };
        schedule = current;
        let end = window_end(schedule.period, schedule.next_window);
        if end + scheduler.grace_ms > scheduler.now() {
            return Ok(());
        }
        let last_seq = export_window(state, &schedule, end).await?;
        let record = ExportChange::RecordWindow {
            org: schedule.org.clone(),
            id: schedule.id.clone(),
            owner: scheduler.node.clone(),
            window: schedule.next_window,
            next_window: end,
            last_seq,
            at: now_ms(),
        };
        if !state.store.export_write(record, None).await? {
            return Ok(()); // Recorded by someone else, or deleted: nothing more here.
        }
        metrics::counter!("trailkeep_scheduled_export_windows_total").increment(1);
        schedule.next_window = end;
        schedule.last_seq = last_seq;
    }
    Ok(())
}

/// The names of a window's data object and manifest.
pub fn object_names(prefix: &str, schedule: &ExportSchedule, window: i64) -> (String, String) {
    let start = chrono::DateTime::from_timestamp_millis(window).unwrap_or_default();
    let dir = format!("{}/{}", schedule.org, start.format("%Y/%m/%d"));
    let dir = if prefix.is_empty() { dir } else { format!("{prefix}/{dir}") };
    let base = format!("{dir}/{}-{}-{}", schedule.id, schedule.period.as_str(), start.format("%Y%m%dT%H%M%SZ"));
    let extension = if schedule.format == "parquet" { "parquet" } else { "ndjson.gz" };
    (format!("{base}.{extension}"), format!("{base}.manifest.json"))
}

/// Writes one window's data object and manifest; answers the window's last seq.
async fn export_window(state: &Arc<AppState>, schedule: &ExportSchedule, end: i64) -> anyhow::Result<u64> {
    let scheduler = &state.export_schedules;
    let destination = scheduler
        .destinations
        .get(&schedule.destination)
        .ok_or_else(|| anyhow::anyhow!("the destination `{}` is no longer configured", schedule.destination))?;
    let format = if schedule.format == "parquet" { ExportFormat::Parquet } else { ExportFormat::Ndjson };

    // The window: sealed events after the last seq exported, up to the last one received before `end`.
    let after = schedule.last_seq;
    let mut events: Vec<Event> = Vec::new();
    let mut last = after;
    'read: loop {
        let from = last + 1;
        let sealed = state.store.sealed_events(&schedule.org, from, from + CHUNK - 1).await?;
        let got = sealed.len() as u64;
        for entry in sealed {
            if entry.receipt.received_at >= end {
                break 'read;
            }
            // Rows forged under a seq already read show in verification, not here.
            if entry.receipt.seq <= last {
                continue;
            }
            last = entry.receipt.seq;
            // A pruned event has no payload left; its seq still belongs to the window.
            if let Some(payload) = &entry.payload {
                events.push(serde_json::from_str(payload)?);
            }
        }
        if got < CHUNK {
            break;
        }
    }
    let count = events.len() as u64;
    let data = tokio::task::spawn_blocking(move || encode_window(format, &events)).await??;
    let sha256 = hex::encode(Sha256::digest(&data));
    let bytes = data.len();
    let (data_name, manifest_name) = object_names(&destination.prefix, schedule, schedule.next_window);

    put(destination, &data_name, data).await?;
    if scheduler.fault.as_deref() == Some("after_export_object") {
        // At once, as `kill -9` would: nothing after this point runs.
        tracing::error!("test fault: stopping the process after writing {data_name}");
        std::process::exit(86);
    }
    let manifest = json!({
        "organization_id": schedule.org,
        "schedule_id": schedule.id,
        "period": schedule.period.as_str(),
        "window_start": trailkeep_core::time::format_millis(schedule.next_window),
        "window_end": trailkeep_core::time::format_millis(end),
        "after_seq": after,
        "first_seq": (last > after).then_some(after + 1),
        "last_seq": last,
        "event_count": count,
        "format": if format == ExportFormat::Parquet { "parquet" } else { "ndjson" },
        "compression": if format == ExportFormat::Parquet { Value::Null } else { "gzip".into() },
        "data_object": data_name.rsplit('/').next().unwrap_or_default(),
        "bytes": bytes,
        "sha256": sha256,
    });
    put(destination, &manifest_name, serde_json::to_vec_pretty(&manifest)?).await?;
    Ok(last)
}

async fn put(destination: &Destination, name: &str, data: Vec<u8>) -> anyhow::Result<()> {
    let path = ObjectPath::parse(name)?;
    destination
        .store
        .put_opts(&path, PutPayload::from(data), PutOptions::default())
        .await
        .map_err(|e| anyhow::anyhow!("writing {name} to a {} destination: {e}", destination.kind))?;
    Ok(())
}

/// A window's data: gzip-compressed NDJSON, or Parquet (compressed inside).
fn encode_window(format: ExportFormat, events: &[Event]) -> std::io::Result<Vec<u8>> {
    if format == ExportFormat::Parquet {
        let mut encoder = FileEncoder::new(format, false, 0, Vec::new())?;
        for chunk in events.chunks(CHUNK as usize) {
            encoder.write(chunk)?;
        }
        return encoder.finish(false);
    }
    let gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut encoder = FileEncoder::new(format, false, 0, gzip)?;
    for chunk in events.chunks(CHUNK as usize) {
        encoder.write(chunk)?;
    }
    let mut gzip = encoder.finish(false)?;
    gzip.flush()?;
    gzip.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_start_at_utc_midnight_and_on_iso_mondays() {
        let t = trailkeep_core::time::parse_rfc3339_millis("2026-12-09T15:30:00Z").unwrap();
        let day = window_start(Period::Daily, t);
        assert_eq!(trailkeep_core::time::format_millis(day), "2026-12-09T00:00:00.000Z");
        let week = window_start(Period::Weekly, t);
        assert_eq!(trailkeep_core::time::format_millis(week), "2026-12-07T00:00:00.000Z");
        assert_eq!(window_start(Period::Weekly, week), week);
        assert_eq!(window_start(Period::Weekly, week - 1), week - 7 * DAY_MS);
    }
}
