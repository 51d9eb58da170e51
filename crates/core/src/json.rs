//! Reading JSON of a known shape through one path: WeChat's v3 bodies (the notify
//! envelope, its decrypted transaction, the JSAPI answers, error answers) and the order
//! rows storage hands over. The text goes into a [`Value`] by one visitor, then each field
//! is read by name ([`Object`]). A derived `Deserialize` per struct would put a visitor
//! per shape into every wasm that reads them (several KB each in the Worker's); this is
//! one, whatever the shape.
//!
//! The rules are serde's derive rules, kept: an object only; unknown fields allowed (WeChat
//! adds fields); a duplicate field refused (it is not clear which one to believe); a
//! required field missing, or any field of the wrong type (`null` included, unless the
//! field is optional), is an error naming it; amounts are unsigned integers (a negative,
//! fractional or string amount is refused).

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// A JSON value whose objects had no duplicate keys.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if fields.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
            }
            fields.insert(key, v);
        }
        Ok(Value::Object(fields))
    }
}

/// The JSON object `body` is, or why not (serde_json's message, or "not an object").
pub(crate) fn object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Strict>(body) {
        Ok(Strict(Value::Object(m))) => Ok(m),
        Ok(_) => Err("expected a JSON object".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// The JSON array `body` is, or why not.
pub(crate) fn array(body: &[u8]) -> Result<Vec<Value>, String> {
    match serde_json::from_slice::<Strict>(body) {
        Ok(Strict(Value::Array(items))) => Ok(items),
        Ok(_) => Err("expected a JSON array".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// A JSON object's documented fields, read by name. `at` is the object's path for
/// messages (`""` at the top, `resource.` inside).
#[derive(Clone, Copy)]
pub(crate) struct Object<'a> {
    fields: &'a Map<String, Value>,
    at: &'a str,
}

fn wrong(at: &str, name: &str, expected: &str) -> String {
    format!("invalid type at `{at}{name}`: expected {expected}")
}

impl<'a> Object<'a> {
    pub(crate) fn new(fields: &'a Map<String, Value>, at: &'a str) -> Object<'a> {
        Object { fields, at }
    }

    /// The field when present (and not `null` if `null_is_absent`).
    fn get(&self, name: &str, null_is_absent: bool) -> Option<&'a Value> {
        self.fields
            .get(name)
            .filter(|v| !(null_is_absent && v.is_null()))
    }

    fn missing(&self, name: &str) -> String {
        format!("missing field `{}{name}`", self.at)
    }

    /// A string that must be there.
    pub(crate) fn string(&self, name: &str) -> Result<String, String> {
        match self.get(name, false) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(wrong(self.at, name, "a string")),
            None => Err(self.missing(name)),
        }
    }

    /// A string that may be left out (then empty); `null` is not a string.
    pub(crate) fn string_or_empty(&self, name: &str) -> Result<String, String> {
        match self.get(name, false) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(wrong(self.at, name, "a string")),
            None => Ok(String::new()),
        }
    }

    /// A string that may be left out or `null`.
    pub(crate) fn opt_string(&self, name: &str) -> Result<Option<String>, String> {
        match self.get(name, true) {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(wrong(self.at, name, "a string")),
            None => Ok(None),
        }
    }

    /// An unsigned integer that may be left out or `null`.
    pub(crate) fn opt_u64(&self, name: &str) -> Result<Option<u64>, String> {
        match self.get(name, true) {
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| wrong(self.at, name, "an unsigned integer")),
            None => Ok(None),
        }
    }

    /// An unsigned integer that must be there.
    pub(crate) fn u64(&self, name: &str) -> Result<u64, String> {
        match self.get(name, false) {
            Some(_) => self
                .opt_u64(name)?
                .ok_or_else(|| wrong(self.at, name, "an unsigned integer")),
            None => Err(self.missing(name)),
        }
    }

    /// A boolean that may be left out (then false); `null` is not a boolean.
    pub(crate) fn bool_or_false(&self, name: &str) -> Result<bool, String> {
        match self.get(name, false) {
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(wrong(self.at, name, "a boolean")),
            None => Ok(false),
        }
    }

    /// An unsigned integer that may be left out or `null` (then 0), within `u32`.
    pub(crate) fn u32_or_zero(&self, name: &str) -> Result<u32, String> {
        let n = self.opt_u64(name)?.unwrap_or(0);
        u32::try_from(n).map_err(|_| wrong(self.at, name, "an integer within u32"))
    }

    /// A string that must be there and parse as `T`.
    pub(crate) fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<T, String>
    where
        T::Err: fmt::Display,
    {
        self.string(name)?
            .parse()
            .map_err(|e: T::Err| e.to_string())
    }

    /// A string that may be left out or `null`, parsing as `T` when there.
    pub(crate) fn opt_parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String>
    where
        T::Err: fmt::Display,
    {
        self.opt_string(name)?
            .map(|s| s.parse().map_err(|e: T::Err| e.to_string()))
            .transpose()
    }

    /// An object that must be there.
    pub(crate) fn object(&self, name: &str, at: &'a str) -> Result<Object<'a>, String> {
        match self.get(name, false) {
            Some(Value::Object(m)) => Ok(Object::new(m, at)),
            Some(_) => Err(wrong(self.at, name, "an object")),
            None => Err(self.missing(name)),
        }
    }

    /// An object that may be left out or `null`.
    pub(crate) fn opt_object(&self, name: &str, at: &'a str) -> Result<Option<Object<'a>>, String> {
        match self.get(name, true) {
            Some(Value::Object(m)) => Ok(Some(Object::new(m, at))),
            Some(_) => Err(wrong(self.at, name, "an object")),
            None => Ok(None),
        }
    }

    /// Any value, as sent; left out or `null` is `None`.
    pub(crate) fn opt_value(&self, name: &str) -> Option<Value> {
        self.get(name, true).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derive_rules_hold() {
        let m = object(br#"{"s":"x","n":7,"z":null,"o":{"a":"b"},"extra":[1,2.5,true]}"#).unwrap();
        let o = Object::new(&m, "");
        assert_eq!(o.string("s").unwrap(), "x");
        assert_eq!(o.string_or_empty("gone").unwrap(), "");
        assert!(o.string_or_empty("z").is_err(), "null is not a string");
        assert_eq!(o.opt_string("z").unwrap(), None);
        assert_eq!(o.u64("n").unwrap(), 7);
        assert!(o.u64("s").is_err());
        assert!(o.u64("gone").unwrap_err().contains("missing field `gone`"));
        assert_eq!(o.object("o", "o.").unwrap().string("a").unwrap(), "b");
        assert!(
            o.object("o", "o.")
                .unwrap()
                .string("q")
                .unwrap_err()
                .contains("`o.q`")
        );
        assert!(o.opt_object("z", "z.").unwrap().is_none());
        assert!(o.opt_object("s", "s.").is_err());
        for bad in [
            &b"{\"n\":-1}"[..],
            b"{\"n\":1.5}",
            b"{\"n\":\"1\"}",
            b"{\"n\":1e3}",
        ] {
            let m = object(bad).unwrap();
            assert!(
                Object::new(&m, "").u64("n").is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn only_an_object_without_duplicates_is_read() {
        assert!(object(b"[1]").is_err());
        assert!(object(b"\"s\"").is_err());
        assert!(object(b"{").is_err());
        assert!(object(b"{} x").is_err(), "trailing content");
        let dup = object(br#"{"a":{"b":1,"b":2}}"#).unwrap_err();
        assert!(dup.contains("duplicate field `b`"), "{dup}");
        assert!(object(br#"{"a":1,"a":1}"#).is_err());
    }
}
