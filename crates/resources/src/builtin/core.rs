//! core/v1 (the legacy group, `/api/v1`). componentstatuses is left out: it reports on
//! processes this server does not have.

use serde_json::{json, Value};

use super::strategies::*;
use super::{none_if_empty, BASE};
use crate::columns::{
    age, age_col, col, container_cells, container_cols, count_map, int, name, name_col,
    parse_rfc3339, scalar_text, since, str_or, wide, Column, TableRow,
};
use crate::defaults;
use crate::duration::human_duration;
use crate::jsonpath::{i, s};
use crate::labels::format_labels;
use crate::validation;
use crate::Backend;
use crate::Basic;
use crate::StrategyRef;
use crate::{
    bool_field, field, int_field, NameRule, ResourceKind, Subresource, SubresourceRole, PROXY_VERBS,
};

/// A `proxy` subresource: answers with the parent's `<Kind>ProxyOptions` in discovery.
const fn proxy(options: &'static str) -> Subresource {
    Subresource {
        name: "proxy",
        response: Some(("", options)),
        verbs: PROXY_VERBS,
        role: SubresourceRole::Proxy,
    }
}

const fn handled(
    name: &'static str,
    group: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
) -> Subresource {
    Subresource {
        name,
        response: Some((group, kind)),
        verbs,
        role: SubresourceRole::Handler,
    }
}

/// A part of the pod written through its own endpoint (upstream's ephemeralcontainers and
/// resize strategies).
const fn pod_part(name: &'static str, pointer: &'static str) -> Subresource {
    Subresource {
        name,
        response: None,
        verbs: &["get", "patch", "update"],
        role: SubresourceRole::Part(pointer),
    }
}

/// Pods' subresources besides status, in upstream's discovery order.
const POD_SUBRESOURCES: &[Subresource] = &[
    handled("attach", "", "PodAttachOptions", &["create", "get"]),
    handled("binding", "", "Binding", &["create"]),
    pod_part("ephemeralcontainers", "/spec/ephemeralContainers"),
    handled("eviction", "policy", "Eviction", &["create"]),
    handled("exec", "", "PodExecOptions", &["create", "get"]),
    handled("log", "", "Pod", &["get"]),
    handled(
        "portforward",
        "",
        "PodPortForwardOptions",
        &["create", "get"],
    ),
    proxy("PodProxyOptions"),
    pod_part("resize", "/spec/containers"),
];

/// The element of the list at `pointer` whose `type` is `t`.
fn arr_find<'a>(o: &'a Value, pointer: &str, t: &str) -> Option<&'a Value> {
    o.pointer(pointer)?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
}

