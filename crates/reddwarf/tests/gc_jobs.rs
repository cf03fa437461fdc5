//! Garbage collection (background, foreground and orphan cascades through real kubectl), the
//! Job and CronJob controllers, and pod GC, against the real binary with simulated nodes.

mod common;

use std::time::Duration;

use common::{eventually, parse, Server, SimNodes};
use serde_json::{json, Value};

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
        let owner = s.create(CM, configmap(&format!("owner-{}", &v[2..]), vec![]));
        let dep = format!("dep-{}", &v[2..]);
        s.create(CM, configmap(&dep, vec![owner_ref(&owner, false)]));
        // A second owner that stays keeps an object alive; only the dead reference goes.
        let keeper = s.create(CM, configmap(&format!("keeper-{}", &v[2..]), vec![]));
        let shared = format!("shared-{}", &v[2..]);
        s.create(
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
    let old = s.create(CM, configmap("phoenix", vec![]));
    let (code, _) = s.curl("DELETE", &format!("{CM}/phoenix"), None, None);
    assert_eq!(code, 200);
    s.create(CM, configmap("phoenix", vec![]));
    s.create(CM, configmap("ash", vec![owner_ref(&old, false)]));
    gone(
        &s,
        &format!("{CM}/ash"),
        "dependent of a replaced owner deleted",
    );
    assert!(get(&s, &format!("{CM}/phoenix")).is_some());

    // A dependent created naming an owner that never existed is collected too.
    let ghost = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ghost", "uid": "00000000-0000-0000-0000-000000000001"}});
    s.create(CM, configmap("haunted", vec![owner_ref(&ghost, false)]));
    gone(
        &s,
        &format!("{CM}/haunted"),
        "dependent of a missing owner deleted",
    );

    // A cluster-scoped object naming a namespaced owner kind has an unresolvable reference:
    // reported, never collected.
    s.create(
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "misowned", "ownerReferences": [owner_ref(&ghost, false)]},
            "rules": []}),
    );
    eventually(
        "OwnerRefInvalidNamespace event",
        Duration::from_secs(20),
        || {
            event_reasons(&s, "misowned")
                .iter()
                .any(|r| r == "OwnerRefInvalidNamespace")
                .then_some(())
        },
    );
    assert!(get(
        &s,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/misowned"
    )
    .is_some());
}

#[test]
fn foreground_cascade_waits_for_blocking_dependents() {
    let s = Server::start();
    let rs_path = "/apis/apps/v1/namespaces/default/replicasets";
    for v in ["1.33", "1.27"] {
        let name = format!("web-{}", &v[2..]);
        let rs = s.create(
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
        s.create(CM, cm);
        let pod = format!("pod-{}", &v[2..]);
        let mut ref_ = owner_ref(&rs, true);
        ref_["controller"] = json!(true);
        s.create(
            "/api/v1/namespaces/default/pods",
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod, "labels": {"app": name}, "ownerReferences": [ref_]},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
        );
        let loose = format!("loose-{}", &v[2..]);
        s.create(CM, configmap(&loose, vec![owner_ref(&rs, false)]));

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
    let rs = s.create(
        rs_path,
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "waited"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "w"}},
                "template": {"metadata": {"labels": {"app": "w"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
    );
    s.create(CM, configmap("waited-dep", vec![owner_ref(&rs, true)]));
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
        let owner = s.create(CM, configmap(&format!("parent-{}", &v[2..]), vec![]));
        let other = s.create(CM, configmap(&format!("other-{}", &v[2..]), vec![]));
        let a = format!("a-{}", &v[2..]);
        let b = format!("b-{}", &v[2..]);
        s.create(CM, configmap(&a, vec![owner_ref(&owner, true)]));
        s.create(
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

const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";
const PODS: &str = "/api/v1/namespaces/default/pods";

fn job(name: &str, spec: Value, pod_annotations: Value) -> Value {
    let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"metadata": {"annotations": pod_annotations},
            "spec": {"restartPolicy": "Never",
                "containers": [{"name": "work", "image": "busybox"}]}}}});
    for (k, v) in spec.as_object().unwrap() {
        j["spec"][k] = v.clone();
    }
    j
}

fn condition<'a>(job: &'a Value, type_: &str) -> Option<&'a Value> {
    job["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_ && c["status"] == "True")
}

