//! Garbage collection (background, foreground and orphan cascades through real kubectl), the
//! Job and CronJob controllers, and pod GC, against the real binary with simulated nodes.

mod common;

use std::time::Duration;

use common::{eventually, Server, SimNodes};
use serde_json::{json, Value};

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// POSTs `body` to `path` and returns the created object.
fn create(s: &Server, path: &str, body: Value) -> Value {
    let (code, text) = s.curl(
        "POST",
        path,
        Some("application/json"),
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(code, 201, "POST {path}: {text}");
    parse(&text)
}

fn get(s: &Server, path: &str) -> Option<Value> {
    let (code, text) = s.curl("GET", path, None, None);
    match code {
        200 => Some(parse(&text)),
        404 => None,
        _ => panic!("GET {path}: {code} {text}"),
    }
}

fn owner_ref(o: &Value, block: bool) -> Value {
    json!({
        "apiVersion": o["apiVersion"], "kind": o["kind"],
        "name": o["metadata"]["name"], "uid": o["metadata"]["uid"],
        "blockOwnerDeletion": block,
    })
}

fn configmap(name: &str, owners: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "ownerReferences": owners}, "data": {"k": "v"}})
}

const CM: &str = "/api/v1/namespaces/default/configmaps";

fn gone(s: &Server, path: &str, what: &str) {
    eventually(what, Duration::from_secs(20), || {
        get(s, path).is_none().then_some(())
    });
}

#[test]
fn background_cascade_deletes_dependents_whose_owners_are_gone() {
    let s = Server::start();
    for v in ["1.33", "1.27"] {
        let owner = create(&s, CM, configmap(&format!("owner-{}", &v[2..]), vec![]));
        let dep = format!("dep-{}", &v[2..]);
        create(&s, CM, configmap(&dep, vec![owner_ref(&owner, false)]));
        // A second owner that stays keeps an object alive; only the dead reference goes.
        let keeper = create(&s, CM, configmap(&format!("keeper-{}", &v[2..]), vec![]));
        let shared = format!("shared-{}", &v[2..]);
        create(
            &s,
            CM,
            configmap(
                &shared,
                vec![owner_ref(&owner, false), owner_ref(&keeper, false)],
            ),
        );
        s.kubectl_ok(
            v,
            &[
                "delete",
                "configmap",
                owner["metadata"]["name"].as_str().unwrap(),
                "--cascade=background",
            ],
        );
        gone(&s, &format!("{CM}/{dep}"), "background dependent deleted");
        let refs = eventually("dead reference dropped", Duration::from_secs(20), || {
            let o = get(&s, &format!("{CM}/{shared}"))?;
            let refs = o["metadata"]["ownerReferences"].as_array().cloned()?;
            (refs.len() == 1).then_some(refs)
        });
        assert_eq!(refs[0]["uid"], keeper["metadata"]["uid"]);
    }

    // An owner recreated under the same name is a different owner: the dependent of the old
    // one is garbage even though the name resolves.
    let old = create(&s, CM, configmap("phoenix", vec![]));
    let (code, _) = s.curl("DELETE", &format!("{CM}/phoenix"), None, None);
    assert_eq!(code, 200);
    create(&s, CM, configmap("phoenix", vec![]));
    create(&s, CM, configmap("ash", vec![owner_ref(&old, false)]));
    gone(
        &s,
        &format!("{CM}/ash"),
        "dependent of a replaced owner deleted",
    );
    assert!(get(&s, &format!("{CM}/phoenix")).is_some());

    // A dependent created naming an owner that never existed is collected too.
    let ghost = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ghost", "uid": "00000000-0000-0000-0000-000000000001"}});
    create(&s, CM, configmap("haunted", vec![owner_ref(&ghost, false)]));
    gone(
        &s,
        &format!("{CM}/haunted"),
        "dependent of a missing owner deleted",
    );
}

