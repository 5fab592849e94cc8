//! What the dashboard's templates show of an event: every value already made inert and cut to size, so
//! that the templates only place strings (which askama escapes) and never decide anything about content.
//!
//! Event content is hostile. Escaping keeps markup from being markup; on top of that, control characters
//! and bidirectional overrides — which can make text read otherwise than it is — are replaced by a
//! visible `�`, and long values are cut for the table (the full value is one click away in the
//! expanded row, and copy buttons carry it whole).

use std::fmt::Write as _;

use serde_json::Value;
use trailkeep_core::Event;
use trailkeep_core::time::format_millis;

/// The longest text a table cell shows, in characters.
pub const CELL_CHARS: usize = 120;
/// The longest text one block of the expanded row shows, in characters (events are at most 256 KiB).
pub const BLOCK_CHARS: usize = 300_000;
/// Values longer than this many lines are shown side by side instead of diffed line by line.
const DIFF_LINES: usize = 400;

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}')
}

/// `s` with control characters (newlines and tabs kept when `multiline`) and bidi controls replaced by
/// `�`, cut to `max` characters with `…`.
pub fn inert(s: &str, max: usize, multiline: bool) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    for (count, c) in s.chars().enumerate() {
        if count == max {
            out.push('…');
            break;
        }
        let keep = multiline && (c == '\n' || c == '\t');
        out.push(if (c.is_control() && !keep) || is_bidi_control(c) { '\u{FFFD}' } else { c });
    }
    out
}

/// One line of table text.
pub fn cell(s: &str) -> String {
    inert(s, CELL_CHARS, false)
}

/// A long id shown by its ends: `0195f3a1…9c2e`. Copying gives the whole id.
pub fn short_id(id: &str) -> String {
    let n = id.chars().count();
    if n <= 14 {
        return cell(id);
    }
    let head: String = id.chars().take(8).collect();
    let tail: String = id.chars().skip(n - 4).collect();
    cell(&format!("{head}…{tail}"))
}

/// `2026-01-02 03:04:05 UTC`: what a timestamp reads before the browser puts it in local time.
pub fn utc_text(ms: i64) -> String {
    let iso = format_millis(ms);
    format!("{} {} UTC", &iso[..10], &iso[11..19])
}

/// JSON, pretty and inert.
pub fn pretty(value: &Value) -> String {
    inert(&serde_json::to_string_pretty(value).unwrap_or_default(), BLOCK_CHARS, true)
}

/// A table row of the timeline.
pub struct EventRow {
    pub id: String,
    pub iso: String,
    pub utc: String,
    pub action: String,
    pub category: String,
    /// The actor's email, else name, else id, else `N/A`.
    pub actor: String,
    /// The same value uncut, for copying; empty when there is no actor to copy.
    pub actor_copy: String,
    pub actor_type: String,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_copy: String,
    pub project: String,
    pub outcome: &'static str,
    pub failed: bool,
}

impl EventRow {
    pub fn new(event: &Event) -> EventRow {
        let actor = event.actor.as_ref();
        let actor_copy =
            actor.and_then(|a| a.email.as_ref().or(a.name.as_ref()).or(a.id.as_ref())).cloned().unwrap_or_default();
        let target = event.primary_target();
        let iso = format_millis(event.occurred_at);
        EventRow {
            id: event.id.to_string(),
            utc: utc_text(event.occurred_at),
            iso,
            action: cell(event.action.as_str()),
            category: cell(&event.category),
            actor: if actor_copy.is_empty() { "N/A".to_owned() } else { cell(&actor_copy) },
            actor_type: actor.map(|a| a.actor_type.as_str()).unwrap_or("").to_owned(),
            actor_copy,
            resource_type: target.map(|t| cell(&t.target_type)).unwrap_or_default(),
            resource_id: target.map(|t| short_id(&t.id)).unwrap_or_default(),
            resource_copy: target.map(|t| t.id.clone()).unwrap_or_default(),
            project: event.project_id.as_ref().map(|p| cell(p.as_str())).unwrap_or_default(),
            outcome: event.outcome.as_str(),
            failed: event.outcome == trailkeep_core::Outcome::Failure,
        }
    }
}

