//! The remaining groups: networking, discovery, rbac, scheduling, storage,
//! admissionregistration, apiextensions and flowcontrol (each `pkg/apis/<group>/v1/defaults.go`;
//! CRDs from `apiextensions-apiserver/pkg/apis/apiextensions/v1/defaults.go`).

use serde_json::{json, Value};

use super::{child, each, existing, root, set, str_of, Obj};

pub(crate) fn network_policy(v: &mut Value) {
    let Some(spec) = root(v).map(|m| child(m, "spec")) else {
        return;
    };
    for dir in ["ingress", "egress"] {
        each(spec, dir, |rule| {
            each(rule, "ports", |p| set(p, "protocol", json!("TCP")))
        });
    }
    if spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
    {
        let egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let types = if egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        spec.insert("policyTypes".into(), types);
    }
}

pub(crate) fn ingress_class(v: &mut Value) {
    if let Some(p) = root(v)
        .and_then(|m| existing(m, "spec"))
        .and_then(|s| existing(s, "parameters"))
    {
        set(p, "scope", json!("Cluster"));
    }
}

pub(crate) fn endpoint_slice(v: &mut Value) {
    if let Some(m) = root(v) {
        each(m, "ports", |p| {
            set(p, "name", json!(""));
            set(p, "protocol", json!("TCP"));
        });
    }
}

/// `SetDefaults_RoleBinding` / `SetDefaults_ClusterRoleBinding` and `SetDefaults_Subject`.
pub(crate) fn role_binding(v: &mut Value) {
    let Some(m) = root(v) else { return };
    set(
        child(m, "roleRef"),
        "apiGroup",
        json!("rbac.authorization.k8s.io"),
    );
    each(m, "subjects", |s| {
        // ServiceAccount subjects keep the empty group, which Go leaves out (omitempty).
        if matches!(str_of(s, "kind"), "User" | "Group") && str_of(s, "apiGroup").is_empty() {
            s.insert("apiGroup".into(), json!("rbac.authorization.k8s.io"));
        }
    });
}

pub(crate) fn priority_class(v: &mut Value) {
    if let Some(m) = root(v) {
        set(m, "preemptionPolicy", json!("PreemptLowerPriority"));
    }
}

pub(crate) fn storage_class(v: &mut Value) {
    if let Some(m) = root(v) {
        set(m, "reclaimPolicy", json!("Delete"));
        set(m, "volumeBindingMode", json!("Immediate"));
    }
}

