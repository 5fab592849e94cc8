//! Retention and legal holds, as the store applies them.

use serde_json::json;
use trailkeep_core::plans::Retention;
use trailkeep_core::time::format_millis;
use trailkeep_core::{Action, Actor, ActorType, Context, NewEvent, OrgId, Outcome, Target};

/// A hold that keeps events from retention's deletion: the whole organisation's, one actor's (by id or
/// email), a time range of `occurred_at`, or an actor's within a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegalHold {
    pub id: String,
    pub org: OrgId,
    pub actor: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub reason: String,
    pub placed_at: i64,
    /// Who placed it, as the actor id the audit event names.
    pub placed_by: String,
    pub lifted_at: Option<i64>,
}

impl LegalHold {
    /// Whether the hold keeps an event of `actor_id`/`actor_email` that occurred at `occurred_at`.
    pub fn holds(&self, actor_id: Option<&str>, actor_email: Option<&str>, occurred_at: i64) -> bool {
        if self.lifted_at.is_some() {
            return false;
        }
        let actor_ok = self
            .actor
            .as_deref()
            .is_none_or(|a| actor_id == Some(a) || actor_email.is_some_and(|e| e.eq_ignore_ascii_case(a)));
        let time_ok = self.from.is_none_or(|f| occurred_at >= f) && self.to.is_none_or(|t| occurred_at < t);
        actor_ok && time_ok
    }

    /// Whether it holds everything: no actor and no range.
    pub fn is_org_wide(&self) -> bool {
        self.lifted_at.is_none() && self.actor.is_none() && self.from.is_none() && self.to.is_none()
    }
}

/// One pass of retention over an organisation.
#[derive(Debug, Clone)]
pub struct SweepRequest {
    pub org: OrgId,
    pub now: i64,
    /// The plan's days, for categories the organisation's retention does not name.
    pub plan_days: u32,
    pub retention: Retention,
    /// Only events sealed under a signed checkpoint are pruned: their receipts outlive them.
    pub max_seq: u64,
    /// The most events one pass deletes; each pass is one short write.
    pub batch: usize,
    /// Words saying which policy applied, for the audit event.
    pub policy: String,
    /// Resume after this `(occurred_at, seq)`: the `next` of the previous pass.
    pub after: Option<(i64, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    pub deleted: u64,
    /// Events that were due but kept by a legal hold.
    pub held: u64,
    /// The seq of the `retention.deleted` event, when anything was deleted.
    pub event_seq: Option<u64>,
    /// Where the next pass resumes; `None` once every candidate was seen.
    pub next: Option<(i64, u64)>,
}

/// The event recording one pass's deletion, in the organisation's own log.
pub fn deleted_event(org: &OrgId, ranges: &[(u64, u64)], count: u64, cutoff: i64, policy: &str, at: i64) -> NewEvent {
    let mut metadata = serde_json::Map::new();
    metadata.insert("count".into(), json!(count));
    metadata.insert("seq_ranges".into(), json!(ranges.iter().map(|(a, b)| [a, b]).collect::<Vec<_>>()));
    metadata.insert("first_seq".into(), json!(ranges.first().map(|r| r.0)));
    metadata.insert("last_seq".into(), json!(ranges.last().map(|r| r.1)));
    metadata.insert("cutoff".into(), json!(format_millis(cutoff)));
    metadata.insert("policy".into(), json!(policy));
    NewEvent {
        id: uuid::Uuid::now_v7(),
        client_id: false,
        organization_id: org.clone(),
        project_id: None,
        action: Action::parse("retention.deleted").expect("a valid action"),
        category: "retention".into(),
        occurred_at: at,
        actor: Some(Actor {
            actor_type: ActorType::System,
            id: Some("trailkeep".into()),
            name: Some("Trailkeep".into()),
            email: None,
        }),
        targets: vec![Target { target_type: "audit_log".into(), id: org.to_string(), name: None }],
        context: Context::default(),
        description: Some(format!("Retention deleted {count} events older than their retention ({policy})")),
        outcome: Outcome::Success,
        error: None,
        changes: Vec::new(),
        metadata,
        ai: None,
    }
}

/// Sorted seqs as inclusive ranges.
pub fn ranges(mut seqs: Vec<u64>) -> Vec<(u64, u64)> {
    seqs.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in seqs {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == s => *end = s,
            _ => out.push((s, s)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_become_inclusive_ranges() {
        assert_eq!(ranges(vec![5, 1, 2, 3, 9, 10, 7]), vec![(1, 3), (5, 5), (7, 7), (9, 10)]);
        assert!(ranges(vec![]).is_empty());
    }

    #[test]
    fn a_hold_keeps_its_actor_within_its_range_until_lifted() {
        let hold = LegalHold {
            id: "h".into(),
            org: OrgId::parse("acme").unwrap(),
            actor: Some("ada@acme.test".into()),
            from: Some(100),
            to: Some(200),
            reason: "case 1".into(),
            placed_at: 0,
            placed_by: "key".into(),
            lifted_at: None,
        };
        assert!(hold.holds(None, Some("Ada@acme.test"), 150));
        assert!(hold.holds(Some("ada@acme.test"), None, 100));
        assert!(!hold.holds(None, Some("ada@acme.test"), 200));
        assert!(!hold.holds(Some("bo"), Some("bo@acme.test"), 150));
        assert!(!LegalHold { lifted_at: Some(1), ..hold.clone() }.holds(None, Some("ada@acme.test"), 150));
        assert!(!hold.is_org_wide());
        assert!(LegalHold { actor: None, from: None, to: None, ..hold }.is_org_wide());
    }
}
