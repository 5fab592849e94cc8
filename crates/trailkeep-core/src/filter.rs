//! The filter every reader of the log speaks: a conjunction of terms, each a predicate over one event
//! field, possibly negated.
//!
//! The query language (`query::parse`), the HTTP query parameters (`Filter::from_params`), the CLI and
//! later the dashboard, exports and stream filters all produce a [`Filter`]; the stores compile it to their
//! own SQL. A value list inside one predicate means "any of these" (OR); terms are ANDed.
//!
//! [`Filter::from_params`] reads the query parameters of `GET /v1/events` with the language's own value
//! parsers, so `?action=api_key.*` and `?q=action:api_key.*` always mean the same thing.

use std::ops::Bound;

use ipnet::IpNet;

use crate::action::ActionPattern;
use crate::event::{ActorType, Outcome};
use crate::query::{self, EqKey, Item, Op, ParseError};

/// Terms ANDed together. An empty filter selects every event of the scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub terms: Vec<Term>,
}

/// One predicate, possibly negated (`-outcome:success`).
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub negated: bool,
    pub predicate: Predicate,
}

/// A condition on one field. Lists are alternatives: `action:a.*,b.*` matches either.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    Action(Vec<ActionPattern>),
    Category(Vec<String>),
    /// Matches the actor's id or email.
    Actor(Vec<String>),
    ActorType(Vec<ActorType>),
    /// The primary target's type.
    ResourceType(Vec<String>),
    /// The primary target's id.
    Resource(Vec<String>),
    Project(Vec<String>),
    Outcome(Outcome),
    /// A single address is a /32 or /128 network.
    Ip(Vec<IpNet>),
    Model(Vec<String>),
    Provider(Vec<String>),
    Status(Vec<StatusMatch>),
    ApiKey(Vec<String>),
    /// A numeric or time range; `created` bounds are milliseconds since the Unix epoch.
    Range {
        field: RangeField,
        lower: Bound<f64>,
        upper: Bound<f64>,
    },
    /// `metadata.KEY:value`: the top-level metadata key equals one of the values (compared as text).
    Metadata {
        key: String,
        values: Vec<String>,
    },
    /// Full-text: every word of the phrase, adjacent and in order, in the event's searchable text.
    Text(String),
}

/// The fields that take ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeField {
    /// `occurred_at`, in milliseconds since the Unix epoch.
    Created,
    /// `ai.cost_usd`.
    Cost,
    /// `ai.usage.total_tokens`.
    Tokens,
    /// `ai.latency_ms`.
    Latency,
    Seq,
}

/// An AI request's status: an exact HTTP status code, or success (below 400, no error) or error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Code(u16),
    Success,
    Error,
}

