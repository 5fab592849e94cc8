//! The events every phase writes: realistic, varied audit events drawn from one seeded generator.
//!
//! A [`Population`] of eight organisations of unequal size (members, projects, API keys) is fixed by
//! the seed, with member activity skewed as in real teams (the k-th most active person acts 1/k as
//! often as the first); a [`Generator`] then draws a stream of events in the ingest wire format,
//! about 600-700 bytes of JSON each. Seven in ten are administrative actions from [`CATALOG`] (sign-ins, API keys,
//! roles, datasets, billing, webhooks, …) with actors, targets, context and metadata; three in ten are
//! AI requests with a model, usage, cost, latency and, for chat completions, the prompt and response.
//! Times run forward through the last [`SPAN_DAYS`] days, as a live stream would, so each
//! organisation's time index grows at its right edge.
//!
//! The same seed always yields the same JSON (apart from the times, which follow the clock), so the
//! HTTP phase and the raw-engine phase write the very same events. The last event of a stream carries
//! [`marker_word`] in its metadata: a word found nowhere else, which the searchability check looks for.
//!
//! Addresses come from the documentation ranges and mailboxes from `.example` domains.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use trailkeep_core::time::format_millis;

const DAY_MS: i64 = 86_400_000;
/// How many days the generated timeline covers: "the last 24 h" selects about a thirtieth of it.
pub const SPAN_DAYS: i64 = 30;
/// The share of events that are AI requests.
const AI_SHARE: f64 = 0.30;
/// The share of AI requests sent from the playground by a person rather than through an API key.
const PLAYGROUND_SHARE: f64 = 0.12;
/// The share of AI requests with a long context (tens of thousands of input tokens): the costly ones.
const LONG_CONTEXT_SHARE: f64 = 0.05;

/// Words that AI prompts and responses (and some admin notes) talk about; full-text queries pick from
/// these, each of which appears in one to three events in a hundred.
pub const TOPICS: &[&str] = &[
    "invoice",
    "refund",
    "onboarding",
    "churn",
    "roadmap",
    "latency",
    "outage",
    "contract",
    "renewal",
    "pricing",
    "forecast",
    "payroll",
    "compliance",
    "encryption",
    "migration",
    "warehouse",
    "shipment",
    "inventory",
    "recruiting",
    "benefits",
    "firewall",
    "backup",
    "retention",
    "dashboard",
    "analytics",
    "campaign",
    "newsletter",
    "webinar",
    "partnership",
    "procurement",
    "budget",
    "vendor",
    "license",
    "trademark",
    "warranty",
    "subscription",
    "checkout",
    "discount",
    "loyalty",
    "feedback",
    "survey",
    "escalation",
    "handover",
    "deployment",
    "rollback",
    "certificate",
];

const ORG_NAMES: &[(&str, u32)] = &[
    ("northwind", 28),
    ("acme-robotics", 20),
    ("globex", 15),
    ("initech", 11),
    ("umbrella-health", 9),
    ("hooli", 8),
    ("stark-logistics", 6),
    ("wayne-finance", 3),
];
const FIRST_NAMES: &[&str] = &[
    "ana", "ben", "chloe", "dmitri", "elif", "farah", "george", "hana", "ivan", "julia", "kofi", "lena", "mateo",
    "nadia", "omar", "priya", "quentin", "rosa", "sven", "tariq", "uma", "victor", "wen", "yusuf", "zoe",
];
const LAST_NAMES: &[&str] = &[
    "lima",
    "okafor",
    "schmidt",
    "tanaka",
    "kowalski",
    "haddad",
    "novak",
    "moreau",
    "silva",
    "lindqvist",
    "chen",
    "rossi",
    "nakamura",
    "osei",
    "fischer",
    "dubois",
    "kaur",
    "petrov",
    "garcia",
    "obrien",
];
const PROJECTS: &[&str] =
    &["web", "mobile", "billing-api", "data-platform", "assistant", "search", "internal-tools", "partner-portal"];
