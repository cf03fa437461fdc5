//! `apps/v1` (`pkg/apis/apps/validation`, plus the selector immutability the registry
//! strategies add for apps/v1): Deployments, ReplicaSets, StatefulSets, DaemonSets and
//! ControllerRevisions.

use serde_json::Value;

use super::field::{go_int_or_string, go_label_selector, go_string_map, q, IMMUTABLE, NEGATIVE};
use super::names::{as_selector, percent, validate_label_selector, Selector};
use super::pod::{
    meta_labels, nonnegative, normalize, restart_policy, validate_pod_template, PodOpts,
};
use super::{arr, int, str_at, FieldError};

fn selector_of(spec: &Value) -> Option<&Value> {
    spec.get("selector").filter(|s| !s.is_null())
}

/// Required, strictly valid and non-empty (Deployments, ReplicaSets, StatefulSets).
fn required_selector(spec: &Value, what: &str, errs: &mut Vec<FieldError>) {
    match selector_of(spec) {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            validate_label_selector(Some(sel), "spec.selector", errs);
            let n = sel
                .get("matchLabels")
                .and_then(Value::as_object)
                .map(|m| m.len())
                .unwrap_or(0)
                + arr(sel.get("matchExpressions")).len();
            if n == 0 {
                errs.push(FieldError::invalid(
                    "spec.selector",
                    &go_label_selector(Some(sel)),
                    &format!("empty selector is invalid for {what}"),
                ));
            }
        }
    }
}

fn mismatch(tpl: Option<&Value>, errs: &mut Vec<FieldError>) {
    errs.push(FieldError::invalid(
        "spec.template.metadata.labels",
        &go_string_map(meta_labels(tpl)),
        "`selector` does not match template `labels`",
    ));
}

/// `ValidatePodTemplateSpecForReplicaSet` (Deployments and ReplicaSets).
fn replica_set_template(spec: &Value, errs: &mut Vec<FieldError>) {
    let sel = match as_selector(selector_of(spec)) {
        Ok(sel) => sel,
        Err(()) => {
            errs.push(FieldError::invalid(
                "spec.selector",
                &go_label_selector(selector_of(spec)),
                "invalid label selector",
            ));
            return;
        }
    };
    let tpl = spec.get("template").filter(|t| !t.is_null());
    if !sel.is_empty() && !sel.matches(meta_labels(tpl)) {
        mismatch(tpl, errs);
    }
    validate_pod_template(tpl, "spec.template", &PodOpts::default(), errs);
    always_restart(tpl, "ReplicaSet", errs);
}

fn always_restart(tpl: Option<&Value>, kind: &str, errs: &mut Vec<FieldError>) {
    let rp = restart_policy(tpl.and_then(|t| t.get("spec")));
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            &q(rp),
            &["Always"],
        ));
    }
    if tpl
        .and_then(|t| t.pointer("/spec/activeDeadlineSeconds"))
        .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// `getIntOrPercentValue`.
fn int_or_percent_value(v: Option<&Value>, default: i64) -> i64 {
    match v {
        None | Some(Value::Null) => default,
        Some(Value::String(s)) => {
            if percent(s).is_empty() {
                s[..s.len() - 1].parse().unwrap_or(0)
            } else {
                s.parse().unwrap_or(0)
            }
        }
        Some(v) => v.as_i64().unwrap_or(0),
    }
}

/// `ValidatePositiveIntOrPercent` and, with `max100`, `IsNotMoreThan100Percent`.
fn positive_int_or_percent(
    v: Option<&Value>,
    path: &str,
    max100: bool,
    errs: &mut Vec<FieldError>,
) {
    match v {
        Some(Value::String(s)) => {
            for m in percent(s) {
                errs.push(FieldError::invalid(path, &go_int_or_string(v), &m));
            }
            if max100 && percent(s).is_empty() && int_or_percent_value(v, 0) > 100 {
                errs.push(FieldError::invalid(
                    path,
                    &go_int_or_string(v),
                    "must not be greater than 100%",
                ));
            }
        }
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            if n < 0 {
                errs.push(FieldError::invalid(path, &n.to_string(), NEGATIVE));
            }
        }
        _ => {}
    }
}

