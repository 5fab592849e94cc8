//! Integration tests: the real server on loopback, driven through the client crate.

mod bundles;
mod cli;
mod crash;
mod dashboard;
mod disk;
mod exports;
mod exports_jobs;
mod exports_scheduled;
mod faults;
mod helpers;
mod hostile;
mod http;
mod ingest;
mod isolation;
mod limits;
mod malformed;
mod nodes;
mod orgs;
mod pagination;
mod proofs;
mod query;
mod retention;
mod roles;
mod sessions;
mod signing;
