//! From untrusted JSON to a [`NewEvent`]: every rule an event must meet, each failure naming the field.
//!
//! The server hands the raw request body to [`parse_batch`]; what comes back is either every event of
//! the batch, each valid, or the first problem found, with the JSON path of the offending field
//! (`events[3].context.ip`) so the caller can fix it. Nothing is half-accepted: one bad event rejects the
//! whole batch.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::action::Action;
use crate::event::{Actor, ActorType, AiRecord, Change, Context, NewEvent, Outcome, Target};
use crate::ids::{OrgId, ProjectId};
use crate::time::parse_rfc3339_millis;

const DAY_MS: i64 = 86_400_000;

/// The bounds an event and a batch must stay within.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_event_bytes: usize,
    pub max_metadata_bytes: usize,
    pub max_targets: usize,
    pub max_changes: usize,
    pub max_batch_events: usize,
    pub max_batch_bytes: usize,
    /// How far in the past `occurred_at` may lie, in milliseconds.
    pub max_past_ms: i64,
    /// How far in the future `occurred_at` may lie, in milliseconds.
    pub max_future_ms: i64,
    /// The longest short string (ids, names, types, emails, user agents), in bytes.
    pub max_short_string: usize,
    /// The longest description or error message, in bytes.
    pub max_text: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_event_bytes: 256 * 1024,
            max_metadata_bytes: 64 * 1024,
            max_targets: 100,
            max_changes: 100,
            max_batch_events: 1000,
            max_batch_bytes: 16 * 1024 * 1024,
            max_past_ms: 400 * DAY_MS,
            max_future_ms: DAY_MS,
            max_short_string: 1024,
            max_text: 16 * 1024,
        }
    }
}

/// How a request failed validation, which decides its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The body is not JSON, or not of the expected shape (400).
    Malformed,
    /// The body, an event or a field exceeds a size limit (413).
    TooLarge,
    /// Well-formed JSON whose content breaks a rule (422).
    Invalid,
}

/// One validation failure: a stable machine-readable code, the JSON path of the field, and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub kind: ErrorKind,
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

impl ValidationError {
    fn new(kind: ErrorKind, code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError { kind, code, field: field.into(), message: message.into() }
    }

    fn invalid(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, field, message)
    }
}

/// The event as sent, before any rule beyond JSON types is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
struct RawEvent<'a> {
    id: Option<String>,
    organization_id: Option<String>,
    project_id: Option<String>,
    action: Option<String>,
    category: Option<String>,
    occurred_at: Option<String>,
    actor: Option<RawActor>,
    #[serde(default)]
    targets: Vec<RawTarget>,
    context: Option<RawContext>,
    description: Option<String>,
    outcome: Option<String>,
    error: Option<String>,
    #[serde(default)]
    changes: Vec<Change>,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
    ai: Option<AiRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
struct RawActor {
    #[serde(rename = "type")]
    actor_type: Option<String>,
    id: Option<String>,
    name: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
struct RawTarget {
    #[serde(rename = "type")]
    target_type: Option<String>,
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
struct RawContext {
    ip: Option<String>,
    user_agent: Option<String>,
    location: Option<String>,
    request_id: Option<String>,
    session_id: Option<String>,
    trace_id: Option<String>,
}

crate::object::objects_only!(RawActor, RawTarget, RawContext);

impl<'de: 'a, 'a> Deserialize<'de> for RawEvent<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RawEvent::deserialize(crate::object::MapOnly(deserializer))
    }
}

/// What a request to ingest carries besides its events.
#[derive(Debug, Clone, Copy)]
pub struct IngestContext<'a> {
    pub limits: &'a Limits,
    /// The server's clock, in milliseconds since the epoch.
    pub now_ms: i64,
    /// The organisation of an org-scoped key: events may leave `organization_id` out.
    pub default_org: Option<&'a OrgId>,
}

