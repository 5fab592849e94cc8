//! The store conformance suite, run against the SQLite engine on a real database file.

use std::sync::Arc;

use trailkeep_sqlite::{SqliteConfig, SqliteStore};
use trailkeep_store::conformance::Fixture;

async fn sqlite_store() -> Fixture {
    use trailkeep_core::checkpoint::Ed25519Signer;
    use trailkeep_store::conformance::{SEALING_KEY_NAME, SEALING_SEED};
    let dir = tempfile::tempdir().expect("temp dir");
    let signer = Ed25519Signer::from_seed(SEALING_KEY_NAME, &SEALING_SEED).expect("signing key");
    let signers = Arc::new(trailkeep_core::checkpoint::SignerSet::new(Arc::new(signer)));
    let sealing = trailkeep_sqlite::ledger::Sealing { signers, deployment: SEALING_KEY_NAME.into() };
    let store = SqliteStore::open(&SqliteConfig::new(dir.path()).with_sealing(sealing)).expect("open store");
    (Arc::new(store), Box::new(dir))
}

trailkeep_store::store_conformance_tests!(sqlite_store);

/// Reopening a data directory resumes each organisation's sequence and the full-text index where they
/// stopped.
#[tokio::test]
async fn a_reopened_store_continues_the_sequence_and_the_search_index() {
    use trailkeep_core::cursor::Order;
    use trailkeep_core::{Filter, OrgId, Predicate, Term};
    use trailkeep_store::conformance::new_event;
    use trailkeep_store::{AppendRequest, EventQuery, ReadScope, Store};

    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::new(dir.path());
    let mut first = new_event("a", "x.y", 1);
    first.description = Some("the zebra crossed".into());
    {
        let store = SqliteStore::open(&config).unwrap();
        store.append(AppendRequest { events: vec![first, new_event("a", "x.y", 2)], idempotency: None }).await.unwrap();
        store.shutdown().await;
    }
    let store = SqliteStore::open(&config).unwrap();
    let mut second = new_event("a", "x.y", 3);
    second.description = Some("another zebra".into());
    let ack = store.append(AppendRequest { events: vec![second], idempotency: None }).await.unwrap();
    assert_eq!(ack.acks[0].seq, 3);
    let text = EventQuery {
        filter: Filter { terms: vec![Term { negated: false, predicate: Predicate::Text("zebra".into()) }] },
        order: Order::Asc,
        limit: 10,
        after: None,
    };
    let scope = ReadScope::org(OrgId::parse("a").unwrap());
    let mut found = Vec::new();
    for _ in 0..200 {
        found = store.list_events(&scope, &text).await.unwrap().events.iter().map(|e| e.seq).collect();
        if found.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(found, vec![1, 3]);
    store.shutdown().await;
}
