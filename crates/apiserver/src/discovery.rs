//! API discovery: legacy (`/api`, `/apis`, per group-version) and aggregated
//! (`apidiscovery.k8s.io` v2 and v2beta1) documents built from the catalogue.

use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use reddwarf_resources::ResourceKind;
use serde_json::{json, Value};

use crate::aggregation;
use crate::codec::{self, Wanted};
use crate::status::ApiError;
use crate::ApiServer;

fn scope(k: &ResourceKind) -> &'static str {
    if k.namespaced {
        "Namespaced"
    } else {
        "Cluster"
    }
}

fn sub_verbs(k: &ResourceKind, sub: &str) -> Vec<&'static str> {
    if let Some(x) = k.extra_subresource(sub) {
        return x.verbs.to_vec();
    }
    vec!["get", "patch", "update"]
}

/// The (group, version, kind) a subresource answers with, when it is not the parent's.
fn sub_kind(k: &ResourceKind, sub: &str) -> Option<(&'static str, &'static str, &'static str)> {
    if sub == "scale" {
        return Some(("autoscaling", "v1", "Scale"));
    }
    let x = k.extra_subresource(sub)?;
    x.response.map(|(g, kind)| (g, "v1", kind))
}

fn aggregated_resource(k: &ResourceKind) -> Value {
    let gvk = json!({"group": k.group, "version": k.version, "kind": k.kind});
    let mut r = json!({
        "resource": k.plural,
        "responseKind": gvk,
        "scope": scope(k),
        "singularResource": k.singular,
        "verbs": k.verbs(),
    });
    if !k.short_names.is_empty() {
        r["shortNames"] = json!(k.short_names);
    }
    if !k.categories.is_empty() {
        r["categories"] = json!(k.categories);
    }
    let subs: Vec<Value> = k
        .subresources()
        .into_iter()
        .map(|s| {
            let kind = match sub_kind(k, s) {
                Some((g, v, k)) => json!({"group": g, "version": v, "kind": k}),
                None => gvk.clone(),
            };
            json!({"subresource": s, "responseKind": kind, "verbs": sub_verbs(k, s)})
        })
        .collect();
    if !subs.is_empty() {
        r["subresources"] = Value::Array(subs);
    }
    r
}

fn aggregated_group(api: &ApiServer, group: &str, versions: &[&str]) -> Value {
    let mut meta = json!({"creationTimestamp": null});
    if !group.is_empty() {
        meta["name"] = json!(group);
    }
    json!({
        "metadata": meta,
        "versions": versions.iter().map(|v| json!({
            "version": v,
            "resources": api.catalogue().in_group_version(group, v).into_iter().map(aggregated_resource).collect::<Vec<_>>(),
            "freshness": "Current",
        })).collect::<Vec<_>>(),
    })
}

fn aggregated(items: Vec<Value>, v2beta1: bool) -> Response {
    let version = if v2beta1 { "v2beta1" } else { "v2" };
    let body = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    });
    // kubectl only trusts the aggregated form when the Content-Type says so exactly.
    let ct = format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList");
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ct),
            (header::VARY, "Accept".to_string()),
        ],
        {
            let mut b = serde_json::to_vec(&body).unwrap_or_default();
            b.push(b'\n');
            b
        },
    )
        .into_response()
}

pub fn api(api: &ApiServer, wanted: Wanted) -> Response {
    if let Wanted::Discovery { v2beta1 } = wanted {
        return aggregated(vec![aggregated_group(api, "", &["v1"])], v2beta1);
    }
    let addr = api.advertise.read().map(|a| a.clone()).unwrap_or_default();
    codec::json_value(
        StatusCode::OK,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}],
        }),
    )
}

fn group_json(group: &str, versions: &[&str]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": gv(versions[0]),
    })
}

pub fn apis(api: &ApiServer, wanted: Wanted) -> Response {
    let groups: Vec<_> = api
        .catalogue()
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .collect();
    let remote = aggregation::remote_groups(api);
    if let Wanted::Discovery { v2beta1 } = wanted {
        let mut items: Vec<Value> = groups
            .iter()
            .map(|(g, vs)| aggregated_group(api, g, vs))
            .collect();
        // Aggregated groups whose servers are not reached: listed, without resources, stale.
        items.extend(remote.iter().map(|g| {
            json!({
                "metadata": {"name": g.name, "creationTimestamp": null},
                "versions": g.versions.iter().map(|v| json!({
                    "version": v, "freshness": "Stale"})).collect::<Vec<_>>(),
            })
        }));
        return aggregated(items, v2beta1);
    }
    let mut list: Vec<Value> = groups.iter().map(|(g, vs)| group_json(g, vs)).collect();
    list.extend(remote.iter().map(|g| {
        let vs: Vec<&str> = g.versions.iter().map(String::as_str).collect();
        group_json(&g.name, &vs)
    }));
    codec::json_value(
        StatusCode::OK,
        &json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": list,
        }),
    )
}

pub fn group(api: &ApiServer, name: &str) -> Response {
    let found = api
        .catalogue()
        .groups()
        .into_iter()
        .find(|(g, _)| *g == name && !g.is_empty())
        .map(|(g, vs)| group_json(g, &vs))
        .or_else(|| {
            aggregation::remote_groups(api)
                .into_iter()
                .find(|g| g.name == name)
                .map(|g| {
                    let vs: Vec<&str> = g.versions.iter().map(String::as_str).collect();
                    group_json(&g.name, &vs)
                })
        });
    match found {
        Some(mut v) => {
            v["kind"] = json!("APIGroup");
            v["apiVersion"] = json!("v1");
            codec::json_value(StatusCode::OK, &v)
        }
        None => ApiError::path_not_found().into_response(),
    }
}

pub fn resources(api: &ApiServer, group: &str, version: &str) -> Response {
    let catalogue = api.catalogue();
    let kinds = catalogue.in_group_version(group, version);
    if kinds.is_empty() {
        return aggregation::unavailable(api, group, version)
            .unwrap_or_else(ApiError::path_not_found)
            .into_response();
    }
    let mut list = Vec::new();
    for k in kinds {
        let mut r = json!({
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": k.verbs(),
        });
        if !k.short_names.is_empty() {
            r["shortNames"] = json!(k.short_names);
        }
        if !k.categories.is_empty() {
            r["categories"] = json!(k.categories);
        }
        list.push(r);
        for s in k.subresources() {
            let mut sub = json!({
                "name": format!("{}/{}", k.plural, s),
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": sub_verbs(k, s),
            });
            if let Some((g, v, kind)) = sub_kind(k, s) {
                // Clients (the scale client, eviction) resolve the subresource's kind from these.
                if s == "scale" || !g.is_empty() {
                    sub["group"] = json!(g);
                    sub["version"] = json!(v);
                }
                sub["kind"] = json!(kind);
            }
            list.push(sub);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    codec::json_value(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}