const KEY_NAMES: &[&str] =
    &["ci-deploy", "staging-worker", "etl-nightly", "support-bot", "mobile-backend", "analytics-export"];
const REGIONS: &[&str] = &["eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-1"];
const SOURCES: &[&str] = &["dashboard", "api", "terraform", "cli"];
const CITIES: &[&str] = &["Berlin, DE", "Lisbon, PT", "Austin, US", "Toronto, CA", "Nairobi, KE", "Osaka, JP"];
const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Firefox/128.0",
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36",
];
const SDKS: &[&str] =
    &["trailkeep-python/1.4.2", "trailkeep-node/2.1.0", "terraform-provider-acme/0.9.1", "curl/8.7.1"];
const ERRORS: &[&str] = &[
    "permission denied: the key lacks the admin scope",
    "conflict: the resource was changed by another request",
    "upstream timeout after 30 s",
];

/// Who usually performs an administrative action.
#[derive(Clone, Copy)]
enum Who {
    User,
    Service,
    Webhook,
    System,
    ApiKey,
}

/// One administrative action: its name, primary resource type, the phrase its description uses, who
/// performs it, and how often it happens relative to the others.
struct AdminAction {
    action: &'static str,
    target: &'static str,
    phrase: &'static str,
    who: Who,
    weight: u32,
}

const fn admin(action: &'static str, target: &'static str, phrase: &'static str, who: Who, weight: u32) -> AdminAction {
    AdminAction { action, target, phrase, who, weight }
}

/// The administrative actions and how often each occurs.
const CATALOG: &[AdminAction] = &[
    admin("user.signed_in", "user", "signed in as", Who::User, 30),
    admin("user.signed_out", "user", "signed out as", Who::User, 10),
    admin("user.invited", "user", "invited", Who::User, 4),
    admin("user.role_changed", "user", "changed the role of", Who::User, 4),
    admin("member.removed", "user", "removed", Who::User, 2),
    admin("api_key.created", "api_key", "created the API key", Who::User, 4),
    admin("api_key.revoked", "api_key", "revoked the API key", Who::User, 2),
    admin("api_key.rotated", "api_key", "rotated the API key", Who::Service, 3),
    admin("project.created", "project", "created the project", Who::User, 2),
    admin("project.settings_updated", "project", "updated the settings of", Who::User, 5),
    admin("dataset.uploaded", "dataset", "uploaded the dataset", Who::User, 4),
    admin("dataset.exported", "dataset", "exported the dataset", Who::ApiKey, 4),
    admin("prompt.version_published", "prompt", "published a new version of", Who::User, 5),
    admin("billing.plan_changed", "subscription", "changed the plan of", Who::User, 1),
    admin("billing.invoice_paid", "invoice", "recorded the payment of", Who::System, 2),
    admin("sso.connection_updated", "sso_connection", "updated the SSO connection", Who::User, 1),
    admin("webhook.delivery_failed", "webhook", "could not deliver to", Who::Webhook, 3),
    admin("secret.accessed", "secret", "read the secret", Who::Service, 8),
    admin("provider_key.added", "provider_key", "added the provider key", Who::User, 1),
    admin("model.deployed", "deployment", "deployed", Who::ApiKey, 3),
    admin("policy.updated", "policy", "updated the policy", Who::User, 2),
];

/// A model an AI request may use, with its list prices in dollars per million tokens.
struct Model {
    provider: &'static str,
    name: &'static str,
    input_price: f64,
    output_price: f64,
}

