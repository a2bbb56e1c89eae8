//! Parsing a connector's JSON `config` into its typed configuration, the way Dex (Go's
//! `encoding/json`) reads it: keys match field names case-insensitively, unknown keys are
//! ignored (with a warning here), and a value of the wrong type is an error that names the key.
//!
//! Typed configurations are `#[serde(default, rename_all = "camelCase")]` structs: every key is
//! optional at the serde level (as in Go) and required ones are checked by the connector's
//! `open`, with a message that says what to write.

use std::sync::Arc;

use serde::de::{self, DeserializeOwned, Visitor};

use super::{ConnectorError, ConnectorImpl, OpenContext};
use crate::storage;

/// A connector's typed configuration (Dex's `ConnectorConfig`): parsed from the stored JSON by
/// the registry, then opened.
pub(crate) trait ConnectorConfig: DeserializeOwned {
    /// Validates the configuration and opens the connector. Errors name the bad key.
    fn open(self, id: &str, ctx: &OpenContext) -> Result<Arc<dyn ConnectorImpl>, ConnectorError>;
}

/// Parses `connector.config` into `T`. An empty or `null` config is an empty object.
pub(crate) fn parse<T: DeserializeOwned>(connector: &storage::Connector) -> Result<T, ConnectorError> {
    let id = &connector.id;
    let invalid =
        |key: Option<String>, reason: String| ConnectorError::InvalidConfig { id: id.clone(), key, reason };
    let value: serde_json::Value = if connector.config.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&connector.config).map_err(|e| {
            invalid(None, format!("not valid JSON (line {}, column {})", e.line(), e.column()))
        })?
    };
    let mut object = match value {
        serde_json::Value::Null => serde_json::Map::new(),
        serde_json::Value::Object(o) => o,
        other => {
            return Err(invalid(None, format!("expected an object of settings, found {}", kind(&other))));
        }
    };
    if let Some(fields) = field_names::<T>() {
        object = normalize_keys(id, object, fields);
    }
    let whole = serde_json::Value::Object(object.clone());
    match T::deserialize(whole) {
        Ok(config) => Ok(config),
        Err(e) => {
            // Find the key at fault by reading each key alone (every field has a default).
            for (key, value) in &object {
                let mut alone = serde_json::Map::new();
                alone.insert(key.clone(), value.clone());
                if let Err(e) = T::deserialize(serde_json::Value::Object(alone)) {
                    return Err(invalid(Some(key.clone()), describe(&e, value)));
                }
            }
            Err(invalid(None, describe(&e, &serde_json::Value::Object(object))))
        }
    }
}

/// `deserialize_with` helper for a nested settings object (`claimMapping: {...}`): its keys match
/// the fields of `T` case-insensitively, as at the top level (Go's `encoding/json` applies the
/// rule at every depth). Unknown nested keys are ignored with a warning.
pub(crate) fn nested<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = <serde_json::Value as serde::Deserialize>::deserialize(deserializer)?;
    nested_value(value).map_err(de::Error::custom)
}

/// `deserialize_with` helper for a list of nested settings objects (`newGroupFromClaims: [...]`).
pub(crate) fn nested_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = <serde_json::Value as serde::Deserialize>::deserialize(deserializer)?;
    match value {
        serde_json::Value::Null => Ok(Vec::new()),
        serde_json::Value::Array(items) => {
            items.into_iter().map(|item| nested_value(item).map_err(de::Error::custom)).collect()
        }
        other => Err(de::Error::custom(format!("found {}, expected a list", kind(&other)))),
    }
}

fn nested_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    let value = match (value, field_names::<T>()) {
        (serde_json::Value::Null, _) => serde_json::Value::Object(serde_json::Map::new()),
        (serde_json::Value::Object(object), Some(fields)) => {
            serde_json::Value::Object(normalize_keys("", object, fields))
        }
        (other, _) => other,
    };
    let shown = kind(&value);
    T::deserialize(value).map_err(|e| {
        let message = e.to_string();
        match message.split_once(", expected ") {
            Some((_, expected)) => format!("found {shown} somewhere inside, expected {expected}"),
            None => format!("the {shown} given is not acceptable here"),
        }
    })
}

