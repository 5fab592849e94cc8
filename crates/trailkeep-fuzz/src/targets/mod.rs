//! The fuzz targets: what each feeds its input to, and the properties it asserts.

use arbitrary::Unstructured;

mod bundle;
mod checkpoint;
mod event;
mod query;

pub use bundle::BundleTarget;
pub use checkpoint::CheckpointTarget;
pub use event::EventTarget;
pub use query::QueryTarget;

/// The clock every target reads: 2026-03-01T12:00:00Z, so that runs are repeatable.
pub const NOW_MS: i64 = 1_772_366_400_000;

/// A parser of untrusted input, with the properties it must keep.
pub trait Target: Sync {
    /// The name on the command line and of the corpus directory.
    fn name(&self) -> &'static str;
    /// Real, valid inputs, the corpus's first members.
    fn seeds(&self) -> Vec<Vec<u8>>;
    /// Tokens the mutator splices in.
    fn dictionary(&self) -> &'static [&'static str];
    /// A structure-aware input drawn from fuzz bytes.
    fn generate(&self, u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>>;
    /// Runs one input, panicking when a property fails, and answers the features of its outcome, separated
    /// by `;` (an error's code and field, a kind of predicate parsed, a verifier's verdict): an input with
    /// a feature not seen before joins the corpus.
    fn run(&self, input: &[u8]) -> String;
}

static EVENT: EventTarget = EventTarget;
static QUERY: QueryTarget = QueryTarget;
static BUNDLE: BundleTarget = BundleTarget;
static CHECKPOINT: CheckpointTarget = CheckpointTarget;

/// Every target, in the order the command line lists them.
pub fn all() -> Vec<&'static dyn Target> {
    vec![&EVENT, &QUERY, &BUNDLE, &CHECKPOINT]
}

pub fn by_name(name: &str) -> Option<&'static dyn Target> {
    all().into_iter().find(|t| t.name() == name)
}

/// An error message reduced to its shape: digits, and values in quotes or backticks, dropped, so that
/// the same complaint about different values counts as one behaviour.
pub(crate) fn shape(message: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '`' | '"') => {
                quote = Some(c);
                out.push('_');
            }
            (None, c) if c.is_ascii_digit() => {
                if !out.ends_with('#') {
                    out.push('#');
                }
            }
            (None, c) => out.push(c),
        }
        // An echoed value holding a quote of the other kind escapes the tracking above: the first words
        // are what tells one complaint from another.
        if out.len() >= 56 {
            break;
        }
    }
    out
}

/// The names a JSON path of an event may hold.
const FIELD_NAMES: &[&str] = &[
    "events",
    "id",
    "organization_id",
    "project_id",
    "action",
    "category",
    "occurred_at",
    "actor",
    "type",
    "name",
    "email",
    "targets",
    "context",
    "ip",
    "user_agent",
    "location",
    "request_id",
    "session_id",
    "trace_id",
    "description",
    "outcome",
    "error",
    "changes",
    "field",
    "before",
    "after",
    "metadata",
    "ai",
    "provider",
    "model",
    "parameters",
    "api_key_id",
    "user_id",
    "prompt",
    "response",
    "usage",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
    "latency_ms",
    "status_code",
    "security",
    "pii_types",
    "content_filter_flags",
    "prompt_injection_score",
    "incident_ids",
];

/// A JSON path reduced to its shape: indexes dropped, any name an event does not have (an unknown key
/// the input made up) replaced by `?`, and cut after three segments.
pub(crate) fn path_shape(path: &str) -> String {
    path.split('.')
        .take(3)
        .map(|segment| {
            let name = segment.split('[').next().unwrap_or_default();
            if FIELD_NAMES.contains(&name) { name } else { "?" }
        })
        .collect::<Vec<_>>()
        .join(".")
}