pub(crate) fn csi_driver(v: &mut Value) {
    let Some(spec) = root(v).map(|m| child(m, "spec")) else {
        return;
    };
    set(spec, "attachRequired", json!(true));
    set(spec, "podInfoOnMount", json!(false));
    set(spec, "storageCapacity", json!(false));
    set(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
    if spec
        .get("volumeLifecycleModes")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
    {
        spec.insert("volumeLifecycleModes".into(), json!(["Persistent"]));
    }
    set(spec, "requiresRepublish", json!(false));
    // SELinuxMountReadWriteOncePod (beta, on).
    set(spec, "seLinuxMount", json!(false));
}

/// `SetDefaults_Rule` on each rule, `SetDefaults_ServiceReference` on the client config.
fn webhook(w: &mut Obj, mutating: bool) {
    set(w, "failurePolicy", json!("Fail"));
    set(w, "matchPolicy", json!("Equivalent"));
    set(w, "namespaceSelector", json!({}));
    set(w, "objectSelector", json!({}));
    set(w, "timeoutSeconds", json!(10));
    if mutating {
        set(w, "reinvocationPolicy", json!("Never"));
    }
    each(w, "rules", |r| set(r, "scope", json!("*")));
    if let Some(s) = existing(w, "clientConfig").and_then(|c| existing(c, "service")) {
        set(s, "port", json!(443));
    }
}

pub(crate) fn validating_webhooks(v: &mut Value) {
    if let Some(m) = root(v) {
        each(m, "webhooks", |w| webhook(w, false));
    }
}

pub(crate) fn mutating_webhooks(v: &mut Value) {
    if let Some(m) = root(v) {
        each(m, "webhooks", |w| webhook(w, true));
    }
}

/// `SetDefaults_MatchResources` (and the rule scopes inside it).
fn match_resources(mr: &mut Obj) {
    set(mr, "matchPolicy", json!("Equivalent"));
    set(mr, "namespaceSelector", json!({}));
    set(mr, "objectSelector", json!({}));
    for k in ["resourceRules", "excludeResourceRules"] {
        each(mr, k, |r| set(r, "scope", json!("*")));
    }
}

pub(crate) fn validating_admission_policy(v: &mut Value) {
    let Some(spec) = root(v).map(|m| child(m, "spec")) else {
        return;
    };
    set(spec, "failurePolicy", json!("Fail"));
    if let Some(mc) = existing(spec, "matchConstraints") {
        match_resources(mc);
    }
}

pub(crate) fn validating_admission_policy_binding(v: &mut Value) {
    if let Some(mr) = root(v)
        .and_then(|m| existing(m, "spec"))
        .and_then(|s| existing(s, "matchResources"))
    {
        match_resources(mr);
    }
}

pub(crate) fn custom_resource_definition(v: &mut Value) {
    let Some(m) = root(v) else { return };
    let spec = child(m, "spec");
    let names = child(spec, "names");
    let kind = str_of(names, "kind").to_string();
    if str_of(names, "singular").is_empty() {
        names.insert("singular".into(), json!(kind.to_lowercase()));
    }
    if str_of(names, "listKind").is_empty() && !kind.is_empty() {
        names.insert("listKind".into(), json!(format!("{kind}List")));
    }
    set(spec, "conversion", json!({"strategy": "None"}));
    if let Some(s) = existing(spec, "conversion")
        .and_then(|c| existing(c, "webhook"))
        .and_then(|w| existing(w, "clientConfig"))
        .and_then(|c| existing(c, "service"))
    {
        set(s, "port", json!(443));
    }
    let storage = spec
        .get("versions")
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .find(|v| v.get("storage") == Some(&Value::Bool(true)))
        })
        .and_then(|v| v.get("name"))
        .cloned();
    if let Some(storage) = storage {
        let status = child(m, "status");
        if status
            .get("storedVersions")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
        {
            status.insert("storedVersions".into(), json!([storage]));
        }
    }
}

pub(crate) fn flow_schema(v: &mut Value) {
    let Some(spec) = root(v).map(|m| child(m, "spec")) else {
        return;
    };
    if spec
        .get("matchingPrecedence")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        == 0
    {
        spec.insert("matchingPrecedence".into(), json!(1000));
    }
}

pub(crate) fn priority_level_configuration(v: &mut Value) {
    let Some(spec) = root(v).and_then(|m| existing(m, "spec")) else {
        return;
    };
    if let Some(l) = existing(spec, "limited") {
        set(l, "nominalConcurrencyShares", json!(30));
        set(l, "lendablePercent", json!(0));
        if let Some(q) = existing(l, "limitResponse").and_then(|r| existing(r, "queuing")) {
            for (k, d) in [("handSize", 8), ("queues", 64), ("queueLengthLimit", 50)] {
                if q.get(k).and_then(Value::as_i64).unwrap_or(0) == 0 {
                    q.insert(k.into(), json!(d));
                }
            }
        }
    }
    if let Some(e) = existing(spec, "exempt") {
        set(e, "nominalConcurrencyShares", json!(0));
        set(e, "lendablePercent", json!(0));
    }
}

/// `SetDefaults_ServiceReference` of apiregistration/v1: the service port is 443.
pub(crate) fn api_service(v: &mut Value) {
    let Some(m) = root(v) else { return };
    if let Some(svc) = existing(m, "spec").and_then(|s| existing(s, "service")) {
        set(svc, "port", json!(443));
    }
}