/// Waits until the job has the terminal condition `type_` and returns it.
fn wait_finished(s: &Server, name: &str, type_: &str, secs: u64) -> Value {
    eventually(
        &format!("job {name} {type_}"),
        Duration::from_secs(secs),
        || {
            let j = get(s, &format!("{JOBS}/{name}"))?;
            condition(&j, type_).is_some().then_some(j)
        },
    )
}

fn pods_of(s: &Server, job: &str) -> Vec<Value> {
    let (_, text) = s.curl(
        "GET",
        &format!("{PODS}?labelSelector=batch.kubernetes.io/job-name%3D{job}"),
        None,
        None,
    );
    parse(&text)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn event_reasons(s: &Server, name: &str) -> Vec<String> {
    let (_, text) = s.curl(
        "GET",
        &format!("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3D{name}"),
        None,
        None,
    );
    parse(&text)["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["reason"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn job_runs_to_completion_with_bounded_parallelism() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 2, &["--run-time", "1s"]);
    let created = s.create(
        JOBS,
        job(
            "batch",
            json!({"completions": 3, "parallelism": 2}),
            json!({}),
        ),
    );
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    // Never more than `parallelism` pods at once.
    let done = eventually("job batch Complete", Duration::from_secs(40), || {
        let j = get(&s, &format!("{JOBS}/batch"))?;
        let running = pods_of(&s, "batch")
            .iter()
            .filter(|p| {
                p["metadata"]["deletionTimestamp"].is_null()
                    && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
            })
            .count();
        assert!(running <= 2, "{running} pods running at once");
        condition(&j, "Complete").is_some().then_some(j)
    });
    let st = &done["status"];
    assert_eq!(st["succeeded"], 3, "{st}");
    assert!(st["failed"].is_null() && st["active"].is_null(), "{st}");
    assert_eq!(st["ready"], 0);
    assert_eq!(st["terminating"], 0);
    assert_eq!(st["uncountedTerminatedPods"], json!({}));
    assert!(st["startTime"].is_string() && st["completionTime"].is_string());
    let types: Vec<&str> = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    let complete = condition(&done, "Complete").unwrap();
    assert_eq!(complete["reason"], "CompletionsReached");
    assert_eq!(
        complete["message"],
        "Reached expected number of succeeded pods"
    );

    let pods = pods_of(&s, "batch");
    assert_eq!(pods.len(), 3);
    for p in &pods {
        let labels = &p["metadata"]["labels"];
        assert_eq!(labels["batch.kubernetes.io/job-name"], "batch");
        assert_eq!(labels["job-name"], "batch");
        assert_eq!(labels["batch.kubernetes.io/controller-uid"], uid.as_str());
        assert_eq!(labels["controller-uid"], uid.as_str());
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        assert!(
            p["metadata"]["finalizers"].is_null(),
            "tracking finalizer removed once counted: {}",
            p["metadata"]
        );
        assert!(p["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("batch-"));
        assert_eq!(p["status"]["phase"], "Succeeded");
    }
    let reasons = event_reasons(&s, "batch");
    assert!(
        reasons.iter().any(|r| r == "SuccessfulCreate"),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r == "Completed"), "{reasons:?}");

    let table = s.kubectl_ok("1.33", &["get", "job", "batch"]);
    assert!(table.contains("3/3"), "{table}");
    assert!(table.contains("Complete"), "{table}");
    let describe = s.kubectl_ok("1.27", &["describe", "job", "batch"]);
    assert!(describe.contains("3 Succeeded / 0 Failed"), "{describe}");
}

#[test]
fn failing_job_stops_at_its_backoff_limit() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 2, &["--run-time", "1s"]);
    s.create(
        JOBS,
        job(
            "flaky",
            json!({"completions": 2, "parallelism": 2, "backoffLimit": 1}),
            json!({"sim.reddwarf.dev/exit-code": "3"}),
        ),
    );
    let j = wait_finished(&s, "flaky", "Failed", 40);
    let st = &j["status"];
    assert_eq!(st["failed"], 2, "{st}");
    assert!(st["succeeded"].is_null(), "{st}");
    assert!(st["completionTime"].is_null(), "{st}");
    let failed = condition(&j, "Failed").unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    assert_eq!(
        failed["message"],
        "Job has reached the specified backoff limit"
    );
    let target = condition(&j, "FailureTarget").expect("FailureTarget before Failed");
    assert_eq!(target["reason"], "BackoffLimitExceeded");
    assert!(event_reasons(&s, "flaky")
        .iter()
        .any(|r| r == "BackoffLimitExceeded"));
    // No more pods once failed.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pods_of(&s, "flaky").len(), 2);
}

#[test]
fn indexed_job_gives_each_pod_its_index() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 2, &["--run-time", "1s"]);
    s.create(
        JOBS,
        job(
            "idx",
            json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}),
            json!({}),
        ),
    );
    let j = wait_finished(&s, "idx", "Complete", 40);
    assert_eq!(j["status"]["completedIndexes"], "0-2", "{}", j["status"]);
    assert_eq!(j["status"]["succeeded"], 3);
    let mut seen: Vec<String> = Vec::new();
    for p in pods_of(&s, "idx") {
        let ix = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .expect("index annotation")
            .to_string();
        assert_eq!(
            p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"],
            ix.as_str()
        );
        assert_eq!(p["spec"]["hostname"], format!("idx-{ix}"));
        assert!(p["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with(&format!("idx-{ix}-")));
        let env = &p["spec"]["containers"][0]["env"];
        let var = env
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "JOB_COMPLETION_INDEX")
            .expect("JOB_COMPLETION_INDEX");
        assert_eq!(
            var["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        seen.push(ix);
    }
    seen.sort();
    assert_eq!(seen, ["0", "1", "2"]);
}

#[test]
fn finished_job_is_deleted_after_its_ttl_with_its_pods() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 1, &["--run-time", "1s"]);
    s.create(
        JOBS,
        job("brief", json!({"ttlSecondsAfterFinished": 2}), json!({})),
    );
    wait_finished(&s, "brief", "Complete", 30);
    assert_eq!(pods_of(&s, "brief").len(), 1);
    gone(&s, &format!("{JOBS}/brief"), "job deleted after its TTL");
    eventually("the job's pods deleted", Duration::from_secs(20), || {
        pods_of(&s, "brief").is_empty().then_some(())
    });
}

