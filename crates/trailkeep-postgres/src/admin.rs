//! Organisations, projects, members, their own retention and legal holds: the writer's side (applied
//! inside its transactions, with the event recording each change) and the readers' side, as in the SQLite
//! engine's `admin.rs`.
//!
//! A refusal (the id is taken, the row is missing) is detected without an error — `ON CONFLICT DO
//! NOTHING` and row counts — because an error would abort the writer's whole group transaction.

use tokio_postgres::{GenericClient, Row};
use trailkeep_core::{OrgId, ProjectId};
use trailkeep_store::orgs::{AdminChange, AdminError, MemberRecord, MemberStatus, OrgRecord, ProjectRecord, Role};
use trailkeep_store::retention::LegalHold;

fn found(changed: u64) -> Result<(), AdminError> {
    if changed == 1 { Ok(()) } else { Err(AdminError::NotFound) }
}

fn created(changed: u64) -> Result<(), AdminError> {
    if changed == 1 { Ok(()) } else { Err(AdminError::Exists) }
}

fn project_texts(projects: &[ProjectId]) -> Vec<String> {
    projects.iter().map(|p| p.to_string()).collect()
}

/// Applies one change; the outer `Err` is a database failure, the inner one a refusal that wrote nothing.
pub async fn apply(
    tx: &impl GenericClient,
    change: &AdminChange,
) -> Result<Result<(), AdminError>, tokio_postgres::Error> {
    Ok(match change {
        AdminChange::CreateOrg(o) => created(
            tx.execute(
                "INSERT INTO orgs (id, name, plan, created_at, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT DO NOTHING",
                &[&o.id.as_str(), &o.name, &o.plan, &o.created_at, &o.updated_at],
            )
            .await?,
        ),
        AdminChange::UpdateOrg(o) => found(
            tx.execute(
                "UPDATE orgs SET name = $2, plan = $3, updated_at = $4 WHERE id = $1 AND deleted_at IS NULL",
                &[&o.id.as_str(), &o.name, &o.plan, &o.updated_at],
            )
            .await?,
        ),
        AdminChange::DeleteOrg { id, at } => found(
            tx.execute(
                "UPDATE orgs SET deleted_at = $2, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL",
                &[&id.as_str(), at],
            )
            .await?,
        ),
        AdminChange::CreateProject(p) => {
            if !live_org(tx, &p.org).await? {
                return Ok(Err(AdminError::NotFound));
            }
            created(
                tx.execute(
                    "INSERT INTO projects (org_id, id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT DO NOTHING",
                    &[&p.org.as_str(), &p.id.as_str(), &p.name, &p.created_at, &p.updated_at],
                )
                .await?,
            )
        }
        AdminChange::UpdateProject(p) => found(
            tx.execute(
                "UPDATE projects SET name = $3, updated_at = $4 WHERE org_id = $1 AND id = $2",
                &[&p.org.as_str(), &p.id.as_str(), &p.name, &p.updated_at],
            )
            .await?,
        ),
        AdminChange::DeleteProject { org, id } => found(
            tx.execute("DELETE FROM projects WHERE org_id = $1 AND id = $2", &[&org.as_str(), &id.as_str()]).await?,
        ),
        AdminChange::AddMember(m) => {
            if !live_org(tx, &m.org).await? {
                return Ok(Err(AdminError::NotFound));
            }
            created(
                tx.execute(
                    "INSERT INTO members (org_id, email, name, role, projects, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                    &[
                        &m.org.as_str(),
                        &m.email,
                        &m.name,
                        &m.role.as_str(),
                        &project_texts(&m.projects),
                        &m.status.as_str(),
                        &m.created_at,
                        &m.updated_at,
                    ],
                )
                .await?,
            )
        }
        AdminChange::UpdateMember(m) => found(
            tx.execute(
                "UPDATE members SET name = $3, role = $4, projects = $5, status = $6, updated_at = $7 \
                 WHERE org_id = $1 AND email = $2",
                &[
                    &m.org.as_str(),
                    &m.email,
                    &m.name,
                    &m.role.as_str(),
                    &project_texts(&m.projects),
                    &m.status.as_str(),
                    &m.updated_at,
                ],
            )
            .await?,
        ),
        AdminChange::RemoveMember { org, email } => {
            found(tx.execute("DELETE FROM members WHERE org_id = $1 AND email = $2", &[&org.as_str(), email]).await?)
        }
        AdminChange::SetRetention { org, retention, at } => {
            let json = match retention.as_ref().map(serde_json::to_string).transpose() {
                Ok(json) => json,
                Err(e) => return Ok(Err(AdminError::Failed(e.to_string()))),
            };
            found(
                tx.execute(
                    "UPDATE orgs SET retention = $2, updated_at = $3 WHERE id = $1 AND deleted_at IS NULL",
                    &[&org.as_str(), &json, at],
                )
                .await?,
            )
        }
        AdminChange::PlaceHold(h) => {
            if !live_org(tx, &h.org).await? {
                return Ok(Err(AdminError::NotFound));
            }
            created(
                tx.execute(
                    "INSERT INTO legal_holds (id, org_id, actor, from_ms, to_ms, reason, placed_at, placed_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                    &[&h.id, &h.org.as_str(), &h.actor, &h.from, &h.to, &h.reason, &h.placed_at, &h.placed_by],
                )
                .await?,
            )
        }
        AdminChange::LiftHold { org, id, at } => found(
            tx.execute(
                "UPDATE legal_holds SET lifted_at = $3 WHERE org_id = $1 AND id = $2 AND lifted_at IS NULL",
                &[&org.as_str(), id, at],
            )
            .await?,
        ),
    })
}

