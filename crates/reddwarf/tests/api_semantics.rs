//! API semantics against the real binary over HTTPS: watch, pagination, subresources,
//! finalizers, generated names, dry runs, protobuf responses.

mod common;

use std::process::Command;

use common::Server;
use serde_json::{json, Value};

const CM: &str = "/api/v1/namespaces/default/configmaps";

fn post(s: &Server, path: &str, body: Value) -> (u16, Value) {
    let (code, text) = s.send_json("POST", path, &body);
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn req(
    s: &Server,
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let b = body.map(|b| b.to_string());
    let (code, text) = s.curl(method, path, ct, b.as_deref().map(str::as_bytes));
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn get(s: &Server, path: &str) -> (u16, Value) {
    req(s, "GET", path, None, None)
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .parse()
        .expect("numeric")
}

fn names_of(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("").to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn watch_from_a_revision_replays_changes_in_order_and_filters_by_label() {
    let s = Server::start();
    let (_, a) = post(
        &s,
        CM,
        json!({"metadata": {"name": "a", "labels": {"app": "web"}}}),
    );
    let start = rv(&a);
    post(
        &s,
        CM,
        json!({"metadata": {"name": "b", "labels": {"app": "db"}}}),
    );
    // Relabel a out of the selection, then back in.
    req(
        &s,
        "PATCH",
        &format!("{CM}/a"),
        Some("application/merge-patch+json"),
        Some(json!({"metadata": {"labels": {"app": "db"}}})),
    );
    req(
        &s,
        "PATCH",
        &format!("{CM}/a"),
        Some("application/merge-patch+json"),
        Some(json!({"metadata": {"labels": {"app": "web"}}})),
    );
    req(&s, "DELETE", &format!("{CM}/b"), None, None);

    let all = s.watch_events(
        &format!("{CM}?watch=true&resourceVersion={start}&timeoutSeconds=1"),
        None,
    );
    assert_eq!(
        names_of(&all),
        vec![
            ("ADDED".into(), "b".into()),
            ("MODIFIED".into(), "a".into()),
            ("MODIFIED".into(), "a".into()),
            ("DELETED".into(), "b".into()),
        ]
    );
    let revs: Vec<u64> = all.iter().map(|e| rv(&e["object"])).collect();
    assert!(
        revs.windows(2).all(|w| w[0] < w[1]),
        "revisions increase: {revs:?}"
    );

    let web = s.watch_events(
        &format!(
            "{CM}?watch=true&resourceVersion={start}&timeoutSeconds=1&labelSelector=app%3Dweb"
        ),
        None,
    );
    // Leaving the selection is a DELETED, coming back an ADDED, as upstream's watch cache does.
    assert_eq!(
        names_of(&web),
        vec![("DELETED".into(), "a".into()), ("ADDED".into(), "a".into())]
    );
}

#[test]
fn watch_without_revision_and_watch_list_start_with_current_state() {
    let s = Server::start();
    post(&s, CM, json!({"metadata": {"name": "one"}}));
    post(&s, CM, json!({"metadata": {"name": "two"}}));
    let plain = s.watch_events(&format!("{CM}?watch=true&timeoutSeconds=1"), None);
    // default also holds the root CA publisher's kube-root-ca.crt, as on upstream.
    assert_eq!(
        names_of(&plain),
        vec![
            ("ADDED".into(), "kube-root-ca.crt".into()),
            ("ADDED".into(), "one".into()),
            ("ADDED".into(), "two".into())
        ]
    );

    let list = s.watch_events(
        &format!("{CM}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"),
        None,
    );
    assert_eq!(list.len(), 4, "{list:?}");
    assert_eq!(list[3]["type"], "BOOKMARK");
    assert_eq!(
        list[3]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let bookmark = rv(&list[3]["object"]);
    assert!(
        list[..3].iter().all(|e| bookmark >= rv(&e["object"])),
        "{list:?}"
    );

    let (code, body) = get(&s, &format!("{CM}?watch=true&sendInitialEvents=true"));
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["reason"], "Invalid");
}

#[test]
fn table_watch_and_protobuf_get() {
    let s = Server::start();
    let (_, a) = post(
        &s,
        CM,
        json!({"metadata": {"name": "t"}, "data": {"k": "v"}}),
    );
    let events = s.watch_events(
        &format!(
            "{CM}?watch=true&resourceVersion={}&timeoutSeconds=1",
            rv(&a) - 1
        ),
        Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["object"]["kind"], "Table");
    assert_eq!(events[0]["object"]["rows"][0]["cells"][0], "t");
    assert_eq!(events[0]["object"]["rows"][0]["cells"][1], 1);

    let pki = s.data_dir().join("pki");
    let out = Command::new("curl")
        .args([
            "-s",
            "-H",
            "accept: application/vnd.kubernetes.protobuf",
            "--cacert",
        ])
        .arg(pki.join("ca.crt"))
        .arg("--cert")
        .arg(pki.join("admin.crt"))
        .arg("--key")
        .arg(pki.join("admin.key"))
        .arg(format!("{}{CM}/t", s.url))
        .output()
        .expect("curl");
    assert_eq!(&out.stdout[..4], b"k8s\0", "protobuf envelope");
    let decoded = reddwarf_kubeproto_decode(&out.stdout);
    assert_eq!(decoded["data"]["k"], "v");
}

/// Decodes a protobuf body with the same codec the server uses, through the binary's
/// dependency graph only: the test crate links reddwarf-kubeproto as a dev-dependency.
fn reddwarf_kubeproto_decode(bytes: &[u8]) -> Value {
    reddwarf_kubeproto::decode_object(bytes).expect("valid protobuf object")
}

#[test]
fn paginated_list_is_a_consistent_snapshot() {
    let s = Server::start();
    for i in 0..5 {
        post(&s, CM, json!({"metadata": {"name": format!("p{i}")}}));
    }
    let (code, page1) = get(&s, &format!("{CM}?limit=2"));
    assert_eq!(code, 200);
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    assert_eq!(page1["metadata"]["remainingItemCount"], 4);
    let token = page1["metadata"]["continue"]
        .as_str()
        .expect("continue token")
        .to_string();
    // A write between pages is not seen by the rest of this list.
    post(&s, CM, json!({"metadata": {"name": "p9"}}));
    req(&s, "DELETE", &format!("{CM}/p3"), None, None);
    let mut names: Vec<String> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let mut token = Some(token);
    while let Some(t) = token {
        let (code, page) = get(&s, &format!("{CM}?limit=2&continue={t}"));
        assert_eq!(code, 200, "{page}");
        assert_eq!(
            page["metadata"]["resourceVersion"],
            page1["metadata"]["resourceVersion"]
        );
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        token = page["metadata"]["continue"].as_str().map(String::from);
        // Each page counts what follows it in the snapshot (6 objects), the last nothing.
        if token.is_some() {
            assert_eq!(
                page["metadata"]["remainingItemCount"],
                6 - names.len(),
                "{page}"
            );
        } else {
            assert!(
                page["metadata"].get("remainingItemCount").is_none(),
                "{page}"
            );
        }
    }
    // default also holds kube-root-ca.crt (the root CA publisher's), as on upstream.
    assert_eq!(
        names,
        vec!["kube-root-ca.crt", "p0", "p1", "p2", "p3", "p4"]
    );
}

#[test]
fn status_subresource_and_generation() {
    let s = Server::start();
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}},
        "status": {"replicas": 99},
    });
    let path = "/apis/apps/v1/namespaces/default/deployments";
    let (code, d) = post(&s, path, deploy);
    assert_eq!(code, 201, "{d}");
    assert_eq!(d["metadata"]["generation"], 1);
    assert!(
        d.get("status").is_none() || d["status"].get("replicas").is_none(),
        "status is not set on create: {d}"
    );
    assert_eq!(d["spec"]["replicas"], 1, "defaulted");
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");

    // The deployment controller now writes Deployments' status; the subresource semantics are
    // checked on a kind no controller touches (HorizontalPodAutoscaler: status, generation).
    let hpa = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 2},
        "status": {"currentReplicas": 99, "desiredReplicas": 99},
    });
    let path = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers";
    let (code, d) = post(&s, path, hpa);
    assert_eq!(code, 201, "{d}");
    assert_eq!(d["metadata"]["generation"], 1);
    assert!(
        d.get("status").is_none() || d["status"].get("currentReplicas").is_none(),
        "status is not set on create: {d}"
    );
    assert_eq!(d["spec"]["minReplicas"], 1, "defaulted");

    let mut st = d.clone();
    st["status"] = json!({"currentReplicas": 1, "desiredReplicas": 1});
    let (code, after_status) = req(
        &s,
        "PUT",
        &format!("{path}/web/status"),
        Some("application/json"),
        Some(st),
    );
    assert_eq!(code, 200, "{after_status}");
    assert_eq!(after_status["status"]["currentReplicas"], 1);
    assert_eq!(
        after_status["metadata"]["generation"], 1,
        "status writes do not bump generation"
    );

    let mut spec = after_status.clone();
    spec["spec"]["maxReplicas"] = json!(3);
    spec["status"] = json!({"desiredReplicas": 0});
    let (code, after_spec) = req(
        &s,
        "PUT",
        &format!("{path}/web"),
        Some("application/json"),
        Some(spec),
    );
    assert_eq!(code, 200, "{after_spec}");
    assert_eq!(after_spec["metadata"]["generation"], 2);
    assert_eq!(
        after_spec["status"]["currentReplicas"], 1,
        "the main resource cannot change status"
    );

    // A PUT that changes nothing writes nothing.
    let (code, same) = req(
        &s,
        "PUT",
        &format!("{path}/web"),
        Some("application/json"),
        Some(after_spec.clone()),
    );
    assert_eq!(code, 200);
    assert_eq!(rv(&same), rv(&after_spec));
}

