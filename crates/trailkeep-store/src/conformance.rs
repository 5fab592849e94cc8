//! The conformance suite: the behaviour every [`Store`] must show, written once and run against each
//! engine with [`store_conformance_tests!`](crate::store_conformance_tests).
//!
//! An engine's test file provides a factory returning a fresh, empty store and a guard that keeps its
//! resources (a temporary directory, a database) alive for the test; the macro expands to one test per
//! function here. A behaviour that differs between engines is a bug in one of them.

use std::any::Any;
use std::sync::Arc;

use serde_json::Map;
use trailkeep_core::cursor::Order;
use trailkeep_core::{Action, Filter, NewEvent, OrgId, Outcome, ProjectId};
use uuid::Uuid;

use crate::retention::LegalHold;
use crate::{
    ApiKeyRecord, AppendError, AppendRequest, EventQuery, IdempotencyClaim, Permission, ReadScope, Store,
    StoredCheckpoint,
};

/// A fresh store and whatever must live as long as it.
pub type Fixture = (Arc<dyn Store>, Box<dyn Any + Send>);

/// A valid event of `org` with `action`, occurring at `at`.
pub fn new_event(org: &str, action: &str, at: i64) -> NewEvent {
    let action = Action::parse(action).expect("valid action");
    NewEvent {
        id: Uuid::now_v7(),
        client_id: false,
        organization_id: OrgId::parse(org).expect("valid org"),
        project_id: None,
        category: action.first_segment().to_owned(),
        action,
        occurred_at: at,
        actor: None,
        targets: Vec::new(),
        context: Default::default(),
        description: None,
        outcome: Outcome::Success,
        error: None,
        changes: Vec::new(),
        metadata: Map::new(),
        ai: None,
    }
}

fn org(s: &str) -> OrgId {
    OrgId::parse(s).expect("valid org")
}

fn query(limit: usize) -> EventQuery {
    EventQuery { filter: Filter::default(), order: Order::Desc, limit, after: None }
}

async fn append(store: &dyn Store, events: Vec<NewEvent>) -> Vec<u64> {
    let outcome = store.append(AppendRequest { events, idempotency: None }).await.expect("append");
    outcome.acks.iter().map(|a| a.seq).collect()
}

pub async fn append_numbers_each_organisation_from_one_without_gaps(store: &dyn Store) {
    assert_eq!(append(store, vec![new_event("a", "x.y", 1), new_event("a", "x.y", 2)]).await, vec![1, 2]);
    assert_eq!(append(store, vec![new_event("b", "x.y", 1)]).await, vec![1]);
    assert_eq!(append(store, vec![new_event("a", "x.y", 3), new_event("b", "x.y", 2)]).await, vec![3, 2]);
}

pub async fn idempotency_replays_the_same_body_and_refuses_another(store: &dyn Store) {
    let claim = IdempotencyClaim { scope: "key_1".into(), key: "k".into(), fingerprint: [1; 32] };
    let first = store
        .append(AppendRequest { events: vec![new_event("a", "x.y", 1)], idempotency: Some(claim.clone()) })
        .await
        .unwrap();
    let again = store
        .append(AppendRequest { events: vec![new_event("a", "x.y", 1)], idempotency: Some(claim.clone()) })
        .await
        .unwrap();
    assert!(!first.replayed && again.replayed);
    assert_eq!(first.acks, again.acks);
    let other = IdempotencyClaim { fingerprint: [2; 32], ..claim.clone() };
    let conflict =
        store.append(AppendRequest { events: vec![new_event("a", "x.y", 1)], idempotency: Some(other) }).await;
    assert_eq!(conflict, Err(AppendError::IdempotencyConflict));
    // The same key from another scope is another request.
    let elsewhere = IdempotencyClaim { scope: "key_2".into(), ..claim };
    let third = store
        .append(AppendRequest { events: vec![new_event("a", "x.y", 1)], idempotency: Some(elsewhere) })
        .await
        .unwrap();
    assert_eq!(third.acks[0].seq, 2);
    assert_eq!(store.list_events(&ReadScope::org(org("a")), &query(10)).await.unwrap().events.len(), 2);
}

pub async fn a_client_id_is_stored_once_per_organisation(store: &dyn Store) {
    let mut event = new_event("a", "x.y", 1);
    event.client_id = true;
    let first = store.append(AppendRequest { events: vec![event.clone()], idempotency: None }).await.unwrap();
    let again = store
        .append(AppendRequest { events: vec![event.clone(), new_event("a", "x.z", 2)], idempotency: None })
        .await
        .unwrap();
    assert_eq!(again.acks[0], first.acks[0]);
    assert_eq!(again.acks[1].seq, 2);
    let mut in_b = event;
    in_b.organization_id = org("b");
    let b = store.append(AppendRequest { events: vec![in_b], idempotency: None }).await.unwrap();
    assert_eq!(b.acks[0].seq, 1, "another organisation's log is separate");
}

