//! `trailkeep-fuzz`: long fuzz runs outside CI, replaying saved inputs, and writing the seed corpus.
//!
//! ```text
//! trailkeep-fuzz run <target|all> [--seconds N | --iterations N] [--seed N]
//! trailkeep-fuzz replay <target> FILE...
//! trailkeep-fuzz seed-corpus
//! ```
//!
//! A run reads `fuzz/corpus/<target>/`, adds to it every input that behaved newly, and saves crashing or
//! hanging inputs under `fuzz/artifacts/<target>/`; it exits 1 when it found any.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use trailkeep_fuzz::engine::{input_name, read_corpus, show};
use trailkeep_fuzz::{Budget, Options, Target, all, by_name, replay, run};

#[derive(Parser)]
#[command(about = "Fuzzes Trailkeep's parsers of untrusted input")]
struct Cli {
    /// The fuzz directory holding `corpus/` and `artifacts/`.
    #[arg(long, default_value = "fuzz", global = true)]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fuzzes one target, or each in turn with `all`.
    Run {
        /// event, query, bundle, checkpoint or all.
        target: String,
        /// How long to fuzz each target.
        #[arg(long, default_value_t = 60, conflicts_with = "iterations")]
        seconds: u64,
        /// Runs exactly this many inputs per target instead (repeatable for a given seed).
        #[arg(long)]
        iterations: Option<u64>,
        /// The seed of the run's random choices; printed so a run can be repeated.
        #[arg(long)]
        seed: Option<u64>,
        /// Leaves the corpus as it is.
        #[arg(long)]
        no_grow: bool,
    },
    /// Runs a target on saved inputs and says what each did.
    Replay { target: String, files: Vec<PathBuf> },
    /// Writes the built-in seeds of every target into the corpus.
    SeedCorpus,
}

fn targets(name: &str) -> Result<Vec<&'static dyn Target>, String> {
    if name == "all" {
        return Ok(all());
    }
    let names: Vec<_> = all().iter().map(|t| t.name()).collect();
    by_name(name)
        .map(|t| vec![t])
        .ok_or_else(|| format!("unknown target `{name}`; the targets are {}", names.join(", ")))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run_cli(cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run_cli(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Run { target, seconds, iterations, seed, no_grow } => {
            let seed = seed.unwrap_or_else(|| rand::random::<u32>() as u64);
            let budget = iterations.map_or(Budget::Time(Duration::from_secs(seconds)), Budget::Iterations);
            let mut failed = false;
            for target in targets(&target)? {
                let mut opts = Options::new(seed, budget);
                opts.corpus_dir = Some(cli.dir.join("corpus").join(target.name()));
                opts.grow_corpus = !no_grow;
                opts.artifacts_dir = Some(cli.dir.join("artifacts").join(target.name()));
                println!("fuzz {}: seed {seed}, {:?}", target.name(), budget);
                let stats = run(target, &opts);
                println!(
                    "fuzz {}: {} execs in {:.1?} ({:.0}/s), corpus {} (+{}), {} behaviours, {} crashes",
                    stats.target,
                    stats.execs,
                    stats.elapsed,
                    stats.execs_per_second(),
                    stats.corpus,
                    stats.added,
                    stats.behaviours,
                    stats.crashes.len()
                );
                for crash in &stats.crashes {
                    failed = true;
                    println!("\nCRASH at iteration {}: {}", crash.iteration, crash.message);
                    println!("input: {}", show(&crash.input, 2000));
                    if let Some(path) = &crash.saved {
                        println!(
                            "saved: {}; replay: trailkeep-fuzz replay {} {}",
                            path.display(),
                            stats.target,
                            path.display()
                        );
                    }
                }
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Command::Replay { target, files } => {
            let target = by_name(&target).ok_or_else(|| format!("unknown target `{target}`"))?;
            let mut failed = false;
            for file in files {
                let input = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                match replay(target, &input) {
                    Ok(outcome) => println!("{}: ok ({outcome})", file.display()),
                    Err(panic) => {
                        failed = true;
                        println!("{}: CRASH {panic}", file.display());
                    }
                }
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Command::SeedCorpus => {
            for target in all() {
                let dir = cli.dir.join("corpus").join(target.name());
                std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let existing = read_corpus(&dir);
                let mut written = 0;
                for seed in target.seeds().into_iter().filter(|s| !existing.contains(s)) {
                    let path = dir.join(format!("seed-{}", input_name(&seed)));
                    std::fs::write(&path, &seed).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    written += 1;
                }
                println!("{}: {written} seeds written to {}", target.name(), dir.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