#[test]
fn deleting_a_job_takes_or_keeps_its_pods() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 1, &["--run-time", "60s"]);
    for name in ["kept", "taken"] {
        s.create(JOBS, job(name, json!({}), json!({})));
    }
    for name in ["kept", "taken"] {
        eventually("job pod running", Duration::from_secs(20), || {
            pods_of(&s, name)
                .iter()
                .any(|p| p["status"]["phase"] == "Running")
                .then_some(())
        });
    }
    // kubectl sends propagationPolicy=Background: the pods go with the job.
    s.kubectl_ok("1.33", &["delete", "job", "taken"]);
    eventually(
        "pods of a deleted job gone",
        Duration::from_secs(20),
        || pods_of(&s, "taken").is_empty().then_some(()),
    );
    // A DELETE naming no policy orphans a batch/v1 Job's pods (upstream's default for
    // compatibility): they stay, without the owner reference and the tracking finalizer.
    let (code, text) = s.curl("DELETE", &format!("{JOBS}/kept"), None, None);
    assert_eq!(code, 200, "{text}");
    gone(&s, &format!("{JOBS}/kept"), "orphaning job deleted");
    let pod = eventually("orphaned pod released", Duration::from_secs(20), || {
        let pods = pods_of(&s, "kept");
        let p = pods.first()?.clone();
        (p["metadata"]["ownerReferences"].is_null() && p["metadata"]["finalizers"].is_null())
            .then_some(p)
    });
    assert_eq!(pod["status"]["phase"], "Running");
}

