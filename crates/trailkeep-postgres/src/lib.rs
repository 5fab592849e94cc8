//! Trailkeep's PostgreSQL store (issue 7, in progress): several Trailkeep nodes on one database, with the
//! same behaviour as the embedded SQLite engine.
//!
//! So far: [`testing`], the throwaway PostgreSQL cluster the engine's tests run against.
//!
//! **Boundary:** this crate is the only place (with its SQLite sibling) that speaks SQL.

#[cfg(feature = "testing")]
pub mod testing;