const MODELS: &[Model] = &[
    Model { provider: "openai", name: "gpt-4o", input_price: 2.5, output_price: 10.0 },
    Model { provider: "openai", name: "gpt-4o-mini", input_price: 0.15, output_price: 0.6 },
    Model { provider: "anthropic", name: "claude-sonnet-4", input_price: 3.0, output_price: 15.0 },
    Model { provider: "anthropic", name: "claude-opus-4", input_price: 15.0, output_price: 75.0 },
    Model { provider: "google", name: "gemini-2.5-pro", input_price: 1.25, output_price: 10.0 },
    Model { provider: "mistral", name: "mistral-large", input_price: 2.0, output_price: 6.0 },
];

const PROMPTS: &[&str] = &[
    "Summarise yesterday's notes on the {0} review and the open questions about {1}.",
    "Draft a short reply to a customer asking about their {0} and the delayed {1}.",
    "Classify this ticket about {0} by urgency; who owns the {1} follow-up?",
    "Translate the {0} section of the handbook into German, keeping {1} terms.",
    "Write a SQL query for monthly {0} totals by {1} over the last year.",
];
const RESPONSES: &[&str] = &[
    "The team will revisit the {0} plan next sprint; two questions about {1} remain open.",
    "Thanks for reaching out! Your {0} is confirmed and the {1} ships within three days.",
    "Urgency: high. It concerns {0}; the operations team owns the {1} follow-up.",
    "Done: the {0} section is translated, with {1} terms kept in English.",
    "SELECT month, {1}, sum({0}) FROM facts GROUP BY 1, 2 ORDER BY 1;",
];

/// A member of an organisation.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub email: String,
}

/// An organisation whose events the generator writes.
#[derive(Debug, Clone)]
pub struct Org {
    pub id: String,
    /// Its share of the stream, relative to the other organisations.
    weight: u32,
    projects: Vec<String>,
    pub members: Vec<Member>,
    /// Cumulative activity weights of `members`: a few people do most things, many do little.
    member_weights: Vec<f64>,
    /// The organisation's API keys, as (id, name).
    api_keys: Vec<(String, String)>,
}

/// The organisations, people and keys events are about, fixed by the seed.
#[derive(Debug, Clone)]
pub struct Population {
    pub orgs: Vec<Org>,
}

fn hex_id(rng: &mut StdRng, len: usize) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    (0..len).map(|_| HEX[rng.random_range(0..16)] as char).collect()
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// Cumulative Zipf weights (the k-th most active member acts 1/k as often as the first) for `n` members.
fn zipf_cumulative(n: usize) -> Vec<f64> {
    (1..=n)
        .scan(0.0_f64, |sum, k| {
            *sum += 1.0 / k as f64;
            Some(*sum)
        })
        .collect()
}

impl Population {
    pub fn new(seed: u64) -> Population {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x7072_6f66_696c_6573);
        let orgs = ORG_NAMES
            .iter()
            .map(|&(id, weight)| {
                let domain = format!("{id}.example");
                let members: Vec<Member> = (0..rng.random_range(15..=60))
                    .map(|_| {
                        let first = *FIRST_NAMES.choose(&mut rng).unwrap_or(&"ana");
                        let last = *LAST_NAMES.choose(&mut rng).unwrap_or(&"lima");
                        let tag = rng.random_range(1..100);
                        Member {
                            id: format!("usr_{}", hex_id(&mut rng, 12)),
                            name: format!("{} {}", capitalise(first), capitalise(last)),
                            email: format!("{first}.{last}{tag}@{domain}"),
                        }
                    })
                    .collect();
                let project_count = rng.random_range(2..=5);
                let projects = PROJECTS.choose_multiple(&mut rng, project_count).map(|p| (*p).to_owned()).collect();
                let api_keys = KEY_NAMES
                    .iter()
                    .map(|name| (format!("key_{}", hex_id(&mut rng, 16)), format!("{name}-{}", rng.random_range(1..9))))
                    .collect();
                let member_weights = zipf_cumulative(members.len());
                Org { id: id.to_owned(), weight, projects, members, member_weights, api_keys }
            })
            .collect();
        Population { orgs }
    }
}

