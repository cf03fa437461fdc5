//! Pod subresources: `binding` (assign a pod to a node, as the scheduler does) and `eviction`
//! (a policy/v1 Eviction deletes the pod). The node-bound ones (`log`, `exec`, `attach`,
//! `portforward`, `proxy`) go to the node's agent: see `node_proxy`.

use axum::response::Response;
use http::StatusCode;
use reddwarf_store::{Mutation, MutationError, ObjectKey, Outcome};
use serde_json::{json, Value};

use crate::codec;
use crate::meta::meta_str;
use crate::rest::{parse_stored, Ctx};
use crate::status::{ApiError, ApiResult};

/// The pod's key (also when the request came through the `bindings` resource).
fn pod_key(ctx: &Ctx, name: &str) -> ObjectKey {
    ObjectKey::new("", "pods", &ctx.rp.namespace, name)
}

fn pod(ctx: &Ctx, name: &str) -> ApiResult<(u64, Value)> {
    let view = ctx.api.store.read().map_err(ApiError::internal)?;
    let key = pod_key(ctx, name);
    let (rev, bytes) = view
        .get(key.as_str())
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    Ok((rev, parse_stored(&bytes)?))
}

pub async fn serve(
    ctx: &Ctx<'_>,
    sub: &str,
    method: &http::Method,
    body: &[u8],
) -> ApiResult<Response> {
    let name = ctx.rp.name.clone().unwrap_or_default();
    match (sub, method.as_str()) {
        ("binding", "POST") => {
            let b = codec::decode_object(ctx.headers, body)?;
            bind(ctx, &name, &b).await
        }
        ("eviction", "POST") => evict(ctx, &name, body).await,
        _ => Err(ApiError::method_not_allowed()),
    }
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

pub async fn bind(ctx: &Ctx<'_>, name: &str, binding: &Value) -> ApiResult<Response> {
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
    for _ in 0..8 {
        let (rev, mut p) = pod(ctx, name)?;
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
        // As upstream's assignPod: the binding's annotations land on the pod, and the pod is
        // marked PodScheduled=True.
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
        crate::rest::canonical_order(&mut p);
        // The binding goes around the pod update validation: nodeName is immutable to clients.
        let m = Mutation::Update {
            key: pod_key(ctx, name).as_str().to_string(),
            object: serde_json::to_vec(&p).map_err(ApiError::internal)?,
            expect_revision: Some(rev),
            expect_uid: binding
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .map(String::from),
        };
        match ctx.propose(m).await? {
            Outcome::Applied { .. } => {
                let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
                return Ok(codec::json_value(StatusCode::CREATED, &status));
            }
            Outcome::Refused(MutationError::Conflict) => continue,
            Outcome::Refused(MutationError::NotFound) => {
                return Err(ApiError::not_found("", "pods", name))
            }
            Outcome::Refused(e) => return Err(ApiError::internal(e)),
        }
    }
    Err(ApiError::conflict("", "pods", name))
}

/// A policy/v1 Eviction: delete the pod with the eviction's delete options. (Disruption
/// budgets are enforced once their controller keeps `disruptionsAllowed` current.)
async fn evict(ctx: &Ctx<'_>, name: &str, body: &[u8]) -> ApiResult<Response> {
    let e = codec::decode_object(ctx.headers, body)?;
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
    let opts = e.get("deleteOptions").cloned().unwrap_or(json!({}));
    crate::rest::delete_pod_for_eviction(ctx, name, &opts).await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(codec::json_value(StatusCode::CREATED, &status))
}
