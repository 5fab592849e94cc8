//! Action names and the patterns that select them.
//!
//! An action is a lowercase dotted name such as `api_key.created` or `organisation.user.role.assigned`:
//! one to ten segments of `[a-z0-9_]`, at most 128 characters in all. A pattern selects actions by exact
//! name (`datasource.deleted`), by a `*` standing for exactly one segment (`organisation.*.added`), or by a
//! trailing `.*` that selects every action under a prefix (`organisation.*` matches
//! `organisation.user.role.assigned`).

use std::fmt;

/// The longest action name accepted, in bytes.
pub const MAX_ACTION_LEN: usize = 128;
/// The most segments an action may have.
pub const MAX_ACTION_SEGMENTS: usize = 10;

/// A validated action name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Action(String);

impl TryFrom<String> for Action {
    type Error = ActionError;
    fn try_from(s: String) -> Result<Action, ActionError> {
        check_shape(&s, false)?;
        Ok(Action(s))
    }
}

impl From<Action> for String {
    fn from(a: Action) -> String {
        a.0
    }
}

/// Why a string is not a valid action or action pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_ACTION_LEN} characters")]
    TooLong,
    #[error("must have at most {MAX_ACTION_SEGMENTS} dot-separated segments")]
    TooManySegments,
    #[error("segment {0} is empty: actions look like `api_key.created`")]
    EmptySegment(usize),
    #[error(
        "segment {0} has a character outside lowercase letters, digits and `_`: actions look like `api_key.created`"
    )]
    BadCharacter(usize),
}

fn check_segment(segment: &str, index: usize, allow_star: bool) -> Result<(), ActionError> {
    if segment.is_empty() {
        return Err(ActionError::EmptySegment(index + 1));
    }
    if allow_star && segment == "*" {
        return Ok(());
    }
    if segment.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        Ok(())
    } else {
        Err(ActionError::BadCharacter(index + 1))
    }
}

fn check_shape(s: &str, allow_star: bool) -> Result<(), ActionError> {
    if s.is_empty() {
        return Err(ActionError::Empty);
    }
    if s.len() > MAX_ACTION_LEN {
        return Err(ActionError::TooLong);
    }
    let mut count = 0;
    for (index, segment) in s.split('.').enumerate() {
        check_segment(segment, index, allow_star)?;
        count += 1;
    }
    if count > MAX_ACTION_SEGMENTS {
        return Err(ActionError::TooManySegments);
    }
    Ok(())
}