async fn live_org(tx: &impl GenericClient, org: &OrgId) -> Result<bool, tokio_postgres::Error> {
    Ok(tx.query_opt("SELECT 1 FROM orgs WHERE id = $1 AND deleted_at IS NULL", &[&org.as_str()]).await?.is_some())
}

/// Creates the organisation of an ingested event if it does not exist yet; true when it was created.
pub async fn create_on_ingest(tx: &impl GenericClient, org: &str, at: i64) -> Result<bool, tokio_postgres::Error> {
    let changed = tx
        .execute(
            "INSERT INTO orgs (id, name, plan, created_at, updated_at) VALUES ($1, $1, 'free', $2, $2) \
             ON CONFLICT DO NOTHING",
            &[&org, &at],
        )
        .await?;
    Ok(changed == 1)
}

/// A stored row that no longer reads as what was written.
#[derive(Debug, thiserror::Error)]
#[error("a stored {what} is damaged: {value:?}")]
pub struct Damaged {
    what: &'static str,
    value: String,
}

impl Damaged {
    pub fn new(what: &'static str, value: &str) -> Damaged {
        Damaged { what, value: value.to_owned() }
    }
}

fn parsed<T: std::str::FromStr>(what: &'static str, value: &str) -> Result<T, Damaged> {
    value.parse().map_err(|_| Damaged { what, value: value.to_owned() })
}

pub fn org_from_row(r: &Row) -> Result<OrgRecord, Damaged> {
    Ok(OrgRecord {
        id: parsed("organisation id", r.get("id"))?,
        name: r.get("name"),
        plan: r.get("plan"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        deleted_at: r.get("deleted_at"),
        retention: r
            .get::<_, Option<&str>>("retention")
            .map(|json| serde_json::from_str(json).map_err(|_| Damaged::new("retention", json)))
            .transpose()?,
    })
}

pub fn project_from_row(r: &Row) -> Result<ProjectRecord, Damaged> {
    Ok(ProjectRecord {
        org: parsed("organisation id", r.get("org_id"))?,
        id: parsed("project id", r.get("id"))?,
        name: r.get("name"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

pub fn member_from_row(r: &Row) -> Result<MemberRecord, Damaged> {
    let role: &str = r.get("role");
    let status: &str = r.get("status");
    let projects: Vec<String> = r.get("projects");
    Ok(MemberRecord {
        org: parsed("organisation id", r.get("org_id"))?,
        email: r.get("email"),
        name: r.get("name"),
        role: Role::parse(role).ok_or_else(|| Damaged { what: "role", value: role.to_owned() })?,
        projects: projects.iter().map(|p| parsed("project id", p)).collect::<Result<_, _>>()?,
        status: MemberStatus::parse(status)
            .ok_or_else(|| Damaged { what: "member status", value: status.to_owned() })?,
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

pub fn hold_from_row(r: &Row) -> Result<LegalHold, Damaged> {
    Ok(LegalHold {
        id: r.get("id"),
        org: parsed("organisation id", r.get("org_id"))?,
        actor: r.get("actor"),
        from: r.get("from_ms"),
        to: r.get("to_ms"),
        reason: r.get("reason"),
        placed_at: r.get("placed_at"),
        placed_by: r.get("placed_by"),
        lifted_at: r.get("lifted_at"),
    })
}

/// The organisation's legal holds, lifted ones included, oldest first.
pub async fn list_holds(client: &impl GenericClient, org: &str) -> Result<Vec<Row>, tokio_postgres::Error> {
    client.query("SELECT * FROM legal_holds WHERE org_id = $1 ORDER BY placed_at, id", &[&org]).await
}
