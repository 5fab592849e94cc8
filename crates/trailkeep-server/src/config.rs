//! The service's configuration: defaults, then an optional `trailkeep.toml`, then `TRAILKEEP_*`
//! environment variables, then command-line flags, each overriding the one before.
//!
//! Unknown keys in the file are refused, so a typo is an error rather than a silently ignored setting,
//! and every value is checked before anything starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use trailkeep_core::plans::{ExportFormat, MAX_RETENTION_DAYS, Plan, default_plans};

use crate::limits::RateLimit;

/// The most requests a second a limit may be set to; beyond it the limiter's clock resolution shows.
const MAX_RATE: u32 = 1_000_000;
/// The largest burst a limit may allow.
const MAX_BURST: u32 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded store keeps its files.
    pub data_dir: PathBuf,
    /// The address to listen on.
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    /// Write requests that may wait for the writer before ingest answers 503.
    pub queue_capacity: usize,
    /// Connections serving reads.
    pub read_connections: usize,
    /// How far in the past `occurred_at` may lie.
    pub max_past_days: u32,
    /// How far in the future `occurred_at` may lie.
    pub max_future_hours: u32,
    /// The name this deployment signs checkpoints with, such as `audit.example.com`: the name of the
    /// signing key created on first start.
    pub deployment: String,
    /// Requests a second one API key may make; 0 turns the limit off.
    pub rate_limit_per_key: u32,
    /// Requests one API key may make at once; twice the rate when not set.
    pub rate_limit_per_key_burst: Option<u32>,
    /// Requests a second one client address may make, whatever key it sends (or none); 0 turns the
    /// limit off.
    pub rate_limit_per_ip: u32,
    /// Requests one client address may make at once; twice the rate when not set.
    pub rate_limit_per_ip_burst: Option<u32>,
    /// The URL browsers reach this service at, such as `https://audit.example.com`: the base of portal
    /// links, the origin state-changing dashboard requests must come from, and, when `https`, what makes
    /// session cookies `Secure`. Default `http://<listen>` (the address actually bound).
    pub public_url: Option<String>,
    /// How long a portal link stays valid, in seconds: at most 300.
    pub portal_link_lifetime_secs: u32,
    /// How long a dashboard session lasts, in seconds: at most 28,800 (8 hours).
    pub session_lifetime_secs: u32,
    /// The most rows a CSV export holds; a longer one ends with a line saying it was cut.
    pub export_csv_max_rows: u64,
    /// Changes to the plans (`[plans.pro]`, …): each field given replaces the default's.
    pub plans: BTreeMap<String, PlanSettings>,
    /// How often retention deletes expired events, in seconds; 0 turns the sweeper off (retention still
    /// runs on demand through `POST /v1/orgs/{org}/retention/sweep`).
    pub retention_sweep_secs: u64,
    /// Keep everything in this PostgreSQL database instead of the embedded store: the connection string
    /// (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, or `key=value` pairs) of the service role,
    /// which must not own the tables. Several nodes may share one database. `data_dir` still holds the
    /// checkpoint signing key, which every node must share. See docs/operating.md.
    pub database_url: Option<ConnectionString>,
    /// The role that owns the schema, to migrate as on start; without it the database must already be
    /// migrated (`trailkeep migrate`).
    pub database_owner_url: Option<ConnectionString>,
    /// PEM certificates to verify PostgreSQL's TLS certificate against instead of the system's trusted
    /// roots; used by connection strings with `sslmode=require`, which always verify the server.
    pub database_ca: Option<PathBuf>,
    /// Where export jobs write their files; `data_dir/exports` when not set. Nodes sharing a database
    /// should share this directory too, so any node serves any job's download.
    pub export_dir: Option<PathBuf>,
    /// How many days finished export jobs and their files are kept.
    pub export_job_retention_days: u32,
    /// Where scheduled exports go (`[export_destinations.NAME]`).
    pub export_destinations: BTreeMap<String, DestinationSettings>,
    /// How long after a window closes its scheduled export waits for late commits, in seconds.
    pub export_schedule_grace_secs: u64,
    /// How often the scheduler looks for closed windows, in seconds.
    pub export_schedule_check_secs: u64,
    /// Test-only: milliseconds added to the clock of the export scheduler, so tests can close windows
    /// without waiting a day (`TRAILKEEP_TEST_CLOCK_OFFSET_MS`; not a file setting).
    #[serde(skip)]
    pub test_clock_offset_ms: i64,
    /// Test-only: a failure to inject (`TRAILKEEP_TEST_FAULT`; not a file setting). `after_export_object`
    /// ends the process at once right after a scheduled export wrote a window's data object.
    #[serde(skip)]
    pub test_fault: Option<String>,
}

