use serde_json::Value;

/// The value at a dotted path (`spec.nodeName`) rendered as field selectors compare it:
/// strings as-is, booleans and numbers as text, missing as the empty string.
pub fn field_value(obj: &Value, dotted: &str) -> String {
    field_value_opt(obj, dotted).unwrap_or_default()
}

/// The value at a dotted path rendered as text, or `None` when absent or null.
pub(crate) fn field_value_opt(obj: &Value, dotted: &str) -> Option<String> {
    let mut cur = obj;
    for part in dotted.split('.') {
        cur = cur.get(part)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A string at a JSON pointer, or "".
pub(crate) fn s<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// An integer at a JSON pointer, or 0.
pub(crate) fn i(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}
