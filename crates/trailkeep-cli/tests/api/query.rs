//! Querying the log: every filter parameter of `GET /v1/events` and every key of the query language.
//!
//! Each test seeds the same small fixture of varied events and then asks for the exact, ordered list of
//! events a filter must return. The expectation is computed from the fixture definitions by a model of
//! each filter written here from `docs/query-language.md` (action patterns, CIDR networks, whole-word
//! phrases and so on), never copied from the server's output. Every such filter must select some but
//! not all of the fixture, so that no check passes by returning everything or nothing.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use trailkeep_client::ClientError;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

const ORG: &str = "acme";
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// A word every fixture event carries in its metadata, so a test can wait until all are searchable.
const MARK: &str = "seeded";

#[derive(Clone, Copy, Default)]
struct Who {
    kind: &'static str,
    id: Option<&'static str>,
    name: Option<&'static str>,
    email: Option<&'static str>,
}

#[derive(Clone, Default)]
struct Ai {
    provider: Option<&'static str>,
    model: Option<&'static str>,
    api_key_id: Option<&'static str>,
    prompt: Option<&'static str>,
    response: Option<&'static str>,
    error: Option<&'static str>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    total_tokens: Option<u64>,
    cost: Option<f64>,
    latency: Option<u64>,
    status: Option<u16>,
}

/// One fixture event as defined, plus the id and seq the service gave it.
#[derive(Clone, Default)]
struct Fx {
    label: &'static str,
    project: Option<&'static str>,
    action: &'static str,
    category: Option<&'static str>,
    at: i64,
    actor: Option<Who>,
    /// `(type, id, name)`; the first is the primary resource.
    targets: Vec<(&'static str, &'static str, Option<&'static str>)>,
    ip: Option<&'static str>,
    description: Option<&'static str>,
    failure: bool,
    error: Option<&'static str>,
    metadata: Value,
    ai: Option<Ai>,
    id: Uuid,
    seq: u64,
}

fn user(id: &'static str, name: Option<&'static str>, email: Option<&'static str>) -> Option<Who> {
    Some(Who { kind: "user", id: Some(id), name, email })
}

fn actor(kind: &'static str, id: &'static str, name: Option<&'static str>) -> Option<Who> {
    Some(Who { kind, id: Some(id), name, email: None })
}

/// The fixture, placed around `now`; `d` is midnight (UTC) thirty days earlier, so date queries have
/// whole days to work with and every event lies well inside the accepted ingest window.
fn fixtures(now: i64, d: i64) -> Vec<Fx> {
    vec![
        Fx {
            label: "key_created",
            project: Some("web"),
            action: "api_key.created",
            at: d + 10 * HOUR,
            actor: user("u_alice", Some("Alice Smith"), Some("alice@example.com")),
            targets: vec![("api_key", "k_1", Some("Release key"))],
            ip: Some("10.1.2.3"),
            description: Some("Alice rotated key for deploys"),
            metadata: json!({"plan": "pro", "tier": "gold"}),
            ..Fx::default()
        },
        Fx {
            label: "key_revoked",
            project: Some("web"),
            action: "api_key.revoked",
            at: d + 11 * HOUR,
            actor: user("u_alice", None, Some("alice@example.com")),
            targets: vec![("api_key", "k_1", None)],
            ip: Some("10.9.9.9"),
            description: Some("revoked the deploy key"),
            failure: true,
            error: Some("permission denied by policy"),
            metadata: json!({"plan": "enterprise", "tier": 1}),
            ..Fx::default()
        },
        Fx {
            label: "user_added",
            project: Some("mobile"),
            action: "organisation.user.added",
            category: Some("membership"),
            at: d + DAY,
            actor: user("u_bob", Some("Bob Jones"), Some("bob@example.com")),
            targets: vec![("user", "u_carol", Some("Carol Diaz")), ("team", "t_1", Some("Core Team"))],
            ip: Some("192.168.1.20"),
            description: Some("added Carol to the organisation"),
            metadata: json!({"tier": true}),
            ..Fx::default()
        },
        Fx {
            label: "role_assigned",
            project: Some("mobile"),
            action: "organisation.user.role.assigned",
            at: d + 2 * DAY - 1,
            actor: actor("service", "svc_sync", None),
            targets: vec![("user", "u_carol", None)],
            ip: Some("2001:db8::1"),
            description: Some("role assigned by sync"),
            metadata: json!({"role": "admin", "nested": {"deep": ["lighthouse", 7]}}),
            ..Fx::default()
        },
        Fx {
            label: "team_added",
            project: Some("web"),
            action: "organisation.team.added",
            at: d + 2 * DAY,
            actor: actor("system", "cron", None),
            targets: vec![("team", "t_2", Some("Platform Team"))],
            ip: Some("2001:db8:1::5"),
            description: Some("scheduled team creation"),
            metadata: json!({"tier": "1"}),
            ..Fx::default()
        },
        Fx {
            label: "org_bare",
            action: "organisation",
            at: d + 3 * DAY,
            actor: actor("webhook", "wh_github", None),
            targets: vec![("repo", "r_1", Some("trailkeep repo"))],
            description: Some("webhook ping"),
            ..Fx::default()
        },
        Fx {
            label: "ds_deleted",
            project: Some("web"),
            action: "datasource.deleted",
            at: d + 4 * DAY,
            actor: actor("api_key", "key_ci", Some("CI")),
            targets: vec![("datasource", "ds_42", Some("Sales DB"))],
            ip: Some("10.200.0.1"),
            description: Some("delete datasource attempt"),
            failure: true,
            error: Some("datasource busy"),
            ..Fx::default()
        },
        Fx {
            label: "ds_created",
            project: Some("web"),
            action: "datasource.created",
            at: d + 4 * DAY + HOUR,
            actor: user("u_bob", None, Some("bob@example.com")),
            targets: vec![("datasource", "ds_43", Some("Staging DB"))],
            ip: Some("172.16.0.1"),
            description: Some("created a datasource"),
            ..Fx::default()
        },
        Fx {
            label: "invoice_paid",
            action: "billing.invoice.paid",
            at: d + 5 * DAY,
            description: Some("invoice paid"),
            metadata: json!({"amount": 42, "rate": 0.25, "paid": false, "currency": "EUR"}),
            ..Fx::default()
        },
        Fx {
            label: "cert_rotated",
            project: Some("ops"),
            action: "certificate.rotated",
            at: d + 6 * DAY,
            actor: actor("service", "ops team", None),
            targets: vec![("certificate", "cert,primary", Some("TLS cert"))],
            ip: Some("fe80::1"),
            description: Some("rotated the certificate; key unchanged"),
            metadata: json!({"label": "say \"hi\""}),
            ..Fx::default()
        },
        Fx {
            label: "ai_failed",
            project: Some("web"),
            action: "ai.request",
            at: now - 10 * DAY,
            actor: actor("service", "svc_sync", None),
            failure: true,
            error: Some("model call failed"),
            ai: Some(Ai {
                provider: Some("openai"),
                model: Some("gpt-4o"),
                api_key_id: Some("aik_3"),
                prompt: Some("classify ticket"),
                response: Some("billing"),
                error: Some("internal upstream failure"),
                total_tokens: Some(10_000),
                cost: Some(1.25),
                latency: Some(2000),
                status: Some(500),
                ..Ai::default()
            }),
            ..Fx::default()
        },
        Fx {
            label: "ai_haiku",
            project: Some("mobile"),
            action: "ai.request",
            at: now - 3 * DAY,
            actor: user("u_bob", None, Some("bob@example.com")),
            ai: Some(Ai {
                provider: Some("anthropic"),
                model: Some("claude-3-5-sonnet"),
                api_key_id: Some("aik_1"),
                prompt: Some("write a haiku about lighthouses"),
                response: Some("light sweeps the dark sea"),
                input_tokens: Some(400),
                output_tokens: Some(600),
                cost: Some(2.0),
                latency: Some(5000),
                status: Some(200),
                ..Ai::default()
            }),
            ..Fx::default()
        },
        Fx {
            label: "ai_free",
            action: "ai.request",
            at: now - 20 * HOUR,
            actor: user("u_dave", None, Some("dave@example.org")),
            ai: Some(Ai {
                provider: Some("mistral"),
                model: Some("mistral-large"),
                total_tokens: Some(5),
                cost: Some(0.0),
                latency: Some(50),
                status: Some(200),
                ..Ai::default()
            }),
            ..Fx::default()
        },
        Fx {
            label: "ai_limited",
            project: Some("web"),
            action: "ai.request",
            at: now - 3 * HOUR,
            actor: actor("api_key", "key_ci", Some("CI")),
            failure: true,
            ai: Some(Ai {
                provider: Some("openai"),
                model: Some("gpt-4o-mini"),
                api_key_id: Some("aik_2"),
                prompt: Some("translate hello"),
                response: Some("bonjour"),
                error: Some("rate limited upstream"),
                total_tokens: Some(20),
                cost: Some(0.002),
                latency: Some(300),
                status: Some(429),
                ..Ai::default()
            }),
            ..Fx::default()
        },
        Fx {
            label: "ai_recent",
            project: Some("web"),
            action: "ai.request",
            at: now - 2 * HOUR,
            actor: user("u_alice", Some("Alice Smith"), Some("alice@example.com")),
            targets: vec![("model", "gpt-4o", None)],
            ip: Some("10.1.2.4"),
            ai: Some(Ai {
                provider: Some("openai"),
                model: Some("gpt-4o"),
                api_key_id: Some("aik_1"),
                prompt: Some("summarise the quarterly report"),
                response: Some("The quarter went well"),
                input_tokens: Some(100),
                output_tokens: Some(50),
                total_tokens: Some(150),
                cost: Some(0.5),
                latency: Some(1200),
                status: Some(200),
                ..Ai::default()
            }),
            ..Fx::default()
        },
        Fx {
            label: "member_draft",
            project: Some("web"),
            action: "team.member.added",
            category: Some("team"),
            at: now - HOUR,
            actor: user("u_dave", None, Some("dave@example.org")),
            ip: Some("10.1.2.3"),
            description: Some("added dave to the draft team"),
            metadata: json!({"plan": "pro"}),
            ..Fx::default()
        },
    ]
}

impl Fx {
    /// The metadata as sent: the fixture's own keys and the marker.
    fn metadata(&self) -> Map<String, Value> {
        let mut map = self.metadata.as_object().cloned().unwrap_or_default();
        map.insert("fixture".into(), json!(MARK));
        map
    }

