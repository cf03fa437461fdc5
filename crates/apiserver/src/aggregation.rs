//! API groups registered by APIServices that name a Service (aggregated API servers, such
//! as metrics-server). Requests are not proxied to them yet, so, as upstream answers for an
//! APIService that is not available, their groups are listed in discovery (stale in the
//! aggregated form) and every request under them answers 503.

use reddwarf_store::ObjectKey;
use serde_json::Value;

use crate::status::ApiError;
use crate::ApiServer;

/// One aggregated group: its name and versions, the preferred (highest priority) first.
pub struct RemoteGroup {
    pub name: String,
    pub versions: Vec<String>,
}

/// The groups of the stored APIServices backed by a Service, ordered as upstream orders
/// them (by `groupPriorityMinimum`, highest first), leaving out groups this server serves.
pub fn remote_groups(api: &ApiServer) -> Vec<RemoteGroup> {
    let Ok(view) = api.store.read() else {
        return Vec::new();
    };
    let prefix = ObjectKey::resource_prefix("apiregistration.k8s.io", "apiservices");
    let Ok(page) = view.list(&prefix, None, 0, false, |_| true) else {
        return Vec::new();
    };
    // (group, group priority, version priority, version)
    let mut entries: Vec<(String, i64, i64, String)> = page
        .items
        .iter()
        .filter_map(|(_, b)| serde_json::from_slice::<Value>(b).ok())
        .filter(|s| s.pointer("/spec/service").is_some_and(Value::is_object))
        .filter_map(|s| {
            let spec = &s["spec"];
            let group = spec["group"].as_str()?.to_string();
            let version = spec["version"].as_str()?.to_string();
            if group.is_empty()
                || !api
                    .catalogue()
                    .in_group_version(&group, &version)
                    .is_empty()
            {
                return None;
            }
            Some((
                group,
                spec["groupPriorityMinimum"].as_i64().unwrap_or(0),
                spec["versionPriority"].as_i64().unwrap_or(0),
                version,
            ))
        })
        .collect();
    entries.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| a.0.cmp(&b.0))
            .then_with(|| b.2.cmp(&a.2))
            .then_with(|| a.3.cmp(&b.3))
    });
    let mut out: Vec<RemoteGroup> = Vec::new();
    for (group, _, _, version) in entries {
        match out.iter_mut().find(|g| g.name == group) {
            Some(g) => g.versions.push(version),
            None => out.push(RemoteGroup {
                name: group,
                versions: vec![version],
            }),
        }
    }
    out
}

/// The answer for a request under an aggregated group (`version` None: the group itself is
/// served by discovery): upstream's 503 for an APIService that is not available.
pub fn unavailable(api: &ApiServer, group: &str, version: &str) -> Option<ApiError> {
    let registered = remote_groups(api)
        .iter()
        .any(|g| g.name == group && g.versions.iter().any(|v| v == version));
    registered.then(|| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        )
    })
}

/// Upstream's (group, version) → (groupPriorityMinimum, versionPriority) of the APIServices
/// kube-apiserver registers for the groups it serves itself (`Local`).
const LOCAL_PRIORITIES: &[(&str, &str, i64, i64)] = &[
    ("", "v1", 18000, 1),
    ("apiregistration.k8s.io", "v1", 18000, 15),
    ("apps", "v1", 17800, 15),
    ("events.k8s.io", "v1", 17750, 15),
    ("authentication.k8s.io", "v1", 17700, 15),
    ("authorization.k8s.io", "v1", 17600, 15),
    ("autoscaling", "v1", 17500, 15),
    ("autoscaling", "v2", 17500, 30),
    ("batch", "v1", 17400, 15),
    ("certificates.k8s.io", "v1", 17300, 15),
    ("networking.k8s.io", "v1", 17200, 15),
    ("policy", "v1", 17100, 15),
    ("rbac.authorization.k8s.io", "v1", 17000, 15),
    ("storage.k8s.io", "v1", 16800, 15),
    ("apiextensions.k8s.io", "v1", 16700, 15),
    ("admissionregistration.k8s.io", "v1", 16700, 15),
    ("scheduling.k8s.io", "v1", 16600, 15),
    ("coordination.k8s.io", "v1", 16500, 15),
    ("node.k8s.io", "v1", 16300, 15),
    ("discovery.k8s.io", "v1", 16200, 15),
    ("flowcontrol.apiserver.k8s.io", "v1", 16100, 21),
];

/// The Local APIServices for every group version this server serves, as upstream's
/// autoregistration creates them.
pub fn local_api_services(api: &ApiServer) -> Vec<Value> {
    let mut out = Vec::new();
    for (group, versions) in api.catalogue().groups() {
        for version in versions {
            let Some((_, _, gp, vp)) = LOCAL_PRIORITIES
                .iter()
                .find(|(g, v, ..)| *g == group && *v == version)
            else {
                continue;
            };
            out.push(serde_json::json!({
                "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                "metadata": {"name": format!("{version}.{group}")},
                "spec": {"group": group, "version": version,
                    "groupPriorityMinimum": gp, "versionPriority": vp},
            }));
        }
    }
    out
}

/// Whether the APIService `svc` names is stored already.
pub fn api_service_exists(api: &ApiServer, svc: &Value) -> bool {
    let name = svc["metadata"]["name"].as_str().unwrap_or("");
    let key = ObjectKey::new("apiregistration.k8s.io", "apiservices", "", name);
    api.store
        .read()
        .ok()
        .and_then(|view| view.get(key.as_str()).ok().flatten())
        .is_some()
}
