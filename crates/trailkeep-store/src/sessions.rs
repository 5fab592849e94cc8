//! Portal links, dashboard sessions and operator accounts as the store keeps them.
//!
//! None of these records holds a secret the service hands out: a portal link and a session are stored
//! under the SHA-256 of their random token, and an operator under an argon2id hash of the password, so
//! reading the database gives nobody a way in. `Debug` shows hashes only as a short prefix.

use std::fmt;

use trailkeep_core::{OrgId, ProjectId};

pub use crate::orgs::Role;

/// Who a session acts as: a member of an organisation in one of its roles (given by a portal link),
/// or a platform operator signed in with a password, who reads every organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionRole {
    Org(Role),
    Operator,
}

impl SessionRole {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionRole::Org(role) => role.as_str(),
            SessionRole::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<SessionRole> {
        if s == "operator" { Some(SessionRole::Operator) } else { Role::parse(s).map(SessionRole::Org) }
    }
}

/// Where a redeemed portal link lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    AuditLogs,
    LogStreams,
}

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::AuditLogs => "audit_logs",
            Intent::LogStreams => "log_streams",
        }
    }

    pub fn parse(s: &str) -> Option<Intent> {
        [Intent::AuditLogs, Intent::LogStreams].into_iter().find(|i| i.as_str() == s)
    }
}

/// The person a link or session acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub email: String,
    pub name: Option<String>,
}

/// A hash shown in `Debug` as its first bytes only: enough to tell two apart, never the whole value.
struct ShortHash<'a>(&'a [u8; 32]);

impl fmt::Debug for ShortHash<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}{:02x}{:02x}{:02x}…", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

/// A portal link as stored: the SHA-256 of its token, never the token.
#[derive(Clone, PartialEq, Eq)]
pub struct PortalLinkRecord {
    pub hash: [u8; 32],
    pub org: OrgId,
    pub user: SessionUser,
    pub role: Role,
    /// The projects a `project_admin` administers; empty for the other roles.
    pub projects: Vec<ProjectId>,
    pub intent: Intent,
    /// The API key that issued the link: sessions it starts end when that key is revoked.
    pub issued_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// When the link was redeemed; a link is usable once.
    pub used_at: Option<i64>,
}

impl fmt::Debug for PortalLinkRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortalLinkRecord")
            .field("hash", &ShortHash(&self.hash))
            .field("org", &self.org)
            .field("user", &self.user)
            .field("role", &self.role)
            .field("projects", &self.projects)
            .field("intent", &self.intent)
            .field("issued_by", &self.issued_by)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("used_at", &self.used_at)
            .finish()
    }
}

/// A dashboard session as stored: the SHA-256 of its cookie value, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub hash: [u8; 32],
    /// A public name for the session (`ses_…`), safe to show and to record in events.
    pub id: String,
    pub user: SessionUser,
    pub role: SessionRole,
    /// The organisation the session acts in; an operator's is the one it chose at sign-in, if any.
    pub org: Option<OrgId>,
    pub projects: Vec<ProjectId>,
    /// The API key whose portal link started the session, or `None` for an operator's sign-in.
    pub issued_by: Option<String>,
    /// The user was a member of the organisation when the session started: the session ends once the
    /// membership is removed.
    pub member_bound: bool,
    pub created_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("hash", &ShortHash(&self.hash))
            .field("id", &self.id)
            .field("user", &self.user)
            .field("role", &self.role)
            .field("org", &self.org)
            .field("projects", &self.projects)
            .field("issued_by", &self.issued_by)
            .field("member_bound", &self.member_bound)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("ended_at", &self.ended_at)
            .finish()
    }
}

/// A session found by its hash, with what the store knows about whether it may still act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundSession {
    pub session: SessionRecord,
    /// The key that issued its portal link has been revoked (or deleted) since.
    pub issuer_revoked: bool,
}

/// How a session starts: from a portal link, consumed in the same transaction, or from a password
/// sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStart {
    /// Consume the link with this hash (unused and unexpired at `now`) and start the session.
    PortalLink {
        link: [u8; 32],
        now: i64,
    },
    Login,
}

/// A platform operator's account.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorRecord {
    pub id: String,
    /// Lower-cased; unique.
    pub email: String,
    pub name: Option<String>,
    /// The argon2id PHC string.
    pub password_hash: String,
    pub created_at: i64,
}

impl fmt::Debug for OperatorRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorRecord")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_intents_round_trip_through_their_names() {
        for role in Role::ALL.map(SessionRole::Org).into_iter().chain([SessionRole::Operator]) {
            assert_eq!(SessionRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(SessionRole::parse("root"), None);
        assert_eq!(Intent::parse("log_streams"), Some(Intent::LogStreams));
        assert_eq!(Intent::parse("streams"), None);
    }

    #[test]
    fn debug_output_holds_no_whole_hash_and_no_password_hash() {
        let operator = OperatorRecord {
            id: "op_1".into(),
            email: "a@b.c".into(),
            name: None,
            password_hash: "$argon2id$v=19$secret".into(),
            created_at: 0,
        };
        assert!(!format!("{operator:?}").contains("argon2id"));
        let session = SessionRecord {
            hash: [0xab; 32],
            id: "ses_1".into(),
            user: SessionUser { email: "a@b.c".into(), name: None },
            role: SessionRole::Org(Role::Admin),
            org: None,
            projects: Vec::new(),
            issued_by: None,
            member_bound: false,
            created_at: 0,
            expires_at: 1,
            ended_at: None,
        };
        let text = format!("{session:?}");
        assert!(text.contains("abababab…") && !text.contains(&"ab".repeat(5)), "{text}");
    }
}
