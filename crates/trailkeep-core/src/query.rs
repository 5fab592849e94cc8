//! The query language every reader of the log speaks, and its canonical printer.
//!
//! A query is a list of whitespace-separated terms, all of which must hold:
//! `action:api_key.* actor:alice@example.com -outcome:success cost:>0.5 created:>=2026-01-01 "rotated key"`.
//! A term is `key:value` (a comma list means any of the values), `-key:value` (negated), a comparison or
//! range on one of the range keys (`cost:>0.5`, `tokens:100..500`, `created:>=now-24h`), or full-text: a
//! bare word or a quoted phrase. [`parse`] turns a query into a [`Filter`]; the [`Display`](fmt::Display)
//! impls of [`Filter`], [`Term`] and [`Predicate`] print the canonical query that parses back to an equal
//! filter, so a filter can travel in a URL or a document.
//!
//! The value parsers here are shared with [`Filter::from_params`], so the HTTP query parameters and the
//! language accept exactly the same values. `docs/query-language.md` is the user's reference.

use std::fmt;
use std::net::IpAddr;
use std::ops::Bound;

use chrono::DateTime;
use ipnet::IpNet;

use crate::action::ActionPattern;
use crate::event::{ActorType, Outcome};
use crate::filter::{Filter, Predicate, RangeField, StatusMatch, Term};
use crate::ids::ProjectId;
use crate::time;

const DAY_MS: i64 = 86_400_000;
/// `0001-01-01T00:00:00Z`, the earliest time a query may name: RFC 3339 has four-digit years.
const MIN_MS: i64 = -62_135_596_800_000;
/// `10000-01-01T00:00:00Z`, just past the latest time a query may name.
const MAX_MS: i64 = 253_402_300_800_000;
/// The largest whole number an `f64` bound holds exactly.
const MAX_WHOLE: u64 = (1 << 53) - 1;
/// The longest metadata key a `metadata.KEY:value` term accepts.
pub const MAX_METADATA_KEY_LEN: usize = 64;
/// How much of an offending value an error message repeats.
const ECHO_CHARS: usize = 40;
/// The most terms a filter holds, however they were given. Each becomes part of one SQL statement, and
/// thousands of them made a statement the engine refused; no real query needs more.
pub const MAX_TERMS: usize = 100;
/// The most values one comma list holds.
pub const MAX_LIST_VALUES: usize = 100;

/// Why a query does not parse: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct ParseError {
    /// The 0-based character (not byte) offset of the offending token in the query.
    pub position: usize,
    pub message: String,
}

fn err(position: usize, message: impl Into<String>) -> ParseError {
    ParseError { position, message: message.into() }
}

/// Parses a query into a [`Filter`]. `now_ms` anchors relative times such as `created:>=now-24h`.
///
/// An empty or all-blank query is the empty filter, which selects every event of the scope.
pub fn parse(input: &str, now_ms: i64) -> Result<Filter, ParseError> {
    let mut parser = Parser { chars: input.chars().collect(), pos: 0, now_ms };
    let mut terms = Vec::new();
    loop {
        parser.skip_whitespace();
        if parser.peek().is_none() {
            break;
        }
        if terms.len() == MAX_TERMS {
            return Err(err(parser.pos, format!("a query holds at most {MAX_TERMS} terms")));
        }
        terms.push(parser.term()?);
    }
    Ok(Filter { terms })
}

/// A key that compares by equality with one of a list of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EqKey {
    Action,
    Category,
    Actor,
    ActorType,
    ResourceType,
    Resource,
    Project,
    Outcome,
    Ip,
    Model,
    Provider,
    Status,
    ApiKey,
}

/// Every key of the language, as written, in the order error messages list them.
const KEYS: [(&str, Key); 18] = [
    ("action", Key::Eq(EqKey::Action)),
    ("category", Key::Eq(EqKey::Category)),
    ("actor", Key::Eq(EqKey::Actor)),
    ("actor_type", Key::Eq(EqKey::ActorType)),
    ("resource_type", Key::Eq(EqKey::ResourceType)),
    ("resource", Key::Eq(EqKey::Resource)),
    ("project", Key::Eq(EqKey::Project)),
    ("outcome", Key::Eq(EqKey::Outcome)),
    ("ip", Key::Eq(EqKey::Ip)),
    ("model", Key::Eq(EqKey::Model)),
    ("provider", Key::Eq(EqKey::Provider)),
    ("status", Key::Eq(EqKey::Status)),
    ("api_key", Key::Eq(EqKey::ApiKey)),
    ("created", Key::Range(RangeField::Created)),
    ("cost", Key::Range(RangeField::Cost)),
    ("tokens", Key::Range(RangeField::Tokens)),
    ("latency", Key::Range(RangeField::Latency)),
    ("seq", Key::Range(RangeField::Seq)),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Eq(EqKey),
    Range(RangeField),
}

impl Key {
    fn from_name(name: &str) -> Option<Key> {
        KEYS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    fn name(self) -> &'static str {
        KEYS.iter().find(|(_, k)| *k == self).map_or("", |(n, _)| *n)
    }
}

impl EqKey {
    fn name(self) -> &'static str {
        Key::Eq(self).name()
    }
}

fn range_name(field: RangeField) -> &'static str {
    Key::Range(field).name()
}

fn known_keys() -> String {
    let mut names: Vec<&str> = KEYS.iter().map(|(n, _)| *n).collect();
    names.push("metadata.KEY");
    names.join(", ")
}

/// A comparison written right after a range key's colon; `Eq` when none is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

