//! `/openapi/v2`: one Swagger 2.0 document of every served resource, with the same paths and
//! full definitions as the v3 documents (see `openapi_schema`). JSON when asked for
//! `application/json` (or nothing in particular); the gnostic protobuf form
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) that kubectl reads for
//! `explain`, field validation support and client-side strategic merge. Upstream labels the
//! protobuf body `application/octet-stream`. Each form is built on first request and cached.

use std::sync::{Mutex, OnceLock};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};
use reddwarf_resources::ResourceKind;
use serde_json::{json, Map, Value};

use crate::openapi_schema::{
    fingerprint, info, kind_definitions, kind_paths, meta_definitions, tag, Definitions, Flavor,
    Param, PathSpec,
};
use crate::ApiServer;

#[derive(Default)]
struct Cached {
    fingerprint: String,
    json: Option<Bytes>,
    proto: Option<Bytes>,
}

fn cache() -> &'static Mutex<Cached> {
    static C: OnceLock<Mutex<Cached>> = OnceLock::new();
    C.get_or_init(Default::default)
}

pub fn serve(api: &ApiServer, headers: &HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let proto = accept.contains("protobuf");
    let json = !proto
        && (accept.trim().is_empty()
            || accept.split(',').any(|c| {
                let mt = c.split(';').next().unwrap_or("").trim();
                matches!(mt, "application/json" | "*/*" | "application/*")
            }));
    if !proto && !json {
        return crate::status::ApiError::not_acceptable(accept).into_response();
    }
    let catalogue = api.catalogue();
    let kinds: Vec<&ResourceKind> = catalogue.kinds().iter().collect();
    let fp = fingerprint(kinds.iter().copied());
    let cached = cache().lock().ok().and_then(|c| {
        (c.fingerprint == fp)
            .then(|| {
                if proto {
                    c.proto.clone()
                } else {
                    c.json.clone()
                }
            })
            .flatten()
    });
    let body = match cached {
        Some(b) => b,
        None => {
            let b = Bytes::from(if proto {
                v2_proto(&kinds)
            } else {
                v2_json(&kinds)
            });
            if let Ok(mut c) = cache().lock() {
                if c.fingerprint != fp {
                    *c = Cached {
                        fingerprint: fp,
                        ..Default::default()
                    };
                }
                if proto {
                    c.proto = Some(b.clone());
                } else {
                    c.json = Some(b.clone());
                }
            }
            b
        }
    };
    let ct = if proto {
        "application/octet-stream"
    } else {
        "application/json"
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, ct)], body).into_response()
}

fn param(p: &Param) -> Value {
    let mut v = json!({
        "description": p.description,
        "in": p.location,
        "name": p.name,
        "type": p.ty,
        "uniqueItems": true,
    });
    if p.location == "path" {
        v["required"] = true.into();
    }
    v
}

/// The v2 path item of one path.
fn path_item(p: &PathSpec, defs: &Definitions, tag: &str) -> Value {
    let mut item = Map::new();
    for o in &p.operations {
        let mut params: Vec<Value> = Vec::new();
        if let Some(b) = &o.body {
            params.push(json!({"in": "body", "name": "body", "required": o.method != "delete", "schema": defs.reference(b)}));
        }
        params.extend(o.params.iter().map(param));
        let (g, v, k) = &o.gvk;
        let av = if g.is_empty() {
            v.clone()
        } else {
            format!("{g}/{v}")
        };
        // Strategic merge needs Go types: kinds without them (custom resources) do not
        // consume it, which is how kubectl picks a merge patch for them.
        let typed = crate::merge_schema::root(&av, k).is_some();
        let consumes = if o.method == "patch" && typed {
            json!([
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml"
            ])
        } else if o.method == "patch" {
            json!([
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml"
            ])
        } else {
            json!(["*/*"])
        };
        let mut op = json!({
            "consumes": consumes,
            "description": o.description,
            "operationId": o.id,
            "produces": ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"],
            "responses": {
                "200": {"description": "OK", "schema": defs.reference(&o.response)},
                "401": {"description": "Unauthorized"},
            },
            "schemes": ["https"],
            "tags": [tag],
            "x-kubernetes-action": o.action,
            "x-kubernetes-group-version-kind": {"group": o.gvk.0, "kind": o.gvk.2, "version": o.gvk.1},
        });
        if !params.is_empty() {
            op["parameters"] = params.into();
        }
        item.insert(o.method.to_string(), op);
    }
    item.insert(
        "parameters".into(),
        p.params.iter().map(param).collect::<Vec<_>>().into(),
    );
    Value::Object(item)
}