/// One destination of scheduled exports: a local directory or an S3-compatible bucket. Credentials are
/// never in the file: it names the environment variables that hold them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DestinationSettings {
    /// `dir` or `s3`.
    pub kind: String,
    /// `dir`: the directory.
    pub path: Option<PathBuf>,
    /// `s3`: the bucket.
    pub bucket: Option<String>,
    /// `s3`: the endpoint of an S3-compatible service, such as `https://s3.eu-west-1.example.com`;
    /// AWS's own when not set.
    pub endpoint: Option<String>,
    /// `s3`: the region (default `us-east-1`).
    pub region: Option<String>,
    /// The prefix of every object's name.
    pub prefix: Option<String>,
    /// `s3`: the environment variable holding the access key id.
    pub access_key_id_env: Option<String>,
    /// `s3`: the environment variable holding the secret access key.
    pub secret_access_key_env: Option<String>,
}

/// A database connection string: it may carry a password, so it never shows in logs or debug output.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ConnectionString(String);

impl ConnectionString {
    pub fn new(value: impl Into<String>) -> ConnectionString {
        ConnectionString(value.into())
    }

    /// The parsed connection settings; the error names `setting` and never repeats the string.
    pub fn parse(&self, setting: &str) -> Result<tokio_postgres::Config, ConfigError> {
        let config: tokio_postgres::Config = self.0.parse().map_err(|e| {
            ConfigError::Invalid(format!(
                "{setting} is not a PostgreSQL connection string ({e}); expected \
                 postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE or key=value pairs"
            ))
        })?;
        if config.get_user().is_none() {
            return Err(ConfigError::Invalid(format!("{setting} must name the user (role) to connect as")));
        }
        Ok(config)
    }
}

impl std::fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionString(<redacted>)")
    }
}

/// One plan's settings in the configuration file; a field left out keeps the default plan's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanSettings {
    /// How many days events are kept, counted from `occurred_at`.
    pub retention_days: Option<u32>,
    /// The export formats allowed: `csv`, `json`, `ndjson`, `parquet`, `bundle`.
    pub exports: Option<Vec<ExportFormat>>,
}

/// The default and the most rows a CSV export may hold: beyond a million rows a spreadsheet cannot open
/// the file anyway, and NDJSON or Parquet serve better.
pub const DEFAULT_EXPORT_CSV_MAX_ROWS: u64 = 50_000;
pub const MAX_EXPORT_CSV_MAX_ROWS: u64 = 1_000_000;

