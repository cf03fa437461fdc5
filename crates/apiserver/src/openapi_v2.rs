//! `/openapi/v2` in the gnostic protobuf form (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`)
//! that kubectl up to 1.27 reads to learn which operations accept `fieldValidation`. Only
//! paths, their operations' query parameters and the group-version-kind extension are
//! written; definitions are absent, so clients use their compiled-in schemas.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, StatusCode};
use reddwarf_resources::ResourceKind;

use crate::ApiServer;

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

fn string_field(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes_field(out, field, s.as_bytes());
}

fn bool_field(out: &mut Vec<u8>, field: u32, b: bool) {
    varint(out, (field as u64) << 3);
    varint(out, b as u64);
}

/// gnostic NamedAny{name=1, value=2: Any{yaml=2}}.
fn named_any(name: &str, yaml: &str) -> Vec<u8> {
    let mut any = Vec::new();
    string_field(&mut any, 2, yaml);
    let mut out = Vec::new();
    string_field(&mut out, 1, name);
    bytes_field(&mut out, 2, &any);
    out
}

/// ParametersItem{parameter=1: Parameter{non_body_parameter=2: NonBodyParameter{query=3: QueryParameterSubSchema}}}.
fn query_param(name: &str, ty: &str) -> Vec<u8> {
    let mut q = Vec::new();
    string_field(&mut q, 2, "query");
    string_field(&mut q, 4, name);
    string_field(&mut q, 6, ty);
    bool_field(&mut q, 20, true);
    let mut nb = Vec::new();
    bytes_field(&mut nb, 3, &q);
    let mut p = Vec::new();
    bytes_field(&mut p, 2, &nb);
    let mut item = Vec::new();
    bytes_field(&mut item, 1, &p);
    item
}

fn operation(k: &ResourceKind, id: &str, action: &str, params: &[(&str, &str)]) -> Vec<u8> {
    let mut op = Vec::new();
    string_field(&mut op, 5, id);
    string_field(&mut op, 6, "application/json");
    string_field(&mut op, 7, "*/*");
    for (n, t) in params {
        bytes_field(&mut op, 8, &query_param(n, t));
    }
    // responses=9: Responses{response_code=1: NamedResponseValue{name "200", value: ResponseValue{response=1: Response{description=1}}}}
    let mut resp = Vec::new();
    string_field(&mut resp, 1, "OK");
    let mut rv = Vec::new();
    bytes_field(&mut rv, 1, &resp);
    let mut nrv = Vec::new();
    string_field(&mut nrv, 1, "200");
    bytes_field(&mut nrv, 2, &rv);
    let mut responses = Vec::new();
    bytes_field(&mut responses, 1, &nrv);
    bytes_field(&mut op, 9, &responses);
    bytes_field(
        &mut op,
        13,
        &named_any("x-kubernetes-action", &format!("{action}\n")),
    );
    let gvk = format!(
        "group: \"{}\"\nkind: {}\nversion: {}\n",
        k.group, k.kind, k.version
    );
    bytes_field(
        &mut op,
        13,
        &named_any("x-kubernetes-group-version-kind", &gvk),
    );
    op
}

const WRITE: &[(&str, &str)] = &[
    ("dryRun", "string"),
    ("fieldManager", "string"),
    ("fieldValidation", "string"),
];
const PATCH: &[(&str, &str)] = &[
    ("dryRun", "string"),
    ("fieldManager", "string"),
    ("fieldValidation", "string"),
    ("force", "boolean"),
];

fn path_item(ops: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut item = Vec::new();
    for (field, op) in ops {
        bytes_field(&mut item, *field, op);
    }
    item
}

pub fn document(api: &ApiServer) -> Vec<u8> {
    let mut paths = Vec::new();
    for k in api.catalogue.kinds() {
        let base = if k.group.is_empty() {
            format!("/api/{}", k.version)
        } else {
            format!("/apis/{}/{}", k.group, k.version)
        };
        let coll = if k.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", k.plural)
        } else {
            format!("{base}/{}", k.plural)
        };
        let id = format!("{}{}", k.kind, k.version);
        let mut named = Vec::new();
        string_field(&mut named, 1, &coll);
        let item = path_item(&[
            (
                2,
                operation(
                    k,
                    &format!("list{id}"),
                    "list",
                    &[("labelSelector", "string")],
                ),
            ),
            (4, operation(k, &format!("create{id}"), "post", WRITE)),
        ]);
        bytes_field(&mut named, 2, &item);
        bytes_field(&mut paths, 2, &named);
        let mut named = Vec::new();
        string_field(&mut named, 1, &format!("{coll}/{{name}}"));
        let item = path_item(&[
            (2, operation(k, &format!("read{id}"), "get", &[])),
            (3, operation(k, &format!("replace{id}"), "put", WRITE)),
            (
                5,
                operation(k, &format!("delete{id}"), "delete", &[("dryRun", "string")]),
            ),
            (8, operation(k, &format!("patch{id}"), "patch", PATCH)),
        ]);
        bytes_field(&mut named, 2, &item);
        bytes_field(&mut paths, 2, &named);
    }
    let mut info = Vec::new();
    string_field(&mut info, 1, "Kubernetes");
    string_field(&mut info, 2, "v1.33.0");
    let mut doc = Vec::new();
    string_field(&mut doc, 1, "2.0");
    bytes_field(&mut doc, 2, &info);
    bytes_field(&mut doc, 8, &paths);
    doc
}

pub fn serve(api: &ApiServer, headers: &HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("protobuf") {
        // Upstream labels the body octet-stream: the gnostic media type is not a valid MIME token.
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            document(api),
        )
            .into_response();
    }
    crate::status::ApiError::not_acceptable(accept).into_response()
}
