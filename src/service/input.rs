//! Shapes of JSON input that Vault users send interchangeably: a list or a
//! comma-separated string; a duration string or a number of seconds.

use serde::{Deserialize, Deserializer};

use crate::policy::Ttl;

use super::ServiceError;

/// `["a","b"]` or `"a,b"`.
#[derive(Debug, Clone, Default)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            List(Vec<String>),
            Csv(String),
        }
        Ok(StringList(match Raw::deserialize(d)? {
            Raw::List(v) => v,
            Raw::Csv(s) => s
                .split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
        }))
    }
}

/// `"720h"` or `2592000`.
#[derive(Debug, Clone)]
pub struct DurationInput(String);

impl<'de> Deserialize<'de> for DurationInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Secs(u64),
            // `3600.0`: a whole number is an integer to JSON Schema, and to some clients.
            Float(f64),
        }
        Ok(DurationInput(match Raw::deserialize(d)? {
            Raw::Text(s) => s,
            Raw::Secs(n) => n.to_string(),
            Raw::Float(f) => match whole(f) {
                Some(n) => n.to_string(),
                // Not a duration; the parser says so with the field's name.
                None => f.to_string(),
            },
        }))
    }
}

impl DurationInput {
    pub fn parse(&self, field: &str) -> Result<Ttl, ServiceError> {
        Ttl::parse(&self.0).map_err(|e| ServiceError::InvalidRequest(format!("{field}: {e}")))
    }
}

/// Parse an optional duration field.
pub fn opt_ttl(v: &Option<DurationInput>, field: &str) -> Result<Option<Ttl>, ServiceError> {
    v.as_ref().map(|d| d.parse(field)).transpose()
}

/// `f` as a whole non-negative number, if it is one (`2048.0`).
fn whole(f: f64) -> Option<u64> {
    // 2^53: past it not every whole number is a float, and none of our numbers get there.
    (f.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(&f)).then_some(f as u64)
}

/// A `u32` that may also be written as a whole JSON number with a fraction part of zero
/// (`2048.0`): JSON Schema (draft 6 on, so OpenAPI 3.1) counts that as an integer.
pub fn whole_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Float(f64),
    }
    let n = match Raw::deserialize(d) {
        Ok(Raw::Int(n)) => Some(n),
        Ok(Raw::Float(f)) => whole(f),
        Err(_) => None,
    };
    n.and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "expected a whole number between 0 and {}",
            u32::MAX
        ))
    })
}

/// [`whole_u32`] for an optional field (`null` is `None`).
pub fn opt_whole_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_u32")] u32);
    Ok(Option::<Whole>::deserialize(d)?.map(|w| w.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "whole_u32")]
        n: u32,
        #[serde(default, deserialize_with = "opt_whole_u32")]
        o: Option<u32>,
        #[serde(default)]
        d: Option<DurationInput>,
    }

    fn parse(s: &str) -> Result<T, serde_json::Error> {
        serde_json::from_str(s)
    }

    #[test]
    fn whole_numbers_may_be_written_with_a_zero_fraction() {
        let t = parse(r#"{"n": 2048.0, "o": 3.0, "d": 3600.0}"#).unwrap();
        assert_eq!((t.n, t.o), (2048, Some(3)));
        assert_eq!(t.d.unwrap().parse("d").unwrap().as_secs(), 3600);
        assert_eq!(parse(r#"{"n": 1, "o": null}"#).unwrap().o, None);
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": -1.0}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": "1"}"#,
            r#"{"n": 1, "o": 2.5}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let t = parse(r#"{"n": 1, "d": 1.5}"#).unwrap();
        assert!(t.d.unwrap().parse("d").is_err());
    }
}