/// The longest a portal link may stay valid.
pub const MAX_PORTAL_LINK_LIFETIME_SECS: u32 = 300;
/// The longest a dashboard session may last.
pub const MAX_SESSION_LIFETIME_SECS: u32 = 8 * 3600;

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("trailkeep-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log_format: LogFormat::Text,
            queue_capacity: 1024,
            read_connections: 4,
            max_past_days: 400,
            max_future_hours: 24,
            deployment: "trailkeep".into(),
            // Far above what one node serves (about 5,000 one-event requests a second on the reference
            // machine, with 20,000 the target), so the defaults stop only a runaway client, never
            // normal use or the benchmark; an exposed deployment should set its own.
            rate_limit_per_key: 50_000,
            rate_limit_per_key_burst: None,
            rate_limit_per_ip: 100_000,
            rate_limit_per_ip_burst: None,
            public_url: None,
            portal_link_lifetime_secs: MAX_PORTAL_LINK_LIFETIME_SECS,
            session_lifetime_secs: MAX_SESSION_LIFETIME_SECS,
            export_csv_max_rows: DEFAULT_EXPORT_CSV_MAX_ROWS,
            plans: BTreeMap::new(),
            retention_sweep_secs: 3600,
            database_url: None,
            database_owner_url: None,
            database_ca: None,
            export_dir: None,
            export_job_retention_days: 7,
            export_destinations: BTreeMap::new(),
            export_schedule_grace_secs: 300,
            export_schedule_check_secs: 60,
            test_clock_offset_ms: 0,
            test_fault: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, overridden by `file` when given, then by `TRAILKEEP_*` variables from `env`.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError::File { path: path.to_owned(), message: e.to_string() })?
            }
            None => Config::default(),
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix("TRAILKEEP_") else { continue };
            let bad = |message: String| ConfigError::Env { name: name.clone(), message };
            match key {
                "DATA_DIR" => config.data_dir = PathBuf::from(&value),
                "LISTEN" => config.listen = value.parse().map_err(|e| bad(format!("{e}")))?,
                "LOG_FORMAT" => {
                    config.log_format = match value.as_str() {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        _ => return Err(bad("must be `text` or `json`".into())),
                    }
                }
                "QUEUE_CAPACITY" => config.queue_capacity = value.parse().map_err(|e| bad(format!("{e}")))?,
                "READ_CONNECTIONS" => config.read_connections = value.parse().map_err(|e| bad(format!("{e}")))?,
                "MAX_PAST_DAYS" => config.max_past_days = value.parse().map_err(|e| bad(format!("{e}")))?,
                "MAX_FUTURE_HOURS" => config.max_future_hours = value.parse().map_err(|e| bad(format!("{e}")))?,
                "DEPLOYMENT" => config.deployment = value,
                "RATE_LIMIT_PER_KEY" => config.rate_limit_per_key = parse_count(&value).map_err(bad)?,
                "RATE_LIMIT_PER_KEY_BURST" => config.rate_limit_per_key_burst = Some(parse_count(&value).map_err(bad)?),
                "RATE_LIMIT_PER_IP" => config.rate_limit_per_ip = parse_count(&value).map_err(bad)?,
                "RATE_LIMIT_PER_IP_BURST" => config.rate_limit_per_ip_burst = Some(parse_count(&value).map_err(bad)?),
                "PUBLIC_URL" => config.public_url = Some(value),
                "PORTAL_LINK_LIFETIME_SECS" => {
                    config.portal_link_lifetime_secs = value.trim().parse().map_err(|e| bad(format!("{e}")))?
                }
                "SESSION_LIFETIME_SECS" => {
                    config.session_lifetime_secs = value.trim().parse().map_err(|e| bad(format!("{e}")))?
                }
                "EXPORT_CSV_MAX_ROWS" => {
                    config.export_csv_max_rows = value
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("must be a whole number of rows, not `{value}`")))?
                }
                "RETENTION_SWEEP_SECS" => {
                    config.retention_sweep_secs = value
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("must be a whole number of seconds, not `{value}`")))?
                }
                "DATABASE_URL" => config.database_url = Some(ConnectionString::new(value)),
                "DATABASE_OWNER_URL" => config.database_owner_url = Some(ConnectionString::new(value)),
                "DATABASE_CA" => config.database_ca = Some(PathBuf::from(value)),
                "EXPORT_DIR" => config.export_dir = Some(PathBuf::from(&value)),
                "EXPORT_JOB_RETENTION_DAYS" => {
                    config.export_job_retention_days = value
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("must be a whole number of days, not `{value}`")))?
                }
                "EXPORT_SCHEDULE_GRACE_SECS" => {
                    config.export_schedule_grace_secs = value
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("must be a whole number of seconds, not `{value}`")))?
                }
                "EXPORT_SCHEDULE_CHECK_SECS" => {
                    config.export_schedule_check_secs = value
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("must be a whole number of seconds, not `{value}`")))?
                }
                "TEST_CLOCK_OFFSET_MS" => {
                    config.test_clock_offset_ms =
                        value.trim().parse().map_err(|_| bad(format!("must be milliseconds, not `{value}`")))?
                }
                "TEST_FAULT" => config.test_fault = Some(value),
                // Variables the CLI reads for itself (API key, server URL) are not server settings.
                _ => {}
            }
        }
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.queue_capacity == 0 {
            return Err(ConfigError::Invalid("queue_capacity must be at least 1".into()));
        }
        if self.read_connections == 0 || self.read_connections > 64 {
            return Err(ConfigError::Invalid("read_connections must be between 1 and 64".into()));
        }
        let name_ok = !self.deployment.is_empty()
            && self.deployment.len() <= 128
            && !self.deployment.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+');
        if !name_ok {
            return Err(ConfigError::Invalid(
                "deployment must be 1-128 characters without spaces, control characters or `+`, e.g. audit.example.com"
                    .into(),
            ));
        }
        if self.max_past_days == 0 {
            return Err(ConfigError::Invalid("max_past_days must be at least 1".into()));
        }
        rate_limit("rate_limit_per_key", self.rate_limit_per_key, self.rate_limit_per_key_burst)?;
        rate_limit("rate_limit_per_ip", self.rate_limit_per_ip, self.rate_limit_per_ip_burst)?;
        if !(1..=MAX_PORTAL_LINK_LIFETIME_SECS).contains(&self.portal_link_lifetime_secs) {
            return Err(ConfigError::Invalid(format!(
                "portal_link_lifetime_secs must be between 1 and {MAX_PORTAL_LINK_LIFETIME_SECS} seconds"
            )));
        }
        if !(1..=MAX_SESSION_LIFETIME_SECS).contains(&self.session_lifetime_secs) {
            return Err(ConfigError::Invalid(format!(
                "session_lifetime_secs must be between 1 and {MAX_SESSION_LIFETIME_SECS} seconds (8 hours)"
            )));
        }
        if let Some(url) = &self.public_url {
            public_origin(url)?;
        }
        if !(1..=MAX_EXPORT_CSV_MAX_ROWS).contains(&self.export_csv_max_rows) {
            return Err(ConfigError::Invalid(format!(
                "export_csv_max_rows must be between 1 and {MAX_EXPORT_CSV_MAX_ROWS}; export NDJSON or Parquet for more"
            )));
        }
        self.plans()?;
        self.postgres()?;
        if !(1..=3650).contains(&self.export_job_retention_days) {
            return Err(ConfigError::Invalid("export_job_retention_days must be between 1 and 3650".into()));
        }
        if !(1..=3600).contains(&self.export_schedule_check_secs) {
            return Err(ConfigError::Invalid("export_schedule_check_secs must be between 1 and 3600 seconds".into()));
        }
        if self.export_schedule_grace_secs > 86_400 {
            return Err(ConfigError::Invalid(
                "export_schedule_grace_secs must be at most 86400 seconds (a day)".into(),
            ));
        }
        for (name, destination) in &self.export_destinations {
            destination.check(name)?;
        }
        Ok(())
    }

    /// Where export jobs write their files.
    pub fn export_dir(&self) -> PathBuf {
        self.export_dir.clone().unwrap_or_else(|| self.data_dir.join("exports"))
    }

    /// The PostgreSQL service and owner connection settings, when the store is PostgreSQL.
    pub fn postgres(&self) -> Result<Option<(tokio_postgres::Config, Option<tokio_postgres::Config>)>, ConfigError> {
        let Some(url) = &self.database_url else {
            if self.database_owner_url.is_some() {
                return Err(ConfigError::Invalid(
                    "database_owner_url is set without database_url; set database_url to use PostgreSQL".into(),
                ));
            }
            return Ok(None);
        };
        let service = url.parse("database_url")?;
        let owner = self.database_owner_url.as_ref().map(|o| o.parse("database_owner_url")).transpose()?;
        Ok(Some((service, owner)))
    }

    /// The deployment's plans: the defaults with the configured changes applied, checked.
    pub fn plans(&self) -> Result<Vec<Plan>, ConfigError> {
        let mut plans = default_plans();
        for (name, settings) in &self.plans {
            let Some(plan) = plans.iter_mut().find(|p| &p.name == name) else {
                let known: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
                return Err(ConfigError::Invalid(format!(
                    "[plans.{name}]: organisations can be on {} only, so there is no plan `{name}` to configure",
                    known.join(", ")
                )));
            };
            if let Some(days) = settings.retention_days {
                if !(1..=MAX_RETENTION_DAYS).contains(&days) {
                    return Err(ConfigError::Invalid(format!(
                        "[plans.{name}] retention_days must be between 1 and {MAX_RETENTION_DAYS}, not {days}"
                    )));
                }
                plan.retention_days = days;
            }
            if let Some(exports) = &settings.exports {
                plan.exports = exports.clone();
            }
        }
        Ok(plans)
    }

    /// The configured public URL without a trailing slash, checked.
    pub fn public_url(&self) -> Result<Option<String>, ConfigError> {
        self.public_url.as_deref().map(public_origin).transpose()
    }

    /// The limit on each API key, or `None` when it is off.
    pub fn key_rate_limit(&self) -> Result<Option<RateLimit>, ConfigError> {
        rate_limit("rate_limit_per_key", self.rate_limit_per_key, self.rate_limit_per_key_burst)
    }

    /// The limit on each client address, or `None` when it is off.
    pub fn ip_rate_limit(&self) -> Result<Option<RateLimit>, ConfigError> {
        rate_limit("rate_limit_per_ip", self.rate_limit_per_ip, self.rate_limit_per_ip_burst)
    }

    pub fn limits(&self) -> trailkeep_core::Limits {
        trailkeep_core::Limits {
            max_past_ms: i64::from(self.max_past_days) * 86_400_000,
            max_future_ms: i64::from(self.max_future_hours) * 3_600_000,
            ..trailkeep_core::Limits::default()
        }
    }
}

