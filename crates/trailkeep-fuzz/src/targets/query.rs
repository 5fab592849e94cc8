//! The `query` target: the query language, the filter parameters of `GET /v1/events`, page cursors and
//! action patterns, all fed the same text.
//!
//! Properties: nothing panics; an error's position lies inside the query; a query that parses prints as
//! a canonical query that parses back to an equal filter and prints the same again; a filter built from
//! parameters prints the same way; a cursor that decodes encodes back to a token that decodes equal.

use arbitrary::{Result, Unstructured};
use trailkeep_core::cursor::{Cursor, Order};
use trailkeep_core::query;
use trailkeep_core::{ActionPattern, Filter, Predicate};

use super::{NOW_MS, Target, shape};

pub struct QueryTarget;

const KEYS: &[&str] = &[
    "action",
    "category",
    "actor",
    "actor_type",
    "resource_type",
    "resource",
    "project",
    "outcome",
    "ip",
    "model",
    "provider",
    "status",
    "api_key",
    "created",
    "cost",
    "tokens",
    "latency",
    "seq",
    "metadata.plan",
    "metadata.",
    "acton",
    "Action",
];

const VALUES: &[&str] = &[
    "api_key.*",
    "organisation.*",
    "a.b,c.*",
    "alice@example.com",
    "user",
    "success",
    "failure",
    "10.0.0.0/8",
    "::1",
    "gpt-4o",
    "error",
    "4xx",
    "429",
    "0.5",
    ">0.5",
    ">=2026-01-01",
    "<now-24h",
    "now-7d..now",
    "2026-01-01..2026-02-01",
    "..5",
    "5..",
    "..",
    "1e309",
    "-0",
    "NaN",
    "inf",
    "9007199254740993",
    "18446744073709551616",
    "\"Alice Smith\"",
    "\">x\"",
    "\"a\\\"b\"",
    "\"\"",
    "",
    "a,,b",
    "9999-12-31T23:59:59.999Z",
    "0000-01-01",
    "now-99999999999d",
];

const WORDS: &[&str] = &[
    "rotated",
    "\"rotated key\"",
    "NEAR(a b)",
    "a*",
    "*",
    "\"",
    "'; DROP TABLE events; --",
    "OR",
    "AND",
    "NOT",
    "^a",
    "col:umn",
    "-",
    "--x",
    "-\"a phrase\"",
    "\u{3000}",
    "😀",
    "\\",
];

impl Target for QueryTarget {
    fn name(&self) -> &'static str {
        "query"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        [
            "action:api_key.* actor:alice@example.com -outcome:success cost:>0.5 created:>=2026-01-01 \"rotated key\"",
            "category:ai status:error \"rate limited\"",
            "model:gpt-4o,claude-3 tokens:100..500 latency:<2000 provider:openai api_key:key_1",
            "ip:10.0.0.0/8 -actor_type:system resource_type:api_key resource:key_42 project:web",
            "seq:10..20 created:now-24h..now metadata.plan:pro,\"enterprise plan\"",
            "created:2026-01-01..2026-02-01T00:00:00Z cost:..5 -\"a phrase\" word",
            "action=user.*&range=24h&cost_min=0.1&cost_max=2&q=status:4xx",
            "from=2026-01-01&to=2026-02-01&text=rotated&actor_type=user,api_key&ip=::1",
            "MWQxNzcyMzY2NDAwMDAwOjQy",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect()
    }

    fn dictionary(&self) -> &'static [&'static str] {
        &[
            "action:",
            "actor:",
            "cost:",
            "created:",
            "tokens:",
            "seq:",
            "status:",
            "ip:",
            "metadata.k:",
            ":",
            ">",
            ">=",
            "<",
            "<=",
            "..",
            ",",
            "\"",
            "\\\"",
            "-",
            "now",
            "now-24h",
            "2026-01-01",
            "&",
            "=",
            "q=",
            "range=",
            "from=",
            "to=",
            "cost_min=",
            "text=",
        ]
    }

    fn generate(&self, u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
        let mut terms = Vec::new();
        for _ in 0..u.int_in_range(0..=6)? {
            let negate = if u.ratio(1, 5)? { "-" } else { "" };
            let term = match u.int_in_range(0..=3)? {
                0 | 1 => format!("{negate}{}:{}", u.choose(KEYS)?, u.choose(VALUES)?),
                2 => format!("{negate}{}", u.choose(WORDS)?),
                _ => format!("{negate}{}", u.arbitrary::<String>()?),
            };
            terms.push(term);
        }
        let separator = *u.choose(&[" ", " ", "  ", "\t", "\u{a0}", "&"])?;
        Ok(terms.join(separator).into_bytes())
    }

    fn run(&self, input: &[u8]) -> String {
        let text = String::from_utf8_lossy(input);
        let mut signature = match query::parse(&text, NOW_MS) {
            Ok(filter) => {
                round_trip(&filter, &text);
                format!("q-ok;{}", kinds(&filter, "q:"))
            }
            Err(e) => {
                assert!(e.position <= text.chars().count(), "error position {} beyond the query {text:?}", e.position);
                format!("q-err:{}", shape(&e.message))
            }
        };

        // The same text as query parameters: `name=value&…`.
        let params: Vec<(String, String)> = text
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((n, v)) => (n.to_owned(), v.to_owned()),
                None => (pair.to_owned(), String::new()),
            })
            .collect();
        match Filter::from_params(&params, NOW_MS) {
            Ok(filter) => {
                round_trip(&filter, &text);
                signature.push_str(&format!(";p-ok;{}", kinds(&filter, "p:")));
            }
            Err(e) => signature.push_str(&format!(";p-err:{}:{}", shape(&e.field), shape(&e.message))),
        }

        for order in [Order::Desc, Order::Asc] {
            if let Ok(cursor) = Cursor::decode(&text, order) {
                assert_eq!(Cursor::decode(&cursor.encode(), order).as_ref(), Ok(&cursor), "a cursor round-trips");
                signature.push_str(";cursor");
            }
        }
        if let Ok(pattern) = ActionPattern::parse(&text) {
            assert_eq!(ActionPattern::parse(&pattern.to_string()).as_ref(), Ok(&pattern), "a pattern round-trips");
            signature.push_str(";pattern");
        }
        signature
    }
}

/// The canonical query of `filter` parses back to it and prints the same again.
fn round_trip(filter: &Filter, from: &str) {
    let printed = filter.to_string();
    let again = query::parse(&printed, NOW_MS)
        .unwrap_or_else(|e| panic!("the canonical query {printed:?} of {from:?} does not parse: {e}"));
    assert_eq!(&again, filter, "the canonical query {printed:?} of {from:?} parses to another filter");
    assert_eq!(again.to_string(), printed, "printing is not stable for {from:?}");
}

/// The predicates of a filter by kind, with negation, as features: `q:-Outcome;q:RangeCost;q:Text`.
fn kinds(filter: &Filter, prefix: &str) -> String {
    let mut kinds: Vec<String> = filter
        .terms
        .iter()
        .map(|t| {
            let name = match &t.predicate {
                Predicate::Range { field, .. } => format!("Range{field:?}"),
                other => format!("{other:?}").split(['(', ' ']).next().unwrap_or_default().to_owned(),
            };
            if t.negated { format!("{prefix}-{name}") } else { format!("{prefix}{name}") }
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds.join(";")
}
