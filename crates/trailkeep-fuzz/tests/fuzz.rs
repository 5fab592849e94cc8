//! The short fuzz run of the test command: every target for a fixed number of inputs from a fixed seed,
//! starting from the committed corpus, and every saved regression input replayed.
//!
//! The seed is printed with each run's figures. `TRAILKEEP_FUZZ_SEED` runs other inputs, and
//! `TRAILKEEP_FUZZ_SCALE` multiplies the number of inputs (`0.1` for a quick look, `10` for a longer run);
//! `docs/testing.md` says how to replay a failure and how to fuzz for hours outside the test command.

use std::path::PathBuf;

use trailkeep_fuzz::engine::{read_corpus, show};
use trailkeep_fuzz::{Budget, Options, all, by_name, replay, run};

/// The seed of the test command's run, unless `TRAILKEEP_FUZZ_SEED` names another.
const SEED: u64 = 20_261_123;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn seed() -> u64 {
    std::env::var("TRAILKEEP_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(SEED)
}

fn scaled(iterations: u64) -> u64 {
    let scale: f64 = std::env::var("TRAILKEEP_FUZZ_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    ((iterations as f64 * scale) as u64).max(1)
}

/// Fuzzes `name` for `iterations` inputs (the corpus included) and fails with every crash it found.
fn fuzz(name: &str, iterations: u64) {
    let target = by_name(name).expect("a known target");
    let seed = seed();
    let mut opts = Options::new(seed, Budget::Iterations(scaled(iterations)));
    opts.corpus_dir = Some(fuzz_dir().join("corpus").join(name));
    opts.artifacts_dir = Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-artifacts").join(name));
    let stats = run(target, &opts);
    eprintln!(
        "fuzz {name}: seed {seed}, {} execs in {:.1?} ({:.0}/s), corpus {} (+{} this run), {} behaviours",
        stats.execs,
        stats.elapsed,
        stats.execs_per_second(),
        stats.corpus,
        stats.added,
        stats.behaviours
    );
    assert!(stats.corpus > 0 && stats.behaviours > 1, "the {name} corpus is empty or every input behaves alike");
    let report: Vec<String> = stats
        .crashes
        .iter()
        .map(|c| {
            format!(
                "iteration {}: {}\n  input: {}\n  saved: {}",
                c.iteration,
                c.message,
                show(&c.input, 600),
                c.saved.as_ref().map_or("(not saved)".into(), |p| p.display().to_string())
            )
        })
        .collect();
    assert!(
        report.is_empty(),
        "fuzz {name} (seed {seed}) found {} crash(es); replay one with \
         `cargo run -p trailkeep-fuzz -- replay {name} FILE`, then fix it and add the input to fuzz/regressions/{name}/:\n{}",
        report.len(),
        report.join("\n")
    );
}

#[test]
fn fuzzing_event_validation_from_raw_bytes_finds_no_panic_and_no_broken_property() {
    fuzz("event", 120_000);
}

#[test]
fn fuzzing_the_query_language_and_filter_parameters_finds_no_panic_and_no_broken_property() {
    fuzz("query", 120_000);
}

#[test]
fn fuzzing_the_bundle_verifier_with_mutated_bundles_finds_no_panic_and_no_valid_forgery() {
    fuzz("bundle", 20_000);
}

#[test]
fn fuzzing_checkpoints_and_signed_notes_finds_no_panic_and_no_broken_round_trip() {
    fuzz("checkpoint", 60_000);
}

#[test]
fn every_saved_regression_and_corpus_input_runs_clean() {
    let mut replayed = 0;
    for target in all() {
        for dir in ["regressions", "corpus"] {
            for input in read_corpus(&fuzz_dir().join(dir).join(target.name())) {
                if let Err(panic) = replay(target, &input) {
                    panic!("{} {dir} input fails: {panic}\ninput: {}", target.name(), show(&input, 600));
                }
                replayed += 1;
            }
        }
    }
    assert!(replayed >= all().len() * 2, "the regressions and corpus are missing: {replayed} inputs");
}
