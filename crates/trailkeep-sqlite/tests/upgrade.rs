//! Opening a data directory written by an older schema: payloads stored before they were kept in canonical
//! form are rewritten into it, and every leaf, root and checkpoint comes out as before.

use std::sync::Arc;
use std::time::Duration;

use trailkeep_core::checkpoint::{Ed25519Signer, SignerSet};
use trailkeep_core::{Event, OrgId};
use trailkeep_sqlite::ledger::Sealing;
use trailkeep_sqlite::{SqliteConfig, SqliteStore};
use trailkeep_store::conformance::{SEALING_KEY_NAME, SEALING_SEED, new_event};
use trailkeep_store::{AppendRequest, Store, StoredCheckpoint};

fn config(dir: &std::path::Path) -> SqliteConfig {
    let signer = Ed25519Signer::from_seed(SEALING_KEY_NAME, &SEALING_SEED).expect("signing key");
    let signers = Arc::new(SignerSet::new(Arc::new(signer)));
    SqliteConfig::new(dir).with_sealing(Sealing { signers, deployment: SEALING_KEY_NAME.into() })
}

async fn checkpoint_of_size(store: &SqliteStore, org: &OrgId, size: u64) -> StoredCheckpoint {
    for _ in 0..400 {
        if let Some(checkpoint) = store.latest_checkpoint(org).await.unwrap()
            && checkpoint.size >= size
        {
            return checkpoint;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no checkpoint of size {size} for {org}");
}

fn payloads(path: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT payload FROM events ORDER BY pos").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

#[tokio::test]
async fn payloads_of_an_older_schema_are_made_canonical_and_reseal_to_the_same_roots() {
    let dir = tempfile::tempdir().unwrap();
    let org = OrgId::parse("acme").unwrap();
    let mut events: Vec<_> = (0..20).map(|i| new_event("acme", "document.updated", 1_000 + i)).collect();
    events[3].metadata.insert("zeta".into(), serde_json::json!({"b": 1.50, "a": "\u{2028}"}));
    let before = {
        let store = SqliteStore::open(&config(dir.path())).unwrap();
        store.append(AppendRequest { events, idempotency: None }).await.unwrap();
        let checkpoint = checkpoint_of_size(&store, &org, 20).await;
        store.shutdown().await;
        checkpoint
    };

    // What an older build left behind: payloads in the field order of the event type, the main
    // database at schema version 4, and — to make the sealer hash every payload again — no ledger.
    let main = dir.path().join("trailkeep.db");
    let canonical = payloads(&main);
    {
        let conn = rusqlite::Connection::open(&main).unwrap();
        let rows: Vec<(i64, String)> = conn
            .prepare("SELECT pos, payload FROM events")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (pos, payload) in rows {
            let event: Event = serde_json::from_str(&payload).unwrap();
            let older = serde_json::to_string(&event).unwrap();
            conn.execute("UPDATE events SET payload = ?1 WHERE pos = ?2", rusqlite::params![older, pos]).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
    }
    assert_ne!(payloads(&main), canonical, "the older form differs from the canonical one");
    for name in ["ledger.db", "ledger.db-wal", "ledger.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }

    let store = SqliteStore::open(&config(dir.path())).unwrap();
    assert_eq!(payloads(&main), canonical, "the upgrade rewrote every payload into its canonical form");
    let after = checkpoint_of_size(&store, &org, 20).await;
    assert_eq!((after.size, after.root), (before.size, before.root), "the resealed tree has the same root");
    store
        .append(AppendRequest { events: vec![new_event("acme", "document.read", 2_000)], idempotency: None })
        .await
        .unwrap();
    let grown = checkpoint_of_size(&store, &org, 21).await;
    let sealed = store.sealed_events(&org, 1, 21).await.unwrap();
    assert_eq!(sealed.len(), 21);
    for s in &sealed {
        let payload = s.payload.as_deref().expect("a payload");
        assert_eq!(trailkeep_core::leaf::json_leaf_hash(payload).unwrap(), s.receipt.leaf, "seq {}", s.receipt.seq);
    }
    assert_eq!(grown.size, 21);
    store.shutdown().await;
}