    fn to_json(&self) -> Value {
        let mut e = Map::new();
        e.insert("organization_id".into(), json!(ORG));
        e.insert("action".into(), json!(self.action));
        e.insert("occurred_at".into(), json!(ts(self.at)));
        e.insert("metadata".into(), Value::Object(self.metadata()));
        if let Some(p) = self.project {
            e.insert("project_id".into(), json!(p));
        }
        if let Some(c) = self.category {
            e.insert("category".into(), json!(c));
        }
        if let Some(a) = self.actor {
            let mut actor = Map::new();
            actor.insert("type".into(), json!(a.kind));
            for (k, v) in [("id", a.id), ("name", a.name), ("email", a.email)] {
                if let Some(v) = v {
                    actor.insert(k.into(), json!(v));
                }
            }
            e.insert("actor".into(), Value::Object(actor));
        }
        if !self.targets.is_empty() {
            let targets: Vec<Value> = self
                .targets
                .iter()
                .map(|(t, id, name)| match name {
                    Some(n) => json!({"type": t, "id": id, "name": n}),
                    None => json!({"type": t, "id": id}),
                })
                .collect();
            e.insert("targets".into(), json!(targets));
        }
        if let Some(ip) = self.ip {
            e.insert("context".into(), json!({ "ip": ip }));
        }
        if let Some(d) = self.description {
            e.insert("description".into(), json!(d));
        }
        if self.failure {
            e.insert("outcome".into(), json!("failure"));
        }
        if let Some(err) = self.error {
            e.insert("error".into(), json!(err));
        }
        if let Some(ai) = &self.ai {
            let mut a = Map::new();
            let texts = [
                ("provider", ai.provider),
                ("model", ai.model),
                ("api_key_id", ai.api_key_id),
                ("prompt", ai.prompt),
                ("response", ai.response),
                ("error", ai.error),
            ];
            for (k, v) in texts {
                if let Some(v) = v {
                    a.insert(k.into(), json!(v));
                }
            }
            let mut usage = Map::new();
            for (k, v) in [
                ("input_tokens", ai.input_tokens),
                ("output_tokens", ai.output_tokens),
                ("total_tokens", ai.total_tokens),
            ] {
                if let Some(v) = v {
                    usage.insert(k.into(), json!(v));
                }
            }
            if !usage.is_empty() {
                a.insert("usage".into(), Value::Object(usage));
            }
            if let Some(c) = ai.cost {
                a.insert("cost_usd".into(), json!(c));
            }
            if let Some(l) = ai.latency {
                a.insert("latency_ms".into(), json!(l));
            }
            if let Some(s) = ai.status {
                a.insert("status_code".into(), json!(s));
            }
            e.insert("ai".into(), Value::Object(a));
        }
        Value::Object(e)
    }

    fn category(&self) -> &str {
        self.category.unwrap_or_else(|| self.action.split('.').next().unwrap())
    }

