//! Writing JSON text from fuzz bytes: values of every type, strings with hostile characters, numbers at
//! the edges of their types, and objects that may repeat a key — text `serde_json::Value` cannot hold,
//! so it is written by hand.

use arbitrary::{Result, Unstructured};

/// Strings that tend to break parsers and validators.
const STRINGS: &[&str] = &[
    "",
    " ",
    "a",
    "acme",
    "user.login",
    "user_1",
    "alice@example.com",
    "203.0.113.7",
    "2001:db8::1",
    "2026-03-01T10:00:00Z",
    "../../etc/passwd",
    "%2e%2e%2f",
    "'; DROP TABLE events; --",
    "\" OR 1=1 --",
    "NEAR(a b)",
    "a* OR b*",
    "\u{0}",
    "\u{1b}[31m",
    "\u{202e}gnp.exe",
    "\u{2028}",
    "\u{feff}",
    "e\u{301}",
    "😀",
    "\u{10ffff}",
];

/// A JSON string literal holding `s`, escaped by `serde_json`.
pub fn string_literal(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// A string: a hostile favourite, arbitrary text, or a long run.
pub fn string(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=5)? {
        0 | 1 => (*u.choose(STRINGS)?).to_owned(),
        2 | 3 => u.arbitrary::<String>()?,
        4 => {
            let unit = u.choose(STRINGS)?;
            unit.repeat(u.int_in_range(1..=300)?)
        }
        _ => "x".repeat(u.int_in_range(0..=20_000)?),
    })
}

/// A number literal, some of them beyond what `f64`, `i64` or `u64` hold.
pub fn number(u: &mut Unstructured<'_>) -> Result<String> {
    const EDGES: &[&str] = &[
        "0",
        "-0",
        "1",
        "-1",
        "0.5",
        "1e308",
        "1.7976931348623157e308",
        "1e400",
        "-1e400",
        "5e-324",
        "1e-400",
        "9007199254740993",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890",
    ];
    Ok(match u.int_in_range(0..=3)? {
        0 => (*u.choose(EDGES)?).to_owned(),
        1 => u.arbitrary::<i64>()?.to_string(),
        2 => u.arbitrary::<u64>()?.to_string(),
        _ => {
            let f = u.arbitrary::<f64>()?;
            if f.is_finite() {
                serde_json::Number::from_f64(f).map_or("0".to_owned(), |n| n.to_string())
            } else {
                "1".into()
            }
        }
    })
}

/// Any JSON value, nested at most `depth` deep.
pub fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<String> {
    let most = if depth == 0 { 4 } else { 6 };
    Ok(match u.int_in_range(0..=most)? {
        0 => "null".into(),
        1 => if u.arbitrary()? { "true" } else { "false" }.into(),
        2 => number(u)?,
        3 | 4 => string_literal(&string(u)?),
        5 => {
            let n = u.int_in_range(0..=4)?;
            let items = (0..n).map(|_| value(u, depth - 1)).collect::<Result<Vec<_>>>()?;
            format!("[{}]", items.join(","))
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            let members =
                (0..n).map(|_| Ok((string(u)?, value(u, depth - 1)?))).collect::<Result<Vec<(String, String)>>>()?;
            object(&members)
        }
    })
}

/// Nesting far deeper than any parser should follow.
pub fn deep(u: &mut Unstructured<'_>) -> Result<String> {
    let n = u.int_in_range(100..=5_000)?;
    Ok(if u.arbitrary()? {
        format!("{}1{}", "[".repeat(n), "]".repeat(n))
    } else {
        "{\"a\":".repeat(n) + "1" + &"}".repeat(n)
    })
}

/// An object with the given members, in order, repeated keys and all.
pub fn object(members: &[(String, String)]) -> String {
    let inner: Vec<String> = members.iter().map(|(k, v)| format!("{}:{v}", string_literal(k))).collect();
    format!("{{{}}}", inner.join(","))
}