/// Walks the Swagger 2.0 document of these kinds: every (path, path item) as it is made, then
/// the definitions they refer to.
fn walk(kinds: &[&ResourceKind], mut path: impl FnMut(&str, &Value)) -> Definitions {
    let mut defs = Definitions::new(Flavor::V2);
    let mut gvs: Vec<(&str, &str)> = Vec::new();
    for k in kinds {
        if !gvs.contains(&(k.group, k.version)) {
            gvs.push((k.group, k.version));
        }
    }
    let meta = meta_definitions(&mut defs, &gvs, kinds.iter().any(|k| k.scale));
    for k in kinds {
        let (obj, list) = kind_definitions(&mut defs, k);
        let tag = tag(k.group, k.version);
        for p in kind_paths(k, &obj, &list, &meta) {
            path(&p.path, &path_item(&p, &defs, &tag));
        }
    }
    defs
}

/// The Swagger 2.0 document of these kinds as JSON.
pub(crate) fn v2_json(kinds: &[&ResourceKind]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 * 1024);
    out.extend_from_slice(br#"{"swagger":"2.0","info":"#);
    let _ = serde_json::to_writer(&mut out, &info());
    out.extend_from_slice(br#","paths":{"#);
    let mut first = true;
    let defs = walk(kinds, |p, item| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut out, p);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, item);
    });
    out.extend_from_slice(br#"},"definitions":"#);
    defs.write_json(&mut out);
    out.push(b'}');
    out
}

/// The same document as a gnostic `openapi_v2.Document`.
pub(crate) fn v2_proto(kinds: &[&ResourceKind]) -> Vec<u8> {
    let mut paths = Vec::new();
    let defs = walk(kinds, |p, item| {
        msg(&mut paths, 2, |np| {
            bytes_field(np, 1, p.as_bytes());
            msg(np, 2, |pi| path_item_pb(pi, item));
        });
    });
    let mut definitions = Vec::new();
    defs.for_each(|name, s| named_schema(&mut definitions, name, s));
    let mut out = Vec::with_capacity(paths.len() + definitions.len() + 64);
    bytes_field(&mut out, 1, b"2.0");
    let info = info();
    msg(&mut out, 2, |w| {
        string(w, 1, info.get("title"));
        string(w, 2, info.get("version"));
    });
    bytes_field(&mut out, 8, &paths);
    bytes_field(&mut out, 9, &definitions);
    out
}

// ------------------------------------------------------------------------------------------
// gnostic protobuf (github.com/google/gnostic openapiv2/OpenAPIv2.proto), written from the
// JSON values of the document: proto3, so empty strings, false and empty lists are left out.

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    varint(out, ((field as u64) << 3) | 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn msg(out: &mut Vec<u8>, field: u32, f: impl FnOnce(&mut Vec<u8>)) {
    let mut sub = Vec::new();
    f(&mut sub);
    bytes_field(out, field, &sub);
}

fn string(out: &mut Vec<u8>, field: u32, v: Option<&Value>) {
    if let Some(s) = v.and_then(Value::as_str).filter(|s| !s.is_empty()) {
        bytes_field(out, field, s.as_bytes());
    }
}

fn strings(out: &mut Vec<u8>, field: u32, v: Option<&Value>) {
    for s in v.and_then(Value::as_array).into_iter().flatten() {
        if let Some(s) = s.as_str() {
            bytes_field(out, field, s.as_bytes());
        }
    }
}

fn boolean(out: &mut Vec<u8>, field: u32, v: Option<&Value>) {
    if v.and_then(Value::as_bool) == Some(true) {
        varint(out, (field as u64) << 3);
        varint(out, 1);
    }
}

fn int64(out: &mut Vec<u8>, field: u32, v: Option<&Value>) {
    if let Some(n) = v.and_then(Value::as_i64).filter(|n| *n != 0) {
        varint(out, (field as u64) << 3);
        varint(out, n as u64);
    }
}

/// `Any{yaml = 2}`: the value as YAML text.
fn any(out: &mut Vec<u8>, field: u32, v: &Value) {
    let yaml = serde_yaml::to_string(v).unwrap_or_default();
    msg(out, field, |a| bytes_field(a, 2, yaml.as_bytes()));
}

/// `repeated NamedAny vendor_extension`: every `x-` key of an object.
fn extensions(out: &mut Vec<u8>, field: u32, obj: &Map<String, Value>) {
    for (k, v) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
        msg(out, field, |na| {
            bytes_field(na, 1, k.as_bytes());
            any(na, 2, v);
        });
    }
}

