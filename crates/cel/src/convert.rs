//! JSON values to CEL values, typed by the schema node they sit under, as
//! kube-apiserver presents custom resources to validation rules.

use kube_cel::cel::objects::{Key, Map, OptionalValue, Value};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;

/// CEL keywords that a property name may collide with; upstream exposes such a
/// property as `__name__`.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The name under which a property is visible to CEL, or `None` when the name
/// cannot be expressed (such a property is not accessible from rules).
pub fn escape(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut chars = name.chars();
    let first = chars.next()?;
    let ok_first = first.is_ascii_alphabetic() || matches!(first, '_' | '.' | '-' | '/');
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'));
    if !ok_first || !ok_rest {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("__") {
            out.push_str("__underscores__");
            rest = r;
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

/// The `type` of a schema node ("" when absent).
pub fn schema_type(schema: &Json) -> &str {
    schema.get("type").and_then(Json::as_str).unwrap_or("")
}

fn flag(schema: &Json, name: &str) -> bool {
    schema.get(name).and_then(Json::as_bool).unwrap_or(false)
}

/// Whether a schema node is an object whose fields are declared (a "struct" in
/// upstream's terms), as opposed to a map (`additionalProperties`) or `dyn`.
pub fn is_struct(schema: &Json) -> bool {
    schema
        .get("properties")
        .and_then(Json::as_object)
        .is_some_and(|p| !p.is_empty())
}

/// The schema of the map values of an `additionalProperties` node.
pub fn additional_properties(schema: &Json) -> Option<&Json> {
    schema.get("additionalProperties").filter(|a| a.is_object())
}

/// Whether the node is a resource root: the custom resource itself or an
/// `x-kubernetes-embedded-resource`, where `apiVersion`, `kind` and the
/// `metadata.name`/`metadata.generateName` fields are visible.
pub fn is_embedded(schema: &Json) -> bool {
    flag(schema, "x-kubernetes-embedded-resource")
}

/// Converts `value` (typed by `schema`) into a CEL value. `resource_root`
/// narrows `metadata` to what upstream exposes at a resource root.
pub fn to_value(value: &Json, schema: &Json, resource_root: bool) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => number(n, schema),
        Json::String(s) => string(s, schema),
        Json::Array(items) => {
            let item_schema = schema.get("items").unwrap_or(&Json::Null);
            let embedded = is_embedded(item_schema);
            Value::List(Arc::new(
                items
                    .iter()
                    .map(|v| to_value(v, item_schema, embedded))
                    .collect(),
            ))
        }
        Json::Object(fields) => {
            let mut map = HashMap::with_capacity(fields.len());
            if let Some(values) = additional_properties(schema).filter(|_| !is_struct(schema)) {
                // A map: keys are data, not field names, so they are not escaped.
                let embedded = is_embedded(values);
                for (k, v) in fields {
                    map.insert(
                        Key::String(Arc::new(k.clone())),
                        to_value(v, values, embedded),
                    );
                }
            } else {
                let props = schema.get("properties").and_then(Json::as_object);
                let root = resource_root || is_embedded(schema);
                for (k, v) in fields {
                    let Some(name) = escape(k) else { continue };
                    let prop = props.and_then(|p| p.get(k)).unwrap_or(&Json::Null);
                    let converted = if root && k == "metadata" {
                        // Only these metadata fields are visible at a resource root.
                        let mut meta = HashMap::new();
                        for f in ["name", "generateName"] {
                            if let Some(s) = v.get(f).and_then(Json::as_str) {
                                meta.insert(
                                    Key::String(Arc::new(f.to_owned())),
                                    Value::String(Arc::new(s.to_owned())),
                                );
                            }
                        }
                        Value::Map(Map {
                            map: Arc::new(meta),
                        })
                    } else {
                        to_value(v, prop, is_embedded(prop))
                    };
                    map.insert(Key::String(Arc::new(name)), converted);
                }
            }
            Value::Map(Map { map: Arc::new(map) })
        }
    }
}

fn number(n: &serde_json::Number, schema: &Json) -> Value {
    // `number` fields are doubles even when the JSON spells an integer.
    if schema_type(schema) == "number" {
        return Value::Float(n.as_f64().unwrap_or(f64::NAN));
    }
    if let Some(i) = n.as_i64() {
        Value::Int(i)
    } else if let Some(u) = n.as_u64() {
        Value::UInt(u)
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if schema_type(schema) == "integer" && f.fract() == 0.0 && f.abs() < 9.2e18 {
            Value::Int(f as i64)
        } else {
            Value::Float(f)
        }
    }
}

fn string(s: &str, schema: &Json) -> Value {
    if schema_type(schema) == "string" {
        match schema.get("format").and_then(Json::as_str) {
            Some("date-time") => {
                if let Ok(v) = kube_cel::cel::functions::timestamp(Arc::new(s.to_owned())) {
                    return v;
                }
            }
            Some("duration") => {
                if let Ok(v) = kube_cel::cel::functions::duration(Arc::new(s.to_owned())) {
                    return v;
                }
            }
            _ => {}
        }
    }
    Value::String(Arc::new(s.to_owned()))
}

/// `oldSelf` for a rule with `optionalOldSelf`: an optional of the old value.
pub fn optional(v: Option<Value>) -> Value {
    Value::Opaque(Arc::new(match v {
        Some(v) => OptionalValue::of(v),
        None => OptionalValue::none(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_upstream() {
        assert_eq!(escape("foo").as_deref(), Some("foo"));
        assert_eq!(escape("x-y").as_deref(), Some("x__dash__y"));
        assert_eq!(escape("a.b/c").as_deref(), Some("a__dot__b__slash__c"));
        assert_eq!(escape("a__b").as_deref(), Some("a__underscores__b"));
        assert_eq!(escape("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(escape("1abc"), None);
        assert_eq!(escape("a b"), None);
        assert_eq!(escape(""), None);
    }
}