impl Action {
    pub fn parse(s: &str) -> Result<Action, ActionError> {
        check_shape(s, false)?;
        Ok(Action(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first segment, which is the default category of the action.
    pub fn first_segment(&self) -> &str {
        self.0.split('.').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A pattern that selects actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionPattern {
    /// Exactly this action.
    Exact(String),
    /// Every action that starts with this prefix followed by a dot (`organisation.*`).
    Prefix(String),
    /// Segment by segment, `None` standing for any one segment; with `open_end`, any further segments too.
    Segments { segments: Vec<Option<String>>, open_end: bool },
}

impl ActionPattern {
    pub fn parse(s: &str) -> Result<ActionPattern, ActionError> {
        check_shape(s, true)?;
        let parts: Vec<&str> = s.split('.').collect();
        let stars = parts.iter().filter(|p| **p == "*").count();
        if stars == 0 {
            return Ok(ActionPattern::Exact(s.to_owned()));
        }
        let last_is_star = parts.last() == Some(&"*");
        if stars == 1 && last_is_star {
            if parts.len() == 1 {
                // A lone `*` selects every action.
                return Ok(ActionPattern::Prefix(String::new()));
            }
            return Ok(ActionPattern::Prefix(parts[..parts.len() - 1].join(".")));
        }
        let (body, open_end) = if last_is_star { (&parts[..parts.len() - 1], true) } else { (&parts[..], false) };
        Ok(ActionPattern::Segments {
            segments: body.iter().map(|p| (*p != "*").then(|| (*p).to_owned())).collect(),
            open_end,
        })
    }

    pub fn matches(&self, action: &str) -> bool {
        match self {
            ActionPattern::Exact(a) => a == action,
            ActionPattern::Prefix(p) if p.is_empty() => true,
            ActionPattern::Prefix(p) => {
                action.len() > p.len() + 1 && action.starts_with(p.as_str()) && action.as_bytes()[p.len()] == b'.'
            }
            ActionPattern::Segments { segments, open_end } => {
                let parts: Vec<&str> = action.split('.').collect();
                let arity_ok = if *open_end { parts.len() > segments.len() } else { parts.len() == segments.len() };
                arity_ok && segments.iter().zip(&parts).all(|(want, got)| want.as_deref().is_none_or(|w| w == *got))
            }
        }
    }

    /// The longest literal prefix every matching action starts with, for index range scans.
    pub fn literal_prefix(&self) -> String {
        match self {
            ActionPattern::Exact(a) => a.clone(),
            ActionPattern::Prefix(p) if p.is_empty() => String::new(),
            ActionPattern::Prefix(p) => format!("{p}."),
            ActionPattern::Segments { segments, .. } => {
                let mut out = String::new();
                for s in segments {
                    match s {
                        Some(s) => {
                            out.push_str(s);
                            out.push('.');
                        }
                        None => break,
                    }
                }
                out
            }
        }
    }
}

impl fmt::Display for ActionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionPattern::Exact(a) => f.write_str(a),
            ActionPattern::Prefix(p) if p.is_empty() => f.write_str("*"),
            ActionPattern::Prefix(p) => write!(f, "{p}.*"),
            ActionPattern::Segments { segments, open_end } => {
                let body: Vec<&str> = segments.iter().map(|s| s.as_deref().unwrap_or("*")).collect();
                f.write_str(&body.join("."))?;
                if *open_end {
                    f.write_str(".*")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_accept_dotted_lowercase_names() {
        for ok in ["api_key.created", "organisation.user.role.assigned", "a", "ai.request", "x1_2.y"] {
            assert!(Action::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn actions_reject_bad_shapes_with_the_reason() {
        assert_eq!(Action::parse(""), Err(ActionError::Empty));
        assert_eq!(Action::parse("Api.created"), Err(ActionError::BadCharacter(1)));
        assert_eq!(Action::parse("api..created"), Err(ActionError::EmptySegment(2)));
        assert_eq!(Action::parse("api.created."), Err(ActionError::EmptySegment(3)));
        assert_eq!(Action::parse("a.b-c"), Err(ActionError::BadCharacter(2)));
        assert_eq!(Action::parse("a.*"), Err(ActionError::BadCharacter(2)));
        assert!(Action::parse("a.".repeat(10).trim_end_matches('.')).is_ok());
        assert_eq!(Action::parse("a.".repeat(11).trim_end_matches('.')), Err(ActionError::TooManySegments));
        assert_eq!(Action::parse(&"a".repeat(129)), Err(ActionError::TooLong));
    }

    #[test]
    fn the_default_category_is_the_first_segment() {
        assert_eq!(Action::parse("api_key.created").unwrap().first_segment(), "api_key");
        assert_eq!(Action::parse("login").unwrap().first_segment(), "login");
    }

    #[test]
    fn patterns_match_exactly_by_prefix_and_by_segment() {
        let exact = ActionPattern::parse("datasource.deleted").unwrap();
        assert!(exact.matches("datasource.deleted"));
        assert!(!exact.matches("datasource.deleted.more"));

        let prefix = ActionPattern::parse("organisation.*").unwrap();
        assert_eq!(prefix, ActionPattern::Prefix("organisation".into()));
        assert!(prefix.matches("organisation.created"));
        assert!(prefix.matches("organisation.user.role.assigned"));
        assert!(!prefix.matches("organisation"));
        assert!(!prefix.matches("organisations.created"));
        assert_eq!(prefix.literal_prefix(), "organisation.");

        let seg = ActionPattern::parse("organisation.*.added").unwrap();
        assert!(seg.matches("organisation.user.added"));
        assert!(!seg.matches("organisation.user.removed"));
        assert!(!seg.matches("organisation.user.role.added"));
        assert_eq!(seg.literal_prefix(), "organisation.");

        let all = ActionPattern::parse("*").unwrap();
        assert!(all.matches("anything.at.all"));
        assert_eq!(all.to_string(), "*");
        assert_eq!(seg.to_string(), "organisation.*.added");
    }
}
