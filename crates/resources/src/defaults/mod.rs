//! Upstream defaulting (`SetDefaults_*` in kubernetes/pkg/apis/*/v1/defaults.go, the
//! declarative `+default` markers of the v1 types, and the few strategy/admission steps that
//! fill fields at creation). Each function only fills what is absent.
//!
//! `core` holds pods, pod specs (shared by every pod template) and the other legacy kinds;
//! `workloads` apps, batch and autoscaling; `other` the remaining groups.

mod core;
mod other;
mod workloads;

pub(crate) use self::core::*;
pub(crate) use other::*;
pub(crate) use workloads::*;

use serde_json::{json, Map, Value};

pub(crate) type Obj = Map<String, Value>;

/// Sets `key` when it is absent or null.
pub(crate) fn set(m: &mut Obj, key: &str, value: Value) {
    if !m.contains_key(key) || m.get(key) == Some(&Value::Null) {
        m.insert(key.to_string(), value);
    }
}

/// The object at `key`, created empty when absent (or not an object).
pub(crate) fn child<'a>(m: &'a mut Obj, key: &str) -> &'a mut Obj {
    if !matches!(m.get(key), Some(Value::Object(_))) {
        m.insert(key.to_string(), json!({}));
    }
    match m.get_mut(key) {
        Some(Value::Object(o)) => o,
        _ => unreachable!("just inserted an object"),
    }
}

/// The object at `key` when it is present.
pub(crate) fn existing<'a>(m: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// Calls `f` for every object in the array at `key`.
pub(crate) fn each(m: &mut Obj, key: &str, mut f: impl FnMut(&mut Obj)) {
    if let Some(Value::Array(items)) = m.get_mut(key) {
        for item in items {
            if let Some(o) = item.as_object_mut() {
                f(o);
            }
        }
    }
}

/// A string field, or "".
pub(crate) fn str_of<'a>(m: &'a Obj, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The top-level object of a value.
pub(crate) fn root(v: &mut Value) -> Option<&mut Obj> {
    v.as_object_mut()
}

/// The current time as RFC 3339 (UTC, seconds), for the few defaults that stamp a time.
pub(crate) fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(secs)
}

fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
