//! The audit event: one record type for administrative actions and AI requests.
//!
//! [`NewEvent`] is an event that passed validation and waits for the store to give it a place in its
//! organisation's log; [`Event`] is what the store kept, with its `seq` and `received_at`. Both serialize
//! to the JSON shape the API returns. Timestamps are milliseconds since the Unix epoch and appear on the
//! wire as RFC 3339 strings with millisecond precision.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::action::Action;
use crate::ids::{OrgId, ProjectId};
use crate::time::millis_rfc3339;

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    User,
    System,
    ApiKey,
    Webhook,
    Service,
}

impl ActorType {
    pub const ALL: [ActorType; 5] =
        [ActorType::User, ActorType::System, ActorType::ApiKey, ActorType::Webhook, ActorType::Service];

    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::User => "user",
            ActorType::System => "system",
            ActorType::ApiKey => "api_key",
            ActorType::Webhook => "webhook",
            ActorType::Service => "service",
        }
    }

    pub fn parse(s: &str) -> Option<ActorType> {
        ActorType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "type")]
    pub actor_type: ActorType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A resource the action touched. The first target of an event is its primary resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    #[serde(rename = "type")]
    pub target_type: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl Context {
    pub fn is_empty(&self) -> bool {
        *self == Context::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

/// One changed field of an update, with its value before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct Change {
    pub field: String,
    #[serde(default)]
    pub before: Value,
    #[serde(default)]
    pub after: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct AiUsage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
}

/// What the platform's security checks found in an AI request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct AiSecurity {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pii_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content_filter_flags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_injection_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incident_ids: Vec<String>,
}

/// The AI request block of an event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct AiRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<AiUsage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<AiSecurity>,
}

impl AiRecord {
    pub fn total_tokens(&self) -> Option<u64> {
        let usage = self.usage.as_ref()?;
        usage.total_tokens.or(match (usage.input_tokens, usage.output_tokens) {
            (None, None) => None,
            (i, o) => Some(i.unwrap_or(0) + o.unwrap_or(0)),
        })
    }
}

/// A validated event that has not yet been given its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The id: supplied by the client to deduplicate retries, or assigned (UUIDv7) at validation.
    pub id: Uuid,
    /// Whether the client supplied `id`, in which case a stored event with the same id is this one.
    pub client_id: bool,
    pub organization_id: OrgId,
    pub project_id: Option<ProjectId>,
    pub action: Action,
    pub category: String,
    pub occurred_at: i64,
    pub actor: Option<Actor>,
    pub targets: Vec<Target>,
    pub context: Context,
    pub description: Option<String>,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub changes: Vec<Change>,
    pub metadata: Map<String, Value>,
    pub ai: Option<AiRecord>,
}

impl NewEvent {
    /// The event as kept, once the store has given it a sequence number and a receive time.
    pub fn into_event(self, seq: u64, received_at: i64) -> Event {
        Event {
            id: self.id,
            seq,
            received_at,
            organization_id: self.organization_id,
            project_id: self.project_id,
            action: self.action,
            category: self.category,
            occurred_at: self.occurred_at,
            actor: self.actor,
            targets: self.targets,
            context: self.context,
            description: self.description,
            outcome: self.outcome,
            error: self.error,
            changes: self.changes,
            metadata: self.metadata,
            ai: self.ai,
        }
    }
}

/// An event as kept in its organisation's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: Uuid,
    pub seq: u64,
    #[serde(with = "millis_rfc3339")]
    pub received_at: i64,
    pub organization_id: OrgId,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub project_id: Option<ProjectId>,
    pub action: Action,
    pub category: String,
    #[serde(with = "millis_rfc3339")]
    pub occurred_at: i64,
    #[serde(default)]
    pub actor: Option<Actor>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
    #[serde(default, skip_serializing_if = "Context::is_empty")]
    pub context: Context,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ai: Option<AiRecord>,
}

impl Event {
    pub fn primary_target(&self) -> Option<&Target> {
        self.targets.first()
    }
}

impl Event {
    /// The text full-text search looks in: description, actor name and email, target names, metadata
    /// values, the error message, and the AI prompt, response and error. Pieces are separated by newlines.
    pub fn searchable_text(&self) -> String {
        let mut out = String::new();
        let mut push = |s: &str| {
            if !s.is_empty() {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(s);
            }
        };
        if let Some(d) = &self.description {
            push(d);
        }
        if let Some(a) = &self.actor {
            for s in [&a.name, &a.email, &a.id].into_iter().flatten() {
                push(s);
            }
        }
        for t in &self.targets {
            if let Some(n) = &t.name {
                push(n);
            }
        }
        if let Some(e) = &self.error {
            push(e);
        }
        fn values(v: &Value, push: &mut dyn FnMut(&str)) {
            match v {
                Value::String(s) => push(s),
                Value::Number(n) => push(&n.to_string()),
                Value::Bool(b) => push(if *b { "true" } else { "false" }),
                Value::Array(a) => a.iter().for_each(|v| values(v, push)),
                Value::Object(o) => o.values().for_each(|v| values(v, push)),
                Value::Null => {}
            }
        }
        for v in self.metadata.values() {
            values(v, &mut push);
        }
        if let Some(ai) = &self.ai {
            for s in [&ai.prompt, &ai.response, &ai.error].into_iter().flatten() {
                push(s);
            }
        }
        out
    }
}

crate::object::objects_only!(serialize: Change, AiUsage, AiSecurity, AiRecord);
