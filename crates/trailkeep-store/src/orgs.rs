//! Organisations, their projects and their members, as the store keeps them.

use serde::{Deserialize, Serialize};
use trailkeep_core::{NewEvent, OrgId, ProjectId};

/// The plans an organisation can be on.
pub const PLANS: [&str; 3] = ["free", "pro", "enterprise"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRecord {
    pub id: OrgId,
    pub name: String,
    pub plan: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Set once the organisation was deleted; its events stay.
    pub deleted_at: Option<i64>,
    /// Its own retention, overriding its plan's; `None` follows the plan.
    pub retention: Option<trailkeep_core::plans::Retention>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRecord {
    pub org: OrgId,
    pub id: ProjectId,
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A member's role in an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads the whole timeline and administers the organisation.
    Owner,
    /// Reads the whole timeline and administers the organisation.
    Admin,
    /// Administers, and reads the events of, the projects listed with the membership.
    ProjectAdmin,
    /// Belongs to the organisation; may not read its audit trail.
    Member,
    /// Belongs to the organisation; may not read its audit trail.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Owner, Role::Admin, Role::ProjectAdmin, Role::Member, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::ProjectAdmin => "project_admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether the role reads the organisation's whole timeline.
    pub fn reads_everything(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Invited, and has not signed in yet.
    Invited,
    Active,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Invited => "invited",
            MemberStatus::Active => "active",
        }
    }

    pub fn parse(s: &str) -> Option<MemberStatus> {
        [MemberStatus::Invited, MemberStatus::Active].into_iter().find(|m| m.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub org: OrgId,
    /// Lowercase; a member is known by their email within an organisation.
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    /// The projects a `project_admin` administers; empty for the other roles.
    pub projects: Vec<ProjectId>,
    pub status: MemberStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One change to organisations, projects or members. The store applies it together with the event that
/// records it, or neither.
#[derive(Debug, Clone)]
pub enum AdminChange {
    /// Fails with [`AdminError::Exists`] when the id is taken, deleted organisations included.
    CreateOrg(OrgRecord),
    /// Replaces name, plan and `updated_at` of a live organisation.
    UpdateOrg(OrgRecord),
    DeleteOrg {
        id: OrgId,
        at: i64,
    },
    CreateProject(ProjectRecord),
    UpdateProject(ProjectRecord),
    DeleteProject {
        org: OrgId,
        id: ProjectId,
    },
    /// Fails with [`AdminError::Exists`] when the email is already a member.
    AddMember(MemberRecord),
    UpdateMember(MemberRecord),
    RemoveMember {
        org: OrgId,
        email: String,
    },
    /// Replaces the organisation's own retention (`None` follows its plan again).
    SetRetention {
        org: OrgId,
        retention: Option<trailkeep_core::plans::Retention>,
        at: i64,
    },
    /// Fails with [`AdminError::Exists`] when the id is taken.
    PlaceHold(crate::retention::LegalHold),
    /// Lifts a hold still in force.
    LiftHold {
        org: OrgId,
        id: String,
        at: i64,
    },
}

impl AdminChange {
    /// The organisation the change belongs to.
    pub fn org(&self) -> &OrgId {
        match self {
            AdminChange::CreateOrg(o) | AdminChange::UpdateOrg(o) => &o.id,
            AdminChange::DeleteOrg { id, .. } => id,
            AdminChange::CreateProject(p) | AdminChange::UpdateProject(p) => &p.org,
            AdminChange::DeleteProject { org, .. }
            | AdminChange::RemoveMember { org, .. }
            | AdminChange::SetRetention { org, .. }
            | AdminChange::LiftHold { org, .. } => org,
            AdminChange::PlaceHold(h) => &h.org,
            AdminChange::AddMember(m) | AdminChange::UpdateMember(m) => &m.org,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("it already exists")]
    Exists,
    #[error("it does not exist")]
    NotFound,
    #[error("store failure: {0}")]
    Failed(String),
}

/// The change and its audit event, as the writer receives them.
#[derive(Debug, Clone)]
pub struct AdminWrite {
    pub change: AdminChange,
    pub audit: NewEvent,
}
