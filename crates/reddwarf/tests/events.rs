//! core/v1 and events.k8s.io/v1 Events are one collection, as upstream serves both from one
//! registry: whatever is written through one API is read, listed, watched, patched and
//! deleted through the other, with upstream's field mapping.

mod common;

use std::time::Duration;

use common::{eventually, Server};
use serde_json::{json, Value};

const CORE: &str = "/api/v1/namespaces/default/events";
const EV: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn send(s: &Server, method: &str, path: &str, ct: Option<&str>, body: &Value) -> Value {
    let (code, text) = s.curl(method, path, ct, Some(body.to_string().as_bytes()));
    assert!((200..300).contains(&code), "{method} {path}: {code} {text}");
    serde_json::from_str(&text).expect("JSON")
}

fn core_event(name: &str, regarding: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name},
        "involvedObject": {"kind": "Pod", "name": regarding, "namespace": "default", "apiVersion": "v1"},
        "reason": "Started", "message": "Started container", "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2024-01-02T03:04:05Z", "lastTimestamp": "2024-01-02T03:05:05Z",
        "count": 2, "reportingComponent": "kubelet", "reportingInstance": "node-1"
    })
}

fn events_v1_event(name: &str) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name},
        "eventTime": "2024-01-02T03:04:05.000006Z",
        "reportingController": "example.com/scaler", "reportingInstance": "scaler-1",
        "action": "Scale", "reason": "Scaled", "note": "scaled up", "type": "Normal",
        "regarding": {"kind": "Deployment", "name": "web", "namespace": "default", "apiVersion": "apps/v1"},
        "related": {"kind": "ReplicaSet", "name": "web-1", "namespace": "default"},
        "series": {"count": 4, "lastObservedTime": "2024-01-02T03:09:05.000000Z"}
    })
}

fn names(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn one_collection_read_through_both_apis() {
    let s = Server::start();
    send(
        &s,
        "POST",
        CORE,
        Some("application/json"),
        &core_event("c1", "p1"),
    );
    send(
        &s,
        "POST",
        EV,
        Some("application/json"),
        &events_v1_event("e1"),
    );

    // A core Event read as events.k8s.io/v1.
    let c1 = s.api_get(&format!("{EV}/c1"));
    assert_eq!(c1["apiVersion"], "events.k8s.io/v1", "{c1}");
    assert_eq!(c1["kind"], "Event");
    assert_eq!(c1["regarding"]["name"], "p1", "{c1}");
    assert_eq!(c1["note"], "Started container");
    assert_eq!(c1["reason"], "Started");
    assert_eq!(c1["type"], "Normal");
    assert_eq!(c1["reportingController"], "kubelet");
    assert_eq!(c1["reportingInstance"], "node-1");
    assert_eq!(
        c1["deprecatedSource"],
        json!({"component": "kubelet", "host": "node-1"})
    );
    assert_eq!(c1["deprecatedFirstTimestamp"], "2024-01-02T03:04:05Z");
    assert_eq!(c1["deprecatedLastTimestamp"], "2024-01-02T03:05:05Z");
    assert_eq!(c1["deprecatedCount"], 2);
    for core_only in [
        "involvedObject",
        "message",
        "source",
        "count",
        "reportingComponent",
    ] {
        assert!(c1.get(core_only).is_none(), "{core_only} in {c1}");
    }

    // An events.k8s.io/v1 Event read as core/v1.
    let e1 = s.api_get(&format!("{CORE}/e1"));
    assert_eq!(e1["apiVersion"], "v1", "{e1}");
    assert_eq!(e1["involvedObject"]["name"], "web", "{e1}");
    assert_eq!(e1["related"]["name"], "web-1");
    assert_eq!(e1["message"], "scaled up");
    assert_eq!(e1["action"], "Scale");
    assert_eq!(e1["reportingComponent"], "example.com/scaler");
    assert_eq!(e1["reportingInstance"], "scaler-1");
    assert_eq!(e1["eventTime"], "2024-01-02T03:04:05.000006Z");
    assert_eq!(e1["series"]["count"], 4);
    assert!(
        e1.get("note").is_none() && e1.get("regarding").is_none(),
        "{e1}"
    );
    // Both reads name the same object.
    let e1v = s.api_get(&format!("{EV}/e1"));
    assert_eq!(e1v["metadata"]["uid"], e1["metadata"]["uid"]);
    assert_eq!(e1v["note"], "scaled up");

    // Each list holds both, in its own form.
    let core_list = s.api_get(CORE);
    assert_eq!(names(&core_list), ["c1", "e1"], "{core_list}");
    assert_eq!(core_list["apiVersion"], "v1");
    assert!(core_list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i.get("involvedObject").is_some()));
    let ev_list = s.api_get(EV);
    assert_eq!(names(&ev_list), ["c1", "e1"], "{ev_list}");
    assert_eq!(ev_list["kind"], "EventList");
    assert!(ev_list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i.get("regarding").is_some() && i["apiVersion"] == "events.k8s.io/v1"));
    // And in the other wire forms (tables).
    let table = s.kubectl_ok("1.33", &["get", "events.events.k8s.io", "-n", "default"]);
    assert!(
        table.contains("pod/p1") && table.contains("deployment/web"),
        "{table}"
    );

    // Field selectors in each API's own names.
    let by_regarding = s.api_get(&format!("{EV}?fieldSelector=regarding.name%3Dp1"));
    assert_eq!(names(&by_regarding), ["c1"]);
    let by_controller = s.api_get(&format!(
        "{EV}?fieldSelector=reportingController%3Dexample.com%2Fscaler"
    ));
    assert_eq!(names(&by_controller), ["e1"]);
    let by_involved = s.api_get(&format!("{CORE}?fieldSelector=involvedObject.name%3Dweb"));
    assert_eq!(names(&by_involved), ["e1"]);

    // PATCH through one API, seen through the other.
    let patched = send(
        &s,
        "PATCH",
        &format!("{EV}/c1"),
        Some("application/merge-patch+json"),
        &json!({"note": "patched note", "deprecatedCount": 3}),
    );
    assert_eq!(patched["apiVersion"], "events.k8s.io/v1", "{patched}");
    assert_eq!(patched["note"], "patched note");
    let c1 = s.api_get(&format!("{CORE}/c1"));
    assert_eq!(c1["message"], "patched note", "{c1}");
    assert_eq!(c1["count"], 3);
    assert_eq!(c1["involvedObject"]["name"], "p1");
    let patched = send(
        &s,
        "PATCH",
        &format!("{CORE}/e1"),
        Some("application/strategic-merge-patch+json"),
        &json!({"message": "from core"}),
    );
    assert_eq!(patched["message"], "from core", "{patched}");
    assert_eq!(s.api_get(&format!("{EV}/e1"))["note"], "from core");

    // DELETE through the other API.
    let (code, body) = s.curl("DELETE", &format!("{CORE}/e1"), None, None);
    assert_eq!(code, 200, "{body}");
    let (code, _) = s.curl("GET", &format!("{EV}/e1"), None, None);
    assert_eq!(code, 404);
    let (code, body) = s.curl("DELETE", &format!("{EV}/c1"), None, None);
    assert_eq!(code, 200, "{body}");
    let (code, _) = s.curl("GET", &format!("{CORE}/c1"), None, None);
    assert_eq!(code, 404);
    assert_eq!(names(&s.api_get(CORE)), Vec::<String>::new());
}

