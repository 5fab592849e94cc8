//! Identifiers chosen by the platform: organisation and project ids.
//!
//! Platforms name their tenants with their own ids (`org_01H…`, `acme`, a UUID). Trailkeep accepts
//! 1–128 characters of ASCII letters, digits and `_ - . : @`, which keeps ids safe in URLs, file names
//! and log lines.

use std::fmt;

use serde::{Deserialize, Serialize};

pub const MAX_ID_LEN: usize = 128;

/// The organisation whose log records changes to platform-wide things, such as platform keys. Ids that
/// start with `_` are reserved for the service and refused at ingest.
pub const PLATFORM_ORG: &str = "_platform";

/// Why a string is not a valid tenant identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_ID_LEN} characters")]
    TooLong,
    #[error("may contain only ASCII letters, digits and `_ - . : @`")]
    BadCharacter,
}

fn check(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@')) {
        Ok(())
    } else {
        Err(IdError::BadCharacter)
    }
}

macro_rules! tenant_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check(s)?;
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                check(&s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

tenant_id!(
    /// An organisation: the tenant whose log an event belongs to.
    OrgId
);
tenant_id!(
    /// A project inside an organisation.
    ProjectId
);

impl OrgId {
    /// The reserved organisation of platform-wide changes ([`PLATFORM_ORG`]).
    pub fn platform() -> OrgId {
        OrgId(PLATFORM_ORG.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_common_platform_spellings() {
        for ok in ["acme", "org_01HZX3", "3f1c8a6e-8d6f-4c1e-9a51-8f1c2a3b4c5d", "a.b:c@d"] {
            assert!(OrgId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn ids_reject_empty_long_and_unsafe_strings() {
        assert_eq!(OrgId::parse(""), Err(IdError::Empty));
        assert_eq!(OrgId::parse(&"a".repeat(129)), Err(IdError::TooLong));
        for bad in ["a b", "a/b", "../x", "a\u{202e}b", "<script>"] {
            assert_eq!(ProjectId::parse(bad), Err(IdError::BadCharacter), "{bad}");
        }
    }
}
