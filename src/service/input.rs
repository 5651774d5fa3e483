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
        }
        Ok(DurationInput(match Raw::deserialize(d)? {
            Raw::Text(s) => s,
            Raw::Secs(n) => n.to_string(),
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
