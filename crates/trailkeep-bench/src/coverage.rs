//! Which acknowledged appends a signed checkpoint covers yet, and how long each waited for one.
//!
//! Checkpoints are per organisation, and an organisation's tree of n leaves holds its events of `seq`
//! 1 to n, so a checkpoint covers an event once its size reaches the event's `seq`. [`Coverage`] keeps
//! every acknowledged append that no checkpoint read so far covers, with the instant it was
//! acknowledged; each checkpoint read resolves the appends it covers, and an append's delay runs from
//! its acknowledgement to the first read that found a covering checkpoint. Delays are therefore as fine
//! as the polling, [`POLL_EVERY`]. [`wait_until_covered`] polls the store itself rather than
//! `GET /v1/checkpoint`: the handler reads the same row, and a few hundred HTTP reads a second would
//! add load to the cores the measured server runs on.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use trailkeep_core::OrgId;
use trailkeep_store::Store;

use crate::stats::Samples;

/// How often the newest checkpoints are read while appends wait.
pub const POLL_EVERY: Duration = Duration::from_millis(5);

#[derive(Debug, Default)]
pub struct Coverage {
    /// Per organisation: the `seq`s no checkpoint read so far covers, with when each was acknowledged.
    waiting: HashMap<OrgId, BTreeMap<u64, Instant>>,
    /// Per organisation: the largest checkpoint read so far, and when it was first read.
    covered: HashMap<OrgId, (u64, Instant)>,
    delays: Samples,
    /// When the most recently resolved append was resolved.
    last_resolved: Option<Instant>,
}

impl Coverage {
    /// `seq` of `org` was acknowledged at `at`. A checkpoint may have been read before the
    /// acknowledgement was: the sealer can sign a commit before its 201 reaches the client. Such an
    /// append waited for nothing, and counts as a delay of zero.
    pub fn acknowledged(&mut self, org: &OrgId, seq: u64, at: Instant) {
        match self.covered.get(org) {
            Some(&(size, seen)) if size >= seq => self.resolve(at, seen),
            _ => {
                self.waiting.entry(org.clone()).or_default().insert(seq, at);
            }
        }
    }

    /// A read at `seen` found the newest checkpoint of `org` to hold `size` events.
    pub fn checkpoint(&mut self, org: &OrgId, size: u64, seen: Instant) {
        if self.covered.get(org).is_some_and(|&(known, _)| known >= size) {
            return;
        }
        self.covered.insert(org.clone(), (size, seen));
        let Some(waiting) = self.waiting.get_mut(org) else { return };
        let still = waiting.split_off(&size.saturating_add(1));
        let done = std::mem::replace(waiting, still);
        if waiting.is_empty() {
            self.waiting.remove(org);
        }
        for at in done.into_values() {
            self.resolve(at, seen);
        }
    }

    fn resolve(&mut self, acknowledged: Instant, seen: Instant) {
        self.delays.push(seen.saturating_duration_since(acknowledged));
        let resolved = seen.max(acknowledged);
        self.last_resolved = Some(self.last_resolved.map_or(resolved, |last| last.max(resolved)));
    }

    /// Appends still waiting for a checkpoint.
    pub fn waiting(&self) -> usize {
        self.waiting.values().map(BTreeMap::len).sum()
    }

    /// The organisations with appends waiting: the only ones worth reading a checkpoint of.
    pub fn waiting_orgs(&self) -> Vec<OrgId> {
        self.waiting.keys().cloned().collect()
    }

    /// From acknowledgement to covering checkpoint, one sample per resolved append.
    pub fn delays(&self) -> &Samples {
        &self.delays
    }

    /// When the last append so far was found covered.
    pub fn last_resolved(&self) -> Option<Instant> {
        self.last_resolved
    }
}

/// The organisation an event in the ingest format is for.
pub fn organisation(event: &str) -> anyhow::Result<OrgId> {
    let value: serde_json::Value = serde_json::from_str(event).context("a generated event is not JSON")?;
    let id = value["organization_id"].as_str().context("a generated event has no organization_id")?;
    OrgId::parse(id).with_context(|| format!("a generated event has an invalid organization_id `{id}`"))
}

