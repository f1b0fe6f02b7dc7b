//! Structural JSON diff: walks both documents together and reports each
//! difference at its JSON pointer, classified as missing, extra, type, value
//! or array length. Numbers compare by value (`1` equals `1.0`).

use serde_json::Value;

use crate::pointer::push;
use crate::{Difference, Kind};

/// Appends every difference between `primary` and `shadow` below `path`.
pub fn diff(path: &str, primary: &Value, shadow: &Value, out: &mut Vec<Difference>) {
    match (primary, shadow) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, va) in a {
                let p = push(path, key);
                match b.get(key) {
                    Some(vb) => diff(&p, va, vb, out),
                    None => out.push(difference(p, Kind::Missing, Some(va), None)),
                }
            }
            for (key, vb) in b {
                if !a.contains_key(key) {
                    out.push(difference(push(path, key), Kind::Extra, None, Some(vb)));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                out.push(Difference {
                    path: path.to_owned(),
                    kind: Kind::ArrayLength,
                    primary: Some(a.len().to_string()),
                    shadow: Some(b.len().to_string()),
                });
            }
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff(&push(path, &i.to_string()), va, vb, out);
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let equal = a == b || matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y);
            if !equal {
                out.push(difference(
                    path.to_owned(),
                    Kind::Value,
                    Some(primary),
                    Some(shadow),
                ));
            }
        }
        (a, b) if type_of(a) != type_of(b) => {
            out.push(difference(path.to_owned(), Kind::Type, Some(a), Some(b)));
        }
        (a, b) if a != b => out.push(difference(path.to_owned(), Kind::Value, Some(a), Some(b))),
        _ => {}
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn difference(
    path: String,
    kind: Kind,
    primary: Option<&Value>,
    shadow: Option<&Value>,
) -> Difference {
    Difference {
        path,
        kind,
        primary: primary.map(Value::to_string),
        shadow: shadow.map(Value::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kinds(a: Value, b: Value) -> Vec<(String, Kind)> {
        let mut out = Vec::new();
        diff("", &a, &b, &mut out);
        out.into_iter().map(|d| (d.path, d.kind)).collect()
    }

    #[test]
    fn equal_documents_have_no_differences() {
        assert!(kinds(json!({"a":[1,{"b":null}]}), json!({"a":[1,{"b":null}]})).is_empty());
    }

    #[test]
    fn key_order_does_not_matter() {
        assert!(kinds(json!({"a":1,"b":2}), json!({"b":2,"a":1})).is_empty());
    }

    #[test]
    fn a_field_missing_in_the_shadow_is_missing() {
        assert_eq!(
            kinds(json!({"a":1,"b":2}), json!({"a":1})),
            vec![("/b".into(), Kind::Missing)]
        );
    }

    #[test]
    fn a_field_only_in_the_shadow_is_extra() {
        assert_eq!(
            kinds(json!({}), json!({"x":true})),
            vec![("/x".into(), Kind::Extra)]
        );
    }

    #[test]
    fn different_types_at_a_path_are_a_type_difference() {
        assert_eq!(
            kinds(json!({"a":"1"}), json!({"a":1})),
            vec![("/a".into(), Kind::Type)]
        );
    }

    #[test]
    fn different_scalars_are_a_value_difference() {
        assert_eq!(
            kinds(json!({"a":{"b":"x"}}), json!({"a":{"b":"y"}})),
            vec![("/a/b".into(), Kind::Value)]
        );
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(kinds(json!(1), json!(1.0)).is_empty());
        assert_eq!(kinds(json!(1), json!(2)), vec![("".into(), Kind::Value)]);
    }

    #[test]
    fn arrays_of_different_length_report_the_length_and_compare_the_common_prefix() {
        assert_eq!(
            kinds(json!([1, 2, 3]), json!([1, 5])),
            vec![("".into(), Kind::ArrayLength), ("/1".into(), Kind::Value)]
        );
    }

    #[test]
    fn values_are_rendered_as_json() {
        let mut out = Vec::new();
        diff("", &json!({"a":"x"}), &json!({"a":"y"}), &mut out);
        assert_eq!(out[0].primary.as_deref(), Some("\"x\""));
        assert_eq!(out[0].shadow.as_deref(), Some("\"y\""));
    }
}
