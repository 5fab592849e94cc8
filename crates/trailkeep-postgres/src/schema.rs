//! The schema, its versioned migrations, and the privileges of the role the store runs as.
//!
//! Everything lives in the schema `trailkeep`, owned by the role that runs the migrations. Migrations are
//! applied in order, each in its own transaction, under an advisory lock so that nodes starting together
//! take turns; `schema_migrations` records the versions applied. A database migrated by a newer Trailkeep
//! is refused rather than guessed at.
//!
//! **Row-level security.** Every table holding an organisation's data has a policy admitting only rows of
//! the organisations named by the transaction-local setting `trailkeep.org` (one id, or a comma list for
//! the writer, whose group commit spans organisations; ids cannot hold a comma). Events are further
//! limited by `trailkeep.projects`: `*` for the whole organisation, else a comma list. Without the setting
//! no row is visible or writable. The policies read the setting through a scalar subquery, so that it is
//! evaluated once per statement rather than once per row.
//!
//! The store's role owns nothing and cannot bypass the policies. The few reads that are cross-tenant by
//! nature — finding an API key, a portal link or a session by the hash of a secret before anyone knows
//! whose it is, the platform's lists of keys and organisations, the followers asking which organisations
//! have events to seal or index — go through `SECURITY DEFINER` functions owned by the owner, each with
//! one narrow purpose. So does full-text search: the `@@` operator is not leakproof, so behind a policy
//! PostgreSQL would not use the GIN index; `tk_search` checks the caller's setting itself and then does.
//! And so does retention's deletion, since the role may not delete events: `tk_prune` deletes only sealed
//! events of the caller's organisation that no legal hold keeps, once the `retention.deleted` event
//! recording them is in the log, and marks them pruned.
//!
//! **Partitions.** `events` and `event_search` are partitioned by month of `received_at`: the server's
//! clock, so the partition an insert needs is always the current month's, created ahead of need by
//! `tk_ensure_partitions` (at migration, at start and daily), and a past month never receives another
//! row. `occurred_at` is the client's clock and may lie anywhere in the validation window, so partitions
//! by it could not all be created ahead. Retention deletes rows rather than dropping partitions: a month
//! holds every organisation's events, due at different times under different rules and holds (see
//! docs/postgres.md). Primary keys of a
//! partitioned table must hold the partition key, so `(org_id, seq)` and `(org_id, id)` are unique by
//! construction — seqs are assigned under the organisation's counter lock, client ids checked under it —
//! rather than by a unique index; the receipts, which are not partitioned, do enforce `(org_id, seq)`.
//!
//! Identifier and action columns use the `C` collation: the action-prefix ranges (`team.` to `team/`) and
//! every `ORDER BY id` must compare bytes, as SQLite does, whatever the database's locale.

use tokio_postgres::Client;

/// The schema holding every table.
pub const SCHEMA: &str = "trailkeep";

/// Months of partitions kept ready beyond the current one.
pub const MONTHS_AHEAD: i32 = 3;

/// Serialises migrations of nodes starting at the same time (`pg_advisory_lock` key).
const MIGRATION_LOCK: i64 = 0x5452_4b4c_4d49_4752; // "TRKLMIGR"

/// One migration per entry; never edit a released entry, append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE FUNCTION tk_orgs() RETURNS text[] LANGUAGE sql STABLE
    AS $$ SELECT string_to_array(current_setting('trailkeep.org', true), ',') $$;
CREATE FUNCTION tk_projects() RETURNS text[] LANGUAGE sql STABLE
    AS $$ SELECT string_to_array(current_setting('trailkeep.projects', true), ',') $$;