/// Reads the newest checkpoint of every organisation with appends waiting, once.
pub async fn poll(store: &dyn Store, coverage: &mut Coverage) -> anyhow::Result<()> {
    for org in coverage.waiting_orgs() {
        let newest = store.latest_checkpoint(&org).await.context("cannot read the newest checkpoint")?;
        if let Some(checkpoint) = newest {
            coverage.checkpoint(&org, checkpoint.size, Instant::now());
        }
    }
    Ok(())
}

/// Polls until no append is waiting; `false` when some still were after `deadline`.
pub async fn wait_until_covered(
    store: &dyn Store,
    coverage: &mut Coverage,
    deadline: Duration,
) -> anyhow::Result<bool> {
    let started = Instant::now();
    loop {
        poll(store, coverage).await?;
        if coverage.waiting() == 0 {
            return Ok(true);
        }
        if started.elapsed() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(id: &str) -> OrgId {
        OrgId::parse(id).unwrap()
    }

    #[test]
    fn a_checkpoint_resolves_exactly_the_appends_it_covers() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut c = Coverage::default();
        c.acknowledged(&org("a"), 1, ms(0));
        c.acknowledged(&org("a"), 3, ms(10));
        c.acknowledged(&org("a"), 2, ms(5));
        c.acknowledged(&org("b"), 1, ms(0));
        c.checkpoint(&org("a"), 2, ms(100));
        assert_eq!(c.waiting(), 2, "seq 3 of a and seq 1 of b still wait");
        let mut delays = c.delays().clone();
        assert_eq!(delays.len(), 2);
        assert_eq!(delays.percentile_ms(0.0), 95.0);
        assert_eq!(delays.percentile_ms(100.0), 100.0);
        assert_eq!(c.last_resolved(), Some(ms(100)));
        assert_eq!(c.waiting_orgs().len(), 2);
    }

    #[test]
    fn another_organisations_checkpoint_resolves_nothing() {
        let t0 = Instant::now();
        let mut c = Coverage::default();
        c.acknowledged(&org("a"), 1, t0);
        c.checkpoint(&org("b"), 50, t0 + Duration::from_millis(10));
        assert_eq!(c.waiting(), 1);
        assert_eq!(c.waiting_orgs(), vec![org("a")]);
    }

    #[test]
    fn the_first_read_of_a_checkpoint_times_the_delay_not_later_reads() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut c = Coverage::default();
        c.checkpoint(&org("a"), 4, ms(20));
        c.checkpoint(&org("a"), 4, ms(40));
        c.checkpoint(&org("a"), 3, ms(50));
        // Acknowledged after the covering checkpoint was first read: it waited for nothing.
        c.acknowledged(&org("a"), 4, ms(30));
        // Acknowledged before: it waited until that first read.
        c.acknowledged(&org("a"), 2, ms(5));
        assert_eq!(c.waiting(), 0);
        let mut delays = c.delays().clone();
        assert_eq!(delays.percentile_ms(0.0), 0.0);
        assert_eq!(delays.percentile_ms(100.0), 15.0);
        assert_eq!(c.last_resolved(), Some(ms(30)));
    }

    #[test]
    fn a_larger_checkpoint_resolves_what_a_smaller_one_left() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut c = Coverage::default();
        for seq in 1..=10 {
            c.acknowledged(&org("a"), seq, ms(seq));
        }
        c.checkpoint(&org("a"), 5, ms(100));
        assert_eq!(c.waiting(), 5);
        c.checkpoint(&org("a"), 10, ms(600));
        assert_eq!(c.waiting(), 0);
        assert!(c.waiting_orgs().is_empty());
        let mut delays = c.delays().clone();
        assert_eq!(delays.len(), 10);
        assert_eq!(delays.percentile_ms(100.0), 594.0);
    }

    #[test]
    fn an_events_organisation_is_read_from_its_json() {
        assert_eq!(organisation(r#"{"organization_id":"acme","action":"x.y"}"#).unwrap(), org("acme"));
        assert!(organisation(r#"{"action":"x.y"}"#).is_err());
        assert!(organisation("not json").is_err());
    }
}
