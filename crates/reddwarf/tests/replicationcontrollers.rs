//! The ReplicationController controller against the real binary, with simulated kubelets
//! (`reddwarf sim-nodes`) making scheduled pods Running and Ready, driven by real kubectl.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{eventually, name_set, pod_ready, Server, SimNodes};
use serde_json::Value;

const NS: &str = "default";

fn rc(name: &str, replicas: i32) -> String {
    // No selector: the API server defaults it to the template's labels, as upstream.
    format!(
        "apiVersion: v1
kind: ReplicationController
metadata:
  name: {name}
spec:
  replicas: {replicas}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: c
        image: busybox
"
    )
}

fn pods(s: &Server, app: &str) -> Vec<Value> {
    s.api_get(&format!(
        "/api/v1/namespaces/{NS}/pods?labelSelector=app%3D{app}"
    ))["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect()
}

fn rc_json(s: &Server, name: &str) -> Value {
    s.api_get(&format!(
        "/api/v1/namespaces/{NS}/replicationcontrollers/{name}"
    ))
}

#[test]
fn replication_controller_runs_scales_adopts_and_cascades() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 2, &[]);

    s.apply(&rc("web", 1));
    let ps = eventually("a Running web pod", Duration::from_secs(20), || {
        let ps = pods(&s, "web");
        (ps.len() == 1 && ps[0]["status"]["phase"] == "Running" && pod_ready(&ps[0])).then_some(ps)
    });
    let rc_obj = rc_json(&s, "web");
    let owner = &ps[0]["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "ReplicationController", "{owner}");
    assert_eq!(owner["apiVersion"], "v1", "{owner}");
    assert_eq!(owner["name"], "web", "{owner}");
    assert_eq!(owner["uid"], rc_obj["metadata"]["uid"], "{owner}");
    assert_eq!(owner["controller"], true, "{owner}");
    assert_eq!(owner["blockOwnerDeletion"], true, "{owner}");
    assert!(
        ps[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("web-"),
        "{}",
        ps[0]["metadata"]["name"]
    );
    let rc_obj = eventually("web status", Duration::from_secs(20), || {
        let r = rc_json(&s, "web");
        (r["status"]["availableReplicas"] == 1).then_some(r)
    });
    let st = &rc_obj["status"];
    for f in [
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        assert_eq!(st[f], 1, "{f}: {rc_obj}");
    }
    assert_eq!(st["observedGeneration"], rc_obj["metadata"]["generation"]);

    // `kubectl scale rc` goes through /scale.
    s.kubectl_ok("1.33", &["scale", "rc/web", "--replicas=3"]);
    eventually("3 ready web pods", Duration::from_secs(20), || {
        let ps = pods(&s, "web");
        (ps.len() == 3 && ps.iter().all(pod_ready)).then_some(())
    });
    eventually("status of 3", Duration::from_secs(20), || {
        (rc_json(&s, "web")["status"]["readyReplicas"] == 3).then_some(())
    });
    s.kubectl_ok("1.33", &["scale", "rc/web", "--replicas=1"]);
    eventually("back to 1 web pod", Duration::from_secs(20), || {
        let ps = pods(&s, "web");
        (ps.len() == 1 && rc_json(&s, "web")["status"]["replicas"] == 1).then_some(())
    });
    let out = s.kubectl_ok(
        "1.33",
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=ReplicationController,involvedObject.name=web",
            "-o",
            "json",
        ],
    );
    let evs: Value = serde_json::from_str(&out).unwrap();
    let reasons: BTreeSet<(String, String)> = evs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or("").to_string(),
                e["source"]["component"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for r in ["SuccessfulCreate", "SuccessfulDelete"] {
        assert!(
            reasons.contains(&(r.to_string(), "replication-controller".to_string())),
            "{reasons:?}"
        );
    }

    // An orphan the selector matches is adopted rather than a pod created for it.
    s.apply("apiVersion: v1\nkind: Pod\nmetadata:\n  name: stray\n  labels:\n    app: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n");
    eventually("web back to one pod", Duration::from_secs(20), || {
        let ps = pods(&s, "web");
        (ps.len() == 1 && ps[0]["metadata"]["ownerReferences"][0]["name"] == "web").then_some(())
    });

    // Deleting the controller deletes its pods (the garbage collector follows the owner
    // references).
    let left = name_set(&pods(&s, "web"));
    s.kubectl_ok("1.33", &["delete", "rc", "web", "--wait=false"]);
    eventually("web pods gone", Duration::from_secs(30), || {
        let (code, body) = s.curl(
            "GET",
            &format!("/api/v1/namespaces/{NS}/pods?labelSelector=app%3Dweb"),
            None,
            None,
        );
        let v: Value = serde_json::from_str(&body).ok()?;
        (code == 200 && v["items"].as_array().is_some_and(|a| a.is_empty())).then_some(())
    });
    assert!(!left.is_empty());
}

#[test]
fn replication_controller_can_be_turned_off_by_name() {
    let s = Server::start_with(&["--controllers", "*,-replicationcontroller"]);
    let _nodes = SimNodes::start(&s, "node", 1, &[]);
    s.apply(&rc("idle", 1));
    // The ReplicaSet controller still runs: a ReplicaSet gets its pod, the RC does not.
    s.apply(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: active\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: active\n  template:\n    metadata:\n      labels:\n        app: active\n    spec:\n      containers:\n      - name: c\n        image: busybox\n",
    );
    eventually("the ReplicaSet's pod", Duration::from_secs(20), || {
        (pods(&s, "active").len() == 1).then_some(())
    });
    assert!(pods(&s, "idle").is_empty());
}
