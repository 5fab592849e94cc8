//! `trailkeep export`: downloads an organisation's events into a file — as CSV, JSON, NDJSON or Parquet
//! (`--format`, from `GET /v1/export`), or as a self-proving bundle (`--verifiable`, from
//! `GET /v1/bundle`) — with the filters of `GET /v1/events`, showing progress as it goes. The file is
//! written as `FILE.partial` and renamed only once everything has arrived, so a file under the asked
//! name is always complete. With `--job` the export runs on the service as an export job
//! (`POST /v1/exports`): the command follows its progress, then downloads the file it wrote.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use trailkeep_client::{ClientError, encode};
use trailkeep_core::checkpoint::Checkpoint;

use crate::Remote;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Flattened columns for spreadsheets; cut at the service's row limit (50,000 by default).
    Csv,
    /// One JSON array of complete events.
    Json,
    /// One complete event per line.
    Ndjson,
    /// Typed columns for data warehouses (BigQuery, Snowflake…).
    Parquet,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Parquet => "parquet",
        }
    }
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("kind").required(true).args(["format", "verifiable"])))]
pub struct ExportArgs {
    #[command(flatten)]
    remote: Remote,
    /// The file format; the organisation's plan decides which are allowed.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write a self-proving bundle instead: the events' exact bytes, their receipts, the signed checkpoint
    /// and the proofs that `trailkeep verify` checks offline.
    #[arg(long, conflicts_with = "format")]
    verifiable: bool,
    /// The organisation (needed with a platform key).
    #[arg(long)]
    org: Option<String>,
    /// Export only matching events, `name=value` with the parameters of `GET /v1/events` (repeatable).
    /// A filtered bundle proves each event authentic, not that none is missing.
    #[arg(long = "filter", value_name = "NAME=VALUE")]
    filters: Vec<String>,
    /// Export only events matching this query (see docs/query-language.md); like --filter.
    #[arg(long, short = 'q')]
    query: Option<String>,
    /// Oldest first (the default is newest first).
    #[arg(long, requires = "format")]
    asc: bool,
    /// CSV: include AI prompts and responses, which are left out by default (the organisation's owners and
    /// admins only).
    #[arg(long, requires = "format")]
    include_ai_text: bool,
    /// Bundle: the first seq of the range (default 1).
    #[arg(long, requires = "verifiable")]
    from_seq: Option<u64>,
    /// Bundle: the last seq of the range (default: the newest checkpoint's size).
    #[arg(long, requires = "verifiable")]
    to_seq: Option<u64>,
    /// Bundle: prove against the checkpoint of exactly this many events instead of the newest.
    #[arg(long, requires = "verifiable")]
    tree_size: Option<u64>,
    /// Bundle: a checkpoint kept from earlier (a signed note file); the bundle carries the proof that the
    /// log grew from it without rewriting, for `trailkeep verify --since`.
    #[arg(long, value_name = "CHECKPOINT", requires = "verifiable")]
    since: Option<PathBuf>,
    /// Run the export as a job on the service — better for large ranges: it follows the job's progress,
    /// then downloads the file.
    #[arg(long, requires = "format")]
    job: bool,
    /// Where to write; `-` for standard output.
    #[arg(long, short = 'o')]
    out: PathBuf,
}

/// The size signed by a checkpoint note kept in a file; its signature is checked by `verify`, here only
/// its size is needed.
pub fn checkpoint_in_file(path: &Path) -> anyhow::Result<(String, Checkpoint)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the checkpoint {}", path.display()))?;
    let body_end = text.rfind("\n\n").map(|i| i + 1).unwrap_or(text.len());
    let checkpoint = Checkpoint::parse_body(&text[..body_end])
        .with_context(|| format!("{} does not hold a signed checkpoint note", path.display()))?;
    Ok((text, checkpoint))
}

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let mut params: Vec<(String, String)> = Vec::new();
    if let Some(org) = &args.org {
        params.push(("organization_id".into(), org.clone()));
    }
    for filter in &args.filters {
        let (name, value) = filter
            .split_once('=')
            .with_context(|| format!("--filter `{filter}` is not NAME=VALUE, e.g. --filter action=user.*"))?;
        params.push((name.into(), value.into()));
    }
    if let Some(q) = &args.query {
        params.push(("q".into(), q.clone()));
    }
    match args.format {
        Some(format) if args.job => run_job(&args, format, params).await,
        Some(format) => run_export(&args, format, params).await,
        None => run_bundle(&args, params).await,
    }
}