/// The word only the last event of a stream carries.
pub fn marker_word(seed: u64) -> String {
    format!("tkbenchlast{seed:x}")
}

/// Draws a stream of `total` events in the ingest wire format.
pub struct Generator {
    population: Arc<Population>,
    rng: StdRng,
    start_ms: i64,
    step_ms: f64,
    index: u64,
    total: u64,
    marker: String,
    org_weights: u32,
    action_weights: u32,
}

impl Generator {
    /// A stream of `total` events whose times run from [`SPAN_DAYS`] days before `now_ms` to about now.
    pub fn new(population: Arc<Population>, seed: u64, total: u64, now_ms: i64) -> Generator {
        let span = SPAN_DAYS * DAY_MS;
        let org_weights = population.orgs.iter().map(|o| o.weight).sum();
        Generator {
            population,
            rng: StdRng::seed_from_u64(seed),
            start_ms: now_ms - span,
            step_ms: span as f64 / total.max(1) as f64,
            index: 0,
            total,
            marker: marker_word(seed),
            org_weights,
            action_weights: CATALOG.iter().map(|a| a.weight).sum(),
        }
    }

    /// The next event's JSON text.
    pub fn next_event(&mut self) -> String {
        let i = self.index;
        self.index += 1;
        // Events arrive roughly in time order, up to two minutes late.
        let occurred_at = self.start_ms + (i as f64 * self.step_ms) as i64 - self.rng.random_range(0..120_000);
        let population = self.population.clone();
        let org = self.pick_org(&population);
        let mut event = Map::new();
        event.insert("organization_id".into(), json!(org.id));
        if self.rng.random_bool(0.6) {
            event.insert("project_id".into(), json!(org.projects.choose(&mut self.rng)));
        }
        if self.rng.random_bool(AI_SHARE) {
            self.ai_event(org, occurred_at, &mut event);
        } else {
            self.admin_event(org, occurred_at, &mut event);
        }
        if i + 1 == self.total
            && let Some(Value::Object(metadata)) = event.get_mut("metadata")
        {
            metadata.insert("marker".into(), json!(self.marker));
        }
        serde_json::to_string(&Value::Object(event)).unwrap_or_default()
    }