    fn actor_is(&self, value: &str) -> bool {
        self.actor.is_some_and(|a| a.id == Some(value) || a.email == Some(value))
    }

    fn actor_kind(&self) -> Option<&str> {
        self.actor.map(|a| a.kind)
    }

    fn resource_type(&self) -> Option<&str> {
        self.targets.first().map(|t| t.0)
    }

    fn resource(&self) -> Option<&str> {
        self.targets.first().map(|t| t.1)
    }

    fn ip_in(&self, net: &str) -> bool {
        self.ip.is_some_and(|ip| ip_in(ip, net))
    }

    fn ai(&self) -> Option<&Ai> {
        self.ai.as_ref()
    }

    fn cost(&self) -> Option<f64> {
        self.ai().and_then(|a| a.cost)
    }

    /// `tokens` reads the total, or input plus output when no total was sent.
    fn tokens(&self) -> Option<u64> {
        let ai = self.ai()?;
        ai.total_tokens.or(match (ai.input_tokens, ai.output_tokens) {
            (None, None) => None,
            (i, o) => Some(i.unwrap_or(0) + o.unwrap_or(0)),
        })
    }

    fn latency(&self) -> Option<u64> {
        self.ai().and_then(|a| a.latency)
    }

    fn status_is(&self, wanted: &str) -> bool {
        let Some(ai) = self.ai() else { return false };
        let failed = ai.error.is_some() || ai.status.is_some_and(|c| c >= 400);
        match wanted {
            "success" | "ok" => !failed,
            "error" | "failure" => failed,
            code => ai.status == Some(code.parse().unwrap()),
        }
    }

    /// A top-level metadata value as text, as `metadata.KEY` compares it.
    fn metadata_text(&self, key: &str) -> Option<String> {
        match self.metadata().get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Every piece of text full-text search looks in, per the query-language document.
    fn text_fields(&self) -> Vec<String> {
        fn values(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::String(s) => out.push(s.clone()),
                Value::Number(n) => out.push(n.to_string()),
                Value::Bool(b) => out.push(b.to_string()),
                Value::Array(a) => a.iter().for_each(|v| values(v, out)),
                Value::Object(o) => o.values().for_each(|v| values(v, out)),
                Value::Null => {}
            }
        }
        let mut out: Vec<String> = Vec::new();
        out.extend(self.description.map(String::from));
        if let Some(a) = self.actor {
            out.extend([a.name, a.email, a.id].into_iter().flatten().map(String::from));
        }
        out.extend(self.targets.iter().filter_map(|t| t.2).map(String::from));
        out.extend(self.error.map(String::from));
        values(&Value::Object(self.metadata()), &mut out);
        if let Some(ai) = self.ai() {
            out.extend([ai.prompt, ai.response, ai.error].into_iter().flatten().map(String::from));
        }
        out
    }

