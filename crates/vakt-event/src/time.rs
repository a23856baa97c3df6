//! Event time: milliseconds since the Unix epoch, UTC.
//!
//! Every detector works in event time, so replaying a month of logs gives
//! the same alerts as watching it live. A plain `i64` keeps events small and
//! comparisons cheap.

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

/// A timestamp that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("`{input}` is not an RFC 3339 time (expected e.g. 2026-11-02T08:15:00Z)")]
pub struct TimeError {
    pub input: String,
}

impl Timestamp {
    pub fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(SECOND))
    }

    pub fn from_secs_f64(secs: f64) -> Self {
        Timestamp((secs * 1000.0).round() as i64)
    }

    /// Reads an RFC 3339 time (`2026-11-02T08:15:00.123+01:00`), or a
    /// date alone (`2026-11-02`, meaning its midnight UTC).
    pub fn parse(s: &str) -> Result<Self, TimeError> {
        let s = s.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(Timestamp(t.timestamp_millis()));
        }
        // Tolerate a space instead of the `T`, as many logs write it.
        if s.len() > 10 && s.as_bytes()[10] == b' ' {
            let mut fixed = s.to_owned();
            fixed.replace_range(10..11, "T");
            if let Ok(t) = DateTime::parse_from_rfc3339(&fixed) {
                return Ok(Timestamp(t.timestamp_millis()));
            }
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            if let Some(t) = d.and_hms_opt(0, 0, 0) {
                return Ok(Timestamp(Utc.from_utc_datetime(&t).timestamp_millis()));
            }
        }
        Err(TimeError {
            input: s.chars().take(64).collect(),
        })
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }

    /// RFC 3339 with millisecond precision, `Z` suffix.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Start of the `width`-millisecond bucket this time falls in.
    pub fn floor(self, width: i64) -> Timestamp {
        Timestamp(self.0.div_euclid(width) * width)
    }

    /// The wall clock now (the epoch if the clock is before it).
    pub fn now() -> Timestamp {
        Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        )
    }

    pub fn saturating_add(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// RFC 3339 in text formats (alerts, events); the milliseconds as they
/// are in binary ones (detector snapshots), where every value, `i64::MIN`
/// included, must come back unchanged.
impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_rfc3339())
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return i64::deserialize(d).map(Timestamp);
        }
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Human duration for messages: `45 s`, `12 min`, `3.5 h`, `2.0 days`.
pub fn human_duration(ms: i64) -> String {
    let s = ms / SECOND;
    if s < 120 {
        format!("{s} s")
    } else if ms < 2 * HOUR {
        format!("{} min", ms / MINUTE)
    } else if ms < 2 * DAY {
        format!("{:.1} h", ms as f64 / HOUR as f64)
    } else {
        format!("{:.1} days", ms as f64 / DAY as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_fractions_and_dates() {
        let a = Timestamp::parse("2026-11-02T08:15:00Z").unwrap();
        let b = Timestamp::parse("2026-11-02T09:15:00+01:00").unwrap();
        assert_eq!(a, b);
        let c = Timestamp::parse("2026-11-02T08:15:00.250Z").unwrap();
        assert_eq!(c.0 - a.0, 250);
        let d = Timestamp::parse("2026-11-02").unwrap();
        assert_eq!(a.0 - d.0, 8 * HOUR + 15 * MINUTE);
        assert_eq!(Timestamp::parse("2026-11-02 08:15:00Z").unwrap(), a);
        assert!(Timestamp::parse("yesterday").is_err());
        assert_eq!(a.to_rfc3339(), "2026-11-02T08:15:00.000Z");
    }
}
