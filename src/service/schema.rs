//! OpenAPI schemas for request fields whose rules a derive cannot state by itself: the
//! Vault-style list and duration shapes, capability strings, key sizes. The request types
//! name these (`#[schema(schema_with = …)]`, or through `ToSchema` for the input shapes),
//! so the served document follows the types that parse the requests.
//!
//! A schema here may admit a little less than the parser does (a duration has at most
//! three parts in the schema, any number for the parser), never more: a client that sends
//! what the schema admits gets no 400 for the shape of that field.

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use serde_json::{json, Value};

use super::cas::CreateCaRequest;
use super::input::{DurationInput, StringList};
use crate::policy::duration::MAX_SECONDS;
use crate::types::RevocationReason;

/// A positive duration: one to three parts of at most four digits (no leading zero) and a
/// unit, or up to nine digits of seconds. Every string it admits is within the 100-year
/// bound, so the schema never promises what the parser refuses.
pub const DURATION_PATTERN: &str = "^(?:[1-9][0-9]{0,8}|(?:[1-9][0-9]{0,3}[smhd]){1,3})$";

/// A capability string (`src/service/access.rs`).
pub const CAPABILITY_PATTERN: &str = "^(?:sys|admin|read|ca:write|role:write|csr:request|csr:approve|revoke|trust:write|keys:read|audit:read|(?:issue|sign):(?:\\*|[A-Za-z0-9._-]{1,128}))$";

fn duration_string() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(DURATION_PATTERN))
        .description(Some(
            "`30s`, `90m`, `720h`, `30d`, combinations such as `1h30m`, or a number of seconds",
        ))
}

impl PartialSchema for DurationInput {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(duration_string())
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(MAX_SECONDS))
                    .description(Some("seconds")),
            )
            .description(Some(
                "A duration: a string such as `720h` or `1h30m`, or a number of seconds; at most 100 years.",
            ))
            .into()
    }
}
impl ToSchema for DurationInput {}

impl PartialSchema for StringList {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("comma-separated, as Vault accepts")),
            )
            .description(Some("A list of strings, or one comma-separated string."))
            .into()
    }
}
impl ToSchema for StringList {}

/// `capabilities` of a new API token.
pub fn capabilities() -> Schema {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(CAPABILITY_PATTERN)),
        )
        .min_items(Some(1))
        .description(Some(
            "`sys`, `admin`, `read`, `ca:write`, `role:write`, `issue:<role>`, `issue:*`, `sign:<role>`, `sign:*`, `csr:request`, `csr:approve`, `revoke`, `trust:write`, `keys:read`, `audit:read`",
        ))
        .build()
        .into()
}

/// A list of usage names, as a list or one comma-separated string, or `null` (the
/// default). The parser also takes other spellings (`digital_signature`); the schema
/// names the canonical ones. `alone`: a usage that may only stand by itself (RFC 3161's
/// TimeStamping), so that the schema says what the server refuses.
fn usage_list(
    names: &[&str],
    description: &str,
    may_be_empty: bool,
    alone: Option<&str>,
) -> Schema {
    let others: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| Some(*n) != alone)
        .collect();
    let alternatives = others.join("|");
    let optional = if may_be_empty { "?" } else { "" };
    let list = |names: Vec<&str>, min: Option<usize>| {
        ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(names)),
            )
            .min_items(min)
    };
    let comma_separated = |pattern: String| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .description(Some("comma-separated, as Vault accepts"))
    };
    let mut one_of = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .item(list(others.clone(), (!may_be_empty).then_some(1)))
        .item(comma_separated(format!(
            "^(?:(?:{alternatives})(?:,(?:{alternatives}))*){optional}$"
        )));
    if let Some(a) = alone {
        one_of = one_of
            .item(list(vec![a], Some(1)))
            .item(comma_separated(format!("^{a}(?:,{a})*$")));
    }
    one_of.description(Some(description)).build().into()
}

/// `key_usage` of a role.
pub fn key_usages() -> Schema {
    let names: Vec<&str> = crate::policy::KeyUsage::ALL
        .iter()
        .map(|u| u.name())
        .collect();
    usage_list(
        &names,
        "Key usages; default `[\"DigitalSignature\"]` (and `KeyEncipherment` for RSA roles)",
        true,
        None,
    )
}

fn ext_key_usage_names() -> Vec<&'static str> {
    crate::policy::ExtKeyUsage::ALL
        .iter()
        .map(|u| u.name())
        .collect()
}

/// `ext_key_usage` of a role.
pub fn ext_key_usages() -> Schema {
    usage_list(
        &ext_key_usage_names(),
        "Extended key usages; default `[\"ServerAuth\", \"ClientAuth\"]`; `[]` for none; \
         `TimeStamping` only by itself",
        true,
        Some(crate::policy::ExtKeyUsage::TimeStamping.name()),
    )
}

/// `ext_key_usage` of signing an approved CSR: no role stands behind it, so an empty list
/// (a certificate good for any purpose) is refused rather than taken literally.
pub fn ext_key_usages_named() -> Schema {
    usage_list(
        &ext_key_usage_names(),
        "Extended key usages; default `[\"ServerAuth\", \"ClientAuth\"]`; not empty; \
         `TimeStamping` only by itself",
        false,
        Some(crate::policy::ExtKeyUsage::TimeStamping.name()),
    )
}

