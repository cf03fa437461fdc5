//! Upstream's `field.Error` constructors (apimachinery `util/validation/field/errors.go`) and
//! the Go renderings of bad values that its messages embed (`%q` for strings, `%v` for
//! numbers, `%#v` for maps, selectors and structs).

use serde_json::{Map, Value};

use super::FieldError;

impl FieldError {
    fn new(reason: &'static str, field: impl Into<String>, message: String) -> FieldError {
        FieldError {
            reason,
            field: field.into(),
            message,
        }
    }

    /// `Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: &str) -> FieldError {
        FieldError::new(
            "FieldValueRequired",
            field,
            with_detail("Required value", detail),
        )
    }

    /// `Invalid value: <value>[: detail]`; `value` is already rendered (see [`q`]).
    pub fn invalid(field: impl Into<String>, value: &str, detail: &str) -> FieldError {
        FieldError::new(
            "FieldValueInvalid",
            field,
            with_detail(&format!("Invalid value: {value}"), detail),
        )
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &str, valid: &[&str]) -> FieldError {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| q(v)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        FieldError::new(
            "FieldValueNotSupported",
            field,
            with_detail(&format!("Unsupported value: {value}"), &detail),
        )
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: &str) -> FieldError {
        FieldError::new(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {value}"),
        )
    }

    /// `Not found: <value>`.
    pub fn not_found(field: impl Into<String>, value: &str) -> FieldError {
        FieldError::new("FieldValueNotFound", field, format!("Not found: {value}"))
    }

    /// `Forbidden[: detail]`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> FieldError {
        FieldError::new(
            "FieldValueForbidden",
            field,
            with_detail("Forbidden", detail),
        )
    }

    /// `Too long: must have at most <max> bytes`.
    pub fn too_long(field: impl Into<String>, max: usize) -> FieldError {
        FieldError::new(
            "FieldValueTooLong",
            field,
            format!("Too long: must have at most {max} bytes"),
        )
    }
}

fn with_detail(head: &str, detail: &str) -> String {
    if detail.is_empty() {
        head.to_string()
    } else {
        format!("{head}: {detail}")
    }
}

/// `apimachineryvalidation.FieldImmutableErrorMsg`.
pub const IMMUTABLE: &str = "field is immutable";
/// `apimachineryvalidation.IsNegativeErrorMsg`.
pub const NEGATIVE: &str = "must be greater than or equal to 0";

/// Go's `strconv.Quote` (what `%q` prints).
pub fn q(s: &str) -> String {
    reddwarf_schema::go_quote(s)
}

/// A JSON scalar as upstream prints it after decoding into its Go field: strings quoted,
/// numbers and booleans bare, anything else as compact JSON.
pub fn go_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => q(s),
        Value::Null => "null".into(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// `%#v` of a `map[string]string` (keys sorted, as Go's fmt does).
pub fn go_string_map(m: Option<&Map<String, Value>>) -> String {
    match m {
        None => "map[string]string(nil)".into(),
        Some(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", q(k), q(m[*k].as_str().unwrap_or(""))))
                .collect();
            format!("map[string]string{{{}}}", parts.join(", "))
        }
    }
}

/// `%#v` of a `[]string`.
pub fn go_string_slice(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        None => "[]string(nil)".into(),
        Some(a) => {
            let parts: Vec<String> = a.iter().map(|s| q(s.as_str().unwrap_or(""))).collect();
            format!("[]string{{{}}}", parts.join(", "))
        }
    }
}

/// `%#v` of a `metav1.LabelSelector` (what `field is immutable` and selector errors show).
pub fn go_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return "null".into();
    };
    let labels = go_string_map(sel.get("matchLabels").and_then(Value::as_object));
    let exprs = match sel.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let parts: Vec<String> = list
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        q(str_of(e, "key")),
                        q(str_of(e, "operator")),
                        go_string_slice(e.get("values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", parts.join(", "))
        }
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

/// `%#v` of an `intstr.IntOrString`.
pub fn go_int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => {
            format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}", q(s))
        }
        Some(Value::Number(n)) => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            n.as_i64().unwrap_or(0)
        ),
        _ => "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}".into(),
    }
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_follow_upstream() {
        let cases = [
            (
                FieldError::required("spec.containers", ""),
                "Required value",
            ),
            (
                FieldError::required("a", "must be set"),
                "Required value: must be set",
            ),
            (
                FieldError::invalid("a", &q("x"), "bad"),
                "Invalid value: \"x\": bad",
            ),
            (
                FieldError::not_supported("a", &q("X"), &["TCP", "UDP"]),
                "Unsupported value: \"X\": supported values: \"TCP\", \"UDP\"",
            ),
            (
                FieldError::duplicate("a", &q("c")),
                "Duplicate value: \"c\"",
            ),
            (FieldError::not_found("a", &q("v")), "Not found: \"v\""),
            (FieldError::forbidden("a", "no"), "Forbidden: no"),
            (
                FieldError::too_long("data", 1048576),
                "Too long: must have at most 1048576 bytes",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.message, want);
        }
    }

    #[test]
    fn go_renderings() {
        assert_eq!(q("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(
            go_string_map(json!({"b": "2", "a": "1"}).as_object()),
            "map[string]string{\"a\":\"1\", \"b\":\"2\"}"
        );
        assert_eq!(go_string_map(None), "map[string]string(nil)");
        assert_eq!(
            go_label_selector(Some(&json!({"matchLabels": {"app": "b"}}))),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"b\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
        assert_eq!(
            go_label_selector(Some(
                &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]}]})
            )),
            "v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"a\", Operator:\"In\", Values:[]string{\"x\"}}}}"
        );
        assert_eq!(
            go_int_or_string(Some(&json!(0))),
            "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}"
        );
        assert_eq!(
            go_int_or_string(Some(&json!("5%"))),
            "intstr.IntOrString{Type:1, IntVal:0, StrVal:\"5%\"}"
        );
    }
}