/// Parses a request body holding one event object or `{"events": [...]}`.
pub fn parse_batch(body: &[u8], cx: IngestContext<'_>) -> Result<Vec<NewEvent>, ValidationError> {
    if body.len() > cx.limits.max_batch_bytes {
        return Err(ValidationError::new(
            ErrorKind::TooLarge,
            "payload_too_large",
            "",
            format!("the request body must be at most {} bytes", cx.limits.max_batch_bytes),
        ));
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        ValidationError::new(ErrorKind::Malformed, "invalid_json", "", format!("the body is not valid UTF-8: {e}"))
    })?;
    let Members(top) = serde_json::from_str(text).map_err(|e| {
        ValidationError::new(
            ErrorKind::Malformed,
            "invalid_json",
            "",
            format!("the body must be a JSON object (one event, or {{\"events\": [...]}}): {e}"),
        )
    })?;
    let Some(&(_, events)) = top.iter().find(|(k, _)| k == "events") else {
        return Ok(vec![parse_event(text, "", cx)?]);
    };
    if top.len() > 1 {
        let Some((extra, _)) = top.iter().find(|(k, _)| k != "events") else {
            // Two `events` lists: a reader keeping the first and one keeping the last would disagree.
            return Err(ValidationError::invalid("invalid_field", "events", "duplicate field `events`"));
        };
        return Err(ValidationError::new(
            ErrorKind::Malformed,
            "unknown_field",
            extra.clone(),
            format!("unknown field `{extra}`: a batch is {{\"events\": [...]}} and nothing else"),
        ));
    }
    let raw_events: Vec<&RawValue> = serde_json::from_str(events.get()).map_err(|e| {
        ValidationError::new(
            ErrorKind::Malformed,
            "invalid_json",
            "events",
            format!("must be an array of event objects: {e}"),
        )
    })?;
    if raw_events.is_empty() {
        return Err(ValidationError::invalid("empty_batch", "events", "must hold at least one event"));
    }
    if raw_events.len() > cx.limits.max_batch_events {
        return Err(ValidationError::new(
            ErrorKind::TooLarge,
            "batch_too_large",
            "events",
            format!("a batch holds at most {} events; split it", cx.limits.max_batch_events),
        ));
    }
    raw_events.iter().enumerate().map(|(i, raw)| parse_event(raw.get(), &format!("events[{i}]"), cx)).collect()
}

/// The members of a body's top-level object, in order and with any repeats: a map type would keep only
/// the last of two `events`.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Entries<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Members<'a>, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Entries(std::marker::PhantomData))
    }
}

/// Whether a body holds a batch, `{"events": [...]}`, rather than one event: the JSON paths of a batch's
/// events start with `events[i]`. Meant for bodies [`parse_batch`] accepted.
pub fn is_batch(body: &[u8]) -> bool {
    serde_json::from_slice::<std::collections::BTreeMap<String, &RawValue>>(body)
        .is_ok_and(|top| top.contains_key("events"))
}

fn join(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty()) {
        (true, _) => field.to_owned(),
        (false, true) => prefix.to_owned(),
        // An index follows its list without a dot: `events[0][1]`.
        (false, false) if field.starts_with('[') => format!("{prefix}{field}"),
        (false, false) => format!("{prefix}.{field}"),
    }
}

/// Removes serde's " at line L column C" suffix: the field path already says where.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

/// The key named by serde's "duplicate field `key`" error.
fn duplicate_key(message: &str) -> Option<&str> {
    message.strip_prefix("duplicate field `")?.strip_suffix('`')
}