#[test]
fn foreground_cascade_waits_for_blocking_dependents() {
    let s = Server::start();
    let rs_path = "/apis/apps/v1/namespaces/default/replicasets";
    for v in ["1.33", "1.27"] {
        let name = format!("web-{}", &v[2..]);
        let rs = create(
            &s,
            rs_path,
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
        );
        // A dependent that blocks and cannot go yet (a finalizer of its own), one that blocks
        // and can, and one that does not block.
        let held = format!("held-{}", &v[2..]);
        let mut cm = configmap(&held, vec![owner_ref(&rs, true)]);
        cm["metadata"]["finalizers"] = json!(["example.com/hold"]);
        create(&s, CM, cm);
        let pod = format!("pod-{}", &v[2..]);
        let mut ref_ = owner_ref(&rs, true);
        ref_["controller"] = json!(true);
        create(
            &s,
            "/api/v1/namespaces/default/pods",
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod, "labels": {"app": name}, "ownerReferences": [ref_]},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
        );
        let loose = format!("loose-{}", &v[2..]);
        create(&s, CM, configmap(&loose, vec![owner_ref(&rs, false)]));

        s.kubectl_ok(
            v,
            &[
                "delete",
                "rs",
                &name,
                "--cascade=foreground",
                "--wait=false",
            ],
        );
        gone(
            &s,
            &format!("/api/v1/namespaces/default/pods/{pod}"),
            "blocking pod deleted",
        );
        gone(
            &s,
            &format!("{CM}/{loose}"),
            "non-blocking dependent deleted",
        );
        // The held dependent is being deleted, and the owner waits for it.
        eventually(
            "held dependent terminating",
            Duration::from_secs(20),
            || {
                get(&s, &format!("{CM}/{held}"))?["metadata"]["deletionTimestamp"]
                    .as_str()
                    .map(|_| ())
            },
        );
        let owner = get(&s, &format!("{rs_path}/{name}")).expect("owner still there");
        assert!(owner["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(
            owner["metadata"]["finalizers"],
            json!(["foregroundDeletion"])
        );

        let (code, text) = s.curl(
            "PATCH",
            &format!("{CM}/{held}"),
            Some("application/merge-patch+json"),
            Some(br#"{"metadata":{"finalizers":null}}"#),
        );
        assert_eq!(code, 200, "{text}");
        gone(
            &s,
            &format!("{rs_path}/{name}"),
            "owner deleted after its dependents",
        );
    }

    // kubectl waits for a foreground deletion to finish.
    let rs = create(
        &s,
        rs_path,
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "waited"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "w"}},
                "template": {"metadata": {"labels": {"app": "w"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
    );
    create(&s, CM, configmap("waited-dep", vec![owner_ref(&rs, true)]));
    s.kubectl_ok(
        "1.33",
        &[
            "delete",
            "rs",
            "waited",
            "--cascade=foreground",
            "--timeout=30s",
        ],
    );
    assert!(get(&s, &format!("{CM}/waited-dep")).is_none());
    assert!(get(&s, &format!("{rs_path}/waited")).is_none());
}

#[test]
fn orphan_cascade_keeps_dependents_without_the_reference() {
    let s = Server::start();
    for v in ["1.33", "1.27"] {
        let owner = create(&s, CM, configmap(&format!("parent-{}", &v[2..]), vec![]));
        let other = create(&s, CM, configmap(&format!("other-{}", &v[2..]), vec![]));
        let a = format!("a-{}", &v[2..]);
        let b = format!("b-{}", &v[2..]);
        create(&s, CM, configmap(&a, vec![owner_ref(&owner, true)]));
        create(
            &s,
            CM,
            configmap(&b, vec![owner_ref(&owner, false), owner_ref(&other, false)]),
        );
        s.kubectl_ok(
            v,
            &[
                "delete",
                "cm",
                owner["metadata"]["name"].as_str().unwrap(),
                "--cascade=orphan",
                "--timeout=30s",
            ],
        );
        gone(
            &s,
            &format!("{CM}/{}", owner["metadata"]["name"].as_str().unwrap()),
            "orphaned owner deleted",
        );
        let a = get(&s, &format!("{CM}/{a}")).expect("orphan kept");
        assert!(
            a["metadata"]["ownerReferences"]
                .as_array()
                .is_none_or(|r| r.is_empty()),
            "{a}"
        );
        let b = get(&s, &format!("{CM}/{b}")).expect("orphan kept");
        assert_eq!(
            b["metadata"]["ownerReferences"][0]["uid"],
            other["metadata"]["uid"]
        );
        assert_eq!(
            b["metadata"]["ownerReferences"].as_array().unwrap().len(),
            1
        );
    }
}
