//! apps/v1, batch/v1 and autoscaling/v1 + v2 (`pkg/apis/{apps,batch,autoscaling}/*/defaults.go`
//! and the Job strategy's generated selector).

use serde_json::{json, Value};

use super::core::{pod_template, pvc_object};
use super::{child, each, existing, root, set, str_of};

pub(crate) fn deployment(v: &mut Value) {
    let Some(m) = root(v) else { return };
    let spec = child(m, "spec");
    set(spec, "replicas", json!(1));
    let strategy = child(spec, "strategy");
    set(strategy, "type", json!("RollingUpdate"));
    if str_of(strategy, "type") == "RollingUpdate" {
        let ru = child(strategy, "rollingUpdate");
        set(ru, "maxUnavailable", json!("25%"));
        set(ru, "maxSurge", json!("25%"));
    }
    set(spec, "revisionHistoryLimit", json!(10));
    set(spec, "progressDeadlineSeconds", json!(600));
    pod_template(existing(spec, "template"));
}

pub(crate) fn replica_set(v: &mut Value) {
    let Some(m) = root(v) else { return };
    let spec = child(m, "spec");
    set(spec, "replicas", json!(1));
    pod_template(existing(spec, "template"));
}

pub(crate) fn stateful_set(v: &mut Value) {
    let Some(m) = root(v) else { return };
    let spec = child(m, "spec");
    set(spec, "podManagementPolicy", json!("OrderedReady"));
    let us = child(spec, "updateStrategy");
    if str_of(us, "type").is_empty() {
        us.insert("type".into(), json!("RollingUpdate"));
        child(us, "rollingUpdate");
    }
    if str_of(us, "type") == "RollingUpdate" {
        if let Some(ru) = existing(us, "rollingUpdate") {
            set(ru, "partition", json!(0));
        }
    }
    // StatefulSetAutoDeletePVC (GA).
    let p = child(spec, "persistentVolumeClaimRetentionPolicy");
    set(p, "whenDeleted", json!("Retain"));
    set(p, "whenScaled", json!("Retain"));
    set(spec, "replicas", json!(1));
    set(spec, "revisionHistoryLimit", json!(10));
    pod_template(existing(spec, "template"));
    each(spec, "volumeClaimTemplates", pvc_object);
}

pub(crate) fn daemon_set(v: &mut Value) {
    let Some(m) = root(v) else { return };
    let spec = child(m, "spec");
    let us = child(spec, "updateStrategy");
    set(us, "type", json!("RollingUpdate"));
    if str_of(us, "type") == "RollingUpdate" {
        let ru = child(us, "rollingUpdate");
        set(ru, "maxUnavailable", json!(1));
        set(ru, "maxSurge", json!(0));
    }
    set(spec, "revisionHistoryLimit", json!(10));
    pod_template(existing(spec, "template"));
}

pub(crate) fn job(v: &mut Value) {
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let uid = v
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(m) = root(v) else { return };
    let spec = child(m, "spec");
    if spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null)
    {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    set(spec, "parallelism", json!(1));
    if spec
        .get("backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null())
    {
        set(spec, "backoffLimit", json!(i32::MAX));
    } else {
        set(spec, "backoffLimit", json!(6));
    }
    set(spec, "completionMode", json!("NonIndexed"));
    set(spec, "suspend", json!(false));
    let has_pfp = spec.get("podFailurePolicy").is_some_and(|v| !v.is_null());
    if let Some(pfp) = existing(spec, "podFailurePolicy") {
        each(pfp, "rules", |r| {
            each(r, "onPodConditions", |c| set(c, "status", json!("True")))
        });
    }
    set(
        spec,
        "podReplacementPolicy",
        json!(if has_pfp {
            "Failed"
        } else {
            "TerminatingOrFailed"
        }),
    );
    set(spec, "manualSelector", json!(false));
    // The strategy's generateSelector (PrepareForCreate): pods carry the job's name and uid,
    // and the selector picks the uid.
    if spec.get("manualSelector") != Some(&Value::Bool(true)) && !uid.is_empty() {
        let labels = child(child(child(spec, "template"), "metadata"), "labels");
        for k in ["batch.kubernetes.io/job-name", "job-name"] {
            labels.entry(k).or_insert_with(|| json!(name));
        }
        for k in ["batch.kubernetes.io/controller-uid", "controller-uid"] {
            labels.entry(k).or_insert_with(|| json!(uid));
        }
        let ml = child(child(spec, "selector"), "matchLabels");
        ml.entry("batch.kubernetes.io/controller-uid")
            .or_insert_with(|| json!(uid));
    }
    pod_template(existing(spec, "template"));
    // A job without labels takes its pod template's; upstream defaults again on every read
    // from storage, so the generated labels show up here too.
    let template_labels = v
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned();
    let Some(m) = root(v) else { return };
    if let Some(labels) = template_labels {
        let md = child(m, "metadata");
        if md
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(|l| l.is_empty())
        {
            md.insert("labels".into(), Value::Object(labels));
        }
    }
}

pub(crate) fn cron_job(v: &mut Value) {
    let Some(m) = root(v) else { return };
    let spec = child(m, "spec");
    set(spec, "concurrencyPolicy", json!("Allow"));
    set(spec, "suspend", json!(false));
    set(spec, "successfulJobsHistoryLimit", json!(3));
    set(spec, "failedJobsHistoryLimit", json!(1));
    let template = existing(spec, "jobTemplate")
        .and_then(|t| existing(t, "spec"))
        .and_then(|s| existing(s, "template"));
    pod_template(template);
}

/// The scale-up and scale-down rules upstream fills in when `behavior` is given.
fn hpa_rules(rules: &mut super::Obj, up: bool) {
    if up {
        set(rules, "stabilizationWindowSeconds", json!(0));
    }
    set(rules, "selectPolicy", json!("Max"));
    let policies = if up {
        json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}])
    } else {
        json!([{"type": "Percent", "value": 100, "periodSeconds": 15}])
    };
    set(rules, "policies", policies);
}

pub(crate) fn hpa_v2(v: &mut Value) {
    let Some(m) = root(v) else { return };
    let spec = child(m, "spec");
    set(spec, "minReplicas", json!(1));
    if spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    if let Some(b) = existing(spec, "behavior") {
        hpa_rules(child(b, "scaleUp"), true);
        hpa_rules(child(b, "scaleDown"), false);
    }
}

pub(crate) fn hpa_v1(v: &mut Value) {
    let Some(m) = root(v) else { return };
    let spec = child(m, "spec");
    set(spec, "minReplicas", json!(1));
    // Upstream fills the CPU target while converting (the v2 default metric).
    set(spec, "targetCPUUtilizationPercentage", json!(80));
}
