//! Typed request bodies out of JSON, keeping *why* a field was refused.
//!
//! The request structs in [`super::requests`] derive `Deserialize`, and
//! their refusals must keep the codes clients match on (`missing_field`,
//! `wrong_type`, `invalid_value`, …) and name the field. serde_json's own
//! error is prose with no field ("invalid type: integer `5`, expected a
//! string"), and matching on prose is what STYLE §6 rules out. So bodies
//! are decoded through [`ValueDeserializer`], a small `serde::Deserializer`
//! over a parsed [`Value`] whose error, [`Refusal`], records the *kind*
//! serde reports (`missing_field`, `invalid_type`, `invalid_value`) and the
//! dotted path of the field it happened in. `requests` then turns a
//! refusal into the `AppError` each field has always answered.
//!
//! A JSON `null` is told apart from other wrong types ([`Fault::Null`]):
//! most fields treat it as absent, as the hand parser did.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// What serde found wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Required and absent.
    Missing,
    /// `null` where a value was required.
    Null,
    /// The wrong JSON type.
    WrongType,
    /// The right type, out of range (`300` for a `u8`).
    Invalid,
    /// A field the struct denies.
    Unknown,
    /// Anything else serde says (e.g. no untagged variant matched).
    Other(String),
}

/// A refused field: its dotted path (empty for the body itself) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub field: String,
    pub fault: Fault,
}

impl Refusal {
    fn new(field: &str, fault: Fault) -> Self {
        Self {
            field: field.into(),
            fault,
        }
    }

    /// The same refusal seen from the object that holds `key`.
    fn under(mut self, key: &str) -> Self {
        self.field = if self.field.is_empty() {
            key.to_string()
        } else {
            format!("{key}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.field, self.fault)
    }
}

impl std::error::Error for Refusal {}

impl de::Error for Refusal {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::new("", Fault::Other(msg.to_string()))
    }
    fn invalid_type(unexpected: de::Unexpected, _: &dyn de::Expected) -> Self {
        let fault = match unexpected {
            de::Unexpected::Unit => Fault::Null,
            _ => Fault::WrongType,
        };
        Self::new("", fault)
    }
    fn invalid_value(_: de::Unexpected, _: &dyn de::Expected) -> Self {
        Self::new("", Fault::Invalid)
    }
    fn invalid_length(_: usize, _: &dyn de::Expected) -> Self {
        Self::new("", Fault::WrongType)
    }
    fn unknown_variant(_: &str, _: &'static [&'static str]) -> Self {
        Self::new("", Fault::Invalid)
    }
    fn unknown_field(field: &str, _: &'static [&'static str]) -> Self {
        Self::new(field, Fault::Unknown)
    }
    fn missing_field(field: &'static str) -> Self {
        Self::new(field, Fault::Missing)
    }
    fn duplicate_field(field: &'static str) -> Self {
        Self::new(field, Fault::Invalid)
    }
}

/// Decodes `T` from a JSON object.
pub(crate) fn decode<T: de::DeserializeOwned>(obj: Map<String, Value>) -> Result<T, Refusal> {
    T::deserialize(ValueDeserializer(Value::Object(obj)))
}

/// A `serde::Deserializer` over a parsed JSON value with [`Refusal`] errors.
pub(crate) struct ValueDeserializer(pub Value);

impl<'de> de::Deserializer<'de> for ValueDeserializer {
    type Error = Refusal;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => visitor.visit_seq(Items(items.into_iter())),
            Value::Object(obj) => visitor.visit_map(Entries::new(obj.into_iter().collect())),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            v => visitor.visit_some(ValueDeserializer(v)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Refusal> {
        visitor.visit_newtype_struct(self)
    }

    /// A struct's fields are visited in declaration order, whatever order
    /// the object holds them in, so when a body has several wrong fields
    /// the one refused is the first the struct declares.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refusal> {
        let Value::Object(obj) = self.0 else {
            return self.deserialize_any(visitor);
        };
        let mut entries: Vec<(String, Value)> = obj.into_iter().collect();
        entries.sort_by_key(|(k, _)| fields.iter().position(|f| f == k).unwrap_or(usize::MAX));
        visitor.visit_map(Entries::new(entries))
    }

