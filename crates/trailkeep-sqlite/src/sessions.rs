//! Portal links, dashboard sessions and operator accounts in SQLite.
//!
//! Every change goes through the writer thread ([`SessionWrite`] on its queue), in the same transaction
//! as the event that records it. Redeeming a link is one conditional `UPDATE` (unused and unexpired),
//! so two redemptions racing for the same link start one session between them. Reads go to the pool.

use rusqlite::{Connection, OptionalExtension, Row, params};
use trailkeep_core::{NewEvent, OrgId, ProjectId};
use trailkeep_store::sessions::{
    FoundSession, Intent, OperatorRecord, PortalLinkRecord, Role, SessionRecord, SessionRole, SessionStart, SessionUser,
};

/// How long ended and expired sessions and links are kept before they are dropped in passing.
const KEEP_EXPIRED_MS: i64 = 24 * 3_600_000;

/// One change for the writer, with the event recording it (written only when the change happened).
pub struct SessionWrite {
    pub change: SessionChange,
    pub audit: Option<NewEvent>,
}

pub enum SessionChange {
    CreateLink(PortalLinkRecord),
    Start(SessionRecord, SessionStart),
    End { hash: [u8; 32], at: i64 },
    CreateOperator(OperatorRecord),
}

fn join_projects(projects: &[ProjectId]) -> String {
    // Project ids cannot hold a comma.
    projects.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(",")
}

fn split_projects(text: &str) -> Vec<ProjectId> {
    text.split(',').filter(|p| !p.is_empty()).filter_map(|p| ProjectId::parse(p).ok()).collect()
}

fn hash_of(row: &Row<'_>, column: &str) -> rusqlite::Result<[u8; 32]> {
    let bytes: Vec<u8> = row.get(column)?;
    Ok(bytes.try_into().unwrap_or([0; 32]))
}

/// A stored value that no longer parses as what it was written as.
fn corrupt(column: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnName(format!("{column} holds an unknown value"))
}

/// Applies `change`; whether it happened (a link already used, a session already ended or an email
/// already taken leaves everything as it was).
pub fn apply(conn: &Connection, change: &SessionChange) -> rusqlite::Result<bool> {
    match change {
        SessionChange::CreateLink(link) => {
            conn.execute(
                "INSERT INTO portal_links (hash, org_id, email, name, role, projects, intent, issued_by, created_at, expires_at, used_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    link.hash.as_slice(),
                    link.org.as_str(),
                    link.user.email,
                    link.user.name,
                    link.role.as_str(),
                    join_projects(&link.projects),
                    link.intent.as_str(),
                    link.issued_by,
                    link.created_at,
                    link.expires_at,
                    link.used_at
                ],
            )?;
            Ok(true)
        }
        SessionChange::Start(session, start) => {
            if let SessionStart::PortalLink { link, now } = start {
                let consumed = conn.execute(
                    "UPDATE portal_links SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                    params![link.as_slice(), now],
                )?;
                if consumed == 0 {
                    return Ok(false);
                }
            }
            conn.execute(
                "INSERT INTO sessions (hash, id, email, name, role, org_id, projects, issued_by, member_bound, created_at, expires_at, ended_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    session.hash.as_slice(),
                    session.id,
                    session.user.email,
                    session.user.name,
                    session.role.as_str(),
                    session.org.as_ref().map(|o| o.as_str()),
                    join_projects(&session.projects),
                    session.issued_by,
                    session.member_bound,
                    session.created_at,
                    session.expires_at,
                    session.ended_at
                ],
            )?;
            // Long-dead links and sessions are dropped in passing; they let nobody in either way.
            let horizon = session.created_at - KEEP_EXPIRED_MS;
            conn.execute("DELETE FROM portal_links WHERE expires_at < ?1", [horizon])?;
            conn.execute("DELETE FROM sessions WHERE expires_at < ?1 OR ended_at < ?1", [horizon])?;
            Ok(true)
        }
        SessionChange::End { hash, at } => {
            let changed = conn.execute(
                "UPDATE sessions SET ended_at = ?2 WHERE hash = ?1 AND ended_at IS NULL AND expires_at > ?2",
                params![hash.as_slice(), at],
            )?;
            Ok(changed == 1)
        }
        SessionChange::CreateOperator(op) => {
            let inserted = conn.execute(
                "INSERT INTO operators (id, email, name, password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (email) DO NOTHING",
                params![op.id, op.email, op.name, op.password_hash, op.created_at],
            )?;
            Ok(inserted == 1)
        }
    }
}