CREATE TABLE events (
    org_id        text COLLATE "C" NOT NULL,
    seq           bigint NOT NULL,
    id            uuid NOT NULL,
    project_id    text COLLATE "C",
    action        text COLLATE "C" NOT NULL,
    category      text COLLATE "C" NOT NULL,
    occurred_at   bigint NOT NULL,
    received_at   bigint NOT NULL,
    actor_type    text COLLATE "C",
    actor_id      text COLLATE "C",
    actor_email   text COLLATE "C",
    resource_type text COLLATE "C",
    resource_id   text COLLATE "C",
    outcome       smallint NOT NULL,
    ip            bytea,
    ai_model      text COLLATE "C",
    ai_provider   text COLLATE "C",
    ai_status     bigint,
    ai_failed     smallint,
    ai_api_key    text COLLATE "C",
    ai_cost       double precision,
    ai_tokens     bigint,
    ai_latency    bigint,
    payload       text NOT NULL,
    PRIMARY KEY (org_id, seq, received_at)
) PARTITION BY RANGE (received_at);
CREATE INDEX events_org_id ON events (org_id, id);
CREATE INDEX events_org_time ON events (org_id, occurred_at, seq);
CREATE INDEX events_org_action ON events (org_id, action, occurred_at, seq);
CREATE INDEX events_org_actor ON events (org_id, actor_id, occurred_at, seq) WHERE actor_id IS NOT NULL;
CREATE INDEX events_org_actor_email ON events (org_id, actor_email, occurred_at, seq) WHERE actor_email IS NOT NULL;
CREATE INDEX events_org_resource ON events (org_id, resource_type, resource_id, occurred_at) WHERE resource_type IS NOT NULL;
CREATE INDEX events_org_project ON events (org_id, project_id, occurred_at, seq) WHERE project_id IS NOT NULL;
CREATE INDEX events_org_model ON events (org_id, ai_model, occurred_at, seq) WHERE ai_model IS NOT NULL;
CREATE INDEX events_org_cost ON events (org_id, ai_cost) WHERE ai_cost IS NOT NULL;

-- The full-text index, filled off the commit path by the indexer.
CREATE TABLE event_search (
    org_id      text COLLATE "C" NOT NULL,
    seq         bigint NOT NULL,
    received_at bigint NOT NULL,
    body        tsvector NOT NULL,
    PRIMARY KEY (org_id, seq, received_at)
) PARTITION BY RANGE (received_at);
CREATE INDEX event_search_body ON event_search USING gin (body);

-- Each organisation's last assigned seq: locked by every transaction that appends to it.
CREATE TABLE org_seq (
    org_id   text COLLATE "C" PRIMARY KEY,
    last_seq bigint NOT NULL
);

-- How far each follower (the sealer, the indexer) has got in each organisation's log.
CREATE TABLE follower_heads (
    follower text COLLATE "C" NOT NULL,
    org_id   text COLLATE "C" NOT NULL,
    done     bigint NOT NULL,
    PRIMARY KEY (follower, org_id)
);

CREATE TABLE api_keys (
    id          text COLLATE "C" PRIMARY KEY,
    name        text NOT NULL,
    prefix      text NOT NULL,
    hash        bytea NOT NULL UNIQUE,
    org_id      text COLLATE "C",
    permissions text NOT NULL,
    created_at  bigint NOT NULL,
    revoked_at  bigint
);
CREATE INDEX api_keys_org ON api_keys (org_id);

