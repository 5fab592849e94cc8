//! `trailkeep verify`: checks a self-proving bundle offline, or — as a witness — checks that a running
//! service's log only ever grew since the checkpoint kept in a state file.
//!
//! Exit codes: 0 verified; 1 events altered, missing, inserted or reordered; 3 a checkpoint's signature
//! does not verify with the given keys; 4 the history is inconsistent (forked, rewritten or shrunk);
//! 5 the bundle is malformed or cut short; 6 verification could not run (unreadable file, bad key,
//! service unreachable). Usage errors exit with 2.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use indicatif::{ProgressBar, ProgressStyle};
use trailkeep_client::Client;
use trailkeep_core::bundle::{BundleError, BundleKind, BundleVerifier, Report};
use trailkeep_core::checkpoint::{Checkpoint, Verifier, open_note};
use trailkeep_core::merkle::{self, Hash};

use crate::term::sanitize;

pub const EXIT_EVENTS: u8 = 1;
pub const EXIT_SIGNATURE: u8 = 3;
pub const EXIT_HISTORY: u8 = 4;
pub const EXIT_MALFORMED: u8 = 5;
pub const EXIT_CANNOT_RUN: u8 = 6;

#[derive(clap::Args)]
#[command(after_help = "Exit codes: 0 verified; 1 events altered, missing, inserted or reordered; \
    3 bad signature; 4 inconsistent history; 5 malformed or cut-short bundle; 6 could not run.")]
pub struct VerifyArgs {
    /// The bundle written by `trailkeep export --verifiable` (or `GET /v1/bundle`).
    #[arg(required_unless_present = "server", conflicts_with = "server")]
    bundle: Option<PathBuf>,
    /// The verifier key (`name+keyid+base64`), or a file of them one per line, as `trailkeep keys
    /// public --all` prints.
    #[arg(long, required = true)]
    key: String,
    /// A checkpoint kept from earlier (a signed note file): the bundle's checkpoint must extend it.
    #[arg(long, value_name = "CHECKPOINT", conflicts_with = "server")]
    since: Option<PathBuf>,
    /// Witness mode: the service to check.
    #[arg(long, requires = "state", value_name = "URL")]
    server: Option<String>,
    /// Witness mode: the file holding the last checkpoint seen; created on first use, updated after each
    /// successful check.
    #[arg(long, requires = "server", value_name = "FILE")]
    state: Option<PathBuf>,
    /// Witness mode: the organisation (needed with a platform key).
    #[arg(long, requires = "server")]
    org: Option<String>,
    /// Witness mode: the API key (any key that may read the organisation's events).
    #[arg(long, env = "TRAILKEEP_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
}

/// A failure that decides the exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }

    fn cannot_run(e: anyhow::Error) -> Failure {
        Failure::new(EXIT_CANNOT_RUN, format!("{e:#}"))
    }
}

pub async fn run(args: VerifyArgs) -> ExitCode {
    let result = match (&args.bundle, &args.server) {
        (Some(bundle), _) => verify_bundle(&args, bundle),
        (None, Some(server)) => witness(&args, server).await,
        (None, None) => Err(Failure::new(EXIT_CANNOT_RUN, "give a bundle, or --server and --state")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", sanitize(&f.message));
            ExitCode::from(f.code)
        }
    }
}

/// The trusted keys: one key given inline, or a file of keys (blank lines and `#` comments skipped).
pub fn load_keys(spec: &str) -> anyhow::Result<Vec<Verifier>> {
    let text = if Path::new(spec).is_file() {
        std::fs::read_to_string(spec).with_context(|| format!("cannot read the key file {spec}"))?
    } else {
        spec.to_owned()
    };
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| Verifier::parse(l).with_context(|| format!("`{l}` is not a verifier key (name+keyid+base64)")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!keys.is_empty(), "no verifier key given; `trailkeep keys public --all` prints them");
    Ok(keys)
}

/// A checkpoint note kept in a file, opened with the trusted keys.
fn kept_checkpoint(path: &Path, keys: &[Verifier]) -> Result<(String, Checkpoint), Failure> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the checkpoint {}", path.display()))
        .map_err(Failure::cannot_run)?;
    let (checkpoint, _) = open_note(&text, keys).map_err(|e| {
        Failure::new(EXIT_SIGNATURE, format!("the kept checkpoint {} does not verify: {e}", path.display()))
    })?;
    Ok((text, checkpoint))
}

fn verify_bundle(args: &VerifyArgs, path: &Path) -> Result<(), Failure> {
    let keys = load_keys(&args.key).map_err(Failure::cannot_run)?;
    let since = args.since.as_deref().map(|p| kept_checkpoint(p, &keys)).transpose()?.map(|(_, c)| c);
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the bundle {}", path.display()))
        .map_err(Failure::cannot_run)?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{spinner} verifying [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .map_err(|e| Failure::cannot_run(e.into()))?
            .progress_chars("=> "),
    );
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut verifier = BundleVerifier::new(keys, since);
    let mut line = Vec::with_capacity(4096);
    let (mut read, mut shown, mut number) = (0u64, 0u64, 0u64);
    let outcome = loop {
        line.clear();
        match reader.by_ref().read_until(b'\n', &mut line) {
            Ok(0) => break verifier.finish(),
            Ok(n) => {
                read += n as u64;
                number += 1;
            }
            Err(e) => break Err(BundleError::Truncated(format!("reading it failed: {e}"))),
        }
        if read - shown > 4 << 20 {
            progress.set_position(read);
            shown = read;
        }
        let text = match std::str::from_utf8(&line) {
            Ok(t) => t.strip_suffix('\n').unwrap_or(t),
            Err(_) => {
                break Err(BundleError::Malformed { line: number, message: "not UTF-8".into() });
            }
        };
        if let Err(e) = verifier.line(text) {
            break Err(e);
        }
    };
    progress.finish_and_clear();
    let report = outcome.map_err(|e| match e {
        BundleError::BadSignature(_) => Failure::new(EXIT_SIGNATURE, format!("BAD SIGNATURE: {e}")),
        other => Failure::new(EXIT_MALFORMED, format!("the bundle cannot be verified: {other}")),
    })?;
    print_report(&report, args.json);
    if report.is_valid() {
        Ok(())
    } else if report.history_broken() {
        Err(Failure::new(EXIT_HISTORY, "the log's history is inconsistent with the earlier checkpoint"))
    } else {
        Err(Failure::new(EXIT_EVENTS, "the bundle does not match the signed log"))
    }
}

