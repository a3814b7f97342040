//! Exact conversion between Rhai values and JSON.
//!
//! | Rhai | JSON |
//! |---|---|
//! | `()` | `null` |
//! | `bool` | boolean |
//! | `INT` (i64) | integer |
//! | `FLOAT` (f64) | number with a fraction or exponent (`1.0` stays `1.0`) |
//! | string, char | string |
//! | array | array |
//! | object map | object (keys in order) |
//! | blob, and the `u8` values iterating a blob yields | array of byte values, byte value |
//!
//! JSON integers that do not fit an `i64` become `FLOAT`. Non-finite floats and values
//! with no JSON form (function pointers, timestamps, custom types) are refused.

use rhai::{Array, Blob, Dynamic, FLOAT, INT, Map};
use serde_json::{Number, Value};

/// The JSON form of a Rhai value, or why it has none.
pub fn to_json(value: &Dynamic) -> Result<Value, String> {
    if value.is_shared() {
        return to_json(&value.flatten_clone());
    }
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::Number(i.into()));
    }
    if let Some(byte) = value.read_lock::<u8>() {
        // What iterating over a blob yields.
        return Ok(Value::Number((*byte).into()));
    }
    if let Ok(f) = value.as_float() {
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("the number {f} has no JSON form"));
    }
    if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        return Ok(Value::String(s.to_string()));
    }
    if let Ok(c) = value.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if let Some(array) = value.read_lock::<Array>() {
        return array
            .iter()
            .map(to_json)
            .collect::<Result<_, _>>()
            .map(Value::Array);
    }
    if let Some(map) = value.read_lock::<Map>() {
        let mut object = serde_json::Map::with_capacity(map.len());
        for (k, v) in map.iter() {
            object.insert(k.to_string(), to_json(v)?);
        }
        return Ok(Value::Object(object));
    }
    if let Some(blob) = value.read_lock::<Blob>() {
        return Ok(Value::Array(
            blob.iter().map(|b| Value::Number((*b).into())).collect(),
        ));
    }
    Err(format!(
        "a value of type `{}` has no JSON form",
        value.type_name()
    ))
}

/// The JSON text of a Rhai value: the text of [`to_json`]'s value, written straight from
/// the Rhai value (no intermediate `Value`, no `fmt` machinery, which is slow in wasm).
pub fn to_json_text(value: &Dynamic) -> Result<String, String> {
    serde_json::to_string(&Json(value)).map_err(|e| e.to_string())
}

/// Serialises a Rhai value with the rules of [`to_json`].
struct Json<'a>(&'a Dynamic);

impl serde::Serialize for Json<'_> {
    fn serialize<S: serde::Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let value = self.0;
        if value.is_shared() {
            return Json(&value.flatten_clone()).serialize(out);
        }
        if value.is_unit() {
            return out.serialize_unit();
        }
        if let Ok(b) = value.as_bool() {
            return out.serialize_bool(b);
        }
        if let Ok(i) = value.as_int() {
            return out.serialize_i64(i);
        }
        if let Some(byte) = value.read_lock::<u8>() {
            return out.serialize_u8(*byte);
        }
        if let Ok(f) = value.as_float() {
            if !f.is_finite() {
                return Err(S::Error::custom(format!("the number {f} has no JSON form")));
            }
            return out.serialize_f64(f);
        }
        if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
            return out.serialize_str(&s);
        }
        if let Ok(c) = value.as_char() {
            return out.serialize_char(c);
        }
        if let Some(array) = value.read_lock::<Array>() {
            return out.collect_seq(array.iter().map(Json));
        }
        if let Some(map) = value.read_lock::<Map>() {
            let mut object = out.serialize_map(Some(map.len()))?;
            for (k, v) in map.iter() {
                object.serialize_entry(k.as_str(), &Json(v))?;
            }
            return object.end();
        }
        if let Some(blob) = value.read_lock::<Blob>() {
            return out.collect_seq(blob.iter());
        }
        Err(S::Error::custom(format!(
            "a value of type `{}` has no JSON form",
            value.type_name()
        )))
    }
}

/// The Rhai value of a JSON value.
pub fn from_json(value: Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i as INT),
            None => Dynamic::from_float(n.as_f64().unwrap_or(FLOAT::NAN)),
        },
        Value::String(s) => Dynamic::from(s),
        Value::Array(items) => {
            Dynamic::from_array(items.into_iter().map(from_json).collect::<Array>())
        }
        Value::Object(object) => Dynamic::from_map(
            object
                .into_iter()
                .map(|(k, v)| (k.into(), from_json(v)))
                .collect::<Map>(),
        ),
    }
}

/// Parses JSON text into a Rhai value.
pub fn from_json_text(text: &str) -> Result<Dynamic, String> {
    serde_json::from_str(text)
        .map(from_json)
        .map_err(|e| format!("invalid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        to_json_text(&from_json_text(text).unwrap()).unwrap()
    }

    #[test]
    fn json_types_survive_a_round_trip_through_rhai() {
        assert_eq!(round_trip("1"), "1");
        assert_eq!(round_trip("1.0"), "1.0");
        assert_eq!(round_trip("-2.5e3"), "-2500.0");
        assert_eq!(round_trip("\"7\""), "\"7\"");
        assert_eq!(round_trip("null"), "null");
        assert_eq!(round_trip("[true,false,null]"), "[true,false,null]");
        assert_eq!(
            round_trip(r#"{"b":{"c":[1,"x"]},"a":2}"#),
            r#"{"a":2,"b":{"c":[1,"x"]}}"#
        );
    }

    #[test]
    fn integers_beyond_i64_become_floats() {
        let value = from_json_text("18446744073709551615").unwrap();
        assert!(value.is_float());
    }

    #[test]
    fn values_without_json_form_are_refused() {
        assert!(to_json(&Dynamic::from_float(f64::INFINITY)).is_err());
        assert!(to_json(&Dynamic::from(rhai::FnPtr::new("f").unwrap())).is_err());
    }

    #[test]
    fn the_json_text_is_the_text_of_the_json_value() {
        let mut map = Map::new();
        map.insert("z".into(), Dynamic::from_float(0.1));
        map.insert("a \"q\"".into(), Dynamic::from("é\n\u{1}".to_string()));
        map.insert("blob".into(), Dynamic::from_blob(vec![0, 7, 255]));
        map.insert("char".into(), Dynamic::from_char('→'));
        map.insert(
            "list".into(),
            Dynamic::from_array(vec![
                Dynamic::UNIT,
                Dynamic::from_bool(true),
                Dynamic::from_int(-3),
                Dynamic::from_float(1e300),
                Dynamic::from_float(-0.0),
                Dynamic::from(7_u8),
            ]),
        );
        let value = Dynamic::from_map(map);
        let expected = to_json(&value).unwrap().to_string();
        assert_eq!(to_json_text(&value).unwrap(), expected);

        for refused in [
            Dynamic::from_float(f64::NAN),
            Dynamic::from_array(vec![Dynamic::from(rhai::FnPtr::new("f").unwrap())]),
        ] {
            assert_eq!(
                to_json_text(&refused).unwrap_err(),
                to_json(&refused).unwrap_err()
            );
        }
    }
}