    fn pick_org<'p>(&mut self, population: &'p Population) -> &'p Org {
        let mut n = self.rng.random_range(0..self.org_weights);
        for org in &population.orgs {
            if n < org.weight {
                return org;
            }
            n -= org.weight;
        }
        &population.orgs[0]
    }

    fn pick_action(&mut self) -> &'static AdminAction {
        let mut n = self.rng.random_range(0..self.action_weights);
        for action in CATALOG {
            if n < action.weight {
                return action;
            }
            n -= action.weight;
        }
        &CATALOG[0]
    }

    fn pick<'s>(&mut self, items: &'s [&'s str]) -> &'s str {
        items.choose(&mut self.rng).copied().unwrap_or_default()
    }

    fn ip(&mut self) -> String {
        if self.rng.random_bool(0.1) {
            format!("2001:db8:{:x}::{:x}", self.rng.random_range(1..0xffff), self.rng.random_range(1..0xffff))
        } else {
            let net = self.pick(&["192.0.2", "198.51.100", "203.0.113"]);
            format!("{net}.{}", self.rng.random_range(1..255))
        }
    }

    fn member<'o>(&mut self, org: &'o Org) -> &'o Member {
        let total = org.member_weights.last().copied().unwrap_or(1.0);
        let x = self.rng.random_range(0.0..total);
        let i = org.member_weights.partition_point(|&w| w <= x).min(org.members.len() - 1);
        &org.members[i]
    }

    fn actor(&mut self, org: &Org, who: Who) -> Value {
        match who {
            Who::User => {
                let m = self.member(org);
                json!({"type": "user", "id": m.id, "name": m.name, "email": m.email})
            }
            Who::ApiKey => {
                let (id, name) = org.api_keys.choose(&mut self.rng).cloned().unwrap_or_default();
                json!({"type": "api_key", "id": id, "name": name})
            }
            Who::Service => {
                let name = self.pick(&["billing-worker", "key-rotator", "config-sync", "report-builder"]);
                json!({"type": "service", "id": format!("svc_{name}"), "name": name})
            }
            Who::Webhook => {
                let name = self.pick(&["stripe", "github", "pagerduty", "slack"]);
                json!({"type": "webhook", "id": format!("whk_{}", hex_id(&mut self.rng, 10)), "name": name})
            }
            Who::System => json!({"type": "system", "id": "scheduler", "name": "Scheduler"}),
        }
    }

    /// The primary target of an administrative action, as (id, name).
    fn target(&mut self, org: &Org, target_type: &str) -> (String, String) {
        let suffix = hex_id(&mut self.rng, 10);
        match target_type {
            "user" => {
                let m = self.member(org);
                (m.id.clone(), m.name.clone())
            }
            "api_key" => org.api_keys.choose(&mut self.rng).cloned().unwrap_or_default(),
            "project" => {
                let p = org.projects.choose(&mut self.rng).cloned().unwrap_or_default();
                (format!("prj_{p}"), p)
            }
            "dataset" => {
                let topic = self.pick(TOPICS);
                (format!("ds_{suffix}"), format!("{topic}-export-{}", self.rng.random_range(2023..2027)))
            }
            "prompt" => {
                let name = self.pick(&["support-triage", "weekly-summary", "sql-helper", "translator"]);
                (format!("prm_{suffix}"), name.to_owned())
            }
            "subscription" => (format!("sub_{suffix}"), self.pick(&["Team", "Business", "Enterprise"]).to_owned()),
            "invoice" => (format!("in_{suffix}"), format!("INV-2026-{:05}", self.rng.random_range(1..99_999))),
            "sso_connection" => (format!("sso_{suffix}"), self.pick(&["Okta", "Entra ID", "Google"]).to_owned()),
            "webhook" => (format!("we_{suffix}"), format!("https://hooks.{}.example/trailkeep", org.id)),
            "secret" => {
                (format!("sec_{suffix}"), self.pick(&["DATABASE_URL", "STRIPE_SECRET_KEY", "SMTP_PASSWORD"]).to_owned())
            }
            "provider_key" => {
                (format!("pk_{suffix}"), self.pick(&["openai-prod", "anthropic-eu", "gemini-batch"]).to_owned())
            }
            "deployment" => {
                let model = MODELS.choose(&mut self.rng).map_or("gpt-4o", |m| m.name);
                (format!("dep_{suffix}"), format!("{model}-{}", self.pick(&["prod", "canary", "eval"])))
            }
            _ => {
                (format!("pol_{suffix}"), self.pick(&["Data retention", "PII redaction", "Model allowlist"]).to_owned())
            }
        }
    }

    fn context(&mut self, is_user: bool) -> Value {
        let mut context = Map::new();
        context.insert("ip".into(), json!(self.ip()));
        let agent = if is_user { self.pick(BROWSERS) } else { self.pick(SDKS) };
        context.insert("user_agent".into(), json!(agent));
        if is_user && self.rng.random_bool(0.5) {
            context.insert("location".into(), json!(self.pick(CITIES)));
        }
        if is_user && self.rng.random_bool(0.4) {
            context.insert("session_id".into(), json!(format!("ses_{}", hex_id(&mut self.rng, 12))));
        }
        context.insert("request_id".into(), json!(format!("req_{}", hex_id(&mut self.rng, 16))));
        Value::Object(context)
    }

    fn admin_event(&mut self, org: &Org, occurred_at: i64, event: &mut Map<String, Value>) {
        let kind = self.pick_action();
        let actor = self.actor(org, kind.who);
        let (target_id, target_name) = self.target(org, kind.target);
        let who = actor.get("name").and_then(Value::as_str).unwrap_or("someone").to_owned();
        event.insert("action".into(), json!(kind.action));
        event.insert("occurred_at".into(), json!(format_millis(occurred_at)));
        if self.rng.random_bool(0.98) {
            event.insert("actor".into(), actor);
        }
        event.insert("targets".into(), json!([{"type": kind.target, "id": target_id, "name": target_name}]));
        event.insert("context".into(), self.context(matches!(kind.who, Who::User)));
        event.insert("description".into(), json!(format!("{who} {} {target_name}", kind.phrase)));
        let failed = kind.action == "webhook.delivery_failed" || self.rng.random_bool(0.03);
        event.insert("outcome".into(), json!(if failed { "failure" } else { "success" }));
        if failed {
            event.insert("error".into(), json!(self.pick(ERRORS)));
        }
        if let Some(change) = self.change(kind.action) {
            event.insert("changes".into(), json!([change]));
        }
        let mut metadata = Map::new();
        metadata.insert("source".into(), json!(self.pick(SOURCES)));
        if self.rng.random_bool(0.5) {
            metadata.insert("region".into(), json!(self.pick(REGIONS)));
        }
        if self.rng.random_bool(0.3) {
            metadata.insert("ticket".into(), json!(format!("OPS-{}", self.rng.random_range(100..9999))));
        }
        if self.rng.random_bool(0.2) {
            let topic = self.pick(TOPICS);
            metadata.insert("note".into(), json!(format!("requested during the {topic} review")));
        }
        event.insert("metadata".into(), Value::Object(metadata));
    }

    fn change(&mut self, action: &str) -> Option<Value> {
        let (field, before, after) = match action {
            "user.role_changed" => {
                let roles = ["viewer", "member", "admin", "owner"];
                let i = self.rng.random_range(0..roles.len() - 1);
                ("role", json!(roles[i]), json!(roles[i + 1]))
            }
            "project.settings_updated" => ("retention_days", json!(90), json!(self.pick(&["180", "365", "730"]))),
            "billing.plan_changed" => ("plan", json!("Team"), json!("Business")),
            "policy.updated" => ("enabled", json!(false), json!(true)),
            _ => return None,
        };
        Some(json!({"field": field, "before": before, "after": after}))
    }

    fn ai_event(&mut self, org: &Org, occurred_at: i64, event: &mut Map<String, Value>) {
        let model = MODELS.choose(&mut self.rng).unwrap_or(&MODELS[0]);
        let chat = self.rng.random_bool(0.8);
        let playground = self.rng.random_bool(PLAYGROUND_SHARE);
        let actor = self.actor(org, if playground { Who::User } else { Who::ApiKey });
        let (topic_a, topic_b) = (self.pick(TOPICS), self.pick(TOPICS));
        let template = self.rng.random_range(0..PROMPTS.len());
        let fill = |t: &str| t.replace("{0}", topic_a).replace("{1}", topic_b);

        let long = self.rng.random_bool(LONG_CONTEXT_SHARE);
        let input_tokens: u64 =
            if long { self.rng.random_range(20_000..150_000) } else { self.rng.random_range(200..3_000) };
        let output_tokens: u64 = if chat { self.rng.random_range(40..1_200) } else { 0 };
        let cost = (input_tokens as f64 * model.input_price + output_tokens as f64 * model.output_price) / 1e6;
        let status: u16 = match self.rng.random_range(0..100) {
            0..=1 => 429,
            2 => 500,
            _ => 200,
        };

        event.insert("action".into(), json!(if chat { "ai.chat.completion" } else { "ai.embedding.create" }));
        event.insert("occurred_at".into(), json!(format_millis(occurred_at)));
        let api_key_id = actor.get("id").cloned();
        event.insert("actor".into(), actor);
        event.insert("context".into(), self.context(playground));
        let verb = if chat { "Chat completion" } else { "Embedding" };
        event.insert("description".into(), json!(format!("{verb} with {}", model.name)));
        event.insert("outcome".into(), json!(if status == 200 { "success" } else { "failure" }));
        let feature = self.pick(&["support-assistant", "summariser", "semantic-search", "code-review"]);
        let environment = self.pick(&["production", "production", "staging"]);
        event.insert("metadata".into(), json!({"feature": feature, "environment": environment}));

        let mut ai = Map::new();
        ai.insert("provider".into(), json!(model.provider));
        ai.insert("model".into(), json!(model.name));
        let temperature = f64::from(self.rng.random_range(0..=10u8)) / 10.0;
        ai.insert("parameters".into(), json!({"temperature": temperature}));
        if playground {
            if let Some(user) = api_key_id {
                ai.insert("user_id".into(), user);
            }
        } else if let Some(key) = api_key_id {
            ai.insert("api_key_id".into(), key);
        }
        ai.insert("prompt".into(), json!(fill(PROMPTS[template])));
        if chat && status == 200 {
            ai.insert("response".into(), json!(fill(RESPONSES[template])));
        }
        ai.insert("usage".into(), json!({"input_tokens": input_tokens, "output_tokens": output_tokens}));
        ai.insert("cost_usd".into(), json!((cost * 1e6).round() / 1e6));
        ai.insert("latency_ms".into(), json!(self.rng.random_range(80..4_000) + input_tokens / 100));
        ai.insert("status_code".into(), json!(status));
        let error = match status {
            429 => Some("rate limited by the provider"),
            500 => Some("the provider answered 500 internal error"),
            _ => None,
        };
        if let Some(error) = error {
            ai.insert("error".into(), json!(error));
        }
        if self.rng.random_bool(0.08) {
            ai.insert("security".into(), json!({"pii_types": ["email"], "prompt_injection_score": 0.02}));
        }
        event.insert("ai".into(), Value::Object(ai));
    }
}

