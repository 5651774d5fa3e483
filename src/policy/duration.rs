//! TTL and duration strings: `30s`, `90m`, `720h`, `30d`, `1h30m`, or bare seconds.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A non-negative length of time with one-second resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Ttl(u64);

/// Longest duration we accept anywhere: 100 years keeps every date inside X.509's range.
pub const MAX_SECONDS: u64 = 100 * 366 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a duration: use forms like 30s, 90m, 720h, 30d, 1h30m, or a number of seconds"
)]
pub struct DurationError(pub String);

impl Ttl {
    pub const fn from_secs(secs: u64) -> Self {
        Ttl(secs)
    }

    pub fn as_secs(self) -> u64 {
        self.0
    }

    pub fn as_duration(self) -> time::Duration {
        // MAX_SECONDS bounds every value we construct from input, so this cannot wrap.
        time::Duration::seconds(i64::try_from(self.0).unwrap_or(i64::MAX))
    }

    /// Parse a duration string. Units: s, m, h, d; parts may be combined (`1h30m`).
    pub fn parse(s: &str) -> Result<Self, DurationError> {
        let err = || DurationError(s.to_string());
        let t = s.trim();
        if t.is_empty() || t.len() > 32 {
            return Err(err());
        }
        if t.bytes().all(|b| b.is_ascii_digit()) {
            let v: u64 = t.parse().map_err(|_| err())?;
            return if v <= MAX_SECONDS {
                Ok(Ttl(v))
            } else {
                Err(err())
            };
        }
        let mut total: u64 = 0;
        let mut num: Option<u64> = None;
        for c in t.chars() {
            if let Some(d) = c.to_digit(10) {
                let n = num.unwrap_or(0);
                num = Some(
                    n.checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(d)))
                        .ok_or_else(err)?,
                );
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3_600,
                'd' => 86_400,
                _ => return Err(err()),
            };
            let n = num.take().ok_or_else(err)?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(err)?;
        }
        if num.is_some() || total > MAX_SECONDS {
            return Err(err());
        }
        Ok(Ttl(total))
    }
}

impl fmt::Display for Ttl {
    /// The shortest exact form in one unit, as Vault prints TTLs: `720h`, `90m`, `45s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s != 0 && s.is_multiple_of(3_600) {
            write!(f, "{}h", s / 3_600)
        } else if s != 0 && s.is_multiple_of(60) {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_forms_parse() {
        assert_eq!(Ttl::parse("30s").unwrap().as_secs(), 30);
        assert_eq!(Ttl::parse("90m").unwrap().as_secs(), 5_400);
        assert_eq!(Ttl::parse("720h").unwrap().as_secs(), 2_592_000);
        assert_eq!(Ttl::parse("30d").unwrap().as_secs(), 2_592_000);
        assert_eq!(Ttl::parse("1h30m").unwrap().as_secs(), 5_400);
        assert_eq!(Ttl::parse("3600").unwrap().as_secs(), 3_600);
    }

    #[test]
    fn junk_and_overflow_are_refused() {
        for bad in [
            "",
            "h",
            "1x",
            "1.5h",
            "-1h",
            "1h30",
            "99999999999999999999h",
            "36601d",
            "1 h",
        ] {
            assert!(Ttl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_print_in_one_unit() {
        assert_eq!(Ttl::from_secs(2_592_000).to_string(), "720h");
        assert_eq!(Ttl::from_secs(5_400).to_string(), "90m");
        assert_eq!(Ttl::from_secs(30).to_string(), "30s");
    }
}
