//! Plans: how long an organisation's events are kept and in which formats its log may be exported.
//!
//! The defaults follow what platforms sell: `free` keeps 7 days and allows no export, `pro` keeps 30
//! days and exports CSV, `enterprise` keeps 365 days and exports every format. A deployment can redefine
//! any plan in its configuration, and an organisation can have its own retention, overall and per
//! category (see [`Retention`]).

use serde::{Deserialize, Serialize};

/// The formats the log can be exported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Csv,
    Json,
    Ndjson,
    Parquet,
    /// Self-proving bundles (`GET /v1/bundle`).
    Bundle,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 5] =
        [ExportFormat::Csv, ExportFormat::Json, ExportFormat::Ndjson, ExportFormat::Parquet, ExportFormat::Bundle];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
            ExportFormat::Ndjson => "ndjson",
            ExportFormat::Parquet => "parquet",
            ExportFormat::Bundle => "bundle",
        }
    }

    pub fn parse(s: &str) -> Option<ExportFormat> {
        ExportFormat::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// What a plan grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    /// How many days events are kept, counted from `occurred_at`.
    pub retention_days: u32,
    pub exports: Vec<ExportFormat>,
}

impl Plan {
    pub fn allows(&self, format: ExportFormat) -> bool {
        self.exports.contains(&format)
    }
}

/// The plans every deployment starts with.
pub fn default_plans() -> Vec<Plan> {
    vec![
        Plan { name: "free".into(), retention_days: 7, exports: vec![] },
        Plan { name: "pro".into(), retention_days: 30, exports: vec![ExportFormat::Csv] },
        Plan { name: "enterprise".into(), retention_days: 365, exports: ExportFormat::ALL.to_vec() },
    ]
}

/// One category's own retention: `pattern` is a category (`auth`) or a prefix ending in `.*` or `*`
/// (`ai.*` matches `ai` and `ai.request`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryRetention {
    pub category: String,
    pub days: u32,
}

/// An organisation's own retention, which overrides its plan's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Days for every category without a rule of its own; `None` keeps the plan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<CategoryRetention>,
}

/// The most days a retention may be set to (100 years): beyond that, keep forever isn't a number.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

impl CategoryRetention {
    pub fn matches(&self, category: &str) -> bool {
        category_matches(&self.category, category)
    }
}

/// Whether `category` falls under `pattern` (exact, or a prefix ending in `.*` or `*`).
pub fn category_matches(pattern: &str, category: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix(".*") {
        category == prefix || category.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.'))
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        category.starts_with(prefix)
    } else {
        category == pattern
    }
}

impl Retention {
    /// The days `category` is kept under this retention and the plan's.
    pub fn days_for(&self, plan: &Plan, category: &str) -> u32 {
        // The most specific (longest) matching pattern wins.
        self.categories
            .iter()
            .filter(|r| r.matches(category))
            .max_by_key(|r| r.category.len())
            .map(|r| r.days)
            .or(self.days)
            .unwrap_or(plan.retention_days)
    }

    /// Checks the values a caller gave, naming the field of the first bad one.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let days_ok = |d: u32| (1..=MAX_RETENTION_DAYS).contains(&d);
        if self.days.is_some_and(|d| !days_ok(d)) {
            return Err(("days".into(), format!("days must be from 1 to {MAX_RETENTION_DAYS}")));
        }
        if self.categories.len() > 100 {
            return Err(("categories".into(), "at most 100 category rules".into()));
        }
        for (i, rule) in self.categories.iter().enumerate() {
            let pattern = rule.category.trim_end_matches('*').trim_end_matches('.');
            let valid_text = !pattern.is_empty()
                && rule.category.len() <= 128
                && pattern.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid_text || rule.category[..rule.category.len() - 1].contains('*') {
                return Err((
                    format!("categories[{i}].category"),
                    "a category, or a prefix ending in `.*` or `*`, of letters, digits, `.`, `_` and `-`".into(),
                ));
            }
            if !days_ok(rule.days) {
                return Err((format!("categories[{i}].days"), format!("days must be from 1 to {MAX_RETENTION_DAYS}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str) -> Plan {
        default_plans().into_iter().find(|p| p.name == name).unwrap()
    }

    #[test]
    fn the_default_plans_are_the_seeds() {
        assert_eq!((plan("free").retention_days, plan("free").exports.len()), (7, 0));
        assert!(plan("pro").allows(ExportFormat::Csv) && !plan("pro").allows(ExportFormat::Parquet));
        assert!(plan("enterprise").allows(ExportFormat::Parquet) && plan("enterprise").retention_days == 365);
    }

    #[test]
    fn the_most_specific_category_rule_wins_then_the_org_then_the_plan() {
        let retention = Retention {
            days: Some(365),
            categories: vec![
                CategoryRetention { category: "ai.*".into(), days: 30 },
                CategoryRetention { category: "ai.request".into(), days: 10 },
                CategoryRetention { category: "auth*".into(), days: 90 },
            ],
        };
        let pro = plan("pro");
        assert_eq!(retention.days_for(&pro, "ai"), 30);
        assert_eq!(retention.days_for(&pro, "ai.usage"), 30);
        assert_eq!(retention.days_for(&pro, "ai.request"), 10);
        assert_eq!(retention.days_for(&pro, "aim"), 365, "`ai.*` is a dotted prefix, not a string prefix");
        assert_eq!(retention.days_for(&pro, "authentication"), 90);
        assert_eq!(retention.days_for(&pro, "billing"), 365);
        assert_eq!(Retention::default().days_for(&pro, "billing"), 30);
    }

    #[test]
    fn bad_retention_names_its_field() {
        let bad = |r: Retention| r.validate().unwrap_err().0;
        assert_eq!(bad(Retention { days: Some(0), categories: vec![] }), "days");
        let rule = |category: &str, days| Retention {
            days: None,
            categories: vec![CategoryRetention { category: category.into(), days }],
        };
        assert_eq!(bad(rule("a*b", 5)), "categories[0].category");
        assert_eq!(bad(rule("", 5)), "categories[0].category");
        assert_eq!(bad(rule("ok", 0)), "categories[0].days");
        assert!(rule("ai.*", 30).validate().is_ok());
    }
}
