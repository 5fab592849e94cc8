//! Export jobs and schedules in PostgreSQL, as in the SQLite engine's `exports.rs`: every change goes
//! through the writer, in the same transaction as the event recording it when there is one. Claims are
//! conditional `UPDATE`s, so of several nodes racing for a job or a schedule one wins; the cross-tenant
//! listings the workers need go through `SECURITY DEFINER` functions, like the other platform reads.

use tokio_postgres::{GenericClient, Row};
use trailkeep_core::NewEvent;
use trailkeep_store::exports::{ExportChange, ExportJob, ExportSchedule, JobStatus, Period};

use crate::admin::Damaged;

/// One change for the writer, with the event recording it (written only when the change happened).
pub struct ExportWrite {
    pub change: ExportChange,
    pub audit: Option<NewEvent>,
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Applies `change`; whether it changed a row.
pub async fn apply(tx: &impl GenericClient, change: &ExportChange) -> Result<bool, tokio_postgres::Error> {
    let changed = match change {
        ExportChange::CreateJob(j) => {
            tx.execute(
                "INSERT INTO export_jobs (id, org_id, format, request, status, events_written, total_estimate, \
                 created_at, created_by, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0) \
                 ON CONFLICT DO NOTHING",
                &[
                    &j.id,
                    &j.org.as_str(),
                    &j.format,
                    &j.request,
                    &j.status.as_str(),
                    &i64_of(j.events_written),
                    &j.total_estimate.map(i64_of),
                    &j.created_at,
                    &j.created_by,
                ],
            )
            .await?
        }
        ExportChange::ClaimJob { org, id, owner, now, lease_until } => {
            tx.execute(
                "UPDATE export_jobs SET status = 'running', lease_owner = $3, lease_until = $5, started_at = $4, \
                 events_written = 0, attempts = attempts + 1 \
                 WHERE org_id = $1 AND id = $2 \
                   AND (status = 'queued' OR (status = 'running' AND (lease_until IS NULL OR lease_until < $4)))",
                &[&org.as_str(), id, owner, now, lease_until],
            )
            .await?
        }
        ExportChange::JobProgress { org, id, owner, events_written, lease_until } => {
            tx.execute(
                "UPDATE export_jobs SET events_written = $4, lease_until = $5 \
                 WHERE org_id = $1 AND id = $2 AND status = 'running' AND lease_owner = $3",
                &[&org.as_str(), id, owner, &i64_of(*events_written), lease_until],
            )
            .await?
        }
        ExportChange::FinishJob { org, id, owner, status, at, events_written, file, bytes, error } => {
            tx.execute(
                "UPDATE export_jobs SET status = $4, finished_at = $5, events_written = $6, file = $7, bytes = $8, \
                 error = $9, lease_owner = NULL, lease_until = NULL \
                 WHERE org_id = $1 AND id = $2 AND status = 'running' AND lease_owner = $3",
                &[
                    &org.as_str(),
                    id,
                    owner,
                    &status.as_str(),
                    at,
                    &i64_of(*events_written),
                    file,
                    &bytes.map(i64_of),
                    error,
                ],
            )
            .await?
        }
        ExportChange::DeleteJob { org, id } => {
            tx.execute("DELETE FROM export_jobs WHERE org_id = $1 AND id = $2", &[&org.as_str(), id]).await?
        }
        ExportChange::CreateSchedule(s) => {
            tx.execute(
                "INSERT INTO export_schedules (id, org_id, destination, format, period, created_at, created_by, \
                 next_window, last_seq, windows_done) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0) \
                 ON CONFLICT DO NOTHING",
                &[
                    &s.id,
                    &s.org.as_str(),
                    &s.destination,
                    &s.format,
                    &s.period.as_str(),
                    &s.created_at,
                    &s.created_by,
                    &s.next_window,
                    &i64_of(s.last_seq),
                ],
            )
            .await?
        }
        ExportChange::DeleteSchedule { org, id } => {
            tx.execute("DELETE FROM export_schedules WHERE org_id = $1 AND id = $2", &[&org.as_str(), id]).await?
        }
        ExportChange::ClaimSchedule { org, id, owner, now, lease_until } => {
            tx.execute(
                "UPDATE export_schedules SET lease_owner = $3, lease_until = $5 WHERE org_id = $1 AND id = $2 \
                 AND (lease_until IS NULL OR lease_until < $4 OR lease_owner = $3)",
                &[&org.as_str(), id, owner, now, lease_until],
            )
            .await?
        }
        ExportChange::RecordWindow { org, id, owner, window, next_window, last_seq, at } => {
            tx.execute(
                "UPDATE export_schedules SET next_window = $4, last_seq = $5, windows_done = windows_done + 1, \
                 last_exported_at = $6, last_error = NULL \
                 WHERE org_id = $1 AND id = $2 AND next_window = $3 AND lease_owner = $7",
                &[&org.as_str(), id, window, next_window, &i64_of(*last_seq), at, owner],
            )
            .await?
        }
        ExportChange::ScheduleFailed { org, id, error } => {
            tx.execute(
                "UPDATE export_schedules SET last_error = $3 WHERE org_id = $1 AND id = $2",
                &[&org.as_str(), id, error],
            )
            .await?
        }
    };
    Ok(changed == 1)
}

pub fn job_from_row(r: &Row) -> Result<ExportJob, Damaged> {
    let org: &str = r.get("org_id");
    let status: &str = r.get("status");
    Ok(ExportJob {
        id: r.get("id"),
        org: org.parse().map_err(|_| Damaged::new("organisation id", org))?,
        format: r.get("format"),
        request: r.get("request"),
        status: JobStatus::parse(status).ok_or_else(|| Damaged::new("export job status", status))?,
        events_written: r.get::<_, i64>("events_written") as u64,
        total_estimate: r.get::<_, Option<i64>>("total_estimate").map(|n| n as u64),
        created_at: r.get("created_at"),
        created_by: r.get("created_by"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
        error: r.get("error"),
        file: r.get("file"),
        bytes: r.get::<_, Option<i64>>("bytes").map(|n| n as u64),
        lease_owner: r.get("lease_owner"),
        lease_until: r.get("lease_until"),
        attempts: r.get::<_, i32>("attempts") as u32,
    })
}

pub fn schedule_from_row(r: &Row) -> Result<ExportSchedule, Damaged> {
    let org: &str = r.get("org_id");
    let period: &str = r.get("period");
    Ok(ExportSchedule {
        id: r.get("id"),
        org: org.parse().map_err(|_| Damaged::new("organisation id", org))?,
        destination: r.get("destination"),
        format: r.get("format"),
        period: Period::parse(period).ok_or_else(|| Damaged::new("export schedule period", period))?,
        created_at: r.get("created_at"),
        created_by: r.get("created_by"),
        next_window: r.get("next_window"),
        last_seq: r.get::<_, i64>("last_seq") as u64,
        windows_done: r.get::<_, i64>("windows_done") as u64,
        last_exported_at: r.get("last_exported_at"),
        last_error: r.get("last_error"),
        lease_owner: r.get("lease_owner"),
        lease_until: r.get("lease_until"),
    })
}
