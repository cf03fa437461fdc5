//! Upstream spec validation per kind (`pkg/apis/*/validation`). Metadata (names, labels,
//! annotations) is validated by the API server for every kind; this module holds the
//! kind-specific rules. Each failure is one [`FieldError`], which the API server turns into a
//! `details.causes` entry of a 422 `Invalid` Status.
//!
//! Validation runs after defaulting, as upstream's does; fields upstream always defaults are
//! nevertheless accepted when absent, so a kind whose defaulting is not written yet is not
//! refused. Messages, field paths and value renderings follow upstream's `field.Error`.

use serde_json::{Map, Value};

use crate::ResourceKind;

mod apiregistration;
mod apps;
mod batch;
mod coordination;
mod core;
pub mod cron;
mod field;
mod names;
mod pod;
pub mod quantity;
// What custom resources' definitions validate with.
pub(crate) use field::{q, IMMUTABLE};
pub(crate) use names::dns1123_subdomain;
mod rbac;
mod scheduling;
mod service;

/// One invalid field, worded as upstream's `field.Error`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueDuplicate`, `FieldValueForbidden`,
    /// `FieldValueNotSupported`, `FieldValueNotFound`, `FieldValueTooLong`.
    pub reason: &'static str,
    /// The field path, e.g. `spec.containers[0].name`.
    pub field: String,
    /// The message after the field path, e.g. `Required value`.
    pub message: String,
}

/// Validates `obj` (and, on update, the transition from `old`) with its kind's strategy.
pub fn validate(kind: &ResourceKind, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    kind.strategy.validate(obj, old, &mut errs);
    dedup(errs)
}

// The validation of each kind with one signature, for the kinds' strategies.
pub(crate) fn pod(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    pod::validate_pod(obj, old, errs)
}
pub(crate) fn pod_ephemeral_containers(obj: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    pod::validate_ephemeral_update(obj, old, errs)
}
pub(crate) fn pod_template(obj: &Value, _: Option<&Value>, errs: &mut Vec<FieldError>) {
    core::validate_pod_template_kind(obj, errs)
}
pub(crate) fn replication_controller(obj: &Value, _: Option<&Value>, errs: &mut Vec<FieldError>) {
    core::validate_replication_controller(obj, errs)
}
pub(crate) fn service(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    service::validate_service(obj, old, errs)
}
pub(crate) fn config_map(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    core::validate_config_map(obj, old, errs)
}
pub(crate) fn secret(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    core::validate_secret(obj, old, errs)
}
pub(crate) fn namespace(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    if old.is_none() {
        core::validate_namespace(obj, errs)
    }
}
pub(crate) fn csr_conditions(obj: &Value, _: &Value, errs: &mut Vec<FieldError>) {
    core::validate_csr_conditions(obj, errs)
}
pub(crate) fn deployment(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    apps::validate_deployment(obj, old, errs)
}
pub(crate) fn replica_set(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    apps::validate_replica_set(obj, old, errs)
}
pub(crate) fn stateful_set(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    apps::validate_stateful_set(obj, old, errs)
}
pub(crate) fn daemon_set(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    apps::validate_daemon_set(obj, old, errs)
}
pub(crate) fn controller_revision(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    apps::validate_controller_revision(obj, old, errs)
}
pub(crate) fn job(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    batch::validate_job(obj, old, errs)
}
pub(crate) fn cron_job(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    batch::validate_cron_job(obj, old, errs)
}
pub(crate) fn role(obj: &Value, _: Option<&Value>, errs: &mut Vec<FieldError>) {
    rbac::validate_role(obj, errs)
}
pub(crate) fn cluster_role(obj: &Value, _: Option<&Value>, errs: &mut Vec<FieldError>) {
    rbac::validate_cluster_role(obj, errs)
}
pub(crate) fn role_binding(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    rbac::validate_binding(obj, old, false, errs)
}
pub(crate) fn cluster_role_binding(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    rbac::validate_binding(obj, old, true, errs)
}
pub(crate) fn lease(obj: &Value, _: Option<&Value>, errs: &mut Vec<FieldError>) {
    coordination::validate_lease(obj, errs)
}
pub(crate) fn priority_class(obj: &Value, _: Option<&Value>, errs: &mut Vec<FieldError>) {
    scheduling::validate_priority_class(obj, errs)
}
pub(crate) fn api_service(obj: &Value, _: Option<&Value>, errs: &mut Vec<FieldError>) {
    apiregistration::validate_api_service(obj, errs)
}