#[test]
fn finalizers_hold_deletion_and_terminating_namespaces_refuse_content() {
    let s = Server::start();
    post(
        &s,
        "/api/v1/namespaces",
        json!({"metadata": {"name": "ns1"}}),
    );
    let p = "/api/v1/namespaces/ns1/configmaps";
    post(
        &s,
        p,
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    );
    let (code, del) = req(&s, "DELETE", &format!("{p}/held"), None, None);
    assert_eq!(code, 200, "{del}");
    let (code, held) = get(&s, &format!("{p}/held"));
    assert_eq!(code, 200);
    assert!(held["metadata"]["deletionTimestamp"].is_string());

    let (code, _) = req(&s, "DELETE", "/api/v1/namespaces/ns1", None, None);
    assert_eq!(code, 200);
    let (code, refused) = post(&s, p, json!({"metadata": {"name": "late"}}));
    assert_eq!(code, 403, "{refused}");
    assert_eq!(refused["reason"], "Forbidden");
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("because it is being terminated"));
    let (_, ns) = get(&s, "/api/v1/namespaces/ns1");
    assert_eq!(ns["status"]["phase"], "Terminating");

    // Removing the last finalizer deletes the object; then the namespace finishes.
    let (code, gone) = req(
        &s,
        "PATCH",
        &format!("{p}/held"),
        Some("application/merge-patch+json"),
        Some(json!({"metadata": {"finalizers": null}})),
    );
    assert_eq!(code, 200, "{gone}");
    assert_eq!(get(&s, &format!("{p}/held")).0, 404);
    common::eventually(
        "namespace ns1 removed",
        std::time::Duration::from_secs(20),
        || (get(&s, "/api/v1/namespaces/ns1").0 == 404).then_some(()),
    );
}