fn query_string(params: &[(String, String)]) -> String {
    params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// Counts the records of a CSV as it streams by: line ends outside quoted cells (a quote inside a cell is
/// doubled, which leaves the state as it was).
#[derive(Default)]
struct CsvRecords {
    in_quotes: bool,
    lines: u64,
}

impl CsvRecords {
    fn feed(&mut self, chunk: &[u8]) {
        for b in chunk {
            match b {
                b'"' => self.in_quotes = !self.in_quotes,
                b'\n' if !self.in_quotes => self.lines += 1,
                _ => {}
            }
        }
    }
}

async fn run_export(args: &ExportArgs, format: Format, mut params: Vec<(String, String)>) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    params.push(("format".into(), format.as_str().into()));
    if args.asc {
        params.push(("order".into(), "asc".into()));
    }
    if args.include_ai_text {
        params.push(("include_ai_text".into(), "true".into()));
    }
    let progress = ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
        "{spinner} exporting {msg} · {bytes} ({binary_bytes_per_sec}) · {elapsed}",
    )?);
    progress.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut csv = CsvRecords::default();
    let mut newlines = 0u64;
    let rows = |csv: &CsvRecords, newlines: u64| match format {
        // The header line is not an event.
        Format::Csv => csv.lines.saturating_sub(1),
        // `[`, then each event on a line of its own (`]` comes last, on one more).
        Format::Json | Format::Ndjson => newlines,
        Format::Parquet => 0,
    };
    let path = format!("/v1/export?{}", query_string(&params));
    let downloaded = download_to(
        &client,
        &path,
        &args.out,
        |chunk| {
            if format == Format::Csv {
                csv.feed(chunk);
            } else {
                newlines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            }
            progress.inc(chunk.len() as u64);
            if format != Format::Parquet {
                progress.set_message(format!("{} events", rows(&csv, newlines)));
            }
        },
        |_| Ok(()),
    )
    .await;
    progress.finish_and_clear();
    let (received, last_line) = downloaded.map_err(|e| explain(e, &client, format))?;
    let truncated = format == Format::Csv && last_line.starts_with("# truncated at");
    let count = match format {
        Format::Parquet => String::new(),
        Format::Json => format!("{} events, ", newlines.saturating_sub(2)),
        _ => format!("{} events, ", rows(&csv, newlines) - u64::from(truncated)),
    };
    let size = indicatif::HumanBytes(received);
    if args.out.as_os_str() != "-" {
        eprintln!("wrote {} ({count}{size})", args.out.display());
    }
    if truncated {
        eprintln!(
            "warning: the service cut this CSV at its row limit ({}); narrow the filters, or use --format ndjson or parquet for everything",
            last_line.trim_start_matches("# truncated at ").split(';').next().unwrap_or_default()
        );
    }
    Ok(())
}

