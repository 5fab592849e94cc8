//! The fuzz loop: pick or draw an input, run the target on it, keep what behaves newly, save what crashes
//! or hangs.
//!
//! Everything random comes from one [`StdRng`] seeded with [`Options::seed`], and the targets read no
//! clock, so a run with the same seed, corpus and iteration count tries the same inputs in the same
//! order. A panic (a broken property is an assertion) is caught, its input saved under
//! `<artifacts>/crash-<hash>` and the run goes on. A hang cannot be interrupted inside a thread, so a
//! watchdog saves the input under `hang-<hash>`, prints how to replay it and aborts the process.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use crate::mutate::mutate;
use crate::targets::Target;

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// A fixed number of executions: the same work on every machine, for CI.
    Iterations(u64),
    /// Wall-clock time, for long runs.
    Time(Duration),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub budget: Budget,
    /// Where the target's corpus lives (`fuzz/corpus/<target>`); its files join the built-in seeds.
    pub corpus_dir: Option<PathBuf>,
    /// Whether inputs that behave newly are written to `corpus_dir`.
    pub grow_corpus: bool,
    /// Where crashing and hanging inputs are saved.
    pub artifacts_dir: Option<PathBuf>,
    /// The longest input tried.
    pub max_len: usize,
    /// How long one execution may take before it counts as a hang.
    pub hang_after: Duration,
}

impl Options {
    pub fn new(seed: u64, budget: Budget) -> Options {
        Options {
            seed,
            budget,
            corpus_dir: None,
            grow_corpus: false,
            artifacts_dir: None,
            max_len: 256 * 1024,
            hang_after: Duration::from_secs(10),
        }
    }
}

/// One input that made the target panic.
#[derive(Debug, Clone)]
pub struct Crash {
    pub input: Vec<u8>,
    /// The panic's message and location.
    pub message: String,
    pub iteration: u64,
    pub saved: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Stats {
    pub target: &'static str,
    pub seed: u64,
    pub execs: u64,
    pub elapsed: Duration,
    /// Corpus size at the end, built-in seeds included.
    pub corpus: usize,
    /// Inputs added to the corpus during the run.
    pub added: usize,
    /// Distinct outcome features seen.
    pub behaviours: usize,
    /// Crashes, one per distinct panic location.
    pub crashes: Vec<Crash>,
}

impl Stats {
    pub fn execs_per_second(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

thread_local! {
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once, a panic hook that records a panic's message on a fuzzing thread instead of printing
/// it, and leaves every other thread's panics to the hook that was there before.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(Cell::get) {
                LAST_PANIC.with(|last| *last.borrow_mut() = Some(info.to_string()));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `target` on `input`, catching a panic: the outcome signature, or the panic's message.
pub fn replay(target: &dyn Target, input: &[u8]) -> Result<String, String> {
    install_hook();
    CAPTURING.with(|c| c.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| target.run(input)));
    CAPTURING.with(|c| c.set(false));
    result.map_err(|_| LAST_PANIC.with(|last| last.borrow_mut().take()).unwrap_or_else(|| "a panic".into()))
}

/// The hex SHA-256 prefix that names an input's file.
pub fn input_name(input: &[u8]) -> String {
    hex::encode(&Sha256::digest(input)[..8])
}

/// The input as text for a report: escaped, and cut after `limit` bytes.
pub fn show(input: &[u8], limit: usize) -> String {
    let shown = String::from_utf8_lossy(&input[..input.len().min(limit)]).escape_debug().to_string();
    if input.len() > limit { format!("{shown}… ({} bytes)", input.len()) } else { shown }
}

fn save(dir: &Path, name: &str, input: &[u8]) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(name);
    std::fs::write(&path, input).ok()?;
    Some(path)
}

/// The files of a corpus directory, in name order so that runs are repeatable.
pub fn read_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).filter(|p| p.is_file()).collect();
    paths.sort();
    paths.into_iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// The execution in progress, watched for hangs.
struct Watch {
    current: Mutex<Option<(Instant, Vec<u8>)>>,
    done: AtomicBool,
}

fn watchdog(watch: Arc<Watch>, target: &'static str, opts: &Options) -> std::thread::JoinHandle<()> {
    let (limit, artifacts, seed) = (opts.hang_after, opts.artifacts_dir.clone(), opts.seed);
    std::thread::spawn(move || {
        while !watch.done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            let guard = watch.current.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((started, input)) = guard.as_ref()
                && started.elapsed() > limit
            {
                let saved = artifacts.as_deref().and_then(|d| save(d, &format!("hang-{}", input_name(input)), input));
                eprintln!(
                    "fuzz {target}: an input ran for more than {limit:?} (seed {seed}); saved as {}\ninput: {}",
                    saved.map_or("(not saved)".into(), |p| p.display().to_string()),
                    show(input, 2000)
                );
                std::process::abort();
            }
        }
    })
}