/// Upstream's aggregate drops errors that print identically.
fn dedup(errs: Vec<FieldError>) -> Vec<FieldError> {
    let mut out: Vec<FieldError> = Vec::with_capacity(errs.len());
    for e in errs {
        if !out
            .iter()
            .any(|o| o.field == e.field && o.message == e.message)
        {
            out.push(e);
        }
    }
    out
}

/// A string member, if it is one.
fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A list member, empty when absent or not a list.
fn arr(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// An integer member (JSON numbers with an integral value).
fn int(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
}

fn obj(v: &Value) -> Option<&Map<String, Value>> {
    v.as_object()
}

/// Validates the part at `pointer` that a subresource wrote, with its kind's strategy.
pub fn validate_part(
    kind: &ResourceKind,
    pointer: &str,
    obj: &Value,
    old: &Value,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    kind.strategy.validate_part(pointer, obj, old, &mut errs);
    dedup(errs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Validation through the strategy of the catalogue entry of `group`/`kind`.
    fn validate_group_kind(
        group: &str,
        kind: &str,
        obj: &Value,
        old: Option<&Value>,
    ) -> Vec<FieldError> {
        let kinds = crate::builtin_kinds();
        let k = kinds
            .iter()
            .find(|k| k.group == group && k.kind == kind)
            .unwrap_or_else(|| panic!("{group}/{kind} is not in the catalogue"));
        validate(k, obj, old)
    }

    #[test]
    fn each_kind_strategy_validates() {
        let cases: Vec<(&'static str, &'static str, Value, &str)> = vec![
            ("", "Pod", json!({"spec": {}}), "spec.containers"),
            (
                "",
                "Service",
                json!({"spec": {"ports": [{"port": 0}]}}),
                "spec.ports[0].port",
            ),
            ("", "ConfigMap", json!({"data": {"a b": "x"}}), "data[a b]"),
            (
                "",
                "Secret",
                json!({"type": "kubernetes.io/tls"}),
                "data[tls.crt]",
            ),
            (
                "",
                "Namespace",
                json!({"spec": {"finalizers": ["x y"]}}),
                "spec.finalizers",
            ),
            (
                "",
                "PodTemplate",
                json!({"template": {"spec": {}}}),
                "template.spec.containers",
            ),
            (
                "",
                "ReplicationController",
                json!({"spec": {}}),
                "spec.selector",
            ),
            ("apps", "Deployment", json!({"spec": {}}), "spec.selector"),
            ("apps", "ReplicaSet", json!({"spec": {}}), "spec.selector"),
            ("apps", "StatefulSet", json!({"spec": {}}), "spec.selector"),
            (
                "apps",
                "DaemonSet",
                json!({"spec": {}}),
                "spec.template.metadata.labels",
            ),
            ("apps", "ControllerRevision", json!({}), "data"),
            (
                "batch",
                "Job",
                json!({"spec": {}}),
                "spec.template.spec.containers",
            ),
            ("batch", "CronJob", json!({"spec": {}}), "spec.schedule"),
            (
                "rbac.authorization.k8s.io",
                "Role",
                json!({"rules": [{}]}),
                "rules[0].verbs",
            ),
            (
                "rbac.authorization.k8s.io",
                "ClusterRole",
                json!({"rules": [{}]}),
                "rules[0].verbs",
            ),
            (
                "rbac.authorization.k8s.io",
                "RoleBinding",
                json!({}),
                "roleRef.name",
            ),
            (
                "rbac.authorization.k8s.io",
                "ClusterRoleBinding",
                json!({}),
                "roleRef.name",
            ),
            (
                "coordination.k8s.io",
                "Lease",
                json!({"spec": {"leaseDurationSeconds": -1}}),
                "spec.leaseDurationSeconds",
            ),
        ];
        for (g, k, obj, field) in cases {
            let errs = validate_group_kind(g, k, &obj, None);
            assert!(
                errs.iter().any(|e| e.field == field),
                "{g}/{k}: {field} not in {errs:?}"
            );
        }
        assert_eq!(validate_group_kind("", "Event", &json!({}), None), vec![]);
    }

    #[test]
    fn identical_errors_are_reported_once() {
        let errs = dedup(vec![
            FieldError::required("a", ""),
            FieldError::required("a", ""),
            FieldError::required("b", ""),
        ]);
        assert_eq!(errs.len(), 2);
    }
}