fn range_text(report: &Report) -> String {
    match (report.kind, report.from_seq, report.to_seq) {
        (BundleKind::Range, Some(from), Some(to)) => format!("events {from}–{to} of {}", report.tree_size),
        _ => format!("{} selected events of {}", report.entries, report.tree_size),
    }
}

fn print_report(report: &Report, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(report).unwrap_or_default());
        return;
    }
    let org = sanitize(&report.organization_id);
    if report.is_valid() {
        let what = match report.kind {
            BundleKind::Range => "complete and unaltered",
            BundleKind::Selection => "each authentic and unaltered (a filtered selection: completeness is not proven)",
        };
        println!("VERIFIED  {org}: {}, {what}", range_text(report));
    } else {
        let count = report.problems.len() as u64 + report.unlisted_problems;
        println!("FAILED  {org}: {count} problem(s) in {}", range_text(report));
        for p in &report.problems {
            println!("  {}", sanitize(&p.to_string()));
        }
        if report.unlisted_problems > 0 {
            println!("  … and {} more", report.unlisted_problems);
        }
    }
    println!(
        "  checkpoint  {}, {} events, signed by {}",
        sanitize(&report.origin),
        report.tree_size,
        report.signed_by.join(", ")
    );
    println!("  entries     {} read, {} verified against their sealed leaves", report.entries, report.verified);
    if report.pruned > 0 {
        let unchecked = match report.pruned_unconfirmed {
            0 => String::new(),
            n => format!("; {n} by retention records outside this bundle"),
        };
        println!("  pruned      {} deleted by retention, their receipts still in the tree{unchecked}", report.pruned);
    }
    if let Some(size) = report.consistent_with {
        let verdict = if report.history_broken() { "NOT consistent" } else { "consistent" };
        println!("  history     {verdict} with the earlier checkpoint of {size} events");
    }
}

fn hash(v: &serde_json::Value) -> Option<Hash> {
    STANDARD.decode(v.as_str()?).ok()?.try_into().ok()
}

/// Witness mode: fetch the newest checkpoint, check it extends the one kept in the state file, keep it.
async fn witness(args: &VerifyArgs, server: &str) -> Result<(), Failure> {
    let state = args.state.as_deref().expect("clap requires --state with --server");
    let keys = load_keys(&args.key).map_err(Failure::cannot_run)?;
    let client = Client::new(server, args.api_key.clone()).map_err(|e| Failure::cannot_run(e.into()))?;
    let latest = client.checkpoint(args.org.as_deref()).await.map_err(|e| Failure::cannot_run(e.into()))?;
    let note =
        latest["note"].as_str().ok_or_else(|| Failure::new(EXIT_CANNOT_RUN, "the service sent no checkpoint note"))?;
    let (new, _) = open_note(note, &keys)
        .map_err(|e| Failure::new(EXIT_SIGNATURE, format!("BAD SIGNATURE on the service's checkpoint: {e}")))?;

    let old = if state.exists() { Some(kept_checkpoint(state, &keys)?.1) } else { None };
    match &old {
        None => {
            println!("first checkpoint of {}: {} events (kept in {})", sanitize(&new.origin), new.size, state.display())
        }
        Some(old) => {
            let forked = |detail: String| Failure::new(EXIT_HISTORY, format!("FORKED HISTORY: {detail}"));
            if old.origin != new.origin {
                return Err(Failure::new(
                    EXIT_CANNOT_RUN,
                    format!(
                        "{} keeps a checkpoint of `{}`, the service signs `{}`",
                        state.display(),
                        old.origin,
                        new.origin
                    ),
                ));
            }
            if old.size > new.size {
                return Err(forked(format!("the log shrank from {} to {} events", old.size, new.size)));
            }
            if old.size == new.size && old.root != new.root {
                return Err(forked(format!("two different roots were signed for {} events", old.size)));
            }
            if old.size < new.size {
                let answer = client
                    .consistency_proof(old.size, new.size, args.org.as_deref())
                    .await
                    .map_err(|e| Failure::cannot_run(e.into()))?;
                let proof: Option<Vec<Hash>> =
                    answer["proof"].as_array().map(|a| a.iter().map(hash).collect::<Option<Vec<_>>>()).unwrap_or(None);
                let proof =
                    proof.ok_or_else(|| Failure::new(EXIT_CANNOT_RUN, "the service sent no consistency proof"))?;
                if merkle::verify_consistency(old.size, new.size, &proof, &old.root, &new.root).is_err() {
                    return Err(forked(format!(
                        "the log of {} events does not extend the one of {} events kept in {}",
                        new.size,
                        old.size,
                        state.display()
                    )));
                }
            }
            println!(
                "consistent: {} grew from {} to {} events without rewriting",
                sanitize(&new.origin),
                old.size,
                new.size
            );
        }
    }
    write_atomically(state, note).map_err(Failure::cannot_run)?;
    Ok(())
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}
