//! Aggregates the dashboard shows next to a page of events: totals over every event a filter selects,
//! not only the page in view.

use serde::Serialize;

/// Totals of the AI requests — events carrying an `ai` record — that a filter selects in a scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct AiTotals {
    /// How many AI requests match.
    pub requests: u64,
    /// The sum of their `ai.usage.total_tokens` (input plus output when the total was not given); requests
    /// without usage add nothing.
    pub tokens: u64,
    /// The sum of their `ai.cost_usd`; requests without a cost add nothing.
    pub cost_usd: f64,
}
