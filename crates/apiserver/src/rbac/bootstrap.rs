//! Upstream's bootstrap RBAC policy (kube-apiserver 1.33): the ClusterRoles, ClusterRoleBindings,
//! Roles and RoleBindings that kube-apiserver's `rbac/bootstrap-roles` start hook reconciles, as
//! complete objects. It is the policy under 1.33's default feature gates, so roles and rules that
//! hang on gates still off there (DRA, ClusterTrustBundle, VolumeAttributesClass, ...) are absent.
//! Every list is in the sorted order upstream's rule builder produces, so an object here compares
//! literally with what kube-apiserver itself would have created.

use serde_json::{json, Value};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const CONTROLLER_PREFIX: &str = "system:controller:";

// Verb sets as upstream groups them (sorted, as its builder leaves them).
const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const READ_UPDATE: &[&str] = &["get", "list", "patch", "update", "watch"];

// The labels that feed the aggregated admin/edit/view roles.
const TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

fn named(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names})
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

/// Recording events, through either events API; most controllers carry this rule.
fn events() -> Value {
    rule(
        &["create", "patch", "update"],
        &["", "events.k8s.io"],
        &["events"],
    )
}

/// Metadata every bootstrap object carries: the bootstrapping label (plus any aggregation labels)
/// and `autoupdate`, which lets the reconciler keep it in step until an admin sets it to "false".
fn meta(name: &str, namespace: Option<&str>, aggregate_to: &[&str]) -> Value {
    let mut labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    for label in aggregate_to {
        labels[*label] = json!("true");
    }
    let mut meta = json!({"name": name});
    if let Some(ns) = namespace {
        meta["namespace"] = json!(ns);
    }
    meta["labels"] = labels;
    meta["annotations"] = json!({"rbac.authorization.kubernetes.io/autoupdate": "true"});
    meta
}

fn object(kind: &str, metadata: Value) -> Value {
    json!({"apiVersion": format!("{RBAC_GROUP}/v1"), "kind": kind, "metadata": metadata})
}

fn cluster_role(name: &str, aggregate_to: &[&str], rules: Vec<Value>) -> Value {
    let mut role = object("ClusterRole", meta(name, None, aggregate_to));
    role["rules"] = json!(rules);
    role
}

