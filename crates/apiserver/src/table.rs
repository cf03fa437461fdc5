//! Server-side printing: `meta.k8s.io/v1` Table objects with upstream's columns.

use reddwarf_resources::ResourceKind;
use serde_json::{json, Value};

use crate::meta::now_unix;
use crate::query::Query;
use crate::status::{ApiError, ApiResult};

/// The object carried in each row, as `includeObject` asks (default: metadata only).
fn row_object(obj: &Value, include: &str) -> Option<Value> {
    match include {
        "None" => None,
        "Object" => Some(obj.clone()),
        _ => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        })),
    }
}

pub fn include_object(query: &Query) -> ApiResult<&str> {
    match query.get("includeObject").unwrap_or("Metadata") {
        v @ ("None" | "Metadata" | "Object") => Ok(v),
        other => Err(ApiError::bad_request(format!(
            "includeObject must be one of None, Metadata or Object, got {other:?}"
        ))),
    }
}

/// One row for `obj`.
pub fn row(kind: &ResourceKind, obj: &Value, include: &str, now: i64) -> Value {
    let mut r = json!({"cells": kind.strategy.row(kind, obj, now)});
    if let Some(o) = row_object(obj, include) {
        r["object"] = o;
    }
    r
}

pub fn column_definitions(kind: &ResourceKind) -> Value {
    Value::Array(
        kind.strategy
            .columns(kind)
            .iter()
            .map(|c| c.to_json())
            .collect(),
    )
}

pub fn table(
    kind: &ResourceKind,
    items: &[Value],
    rv: &str,
    cont: &str,
    query: &Query,
) -> ApiResult<Value> {
    let include = include_object(query)?;
    let now = now_unix();
    let mut meta = json!({"resourceVersion": rv});
    if !cont.is_empty() {
        meta["continue"] = json!(cont);
    }
    Ok(json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": column_definitions(kind),
        "rows": items.iter().map(|o| row(kind, o, include, now)).collect::<Vec<_>>(),
    }))
}
