//! OpenAPI v3: `/openapi/v3` indexes one document per served group version
//! (`/openapi/v3/apis/apps/v1?hash=...`), each with the paths of its resources (operations with
//! their query parameters and `x-kubernetes-group-version-kind`/`x-kubernetes-action`) and the
//! full component schemas of its kinds (see `openapi_schema`). kubectl reads them for
//! `explain`, to learn that the server validates fields (`fieldValidation` on PATCH), and for
//! client-side strategic merge (the patch merge keys).
//!
//! Documents are built on first request and kept in memory; the index's `hash` is derived from
//! everything a document is built from (its kinds, the embedded schema and descriptions, the
//! generator), so it changes whenever the document does, without building every document to
//! answer the index.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, StatusCode};
use reddwarf_resources::ResourceKind;
use serde_json::{json, Map, Value};

use crate::codec;
use crate::openapi_schema::{
    fingerprint, gv_path, hash, info, kind_definitions, kind_paths, meta_definitions, tag,
    Definitions, Flavor, Param, PathSpec,
};
use crate::status::ApiError;
use crate::ApiServer;

/// Built documents by group-version path, with the fingerprint they were built from.
type Cache = Mutex<HashMap<String, (String, Bytes)>>;

fn cache() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(Default::default)
}

pub fn index(api: &ApiServer) -> Response {
    let mut paths = Map::new();
    for (g, vs) in api.catalogue().groups() {
        for v in vs {
            let p = gv_path(g, v);
            let fp = fingerprint(api.catalogue().in_group_version(g, v));
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&fp))}),
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
    let catalogue = api.catalogue();
    let kinds = catalogue.in_group_version(g, v);
    if kinds.is_empty() {
        return ApiError::path_not_found().into_response();
    }
    let fp = fingerprint(kinds.iter().copied());
    let key = gv_path(g, v);
    let cached = cache().lock().ok().and_then(|c| {
        c.get(&key)
            .filter(|(f, _)| *f == fp)
            .map(|(_, b)| b.clone())
    });
    let body = match cached {
        Some(b) => b,
        None => {
            let b = Bytes::from(gv_document(&kinds, g, v));
            if let Ok(mut c) = cache().lock() {
                c.insert(key, (fp, b.clone()));
            }
            b
        }
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn param(p: &Param) -> Value {
    let mut v = json!({
        "description": p.description,
        "in": p.location,
        "name": p.name,
        "schema": {"type": p.ty, "uniqueItems": true},
    });
    if p.location == "path" {
        v["required"] = true.into();
    }
    v
}

fn content(defs: &Definitions, name: &str) -> Value {
    let schema = defs.reference(name);
    json!({
        "application/json": {"schema": schema},
        "application/vnd.kubernetes.protobuf": {"schema": schema},
        "application/yaml": {"schema": schema},
    })
}

/// The v3 path item of one path.
fn path_item(p: &PathSpec, defs: &Definitions, tag: &str) -> Value {
    let mut item = Map::new();
    for o in &p.operations {
        let mut op = json!({
            "description": o.description,
            "operationId": o.id,
            "responses": {
                "200": {"content": content(defs, &o.response), "description": "OK"},
                "401": {"description": "Unauthorized"},
            },
            "tags": [tag],
            "x-kubernetes-action": o.action,
            "x-kubernetes-group-version-kind": {"group": o.gvk.0, "kind": o.gvk.2, "version": o.gvk.1},
        });
        if !o.params.is_empty() {
            op["parameters"] = o.params.iter().map(param).collect();
        }
        if let Some(b) = &o.body {
            op["requestBody"] = json!({"content": {"*/*": {"schema": defs.reference(b)}}, "required": o.method != "delete"});
        }
        item.insert(o.method.to_string(), op);
    }
    item.insert(
        "parameters".into(),
        p.params.iter().map(param).collect::<Vec<_>>().into(),
    );
    Value::Object(item)
}

/// The document of one group version, serialized (a function of the kinds and the embedded
/// data). Paths are written as they are made and definitions are kept serialized, so the
/// transient memory is a small multiple of one definition, not of the document.
pub(crate) fn gv_document(kinds: &[&ResourceKind], group: &str, version: &str) -> Vec<u8> {
    let mut defs = Definitions::new(Flavor::V3);
    let scale = kinds.iter().any(|k| k.scale);
    let meta = meta_definitions(&mut defs, &[(group, version)], scale);
    let tag = tag(group, version);
    let mut out = Vec::with_capacity(256 * 1024);
    out.extend_from_slice(br#"{"openapi":"3.0.0","info":"#);
    let _ = serde_json::to_writer(&mut out, &info());
    out.extend_from_slice(br#","paths":{"#);
    let mut first = true;
    for k in kinds {
        let (obj, list) = kind_definitions(&mut defs, k);
        for p in kind_paths(k, &obj, &list, &meta) {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut out, &p.path);
            out.push(b':');
            let _ = serde_json::to_writer(&mut out, &path_item(&p, &defs, &tag));
        }
    }
    out.extend_from_slice(br#"},"components":{"schemas":"#);
    defs.write_json(&mut out);
    out.extend_from_slice(b"}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reddwarf_resources::Catalogue;

    #[test]
    fn apps_v1_document() {
        let cat = Catalogue::builtin();
        let kinds = cat.in_group_version("apps", "v1");
        let doc: Value = serde_json::from_slice(&gv_document(&kinds, "apps", "v1")).unwrap();
        let schemas = &doc["components"]["schemas"];
        let dep = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            dep["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        assert_eq!(
            dep["description"],
            "Deployment enables declarative updates for Pods and ReplicaSets."
        );
        assert_eq!(
            dep["properties"]["spec"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
        );
        assert_eq!(dep["properties"]["apiVersion"]["type"], "string");
        let c = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(c["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(c["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(c["x-kubernetes-list-type"], "map");
        assert_eq!(c["x-kubernetes-list-map-keys"], json!(["name"]));
        assert_eq!(
            c["items"]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.Container"
        );
        assert_eq!(
            schemas["io.k8s.api.core.v1.PodSpec"]["required"],
            json!(["containers"])
        );
        let ios = &schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"];
        assert_eq!(ios["format"], "int-or-string");
        assert_eq!(ios["x-kubernetes-int-or-string"], true);
        let t = &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"];
        assert_eq!(
            (&t["type"], &t["format"]),
            (&json!("string"), &json!("date-time"))
        );
        assert_eq!(
            schemas["io.k8s.api.core.v1.LocalObjectReference"]["x-kubernetes-map-type"],
            "atomic"
        );
        // every $ref resolves inside the document
        let text = serde_json::to_string(&doc).unwrap();
        for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(schemas.get(name).is_some(), "dangling $ref {name}");
        }
        // the PATCH operation carries fieldValidation
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
    }

    #[test]
    fn hash_follows_the_kinds() {
        let cat = Catalogue::builtin();
        let kinds = cat.in_group_version("apps", "v1");
        let a = hash(&fingerprint(kinds.iter().copied()));
        let mut changed: Vec<ResourceKind> = kinds.iter().map(|k| (*k).clone()).collect();
        changed[0].status = !changed[0].status;
        let b = hash(&fingerprint(changed.iter()));
        assert_ne!(a, b);
        assert_eq!(a, hash(&fingerprint(kinds.iter().copied())));
    }
}