#[test]
fn cronjob_runs_a_job_at_the_scheduled_minute() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 1, &["--run-time", "1s"]);
    let cj = s.create(
        "/apis/batch/v1/namespaces/default/cronjobs",
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
            "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid",
                "jobTemplate": {"metadata": {"labels": {"team": "ops"}},
                    "spec": {"template": {"spec": {"restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
    );
    let uid = cj["metadata"]["uid"].as_str().unwrap().to_string();
    let job = eventually("a scheduled job", Duration::from_secs(75), || {
        let (_, text) = s.curl("GET", JOBS, None, None);
        parse(&text)["items"].as_array()?.first().cloned()
    });
    let name = job["metadata"]["name"].as_str().unwrap();
    let minutes: i64 = name
        .strip_prefix("tick-")
        .expect("named after the cronjob")
        .parse()
        .expect("minutes since the epoch");
    let scheduled = job["metadata"]["annotations"]
        ["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        .as_str()
        .expect("scheduled-timestamp annotation");
    let ts: jiff::Timestamp = scheduled.parse().unwrap();
    assert_eq!(ts.as_second(), minutes * 60, "{scheduled}");
    assert!(scheduled.ends_with('Z'), "{scheduled}");
    assert_eq!(job["metadata"]["labels"]["team"], "ops");
    assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");

    let cj = eventually(
        "cronjob status follows the job",
        Duration::from_secs(30),
        || {
            let cj = get(&s, "/apis/batch/v1/namespaces/default/cronjobs/tick")?;
            let st = &cj["status"];
            (st["lastSuccessfulTime"].is_string() && st["active"].is_null()).then_some(cj)
        },
    );
    assert_eq!(cj["status"]["lastScheduleTime"], scheduled);
    let reasons = event_reasons(&s, "tick");
    assert!(
        reasons.iter().any(|r| r == "SuccessfulCreate"),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r == "SawCompletedJob"),
        "{reasons:?}"
    );
    let table = s.kubectl_ok("1.33", &["get", "cronjob", "tick"]);
    assert!(table.contains("* * * * *"), "{table}");
}

#[test]
fn cronjob_manual_runs_and_history_limits() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 1, &["--run-time", "1s"]);
    // A schedule that does not fire during the test.
    s.kubectl_ok(
        "1.33",
        &[
            "create",
            "cronjob",
            "nightly",
            "--image=busybox",
            "--schedule=0 0 1 1 *",
            "--restart=Never",
        ],
    );
    s.kubectl_ok(
        "1.33",
        &[
            "patch",
            "cronjob",
            "nightly",
            "--type=merge",
            "-p",
            r#"{"spec":{"successfulJobsHistoryLimit":1}}"#,
        ],
    );
    let cj = get(&s, "/apis/batch/v1/namespaces/default/cronjobs/nightly").unwrap();
    s.kubectl_ok(
        "1.33",
        &["create", "job", "manual-1", "--from=cronjob/nightly"],
    );
    wait_finished(&s, "manual-1", "Complete", 30);
    s.kubectl_ok(
        "1.33",
        &["create", "job", "manual-2", "--from=cronjob/nightly"],
    );
    let j = wait_finished(&s, "manual-2", "Complete", 30);
    assert_eq!(
        j["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    assert_eq!(
        j["metadata"]["ownerReferences"][0]["uid"],
        cj["metadata"]["uid"]
    );
    // One successful job is kept: the older goes, with its pods.
    gone(
        &s,
        &format!("{JOBS}/manual-1"),
        "the older finished job deleted",
    );
    eventually("its pods deleted", Duration::from_secs(20), || {
        pods_of(&s, "manual-1").is_empty().then_some(())
    });
    assert!(get(&s, &format!("{JOBS}/manual-2")).is_some());
    let reasons = event_reasons(&s, "nightly");
    assert!(
        reasons.iter().any(|r| r == "SuccessfulDelete"),
        "{reasons:?}"
    );
    // kubectl 1.27 makes the job owned but not controlled by the cronjob (no `controller`),
    // so it runs without counting towards the cronjob's history.
    s.kubectl_ok(
        "1.27",
        &["create", "job", "manual-old", "--from=cronjob/nightly"],
    );
    wait_finished(&s, "manual-old", "Complete", 30);
    assert!(get(&s, &format!("{JOBS}/manual-2")).is_some());
    let st =
        get(&s, "/apis/batch/v1/namespaces/default/cronjobs/nightly").unwrap()["status"].clone();
    assert!(st["lastSuccessfulTime"].is_string(), "{st}");
    assert!(st["lastScheduleTime"].is_null(), "{st}");
}

#[test]
fn pod_gc_removes_pods_of_a_deleted_node() {
    let s = Server::start();
    let mut nodes = SimNodes::start(&s, "gone", 1, &[]);
    let rs_pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stranded"},
        "spec": {"nodeName": "gone-0", "containers": [{"name": "c", "image": "nginx"}]}});
    s.create(PODS, rs_pod);
    eventually("pod running", Duration::from_secs(20), || {
        (get(&s, &format!("{PODS}/stranded"))?["status"]["phase"] == "Running").then_some(())
    });
    nodes.stop();
    s.kubectl_ok("1.33", &["delete", "node", "gone-0"]);
    gone(
        &s,
        &format!("{PODS}/stranded"),
        "pod of a deleted node removed",
    );

    // Terminated pods beyond the threshold go, oldest first.
    let s = Server::start_with(&["--terminated-pod-gc-threshold", "2"]);
    let _nodes = SimNodes::start(&s, "node", 1, &["--run-time", "1s"]);
    for i in 0..4 {
        s.create(
            PODS,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("done-{i}")},
                "spec": {"restartPolicy": "Never", "nodeName": "node-0",
                    "containers": [{"name": "c", "image": "busybox"}]}}),
        );
    }
    eventually(
        "only the threshold of terminated pods kept",
        Duration::from_secs(40),
        || {
            let names: Vec<String> = (0..4)
                .filter(|i| get(&s, &format!("{PODS}/done-{i}")).is_some())
                .map(|i| format!("done-{i}"))
                .collect();
            (names == ["done-2", "done-3"]).then_some(())
        },
    );
}