    /// Whether the phrase's words appear adjacent and in order, as whole words, in one piece of text.
    fn has_text(&self, phrase: &str) -> bool {
        let want = words(phrase);
        !want.is_empty() && self.text_fields().iter().any(|f| words(f).windows(want.len()).any(|w| w == want))
    }
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// The action-pattern rules of the document: `*` is exactly one segment, except that a trailing `.*`
/// (or a lone `*`) stands for one or more further segments.
fn action_matches(pattern: &str, action: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let a: Vec<&str> = action.split('.').collect();
    let segment = |(want, got): (&&str, &&str)| *want == "*" || want == got;
    if p.last() == Some(&"*") {
        let body = &p[..p.len() - 1];
        a.len() > body.len() && body.iter().zip(&a).all(segment)
    } else {
        a.len() == p.len() && p.iter().zip(&a).all(segment)
    }
}

/// Whether `ip` lies in `net`, an address or a CIDR network whose host bits may be set.
fn ip_in(ip: &str, net: &str) -> bool {
    let ip: IpAddr = ip.parse().unwrap();
    let (addr, len): (IpAddr, u32) = match net.split_once('/') {
        Some((a, l)) => (a.parse().unwrap(), l.parse().unwrap()),
        None => {
            let a: IpAddr = net.parse().unwrap();
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    match (ip, addr) {
        (IpAddr::V4(i), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(i) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(i), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(i) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn ts(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn date(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap().format("%Y-%m-%d").to_string()
}

/// A server with the fixture stored and fully searchable.
struct Seeded {
    app: TestApp,
    fx: Vec<Fx>,
    now: i64,
    /// Midnight (UTC) of the fixture's first day.
    d: i64,
}

async fn seed() -> Seeded {
    let app = spawn_app().await;
    let now = Utc::now().timestamp_millis();
    let d = (now.div_euclid(DAY) - 30) * DAY;
    let mut fx = fixtures(now, d);
    let batch: Vec<Value> = fx.iter().map(Fx::to_json).collect();
    let sent = app.admin.send_events(&batch).await.expect("the fixture is valid");
    assert_eq!(sent.acks.len(), fx.len());
    for (f, ack) in fx.iter_mut().zip(&sent.acks) {
        f.id = ack.id;
        f.seq = ack.seq;
    }
    let indexed = app.wait_for_text(ORG, MARK, fx.len()).await;
    assert_eq!(indexed, fx.len(), "the full-text index should catch up with the fixture");
    Seeded { app, fx, now, d }
}

/// An error answer's parts.
#[derive(Debug)]
struct Refusal {
    status: u16,
    code: String,
    field: Option<String>,
    message: String,
}

fn refusal(e: ClientError) -> Refusal {
    match e {
        ClientError::Api { status, code, message, field } => Refusal { status, code, field, message },
        other => panic!("expected an error answer, got {other}"),
    }
}

impl Seeded {
    async fn labels(&self, params: &[(&str, &str)]) -> Result<Vec<&'static str>, ClientError> {
        let by_id: HashMap<Uuid, &'static str> = self.fx.iter().map(|f| (f.id, f.label)).collect();
        let mut p = vec![("organization_id", ORG), ("limit", "1000")];
        p.extend_from_slice(params);
        let page = self.app.admin.list_events(&p).await?;
        assert!(page.next_cursor.is_none(), "the whole fixture fits one page");
        Ok(page.data.iter().map(|e| by_id.get(&e.id).copied().unwrap_or("<not in the fixture>")).collect())
    }

    /// The labels of the fixture events `keep` selects, newest first.
    fn expected(&self, keep: impl Fn(&Fx) -> bool) -> Vec<&'static str> {
        let mut kept: Vec<&Fx> = self.fx.iter().filter(|f| keep(f)).collect();
        kept.sort_by_key(|f| std::cmp::Reverse((f.at, f.seq)));
        kept.iter().map(|f| f.label).collect()
    }

    /// Asserts that `params` return exactly the events `keep` selects, newest first, and that the
    /// filter tells events apart (it selects some but not all).
    async fn check(&self, params: &[(&str, &str)], keep: impl Fn(&Fx) -> bool) {
        let want = self.expected(keep);
        assert!(
            !want.is_empty() && want.len() < self.fx.len(),
            "{params:?} must select some but not all of the fixture to prove anything (selects {want:?})"
        );
        let got = self.labels(params).await.unwrap_or_else(|e| panic!("{params:?} was refused: {e}"));
        assert_eq!(got, want, "{params:?}");
    }

    async fn check_q(&self, q: &str, keep: impl Fn(&Fx) -> bool) {
        self.check(&[("q", q)], keep).await;
    }

    /// Asserts that the parameter and the language spelling select the same events, those of `keep`.
    async fn check_both(&self, param: (&str, &str), q: &str, keep: impl Fn(&Fx) -> bool) {
        self.check(&[param], &keep).await;
        self.check_q(q, &keep).await;
    }

    async fn check_none(&self, params: &[(&str, &str)]) {
        let got = self.labels(params).await.unwrap_or_else(|e| panic!("{params:?} was refused: {e}"));
        assert_eq!(got, Vec::<&str>::new(), "{params:?} should select nothing");
    }

    async fn check_all(&self, params: &[(&str, &str)]) {
        let got = self.labels(params).await.unwrap_or_else(|e| panic!("{params:?} was refused: {e}"));
        assert_eq!(got, self.expected(|_| true), "{params:?} should select everything");
    }

    async fn refused(&self, params: &[(&str, &str)]) -> Refusal {
        match self.labels(params).await {
            Ok(got) => panic!("{params:?} should be refused, got {got:?}"),
            Err(e) => refusal(e),
        }
    }

    fn fx(&self, label: &str) -> &Fx {
        self.fx.iter().find(|f| f.label == label).unwrap()
    }
}

#[tokio::test]
async fn list_events_returns_the_whole_log_newest_first_and_order_asc_reverses_it() {
    let s = seed().await;
    s.check_all(&[]).await;
    s.check_all(&[("order", "desc")]).await;
    s.check_all(&[("q", "")]).await;
    s.check_all(&[("q", "   ")]).await;
    s.check_all(&[("range", "all")]).await;
    s.check_all(&[("actor", ""), ("cost_min", "  "), ("text", "")]).await;

    let mut ascending = s.expected(|_| true);
    ascending.reverse();
    assert_eq!(s.labels(&[("order", "asc")]).await.unwrap(), ascending);
    let mut failures = s.expected(|f| f.failure);
    failures.reverse();
    assert!(failures.len() > 1);
    assert_eq!(s.labels(&[("order", "asc"), ("outcome", "failure")]).await.unwrap(), failures);
    s.app.stop().await;
}

#[tokio::test]
async fn action_matches_exactly_per_segment_by_trailing_prefix_and_by_comma_list() {
    let s = seed().await;
    let any = |patterns: &'static str| move |f: &Fx| patterns.split(',').any(|p| action_matches(p, f.action));
    for pattern in [
        "api_key.created",
        "organisation",
        "organisation.*",
        "organisation.*.added",
        "organisation.user.*",
        "*.request",
        "*.*.added",
        "api_key.*,datasource.*",
        "organisation.*.*",
    ] {
        s.check_both(("action", pattern), &format!("action:{pattern}"), any(pattern)).await;
    }
    // A trailing `.*` needs at least one more segment: the bare `organisation` action is not under it.
    assert!(!s.expected(any("organisation.*")).contains(&"org_bare"));
    assert!(s.expected(any("organisation.*")).contains(&"role_assigned"));
    assert!(!s.expected(any("organisation.*.added")).contains(&"role_assigned"));
    s.check_all(&[("action", "*")]).await;
    s.check_all(&[("q", "action:*")]).await;
    s.check_q("-action:ai.*", |f| !action_matches("ai.*", f.action)).await;
    s.check_none(&[("action", "organisation.user")]).await;
    s.app.stop().await;
}

#[tokio::test]
async fn category_and_project_select_by_exact_value_and_comma_list() {
    let s = seed().await;
    // Without an explicit category an event takes the first segment of its action.
    s.check_both(("category", "organisation"), "category:organisation", |f| f.category() == "organisation").await;
    assert_eq!(s.expected(|f| f.category() == "organisation"), ["org_bare", "team_added", "role_assigned"]);
    s.check_both(("category", "membership"), "category:membership", |f| f.category() == "membership").await;
    s.check_both(("category", "ai,billing"), "category:ai,billing", |f| ["ai", "billing"].contains(&f.category()))
        .await;
    s.check_q("-category:ai", |f| f.category() != "ai").await;

    s.check_both(("project_id", "mobile"), "project:mobile", |f| f.project == Some("mobile")).await;
    s.check_both(("project_id", "web, ops"), "project:web,ops", |f| matches!(f.project, Some("web" | "ops"))).await;
    // Events without a project do not have the project `web`, so they satisfy its negation.
    s.check_q("-project:web", |f| f.project != Some("web")).await;
    s.app.stop().await;
}

#[tokio::test]
async fn actor_matches_the_actor_id_or_email_and_actor_type_the_kind_of_actor() {
    let s = seed().await;
    s.check_both(("actor", "u_alice"), "actor:u_alice", |f| f.actor_is("u_alice")).await;
    s.check_both(("actor", "bob@example.com"), "actor:bob@example.com", |f| f.actor_is("bob@example.com")).await;
    s.check_both(("actor", "u_dave"), "actor:u_dave", |f| f.actor_is("u_dave")).await;
    s.check_both(("actor", "dave@example.org"), "actor:dave@example.org", |f| f.actor_is("dave@example.org")).await;
    s.check_both(("actor", "u_dave,bob@example.com"), "actor:u_dave,bob@example.com", |f| {
        f.actor_is("u_dave") || f.actor_is("bob@example.com")
    })
    .await;
    s.check_q(r#"actor:"ops team""#, |f| f.actor_is("ops team")).await;
    s.check(&[("actor", "ops team")], |f| f.actor_is("ops team")).await;
    s.check_q("-actor:u_alice", |f| !f.actor_is("u_alice")).await;
    // The name is not an actor value, and a repeated parameter must match every time.
    s.check_none(&[("actor", "Alice Smith")]).await;
    s.check_none(&[("actor", "u_alice"), ("actor", "bob@example.com")]).await;

    s.check_both(("actor_type", "service"), "actor_type:service", |f| f.actor_kind() == Some("service")).await;
    s.check_both(("actor_type", "user,webhook"), "actor_type:user,webhook", |f| {
        matches!(f.actor_kind(), Some("user" | "webhook"))
    })
    .await;
    s.check_both(("actor_type", "api_key"), "actor_type:api_key", |f| f.actor_kind() == Some("api_key")).await;
    s.check_both(("actor_type", "system"), "actor_type:system", |f| f.actor_kind() == Some("system")).await;
    s.check_q("-actor_type:user", |f| f.actor_kind() != Some("user")).await;
    assert!(s.expected(|f| f.actor_kind() != Some("user")).contains(&"invoice_paid"), "an event with no actor");
    s.app.stop().await;
}

#[tokio::test]
async fn resource_type_and_resource_match_only_the_primary_target() {
    let s = seed().await;
    s.check_both(("resource_type", "team"), "resource_type:team", |f| f.resource_type() == Some("team")).await;
    assert_eq!(s.expected(|f| f.resource_type() == Some("team")), ["team_added"], "not user_added's second target");
    s.check_both(("resource_type", "datasource,repo"), "resource_type:datasource,repo", |f| {
        matches!(f.resource_type(), Some("datasource" | "repo"))
    })
    .await;
    s.check_both(("resource_id", "u_carol"), "resource:u_carol", |f| f.resource() == Some("u_carol")).await;
    s.check_q(r#"resource:"cert,primary""#, |f| f.resource() == Some("cert,primary")).await;
    s.check_q("resource_type:datasource resource:ds_42", |f| f.resource() == Some("ds_42")).await;
    s.check(&[("resource_type", "datasource"), ("resource_id", "ds_42")], |f| f.resource() == Some("ds_42")).await;
    s.check_q("-resource_type:datasource", |f| f.resource_type() != Some("datasource")).await;
    s.check_none(&[("resource_id", "t_1")]).await;
    s.app.stop().await;
}

#[tokio::test]
async fn outcome_selects_successes_or_failures() {
    let s = seed().await;
    s.check_both(("outcome", "failure"), "outcome:failure", |f| f.failure).await;
    s.check_both(("outcome", "success"), "outcome:success", |f| !f.failure).await;
    s.check_q("-outcome:failure", |f| !f.failure).await;
    s.check_q("-outcome:success", |f| f.failure).await;
    s.app.stop().await;
}

#[tokio::test]
async fn ip_matches_an_address_or_a_cidr_network_in_v4_and_v6() {
    let s = seed().await;
    for net in
        ["10.1.2.3", "10.0.0.0/8", "10.1.2.3/16", "192.168.0.0/16", "2001:db8::1", "2001:db8::/32", "2001:db8:1::9/48"]
    {
        s.check_both(("ip", net), &format!("ip:{net}"), |f| f.ip_in(net)).await;
    }
    assert_eq!(s.expected(|f| f.ip_in("10.1.2.3")), ["member_draft", "key_created"]);
    assert_eq!(s.expected(|f| f.ip_in("2001:db8::/32")), ["team_added", "role_assigned"]);
    s.check_both(("ip", "172.16.0.0/12,fe80::/10"), "ip:172.16.0.0/12,fe80::/10", |f| {
        f.ip_in("172.16.0.0/12") || f.ip_in("fe80::/10")
    })
    .await;
    // Events without an address are outside every network, so they satisfy a negated one.
    s.check_q("-ip:10.0.0.0/8", |f| !f.ip_in("10.0.0.0/8")).await;
    s.check_none(&[("ip", "10.1.2.5")]).await;
    s.app.stop().await;
}

#[tokio::test]
async fn from_is_inclusive_to_is_exclusive_and_range_counts_back_from_now() {
    let s = seed().await;
    let (d, now) = (s.d, s.now);
    let second_day = s.fx("user_added").at;
    assert_eq!(second_day, d + DAY);
    s.check(&[("from", &ts(second_day))], |f| f.at >= second_day).await;
    s.check(&[("to", &ts(second_day))], |f| f.at < second_day).await;
    s.check(&[("from", &date(d + DAY)), ("to", &date(d + 2 * DAY))], |f| f.at >= d + DAY && f.at < d + 2 * DAY).await;
    s.check(&[("to", &date(d + 2 * DAY))], |f| f.at < d + 2 * DAY).await;
    s.check(&[("from", "now-4d")], |f| f.at >= now - 4 * DAY).await;
    s.check(&[("from", "now-12d"), ("to", "now-1d")], |f| f.at >= now - 12 * DAY && f.at < now - DAY).await;

    s.check(&[("range", "24h")], |f| f.at >= now - DAY).await;
    s.check(&[("range", "7d")], |f| f.at >= now - 7 * DAY).await;
    s.check(&[("range", "150m")], |f| f.at >= now - 150 * 60_000).await;
    s.check(&[("range", "2w")], |f| f.at >= now - 14 * DAY).await;

    let combined = s.refused(&[("range", "24h"), ("from", &date(d))]).await;
    assert_eq!(
        (combined.status, combined.code.as_str(), combined.field.as_deref()),
        (400, "invalid_parameter", Some("range"))
    );
    let backwards = s.refused(&[("from", &date(d + 2 * DAY)), ("to", &date(d + DAY))]).await;
    assert_eq!((backwards.status, backwards.field.as_deref()), (400, Some("from")));
    s.app.stop().await;
}

#[tokio::test]
async fn created_accepts_dates_timestamps_relative_times_operators_and_ranges() {
    let s = seed().await;
    let (d, now) = (s.d, s.now);
    let day = date(d + DAY);
    let (start, end) = (d + DAY, d + 2 * DAY);
    // The day's first and last millisecond are both fixture events, and the next day starts with one.
    assert_eq!(s.expected(|f| f.at >= start && f.at < end), ["role_assigned", "user_added"]);
    s.check_q(&format!("created:{day}"), |f| f.at >= start && f.at < end).await;
    s.check_q(&format!("created:>={day}"), |f| f.at >= start).await;
    s.check_q(&format!("created:>{day}"), |f| f.at >= end).await;
    s.check_q(&format!("created:<{day}"), |f| f.at < start).await;
    s.check_q(&format!("created:<={day}"), |f| f.at < end).await;
    s.check_q(&format!("created:{}..{}", date(d), date(d + 2 * DAY)), |f| f.at >= d && f.at < d + 3 * DAY).await;
    s.check_q(&format!("created:..{}", date(d)), |f| f.at < d + DAY).await;
    s.check_q(&format!("-created:{day}"), |f| !(f.at >= start && f.at < end)).await;

    let exact = s.fx("role_assigned").at;
    s.check_q(&format!("created:{}", ts(exact)), |f| f.at == exact).await;
    s.check_q(&format!("created:>{}", ts(exact)), |f| f.at > exact).await;
    s.check_q(&format!("created:<={}", ts(exact)), |f| f.at <= exact).await;
    let offset = DateTime::<Utc>::from_timestamp_millis(exact)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339_opts(SecondsFormat::Millis, false);
    s.check_q(&format!("created:\"{offset}\""), |f| f.at == exact).await;

    s.check_q("created:>=now-24h", |f| f.at >= now - DAY).await;
    s.check_q("created:<now-24h", |f| f.at < now - DAY).await;
    s.check_q("created:now-7d..now-1d", |f| f.at >= now - 7 * DAY && f.at <= now - DAY).await;
    s.check_q("created:now-90m..", |f| f.at >= now - 90 * 60_000).await;
    s.app.stop().await;
}

#[tokio::test]
async fn text_searches_description_actor_targets_metadata_error_and_ai_fields() {
    let s = seed().await;
    // One word from each searchable field, each found by `text=` and by a bare word or phrase in `q`.
    let probes: [(&str, &str); 12] = [
        ("deploys", "the description"),
        ("Jones", "the actor's name"),
        ("bob@example.com", "the actor's email"),
        ("svc sync", "the actor's id"),
        ("Diaz", "a target's name"),
        ("Core Team", "a second target's name"),
        ("lighthouse", "a nested metadata string"),
        ("42", "a metadata number"),
        ("policy", "the error message"),
        ("quarterly", "the AI prompt"),
        ("bonjour", "the AI response"),
        ("upstream", "the AI error"),
    ];
    for (text, field) in probes {
        assert!(!s.expected(|f| f.has_text(text)).is_empty(), "the fixture should have {text:?} in {field}");
        s.check_both(("text", text), &format!("\"{text}\""), |f| f.has_text(text)).await;
    }
    // Whole words only: `lighthouse` is not found inside `lighthouses`, nor `deploy` inside `deploys`.
    assert_eq!(s.expected(|f| f.has_text("lighthouse")), ["role_assigned"]);
    s.check_q("lighthouses", |f| f.has_text("lighthouses")).await;
    s.check(&[("text", "deploy")], |f| f.has_text("deploy")).await;
    assert_eq!(s.expected(|f| f.has_text("deploy")), ["key_revoked"]);
    // Case does not matter.
    s.check(&[("text", "BONJOUR")], |f| f.has_text("bonjour")).await;

    // `text` is one phrase; in `q`, words are separate terms and a quoted phrase keeps them together.
    s.check(&[("text", "rotated key")], |f| f.has_text("rotated key")).await;
    s.check_q("rotated key", |f| f.has_text("rotated") && f.has_text("key")).await;
    s.check_q("\"rotated key\"", |f| f.has_text("rotated key")).await;
    assert_eq!(s.expected(|f| f.has_text("rotated") && f.has_text("key")), ["cert_rotated", "key_created"]);
    s.check_none(&[("text", "key rotated")]).await;
    s.check_q("-draft", |f| !f.has_text("draft")).await;
    s.check_q("added -\"draft team\"", |f| f.has_text("added") && !f.has_text("draft team")).await;
    // Search syntax inside a value is plain text: no prefix search, no operators.
    s.check(&[("text", "deploy*")], |f| f.has_text("deploy")).await;
    s.check_none(&[("text", "deploy OR bonjour")]).await;
    s.check_none(&[("q", "\"deploy OR bonjour\"")]).await;
    s.app.stop().await;
}

#[tokio::test]
async fn ai_filters_select_by_model_provider_status_and_api_key() {
    let s = seed().await;
    let model = |m: &'static str| move |f: &Fx| f.ai().and_then(|a| a.model) == Some(m);
    s.check_both(("model", "gpt-4o"), "model:gpt-4o", model("gpt-4o")).await;
    assert_eq!(s.expected(model("gpt-4o")), ["ai_recent", "ai_failed"], "not gpt-4o-mini");
    s.check_both(("model", "gpt-4o,gpt-4o-mini"), "model:gpt-4o,gpt-4o-mini", |f| {
        model("gpt-4o")(f) || model("gpt-4o-mini")(f)
    })
    .await;
    let provider = |p: &'static str| move |f: &Fx| f.ai().and_then(|a| a.provider) == Some(p);
    s.check_both(("provider", "openai"), "provider:openai", provider("openai")).await;
    s.check_both(("provider", "anthropic,mistral"), "provider:anthropic,mistral", |f| {
        provider("anthropic")(f) || provider("mistral")(f)
    })
    .await;
    s.check_q("-provider:openai", |f| !provider("openai")(f)).await;

    for (param, q) in [
        ("429", "status:429"),
        ("200", "status:200"),
        ("success", "status:success"),
        ("ok", "status:ok"),
        ("error", "status:error"),
        ("failure", "status:failure"),
    ] {
        s.check_both(("status", param), q, |f| f.status_is(param)).await;
    }
    s.check_both(("status", "500,429"), "status:500,429", |f| f.status_is("500") || f.status_is("429")).await;
    s.check_both(("status", "success,500"), "status:success,500", |f| f.status_is("success") || f.status_is("500"))
        .await;
    // Events without an AI block have no status: they are neither a success nor an error.
    s.check_q("-status:error", |f| !f.status_is("error")).await;
    assert!(s.expected(|f| !f.status_is("error")).contains(&"invoice_paid"));
    s.check_none(&[("status", "404")]).await;

    let api_key = |k: &'static str| move |f: &Fx| f.ai().and_then(|a| a.api_key_id) == Some(k);
    s.check_both(("api_key_id", "aik_1"), "api_key:aik_1", api_key("aik_1")).await;
    s.check_both(("api_key_id", "aik_2,aik_3"), "api_key:aik_2,aik_3", |f| api_key("aik_2")(f) || api_key("aik_3")(f))
        .await;
    s.app.stop().await;
}

#[tokio::test]
async fn cost_tokens_latency_and_seq_compare_with_operators_and_ranges() {
    let s = seed().await;
    let cost = |keep: fn(f64) -> bool| move |f: &Fx| f.cost().is_some_and(keep);
    s.check(&[("cost_min", "0.5")], cost(|c| c >= 0.5)).await;
    s.check(&[("cost_max", "0.5")], cost(|c| c <= 0.5)).await;
    s.check(&[("cost_min", "0.5"), ("cost_max", "1.25")], cost(|c| (0.5..=1.25).contains(&c))).await;
    s.check(&[("cost_min", "2"), ("cost_max", "2")], cost(|c| c == 2.0)).await;
    s.check_q("cost:0.5", cost(|c| c == 0.5)).await;
    s.check_q("cost:0", cost(|c| c == 0.0)).await;
    s.check_q("cost:>0.5", cost(|c| c > 0.5)).await;
    s.check_q("cost:>=0.5", cost(|c| c >= 0.5)).await;
    s.check_q("cost:<0.5", cost(|c| c < 0.5)).await;
    s.check_q("cost:<=0.50", cost(|c| c <= 0.5)).await;
    s.check_q("cost:0.5..2", cost(|c| (0.5..=2.0).contains(&c))).await;
    s.check_q("cost:..0.002", cost(|c| c <= 0.002)).await;
    s.check_q("cost:1.25..", cost(|c| c >= 1.25)).await;
    // Events without a cost never satisfy a cost range, so they satisfy its negation.
    s.check_q("-cost:>1", |f| !f.cost().is_some_and(|c| c > 1.0)).await;

    let tokens = |keep: fn(u64) -> bool| move |f: &Fx| f.tokens().is_some_and(keep);
    // ai_haiku sent only input and output tokens: its total is their sum.
    assert_eq!(s.fx("ai_haiku").tokens(), Some(1000));
    s.check_q("tokens:1000", tokens(|t| t == 1000)).await;
    s.check_q("tokens:>=1000", tokens(|t| t >= 1000)).await;
    s.check_q("tokens:..150", tokens(|t| t <= 150)).await;
    s.check_q("tokens:20..1000", tokens(|t| (20..=1000).contains(&t))).await;
    s.check_q("tokens:<20", tokens(|t| t < 20)).await;

    let latency = |keep: fn(u64) -> bool| move |f: &Fx| f.latency().is_some_and(keep);
    s.check_q("latency:>=2000", latency(|l| l >= 2000)).await;
    s.check_q("latency:300", latency(|l| l == 300)).await;
    s.check_q("latency:<300", latency(|l| l < 300)).await;
    s.check_q("latency:>300", latency(|l| l > 300)).await;
    s.check_q("latency:300..2000", latency(|l| (300..=2000).contains(&l))).await;

    s.check_q("seq:3..5", |f| (3..=5).contains(&f.seq)).await;
    s.check_q("seq:>14", |f| f.seq > 14).await;
    s.check_q("seq:<=2", |f| f.seq <= 2).await;
    s.check_q("seq:7", |f| f.seq == 7).await;
    s.check_q("seq:>=10 seq:<12", |f| (10..12).contains(&f.seq)).await;
    s.check_q("-seq:2..15", |f| !(2..=15).contains(&f.seq)).await;

    let swapped = s.refused(&[("cost_min", "2"), ("cost_max", "1")]).await;
    assert_eq!(
        (swapped.status, swapped.code.as_str(), swapped.field.as_deref()),
        (400, "invalid_parameter", Some("cost_min"))
    );
    let negative = s.refused(&[("cost_min", "-1")]).await;
    assert_eq!((negative.status, negative.field.as_deref()), (400, Some("cost_min")));
    let empty = s.refused(&[("q", "cost:5..1")]).await;
    assert_eq!(
        (empty.code.as_str(), empty.message.as_str()),
        ("invalid_query", "at position 5: the range is empty: its start lies after its end")
    );
    s.app.stop().await;
}

#[tokio::test]
async fn metadata_key_compares_the_top_level_value_as_text() {
    let s = seed().await;
    let meta = |key: &'static str, values: &'static [&'static str]| {
        move |f: &Fx| f.metadata_text(key).is_some_and(|v| values.contains(&v.as_str()))
    };
    s.check_q("metadata.plan:pro", meta("plan", &["pro"])).await;
    s.check_q("metadata.plan:enterprise,pro", meta("plan", &["enterprise", "pro"])).await;
    // `tier` is "gold", the number 1, true and the string "1": as text, `1` is the number and the
    // string, and `true` is the boolean only.
    s.check_q("metadata.tier:1", meta("tier", &["1"])).await;
    assert_eq!(s.expected(meta("tier", &["1"])), ["team_added", "key_revoked"]);
    s.check_q("metadata.tier:true", meta("tier", &["true"])).await;
    assert_eq!(s.expected(meta("tier", &["true"])), ["user_added"]);
    s.check_q("metadata.tier:gold", meta("tier", &["gold"])).await;
    s.check_q("metadata.amount:42", meta("amount", &["42"])).await;
    s.check_q("metadata.rate:0.25", meta("rate", &["0.25"])).await;
    s.check_q("metadata.paid:false", meta("paid", &["false"])).await;
    s.check_none(&[("q", "metadata.paid:0")]).await;
    s.check_none(&[("q", "metadata.tier:1.0")]).await;
    s.check_q(r#"metadata.label:"say \"hi\"""#, meta("label", &["say \"hi\""])).await;
    s.check_q("-metadata.plan:pro", |f| !meta("plan", &["pro"])(f)).await;
    // Only top-level keys: `deep` lives under `nested`.
    s.check_none(&[("q", "metadata.deep:lighthouse")]).await;
    s.check_none(&[("q", "metadata.amount:42.5")]).await;
    s.app.stop().await;
}

#[tokio::test]
async fn terms_of_q_and_parameters_are_anded_and_each_term_can_be_negated() {
    let s = seed().await;
    s.check_q("action:api_key.* actor:alice@example.com -outcome:success", |f| {
        action_matches("api_key.*", f.action) && f.actor_is("alice@example.com") && f.failure
    })
    .await;
    s.check_q("project:web -actor_type:user ip:10.0.0.0/8", |f| {
        f.project == Some("web") && f.actor_kind() != Some("user") && f.ip_in("10.0.0.0/8")
    })
    .await;
    s.check_q("  provider:openai\tstatus:error  ", |f| {
        f.ai().and_then(|a| a.provider) == Some("openai") && f.status_is("error")
    })
    .await;
    s.check(&[("q", "rotated"), ("project_id", "web")], |f| f.has_text("rotated") && f.project == Some("web")).await;
    s.check(&[("action", "ai.*"), ("q", "-model:gpt-4o cost:>0"), ("outcome", "success")], |f| {
        action_matches("ai.*", f.action)
            && f.ai().and_then(|a| a.model) != Some("gpt-4o")
            && f.cost().is_some_and(|c| c > 0.0)
            && !f.failure
    })
    .await;
    s.check(&[("actor_type", "user"), ("text", "added"), ("q", "-\"draft team\"")], |f| {
        f.actor_kind() == Some("user") && f.has_text("added") && !f.has_text("draft team")
    })
    .await;
    // Parameter values are literal: `>bob` is an actor named so, not an operator.
    s.check_none(&[("actor", ">u_alice")]).await;
    s.check_none(&[("q", r#"actor:">u_alice""#)]).await;
    s.app.stop().await;
}

#[tokio::test]
async fn limit_must_be_a_whole_number_from_1_to_1000() {
    let s = seed().await;
    for bad in ["0", "1001", "abc", "-1", "2.5", "1e3"] {
        let r = s.refused(&[("limit", bad)]).await;
        assert_eq!(
            (r.status, r.code.as_str(), r.field.as_deref()),
            (400, "invalid_parameter", Some("limit")),
            "{bad:?}"
        );
        assert!(r.message.contains("limit"), "{bad:?}: {}", r.message);
    }
    let one = s.app.admin.list_events(&[("organization_id", ORG), ("limit", "1")]).await.unwrap();
    assert_eq!(one.data.len(), 1);
    assert_eq!(one.data[0].id, s.fx(s.expected(|_| true)[0]).id);
    assert!(one.next_cursor.is_some());
    let most = s.app.admin.list_events(&[("organization_id", ORG), ("limit", "1000")]).await.unwrap();
    assert_eq!(most.data.len(), s.fx.len());
    let default = s.app.admin.list_events(&[("organization_id", ORG)]).await.unwrap();
    assert_eq!(default.data.len(), s.fx.len(), "the default page of 50 holds the fixture");
    s.app.stop().await;
}

#[tokio::test]
async fn a_query_that_does_not_parse_is_refused_with_the_position_of_the_fault() {
    let s = seed().await;
    let cases: [(&str, usize, &str); 12] = [
        ("acton:x", 0, "unknown key \"acton\" (did you mean \"action\"?)"),
        ("outcome:success acton:x", 16, "unknown key \"acton\""),
        ("action:", 7, "missing value for `action`"),
        ("action:a,,b", 9, "empty value in the comma list"),
        ("action:api_key.*,Team.*", 17, "invalid action pattern \"Team.*\""),
        ("status:>400", 7, "the operator `>` is not allowed on `status`"),
        ("created:yesterday", 8, "invalid time \"yesterday\""),
        ("x \"rotated key", 2, "unterminated quote"),
        ("action:x - y", 9, "a lone `-` must be followed by the term it negates"),
        ("created:now-24h", 8, "a relative time needs an operator or a range"),
        // Positions count characters, not bytes: `é` is two bytes but one character.
        ("café acton:x", 5, "unknown key \"acton\""),
        ("ip:10.0.0.0/8,localhost", 14, "invalid ip \"localhost\""),
    ];
    for (q, position, needle) in cases {
        let r = s.refused(&[("q", q), ("outcome", "success")]).await;
        assert_eq!((r.status, r.code.as_str(), r.field.as_deref()), (400, "invalid_query", Some("q")), "{q:?}");
        let prefix = format!("at position {position}: ");
        assert!(r.message.starts_with(&prefix), "{q:?}: {:?} should start with {prefix:?}", r.message);
        assert!(r.message.contains(needle), "{q:?}: {:?} should mention {needle:?}", r.message);
    }
    s.app.stop().await;
}

#[tokio::test]
async fn a_bad_parameter_value_or_an_unknown_parameter_is_refused_naming_the_parameter() {
    let s = seed().await;
    let cases: [(&str, &str); 16] = [
        ("project_id", "a b"),
        ("category", "Billing"),
        ("action", "Api.*"),
        ("actor_type", "robot"),
        ("outcome", "maybe"),
        ("outcome", "success,failure"),
        ("ip", "localhost"),
        ("status", "700"),
        ("from", "yesterday"),
        ("to", "2026-13-01"),
        ("range", "forever"),
        ("cost_min", "cheap"),
        ("cost_max", "1e3"),
        ("order", "sideways"),
        ("acton", "api_key.created"),
        ("Action", "api_key.created"),
    ];
    for (name, value) in cases {
        let r = s.refused(&[(name, value)]).await;
        assert_eq!(
            (r.status, r.code.as_str(), r.field.as_deref()),
            (400, "invalid_parameter", Some(name)),
            "{name}={value}: {}",
            r.message
        );
    }
    s.app.stop().await;
}

#[tokio::test]
async fn get_event_returns_the_stored_event_404_for_an_unknown_id_and_400_for_a_bad_uuid() {
    let s = seed().await;
    let f = s.fx("ai_recent");
    let got = s.app.admin.get_event(&f.id.to_string(), Some(ORG)).await.unwrap();
    assert_eq!(got.id, f.id);
    assert_eq!(got.seq, f.seq);
    assert_eq!(got.organization_id.as_str(), ORG);
    assert_eq!(got.occurred_at, f.at);
    // What came back is what was sent, field by field.
    let mut stored = serde_json::to_value(&got).unwrap();
    let stored = stored.as_object_mut().unwrap();
    for generated in ["id", "seq", "received_at", "category", "outcome"] {
        stored.remove(generated);
    }
    assert_eq!(Value::Object(stored.clone()), f.to_json());

    let key = s.fx("key_created");
    let got = s.app.admin.get_event(&key.id.to_string(), Some(ORG)).await.unwrap();
    assert_eq!(got.description.as_deref(), key.description);
    assert_eq!(got.context.ip.map(|ip| ip.to_string()).as_deref(), key.ip);

    let missing = refusal(s.app.admin.get_event(&Uuid::now_v7().to_string(), Some(ORG)).await.unwrap_err());
    assert_eq!((missing.status, missing.code.as_str()), (404, "not_found"));
    let elsewhere = refusal(s.app.admin.get_event(&f.id.to_string(), Some("globex")).await.unwrap_err());
    assert_eq!((elsewhere.status, elsewhere.code.as_str()), (404, "not_found"));
    for bad in ["not-a-uuid", "123", "0190f8a4-7f3c-7cc0-8000-00000000abcz"] {
        let r = refusal(s.app.admin.get_event(bad, Some(ORG)).await.unwrap_err());
        assert_eq!((r.status, r.code.as_str(), r.field.as_deref()), (400, "invalid_parameter", Some("id")), "{bad}");
    }
    s.app.stop().await;
}

#[tokio::test]
async fn search_text_with_syntax_quotes_or_nul_characters_is_plain_text_and_never_a_server_error() {
    let s = seed().await;
    let hostile = [
        "!!!",
        "\"",
        "a\"b",
        "policy\"",
        "'",
        "(",
        "*",
        "-bonjour",
        "^bonjour",
        "bonjour*",
        "bonjour OR x",
        "NEAR(bonjour)",
        "key:x",
        "\0",
        "\0bonjour",
        "bonjour\0",
        "denied\0by policy",
    ];
    for text in hostile {
        let want = s.expected(|f| f.has_text(text));
        let got = s.labels(&[("text", text)]).await.unwrap_or_else(|e| panic!("text={text:?} was refused: {e}"));
        assert_eq!(got, want, "text={text:?}");
        let q = format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
        let got = s.labels(&[("q", &q)]).await.unwrap_or_else(|e| panic!("q={q:?} was refused: {e}"));
        assert_eq!(got, want, "q={q:?}");
    }
    assert_eq!(s.expected(|f| f.has_text("\0bonjour")), ["ai_limited"], "a NUL separates words");
    assert_eq!(s.expected(|f| f.has_text("denied\0by policy")), ["key_revoked"]);
    s.app.stop().await;
}
