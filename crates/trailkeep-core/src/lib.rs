//! Trailkeep's domain: what an audit event is, how raw input becomes a valid event, how actions and
//! action patterns are spelled, the query language that every reader speaks, and the integrity
//! primitives — RFC 9162 Merkle trees with their proofs, and signed checkpoints.
//!
//! This crate performs no I/O. It knows nothing of HTTP, SQL or the async runtime, so that every rule
//! here can be tested in isolation and reused by the server, the CLI and the stores alike.

pub mod action;
pub mod bundle;
pub mod checkpoint;
pub mod cursor;
pub mod event;
pub mod filter;
pub mod ids;
pub mod leaf;
pub mod merkle;
mod object;
pub mod plans;
pub mod query;
pub mod time;
pub mod validate;

pub use action::{Action, ActionError, ActionPattern};
pub use event::{Actor, ActorType, AiRecord, AiSecurity, AiUsage, Change, Context, Event, NewEvent, Outcome, Target};
pub use filter::{Filter, Predicate, RangeField, Term};
pub use ids::{OrgId, ProjectId};
pub use validate::{Limits, ValidationError};