#[test]
fn generate_name_dry_run_and_delete_collection() {
    let s = Server::start();
    let (code, g) = post(&s, CM, json!({"metadata": {"generateName": "gen-"}}));
    assert_eq!(code, 201);
    let name = g["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let (code, dry) = post(
        &s,
        &format!("{CM}?dryRun=All"),
        json!({"metadata": {"name": "dry"}}),
    );
    assert_eq!(code, 201, "{dry}");
    assert_eq!(
        get(&s, &format!("{CM}/dry")).0,
        404,
        "dry run stores nothing"
    );

    for (n, app) in [("x1", "a"), ("x2", "a"), ("x3", "b")] {
        post(
            &s,
            CM,
            json!({"metadata": {"name": n, "labels": {"app": app}}}),
        );
    }
    let (code, deleted) = req(
        &s,
        "DELETE",
        &format!("{CM}?labelSelector=app%3Da"),
        None,
        None,
    );
    assert_eq!(code, 200, "{deleted}");
    assert_eq!(deleted["kind"], "ConfigMapList");
    assert_eq!(deleted["items"].as_array().unwrap().len(), 2);
    assert_eq!(get(&s, &format!("{CM}/x1")).0, 404);
    assert_eq!(get(&s, &format!("{CM}/x3")).0, 200);
}

