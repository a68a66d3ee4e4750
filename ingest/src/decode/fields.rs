//! The top-level fields of one JSON event, read in one pass without building a `serde_json::Value`.
//!
//! Decoding is the ingest's per-message cost. A `Value` allocates a map, a key for every field and a
//! string for every string value, and the decoder then copied the strings out again. Here the
//! payload is walked once: keys are compared in place, the fields the schemas know are kept as
//! [`Scalar`]s that borrow their strings from the payload (escaped strings are the only copies),
//! and everything else (unknown fields, nested arrays and objects) is skipped without allocating.
//! The semantics are `Value`'s: the last of duplicate keys wins, `null` counts as absent, numbers
//! keep their integer/float distinction, and a malformed payload is an error of that payload alone.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Every field the event schemas define; a payload's other fields are skipped.
const KNOWN: [&str; 15] = [
    "event_id",
    "ts",
    "user_id",
    "synthetic",
    "experiment",
    "variant",
    "status",
    "latency_ms",
    "service",
    "endpoint",
    "region",
    "mode",
    "shadow_match",
    "kind",
    "value",
];

/// One field's value, as far as validation needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A negative integer.
    I64(i64),
    /// A non-negative integer.
    U64(u64),
    /// A number with a fraction or exponent.
    F64(f64),
    /// A string, borrowed from the payload unless it had escapes.
    Str(Cow<'a, str>),
    /// An array (contents skipped).
    Array,
    /// An object (contents skipped).
    Object,
}

impl Scalar<'_> {
    /// The JSON type's name, for rejection details.
    pub fn json_type(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "boolean",
            Scalar::I64(_) | Scalar::U64(_) | Scalar::F64(_) => "number",
            Scalar::Str(_) => "string",
            Scalar::Array => "array",
            Scalar::Object => "object",
        }
    }

    /// As `Value::as_i64`: integers that fit, never floats.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Scalar::I64(n) => Some(n),
            Scalar::U64(n) => i64::try_from(n).ok(),
            _ => None,
        }
    }

    /// As `Value::as_f64`: any number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Scalar::I64(n) => Some(n as f64),
            Scalar::U64(n) => Some(n as f64),
            Scalar::F64(x) => Some(x),
            _ => None,
        }
    }

    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Scalar::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// Whether it is a number.
    pub fn is_number(&self) -> bool {
        matches!(self, Scalar::I64(_) | Scalar::U64(_) | Scalar::F64(_))
    }
}

impl fmt::Display for Scalar<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Null => f.write_str("null"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::I64(n) => write!(f, "{n}"),
            Scalar::U64(n) => write!(f, "{n}"),
            Scalar::F64(x) => write!(f, "{x}"),
            Scalar::Str(s) => write!(f, "{s:?}"),
            Scalar::Array => f.write_str("[…]"),
            Scalar::Object => f.write_str("{…}"),
        }
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(if v >= 0 {
            Scalar::U64(v as u64)
        } else {
            Scalar::I64(v)
        })
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// The value of an exposure's `weights`: an object kept whole, entry by entry (its values as
/// [`Scalar`]s, nested values skipped), or any other JSON value as itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Allocation<'a> {
    Object(Vec<(Cow<'a, str>, Scalar<'a>)>),
    Other(Scalar<'a>),
}

/// The name of the field read as an [`Allocation`].
pub const WEIGHTS: &str = "weights";

struct AllocationVisitor;

impl<'de> Visitor<'de> for AllocationVisitor {
    type Value = Allocation<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Allocation::Other(Scalar::Null))
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Allocation::Other(Scalar::Null))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Allocation::Other(Scalar::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Allocation::Other(if v >= 0 {
            Scalar::U64(v as u64)
        } else {
            Scalar::I64(v)
        }))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Allocation::Other(Scalar::U64(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Allocation::Other(Scalar::F64(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Allocation::Other(Scalar::Str(Cow::Owned(v.to_owned()))))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        ScalarVisitor.visit_seq(seq).map(Allocation::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value = map.next_value::<Scalar<'de>>()?;
            // The last of duplicate keys wins, as everywhere.
            entries.retain(|(k, _): &(Cow<'de, str>, Scalar<'de>)| *k != key);
            entries.push((key, value));
        }
        Ok(Allocation::Object(entries))
    }
}

impl<'de> de::Deserialize<'de> for Allocation<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AllocationVisitor)
    }
}

