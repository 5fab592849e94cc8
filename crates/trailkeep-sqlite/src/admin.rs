//! Organisations, projects and members: the writer's side (applied inside its transactions, with the
//! event recording each change) and the readers' side.

use rusqlite::{Connection, OptionalExtension, Row, params};
use trailkeep_core::{OrgId, ProjectId};
use trailkeep_store::orgs::{AdminChange, AdminError, MemberRecord, MemberStatus, OrgRecord, ProjectRecord, Role};
use trailkeep_store::retention::LegalHold;

fn failed(e: rusqlite::Error) -> AdminError {
    AdminError::Failed(e.to_string())
}

/// `Exists` for a taken primary key, `Failed` for anything else.
fn insert_failed(e: rusqlite::Error) -> AdminError {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            AdminError::Exists
        }
        other => failed(other),
    }
}

fn one_row(changed: usize) -> Result<(), AdminError> {
    if changed == 1 { Ok(()) } else { Err(AdminError::NotFound) }
}

fn projects_text(projects: &[ProjectId]) -> String {
    projects.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(",")
}

/// Applies one change on the writer's connection; the caller appends its event in the same transaction.
pub fn apply(conn: &Connection, change: &AdminChange) -> Result<(), AdminError> {
    match change {
        AdminChange::CreateOrg(o) => conn
            .execute(
                "INSERT INTO orgs (id, name, plan, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![o.id.as_str(), o.name, o.plan, o.created_at, o.updated_at],
            )
            .map(|_| ())
            .map_err(insert_failed),
        AdminChange::UpdateOrg(o) => one_row(
            conn.execute(
                "UPDATE orgs SET name = ?2, plan = ?3, updated_at = ?4 WHERE id = ?1 AND deleted_at IS NULL",
                params![o.id.as_str(), o.name, o.plan, o.updated_at],
            )
            .map_err(failed)?,
        ),
        AdminChange::DeleteOrg { id, at } => one_row(
            conn.execute(
                "UPDATE orgs SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
                params![id.as_str(), at],
            )
            .map_err(failed)?,
        ),
        AdminChange::CreateProject(p) => {
            live_org(conn, &p.org)?;
            conn.execute(
                "INSERT INTO projects (org_id, id, name, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![p.org.as_str(), p.id.as_str(), p.name, p.created_at, p.updated_at],
            )
            .map(|_| ())
            .map_err(insert_failed)
        }
        AdminChange::UpdateProject(p) => one_row(
            conn.execute(
                "UPDATE projects SET name = ?3, updated_at = ?4 WHERE org_id = ?1 AND id = ?2",
                params![p.org.as_str(), p.id.as_str(), p.name, p.updated_at],
            )
            .map_err(failed)?,
        ),
        AdminChange::DeleteProject { org, id } => one_row(
            conn.execute("DELETE FROM projects WHERE org_id = ?1 AND id = ?2", params![org.as_str(), id.as_str()])
                .map_err(failed)?,
        ),
        AdminChange::AddMember(m) => {
            live_org(conn, &m.org)?;
            conn.execute(
                "INSERT INTO members (org_id, email, name, role, projects, status, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    m.org.as_str(),
                    m.email,
                    m.name,
                    m.role.as_str(),
                    projects_text(&m.projects),
                    m.status.as_str(),
                    m.created_at,
                    m.updated_at
                ],
            )
            .map(|_| ())
            .map_err(insert_failed)
        }
        AdminChange::UpdateMember(m) => one_row(
            conn.execute(
                "UPDATE members SET name = ?3, role = ?4, projects = ?5, status = ?6, updated_at = ?7 \
                 WHERE org_id = ?1 AND email = ?2",
                params![
                    m.org.as_str(),
                    m.email,
                    m.name,
                    m.role.as_str(),
                    projects_text(&m.projects),
                    m.status.as_str(),
                    m.updated_at
                ],
            )
            .map_err(failed)?,
        ),
        AdminChange::RemoveMember { org, email } => one_row(
            conn.execute("DELETE FROM members WHERE org_id = ?1 AND email = ?2", params![org.as_str(), email])
                .map_err(failed)?,
        ),
        AdminChange::SetRetention { org, retention, at } => {
            let json = retention
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| AdminError::Failed(e.to_string()))?;
            one_row(
                conn.execute(
                    "UPDATE orgs SET retention = ?2, updated_at = ?3 WHERE id = ?1 AND deleted_at IS NULL",
                    params![org.as_str(), json, at],
                )
                .map_err(failed)?,
            )
        }
        AdminChange::PlaceHold(h) => {
            live_org(conn, &h.org)?;
            conn.execute(
                "INSERT INTO legal_holds (id, org_id, actor, from_ms, to_ms, reason, placed_at, placed_by) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![h.id, h.org.as_str(), h.actor, h.from, h.to, h.reason, h.placed_at, h.placed_by],
            )
            .map(|_| ())
            .map_err(insert_failed)
        }
        AdminChange::LiftHold { org, id, at } => one_row(
            conn.execute(
                "UPDATE legal_holds SET lifted_at = ?3 WHERE org_id = ?1 AND id = ?2 AND lifted_at IS NULL",
                params![org.as_str(), id, at],
            )
            .map_err(failed)?,
        ),
    }
}

