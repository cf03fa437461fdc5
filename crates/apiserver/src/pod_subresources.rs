//! Pod subresources: `binding` (assign a pod to a node, as the scheduler does) and `eviction`
//! (a policy/v1 Eviction deletes the pod). The node-bound ones (`log`, `exec`, `attach`,
//! `portforward`, `proxy`) go to the node's agent: see `node_proxy`.

use axum::response::Response;
use http::StatusCode;
use reddwarf_store::Mutation;
use serde_json::{json, Value};

use crate::codec;
use crate::meta::meta_str;
use crate::path::ResourcePath;
use crate::registry::{self, parse_stored, Attempt, DeleteOptions};
use crate::request::Scope;
use crate::status::{ApiError, ApiResult};

pub async fn serve(
    scope: &Scope<'_>,
    sub: &str,
    method: &http::Method,
    body: &[u8],
) -> ApiResult<Response> {
    let name = scope.name().to_string();
    match (sub, method.as_str()) {
        ("binding", "POST") => {
            let b = codec::decode_object(scope.headers, body)?;
            bind(scope, &name, &b).await
        }
        ("eviction", "POST") => evict(scope, &name, body).await,
        ("token", "POST") => crate::sa_token::token_request(scope, &name, body),
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// A create of the `bindings` resource: the same as pods/binding of the pod it names.
pub async fn bind_resource(scope: &Scope<'_>, body: &[u8]) -> ApiResult<Response> {
    let b = codec::decode_object(scope.headers, body)?;
    let name = meta_str(&b, "name").to_string();
    let catalogue = scope.api.catalogue();
    let pods = catalogue
        .by_resource("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("the catalogue has no pods"))?;
    let rp = ResourcePath {
        name: Some(name.clone()),
        subresource: Some("binding".into()),
        ..scope.rp.clone()
    };
    let pod_scope = Scope {
        warnings: Default::default(),
        verb: scope.verb,
        api: scope.api,
        kind: pods,
        rp: &rp,
        query: scope.query,
        headers: scope.headers,
        user: scope.user,
        wanted: scope.wanted,
        slim: scope.slim,
        write: scope.write.clone(),
    };
    bind(&pod_scope, &name, &b).await
}

/// Assigns pod `name` to the node a Binding names (pods/binding, and the bindings resource).
fn set_scheduled(pod: &mut Value) {
    let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
        "lastTransitionTime": crate::meta::now_rfc3339()});
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    let conds = pod["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    if let Some(Value::Array(cs)) = conds {
        match cs.iter_mut().find(|c| c["type"] == "PodScheduled") {
            Some(c) => *c = cond,
            None => cs.push(cond),
        }
    }
}

/// Assigns pod `name` (of `scope`, a pods request) to the node `binding` names.
pub async fn bind(scope: &Scope<'_>, name: &str, binding: &Value) -> ApiResult<Response> {
    let target = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if target.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            name,
            vec![crate::status::Cause::required("target.name", "")],
        ));
    }
    if binding
        .pointer("/target/kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "Node")
    {
        return Err(ApiError::bad_request("binding target must be a Node"));
    }
    let key = scope.key(name);
    let expect_uid = binding
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(String::from);
    registry::guaranteed_update(scope, &key, name, |rev, bytes| {
        let mut p = parse_stored(&bytes)?;
        let current = p
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !current.is_empty() {
            return Err(ApiError::conflict_message(
                "",
                "pods",
                name,
                &format!("pod {name} is already assigned to node \"{current}\""),
            ));
        }
        if p.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::conflict_message(
                "",
                "pods",
                name,
                &format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        p["spec"]["nodeName"] = json!(target);
        // As upstream's assignPod: the binding's annotations land on the pod, and the pod
        // is marked PodScheduled=True.
        if let Some(a) = binding
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
        {
            let meta = crate::meta::meta_mut(&mut p);
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(m) = annotations.as_object_mut() {
                for (k, v) in a {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        set_scheduled(&mut p);
        registry::canonical_order(&mut p);
        // The binding goes around the pod update strategy: nodeName is immutable to clients.
        Ok(Attempt::Write {
            mutation: Mutation::Update {
                key: key.as_str().to_string(),
                object: serde_json::to_vec(&p).map_err(ApiError::internal)?,
                expect_revision: Some(rev),
                expect_uid: expect_uid.clone(),
            },
            pinned: false,
            alloc: None,
            object: p,
        })
    })
    .await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(codec::json_value(StatusCode::CREATED, &status))
}

/// A policy/v1 Eviction: delete the pod with the eviction's delete options. (Disruption
/// budgets are enforced once their controller keeps `disruptionsAllowed` current.)
async fn evict(scope: &Scope<'_>, name: &str, body: &[u8]) -> ApiResult<Response> {
    let e = codec::decode_object(scope.headers, body)?;
    if e.get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "Eviction")
    {
        return Err(ApiError::bad_request(
            "the body of a pods/eviction request must be an Eviction",
        ));
    }
    let evicted = meta_str(&e, "name");
    if !evicted.is_empty() && evicted != name {
        return Err(ApiError::bad_request(format!(
            "name in URL does not match name in Eviction object: {name} != {evicted}"
        )));
    }
    let opts = DeleteOptions::from_value(e.get("deleteOptions").unwrap_or(&json!({})))?;
    registry::delete(scope, &opts).await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(codec::json_value(StatusCode::CREATED, &status))
}
