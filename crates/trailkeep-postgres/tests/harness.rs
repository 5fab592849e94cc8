//! The test harness itself: it brings its own PostgreSQL, and fails loudly when it cannot.

use trailkeep_postgres::testing::{HarnessError, OWNER_ROLE, SERVICE_ROLE, cluster, find_binaries_in};

#[test]
fn without_postgresql_binaries_the_harness_fails_naming_what_to_install() {
    let empty = std::env::temp_dir().join(format!("tk-no-pg-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let found = find_binaries_in(None, empty.as_os_str().to_owned(), &empty);
    let error = found.expect_err("nothing to find");
    assert!(matches!(error, HarnessError::NotInstalled));
    assert!(error.to_string().contains("apt-get install postgresql"), "{error}");
    let explicit = find_binaries_in(Some(empty.as_os_str().to_owned()), Default::default(), &empty);
    assert!(matches!(explicit, Err(HarnessError::NotInstalled)), "a wrong TRAILKEEP_PG_BIN is not second-guessed");
    let _ = std::fs::remove_dir_all(&empty);
}

#[tokio::test]
async fn each_test_gets_a_fresh_database_on_the_binarys_own_cluster_for_both_roles() {
    let first = cluster().database().unwrap();
    let second = cluster().database().unwrap();
    assert_ne!(first.name(), second.name());
    assert!(cluster().socket_dir().join(format!(".s.PGSQL.{}", cluster().port())).exists());
    assert_ne!(cluster().port(), 5432, "never the default port of a system server");
    let owner = first.connect(OWNER_ROLE).await.unwrap();
    owner.batch_execute("CREATE TABLE only_in_first (x int)").await.unwrap();
    let row = owner.query_one("SELECT current_user::text, current_database()::text", &[]).await.unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1)), (OWNER_ROLE.to_owned(), first.name().to_owned()));
    let service = second.connect(SERVICE_ROLE).await.unwrap();
    let privileged: bool = service
        .query_one("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!privileged, "the service role is an ordinary role");
    let isolated: bool = service.query_one("SELECT to_regclass('only_in_first') IS NULL", &[]).await.unwrap().get(0);
    assert!(isolated, "databases do not share tables");
}