pub async fn listing_is_scoped_ordered_and_paged_by_cursor(store: &dyn Store) {
    let events: Vec<NewEvent> = (0..25).map(|i| new_event("a", "x.y", 1000 + i)).collect();
    append(store, events).await;
    append(store, vec![new_event("b", "x.y", 5000)]).await;
    let scope = ReadScope::org(org("a"));
    let mut seen = Vec::new();
    let mut q = query(10);
    loop {
        let page = store.list_events(&scope, &q).await.unwrap();
        seen.extend(page.events.iter().map(|e| e.occurred_at));
        match page.next {
            Some(c) => q.after = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, (1000..1025).rev().collect::<Vec<_>>());
    let asc = store.list_events(&scope, &EventQuery { order: Order::Asc, ..query(3) }).await.unwrap();
    assert_eq!(asc.events.iter().map(|e| e.occurred_at).collect::<Vec<_>>(), vec![1000, 1001, 1002]);
}

pub async fn a_project_scope_sees_only_its_projects(store: &dyn Store) {
    let mut in_p = new_event("a", "x.y", 1);
    in_p.project_id = Some(ProjectId::parse("p").unwrap());
    let mut in_q = new_event("a", "x.y", 2);
    in_q.project_id = Some(ProjectId::parse("q").unwrap());
    let no_project = new_event("a", "x.y", 3);
    let ids: Vec<Uuid> = vec![in_p.id, in_q.id, no_project.id];
    append(store, vec![in_p, in_q, no_project]).await;
    let scope = ReadScope { org: org("a"), projects: Some(vec![ProjectId::parse("p").unwrap()]) };
    let page = store.list_events(&scope, &query(10)).await.unwrap();
    assert_eq!(page.events.iter().map(|e| e.id).collect::<Vec<_>>(), vec![ids[0]]);
    assert!(store.get_event(&scope, ids[0]).await.unwrap().is_some());
    assert!(store.get_event(&scope, ids[1]).await.unwrap().is_none());
    assert!(store.get_event(&scope, ids[2]).await.unwrap().is_none());
    assert!(store.get_event(&ReadScope::org(org("b")), ids[0]).await.unwrap().is_none());
}

pub async fn filters_select_each_matching_event_once(store: &dyn Store) {
    use trailkeep_core::{ActionPattern, Actor, ActorType, Predicate, Term};
    let mut both = new_event("a", "team.member.added", 1);
    both.actor = Some(Actor {
        actor_type: ActorType::User,
        id: Some("ann@example.com".into()),
        name: None,
        email: Some("ann@example.com".into()),
    });
    let mut other = new_event("a", "team.member.removed", 2);
    other.actor = Some(Actor { actor_type: ActorType::User, id: Some("bob".into()), name: None, email: None });
    let untouched = new_event("a", "billing.plan.changed", 3);
    append(store, vec![both, other, untouched]).await;
    let scope = ReadScope::org(org("a"));
    let run = |predicate: Predicate| EventQuery {
        filter: Filter { terms: vec![Term { negated: false, predicate }] },
        ..query(10)
    };
    let by_actor =
        store.list_events(&scope, &run(Predicate::Actor(vec!["ann@example.com".into(), "bob".into()]))).await;
    assert_eq!(by_actor.unwrap().events.iter().map(|e| e.occurred_at).collect::<Vec<_>>(), vec![2, 1]);
    let team = run(Predicate::Action(vec![ActionPattern::parse("team.*").unwrap()]));
    let by_action = store.list_events(&scope, &team).await.unwrap();
    assert_eq!(by_action.events.iter().map(|e| e.occurred_at).collect::<Vec<_>>(), vec![2, 1]);
    let none = run(Predicate::Action(vec![ActionPattern::parse("nothing.*").unwrap()]));
    assert!(store.list_events(&scope, &none).await.unwrap().events.is_empty());
}

pub async fn cost_ranges_page_in_timeline_order_whether_rare_or_common(store: &dyn Store) {
    use std::ops::Bound;
    use trailkeep_core::{AiRecord, Predicate, RangeField, Term};
    // Enough matches that an engine which treats common and rare ranges differently takes both paths.
    let events: Vec<NewEvent> = (0..6000)
        .map(|i| {
            let mut e = new_event("a", "ai.request", 10_000 + i);
            e.ai = Some(AiRecord { cost_usd: Some(if i % 1000 == 7 { 2.5 } else { 0.01 }), ..AiRecord::default() });
            e
        })
        .collect();
    append(store, events).await;
    append(store, vec![new_event("a", "x.y", 1)]).await;
    let scope = ReadScope::org(org("a"));
    let cost_at_least = |min: f64| EventQuery {
        filter: Filter {
            terms: vec![Term {
                negated: false,
                predicate: Predicate::Range {
                    field: RangeField::Cost,
                    lower: Bound::Included(min),
                    upper: Bound::Unbounded,
                },
            }],
        },
        ..query(4)
    };
    let rare = store.list_events(&scope, &cost_at_least(1.0)).await.unwrap();
    assert_eq!(rare.events.iter().map(|e| e.occurred_at).collect::<Vec<_>>(), vec![15_007, 14_007, 13_007, 12_007]);
    let next = EventQuery { after: rare.next, ..cost_at_least(1.0) };
    let rest = store.list_events(&scope, &next).await.unwrap();
    assert_eq!(rest.events.iter().map(|e| e.occurred_at).collect::<Vec<_>>(), vec![11_007, 10_007]);
    assert!(rest.next.is_none());
    let common = store.list_events(&scope, &cost_at_least(0.005)).await.unwrap();
    assert_eq!(common.events.iter().map(|e| e.occurred_at).collect::<Vec<_>>(), vec![15_999, 15_998, 15_997, 15_996]);
}

/// The verifier of the key the engine's fixture seals with: the fixture must sign with
/// `Ed25519Signer::from_seed(SEALING_KEY_NAME, &SEALING_SEED)` under the deployment name `SEALING_KEY_NAME`.
pub const SEALING_KEY_NAME: &str = "conformance.test";
pub const SEALING_SEED: [u8; 32] = [7; 32];

pub async fn appended_events_are_sealed_into_a_signed_tree(store: &dyn Store) {
    use trailkeep_core::checkpoint::{Ed25519Signer, open_note};
    use trailkeep_core::merkle::{NodeId, leaf_hash, root};
    let events: Vec<NewEvent> = (0..5).map(|i| new_event("a", "x.y", i)).collect();
    append(store, events).await;
    append(store, vec![new_event("b", "x.y", 1)]).await;
    let checkpoint = sealed(store, "a", 5).await;
    let verifier = Ed25519Signer::from_seed(SEALING_KEY_NAME, &SEALING_SEED).unwrap().verifier();
    let (body, _) = open_note(&checkpoint.note, &[verifier]).expect("signed by the fixture's key");
    assert_eq!((body.origin.as_str(), body.size, body.root), ("conformance.test/a", 5, checkpoint.root));
    assert_eq!(store.checkpoint_at(&org("a"), 5).await.unwrap(), Some(checkpoint.clone()));
    // The leaves are the events' canonical hashes, in seq order, and the root is built from them.
    let scope = ReadScope::org(org("a"));
    let stored = store.list_events(&scope, &EventQuery { order: Order::Asc, ..query(10) }).await.unwrap().events;
    let ids: Vec<NodeId> = (0..5).map(|i| NodeId::new(0, i)).chain([NodeId::new(3, 0)]).collect();
    let nodes = store.tree_nodes(&org("a"), &ids).await.unwrap();
    let leaves: Vec<_> = stored.iter().map(|e| trailkeep_core::leaf::event_leaf_hash(e).unwrap()).collect();
    assert_eq!(nodes[..5].iter().map(|n| n.unwrap()).collect::<Vec<_>>(), leaves);
    assert_eq!(nodes[5], None, "no perfect subtree of eight leaves in a tree of five");
    assert_eq!(root(&leaves), checkpoint.root);
    assert_ne!(leaves[0], leaf_hash(b""));
    assert!(store.latest_checkpoint(&org("nobody")).await.unwrap().is_none());
}

/// The checkpoint of `org` once it covers `size` events, waiting a few seconds at most.
async fn sealed(store: &dyn Store, org_name: &str, size: u64) -> StoredCheckpoint {
    for _ in 0..400 {
        if let Some(c) = store.latest_checkpoint(&org(org_name)).await.unwrap()
            && c.size >= size
        {
            assert_eq!(c.size, size, "more events sealed than were appended");
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no checkpoint of {org_name} covered {size} events within a few seconds");
}

pub async fn sealed_events_carry_receipts_and_their_payloads(store: &dyn Store) {
    let events: Vec<NewEvent> = (0..6).map(|i| new_event("a", "x.y", i)).collect();
    append(store, events).await;
    append(store, vec![new_event("b", "x.y", 1)]).await;
    sealed(store, "a", 6).await;
    sealed(store, "b", 1).await;
    let sealed_events = store.sealed_events(&org("a"), 2, 4).await.unwrap();
    assert_eq!(sealed_events.iter().map(|s| s.receipt.seq).collect::<Vec<_>>(), vec![2, 3, 4]);
    let scope = ReadScope::org(org("a"));
    for s in &sealed_events {
        let payload = s.payload.as_deref().expect("every event row is present");
        assert_eq!(trailkeep_core::leaf::json_leaf_hash(payload).unwrap(), s.receipt.leaf);
        let event = store.get_event(&scope, s.receipt.id).await.unwrap().expect("the receipt names the event");
        assert_eq!((event.seq, event.received_at), (s.receipt.seq, s.receipt.received_at));
        assert_eq!(store.receipt(&org("a"), s.receipt.id).await.unwrap(), Some(s.receipt));
    }
    // Receipts are per organisation: org b's event is not org a's, and nothing lies past the tree.
    let b = store.sealed_events(&org("b"), 1, 10).await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(store.receipt(&org("a"), b[0].receipt.id).await.unwrap(), None);
    assert!(store.sealed_events(&org("a"), 7, 100).await.unwrap().is_empty());
    assert_eq!(store.receipt(&org("a"), Uuid::nil()).await.unwrap(), None);
}

pub async fn organisations_projects_and_members_change_with_their_events(store: &dyn Store) {
    use crate::orgs::{AdminChange, AdminError, MemberRecord, MemberStatus, OrgRecord, ProjectRecord, Role};
    let audit = |org_name: &str, action: &str| new_event(org_name, action, 1);
    let acme = OrgRecord {
        id: org("acme"),
        name: "Acme".into(),
        plan: "pro".into(),
        created_at: 5,
        updated_at: 5,
        deleted_at: None,
        retention: None,
    };
    store.apply_admin(AdminChange::CreateOrg(acme.clone()), audit("acme", "organization.created")).await.unwrap();
    assert_eq!(store.get_org(&org("acme")).await.unwrap(), Some(acme.clone()));
    let again = store.apply_admin(AdminChange::CreateOrg(acme.clone()), audit("acme", "organization.created")).await;
    assert_eq!(again, Err(AdminError::Exists));
    let ghost = OrgRecord { id: org("ghost"), ..acme.clone() };
    let missing = store.apply_admin(AdminChange::UpdateOrg(ghost), audit("ghost", "organization.updated")).await;
    assert_eq!(missing, Err(AdminError::NotFound));
    // A refused change writes no event.
    assert_eq!(store.list_events(&ReadScope::org(org("acme")), &query(10)).await.unwrap().events.len(), 1);
    assert!(store.list_events(&ReadScope::org(org("ghost")), &query(10)).await.unwrap().events.is_empty());

    let project = ProjectRecord {
        org: org("acme"),
        id: ProjectId::parse("web").unwrap(),
        name: "Web".into(),
        created_at: 6,
        updated_at: 6,
    };
    store.apply_admin(AdminChange::CreateProject(project.clone()), audit("acme", "project.created")).await.unwrap();
    assert_eq!(store.list_projects(&org("acme")).await.unwrap(), vec![project.clone()]);
    let member = MemberRecord {
        org: org("acme"),
        email: "ada@acme.test".into(),
        name: Some("Ada".into()),
        role: Role::ProjectAdmin,
        projects: vec![project.id.clone()],
        status: MemberStatus::Invited,
        created_at: 7,
        updated_at: 7,
    };
    store.apply_admin(AdminChange::AddMember(member.clone()), audit("acme", "member.invited")).await.unwrap();
    assert_eq!(store.get_member(&org("acme"), "ada@acme.test").await.unwrap(), Some(member.clone()));
    let promoted = MemberRecord {
        role: Role::Owner,
        projects: vec![],
        status: MemberStatus::Active,
        updated_at: 8,
        ..member.clone()
    };
    store.apply_admin(AdminChange::UpdateMember(promoted.clone()), audit("acme", "member.role_changed")).await.unwrap();
    assert_eq!(store.list_members(&org("acme")).await.unwrap(), vec![promoted]);
    store
        .apply_admin(
            AdminChange::RemoveMember { org: org("acme"), email: member.email.clone() },
            audit("acme", "member.removed"),
        )
        .await
        .unwrap();
    assert!(store.list_members(&org("acme")).await.unwrap().is_empty());
    assert_eq!(store.list_events(&ReadScope::org(org("acme")), &query(10)).await.unwrap().events.len(), 5);

    // An organisation's first event creates it; a deleted one is no longer listed.
    append(store, vec![new_event("zeta", "x.y", 1)]).await;
    let zeta = store.get_org(&org("zeta")).await.unwrap().expect("created by its first event");
    assert_eq!((zeta.name.as_str(), zeta.plan.as_str()), ("zeta", "free"));
    let listed: Vec<String> = store.list_orgs(None, 10).await.unwrap().iter().map(|o| o.id.to_string()).collect();
    assert_eq!(listed, vec!["acme", "zeta"]);
    store
        .apply_admin(AdminChange::DeleteOrg { id: org("zeta"), at: 9 }, audit("zeta", "organization.deleted"))
        .await
        .unwrap();
    assert_eq!(store.get_org(&org("zeta")).await.unwrap().and_then(|o| o.deleted_at), Some(9));
    let listed: Vec<String> = store.list_orgs(None, 10).await.unwrap().iter().map(|o| o.id.to_string()).collect();
    assert_eq!(listed, vec!["acme"]);
    assert_eq!(store.list_orgs(Some(&org("acme")), 10).await.unwrap(), vec![]);
}

fn key(id: &str, org_id: Option<&str>, hash: u8) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        name: format!("{id} name"),
        prefix: "tk_abc".into(),
        hash: [hash; 32],
        org: org_id.map(org),
        permissions: vec![Permission::EventsRead],
        created_at: 1,
        revoked_at: None,
    }
}

pub async fn keys_are_created_found_listed_and_revoked_with_their_audit_events(store: &dyn Store) {
    store.create_api_key(key("k1", Some("a"), 1), Some(new_event("a", "api_key.created", 1))).await.unwrap();
    store.create_api_key(key("k2", None, 2), None).await.unwrap();
    assert_eq!(store.find_api_key(&[1; 32]).await.unwrap().map(|k| k.id), Some("k1".into()));
    assert_eq!(store.find_api_key(&[9; 32]).await.unwrap(), None);
    assert_eq!(store.list_api_keys(Some(&org("a"))).await.unwrap().len(), 1);
    assert_eq!(store.list_api_keys(None).await.unwrap().len(), 2);
    assert!(store.revoke_api_key("k1", 7, Some(new_event("a", "api_key.revoked", 7))).await.unwrap());
    assert!(!store.revoke_api_key("k1", 8, Some(new_event("a", "api_key.revoked", 8))).await.unwrap());
    assert_eq!(store.get_api_key("k1").await.unwrap().and_then(|k| k.revoked_at), Some(7));
    let log = store.list_events(&ReadScope::org(org("a")), &query(10)).await.unwrap().events;
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["api_key.revoked", "api_key.created"], "a failed revoke records nothing");
}

