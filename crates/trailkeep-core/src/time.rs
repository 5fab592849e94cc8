//! Time on the wire: RFC 3339 strings with millisecond precision, kept as milliseconds since the epoch.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// Formats milliseconds since the Unix epoch as `2026-01-02T03:04:05.678Z`.
pub fn format_millis(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 timestamp (any offset) to milliseconds since the Unix epoch, truncating
/// sub-millisecond digits.
pub fn parse_rfc3339_millis(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc).timestamp_millis())
}

/// Parses an RFC 3339 timestamp or a bare `YYYY-MM-DD` date (midnight UTC).
pub fn parse_time_or_date_millis(s: &str) -> Option<i64> {
    parse_rfc3339_millis(s).or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_millis())
    })
}

/// Serde adapter for `i64` milliseconds written as RFC 3339 strings.
pub mod millis_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_millis(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::parse_rfc3339_millis(&s).ok_or_else(|| D::Error::custom("expected an RFC 3339 timestamp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_millisecond_precision() {
        let ms = parse_rfc3339_millis("2026-03-04T05:06:07.891234+02:00").unwrap();
        assert_eq!(format_millis(ms), "2026-03-04T03:06:07.891Z");
        assert_eq!(parse_time_or_date_millis("2026-01-01"), parse_rfc3339_millis("2026-01-01T00:00:00Z"));
        assert_eq!(parse_rfc3339_millis("yesterday"), None);
    }
}
