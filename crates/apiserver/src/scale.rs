//! The `/scale` subresource (autoscaling/v1 `Scale`) of deployments, replica sets, stateful
//! sets and replication controllers: GET, PUT and PATCH. A write sets the parent's
//! `spec.replicas` through the normal update path (preconditions, defaults, validation,
//! generation, dry run), then answers with the Scale of the stored parent, as upstream's
//! ScaleREST does.

use crate::registry::{self, Via, Written};
use axum::response::Response;
use http::StatusCode;
use reddwarf_resources::ResourceKind;
use serde_json::{json, Map, Value};

use crate::codec::{self, Wanted};
use crate::meta::meta_str;
use crate::patch;
use crate::path::ResourcePath;
use crate::request::Scope;
use crate::status::{ApiError, ApiResult, Cause};

pub async fn serve(scope: &Scope<'_>, verb: &str, body: &[u8]) -> ApiResult<Response> {
    match verb {
        "get" => get(scope),
        "update" => update(scope, body).await,
        "patch" => patch(scope, body).await,
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn name(scope: &Scope) -> String {
    scope.rp.name.clone().unwrap_or_default()
}

/// The Scale of a parent object (`scaleFromDeployment`, `scaleFromRC`...).
pub fn scale_of(kind: &ResourceKind, parent: &Value) -> Value {
    let mut meta = Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = parent.pointer(&format!("/metadata/{k}")) {
            meta.insert(k.into(), v.clone());
        }
    }
    let paths = kind.strategy.scale_paths();
    let mut spec = Map::new();
    match parent.pointer(&paths.spec_replicas).and_then(Value::as_i64) {
        Some(0) | None => {}
        Some(n) => {
            spec.insert("replicas".into(), json!(n));
        }
    }
    let selector = kind.strategy.scale_selector(parent);
    let mut status = Map::new();
    status.insert(
        "replicas".into(),
        json!(parent
            .pointer(&paths.status_replicas)
            .and_then(Value::as_i64)
            .unwrap_or(0)),
    );
    if !selector.is_empty() {
        status.insert("selector".into(), json!(selector));
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": spec,
        "status": status,
    })
}

fn respond(scope: &Scope, code: StatusCode, scale: &Value) -> ApiResult<Response> {
    let bytes = serde_json::to_vec(scale).map_err(ApiError::internal)?;
    let wanted = match scope.wanted {
        // kubectl never asks for a Scale as a Table; answer the object.
        Wanted::Table { .. } | Wanted::Discovery { .. } => Wanted::Json,
        w => w,
    };
    Ok(codec::respond_object(code, wanted, bytes))
}

fn get(scope: &Scope) -> ApiResult<Response> {
    let name = name(scope);
    let view = scope.api.store.read().map_err(ApiError::internal)?;
    let key = scope.key(&name);
    let (_, bytes) = view
        .get(key.as_str())
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(scope.kind.group, scope.kind.plural, &name))?;
    let parent = scope.decode_stored(&bytes)?;
    respond(scope, StatusCode::OK, &scale_of(scope.kind, &parent))
}

/// The parent with the Scale's replicas (`scaleUpdatedObjectInfo`): the Scale's
/// resourceVersion and uid become the update's preconditions.
fn apply_scale(kind: &ResourceKind, name: &str, parent: &Value, scale: &Value) -> ApiResult<Value> {
    if let Some(k) = scale.get("kind").and_then(Value::as_str) {
        if !k.is_empty() && k != "Scale" {
            return Err(ApiError::bad_request(format!(
                "{k} in version \"v1\" cannot be handled as a Scale: converting (v1.{k}) to (autoscaling.Scale): unknown conversion"
            )));
        }
    }
    let scale_name = meta_str(scale, "name");
    if !scale_name.is_empty() && scale_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({scale_name}) does not match the name on the URL ({name})"
        )));
    }
    let replicas = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "Scale in version \"v1\" cannot be handled as a Scale: json: cannot unmarshal {} into Go struct field ScaleSpec.spec.replicas of type int32",
                codec::type_name(v)
            ))
        })?,
    };
    if replicas < 0 {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            name,
            vec![Cause {
                reason: "FieldValueInvalid",
                message: format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                field: "spec.replicas".into(),
            }],
        ));
    }
    let mut new = parent.clone();
    let spec_path = kind.strategy.scale_paths().spec_replicas;
    reddwarf_resources::strategy::copy_part(
        &spec_path,
        &json!(spec_path_value(&spec_path, replicas)),
        &mut new,
    );
    let meta = new
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ApiError::internal("stored object without metadata"))?;
    match meta_str(scale, "resourceVersion") {
        "" => {
            meta.remove("resourceVersion");
        }
        rv => {
            meta.insert("resourceVersion".into(), json!(rv));
        }
    }
    let uid = meta_str(scale, "uid");
    if !uid.is_empty() {
        meta.insert("uid".into(), json!(uid));
    }
    Ok(new)
}