pub async fn appends_after_shutdown_fail_and_nothing_is_lost_before_it(store: &dyn Store) {
    append(store, vec![new_event("a", "x.y", 1)]).await;
    store.shutdown().await;
    let after = store.append(AppendRequest { events: vec![new_event("a", "x.y", 2)], idempotency: None }).await;
    assert!(matches!(after, Err(AppendError::Failed(_))));
}

// Portal links, sessions and operators

fn user(email: &str) -> crate::sessions::SessionUser {
    crate::sessions::SessionUser { email: email.into(), name: Some("Ada".into()) }
}

fn link(hash: u8, issued_by: &str, expires_at: i64) -> crate::sessions::PortalLinkRecord {
    crate::sessions::PortalLinkRecord {
        hash: [hash; 32],
        org: org("a"),
        user: user("ada@example.com"),
        role: crate::sessions::Role::ProjectAdmin,
        projects: vec![ProjectId::parse("p1").unwrap(), ProjectId::parse("p2").unwrap()],
        intent: crate::sessions::Intent::LogStreams,
        issued_by: issued_by.into(),
        created_at: 1_000,
        expires_at,
        used_at: None,
    }
}

fn session(hash: u8, issued_by: Option<&str>, expires_at: i64) -> crate::sessions::SessionRecord {
    crate::sessions::SessionRecord {
        hash: [hash; 32],
        id: format!("ses_{hash}"),
        user: user("ada@example.com"),
        role: crate::sessions::SessionRole::Org(crate::sessions::Role::ProjectAdmin),
        org: Some(org("a")),
        projects: vec![ProjectId::parse("p1").unwrap()],
        issued_by: issued_by.map(str::to_owned),
        member_bound: true,
        created_at: 1_000,
        expires_at,
        ended_at: None,
    }
}

async fn actions(store: &dyn Store, org_name: &str) -> Vec<String> {
    let log = store.list_events(&ReadScope::org(org(org_name)), &query(100)).await.unwrap().events;
    log.iter().rev().map(|e| e.action.to_string()).collect()
}

