//! `trailkeep export --verifiable`: downloads a self-proving bundle of an organisation's events into a
//! file, showing progress; the file appears only once the whole bundle, end line included, has arrived.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use trailkeep_client::encode;
use trailkeep_core::checkpoint::Checkpoint;

use crate::Remote;

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    remote: Remote,
    /// Write a self-proving bundle: the events' exact bytes, their receipts, the signed checkpoint and
    /// the proofs that `trailkeep verify` checks offline.
    #[arg(long, required = true)]
    verifiable: bool,
    /// The organisation (needed with a platform key).
    #[arg(long)]
    org: Option<String>,
    /// The first seq of the range (default 1).
    #[arg(long)]
    from_seq: Option<u64>,
    /// The last seq of the range (default: the newest checkpoint's size).
    #[arg(long)]
    to_seq: Option<u64>,
    /// Prove against the checkpoint of exactly this many events instead of the newest.
    #[arg(long)]
    tree_size: Option<u64>,
    /// A checkpoint kept from earlier (a signed note file): the bundle carries the proof that the log
    /// grew from it without rewriting, for `trailkeep verify --since`.
    #[arg(long, value_name = "CHECKPOINT")]
    since: Option<PathBuf>,
    /// Export only matching events, `name=value` with the parameters of `GET /v1/events` (repeatable).
    /// A filtered bundle proves each event authentic, not that none is missing.
    #[arg(long = "filter", value_name = "NAME=VALUE")]
    filters: Vec<String>,
    /// Export only events matching this query (see docs/query-language.md); like --filter.
    #[arg(long, short = 'q')]
    query: Option<String>,
    /// Where to write the bundle; `-` for standard output.
    #[arg(long, short = 'o')]
    out: PathBuf,
}

/// The size signed by a checkpoint note kept in a file; its signature is checked by `verify`, here only
/// its size is needed.
pub fn checkpoint_in_file(path: &std::path::Path) -> anyhow::Result<(String, Checkpoint)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the checkpoint {}", path.display()))?;
    let body_end = text.rfind("\n\n").map(|i| i + 1).unwrap_or(text.len());
    let checkpoint = Checkpoint::parse_body(&text[..body_end])
        .with_context(|| format!("{} does not hold a signed checkpoint note", path.display()))?;
    Ok((text, checkpoint))
}

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let mut params: Vec<(String, String)> = Vec::new();
    if let Some(org) = &args.org {
        params.push(("organization_id".into(), org.clone()));
    }
    for (name, value) in [("from_seq", args.from_seq), ("to_seq", args.to_seq), ("tree_size", args.tree_size)] {
        if let Some(v) = value {
            params.push((name.into(), v.to_string()));
        }
    }
    if let Some(path) = &args.since {
        params.push(("since_size".into(), checkpoint_in_file(path)?.1.size.to_string()));
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
    let query: String =
        params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&");

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

    let to_stdout = args.out.as_os_str() == "-";
    let partial = args.out.with_extension("partial");
    let mut out: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?,
        ))
    };
    let mut lines = 0u64;
    let mut tail: Vec<u8> = Vec::new();
    let result = client
        .download(&format!("/v1/bundle?{query}"), |chunk| {
            let newlines = chunk.iter().filter(|b| **b == b'\n').count() as u64;
            // The manifest and proof lines are not events.
            progress.set_position((lines + newlines).saturating_sub(2));
            lines += newlines;
            tail.extend_from_slice(&chunk[chunk.len().saturating_sub(64)..]);
            tail.drain(..tail.len().saturating_sub(64));
            out.write_all(chunk)
        })
        .await;
    let finished = result.is_ok()
        && String::from_utf8_lossy(&tail)
            .trim_end()
            .rsplit('\n')
            .next()
            .is_some_and(|l| l.starts_with("{\"end\":true"));
    let flushed = out.flush();
    drop(out);
    progress.finish_and_clear();
    if let Err(e) = result.map_err(anyhow::Error::from).and(flushed.map_err(anyhow::Error::from)) {
        let _ = std::fs::remove_file(&partial);
        return Err(e.context("the export failed; nothing was written"));
    }
    if !finished {
        let _ = std::fs::remove_file(&partial);
        bail!("the export stopped before its end line (the service logged why); nothing was written — try again");
    }
    if !to_stdout {
        std::fs::rename(&partial, &args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
        eprintln!(
            "wrote {} ({} events); check it with `trailkeep verify {} --key KEY`",
            args.out.display(),
            lines.saturating_sub(3),
            args.out.display()
        );
    }
    Ok(())
}
