//! The APIService availability controller: keeps each APIService's `Available` condition as
//! upstream's aggregator does. Local APIServices (no `spec.service`) are available; one
//! backed by a Service is not while the Service is missing, does not listen on the port or
//! has no ready endpoints for it. This server does not proxy to aggregated API servers yet,
//! so an APIService whose Service is ready is reported as failing its discovery check
//! rather than pretending to be served.

use std::sync::Arc;

use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher::{self, watcher};
use kube::{Client, ResourceExt};
use serde_json::{json, Value};

use crate::{error_action, Error};

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiregistration.k8s.io", "v1", "APIService"),
        "apiservices",
    )
}

pub async fn run(client: Client) {
    let ar = resource();
    let apiservices: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    // Any Service or Endpoints change may change an APIService's availability.
    let services = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .map(|_| ());
    let endpoints = watcher(
        Api::<Endpoints>::all(client.clone()),
        watcher::Config::default(),
    )
    .map(|_| ());
    Controller::new_with(apiservices, watcher::Config::default(), ar)
        .reconcile_all_on(stream::select(services, endpoints))
        .run(
            reconcile,
            |_, e, _| error_action("apiservice-availability", e),
            Arc::new(client),
        )
        .for_each(|_| async {})
        .await;
}

/// (status, reason, message) of the `Available` condition.
async fn availability(
    client: &Client,
    spec: &Value,
) -> Result<(bool, &'static str, String), Error> {
    let Some(svc) = spec.get("service").filter(|s| s.is_object()) else {
        return Ok((
            true,
            "Local",
            "Local APIServices are always available".into(),
        ));
    };
    let ns = svc["namespace"].as_str().unwrap_or("");
    let name = svc["name"].as_str().unwrap_or("");
    let port = svc["port"].as_i64().unwrap_or(443);
    let Some(service) = Api::<Service>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
    else {
        return Ok((
            false,
            "ServiceNotFound",
            format!("service/{name} in {ns:?} is not present"),
        ));
    };
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let Some(sp) = ports.iter().find(|p| i64::from(p.port) == port) else {
        return Ok((
            false,
            "ServicePortError",
            format!("service/{name} in {ns:?} is not listening on port {port}"),
        ));
    };
    let port_name = sp.name.clone().unwrap_or_default();
    let endpoints = Api::<Endpoints>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?;
    let ready = endpoints
        .and_then(|e| e.subsets)
        .unwrap_or_default()
        .iter()
        .any(|s| {
            s.addresses.as_ref().is_some_and(|a| !a.is_empty())
                && s.ports.as_ref().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p.name.clone().unwrap_or_default() == port_name)
                })
        });
    if !ready {
        return Ok((
            false,
            "MissingEndpoints",
            format!(
                "endpoints for service/{name} in {ns:?} have no addresses with port name {port_name:?}"
            ),
        ));
    }
    let group = spec["group"].as_str().unwrap_or("");
    let version = spec["version"].as_str().unwrap_or("");
    Ok((
        false,
        "FailedDiscoveryCheck",
        format!(
            "failing or missing response from https://{name}.{ns}.svc:{port}/apis/{group}/{version}: this server does not proxy to aggregated API servers yet"
        ),
    ))
}

async fn reconcile(obj: Arc<DynamicObject>, client: Arc<Client>) -> Result<Action, Error> {
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let spec = obj.data.get("spec").cloned().unwrap_or(Value::Null);
    let (ok, reason, message) = availability(&client, &spec).await?;
    let status = if ok { "True" } else { "False" };
    let conditions = obj
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let current = conditions.iter().find(|c| c["type"] == "Available");
    if current.is_some_and(|c| {
        c["status"] == status && c["reason"] == reason && c["message"] == message.as_str()
    }) {
        return Ok(Action::await_change());
    }
    // The transition time moves only when the status does.
    let since = match current {
        Some(c) if c["status"] == status => c["lastTransitionTime"].clone(),
        _ => json!(Time(Timestamp::now())),
    };
    let mut next: Vec<Value> = conditions
        .iter()
        .filter(|c| c["type"] != "Available")
        .cloned()
        .collect();
    next.push(
        json!({"type": "Available", "status": status, "lastTransitionTime": since,
        "reason": reason, "message": message}),
    );
    let api: Api<DynamicObject> = Api::all_with((*client).clone(), &resource());
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": next}})),
    )
    .await?;
    Ok(Action::await_change())
}
