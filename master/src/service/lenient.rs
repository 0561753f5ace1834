//! Deserialisers for the lenient corners of GPT-Load's JSON: integers written as floats (`3.0`,
//! as JavaScript clients send them) and fields where `null` means something else than absent.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An optional integer that may be written as an integral float; `null` is absent.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("expected an integer, got {n}"))),
    }
}

/// Any JSON value, with `null` kept as `Some(Value::Null)` (use with `#[serde(default)]` so that
/// an absent field is `None`).
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::{Value, json};

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "super::opt_i64")]
        n: Option<i64>,
        #[serde(default, deserialize_with = "super::present")]
        v: Option<Value>,
    }

    fn t(v: Value) -> Result<T, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn integers_may_be_integral_floats() {
        assert_eq!(t(json!({"n": 3})).unwrap().n, Some(3));
        assert_eq!(t(json!({"n": 3.0})).unwrap().n, Some(3));
        assert_eq!(t(json!({"n": null})).unwrap().n, None);
        assert_eq!(t(json!({})).unwrap().n, None);
        assert!(t(json!({"n": 3.5})).is_err());
        assert!(t(json!({"n": "3"})).is_err());
    }

    #[test]
    fn null_is_not_absent() {
        assert_eq!(t(json!({"v": null})).unwrap().v, Some(Value::Null));
        assert_eq!(t(json!({})).unwrap().v, None);
        assert_eq!(t(json!({"v": [1]})).unwrap().v, Some(json!([1])));
    }
}
