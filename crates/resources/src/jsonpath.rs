use serde_json::Value;

/// The value at a dotted path (`spec.nodeName`) rendered as field selectors compare it:
/// strings as-is, booleans and numbers as text, missing as the empty string.
pub fn field_value(obj: &Value, dotted: &str) -> String {
    let mut cur = obj;
    for part in dotted.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
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
