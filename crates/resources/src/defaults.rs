//! Upstream defaulting (`SetDefaults_*` in kubernetes/pkg/apis/*/v1/defaults.go) for the kinds
//! served so far. Each function only fills what is absent.

use serde_json::{json, Map, Value};

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

fn set_default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if !m.contains_key(key) || m.get(key) == Some(&Value::Null) {
        m.insert(key.to_string(), value);
    }
}

fn child<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Value {
    if !matches!(m.get(key), Some(Value::Object(_))) {
        m.insert(key.to_string(), json!({}));
    }
    m.get_mut(key).expect("just inserted")
}

pub(crate) fn namespace(v: &mut Value) {
    let Some(m) = obj(v) else { return };
    // SetDefaults_Namespace: every named namespace carries its name as a label.
    let name = m
        .get("metadata")
        .and_then(|md| md.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty() {
        if let Some(md) = child(m, "metadata").as_object_mut() {
            if let Some(labels) = child(md, "labels").as_object_mut() {
                labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
    }
    let spec = child(m, "spec");
    if let Some(spec) = spec.as_object_mut() {
        set_default(spec, "finalizers", json!(["kubernetes"]));
    }
    let status = child(m, "status");
    if let Some(st) = status.as_object_mut() {
        set_default(st, "phase", json!("Active"));
    }
}

pub(crate) fn secret(v: &mut Value) {
    if let Some(m) = obj(v) {
        set_default(m, "type", json!("Opaque"));
    }
}

fn image_pull_policy(image: &str) -> &'static str {
    // The tag is after the last ':' that follows the last '/' (a registry port is not a tag).
    let last = image.rsplit('/').next().unwrap_or(image);
    let without_digest = last.split('@').next().unwrap_or(last);
    let tag = without_digest.split_once(':').map(|(_, t)| t);
    match tag {
        None | Some("latest") if !image.contains('@') => "Always",
        _ => "IfNotPresent",
    }
}

fn containers(list: Option<&mut Value>) {
    let Some(Value::Array(cs)) = list else { return };
    for c in cs {
        let Some(c) = c.as_object_mut() else { continue };
        set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
        set_default(c, "terminationMessagePolicy", json!("File"));
        let image = c
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        set_default(c, "imagePullPolicy", json!(image_pull_policy(&image)));
        set_default(c, "resources", json!({}));
        if let Some(Value::Array(ports)) = c.get_mut("ports") {
            for p in ports {
                if let Some(p) = p.as_object_mut() {
                    set_default(p, "protocol", json!("TCP"));
                }
            }
        }
    }
}

/// Pod spec defaults, shared by pods and pod templates.
pub fn pod_spec(spec: &mut Value) {
    let Some(m) = obj(spec) else { return };
    set_default(m, "restartPolicy", json!("Always"));
    set_default(m, "terminationGracePeriodSeconds", json!(30));
    set_default(m, "dnsPolicy", json!("ClusterFirst"));
    set_default(m, "securityContext", json!({}));
    set_default(m, "schedulerName", json!("default-scheduler"));
    containers(m.get_mut("containers"));
    containers(m.get_mut("initContainers"));
}

pub(crate) fn pod(v: &mut Value) {
    let Some(m) = obj(v) else { return };
    pod_spec(child(m, "spec"));
    if let Some(spec) = m.get_mut("spec").and_then(Value::as_object_mut) {
        // The API server adds the default tolerations and the service account (admission).
        set_default(spec, "serviceAccountName", json!("default"));
        set_default(spec, "enableServiceLinks", json!(true));
        set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
        set_default(spec, "priority", json!(0));
    }
    let status = child(m, "status");
    if let Some(st) = status.as_object_mut() {
        set_default(st, "phase", json!("Pending"));
    }
}

pub(crate) fn service(v: &mut Value) {
    let Some(m) = obj(v) else { return };
    let spec = child(m, "spec");
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports {
            if let Some(p) = p.as_object_mut() {
                set_default(p, "protocol", json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    set_default(p, "targetPort", port);
                }
            }
        }
    }
    let status = child(m, "status");
    if let Some(st) = status.as_object_mut() {
        set_default(st, "loadBalancer", json!({}));
    }
}

pub(crate) fn deployment(v: &mut Value) {
    let Some(m) = obj(v) else { return };
    let spec = child(m, "spec");
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    let strategy = child(spec, "strategy");
    if let Some(st) = strategy.as_object_mut() {
        set_default(st, "type", json!("RollingUpdate"));
        if st.get("type") == Some(&json!("RollingUpdate")) {
            let ru = child(st, "rollingUpdate");
            if let Some(ru) = ru.as_object_mut() {
                set_default(ru, "maxSurge", json!("25%"));
                set_default(ru, "maxUnavailable", json!("25%"));
            }
        }
    }
    if let Some(t) = spec.get_mut("template").and_then(Value::as_object_mut) {
        pod_spec(child(t, "spec"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_pull_policy_follows_tag() {
        assert_eq!(image_pull_policy("nginx"), "Always");
        assert_eq!(image_pull_policy("nginx:latest"), "Always");
        assert_eq!(image_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(image_pull_policy("registry:5000/nginx"), "Always");
        assert_eq!(image_pull_policy("nginx@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn namespace_gets_its_name_label() {
        let mut n = json!({"metadata": {"name": "team", "labels": {"kubernetes.io/metadata.name": "x", "a": "b"}}});
        namespace(&mut n);
        assert_eq!(
            n["metadata"]["labels"],
            json!({"kubernetes.io/metadata.name": "team", "a": "b"})
        );
        assert_eq!(n["spec"]["finalizers"], json!(["kubernetes"]));
        let mut unnamed = json!({"metadata": {"generateName": "t-"}});
        namespace(&mut unnamed);
        assert!(unnamed["metadata"].get("labels").is_none());
    }

    #[test]
    fn deployment_gets_upstream_defaults() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1", "ports": [{"containerPort": 80}]}]}}}});
        deployment(&mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"],
            "TCP"
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }
}