fn link_from_row(row: &Row<'_>) -> rusqlite::Result<PortalLinkRecord> {
    let org: String = row.get("org_id")?;
    let role: String = row.get("role")?;
    let intent: String = row.get("intent")?;
    let projects: String = row.get("projects")?;
    Ok(PortalLinkRecord {
        hash: hash_of(row, "hash")?,
        org: OrgId::parse(&org).map_err(|_| corrupt("org_id"))?,
        user: SessionUser { email: row.get("email")?, name: row.get("name")? },
        role: Role::parse(&role).ok_or_else(|| corrupt("role"))?,
        projects: split_projects(&projects),
        intent: Intent::parse(&intent).ok_or_else(|| corrupt("intent"))?,
        issued_by: row.get("issued_by")?,
        created_at: row.get("created_at")?,
        expires_at: row.get("expires_at")?,
        used_at: row.get("used_at")?,
    })
}

pub fn find_link(conn: &Connection, hash: &[u8; 32]) -> rusqlite::Result<Option<PortalLinkRecord>> {
    conn.prepare_cached("SELECT * FROM portal_links WHERE hash = ?1")?
        .query_row([hash.as_slice()], link_from_row)
        .optional()
}

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    let role: String = row.get("role")?;
    let org: Option<String> = row.get("org_id")?;
    let projects: String = row.get("projects")?;
    Ok(SessionRecord {
        hash: hash_of(row, "hash")?,
        id: row.get("id")?,
        user: SessionUser { email: row.get("email")?, name: row.get("name")? },
        role: SessionRole::parse(&role).ok_or_else(|| corrupt("role"))?,
        org: org.map(|o| OrgId::parse(&o).map_err(|_| corrupt("org_id"))).transpose()?,
        projects: split_projects(&projects),
        issued_by: row.get("issued_by")?,
        member_bound: row.get("member_bound")?,
        created_at: row.get("created_at")?,
        expires_at: row.get("expires_at")?,
        ended_at: row.get("ended_at")?,
    })
}

/// The session with its issuer's state: a session whose portal link came from a key that has since
/// been revoked (or no longer exists) may not act.
pub fn find_session(conn: &Connection, hash: &[u8; 32]) -> rusqlite::Result<Option<FoundSession>> {
    conn.prepare_cached(
        "SELECT s.*, s.issued_by IS NOT NULL AND (k.id IS NULL OR k.revoked_at IS NOT NULL) AS issuer_revoked \
         FROM sessions s LEFT JOIN api_keys k ON k.id = s.issued_by WHERE s.hash = ?1",
    )?
    .query_row([hash.as_slice()], |row| {
        Ok(FoundSession { session: session_from_row(row)?, issuer_revoked: row.get("issuer_revoked")? })
    })
    .optional()
}

fn operator_from_row(row: &Row<'_>) -> rusqlite::Result<OperatorRecord> {
    Ok(OperatorRecord {
        id: row.get("id")?,
        email: row.get("email")?,
        name: row.get("name")?,
        password_hash: row.get("password_hash")?,
        created_at: row.get("created_at")?,
    })
}

pub fn find_operator(conn: &Connection, email: &str) -> rusqlite::Result<Option<OperatorRecord>> {
    conn.prepare_cached("SELECT * FROM operators WHERE email = ?1")?.query_row([email], operator_from_row).optional()
}

pub fn list_operators(conn: &Connection) -> rusqlite::Result<Vec<OperatorRecord>> {
    let mut stmt = conn.prepare_cached("SELECT * FROM operators ORDER BY created_at, id")?;
    let rows = stmt.query_map([], operator_from_row)?;
    rows.collect()
}
