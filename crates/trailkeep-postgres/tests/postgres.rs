//! Behaviour particular to the PostgreSQL engine, through the store: row-level security over the rows a
//! real store wrote, history the service role cannot rewrite (nor prune but through retention's rules),
//! several nodes on one database, full-text search and reopening.

use std::sync::Arc;
use std::time::Duration;

use trailkeep_core::checkpoint::{Ed25519Signer, SignerSet};
use trailkeep_core::cursor::Order;
use trailkeep_core::{ActionPattern, Filter, OrgId, Predicate, Term};
use trailkeep_postgres::testing::{OWNER_ROLE, SERVICE_ROLE, TestDatabase, cluster};
use trailkeep_postgres::{PostgresStore, Sealing};
use trailkeep_store::conformance::{SEALING_KEY_NAME, SEALING_SEED, new_event};
use trailkeep_store::{AppendRequest, EventQuery, IdempotencyClaim, ReadScope, Store, StoredCheckpoint};

fn sealing() -> Sealing {
    let signer = Ed25519Signer::from_seed(SEALING_KEY_NAME, &SEALING_SEED).unwrap();
    Sealing { signers: Arc::new(SignerSet::new(Arc::new(signer))), deployment: SEALING_KEY_NAME.into() }
}

async fn open(database: &TestDatabase) -> PostgresStore {
    PostgresStore::open(&database.store_config().with_sealing(sealing())).await.expect("open store")
}

fn org(s: &str) -> OrgId {
    OrgId::parse(s).unwrap()
}

fn everything(limit: usize) -> EventQuery {
    EventQuery { filter: Filter::default(), order: Order::Asc, limit, after: None }
}