pub(super) fn kinds() -> Vec<ResourceKind> {
    vec![
        ResourceKind {
            kind: "Binding",
            name_rule: NameRule::PathSegment,
            plural: "bindings",
            singular: "binding",
            verbs: &["create"],
            backend: Backend::Binding,
            ..BASE
        },
        ResourceKind {
            // Deprecated, still served: the server reports its own components.
            kind: "ComponentStatus",
            plural: "componentstatuses",
            singular: "componentstatus",
            namespaced: false,
            short_names: &["cs"],
            verbs: &["get", "list"],
            columns: || {
                vec![
                    name_col(),
                    col("Status", "string", "Status of the component conditions"),
                    col("Message", "string", "Message of the component conditions"),
                    col("Error", "string", "Error of the component conditions"),
                ]
            },
            row: |o, _| {
                let healthy = arr_find(o, "/conditions", "Healthy");
                let status = match healthy.map(|c| s(c, "/status")) {
                    Some("True") => "Healthy",
                    Some("False") => "Unhealthy",
                    _ => "Unknown",
                };
                vec![
                    name(o),
                    json!(status),
                    json!(healthy.map(|c| s(c, "/message")).unwrap_or("")),
                    json!(healthy.map(|c| s(c, "/error")).unwrap_or("")),
                ]
            },
            backend: Backend::ComponentStatuses,
            ..BASE
        },
        ResourceKind {
            kind: "ConfigMap",
            plural: "configmaps",
            singular: "configmap",
            short_names: &["cm"],
            columns: || {
                vec![
                    name_col(),
                    col("Data", "string", "Data contains the configuration data."),
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
            strategy: StrategyRef::Static(const { &Basic::validated(validation::config_map) }),
            ..BASE
        },
        ResourceKind {
            kind: "Endpoints",
            create_on_update: true,
            plural: "endpoints",
            singular: "endpoints",
            short_names: &["ep"],
            columns: || {
                vec![
                    name_col(),
                    col(
                        "Endpoints",
                        "string",
                        "The set of all endpoints is the union of all subsets.",
                    ),
                    age_col(),
                ]
            },
            row: |o, now| vec![name(o), json!(format_endpoints(o)), age(o, now)],
            strategy: StrategyRef::Static(const { &Basic::defaults(defaults::endpoints) }),
            ..BASE
        },
        ResourceKind {
            kind: "Event",
            create_on_update: true,
            name_rule: NameRule::PathSegment,
            plural: "events",
            singular: "event",
            short_names: &["ev"],
            selectable_fields: const {
                &[
                    field("involvedObject.kind", "involvedObject.kind"),
                    field("involvedObject.namespace", "involvedObject.namespace"),
                    field("involvedObject.name", "involvedObject.name"),
                    field("involvedObject.uid", "involvedObject.uid"),
                    field("involvedObject.apiVersion", "involvedObject.apiVersion"),
                    field(
                        "involvedObject.resourceVersion",
                        "involvedObject.resourceVersion",
                    ),
                    field("involvedObject.fieldPath", "involvedObject.fieldPath"),
                    field("reason", "reason"),
                    field("reportingComponent", "reportingComponent"),
                    field("source", "source.component"),
                    field("type", "type"),
                ]
            },
            columns: event_columns,
            row: event_row,
            always_emitted: EVENT_ALWAYS_EMITTED,
            ..BASE
        },
        ResourceKind {
            kind: "LimitRange",
            always_emitted: r#"{"spec":{"limits":null}}"#,
            create_on_update: true,
            plural: "limitranges",
            singular: "limitrange",
            short_names: &["limits"],
            strategy: StrategyRef::Static(const { &Basic::defaults(defaults::limit_range) }),
            ..BASE
        },
        ResourceKind {
            kind: "Namespace",
            plural: "namespaces",
            singular: "namespace",
            namespaced: false,
            short_names: &["ns"],
            status: true,
            verbs: &[
                "create", "delete", "get", "list", "patch", "update", "watch",
            ],
            delete_returns_object: true,
            // Writes spec.finalizers only (the namespace lifecycle's last step).
            extra_subresources: &[Subresource {
                name: "finalize",
                response: None,
                verbs: &["update"],
                role: SubresourceRole::Part("/spec/finalizers"),
            }],
            selectable_fields: const { &[field("status.phase", "status.phase")] },
            columns: || {
                vec![
                    name_col(),
                    col("Status", "string", "The status of the namespace"),
                    age_col(),
                ]
            },
            row: |o, now| vec![name(o), json!(s(o, "/status/phase")), age(o, now)],
            strategy: StrategyRef::Static(&NamespaceStrategy),
            name_rule: NameRule::Label,
            ..BASE
        },
        ResourceKind {
            kind: "Node",
            always_emitted: r#"{"status":{"daemonEndpoints":{"kubeletEndpoint":{"Port":0}},"nodeInfo":{"machineID":"","systemUUID":"","bootID":"","kernelVersion":"","osImage":"","containerRuntimeVersion":"","kubeletVersion":"","kubeProxyVersion":"","operatingSystem":"","architecture":""}}}"#,
            plural: "nodes",
            singular: "node",
            namespaced: false,
            short_names: &["no"],
            status: true,
            create_keeps_status: true,
            extra_subresources: const { &[proxy("NodeProxyOptions")] },
            selectable_fields: const { &[bool_field("spec.unschedulable", "spec.unschedulable")] },
            columns: node_columns,
            row: node_row,
            strategy: StrategyRef::Static(const { &Basic::defaults(defaults::node) }),
            ..BASE
        },
        ResourceKind {
            kind: "PersistentVolumeClaim",
            always_emitted: r#"{"spec":{"resources":{}},"status":{}}"#,
            plural: "persistentvolumeclaims",
            singular: "persistentvolumeclaim",
            short_names: &["pvc"],
            status: true,
            columns: pvc_columns,
            row: pvc_row,
            strategy: StrategyRef::Static(
                const { &Basic::defaults(defaults::persistent_volume_claim) },
            ),
            ..BASE
        },
        ResourceKind {
            kind: "PersistentVolume",
            plural: "persistentvolumes",
            singular: "persistentvolume",
            namespaced: false,
            short_names: &["pv"],
            status: true,
            columns: pv_columns,
            row: pv_row,
            strategy: StrategyRef::Static(const { &Basic::defaults(defaults::persistent_volume) }),
            ..BASE
        },
        ResourceKind {
            kind: "Pod",
            plural: "pods",
            singular: "pod",
            short_names: &["po"],
            categories: &["all"],
            status: true,
            delete_returns_object: true,
            extra_subresources: POD_SUBRESOURCES,
            selectable_fields: const {
                &[
                    field("spec.nodeName", "spec.nodeName"),
                    field("spec.restartPolicy", "spec.restartPolicy"),
                    field("spec.schedulerName", "spec.schedulerName"),
                    field("spec.serviceAccountName", "spec.serviceAccountName"),
                    bool_field("spec.hostNetwork", "spec.hostNetwork"),
                    field("status.phase", "status.phase"),
                    field("status.podIP", "status.podIP"),
                    field("status.nominatedNodeName", "status.nominatedNodeName"),
                ]
            },
            columns: pod_columns,
            row: pod_row,
            strategy: StrategyRef::Static(&PodStrategy),
            ..BASE
        },
        ResourceKind {
            kind: "PodTemplate",
            plural: "podtemplates",
            singular: "podtemplate",
            generation: true,
            generation_fields: &["/template"],
            columns: || {
                vec![
                    name_col(),
                    col(
                        "Containers",
                        "string",
                        "Names of each container in the template.",
                    ),
                    col(
                        "Images",
                        "string",
                        "Images referenced by each container in the template.",
                    ),
                    col("Pod Labels", "string", "The labels for the pod template."),
                ]
            },
            row: |o, _| {
                let (names, images) = container_cells(o, "/template/spec/containers");
                vec![
                    name(o),
                    names,
                    images,
                    json!(format_labels(o.pointer("/template/metadata/labels"))),
                ]
            },
            strategy: StrategyRef::Static(
                const {
                    &Basic {
                        defaults: defaults::pod_template_kind,
                        validate: validation::pod_template,
                    }
                },
            ),
            ..BASE
        },
        ResourceKind {
            kind: "ReplicationController",
            always_emitted: r#"{"status":{"replicas":0}}"#,
            plural: "replicationcontrollers",
            singular: "replicationcontroller",
            short_names: &["rc"],
            categories: &["all"],
            status: true,
            scale: true,
            generation: true,
            selectable_fields: const { &[int_field("status.replicas", "status.replicas")] },
            columns: || {
                let mut c = vec![
                    name_col(),
                    col(
                        "Desired",
                        "integer",
                        "Replicas is the number of desired replicas.",
                    ),
                    col(
                        "Current",
                        "integer",
                        "Replicas is the most recently observed number of replicas.",
                    ),
                    col(
                        "Ready",
                        "integer",
                        "The number of ready replicas for this replication controller.",
                    ),
                    age_col(),
                ];
                c.extend(container_cols());
                c.push(wide(
                    "Selector",
                    "string",
                    "Selector is a label query over pods that should match the Replicas count.",
                ));
                c
            },
            row: |o, now| {
                let (names, images) = container_cells(o, "/spec/template/spec/containers");
                vec![
                    name(o),
                    int(o, "/spec/replicas"),
                    int(o, "/status/replicas"),
                    int(o, "/status/readyReplicas"),
                    age(o, now),
                    names,
                    images,
                    json!(format_labels(o.pointer("/spec/selector"))),
                ]
            },
            strategy: StrategyRef::Static(&ReplicationControllerStrategy),
            ..BASE
        },
        ResourceKind {
            kind: "ResourceQuota",
            always_emitted: r#"{"spec":{},"status":{}}"#,
            plural: "resourcequotas",
            singular: "resourcequota",
            short_names: &["quota"],
            status: true,
            columns: || {
                vec![
                    name_col(),
                    col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
                    col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
                    age_col(),
                ]
            },
            row: resource_quota_row,
            ..BASE
        },
        ResourceKind {
            kind: "Secret",
            plural: "secrets",
            singular: "secret",
            selectable_fields: const { &[field("type", "type")] },
            columns: || {
                vec![
                    name_col(),
                    col(
                        "Type",
                        "string",
                        "Used to facilitate programmatic handling of secret data.",
                    ),
                    col("Data", "string", "Data contains the secret data."),
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
            strategy: StrategyRef::Static(
                const {
                    &Basic {
                        defaults: defaults::secret,
                        validate: validation::secret,
                    }
                },
            ),
            ..BASE
        },
        ResourceKind {
            kind: "ServiceAccount",
            plural: "serviceaccounts",
            singular: "serviceaccount",
            short_names: &["sa"],
            columns: || {
                vec![
                    name_col(),
                    col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
                    age_col(),
                ]
            },
            row: |o, now| {
                let n = o
                    .pointer("/secrets")
                    .and_then(Value::as_array)
                    .map(|a| a.len())
                    .unwrap_or(0);
                vec![name(o), json!(n), age(o, now)]
            },
            extra_subresources: const {
                &[handled(
                    "token",
                    "authentication.k8s.io",
                    "TokenRequest",
                    &["create"],
                )]
            },
            ..BASE
        },
        ResourceKind {
            kind: "Service",
            always_emitted: r#"{"status":{"loadBalancer":{}}}"#,
            plural: "services",
            singular: "service",
            short_names: &["svc"],
            categories: &["all"],
            status: true,
            delete_returns_object: true,
            extra_subresources: const { &[proxy("ServiceProxyOptions")] },
            selectable_fields: const {
                &[
                    field("spec.clusterIP", "spec.clusterIP"),
                    field("spec.type", "spec.type"),
                ]
            },
            columns: || {
                vec![
                    name_col(),
                    col("Type", "string", "type determines how the Service is exposed."),
                    col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
                    col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
                    col("Port(s)", "string", "The list of ports that are exposed by this service."),
                    age_col(),
                    wide("Selector", "string", "Route service traffic to pods with label keys and values matching this selector."),
                ]
            },
            row: service_row,
            strategy: StrategyRef::Static(&ServiceStrategy),
            name_rule: NameRule::Label1035,
            ..BASE
        },
    ]
}

fn arr<'a>(o: &'a Value, pointer: &str) -> &'a [Value] {
    o.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn pod_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
        col("Status", "string", "The aggregate status of the containers in this pod."),
        col("Restarts", "integer", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
        age_col(),
        wide("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
        wide("Node", "string", "NodeName indicates in which node this pod is scheduled."),
        wide("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
        wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness."),
    ]
}

fn condition_true(o: &Value, pointer: &str, ty: &str) -> bool {
    arr(o, pointer)
        .iter()
        .find(|c| s(c, "/type") == ty)
        .is_some_and(|c| s(c, "/status") == "True")
}

fn finished_at(c: &Value) -> Option<i64> {
    parse_rfc3339(s(c, "/lastState/terminated/finishedAt"))
}

/// `printPod`: READY, STATUS (the most telling container state), RESTARTS with the time of
/// the last one, and the wide columns.
fn pod_row(o: &Value, now: i64) -> TableRow {
    let init_specs = arr(o, "/spec/initContainers");
    let restartable = |n: &str| {
        init_specs
            .iter()
            .any(|c| s(c, "/name") == n && s(c, "/restartPolicy") == "Always")
    };
    let mut total = arr(o, "/spec/containers").len();
    total += init_specs
        .iter()
        .filter(|c| s(c, "/restartPolicy") == "Always")
        .count();
    let phase = s(o, "/status/phase");
    let mut reason = match s(o, "/status/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    if arr(o, "/status/conditions")
        .iter()
        .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let mut ready = 0;
    let mut restarts = 0;
    let mut restartable_restarts = 0;
    let mut last_restart: Option<i64> = None;
    let mut last_restartable: Option<i64> = None;
    let mut initializing = false;
    for (idx, c) in arr(o, "/status/initContainerStatuses").iter().enumerate() {
        let rc = i(c, "/restartCount");
        restarts += rc;
        if let Some(t) = finished_at(c) {
            last_restart = last_restart.max(Some(t));
        }
        let is_restartable = restartable(s(c, "/name"));
        if is_restartable {
            restartable_restarts += rc;
            if let Some(t) = finished_at(c) {
                last_restartable = last_restartable.max(Some(t));
            }
        }
        let terminated = c.pointer("/state/terminated");
        if terminated.is_some_and(|t| i(t, "/exitCode") == 0) {
            continue;
        }
        if is_restartable && c.get("started") == Some(&Value::Bool(true)) {
            if c.get("ready") == Some(&Value::Bool(true)) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            reason = match s(t, "/reason") {
                "" if i(t, "/signal") != 0 => format!("Init:Signal:{}", i(t, "/signal")),
                "" => format!("Init:ExitCode:{}", i(t, "/exitCode")),
                r => format!("Init:{r}"),
            };
        } else {
            let waiting = s(c, "/state/waiting/reason");
            reason = if !waiting.is_empty() && waiting != "PodInitializing" {
                format!("Init:{waiting}")
            } else {
                format!("Init:{idx}/{}", init_specs.len())
            };
        }
        initializing = true;
        break;
    }
    if !initializing || condition_true(o, "/status/conditions", "Initialized") {
        restarts = restartable_restarts;
        last_restart = last_restartable;
        let mut has_running = false;
        for c in arr(o, "/status/containerStatuses").iter().rev() {
            restarts += i(c, "/restartCount");
            if let Some(t) = finished_at(c) {
                last_restart = last_restart.max(Some(t));
            }
            let waiting = s(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                reason = match s(t, "/reason") {
                    "" if i(t, "/signal") != 0 => format!("Signal:{}", i(t, "/signal")),
                    "" => format!("ExitCode:{}", i(t, "/exitCode")),
                    r => r.to_string(),
                };
            } else if c.get("ready") == Some(&Value::Bool(true))
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(o, "/status/conditions", "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    let deleting = o.pointer("/metadata/deletionTimestamp").is_some();
    if deleting && s(o, "/status/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && !matches!(phase, "Succeeded" | "Failed") {
        reason = "Terminating".into();
    }
    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };
    let gates = arr(o, "/spec/readinessGates");
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let ok = gates
            .iter()
            .filter(|g| condition_true(o, "/status/conditions", s(g, "/conditionType")))
            .count();
        format!("{ok}/{}", gates.len())
    };
    vec![
        name(o),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        age(o, now),
        none_if_empty(s(o, "/status/podIPs/0/ip")),
        none_if_empty(s(o, "/spec/nodeName")),
        none_if_empty(s(o, "/status/nominatedNodeName")),
        json!(gates_cell),
    ]
}

fn node_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Status", "string", "The status of the node"),
        col("Roles", "string", "The roles of the node"),
        age_col(),
        col("Version", "string", "Kubelet Version reported by the node."),
        wide("Internal-IP", "string", "List of addresses reachable to the node."),
        wide("External-IP", "string", "List of addresses reachable to the node."),
        wide("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
        wide("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
        wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
    ]
}

fn node_address(o: &Value, ty: &str) -> Value {
    json!(arr(o, "/status/addresses")
        .iter()
        .find(|a| s(a, "/type") == ty)
        .map(|a| s(a, "/address"))
        .unwrap_or("<none>"))
}

/// `printNode`: Ready/NotReady/Unknown (+SchedulingDisabled) and the roles from labels.
fn node_row(o: &Value, now: i64) -> TableRow {
    let mut status: Vec<String> = Vec::new();
    if let Some(c) = arr(o, "/status/conditions")
        .iter()
        .rev()
        .find(|c| s(c, "/type") == "Ready")
    {
        status.push(if s(c, "/status") == "True" {
            "Ready".into()
        } else {
            "NotReady".into()
        });
    }
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if o.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                        (!r.is_empty()).then(|| r.to_string())
                    } else if k == "kubernetes.io/role" {
                        v.as_str().filter(|v| !v.is_empty()).map(String::from)
                    } else {
                        None
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    roles.dedup();
    vec![
        name(o),
        json!(status.join(",")),
        none_if_empty(&roles.join(",")),
        age(o, now),
        json!(s(o, "/status/nodeInfo/kubeletVersion")),
        node_address(o, "InternalIP"),
        node_address(o, "ExternalIP"),
        str_or(o, "/status/nodeInfo/osImage", "<unknown>"),
        str_or(o, "/status/nodeInfo/kernelVersion", "<unknown>"),
        str_or(o, "/status/nodeInfo/containerRuntimeVersion", "<unknown>"),
    ]
}

/// `formatEndpoints`: up to three `ip:port`, then `+ N more...`.
fn format_endpoints(o: &Value) -> String {
    let subsets = arr(o, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    let max = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    for ss in subsets {
        let addrs = arr(ss, "/addresses");
        let ports = arr(ss, "/ports");
        if ports.is_empty() {
            count += addrs.len();
            for a in addrs {
                if list.len() == max {
                    more = true;
                    break;
                }
                list.push(s(a, "/ip").to_string());
            }
            continue;
        }
        for p in ports {
            count += addrs.len();
            for a in addrs {
                if list.len() == max {
                    more = true;
                    break;
                }
                let ip = s(a, "/ip");
                let port = i(p, "/port");
                list.push(if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                });
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - max)
    } else {
        ret
    }
}

/// `loadBalancerStatusStringer` (wide): the sorted, distinct ingress IPs or hostnames.
pub(super) fn load_balancer_ips(o: &Value, pointer: &str) -> String {
    let mut v: Vec<String> = arr(o, pointer)
        .iter()
        .filter_map(|x| {
            let ip = s(x, "/ip");
            let host = s(x, "/hostname");
            if !ip.is_empty() {
                Some(ip.to_string())
            } else if !host.is_empty() {
                Some(host.to_string())
            } else {
                None
            }
        })
        .collect();
    v.sort();
    v.dedup();
    v.join(",")
}

fn service_row(o: &Value, now: i64) -> TableRow {
    let ty = s(o, "/spec/type");
    let external_ips: Vec<&str> = arr(o, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match ty {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_ips(o, "/status/loadBalancer/ingress");
            if !external_ips.is_empty() {
                let mut all: Vec<&str> = lb.split(',').filter(|x| !x.is_empty()).collect();
                all.extend(external_ips.iter().copied());
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".into()
            }
        }
        "ExternalName" => s(o, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    };
    let ports: Vec<String> = arr(o, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = s(p, "/protocol");
            let port = i(p, "/port");
            match i(p, "/nodePort") {
                np if np > 0 => format!("{port}:{np}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect();
    vec![
        name(o),
        json!(ty),
        none_if_empty(s(o, "/spec/clusterIPs/0")),
        json!(external),
        none_if_empty(&ports.join(",")),
        age(o, now),
        json!(format_labels(o.pointer("/spec/selector"))),
    ]
}

pub(super) fn event_columns() -> Vec<Column> {
    vec![
        col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
        col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
        col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
        col("Object", "string", "The object that this event is about."),
        wide("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]."),
        wide("Source", "string", "The component reporting this event. Should be a short machine understandable string."),
        col("Message", "string", "A human-readable description of the status of this operation."),
        wide("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
        wide("Count", "string", "The number of times this event has occurred."),
        Column {
            name: "Name",
            type_: "string",
            format: "name",
            priority: 1,
            description: "Name must be unique within a namespace.",
        },
    ]
}

/// The core/v1 Event fields Go always writes: structs (`omitempty` never omits them), zero
/// timestamps (null) and the two strings without `omitempty`.
pub(super) const EVENT_ALWAYS_EMITTED: &str = r#"{"involvedObject":{},"source":{},"firstTimestamp":null,"lastTimestamp":null,"eventTime":null,"reportingComponent":"","reportingInstance":""}"#;

/// `printEvent` over a core/v1 Event.
pub(super) fn event_row(o: &Value, now: i64) -> TableRow {
    let first_ts = s(o, "/firstTimestamp");
    let first = if first_ts.is_empty() {
        since(s(o, "/eventTime"), now)
    } else {
        since(first_ts, now)
    };
    let last_ts = s(o, "/lastTimestamp");
    let mut last = if last_ts.is_empty() {
        first.clone()
    } else {
        since(last_ts, now)
    };
    let mut count = i(o, "/count");
    if let Some(series) = o.get("series").filter(|v| v.is_object()) {
        last = since(s(series, "/lastObservedTime"), now);
        count = i(series, "/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = s(o, "/involvedObject/kind").to_lowercase();
    let target = match s(o, "/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let first_non_empty = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            a.to_string()
        }
    };
    let component = first_non_empty(s(o, "/source/component"), s(o, "/reportingComponent"));
    let host = first_non_empty(s(o, "/source/host"), s(o, "/reportingInstance"));
    let source = if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    };
    vec![
        last,
        json!(s(o, "/type")),
        json!(s(o, "/reason")),
        json!(target),
        json!(s(o, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(o, "/message").trim()),
        first,
        json!(count),
        name(o),
    ]
}

/// `GetAccessModesAsString`.
fn access_modes(o: &Value, pointer: &str) -> String {
    let modes: Vec<&str> = arr(o, pointer).iter().filter_map(Value::as_str).collect();
    let mut out = Vec::new();
    for (m, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if modes.contains(&m) {
            out.push(short);
        }
    }
    out.join(",")
}

/// The storage class: the beta annotation wins over the field.
fn storage_class_of(o: &Value) -> Value {
    let ann = o
        .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .and_then(Value::as_str);
    json!(ann.unwrap_or(s(o, "/spec/storageClassName")))
}

fn quantity(o: &Value, pointer: &str) -> String {
    scalar_text(o.pointer(pointer)).unwrap_or_else(|| "0".into())
}

fn pv_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity."),
        col("Access Modes", "string", "accessModes contains all ways the volume can be mounted."),
        col("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
        col("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
        col("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
        col("StorageClass", "string", "StorageClass of the pv"),
        col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
        col("Reason", "string", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
        age_col(),
        wide("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."),
    ]
}

fn pv_row(o: &Value, now: i64) -> TableRow {
    let claim = if o.pointer("/spec/claimRef").is_some() {
        format!(
            "{}/{}",
            s(o, "/spec/claimRef/namespace"),
            s(o, "/spec/claimRef/name")
        )
    } else {
        String::new()
    };
    let phase = if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else {
        s(o, "/status/phase")
    };
    vec![
        name(o),
        json!(quantity(o, "/spec/capacity/storage")),
        json!(access_modes(o, "/spec/accessModes")),
        json!(s(o, "/spec/persistentVolumeReclaimPolicy")),
        json!(phase),
        json!(claim),
        storage_class_of(o),
        str_or(o, "/spec/volumeAttributesClassName", "<unset>"),
        json!(s(o, "/status/reason")),
        age(o, now),
        str_or(o, "/spec/volumeMode", "<unset>"),
    ]
}

fn pvc_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Status",
            "string",
            "phase represents the current phase of PersistentVolumeClaim.",
        ),
        col(
            "Volume",
            "string",
            "volumeName is the binding reference to the PersistentVolume backing this claim.",
        ),
        col(
            "Capacity",
            "string",
            "capacity represents the actual resources of the underlying volume.",
        ),
        col(
            "Access Modes",
            "string",
            "accessModes contains the actual access modes the volume backing the PVC has.",
        ),
        col("StorageClass", "string", "StorageClass of the pvc"),
        col(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pvc",
        ),
        age_col(),
        wide(
            "VolumeMode",
            "string",
            "volumeMode defines what type of volume is required by the claim.",
        ),
    ]
}

fn pvc_row(o: &Value, now: i64) -> TableRow {
    let phase = if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else {
        s(o, "/status/phase")
    };
    let bound = !s(o, "/spec/volumeName").is_empty();
    let (capacity, modes) = if bound {
        (
            quantity(o, "/status/capacity/storage"),
            access_modes(o, "/status/accessModes"),
        )
    } else {
        (String::new(), String::new())
    };
    vec![
        name(o),
        json!(phase),
        json!(s(o, "/spec/volumeName")),
        json!(capacity),
        json!(modes),
        storage_class_of(o),
        str_or(o, "/spec/volumeAttributesClassName", "<unset>"),
        age(o, now),
        str_or(o, "/spec/volumeMode", "<unset>"),
    ]
}

/// `printResourceQuota`: `resource: used/hard` for each hard limit, `limits.*` apart.
fn resource_quota_row(o: &Value, now: i64) -> TableRow {
    let mut names: Vec<&String> = o
        .pointer("/status/hard")
        .and_then(Value::as_object)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    names.sort();
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    for r in names {
        let key = r.replace('~', "~0").replace('/', "~1");
        let used = quantity(o, &format!("/status/used/{key}"));
        let hard = quantity(o, &format!("/status/hard/{key}"));
        let cell = format!("{r}: {used}/{hard}");
        if r.split('.').next() == Some("limits") && r.contains('.') {
            limits.push(cell);
        } else {
            requests.push(cell);
        }
    }
    vec![
        name(o),
        json!(requests.join(", ")),
        json!(limits.join(", ")),
        age(o, now),
    ]
}