/// `--job`: creates an export job, shows its progress while it runs, then downloads its file.
async fn run_job(args: &ExportArgs, format: Format, params: Vec<(String, String)>) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let mut filters: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
    let mut body = serde_json::json!({
        "format": format.as_str(),
        "order": if args.asc { "asc" } else { "desc" },
        "include_ai_text": args.include_ai_text,
    });
    for (name, value) in params {
        match name.as_str() {
            "organization_id" | "q" => body[name.as_str()] = value.into(),
            _ => match filters.entry(name).or_insert_with(|| serde_json::Value::Array(Vec::new())) {
                serde_json::Value::Array(values) => values.push(value.into()),
                _ => unreachable!("filters are arrays"),
            },
        }
    }
    body["filters"] = filters.into();
    let created: serde_json::Value = client
        .send_json(trailkeep_client::Method::POST, "/v1/exports", &body)
        .await
        .map_err(|e| explain(e.into(), &client, format))?;
    let id = created["id"].as_str().context("the service answered without a job id")?.to_owned();
    let org = created["organization_id"].as_str().unwrap_or_default().to_owned();
    let job_path = format!("/v1/exports/{}?organization_id={}", encode(&id), encode(&org));
    let progress = match created["progress"]["total_estimate"].as_u64() {
        Some(total) if total > 0 => ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{spinner} export job: {pos}/{len} events [{bar:30}] {per_sec} · {msg}")?
                .progress_chars("=> "),
        ),
        _ => ProgressBar::new_spinner()
            .with_style(ProgressStyle::with_template("{spinner} export job: {pos} events {per_sec} · {msg}")?),
    };
    progress.enable_steady_tick(std::time::Duration::from_millis(120));
    let job = loop {
        let job: serde_json::Value = match client.get_json(&job_path).await {
            Ok(job) => job,
            Err(e) => {
                progress.finish_and_clear();
                return Err(explain(e.into(), &client, format)
                    .context(format!("the job {id} may still run; ask again with GET {job_path}")));
            }
        };
        let written = job["progress"]["events_written"].as_u64().unwrap_or(0);
        progress.set_position(written);
        let status = job["status"].as_str().unwrap_or_default().to_owned();
        progress.set_message(status.clone());
        match status.as_str() {
            "succeeded" | "failed" => break job,
            _ => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    };
    progress.finish_and_clear();
    if job["status"] == "failed" {
        bail!(
            "the export job {id} failed ({}); run the command again, and if it fails again check the service's log",
            job["error"].as_str().unwrap_or("no reason given")
        );
    }
    let url = job["download_url"].as_str().context("the finished job has no download link")?;
    // The link's path and query, sent to the URL this command was given (the service's public URL may be
    // another name for it).
    let path = url.find("/v1/exports/").map(|i| &url[i..]).context("the download link is not a job download")?;
    let bytes = ProgressBar::new(job["bytes"].as_u64().unwrap_or(0)).with_style(
        ProgressStyle::with_template("{spinner} downloading {bytes}/{total_bytes} [{bar:30}] {binary_bytes_per_sec}")?
            .progress_chars("=> "),
    );
    let downloaded = download_to(&client, path, &args.out, |chunk| bytes.inc(chunk.len() as u64), |_| Ok(())).await;
    bytes.finish_and_clear();
    let (received, _) = downloaded.map_err(|e| {
        e.context(format!("downloading the job's file failed; run `trailkeep export --job` again (job {id})"))
    })?;
    if args.out.as_os_str() != "-" {
        eprintln!(
            "wrote {} ({} events, {})",
            args.out.display(),
            job["progress"]["events_written"].as_u64().unwrap_or(0),
            indicatif::HumanBytes(received)
        );
    }
    Ok(())
}

/// An export error with what to do about it.
fn explain(e: anyhow::Error, client: &trailkeep_client::Client, format: Format) -> anyhow::Error {
    let Some(api) = e.downcast_ref::<ClientError>() else { return e };
    let hint = match (api.status(), api.code()) {
        (Some(401), _) => "check the key (--key or TRAILKEEP_API_KEY)".to_owned(),
        (Some(403), Some("export_not_allowed")) => format!(
            "the organisation's plan does not allow {} exports: try another --format, or ask the platform to change its plan",
            format.as_str()
        ),
        (Some(403), _) => {
            "this key or role may not export this organisation's log (owners, admins and keys with events:read may)"
                .to_owned()
        }
        (Some(400), _) => match api {
            ClientError::Api { field: Some(field), .. } if field == "q" => {
                "fix the query given with -q (see docs/query-language.md)".to_owned()
            }
            ClientError::Api { field: Some(field), .. } if field == "organization_id" => {
                "name the organisation with --org".to_owned()
            }
            ClientError::Api { field: Some(field), .. } => {
                // An export job names a filter as `filters.NAME`.
                let name = field.strip_prefix("filters.").unwrap_or(field);
                format!("fix --filter {name}=… (see docs/query-language.md)")
            }
            _ => "check the filters".to_owned(),
        },
        _ if matches!(api, ClientError::Transport { .. }) => {
            format!("is the service running at {}? (--url or TRAILKEEP_URL)", client.base_url())
        }
        _ => "try again; the service logged why".to_owned(),
    };
    e.context(format!("the export failed and nothing was written; {hint}"))
}