/// An object holding only `replicas` at `pointer`, to copy into the parent.
fn spec_path_value(pointer: &str, replicas: i64) -> Value {
    let mut v = json!(replicas);
    for seg in pointer.rsplit('/').filter(|s| !s.is_empty()) {
        let mut m = Map::new();
        m.insert(seg.replace("~1", "/").replace("~0", "~"), v);
        v = Value::Object(m);
    }
    v
}

/// Runs `change` through the parent's normal update path and answers with the resulting
/// Scale.
async fn write(scope: &Scope<'_>, change: &registry::Change<'_>) -> ApiResult<Response> {
    let rp = ResourcePath {
        subresource: None,
        ..scope.rp.clone()
    };
    let parent_scope = Scope {
        warnings: Default::default(),
        verb: scope.verb,
        api: scope.api,
        kind: scope.kind,
        rp: &rp,
        query: scope.query,
        headers: scope.headers,
        user: scope.user,
        wanted: Wanted::Json,
        slim: false,
        write: scope.write.clone(),
    };
    let written = registry::update(&parent_scope, change, Via::Patch).await;
    if let Ok(mut w) = parent_scope.warnings.lock() {
        for warning in w.drain(..) {
            scope.warn(warning);
        }
    }
    let parent = match written? {
        Written::Stored(b) => scope.decode_stored(&b)?,
        Written::Preview(b) => serde_json::from_slice(&b).map_err(ApiError::internal)?,
    };
    respond(scope, StatusCode::OK, &scale_of(scope.kind, &parent))
}

async fn update(scope: &Scope<'_>, body: &[u8]) -> ApiResult<Response> {
    let scale = scope.decode_body(body)?;
    if !scale.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    if let Some(av) = scale.get("apiVersion").and_then(Value::as_str) {
        if !av.is_empty() && av != "autoscaling/v1" {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version (autoscaling/v1)"
            )));
        }
    }
    let name = name(scope);
    let change = |parent: &Value| apply_scale(scope.kind, &name, parent, &scale).map(Some);
    write(scope, &change).await
}

async fn patch(scope: &Scope<'_>, body: &[u8]) -> ApiResult<Response> {
    let ct = codec::content_type(scope.headers);
    patch::check_content_type(&ct, scope.kind)?;
    let name = name(scope);
    let change = |parent: &Value| {
        let current = scale_of(scope.kind, parent);
        let patched = patch::apply(&ct, &current, body)?;
        apply_scale(scope.kind, &name, parent, &patched).map(Some)
    };
    write(scope, &change).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(plural: &str) -> ResourceKind {
        reddwarf_resources::builtin_kinds()
            .into_iter()
            .find(|k| k.plural == plural)
            .unwrap()
    }

    #[test]
    fn scale_reflects_the_parent() {
        let d = json!({"metadata": {"name": "web", "namespace": "d", "uid": "u", "resourceVersion": "7", "labels": {"x": "y"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": 2}});
        let s = scale_of(&kind("deployments"), &d);
        assert_eq!(
            s,
            json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": "web", "namespace": "d", "uid": "u", "resourceVersion": "7"},
                "spec": {"replicas": 3}, "status": {"replicas": 2, "selector": "app=web"}})
        );
        let rc = json!({"metadata": {"name": "r"}, "spec": {"replicas": 0, "selector": {"b": "2", "a": "1"}}});
        assert_eq!(
            scale_of(&kind("replicationcontrollers"), &rc),
            json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": "r"},
                "spec": {}, "status": {"replicas": 0, "selector": "a=1,b=2"}})
        );
    }

    #[test]
    fn applying_a_scale_sets_replicas_and_preconditions() {
        let d =
            json!({"metadata": {"name": "web", "resourceVersion": "7"}, "spec": {"replicas": 1}});
        let s =
            json!({"metadata": {"name": "web", "resourceVersion": "5"}, "spec": {"replicas": 4}});
        let deployments = kind("deployments");
        let kind = &deployments;
        let n = apply_scale(kind, "web", &d, &s).unwrap();
        assert_eq!(n["spec"]["replicas"], 4);
        assert_eq!(n["metadata"]["resourceVersion"], "5");
        let neg = json!({"spec": {"replicas": -1}});
        assert_eq!(apply_scale(kind, "web", &d, &neg).unwrap_err().code, 422);
        let other = json!({"metadata": {"name": "x"}, "spec": {"replicas": 1}});
        assert_eq!(apply_scale(kind, "web", &d, &other).unwrap_err().code, 400);
    }
}