fn selector_immutable(spec: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let Some(old) = old else { return };
    let norm = |v: Option<&Value>| v.map(normalize).filter(|v| !v.is_null());
    let old_sel = norm(old.pointer("/spec/selector"));
    if norm(selector_of(spec)) != old_sel {
        errs.push(FieldError::invalid(
            "spec.selector",
            &go_label_selector(selector_of(spec)),
            IMMUTABLE,
        ));
    }
}

/// `ValidateDeployment` / `ValidateDeploymentUpdate` (+ the apps/v1 selector rule).
pub fn validate_deployment(d: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let null = Value::Null;
    let spec = d.get("spec").unwrap_or(&null);
    nonnegative(spec.get("replicas"), "spec.replicas", errs);
    required_selector(spec, "deployment", errs);
    replica_set_template(spec, errs);
    if let Some(strategy) = spec.get("strategy").filter(|s| !s.is_null()) {
        let ty = str_at(strategy, "type").unwrap_or("");
        let ru = strategy.get("rollingUpdate").filter(|r| !r.is_null());
        match ty {
            "Recreate" => {
                if ru.is_some() {
                    errs.push(FieldError::forbidden(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            "RollingUpdate" | "" => {
                if let Some(ru) = ru {
                    let p = "spec.strategy.rollingUpdate";
                    let (mu, ms) = (ru.get("maxUnavailable"), ru.get("maxSurge"));
                    positive_int_or_percent(mu, &format!("{p}.maxUnavailable"), false, errs);
                    positive_int_or_percent(ms, &format!("{p}.maxSurge"), false, errs);
                    if int_or_percent_value(mu, 25) == 0 && int_or_percent_value(ms, 25) == 0 {
                        errs.push(FieldError::invalid(
                            format!("{p}.maxUnavailable"),
                            &go_int_or_string(mu),
                            "may not be 0 when `maxSurge` is 0",
                        ));
                    }
                    if let Some(Value::String(s)) = mu {
                        if percent(s).is_empty() && int_or_percent_value(mu, 0) > 100 {
                            errs.push(FieldError::invalid(
                                format!("{p}.maxUnavailable"),
                                &go_int_or_string(mu),
                                "must not be greater than 100%",
                            ));
                        }
                    }
                }
            }
            other => errs.push(FieldError::not_supported(
                "spec.strategy",
                &format!(
                    "apps.DeploymentStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}}",
                    q(other)
                ),
                &["Recreate", "RollingUpdate"],
            )),
        }
    }
    nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds", errs);
    nonnegative(
        spec.get("revisionHistoryLimit"),
        "spec.revisionHistoryLimit",
        errs,
    );
    if let Some(pds) = int(spec.get("progressDeadlineSeconds")) {
        nonnegative(
            spec.get("progressDeadlineSeconds"),
            "spec.progressDeadlineSeconds",
            errs,
        );
        if pds <= int(spec.get("minReadySeconds")).unwrap_or(0) {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                &pds.to_string(),
                "must be greater than minReadySeconds",
            ));
        }
    }
    selector_immutable(spec, old, errs);
}

/// `ValidateReplicaSet` / `ValidateReplicaSetUpdate` (+ the apps/v1 selector rule).
pub fn validate_replica_set(rs: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let null = Value::Null;
    let spec = rs.get("spec").unwrap_or(&null);
    nonnegative(spec.get("replicas"), "spec.replicas", errs);
    nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds", errs);
    // Upstream says "deployment" here too.
    required_selector(spec, "deployment", errs);
    replica_set_template(spec, errs);
    selector_immutable(spec, old, errs);
}

/// `ValidateDaemonSet` / `ValidateDaemonSetUpdate` (+ the apps/v1 selector rule).
pub fn validate_daemon_set(ds: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let null = Value::Null;
    let spec = ds.get("spec").unwrap_or(&null);
    validate_label_selector(selector_of(spec), "spec.selector", errs);
    let tpl = spec.get("template").filter(|t| !t.is_null());
    if let Ok(sel) = as_selector(selector_of(spec)) {
        if !sel.matches(meta_labels(tpl)) {
            mismatch(tpl, errs);
        }
    }
    if let Some(sel) = selector_of(spec) {
        if as_selector(Some(sel)) == Ok(Selector::Everything) {
            errs.push(FieldError::invalid(
                "spec.selector",
                &go_label_selector(Some(sel)),
                "empty selector is invalid for daemonset",
            ));
        }
    }
    validate_pod_template(tpl, "spec.template", &PodOpts::default(), errs);
    always_restart(tpl, "DaemonSet", errs);
    nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds", errs);
    nonnegative(
        spec.get("templateGeneration"),
        "spec.templateGeneration",
        errs,
    );
    if let Some(us) = spec.get("updateStrategy").filter(|s| !s.is_null()) {
        let ty = str_at(us, "type").unwrap_or("RollingUpdate");
        match ty {
            "OnDelete" => {}
            "RollingUpdate" | "" => {
                if let Some(ru) = us.get("rollingUpdate").filter(|r| !r.is_null()) {
                    let p = "spec.updateStrategy.rollingUpdate";
                    let (mu, ms) = (ru.get("maxUnavailable"), ru.get("maxSurge"));
                    positive_int_or_percent(mu, &format!("{p}.maxUnavailable"), true, errs);
                    positive_int_or_percent(ms, &format!("{p}.maxSurge"), true, errs);
                    let has_u = int_or_percent_value(mu, 1) != 0;
                    let has_s = int_or_percent_value(ms, 0) != 0;
                    if has_u && has_s {
                        errs.push(FieldError::invalid(
                            format!("{p}.maxSurge"),
                            &go_int_or_string(ms),
                            "may not be set when maxUnavailable is non-zero",
                        ));
                    } else if !has_u && !has_s {
                        errs.push(FieldError::required(
                            format!("{p}.maxUnavailable"),
                            "cannot be 0 when maxSurge is 0",
                        ));
                    }
                }
            }
            other => errs.push(FieldError::not_supported(
                "spec.updateStrategy",
                &format!(
                    "apps.DaemonSetUpdateStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}}",
                    q(other)
                ),
                &["RollingUpdate", "OnDelete"],
            )),
        }
    }
    nonnegative(
        spec.get("revisionHistoryLimit"),
        "spec.revisionHistoryLimit",
        errs,
    );
    selector_immutable(spec, old, errs);
}

const STATEFULSET_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// `ValidateStatefulSet` / `ValidateStatefulSetUpdate`.
pub fn validate_stateful_set(ss: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let null = Value::Null;
    let spec = ss.get("spec").unwrap_or(&null);
    match spec.get("podManagementPolicy").filter(|v| !v.is_null()) {
        None => {}
        Some(v) => match v.as_str().unwrap_or("") {
            "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
            "OrderedReady" | "Parallel" => {}
            other => errs.push(FieldError::invalid(
                "spec.podManagementPolicy",
                &q(other),
                "must be 'OrderedReady' or 'Parallel'",
            )),
        },
    }
    if let Some(us) = spec.get("updateStrategy").filter(|s| !s.is_null()) {
        let ru = us.get("rollingUpdate").filter(|r| !r.is_null());
        match str_at(us, "type").unwrap_or("RollingUpdate") {
            "" => errs.push(FieldError::required("spec.updateStrategy", "")),
            "OnDelete" => {
                if let Some(ru) = ru {
                    errs.push(FieldError::invalid(
                        "spec.updateStrategy.rollingUpdate",
                        &format!(
                            "apps.RollingUpdateStatefulSetStrategy{{Partition:{}, MaxUnavailable:(*intstr.IntOrString)(nil)}}",
                            int(ru.get("partition")).unwrap_or(0)
                        ),
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            "RollingUpdate" => {
                if let Some(ru) = ru {
                    let p = "spec.updateStrategy.rollingUpdate";
                    nonnegative(ru.get("partition"), &format!("{p}.partition"), errs);
                    let mu = ru.get("maxUnavailable").filter(|v| !v.is_null());
                    if mu.is_some() {
                        let mp = format!("{p}.maxUnavailable");
                        positive_int_or_percent(mu, &mp, true, errs);
                        if int_or_percent_value(mu, 1) == 0 {
                            errs.push(FieldError::invalid(&mp, &go_int_or_string(mu), "cannot be 0"));
                        }
                    }
                }
            }
            other => errs.push(FieldError::invalid(
                "spec.updateStrategy",
                &format!(
                    "apps.StatefulSetUpdateStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}}",
                    q(other)
                ),
                "must be 'RollingUpdate' or 'OnDelete'",
            )),
        }
    }
    if let Some(policy) = spec
        .get("persistentVolumeClaimRetentionPolicy")
        .filter(|p| !p.is_null())
    {
        for key in ["whenDeleted", "whenScaled"] {
            if let Some(v) = str_at(policy, key) {
                if v != "Retain" && v != "Delete" {
                    errs.push(FieldError::not_supported(
                        format!("spec.persistentVolumeClaimRetentionPolicy.{key}"),
                        &q(v),
                        &["Retain", "Delete"],
                    ));
                }
            }
        }
    }
    nonnegative(spec.get("replicas"), "spec.replicas", errs);
    nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds", errs);
    nonnegative(spec.pointer("/ordinals/start"), "spec.ordinals.start", errs);
    required_selector(spec, "statefulset", errs);
    let tpl = spec.get("template").filter(|t| !t.is_null());
    match as_selector(selector_of(spec)) {
        Err(()) => errs.push(FieldError::invalid(
            "spec.selector",
            &go_label_selector(selector_of(spec)),
            "",
        )),
        Ok(sel) => {
            if !sel.is_empty() && !sel.matches(meta_labels(tpl)) {
                mismatch(tpl, errs);
            }
            let opts = PodOpts {
                is_pod: false,
                extra_volumes: arr(spec.get("volumeClaimTemplates"))
                    .iter()
                    .filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect(),
            };
            validate_pod_template(tpl, "spec.template", &opts, errs);
        }
    }
    always_restart(tpl, "StatefulSet", errs);
    if let Some(old) = old {
        let strip = |v: &Value| {
            let mut v = normalize(v);
            if let Some(m) = v.as_object_mut() {
                for k in STATEFULSET_MUTABLE {
                    m.remove(*k);
                }
            }
            v
        };
        if strip(spec) != strip(old.get("spec").unwrap_or(&null)) {
            errs.push(FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
}

/// `ValidateControllerRevision` / `ValidateControllerRevisionUpdate`.
pub fn validate_controller_revision(cr: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    if cr.get("data").is_none_or(Value::is_null) {
        errs.push(FieldError::required("data", "data is mandatory"));
    }
    nonnegative(cr.get("revision"), "revision", errs);
    if let Some(old) = old {
        if normalize(cr.get("data").unwrap_or(&Value::Null))
            != normalize(old.get("data").unwrap_or(&Value::Null))
        {
            errs.push(FieldError::invalid(
                "data",
                &cr.get("data").map(Value::to_string).unwrap_or_default(),
                IMMUTABLE,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(spec: Value) -> Value {
        let mut base = json!({"spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        }});
        for (k, v) in spec.as_object().unwrap() {
            base["spec"][k] = v.clone();
        }
        base
    }

    fn has(errs: &[FieldError], field: &str, message: &str) -> bool {
        errs.iter()
            .any(|e| e.field == field && e.message == message)
    }

    #[test]
    fn deployments() {
        let mut errs = Vec::new();
        validate_deployment(&deploy(json!({})), None, &mut errs);
        assert_eq!(errs, vec![]);
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"replicas": -1}), "spec.replicas", "Invalid value: -1: must be greater than or equal to 0"),
            (json!({"selector": null}), "spec.selector", "Required value"),
            (
                json!({"selector": null}),
                "spec.template.metadata.labels",
                "Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            ),
            (
                json!({"selector": {}}),
                "spec.selector",
                "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
            ),
            (
                json!({"selector": {"matchLabels": {"app": "other"}}}),
                "spec.template.metadata.labels",
                "Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            ),
            (
                json!({"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}], "restartPolicy": "Never"}}}),
                "spec.template.spec.restartPolicy",
                "Unsupported value: \"Never\": supported values: \"Always\"",
            ),
            (
                json!({"template": {"metadata": {"labels": {"app": "web"}}, "spec": {}}}),
                "spec.template.spec.containers",
                "Required value",
            ),
            (
                json!({"strategy": {"type": "Rolling"}}),
                "spec.strategy",
                "Unsupported value: apps.DeploymentStrategy{Type:\"Rolling\", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: \"Recreate\", \"RollingUpdate\"",
            ),
            (
                json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}),
                "spec.strategy.rollingUpdate.maxUnavailable",
                "Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0",
            ),
            (
                json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "x", "maxUnavailable": 1}}}),
                "spec.strategy.rollingUpdate.maxSurge",
                "Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"x\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            ),
            (
                json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%"}}}),
                "spec.strategy.rollingUpdate.maxUnavailable",
                "Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%",
            ),
            (
                json!({"strategy": {"type": "Recreate", "rollingUpdate": {}}}),
                "spec.strategy.rollingUpdate",
                "Forbidden: may not be specified when strategy `type` is 'Recreate'",
            ),
            (json!({"revisionHistoryLimit": -1}), "spec.revisionHistoryLimit", "Invalid value: -1: must be greater than or equal to 0"),
            (
                json!({"progressDeadlineSeconds": 5, "minReadySeconds": 10}),
                "spec.progressDeadlineSeconds",
                "Invalid value: 5: must be greater than minReadySeconds",
            ),
        ];
        for (spec, field, message) in cases {
            let mut errs = Vec::new();
            validate_deployment(&deploy(spec.clone()), None, &mut errs);
            assert!(has(&errs, field, message), "{spec}: {errs:?}");
        }
        let old = deploy(json!({}));
        let new = deploy(
            json!({"selector": {"matchLabels": {"app": "web", "v": "2"}}, "template": {"metadata": {"labels": {"app": "web", "v": "2"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}),
        );
        let mut errs = Vec::new();
        validate_deployment(&new, Some(&old), &mut errs);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.selector");
        assert_eq!(errs[0].message, "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable");
    }

    #[test]
    fn replica_sets_daemon_sets_stateful_sets() {
        let tpl = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let mut errs = Vec::new();
        validate_replica_set(
            &json!({"spec": {"selector": {"matchLabels": {"app": "b"}}, "template": tpl}}),
            None,
            &mut errs,
        );
        assert!(has(&errs, "spec.template.metadata.labels", "Invalid value: map[string]string{\"app\":\"a\"}: `selector` does not match template `labels`"));

        let mut errs = Vec::new();
        validate_daemon_set(&json!({"spec": {"template": tpl}}), None, &mut errs);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "spec.template.metadata.labels");
        let mut errs = Vec::new();
        validate_daemon_set(
            &json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "template": tpl, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}}}),
            None,
            &mut errs,
        );
        assert!(has(
            &errs,
            "spec.updateStrategy.rollingUpdate.maxUnavailable",
            "Required value: cannot be 0 when maxSurge is 0"
        ));
        let mut errs = Vec::new();
        validate_daemon_set(
            &json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "template": tpl, "updateStrategy": {"type": "Sometimes"}}}),
            None,
            &mut errs,
        );
        assert!(has(&errs, "spec.updateStrategy", "Unsupported value: apps.DaemonSetUpdateStrategy{Type:\"Sometimes\", RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}: supported values: \"RollingUpdate\", \"OnDelete\""));

        let ss = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "serviceName": "s", "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]}}, "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}});
        let mut errs = Vec::new();
        validate_stateful_set(&ss, None, &mut errs);
        assert_eq!(errs, vec![]);
        let mut bad = ss.clone();
        bad["spec"]["podManagementPolicy"] = json!("Random");
        bad["spec"]["serviceName"] = json!("t");
        let mut errs = Vec::new();
        validate_stateful_set(&bad, Some(&ss), &mut errs);
        assert!(has(
            &errs,
            "spec.podManagementPolicy",
            "Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"
        ));
        assert!(has(&errs, "spec", "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
        let mut errs = Vec::new();
        validate_stateful_set(
            &json!({"spec": {"selector": {}, "template": tpl}}),
            None,
            &mut errs,
        );
        assert!(has(&errs, "spec.selector", "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for statefulset"));

        let mut errs = Vec::new();
        validate_controller_revision(&json!({"revision": -1}), None, &mut errs);
        assert!(has(&errs, "data", "Required value: data is mandatory"));
        assert!(has(
            &errs,
            "revision",
            "Invalid value: -1: must be greater than or equal to 0"
        ));
    }
}
