//! `trailkeep orgs`, `trailkeep projects` and `trailkeep members`: the admin API from the command line.

use clap::Subcommand;
use trailkeep_client::{Method, encode};
use trailkeep_wire::{
    CreateOrgRequest, List, MemberInfo, MemberRequest, OrgInfo, ProjectInfo, ProjectRequest, UpdateOrgRequest,
};

use crate::Remote;
use crate::term::cell;

#[derive(Subcommand)]
pub enum OrgsCommand {
    /// List organisations (a platform key sees all; an organisation's admin key its own).
    List {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        json: bool,
    },
    /// Create an organisation (platform admin key).
    Create {
        #[command(flatten)]
        remote: Remote,
        /// Its id, as events name it in `organization_id`.
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// free, pro or enterprise.
        #[arg(long)]
        plan: Option<String>,
    },
    /// Show one organisation.
    Show {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
    /// Rename an organisation, or change its plan (platform admin key).
    Update {
        #[command(flatten)]
        remote: Remote,
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        plan: Option<String>,
    },
    /// Delete an organisation (platform admin key); its events stay.
    Delete {
        #[command(flatten)]
        remote: Remote,
        id: String,
    },
}

#[derive(Subcommand)]
pub enum ProjectsCommand {
    /// List an organisation's projects.
    List {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        org: String,
        #[arg(long)]
        json: bool,
    },
    /// Create a project.
    Create {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        org: String,
        /// Its id, as events name it in `project_id`.
        id: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Rename a project.
    Rename {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        org: String,
        id: String,
        name: String,
    },
    /// Delete a project; its events stay.
    Delete {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        org: String,
        id: String,
    },
}

#[derive(Subcommand)]
pub enum MembersCommand {
    /// List an organisation's members.
    List {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        org: String,
        #[arg(long)]
        json: bool,
    },
    /// Invite a member (or add them at once with --active).
    Add {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        org: String,
        email: String,
        /// owner, admin, project_admin, member or viewer.
        #[arg(long)]
        role: String,
        /// For a project_admin: the projects they administer, comma-separated.
        #[arg(long, value_delimiter = ',')]
        projects: Vec<String>,
        #[arg(long)]
        name: Option<String>,
        /// Add as active rather than invited.
        #[arg(long)]
        active: bool,
    },
    /// Change a member's role (with --projects for a project_admin) or name.
    Update {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        org: String,
        email: String,
        #[arg(long)]
        role: Option<String>,
        #[arg(long, value_delimiter = ',')]
        projects: Option<Vec<String>>,
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a member.
    Remove {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        org: String,
        email: String,
    },
}

fn org_row(o: &OrgInfo) -> String {
    format!("{:<24}  {:<32}  {:<10}  created {}", cell(&o.id, 24), cell(&o.name, 32), o.plan, o.created_at)
}

fn project_row(p: &ProjectInfo) -> String {
    format!("{:<24}  {:<32}  created {}", cell(&p.id, 24), cell(&p.name, 32), p.created_at)
}

fn member_row(m: &MemberInfo) -> String {
    format!(
        "{:<32}  {:<24}  {:<14}  {:<8}  {}",
        cell(&m.email, 32),
        cell(m.name.as_deref().unwrap_or(""), 24),
        m.role,
        m.status,
        cell(&m.projects.join(","), 40)
    )
}

fn print<T: serde::Serialize>(items: &[T], json: bool, row: fn(&T) -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(items)?);
    } else {
        for item in items {
            println!("{}", row(item));
        }
    }
    Ok(())
}

fn org_path(id: &str) -> String {
    format!("/v1/orgs/{}", encode(id))
}

pub async fn run_orgs(command: OrgsCommand) -> anyhow::Result<()> {
    match command {
        OrgsCommand::List { remote, json } => {
            let list: List<OrgInfo> = remote.client()?.get_json("/v1/orgs?limit=1000").await?;
            print(&list.data, json, org_row)?;
        }
        OrgsCommand::Create { remote, id, name, plan } => {
            let created: OrgInfo =
                remote.client()?.send_json(Method::POST, "/v1/orgs", &CreateOrgRequest { id, name, plan }).await?;
            println!("{}", org_row(&created));
        }
        OrgsCommand::Show { remote, id } => {
            let client = remote.client()?;
            let org: OrgInfo = client.get_json(&org_path(&id)).await?;
            println!("{}", org_row(&org));
        }
        OrgsCommand::Update { remote, id, name, plan } => {
            let client = remote.client()?;
            let org: OrgInfo =
                client.send_json(Method::PATCH, &org_path(&id), &UpdateOrgRequest { name, plan }).await?;
            println!("{}", org_row(&org));
        }
        OrgsCommand::Delete { remote, id } => {
            let client = remote.client()?;
            let org: OrgInfo = client.get_json(&org_path(&id)).await?;
            client.delete(&org_path(&id)).await?;
            println!("deleted {}; its events stay", cell(&org.id, 64));
        }
    }
    Ok(())
}

pub async fn run_projects(command: ProjectsCommand) -> anyhow::Result<()> {
    match command {
        ProjectsCommand::List { remote, org, json } => {
            let list: List<ProjectInfo> =
                remote.client()?.get_json(&format!("/v1/orgs/{}/projects", encode(&org))).await?;
            print(&list.data, json, project_row)?;
        }
        ProjectsCommand::Create { remote, org, id, name } => {
            let created: ProjectInfo = remote
                .client()?
                .send_json(
                    Method::POST,
                    &format!("/v1/orgs/{}/projects", encode(&org)),
                    &ProjectRequest { id: Some(id), name },
                )
                .await?;
            println!("{}", project_row(&created));
        }
        ProjectsCommand::Rename { remote, org, id, name } => {
            let path = format!("/v1/orgs/{}/projects/{}", encode(&org), encode(&id));
            let renamed: ProjectInfo = remote
                .client()?
                .send_json(Method::PATCH, &path, &ProjectRequest { id: None, name: Some(name) })
                .await?;
            println!("{}", project_row(&renamed));
        }
        ProjectsCommand::Delete { remote, org, id } => {
            remote.client()?.delete(&format!("/v1/orgs/{}/projects/{}", encode(&org), encode(&id))).await?;
            println!("deleted project {}; its events stay", cell(&id, 64));
        }
    }
    Ok(())
}

pub async fn run_members(command: MembersCommand) -> anyhow::Result<()> {
    match command {
        MembersCommand::List { remote, org, json } => {
            let list: List<MemberInfo> =
                remote.client()?.get_json(&format!("/v1/orgs/{}/members", encode(&org))).await?;
            print(&list.data, json, member_row)?;
        }
        MembersCommand::Add { remote, org, email, role, projects, name, active } => {
            let request = MemberRequest {
                email: Some(email),
                name,
                role: Some(role),
                projects: (!projects.is_empty()).then_some(projects),
                status: Some(if active { "active" } else { "invited" }.to_owned()),
            };
            let added: MemberInfo = remote
                .client()?
                .send_json(Method::POST, &format!("/v1/orgs/{}/members", encode(&org)), &request)
                .await?;
            println!("{}", member_row(&added));
        }
        MembersCommand::Update { remote, org, email, role, projects, name } => {
            let path = format!("/v1/orgs/{}/members/{}", encode(&org), encode(&email));
            let request = MemberRequest { email: None, name, role, projects, status: None };
            let updated: MemberInfo = remote.client()?.send_json(Method::PATCH, &path, &request).await?;
            println!("{}", member_row(&updated));
        }
        MembersCommand::Remove { remote, org, email } => {
            remote.client()?.delete(&format!("/v1/orgs/{}/members/{}", encode(&org), encode(&email))).await?;
            println!("removed {}", cell(&email, 64));
        }
    }
    Ok(())
}