/// A key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// A payload's top level: the known fields of an object, or the JSON type it is instead.
#[derive(Debug)]
pub enum TopLevel<'a> {
    /// An object.
    Object(Fields<'a>),
    /// Not an object: its JSON type.
    Other(&'static str),
}

/// The known fields of an event object, by name.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    values: [Option<Scalar<'a>>; KNOWN.len()],
    /// `weights` (exposures), kept whole.
    weights: Option<Allocation<'a>>,
}

impl<'a> Fields<'a> {
    /// A field's value, `null` included.
    pub fn get(&self, name: &str) -> Option<&Scalar<'a>> {
        let i = KNOWN.iter().position(|k| *k == name)?;
        self.values[i].as_ref()
    }

    /// `weights`, `null` included.
    pub fn weights(&self) -> Option<&Allocation<'a>> {
        self.weights.as_ref()
    }
}

impl<'de> de::Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TopVisitor;
        impl<'de> Visitor<'de> for TopVisitor {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Fields::default();
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    if key == WEIGHTS {
                        fields.weights = Some(map.next_value::<Allocation<'de>>()?);
                        continue;
                    }
                    match KNOWN.iter().position(|k| *k == key) {
                        Some(i) => fields.values[i] = Some(map.next_value::<Scalar<'de>>()?),
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(TopLevel::Object(fields))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(TopLevel::Other("null"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(TopLevel::Other("boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(TopLevel::Other("number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(TopLevel::Other("number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(TopLevel::Other("number"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(TopLevel::Other("string"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TopLevel::Other("array"))
            }
        }
        d.deserialize_any(TopVisitor)
    }
}

/// Parses a payload's top level.
pub fn parse(text: &str) -> serde_json::Result<TopLevel<'_>> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> Fields<'_> {
        match parse(text).unwrap() {
            TopLevel::Object(f) => f,
            TopLevel::Other(t) => panic!("not an object: {t}"),
        }
    }

    #[test]
    fn reads_fields_as_value_would() {
        let text = r#"{"status": 200, "latency_ms": 1.5, "ts": -3, "user_id": "u\"1", "event_id": "e",
                      "extra": {"deep": [1, {"x": null}]}, "mode": null, "synthetic": true}"#;
        let f = object(text);
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(f.get("status").unwrap().as_i64(), v["status"].as_i64());
        assert_eq!(
            f.get("latency_ms").unwrap().as_f64(),
            v["latency_ms"].as_f64()
        );
        assert_eq!(
            f.get("latency_ms").unwrap().as_i64(),
            v["latency_ms"].as_i64()
        );
        assert_eq!(f.get("ts").unwrap().as_i64(), Some(-3));
        assert_eq!(f.get("user_id").unwrap().as_str(), Some("u\"1"));
        assert!(matches!(
            f.get("event_id"),
            Some(Scalar::Str(Cow::Borrowed("e")))
        ));
        assert_eq!(f.get("mode"), Some(&Scalar::Null));
        assert_eq!(f.get("synthetic").unwrap().as_bool(), Some(true));
        assert_eq!(f.get("region"), None);
    }

    #[test]
    fn the_last_duplicate_wins_and_big_numbers_stay_unsigned() {
        let f = object(r#"{"status": 1, "status": 18446744073709551615}"#);
        assert_eq!(f.get("status"), Some(&Scalar::U64(u64::MAX)));
        assert_eq!(f.get("status").unwrap().as_i64(), None);
        assert!(f.get("status").unwrap().as_f64().is_some());
    }

    #[test]
    fn names_what_a_non_object_is_and_rejects_bad_json() {
        for (text, kind) in [
            ("[1,2]", "array"),
            ("3", "number"),
            ("\"x\"", "string"),
            ("null", "null"),
            ("true", "boolean"),
        ] {
            assert!(
                matches!(parse(text).unwrap(), TopLevel::Other(k) if k == kind),
                "{text}"
            );
        }
        for bad in ["{\"a\": ", "{} x", "{\"a\" 1}", "{\"status\": [1,}"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
