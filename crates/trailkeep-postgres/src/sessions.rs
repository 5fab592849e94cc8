//! Portal links, dashboard sessions and operator accounts in PostgreSQL, as in the SQLite engine's
//! `sessions.rs`: every change goes through the writer, in the same transaction as the event recording
//! it. Redeeming a link is one conditional `UPDATE` (unused and unexpired), so two redemptions racing for
//! the same link — on one node or two — start one session between them.

use tokio_postgres::{GenericClient, Row};
use trailkeep_core::{NewEvent, OrgId, ProjectId};
use trailkeep_store::sessions::{
    FoundSession, Intent, OperatorRecord, PortalLinkRecord, Role, SessionRecord, SessionRole, SessionStart, SessionUser,
};

use crate::admin::Damaged;

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

fn project_texts(projects: &[ProjectId]) -> Vec<String> {
    projects.iter().map(|p| p.to_string()).collect()
}

fn projects_of(texts: Vec<String>) -> Vec<ProjectId> {
    texts.iter().filter_map(|p| ProjectId::parse(p).ok()).collect()
}

fn hash_of(row: &Row, column: &str) -> [u8; 32] {
    let bytes: Vec<u8> = row.get(column);
    bytes.try_into().unwrap_or([0; 32])
}

fn damaged(what: &'static str, value: &str) -> Damaged {
    Damaged::new(what, value)
}

/// Applies `change`; whether it happened (a link already used, a session already ended or an email
/// already taken leaves everything as it was).
pub async fn apply(tx: &impl GenericClient, change: &SessionChange) -> Result<bool, tokio_postgres::Error> {
    match change {
        SessionChange::CreateLink(link) => {
            tx.execute(
                "INSERT INTO portal_links (hash, org_id, email, name, role, projects, intent, issued_by, created_at, \
                 expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[
                    &link.hash.as_slice(),
                    &link.org.as_str(),
                    &link.user.email,
                    &link.user.name,
                    &link.role.as_str(),
                    &project_texts(&link.projects),
                    &link.intent.as_str(),
                    &link.issued_by,
                    &link.created_at,
                    &link.expires_at,
                    &link.used_at,
                ],
            )
            .await?;
            Ok(true)
        }
        SessionChange::Start(session, start) => {
            if let SessionStart::PortalLink { link, now } = start {
                let consumed = tx
                    .execute(
                        "UPDATE portal_links SET used_at = $2 WHERE hash = $1 AND used_at IS NULL AND expires_at > $2",
                        &[&link.as_slice(), now],
                    )
                    .await?;
                if consumed == 0 {
                    return Ok(false);
                }
            }
            tx.execute(
                "INSERT INTO sessions (hash, id, email, name, role, org_id, projects, issued_by, member_bound, \
                 created_at, expires_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &[
                    &session.hash.as_slice(),
                    &session.id,
                    &session.user.email,
                    &session.user.name,
                    &session.role.as_str(),
                    &session.org.as_ref().map(|o| o.as_str()),
                    &project_texts(&session.projects),
                    &session.issued_by,
                    &session.member_bound,
                    &session.created_at,
                    &session.expires_at,
                    &session.ended_at,
                ],
            )
            .await?;
            Ok(true)
        }
        SessionChange::End { hash, at } => {
            let changed = tx
                .execute(
                    "UPDATE sessions SET ended_at = $2 WHERE hash = $1 AND ended_at IS NULL AND expires_at > $2",
                    &[&hash.as_slice(), at],
                )
                .await?;
            Ok(changed == 1)
        }
        SessionChange::CreateOperator(op) => {
            let inserted = tx
                .execute(
                    "INSERT INTO operators (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT DO NOTHING",
                    &[&op.id, &op.email, &op.name, &op.password_hash, &op.created_at],
                )
                .await?;
            Ok(inserted == 1)
        }
    }
}

pub fn link_from_row(row: &Row) -> Result<PortalLinkRecord, Damaged> {
    let org: &str = row.get("org_id");
    let role: &str = row.get("role");
    let intent: &str = row.get("intent");
    Ok(PortalLinkRecord {
        hash: hash_of(row, "hash"),
        org: OrgId::parse(org).map_err(|_| damaged("organisation id", org))?,
        user: SessionUser { email: row.get("email"), name: row.get("name") },
        role: Role::parse(role).ok_or_else(|| damaged("role", role))?,
        projects: projects_of(row.get("projects")),
        intent: Intent::parse(intent).ok_or_else(|| damaged("intent", intent))?,
        issued_by: row.get("issued_by"),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        used_at: row.get("used_at"),
    })
}

/// A row of `tk_session_by_hash`: the session and whether its issuing key was revoked or is gone.
pub fn found_session_from_row(row: &Row) -> Result<FoundSession, Damaged> {
    let role: &str = row.get("role");
    let org: Option<&str> = row.get("org_id");
    let session = SessionRecord {
        hash: hash_of(row, "hash"),
        id: row.get("id"),
        user: SessionUser { email: row.get("email"), name: row.get("name") },
        role: SessionRole::parse(role).ok_or_else(|| damaged("role", role))?,
        org: org.map(|o| OrgId::parse(o).map_err(|_| damaged("organisation id", o))).transpose()?,
        projects: projects_of(row.get("projects")),
        issued_by: row.get("issued_by"),
        member_bound: row.get("member_bound"),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        ended_at: row.get("ended_at"),
    };
    Ok(FoundSession { session, issuer_revoked: row.get("issuer_revoked") })
}

pub fn operator_from_row(row: &Row) -> OperatorRecord {
    OperatorRecord {
        id: row.get("id"),
        email: row.get("email"),
        name: row.get("name"),
        password_hash: row.get("password_hash"),
        created_at: row.get("created_at"),
    }
}