/// The checkpoint of `org` once it covers `size` events, waiting a few seconds at most.
async fn sealed(store: &dyn Store, org_name: &str, size: u64) -> StoredCheckpoint {
    for _ in 0..500 {
        if let Some(c) = store.latest_checkpoint(&org(org_name)).await.unwrap()
            && c.size >= size
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no checkpoint of {org_name} covered {size} events within a few seconds");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// One pass over `org_name` at `now` on a plan of 30 days, under a checkpoint of `max_seq`.
fn sweep_request(org_name: &str, now: i64, max_seq: u64, batch: usize) -> trailkeep_store::retention::SweepRequest {
    trailkeep_store::retention::SweepRequest {
        org: org(org_name),
        now,
        plan_days: 30,
        retention: Default::default(),
        max_seq,
        batch,
        policy: "plan pro: 30 days".into(),
        after: None,
    }
}

/// The tenant tables and the column naming each row's organisation.
const TENANT_TABLES: &[(&str, &str)] = &[
    ("events", "org_id"),
    ("event_search", "org_id"),
    ("org_seq", "org_id"),
    ("follower_heads", "org_id"),
    ("orgs", "id"),
    ("projects", "org_id"),
    ("members", "org_id"),
    ("api_keys", "COALESCE(org_id, '_platform')"),
    ("portal_links", "org_id"),
    ("sessions", "COALESCE(org_id, '_platform')"),
    ("receipts", "org_id"),
    ("tree_nodes", "org_id"),
    ("checkpoints", "org_id"),
    ("legal_holds", "org_id"),
    ("pruned", "org_id"),
];

#[tokio::test]
async fn under_the_service_role_raw_sql_sees_no_row_without_the_setting_and_only_its_organisations_with_it() {
    use trailkeep_store::orgs::{AdminChange, MemberRecord, MemberStatus, ProjectRecord, Role};
    use trailkeep_store::sessions::{Intent, PortalLinkRecord, SessionRecord, SessionRole, SessionStart, SessionUser};
    let database = cluster().database().unwrap();
    let store = open(&database).await;
    for name in ["a", "b"] {
        let events: Vec<_> = (0..3).map(|i| new_event(name, "x.y", i)).collect();
        store.append(AppendRequest { events, idempotency: None }).await.unwrap();
        let project = ProjectRecord {
            org: org(name),
            id: "web".parse().unwrap(),
            name: "Web".into(),
            created_at: 1,
            updated_at: 1,
        };
        store.apply_admin(AdminChange::CreateProject(project), new_event(name, "project.created", 1)).await.unwrap();
        let member = MemberRecord {
            org: org(name),
            email: format!("ada@{name}.test"),
            name: None,
            role: Role::Admin,
            projects: vec![],
            status: MemberStatus::Active,
            created_at: 1,
            updated_at: 1,
        };
        store.apply_admin(AdminChange::AddMember(member), new_event(name, "member.added", 1)).await.unwrap();
        let key = trailkeep_store::ApiKeyRecord {
            id: format!("key_{name}"),
            name: "k".into(),
            prefix: "tk_".into(),
            hash: [name.as_bytes()[0]; 32],
            org: Some(org(name)),
            permissions: vec![trailkeep_store::Permission::EventsRead],
            created_at: 1,
            revoked_at: None,
        };
        store.create_api_key(key, Some(new_event(name, "api_key.created", 1))).await.unwrap();
        let user = SessionUser { email: format!("ada@{name}.test"), name: None };
        let link = PortalLinkRecord {
            hash: [name.as_bytes()[0] + 1; 32],
            org: org(name),
            user: user.clone(),
            role: Role::Admin,
            projects: vec![],
            intent: Intent::AuditLogs,
            issued_by: format!("key_{name}"),
            created_at: 1,
            expires_at: 10_000,
            used_at: None,
        };
        store.create_portal_link(link, new_event(name, "portal_link.created", 1)).await.unwrap();
        let session = SessionRecord {
            hash: [name.as_bytes()[0] + 2; 32],
            id: format!("ses_{name}"),
            user,
            role: SessionRole::Org(Role::Admin),
            org: Some(org(name)),
            projects: vec![],
            issued_by: Some(format!("key_{name}")),
            member_bound: true,
            created_at: 2,
            expires_at: 10_000,
            ended_at: None,
        };
        let start = SessionStart::PortalLink { link: [name.as_bytes()[0] + 1; 32], now: 2 };
        assert!(store.start_session(session, start, new_event(name, "session.started", 2)).await.unwrap());
        let hold = trailkeep_store::retention::LegalHold {
            id: format!("hold_{name}"),
            org: org(name),
            actor: Some("nobody".into()),
            from: None,
            to: None,
            reason: "case".into(),
            placed_at: 3,
            placed_by: format!("key_{name}"),
            lifted_at: None,
        };
        let now = now_ms();
        store.apply_admin(AdminChange::PlaceHold(hold), new_event(name, "legal_hold.placed", now)).await.unwrap();
        sealed(&store, name, 9).await;
        // One pass of one event: seq 1, the oldest, is pruned.
        let outcome = store.sweep(sweep_request(name, now, 9, 1)).await.unwrap();
        assert_eq!((outcome.deleted, outcome.event_seq), (1, Some(10)));
    }
    // The last passes of the indexer and the sealer run at shutdown: every derived table has rows.
    store.shutdown().await;

    let owner = database.connect(OWNER_ROLE).await.unwrap();
    owner.batch_execute("SET search_path = trailkeep").await.unwrap();
    for (table, column) in TENANT_TABLES {
        let sql = format!(
            "SELECT count(*) FILTER (WHERE {column} = 'a'), count(*) FILTER (WHERE {column} = 'b') FROM {table}"
        );
        let row = owner.query_one(sql.as_str(), &[]).await.unwrap();
        let (a, b): (i64, i64) = (row.get(0), row.get(1));
        assert!(a > 0 && b > 0, "{table} holds rows of both organisations for this test to mean anything");
    }

    let mut service = database.connect(SERVICE_ROLE).await.unwrap();
    service.batch_execute("SET search_path = trailkeep").await.unwrap();
    for (table, _) in TENANT_TABLES {
        let n: i64 = service.query_one(format!("SELECT count(*) FROM {table}").as_str(), &[]).await.unwrap().get(0);
        assert_eq!(n, 0, "{table} shows rows to the service role without trailkeep.org");
    }
    let tx = service.transaction().await.unwrap();
    tx.execute("SELECT set_config('trailkeep.org', 'a', true), set_config('trailkeep.projects', '*', true)", &[])
        .await
        .unwrap();
    for (table, column) in TENANT_TABLES {
        let sql = format!("SELECT count(*), count(*) FILTER (WHERE {column} IS DISTINCT FROM 'a') FROM {table}");
        let row = tx.query_one(sql.as_str(), &[]).await.unwrap();
        let (seen, foreign): (i64, i64) = (row.get(0), row.get(1));
        assert!(seen > 0, "{table} shows organisation a nothing under its own setting");
        assert_eq!(foreign, 0, "{table} shows another organisation's rows under a's setting");
    }
    // Nor can the service role write into another organisation, or switch the policies off.
    let forged = tx
        .execute("INSERT INTO org_seq (org_id, last_seq) VALUES ('b2', 1)", &[])
        .await
        .expect_err("a row outside the setting cannot be written");
    let message = forged.as_db_error().map(|e| e.message().to_owned()).unwrap_or_default();
    assert!(message.contains("row-level security"), "{message}");
    tx.rollback().await.unwrap();
    let off = service.batch_execute("SET row_security = off; SELECT count(*) FROM events").await;
    assert!(off.is_err(), "the service role cannot turn row-level security off");
}

#[tokio::test]
async fn the_service_role_can_add_to_history_but_never_rewrite_it() {
    let database = cluster().database().unwrap();
    let store = open(&database).await;
    store.append(AppendRequest { events: vec![new_event("a", "x.y", 1)], idempotency: None }).await.unwrap();
    sealed(&store, "a", 1).await;
    store.shutdown().await;
    let service = database.connect(SERVICE_ROLE).await.unwrap();
    service.batch_execute("SET search_path = trailkeep").await.unwrap();
    for statement in [
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "UPDATE receipts SET leaf = '\\x00'",
        "DELETE FROM tree_nodes",
        "DELETE FROM checkpoints",
        "DELETE FROM pruned",
        "INSERT INTO pruned VALUES ('a', 1, 1)",
        "DELETE FROM legal_holds",
        "TRUNCATE events",
        "ALTER TABLE events DISABLE ROW LEVEL SECURITY",
    ] {
        let refused = service.batch_execute(statement).await.expect_err(statement);
        let message = refused.as_db_error().map(|e| e.message().to_owned()).unwrap_or_default();
        assert!(message.contains("permission denied") || message.contains("must be owner"), "{statement}: {message}");
    }
}

#[tokio::test]
async fn the_store_refuses_to_run_as_the_tables_owner() {
    let database = cluster().database().unwrap();
    drop(open(&database).await);
    let as_owner = trailkeep_postgres::PostgresConfig::new(database.owner_config());
    let refused = PostgresStore::open(&as_owner).await.err().expect("the owner bypasses row-level security");
    assert!(refused.to_string().contains("bypass row-level security"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_share_gap_free_seqs_one_tree_and_idempotency() {
    let database = cluster().database().unwrap();
    let nodes = [Arc::new(open(&database).await), Arc::new(open(&database).await)];
    let mut tasks = Vec::new();
    for i in 0..40 {
        let node = nodes[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let events = (0..5).map(|j| new_event(if (i + j) % 3 == 0 { "y" } else { "x" }, "x.y", j as i64)).collect();
            node.append(AppendRequest { events, idempotency: None }).await.unwrap().acks
        }));
    }
    // The same request with the same idempotency key, sent to both nodes at once, is stored once.
    let mut retries = Vec::new();
    for i in 0..10 {
        let claim = IdempotencyClaim { scope: "key_1".into(), key: format!("k{i}"), fingerprint: [i; 32] };
        let request = AppendRequest { events: vec![new_event("x", "retry.sent", 1)], idempotency: Some(claim) };
        let (a, b) = (nodes[0].clone(), nodes[1].clone());
        let (ra, rb) = (request.clone(), request);
        retries.push(tokio::spawn(async move { tokio::join!(a.append(ra), b.append(rb)) }));
    }
    let mut seqs: std::collections::HashMap<String, Vec<u64>> = Default::default();
    for task in tasks {
        for ack in task.await.unwrap() {
            let event = nodes[0].get_event(&ReadScope::org(org("x")), ack.id).await.unwrap();
            let name = if event.is_some() { "x" } else { "y" };
            seqs.entry(name.into()).or_default().push(ack.seq);
        }
    }
    for retry in retries {
        let (a, b) = retry.await.unwrap();
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.acks, b.acks, "both nodes answer with the one stored event");
        assert!(a.replayed != b.replayed, "exactly one of the two stored it");
        seqs.get_mut("x").unwrap().push(a.acks[0].seq);
    }
    for (name, mut seqs) in seqs {
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "organisation {name} has gaps or repeats");
    }
    // One tree per organisation, whichever node seals: its root is that of the stored events, in seq order.
    let scope = ReadScope::org(org("x"));
    let stored = nodes[1].list_events(&scope, &everything(1000)).await.unwrap().events;
    let mut by_seq = stored.clone();
    by_seq.sort_by_key(|e| e.seq);
    let checkpoint = sealed(nodes[0].as_ref(), "x", by_seq.len() as u64).await;
    let leaves: Vec<_> = by_seq.iter().map(|e| trailkeep_core::leaf::event_leaf_hash(e).unwrap()).collect();
    assert_eq!(checkpoint.size, leaves.len() as u64);
    assert_eq!(checkpoint.root, trailkeep_core::merkle::root(&leaves));
    assert_eq!(nodes[1].latest_checkpoint(&org("x")).await.unwrap().map(|c| c.root), Some(checkpoint.root));
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn a_reopened_store_continues_the_sequence_and_full_text_finds_words_as_sqlite_does() {
    let database = cluster().database().unwrap();
    let mut first = new_event("a", "x.y", 1);
    first.description = Some("The zebra crossed; ask Ann@Example.com".into());
    {
        let store = open(&database).await;
        store.append(AppendRequest { events: vec![first, new_event("a", "x.y", 2)], idempotency: None }).await.unwrap();
        store.shutdown().await;
    }
    let store = open(&database).await;
    let mut second = new_event("a", "x.y", 3);
    second.description = Some("another ZEBRA, naïvely".into());
    let ack = store.append(AppendRequest { events: vec![second], idempotency: None }).await.unwrap();
    assert_eq!(ack.acks[0].seq, 3);
    let search = |text: &str| EventQuery {
        filter: Filter { terms: vec![Term { negated: false, predicate: Predicate::Text(text.into()) }] },
        ..everything(10)
    };
    let scope = ReadScope::org(org("a"));
    let mut found = Vec::new();
    for _ in 0..200 {
        found = store.list_events(&scope, &search("zebra")).await.unwrap().events.iter().map(|e| e.seq).collect();
        if found.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(found, vec![1, 3]);
    let seqs = |events: Vec<trailkeep_core::Event>| events.iter().map(|e| e.seq).collect::<Vec<_>>();
    // Words, not PostgreSQL's email and hyphen tokens; adjacent and in order; case and accents folded.
    assert_eq!(seqs(store.list_events(&scope, &search("example com")).await.unwrap().events), vec![1]);
    assert_eq!(seqs(store.list_events(&scope, &search("zebra crossed")).await.unwrap().events), vec![1]);
    assert!(store.list_events(&scope, &search("crossed zebra")).await.unwrap().events.is_empty());
    assert_eq!(seqs(store.list_events(&scope, &search("NAIVELY")).await.unwrap().events), vec![3]);
    assert!(store.list_events(&scope, &search("' OR 1=1 --")).await.unwrap().events.is_empty());
    let other = ReadScope::org(org("b"));
    assert!(store.list_events(&other, &search("zebra")).await.unwrap().events.is_empty());
    store.shutdown().await;
}

#[tokio::test]
async fn retention_prunes_only_through_tk_prune_and_takes_the_full_text_rows_with_the_events() {
    let database = cluster().database().unwrap();
    let store = open(&database).await;
    // Three old events, the first kept by a hold on its actor.
    let mut events: Vec<_> = (1..=3)
        .map(|i| {
            let mut e = new_event("a", "x.y", i);
            e.description = Some(format!("zebra number {i}"));
            e
        })
        .collect();
    events[0].actor = Some(trailkeep_core::Actor {
        actor_type: trailkeep_core::ActorType::User,
        id: Some("held".into()),
        name: None,
        email: None,
    });
    store.append(AppendRequest { events, idempotency: None }).await.unwrap();
    let hold = trailkeep_store::retention::LegalHold {
        id: "hold_1".into(),
        org: org("a"),
        actor: Some("held".into()),
        from: None,
        to: None,
        reason: "case".into(),
        placed_at: 1,
        placed_by: "key_1".into(),
        lifted_at: None,
    };
    let now = now_ms();
    let change = trailkeep_store::orgs::AdminChange::PlaceHold(hold);
    store.apply_admin(change, new_event("a", "legal_hold.placed", now)).await.unwrap();
    let scope = ReadScope::org(org("a"));
    let zebra = EventQuery {
        filter: Filter { terms: vec![Term { negated: false, predicate: Predicate::Text("zebra".into()) }] },
        ..everything(10)
    };
    let mut found = Vec::new();
    for _ in 0..200 {
        found = store.list_events(&scope, &zebra).await.unwrap().events.iter().map(|e| e.seq).collect();
        if found.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(found, vec![1, 2, 3], "indexed before the pass");
    sealed(&store, "a", 4).await;

    let outcome = store.sweep(sweep_request("a", now, 4, 100)).await.unwrap();
    assert_eq!((outcome.deleted, outcome.held, outcome.event_seq), (2, 1, Some(5)));
    store.shutdown().await;

    // The pruned events' full-text rows went with them, and the indexer's last pass did not bring them back.
    let owner = database.connect(OWNER_ROLE).await.unwrap();
    owner.batch_execute("SET search_path = trailkeep").await.unwrap();
    let count = |sql: &'static str| {
        let owner = &owner;
        async move { owner.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM events WHERE org_id = 'a' AND seq IN (2, 3)").await, 0);
    assert_eq!(count("SELECT count(*) FROM event_search WHERE org_id = 'a' AND seq IN (2, 3)").await, 0);
    assert_eq!(count("SELECT count(*) FROM event_search WHERE org_id = 'a' AND seq = 1").await, 1, "held");
    assert_eq!(count("SELECT count(*) FROM pruned WHERE org_id = 'a' AND seq IN (2, 3) AND by_seq = 5").await, 2);

    // The service role cannot prune outside those rules, even by calling tk_prune itself.
    let mut service = database.connect(SERVICE_ROLE).await.unwrap();
    service.batch_execute("SET search_path = trailkeep").await.unwrap();
    for (setting, call, why) in [
        ("a", "SELECT tk_prune('a', ARRAY[1]::int8[], 5)", "legal hold"),
        ("a", "SELECT tk_prune('a', ARRAY[99]::int8[], 5)", "only sealed events"),
        ("a", "SELECT tk_prune('a', ARRAY[4]::int8[], 4)", "not a retention.deleted event"),
        ("a", "SELECT tk_prune('a', ARRAY[2]::int8[], 5)", "duplicate key"),
        ("b", "SELECT tk_prune('a', ARRAY[4]::int8[], 5)", "not named by trailkeep.org"),
        ("", "SELECT tk_prune('a', ARRAY[4]::int8[], 5)", "not named by trailkeep.org"),
    ] {
        let tx = service.transaction().await.unwrap();
        tx.execute(
            "SELECT set_config('trailkeep.org', $1, true), set_config('trailkeep.projects', '*', true)",
            &[&setting],
        )
        .await
        .unwrap();
        let refused = tx.batch_execute(call).await.expect_err(call);
        let message = refused.as_db_error().map(|e| e.message().to_owned()).unwrap_or_default();
        assert!(message.contains(why), "{call} under {setting:?}: {message}");
        tx.rollback().await.unwrap();
    }
    assert_eq!(count("SELECT count(*) FROM events WHERE org_id = 'a'").await, 3, "seqs 1, 4 and 5 are left");
}

/// A phrase matching more events than are worth reading through the GIN index is checked along the timeline instead
/// of read through the GIN index; either way the pages hold what a filter over every event would, in
/// timeline order, alone or with an action filter.
#[tokio::test]
async fn full_text_pages_are_the_same_whether_the_phrase_is_common_or_rare() {
    let database = cluster().database().unwrap();
    let store = open(&database).await;
    // More matches of `common` than the 2,000 read through the index; occurred_at a permutation of the
    // seqs, so that timeline order is not seq order.
    const N: i64 = 2600;
    let events: Vec<trailkeep_core::NewEvent> = (0..N)
        .map(|i| {
            let action = if i % 3 == 0 { "doc.viewed" } else { "doc.edited" };
            let mut event = new_event("a", action, 1_000 + (i * 7919) % N);
            let rare = if i % 97 == 0 { " rare" } else { "" };
            let last = if i == N - 1 { " last" } else { "" };
            event.description = Some(format!("a common word{rare}{last}"));
            event
        })
        .collect();
    store.append(AppendRequest { events: events.clone(), idempotency: None }).await.unwrap();
    let scope = ReadScope::org(org("a"));
    let text = |t: &str| Term { negated: false, predicate: Predicate::Text(t.into()) };
    let query = |terms: Vec<Term>, order: Order| EventQuery { filter: Filter { terms }, order, limit: 50, after: None };
    for _ in 0..400 {
        if !store.list_events(&scope, &query(vec![text("last")], Order::Desc)).await.unwrap().events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The choice between the two ways reads the planner's statistics, as autovacuum would keep them.
    let owner = database.connect(OWNER_ROLE).await.unwrap();
    owner.batch_execute("ANALYZE trailkeep.event_search").await.unwrap();
    let viewed =
        || Term { negated: false, predicate: Predicate::Action(vec![ActionPattern::parse("doc.viewed").unwrap()]) };
    // A name, the filter's terms, and which events (by number from 0) it selects.
    type Case = (&'static str, Vec<Term>, Box<dyn Fn(i64) -> bool>);
    let cases: Vec<Case> = vec![
        ("common", vec![text("common")], Box::new(|_| true)),
        ("rare", vec![text("rare")], Box::new(|i| i % 97 == 0)),
        ("common, viewed", vec![viewed(), text("common")], Box::new(|i| i % 3 == 0)),
        ("rare, viewed", vec![viewed(), text("rare")], Box::new(|i| i % 3 == 0 && i % 97 == 0)),
    ];
    for (name, terms, matches) in cases {
        for order in [Order::Desc, Order::Asc] {
            let mut expected: Vec<(i64, u64)> =
                (0..N).filter(|&i| matches(i)).map(|i| (events[i as usize].occurred_at, i as u64 + 1)).collect();
            expected.sort();
            if order == Order::Desc {
                expected.reverse();
            }
            let mut found = Vec::new();
            let mut q = query(terms.clone(), order);
            loop {
                let page = store.list_events(&scope, &q).await.unwrap();
                found.extend(page.events.iter().map(|e| (e.occurred_at, e.seq)));
                match page.next {
                    Some(next) => q.after = Some(next),
                    None => break,
                }
            }
            assert_eq!(found, expected, "{name}, {order:?}");
        }
    }
    // The common phrase was checked along the timeline, the rare one read through the index.
    let plan = |t: &str| {
        let store = &store;
        let scope = &scope;
        let q = query(vec![text(t)], Order::Desc);
        async move { store.explain_events(scope, &q).await.unwrap().unwrap() }
    };
    assert!(plan("common").await.contains("event_search s"), "the common phrase is checked event by event");
    assert!(plan("rare").await.contains("tk_search"), "the rare phrase is read through tk_search");
    store.shutdown().await;
}
