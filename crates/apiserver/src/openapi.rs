//! OpenAPI v3: an index of group-version documents, each describing the served paths and
//! their parameters. kubectl reads it to learn that the server validates fields itself
//! (`fieldValidation`); schemas for every kind arrive with the full catalogue.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use reddwarf_resources::ResourceKind;
use serde_json::{json, Map, Value};

use crate::codec;
use crate::status::ApiError;
use crate::ApiServer;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn hash(s: &str) -> String {
    // FNV-1a: a stable content hash so clients can cache documents by URL.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

pub fn index(api: &ApiServer) -> Response {
    let mut paths = Map::new();
    for (g, vs) in api.catalogue.groups() {
        for v in vs {
            let p = gv_path(g, v);
            let doc = serde_json::to_string(&gv_document(api, g, v)).unwrap_or_default();
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&doc))}),
            );
        }
    }
    codec::json_value(StatusCode::OK, &json!({"paths": paths}))
}

pub fn document(api: &ApiServer, path: &str) -> Response {
    let parts: Vec<&str> = path.split('/').collect();
    let (g, v) = match parts.as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return ApiError::path_not_found().into_response(),
    };
    if api.catalogue.in_group_version(g, v).is_empty() {
        return ApiError::path_not_found().into_response();
    }
    codec::json_value(StatusCode::OK, &gv_document(api, g, v))
}

fn param(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "query", "description": desc, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_params(patch: bool) -> Vec<Value> {
    let mut p = vec![
        param("dryRun", "When present, indicates that modifications should not be persisted."),
        param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
        param("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict."),
    ];
    if patch {
        p.push(json!({"name": "force", "in": "query", "description": "Force is going to \"force\" Apply requests.", "schema": {"type": "boolean", "uniqueItems": true}}));
    }
    p
}

fn op(k: &ResourceKind, action: &str, id: &str, params: Vec<Value>) -> Value {
    let schema_ref = json!({"$ref": format!("#/components/schemas/{}", schema_name(k))});
    json!({
        "operationId": id,
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": k.group, "version": k.version, "kind": k.kind},
    })
}

fn schema_name(k: &ResourceKind) -> String {
    let pkg = match k.group {
        "" => "core".to_string(),
        g => g.split('.').next().unwrap_or(g).to_string(),
    };
    format!("io.k8s.api.{pkg}.{}.{}", k.version, k.kind)
}

fn gv_document(api: &ApiServer, group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for k in api.catalogue.in_group_version(group, version) {
        let base = format!("/{}", gv_path(group, version));
        let coll = if k.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", k.plural)
        } else {
            format!("{base}/{}", k.plural)
        };
        let id = format!("{}{}", k.kind, k.version);
        paths.insert(
            coll.clone(),
            json!({
                "get": op(k, "list", &format!("list{id}"), vec![param("labelSelector", ""), param("fieldSelector", ""), param("limit", ""), param("continue", ""), param("watch", "")]),
                "post": op(k, "post", &format!("create{id}"), write_params(false)),
                "delete": op(k, "deletecollection", &format!("deleteCollection{id}"), vec![param("labelSelector", "")]),
            }),
        );
        paths.insert(
            format!("{coll}/{{name}}"),
            json!({
                "get": op(k, "get", &format!("read{id}"), vec![]),
                "put": op(k, "put", &format!("replace{id}"), write_params(false)),
                "patch": op(k, "patch", &format!("patch{id}"), write_params(true)),
                "delete": op(k, "delete", &format!("delete{id}"), vec![param("dryRun", "")]),
            }),
        );
        if k.status {
            paths.insert(
                format!("{coll}/{{name}}/status"),
                json!({
                    "get": op(k, "get", &format!("read{id}Status"), vec![]),
                    "put": op(k, "put", &format!("replace{id}Status"), write_params(false)),
                    "patch": op(k, "patch", &format!("patch{id}Status"), write_params(true)),
                }),
            );
        }
        schemas.insert(
            schema_name(k),
            json!({
                "type": "object",
                "x-kubernetes-group-version-kind": [{"group": k.group, "version": k.version, "kind": k.kind}],
            }),
        );
    }
    // Schemas are placeholders until the catalogue carries full ones: clients that need
    // field-level schema (client-side strategic merge) fall back to their compiled-in types.
    let _ = schemas;
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    })
}