pub async fn a_portal_link_starts_one_session_and_none_once_used_or_expired(store: &dyn Store) {
    use crate::sessions::SessionStart;
    store.create_api_key(key("k1", Some("a"), 1), None).await.unwrap();
    store.create_portal_link(link(7, "k1", 5_000), new_event("a", "portal_link.created", 1)).await.unwrap();
    store.create_portal_link(link(8, "k1", 2_000), new_event("a", "portal_link.created", 1)).await.unwrap();
    let found = store.find_portal_link(&[7; 32]).await.unwrap().expect("the link is stored");
    assert_eq!(found, link(7, "k1", 5_000), "every field comes back as stored");
    assert_eq!(store.find_portal_link(&[9; 32]).await.unwrap(), None);

    let redeem = |hash: u8, session_hash: u8, now: i64| {
        store.start_session(
            session(session_hash, Some("k1"), now + 100),
            SessionStart::PortalLink { link: [hash; 32], now },
            new_event("a", "session.started", now),
        )
    };
    assert!(redeem(7, 70, 1_500).await.unwrap(), "an unused, unexpired link starts a session");
    assert!(!redeem(7, 71, 1_600).await.unwrap(), "a used link starts nothing");
    assert!(!redeem(8, 80, 2_000).await.unwrap(), "an expired link starts nothing");
    assert!(!redeem(9, 90, 1_000).await.unwrap(), "an unknown link starts nothing");
    assert_eq!(store.find_portal_link(&[7; 32]).await.unwrap().and_then(|l| l.used_at), Some(1_500));
    assert_eq!(store.find_portal_link(&[8; 32]).await.unwrap().and_then(|l| l.used_at), None);
    for hash in [71, 80, 90] {
        assert_eq!(store.find_session(&[hash; 32]).await.unwrap(), None, "a refused start stores no session");
    }
    let found = store.find_session(&[70; 32]).await.unwrap().expect("the session is stored");
    assert_eq!(found.session, session(70, Some("k1"), 1_600));
    assert!(!found.issuer_revoked);
    assert_eq!(
        actions(store, "a").await,
        ["portal_link.created", "portal_link.created", "session.started"],
        "refused starts record nothing"
    );
}

pub async fn a_session_ends_once_and_knows_when_its_issuing_key_is_revoked(store: &dyn Store) {
    use crate::sessions::SessionStart;
    store.create_api_key(key("k1", Some("a"), 1), None).await.unwrap();
    store
        .start_session(session(1, Some("k1"), 10_000), SessionStart::Login, new_event("a", "session.started", 1))
        .await
        .unwrap();
    store
        .start_session(session(2, Some("k1"), 10_000), SessionStart::Login, new_event("a", "session.started", 1))
        .await
        .unwrap();
    store
        .start_session(session(3, None, 10_000), SessionStart::Login, new_event("a", "session.started", 1))
        .await
        .unwrap();
    store
        .start_session(session(4, Some("gone"), 10_000), SessionStart::Login, new_event("a", "session.started", 1))
        .await
        .unwrap();

    assert!(store.end_session(&[1; 32], 2_000, Some(new_event("a", "session.ended", 2))).await.unwrap());
    assert!(!store.end_session(&[1; 32], 2_100, Some(new_event("a", "session.ended", 3))).await.unwrap());
    assert!(!store.end_session(&[2; 32], 10_000, None).await.unwrap(), "an expired session cannot end again");
    assert!(!store.end_session(&[5; 32], 2_000, None).await.unwrap());
    assert_eq!(store.find_session(&[1; 32]).await.unwrap().and_then(|s| s.session.ended_at), Some(2_000));
    assert_eq!(store.find_session(&[2; 32]).await.unwrap().and_then(|s| s.session.ended_at), None);

    let revoked = |hash: u8| async move { store.find_session(&[hash; 32]).await.unwrap().unwrap().issuer_revoked };
    assert!(!revoked(2).await && !revoked(3).await);
    assert!(revoked(4).await, "a session whose issuing key does not exist may not act");
    store.revoke_api_key("k1", 3_000, None).await.unwrap();
    assert!(revoked(2).await, "revoking the issuing key is seen at once");
    assert!(!revoked(3).await, "a sign-in session has no issuing key");
    let ended: Vec<String> = actions(store, "a").await.into_iter().filter(|a| a == "session.ended").collect();
    assert_eq!(ended.len(), 1, "only the session that ended records it");
}