#[test]
fn a_watch_on_either_api_sees_events_written_through_the_other() {
    let s = Server::start();
    let rv = s.api_get(EV)["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    send(
        &s,
        "POST",
        CORE,
        Some("application/json"),
        &core_event("c2", "p2"),
    );
    send(
        &s,
        "POST",
        EV,
        Some("application/json"),
        &events_v1_event("e2"),
    );
    send(
        &s,
        "PATCH",
        &format!("{CORE}/c2"),
        Some("application/merge-patch+json"),
        &json!({"message": "again"}),
    );

    let evs = s.watch_events(
        &format!("{EV}?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
        None,
    );
    let seen: Vec<(String, String)> = evs
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("").into(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .into(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("ADDED".into(), "c2".into()),
            ("ADDED".into(), "e2".into()),
            ("MODIFIED".into(), "c2".into())
        ],
        "{evs:?}"
    );
    for e in &evs {
        assert_eq!(e["object"]["apiVersion"], "events.k8s.io/v1", "{e}");
        assert!(e["object"].get("regarding").is_some(), "{e}");
    }
    assert_eq!(evs[0]["object"]["note"], "Started container");
    assert_eq!(evs[2]["object"]["note"], "again");

    // A field selector in events.k8s.io names, and the core watch from the same point.
    let evs = s.watch_events(&format!("{EV}?watch=true&resourceVersion={rv}&timeoutSeconds=1&fieldSelector=regarding.name%3Dp2"), None);
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert!(evs.iter().all(|e| e["object"]["metadata"]["name"] == "c2"));
    let evs = s.watch_events(
        &format!("{CORE}?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
        None,
    );
    assert_eq!(evs.len(), 3, "{evs:?}");
    assert!(evs
        .iter()
        .all(|e| e["object"]["apiVersion"] == "v1" && e["object"].get("involvedObject").is_some()));
    assert_eq!(evs[1]["object"]["message"], "scaled up");

    // Initial events of a watch without a resourceVersion come converted as well.
    let evs = s.watch_events(&format!("{EV}?watch=true&timeoutSeconds=1"), None);
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert!(evs
        .iter()
        .all(|e| e["object"]["apiVersion"] == "events.k8s.io/v1"));

    // A collection delete through one API, selecting in its own field names.
    let (code, body) = s.curl(
        "DELETE",
        &format!("{EV}?fieldSelector=regarding.name%3Dp2"),
        None,
        None,
    );
    assert_eq!(code, 200, "{body}");
    let deleted: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        deleted["items"][0]["apiVersion"], "events.k8s.io/v1",
        "{deleted}"
    );
    assert_eq!(names(&s.api_get(CORE)), ["e2"]);
}

#[test]
fn kubectl_reads_the_controllers_events_through_both_apis() {
    let s = Server::start();
    s.kubectl_ok(
        "1.33",
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=1",
        ],
    );
    // The deployment and replicaset controllers write core/v1 Events.
    for resource in ["events", "events.events.k8s.io"] {
        let out = eventually(resource, Duration::from_secs(30), || {
            let out = s.kubectl_ok("1.33", &["get", resource, "-n", "default"]);
            (out.contains("ScalingReplicaSet") && out.contains("SuccessfulCreate")).then_some(out)
        });
        assert!(out.contains("deployment/web"), "{out}");
    }
    let v: Value = serde_json::from_str(&s.kubectl_ok(
        "1.33",
        &[
            "get",
            "events.v1.events.k8s.io",
            "-n",
            "default",
            "-o",
            "json",
        ],
    ))
    .expect("JSON");
    let scaling = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["reason"] == "ScalingReplicaSet")
        .expect("ScalingReplicaSet event");
    assert_eq!(scaling["apiVersion"], "events.k8s.io/v1", "{scaling}");
    assert_eq!(scaling["regarding"]["name"], "web", "{scaling}");
    assert!(
        scaling["note"]
            .as_str()
            .unwrap_or("")
            .starts_with("Scaled up replica set web-"),
        "{scaling}"
    );
}