/// A table row of the AI requests view.
pub struct AiRow {
    pub id: String,
    pub iso: String,
    pub utc: String,
    pub model: String,
    pub provider: String,
    pub status: String,
    pub failed: bool,
    pub tokens: String,
    pub cost: String,
    pub latency: String,
    /// The figures as numbers, for copying: `1234`, `0.000125`, `812`.
    pub tokens_copy: String,
    pub cost_copy: String,
    pub latency_copy: String,
    pub api_key: String,
    pub api_key_copy: String,
    pub project: String,
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A cost in US dollars: cents for large amounts, more digits for the fractions AI requests cost.
pub fn dollars(cost: f64) -> String {
    if cost >= 100.0 {
        format!("${cost:.2}")
    } else if cost == 0.0 {
        "$0".to_owned()
    } else {
        let text = format!("{cost:.6}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        format!("${text}")
    }
}

impl AiRow {
    pub fn new(event: &Event) -> AiRow {
        let ai = event.ai.clone().unwrap_or_default();
        let failed = ai.error.is_some() || ai.status_code.is_some_and(|c| c >= 400);
        let status = match (ai.status_code, failed) {
            (Some(code), _) => code.to_string(),
            (None, true) => "error".to_owned(),
            (None, false) => "ok".to_owned(),
        };
        AiRow {
            id: event.id.to_string(),
            iso: format_millis(event.occurred_at),
            utc: utc_text(event.occurred_at),
            model: ai.model.as_deref().map(cell).unwrap_or_default(),
            provider: ai.provider.as_deref().map(cell).unwrap_or_default(),
            status,
            failed,
            tokens: ai.total_tokens().map(thousands).unwrap_or_default(),
            cost: ai.cost_usd.map(dollars).unwrap_or_default(),
            latency: ai.latency_ms.map(|ms| format!("{} ms", thousands(ms))).unwrap_or_default(),
            tokens_copy: ai.total_tokens().map(|n| n.to_string()).unwrap_or_default(),
            cost_copy: ai.cost_usd.map(|c| c.to_string()).unwrap_or_default(),
            latency_copy: ai.latency_ms.map(|ms| ms.to_string()).unwrap_or_default(),
            api_key: ai.api_key_id.as_deref().map(short_id).unwrap_or_default(),
            api_key_copy: ai.api_key_id.unwrap_or_default(),
            project: event.project_id.as_ref().map(|p| cell(p.as_str())).unwrap_or_default(),
        }
    }
}

/// A label and a value of the expanded row; `copy` is the whole value when it can be copied.
pub struct Field {
    pub label: &'static str,
    pub value: String,
    pub copy: String,
}

impl Field {
    fn new(label: &'static str, value: &str) -> Field {
        Field { label, value: inert(value, BLOCK_CHARS, false), copy: value.to_owned() }
    }
}

/// One line of a before/after diff: `' '` kept, `'-'` removed, `'+'` added.
pub struct DiffLine {
    pub sign: char,
    pub class: &'static str,
    pub text: String,
}

/// One changed field, as a line diff of the pretty JSON of its values.
pub struct ChangeView {
    pub field: String,
    pub lines: Vec<DiffLine>,
}

/// Lines removed from `before` and added in `after`, in order, by their longest common subsequence.
pub fn diff_lines(before: &str, after: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let line = |sign: char, text: &str| DiffLine {
        sign,
        class: match sign {
            '-' => "del",
            '+' => "ins",
            _ => "same",
        },
        text: text.to_owned(),
    };
    if a.len() > DIFF_LINES || b.len() > DIFF_LINES {
        return a.iter().map(|l| line('-', l)).chain(b.iter().map(|l| line('+', l))).collect();
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(a.len() + b.len()));
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(line(' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(line('-', a[i]));
            i += 1;
        } else {
            out.push(line('+', b[j]));
            j += 1;
        }
    }
    out
}

/// The AI part of the expanded row.
pub struct AiDetail {
    pub fields: Vec<Field>,
    pub parameters: Option<String>,
    pub prompt: Option<String>,
    pub response: Option<String>,
    pub error: Option<String>,
    pub security: Vec<Field>,
}

/// Everything the expanded row shows.
pub struct Detail {
    pub id: String,
    pub iso: String,
    pub received_iso: String,
    pub description: Option<String>,
    pub fields: Vec<Field>,
    pub changes: Vec<ChangeView>,
    pub metadata: Option<String>,
    pub ai: Option<AiDetail>,
}

fn push(fields: &mut Vec<Field>, label: &'static str, value: Option<&str>) {
    if let Some(v) = value {
        fields.push(Field::new(label, v));
    }
}

impl Detail {
    pub fn new(event: &Event) -> Detail {
        let mut fields = vec![
            Field::new("Event ID", &event.id.to_string()),
            Field::new("Sequence", &event.seq.to_string()),
            Field::new("Action", event.action.as_str()),
            Field::new("Category", &event.category),
        ];
        for (i, t) in event.targets.iter().enumerate() {
            let label = if i == 0 { "Resource" } else { "Also affected" };
            let mut text = format!("{} {}", t.target_type, t.id);
            if let Some(name) = &t.name {
                let _ = write!(text, " ({name})");
            }
            fields.push(Field { label, value: inert(&text, BLOCK_CHARS, false), copy: t.id.clone() });
        }
        match &event.actor {
            Some(a) => {
                fields.push(Field::new("Actor type", a.actor_type.as_str()));
                push(&mut fields, "Actor ID", a.id.as_deref());
                push(&mut fields, "Actor name", a.name.as_deref());
                push(&mut fields, "Actor email", a.email.as_deref());
            }
            None => fields.push(Field { label: "Actor", value: "N/A".into(), copy: String::new() }),
        }
        let c = &event.context;
        push(&mut fields, "IP address", c.ip.map(|ip| ip.to_string()).as_deref());
        push(&mut fields, "User agent", c.user_agent.as_deref());
        push(&mut fields, "Location", c.location.as_deref());
        push(&mut fields, "Request ID", c.request_id.as_deref());
        push(&mut fields, "Session ID", c.session_id.as_deref());
        push(&mut fields, "Trace ID", c.trace_id.as_deref());
        push(&mut fields, "Project", event.project_id.as_ref().map(|p| p.as_str()));
        fields.push(Field::new("Outcome", event.outcome.as_str()));
        push(&mut fields, "Error", event.error.as_deref());
        let changes = event
            .changes
            .iter()
            .map(|ch| ChangeView {
                field: inert(&ch.field, BLOCK_CHARS, false),
                lines: diff_lines(&pretty(&ch.before), &pretty(&ch.after)),
            })
            .collect();
        Detail {
            id: event.id.to_string(),
            iso: format_millis(event.occurred_at),
            received_iso: format_millis(event.received_at),
            description: event.description.as_deref().map(|d| inert(d, BLOCK_CHARS, true)),
            fields,
            changes,
            metadata: (!event.metadata.is_empty()).then(|| pretty(&Value::Object(event.metadata.clone()))),
            ai: event.ai.as_ref().map(|ai| {
                let mut fields = Vec::new();
                push(&mut fields, "Provider", ai.provider.as_deref());
                push(&mut fields, "Model", ai.model.as_deref());
                push(&mut fields, "Status code", ai.status_code.map(|c| c.to_string()).as_deref());
                if let Some(u) = &ai.usage {
                    push(&mut fields, "Input tokens", u.input_tokens.map(thousands).as_deref());
                    push(&mut fields, "Output tokens", u.output_tokens.map(thousands).as_deref());
                }
                push(&mut fields, "Total tokens", ai.total_tokens().map(thousands).as_deref());
                push(&mut fields, "Cost", ai.cost_usd.map(dollars).as_deref());
                push(&mut fields, "Latency", ai.latency_ms.map(|ms| format!("{} ms", thousands(ms))).as_deref());
                push(&mut fields, "API key", ai.api_key_id.as_deref());
                push(&mut fields, "User", ai.user_id.as_deref());
                push(&mut fields, "Session", ai.session_id.as_deref());
                let mut security = Vec::new();
                if let Some(s) = &ai.security {
                    let list = |v: &[String]| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
                    security.push(Field::new("PII found", &list(&s.pii_types)));
                    security.push(Field::new("Content filter flags", &list(&s.content_filter_flags)));
                    push(
                        &mut security,
                        "Prompt injection score",
                        s.prompt_injection_score.map(|x| x.to_string()).as_deref(),
                    );
                    if !s.incident_ids.is_empty() {
                        security.push(Field::new("Linked incidents", &s.incident_ids.join(", ")));
                    }
                }
                AiDetail {
                    fields,
                    parameters: (!ai.parameters.is_empty()).then(|| pretty(&Value::Object(ai.parameters.clone()))),
                    prompt: ai.prompt.as_deref().map(|p| inert(p, BLOCK_CHARS, true)),
                    response: ai.response.as_deref().map(|r| inert(r, BLOCK_CHARS, true)),
                    error: ai.error.as_deref().map(|e| inert(e, BLOCK_CHARS, true)),
                    security,
                }
            }),
        }
    }
}

/// `value` percent-encoded for a query string: everything but unreserved characters.
pub fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Name-value pairs as a query string (without `?`), empty values left out.
pub fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_overrides_become_visible_and_long_text_is_cut() {
        assert_eq!(inert("evil\u{202E}gpj.exe", 100, false), "evil\u{FFFD}gpj.exe");
        assert_eq!(inert("a\x1b[2Jb\nc", 100, false), "a\u{FFFD}[2Jb\u{FFFD}c");
        assert_eq!(inert("a\nb\tc\u{2067}", 100, true), "a\nb\tc\u{FFFD}");
        assert_eq!(inert(&"x".repeat(100_000), 10, false), format!("{}…", "x".repeat(10)));
        assert_eq!(short_id("0195f3a1-7c2e-7000-8000-00000000abcd"), "0195f3a1…abcd");
        assert_eq!(short_id("res_1"), "res_1");
    }

    #[test]
    fn numbers_read_naturally() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(dollars(0.000125), "$0.000125");
        assert_eq!(dollars(0.5), "$0.5");
        assert_eq!(dollars(1234.5), "$1234.50");
        assert_eq!(dollars(0.0), "$0");
    }

    #[test]
    fn diffs_keep_common_lines_and_mark_the_rest() {
        let lines = diff_lines("{\n  \"a\": 1,\n  \"b\": 2\n}", "{\n  \"a\": 1,\n  \"b\": 3\n}");
        let signs: String = lines.iter().map(|l| l.sign).collect();
        assert_eq!(signs, "  -+ ");
        assert_eq!(lines[2].text, "  \"b\": 2");
        assert_eq!(lines[3].text, "  \"b\": 3");
        let whole: String = diff_lines("\"old\"", "\"new\"").iter().map(|l| l.sign).collect();
        assert_eq!(whole, "-+");
    }

    #[test]
    fn query_strings_encode_every_reserved_character() {
        assert_eq!(
            query_string([("q", "action:a.* \"x&y\""), ("range", ""), ("organization_id", "acme")]),
            "q=action%3Aa.%2A%20%22x%26y%22&organization_id=acme"
        );
    }
}
