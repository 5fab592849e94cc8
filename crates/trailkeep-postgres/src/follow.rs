//! The loop shared by the tasks that follow the events (the sealer and the full-text indexer), with the
//! election that makes each of them run on one node of the deployment at a time.
//!
//! Every node starts both followers; each asks for its own session-level advisory lock
//! (`pg_try_advisory_lock`) on a connection it keeps, and only the holder works. When the holder's
//! process dies its connection closes, PostgreSQL releases the lock, and another node's follower takes it
//! at its next try (every [`ELECTION_RETRY`]). A follower that loses its connection stops working at once
//! and starts over from what the database holds, so state in memory never outlives the leadership it was
//! built under.
//!
//! A follower follows each organisation's log by `seq`, recording how far it got in `follower_heads`
//! (locked while it works). PostgreSQL's sequences are not handed out in commit order across concurrent
//! transactions and nodes, so a global position column could be passed by a row that commits later; an
//! organisation's seqs are, because they are assigned under its counter lock: every event up to the
//! counter's committed value is visible once the counter is.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

/// How often a node that is not the leader asks again.
pub const ELECTION_RETRY: Duration = Duration::from_secs(1);

/// How a follower paces itself.
pub struct Pace {
    /// The most events one step handles: a full step means a backlog, so the next starts at once.
    pub batch: usize,
    /// How long to wait for a commit notice before stepping anyway (commits of other nodes send none).
    pub idle_wait: Duration,
    /// How long to wait after a failed step.
    pub backoff: Duration,
    /// After a commit notice, how long to let further commits gather before stepping.
    pub settle: Duration,
}

/// One kind of follower.
pub trait Follower: Send {
    /// What it is, for logs.
    const WHAT: &'static str;
    /// Its advisory lock: one leader per deployment.
    const LOCK: i64;

    /// Handles up to one batch of events; how many it handled.
    fn step(
        &mut self,
        client: &mut tokio_postgres::Client,
    ) -> impl std::future::Future<Output = Result<usize, crate::FollowError>> + Send;

    /// Forgets everything held in memory, after a failure or on becoming the leader.
    fn reset(&mut self);

    /// Prepares the last pass before the store stops.
    fn finish(&mut self) {}
}

/// Waits for `d`, a commit notice (then lets commits gather for `settle`), or the stop signal.
async fn wait(wake: Option<&Notify>, d: Duration, settle: Duration, stop: &mut watch::Receiver<bool>) {
    let woken = async {
        match wake {
            Some(wake) => wake.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = woken => {
            if !settle.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(settle) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
}

/// Runs `follower` until `stop` turns true; a leader then makes a last pass before it lets go.
pub async fn follow<F: Follower>(
    mut follower: F,
    endpoint: crate::Endpoint,
    pace: Pace,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connection: Option<tokio_postgres::Client> = None;
    let mut leader = false;
    loop {
        // A store dropped without `shutdown` drops the sender too: that stops its followers as well.
        let stopping = *stop.borrow() || stop.has_changed().is_err();
        if connection.as_ref().is_none_or(|c| c.is_closed()) {
            if leader {
                tracing::warn!("the {} lost its database connection and with it the leadership", F::WHAT);
            }
            connection = None;
            leader = false;
            if stopping {
                return;
            }
            match endpoint.connect().await {
                Ok(c) => connection = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "the {} cannot connect; retrying", F::WHAT);
                    wait(None, pace.backoff, Duration::ZERO, &mut stop).await;
                    continue;
                }
            }
        }
        let client = connection.as_mut().expect("connected above");
        if !leader {
            if stopping {
                return;
            }
            match client.query_one("SELECT pg_try_advisory_lock($1)", &[&F::LOCK]).await {
                Ok(row) if row.get::<_, bool>(0) => {
                    tracing::info!("this node is now the deployment's {}", F::WHAT);
                    leader = true;
                    follower.reset();
                }
                Ok(_) => {
                    wait(None, ELECTION_RETRY, Duration::ZERO, &mut stop).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the {} cannot ask for the leadership; retrying", F::WHAT);
                    connection = None;
                    wait(None, pace.backoff, Duration::ZERO, &mut stop).await;
                    continue;
                }
            }
        }
        if stopping {
            follower.finish();
            loop {
                match follower.step(client).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "the {} stops with the store while still failing", F::WHAT);
                        break;
                    }
                }
            }
            // Dropping the connection releases the leadership.
            return;
        }
        match follower.step(client).await {
            Ok(n) if n >= pace.batch => {}
            Ok(_) => wait(Some(&wake), pace.idle_wait, pace.settle, &mut stop).await,
            Err(e) => {
                tracing::error!(error = %e, "{} failed; retrying", F::WHAT);
                follower.reset();
                wait(None, pace.backoff, Duration::ZERO, &mut stop).await;
            }
        }
    }
}
