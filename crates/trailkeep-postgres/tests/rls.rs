//! Row-level security, shown with raw SQL: rows of two organisations in every tenant table, written by
//! the owner; the service role sees none of them without `trailkeep.org`, and under organisation a's
//! setting never a row of b's.

use trailkeep_postgres::testing::{OWNER_ROLE, SERVICE_ROLE, cluster};

/// Every tenant table and the column naming each row's organisation.
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
    ("export_jobs", "org_id"),
    ("export_schedules", "org_id"),
];

/// One row of `org` in every tenant table.
fn rows_of(org: &str, n: u8) -> String {
    format!(
        "INSERT INTO events (org_id, seq, id, action, category, occurred_at, received_at, outcome, payload)
             VALUES ('{org}', 1, gen_random_uuid(), 'x.y', 'x', 1, (extract(epoch FROM now()) * 1000)::bigint, 0, '{{}}');
         INSERT INTO event_search VALUES ('{org}', 1, (extract(epoch FROM now()) * 1000)::bigint, 'word:1');
         INSERT INTO org_seq VALUES ('{org}', 1);
         INSERT INTO follower_heads VALUES ('seal', '{org}', 1);
         INSERT INTO orgs VALUES ('{org}', '{org}', 'free', 1, 1, NULL);
         INSERT INTO projects VALUES ('{org}', 'web', 'Web', 1, 1);
         INSERT INTO members VALUES ('{org}', 'ada@{org}.test', NULL, 'admin', '{{}}', 'active', 1, 1);
         INSERT INTO api_keys VALUES ('key_{org}', 'k', 'tk_', '\\x{n:02x}', '{org}', 'events:read', 1, NULL);
         INSERT INTO portal_links VALUES ('\\x{n:02x}', '{org}', 'ada@{org}.test', NULL, 'admin', '{{}}', 'audit_logs', 'key_{org}', 1, 2, NULL);
         INSERT INTO sessions VALUES ('\\x{n:02x}', 'ses_{org}', 'ada@{org}.test', NULL, 'admin', '{org}', '{{}}', NULL, true, 1, 2, NULL);
         INSERT INTO receipts VALUES ('{org}', 1, gen_random_uuid(), 1, '\\x00');
         INSERT INTO tree_nodes VALUES ('{org}', 1, 0, '\\x00');
         INSERT INTO checkpoints VALUES ('{org}', 1, '\\x00', 'note', 1);
         INSERT INTO legal_holds VALUES ('hold_{org}', '{org}', NULL, NULL, NULL, 'case', 1, 'key_{org}', NULL);
         INSERT INTO pruned VALUES ('{org}', 2, 1);
         INSERT INTO export_jobs (id, org_id, format, request, status, events_written, created_at, created_by, attempts)
             VALUES ('exp_{org}', '{org}', 'ndjson', '{{}}', 'queued', 0, 1, 'key_{org}', 0);
         INSERT INTO export_schedules (id, org_id, destination, format, period, created_at, created_by, next_window,
             last_seq, windows_done) VALUES ('sched_{org}', '{org}', 'archive', 'ndjson', 'daily', 1, 'key_{org}', 0, 0, 0);"
    )
}

#[tokio::test]
async fn under_the_service_role_no_tenant_row_is_visible_without_the_setting_and_none_of_another_organisation_with_it()
{
    let database = cluster().database().unwrap();
    trailkeep_postgres::migrate(&database.owner_config(), None, SERVICE_ROLE).await.expect("migrate");
    let owner = database.connect(OWNER_ROLE).await.unwrap();
    owner.batch_execute("SET search_path = trailkeep").await.unwrap();
    owner.batch_execute(&format!("{}; {}", rows_of("a", 1), rows_of("b", 2))).await.unwrap();

    let mut service = database.connect(SERVICE_ROLE).await.unwrap();
    service.batch_execute("SET search_path = trailkeep").await.unwrap();
    for (table, _) in TENANT_TABLES {
        let n: i64 = service.query_one(format!("SELECT count(*) FROM {table}").as_str(), &[]).await.unwrap().get(0);
        assert_eq!(n, 0, "{table} shows rows to the service role without trailkeep.org");
    }
    for (org, other) in [("a", "b"), ("b", "a")] {
        let tx = service.transaction().await.unwrap();
        tx.execute(
            "SELECT set_config('trailkeep.org', $1, true), set_config('trailkeep.projects', '*', true)",
            &[&org],
        )
        .await
        .unwrap();
        for (table, column) in TENANT_TABLES {
            let sql = format!(
                "SELECT count(*) FILTER (WHERE {column} = $1), count(*) FILTER (WHERE {column} = $2) FROM {table}"
            );
            let row = tx.query_one(sql.as_str(), &[&org, &other]).await.unwrap();
            assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (1, 0), "{table} under {org}'s setting");
        }
        // Writing into another organisation is refused as well.
        let forged = tx
            .batch_execute(&format!("INSERT INTO org_seq VALUES ('{other}2', 1)"))
            .await
            .expect_err("a row outside the setting cannot be written");
        let message = forged.as_db_error().map(|e| e.message().to_owned()).unwrap_or_default();
        assert!(message.contains("row-level security"), "{message}");
        tx.rollback().await.unwrap();
    }
    // The session setting ends with its transaction, and the role cannot switch the policies off.
    let n: i64 = service.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0);
    assert_eq!(n, 0);
    let off = service.batch_execute("SET row_security = off; SELECT count(*) FROM events").await;
    assert!(off.is_err(), "the service role cannot turn row-level security off");
}

#[tokio::test]
async fn migrations_are_recorded_applied_once_and_refuse_a_service_role_that_owns_the_tables() {
    let database = cluster().database().unwrap();
    let version = trailkeep_postgres::migrate(&database.owner_config(), None, SERVICE_ROLE).await.expect("migrate");
    assert_eq!(version, trailkeep_postgres::schema::known_version());
    assert_eq!(trailkeep_postgres::migrate(&database.owner_config(), None, SERVICE_ROLE).await.unwrap(), version);
    let owner = database.connect(OWNER_ROLE).await.unwrap();
    let applied: i64 = owner.query_one("SELECT count(*) FROM trailkeep.schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(applied, i64::from(version));
    let partitions: i64 = owner
        .query_one("SELECT count(*) FROM pg_inherits WHERE inhparent = 'trailkeep.events'::regclass", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(partitions, 1 + i64::from(trailkeep_postgres::schema::MONTHS_AHEAD), "this month and those ahead");
    let refused = trailkeep_postgres::migrate(&database.owner_config(), None, OWNER_ROLE).await;
    assert!(refused.is_err(), "granting the service's privileges to the owner would let it bypass the policies");
}
