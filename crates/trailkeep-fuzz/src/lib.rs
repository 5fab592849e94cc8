//! Fuzzing of Trailkeep's parsers of untrusted input on stable Rust, without a nightly toolchain.
//!
//! Four targets take bytes an attacker controls: `event` (a request body through JSON parsing and
//! [`trailkeep_core::validate::parse_batch`]), `query` (the query language, the filter parameters of
//! `GET /v1/events` and page cursors), `bundle` (the offline bundle verifier, fed lines of real bundles
//! and their mutations) and `checkpoint` (checkpoint bodies, signed notes and key texts). Each target
//! states its properties as assertions: a property that fails, like any other panic, is a crash.
//!
//! The [`engine`] is a seeded mutation loop of our own over a corpus that starts from real, valid inputs
//! (built in, and the files under `fuzz/corpus/<target>/`). Each round either mutates a corpus member
//! ([`mutate`]) or draws a structure-aware input from random bytes through [`arbitrary`]. Without
//! coverage instrumentation on stable, the feedback is the outcome: an input that makes a target answer
//! in a way not seen before (a new error code and field, a new set of query predicates, a new verifier
//! verdict) joins the corpus. The same seed replays the same inputs, so a failure found in CI can be
//! reproduced from the seed it prints.

pub mod engine;
pub mod json;
pub mod mutate;
pub mod targets;

pub use engine::{Budget, Crash, Options, Stats, replay, run};
pub use targets::{Target, all, by_name};
