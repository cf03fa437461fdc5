//! PersistentVolumes against the real binary: the PV controller binding claims and volumes,
//! the protection finalizers, reclaim policies, and the scheduler's VolumeBinding plugin
//! (unbound immediate claims keep a pod Pending; WaitForFirstConsumer claims are bound when
//! the pod is scheduled), with simulated kubelets running the pods.

mod common;

use std::time::Duration;

use common::{eventually, Server, SimNodes};
use serde_json::Value;

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(30);

fn pv(name: &str, size: &str, class: &str, policy: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1
kind: PersistentVolume
metadata:
  name: {name}
spec:
  capacity:
    storage: {size}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: {policy}
  storageClassName: \"{class}\"
  hostPath:
    path: /data/{name}
{extra}"
    )
}

fn pvc(name: &str, size: &str, class: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {name}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: \"{class}\"
  resources:
    requests:
      storage: {size}
{extra}"
    )
}

fn pod(name: &str, claim: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: c
    image: busybox
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: {claim}
"
    )
}

fn claim(s: &Server, name: &str) -> Option<Value> {
    s.get_opt(&format!(
        "/api/v1/namespaces/{NS}/persistentvolumeclaims/{name}"
    ))
}

fn volume(s: &Server, name: &str) -> Option<Value> {
    s.get_opt(&format!("/api/v1/persistentvolumes/{name}"))
}

fn pod_json(s: &Server, name: &str) -> Option<Value> {
    s.get_opt(&format!("/api/v1/namespaces/{NS}/pods/{name}"))
}

fn phase(o: &Value) -> &str {
    o["status"]["phase"].as_str().unwrap_or("")
}