/// One value of a comma list, with where it starts in the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub(crate) pos: usize,
    pub(crate) text: String,
    /// Taken literally: written in quotes (or passed as a query parameter), so `..` is not a range.
    pub(crate) literal: bool,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    now_ms: i64,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn at_term_end(&self) -> bool {
        self.peek().is_none_or(char::is_whitespace)
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn term(&mut self) -> Result<Term, ParseError> {
        let start = self.pos;
        let negated = self.peek() == Some('-');
        if negated {
            self.pos += 1;
            if self.at_term_end() {
                return Err(err(start, "a lone `-` must be followed by the term it negates, as in -outcome:success"));
            }
            if self.peek() == Some('-') {
                return Err(err(self.pos, "a term can be negated only once"));
            }
        }
        let predicate = if self.peek() == Some('"') {
            let phrase = self.quoted()?;
            if !self.at_term_end() {
                return Err(err(self.pos, "expected whitespace after the closing quote"));
            }
            if phrase.text.trim().is_empty() {
                return Err(err(phrase.pos, "empty phrase: a phrase needs at least one word"));
            }
            Predicate::Text(phrase.text)
        } else {
            let word_start = self.pos;
            while let Some(c) = self.peek() {
                if c.is_whitespace() || c == ':' || c == '"' {
                    break;
                }
                self.pos += 1;
            }
            let word: String = self.chars[word_start..self.pos].iter().collect();
            match self.peek() {
                Some(':') => {
                    self.pos += 1;
                    self.key_value(&word, word_start)?
                }
                Some('"') => {
                    return Err(err(self.pos, "unexpected `\"` inside a word: put the whole phrase in quotes"));
                }
                _ => Predicate::Text(word),
            }
        };
        Ok(Term { negated, predicate })
    }

    /// Parses what follows `key:`.
    fn key_value(&mut self, key: &str, key_pos: usize) -> Result<Predicate, ParseError> {
        if let Some(name) = key.strip_prefix("metadata.") {
            check_metadata_key(name).map_err(|m| err(key_pos + "metadata.".len(), m))?;
            if let Some((op, op_pos)) = self.operator() {
                return Err(no_operator(&format!("metadata.{name}"), op, op_pos));
            }
            let items = self.items()?;
            return metadata_predicate(name, &items);
        }
        let Some(parsed) = Key::from_name(key) else {
            return Err(err(key_pos, unknown_key(key)));
        };
        let op = self.operator();
        let items = self.items()?;
        match parsed {
            Key::Eq(k) => {
                if let Some((op, op_pos)) = op {
                    return Err(no_operator(k.name(), op, op_pos));
                }
                equality_predicate(k, &items)
            }
            Key::Range(field) => {
                if let Some(second) = items.get(1) {
                    return Err(err(
                        second.pos.saturating_sub(1),
                        format!("only one value or one range may follow `{}`, not a comma list", range_name(field)),
                    ));
                }
                let op = op.map_or(Op::Eq, |(op, _)| op);
                range_predicate(field, op, &items[0], self.now_ms)
            }
        }
    }

    fn operator(&mut self) -> Option<(Op, usize)> {
        let pos = self.pos;
        let (op, len) = match (self.peek(), self.peek_at(1)) {
            (Some('>'), Some('=')) => (Op::Ge, 2),
            (Some('<'), Some('=')) => (Op::Le, 2),
            (Some('>'), _) => (Op::Gt, 1),
            (Some('<'), _) => (Op::Lt, 1),
            _ => return None,
        };
        self.pos += len;
        Some((op, pos))
    }

    /// A comma list of values, each bare (up to whitespace or a comma) or quoted.
    fn items(&mut self) -> Result<Vec<Item>, ParseError> {
        let mut items = Vec::new();
        loop {
            let item = if self.peek() == Some('"') {
                let item = self.quoted()?;
                if !(self.at_term_end() || self.peek() == Some(',')) {
                    return Err(err(self.pos, "expected whitespace or `,` after the closing quote"));
                }
                item
            } else {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c.is_whitespace() || c == ',' {
                        break;
                    }
                    if c == '"' {
                        return Err(err(self.pos, "unexpected `\"` inside a value: put the whole value in quotes"));
                    }
                    self.pos += 1;
                }
                Item { pos: start, text: self.chars[start..self.pos].iter().collect(), literal: false }
            };
            items.push(item);
            if self.peek() == Some(',') {
                self.pos += 1;
            } else {
                return Ok(items);
            }
        }
    }

    /// A double-quoted string starting at the current position; `\"` and `\\` are its only escapes.
    fn quoted(&mut self) -> Result<Item, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return Err(err(start, "unterminated quote: add the closing `\"`")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(Item { pos: start, text, literal: true });
                }
                Some('\\') => match self.peek_at(1) {
                    Some(c @ ('"' | '\\')) => {
                        text.push(c);
                        self.pos += 2;
                    }
                    None => return Err(err(start, "unterminated quote: add the closing `\"`")),
                    Some(_) => {
                        return Err(err(
                            self.pos,
                            "unknown escape in a quoted string: only `\\\"` and `\\\\` are escapes",
                        ));
                    }
                },
                Some(c) => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

fn no_operator(key: &str, op: Op, op_pos: usize) -> ParseError {
    err(
        op_pos,
        format!(
            "the operator `{}` is not allowed on `{key}`; only created, cost, tokens, latency and seq \
             compare (quote the value to match it literally)",
            op.as_str()
        ),
    )
}

fn unknown_key(key: &str) -> String {
    if key.is_empty() {
        return format!("a term cannot start with `:`; known keys are {}", known_keys());
    }
    if key == "metadata" {
        return "a metadata term needs a key, as in metadata.plan:pro".to_owned();
    }
    let hint = KEYS
        .iter()
        .map(|(n, _)| *n)
        .map(|n| (edit_distance(&key.to_lowercase(), n), n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| format!(" (did you mean \"{n}\"?)"))
        .unwrap_or_default();
    format!("unknown key {}{hint}; known keys are {}", echo(key), known_keys())
}

/// Levenshtein distance, for suggesting the key a typo meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb)).min(above + 1).min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Repeats user input in an error message: quoted, escaped and cut short, since it may be hostile.
fn echo(s: &str) -> String {
    let mut cut: String = s.chars().take(ECHO_CHARS).collect();
    if s.chars().count() > ECHO_CHARS {
        cut.push('…');
    }
    format!("{cut:?}")
}

fn check_metadata_key(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_METADATA_KEY_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid metadata key {}: use 1 to {MAX_METADATA_KEY_LEN} letters, digits, `_` or `-`, as in metadata.plan:pro",
            echo(name)
        ))
    }
}

/// Rejects an empty list or an empty value in it.
fn check_items(key: &str, items: &[Item]) -> Result<(), ParseError> {
    if let Some(extra) = items.get(MAX_LIST_VALUES) {
        return Err(err(extra.pos, format!("a comma list holds at most {MAX_LIST_VALUES} values")));
    }
    match items {
        [] => Err(err(0, format!("missing value for `{key}`"))),
        [only] if only.text.is_empty() => Err(err(only.pos, format!("missing value for `{key}`"))),
        _ => match items.iter().find(|i| i.text.is_empty()) {
            Some(empty) => Err(err(empty.pos, "empty value in the comma list")),
            None => Ok(()),
        },
    }
}

fn each<T>(items: &[Item], parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, ParseError> {
    items.iter().map(|i| parse(&i.text).map_err(|m| err(i.pos, m))).collect()
}

fn texts(items: &[Item]) -> Vec<String> {
    items.iter().map(|i| i.text.clone()).collect()
}

/// The predicate of an equality key from its values, each checked as that key requires.
pub(crate) fn equality_predicate(key: EqKey, items: &[Item]) -> Result<Predicate, ParseError> {
    check_items(key.name(), items)?;
    Ok(match key {
        EqKey::Action => Predicate::Action(each(items, |s| {
            ActionPattern::parse(s).map_err(|e| format!("invalid action pattern {}: {e}", echo(s)))
        })?),
        EqKey::Category => Predicate::Category(each(items, |s| {
            let ok = s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if ok {
                Ok(s.to_owned())
            } else {
                Err(format!(
                    "invalid category {}: categories are 1-64 characters of lowercase letters, digits and `_`",
                    echo(s)
                ))
            }
        })?),
        EqKey::Actor => Predicate::Actor(texts(items)),
        EqKey::ActorType => Predicate::ActorType(each(items, |s| {
            ActorType::parse(s).ok_or_else(|| {
                let all: Vec<&str> = ActorType::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown actor type {}; expected one of {}", echo(s), all.join(", "))
            })
        })?),
        EqKey::ResourceType => Predicate::ResourceType(texts(items)),
        EqKey::Resource => Predicate::Resource(texts(items)),
        EqKey::Project => Predicate::Project(each(items, |s| {
            ProjectId::parse(s)
                .map(|id| id.as_str().to_owned())
                .map_err(|e| format!("invalid project id {}: {e}", echo(s)))
        })?),
        EqKey::Outcome => {
            if let Some(second) = items.get(1) {
                return Err(err(second.pos.saturating_sub(1), "only one outcome may be given: success or failure"));
            }
            let item = &items[0];
            Predicate::Outcome(Outcome::parse(&item.text).ok_or_else(|| {
                err(item.pos, format!("unknown outcome {}; expected success or failure", echo(&item.text)))
            })?)
        }
        EqKey::Ip => Predicate::Ip(each(items, parse_ip)?),
        EqKey::Model => Predicate::Model(texts(items)),
        EqKey::Provider => Predicate::Provider(texts(items)),
        EqKey::Status => Predicate::Status(each(items, parse_status)?),
        EqKey::ApiKey => Predicate::ApiKey(texts(items)),
    })
}

/// The predicate of a `metadata.KEY:value` term.
pub(crate) fn metadata_predicate(key: &str, items: &[Item]) -> Result<Predicate, ParseError> {
    check_items(&format!("metadata.{key}"), items)?;
    Ok(Predicate::Metadata { key: key.to_owned(), values: texts(items) })
}

/// An address (a /32 or /128 network) or a CIDR network, its host bits cleared.
fn parse_ip(s: &str) -> Result<IpNet, String> {
    let parsed = if s.contains('/') {
        s.parse::<IpNet>().ok().map(|net| net.trunc())
    } else {
        s.parse::<IpAddr>().ok().map(IpNet::from)
    };
    parsed.ok_or_else(|| {
        format!("invalid ip {}: expected an IPv4 or IPv6 address or a CIDR network such as 10.0.0.0/8", echo(s))
    })
}

fn parse_status(s: &str) -> Result<StatusMatch, String> {
    match s {
        "success" | "ok" => Ok(StatusMatch::Success),
        "error" | "failure" => Ok(StatusMatch::Error),
        _ => match s.parse::<u16>() {
            Ok(code) if s.bytes().all(|b| b.is_ascii_digit()) && (100..=599).contains(&code) => {
                Ok(StatusMatch::Code(code))
            }
            _ => Err(format!(
                "invalid status {}: expected an HTTP status code from 100 to 599, success (or ok), or error (or failure)",
                echo(s)
            )),
        },
    }
}

/// One end of a range as written: a plain value, a moment the reader gave relative to now, or a whole day.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Point {
    Exact(f64),
    Relative(i64),
    /// The day starting at this midnight (UTC), in milliseconds.
    Day(i64),
}

