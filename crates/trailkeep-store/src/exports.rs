//! Export jobs and scheduled exports, as the store keeps them.
//!
//! A job is one large export run in the background: the store holds its request, its state and its
//! progress, so a job survives a restart and any node may run it. A schedule exports an organisation's
//! closed windows to a destination; the store holds where it has got to (the next window to export and
//! the last seq exported), and moves it on only once the window's objects are written, in one
//! compare-and-set, so each window is recorded exactly once.
//!
//! Whoever runs a job or a window first claims it with a lease (`lease_owner`, `lease_until`): a claim
//! succeeds only when the row is free or its lease has lapsed, so on several nodes one node runs each.

use trailkeep_core::OrgId;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        [JobStatus::Queued, JobStatus::Running, JobStatus::Succeeded, JobStatus::Failed]
            .into_iter()
            .find(|j| j.as_str() == s)
    }
}

/// One export job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJob {
    /// `exp_…`.
    pub id: String,
    pub org: OrgId,
    /// `csv`, `json`, `ndjson` or `parquet`.
    pub format: String,
    /// What to export, as the service wrote it (JSON: parameters, projects, options); opaque here.
    pub request: String,
    pub status: JobStatus,
    pub events_written: u64,
    /// An upper bound of the events the job will write, when known.
    pub total_estimate: Option<u64>,
    pub created_at: i64,
    /// The actor id that asked for it.
    pub created_by: String,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    /// The file's name in the export directory, once written.
    pub file: Option<String>,
    pub bytes: Option<u64>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub attempts: u32,
}

/// How often a schedule exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Daily,
    Weekly,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
        }
    }

    pub fn parse(s: &str) -> Option<Period> {
        [Period::Daily, Period::Weekly].into_iter().find(|p| p.as_str() == s)
    }
}

/// One organisation's scheduled export and how far it has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSchedule {
    /// `sched_…`.
    pub id: String,
    pub org: OrgId,
    /// The name of a destination in the server's configuration.
    pub destination: String,
    /// `ndjson` (gzip-compressed) or `parquet`.
    pub format: String,
    pub period: Period,
    pub created_at: i64,
    pub created_by: String,
    /// The start (UTC milliseconds) of the first window not exported yet.
    pub next_window: i64,
    /// The last seq the windows exported so far cover; the next window starts after it.
    pub last_seq: u64,
    pub windows_done: u64,
    pub last_exported_at: Option<i64>,
    /// The last failure, cleared by the next success.
    pub last_error: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
}

/// A change to jobs or schedules. The audited ones (a job or schedule created, a schedule deleted) are
/// stored with their event in one transaction; the answer says whether anything changed.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // Made and handed to the store once each; boxing buys nothing.
pub enum ExportChange {
    CreateJob(ExportJob),
    /// Takes a queued job, or a running one whose lease lapsed, for `owner` until `lease_until`; starts
    /// it again from nothing.
    ClaimJob {
        org: OrgId,
        id: String,
        owner: String,
        now: i64,
        lease_until: i64,
    },
    /// Progress of a running job still leased to `owner`, extending the lease.
    JobProgress {
        org: OrgId,
        id: String,
        owner: String,
        events_written: u64,
        lease_until: i64,
    },
    /// Ends a job still leased to `owner`: succeeded with its file, or failed with the reason.
    FinishJob {
        org: OrgId,
        id: String,
        owner: String,
        status: JobStatus,
        at: i64,
        events_written: u64,
        file: Option<String>,
        bytes: Option<u64>,
        error: Option<String>,
    },
    /// Forgets a finished job (its file is gone).
    DeleteJob {
        org: OrgId,
        id: String,
    },
    CreateSchedule(ExportSchedule),
    DeleteSchedule {
        org: OrgId,
        id: String,
    },
    /// Takes the schedule for `owner` until `lease_until`, when it is free, its lease lapsed, or it is
    /// `owner`'s already.
    ClaimSchedule {
        org: OrgId,
        id: String,
        owner: String,
        now: i64,
        lease_until: i64,
    },
    /// Records the window starting at `window` as exported, up to `last_seq`, when it is still the
    /// schedule's next window and `owner` still holds the schedule: the compare-and-set that makes each
    /// window recorded once.
    RecordWindow {
        org: OrgId,
        id: String,
        owner: String,
        window: i64,
        next_window: i64,
        last_seq: u64,
        at: i64,
    },
    /// Notes why the schedule's next window failed; it is tried again.
    ScheduleFailed {
        org: OrgId,
        id: String,
        error: String,
    },
}

impl ExportChange {
    /// The organisation the change belongs to.
    pub fn org(&self) -> &OrgId {
        match self {
            ExportChange::CreateJob(job) => &job.org,
            ExportChange::CreateSchedule(schedule) => &schedule.org,
            ExportChange::ClaimJob { org, .. }
            | ExportChange::JobProgress { org, .. }
            | ExportChange::FinishJob { org, .. }
            | ExportChange::DeleteJob { org, .. }
            | ExportChange::DeleteSchedule { org, .. }
            | ExportChange::ClaimSchedule { org, .. }
            | ExportChange::RecordWindow { org, .. }
            | ExportChange::ScheduleFailed { org, .. } => org,
        }
    }
}