#[test]
fn job_deadline_and_suspension() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 1, &["--run-time", "60s"]);
    // Pods that would run for a minute against a two-second deadline.
    s.create(
        JOBS,
        job(
            "late",
            json!({"activeDeadlineSeconds": 2, "parallelism": 2, "completions": 4}),
            json!({}),
        ),
    );
    let j = wait_finished(&s, "late", "Failed", 30);
    let failed = condition(&j, "Failed").unwrap();
    assert_eq!(failed["reason"], "DeadlineExceeded");
    assert_eq!(
        failed["message"],
        "Job was active longer than specified deadline"
    );
    assert!(condition(&j, "FailureTarget").is_some());
    assert_eq!(j["status"]["failed"], 2, "{}", j["status"]);
    eventually("the running pods deleted", Duration::from_secs(20), || {
        pods_of(&s, "late").is_empty().then_some(())
    });

    // A suspended job makes no pods until it is resumed.
    s.create(JOBS, job("held", json!({"suspend": true}), json!({})));
    let j = eventually("Suspended condition", Duration::from_secs(20), || {
        let j = get(&s, &format!("{JOBS}/held"))?;
        condition(&j, "Suspended").is_some().then_some(j)
    });
    assert_eq!(
        condition(&j, "Suspended").unwrap()["reason"],
        "JobSuspended"
    );
    assert!(j["status"]["startTime"].is_null(), "{}", j["status"]);
    assert!(pods_of(&s, "held").is_empty());
    s.kubectl_ok(
        "1.33",
        &[
            "patch",
            "job",
            "held",
            "--type=merge",
            "-p",
            r#"{"spec":{"suspend":false}}"#,
        ],
    );
    let j = eventually("resumed with a pod", Duration::from_secs(20), || {
        let j = get(&s, &format!("{JOBS}/held"))?;
        (j["status"]["active"] == 1).then_some(j)
    });
    let c = j["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Suspended")
        .unwrap();
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "JobResumed");
    assert!(j["status"]["startTime"].is_string());
    let reasons = event_reasons(&s, "held");
    assert!(reasons.iter().any(|r| r == "Suspended"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "Resumed"), "{reasons:?}");
}

#[test]
fn deleting_a_deployment_cascades_through_its_replicasets() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 2, &[]);
    let count = |path: &str| -> usize {
        let (_, text) = s.curl("GET", path, None, None);
        parse(&text)["items"].as_array().map_or(0, |a| a.len())
    };
    let rs_of = |app: &str| {
        format!("/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3D{app}")
    };
    let pods_of_app = |app: &str| format!("{PODS}?labelSelector=app%3D{app}");
    for app in ["fg", "orph"] {
        s.kubectl_ok(
            "1.33",
            &["create", "deployment", app, "--image=nginx", "--replicas=2"],
        );
        eventually("deployment pods", Duration::from_secs(30), || {
            (count(&pods_of_app(app)) == 2).then_some(())
        });
    }
    // Foreground: kubectl waits until the deployment is gone, and by then so are its
    // ReplicaSet and pods.
    s.kubectl_ok(
        "1.33",
        &[
            "delete",
            "deployment",
            "fg",
            "--cascade=foreground",
            "--timeout=45s",
        ],
    );
    assert_eq!(count(&rs_of("fg")), 0);
    assert_eq!(count(&pods_of_app("fg")), 0);

    // Orphan (kubectl 1.27): the ReplicaSet stays, without its owner, and keeps its pods.
    s.kubectl_ok(
        "1.27",
        &["delete", "deployment", "orph", "--cascade=orphan"],
    );
    gone(
        &s,
        "/apis/apps/v1/namespaces/default/deployments/orph",
        "orphaning deployment deleted",
    );
    let (_, text) = s.curl("GET", &rs_of("orph"), None, None);
    let rs = parse(&text)["items"][0].clone();
    assert!(
        rs["metadata"]["ownerReferences"].is_null(),
        "{}",
        rs["metadata"]
    );
    assert_eq!(count(&pods_of_app("orph")), 2);
}