-- Keyed by the API key that sent the request, and holding only acknowledgements (ids, seqs, times): no
-- organisation column, so no policy; a request may span organisations.
CREATE TABLE idempotency (
    scope       text COLLATE "C" NOT NULL,
    key         text COLLATE "C" NOT NULL,
    fingerprint bytea NOT NULL,
    response    text NOT NULL,
    created_at  bigint NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_created ON idempotency (created_at);

CREATE TABLE orgs (
    id         text COLLATE "C" PRIMARY KEY,
    name       text NOT NULL,
    plan       text NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    deleted_at bigint
);
CREATE TABLE projects (
    org_id     text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    name       text NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE TABLE members (
    org_id     text COLLATE "C" NOT NULL,
    email      text COLLATE "C" NOT NULL,
    name       text,
    role       text NOT NULL,
    projects   text[] NOT NULL,
    status     text NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (org_id, email)
);

CREATE TABLE portal_links (
    hash       bytea PRIMARY KEY,
    org_id     text COLLATE "C" NOT NULL,
    email      text NOT NULL,
    name       text,
    role       text NOT NULL,
    projects   text[] NOT NULL,
    intent     text NOT NULL,
    issued_by  text COLLATE "C" NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    used_at    bigint
);
CREATE INDEX portal_links_expires ON portal_links (expires_at);
CREATE TABLE sessions (
    hash         bytea PRIMARY KEY,
    id           text COLLATE "C" NOT NULL UNIQUE,
    email        text NOT NULL,
    name         text,
    role         text NOT NULL,
    org_id       text COLLATE "C",
    projects     text[] NOT NULL,
    issued_by    text COLLATE "C",
    member_bound boolean NOT NULL,
    created_at   bigint NOT NULL,
    expires_at   bigint NOT NULL,
    ended_at     bigint
);
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE TABLE operators (
    id            text COLLATE "C" PRIMARY KEY,
    email         text COLLATE "C" NOT NULL UNIQUE,
    name          text,
    password_hash text NOT NULL,
    created_at    bigint NOT NULL
);

-- The ledger: receipts are the leaves of each organisation's tree (leaf seq-1), kept apart from the
-- payloads so that proofs survive retention; tree_nodes the perfect subtrees above them.
CREATE TABLE receipts (
    org_id      text COLLATE "C" NOT NULL,
    seq         bigint NOT NULL,
    id          uuid NOT NULL,
    received_at bigint NOT NULL,
    leaf        bytea NOT NULL,
    PRIMARY KEY (org_id, seq)
);
CREATE INDEX receipts_org_id ON receipts (org_id, id);
CREATE TABLE tree_nodes (
    org_id text COLLATE "C" NOT NULL,
    level  smallint NOT NULL,
    idx    bigint NOT NULL,
    hash   bytea NOT NULL,
    PRIMARY KEY (org_id, level, idx)
);
CREATE TABLE checkpoints (
    org_id     text COLLATE "C" NOT NULL,
    size       bigint NOT NULL,
    root       bytea NOT NULL,
    note       text NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (org_id, size)
);

-- Row-level security on every tenant table.
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON events
    USING (org_id = ANY ((SELECT tk_orgs())::text[])
           AND ('*' = ANY ((SELECT tk_projects())::text[]) OR project_id = ANY ((SELECT tk_projects())::text[])));
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['event_search', 'org_seq', 'follower_heads', 'projects', 'members', 'portal_links',
                             'receipts', 'tree_nodes', 'checkpoints'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant ON %I USING (org_id = ANY ((SELECT tk_orgs())::text[]))', t);
    END LOOP;
END $$;
ALTER TABLE orgs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON orgs USING (id = ANY ((SELECT tk_orgs())::text[]));
-- A platform key (no organisation), an operator's session and the operators themselves belong to the
-- platform's own log.
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON api_keys USING (COALESCE(org_id, '_platform') = ANY ((SELECT tk_orgs())::text[]));
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON sessions USING (COALESCE(org_id, '_platform') = ANY ((SELECT tk_orgs())::text[]));
ALTER TABLE operators ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON operators USING ('_platform' = ANY ((SELECT tk_orgs())::text[]));

-- Cross-tenant reads, each with one purpose (see the module documentation of schema.rs).
CREATE FUNCTION tk_api_key_by_hash(p_hash bytea) RETURNS SETOF api_keys
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = trailkeep, pg_temp
    AS $$ SELECT * FROM api_keys WHERE hash = p_hash $$;
CREATE FUNCTION tk_api_key_by_id(p_id text) RETURNS SETOF api_keys
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = trailkeep, pg_temp
    AS $$ SELECT * FROM api_keys WHERE id = p_id $$;
CREATE FUNCTION tk_api_keys() RETURNS SETOF api_keys
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = trailkeep, pg_temp
    AS $$ SELECT * FROM api_keys ORDER BY created_at DESC, id DESC $$;
CREATE FUNCTION tk_live_orgs(p_after text, p_limit bigint) RETURNS SETOF orgs
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = trailkeep, pg_temp
    AS $$ SELECT * FROM orgs WHERE deleted_at IS NULL AND id > p_after AND id NOT LIKE '\_%'
          ORDER BY id LIMIT p_limit $$;
CREATE FUNCTION tk_portal_link_by_hash(p_hash bytea) RETURNS SETOF portal_links
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = trailkeep, pg_temp
    AS $$ SELECT * FROM portal_links WHERE hash = p_hash $$;
CREATE FUNCTION tk_session_by_hash(p_hash bytea)
    RETURNS TABLE (hash bytea, id text, email text, name text, role text, org_id text, projects text[],
                   issued_by text, member_bound boolean, created_at bigint, expires_at bigint, ended_at bigint,
                   issuer_revoked boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = trailkeep, pg_temp
    AS $$ SELECT s.hash, s.id, s.email, s.name, s.role, s.org_id, s.projects, s.issued_by, s.member_bound,
                 s.created_at, s.expires_at, s.ended_at,
                 s.issued_by IS NOT NULL AND (k.id IS NULL OR k.revoked_at IS NOT NULL)
          FROM sessions s LEFT JOIN api_keys k ON k.id = s.issued_by WHERE s.hash = p_hash $$;
-- Organisations whose log has events the follower has not handled yet.
CREATE FUNCTION tk_stale_orgs(p_follower text, p_limit bigint)
    RETURNS TABLE (org_id text, done bigint, last_seq bigint)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = trailkeep, pg_temp
    AS $$ SELECT s.org_id, COALESCE(h.done, 0), s.last_seq FROM org_seq s
          LEFT JOIN follower_heads h ON h.follower = p_follower AND h.org_id = s.org_id
          WHERE s.last_seq > COALESCE(h.done, 0) ORDER BY s.org_id LIMIT p_limit $$;
-- Full text within one organisation the caller's setting names.
CREATE FUNCTION tk_search(p_org text, p_query tsquery) RETURNS SETOF bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = trailkeep, pg_temp
    AS $$ SELECT seq FROM event_search
          WHERE org_id = p_org AND p_org = ANY (tk_orgs()) AND body @@ p_query $$;
-- Drops idempotency records, portal links and sessions past their use.
CREATE FUNCTION tk_purge_expired(p_idempotency_before bigint, p_sessions_before bigint) RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = trailkeep, pg_temp
    AS $$ DELETE FROM idempotency WHERE created_at < p_idempotency_before;
          DELETE FROM portal_links WHERE expires_at < p_sessions_before;
          DELETE FROM sessions WHERE expires_at < p_sessions_before OR ended_at < p_sessions_before $$;
-- Creates the monthly partitions of events and event_search from the current month to months_ahead
-- months beyond it; returns how many it created.
CREATE FUNCTION tk_ensure_partitions(p_months_ahead integer) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = trailkeep, pg_temp
    AS $$
DECLARE
    first_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
    m timestamp;
    t text;
    part text;
    created integer := 0;
BEGIN
    -- Nodes may call this at the same moment: one at a time.
    PERFORM pg_advisory_xact_lock(5787048089466929234);
    FOR i IN 0..p_months_ahead LOOP
        m := first_month + make_interval(months => i);
        FOREACH t IN ARRAY ARRAY['events', 'event_search'] LOOP
            part := t || '_' || to_char(m, 'YYYYMM');
            IF to_regclass(format('trailkeep.%I', part)) IS NULL THEN
                EXECUTE format('CREATE TABLE trailkeep.%I PARTITION OF trailkeep.%I FOR VALUES FROM (%s) TO (%s)',
                    part, t,
                    (extract(epoch FROM m) * 1000)::bigint,
                    (extract(epoch FROM m + interval '1 month') * 1000)::bigint);
                created := created + 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN created;
END $$;
"#,
    // Retention: an organisation's own retention (its JSON, as the SQLite engine keeps it), legal holds,
    // and the seqs retention pruned with the seq of the `retention.deleted` event recording each, so
    // exports and proofs tell a pruned event from a missing one. The service may not delete events; it
    // prunes through `tk_prune`, which deletes only sealed, unheld events of the transaction's own
    // organisation, and only once the event recording their deletion is in the log.
    r#"
ALTER TABLE orgs ADD COLUMN retention text;
CREATE TABLE legal_holds (
    id        text COLLATE "C" PRIMARY KEY,
    org_id    text COLLATE "C" NOT NULL,
    actor     text COLLATE "C",
    from_ms   bigint,
    to_ms     bigint,
    reason    text NOT NULL,
    placed_at bigint NOT NULL,
    placed_by text NOT NULL,
    lifted_at bigint
);
CREATE INDEX legal_holds_org ON legal_holds (org_id, placed_at);
CREATE TABLE pruned (
    org_id text COLLATE "C" NOT NULL,
    seq    bigint NOT NULL,
    by_seq bigint NOT NULL,
    PRIMARY KEY (org_id, seq)
);
ALTER TABLE legal_holds ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON legal_holds USING (org_id = ANY ((SELECT tk_orgs())::text[]));
ALTER TABLE pruned ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON pruned USING (org_id = ANY ((SELECT tk_orgs())::text[]));

-- Deletes the events `p_seqs` of `p_org` and their full-text rows, marking each pruned by `p_by`. Refuses
-- (and so aborts the caller's transaction) unless the organisation is one the caller's setting names,
-- every event is sealed (its receipt outlives it), none is kept by a legal hold in force, and `p_by` is a
-- `retention.deleted` event of the same log. Returns how many events it deleted.
CREATE FUNCTION tk_prune(p_org text, p_seqs bigint[], p_by bigint) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = trailkeep, pg_temp
    AS $$
DECLARE
    deleted bigint;
BEGIN
    IF p_org IS NULL OR NOT (p_org = ANY (tk_orgs())) THEN
        RAISE EXCEPTION 'tk_prune: organisation % is not named by trailkeep.org', p_org;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM events WHERE org_id = p_org AND seq = p_by AND action = 'retention.deleted') THEN
        RAISE EXCEPTION 'tk_prune: % is not a retention.deleted event of %', p_by, p_org;
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_seqs) s
               WHERE NOT EXISTS (SELECT 1 FROM receipts r WHERE r.org_id = p_org AND r.seq = s)) THEN
        RAISE EXCEPTION 'tk_prune: only sealed events of % can be pruned', p_org;
    END IF;
    -- As LegalHold::holds: the actor by id, or by email ignoring ASCII case (lower() under the C
    -- collation folds ASCII only), and occurred_at within [from, to).
    IF EXISTS (SELECT 1 FROM events e JOIN legal_holds h ON h.org_id = e.org_id
               WHERE e.org_id = p_org AND e.seq = ANY (p_seqs) AND h.lifted_at IS NULL
                 AND (h.actor IS NULL OR e.actor_id = h.actor OR lower(e.actor_email) = lower(h.actor))
                 AND (h.from_ms IS NULL OR e.occurred_at >= h.from_ms)
                 AND (h.to_ms IS NULL OR e.occurred_at < h.to_ms)) THEN
        RAISE EXCEPTION 'tk_prune: a legal hold keeps events of %', p_org;
    END IF;
    INSERT INTO pruned (org_id, seq, by_seq) SELECT p_org, s, p_by FROM unnest(p_seqs) s;
    DELETE FROM event_search WHERE org_id = p_org AND seq = ANY (p_seqs);
    DELETE FROM events WHERE org_id = p_org AND seq = ANY (p_seqs);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    -- The recording event counts every seq: each must have been an event row.
    IF deleted <> cardinality(p_seqs) THEN
        RAISE EXCEPTION 'tk_prune: % of % events of % were there to delete', deleted, cardinality(p_seqs), p_org;
    END IF;
    RETURN deleted;
END $$;
"#,
    // Resource filters follow the timeline: `resource_id` and `resource_type` are filters of their own,
    // each compared for equality and read newest first, so each gets an index ending in the timeline's
    // order. They replace the index on both columns together, which answered neither alone in order.
    r#"
CREATE INDEX events_org_resource_id ON events (org_id, resource_id, occurred_at, seq) WHERE resource_id IS NOT NULL;
CREATE INDEX events_org_resource_type ON events (org_id, resource_type, occurred_at, seq)
    WHERE resource_type IS NOT NULL;
DROP INDEX events_org_resource;
"#,
    // Export jobs (run in the background, leased to whoever runs them) and scheduled exports with the
    // window each has reached. The workers find work across organisations through the functions below;
    // every change is made inside the organisation's own setting.
    r#"
CREATE TABLE export_jobs (
    id             text COLLATE "C" PRIMARY KEY,
    org_id         text COLLATE "C" NOT NULL,
    format         text NOT NULL,
    request        text NOT NULL,
    status         text NOT NULL,
    events_written bigint NOT NULL,
    total_estimate bigint,
    created_at     bigint NOT NULL,
    created_by     text NOT NULL,
    started_at     bigint,
    finished_at    bigint,
    error          text,
    file           text,
    bytes          bigint,
    lease_owner    text,
    lease_until    bigint,
    attempts       integer NOT NULL
);
CREATE INDEX export_jobs_org ON export_jobs (org_id, created_at);
CREATE INDEX export_jobs_status ON export_jobs (status, created_at);
CREATE INDEX export_jobs_finished ON export_jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE export_schedules (
    id               text COLLATE "C" PRIMARY KEY,
    org_id           text COLLATE "C" NOT NULL,
    destination      text NOT NULL,
    format           text NOT NULL,
    period           text NOT NULL,
    created_at       bigint NOT NULL,
    created_by       text NOT NULL,
    next_window      bigint NOT NULL,
    last_seq         bigint NOT NULL,
    windows_done     bigint NOT NULL,
    last_exported_at bigint,
    last_error       text,
    lease_owner      text,
    lease_until      bigint
);
CREATE INDEX export_schedules_org ON export_schedules (org_id, created_at);
ALTER TABLE export_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON export_jobs USING (org_id = ANY ((SELECT tk_orgs())::text[]));
ALTER TABLE export_schedules ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON export_schedules USING (org_id = ANY ((SELECT tk_orgs())::text[]));
CREATE FUNCTION tk_export_jobs_due(p_now bigint) RETURNS SETOF export_jobs
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = trailkeep, pg_temp
    AS $$ SELECT * FROM export_jobs WHERE status = 'queued'
          OR (status = 'running' AND (lease_until IS NULL OR lease_until < p_now))
          ORDER BY created_at, id LIMIT 100 $$;
CREATE FUNCTION tk_export_jobs_finished_before(p_before bigint) RETURNS SETOF export_jobs
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = trailkeep, pg_temp
    AS $$ SELECT * FROM export_jobs WHERE finished_at < p_before ORDER BY finished_at LIMIT 1000 $$;
CREATE FUNCTION tk_export_schedules() RETURNS SETOF export_schedules
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = trailkeep, pg_temp
    AS $$ SELECT * FROM export_schedules ORDER BY created_at, id $$;
"#,
];

/// The functions the store's role may call; every other function stays the owner's.
const SERVICE_FUNCTIONS: &[&str] = &[
    "tk_orgs()",
    "tk_projects()",
    "tk_api_key_by_hash(bytea)",
    "tk_api_key_by_id(text)",
    "tk_api_keys()",
    "tk_live_orgs(text, bigint)",
    "tk_portal_link_by_hash(bytea)",
    "tk_session_by_hash(bytea)",
    "tk_stale_orgs(text, bigint)",
    "tk_search(text, tsquery)",
    "tk_purge_expired(bigint, bigint)",
    "tk_ensure_partitions(integer)",
    "tk_prune(text, bigint[], bigint)",
    "tk_export_jobs_due(bigint)",
    "tk_export_jobs_finished_before(bigint)",
    "tk_export_schedules()",
];

/// What the store's role may do to each table. Events and the ledger are insert-only for it: the service
/// can add to history but never rewrite it; retention deletes events only through `tk_prune`.
const SERVICE_TABLES: &[(&str, &str)] = &[
    ("schema_migrations", "SELECT"),
    ("events", "SELECT, INSERT"),
    ("event_search", "SELECT, INSERT"),
    ("receipts", "SELECT, INSERT"),
    ("tree_nodes", "SELECT, INSERT"),
    ("checkpoints", "SELECT, INSERT"),
    ("org_seq", "SELECT, INSERT, UPDATE"),
    ("follower_heads", "SELECT, INSERT, UPDATE"),
    ("api_keys", "SELECT, INSERT, UPDATE"),
    ("orgs", "SELECT, INSERT, UPDATE"),
    ("portal_links", "SELECT, INSERT, UPDATE"),
    ("sessions", "SELECT, INSERT, UPDATE"),
    ("operators", "SELECT, INSERT"),
    ("projects", "SELECT, INSERT, UPDATE, DELETE"),
    ("members", "SELECT, INSERT, UPDATE, DELETE"),
    ("legal_holds", "SELECT, INSERT, UPDATE"),
    // Written only by tk_prune.
    ("pruned", "SELECT"),
    ("idempotency", "SELECT, INSERT, UPDATE"),
    ("export_jobs", "SELECT, INSERT, UPDATE, DELETE"),
    ("export_schedules", "SELECT, INSERT, UPDATE, DELETE"),
];

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the database is at schema version {found}, newer than this build knows ({known}); upgrade trailkeep")]
    TooNew { found: i32, known: i32 },
    #[error("migration to version {version} failed: {source}")]
    Failed { version: i32, source: tokio_postgres::Error },
    #[error("{what}: {source}")]
    Sql { what: &'static str, source: tokio_postgres::Error },
    #[error(
        "the service role {0:?} is the role that runs migrations; the store must run as a role that owns no \
         table, so that row-level security applies to it (see docs/postgres.md)"
    )]
    ServiceIsOwner(String),
}

