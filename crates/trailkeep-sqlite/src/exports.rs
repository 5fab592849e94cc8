//! Export jobs and schedules: the writer's side (each change applied inside its transactions, with the
//! event recording it when there is one) and the readers' side.

use rusqlite::{Connection, OptionalExtension, Row, params};
use trailkeep_store::exports::{ExportChange, ExportJob, ExportSchedule, JobStatus, Period};

use crate::admin::stored;

/// A change for the writer thread, with the event that records it.
pub struct ExportWrite {
    pub change: ExportChange,
    pub audit: Option<trailkeep_core::NewEvent>,
}

/// Applies one change on the writer's connection; true when it changed something.
pub fn apply(conn: &Connection, change: &ExportChange) -> rusqlite::Result<bool> {
    let changed = match change {
        ExportChange::CreateJob(j) => conn.execute(
            "INSERT INTO export_jobs (id, org_id, format, request, status, events_written, total_estimate, \
             created_at, created_by, attempts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0) ON CONFLICT DO NOTHING",
            params![
                j.id,
                j.org.as_str(),
                j.format,
                j.request,
                j.status.as_str(),
                j.events_written as i64,
                j.total_estimate.map(|n| n as i64),
                j.created_at,
                j.created_by
            ],
        )?,
        ExportChange::ClaimJob { org, id, owner, now, lease_until } => conn.execute(
            "UPDATE export_jobs SET status = 'running', lease_owner = ?3, lease_until = ?5, started_at = ?4, \
             events_written = 0, attempts = attempts + 1 \
             WHERE org_id = ?1 AND id = ?2 \
               AND (status = 'queued' OR (status = 'running' AND (lease_until IS NULL OR lease_until < ?4)))",
            params![org.as_str(), id, owner, now, lease_until],
        )?,
        ExportChange::JobProgress { org, id, owner, events_written, lease_until } => conn.execute(
            "UPDATE export_jobs SET events_written = ?4, lease_until = ?5 \
             WHERE org_id = ?1 AND id = ?2 AND status = 'running' AND lease_owner = ?3",
            params![org.as_str(), id, owner, *events_written as i64, lease_until],
        )?,
        ExportChange::FinishJob { org, id, owner, status, at, events_written, file, bytes, error } => conn.execute(
            "UPDATE export_jobs SET status = ?4, finished_at = ?5, events_written = ?6, file = ?7, bytes = ?8, \
             error = ?9, lease_owner = NULL, lease_until = NULL \
             WHERE org_id = ?1 AND id = ?2 AND status = 'running' AND lease_owner = ?3",
            params![
                org.as_str(),
                id,
                owner,
                status.as_str(),
                at,
                *events_written as i64,
                file,
                bytes.map(|b| b as i64),
                error
            ],
        )?,
        ExportChange::DeleteJob { org, id } => {
            conn.execute("DELETE FROM export_jobs WHERE org_id = ?1 AND id = ?2", params![org.as_str(), id])?
        }
        ExportChange::CreateSchedule(s) => conn.execute(
            "INSERT INTO export_schedules (id, org_id, destination, format, period, created_at, created_by, \
             next_window, last_seq, windows_done) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0) \
             ON CONFLICT DO NOTHING",
            params![
                s.id,
                s.org.as_str(),
                s.destination,
                s.format,
                s.period.as_str(),
                s.created_at,
                s.created_by,
                s.next_window,
                s.last_seq as i64
            ],
        )?,
        ExportChange::DeleteSchedule { org, id } => {
            conn.execute("DELETE FROM export_schedules WHERE org_id = ?1 AND id = ?2", params![org.as_str(), id])?
        }
        ExportChange::ClaimSchedule { org, id, owner, now, lease_until } => conn.execute(
            "UPDATE export_schedules SET lease_owner = ?3, lease_until = ?5 WHERE org_id = ?1 AND id = ?2 \
             AND (lease_until IS NULL OR lease_until < ?4 OR lease_owner = ?3)",
            params![org.as_str(), id, owner, now, lease_until],
        )?,
        ExportChange::RecordWindow { org, id, owner, window, next_window, last_seq, at } => conn.execute(
            "UPDATE export_schedules SET next_window = ?4, last_seq = ?5, windows_done = windows_done + 1, \
             last_exported_at = ?6, last_error = NULL \
             WHERE org_id = ?1 AND id = ?2 AND next_window = ?3 AND lease_owner = ?7",
            params![org.as_str(), id, window, next_window, *last_seq as i64, at, owner],
        )?,
        ExportChange::ScheduleFailed { org, id, error } => conn.execute(
            "UPDATE export_schedules SET last_error = ?3 WHERE org_id = ?1 AND id = ?2",
            params![org.as_str(), id, error],
        )?,
    };
    Ok(changed == 1)
}