/// Waits until claim `c` and volume `v` are Bound to each other.
fn wait_bound(s: &Server, c: &str, v: &str) -> (Value, Value) {
    eventually(&format!("{c} bound to {v}"), WAIT, || {
        let pvc = claim(s, c)?;
        let pv = volume(s, v)?;
        (phase(&pvc) == "Bound"
            && phase(&pv) == "Bound"
            && pvc["spec"]["volumeName"] == v
            && pv["spec"]["claimRef"]["name"] == c
            && pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"])
            .then_some((pvc, pv))
    })
}

fn scheduled_condition(p: &Value) -> (String, String, String) {
    p["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .unwrap_or_default()
}

fn wait_unschedulable(s: &Server, name: &str, message: &str) {
    eventually(&format!("{name} unschedulable"), WAIT, || {
        let p = pod_json(s, name)?;
        let (st, reason, msg) = scheduled_condition(&p);
        (st == "False" && reason == "Unschedulable" && msg == message).then_some(())
    });
}

fn wait_running_on(s: &Server, name: &str) -> String {
    eventually(&format!("{name} Running"), WAIT, || {
        let p = pod_json(s, name)?;
        (phase(&p) == "Running").then(|| p["spec"]["nodeName"].as_str().unwrap().to_string())
    })
}

fn finalizers(o: &Value) -> Vec<String> {
    o["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().map(|f| f.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn claims_bind_are_protected_and_reclaimed() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 2, &[]);

    // The smallest volume that fits wins; both sides get upstream's bookkeeping.
    s.apply(&pv("big", "5Gi", "", "Retain", ""));
    s.apply(&pv("small", "1Gi", "", "Retain", ""));
    s.apply(&pvc("data", "500Mi", "", ""));
    let (c, v) = wait_bound(&s, "data", "small");
    let anns = &c["metadata"]["annotations"];
    assert_eq!(anns["pv.kubernetes.io/bind-completed"], "yes", "{c}");
    assert_eq!(anns["pv.kubernetes.io/bound-by-controller"], "yes", "{c}");
    assert_eq!(
        v["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"], "yes",
        "{v}"
    );
    assert_eq!(c["status"]["capacity"]["storage"], "1Gi", "{c}");
    assert_eq!(c["status"]["accessModes"][0], "ReadWriteOnce", "{c}");
    assert_eq!(
        v["spec"]["claimRef"]["kind"], "PersistentVolumeClaim",
        "{v}"
    );
    let c = eventually("pvc-protection", WAIT, || {
        let c = claim(&s, "data")?;
        finalizers(&c)
            .contains(&"kubernetes.io/pvc-protection".to_string())
            .then_some(c)
    });
    assert_eq!(finalizers(&c), ["kubernetes.io/pvc-protection"]);
    eventually("pv-protection", WAIT, || {
        finalizers(&volume(&s, "small")?)
            .contains(&"kubernetes.io/pv-protection".to_string())
            .then_some(())
    });
    assert_eq!(phase(&volume(&s, "big").unwrap()), "Available");

    // A claim naming its volume gets that one, however big.
    s.apply(&pvc("named", "1Gi", "", "  volumeName: big\n"));
    wait_bound(&s, "named", "big");
    // A volume reserved for a claim by claimRef goes to that claim only.
    s.apply(&pv(
        "reserved",
        "1Gi",
        "",
        "Retain",
        "  claimRef:\n    namespace: default\n    name: mine\n",
    ));
    s.apply(&pvc("other", "1Gi", "", ""));
    s.apply(&pvc("mine", "1Gi", "", ""));
    wait_bound(&s, "mine", "reserved");
    assert_eq!(phase(&claim(&s, "other").unwrap()), "Pending");

    // A pod whose claim does not exist, and one whose claim is unbound, wait with
    // upstream's messages.
    s.apply(&pod("ghost", "nowhere"));
    wait_unschedulable(
        &s,
        "ghost",
        "0/2 nodes are available: persistentvolumeclaim \"nowhere\" not found. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
    );
    s.apply(&pod("waiter", "other"));
    wait_unschedulable(
        &s,
        "waiter",
        "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
    );
    // A volume appears: the claim binds and the pod is scheduled.
    s.apply(&pv("late", "2Gi", "", "Retain", ""));
    wait_bound(&s, "other", "late");
    wait_running_on(&s, "waiter");

    // A used claim stays (Terminating) until its pod is gone; then Retain releases the
    // volume.
    s.kubectl_ok("1.33", &["delete", "pvc", "other", "--wait=false"]);
    eventually("other terminating", WAIT, || {
        claim(&s, "other").filter(|c| !c["metadata"]["deletionTimestamp"].is_null())
    });
    // The binder and the protection controller have seen the deletion; the pod still holds
    // the claim.
    std::thread::sleep(Duration::from_millis(500));
    assert!(claim(&s, "other").is_some(), "a used claim must stay");
    assert_eq!(phase(&volume(&s, "late").unwrap()), "Bound");
    s.kubectl_ok("1.33", &["delete", "pod", "waiter", "--wait=false"]);
    eventually("other gone", WAIT, || {
        claim(&s, "other").is_none().then_some(())
    });
    let v = eventually("late Released", WAIT, || {
        volume(&s, "late").filter(|v| phase(v) == "Released")
    });
    assert_eq!(v["spec"]["claimRef"]["name"], "other", "{v}");

    // A released volume is not Bound, so pv-protection lets it go.
    s.kubectl_ok("1.33", &["delete", "pv", "late", "--wait=false"]);
    eventually("late gone", WAIT, || {
        volume(&s, "late").is_none().then_some(())
    });

    // Delete with no plugin to delete the volume: Failed, as upstream.
    s.apply(&pv("doomed", "3Gi", "", "Delete", ""));
    s.apply(&pvc("short", "3Gi", "", ""));
    wait_bound(&s, "short", "doomed");
    s.kubectl_ok("1.33", &["delete", "pvc", "short"]);
    let v = eventually("doomed Failed", WAIT, || {
        volume(&s, "doomed").filter(|v| phase(v) == "Failed")
    });
    assert_eq!(
        v["status"]["message"],
        "error getting deleter volume plugin for volume \"doomed\": no deletable volume plugin matched",
        "{v}"
    );
}

#[test]
fn wait_for_first_consumer_binds_when_the_pod_is_scheduled() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 2, &[]);
    s.apply(
        "apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: external
provisioner: example.com/fake
volumeBindingMode: WaitForFirstConsumer
",
    );
    let on_node_1 = "  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - key: kubernetes.io/hostname
          operator: In
          values: [node-1]
";
    s.apply(&pv("local-1", "1Gi", "local", "Retain", on_node_1));
    s.apply(&pvc("cache", "1Gi", "local", ""));
    // The claim waits for its pod.
    eventually("cache Pending", WAIT, || {
        claim(&s, "cache").filter(|c| phase(c) == "Pending")
    });
    eventually("local-1 Available", WAIT, || {
        volume(&s, "local-1").filter(|v| phase(v) == "Available")
    });
    std::thread::sleep(Duration::from_millis(300));
    let c = claim(&s, "cache").unwrap();
    assert!(c["spec"]["volumeName"].is_null(), "{c}");

    s.apply(&pod("user", "cache"));
    assert_eq!(wait_running_on(&s, "user"), "node-1");
    let (c, _) = wait_bound(&s, "cache", "local-1");
    assert_eq!(
        c["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"],
        "yes"
    );

    // No volume left for a second claim, and nothing provisions this class.
    s.apply(&pvc("more", "1Gi", "local", ""));
    s.apply(&pod("unlucky", "more"));
    wait_unschedulable(
        &s,
        "unlucky",
        "0/2 nodes are available: 2 node(s) didn't find available persistent volumes to bind. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
    );

    // A class with a provisioner: the claim is handed to it with the chosen node.
    s.apply(&pvc("fresh", "1Gi", "external", ""));
    s.apply(&pod("hopeful", "fresh"));
    let node = eventually("selected-node", WAIT, || {
        claim(&s, "fresh")?["metadata"]["annotations"]["volume.kubernetes.io/selected-node"]
            .as_str()
            .map(str::to_string)
    });
    assert!(node == "node-0" || node == "node-1", "{node}");
    let c = eventually("provisioner annotation", WAIT, || {
        claim(&s, "fresh").filter(|c| {
            c["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"]
                == "example.com/fake"
        })
    });
    assert_eq!(phase(&c), "Pending");
    // The pod waits for the volume.
    assert!(pod_json(&s, "hopeful").unwrap()["spec"]["nodeName"].is_null());
}