/// Renames keys that match a field case-insensitively (Go's rule; an exact match wins) and
/// warns about keys that match no field.
fn normalize_keys(
    id: &str,
    object: serde_json::Map<String, serde_json::Value>,
    fields: &'static [&'static str],
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    let mut renamed = Vec::new();
    for (key, value) in object {
        if fields.contains(&key.as_str()) {
            out.insert(key, value);
        } else if let Some(field) = fields.iter().find(|f| f.eq_ignore_ascii_case(&key)) {
            renamed.push(((*field).to_owned(), value));
        } else {
            tracing::warn!(connector_id = %id, key = %key, "ignoring unknown connector config key");
        }
    }
    for (field, value) in renamed {
        out.entry(field).or_insert(value);
    }
    out
}

/// A reason that never repeats the value: serde's messages quote it (``invalid type: string
/// "hunter2", expected a boolean``), and it may be a secret.
fn describe(error: &serde_json::Error, value: &serde_json::Value) -> String {
    let message = error.to_string();
    match message.split_once(", expected ") {
        Some((_, expected)) => format!("found {}, expected {expected}", kind(value)),
        None => format!("the {} given is not acceptable here", kind(value)),
    }
}

/// The JSON kind of a value, with an article.
fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The serialized field names of a struct `T` (after `rename_all`), found by asking its
/// `Deserialize` impl; `None` when `T` is not a plain struct (then keys are not checked).
fn field_names<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let mut fields = None;
    // The probe always fails after recording the field list; the error is expected.
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields
}

struct FieldProbe<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> de::Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(de::Error::custom("field names probed"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, rename_all = "camelCase")]
    struct Sample {
        host: String,
        bind_pw: String,
        insecure_no_ssl: bool,
        port: u16,
    }

    fn conn(config: &str) -> storage::Connector {
        storage::Connector {
            id: "ldap".into(),
            r#type: "ldap".into(),
            name: "LDAP".into(),
            config: config.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn reads_camel_case_keys_any_case_and_ignores_unknown_ones() {
        let c: Result<Sample, _> =
            parse(&conn(r#"{"host": "h", "BindPW": "pw", "insecureNoSSL": true, "whatever": 1}"#));
        let c = c.unwrap();
        assert_eq!(c, Sample { host: "h".into(), bind_pw: "pw".into(), insecure_no_ssl: true, port: 0 });
        assert_eq!(field_names::<Sample>(), Some(&["host", "bindPw", "insecureNoSsl", "port"][..]));
    }

    #[test]
    fn exact_key_wins_over_case_insensitive_match() {
        let c: Sample = parse(&conn(r#"{"HOST": "upper", "host": "exact"}"#)).unwrap();
        assert_eq!(c.host, "exact");
    }

    #[test]
    fn empty_and_null_configs_are_empty_objects() {
        assert_eq!(parse::<Sample>(&conn("")).unwrap(), Sample::default());
        assert_eq!(parse::<Sample>(&conn("null")).unwrap(), Sample::default());
    }

    #[test]
    fn a_bad_value_names_the_key_without_repeating_the_value() {
        let err = parse::<Sample>(&conn(r#"{"host": "h", "bindPW": 12345678}"#)).unwrap_err();
        let msg = err.to_string();
        assert_eq!(
            msg,
            "connector \"ldap\": invalid config key \"bindPw\": found a number, expected a string"
        );
        let err = parse::<Sample>(&conn(r#"{"insecureNoSSL": "hunter2"}"#)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"insecureNoSsl\"") && !msg.contains("hunter2"), "{msg}");
        let err = parse::<Sample>(&conn(r#"{"port": 70000}"#)).unwrap_err().to_string();
        assert!(err.contains("\"port\"") && !err.contains("70000"), "{err}");
    }

    #[test]
    fn not_json_or_not_an_object_is_an_error_naming_the_connector() {
        let err = parse::<Sample>(&conn("{oops")).unwrap_err().to_string();
        assert!(err.starts_with("connector \"ldap\": invalid config: not valid JSON"), "{err}");
        let err = parse::<Sample>(&conn("[1]")).unwrap_err().to_string();
        assert_eq!(err, "connector \"ldap\": invalid config: expected an object of settings, found a list");
    }
}