fn schema(out: &mut Vec<u8>, s: &Value) {
    let Some(o) = s.as_object() else { return };
    string(out, 1, o.get("$ref"));
    string(out, 2, o.get("format"));
    string(out, 3, o.get("title"));
    string(out, 4, o.get("description"));
    if let Some(d) = o.get("default") {
        any(out, 5, d);
    }
    int64(out, 11, o.get("maxLength"));
    int64(out, 12, o.get("minLength"));
    string(out, 13, o.get("pattern"));
    int64(out, 14, o.get("maxItems"));
    int64(out, 15, o.get("minItems"));
    boolean(out, 16, o.get("uniqueItems"));
    strings(out, 19, o.get("required"));
    for e in o
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        any(out, 20, e);
    }
    match o.get("additionalProperties") {
        Some(Value::Bool(b)) => msg(out, 21, |ap| {
            varint(ap, 2 << 3);
            varint(ap, *b as u64);
        }),
        Some(ap @ Value::Object(_)) => msg(out, 21, |m| msg(m, 1, |s| schema(s, ap))),
        _ => {}
    }
    if let Some(t) = o.get("type").and_then(Value::as_str) {
        msg(out, 22, |ti| bytes_field(ti, 1, t.as_bytes()));
    }
    if let Some(items) = o.get("items") {
        msg(out, 23, |ii| msg(ii, 1, |s| schema(s, items)));
    }
    for a in o
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        msg(out, 24, |s| schema(s, a));
    }
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        msg(out, 25, |p| {
            for (name, s) in props {
                named_schema(p, name, s);
            }
        });
    }
    boolean(out, 27, o.get("readOnly"));
    extensions(out, 31, o);
}

/// One `NamedSchema` of `repeated NamedSchema additional_properties = 1` (Definitions,
/// Properties).
fn named_schema(out: &mut Vec<u8>, name: &str, s: &Value) {
    msg(out, 1, |ns| {
        bytes_field(ns, 1, name.as_bytes());
        msg(ns, 2, |v| schema(v, s));
    });
}

/// ParametersItem{parameter = 1: Parameter{body_parameter = 1 | non_body_parameter = 2}}.
fn parameter(out: &mut Vec<u8>, p: &Value) {
    let Some(o) = p.as_object() else { return };
    if let Some(r) = o.get("$ref") {
        return msg(out, 2, |jr| string(jr, 1, Some(r)));
    }
    let location = o.get("in").and_then(Value::as_str).unwrap_or("");
    msg(out, 1, |param| {
        if location == "body" {
            msg(param, 1, |b| {
                string(b, 1, o.get("description"));
                string(b, 2, o.get("name"));
                string(b, 3, o.get("in"));
                boolean(b, 4, o.get("required"));
                if let Some(s) = o.get("schema") {
                    msg(b, 5, |sc| schema(sc, s));
                }
                extensions(b, 6, o);
            });
            return;
        }
        msg(param, 2, |nb| {
            // header 1, formData 2, query 3, path 4: the same leading fields, then type/format
            let (which, ty, format, unique, ext) = match location {
                "query" => (3, 6, 7, 20, 23),
                "path" => (4, 5, 6, 19, 22),
                "header" => (1, 5, 6, 19, 22),
                _ => (2, 6, 7, 20, 23),
            };
            msg(nb, which, |q| {
                boolean(q, 1, o.get("required"));
                string(q, 2, o.get("in"));
                string(q, 3, o.get("description"));
                string(q, 4, o.get("name"));
                string(q, ty, o.get("type"));
                string(q, format, o.get("format"));
                boolean(q, unique, o.get("uniqueItems"));
                extensions(q, ext, o);
            });
        });
    });
}