impl Filter {
    /// Both filters' terms, ANDed.
    pub fn and(mut self, other: Filter) -> Filter {
        self.terms.extend(other.terms);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The filter the query parameters of `GET /v1/events` describe; `now_ms` anchors `range` and
    /// relative times.
    ///
    /// Each parameter occurrence becomes its own term, in order, so a repeated parameter is ANDed; `q`
    /// contributes all the terms of its query. A comma list in one value means any of its values. A value
    /// that is empty or blank is ignored, as an HTML form sends one for every untouched field. Parameters
    /// not in [`FILTER_PARAMS`] (`limit`, `cursor`, `order`, `organization_id`…) are ignored: the caller
    /// handles them.
    pub fn from_params(params: &[(String, String)], now_ms: i64) -> Result<Filter, ParamError> {
        let given = |name: &str| params.iter().any(|(n, v)| n == name && !v.trim().is_empty());
        if given("range") && (given("from") || given("to")) {
            return Err(ParamError::new("range", "cannot be combined with `from` or `to`: use one or the other"));
        }
        let mut terms = Vec::new();
        let (mut froms, mut tos, mut cost_mins, mut cost_maxes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (name, raw) in params {
            let value = raw.trim();
            if value.is_empty() {
                continue;
            }
            let fail = |e: ParseError| ParamError::new(name, e.message);
            let one_sided =
                |field: RangeField, op: Op| query::range_predicate(field, op, &literal(value, 0), now_ms).map_err(fail);
            let predicate = match name.as_str() {
                "q" => {
                    // The raw value, so that error positions count from the start of what was sent.
                    let parsed = query::parse(raw, now_ms).map_err(|e| ParamError::new("q", e.to_string()))?;
                    terms.extend(parsed.terms);
                    continue;
                }
                "text" => Predicate::Text(value.to_owned()),
                "range" => match range_param(value, now_ms) {
                    Ok(Some(predicate)) => predicate,
                    Ok(None) => continue,
                    Err(message) => return Err(ParamError::new(name, message)),
                },
                "from" => remember(&mut froms, one_sided(RangeField::Created, Op::Ge)?),
                "to" => remember(&mut tos, one_sided(RangeField::Created, Op::Lt)?),
                "cost_min" => remember(&mut cost_mins, one_sided(RangeField::Cost, Op::Ge)?),
                "cost_max" => remember(&mut cost_maxes, one_sided(RangeField::Cost, Op::Le)?),
                other => match equality_param(other) {
                    Some(key) => query::equality_predicate(key, &list(value)).map_err(fail)?,
                    None => continue,
                },
            };
            terms.push(Term { negated: false, predicate });
        }
        if terms.len() > query::MAX_TERMS {
            return Err(ParamError::new("q", format!("a filter holds at most {} terms", query::MAX_TERMS)));
        }
        if froms.iter().any(|f| tos.iter().any(|t| f >= t)) {
            return Err(ParamError::new("from", "must be before `to`"));
        }
        if cost_mins.iter().any(|min| cost_maxes.iter().any(|max| min > max)) {
            return Err(ParamError::new("cost_min", "must not be greater than `cost_max`"));
        }
        Ok(Filter { terms })
    }
}

/// Why query parameters do not make a filter: the parameter's name and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ParamError {
    /// The query parameter, such as `cost_min` or `q`.
    pub field: String,
    pub message: String,
}

impl ParamError {
    fn new(field: &str, message: impl Into<String>) -> ParamError {
        ParamError { field: field.to_owned(), message: message.into() }
    }
}

/// Every query parameter [`Filter::from_params`] reads.
pub const FILTER_PARAMS: [&str; 20] = [
    "project_id",
    "category",
    "action",
    "actor",
    "actor_type",
    "resource_type",
    "resource_id",
    "outcome",
    "ip",
    "from",
    "to",
    "range",
    "text",
    "model",
    "provider",
    "status",
    "api_key_id",
    "cost_min",
    "cost_max",
    "q",
];

/// The language key an equality parameter maps to.
fn equality_param(name: &str) -> Option<EqKey> {
    Some(match name {
        "project_id" => EqKey::Project,
        "category" => EqKey::Category,
        "action" => EqKey::Action,
        "actor" => EqKey::Actor,
        "actor_type" => EqKey::ActorType,
        "resource_type" => EqKey::ResourceType,
        "resource_id" => EqKey::Resource,
        "outcome" => EqKey::Outcome,
        "ip" => EqKey::Ip,
        "model" => EqKey::Model,
        "provider" => EqKey::Provider,
        "status" => EqKey::Status,
        "api_key_id" => EqKey::ApiKey,
        _ => return None,
    })
}

/// `range=24h`: events since that long before now; `range=all` adds nothing.
fn range_param(value: &str, now_ms: i64) -> Result<Option<Predicate>, String> {
    if value == "all" {
        return Ok(None);
    }
    let duration = query::parse_duration_ms(value).ok_or_else(|| {
        "expected all or a duration such as 1h, 24h, 7d, 30d, 90d or 1y (units s, m, h, d, w, y)".to_owned()
    })?;
    let start = query::before_now(now_ms, duration).map_err(|m| format!("the start of this range {m}"))?;
    Ok(Some(Predicate::Range {
        field: RangeField::Created,
        lower: Bound::Included(start as f64),
        upper: Bound::Unbounded,
    }))
}

/// A parameter value taken literally, as a quoted value is in the language.
fn literal(text: &str, pos: usize) -> Item {
    Item { pos, text: text.to_owned(), literal: true }
}

/// A parameter's comma list, each value trimmed.
fn list(value: &str) -> Vec<Item> {
    value.split(',').enumerate().map(|(i, v)| literal(v.trim(), i)).collect()
}

/// Notes the finite bound of a one-sided range for the ordering checks, and passes the predicate on.
fn remember(bounds: &mut Vec<f64>, predicate: Predicate) -> Predicate {
    if let Predicate::Range { lower, upper, .. } = &predicate {
        if let Bound::Included(x) | Bound::Excluded(x) = lower {
            bounds.push(*x);
        } else if let Bound::Included(x) | Bound::Excluded(x) = upper {
            bounds.push(*x);
        }
    }
    predicate
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-06-15T12:00:00Z.
    const NOW: i64 = 1_781_524_800_000;
    const DAY: i64 = 86_400_000;

    use Bound::{Excluded, Included, Unbounded};

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn from(pairs: &[(&str, &str)]) -> Filter {
        Filter::from_params(&params(pairs), NOW).unwrap_or_else(|e| panic!("{pairs:?} should be accepted: {e}"))
    }

    fn preds(pairs: &[(&str, &str)]) -> Vec<Predicate> {
        let f = from(pairs);
        assert!(f.terms.iter().all(|t| !t.negated));
        f.terms.into_iter().map(|t| t.predicate).collect()
    }

    fn rejected(pairs: &[(&str, &str)]) -> ParamError {
        match Filter::from_params(&params(pairs), NOW) {
            Ok(f) => panic!("{pairs:?} should be rejected, got {f:?}"),
            Err(e) => e,
        }
    }

    fn ms(s: &str) -> f64 {
        crate::time::parse_time_or_date_millis(s).unwrap() as f64
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn created(lower: Bound<f64>, upper: Bound<f64>) -> Predicate {
        Predicate::Range { field: RangeField::Created, lower, upper }
    }

    fn cost(lower: Bound<f64>, upper: Bound<f64>) -> Predicate {
        Predicate::Range { field: RangeField::Cost, lower, upper }
    }

    #[test]
    fn no_parameters_make_the_empty_filter() {
        assert!(from(&[]).is_empty());
    }

    #[test]
    fn every_equality_parameter_maps_to_its_predicate() {
        let cases: Vec<(&str, &str, Predicate)> = vec![
            ("project_id", "web", Predicate::Project(strings(&["web"]))),
            ("category", "billing", Predicate::Category(strings(&["billing"]))),
            ("action", "api_key.*", Predicate::Action(vec![ActionPattern::Prefix("api_key".into())])),
            ("actor", "alice@example.com", Predicate::Actor(strings(&["alice@example.com"]))),
            ("actor_type", "user", Predicate::ActorType(vec![ActorType::User])),
            ("resource_type", "datasource", Predicate::ResourceType(strings(&["datasource"]))),
            ("resource_id", "ds_1", Predicate::Resource(strings(&["ds_1"]))),
            ("outcome", "failure", Predicate::Outcome(Outcome::Failure)),
            ("ip", "10.1.2.3/8", Predicate::Ip(vec!["10.0.0.0/8".parse().unwrap()])),
            ("model", "gpt-4o", Predicate::Model(strings(&["gpt-4o"]))),
            ("provider", "openai", Predicate::Provider(strings(&["openai"]))),
            ("status", "429", Predicate::Status(vec![StatusMatch::Code(429)])),
            ("api_key_id", "key_1", Predicate::ApiKey(strings(&["key_1"]))),
            ("text", "rotated key", Predicate::Text("rotated key".into())),
        ];
        for (name, value, want) in cases {
            assert_eq!(preds(&[(name, value)]), vec![want], "{name}={value}");
        }
    }

    #[test]
    fn comma_lists_are_alternatives_and_values_are_trimmed() {
        assert_eq!(
            preds(&[("action", "api_key.*, team.*")]),
            vec![Predicate::Action(vec![
                ActionPattern::Prefix("api_key".into()),
                ActionPattern::Prefix("team".into())
            ])]
        );
        assert_eq!(
            preds(&[("status", "success,500")]),
            vec![Predicate::Status(vec![StatusMatch::Success, StatusMatch::Code(500)])]
        );
        assert_eq!(preds(&[("actor", " bob ")]), vec![Predicate::Actor(strings(&["bob"]))]);
    }

    #[test]
    fn a_parameter_value_is_literal_even_where_the_language_would_see_syntax() {
        assert_eq!(preds(&[("actor", ">bob")]), vec![Predicate::Actor(strings(&[">bob"]))]);
        assert_eq!(preds(&[("text", "-a \"b\" c:d")]), vec![Predicate::Text("-a \"b\" c:d".into())]);
        assert_eq!(rejected(&[("cost_min", "1..2")]).field, "cost_min");
    }

    #[test]
    fn repeated_parameters_are_anded_as_separate_terms() {
        assert_eq!(
            preds(&[("actor", "alice"), ("actor", "bob")]),
            vec![Predicate::Actor(strings(&["alice"])), Predicate::Actor(strings(&["bob"]))]
        );
    }

    #[test]
    fn parameters_it_does_not_know_are_ignored() {
        let f = from(&[
            ("limit", "50"),
            ("cursor", "abc"),
            ("order", "asc"),
            ("organization_id", "acme"),
            ("utm_source", "x"),
            ("Action", "NOT A PATTERN"),
        ]);
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn blank_values_are_ignored() {
        assert!(from(&[("action", ""), ("cost_min", "  "), ("q", " "), ("range", ""), ("from", "")]).is_empty());
    }

    #[test]
    fn from_is_inclusive_and_to_is_exclusive() {
        assert_eq!(
            preds(&[("from", "2026-01-01"), ("to", "2026-02-01T00:00:00Z")]),
            vec![created(Included(ms("2026-01-01")), Unbounded), created(Unbounded, Excluded(ms("2026-02-01")))]
        );
        assert_eq!(preds(&[("to", "2026-01-31")]), vec![created(Unbounded, Excluded(ms("2026-01-31")))]);
        assert_eq!(
            preds(&[("from", "2026-01-01T10:00:00+02:00")]),
            vec![created(Included(ms("2026-01-01T08:00:00Z")), Unbounded)]
        );
        assert_eq!(preds(&[("from", "now-1h")]), vec![created(Included((NOW - 3_600_000) as f64), Unbounded)]);
    }

    #[test]
    fn range_selects_the_recent_past_and_all_adds_nothing() {
        for (value, back) in
            [("1h", 3_600_000), ("24h", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY), ("90d", 90 * DAY), ("1y", 365 * DAY)]
        {
            assert_eq!(preds(&[("range", value)]), vec![created(Included((NOW - back) as f64), Unbounded)], "{value}");
        }
        assert!(from(&[("range", "all")]).is_empty());
    }

    #[test]
    fn cost_bounds_are_inclusive() {
        assert_eq!(
            preds(&[("cost_min", "0.5"), ("cost_max", "2")]),
            vec![cost(Included(0.5), Unbounded), cost(Unbounded, Included(2.0))]
        );
        assert_eq!(preds(&[("cost_min", "1"), ("cost_max", "1")]).len(), 2);
    }

    #[test]
    fn q_adds_all_of_its_terms_to_the_other_parameters() {
        let f = from(&[("outcome", "failure"), ("q", "-actor:bob \"rotated key\""), ("model", "m")]);
        assert_eq!(f.to_string(), "outcome:failure -actor:bob \"rotated key\" model:m");
    }

    #[test]
    fn each_bad_value_is_an_error_naming_its_parameter() {
        let cases: &[(&str, &str, &str)] = &[
            ("project_id", "a b", "invalid project id"),
            ("category", "Billing", "invalid category"),
            ("action", "api_key.*,Team", "invalid action pattern \"Team\""),
            ("action", "a,,b", "empty value in the comma list"),
            ("actor_type", "robot", "unknown actor type"),
            ("outcome", "maybe", "expected success or failure"),
            ("outcome", "success,failure", "only one outcome"),
            ("ip", "localhost", "invalid ip"),
            ("status", "700", "invalid status"),
            ("from", "yesterday", "invalid time"),
            ("to", "2026-13-01", "invalid time"),
            ("range", "forever", "expected all or a duration"),
            ("range", "99999y", "outside the years"),
            ("cost_min", "-1", "non-negative number"),
            ("cost_max", "inf", "non-negative number"),
            ("cost_max", "1e3", "non-negative number"),
        ];
        for (name, value, needle) in cases {
            let e = rejected(&[(name, value)]);
            assert_eq!(e.field, *name, "{name}={value}: {e}");
            assert!(e.message.contains(needle), "{name}={value}: {e} should mention {needle:?}");
            assert_eq!(e.to_string(), format!("{name}: {}", e.message));
        }
    }

    #[test]
    fn a_query_error_names_q_and_keeps_its_position() {
        let e = rejected(&[("action", "x"), ("q", "outcome:success acton:x")]);
        assert_eq!(e.field, "q");
        assert!(e.message.starts_with("at position 16: unknown key \"acton\""), "{e}");
        let e = rejected(&[("q", "  acton:x")]);
        assert!(e.message.starts_with("at position 2: "), "{e}");
    }

    #[test]
    fn range_with_from_or_to_is_an_error() {
        assert_eq!(rejected(&[("range", "24h"), ("from", "2026-01-01")]).field, "range");
        assert_eq!(rejected(&[("to", "2026-01-01"), ("range", "all")]).field, "range");
    }

    #[test]
    fn an_empty_time_window_is_an_error() {
        let e = rejected(&[("from", "2026-02-01"), ("to", "2026-01-01")]);
        assert_eq!((e.field.as_str(), e.message.as_str()), ("from", "must be before `to`"));
        assert_eq!(rejected(&[("from", "2026-01-01"), ("to", "2026-01-01")]).field, "from");
    }

    #[test]
    fn a_minimum_cost_above_the_maximum_is_an_error() {
        let e = rejected(&[("cost_max", "1"), ("cost_min", "1.5")]);
        assert_eq!((e.field.as_str(), e.message.as_str()), ("cost_min", "must not be greater than `cost_max`"));
    }

    #[test]
    fn parameters_and_the_language_agree() {
        let pairs = [
            ("project_id", "web", "project:web"),
            ("action", "api_key.*,team.*", "action:api_key.*,team.*"),
            ("actor_type", "user,service", "actor_type:user,service"),
            ("ip", "2001:db8::/32", "ip:2001:db8::/32"),
            ("status", "ok,404", "status:ok,404"),
            ("from", "2026-01-01", "created:>=2026-01-01"),
            ("to", "2026-01-01", "created:<2026-01-01"),
            ("cost_min", "0.5", "cost:>=0.5"),
            ("cost_max", "0.5", "cost:<=0.5"),
            ("range", "7d", "created:>=now-7d"),
        ];
        for (name, value, q) in pairs {
            assert_eq!(from(&[(name, value)]), crate::query::parse(q, NOW).unwrap(), "{name}={value}");
        }
    }

    #[test]
    fn a_parameter_filter_prints_as_a_query_that_parses_back() {
        let f = from(&[
            ("project_id", "web"),
            ("action", "api_key.*"),
            ("actor", "Alice Smith"),
            ("from", "2026-01-01T08:30:00Z"),
            ("to", "2026-02-01T12:00:00.250Z"),
            ("text", "rotated \"key\""),
            ("cost_min", "0.25"),
            ("status", "error"),
        ]);
        let q = f.to_string();
        assert_eq!(crate::query::parse(&q, NOW).unwrap(), f, "{q}");
        assert_eq!(
            q,
            "project:web action:api_key.* actor:\"Alice Smith\" created:>=2026-01-01T08:30:00.000Z \
             created:<2026-02-01T12:00:00.250Z \"rotated \\\"key\\\"\" cost:>=0.25 status:error"
        );
    }

    #[test]
    fn filter_params_lists_exactly_the_parameters_read() {
        let samples = [
            ("project_id", "web"),
            ("category", "billing"),
            ("action", "x.y"),
            ("actor", "bob"),
            ("actor_type", "user"),
            ("resource_type", "t"),
            ("resource_id", "r"),
            ("outcome", "success"),
            ("ip", "::1"),
            ("from", "2026-01-01"),
            ("to", "2026-01-01"),
            ("range", "1h"),
            ("text", "word"),
            ("model", "m"),
            ("provider", "p"),
            ("status", "200"),
            ("api_key_id", "k"),
            ("cost_min", "1"),
            ("cost_max", "1"),
            ("q", "word"),
        ];
        assert_eq!(samples.map(|(name, _)| name), FILTER_PARAMS);
        for (name, value) in samples {
            assert_eq!(from(&[(name, value)]).terms.len(), 1, "{name}={value}");
        }
    }
}