/// `url` as an origin — `http` or `https`, a host, an optional port, no path beyond `/`, no query — with
/// no trailing slash.
fn public_origin(url: &str) -> Result<String, ConfigError> {
    let bad = || {
        ConfigError::Invalid(format!(
            "public_url must be an http:// or https:// origin such as https://audit.example.com, not `{url}`"
        ))
    };
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed.strip_prefix("https://").or_else(|| trimmed.strip_prefix("http://")).ok_or_else(bad)?;
    let host_ok = !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !host_ok {
        return Err(bad());
    }
    Ok(trimmed.to_ascii_lowercase())
}

/// A whole number of requests, for the rate limit variables.
fn parse_count(value: &str) -> Result<u32, String> {
    value.trim().parse().map_err(|_| format!("must be a whole number of requests, not `{value}`"))
}

/// The limit `name` sets: `per_second` requests a second (0: none) in bursts of `burst` (default twice
/// the rate).
fn rate_limit(name: &str, per_second: u32, burst: Option<u32>) -> Result<Option<RateLimit>, ConfigError> {
    if per_second > MAX_RATE {
        return Err(ConfigError::Invalid(format!(
            "{name} must be at most {MAX_RATE} requests a second (or 0 to turn the limit off), not {per_second}"
        )));
    }
    if let Some(burst) = burst
        && !(1..=MAX_BURST).contains(&burst)
    {
        return Err(ConfigError::Invalid(format!(
            "{name}_burst must be between 1 and {MAX_BURST} requests, not {burst}; to turn the limit off, set {name} = 0"
        )));
    }
    let Some(per_second) = NonZeroU32::new(per_second) else { return Ok(None) };
    const TWO: NonZeroU32 = NonZeroU32::new(2).unwrap();
    let burst = burst.and_then(NonZeroU32::new).unwrap_or(per_second.saturating_mul(TWO));
    Ok(Some(RateLimit { per_second, burst }))
}

