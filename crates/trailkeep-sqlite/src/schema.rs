//! The database schema and its versioned migrations.
//!
//! Migrations are applied in order at open, each in its own transaction, and the version reached is
//! kept in SQLite's `user_version`. A data directory written by a newer Trailkeep is refused rather
//! than guessed at.

use rusqlite::Connection;

/// The main database, one migration per entry; never edit a released entry, append a new one.
const MAIN: &[&str] = &[
    r#"
CREATE TABLE events (
    pos           INTEGER PRIMARY KEY,
    org_id        TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    id            BLOB    NOT NULL,
    project_id    TEXT,
    action        TEXT    NOT NULL,
    category      TEXT    NOT NULL,
    occurred_at   INTEGER NOT NULL,
    received_at   INTEGER NOT NULL,
    actor_type    TEXT,
    actor_id      TEXT,
    actor_email   TEXT,
    resource_type TEXT,
    resource_id   TEXT,
    outcome       INTEGER NOT NULL,
    ip            BLOB,
    ai_model      TEXT,
    ai_provider   TEXT,
    ai_status     INTEGER,
    ai_failed     INTEGER,
    ai_api_key    TEXT,
    ai_cost       REAL,
    ai_tokens     INTEGER,
    ai_latency    INTEGER,
    payload       TEXT    NOT NULL
);
CREATE UNIQUE INDEX events_org_seq ON events (org_id, seq);
CREATE UNIQUE INDEX events_org_id ON events (org_id, id);
CREATE INDEX events_org_time ON events (org_id, occurred_at, seq);
CREATE INDEX events_org_action ON events (org_id, action, occurred_at, seq);
CREATE INDEX events_org_actor ON events (org_id, actor_id, occurred_at, seq) WHERE actor_id IS NOT NULL;
CREATE INDEX events_org_actor_email ON events (org_id, actor_email, occurred_at, seq) WHERE actor_email IS NOT NULL;
CREATE INDEX events_org_resource ON events (org_id, resource_type, resource_id, occurred_at) WHERE resource_type IS NOT NULL;
CREATE INDEX events_org_project ON events (org_id, project_id, occurred_at, seq) WHERE project_id IS NOT NULL;
CREATE INDEX events_org_model ON events (org_id, ai_model, occurred_at, seq) WHERE ai_model IS NOT NULL;
CREATE INDEX events_org_cost ON events (org_id, ai_cost) WHERE ai_cost IS NOT NULL;

CREATE TABLE api_keys (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    prefix      TEXT    NOT NULL,
    hash        BLOB    NOT NULL UNIQUE,
    org_id      TEXT,
    permissions TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX api_keys_org ON api_keys (org_id);

CREATE TABLE idempotency (
    scope       TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    fingerprint BLOB    NOT NULL,
    response    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency (created_at);
"#,
    // Organisations, their projects and members. Every organisation that already has events exists.
    r#"
CREATE TABLE orgs (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    plan       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
) WITHOUT ROWID;
INSERT INTO orgs (id, name, plan, created_at, updated_at)
    SELECT org_id, org_id, 'free', MIN(received_at), MIN(received_at) FROM events GROUP BY org_id;
CREATE TABLE projects (
    org_id     TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, id)
) WITHOUT ROWID;
CREATE TABLE members (
    org_id     TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    name       TEXT,
    role       TEXT    NOT NULL,
    projects   TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, email)
) WITHOUT ROWID;
"#,
    // Portal links, dashboard sessions and operator accounts. Links and sessions are kept under the
    // SHA-256 of their token, operators under an argon2id hash of the password.
    r#"
CREATE TABLE portal_links (
    hash       BLOB    PRIMARY KEY,
    org_id     TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    name       TEXT,
    role       TEXT    NOT NULL,
    projects   TEXT    NOT NULL,
    intent     TEXT    NOT NULL,
    issued_by  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) WITHOUT ROWID;
CREATE INDEX portal_links_expires ON portal_links (expires_at);
CREATE TABLE sessions (
    hash         BLOB    PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    email        TEXT    NOT NULL,
    name         TEXT,
    role         TEXT    NOT NULL,
    org_id       TEXT,
    projects     TEXT    NOT NULL,
    issued_by    TEXT,
    member_bound INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ended_at     INTEGER
) WITHOUT ROWID;
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE TABLE operators (
    id            TEXT    PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    name          TEXT,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // Retention: an organisation's own retention, legal holds, and the seqs retention pruned (with the
    // seq of the `retention.deleted` event that records it), so exports and proofs tell a pruned event
    // from a missing one. Deleted rows' positions wait in `fts_deletions` for the full-text indexer.
    r#"
ALTER TABLE orgs ADD COLUMN retention TEXT;
CREATE TABLE legal_holds (
    id         TEXT    PRIMARY KEY,
    org_id     TEXT    NOT NULL,
    actor      TEXT,
    from_ms    INTEGER,
    to_ms      INTEGER,
    reason     TEXT    NOT NULL,
    placed_at  INTEGER NOT NULL,
    placed_by  TEXT    NOT NULL,
    lifted_at  INTEGER
) WITHOUT ROWID;
CREATE INDEX legal_holds_org ON legal_holds (org_id, placed_at);
CREATE TABLE pruned (
    org_id TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    by_seq INTEGER NOT NULL,
    PRIMARY KEY (org_id, seq)
) WITHOUT ROWID;
CREATE TABLE fts_deletions (id INTEGER PRIMARY KEY, pos INTEGER NOT NULL);
"#,
    // Payloads are kept in their canonical (RFC 8785) form, which is the leaf data, so that the sealer
    // hashes them as stored. Rewriting older payloads into that form leaves every leaf, and so every root
    // and checkpoint, as it was.
    r#"
UPDATE events SET payload = trailkeep_canonical(payload);
"#,
    // The AI requests in timeline order, for the AI view (whose status filter names the index's condition)
    // and its totals, which the index covers: an organisation whose AI requests are rare among its events
    // is no longer walked event by event for a page, nor read row by row for a total.
    r#"
CREATE INDEX IF NOT EXISTS events_org_ai ON events (org_id, occurred_at, seq, ai_failed, ai_tokens, ai_cost) WHERE ai_failed IS NOT NULL;
"#,
    // Export jobs (run in the background, leased to whoever runs them) and scheduled exports with the
    // window each has reached. `IF NOT EXISTS`, so that a database whose version was set back (as the
    // upgrade test does) migrates forward again.
    r#"
CREATE TABLE IF NOT EXISTS export_jobs (
    id             TEXT    PRIMARY KEY,
    org_id         TEXT    NOT NULL,
    format         TEXT    NOT NULL,
    request        TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    events_written INTEGER NOT NULL,
    total_estimate INTEGER,
    created_at     INTEGER NOT NULL,
    created_by     TEXT    NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER,
    error          TEXT,
    file           TEXT,
    bytes          INTEGER,
    lease_owner    TEXT,
    lease_until    INTEGER,
    attempts       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS export_jobs_org ON export_jobs (org_id, created_at);
CREATE INDEX IF NOT EXISTS export_jobs_status ON export_jobs (status, created_at);
CREATE INDEX IF NOT EXISTS export_jobs_finished ON export_jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS export_schedules (
    id               TEXT    PRIMARY KEY,
    org_id           TEXT    NOT NULL,
    destination      TEXT    NOT NULL,
    format           TEXT    NOT NULL,
    period           TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    created_by       TEXT    NOT NULL,
    next_window      INTEGER NOT NULL,
    last_seq         INTEGER NOT NULL,
    windows_done     INTEGER NOT NULL,
    last_exported_at INTEGER,
    last_error       TEXT,
    lease_owner      TEXT,
    lease_until      INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS export_schedules_org ON export_schedules (org_id, created_at);
"#,
];

/// The full-text side database: derived from the main one and rebuilt from its watermark after a crash.
const SEARCH: &[&str] = &[
    r#"
CREATE VIRTUAL TABLE fts USING fts5 (
    body,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TABLE watermark (id INTEGER PRIMARY KEY CHECK (id = 1), pos INTEGER NOT NULL);
INSERT INTO watermark (id, pos) VALUES (1, 0);
"#,
    r#"
CREATE TABLE deletions_watermark (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL);
INSERT INTO deletions_watermark (id, last) VALUES (1, 0);
"#,
];

/// The ledger database: each organisation's Merkle tree and signed checkpoints, derived from the events
/// in order by the sealer. Each event's receipt — its seq, id, receipt time and leaf hash — is kept here,
/// apart from the payload, so that deleting a payload later leaves every proof intact; the receipts are
/// the tree's leaves and `tree_nodes` holds the perfect subtrees above them.
const LEDGER: &[&str] = &[
    r#"
CREATE TABLE tree_nodes (
    org_id TEXT    NOT NULL,
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    hash   BLOB    NOT NULL,
    PRIMARY KEY (org_id, level, idx)
) WITHOUT ROWID;
CREATE TABLE checkpoints (
    org_id     TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    root       BLOB    NOT NULL,
    note       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, size)
) WITHOUT ROWID;
CREATE TABLE watermark (id INTEGER PRIMARY KEY CHECK (id = 1), pos INTEGER NOT NULL);
INSERT INTO watermark (id, pos) VALUES (1, 0);
"#,
    // Receipts: leaves move out of tree_nodes into a table that also names each leaf's event. The tree is
    // rebuilt from the events by sealing again from the start; roots are deterministic, so the checkpoints
    // already issued stay valid.
    r#"
CREATE TABLE receipts (
    org_id      TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    id          BLOB    NOT NULL,
    received_at INTEGER NOT NULL,
    leaf        BLOB    NOT NULL,
    PRIMARY KEY (org_id, seq)
) WITHOUT ROWID;
CREATE INDEX receipts_org_id ON receipts (org_id, id);
DELETE FROM tree_nodes;
UPDATE watermark SET pos = 0;
"#,
];

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the database is at schema version {found}, newer than this build knows ({known}); upgrade trailkeep")]
    TooNew { found: i64, known: i64 },
    #[error("migration to version {version} failed: {source}")]
    Failed { version: i64, source: rusqlite::Error },
}

fn apply(conn: &mut Connection, steps: &[&str]) -> Result<(), MigrateError> {
    let known = steps.len() as i64;
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|source| MigrateError::Failed { version: 0, source })?;
    if found > known {
        return Err(MigrateError::TooNew { found, known });
    }
    for (i, sql) in steps.iter().enumerate().skip(found as usize) {
        let version = i as i64 + 1;
        let fail = |source| MigrateError::Failed { version, source };
        let tx = conn.transaction().map_err(fail)?;
        tx.execute_batch(sql).map_err(fail)?;
        tx.pragma_update(None, "user_version", version).map_err(fail)?;
        tx.commit().map_err(fail)?;
    }
    Ok(())
}

pub fn migrate_main(conn: &mut Connection) -> Result<(), MigrateError> {
    register_canonical(conn).map_err(|source| MigrateError::Failed { version: 0, source })?;
    apply(conn, MAIN)
}

/// `trailkeep_canonical(json)`: the RFC 8785 form of a JSON text; a text that is not JSON (which only a
/// damaged row could hold) is left as it is.
fn register_canonical(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "trailkeep_canonical",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let text: String = ctx.get(0)?;
            Ok(match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(value) => String::from_utf8(trailkeep_core::leaf::canonical(&value)).unwrap_or(text),
                Err(_) => text,
            })
        },
    )
}

pub fn migrate_search(conn: &mut Connection) -> Result<(), MigrateError> {
    apply(conn, SEARCH)
}

pub fn migrate_ledger(conn: &mut Connection) -> Result<(), MigrateError> {
    apply(conn, LEDGER)
}