/// The predicate of a range key with an optional operator: `cost:>0.5`, `tokens:100..500`,
/// `created:2026-01-01` (that whole day), `created:>=now-24h`.
pub(crate) fn range_predicate(field: RangeField, op: Op, item: &Item, now_ms: i64) -> Result<Predicate, ParseError> {
    let name = range_name(field);
    if item.text.is_empty() {
        let after = if op == Op::Eq { String::new() } else { format!(" after `{}`", op.as_str()) };
        return Err(err(item.pos, format!("missing value for `{name}`{after}")));
    }
    let (lower, upper) = match item.text.split_once("..").filter(|_| !item.literal) {
        Some((a, b)) => {
            if op != Op::Eq {
                return Err(err(item.pos, "a comparison operator cannot be combined with a `..` range"));
            }
            if a.is_empty() && b.is_empty() {
                return Err(err(
                    item.pos,
                    format!("a range needs at least one bound, as in `{name}:..5` or `{name}:5..`"),
                ));
            }
            let b_pos = item.pos + a.chars().count() + 2;
            let lower = match a {
                "" => Bound::Unbounded,
                _ => match point(field, a, item.pos, now_ms)? {
                    Point::Exact(x) => Bound::Included(x),
                    Point::Relative(t) | Point::Day(t) => Bound::Included(t as f64),
                },
            };
            let upper = match b {
                "" => Bound::Unbounded,
                _ => match point(field, b, b_pos, now_ms)? {
                    Point::Exact(x) => Bound::Included(x),
                    Point::Relative(t) => Bound::Included(t as f64),
                    // Inclusive of a date means through the end of that day.
                    Point::Day(t) => Bound::Excluded((t + DAY_MS) as f64),
                },
            };
            if is_empty_range(lower, upper) {
                return Err(err(item.pos, "the range is empty: its start lies after its end"));
            }
            (lower, upper)
        }
        None => {
            let p = point(field, &item.text, item.pos, now_ms)?;
            match (op, p) {
                (Op::Eq, Point::Exact(x)) => (Bound::Included(x), Bound::Included(x)),
                (Op::Eq, Point::Day(t)) => (Bound::Included(t as f64), Bound::Excluded((t + DAY_MS) as f64)),
                (Op::Eq, Point::Relative(_)) => {
                    return Err(err(
                        item.pos,
                        "a relative time needs an operator or a range, as in `created:>=now-24h`",
                    ));
                }
                (Op::Gt, Point::Day(t)) => {
                    if t + DAY_MS >= MAX_MS {
                        return Err(err(item.pos, "no date follows 9999-12-31"));
                    }
                    (Bound::Included((t + DAY_MS) as f64), Bound::Unbounded)
                }
                (Op::Le, Point::Day(t)) => (Bound::Unbounded, Bound::Excluded((t + DAY_MS) as f64)),
                (op, Point::Exact(x)) => one_sided(op, x),
                (op, Point::Relative(t) | Point::Day(t)) => one_sided(op, t as f64),
            }
        }
    };
    Ok(Predicate::Range { field, lower, upper })
}

fn one_sided(op: Op, x: f64) -> (Bound<f64>, Bound<f64>) {
    match op {
        Op::Eq => (Bound::Included(x), Bound::Included(x)),
        Op::Gt => (Bound::Excluded(x), Bound::Unbounded),
        Op::Ge => (Bound::Included(x), Bound::Unbounded),
        Op::Lt => (Bound::Unbounded, Bound::Excluded(x)),
        Op::Le => (Bound::Unbounded, Bound::Included(x)),
    }
}

fn is_empty_range(lower: Bound<f64>, upper: Bound<f64>) -> bool {
    match (lower, upper) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}

fn point(field: RangeField, s: &str, pos: usize, now_ms: i64) -> Result<Point, ParseError> {
    match field {
        RangeField::Created => time_point(s, now_ms).map_err(|m| err(pos, m)),
        RangeField::Cost => parse_decimal(s)
            .map(Point::Exact)
            .ok_or_else(|| err(pos, format!("invalid cost {}: expected a non-negative number such as 0.5", echo(s)))),
        RangeField::Tokens | RangeField::Latency | RangeField::Seq => {
            parse_whole(s).map(Point::Exact).ok_or_else(|| {
                err(
                    pos,
                    format!("invalid {} {}: expected a whole number from 0 to {MAX_WHOLE}", range_name(field), echo(s)),
                )
            })
        }
    }
}

/// A non-negative decimal number, `\d+(\.\d+)?`, finite.
fn parse_decimal(s: &str) -> Option<f64> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// A whole number an `f64` holds exactly.
fn parse_whole(s: &str) -> Option<f64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|n| *n <= MAX_WHOLE).map(|n| n as f64)
}

/// A duration such as `30m`, `24h`, `7d` or `1y`: digits and one unit of s, m, h, d, w or y (365 days).
pub(crate) fn parse_duration_ms(s: &str) -> Option<i64> {
    let unit = s.chars().last()?;
    let digits = &s[..s.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let per_unit: i64 = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => DAY_MS,
        'w' => 7 * DAY_MS,
        'y' => 365 * DAY_MS,
        _ => return None,
    };
    digits.parse::<i64>().ok()?.checked_mul(per_unit)
}

/// `now` minus a duration, if that is a time a query may name.
pub(crate) fn before_now(now_ms: i64, duration_ms: i64) -> Result<i64, String> {
    now_ms.checked_sub(duration_ms).ok_or_else(out_of_range).and_then(in_range)
}

fn out_of_range() -> String {
    "lies outside the years 0001 to 9999".to_owned()
}