/// `total` events from a fresh generator, all in memory.
pub fn generate(population: &Arc<Population>, seed: u64, total: u64, now_ms: i64) -> Vec<String> {
    let mut generator = Generator::new(population.clone(), seed, total, now_ms);
    (0..total).map(|_| generator.next_event()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000;

    #[test]
    fn a_seed_always_yields_the_same_events() {
        let population = Arc::new(Population::new(7));
        assert_eq!(generate(&population, 7, 500, NOW), generate(&population, 7, 500, NOW));
        assert_ne!(generate(&population, 7, 500, NOW), generate(&population, 8, 500, NOW));
    }

    #[test]
    fn events_are_valid_and_about_650_bytes() {
        let population = Arc::new(Population::new(42));
        let events = generate(&population, 42, 20_000, NOW);
        let limits = trailkeep_core::Limits::default();
        let cx = trailkeep_core::validate::IngestContext { limits: &limits, now_ms: NOW, default_org: None };
        let parsed: Vec<_> = events.iter().map(|e| trailkeep_core::validate::parse_event(e, "", cx).unwrap()).collect();
        let mean = events.iter().map(String::len).sum::<usize>() / events.len();
        assert!((600..=700).contains(&mean), "mean size {mean}");
        let ai = parsed.iter().filter(|e| e.ai.is_some()).count() as f64 / parsed.len() as f64;
        assert!((0.27..0.33).contains(&ai), "AI share {ai}");
        let costly = parsed.iter().filter(|e| e.ai.as_ref().and_then(|a| a.cost_usd).is_some_and(|c| c >= 0.5)).count();
        assert!(costly > 0, "some AI requests cost half a dollar or more");
    }

    #[test]
    fn only_the_last_event_carries_the_marker() {
        let population = Arc::new(Population::new(3));
        let events = generate(&population, 3, 300, NOW);
        let marker = marker_word(3);
        assert!(events[299].contains(&marker));
        assert_eq!(events.iter().filter(|e| e.contains(&marker)).count(), 1);
    }
}