/// The schema version this build knows.
pub fn known_version() -> i32 {
    MIGRATIONS.len() as i32
}

/// Quotes an identifier for SQL text.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Applies every migration the database lacks, grants `service_role` what the store needs, and makes
/// sure the coming months' partitions exist. Runs as the role that owns (or is to own) the schema.
pub async fn migrate(client: &Client, service_role: &str) -> Result<i32, MigrateError> {
    let sql = |what: &'static str| move |source| MigrateError::Sql { what, source };
    if client
        .query_one("SELECT current_user::text", &[])
        .await
        .map_err(sql("reading the current role"))?
        .get::<_, String>(0)
        == service_role
    {
        return Err(MigrateError::ServiceIsOwner(service_role.to_owned()));
    }
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(sql("taking the migration lock"))?;
    let result = migrate_locked(client, service_role).await;
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    result
}

async fn migrate_locked(client: &Client, service_role: &str) -> Result<i32, MigrateError> {
    let sql = |what: &'static str| move |source| MigrateError::Sql { what, source };
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {SCHEMA}; SET search_path = {SCHEMA}, pg_temp; \
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .await
        .map_err(sql("creating the schema"))?;
    let found: i32 = client
        .query_one("SELECT COALESCE(max(version), 0) FROM schema_migrations", &[])
        .await
        .map_err(sql("reading the schema version"))?
        .get(0);
    let known = known_version();
    if found > known {
        return Err(MigrateError::TooNew { found, known });
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as i32 + 1;
        let fail = |source| MigrateError::Failed { version, source };
        client.batch_execute("BEGIN").await.map_err(fail)?;
        let applied = async {
            client.batch_execute(step).await?;
            client.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&version]).await?;
            client.batch_execute("COMMIT").await
        }
        .await;
        if let Err(source) = applied {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(MigrateError::Failed { version, source });
        }
        tracing::info!(version, "applied a PostgreSQL schema migration");
    }
    grant(client, service_role).await.map_err(sql("granting the service role its privileges"))?;
    client
        .execute("SELECT tk_ensure_partitions($1)", &[&MONTHS_AHEAD])
        .await
        .map_err(sql("creating the coming months' partitions"))?;
    Ok(known)
}