/// Parses and validates one event's JSON text; `prefix` is its path in the request (`events[3]`).
pub fn parse_event(text: &str, prefix: &str, cx: IngestContext<'_>) -> Result<NewEvent, ValidationError> {
    let limits = cx.limits;
    if text.len() > limits.max_event_bytes {
        return Err(ValidationError::new(
            ErrorKind::TooLarge,
            "event_too_large",
            prefix,
            format!("an event must be at most {} bytes of JSON", limits.max_event_bytes),
        ));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let raw: RawEvent<'_> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let inner = e.into_inner();
        let kind = if inner.is_syntax() || inner.is_eof() { ErrorKind::Malformed } else { ErrorKind::Invalid };
        let code = if inner.is_syntax() || inner.is_eof() { "invalid_json" } else { "invalid_field" };
        let message = strip_position(&inner.to_string()).to_owned();
        // A repeated key is reported at the object holding it; the key itself is the field at fault.
        let path = match duplicate_key(&message) {
            Some(key) => join(&path, key),
            None => path,
        };
        ValidationError::new(kind, code, join(prefix, &path), message)
    })?;
    let field = |name: &str| join(prefix, name);
    let check_short = |value: Option<String>, name: &str| -> Result<Option<String>, ValidationError> {
        match value {
            Some(v) if v.len() > limits.max_short_string => Err(ValidationError::new(
                ErrorKind::TooLarge,
                "field_too_long",
                field(name),
                format!("must be at most {} bytes", limits.max_short_string),
            )),
            Some(v) if v.is_empty() => Err(ValidationError::invalid(
                "empty_field",
                field(name),
                "must not be empty; leave the field out instead",
            )),
            other => Ok(other),
        }
    };
    let check_text = |value: Option<String>, name: &str| -> Result<Option<String>, ValidationError> {
        match value {
            Some(v) if v.len() > limits.max_text => Err(ValidationError::new(
                ErrorKind::TooLarge,
                "field_too_long",
                field(name),
                format!("must be at most {} bytes", limits.max_text),
            )),
            other => Ok(other),
        }
    };

    let client_id = raw.id.is_some();
    let id = match raw.id {
        Some(s) => {
            Uuid::parse_str(&s).map_err(|_| ValidationError::invalid("invalid_id", field("id"), "must be a UUID"))?
        }
        None => Uuid::now_v7(),
    };

    let organization_id = match (raw.organization_id, cx.default_org) {
        (Some(s), _) if s.starts_with('_') => {
            return Err(ValidationError::invalid(
                "invalid_organization_id",
                field("organization_id"),
                "ids starting with `_` are reserved for the service's own logs",
            ));
        }
        (Some(s), _) => OrgId::try_from(s).map_err(|e| {
            ValidationError::invalid("invalid_organization_id", field("organization_id"), e.to_string())
        })?,
        (None, Some(org)) => org.clone(),
        (None, None) => {
            return Err(ValidationError::invalid(
                "missing_field",
                field("organization_id"),
                "is required: name the organisation this event belongs to",
            ));
        }
    };
    let project_id = raw
        .project_id
        .map(|s| {
            ProjectId::try_from(s)
                .map_err(|e| ValidationError::invalid("invalid_project_id", field("project_id"), e.to_string()))
        })
        .transpose()?;

    let action_text = raw.action.ok_or_else(|| {
        ValidationError::invalid("missing_field", field("action"), "is required, e.g. `api_key.created`")
    })?;
    let action = Action::parse(&action_text)
        .map_err(|e| ValidationError::invalid("invalid_action", field("action"), e.to_string()))?;
    let category = match raw.category {
        Some(c) => {
            let ok = !c.is_empty()
                && c.len() <= 64
                && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return Err(ValidationError::invalid(
                    "invalid_category",
                    field("category"),
                    "must be 1-64 characters of lowercase letters, digits and `_`",
                ));
            }
            c
        }
        None => action.first_segment().to_owned(),
    };

    let occurred_at = match raw.occurred_at {
        Some(s) => {
            let ms = parse_rfc3339_millis(&s).ok_or_else(|| {
                ValidationError::invalid(
                    "invalid_timestamp",
                    field("occurred_at"),
                    "must be an RFC 3339 timestamp such as 2026-01-02T03:04:05.678Z",
                )
            })?;
            if ms < cx.now_ms - limits.max_past_ms || ms > cx.now_ms + limits.max_future_ms {
                return Err(ValidationError::invalid(
                    "timestamp_out_of_range",
                    field("occurred_at"),
                    format!(
                        "must lie between {} days ago and {} hours ahead of the server's clock",
                        limits.max_past_ms / DAY_MS,
                        limits.max_future_ms / 3_600_000
                    ),
                ));
            }
            ms
        }
        None => cx.now_ms,
    };

    let actor = match raw.actor {
        None => None,
        Some(a) => {
            let type_text = a.actor_type.ok_or_else(|| {
                ValidationError::invalid(
                    "missing_field",
                    field("actor.type"),
                    "is required: one of user, system, api_key, webhook, service",
                )
            })?;
            let actor_type = ActorType::parse(&type_text).ok_or_else(|| {
                ValidationError::invalid(
                    "invalid_actor_type",
                    field("actor.type"),
                    format!("`{}` is not one of user, system, api_key, webhook, service", truncate(&type_text)),
                )
            })?;
            let email = check_short(a.email, "actor.email")?;
            if let Some(e) = &email {
                let at = e.find('@');
                let ok = matches!(at, Some(i) if i > 0 && i + 1 < e.len())
                    && !e.chars().any(|c| c.is_whitespace() || c.is_control());
                if !ok {
                    return Err(ValidationError::invalid(
                        "invalid_email",
                        field("actor.email"),
                        "must be an email address",
                    ));
                }
            }
            Some(Actor {
                actor_type,
                id: check_short(a.id, "actor.id")?,
                name: check_short(a.name, "actor.name")?,
                email,
            })
        }
    };

    if raw.targets.len() > limits.max_targets {
        return Err(ValidationError::new(
            ErrorKind::TooLarge,
            "too_many_targets",
            field("targets"),
            format!("an event has at most {} targets", limits.max_targets),
        ));
    }
    let mut targets = Vec::with_capacity(raw.targets.len());
    for (i, t) in raw.targets.into_iter().enumerate() {
        let path = format!("targets[{i}]");
        let target_type = check_short(t.target_type, &format!("{path}.type"))?
            .ok_or_else(|| ValidationError::invalid("missing_field", field(&format!("{path}.type")), "is required"))?;
        let id = check_short(t.id, &format!("{path}.id"))?
            .ok_or_else(|| ValidationError::invalid("missing_field", field(&format!("{path}.id")), "is required"))?;
        targets.push(Target { target_type, id, name: check_short(t.name, &format!("{path}.name"))? });
    }

    let context = match raw.context {
        None => Context::default(),
        Some(c) => Context {
            ip: c
                .ip
                .map(|s| {
                    s.parse().map_err(|_| {
                        ValidationError::invalid(
                            "invalid_ip",
                            field("context.ip"),
                            format!("`{}` is not an IPv4 or IPv6 address", truncate(&s)),
                        )
                    })
                })
                .transpose()?,
            user_agent: check_short(c.user_agent, "context.user_agent")?,
            location: check_short(c.location, "context.location")?,
            request_id: check_short(c.request_id, "context.request_id")?,
            session_id: check_short(c.session_id, "context.session_id")?,
            trace_id: check_short(c.trace_id, "context.trace_id")?,
        },
    };

    let outcome = match raw.outcome.as_deref() {
        None => Outcome::Success,
        Some(s) => Outcome::parse(s).ok_or_else(|| {
            ValidationError::invalid("invalid_outcome", field("outcome"), "must be `success` or `failure`")
        })?,
    };
    let error = check_text(raw.error, "error")?;
    if error.is_some() && outcome == Outcome::Success {
        return Err(ValidationError::invalid(
            "invalid_field",
            field("error"),
            "an error message goes with `\"outcome\": \"failure\"`",
        ));
    }

    if raw.changes.len() > limits.max_changes {
        return Err(ValidationError::new(
            ErrorKind::TooLarge,
            "too_many_changes",
            field("changes"),
            format!("an event has at most {} changes", limits.max_changes),
        ));
    }
    for (i, c) in raw.changes.iter().enumerate() {
        if c.field.is_empty() || c.field.len() > limits.max_short_string {
            return Err(ValidationError::invalid(
                "invalid_field",
                field(&format!("changes[{i}].field")),
                format!("must be 1-{} bytes", limits.max_short_string),
            ));
        }
    }

    let metadata = match raw.metadata {
        None => Map::new(),
        Some(raw_meta) => {
            if raw_meta.get().len() > limits.max_metadata_bytes {
                return Err(ValidationError::new(
                    ErrorKind::TooLarge,
                    "metadata_too_large",
                    field("metadata"),
                    format!("must be at most {} bytes of JSON", limits.max_metadata_bytes),
                ));
            }
            match serde_json::from_str::<Value>(raw_meta.get()) {
                Ok(Value::Object(map)) => map,
                Ok(Value::Null) => Map::new(),
                // A number beyond f64, or nesting deeper than the parser follows.
                Err(e) => {
                    return Err(ValidationError::new(
                        ErrorKind::Malformed,
                        "invalid_json",
                        field("metadata"),
                        strip_position(&e.to_string()).to_owned(),
                    ));
                }
                Ok(_) => {
                    return Err(ValidationError::invalid(
                        "invalid_metadata",
                        field("metadata"),
                        "must be a JSON object",
                    ));
                }
            }
        }
    };

    let ai = raw.ai.map(|ai| validate_ai(ai, limits, &field)).transpose()?;

    Ok(NewEvent {
        id,
        client_id,
        organization_id,
        project_id,
        action,
        category,
        occurred_at,
        actor,
        targets,
        context,
        description: check_text(raw.description, "description")?,
        outcome,
        error,
        changes: raw.changes,
        metadata,
        ai,
    })
}

