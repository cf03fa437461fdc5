//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7396), and strategic merge patch
//! for built-in kinds. Strategic merge here follows merge-patch semantics plus the `$patch`
//! directives on maps; list merging by key arrives with the merge crate.

use reddwarf_resources::ResourceKind;
use serde_json::{Map, Value};

use crate::codec;
use crate::status::{ApiError, ApiResult};

pub fn check_content_type(ct: &str, _kind: &ResourceKind) -> ApiResult<()> {
    match ct {
        "application/json-patch+json" | "application/merge-patch+json" | "application/strategic-merge-patch+json" => Ok(()),
        "application/apply-patch+yaml" => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "server-side apply (application/apply-patch+yaml) is not supported by this server yet; use client-side apply",
        )),
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"),
        )),
    }
}

pub fn apply(ct: &str, current: &Value, body: &[u8]) -> ApiResult<Value> {
    match ct {
        "application/json-patch+json" => {
            let ops = codec::decode_json(body)?;
            json_patch(current, &ops)
        }
        "application/merge-patch+json" => {
            let p = codec::decode_json(body)?;
            if !p.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            Ok(merge_patch(current.clone(), &p, false))
        }
        "application/strategic-merge-patch+json" => {
            let p = codec::decode_json(body)?;
            if !p.is_object() {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            }
            Ok(merge_patch(current.clone(), &p, true))
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// RFC 7396. With `strategic`, `$`-directives are honoured on maps and stripped elsewhere.
pub fn merge_patch(target: Value, patch: &Value, strategic: bool) -> Value {
    let Value::Object(p) = patch else {
        return strip_directives(patch.clone(), strategic);
    };
    if strategic {
        match p.get("$patch").and_then(Value::as_str) {
            Some("replace") => {
                let mut p = p.clone();
                p.remove("$patch");
                return strip_directives(Value::Object(p), true);
            }
            Some("delete") => return Value::Null,
            _ => {}
        }
    }
    let mut t = match target {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    for (k, v) in p {
        if strategic && k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
        } else {
            let cur = t.remove(k).unwrap_or(Value::Null);
            let merged = merge_patch(cur, v, strategic);
            if !(strategic && merged.is_null()) {
                t.insert(k.clone(), merged);
            }
        }
    }
    Value::Object(t)
}

fn strip_directives(v: Value, strategic: bool) -> Value {
    if !strategic {
        return v;
    }
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k, strip_directives(v, true)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.into_iter()
                .filter(|x| x.get("$patch").is_none())
                .map(|x| strip_directives(x, true))
                .collect(),
        ),
        other => other,
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> ApiResult<Vec<String>> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    if !path.starts_with('/') {
        return Err(ApiError::bad_request(format!(
            "invalid JSON pointer {path:?}: must start with '/'"
        )));
    }
    Ok(path[1..].split('/').map(unescape).collect())
}

fn parent<'a>(doc: &'a mut Value, tokens: &[String], path: &str) -> ApiResult<&'a mut Value> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| ApiError::new(422, "Invalid", format!("the server rejected our request due to an error in our request: path {path:?} does not exist")))?;
    }
    Ok(cur)
}

fn add(doc: &mut Value, path: &str, value: Value) -> ApiResult<()> {
    let tokens = split_pointer(path)?;
    let Some((last, init)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent(doc, init, path)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let idx = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| {
                        ApiError::new(
                            422,
                            "Invalid",
                            format!("json patch: index {last} out of bounds at {path:?}"),
                        )
                    })?
            };
            a.insert(idx, value);
            Ok(())
        }
        _ => Err(ApiError::new(
            422,
            "Invalid",
            format!("json patch: cannot add at {path:?}: parent is not a container"),
        )),
    }
}

fn remove(doc: &mut Value, path: &str) -> ApiResult<Value> {
    let tokens = split_pointer(path)?;
    let Some((last, init)) = tokens.split_last() else {
        return Err(ApiError::new(
            422,
            "Invalid",
            "json patch: cannot remove the whole document",
        ));
    };
    let missing = || {
        ApiError::new(422, "Invalid", format!("the server rejected our request due to an error in our request: unable to remove nonexistent key: {path}"))
    };
    match parent(doc, init, path)? {
        Value::Object(m) => m.remove(last).ok_or_else(missing),
        Value::Array(a) => {
            let i = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < a.len())
                .ok_or_else(missing)?;
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

fn get(doc: &Value, path: &str) -> ApiResult<Value> {
    let tokens = split_pointer(path)?;
    let mut cur = doc;
    for t in &tokens {
        cur = match cur {
            Value::Object(m) => m.get(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::new(
                422,
                "Invalid",
                format!("json patch: path {path:?} does not exist"),
            )
        })?;
    }
    Ok(cur.clone())
}

/// RFC 6902: every operation applies or none does.
pub fn json_patch(current: &Value, ops: &Value) -> ApiResult<Value> {
    let ops = ops
        .as_array()
        .ok_or_else(|| ApiError::bad_request("a JSON patch must be a JSON array of operations"))?;
    let mut doc = current.clone();
    for (i, op) in ops.iter().enumerate() {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op.get("path").and_then(Value::as_str).ok_or_else(|| {
            ApiError::bad_request(format!("json patch operation {i}: missing \"path\""))
        })?;
        let value = || {
            op.get("value").cloned().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "json patch operation {i} ({kind}): missing \"value\""
                ))
            })
        };
        let from = || {
            op.get("from").and_then(Value::as_str).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "json patch operation {i} ({kind}): missing \"from\""
                ))
            })
        };
        match kind {
            "add" => add(&mut doc, path, value()?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value()?)?;
            }
            "move" => {
                let v = remove(&mut doc, from()?)?;
                add(&mut doc, path, v)?;
            }
            "copy" => {
                let v = get(&doc, from()?)?;
                add(&mut doc, path, v)?;
            }
            "test" => {
                let want = value()?;
                let got = get(&doc, path)?;
                if got != want {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!("the server rejected our request due to an error in our request: testing value {path} failed"),
                    ));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "json patch operation {i}: unknown op {other:?}"
                )))
            }
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7396() {
        let t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        let p = json!({"a": "z", "c": {"f": null}});
        assert_eq!(
            merge_patch(t, &p, false),
            json!({"a": "z", "c": {"d": "e"}})
        );
    }

    #[test]
    fn strategic_directives_on_maps() {
        let t = json!({"data": {"a": "1", "b": "2"}});
        let p = json!({"data": {"$patch": "replace", "c": "3"}});
        assert_eq!(merge_patch(t, &p, true), json!({"data": {"c": "3"}}));
    }

    #[test]
    fn json_patch_is_all_or_nothing() {
        let t = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2]});
        let ok = json_patch(&t, &json!([{"op": "add", "path": "/metadata/labels/b", "value": "2"}, {"op": "remove", "path": "/list/0"}, {"op": "test", "path": "/list/0", "value": 2}])).unwrap();
        assert_eq!(
            ok,
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "list": [2]})
        );
        let e = json_patch(&t, &json!([{"op": "replace", "path": "/metadata/labels/a", "value": "x"}, {"op": "test", "path": "/list/0", "value": 9}])).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(json_patch(&t, &json!({"op": "add"})).is_err());
    }
}