pub async fn operators_are_unique_by_email_and_listed_oldest_first(store: &dyn Store) {
    use crate::sessions::OperatorRecord;
    let op = |id: &str, email: &str, at: i64| OperatorRecord {
        id: id.into(),
        email: email.into(),
        name: None,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${id}"),
        created_at: at,
    };
    assert!(
        store
            .create_operator(op("op_2", "b@example.com", 2), new_event("_platform", "operator.created", 2))
            .await
            .unwrap()
    );
    assert!(
        store
            .create_operator(op("op_1", "a@example.com", 1), new_event("_platform", "operator.created", 1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .create_operator(op("op_3", "a@example.com", 3), new_event("_platform", "operator.created", 3))
            .await
            .unwrap()
    );
    assert_eq!(store.find_operator("a@example.com").await.unwrap(), Some(op("op_1", "a@example.com", 1)));
    assert_eq!(store.find_operator("c@example.com").await.unwrap(), None);
    let ids: Vec<String> = store.list_operators().await.unwrap().into_iter().map(|o| o.id).collect();
    assert_eq!(ids, ["op_1", "op_2"]);
    assert_eq!(actions(store, "_platform").await.len(), 2, "a refused account records nothing");
}

// ---- Dashboard aggregates (issue 5) ----

pub async fn ai_totals_add_up_the_ai_requests_a_filter_selects_in_the_scope(store: &dyn Store) {
    use trailkeep_core::{AiRecord, AiUsage, Predicate, Term};
    let ai = |model: &str, usage: Option<AiUsage>, cost: Option<f64>| AiRecord {
        model: Some(model.into()),
        usage,
        cost_usd: cost,
        ..AiRecord::default()
    };
    let total = |n| Some(AiUsage { total_tokens: Some(n), ..AiUsage::default() });
    let mut first = new_event("a", "ai.request", 1);
    first.ai = Some(ai("m1", total(10), Some(0.5)));
    let mut second = new_event("a", "ai.request", 2);
    // No total given: input plus output count.
    second.ai = Some(ai(
        "m2",
        Some(AiUsage { input_tokens: Some(15), output_tokens: Some(5), total_tokens: None }),
        Some(0.25),
    ));
    second.project_id = Some(ProjectId::parse("p").unwrap());
    let mut bare = new_event("a", "ai.request", 3);
    bare.ai = Some(ai("m1", None, None));
    let not_ai = new_event("a", "team.member.added", 4);
    let mut elsewhere = new_event("b", "ai.request", 5);
    elsewhere.ai = Some(ai("m1", total(1000), Some(9.0)));
    append(store, vec![first, second, bare, not_ai, elsewhere]).await;

    let scope = ReadScope::org(org("a"));
    let all = store.ai_totals(&scope, &Filter::default()).await.unwrap();
    assert_eq!((all.requests, all.tokens), (3, 30));
    assert!((all.cost_usd - 0.75).abs() < 1e-9, "{all:?}");
    let m1 = Filter { terms: vec![Term { negated: false, predicate: Predicate::Model(vec!["m1".into()]) }] };
    let by_model = store.ai_totals(&scope, &m1).await.unwrap();
    assert_eq!((by_model.requests, by_model.tokens), (2, 10));
    let not_m1 = Filter { terms: vec![Term { negated: true, ..m1.terms[0].clone() }] };
    assert_eq!(store.ai_totals(&scope, &not_m1).await.unwrap().requests, 1, "negation leaves non-AI events out");
    let project = ReadScope { org: org("a"), projects: Some(vec![ProjectId::parse("p").unwrap()]) };
    let in_p = store.ai_totals(&project, &Filter::default()).await.unwrap();
    assert_eq!((in_p.requests, in_p.tokens), (1, 20));
    let none = store.ai_totals(&ReadScope::org(org("nobody")), &Filter::default()).await.unwrap();
    assert_eq!((none.requests, none.tokens, none.cost_usd), (0, 0, 0.0));
}

// ---- Retention and legal holds ----

const DAY: i64 = 86_400_000;
/// The clock retention passes are run at: events are placed in days before it.
const NOW: i64 = 200 * DAY;

/// A pass over `org_name` at [`NOW`] on a plan of 30 days.
fn sweep_request(
    org_name: &str,
    retention: trailkeep_core::plans::Retention,
    max_seq: u64,
    batch: usize,
    after: Option<(i64, u64)>,
) -> crate::retention::SweepRequest {
    crate::retention::SweepRequest {
        org: org(org_name),
        now: NOW,
        plan_days: 30,
        retention,
        max_seq,
        batch,
        policy: "plan pro: 30 days".into(),
        after,
    }
}

fn hold(
    org_name: &str,
    id: &str,
    actor: Option<&str>,
    range: (Option<i64>, Option<i64>),
) -> crate::retention::LegalHold {
    crate::retention::LegalHold {
        id: id.into(),
        org: org(org_name),
        actor: actor.map(str::to_owned),
        from: range.0,
        to: range.1,
        reason: format!("case {id}"),
        placed_at: NOW,
        placed_by: "key_platform".into(),
        lifted_at: None,
    }
}

async fn place(store: &dyn Store, hold: crate::retention::LegalHold) {
    let audit = new_event(hold.org.as_str(), "legal_hold.placed", NOW);
    store.apply_admin(crate::orgs::AdminChange::PlaceHold(hold), audit).await.expect("place the hold");
}

async fn lift(store: &dyn Store, org_name: &str, id: &str) {
    let change = crate::orgs::AdminChange::LiftHold { org: org(org_name), id: id.into(), at: NOW };
    store.apply_admin(change, new_event(org_name, "legal_hold.lifted", NOW)).await.expect("lift the hold");
}

fn actor(id: Option<&str>, email: Option<&str>) -> Option<trailkeep_core::Actor> {
    Some(trailkeep_core::Actor {
        actor_type: trailkeep_core::ActorType::User,
        id: id.map(str::to_owned),
        name: None,
        email: email.map(str::to_owned),
    })
}

/// The seqs of the organisation's log, oldest first.
async fn seqs(store: &dyn Store, org_name: &str) -> Vec<u64> {
    let (scope, q) = (ReadScope::org(org(org_name)), EventQuery { order: Order::Asc, ..query(1000) });
    let mut seqs: Vec<u64> = store.list_events(&scope, &q).await.unwrap().events.iter().map(|e| e.seq).collect();
    seqs.sort_unstable();
    seqs
}

pub async fn an_organisations_retention_and_legal_holds_change_with_their_events(store: &dyn Store) {
    use crate::orgs::{AdminChange, AdminError, OrgRecord};
    use trailkeep_core::plans::{CategoryRetention, Retention};
    let acme = OrgRecord {
        id: org("acme"),
        name: "Acme".into(),
        plan: "pro".into(),
        created_at: 5,
        updated_at: 5,
        deleted_at: None,
        retention: None,
    };
    store
        .apply_admin(AdminChange::CreateOrg(acme.clone()), new_event("acme", "organization.created", 1))
        .await
        .unwrap();
    let own = Retention {
        days: Some(90),
        categories: vec![
            CategoryRetention { category: "auth".into(), days: 30 },
            CategoryRetention { category: "ai.*".into(), days: 400 },
        ],
    };
    let set = |retention: Option<Retention>, org_name: &str, at: i64| {
        store.apply_admin(
            AdminChange::SetRetention { org: org(org_name), retention, at },
            new_event(org_name, "organization.retention_changed", at),
        )
    };
    set(Some(own.clone()), "acme", 6).await.unwrap();
    let stored = store.get_org(&org("acme")).await.unwrap().expect("the organisation");
    assert_eq!(stored, OrgRecord { retention: Some(own.clone()), updated_at: 6, ..acme.clone() });
    assert_eq!(store.list_orgs(None, 10).await.unwrap(), vec![stored], "listed with its own retention");
    set(None, "acme", 7).await.unwrap();
    assert_eq!(store.get_org(&org("acme")).await.unwrap().and_then(|o| o.retention), None, "following its plan again");
    assert_eq!(set(Some(own.clone()), "ghost", 8).await, Err(AdminError::NotFound));

    let all = hold("acme", "hold_1", None, (None, None));
    let ada = hold("acme", "hold_2", Some("ada@acme.test"), (Some(100), Some(200)));
    place(store, all.clone()).await;
    place(store, LegalHold { placed_at: NOW + 1, ..ada.clone() }).await;
    let ada = LegalHold { placed_at: NOW + 1, ..ada };
    let again =
        store.apply_admin(AdminChange::PlaceHold(all.clone()), new_event("acme", "legal_hold.placed", NOW)).await;
    assert_eq!(again, Err(AdminError::Exists));
    let elsewhere = hold("ghost", "hold_3", None, (None, None));
    let refused = store.apply_admin(AdminChange::PlaceHold(elsewhere), new_event("ghost", "legal_hold.placed", NOW));
    assert_eq!(refused.await, Err(AdminError::NotFound), "no hold on an organisation that does not exist");
    assert_eq!(store.list_holds(&org("acme")).await.unwrap(), vec![all.clone(), ada.clone()], "oldest first");

    let lift_change = |org_name: &str, id: &str| {
        store.apply_admin(
            AdminChange::LiftHold { org: org(org_name), id: id.into(), at: NOW + 2 },
            new_event(org_name, "legal_hold.lifted", NOW + 2),
        )
    };
    lift_change("acme", "hold_1").await.unwrap();
    assert_eq!(lift_change("acme", "hold_1").await, Err(AdminError::NotFound), "a lifted hold is not lifted again");
    assert_eq!(lift_change("acme", "hold_9").await, Err(AdminError::NotFound));
    assert_eq!(lift_change("zeta", "hold_2").await, Err(AdminError::NotFound), "another organisation's hold");
    let holds = store.list_holds(&org("acme")).await.unwrap();
    assert_eq!(holds, vec![LegalHold { lifted_at: Some(NOW + 2), ..all }, ada], "lifted holds are still listed");
    assert!(store.list_holds(&org("zeta")).await.unwrap().is_empty());
    assert!(store.list_holds(&org("ghost")).await.unwrap().is_empty());

    store
        .apply_admin(
            AdminChange::DeleteOrg { id: org("acme"), at: NOW + 3 },
            new_event("acme", "organization.deleted", NOW + 3),
        )
        .await
        .unwrap();
    assert_eq!(set(Some(own), "acme", NOW + 4).await, Err(AdminError::NotFound), "a deleted organisation");
    let late = hold("acme", "hold_4", None, (None, None));
    let refused = store.apply_admin(AdminChange::PlaceHold(late), new_event("acme", "legal_hold.placed", NOW + 4));
    assert_eq!(refused.await, Err(AdminError::NotFound));
    assert_eq!(
        actions(store, "acme").await,
        [
            "organization.created",
            "organization.retention_changed",
            "organization.retention_changed",
            "legal_hold.placed",
            "legal_hold.placed",
            "legal_hold.lifted",
            "organization.deleted",
        ],
        "each change that happened records one event, a refused one none"
    );
    assert!(actions(store, "ghost").await.is_empty() && actions(store, "zeta").await.is_empty());
}

pub async fn a_sweep_deletes_only_sealed_events_past_their_retention_and_records_it(store: &dyn Store) {
    use trailkeep_core::merkle::root;
    use trailkeep_core::plans::{CategoryRetention, Retention};
    let retention = Retention {
        days: None,
        categories: vec![
            CategoryRetention { category: "auth".into(), days: 10 },
            CategoryRetention { category: "ai.*".into(), days: 400 },
        ],
    };
    let events = vec![
        new_event("a", "x.y", 10 * DAY),         // 1: past the plan's 30 days
        new_event("a", "auth.login", 180 * DAY), // 2: past auth's 10 days
        new_event("a", "x.y", 180 * DAY),        // 3: within the plan's 30 days
        new_event("a", "x.y", 20 * DAY),         // 4: past the plan's 30 days
        new_event("a", "auth.login", 195 * DAY), // 5: within auth's 10 days
        new_event("a", "ai.request", 50 * DAY),  // 6: within ai's 400 days
        new_event("a", "x.y", 40 * DAY),         // 7: due, but not under the checkpoint the pass is given
    ];
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    append(store, events).await;
    append(store, vec![new_event("b", "x.y", DAY)]).await;
    sealed(store, "a", 7).await;
    sealed(store, "b", 1).await;

    let outcome = store.sweep(sweep_request("a", retention.clone(), 6, 100, None)).await.unwrap();
    assert_eq!(
        outcome,
        crate::retention::SweepOutcome { deleted: 3, held: 0, event_seq: Some(8), next: None },
        "seqs 1, 2 and 4 deleted, recorded by seq 8"
    );
    assert_eq!(seqs(store, "a").await, vec![3, 5, 6, 7, 8]);
    assert_eq!(seqs(store, "b").await, vec![1], "another organisation's events are not touched");
    let scope = ReadScope::org(org("a"));
    assert!(store.get_event(&scope, ids[0]).await.unwrap().is_none());
    assert!(store.get_event(&scope, ids[2]).await.unwrap().is_some());

    let recorded = store.list_events(&scope, &query(1)).await.unwrap().events.remove(0);
    assert_eq!(
        (recorded.seq, recorded.action.as_str(), recorded.category.as_str()),
        (8, "retention.deleted", "retention")
    );
    assert_eq!(recorded.occurred_at, NOW);
    let by = recorded.actor.as_ref().expect("an actor");
    assert_eq!((by.actor_type, by.id.as_deref()), (trailkeep_core::ActorType::System, Some("trailkeep")));
    let expected = serde_json::json!({
        "count": 3,
        "seq_ranges": [[1, 2], [4, 4]],
        "first_seq": 1,
        "last_seq": 4,
        "cutoff": trailkeep_core::time::format_millis(NOW - 30 * DAY),
        "policy": "plan pro: 30 days",
    });
    assert_eq!(serde_json::Value::Object(recorded.metadata.clone()), expected);

    // The pruned events keep their receipts and say what pruned them; the tree goes on over them.
    sealed(store, "a", 8).await;
    let checkpoint = store.latest_checkpoint(&org("a")).await.unwrap().expect("a checkpoint");
    let sealed_events = store.sealed_events(&org("a"), 1, 8).await.unwrap();
    assert_eq!(sealed_events.iter().map(|s| s.receipt.seq).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
    for s in &sealed_events {
        let pruned = [1, 2, 4].contains(&s.receipt.seq);
        assert_eq!(s.pruned_by, pruned.then_some(8), "seq {}", s.receipt.seq);
        assert_eq!(s.payload.is_none(), pruned, "seq {}", s.receipt.seq);
        if let Some(payload) = &s.payload {
            assert_eq!(trailkeep_core::leaf::json_leaf_hash(payload).unwrap(), s.receipt.leaf);
        }
    }
    assert_eq!(store.receipt(&org("a"), ids[0]).await.unwrap(), Some(sealed_events[0].receipt), "the receipt stays");
    let leaves: Vec<_> = sealed_events.iter().map(|s| s.receipt.leaf).collect();
    assert_eq!(root(&leaves), checkpoint.root, "the signed root still covers the pruned leaves");

    // Under the next checkpoint, the next pass takes seq 7, and only it: the others are gone or not due.
    let again = store.sweep(sweep_request("a", retention, 8, 100, None)).await.unwrap();
    assert_eq!(again, crate::retention::SweepOutcome { deleted: 1, held: 0, event_seq: Some(9), next: None });
    assert_eq!(seqs(store, "a").await, vec![3, 5, 6, 8, 9], "seq 7, now under the checkpoint, goes too");
}

pub async fn an_organisations_own_retention_overrides_its_plans_days(store: &dyn Store) {
    use trailkeep_core::plans::{CategoryRetention, Retention};
    append(
        store,
        vec![
            new_event("a", "x.y", 150 * DAY), // 1: 50 days old, past the plan's 30 and the own 10
            new_event("a", "x.y", 185 * DAY), // 2: 15 days old, past only the own 10
            new_event("a", "x.y", 195 * DAY), // 3: 5 days old
            new_event("a", "auth.login", 150 * DAY), // 4: 50 days old, within auth's own 60
            new_event("a", "auth.login", 130 * DAY), // 5: 70 days old, past auth's own 60
        ],
    )
    .await;
    sealed(store, "a", 5).await;
    let own = Retention { days: Some(10), categories: vec![CategoryRetention { category: "auth".into(), days: 60 }] };
    let outcome = store.sweep(sweep_request("a", own, 5, 100, None)).await.unwrap();
    assert_eq!((outcome.deleted, outcome.held, outcome.event_seq), (3, 0, Some(6)));
    assert_eq!(seqs(store, "a").await, vec![3, 4, 6]);
    let recorded = store.list_events(&ReadScope::org(org("a")), &query(1)).await.unwrap().events.remove(0);
    assert_eq!(recorded.metadata["seq_ranges"], serde_json::json!([[1, 2], [5, 5]]));
    assert_eq!(
        recorded.metadata["cutoff"],
        serde_json::json!(trailkeep_core::time::format_millis(NOW - 10 * DAY)),
        "the cutoff of categories without a rule of their own"
    );
}

pub async fn legal_holds_keep_what_they_cover_and_one_over_the_whole_organisation_stops_retention(store: &dyn Store) {
    use crate::retention::SweepOutcome;
    let mut events = vec![
        new_event("a", "x.y", 10 * DAY), // 1: Ada by email, held by her hold
        new_event("a", "x.y", 11 * DAY), // 2: Bo
        new_event("a", "x.y", 40 * DAY), // 3: nobody, at the start of the held range
        new_event("a", "x.y", 55 * DAY), // 4: Bo, at the end of the held range, which it excludes
        new_event("a", "x.y", 90 * DAY), // 5: Ada by id, held by her hold
    ];
    events[0].actor = actor(Some("u_ada"), Some("Ada@Acme.test"));
    events[1].actor = actor(Some("bo"), None);
    events[3].actor = actor(Some("bo"), Some("bo@acme.test"));
    events[4].actor = actor(Some("ada@acme.test"), None);
    append(store, events).await;
    place(store, hold("a", "hold_all", None, (None, None))).await; // 6
    place(store, hold("a", "hold_ada", Some("ada@acme.test"), (None, None))).await; // 7
    place(store, hold("a", "hold_range", None, (Some(40 * DAY), Some(55 * DAY)))).await; // 8
    sealed(store, "a", 8).await;
    let pass = || store.sweep(sweep_request("a", Default::default(), 8, 100, None));

    assert_eq!(pass().await.unwrap(), SweepOutcome::default(), "a hold over the whole organisation stops everything");
    assert_eq!(seqs(store, "a").await, (1..=8).collect::<Vec<_>>());

    lift(store, "a", "hold_all").await; // 9
    assert_eq!(pass().await.unwrap(), SweepOutcome { deleted: 2, held: 3, event_seq: Some(10), next: None });
    assert_eq!(seqs(store, "a").await, vec![1, 3, 5, 6, 7, 8, 9, 10]);
    let recorded = store.list_events(&ReadScope::org(org("a")), &query(1)).await.unwrap().events.remove(0);
    assert_eq!(recorded.metadata.get("seq_ranges"), Some(&serde_json::json!([[2, 2], [4, 4]])));

    lift(store, "a", "hold_ada").await; // 11
    lift(store, "a", "hold_range").await; // 12
    assert_eq!(pass().await.unwrap(), SweepOutcome { deleted: 3, held: 0, event_seq: Some(13), next: None });
    assert_eq!(seqs(store, "a").await, (6..=13).collect::<Vec<_>>());
    let recorded = store.list_events(&ReadScope::org(org("a")), &query(1)).await.unwrap().events.remove(0);
    assert_eq!(recorded.metadata.get("seq_ranges"), Some(&serde_json::json!([[1, 1], [3, 3], [5, 5]])));
}

pub async fn a_sweep_pass_is_bounded_and_the_next_resumes_where_it_stopped(store: &dyn Store) {
    use crate::retention::SweepOutcome;
    let mut events: Vec<NewEvent> = (1..=6).map(|d| new_event("a", "x.y", d * DAY)).collect();
    let mut kept = new_event("a", "x.y", 2 * DAY + 1); // 7, between seqs 2 and 3 in the timeline
    kept.actor = actor(Some("keep"), None);
    events.push(kept);
    append(store, events).await;
    place(store, hold("a", "hold_keep", Some("keep"), (None, None))).await; // 8
    sealed(store, "a", 8).await;
    let pass = |after| store.sweep(sweep_request("a", Default::default(), 8, 3, after));

    let first = pass(None).await.unwrap();
    assert_eq!(first, SweepOutcome { deleted: 2, held: 1, event_seq: Some(9), next: Some((2 * DAY + 1, 7)) });
    let second = pass(first.next).await.unwrap();
    assert_eq!(second, SweepOutcome { deleted: 3, held: 0, event_seq: Some(10), next: Some((5 * DAY, 5)) });
    let third = pass(second.next).await.unwrap();
    assert_eq!(third, SweepOutcome { deleted: 1, held: 0, event_seq: Some(11), next: None });
    assert_eq!(seqs(store, "a").await, vec![7, 8, 9, 10, 11]);
    let log = store.list_events(&ReadScope::org(org("a")), &query(3)).await.unwrap().events;
    let ranges: Vec<_> = log.iter().rev().map(|e| e.metadata["seq_ranges"].clone()).collect();
    assert_eq!(ranges, [serde_json::json!([[1, 2]]), serde_json::json!([[3, 5]]), serde_json::json!([[6, 6]])]);
    // From the start again, only the held event is left to see.
    assert_eq!(pass(None).await.unwrap(), SweepOutcome { deleted: 0, held: 1, event_seq: None, next: None });
}

/// The seqs a full-text search for `text` finds in `org_name`, once they are `expected` (waiting a few
/// seconds at most for the index to catch up).
async fn searched(store: &dyn Store, org_name: &str, text: &str, expected: &[u64]) -> Vec<u64> {
    use trailkeep_core::{Predicate, Term};
    let q = EventQuery {
        filter: Filter { terms: vec![Term { negated: false, predicate: Predicate::Text(text.into()) }] },
        order: Order::Asc,
        limit: 100,
        after: None,
    };
    let mut found = Vec::new();
    for _ in 0..400 {
        found =
            store.list_events(&ReadScope::org(org(org_name)), &q).await.unwrap().events.iter().map(|e| e.seq).collect();
        if found == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    found
}

pub async fn full_text_search_no_longer_finds_a_pruned_event(store: &dyn Store) {
    let mut old = new_event("a", "x.y", 10 * DAY);
    old.description = Some("the zebra crossed".into());
    let mut recent = new_event("a", "x.y", NOW - DAY);
    recent.description = Some("another zebra".into());
    append(store, vec![old, recent]).await;
    assert_eq!(searched(store, "a", "zebra", &[1, 2]).await, [1, 2], "both are indexed first");
    sealed(store, "a", 2).await;
    let outcome = store.sweep(sweep_request("a", Default::default(), 2, 100, None)).await.unwrap();
    assert_eq!((outcome.deleted, outcome.event_seq), (1, Some(3)));
    assert_eq!(searched(store, "a", "zebra", &[2]).await, [2]);
    assert_eq!(searched(store, "a", "crossed", &[]).await, Vec::<u64>::new());
    // The index goes on with new events.
    let mut later = new_event("a", "x.y", NOW);
    later.description = Some("a zebra crossed again".into());
    append(store, vec![later]).await;
    assert_eq!(searched(store, "a", "zebra", &[2, 4]).await, [2, 4]);
    assert_eq!(searched(store, "a", "crossed", &[4]).await, [4]);
}

/// The record of a pass is sealed and searchable like any event, and sealing goes on after it, even when
/// the pass deleted the newest event row of the whole store: an engine that follows its events by row
/// position must not give that position to the record.
pub async fn a_pass_that_deletes_the_newest_event_is_itself_sealed_and_sealing_goes_on(store: &dyn Store) {
    use trailkeep_core::merkle::root;
    append(store, vec![new_event("a", "x.y", NOW - DAY)]).await; // 1, creating the organisation
    append(store, vec![new_event("a", "x.y", DAY)]).await; // 2, the newest row, long due
    sealed(store, "a", 2).await;
    let outcome = store.sweep(sweep_request("a", Default::default(), 2, 100, None)).await.unwrap();
    assert_eq!((outcome.deleted, outcome.event_seq), (1, Some(3)));
    append(store, vec![new_event("a", "x.y", NOW)]).await; // 4
    let checkpoint = sealed(store, "a", 4).await;
    let sealed_events = store.sealed_events(&org("a"), 1, 4).await.unwrap();
    let pruned: Vec<_> = sealed_events.iter().map(|s| (s.receipt.seq, s.pruned_by)).collect();
    assert_eq!(pruned, [(1, None), (2, Some(3)), (3, None), (4, None)]);
    let leaves: Vec<_> = sealed_events.iter().map(|s| s.receipt.leaf).collect();
    assert_eq!(root(&leaves), checkpoint.root);
    assert_eq!(searched(store, "a", "retention deleted", &[3]).await, [3], "the record is searchable");
}

fn export_job(org_name: &str, id: &str, at: i64) -> crate::exports::ExportJob {
    crate::exports::ExportJob {
        id: id.into(),
        org: org(org_name),
        format: "ndjson".into(),
        request: "{}".into(),
        status: crate::exports::JobStatus::Queued,
        events_written: 0,
        total_estimate: Some(10),
        created_at: at,
        created_by: "key_1".into(),
        started_at: None,
        finished_at: None,
        error: None,
        file: None,
        bytes: None,
        lease_owner: None,
        lease_until: None,
        attempts: 0,
    }
}

pub async fn export_jobs_are_claimed_once_leased_and_finished_with_their_events(store: &dyn Store) {
    use crate::exports::{ExportChange, JobStatus};
    append(store, vec![new_event("acme", "x.y", NOW), new_event("zeta", "x.y", NOW)]).await;
    let audit = new_event("acme", "audit_log.export_requested", NOW);
    assert!(store.export_write(ExportChange::CreateJob(export_job("acme", "exp_1", NOW)), Some(audit)).await.unwrap());
    assert!(!store.export_write(ExportChange::CreateJob(export_job("acme", "exp_1", NOW)), None).await.unwrap());
    store.export_write(ExportChange::CreateJob(export_job("zeta", "exp_2", NOW + 1)), None).await.unwrap();
    let logged = store.list_events(&ReadScope::org(org("acme")), &query(10)).await.unwrap().events;
    assert_eq!(logged[0].action.as_str(), "audit_log.export_requested", "recorded with the job");

    assert_eq!(store.get_export_job(&org("acme"), "exp_1").await.unwrap(), Some(export_job("acme", "exp_1", NOW)));
    assert_eq!(store.get_export_job(&org("zeta"), "exp_1").await.unwrap(), None, "another organisation's");
    let listed = store.list_export_jobs(&org("acme"), 10).await.unwrap();
    assert_eq!(listed.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["exp_1"]);
    let due: Vec<String> = store.export_jobs_due(NOW).await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(due, ["exp_1", "exp_2"], "every organisation's, oldest first");

    let claim = |owner: &str, now: i64| ExportChange::ClaimJob {
        org: org("acme"),
        id: "exp_1".into(),
        owner: owner.into(),
        now,
        lease_until: now + 100,
    };
    assert!(store.export_write(claim("n1", NOW), None).await.unwrap());
    assert!(!store.export_write(claim("n2", NOW + 50), None).await.unwrap(), "the lease holds");
    let progress = |owner: &str| ExportChange::JobProgress {
        org: org("acme"),
        id: "exp_1".into(),
        owner: owner.into(),
        events_written: 7,
        lease_until: NOW + 200,
    };
    assert!(store.export_write(progress("n1"), None).await.unwrap());
    assert!(!store.export_write(progress("n2"), None).await.unwrap(), "only the holder reports");
    let job = store.get_export_job(&org("acme"), "exp_1").await.unwrap().unwrap();
    assert_eq!((job.status, job.events_written, job.attempts), (JobStatus::Running, 7, 1));
    assert!(store.export_jobs_due(NOW + 150).await.unwrap().iter().all(|j| j.id != "exp_1"));
    // The lease lapsed: another node takes the job over and starts it again.
    assert_eq!(store.export_jobs_due(NOW + 250).await.unwrap()[0].id, "exp_1");
    assert!(store.export_write(claim("n2", NOW + 250), None).await.unwrap());
    let finish = |owner: &str| ExportChange::FinishJob {
        org: org("acme"),
        id: "exp_1".into(),
        owner: owner.into(),
        status: JobStatus::Succeeded,
        at: NOW + 300,
        events_written: 9,
        file: Some("exp_1.ndjson".into()),
        bytes: Some(1234),
        error: None,
    };
    assert!(!store.export_write(finish("n1"), None).await.unwrap(), "the old holder's end is refused");
    assert!(store.export_write(finish("n2"), None).await.unwrap());
    let job = store.get_export_job(&org("acme"), "exp_1").await.unwrap().unwrap();
    assert_eq!((job.status, job.events_written, job.attempts), (JobStatus::Succeeded, 9, 2));
    assert_eq!((job.file.as_deref(), job.bytes, job.finished_at), (Some("exp_1.ndjson"), Some(1234), Some(NOW + 300)));
    assert!(store.export_jobs_finished_before(NOW + 300).await.unwrap().is_empty());
    assert_eq!(store.export_jobs_finished_before(NOW + 301).await.unwrap()[0].id, "exp_1");
    let delete = ExportChange::DeleteJob { org: org("acme"), id: "exp_1".into() };
    assert!(store.export_write(delete, None).await.unwrap());
    assert_eq!(store.get_export_job(&org("acme"), "exp_1").await.unwrap(), None);
}

pub async fn an_export_schedule_records_each_window_once(store: &dyn Store) {
    use crate::exports::{ExportChange, ExportSchedule, Period};
    append(store, vec![new_event("acme", "x.y", NOW)]).await;
    let schedule = ExportSchedule {
        id: "sched_1".into(),
        org: org("acme"),
        destination: "archive".into(),
        format: "ndjson".into(),
        period: Period::Daily,
        created_at: NOW,
        created_by: "key_1".into(),
        next_window: 0,
        last_seq: 0,
        windows_done: 0,
        last_exported_at: None,
        last_error: None,
        lease_owner: None,
        lease_until: None,
    };
    let audit = new_event("acme", "export_schedule.created", NOW);
    assert!(store.export_write(ExportChange::CreateSchedule(schedule.clone()), Some(audit)).await.unwrap());
    assert_eq!(store.list_export_schedules(Some(&org("acme"))).await.unwrap(), vec![schedule.clone()]);
    assert!(store.list_export_schedules(Some(&org("zeta"))).await.unwrap().is_empty());
    assert_eq!(store.list_export_schedules(None).await.unwrap().len(), 1);

    let claim = |owner: &str, now: i64| ExportChange::ClaimSchedule {
        org: org("acme"),
        id: "sched_1".into(),
        owner: owner.into(),
        now,
        lease_until: now + 100,
    };
    assert!(store.export_write(claim("n1", NOW), None).await.unwrap());
    assert!(!store.export_write(claim("n2", NOW + 10), None).await.unwrap());
    assert!(store.export_write(claim("n1", NOW + 10), None).await.unwrap(), "the holder renews");
    let record = |owner: &str, window: i64, last_seq: u64| ExportChange::RecordWindow {
        org: org("acme"),
        id: "sched_1".into(),
        owner: owner.into(),
        window,
        next_window: window + DAY,
        last_seq,
        at: NOW,
    };
    assert!(!store.export_write(record("n2", 0, 5), None).await.unwrap(), "not the holder");
    assert!(store.export_write(record("n1", 0, 5), None).await.unwrap());
    assert!(!store.export_write(record("n1", 0, 6), None).await.unwrap(), "a window is recorded once");
    let now = store.list_export_schedules(Some(&org("acme"))).await.unwrap().remove(0);
    assert_eq!((now.next_window, now.last_seq, now.windows_done), (DAY, 5, 1));
    let failed = ExportChange::ScheduleFailed { org: org("acme"), id: "sched_1".into(), error: "no".into() };
    assert!(store.export_write(failed, None).await.unwrap());
    assert!(store.export_write(record("n1", DAY, 5), None).await.unwrap());
    let now = store.list_export_schedules(Some(&org("acme"))).await.unwrap().remove(0);
    assert_eq!((now.windows_done, now.last_error), (2, None), "a success clears the failure");
    let audit = new_event("acme", "export_schedule.deleted", NOW);
    let delete = ExportChange::DeleteSchedule { org: org("acme"), id: "sched_1".into() };
    assert!(store.export_write(delete.clone(), Some(audit)).await.unwrap());
    assert!(!store.export_write(delete, None).await.unwrap());
    let logged = store.list_events(&ReadScope::org(org("acme")), &query(10)).await.unwrap().events;
    assert_eq!(logged.len(), 3, "the event, the creation and the deletion");
}

/// Expands to one `#[tokio::test]` per conformance function, each on a fresh store from `$factory`
/// (an `async fn() -> Fixture`).
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:path) => {
        $crate::store_conformance_tests!(@each $factory;
            append_numbers_each_organisation_from_one_without_gaps,
            idempotency_replays_the_same_body_and_refuses_another,
            a_client_id_is_stored_once_per_organisation,
            listing_is_scoped_ordered_and_paged_by_cursor,
            a_project_scope_sees_only_its_projects,
            filters_select_each_matching_event_once,
            cost_ranges_page_in_timeline_order_whether_rare_or_common,
            appended_events_are_sealed_into_a_signed_tree,
            sealed_events_carry_receipts_and_their_payloads,
            organisations_projects_and_members_change_with_their_events,
            keys_are_created_found_listed_and_revoked_with_their_audit_events,
            appends_after_shutdown_fail_and_nothing_is_lost_before_it,
            a_portal_link_starts_one_session_and_none_once_used_or_expired,
            a_session_ends_once_and_knows_when_its_issuing_key_is_revoked,
            operators_are_unique_by_email_and_listed_oldest_first,
            ai_totals_add_up_the_ai_requests_a_filter_selects_in_the_scope,
            an_organisations_retention_and_legal_holds_change_with_their_events,
            a_sweep_deletes_only_sealed_events_past_their_retention_and_records_it,
            an_organisations_own_retention_overrides_its_plans_days,
            legal_holds_keep_what_they_cover_and_one_over_the_whole_organisation_stops_retention,
            a_sweep_pass_is_bounded_and_the_next_resumes_where_it_stopped,
            full_text_search_no_longer_finds_a_pruned_event,
            a_pass_that_deletes_the_newest_event_is_itself_sealed_and_sealing_goes_on,
            export_jobs_are_claimed_once_leased_and_finished_with_their_events,
            an_export_schedule_records_each_window_once,
        );
    };
    (@each $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (store, _guard) = $factory().await;
                $crate::conformance::$name(store.as_ref()).await;
            }
        )*
    };
}