/// Fuzzes `target` within `opts.budget`.
pub fn run(target: &'static dyn Target, opts: &Options) -> Stats {
    install_hook();
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut corpus: Vec<Vec<u8>> = target.seeds();
    if let Some(dir) = &opts.corpus_dir {
        corpus.extend(read_corpus(dir));
    }
    let mut known: HashSet<Vec<u8>> = HashSet::new();
    corpus.retain(|input| known.insert(input.clone()));
    let mut behaviours: HashSet<String> = HashSet::new();
    let mut crashes: Vec<Crash> = Vec::new();
    let mut crash_sites: HashSet<String> = HashSet::new();
    let watch = Arc::new(Watch { current: Mutex::new(None), done: AtomicBool::new(false) });
    let dog = watchdog(watch.clone(), target.name(), opts);

    let mut execute = |input: &[u8], iteration: u64, behaviours: &mut HashSet<String>| -> Option<String> {
        *watch.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), input.to_vec()));
        let result = replay(target, input);
        *watch.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        match result {
            Ok(features) => {
                // Every feature is recorded, so no short-circuit.
                let new = features
                    .split(';')
                    .filter(|f| !f.is_empty())
                    .fold(false, |new, f| behaviours.insert(f.to_owned()) | new);
                new.then_some(features)
            }
            Err(message) => {
                // One report per place that panicked: the first line names it.
                let site = message.lines().next().unwrap_or_default().to_owned();
                if crash_sites.insert(site) {
                    let saved = opts
                        .artifacts_dir
                        .as_deref()
                        .and_then(|d| save(d, &format!("crash-{}", input_name(input)), input));
                    crashes.push(Crash { input: input.to_vec(), message, iteration, saved });
                }
                None
            }
        }
    };

    let started = Instant::now();
    let mut execs = 0u64;
    // The corpus first, so that every seed is checked and its behaviours known.
    for input in corpus.clone() {
        execute(&input, execs, &mut behaviours);
        execs += 1;
    }
    let mut added = 0;
    let mut draw = vec![0u8; 4096];
    loop {
        match opts.budget {
            Budget::Iterations(n) if execs >= n => break,
            Budget::Time(limit) if started.elapsed() >= limit => break,
            _ => {}
        }
        let input = if rng.random_range(0..5) == 0 {
            // Structure-aware: arbitrary bytes shaped by the target into a plausible input.
            let len = rng.random_range(16..draw.len());
            rng.fill(&mut draw[..len]);
            let mut u = Unstructured::new(&draw[..len]);
            match target.generate(&mut u) {
                Ok(mut generated) => {
                    if rng.random_bool(0.3) {
                        mutate(&mut rng, &mut generated, 1, target.dictionary(), &corpus, opts.max_len);
                    }
                    generated
                }
                Err(_) => continue,
            }
        } else {
            let mut input = corpus[rng.random_range(0..corpus.len())].clone();
            let count = 1 << rng.random_range(0..4);
            mutate(&mut rng, &mut input, count, target.dictionary(), &corpus, opts.max_len);
            input
        };
        let new = execute(&input, execs, &mut behaviours);
        execs += 1;
        if new.is_some() && known.insert(input.clone()) {
            if opts.grow_corpus
                && let Some(dir) = &opts.corpus_dir
            {
                save(dir, &input_name(&input), &input);
            }
            corpus.push(input);
            added += 1;
        }
    }
    watch.done.store(true, Ordering::Relaxed);
    let _ = dog.join();
    Stats {
        target: target.name(),
        seed: opts.seed,
        execs,
        elapsed: started.elapsed(),
        corpus: corpus.len(),
        added,
        behaviours: behaviours.len(),
        crashes,
    }
}