/// Streams `path` into `out` (or standard output for `-`) through `FILE.partial`, renamed once the whole
/// body has arrived and `complete` accepts its last line; `seen` watches each chunk. Returns the bytes
/// received and the last line.
async fn download_to(
    client: &trailkeep_client::Client,
    path: &str,
    out: &Path,
    mut seen: impl FnMut(&[u8]),
    complete: impl FnOnce(&str) -> anyhow::Result<()>,
) -> anyhow::Result<(u64, String)> {
    let to_stdout = out.as_os_str() == "-";
    let partial = partial_path(out);
    let mut file: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&partial).with_context(|| {
                format!("cannot create {}; check that its directory exists and is writable", partial.display())
            })?,
        ))
    };
    let mut tail: Vec<u8> = Vec::new();
    let result = client
        .download(path, |chunk| {
            seen(chunk);
            tail.extend_from_slice(&chunk[chunk.len().saturating_sub(256)..]);
            tail.drain(..tail.len().saturating_sub(256));
            file.write_all(chunk)
        })
        .await;
    let flushed = file.flush();
    drop(file);
    let received = match (result, flushed) {
        (Ok(n), Ok(())) => n,
        (Err(e), _) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
        (_, Err(e)) => {
            let _ = std::fs::remove_file(&partial);
            return Err(anyhow::Error::from(e).context(format!("cannot write {}", partial.display())));
        }
    };
    let last_line = String::from_utf8_lossy(&tail).trim_end().rsplit('\n').next().unwrap_or_default().to_owned();
    if let Err(e) = complete(&last_line) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    if !to_stdout {
        std::fs::rename(&partial, out).with_context(|| format!("cannot create {}", out.display()))?;
    }
    Ok((received, last_line))
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = OsString::from(out.as_os_str());
    name.push(".partial");
    PathBuf::from(name)
}

async fn run_bundle(args: &ExportArgs, mut params: Vec<(String, String)>) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    for (name, value) in [("from_seq", args.from_seq), ("to_seq", args.to_seq), ("tree_size", args.tree_size)] {
        if let Some(v) = value {
            params.push((name.into(), v.to_string()));
        }
    }
    if let Some(path) = &args.since {
        params.push(("since_size".into(), checkpoint_in_file(path)?.1.size.to_string()));
    }

    // The entry count of a range is known in advance; a selection's is not.
    let selection = !args.filters.is_empty() || args.query.is_some();
    let expected = if selection {
        None
    } else {
        let size = match args.tree_size {
            Some(n) => n,
            None => client.checkpoint(args.org.as_deref()).await?["size"].as_u64().unwrap_or(0),
        };
        Some(args.to_seq.unwrap_or(size).saturating_sub(args.from_seq.unwrap_or(1).saturating_sub(1)))
    };
    let progress = match expected {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{spinner} exporting {pos}/{len} events [{bar:30}] {per_sec} eta {eta}")?
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner()
            .with_style(ProgressStyle::with_template("{spinner} exporting {pos} events {per_sec}")?),
    };

    let mut lines = 0u64;
    let result = download_to(
        &client,
        &format!("/v1/bundle?{}", query_string(&params)),
        &args.out,
        |chunk| {
            let newlines = chunk.iter().filter(|b| **b == b'\n').count() as u64;
            // The manifest and proof lines are not events.
            progress.set_position((lines + newlines).saturating_sub(2));
            lines += newlines;
        },
        |last| {
            if !last.starts_with("{\"end\":true") {
                bail!("the bundle stopped before its end line (the service logged why); try again");
            }
            Ok(())
        },
    )
    .await;
    progress.finish_and_clear();
    result.map_err(|e| e.context("the export failed; nothing was written"))?;
    if args.out.as_os_str() != "-" {
        eprintln!(
            "wrote {} ({} events); check it with `trailkeep verify {} --key KEY`",
            args.out.display(),
            lines.saturating_sub(3),
            args.out.display()
        );
    }
    Ok(())
}