/// An aggregated ClusterRole: no rules of its own (the aggregation controller fills them from
/// the roles labelled `selects: "true"`), so upstream's nil `rules` is left out here.
fn aggregated(name: &str, aggregate_to: &[&str], selects: &str) -> Value {
    let mut role = object("ClusterRole", meta(name, None, aggregate_to));
    role["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {selects: "true"}}]});
    role
}

fn controller(name: &str, rules: Vec<Value>) -> Value {
    cluster_role(&format!("{CONTROLLER_PREFIX}{name}"), &[], rules)
}

fn role(namespace: &str, name: &str, rules: Vec<Value>) -> Value {
    let mut role = object("Role", meta(name, Some(namespace), &[]));
    role["rules"] = json!(rules);
    role
}

fn user(name: &str) -> Value {
    json!({"kind": "User", "apiGroup": RBAC_GROUP, "name": name})
}

fn group(name: &str) -> Value {
    json!({"kind": "Group", "apiGroup": RBAC_GROUP, "name": name})
}

fn sa(namespace: &str, name: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": namespace})
}

/// Fills a binding's subjects and roleRef; with no subjects the field is left out, as upstream
/// leaves `system:node`'s empty so that reconciliation can drop what older releases bound there.
fn bind(mut binding: Value, subjects: Vec<Value>, role_kind: &str, role_name: &str) -> Value {
    if !subjects.is_empty() {
        binding["subjects"] = json!(subjects);
    }
    binding["roleRef"] = json!({"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role_name});
    binding
}

/// Upstream names every ClusterRoleBinding after the ClusterRole it grants.
fn cluster_binding(name: &str, subjects: Vec<Value>) -> Value {
    let binding = object("ClusterRoleBinding", meta(name, None, &[]));
    bind(binding, subjects, "ClusterRole", name)
}

fn role_binding(namespace: &str, name: &str, role: &str, subjects: Vec<Value>) -> Value {
    let binding = object("RoleBinding", meta(name, Some(namespace), &[]));
    bind(binding, subjects, "Role", role)
}

/// The bootstrap ClusterRoles (user-facing, system:*, and the system:controller:* roles), as full
/// objects.
pub fn cluster_roles() -> Vec<Value> {
    let mut roles = vec![
        aggregated("admin", &[], TO_ADMIN),
        cluster_role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        aggregated("edit", &[TO_ADMIN], TO_EDIT),
        cluster_role(
            "system:aggregate-to-admin",
            &[TO_ADMIN],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
                rule(
                    READ_WRITE,
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                ),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[TO_EDIT],
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                rule(&["impersonate"], &[""], &["serviceaccounts"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                    ],
                ),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                ),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(
                    WRITE,
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                ),
                rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(WRITE, &["batch"], &["cronjobs", "jobs"]),
                rule(
                    WRITE,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "ingresses",
                        "networkpolicies",
                        "replicasets",
                        "replicasets/scale",
                        "replicationcontrollers/scale",
                    ],
                ),
                rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    WRITE,
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                ),
                rule(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
            ],
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[TO_VIEW],
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                ),
                rule(
                    READ,
                    &[""],
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                ),
                rule(READ, &[""], &["namespaces"]),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(
                    READ,
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                ),
                rule(
                    READ,
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                ),
                rule(
                    READ,
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                ),
                rule(
                    READ,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "ingresses",
                        "ingresses/status",
                        "networkpolicies",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "replicationcontrollers/scale",
                    ],
                ),
                rule(
                    READ,
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                rule(
                    READ,
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                ),
            ],
        ),
        cluster_role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            &[],
            vec![rule(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/nodeclient"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &[],
            vec![rule(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/selfnodeclient"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:kube-apiserver-client-approver",
            &[],
            vec![named(
                &["approve"],
                &["certificates.k8s.io"],
                &["signers"],
                &["kubernetes.io/kube-apiserver-client"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
            &[],
            vec![named(
                &["approve"],
                &["certificates.k8s.io"],
                &["signers"],
                &["kubernetes.io/kube-apiserver-client-kubelet"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:kubelet-serving-approver",
            &[],
            vec![named(
                &["approve"],
                &["certificates.k8s.io"],
                &["signers"],
                &["kubernetes.io/kubelet-serving"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:legacy-unknown-approver",
            &[],
            vec![named(
                &["approve"],
                &["certificates.k8s.io"],
                &["signers"],
                &["kubernetes.io/legacy-unknown"],
            )],
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:heapster",
            &[],
            vec![
                rule(READ, &[""], &["events", "namespaces", "nodes", "pods"]),
                rule(READ, &["extensions"], &["deployments"]),
            ],
        ),
        cluster_role(
            "system:kube-aggregator",
            &[],
            vec![rule(READ, &[""], &["endpoints", "services"])],
        ),
        cluster_role(
            "system:kube-controller-manager",
            &[],
            vec![
                events(),
                rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                named(
                    &["get", "update"],
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["kube-controller-manager"],
                ),
                rule(&["create"], &[""], &["secrets", "serviceaccounts"]),
                rule(&["delete"], &[""], &["secrets"]),
                rule(
                    &["get"],
                    &[""],
                    &["configmaps", "namespaces", "secrets", "serviceaccounts"],
                ),
                rule(&["update"], &[""], &["secrets", "serviceaccounts"]),
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                rule(&["list", "watch"], &["*"], &["*"]),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
            ],
        ),
        cluster_role(
            "system:kube-dns",
            &[],
            vec![rule(&["list", "watch"], &[""], &["endpoints", "services"])],
        ),
        cluster_role(
            "system:kube-scheduler",
            &[],
            vec![
                events(),
                rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                named(
                    &["get", "list", "update", "watch"],
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["kube-scheduler"],
                ),
                rule(READ_WRITE, &["coordination.k8s.io"], &["leasecandidates"]),
                rule(READ, &[""], &["nodes"]),
                rule(&["delete", "get", "list", "watch"], &[""], &["pods"]),
                rule(&["create"], &[""], &["bindings", "pods/binding"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(READ, &[""], &["replicationcontrollers", "services"]),
                rule(READ, &["apps", "extensions"], &["replicasets"]),
                rule(READ, &["apps"], &["statefulsets"]),
                rule(READ, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    READ,
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                rule(READ, &["storage.k8s.io"], &["csinodes"]),
                rule(READ, &["storage.k8s.io"], &["volumeattachments"]),
                rule(READ, &[""], &["namespaces"]),
                rule(READ, &["storage.k8s.io"], &["csidrivers"]),
                rule(READ, &["storage.k8s.io"], &["csistoragecapacities"]),
            ],
        ),
        cluster_role(
            "system:kubelet-api-admin",
            &[],
            vec![
                rule(READ, &[""], &["nodes"]),
                rule(&["proxy"], &[""], &["nodes"]),
                rule(
                    &["*"],
                    &[""],
                    &["nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"],
                ),
                // KubeletFineGrainedAuthz: beta and on by default in 1.33.
                rule(
                    &["*"],
                    &[""],
                    &["nodes/configz", "nodes/healthz", "nodes/pods"],
                ),
            ],
        ),
        cluster_role(
            "system:monitoring",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
            )],
        ),
        cluster_role(
            "system:node",
            &[],
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews", "subjectaccessreviews"],
                ),
                rule(READ, &[""], &["services"]),
                rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
                rule(&["patch", "update"], &[""], &["nodes/status"]),
                rule(&["patch", "update"], &[""], &["nodes"]),
                rule(&["create", "patch", "update"], &[""], &["events"]),
                rule(READ, &[""], &["pods"]),
                rule(&["create", "delete"], &[""], &["pods"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(READ, &[""], &["configmaps", "secrets"]),
                rule(
                    &["get"],
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                rule(&["get"], &[""], &["endpoints"]),
                rule(
                    &["create", "get", "list", "watch"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                ),
                rule(
                    &["create", "delete", "get", "patch", "update"],
                    &["coordination.k8s.io"],
                    &["leases"],
                ),
                rule(&["get"], &["storage.k8s.io"], &["volumeattachments"]),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(
                    &["get", "patch", "update"],
                    &[""],
                    &["persistentvolumeclaims/status"],
                ),
                rule(READ, &["storage.k8s.io"], &["csidrivers"]),
                rule(
                    &["create", "delete", "get", "patch", "update"],
                    &["storage.k8s.io"],
                    &["csinodes"],
                ),
                rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
            ],
        ),
        cluster_role(
            "system:node-bootstrapper",
            &[],
            vec![rule(
                &["create", "get", "list", "watch"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
            )],
        ),
        cluster_role(
            "system:node-problem-detector",
            &[],
            vec![
                rule(&["get"], &[""], &["nodes"]),
                rule(&["patch"], &[""], &["nodes/status"]),
                events(),
            ],
        ),
        cluster_role(
            "system:node-proxier",
            &[],
            vec![
                rule(&["list", "watch"], &[""], &["endpoints", "services"]),
                rule(READ, &[""], &["nodes"]),
                events(),
                // MultiCIDRServiceAllocator: GA (on) in 1.33.
                rule(
                    &["list", "watch"],
                    &["networking.k8s.io"],
                    &["servicecidrs"],
                ),
                rule(
                    &["list", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
        ),
        cluster_role(
            "system:persistent-volume-provisioner",
            &[],
            vec![
                rule(
                    &["create", "delete", "get", "list", "watch"],
                    &[""],
                    &["persistentvolumes"],
                ),
                rule(
                    &["get", "list", "update", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                rule(READ, &["storage.k8s.io"], &["storageclasses"]),
                rule(&["watch"], &[""], &["events"]),
                events(),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
            )],
        ),
        cluster_role(
            "system:volume-scheduler",
            &[],
            vec![
                rule(READ_UPDATE, &[""], &["persistentvolumes"]),
                rule(READ, &["storage.k8s.io"], &["storageclasses"]),
                rule(READ_UPDATE, &[""], &["persistentvolumeclaims"]),
            ],
        ),
        aggregated("view", &[TO_EDIT], TO_VIEW),
    ];
    roles.extend(controller_roles());
    roles
}

/// The roles kube-controller-manager's controllers run under, one service account each.
fn controller_roles() -> Vec<Value> {
    vec![
        controller(
            "attachdetach-controller",
            vec![
                rule(
                    &["list", "watch"],
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                rule(READ, &[""], &["nodes"]),
                rule(&["patch", "update"], &[""], &["nodes/status"]),
                rule(&["list", "watch"], &[""], &["pods"]),
                events(),
                rule(
                    &["create", "delete", "get", "list", "watch"],
                    &["storage.k8s.io"],
                    &["volumeattachments"],
                ),
                rule(READ, &["storage.k8s.io"], &["csidrivers"]),
                rule(READ, &["storage.k8s.io"], &["csinodes"]),
            ],
        ),
        controller(
            "certificate-controller",
            vec![
                rule(
                    &["delete", "get", "list", "watch"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                ),
                rule(
                    &["update"],
                    &["certificates.k8s.io"],
                    &[
                        "certificatesigningrequests/approval",
                        "certificatesigningrequests/status",
                    ],
                ),
                named(
                    &["approve"],
                    &["certificates.k8s.io"],
                    &["signers"],
                    &["kubernetes.io/kube-apiserver-client-kubelet"],
                ),
                named(
                    &["sign"],
                    &["certificates.k8s.io"],
                    &["signers"],
                    &[
                        "kubernetes.io/kube-apiserver-client",
                        "kubernetes.io/kube-apiserver-client-kubelet",
                        "kubernetes.io/kubelet-serving",
                        "kubernetes.io/legacy-unknown",
                    ],
                ),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                events(),
            ],
        ),
        controller(
            "clusterrole-aggregation-controller",
            vec![rule(
                &["escalate", "get", "list", "patch", "update", "watch"],
                &["rbac.authorization.k8s.io"],
                &["clusterroles"],
            )],
        ),
        controller(
            "cronjob-controller",
            vec![
                rule(
                    &["get", "list", "update", "watch"],
                    &["batch"],
                    &["cronjobs"],
                ),
                rule(
                    &[
                        "create", "delete", "get", "list", "patch", "update", "watch",
                    ],
                    &["batch"],
                    &["jobs"],
                ),
                rule(&["update"], &["batch"], &["cronjobs/status"]),
                rule(&["update"], &["batch"], &["cronjobs/finalizers"]),
                rule(&["delete", "list", "watch"], &[""], &["pods"]),
                events(),
            ],
        ),
        controller(
            "daemon-set-controller",
            vec![
                rule(READ, &["apps", "extensions"], &["daemonsets"]),
                rule(&["update"], &["apps", "extensions"], &["daemonsets/status"]),
                rule(
                    &["update"],
                    &["apps", "extensions"],
                    &["daemonsets/finalizers"],
                ),
                rule(&["list", "watch"], &[""], &["nodes"]),
                rule(
                    &["create", "delete", "list", "patch", "watch"],
                    &[""],
                    &["pods"],
                ),
                rule(&["create"], &[""], &["pods/binding"]),
                rule(
                    &[
                        "create", "delete", "get", "list", "patch", "update", "watch",
                    ],
                    &["apps"],
                    &["controllerrevisions"],
                ),
                events(),
            ],
        ),
        controller(
            "deployment-controller",
            vec![
                rule(
                    &["get", "list", "update", "watch"],
                    &["apps", "extensions"],
                    &["deployments"],
                ),
                rule(
                    &["update"],
                    &["apps", "extensions"],
                    &["deployments/status"],
                ),
                rule(
                    &["update"],
                    &["apps", "extensions"],
                    &["deployments/finalizers"],
                ),
                rule(
                    &[
                        "create", "delete", "get", "list", "patch", "update", "watch",
                    ],
                    &["apps", "extensions"],
                    &["replicasets"],
                ),
                rule(&["get", "list", "update", "watch"], &[""], &["pods"]),
                events(),
            ],
        ),
        controller(
            "disruption-controller",
            vec![
                rule(READ, &["apps", "extensions"], &["deployments"]),
                rule(READ, &["apps", "extensions"], &["replicasets"]),
                rule(READ, &[""], &["replicationcontrollers"]),
                rule(READ, &["policy"], &["poddisruptionbudgets"]),
                rule(READ, &["apps"], &["statefulsets"]),
                rule(&["update"], &["policy"], &["poddisruptionbudgets/status"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["get"], &["*"], &["*/scale"]),
                events(),
            ],
        ),
        controller(
            "endpoint-controller",
            vec![
                rule(READ, &[""], &["pods", "services"]),
                rule(
                    &["create", "delete", "get", "list", "update", "watch"],
                    &[""],
                    &["endpoints"],
                ),
                rule(&["create"], &[""], &["endpoints/restricted"]),
                events(),
            ],
        ),
        controller(
            "endpointslice-controller",
            vec![
                rule(READ, &[""], &["nodes", "pods", "services"]),
                rule(&["update"], &[""], &["services/finalizers"]),
                rule(
                    &["create", "delete", "get", "list", "update", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
                events(),
            ],
        ),
        controller(
            "endpointslicemirroring-controller",
            vec![
                rule(READ, &[""], &["endpoints", "services"]),
                rule(&["update"], &[""], &["services/finalizers"]),
                rule(&["update"], &[""], &["endpoints/finalizers"]),
                rule(
                    &["create", "delete", "get", "list", "update", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
                events(),
            ],
        ),
        controller(
            "ephemeral-volume-controller",
            vec![
                rule(READ, &[""], &["pods"]),
                rule(&["update"], &[""], &["pods/finalizers"]),
                rule(
                    &["create", "get", "list", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                events(),
            ],
        ),
        controller(
            "expand-controller",
            vec![
                rule(READ_UPDATE, &[""], &["persistentvolumes"]),
                rule(
                    &["patch", "update"],
                    &[""],
                    &["persistentvolumeclaims/status"],
                ),
                rule(READ, &[""], &["persistentvolumeclaims"]),
                events(),
                // For the in-tree Portworx volume plugin, still present in 1.33.
                rule(&["get"], &[""], &["services"]),
            ],
        ),
        controller(
            "generic-garbage-collector",
            vec![
                rule(
                    &["delete", "get", "list", "patch", "update", "watch"],
                    &["*"],
                    &["*"],
                ),
                events(),
            ],
        ),
        controller(
            "horizontal-pod-autoscaler",
            vec![
                rule(READ, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(
                    &["update"],
                    &["autoscaling"],
                    &["horizontalpodautoscalers/status"],
                ),
                rule(&["get", "update"], &["*"], &["*/scale"]),
                rule(&["list", "watch"], &[""], &["pods"]),
                rule(&["list", "watch"], &["metrics.k8s.io"], &["pods"]),
                rule(READ, &["custom.metrics.k8s.io"], &["*"]),
                rule(READ, &["external.metrics.k8s.io"], &["*"]),
                events(),
            ],
        ),
        controller(
            "job-controller",
            vec![
                rule(READ_UPDATE, &["batch"], &["jobs"]),
                rule(&["update"], &["batch"], &["jobs/status"]),
                rule(&["update"], &["batch"], &["jobs/finalizers"]),
                rule(
                    &["create", "delete", "list", "patch", "watch"],
                    &[""],
                    &["pods"],
                ),
                events(),
            ],
        ),
        controller(
            "legacy-service-account-token-cleaner",
            vec![
                named(
                    &["get"],
                    &[""],
                    &["configmaps"],
                    &["kube-apiserver-legacy-service-account-token-tracking"],
                ),
                rule(&["delete", "patch"], &[""], &["secrets"]),
            ],
        ),
        controller(
            "namespace-controller",
            vec![
                rule(&["delete", "get", "list", "watch"], &[""], &["namespaces"]),
                rule(
                    &["update"],
                    &[""],
                    &["namespaces/finalize", "namespaces/status"],
                ),
                rule(
                    &["delete", "deletecollection", "get", "list", "watch"],
                    &["*"],
                    &["*"],
                ),
            ],
        ),
        controller(
            "node-controller",
            vec![
                rule(
                    &["delete", "get", "list", "patch", "update", "watch"],
                    &[""],
                    &["nodes"],
                ),
                rule(&["patch", "update"], &[""], &["nodes/status"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["delete", "get", "list", "watch"], &[""], &["pods"]),
                events(),
            ],
        ),
        controller(
            "persistent-volume-binder",
            vec![
                rule(
                    &["create", "delete", "get", "list", "update", "watch"],
                    &[""],
                    &["persistentvolumes"],
                ),
                rule(&["update"], &[""], &["persistentvolumes/status"]),
                rule(
                    &["get", "list", "update", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                rule(&["update"], &[""], &["persistentvolumeclaims/status"]),
                rule(
                    &["create", "delete", "get", "list", "watch"],
                    &[""],
                    &["pods"],
                ),
                rule(READ, &["storage.k8s.io"], &["storageclasses"]),
                rule(&["list", "watch"], &[""], &["nodes"]),
                events(),
                // The recycler watches its pod's events.
                rule(&["watch"], &[""], &["events"]),
                // For the in-tree Portworx volume plugin, still present in 1.33.
                rule(&["get"], &[""], &["services"]),
            ],
        ),
        controller(
            "pod-garbage-collector",
            vec![
                rule(&["delete", "list", "watch"], &[""], &["pods"]),
                rule(READ, &[""], &["nodes"]),
                rule(&["patch"], &[""], &["pods/status"]),
            ],
        ),
        controller(
            "pv-protection-controller",
            vec![
                rule(
                    &["get", "list", "update", "watch"],
                    &[""],
                    &["persistentvolumes"],
                ),
                events(),
            ],
        ),
        controller(
            "pvc-protection-controller",
            vec![
                rule(
                    &["get", "list", "update", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                rule(READ, &[""], &["pods"]),
                events(),
            ],
        ),
        controller(
            "replicaset-controller",
            vec![
                rule(
                    &["get", "list", "update", "watch"],
                    &["apps", "extensions"],
                    &["replicasets"],
                ),
                rule(
                    &["update"],
                    &["apps", "extensions"],
                    &["replicasets/status"],
                ),
                rule(
                    &["update"],
                    &["apps", "extensions"],
                    &["replicasets/finalizers"],
                ),
                rule(
                    &["create", "delete", "list", "patch", "watch"],
                    &[""],
                    &["pods"],
                ),
                events(),
            ],
        ),
        controller(
            "replication-controller",
            vec![
                rule(
                    &["get", "list", "update", "watch"],
                    &[""],
                    &["replicationcontrollers"],
                ),
                rule(&["update"], &[""], &["replicationcontrollers/status"]),
                rule(&["update"], &[""], &["replicationcontrollers/finalizers"]),
                rule(
                    &["create", "delete", "list", "patch", "watch"],
                    &[""],
                    &["pods"],
                ),
                events(),
            ],
        ),
        controller(
            "resourcequota-controller",
            vec![
                rule(&["list", "watch"], &["*"], &["*"]),
                rule(&["update"], &[""], &["resourcequotas/status"]),
                events(),
            ],
        ),
        controller(
            "root-ca-cert-publisher",
            vec![
                rule(&["create", "update"], &[""], &["configmaps"]),
                events(),
            ],
        ),
        controller(
            "route-controller",
            vec![
                rule(&["list", "watch"], &[""], &["nodes"]),
                rule(&["patch"], &[""], &["nodes/status"]),
                events(),
            ],
        ),
        // Registered only under SELinuxChangePolicy: beta and on by default in 1.33.
        controller(
            "selinux-warning-controller",
            vec![
                events(),
                rule(READ, &[""], &["persistentvolumes"]),
                rule(READ, &[""], &["persistentvolumeclaims"]),
                rule(READ, &[""], &["pods"]),
                rule(READ, &["storage.k8s.io"], &["csidrivers"]),
            ],
        ),
        controller(
            "service-account-controller",
            vec![rule(&["create"], &[""], &["serviceaccounts"]), events()],
        ),
        // Registered only under MultiCIDRServiceAllocator: GA (on) in 1.33.
        controller(
            "service-cidrs-controller",
            vec![
                rule(READ_UPDATE, &["networking.k8s.io"], &["servicecidrs"]),
                rule(
                    &["patch", "update"],
                    &["networking.k8s.io"],
                    &["servicecidrs/finalizers"],
                ),
                rule(
                    &["patch", "update"],
                    &["networking.k8s.io"],
                    &["servicecidrs/status"],
                ),
                rule(READ, &["networking.k8s.io"], &["ipaddresses"]),
                events(),
            ],
        ),
        controller(
            "service-controller",
            vec![
                rule(READ, &[""], &["services"]),
                rule(&["patch", "update"], &[""], &["services/status"]),
                rule(&["list", "watch"], &[""], &["nodes"]),
                events(),
            ],
        ),
        controller(
            "statefulset-controller",
            vec![
                rule(&["list", "watch"], &[""], &["pods"]),
                rule(READ, &["apps"], &["statefulsets"]),
                rule(&["update"], &["apps"], &["statefulsets/status"]),
                rule(&["update"], &["apps"], &["statefulsets/finalizers"]),
                rule(
                    &["create", "delete", "get", "patch", "update"],
                    &[""],
                    &["pods"],
                ),
                rule(
                    &[
                        "create", "delete", "get", "list", "patch", "update", "watch",
                    ],
                    &["apps"],
                    &["controllerrevisions"],
                ),
                rule(
                    &["create", "get", "list", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                events(),
                // Upstream appends these two after events (StatefulSetAutoDeletePVC, GA in 1.32).
                rule(&["delete", "update"], &[""], &["persistentvolumeclaims"]),
                rule(&["update"], &[""], &["pods/finalizers"]),
            ],
        ),
        controller(
            "ttl-after-finished-controller",
            vec![
                rule(&["delete", "get", "list", "watch"], &["batch"], &["jobs"]),
                events(),
            ],
        ),
        controller(
            "ttl-controller",
            vec![
                rule(&["list", "patch", "update", "watch"], &[""], &["nodes"]),
                events(),
            ],
        ),
        controller(
            "validatingadmissionpolicy-status-controller",
            vec![
                rule(
                    READ,
                    &["admissionregistration.k8s.io"],
                    &["validatingadmissionpolicies"],
                ),
                rule(
                    &["get", "patch", "update"],
                    &["admissionregistration.k8s.io"],
                    &["validatingadmissionpolicies/status"],
                ),
                events(),
            ],
        ),
    ]
}

/// The bootstrap ClusterRoleBindings (incl. controller bindings).
pub fn cluster_role_bindings() -> Vec<Value> {
    let mut bindings = vec![
        cluster_binding("cluster-admin", vec![group("system:masters")]),
        cluster_binding("system:basic-user", vec![group("system:authenticated")]),
        cluster_binding("system:discovery", vec![group("system:authenticated")]),
        cluster_binding(
            "system:kube-controller-manager",
            vec![user("system:kube-controller-manager")],
        ),
        cluster_binding("system:kube-dns", vec![sa("kube-system", "kube-dns")]),
        cluster_binding("system:kube-scheduler", vec![user("system:kube-scheduler")]),
        cluster_binding("system:monitoring", vec![group("system:monitoring")]),
        cluster_binding("system:node", vec![]),
        cluster_binding("system:node-proxier", vec![user("system:kube-proxy")]),
        cluster_binding(
            "system:public-info-viewer",
            vec![
                group("system:authenticated"),
                group("system:unauthenticated"),
            ],
        ),
        cluster_binding(
            "system:service-account-issuer-discovery",
            vec![group("system:serviceaccounts")],
        ),
        cluster_binding(
            "system:volume-scheduler",
            vec![user("system:kube-scheduler")],
        ),
    ];
    // Each controller role is bound to the kube-system service account of the same name.
    bindings.extend(controller_roles().iter().map(|role| {
        let name = role["metadata"]["name"].as_str().unwrap_or_default();
        let account = name.strip_prefix(CONTROLLER_PREFIX).unwrap_or(name);
        cluster_binding(name, vec![sa("kube-system", account)])
    }));
    bindings
}

/// The bootstrap Roles, as full objects with metadata.namespace set (kube-system, kube-public).
pub fn roles() -> Vec<Value> {
    vec![
        role(
            "kube-public",
            "system:controller:bootstrap-signer",
            vec![
                rule(READ, &[""], &["configmaps"]),
                named(&["update"], &[""], &["configmaps"], &["cluster-info"]),
                events(),
            ],
        ),
        role(
            "kube-system",
            "extension-apiserver-authentication-reader",
            vec![named(
                READ,
                &[""],
                &["configmaps"],
                &["extension-apiserver-authentication"],
            )],
        ),
        role(
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            vec![
                // The legacy configmap lock, then leases and coordinated leader election's
                // candidates.
                rule(&["watch"], &[""], &["configmaps"]),
                named(
                    &["get", "update"],
                    &[""],
                    &["configmaps"],
                    &["kube-controller-manager"],
                ),
                rule(
                    &["create", "get", "list", "update", "watch"],
                    &["coordination.k8s.io"],
                    &["leases"],
                ),
                rule(
                    &["create", "get", "list", "update", "watch"],
                    &["coordination.k8s.io"],
                    &["leasecandidates"],
                ),
            ],
        ),
        role(
            "kube-system",
            "system::leader-locking-kube-scheduler",
            vec![
                // The legacy configmap lock, then leases and coordinated leader election's
                // candidates.
                rule(&["watch"], &[""], &["configmaps"]),
                named(
                    &["get", "update"],
                    &[""],
                    &["configmaps"],
                    &["kube-scheduler"],
                ),
                rule(
                    &["create", "get", "list", "update", "watch"],
                    &["coordination.k8s.io"],
                    &["leases"],
                ),
                rule(
                    &["create", "get", "list", "update", "watch"],
                    &["coordination.k8s.io"],
                    &["leasecandidates"],
                ),
            ],
        ),
        role(
            "kube-system",
            "system:controller:bootstrap-signer",
            vec![rule(READ, &[""], &["secrets"])],
        ),
        role(
            "kube-system",
            "system:controller:cloud-provider",
            vec![rule(
                &["create", "get", "list", "watch"],
                &[""],
                &["configmaps"],
            )],
        ),
        role(
            "kube-system",
            "system:controller:token-cleaner",
            vec![
                rule(&["delete", "get", "list", "watch"], &[""], &["secrets"]),
                events(),
            ],
        ),
    ]
}

/// The bootstrap RoleBindings, as full objects with metadata.namespace set.
pub fn role_bindings() -> Vec<Value> {
    vec![
        role_binding(
            "kube-public",
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            vec![sa("kube-system", "bootstrap-signer")],
        ),
        role_binding(
            "kube-system",
            "system::extension-apiserver-authentication-reader",
            "extension-apiserver-authentication-reader",
            vec![
                user("system:kube-controller-manager"),
                user("system:kube-scheduler"),
            ],
        ),
        role_binding(
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            "system::leader-locking-kube-controller-manager",
            vec![
                user("system:kube-controller-manager"),
                sa("kube-system", "kube-controller-manager"),
                sa("kube-system", "leader-election-controller"),
            ],
        ),
        role_binding(
            "kube-system",
            "system::leader-locking-kube-scheduler",
            "system::leader-locking-kube-scheduler",
            vec![
                user("system:kube-scheduler"),
                sa("kube-system", "kube-scheduler"),
            ],
        ),
        role_binding(
            "kube-system",
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            vec![sa("kube-system", "bootstrap-signer")],
        ),
        role_binding(
            "kube-system",
            "system:controller:cloud-provider",
            "system:controller:cloud-provider",
            vec![sa("kube-system", "cloud-provider")],
        ),
        role_binding(
            "kube-system",
            "system:controller:token-cleaner",
            "system:controller:token-cleaner",
            vec![sa("kube-system", "token-cleaner")],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashSet};

    fn name(object: &Value) -> &str {
        object["metadata"]["name"].as_str().unwrap()
    }

    fn namespace(object: &Value) -> &str {
        object["metadata"]["namespace"].as_str().unwrap_or("")
    }

    fn find<'a>(objects: &'a [Value], wanted: &str) -> &'a Value {
        objects
            .iter()
            .find(|o| name(o) == wanted)
            .unwrap_or_else(|| panic!("{wanted} missing"))
    }

    fn strings(list: &Value) -> Vec<&str> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap())
            .collect()
    }

    /// Every resource granted by the roles carrying `label`, i.e. what an aggregated role
    /// selecting that label ends up with.
    fn aggregated_resources(label: &str) -> BTreeSet<String> {
        cluster_roles()
            .iter()
            .filter(|r| r["metadata"]["labels"][label] == "true")
            .flat_map(|r| r["rules"].as_array().cloned().unwrap_or_default())
            .flat_map(|rule| {
                strings(&rule["resources"])
                    .into_iter()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn counts_match_upstream_testdata() {
        // cluster-roles.yaml has 31 roles and controller-roles.yaml 35; cluster-role-bindings.yaml
        // 12 bindings and controller-role-bindings.yaml 35; namespace-roles.yaml and
        // namespace-role-bindings.yaml 7 each.
        assert_eq!(controller_roles().len(), 35);
        assert_eq!(cluster_roles().len(), 31 + 35);
        assert_eq!(cluster_role_bindings().len(), 12 + 35);
        assert_eq!(roles().len(), 7);
        assert_eq!(role_bindings().len(), 7);
    }

    #[test]
    fn names_are_unique_per_kind_and_namespace() {
        let sets = [
            cluster_roles(),
            cluster_role_bindings(),
            roles(),
            role_bindings(),
        ];
        for objects in sets {
            let mut seen = HashSet::new();
            for o in &objects {
                let key = (namespace(o).to_string(), name(o).to_string());
                assert!(seen.insert(key), "{} {} twice", o["kind"], name(o));
            }
        }
    }

    #[test]
    fn every_object_is_a_complete_bootstrap_object() {
        let all = [
            ("ClusterRole", cluster_roles()),
            ("ClusterRoleBinding", cluster_role_bindings()),
            ("Role", roles()),
            ("RoleBinding", role_bindings()),
        ];
        for (kind, objects) in all {
            for o in &objects {
                assert_eq!(o["apiVersion"], "rbac.authorization.k8s.io/v1");
                assert_eq!(o["kind"], kind);
                let meta = &o["metadata"];
                assert_eq!(
                    meta["labels"]["kubernetes.io/bootstrapping"],
                    "rbac-defaults"
                );
                assert_eq!(
                    meta["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
                    "true"
                );
                let namespaced = kind.starts_with("Role");
                assert_eq!(meta.get("namespace").is_some(), namespaced, "{}", name(o));
                if namespaced {
                    assert!(["kube-system", "kube-public"].contains(&namespace(o)));
                }
            }
        }
    }

    #[test]
    fn every_binding_refers_to_a_bootstrap_role() {
        let cluster: HashSet<String> = cluster_roles()
            .iter()
            .map(|r| name(r).to_string())
            .collect();
        for b in cluster_role_bindings() {
            assert_eq!(b["roleRef"]["apiGroup"], RBAC_GROUP);
            assert_eq!(b["roleRef"]["kind"], "ClusterRole");
            let role = b["roleRef"]["name"].as_str().unwrap();
            assert!(cluster.contains(role), "{} grants unknown {role}", name(&b));
        }
        let namespaced: HashSet<(String, String)> = roles()
            .iter()
            .map(|r| (namespace(r).to_string(), name(r).to_string()))
            .collect();
        for b in role_bindings() {
            assert_eq!(b["roleRef"]["apiGroup"], RBAC_GROUP);
            assert_eq!(b["roleRef"]["kind"], "Role");
            let role = b["roleRef"]["name"].as_str().unwrap().to_string();
            let key = (namespace(&b).to_string(), role);
            assert!(
                namespaced.contains(&key),
                "{} grants unknown {key:?}",
                name(&b)
            );
            let subjects = b["subjects"].as_array();
            assert!(
                subjects.is_some_and(|s| !s.is_empty()),
                "{} binds nobody",
                name(&b)
            );
        }
    }

    #[test]
    fn cluster_admin_can_do_everything() {
        let roles = cluster_roles();
        assert_eq!(
            find(&roles, "cluster-admin")["rules"],
            json!([
                {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                {"verbs": ["*"], "nonResourceURLs": ["*"]},
            ])
        );
        let bindings = cluster_role_bindings();
        assert_eq!(
            find(&bindings, "cluster-admin")["subjects"],
            json!([{"kind": "Group", "apiGroup": RBAC_GROUP, "name": "system:masters"}])
        );
    }

    #[test]
    fn view_does_not_grant_secrets_but_edit_does() {
        let roles = cluster_roles();
        for (aggregated, label) in [("admin", TO_ADMIN), ("edit", TO_EDIT), ("view", TO_VIEW)] {
            let role = find(&roles, aggregated);
            assert!(
                role.get("rules").is_none(),
                "{aggregated} has rules of its own"
            );
            let selector = &role["aggregationRule"]["clusterRoleSelectors"];
            assert_eq!(selector, &json!([{"matchLabels": {label: "true"}}]));
        }
        // view feeds edit and edit feeds admin, as upstream chains them.
        assert_eq!(find(&roles, "view")["metadata"]["labels"][TO_EDIT], "true");
        assert_eq!(find(&roles, "edit")["metadata"]["labels"][TO_ADMIN], "true");
        let view = aggregated_resources(TO_VIEW);
        assert!(view.contains("pods") && view.contains("configmaps"));
        assert!(!view.contains("secrets"), "view must not read secrets");
        assert!(aggregated_resources(TO_EDIT).contains("secrets"));
    }

    #[test]
    fn controller_roles_and_bindings_pair_up() {
        let roles: BTreeSet<String> = cluster_roles()
            .iter()
            .map(|r| name(r).to_string())
            .filter(|n| n.starts_with(CONTROLLER_PREFIX))
            .collect();
        let bindings: Vec<Value> = cluster_role_bindings()
            .into_iter()
            .filter(|b| name(b).starts_with(CONTROLLER_PREFIX))
            .collect();
        assert_eq!(roles.len(), 35);
        assert_eq!(bindings.len(), roles.len());
        let mut bound = BTreeSet::new();
        for b in &bindings {
            let n = name(b);
            assert_eq!(b["roleRef"]["name"], n);
            let account = &n[CONTROLLER_PREFIX.len()..];
            assert_eq!(
                b["subjects"],
                json!([{"kind": "ServiceAccount", "name": account, "namespace": "kube-system"}])
            );
            bound.insert(n.to_string());
        }
        assert_eq!(bound, roles);
    }

    #[test]
    fn rules_are_well_formed_and_sorted_as_upstream_builds_them() {
        let all = cluster_roles().into_iter().chain(roles());
        for role in all {
            for r in role["rules"].as_array().into_iter().flatten() {
                assert!(
                    !strings(&r["verbs"]).is_empty(),
                    "{}: rule without verbs",
                    name(&role)
                );
                if r.get("nonResourceURLs").is_some() {
                    assert!(r.get("apiGroups").is_none() && r.get("resources").is_none());
                } else {
                    assert!(!strings(&r["apiGroups"]).is_empty(), "{}", name(&role));
                    assert!(!strings(&r["resources"]).is_empty(), "{}", name(&role));
                }
                for field in [
                    "verbs",
                    "apiGroups",
                    "resources",
                    "resourceNames",
                    "nonResourceURLs",
                ] {
                    let list = strings(&r[field]);
                    let mut sorted = list.clone();
                    sorted.sort_unstable();
                    sorted.dedup();
                    assert_eq!(list, sorted, "{}: {field} not sorted", name(&role));
                }
            }
        }
    }

    #[test]
    fn system_node_binding_keeps_no_subjects() {
        let bindings = cluster_role_bindings();
        let node = find(&bindings, "system:node");
        assert!(node.get("subjects").is_none());
        assert_eq!(node["roleRef"]["name"], "system:node");
    }
}