const JOB_COLUMNS: &str = "id, org_id, format, request, status, events_written, total_estimate, created_at, \
     created_by, started_at, finished_at, error, file, bytes, lease_owner, lease_until, attempts";

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<ExportJob> {
    let org: String = r.get(1)?;
    let status: String = r.get(4)?;
    Ok(ExportJob {
        id: r.get(0)?,
        org: stored(1, &org)?,
        format: r.get(2)?,
        request: r.get(3)?,
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
        events_written: r.get::<_, i64>(5)? as u64,
        total_estimate: r.get::<_, Option<i64>>(6)?.map(|n| n as u64),
        created_at: r.get(7)?,
        created_by: r.get(8)?,
        started_at: r.get(9)?,
        finished_at: r.get(10)?,
        error: r.get(11)?,
        file: r.get(12)?,
        bytes: r.get::<_, Option<i64>>(13)?.map(|n| n as u64),
        lease_owner: r.get(14)?,
        lease_until: r.get(15)?,
        attempts: r.get::<_, i64>(16)? as u32,
    })
}

pub fn get_job(conn: &Connection, org: &str, id: &str) -> rusqlite::Result<Option<ExportJob>> {
    conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM export_jobs WHERE org_id = ?1 AND id = ?2"))?
        .query_row(params![org, id], job_from_row)
        .optional()
}

pub fn list_jobs(conn: &Connection, org: &str, limit: usize) -> rusqlite::Result<Vec<ExportJob>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM export_jobs WHERE org_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![org, limit as i64], job_from_row)?;
    rows.collect()
}

pub fn jobs_due(conn: &Connection, now: i64) -> rusqlite::Result<Vec<ExportJob>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM export_jobs WHERE status = 'queued' \
         OR (status = 'running' AND (lease_until IS NULL OR lease_until < ?1)) ORDER BY created_at, id LIMIT 100"
    ))?;
    let rows = stmt.query_map([now], job_from_row)?;
    rows.collect()
}

pub fn jobs_finished_before(conn: &Connection, before: i64) -> rusqlite::Result<Vec<ExportJob>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM export_jobs WHERE finished_at < ?1 ORDER BY finished_at LIMIT 1000"
    ))?;
    let rows = stmt.query_map([before], job_from_row)?;
    rows.collect()
}

const SCHEDULE_COLUMNS: &str = "id, org_id, destination, format, period, created_at, created_by, next_window, \
     last_seq, windows_done, last_exported_at, last_error, lease_owner, lease_until";

fn schedule_from_row(r: &Row<'_>) -> rusqlite::Result<ExportSchedule> {
    let org: String = r.get(1)?;
    let period: String = r.get(4)?;
    Ok(ExportSchedule {
        id: r.get(0)?,
        org: stored(1, &org)?,
        destination: r.get(2)?,
        format: r.get(3)?,
        period: Period::parse(&period).unwrap_or(Period::Daily),
        created_at: r.get(5)?,
        created_by: r.get(6)?,
        next_window: r.get(7)?,
        last_seq: r.get::<_, i64>(8)? as u64,
        windows_done: r.get::<_, i64>(9)? as u64,
        last_exported_at: r.get(10)?,
        last_error: r.get(11)?,
        lease_owner: r.get(12)?,
        lease_until: r.get(13)?,
    })
}

pub fn list_schedules(conn: &Connection, org: Option<&str>) -> rusqlite::Result<Vec<ExportSchedule>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM export_schedules WHERE ?1 IS NULL OR org_id = ?1 ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([org], schedule_from_row)?;
    rows.collect()
}
