//! core/v1 (`pkg/apis/core/v1/defaults.go`, the `+default` markers of `k8s.io/api/core/v1`,
//! and the create-time steps of the pod, service and persistent volume strategies).

use base64::Engine as _;
use serde_json::{json, Value};

use super::{child, each, existing, now_rfc3339, root, set, str_of, Obj};

pub(crate) fn namespace(v: &mut Value) {
    let Some(m) = root(v) else { return };
    // SetDefaults_Namespace: every named namespace carries its name as a label.
    let name = m
        .get("metadata")
        .and_then(|md| md.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty() {
        let labels = child(child(m, "metadata"), "labels");
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    set(child(m, "spec"), "finalizers", json!(["kubernetes"]));
    set(child(m, "status"), "phase", json!("Active"));
}

pub(crate) fn secret(v: &mut Value) {
    if let Some(m) = root(v) {
        set(m, "type", json!("Opaque"));
        // Upstream's conversion (`Convert_v1_Secret_To_core_Secret`): stringData is write-only,
        // merged over data (it wins), and never stored or served.
        if let Some(data) = existing(m, "data") {
            // Go decodes []byte skipping line breaks and re-encodes it on one line.
            for v in data.values_mut() {
                if let Some(t) = v.as_str().filter(|t| t.contains(['\r', '\n'])) {
                    *v = json!(t.replace(['\r', '\n'], ""));
                }
            }
        }
        if let Some(Value::Object(strings)) = m.remove("stringData") {
            let data = child(m, "data");
            for (k, v) in strings {
                let text = v.as_str().unwrap_or_default();
                data.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
    }
}

/// `SetDefaults_Container`: the pull policy follows the tag (`latest` or none: Always).
pub(crate) fn image_pull_policy(image: &str) -> &'static str {
    // The tag is after the last ':' that follows the last '/' (a registry port is not a tag).
    let last = image.rsplit('/').next().unwrap_or(image);
    let without_digest = last.split('@').next().unwrap_or(last);
    let tag = without_digest.split_once(':').map(|(_, t)| t);
    match tag {
        None | Some("latest") if !image.contains('@') => "Always",
        _ => "IfNotPresent",
    }
}

/// `SetDefaults_HTTPGetAction` (also on lifecycle handlers) and the gRPC service default.
fn handler(h: &mut Obj) {
    if let Some(g) = existing(h, "httpGet") {
        set(g, "path", json!("/"));
        set(g, "scheme", json!("HTTP"));
    }
    if let Some(g) = existing(h, "grpc") {
        set(g, "service", json!(""));
    }
}

/// `SetDefaults_Probe`.
fn probe(p: &mut Obj) {
    set(p, "timeoutSeconds", json!(1));
    set(p, "periodSeconds", json!(10));
    set(p, "successThreshold", json!(1));
    set(p, "failureThreshold", json!(3));
    handler(p);
}

/// `SetDefaults_ObjectFieldSelector` on every `fieldRef` of a list of env vars or items.
fn field_refs(m: &mut Obj, list: &str, via_value_from: bool) {
    each(m, list, |e| {
        let holder = if via_value_from {
            existing(e, "valueFrom")
        } else {
            Some(e)
        };
        if let Some(f) = holder.and_then(|h| existing(h, "fieldRef")) {
            set(f, "apiVersion", json!("v1"));
        }
    });
}

fn container(c: &mut Obj) {
    let image = str_of(c, "image").to_string();
    set(c, "imagePullPolicy", json!(image_pull_policy(&image)));
    set(c, "terminationMessagePath", json!("/dev/termination-log"));
    set(c, "terminationMessagePolicy", json!("File"));
    // ResourceRequirements is a struct upstream: it always serializes, if only as {}.
    set(c, "resources", json!({}));
    each(c, "ports", |p| set(p, "protocol", json!("TCP")));
    for k in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = existing(c, k) {
            probe(p);
        }
    }
    if let Some(l) = existing(c, "lifecycle") {
        for k in ["postStart", "preStop"] {
            if let Some(h) = existing(l, k) {
                handler(h);
            }
        }
    }
    field_refs(c, "env", true);
}

const VOLUME_MODE_420: i64 = 420;

fn volume(v: &mut Obj) {
    // SetDefaults_Volume: a volume that names no source is an emptyDir.
    if v.keys().all(|k| k == "name") {
        v.insert("emptyDir".into(), json!({}));
    }
    for k in ["secret", "configMap"] {
        if let Some(s) = existing(v, k) {
            set(s, "defaultMode", json!(VOLUME_MODE_420));
        }
    }
    if let Some(d) = existing(v, "downwardAPI") {
        set(d, "defaultMode", json!(VOLUME_MODE_420));
        field_refs(d, "items", false);
    }
    if let Some(p) = existing(v, "projected") {
        set(p, "defaultMode", json!(VOLUME_MODE_420));
        each(p, "sources", |src| {
            if let Some(t) = existing(src, "serviceAccountToken") {
                set(t, "expirationSeconds", json!(3600));
            }
            if let Some(d) = existing(src, "downwardAPI") {
                field_refs(d, "items", false);
            }
        });
    }
    if let Some(h) = existing(v, "hostPath") {
        set(h, "type", json!(""));
    }
    if let Some(spec) = existing(v, "ephemeral")
        .and_then(|e| existing(e, "volumeClaimTemplate"))
        .and_then(|t| existing(t, "spec"))
    {
        pvc_spec(spec);
    }
    if let Some(i) = existing(v, "iscsi") {
        set(i, "iscsiInterface", json!("default"));
    }
    if let Some(r) = existing(v, "rbd") {
        set(r, "pool", json!("rbd"));
        set(r, "user", json!("admin"));
        set(r, "keyring", json!("/etc/ceph/keyring"));
    }
    if let Some(a) = existing(v, "azureDisk") {
        set(a, "cachingMode", json!("ReadWrite"));
        set(a, "fsType", json!("ext4"));
        set(a, "readOnly", json!(false));
        set(a, "kind", json!("Shared"));
    }
    if let Some(s) = existing(v, "scaleIO") {
        set(s, "storageMode", json!("ThinProvisioned"));
        set(s, "fsType", json!("xfs"));
    }
}

/// Pod spec defaults (`SetDefaults_PodSpec` and everything below it), shared by pods and by
/// the pod templates of every workload.
pub(crate) fn pod_spec(spec: &mut Obj) {
    set(spec, "restartPolicy", json!("Always"));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "securityContext", json!({}));
    set(spec, "schedulerName", json!("default-scheduler"));
    for k in ["containers", "initContainers", "ephemeralContainers"] {
        each(spec, k, container);
    }
    each(spec, "volumes", volume);
}

/// The pod template at `template` (a `PodTemplateSpec`), when present.
pub(crate) fn pod_template(template: Option<&mut Obj>) {
    if let Some(t) = template {
        pod_spec(child(t, "spec"));
    }
}

/// `SetDefaults_Pod`: requests default to limits; service links on; host-network ports.
fn pod_only(spec: &mut Obj) {
    for k in ["containers", "initContainers"] {
        each(spec, k, |c| {
            let Some(limits) = c
                .get("resources")
                .and_then(|r| r.get("limits"))
                .and_then(Value::as_object)
                .cloned()
            else {
                return;
            };
            let requests = child(child(c, "resources"), "requests");
            for (res, q) in limits {
                requests.entry(res).or_insert(q);
            }
        });
    }
    set(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork") == Some(&Value::Bool(true)) {
        for k in ["containers", "initContainers"] {
            each(spec, k, |c| {
                each(c, "ports", |p| {
                    if p.get("hostPort").and_then(Value::as_i64).unwrap_or(0) == 0 {
                        if let Some(cp) = p.get("containerPort").cloned() {
                            p.insert("hostPort".into(), cp);
                        }
                    }
                })
            });
        }
    }
}

/// `qos.GetPodQOS` over cpu and memory.
fn qos_class(spec: &Obj) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for k in ["containers", "initContainers"] {
        for c in spec
            .get(k)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let req = c.pointer("/resources/requests");
            let lim = c.pointer("/resources/limits");
            for r in ["cpu", "memory"] {
                let rq = req.and_then(|m| m.get(r));
                let lm = lim.and_then(|m| m.get(r));
                if rq.is_some() || lm.is_some() {
                    any = true;
                }
                if lm.is_none() || rq != lm {
                    guaranteed = false;
                }
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

pub(crate) fn pod(v: &mut Value) {
    let Some(m) = root(v) else { return };
    let spec = child(m, "spec");
    pod_spec(spec);
    pod_only(spec);
    // Admission that upstream runs on every pod (ServiceAccount, Priority's zero) and the
    // deprecated serviceAccount mirror (conversion). DefaultTolerationSeconds, which has
    // settings, is an admission plugin of the API server.
    set(spec, "serviceAccountName", json!("default"));
    let sa = spec.get("serviceAccountName").cloned().unwrap_or(json!(""));
    set(spec, "serviceAccount", sa);
    set(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    set(spec, "priority", json!(0));
    let qos = qos_class(spec);
    let status = child(m, "status");
    set(status, "phase", json!("Pending"));
    set(status, "qosClass", json!(qos));
}

pub(crate) fn pod_template_kind(v: &mut Value) {
    if let Some(m) = root(v) {
        pod_template(existing(m, "template"));
    }
}

pub(crate) fn replication_controller(v: &mut Value) {
    let labels = v
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty())
        .cloned();
    let Some(m) = root(v) else { return };
    if let Some(labels) = labels {
        let spec = child(m, "spec");
        if spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(|s| s.is_empty())
        {
            spec.insert("selector".into(), Value::Object(labels.clone()));
        }
        let md = child(m, "metadata");
        if md
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(|s| s.is_empty())
        {
            md.insert("labels".into(), Value::Object(labels));
        }
    }
    let spec = child(m, "spec");
    set(spec, "replicas", json!(1));
    pod_template(existing(spec, "template"));
}

/// `service.ExternallyAccessible`.
fn externally_accessible(spec: &Obj) -> bool {
    let ty = str_of(spec, "type");
    ty == "LoadBalancer"
        || ty == "NodePort"
        || (ty == "ClusterIP"
            && spec
                .get("externalIPs")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty()))
}

/// `SetDefaults_Service` plus the IP-family fields the service REST fills for every service
/// but ExternalName (a single-stack IPv4 cluster). Cluster IPs and node ports are allocated
/// elsewhere.
pub(crate) fn service(v: &mut Value) {
    let Some(m) = root(v) else { return };
    let spec = child(m, "spec");
    set(spec, "sessionAffinity", json!("None"));
    match str_of(spec, "sessionAffinity") {
        "None" => {
            spec.remove("sessionAffinityConfig");
        }
        "ClientIP" => {
            let cfg = child(child(spec, "sessionAffinityConfig"), "clientIP");
            set(cfg, "timeoutSeconds", json!(10800));
        }
        _ => {}
    }
    set(spec, "type", json!("ClusterIP"));
    each(spec, "ports", |p| {
        set(p, "protocol", json!("TCP"));
        let unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset {
            if let Some(port) = p.get("port").cloned() {
                p.insert("targetPort".into(), port);
            }
        }
    });
    if externally_accessible(spec) {
        set(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    let ty = str_of(spec, "type").to_string();
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        set(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if ty != "ExternalName" {
        let headless = str_of(spec, "clusterIP") == "None";
        let selectorless = spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(|s| s.is_empty());
        let policy = if headless && selectorless {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        set(spec, "ipFamilyPolicy", json!(policy));
        set(spec, "ipFamilies", json!(["IPv4"]));
    }
    let status = child(m, "status");
    set(status, "loadBalancer", json!({}));
}

pub(crate) fn endpoints(v: &mut Value) {
    if let Some(m) = root(v) {
        each(m, "subsets", |ss| {
            each(ss, "ports", |p| set(p, "protocol", json!("TCP")))
        });
    }
}

/// `SetDefaults_PersistentVolumeClaimSpec`.
pub(crate) fn pvc_spec(spec: &mut Obj) {
    set(spec, "volumeMode", json!("Filesystem"));
}

/// A PersistentVolumeClaim, also as it appears in StatefulSet volume claim templates.
pub(crate) fn pvc_object(m: &mut Obj) {
    pvc_spec(child(m, "spec"));
    set(child(m, "status"), "phase", json!("Pending"));
}

pub(crate) fn persistent_volume_claim(v: &mut Value) {
    if let Some(m) = root(v) {
        pvc_object(m);
    }
}

pub(crate) fn persistent_volume(v: &mut Value) {
    let Some(m) = root(v) else { return };
    let spec = child(m, "spec");
    set(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
    set(spec, "volumeMode", json!("Filesystem"));
    let status = child(m, "status");
    if status.get("phase").is_none() {
        // The strategy stamps the transition into Pending (PersistentVolumeLastPhaseTransitionTime).
        status.insert("phase".into(), json!("Pending"));
        set(status, "lastPhaseTransitionTime", json!(now_rfc3339()));
    }
}

pub(crate) fn node(v: &mut Value) {
    let Some(status) = root(v).and_then(|m| existing(m, "status")) else {
        return;
    };
    if status.get("allocatable").is_none() {
        if let Some(c) = status.get("capacity").cloned() {
            status.insert("allocatable".into(), c);
        }
    }
}

/// `SetDefaults_LimitRangeItem`: container limits default from max, requests from the
/// default limit, then from min.
pub(crate) fn limit_range(v: &mut Value) {
    let Some(spec) = root(v).and_then(|m| existing(m, "spec")) else {
        return;
    };
    each(spec, "limits", |item| {
        if str_of(item, "type") != "Container" {
            return;
        }
        let max = item.get("max").and_then(Value::as_object).cloned();
        let min = item.get("min").and_then(Value::as_object).cloned();
        let default = child(item, "default");
        for (k, q) in max.unwrap_or_default() {
            default.entry(k).or_insert(q);
        }
        let default = default.clone();
        let req = child(item, "defaultRequest");
        for (k, q) in default {
            req.entry(k).or_insert(q);
        }
        for (k, q) in min.unwrap_or_default() {
            req.entry(k).or_insert(q);
        }
        // Empty maps do not serialize upstream (omitempty).
        for k in ["default", "defaultRequest"] {
            if item
                .get(k)
                .and_then(Value::as_object)
                .is_some_and(|m| m.is_empty())
            {
                item.remove(k);
            }
        }
    });
}
