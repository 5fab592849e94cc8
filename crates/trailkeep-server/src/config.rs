//! The service's configuration: defaults, then an optional `trailkeep.toml`, then `TRAILKEEP_*`
//! environment variables, then command-line flags, each overriding the one before.
//!
//! Unknown keys in the file are refused, so a typo is an error rather than a silently ignored setting,
//! and every value is checked before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
}

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
        Ok(())
    }

    pub fn limits(&self) -> trailkeep_core::Limits {
        trailkeep_core::Limits {
            max_past_ms: i64::from(self.max_past_days) * 86_400_000,
            max_future_ms: i64::from(self.max_future_hours) * 3_600_000,
            ..trailkeep_core::Limits::default()
        }
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
}