fn in_range(ms: i64) -> Result<i64, String> {
    if (MIN_MS..MAX_MS).contains(&ms) { Ok(ms) } else { Err(out_of_range()) }
}

fn time_point(s: &str, now_ms: i64) -> Result<Point, String> {
    if let Some(rest) = s.strip_prefix("now") {
        let duration = match rest {
            "" => Some(0),
            _ => rest.strip_prefix('-').and_then(parse_duration_ms),
        };
        let Some(duration) = duration else {
            return Err(format!(
                "invalid relative time {}: expected now or now-N with a unit of s, m, h, d, w or y, as in now-24h",
                echo(s)
            ));
        };
        return before_now(now_ms, duration).map(Point::Relative).map_err(|m| format!("the time {} {m}", echo(s)));
    }
    let (ms, point): (i64, fn(i64) -> Point) = match time::parse_rfc3339_millis(s) {
        Some(ms) => (ms, |ms| Point::Exact(ms as f64)),
        None => match time::parse_time_or_date_millis(s) {
            Some(ms) => (ms, Point::Day),
            None => {
                return Err(format!(
                    "invalid time {}: expected an RFC 3339 timestamp such as 2026-01-01T12:00:00Z, a date such as \
                     2026-01-01, or a relative time such as now-24h",
                    echo(s)
                ));
            }
        },
    };
    in_range(ms).map(point).map_err(|m| format!("the time {} {m}", echo(s)))
}

// The canonical printer. For every filter `parse` or `Filter::from_params` produces, the output parses
// back to an equal filter. Hand-built filters the language cannot express (an empty value list, a range
// with no bound or with an exclusive bound the syntax has no spelling for) print a best effort.

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, term) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{term}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negated {
            f.write_str("-")?;
        }
        write!(f, "{}", self.predicate)
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Predicate::Action(v) => write_list(f, "action", v.iter().map(ToString::to_string)),
            Predicate::Category(v) => write_list(f, "category", v.iter().cloned()),
            Predicate::Actor(v) => write_list(f, "actor", v.iter().cloned()),
            Predicate::ActorType(v) => write_list(f, "actor_type", v.iter().map(|t| t.as_str().to_owned())),
            Predicate::ResourceType(v) => write_list(f, "resource_type", v.iter().cloned()),
            Predicate::Resource(v) => write_list(f, "resource", v.iter().cloned()),
            Predicate::Project(v) => write_list(f, "project", v.iter().cloned()),
            Predicate::Outcome(o) => write!(f, "outcome:{}", o.as_str()),
            Predicate::Ip(v) => write_list(
                f,
                "ip",
                v.iter().map(|net| {
                    if net.prefix_len() == net.max_prefix_len() { net.addr().to_string() } else { net.to_string() }
                }),
            ),
            Predicate::Model(v) => write_list(f, "model", v.iter().cloned()),
            Predicate::Provider(v) => write_list(f, "provider", v.iter().cloned()),
            Predicate::Status(v) => write_list(
                f,
                "status",
                v.iter().map(|s| match s {
                    StatusMatch::Code(code) => code.to_string(),
                    StatusMatch::Success => "success".to_owned(),
                    StatusMatch::Error => "error".to_owned(),
                }),
            ),
            Predicate::ApiKey(v) => write_list(f, "api_key", v.iter().cloned()),
            Predicate::Range { field, lower, upper } => {
                write!(f, "{}:", range_name(*field))?;
                if *field == RangeField::Created {
                    write_time_range(f, *lower, *upper)
                } else {
                    write_number_range(f, *lower, *upper)
                }
            }
            Predicate::Metadata { key, values } => write_list(f, &format!("metadata.{key}"), values.iter().cloned()),
            Predicate::Text(text) => {
                let bare = !text.is_empty()
                    && !text.starts_with('-')
                    && !text.chars().any(|c| c.is_whitespace() || c == '"' || c == ':');
                if bare { f.write_str(text) } else { write_quoted(f, text) }
            }
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, key: &str, values: impl Iterator<Item = String>) -> fmt::Result {
    write!(f, "{key}:")?;
    for (i, value) in values.enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        let quote = value.is_empty()
            || value.starts_with(['<', '>'])
            || value.chars().any(|c| c.is_whitespace() || c == ',' || c == '"');
        if quote {
            write_quoted(f, &value)?;
        } else {
            f.write_str(&value)?;
        }
    }
    Ok(())
}

fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        if c == '"' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

fn write_number_range(f: &mut fmt::Formatter<'_>, lower: Bound<f64>, upper: Bound<f64>) -> fmt::Result {
    use Bound::{Excluded, Included, Unbounded};
    match (lower, upper) {
        (Included(a), Included(b)) if a == b => write!(f, "{a}"),
        (Included(a), Included(b)) => write!(f, "{a}..{b}"),
        (Included(a), Unbounded) => write!(f, ">={a}"),
        (Excluded(a), Unbounded) => write!(f, ">{a}"),
        (Unbounded, Included(b)) => write!(f, "<={b}"),
        (Unbounded, Excluded(b)) => write!(f, "<{b}"),
        (lower, upper) => write_fallback(f, lower, upper, |x| x.to_string()),
    }
}

fn write_time_range(f: &mut fmt::Formatter<'_>, lower: Bound<f64>, upper: Bound<f64>) -> fmt::Result {
    use Bound::{Excluded, Included, Unbounded};
    // Bounds of `created` are whole milliseconds; a midnight may print as a date where a date means it.
    let ms = |x: f64| x as i64;
    let midnight = |x: f64| ms(x).rem_euclid(DAY_MS) == 0;
    let ts = |x: f64| time::format_millis(ms(x));
    let date =
        |x: f64| DateTime::from_timestamp_millis(ms(x)).map_or_else(|| ts(x), |t| t.format("%Y-%m-%d").to_string());
    let date_or_ts = |x: f64| if midnight(x) { date(x) } else { ts(x) };
    let day = DAY_MS as f64;
    match (lower, upper) {
        (Included(a), Included(b)) if a == b => f.write_str(&ts(a)),
        (Included(a), Excluded(b)) if midnight(a) && b == a + day => f.write_str(&date(a)),
        (Included(a), Included(b)) => write!(f, "{}..{}", date_or_ts(a), ts(b)),
        (Included(a), Excluded(b)) if midnight(b) => {
            write!(f, "{}..{}", date_or_ts(a), date(b - day))
        }
        (Included(a), Unbounded) => write!(f, ">={}", date_or_ts(a)),
        (Excluded(a), Unbounded) => write!(f, ">{}", ts(a)),
        (Unbounded, Included(b)) => write!(f, "<={}", ts(b)),
        (Unbounded, Excluded(b)) if midnight(b) && ms(b) >= MAX_MS => {
            write!(f, "<={}", date(b - day))
        }
        (Unbounded, Excluded(b)) => write!(f, "<{}", date_or_ts(b)),
        (lower, upper) => write_fallback(f, lower, upper, ts),
    }
}

