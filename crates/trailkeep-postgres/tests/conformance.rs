//! The store conformance suite, run against the PostgreSQL engine on a throwaway cluster started from the
//! installed binaries (see `trailkeep_postgres::testing`): one fresh database per test.

use std::sync::Arc;

use trailkeep_postgres::{PostgresStore, Sealing};
use trailkeep_store::conformance::Fixture;

async fn postgres_store() -> Fixture {
    use trailkeep_core::checkpoint::{Ed25519Signer, SignerSet};
    use trailkeep_store::conformance::{SEALING_KEY_NAME, SEALING_SEED};
    let database = trailkeep_postgres::testing::cluster().database().expect("a fresh database");
    let signer = Ed25519Signer::from_seed(SEALING_KEY_NAME, &SEALING_SEED).expect("signing key");
    let sealing = Sealing { signers: Arc::new(SignerSet::new(Arc::new(signer))), deployment: SEALING_KEY_NAME.into() };
    let store = PostgresStore::open(&database.store_config().with_sealing(sealing)).await.expect("open store");
    (Arc::new(store), Box::new(database))
}

// The whole suite, retention and legal holds included.
trailkeep_store::store_conformance_tests!(postgres_store);