impl DestinationSettings {
    /// Checks the settings of destination `name`: what its kind needs is there, and nothing else.
    pub fn check(&self, name: &str) -> Result<(), ConfigError> {
        let bad = |message: String| Err(ConfigError::Invalid(format!("[export_destinations.{name}] {message}")));
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return bad("the name must be 1-64 letters, digits, `-` or `_`".into());
        }
        if let Some(prefix) = &self.prefix
            && (prefix.split('/').any(|part| part == ".." || part == ".") || prefix.chars().any(char::is_control))
        {
            return bad("prefix must be a plain path such as `trailkeep/exports`".into());
        }
        match self.kind.as_str() {
            "dir" => {
                if self.path.is_none() {
                    return bad("a `dir` destination needs path".into());
                }
                if self.bucket.is_some() || self.endpoint.is_some() || self.access_key_id_env.is_some() {
                    return bad("a `dir` destination takes path and prefix only".into());
                }
            }
            "s3" => {
                if self.bucket.as_deref().is_none_or(str::is_empty) {
                    return bad("an `s3` destination needs bucket".into());
                }
                if self.path.is_some() {
                    return bad("an `s3` destination takes no path; use prefix".into());
                }
                if self.access_key_id_env.is_some() != self.secret_access_key_env.is_some() {
                    return bad("give both access_key_id_env and secret_access_key_env, or neither".into());
                }
            }
            other => return bad(format!("kind must be `dir` or `s3`, not `{other}`")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_sources_override_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trailkeep.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nqueue_capacity = 7\n").unwrap();
        let env = [("TRAILKEEP_QUEUE_CAPACITY".to_string(), "9".to_string()), ("HOME".into(), "/x".into())];
        let config = Config::load(Some(&file), env).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.queue_capacity, 9);
        assert_eq!(config.data_dir, PathBuf::from("trailkeep-data"));
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trailkeep.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::load(Some(&file), []).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
        let err = Config::load(None, [("TRAILKEEP_LISTEN".into(), "nowhere".into())]).unwrap_err();
        assert!(err.to_string().contains("TRAILKEEP_LISTEN"));
        let config = Config { queue_capacity: 0, ..Config::default() };
        assert!(config.validate().is_err());
    }