fn write_fallback(
    f: &mut fmt::Formatter<'_>,
    lower: Bound<f64>,
    upper: Bound<f64>,
    show: impl Fn(f64) -> String,
) -> fmt::Result {
    let end = |b: Bound<f64>| match b {
        Bound::Included(x) | Bound::Excluded(x) => show(x),
        Bound::Unbounded => String::new(),
    };
    write!(f, "{}..{}", end(lower), end(upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-06-15T12:00:00Z.
    const NOW: i64 = 1_781_524_800_000;
    const HOUR: i64 = 3_600_000;

    fn ok(q: &str) -> Filter {
        parse(q, NOW).unwrap_or_else(|e| panic!("{q:?} should parse: {e}"))
    }

    fn one(q: &str) -> Term {
        let mut f = ok(q);
        assert_eq!(f.terms.len(), 1, "{q:?} should be one term");
        f.terms.remove(0)
    }

    fn pred(q: &str) -> Predicate {
        let t = one(q);
        assert!(!t.negated, "{q:?} should not be negated");
        t.predicate
    }

    fn fail(q: &str) -> ParseError {
        match parse(q, NOW) {
            Ok(f) => panic!("{q:?} should not parse, got {f:?}"),
            Err(e) => e,
        }
    }

    fn fail_at(q: &str, position: usize, needle: &str) {
        let e = fail(q);
        assert_eq!(e.position, position, "{q:?}: {e}");
        assert!(e.message.contains(needle), "{q:?}: {e} should mention {needle:?}");
    }

    fn ms(s: &str) -> f64 {
        time::parse_time_or_date_millis(s).unwrap() as f64
    }

    fn range(field: RangeField, lower: Bound<f64>, upper: Bound<f64>) -> Predicate {
        Predicate::Range { field, lower, upper }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    use Bound::{Excluded, Included, Unbounded};

    /// Found by the hostile-input catalogue: 5,000 terms made one SQL statement the engine refused, a 500.
    #[test]
    fn a_query_holds_at_most_a_hundred_terms_and_a_list_a_hundred_values() {
        let terms = |n: usize| (0..n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(ok(&terms(MAX_TERMS)).terms.len(), MAX_TERMS);
        let e = parse(&terms(MAX_TERMS + 1), NOW).unwrap_err();
        assert!(e.message.contains("at most 100 terms"), "{e}");
        let list = |n: usize| format!("action:{}", (0..n).map(|i| format!("a.b{i}")).collect::<Vec<_>>().join(","));
        assert!(parse(&list(MAX_LIST_VALUES), NOW).is_ok());
        let e = parse(&list(MAX_LIST_VALUES + 1), NOW).unwrap_err();
        assert!(e.message.contains("at most 100 values"), "{e}");
        let params: Vec<(String, String)> = (0..=MAX_TERMS).map(|i| ("text".to_owned(), format!("w{i}"))).collect();
        assert_eq!(Filter::from_params(&params, NOW).unwrap_err().field, "q");
    }

    #[test]
    fn an_empty_or_blank_query_is_the_empty_filter() {
        assert_eq!(ok(""), Filter::default());
        assert_eq!(ok("  \t\n "), Filter::default());
    }

    #[test]
    fn every_equality_key_builds_its_predicate() {
        assert_eq!(
            pred("action:api_key.created"),
            Predicate::Action(vec![ActionPattern::Exact("api_key.created".into())])
        );
        assert_eq!(pred("category:billing"), Predicate::Category(strings(&["billing"])));
        assert_eq!(pred("actor:alice@example.com"), Predicate::Actor(strings(&["alice@example.com"])));
        assert_eq!(pred("actor_type:api_key"), Predicate::ActorType(vec![ActorType::ApiKey]));
        assert_eq!(pred("resource_type:datasource"), Predicate::ResourceType(strings(&["datasource"])));
        assert_eq!(pred("resource:ds_42"), Predicate::Resource(strings(&["ds_42"])));
        assert_eq!(pred("project:web-app"), Predicate::Project(strings(&["web-app"])));
        assert_eq!(pred("outcome:failure"), Predicate::Outcome(Outcome::Failure));
        assert_eq!(pred("outcome:success"), Predicate::Outcome(Outcome::Success));
        assert_eq!(pred("ip:10.0.0.1"), Predicate::Ip(vec!["10.0.0.1/32".parse().unwrap()]));
        assert_eq!(pred("model:gpt-4o"), Predicate::Model(strings(&["gpt-4o"])));
        assert_eq!(pred("provider:openai"), Predicate::Provider(strings(&["openai"])));
        assert_eq!(pred("status:404"), Predicate::Status(vec![StatusMatch::Code(404)]));
        assert_eq!(pred("api_key:key_1"), Predicate::ApiKey(strings(&["key_1"])));
        assert_eq!(pred("metadata.plan:pro"), Predicate::Metadata { key: "plan".into(), values: strings(&["pro"]) });
    }

    #[test]
    fn comma_separated_values_are_alternatives_in_one_predicate() {
        assert_eq!(
            pred("action:api_key.*,team.*"),
            Predicate::Action(vec![ActionPattern::Prefix("api_key".into()), ActionPattern::Prefix("team".into())])
        );
        assert_eq!(pred("actor_type:user,service"), Predicate::ActorType(vec![ActorType::User, ActorType::Service]));
        assert_eq!(pred("model:a,b,c"), Predicate::Model(strings(&["a", "b", "c"])));
        assert_eq!(
            pred("metadata.tier_2:gold,silver"),
            Predicate::Metadata { key: "tier_2".into(), values: strings(&["gold", "silver"]) }
        );
    }

    #[test]
    fn action_patterns_keep_their_shape() {
        assert_eq!(
            pred("action:organisation.*.added"),
            Predicate::Action(vec![ActionPattern::parse("organisation.*.added").unwrap()])
        );
        assert_eq!(pred("action:*"), Predicate::Action(vec![ActionPattern::Prefix(String::new())]));
    }

    #[test]
    fn a_leading_minus_negates_a_term() {
        let t = one("-outcome:success");
        assert!(t.negated);
        assert_eq!(t.predicate, Predicate::Outcome(Outcome::Success));
        let t = one("-draft");
        assert!(t.negated);
        assert_eq!(t.predicate, Predicate::Text("draft".into()));
        let t = one("-\"rotated key\"");
        assert!(t.negated);
        assert_eq!(t.predicate, Predicate::Text("rotated key".into()));
        let t = one("-cost:>1");
        assert!(t.negated);
        assert_eq!(t.predicate, range(RangeField::Cost, Excluded(1.0), Unbounded));
    }

    #[test]
    fn a_minus_inside_a_word_is_part_of_the_word() {
        assert_eq!(pred("re-run"), Predicate::Text("re-run".into()));
        assert_eq!(pred("model:gpt-4o-mini"), Predicate::Model(strings(&["gpt-4o-mini"])));
    }

    #[test]
    fn quoted_values_may_hold_spaces_commas_and_escapes() {
        assert_eq!(pred(r#"actor:"Alice Smith""#), Predicate::Actor(strings(&["Alice Smith"])));
        assert_eq!(pred(r#"actor:"a,b""#), Predicate::Actor(strings(&["a,b"])));
        assert_eq!(pred(r#"actor:"say \"hi\"""#), Predicate::Actor(strings(&[r#"say "hi""#])));
        assert_eq!(pred(r#"actor:"back\\slash""#), Predicate::Actor(strings(&[r"back\slash"])));
        assert_eq!(pred(r#"actor:"a b",c,"d e""#), Predicate::Actor(strings(&["a b", "c", "d e"])));
        assert_eq!(pred(r#"actor:">x""#), Predicate::Actor(strings(&[">x"])));
    }

    #[test]
    fn bare_words_and_quoted_phrases_are_full_text() {
        let f = ok(r#"rotated "api key" again"#);
        let texts: Vec<Predicate> = f.terms.into_iter().map(|t| t.predicate).collect();
        assert_eq!(
            texts,
            vec![Predicate::Text("rotated".into()), Predicate::Text("api key".into()), Predicate::Text("again".into())]
        );
        assert_eq!(pred(r#""a: b""#), Predicate::Text("a: b".into()));
        assert_eq!(pred(r#""say \"hi\"""#), Predicate::Text(r#"say "hi""#.into()));
        assert_eq!(pred("a,b>c"), Predicate::Text("a,b>c".into()));
    }

    #[test]
    fn terms_are_anded_in_order() {
        let f = ok(
            "action:api_key.* actor:alice@example.com -outcome:success cost:>0.5 created:>=2026-01-01 \"rotated key\"",
        );
        assert_eq!(
            f.terms,
            vec![
                Term { negated: false, predicate: Predicate::Action(vec![ActionPattern::Prefix("api_key".into())]) },
                Term { negated: false, predicate: Predicate::Actor(strings(&["alice@example.com"])) },
                Term { negated: true, predicate: Predicate::Outcome(Outcome::Success) },
                Term { negated: false, predicate: range(RangeField::Cost, Excluded(0.5), Unbounded) },
                Term { negated: false, predicate: range(RangeField::Created, Included(ms("2026-01-01")), Unbounded) },
                Term { negated: false, predicate: Predicate::Text("rotated key".into()) },
            ]
        );
    }

    #[test]
    fn numeric_operators_and_ranges_build_the_right_bounds() {
        use RangeField::*;
        assert_eq!(pred("cost:0.5"), range(Cost, Included(0.5), Included(0.5)));
        assert_eq!(pred("cost:>0.5"), range(Cost, Excluded(0.5), Unbounded));
        assert_eq!(pred("cost:>=0.5"), range(Cost, Included(0.5), Unbounded));
        assert_eq!(pred("cost:<2"), range(Cost, Unbounded, Excluded(2.0)));
        assert_eq!(pred("cost:<=2"), range(Cost, Unbounded, Included(2.0)));
        assert_eq!(pred("cost:0.5..2"), range(Cost, Included(0.5), Included(2.0)));
        assert_eq!(pred("cost:..5"), range(Cost, Unbounded, Included(5.0)));
        assert_eq!(pred("cost:0.5.."), range(Cost, Included(0.5), Unbounded));
        assert_eq!(pred("cost:1..1"), range(Cost, Included(1.0), Included(1.0)));
        assert_eq!(pred("tokens:100..500"), range(Tokens, Included(100.0), Included(500.0)));
        assert_eq!(pred("latency:>1000"), range(Latency, Excluded(1000.0), Unbounded));
        assert_eq!(pred("seq:<=42"), range(Seq, Unbounded, Included(42.0)));
        assert_eq!(
            pred("seq:9007199254740991"),
            range(Seq, Included(9007199254740991.0), Included(9007199254740991.0))
        );
    }

    #[test]
    fn created_takes_timestamps_dates_and_relative_times() {
        use RangeField::Created;
        let t = ms("2026-01-02T03:04:05.678Z");
        assert_eq!(pred("created:2026-01-02T03:04:05.678Z"), range(Created, Included(t), Included(t)));
        assert_eq!(pred("created:>2026-01-02T05:04:05.678+02:00"), range(Created, Excluded(t), Unbounded));
        assert_eq!(pred("created:>=now-24h"), range(Created, Included((NOW - 24 * HOUR) as f64), Unbounded));
        assert_eq!(pred("created:>=now-30m"), range(Created, Included((NOW - HOUR / 2) as f64), Unbounded));
        assert_eq!(pred("created:>=now-90s"), range(Created, Included((NOW - 90_000) as f64), Unbounded));
        assert_eq!(pred("created:>=now-7d"), range(Created, Included((NOW - 7 * DAY_MS) as f64), Unbounded));
        assert_eq!(pred("created:>=now-2w"), range(Created, Included((NOW - 14 * DAY_MS) as f64), Unbounded));
        assert_eq!(pred("created:>=now-90d"), range(Created, Included((NOW - 90 * DAY_MS) as f64), Unbounded));
        assert_eq!(pred("created:>=now-1y"), range(Created, Included((NOW - 365 * DAY_MS) as f64), Unbounded));
        assert_eq!(pred("created:<now"), range(Created, Unbounded, Excluded(NOW as f64)));
        assert_eq!(
            pred("created:now-7d..now-1d"),
            range(Created, Included((NOW - 7 * DAY_MS) as f64), Included((NOW - DAY_MS) as f64))
        );
    }

    #[test]
    fn a_date_means_the_whole_utc_day() {
        use RangeField::Created;
        let jan1 = ms("2026-01-01");
        let jan2 = ms("2026-01-02");
        let feb1 = ms("2026-02-01");
        assert_eq!(pred("created:2026-01-01"), range(Created, Included(jan1), Excluded(jan2)));
        assert_eq!(pred("created:>=2026-01-01"), range(Created, Included(jan1), Unbounded));
        assert_eq!(pred("created:>2026-01-01"), range(Created, Included(jan2), Unbounded));
        assert_eq!(pred("created:<2026-01-01"), range(Created, Unbounded, Excluded(jan1)));
        assert_eq!(pred("created:<=2026-01-01"), range(Created, Unbounded, Excluded(jan2)));
        assert_eq!(pred("created:2026-01-01..2026-01-31"), range(Created, Included(jan1), Excluded(feb1)));
        assert_eq!(pred("created:..2026-01-31"), range(Created, Unbounded, Excluded(feb1)));
        assert_eq!(pred("created:2026-01-01.."), range(Created, Included(jan1), Unbounded));
        assert_eq!(
            pred("created:2026-01-01T12:00:00Z..2026-01-01"),
            range(Created, Included(ms("2026-01-01T12:00:00Z")), Excluded(jan2))
        );
        assert_eq!(pred("created:9999-12-31"), range(Created, Included(ms("9999-12-31")), Excluded(MAX_MS as f64)));
    }

    #[test]
    fn ip_takes_addresses_and_networks_and_clears_host_bits() {
        assert_eq!(
            pred("ip:10.1.2.3/8,2001:db8::1,::1/64"),
            Predicate::Ip(vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::1/128".parse().unwrap(),
                "::/64".parse().unwrap()
            ])
        );
    }

    #[test]
    fn status_takes_codes_and_the_words_success_and_error() {
        assert_eq!(
            pred("status:200,ok,success,error,failure,599,100"),
            Predicate::Status(vec![
                StatusMatch::Code(200),
                StatusMatch::Success,
                StatusMatch::Success,
                StatusMatch::Error,
                StatusMatch::Error,
                StatusMatch::Code(599),
                StatusMatch::Code(100),
            ])
        );
        for bad in ["status:99", "status:600", "status:+200", "status:2xx", "status:OK"] {
            fail_at(bad, 7, "invalid status");
        }
    }

    #[test]
    fn an_unknown_key_is_an_error_listing_the_known_keys() {
        let e = fail("outcome:success acton:x");
        assert_eq!(e.position, 16);
        assert_eq!(
            e.to_string(),
            "at position 16: unknown key \"acton\" (did you mean \"action\"?); known keys are action, category, \
             actor, actor_type, resource_type, resource, project, outcome, ip, model, provider, status, api_key, \
             created, cost, tokens, latency, seq, metadata.KEY"
        );
        fail_at("-foo:x", 1, "unknown key \"foo\"; known keys are action");
        fail_at("Action:x", 0, "did you mean \"action\"?");
        fail_at("https://example.com", 0, "unknown key \"https\"");
        fail_at(":x", 0, "cannot start with `:`");
        fail_at("metadata:x", 0, "a metadata term needs a key");
    }

    #[test]
    fn values_that_do_not_fit_their_key_are_errors_at_the_value() {
        fail_at("action:api_key.*,Team.*", 17, "invalid action pattern \"Team.*\": segment 1 has a character");
        fail_at("action:a..b", 7, "segment 2 is empty");
        fail_at("actor_type:user,robot", 16, "unknown actor type \"robot\"; expected one of user, system");
        fail_at("outcome:maybe", 8, "expected success or failure");
        fail_at("outcome:success,failure", 15, "only one outcome");
        fail_at("ip:10.0.0.300", 3, "invalid ip");
        fail_at("ip:10.0.0.0/33", 3, "invalid ip");
        fail_at("project:\"a b\"", 8, "invalid project id");
        fail_at("category:Billing", 9, "invalid category");
        fail_at("metadata.bad.key:x", 9, "invalid metadata key");
        fail_at(&format!("metadata.{}:x", "k".repeat(65)), 9, "invalid metadata key");
        assert!(parse(&format!("metadata.{}:x", "k".repeat(64)), NOW).is_ok());
    }

    #[test]
    fn empty_values_are_errors() {
        fail_at("action:", 7, "missing value for `action`");
        fail_at("x action: y", 9, "missing value for `action`");
        fail_at("action:a,", 9, "empty value in the comma list");
        fail_at("action:,a", 7, "empty value in the comma list");
        fail_at("actor:\"\"", 6, "missing value for `actor`");
        fail_at("metadata.k:", 11, "missing value for `metadata.k`");
        fail_at("cost:", 5, "missing value for `cost`");
        fail_at("cost:>=", 7, "missing value for `cost` after `>=`");
    }

    #[test]
    fn operators_are_only_for_range_keys() {
        fail_at("status:>400", 7, "the operator `>` is not allowed on `status`");
        fail_at("actor:<=bob", 6, "the operator `<=` is not allowed on `actor`");
        fail_at("metadata.k:>1", 11, "the operator `>` is not allowed on `metadata.k`");
    }

    #[test]
    fn bad_ranges_are_errors_at_the_offending_bound() {
        fail_at("cost:..", 5, "at least one bound");
        fail_at("cost:5..1", 5, "the range is empty");
        fail_at("cost:>1..2", 6, "cannot be combined");
        fail_at("cost:1..x", 8, "invalid cost \"x\"");
        fail_at("cost:-1", 5, "non-negative number");
        fail_at("cost:1e3", 5, "non-negative number");
        fail_at("cost:NaN", 5, "non-negative number");
        fail_at("cost:.5", 5, "non-negative number");
        fail_at("cost:1,2", 6, "not a comma list");
        fail_at("tokens:1.5", 7, "whole number");
        fail_at("seq:9007199254740992", 4, "whole number");
        fail_at("latency:..-3", 10, "whole number");
        fail_at("created:2026-02-01..2026-01-01", 8, "the range is empty");
        fail_at("created:2026-01-01..2025-12-31T23:59:59Z", 8, "the range is empty");
        fail_at("created:yesterday", 8, "invalid time \"yesterday\"");
        fail_at("created:now-", 8, "invalid relative time");
        fail_at("created:now-5x", 8, "invalid relative time");
        fail_at("created:now+5m", 8, "invalid relative time");
        fail_at("created:now-24h", 8, "needs an operator");
        fail_at("created:>now-99999y", 9, "outside the years 0001 to 9999");
        fail_at("created:>9999-12-31", 9, "no date follows 9999-12-31");
        fail_at("created:0000-12-31", 8, "outside the years");
    }

    #[test]
    fn quoting_mistakes_are_errors_at_the_quote() {
        fail_at("action:x \"rotated key", 9, "unterminated quote");
        fail_at("actor:\"Alice", 6, "unterminated quote");
        fail_at("\"ends in a backslash\\", 0, "unterminated quote");
        fail_at("\"a\\nb\"", 2, "unknown escape");
        fail_at("\"phrase\"x", 8, "expected whitespace after the closing quote");
        fail_at("actor:\"a\"b", 9, "expected whitespace or `,`");
        fail_at("actor:a\"b\"", 7, "unexpected `\"` inside a value");
        fail_at("foo\"bar\"", 3, "unexpected `\"` inside a word");
        fail_at("\"  \"", 0, "empty phrase");
    }

    #[test]
    fn a_lone_or_doubled_minus_is_an_error() {
        fail_at("-", 0, "lone `-`");
        fail_at("action:x - y", 9, "lone `-`");
        fail_at("--x", 1, "negated only once");
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        fail_at("\"héllo wörld\" acton:x", 14, "unknown key");
    }

    #[test]
    fn keys_are_case_sensitive() {
        fail_at("ACTION:x", 0, "unknown key \"ACTION\"");
    }

    #[test]
    fn long_values_are_cut_short_in_messages() {
        let e = fail(&format!("actor_type:{}", "x".repeat(500)));
        assert!(e.message.len() < 200, "{e}");
        assert!(e.message.contains('…'));
    }

    #[test]
    fn display_prints_the_canonical_query() {
        let cases = [
            ("action:api_key.*  actor:alice@example.com", "action:api_key.* actor:alice@example.com"),
            ("-outcome:success", "-outcome:success"),
            ("cost:>0.50", "cost:>0.5"),
            ("cost:0.5..", "cost:>=0.5"),
            ("cost:..5", "cost:<=5"),
            ("cost:1..1", "cost:1"),
            ("created:2026-01-01", "created:2026-01-01"),
            ("created:>=2026-01-01", "created:>=2026-01-01"),
            ("created:>2026-01-01", "created:>=2026-01-02"),
            ("created:<=2026-01-01", "created:<2026-01-02"),
            ("created:2026-01-01..2026-01-31", "created:2026-01-01..2026-01-31"),
            ("created:>2026-01-01T10:00:00+01:00", "created:>2026-01-01T09:00:00.000Z"),
            ("created:<=2026-01-01T00:00:00Z", "created:<=2026-01-01T00:00:00.000Z"),
            ("created:..9999-12-31", "created:<=9999-12-31"),
            ("ip:10.0.0.1,10.1.2.3/8", "ip:10.0.0.1,10.0.0.0/8"),
            ("status:ok,failure,404", "status:success,error,404"),
            (r#"actor:"Alice Smith",bob"#, r#"actor:"Alice Smith",bob"#),
            (r#"actor:">x""#, r#"actor:">x""#),
            (r#""rotated key" word"#, r#""rotated key" word"#),
            (r#""single""#, "single"),
            (r#""-dash""#, r#""-dash""#),
            (r#""a:b""#, r#""a:b""#),
            (r#""say \"hi\" \\o/""#, r#""say \"hi\" \\o/""#),
            ("metadata.plan:pro,\"free tier\"", "metadata.plan:pro,\"free tier\""),
        ];
        for (input, canonical) in cases {
            let f = ok(input);
            assert_eq!(f.to_string(), canonical, "{input:?}");
            assert_eq!(ok(canonical), f, "{canonical:?}");
        }
    }

    #[test]
    fn the_largest_date_bound_prints_without_a_five_digit_year() {
        let f = ok("created:<=9999-12-31");
        assert_eq!(f.to_string(), "created:<=9999-12-31");
        assert_eq!(ok(&f.to_string()), f);
        let f = ok("created:9999-12-31");
        assert_eq!(f.to_string(), "created:9999-12-31");
    }

    #[test]
    fn durations_accept_each_unit_and_reject_others() {
        assert_eq!(parse_duration_ms("1h"), Some(HOUR));
        assert_eq!(parse_duration_ms("1y"), Some(365 * DAY_MS));
        assert_eq!(parse_duration_ms("0s"), Some(0));
        for bad in ["", "h", "1", "1H", "-1h", "1.5h", "1hh", "1é", "9999999999999999d"] {
            assert_eq!(parse_duration_ms(bad), None, "{bad:?}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z0-9_.@-]{1,12}",
                any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
                "[ ,\"\\\\<>:a-]{1,8}",
            ]
        }

        fn texts() -> impl Strategy<Value = Vec<String>> {
            prop::collection::vec(text(), 1..4)
        }

        fn pattern() -> impl Strategy<Value = ActionPattern> {
            "[a-z_]{1,4}(\\.([a-z0-9_]{1,4}|\\*)){0,3}|\\*"
                .prop_filter_map("a valid pattern", |s| ActionPattern::parse(&s).ok())
        }

        fn ip() -> impl Strategy<Value = IpNet> {
            prop_oneof![
                (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, p)| IpNet::new(a.into(), p).unwrap().trunc()),
                (any::<[u8; 16]>(), 0u8..=128).prop_map(|(a, p)| IpNet::new(a.into(), p).unwrap().trunc()),
            ]
        }

        fn status() -> impl Strategy<Value = StatusMatch> {
            prop_oneof![
                (100u16..=599).prop_map(StatusMatch::Code),
                Just(StatusMatch::Success),
                Just(StatusMatch::Error),
            ]
        }

        fn number(field: RangeField) -> BoxedStrategy<f64> {
            match field {
                RangeField::Cost => prop_oneof![
                    0.0f64..10.0,
                    (0u64..1_000_000).prop_map(|n| n as f64 / 100.0),
                    0.0f64..1e300,
                    Just(1e-300),
                ]
                .boxed(),
                _ => (0..=MAX_WHOLE).prop_map(|n| n as f64).boxed(),
            }
        }

        fn number_range(field: RangeField) -> impl Strategy<Value = Predicate> {
            (number(field), number(field), 0..6u8).prop_map(move |(a, b, shape)| {
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                let (lower, upper) = match shape {
                    0 => (Included(lo), Included(lo)),
                    1 => (Included(lo), Included(hi)),
                    2 => (Included(lo), Unbounded),
                    3 => (Excluded(lo), Unbounded),
                    4 => (Unbounded, Included(hi)),
                    _ => (Unbounded, Excluded(hi)),
                };
                Predicate::Range { field, lower, upper }
            })
        }

        fn time_range() -> impl Strategy<Value = Predicate> {
            let instant = MIN_MS..MAX_MS;
            let days = (MIN_MS / DAY_MS)..(MAX_MS / DAY_MS);
            (instant.clone(), instant, days.clone(), days, 0..9u8).prop_map(|(a, b, d1, d2, shape)| {
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                let (dlo, dhi) = if d1 < d2 { (d1, d2) } else { (d2, d1 + 1) };
                let (lo_day, hi_day) = (dlo * DAY_MS, dhi * DAY_MS);
                let f = |x: i64| x as f64;
                let (lower, upper) = match shape {
                    0 => (Included(f(lo)), Included(f(lo))),
                    1 => (Included(f(lo)), Included(f(hi))),
                    2 => (Included(f(lo_day)), Excluded(f(lo_day + DAY_MS))),
                    3 => (Included(f(lo.min(hi_day - 1))), Excluded(f(hi_day))),
                    4 => (Included(f(lo)), Unbounded),
                    5 => (Excluded(f(lo)), Unbounded),
                    6 => (Unbounded, Included(f(hi))),
                    7 => (Unbounded, Excluded(f(hi))),
                    _ => (Unbounded, Excluded(f(hi_day))),
                };
                Predicate::Range { field: RangeField::Created, lower, upper }
            })
        }

        fn predicate() -> impl Strategy<Value = Predicate> {
            prop_oneof![
                prop::collection::vec(pattern(), 1..4).prop_map(Predicate::Action),
                prop::collection::vec("[a-z0-9_]{1,10}", 1..3).prop_map(Predicate::Category),
                texts().prop_map(Predicate::Actor),
                prop::collection::vec(prop::sample::select(ActorType::ALL.to_vec()), 1..4)
                    .prop_map(Predicate::ActorType),
                texts().prop_map(Predicate::ResourceType),
                texts().prop_map(Predicate::Resource),
                prop::collection::vec("[A-Za-z0-9_.:@-]{1,16}", 1..3).prop_map(Predicate::Project),
                prop::sample::select(vec![Outcome::Success, Outcome::Failure]).prop_map(Predicate::Outcome),
                prop::collection::vec(ip(), 1..4).prop_map(Predicate::Ip),
                texts().prop_map(Predicate::Model),
                texts().prop_map(Predicate::Provider),
                prop::collection::vec(status(), 1..4).prop_map(Predicate::Status),
                texts().prop_map(Predicate::ApiKey),
                number_range(RangeField::Cost),
                number_range(RangeField::Tokens),
                number_range(RangeField::Latency),
                number_range(RangeField::Seq),
                time_range(),
                ("[A-Za-z0-9_-]{1,64}", texts()).prop_map(|(key, values)| Predicate::Metadata { key, values }),
                text().prop_filter("has a word", |t| !t.trim().is_empty()).prop_map(Predicate::Text),
            ]
        }

        fn filter() -> impl Strategy<Value = Filter> {
            prop::collection::vec(
                (any::<bool>(), predicate()).prop_map(|(negated, predicate)| Term { negated, predicate }),
                0..6,
            )
            .prop_map(|terms| Filter { terms })
        }

        /// Strings made of the language's own pieces, which reach deeper than arbitrary text.
        fn query_like() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                prop::sample::select(
                    KEYS.iter().map(|(n, _)| format!("{n}:")).chain(["metadata.k:".to_owned()]).collect::<Vec<_>>()
                ),
                prop::sample::select(vec![
                    "-",
                    "\"",
                    "\\",
                    ",",
                    "..",
                    ">",
                    ">=",
                    "<",
                    "<=",
                    " ",
                    "now-",
                    "now",
                    "24h",
                    "2026-01-01",
                    "2026-01-01T00:00:00Z",
                    "0.5",
                    "5",
                    "404",
                    "ok",
                    "10.0.0.0/8",
                    "::1",
                    "api_key.*",
                    "user",
                    "success",
                    "é",
                    "\t",
                ])
                .prop_map(str::to_owned),
                "[a-z0-9]{1,3}",
            ];
            prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn parse_never_panics_and_errors_point_inside_the_query(s in any::<String>()) {
                if let Err(e) = parse(&s, NOW) {
                    prop_assert!(e.position <= s.chars().count());
                }
            }

            #[test]
            fn parse_never_panics_on_query_like_input(s in query_like(), now in any::<i64>()) {
                if let Err(e) = parse(&s, now) {
                    prop_assert!(e.position <= s.chars().count());
                }
            }

            #[test]
            fn whatever_parses_prints_back_to_the_same_filter(s in query_like()) {
                if let Ok(f) = parse(&s, NOW) {
                    let printed = f.to_string();
                    prop_assert_eq!(parse(&printed, NOW), Ok(f), "{}", printed);
                }
            }

            #[test]
            fn generated_filters_print_to_a_query_that_parses_back(f in filter()) {
                let printed = f.to_string();
                prop_assert_eq!(parse(&printed, NOW), Ok(f), "{}", printed);
            }
        }
    }
}