fn live_org(conn: &Connection, org: &OrgId) -> Result<(), AdminError> {
    let live: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM orgs WHERE id = ?1 AND deleted_at IS NULL")
        .and_then(|mut s| s.query_row([org.as_str()], |r| r.get(0)).optional())
        .map_err(failed)?;
    live.map(|_| ()).ok_or(AdminError::NotFound)
}

/// Creates the organisation of an ingested event if it does not exist yet; true when it was created.
pub fn create_on_ingest(conn: &Connection, org: &str, at: i64) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO orgs (id, name, plan, created_at, updated_at) VALUES (?1, ?1, 'free', ?2, ?2)",
        )?
        .execute(params![org, at])?;
    Ok(changed == 1)
}

fn org_from_row(r: &Row<'_>) -> rusqlite::Result<OrgRecord> {
    let id: String = r.get(0)?;
    Ok(OrgRecord {
        id: stored(0, &id)?,
        name: r.get(1)?,
        plan: r.get(2)?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
        deleted_at: r.get(5)?,
        retention: r
            .get::<_, Option<String>>(6)?
            .map(|json| {
                serde_json::from_str(&json)
                    .map_err(|e| rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, Box::new(e)))
            })
            .transpose()?,
    })
}

const ORG_COLUMNS: &str = "id, name, plan, created_at, updated_at, deleted_at, retention";

pub fn get_org(conn: &Connection, id: &str) -> rusqlite::Result<Option<OrgRecord>> {
    conn.prepare_cached(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = ?1"))?
        .query_row([id], org_from_row)
        .optional()
}

/// Live organisations in id order, at most `limit` after `after`.
pub fn list_orgs(conn: &Connection, after: Option<&str>, limit: usize) -> rusqlite::Result<Vec<OrgRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ORG_COLUMNS} FROM orgs WHERE deleted_at IS NULL AND id > ?1 AND id NOT LIKE '\\_%' ESCAPE '\\' \
         ORDER BY id LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![after.unwrap_or(""), limit as i64], org_from_row)?;
    rows.collect()
}

fn project_from_row(r: &Row<'_>) -> rusqlite::Result<ProjectRecord> {
    let (org, id): (String, String) = (r.get(0)?, r.get(1)?);
    Ok(ProjectRecord {
        org: stored(0, &org)?,
        id: stored(1, &id)?,
        name: r.get(2)?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

/// An id read back from a column; ids are validated on the way in, so a bad one means a damaged row.
pub(crate) fn stored<T: std::str::FromStr>(column: usize, text: &str) -> rusqlite::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e)))
}

pub fn list_projects(conn: &Connection, org: &str) -> rusqlite::Result<Vec<ProjectRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT org_id, id, name, created_at, updated_at FROM projects WHERE org_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([org], project_from_row)?;
    rows.collect()
}

pub fn get_project(conn: &Connection, org: &str, id: &str) -> rusqlite::Result<Option<ProjectRecord>> {
    conn.prepare_cached("SELECT org_id, id, name, created_at, updated_at FROM projects WHERE org_id = ?1 AND id = ?2")?
        .query_row([org, id], project_from_row)
        .optional()
}

fn member_from_row(r: &Row<'_>) -> rusqlite::Result<MemberRecord> {
    let org: String = r.get(0)?;
    let role: String = r.get(3)?;
    let projects: String = r.get(4)?;
    let status: String = r.get(5)?;
    Ok(MemberRecord {
        org: stored(0, &org)?,
        email: r.get(1)?,
        name: r.get(2)?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        projects: projects
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| stored(4, p))
            .collect::<rusqlite::Result<_>>()?,
        status: MemberStatus::parse(&status).unwrap_or(MemberStatus::Invited),
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

const MEMBER_COLUMNS: &str = "org_id, email, name, role, projects, status, created_at, updated_at";

pub fn list_members(conn: &Connection, org: &str) -> rusqlite::Result<Vec<MemberRecord>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {MEMBER_COLUMNS} FROM members WHERE org_id = ?1 ORDER BY email"))?;
    let rows = stmt.query_map([org], member_from_row)?;
    rows.collect()
}

pub fn get_member(conn: &Connection, org: &str, email: &str) -> rusqlite::Result<Option<MemberRecord>> {
    conn.prepare_cached(&format!("SELECT {MEMBER_COLUMNS} FROM members WHERE org_id = ?1 AND email = ?2"))?
        .query_row([org, email], member_from_row)
        .optional()
}

fn hold_from_row(r: &Row<'_>) -> rusqlite::Result<LegalHold> {
    let org: String = r.get(1)?;
    Ok(LegalHold {
        id: r.get(0)?,
        org: stored(1, &org)?,
        actor: r.get(2)?,
        from: r.get(3)?,
        to: r.get(4)?,
        reason: r.get(5)?,
        placed_at: r.get(6)?,
        placed_by: r.get(7)?,
        lifted_at: r.get(8)?,
    })
}

/// The organisation's legal holds, oldest first.
pub fn list_holds(conn: &Connection, org: &str) -> rusqlite::Result<Vec<LegalHold>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, org_id, actor, from_ms, to_ms, reason, placed_at, placed_by, lifted_at FROM legal_holds \
         WHERE org_id = ?1 ORDER BY placed_at, id",
    )?;
    let rows = stmt.query_map([org], hold_from_row)?;
    rows.collect()
}