fn validate_ai(ai: AiRecord, limits: &Limits, field: &dyn Fn(&str) -> String) -> Result<AiRecord, ValidationError> {
    // Names and ids are short strings like the event's own; the error message is text like its
    // description; prompts and responses are bounded only by the event's size.
    let short = [
        ("ai.provider", &ai.provider),
        ("ai.model", &ai.model),
        ("ai.api_key_id", &ai.api_key_id),
        ("ai.user_id", &ai.user_id),
        ("ai.session_id", &ai.session_id),
    ];
    for (name, value) in short {
        match value {
            Some(v) if v.len() > limits.max_short_string => {
                return Err(ValidationError::new(
                    ErrorKind::TooLarge,
                    "field_too_long",
                    field(name),
                    format!("must be at most {} bytes", limits.max_short_string),
                ));
            }
            Some(v) if v.is_empty() => {
                return Err(ValidationError::invalid(
                    "empty_field",
                    field(name),
                    "must not be empty; leave the field out instead",
                ));
            }
            _ => {}
        }
    }
    if ai.error.as_ref().is_some_and(|e| e.len() > limits.max_text) {
        return Err(ValidationError::new(
            ErrorKind::TooLarge,
            "field_too_long",
            field("ai.error"),
            format!("must be at most {} bytes", limits.max_text),
        ));
    }
    if let Some(cost) = ai.cost_usd
        && !(cost.is_finite() && cost >= 0.0)
    {
        return Err(ValidationError::invalid("invalid_field", field("ai.cost_usd"), "must be a non-negative number"));
    }
    if let Some(code) = ai.status_code
        && !(100..=599).contains(&code)
    {
        return Err(ValidationError::invalid(
            "invalid_field",
            field("ai.status_code"),
            "must be an HTTP status code (100-599)",
        ));
    }
    if let Some(score) = ai.security.as_ref().and_then(|s| s.prompt_injection_score)
        && !(0.0..=1.0).contains(&score)
    {
        return Err(ValidationError::invalid(
            "invalid_field",
            field("ai.security.prompt_injection_score"),
            "must lie between 0 and 1",
        ));
    }
    Ok(ai)
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_780_000_000_000;

    fn parse(body: &str) -> Result<Vec<NewEvent>, ValidationError> {
        let limits = Limits::default();
        parse_batch(body.as_bytes(), IngestContext { limits: &limits, now_ms: NOW, default_org: None })
    }

    fn err(body: &str) -> (ErrorKind, &'static str, String) {
        let e = parse(body).unwrap_err();
        (e.kind, e.code, e.field)
    }

    /// Found by fuzzing: with `serde_json`'s default float parser, a float written to JSON could read
    /// back one unit in the last place off, so the stored event differed from the accepted one.
    #[test]
    fn an_accepted_event_reads_back_from_its_stored_json_unchanged() {
        let body = r#"{"organization_id":"acme","action":"a.b","metadata":{"x":5.043664758052875e-68},
            "changes":[{"field":"f","before":2.2250738585072014e-308,"after":1.7976931348623157e308}],
            "ai":{"cost_usd":0.30000000000000004}}"#;
        let event = parse(body).unwrap().remove(0).into_event(1, NOW);
        let stored = serde_json::to_string(&event).unwrap();
        let back: crate::event::Event = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, event);
        assert_eq!(serde_json::to_string(&back).unwrap(), stored);
    }

    /// Found by the hostile-input catalogue: serde reads a struct from an array of its fields too, so an
    /// event, an actor or an AI block written as an array was accepted.
    #[test]
    fn an_event_and_its_blocks_must_be_objects_not_arrays() {
        let array_event = r#"{"events":[[null,"acme",null,"user.login"]]}"#;
        assert_eq!(err(array_event), (ErrorKind::Invalid, "invalid_field", "events[0]".to_owned()));
        for (block, field) in [
            (r#""actor":["user","u_1"]"#, "actor"),
            (r#""targets":[["user","u_1"]]"#, "targets[0]"),
            (r#""context":["203.0.113.7"]"#, "context"),
            (r#""changes":[["role","a","b"]]"#, "changes[0]"),
            (r#""ai":["openai","gpt-4o"]"#, "ai"),
            (r#""ai":{"usage":[1,2,3]}"#, "ai.usage"),
            (r#""ai":{"security":[["email"]]}"#, "ai.security"),
        ] {
            let body = format!(r#"{{"organization_id":"acme","action":"a.b",{block}}}"#);
            assert_eq!(err(&body), (ErrorKind::Invalid, "invalid_field", field.to_owned()), "{body}");
        }
    }

    /// Found by the hostile-input catalogue: a map type kept the last of two `events` lists.
    #[test]
    fn a_batch_with_two_event_lists_is_refused() {
        let body = r#"{"events":[{"organization_id":"acme","action":"a.b"}],"events":[{"organization_id":"globex","action":"a.b"}]}"#;
        assert_eq!(err(body), (ErrorKind::Invalid, "invalid_field", "events".to_owned()));
    }

    #[test]
    fn metadata_the_parser_cannot_hold_is_malformed_not_a_non_object() {
        let deep = format!(
            r#"{{"organization_id":"a","action":"x","metadata":{{"x":{}1{}}}}}"#,
            "[".repeat(500),
            "]".repeat(500)
        );
        let huge = r#"{"organization_id":"a","action":"x","metadata":{"x":1e400}}"#;
        for body in [deep.as_str(), huge] {
            let e = parse(body).unwrap_err();
            assert_eq!(
                (e.kind, e.code, e.field.as_str()),
                (ErrorKind::Malformed, "invalid_json", "metadata"),
                "{}",
                e.message
            );
        }
    }

    /// Found by the hostile-input catalogue: the AI block's names and ids had no bounds, unlike the
    /// event's own short strings.
    #[test]
    fn the_ai_blocks_names_and_ids_are_short_strings() {
        let long = "m".repeat(1025);
        for (ai, code, field) in [
            (json!({"model": long}), "field_too_long", "ai.model"),
            (json!({"provider": ""}), "empty_field", "ai.provider"),
            (json!({"api_key_id": long}), "field_too_long", "ai.api_key_id"),
            (json!({"user_id": ""}), "empty_field", "ai.user_id"),
            (json!({"session_id": long}), "field_too_long", "ai.session_id"),
            (json!({"error": "e".repeat(17 * 1024)}), "field_too_long", "ai.error"),
        ] {
            let body = json!({"organization_id": "acme", "action": "ai.request", "ai": ai}).to_string();
            let (_, got_code, got_field) = err(&body);
            assert_eq!((got_code, got_field.as_str()), (code, field), "{body}");
        }
        let prompt = json!({"organization_id": "acme", "action": "ai.request", "ai": {"prompt": "p".repeat(100_000)}});
        assert!(parse(&prompt.to_string()).is_ok(), "a prompt is bounded by the event's size only");
    }

    #[test]
    fn unknown_fields_inside_nested_blocks_are_refused() {
        for (body, field) in [
            (r#"{"organization_id":"acme","action":"a.b","ai":{"modle":"gpt-4o"}}"#, "ai.modle"),
            (r#"{"organization_id":"acme","action":"a.b","ai":{"usage":{"tokens":1}}}"#, "ai.usage.tokens"),
            (r#"{"organization_id":"acme","action":"a.b","ai":{"security":{"pii":[]}}}"#, "ai.security.pii"),
            (r#"{"organization_id":"acme","action":"a.b","changes":[{"field":"f","old":1}]}"#, "changes[0].old"),
        ] {
            assert_eq!(err(body), (ErrorKind::Invalid, "invalid_field", field.to_owned()), "{body}");
        }
    }

    #[test]
    fn a_minimal_event_gets_defaults() {
        let events = parse(r#"{"organization_id":"acme","action":"api_key.created"}"#).unwrap();
        let e = &events[0];
        assert_eq!(e.category, "api_key");
        assert_eq!(e.occurred_at, NOW);
        assert_eq!(e.outcome, Outcome::Success);
        assert!(!e.client_id);
        assert_eq!(e.id.get_version_num(), 7);
    }

    #[test]
    fn a_full_event_keeps_every_field() {
        let body = r#"{"id":"0190f8a4-7f3c-7cc0-8000-000000000001","organization_id":"acme","project_id":"web",
            "action":"ai.request","category":"ai","occurred_at":"2026-05-28T20:26:40.123Z",
            "actor":{"type":"api_key","id":"key_1","name":"CI","email":"ci@example.com"},
            "targets":[{"type":"model","id":"gpt-4o","name":"GPT"}],
            "context":{"ip":"2001:db8::1","user_agent":"curl/8","location":"Berlin","request_id":"r","session_id":"s","trace_id":"t"},
            "description":"d","outcome":"failure","error":"boom",
            "changes":[{"field":"role","before":"member","after":"admin"}],
            "metadata":{"k":[1,2,{"x":null}]},
            "ai":{"provider":"openai","model":"gpt-4o","parameters":{"temperature":0.2},"api_key_id":"key_1",
                  "prompt":"p","response":"r","usage":{"input_tokens":1,"output_tokens":2},"cost_usd":0.5,
                  "latency_ms":10,"status_code":500,"error":"e",
                  "security":{"pii_types":["email"],"prompt_injection_score":0.1}}}"#;
        let e = &parse(body).unwrap()[0];
        assert!(e.client_id);
        assert_eq!(e.ai.as_ref().unwrap().total_tokens(), Some(3));
        assert_eq!(e.context.ip.unwrap().to_string(), "2001:db8::1");
        assert_eq!(e.changes[0].after, Value::from("admin"));
    }

    #[test]
    fn a_batch_names_the_index_of_the_bad_event() {
        let body = r#"{"events":[{"organization_id":"a","action":"x.y"},{"organization_id":"a","action":"x.y","context":{"ip":"999.1.1.1"}}]}"#;
        assert_eq!(err(body), (ErrorKind::Invalid, "invalid_ip", "events[1].context.ip".into()));
    }

    #[test]
    fn type_errors_and_unknown_fields_name_their_path() {
        assert_eq!(
            err(r#"{"organization_id":"a","action":"x","targets":"nope"}"#),
            (ErrorKind::Invalid, "invalid_field", "targets".into())
        );
        assert_eq!(
            err(r#"{"events":[{"organization_id":"a","action":"x","actor":{"type":"user","role":"x"}}]}"#),
            (ErrorKind::Invalid, "invalid_field", "events[0].actor.role".into())
        );
        assert_eq!(
            err(r#"{"organization_id":"a","action":"x","ai":{"usage":{"input_tokens":-1}}}"#),
            (ErrorKind::Invalid, "invalid_field", "ai.usage.input_tokens".into())
        );
        assert_eq!(
            err(r#"{"organization_id":"a","action":"x","action":"y"}"#),
            (ErrorKind::Invalid, "invalid_field", "action".into())
        );
        assert_eq!(
            err(r#"{"events":[{"organization_id":"a","action":"x","actor":{"type":"user","type":"system"}}]}"#),
            (ErrorKind::Invalid, "invalid_field", "events[0].actor.type".into())
        );
    }

    #[test]
    fn each_rule_has_its_own_code() {
        let cases: &[(&str, &str, &str)] = &[
            (r#"{"action":"x"}"#, "missing_field", "organization_id"),
            (r#"{"organization_id":"a b","action":"x"}"#, "invalid_organization_id", "organization_id"),
            (r#"{"organization_id":"_platform","action":"x"}"#, "invalid_organization_id", "organization_id"),
            (r#"{"organization_id":"a","action":"X.Y"}"#, "invalid_action", "action"),
            (r#"{"organization_id":"a","action":"x","occurred_at":"yesterday"}"#, "invalid_timestamp", "occurred_at"),
            (
                r#"{"organization_id":"a","action":"x","occurred_at":"2001-01-01T00:00:00Z"}"#,
                "timestamp_out_of_range",
                "occurred_at",
            ),
            (r#"{"organization_id":"a","action":"x","actor":{"type":"robot"}}"#, "invalid_actor_type", "actor.type"),
            (
                r#"{"organization_id":"a","action":"x","actor":{"type":"user","email":"nope"}}"#,
                "invalid_email",
                "actor.email",
            ),
            (r#"{"organization_id":"a","action":"x","targets":[{"type":"t"}]}"#, "missing_field", "targets[0].id"),
            (r#"{"organization_id":"a","action":"x","outcome":"maybe"}"#, "invalid_outcome", "outcome"),
            (r#"{"organization_id":"a","action":"x","metadata":[1]}"#, "invalid_metadata", "metadata"),
            (r#"{"organization_id":"a","action":"x","ai":{"cost_usd":-1}}"#, "invalid_field", "ai.cost_usd"),
            (r#"{"organization_id":"a","action":"x","id":"nope"}"#, "invalid_id", "id"),
            (r#"{"events":[]}"#, "empty_batch", "events"),
            (r#"{"events":[],"extra":1}"#, "unknown_field", "extra"),
        ];
        for (body, code, field) in cases {
            let (_, c, f) = err(body);
            assert_eq!((c, f.as_str()), (*code, *field), "{body}");
        }
    }

    #[test]
    fn size_limits_answer_too_large() {
        let big = format!(r#"{{"organization_id":"a","action":"x","metadata":{{"k":"{}"}}}}"#, "x".repeat(70_000));
        assert_eq!(err(&big), (ErrorKind::TooLarge, "metadata_too_large", "metadata".into()));
        let targets: Vec<String> = (0..101).map(|i| format!(r#"{{"type":"t","id":"{i}"}}"#)).collect();
        let body = format!(r#"{{"organization_id":"a","action":"x","targets":[{}]}}"#, targets.join(","));
        assert_eq!(err(&body), (ErrorKind::TooLarge, "too_many_targets", "targets".into()));
        let events: Vec<&str> = (0..1001).map(|_| r#"{"organization_id":"a","action":"x"}"#).collect();
        let body = format!(r#"{{"events":[{}]}}"#, events.join(","));
        assert_eq!(err(&body), (ErrorKind::TooLarge, "batch_too_large", "events".into()));
    }

    #[test]
    fn broken_json_is_malformed() {
        assert_eq!(err("{").0, ErrorKind::Malformed);
        assert_eq!(err("[]").0, ErrorKind::Malformed);
        let e = parse_batch(b"\xff\xfe", IngestContext { limits: &Limits::default(), now_ms: NOW, default_org: None });
        assert_eq!(e.unwrap_err().kind, ErrorKind::Malformed);
    }

    #[test]
    fn a_batch_is_told_from_one_event_whatever_its_spacing() {
        assert!(is_batch(br#"{"events":[{"action":"x"}]}"#));
        assert!(is_batch(b"  {\n \"events\" : [ {\"action\": \"x\"} ] }"));
        assert!(!is_batch(br#"{"action":"x","organization_id":"a"}"#));
    }

    #[test]
    fn an_org_scoped_key_supplies_the_organisation() {
        let org = OrgId::parse("acme").unwrap();
        let limits = Limits::default();
        let events =
            parse_batch(br#"{"action":"x"}"#, IngestContext { limits: &limits, now_ms: NOW, default_org: Some(&org) })
                .unwrap();
        assert_eq!(events[0].organization_id, org);
    }
}
