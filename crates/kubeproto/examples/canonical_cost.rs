//! Rough cost of `canonicalize` on a typical Pod (run with `--release`):
//! `cargo run --release -p reddwarf-kubeproto --example canonical_cost`

use std::hint::black_box;
use std::time::Instant;

use serde_json::{json, Value};

fn pod() -> Value {
    // a controller-made Pod as a client might send it: keys alphabetical, as kube-rs writes them
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2024-01-02T03:04:05Z"},
            "creationTimestamp": "2024-01-02T03:04:00Z", "generateName": "web-6d4cf56db6-",
            "labels": {"app": "web", "pod-template-hash": "6d4cf56db6"}, "name": "web-6d4cf56db6-x2x9k",
            "namespace": "default", "ownerReferences": [{"apiVersion": "apps/v1", "blockOwnerDeletion": true,
            "controller": true, "kind": "ReplicaSet", "name": "web-6d4cf56db6", "uid": "3b1c7c9e-0c8f"}],
            "resourceVersion": "123456", "uid": "9f0c1d2e-aaaa-bbbb-cccc-1234567890ab"},
        "spec": {"containers": [{"env": [{"name": "MODE", "value": "prod"}], "image": "nginx:1.27",
            "imagePullPolicy": "IfNotPresent", "name": "web", "ports": [{"containerPort": 80, "name": "http",
            "protocol": "TCP"}], "readinessProbe": {"failureThreshold": 3, "httpGet": {"path": "/", "port": 80,
            "scheme": "HTTP"}, "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1},
            "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
            "volumeMounts": [{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            "name": "kube-api-access-abcde", "readOnly": true}]}],
            "dnsPolicy": "ClusterFirst", "enableServiceLinks": true, "nodeName": "node-1",
            "preemptionPolicy": "PreemptLowerPriority", "priority": 0, "restartPolicy": "Always",
            "schedulerName": "default-scheduler", "securityContext": {}, "serviceAccount": "default",
            "serviceAccountName": "default", "terminationGracePeriodSeconds": 30,
            "tolerations": [{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready",
            "operator": "Exists", "tolerationSeconds": 300}, {"effect": "NoExecute",
            "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}],
            "volumes": [{"name": "kube-api-access-abcde", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
            {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
            "path": "namespace"}]}}]}}]},
        "status": {"conditions": [{"lastProbeTime": null, "lastTransitionTime": "2024-01-02T03:04:05Z",
            "status": "True", "type": "Ready"}], "containerStatuses": [{"containerID": "containerd://abc",
            "image": "nginx:1.27", "imageID": "sha256:1", "name": "web", "ready": true, "restartCount": 0,
            "started": true, "state": {"running": {"startedAt": "2024-01-02T03:04:05Z"}}}],
            "hostIP": "192.168.1.2", "phase": "Running", "podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}],
            "qosClass": "Burstable", "startTime": "2024-01-02T03:04:00Z"}
    })
}

fn per_iter(n: u32, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() {
    reddwarf_kubeproto::warm_up();
    let scrambled = pod();
    let mut ordered = pod();
    reddwarf_kubeproto::canonicalize(&mut ordered);
    let bytes = serde_json::to_vec(&scrambled).unwrap();
    let n = 20_000;
    let clone = per_iter(n, || drop(black_box(scrambled.clone())));
    let reorder = per_iter(n, || {
        let mut v = scrambled.clone();
        reddwarf_kubeproto::canonicalize(&mut v);
        black_box(v);
    }) - clone;
    let noop = per_iter(n, || {
        reddwarf_kubeproto::canonicalize(black_box(&mut ordered));
    });
    let parse = per_iter(n, || {
        drop(black_box(serde_json::from_slice::<Value>(&bytes).unwrap()))
    });
    let write = per_iter(n, || {
        drop(black_box(serde_json::to_vec(&scrambled).unwrap()))
    });
    println!("Pod of {} bytes, µs per call:", bytes.len());
    println!("  canonicalize, keys out of order: {reorder:.2}");
    println!("  canonicalize, already in order:  {noop:.2}");
    println!("  for scale: serde_json parse {parse:.2}, serialize {write:.2}, clone {clone:.2}");
}