/// `reason` of a revocation: one of the names, or left out (`unspecified`).
pub fn revocation_reason() -> Schema {
    let mut names: Vec<Value> = RevocationReason::ALL
        .iter()
        .map(|r| json!(r.name()))
        .collect();
    names.push(Value::Null);
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Null,
        ]))
        .enum_values(Some(names))
        .description(Some("default `unspecified`"))
        .build()
        .into()
}

fn enum_of(values: &[Value], description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        // No `type`: the values say it (and a builder's default type is `object`).
        .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
        .enum_values(Some(values.to_vec()))
        .description(Some(description))
}

/// One of the four shapes of `POST /v1/pki/ca`: root or intermediate, RSA or EC. They
/// say what the parser checks across fields: a root has no `parent_ca_id`, an
/// intermediate must have one, and `key_size` must suit `key_type`.
fn ca_variant(intermediate: bool, ec: bool) -> ObjectBuilder {
    let mut o = ObjectBuilder::new()
        .schema_type(Type::Object)
        .title(Some(format!(
            "{} CA, {} key",
            if intermediate { "intermediate" } else { "root" },
            if ec { "EC" } else { "RSA" }
        )))
        .property(
            "name",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[A-Za-z0-9._-]{1,128}$"))
                .description(Some("Unique within the tenant")),
        )
        .required("name")
        .property(
            "common_name",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(64))
                .pattern(Some(
                    r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
                )),
        )
        .required("common_name")
        .property(
            "ca_type",
            enum_of(
                &[json!(if intermediate { "intermediate" } else { "root" })],
                "`root` or `intermediate`",
            ),
        )
        .required("ca_type")
        .property(
            "validity_days",
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::Integer,
                    Type::Null,
                ]))
                .minimum(Some(1))
                .maximum(Some(36_500))
                .description(Some(
                    "default 3650 for roots, 1825 for intermediates; an intermediate is clipped to its parent's notAfter",
                )),
        );
    o = if intermediate {
        o.property(
            "parent_ca_id",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("The CA that signs it")),
        )
        .required("parent_ca_id")
    } else {
        o.property(
            "parent_ca_id",
            ObjectBuilder::new()
                .schema_type(Type::Null)
                .description(Some("A root has no parent")),
        )
    };
    o = if ec {
        o.property("key_type", enum_of(&[json!("ec")], "EC key"))
            .required("key_type")
            .property(
                "key_size",
                enum_of(
                    &[json!(256), json!(384), Value::Null],
                    "256 (default, P-256) or 384 (P-384)",
                ),
            )
    } else {
        o.property(
            "key_type",
            enum_of(&[json!("rsa"), Value::Null], "RSA key (the default)"),
        )
        .property(
            "key_size",
            enum_of(
                &[json!(2048), json!(3072), json!(4096), Value::Null],
                "2048 (default), 3072 or 4096",
            ),
        )
    };
    o.additional_properties(Some(
        utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
    ))
}

impl PartialSchema for CreateCaRequest {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ca_variant(false, false))
            .item(ca_variant(false, true))
            .item(ca_variant(true, false))
            .item(ca_variant(true, true))
            .description(Some(
                "A root or intermediate CA; its key pair is generated in the token.",
            ))
            .into()
    }
}
impl ToSchema for CreateCaRequest {}

/// `key_size` of a CA or an in-token CSR key: which sizes go with which `key_type` is said
/// in the description (RSA 2048, 3072, 4096; EC 256, 384).
pub fn key_size() -> Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Integer,
            Type::Null,
        ]))
        .enum_values(Some([
            serde_json::json!(256),
            serde_json::json!(384),
            serde_json::json!(2048),
            serde_json::json!(3072),
            serde_json::json!(4096),
            serde_json::Value::Null,
        ]))
        .description(Some(
            "rsa: 2048 (default), 3072 or 4096; ec: 256 (default, P-256) or 384 (P-384)",
        ))
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The fields a `deny_unknown_fields` type accepts, from serde's own error message.
    fn serde_fields<T: serde::de::DeserializeOwned>() -> BTreeSet<String> {
        let e = match serde_json::from_str::<T>(r#"{"\u0000": 0}"#) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("an unknown field was accepted"),
        };
        let list = e.split("expected one of").nth(1).expect("a field list");
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_ca_schema_names_exactly_the_fields_the_parser_takes() {
        let RefOr::T(Schema::OneOf(one)) = CreateCaRequest::schema() else {
            panic!("a oneOf");
        };
        let want = serde_fields::<CreateCaRequest>();
        assert_eq!(one.items.len(), 4);
        for v in &one.items {
            let RefOr::T(Schema::Object(o)) = v else {
                panic!("an object");
            };
            let got: BTreeSet<String> = o.properties.keys().cloned().collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn every_string_the_duration_pattern_admits_parses() {
        use crate::policy::Ttl;
        for s in [
            "1",
            "999999999",
            "1s",
            "9999d",
            "9999d9999d9999d",
            "1h30m",
            "7d12h5s",
        ] {
            assert!(Ttl::parse(s).is_ok_and(|t| t.as_secs() > 0), "{s}");
        }
    }
}