fn operation(out: &mut Vec<u8>, op: &Value) {
    let Some(o) = op.as_object() else { return };
    strings(out, 1, o.get("tags"));
    string(out, 2, o.get("summary"));
    string(out, 3, o.get("description"));
    string(out, 5, o.get("operationId"));
    strings(out, 6, o.get("produces"));
    strings(out, 7, o.get("consumes"));
    for p in o
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        msg(out, 8, |pi| parameter(pi, p));
    }
    if let Some(rs) = o.get("responses").and_then(Value::as_object) {
        msg(out, 9, |responses| {
            for (code, r) in rs {
                msg(responses, 1, |nrv| {
                    bytes_field(nrv, 1, code.as_bytes());
                    // ResponseValue{response = 1: Response{description = 1, schema = 2: SchemaItem{schema = 1}}}
                    msg(nrv, 2, |rv| {
                        msg(rv, 1, |resp| {
                            string(resp, 1, r.get("description"));
                            if let Some(s) = r.get("schema") {
                                msg(resp, 2, |si| msg(si, 1, |sc| schema(sc, s)));
                            }
                        })
                    });
                });
            }
        });
    }
    strings(out, 10, o.get("schemes"));
    boolean(out, 11, o.get("deprecated"));
    extensions(out, 13, o);
}

fn path_item_pb(out: &mut Vec<u8>, item: &Value) {
    let Some(o) = item.as_object() else { return };
    for (method, field) in [
        ("get", 2),
        ("put", 3),
        ("post", 4),
        ("delete", 5),
        ("options", 6),
        ("head", 7),
        ("patch", 8),
    ] {
        if let Some(op) = o.get(method) {
            msg(out, field, |w| operation(w, op));
        }
    }
    for p in o
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        msg(out, 9, |pi| parameter(pi, p));
    }
    extensions(out, 10, o);
}

#[cfg(test)]
mod tests {
    use super::*;
    use reddwarf_resources::Catalogue;

    #[test]
    fn definitions_are_complete_and_consistent() {
        let cat = Catalogue::builtin();
        let kinds: Vec<&ResourceKind> = cat.kinds().iter().collect();
        let doc: Value = serde_json::from_slice(&v2_json(&kinds)).unwrap();
        let defs = doc["definitions"].as_object().unwrap();
        let pod_spec = &defs["io.k8s.api.core.v1.PodSpec"];
        let c = &pod_spec["properties"]["containers"];
        assert_eq!(c["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(
            c["items"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.Container"
        );
        // v2: a $ref carries its description beside it; never a type (kubectl refuses that)
        let spec = &defs["io.k8s.api.core.v1.Pod"]["properties"]["spec"];
        assert_eq!(spec["$ref"], "#/definitions/io.k8s.api.core.v1.PodSpec");
        assert!(spec.get("description").is_some());
        let text = serde_json::to_string(&doc).unwrap();
        for r in text.split("\"$ref\":\"#/definitions/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(defs.contains_key(name), "dangling $ref {name}");
        }
        // a schema object (not a map of names such as `properties`)
        fn check(v: &Value, at: &str) {
            let Value::Object(o) = v else { return };
            if o.contains_key("$ref") {
                assert!(!o.contains_key("type"), "{at}: $ref with a type");
            }
            if o.get("type") == Some(&json!("array")) {
                assert!(o.get("items").is_some(), "{at}: array without items");
            }
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("properties", Value::Object(props)) => {
                        for (name, p) in props {
                            check(p, &format!("{at}.properties.{name}"));
                        }
                    }
                    ("items" | "additionalProperties", _) => check(v, &format!("{at}.{k}")),
                    ("allOf", Value::Array(a)) => a.iter().for_each(|s| check(s, at)),
                    _ => {}
                }
            }
        }
        for (name, d) in defs {
            check(d, name);
        }
        assert!(
            defs["io.k8s.api.core.v1.ConfigMap"]["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some()
        );
        let pb = v2_proto(&kinds);
        assert!(pb.len() > 100_000);
        assert_eq!(&pb[..6], b"\x0a\x032.0\x12");
    }
}
