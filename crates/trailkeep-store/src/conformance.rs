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