/// Grants (again: granting is idempotent) what the store's role needs and nothing more.
async fn grant(client: &Client, service_role: &str) -> Result<(), tokio_postgres::Error> {
    let role = quote_ident(service_role);
    let mut sql = format!("GRANT USAGE ON SCHEMA {SCHEMA} TO {role};\n");
    for (table, privileges) in SERVICE_TABLES {
        sql.push_str(&format!("GRANT {privileges} ON {SCHEMA}.{table} TO {role};\n"));
    }
    for function in SERVICE_FUNCTIONS {
        sql.push_str(&format!(
            "REVOKE ALL ON FUNCTION {SCHEMA}.{function} FROM PUBLIC;\nGRANT EXECUTE ON FUNCTION {SCHEMA}.{function} TO {role};\n"
        ));
    }
    client.batch_execute(&sql).await
}

/// Why the store refuses to run on a database as a role.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("the database has no Trailkeep schema yet; run `trailkeep migrate` first")]
    NotMigrated,
    #[error("the database is at schema version {found} but this build expects {known}; run `trailkeep migrate`")]
    WrongVersion { found: i32, known: i32 },
    #[error(
        "the role {0:?} can bypass row-level security (a superuser, BYPASSRLS, or the tables' owner); \
         connect as a role that owns nothing (see docs/postgres.md)"
    )]
    Privileged(String),
    #[error("checking the database: {0}")]
    Sql(#[from] tokio_postgres::Error),
}

/// Checks, as the store's role, that the schema is current and that row-level security binds the role.
pub async fn check(client: &Client) -> Result<(), CheckError> {
    let migrated: bool =
        client.query_one("SELECT to_regclass('trailkeep.schema_migrations') IS NOT NULL", &[]).await?.get(0);
    if !migrated {
        return Err(CheckError::NotMigrated);
    }
    let found: i32 =
        client.query_one("SELECT COALESCE(max(version), 0) FROM trailkeep.schema_migrations", &[]).await?.get(0);
    if found != known_version() {
        return Err(CheckError::WrongVersion { found, known: known_version() });
    }
    let row = client
        .query_one(
            "SELECT current_user::text, r.rolsuper OR r.rolbypassrls OR pg_has_role(c.relowner, 'MEMBER') \
             FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = 'trailkeep.events'::regclass",
            &[],
        )
        .await?;
    if row.get::<_, bool>(1) {
        return Err(CheckError::Privileged(row.get(0)));
    }
    Ok(())
}
