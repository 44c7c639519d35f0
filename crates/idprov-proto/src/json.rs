//! Strict reading of JSON objects: duplicate keys are an error, types are
//! checked per field, unknown keys are ignored (PROTOCOL.md §4, "Parsing").
//!
//! `serde_json::Value` keeps only the last of two equal keys, so the object is
//! first read as a list of entries, which keeps duplicates visible.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// Why a message body was refused. Each message names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not JSON, not an object, or trailing bytes after the object.
    #[error("body is not a valid JSON object: {0}")]
    Syntax(String),
    /// The same key appears twice.
    #[error("duplicate key {0:?}")]
    DuplicateKey(String),
    /// A required field is absent (or `null` where `null` is not accepted).
    #[error("missing field {0:?}")]
    Missing(&'static str),
    /// A field holds the wrong JSON type.
    #[error("field {0:?} must be {1}")]
    WrongType(&'static str, &'static str),
    /// A field holds a value of the right type that is not acceptable.
    #[error("field {0:?}: {1}")]
    Invalid(&'static str, String),
}

/// The entries of one JSON object, duplicates kept, in wire order.
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    entries.push((k, v));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(V)
    }
}

/// A parsed JSON object whose fields are taken one by one with their type.
pub(crate) struct Object {
    entries: Vec<(String, Value)>,
}

impl Object {
    /// Parses `bytes` as exactly one JSON object with no duplicate keys.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, MessageError> {
        let Entries(entries) =
            serde_json::from_slice(bytes).map_err(|e| MessageError::Syntax(e.to_string()))?;
        Self::from_entries(entries)
    }

    /// Reads a JSON value that must be an object (used for array elements).
    pub(crate) fn from_value(value: Value) -> Result<Self, MessageError> {
        // `Value::Object` has already merged duplicate keys; top-level messages
        // go through `parse`, which sees them.
        match value {
            Value::Object(map) => Ok(Object {
                entries: map.into_iter().collect(),
            }),
            _ => Err(MessageError::Syntax("expected a JSON object".into())),
        }
    }

    fn from_entries(entries: Vec<(String, Value)>) -> Result<Self, MessageError> {
        let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(MessageError::DuplicateKey(w[0].to_string()));
        }
        Ok(Object { entries })
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        let pos = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.swap_remove(pos).1)
    }

    /// A required string.
    pub(crate) fn required_string(&mut self, key: &'static str) -> Result<String, MessageError> {
        match self.take(key) {
            Some(Value::String(s)) => Ok(s),
            None | Some(Value::Null) => Err(MessageError::Missing(key)),
            Some(_) => Err(MessageError::WrongType(key, "a string")),
        }
    }

    /// An optional string where both absence and `null` read as `""`.
    pub(crate) fn optional_string(&mut self, key: &'static str) -> Result<String, MessageError> {
        match self.take(key) {
            Some(Value::String(s)) => Ok(s),
            None | Some(Value::Null) => Ok(String::new()),
            Some(_) => Err(MessageError::WrongType(key, "a string")),
        }
    }

    /// An optional string where absence and `null` read as `None`.
    pub(crate) fn nullable_string(
        &mut self,
        key: &'static str,
    ) -> Result<Option<String>, MessageError> {
        match self.take(key) {
            Some(Value::String(s)) => Ok(Some(s)),
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err(MessageError::WrongType(key, "a string")),
        }
    }

    /// An optional boolean, absent or `null` reading as false.
    pub(crate) fn optional_bool(&mut self, key: &'static str) -> Result<bool, MessageError> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(b),
            Some(_) => Err(MessageError::WrongType(key, "a boolean")),
        }
    }

    /// An optional integer (Go `int`), absent or `null` reading as 0.
    pub(crate) fn optional_int(&mut self, key: &'static str) -> Result<i64, MessageError> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(0),
            Some(Value::Number(n)) => n.as_i64().ok_or(MessageError::WrongType(key, "an integer")),
            Some(_) => Err(MessageError::WrongType(key, "an integer")),
        }
    }

    /// An optional object of string values.
    pub(crate) fn optional_string_map(
        &mut self,
        key: &'static str,
    ) -> Result<alloc::collections::BTreeMap<String, String>, MessageError> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(Default::default()),
            Some(Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    _ => Err(MessageError::WrongType(key, "an object of strings")),
                })
                .collect(),
            Some(_) => Err(MessageError::WrongType(key, "an object of strings")),
        }
    }

    /// A required nested object.
    pub(crate) fn required_object(&mut self, key: &'static str) -> Result<Object, MessageError> {
        match self.take(key) {
            Some(v @ Value::Object(_)) => Object::from_value(v),
            None | Some(Value::Null) => Err(MessageError::Missing(key)),
            Some(_) => Err(MessageError::WrongType(key, "an object")),
        }
    }
}