/// A collection larger than one proposal's worth (256) is deleted whole, in several raft
/// entries: every selected object goes, is in the answer once, and nothing else is touched.
#[test]
fn a_large_collection_is_deleted_whole_across_proposals() {
    let s = Server::start();
    for i in 0..300 {
        let (code, body) = post(
            &s,
            CM,
            json!({"metadata": {"name": format!("bulk-{i}"), "labels": {"bulk": "yes"}}}),
        );
        assert_eq!(code, 201, "{body}");
    }
    assert_eq!(post(&s, CM, json!({"metadata": {"name": "keep"}})).0, 201);
    let (code, deleted) = req(
        &s,
        "DELETE",
        &format!("{CM}?labelSelector=bulk%3Dyes"),
        None,
        None,
    );
    assert_eq!(code, 200, "{deleted}");
    let names: std::collections::BTreeSet<&str> = deleted["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(deleted["items"].as_array().unwrap().len(), 300);
    assert_eq!(names.len(), 300, "each deleted object answered once");
    let (_, left) = get(&s, &format!("{CM}?labelSelector=bulk%3Dyes"));
    assert_eq!(left["items"].as_array().unwrap().len(), 0, "{left}");
    assert_eq!(get(&s, &format!("{CM}/keep")).0, 200);
    let list_rv: u64 = left["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let answer_rv: u64 = deleted["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        answer_rv <= list_rv && answer_rv > 300,
        "{answer_rv} / {list_rv}"
    );
}

#[test]
fn pod_binding_eviction_and_node_streams() {
    let s = Server::start();
    let pods = "/api/v1/namespaces/default/pods";
    let pod = |name: &str| json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}});
    assert_eq!(post(&s, pods, pod("p1")).0, 201);
    assert_eq!(post(&s, pods, pod("p2")).0, 201);
    // Logs of an unscheduled pod: upstream's message.
    let out = s.kubectl("1.33", &["logs", "p1"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pod p1 does not have a host assigned"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pods/binding assigns once; a second binding conflicts.
    let binding = |pod: &str, node: &str| json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod}, "target": {"kind": "Node", "name": node}});
    let (code, body) = post(&s, &format!("{pods}/p1/binding"), binding("p1", "node-a"));
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        get(&s, &format!("{pods}/p1")).1["spec"]["nodeName"],
        "node-a"
    );
    let (code, body) = post(&s, &format!("{pods}/p1/binding"), binding("p1", "node-b"));
    assert_eq!(code, 409, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("already assigned to node \"node-a\""));
    // The bindings resource does the same and stores nothing of its own.
    assert_eq!(
        post(
            &s,
            "/api/v1/namespaces/default/bindings",
            binding("p2", "node-b")
        )
        .0,
        201
    );
    assert_eq!(
        get(&s, &format!("{pods}/p2")).1["spec"]["nodeName"],
        "node-b"
    );
    // Streams of a scheduled pod need its node's agent: a clear error, not a hang.
    let out = s.kubectl("1.33", &["logs", "p1"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no agent is connected"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Eviction deletes the pod: a bound pod gets its grace period (30 s by default) for its
    // kubelet to stop it; the kubelet's delete with grace 0 removes it.
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p2", "namespace": "default"}});
    let (code, body) = post(&s, &format!("{pods}/p2/eviction"), eviction);
    assert_eq!(code, 201, "{body}");
    let (code, p2) = get(&s, &format!("{pods}/p2"));
    assert_eq!(code, 200);
    assert!(p2["metadata"]["deletionTimestamp"].is_string(), "{p2}");
    assert_eq!(p2["metadata"]["deletionGracePeriodSeconds"], 30);
    let (code, body) = s.curl(
        "DELETE",
        &format!("{pods}/p2"),
        Some("application/json"),
        Some(br#"{"gracePeriodSeconds":0}"#),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(get(&s, &format!("{pods}/p2")).0, 404);
    // Discovery lists the subresources with their kinds.
    let names = s.resource_names("/api/v1");
    for sub in [
        "pods/binding",
        "pods/eviction",
        "pods/log",
        "pods/exec",
        "pods/attach",
        "pods/portforward",
    ] {
        assert!(
            names.iter().any(|n| n == sub),
            "{sub} missing from {names:?}"
        );
    }
}

fn get_as(s: &Server, path: &str, accept: &str) -> Value {
    let out = s
        .curl_cmd()
        .args(["--max-time", "10"])
        .args(["-H", &format!("accept: {accept}")])
        .arg(format!("{}{path}", s.url))
        .output()
        .expect("curl");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn partial_object_metadata_for_get_list_and_watch() {
    let s = Server::start();
    let (code, _) = post(
        &s,
        CM,
        json!({"metadata": {"name": "meta", "labels": {"a": "b"}}, "data": {"big": "x"}}),
    );
    assert_eq!(code, 201);
    let one = get_as(
        &s,
        &format!("{CM}/meta"),
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
    );
    assert_eq!(one["kind"], "PartialObjectMetadata");
    assert_eq!(one["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(one["metadata"]["labels"]["a"], "b");
    assert!(one.get("data").is_none(), "{one}");
    let list = get_as(
        &s,
        CM,
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    );
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["kind"], "PartialObjectMetadata");
            assert!(i.get("data").is_none());
            i["metadata"]["name"].as_str().unwrap()
        })
        .collect();
    assert!(names.contains(&"meta"), "{names:?}");
    let events = s.watch_events(
        &format!("{CM}?watch=true&resourceVersion=0&timeoutSeconds=1"),
        Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
    );
    let ev = events
        .iter()
        .find(|e| e["object"]["metadata"]["name"] == "meta")
        .expect("ADDED meta");
    assert_eq!(ev["object"]["kind"], "PartialObjectMetadata");
    assert!(ev["object"].get("data").is_none());
}

fn get_bytes(s: &Server, path: &str, accept: &str) -> Vec<u8> {
    let out = s
        .curl_cmd()
        .args(["--max-time", "30", "-f"])
        .args(["-H", &format!("accept: {accept}")])
        .arg(format!("{}{path}", s.url))
        .output()
        .expect("curl");
    assert!(out.status.success(), "GET {path} as {accept} failed");
    out.stdout
}

/// A list without a limit is written as it is read, a slice of items at a time (and, for
/// protobuf, measured first); a page is built whole. Both forms of the same snapshot (the rest
/// of a paginated list, once with no limit, once with one larger than the list) must be the
/// same bytes: JSON and protobuf, more items than one slice, a protobuf list too long to keep
/// while measuring and one short enough, with and without a label selector.
#[test]
fn whole_lists_are_streamed_byte_identical_to_pages() {
    let s = Server::start();
    let filler = "x".repeat(6000);
    let items: Vec<Value> = (0..300)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("big-{i:03}"), "namespace": "default",
                    "labels": {"third": if i % 3 == 0 { "yes" } else { "no" }}},
                "data": {"filler": filler, "i": i.to_string()}})
        })
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    let out = s.kubectl_stdin(&["create", "-f", "-"], &list);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    const JSON: &str = "application/json";
    const PB: &str = "application/vnd.kubernetes.protobuf";
    for selector in ["", "&labelSelector=third%3Dyes"] {
        // A snapshot pinned by a continue token: the rest of the list at one revision.
        let (code, page) = get(&s, &format!("{CM}?limit=1{selector}"));
        assert_eq!(code, 200, "{page}");
        let token = page["metadata"]["continue"].as_str().expect("continue");
        let rest = format!("{CM}?continue={token}{selector}");
        let want = if selector.is_empty() { 300 } else { 100 };

        let streamed = get_bytes(&s, &rest, JSON);
        let paged = get_bytes(&s, &format!("{rest}&limit=100000"), JSON);
        assert!(streamed == paged, "JSON: streamed and paged lists differ");
        let v: Value = serde_json::from_slice(&streamed).expect("streamed JSON parses");
        let got = v["items"].as_array().expect("items").len();
        // The first page took one item (kube-root-ca.crt sorts after big-*, so it is here too
        // when no selector excludes it).
        assert_eq!(got, if selector.is_empty() { want } else { want - 1 });
        assert_eq!(
            v["metadata"]["resourceVersion"],
            page["metadata"]["resourceVersion"]
        );

        const META: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        let streamed = get_bytes(&s, &rest, META);
        let paged = get_bytes(&s, &format!("{rest}&limit=100000"), META);
        assert!(
            streamed == paged,
            "metadata: streamed and paged lists differ"
        );
        let m: Value = serde_json::from_slice(&streamed).expect("metadata list parses");
        assert_eq!(m["kind"], "PartialObjectMetadataList");
        assert_eq!(m["items"].as_array().expect("items").len(), got);
        assert_eq!(m["items"][0]["kind"], "PartialObjectMetadata");
        assert_eq!(m["items"][0]["metadata"], v["items"][0]["metadata"]);
        assert!(m["items"][0].get("data").is_none());

        let streamed = get_bytes(&s, &rest, PB);
        let paged = get_bytes(&s, &format!("{rest}&limit=100000"), PB);
        assert_eq!(&streamed[..4], b"k8s\0", "protobuf envelope");
        assert!(
            streamed == paged,
            "protobuf: streamed and paged lists differ"
        );
        let v = reddwarf_kubeproto_decode(&streamed);
        assert_eq!(v["kind"], "ConfigMapList");
        assert_eq!(v["items"].as_array().expect("items").len(), got);
        assert_eq!(v["items"][3]["data"]["filler"], filler.as_str());
    }
}