    #[test]
    fn rate_limits_come_from_the_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trailkeep.toml");
        std::fs::write(&file, "rate_limit_per_key = 5\nrate_limit_per_key_burst = 7\nrate_limit_per_ip = 9\n").unwrap();
        let env = [("TRAILKEEP_RATE_LIMIT_PER_IP_BURST".to_string(), "11".to_string())];
        let config = Config::load(Some(&file), env).unwrap();
        config.validate().unwrap();
        let key = config.key_rate_limit().unwrap().unwrap();
        assert_eq!((key.per_second.get(), key.burst.get()), (5, 7));
        let ip = config.ip_rate_limit().unwrap().unwrap();
        assert_eq!((ip.per_second.get(), ip.burst.get()), (9, 11));

        let env = [("TRAILKEEP_RATE_LIMIT_PER_KEY".to_string(), "0".to_string())];
        let config = Config::load(Some(&file), env).unwrap();
        assert_eq!(config.key_rate_limit().unwrap(), None, "0 turns the limit off");
    }

    #[test]
    fn session_settings_are_bounded_and_the_public_url_is_an_origin() {
        let config = Config::load(
            None,
            [
                ("TRAILKEEP_PUBLIC_URL".to_string(), "https://Audit.Example.com/".to_string()),
                ("TRAILKEEP_PORTAL_LINK_LIFETIME_SECS".into(), "60".into()),
                ("TRAILKEEP_SESSION_LIFETIME_SECS".into(), "3600".into()),
            ],
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.public_url().unwrap().as_deref(), Some("https://audit.example.com"));
        assert_eq!((config.portal_link_lifetime_secs, config.session_lifetime_secs), (60, 3600));
        for bad in [
            Config { portal_link_lifetime_secs: 301, ..Config::default() },
            Config { portal_link_lifetime_secs: 0, ..Config::default() },
            Config { session_lifetime_secs: 8 * 3600 + 1, ..Config::default() },
            Config { public_url: Some("ftp://x".into()), ..Config::default() },
            Config { public_url: Some("https://x.example/path".into()), ..Config::default() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn plans_and_the_csv_row_limit_come_from_the_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trailkeep.toml");
        std::fs::write(
            &file,
            "export_csv_max_rows = 10\n[plans.pro]\nexports = [\"csv\", \"ndjson\"]\n[plans.free]\nretention_days = 3\n",
        )
        .unwrap();
        let config = Config::load(Some(&file), []).unwrap();
        config.validate().unwrap();
        assert_eq!(config.export_csv_max_rows, 10);
        let plans = config.plans().unwrap();
        let plan = |name: &str| plans.iter().find(|p| p.name == name).unwrap().clone();
        assert_eq!(plan("pro").exports, vec![ExportFormat::Csv, ExportFormat::Ndjson]);
        assert_eq!(plan("pro").retention_days, 30, "a field left out keeps the default");
        assert_eq!((plan("free").retention_days, plan("free").exports.len()), (3, 0));
        assert_eq!(plan("enterprise"), default_plans()[2]);

        let env = [("TRAILKEEP_EXPORT_CSV_MAX_ROWS".to_string(), "25".to_string())];
        assert_eq!(Config::load(Some(&file), env).unwrap().export_csv_max_rows, 25);
        assert_eq!(Config::default().export_csv_max_rows, 50_000);
    }

    #[test]
    fn unknown_plans_formats_and_bad_limits_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trailkeep.toml");
        for (text, expected) in [
            ("[plans.gold]\nexports = [\"csv\"]\n", "plans.gold"),
            ("[plans.pro]\nexports = [\"xlsx\"]\n", "xlsx"),
            ("[plans.pro]\nretention = 3\n", "retention"),
            ("[plans.pro]\nretention_days = 0\n", "retention_days"),
            ("export_csv_max_rows = 0\n", "export_csv_max_rows"),
        ] {
            std::fs::write(&file, text).unwrap();
            let err = Config::load(Some(&file), []).and_then(|c| c.validate()).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let err = Config::load(None, [("TRAILKEEP_EXPORT_CSV_MAX_ROWS".into(), "lots".into())]).unwrap_err();
        assert!(err.to_string().contains("TRAILKEEP_EXPORT_CSV_MAX_ROWS"), "{err}");
    }

    #[test]
    fn the_database_comes_from_the_file_or_the_environment_and_its_password_never_shows() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trailkeep.toml");
        std::fs::write(&file, "database_url = \"postgres://svc:s3cret@db.internal:6543/audit\"\n").unwrap();
        let config = Config::load(Some(&file), []).unwrap();
        config.validate().unwrap();
        let (service, owner) = config.postgres().unwrap().expect("PostgreSQL is configured");
        assert_eq!(
            (service.get_user(), service.get_dbname(), service.get_ports()),
            (Some("svc"), Some("audit"), &[6543][..])
        );
        assert!(owner.is_none());
        assert!(!format!("{config:?}").contains("s3cret"), "the password stays out of debug output");

        let env = [
            ("TRAILKEEP_DATABASE_URL".to_string(), "host=/run/pg user=svc dbname=audit".to_string()),
            ("TRAILKEEP_DATABASE_OWNER_URL".to_string(), "postgres://owner@localhost/audit".to_string()),
        ];
        let (service, owner) = Config::load(None, env).unwrap().postgres().unwrap().unwrap();
        assert_eq!(service.get_user(), Some("svc"));
        assert_eq!(owner.unwrap().get_user(), Some("owner"));
        assert!(Config::default().postgres().unwrap().is_none(), "the embedded store by default");

        for (url, owner, expected) in [
            (Some("postgres://db.internal/audit"), None, "database_url must name the user"),
            (Some("not a url at all ==="), None, "database_url is not a PostgreSQL connection string"),
            (None, Some("postgres://owner@localhost/audit"), "database_owner_url is set without database_url"),
        ] {
            let config = Config {
                database_url: url.map(ConnectionString::new),
                database_owner_url: owner.map(ConnectionString::new),
                ..Config::default()
            };
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(expected), "{url:?}: {err}");
        }
    }

    #[test]
    fn a_rate_limit_burst_defaults_to_twice_the_rate() {
        let defaults = Config::default();
        defaults.validate().unwrap();
        let key = defaults.key_rate_limit().unwrap().unwrap();
        assert_eq!((key.per_second.get(), key.burst.get()), (50_000, 100_000));
        let ip = defaults.ip_rate_limit().unwrap().unwrap();
        assert_eq!((ip.per_second.get(), ip.burst.get()), (100_000, 200_000));
        let config = Config { rate_limit_per_key: 3, ..Config::default() };
        assert_eq!(config.key_rate_limit().unwrap().unwrap().burst.get(), 6);
    }

    #[test]
    fn bad_rate_limits_are_refused_with_the_setting_named() {
        let err = Config::load(None, [("TRAILKEEP_RATE_LIMIT_PER_KEY".into(), "fast".into())]).unwrap_err().to_string();
        assert!(err.contains("TRAILKEEP_RATE_LIMIT_PER_KEY") && err.contains("whole number"), "{err}");
        let err = Config::load(None, [("TRAILKEEP_RATE_LIMIT_PER_IP_BURST".into(), "-1".into())]).unwrap_err();
        assert!(err.to_string().contains("TRAILKEEP_RATE_LIMIT_PER_IP_BURST"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trailkeep.toml");
        std::fs::write(&file, "rate_limit_per_ip = -5\n").unwrap();
        let err = Config::load(Some(&file), []).unwrap_err().to_string();
        assert!(err.contains("rate_limit_per_ip"), "{err}");

        let zero_burst = Config { rate_limit_per_key_burst: Some(0), ..Config::default() };
        let err = zero_burst.validate().unwrap_err().to_string();
        assert!(err.contains("rate_limit_per_key_burst") && err.contains("rate_limit_per_key = 0"), "{err}");
        let too_fast = Config { rate_limit_per_ip: MAX_RATE + 1, ..Config::default() };
        let err = too_fast.validate().unwrap_err().to_string();
        assert!(err.contains("rate_limit_per_ip must be at most"), "{err}");
    }
}