    /// `null` is no object (serde_json's `Map` would take it as an empty one).
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        match self.0 {
            Value::Null => Err(Refusal::new("", Fault::Null)),
            v => ValueDeserializer(v).deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct enum identifier
    }
}

/// The elements of an array. A `null` element is a wrong type, never an
/// absent field.
struct Items(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Items {
    type Error = Refusal;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Refusal> {
        let Some(v) = self.0.next() else {
            return Ok(None);
        };
        seed.deserialize(ValueDeserializer(v))
            .map(Some)
            .map_err(|mut r| {
                if r.fault == Fault::Null {
                    r.fault = Fault::WrongType;
                }
                r
            })
    }
}

/// The entries of an object; a refused value is filed under its key.
struct Entries {
    entries: std::vec::IntoIter<(String, Value)>,
    key: String,
    value: Option<Value>,
}

impl Entries {
    fn new(entries: Vec<(String, Value)>) -> Self {
        Self {
            entries: entries.into_iter(),
            key: String::new(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Entries {
    type Error = Refusal;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Refusal> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.key.clone_from(&key);
        self.value = Some(value);
        let key: de::value::StringDeserializer<Refusal> = key.into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Refusal> {
        let value = self.value.take().unwrap_or(Value::Null);
        let null = value.is_null();
        seed.deserialize(ValueDeserializer(value)).map_err(|mut r| {
            // Whatever a type says about a null it refuses (an untagged
            // enum only says no variant matched), it is a null.
            if null && r.field.is_empty() {
                r.fault = Fault::Null;
            }
            r.under(&self.key)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Body {
        by: String,
        rating: Option<u8>,
        tags: Option<Vec<String>>,
        fields: Option<Map<String, Value>>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        name: String,
    }

    fn refusal(v: Value) -> Refusal {
        decode::<Body>(v.as_object().unwrap().clone()).unwrap_err()
    }

    #[test]
    fn values_decode_as_serde_json_would() {
        let v = json!({"by": "a", "rating": 5, "tags": ["x"], "fields": {"n": 1.5, "l": [true, null]},
                       "inner": {"name": "n"}, "extra": {"ignored": [1]}});
        let b: Body = decode(v.as_object().unwrap().clone()).unwrap();
        assert_eq!(b, serde_json::from_value::<Body>(v).unwrap());
        let b: Body = decode(
            json!({"by": "a", "rating": null})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap();
        assert_eq!(b.rating, None);
    }

    #[test]
    fn refusals_name_the_field_and_the_kind() {
        let at = |field: &str, fault| Refusal::new(field, fault);
        assert_eq!(refusal(json!({})), at("by", Fault::Missing));
        assert_eq!(refusal(json!({"by": null})), at("by", Fault::Null));
        assert_eq!(refusal(json!({"by": 5})), at("by", Fault::WrongType));
        assert_eq!(
            refusal(json!({"by": "a", "rating": 300})),
            at("rating", Fault::Invalid)
        );
        assert_eq!(
            refusal(json!({"by": "a", "rating": -1})),
            at("rating", Fault::Invalid)
        );
        assert_eq!(
            refusal(json!({"by": "a", "rating": "5"})),
            at("rating", Fault::WrongType)
        );
        assert_eq!(
            refusal(json!({"by": "a", "tags": ["x", null]})),
            at("tags", Fault::WrongType)
        );
        assert_eq!(
            refusal(json!({"by": "a", "fields": []})),
            at("fields", Fault::WrongType)
        );
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Required {
            fields: Map<String, Value>,
        }
        assert_eq!(
            decode::<Required>(json!({"fields": null}).as_object().unwrap().clone()).unwrap_err(),
            at("fields", Fault::Null),
            "a null object is no empty object"
        );
        assert_eq!(
            refusal(json!({"by": "a", "inner": {"name": 1}})),
            at("inner.name", Fault::WrongType)
        );
        assert_eq!(
            refusal(json!({"by": "a", "inner": {}})),
            at("inner.name", Fault::Missing)
        );
    }

    #[test]
    fn the_first_declared_field_is_refused_first() {
        // `rating` is declared before `fields`, which sorts first by name.
        let v = json!({"fields": [], "rating": "x", "by": "a"});
        assert_eq!(refusal(v), Refusal::new("rating", Fault::WrongType));
    }
}
