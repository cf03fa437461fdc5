use serde_json::{json, Value};

use crate::columns::{
    age, age_col, count_map, default_columns, default_row, int, name, name_col, since, Column,
};
use crate::defaults;
use crate::jsonpath::{i, s};
use crate::{NameRule, ResourceKind, TableRow};

fn none_if_empty(v: &str) -> Value {
    Value::String(if v.is_empty() {
        "<none>".into()
    } else {
        v.into()
    })
}

fn no_defaults(_: &mut Value) {}

/// The built-in kinds reddwarf serves. Adding a kind is adding one entry here.
pub fn builtin_kinds() -> Vec<ResourceKind> {
    let base = ResourceKind {
        group: "",
        version: "v1",
        kind: "",
        plural: "",
        singular: "",
        namespaced: true,
        short_names: &[],
        categories: &[],
        status: false,
        scale: false,
        generation: false,
        selectable_fields: &[],
        columns: default_columns,
        row: default_row,
        defaults: no_defaults,
        name_rule: NameRule::Subdomain,
    };
    vec![
        ResourceKind {
            kind: "Namespace",
            plural: "namespaces",
            singular: "namespace",
            namespaced: false,
            short_names: &["ns"],
            status: true,
            selectable_fields: &[("status.phase", "status.phase")],
            columns: || {
                vec![
                    name_col(),
                    Column::new("Status", "string", 0, "The status of the namespace"),
                    age_col(),
                ]
            },
            row: |o, now| vec![name(o), json!(s(o, "/status/phase")), age(o, now)],
            defaults: defaults::namespace,
            name_rule: NameRule::Label,
            ..base.clone()
        },
        ResourceKind {
            kind: "ConfigMap",
            plural: "configmaps",
            singular: "configmap",
            short_names: &["cm"],
            columns: || {
                vec![
                    name_col(),
                    Column::new("Data", "integer", 0, "Number of data entries"),
                    age_col(),
                ]
            },
            row: |o, now| {
                vec![
                    name(o),
                    json!(count_map(o, "/data") + count_map(o, "/binaryData")),
                    age(o, now),
                ]
            },
            ..base.clone()
        },
        ResourceKind {
            kind: "Secret",
            plural: "secrets",
            singular: "secret",
            selectable_fields: &[("type", "type")],
            columns: || {
                vec![
                    name_col(),
                    Column::new("Type", "string", 0, "The type of the secret"),
                    Column::new("Data", "integer", 0, "Number of data entries"),
                    age_col(),
                ]
            },
            row: |o, now| {
                vec![
                    name(o),
                    json!(s(o, "/type")),
                    json!(count_map(o, "/data")),
                    age(o, now),
                ]
            },
            defaults: defaults::secret,
            ..base.clone()
        },
        ResourceKind {
            kind: "Pod",
            plural: "pods",
            singular: "pod",
            short_names: &["po"],
            categories: &["all"],
            status: true,
            selectable_fields: &[
                ("spec.nodeName", "spec.nodeName"),
                ("spec.restartPolicy", "spec.restartPolicy"),
                ("spec.schedulerName", "spec.schedulerName"),
                ("spec.serviceAccountName", "spec.serviceAccountName"),
                ("spec.hostNetwork", "spec.hostNetwork"),
                ("status.phase", "status.phase"),
                ("status.podIP", "status.podIP"),
                ("status.nominatedNodeName", "status.nominatedNodeName"),
            ],
            columns: || {
                vec![
                    name_col(),
                    Column::new("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
                    Column::new("Status", "string", 0, "The aggregate status of the containers in this pod."),
                    Column::new("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
                    age_col(),
                    Column::new("IP", "string", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
                    Column::new("Node", "string", 1, "NodeName is a request to schedule this pod onto a specific node."),
                    Column::new("Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."),
                    Column::new("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
                ]
            },
            row: pod_row,
            defaults: defaults::pod,
            ..base.clone()
        },
        ResourceKind {
            kind: "Service",
            plural: "services",
            singular: "service",
            short_names: &["svc"],
            categories: &["all"],
            status: true,
            selectable_fields: &[
                ("spec.clusterIP", "spec.clusterIP"),
                ("spec.type", "spec.type"),
            ],
            columns: || {
                vec![
                    name_col(),
                    Column::new("Type", "string", 0, "type determines how the Service is exposed."),
                    Column::new("Cluster-IP", "string", 0, "clusterIP is the IP address of the service."),
                    Column::new("External-IP", "string", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
                    Column::new("Port(s)", "string", 0, "The list of ports that are exposed by this service."),
                    age_col(),
                    Column::new("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."),
                ]
            },
            row: service_row,
            defaults: defaults::service,
            name_rule: NameRule::Label1035,
            ..base.clone()
        },
        ResourceKind {
            kind: "ServiceAccount",
            plural: "serviceaccounts",
            singular: "serviceaccount",
            short_names: &["sa"],
            columns: || {
                vec![name_col(), Column::new("Secrets", "string", 0, "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."), age_col()]
            },
            row: |o, now| {
                let n = o
                    .pointer("/secrets")
                    .and_then(Value::as_array)
                    .map(|a| a.len())
                    .unwrap_or(0);
                vec![name(o), json!(n), age(o, now)]
            },
            ..base.clone()
        },
        ResourceKind {
            kind: "Event",
            plural: "events",
            singular: "event",
            short_names: &["ev"],
            selectable_fields: &[
                ("involvedObject.kind", "involvedObject.kind"),
                ("involvedObject.namespace", "involvedObject.namespace"),
                ("involvedObject.name", "involvedObject.name"),
                ("involvedObject.uid", "involvedObject.uid"),
                ("involvedObject.apiVersion", "involvedObject.apiVersion"),
                (
                    "involvedObject.resourceVersion",
                    "involvedObject.resourceVersion",
                ),
                ("involvedObject.fieldPath", "involvedObject.fieldPath"),
                ("reason", "reason"),
                ("reportingComponent", "reportingComponent"),
                ("source", "source.component"),
                ("type", "type"),
            ],
            columns: || {
                vec![
                    Column::new("Last Seen", "string", 0, "Time when this Event was last observed."),
                    Column::new("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future."),
                    Column::new("Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
                    Column::new("Object", "string", 0, "The object that this event is about."),
                    Column::new("Subobject", "string", 1, "The subobject that this event is about."),
                    Column::new("Source", "string", 1, "The component reporting this event. Should be a short machine understandable string."),
                    Column::new("Message", "string", 0, "A human-readable description of the status of this operation."),
                    Column::new("First Seen", "string", 1, "The time at which the event was first recorded."),
                    Column::new("Count", "string", 1, "The number of times this event has occurred."),
                    Column::new("Name", "string", 1, "Name must be unique within a namespace."),
                ]
            },
            row: event_row,
            ..base.clone()
        },
        ResourceKind {
            group: "apps",
            kind: "Deployment",
            plural: "deployments",
            singular: "deployment",
            short_names: &["deploy"],
            categories: &["all"],
            status: true,
            // `/scale` is not served yet; discovery must not advertise it.
            scale: false,
            generation: true,
            columns: || {
                vec![
                    name_col(),
                    Column::new("Ready", "string", 0, "Number of the pod with ready state"),
                    Column::new("Up-to-date", "string", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
                    Column::new("Available", "string", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
                    age_col(),
                    Column::new("Containers", "string", 1, "Names of each container in the template."),
                    Column::new("Images", "string", 1, "Images referenced by each container in the template."),
                    Column::new("Selector", "string", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
                ]
            },
            row: deployment_row,
            defaults: defaults::deployment,
            ..base.clone()
        },
        ResourceKind {
            group: "coordination.k8s.io",
            kind: "Lease",
            plural: "leases",
            singular: "lease",
            columns: || {
                vec![
                    name_col(),
                    Column::new("Holder", "string", 0, "The holder of the lease"),
                    age_col(),
                ]
            },
            row: |o, now| vec![name(o), json!(s(o, "/spec/holderIdentity")), age(o, now)],
            ..base.clone()
        },
    ]
}

fn pod_row(o: &Value, now: i64) -> TableRow {
    let containers = o
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|a| a.len())
        .unwrap_or(0);
    let statuses = o
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready") == Some(&Value::Bool(true)))
        .count();
    let restarts: i64 = statuses.iter().map(|c| i(c, "/restartCount")).sum();
    let mut reason = s(o, "/status/phase").to_string();
    if !s(o, "/status/reason").is_empty() {
        reason = s(o, "/status/reason").to_string();
    }
    for c in statuses.iter().rev() {
        let waiting = s(c, "/state/waiting/reason");
        let terminated = s(c, "/state/terminated/reason");
        if !waiting.is_empty() {
            reason = waiting.to_string();
        } else if !terminated.is_empty() {
            reason = terminated.to_string();
        }
    }
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    let gates = o
        .pointer("/spec/readinessGates")
        .and_then(Value::as_array)
        .map(|a| a.len())
        .unwrap_or(0);
    vec![
        name(o),
        json!(format!("{ready}/{containers}")),
        json!(reason),
        json!(restarts.to_string()),
        age(o, now),
        none_if_empty(s(o, "/status/podIP")),
        none_if_empty(s(o, "/spec/nodeName")),
        none_if_empty(s(o, "/status/nominatedNodeName")),
        if gates == 0 {
            json!("<none>")
        } else {
            json!(format!("0/{gates}"))
        },
    ]
}

fn service_row(o: &Value, now: i64) -> TableRow {
    let ty = s(o, "/spec/type");
    let ports: Vec<String> = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    let port = i(p, "/port");
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(np) if np != 0 => format!("{port}:{np}/{proto}"),
                        _ => format!("{port}/{proto}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let mut external: Vec<String> = o
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if let Some(ing) = o
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
    {
        for x in ing {
            let v = x
                .get("ip")
                .or_else(|| x.get("hostname"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if !v.is_empty() {
                external.push(v.into());
            }
        }
    }
    let external = if !external.is_empty() {
        external.join(",")
    } else if ty == "LoadBalancer" {
        "<pending>".into()
    } else if ty == "ExternalName" {
        s(o, "/spec/externalName").to_string()
    } else {
        "<none>".into()
    };
    let selector = o
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .map(|m| {
            let mut v: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            v.sort();
            v.join(",")
        })
        .unwrap_or_default();
    vec![
        name(o),
        json!(ty),
        none_if_empty(s(o, "/spec/clusterIP")),
        json!(external),
        none_if_empty(&ports.join(",")),
        age(o, now),
        none_if_empty(&selector),
    ]
}

fn deployment_row(o: &Value, now: i64) -> TableRow {
    let containers = o
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
    let selector = o
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            let mut v: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            v.sort();
            v.join(",")
        })
        .unwrap_or_default();
    vec![
        name(o),
        json!(format!(
            "{}/{}",
            i(o, "/status/readyReplicas"),
            i(o, "/spec/replicas")
        )),
        int(o, "/status/updatedReplicas"),
        int(o, "/status/availableReplicas"),
        age(o, now),
        json!(names.join(",")),
        json!(images.join(",")),
        none_if_empty(&selector),
    ]
}

fn event_row(o: &Value, now: i64) -> TableRow {
    let last = [
        "/series/lastObservedTime",
        "/lastTimestamp",
        "/eventTime",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .map(|p| s(o, p))
    .find(|v| !v.is_empty())
    .unwrap_or("");
    let first = [
        "/firstTimestamp",
        "/eventTime",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .map(|p| s(o, p))
    .find(|v| !v.is_empty())
    .unwrap_or("");
    let source = {
        let c = s(o, "/source/component");
        let c = if c.is_empty() {
            s(o, "/reportingComponent")
        } else {
            c
        };
        let h = s(o, "/source/host");
        if h.is_empty() {
            c.to_string()
        } else {
            format!("{c}, {h}")
        }
    };
    let count = o.get("count").and_then(Value::as_i64).unwrap_or(1);
    vec![
        since(last, now),
        json!(s(o, "/type")),
        json!(s(o, "/reason")),
        json!(format!(
            "{}/{}",
            s(o, "/involvedObject/kind").to_lowercase(),
            s(o, "/involvedObject/name")
        )),
        json!(s(o, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(o, "/message").trim()),
        since(first, now),
        json!(count.to_string()),
        name(o),
    ]
}
