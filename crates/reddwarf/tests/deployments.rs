//! The Deployment and ReplicaSet controllers against the real binary, with simulated kubelets
//! (`reddwarf sim-nodes`) making scheduled pods Running and Ready, driven by real kubectl.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, name_set, pod_ready, Server, SimNodes};
use serde_json::Value;

const NS: &str = "default";

fn deployment(name: &str, replicas: i32, image: &str, strategy: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
{strategy}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: main
        image: {image}
"
    )
}

fn get(s: &Server, path: &str) -> Value {
    s.api_get(path)
}

fn deploy_json(s: &Server, name: &str) -> Value {
    get(
        s,
        &format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}"),
    )
}

/// The deployment's ReplicaSets (by the selector label), name → object.
fn replica_sets(s: &Server, app: &str) -> BTreeMap<String, Value> {
    get(
        s,
        &format!("/apis/apps/v1/namespaces/{NS}/replicasets?labelSelector=app%3D{app}"),
    )["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rs| {
            (
                rs["metadata"]["name"].as_str().unwrap().to_string(),
                rs.clone(),
            )
        })
        .collect()
}

fn pods(s: &Server, selector: &str) -> Vec<Value> {
    get(
        s,
        &format!("/api/v1/namespaces/{NS}/pods?labelSelector={selector}"),
    )["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn live(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
}

fn annotation(o: &Value, key: &str) -> String {
    o["metadata"]["annotations"][key]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn condition(o: &Value, type_: &str) -> (String, String) {
    o["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .unwrap_or_default()
}

fn events(s: &Server, kind: &str, name: &str) -> Vec<(String, String)> {
    get(
        s,
        &format!(
            "/api/v1/namespaces/{NS}/events?fieldSelector=involvedObject.kind%3D{kind},involvedObject.name%3D{name}"
        ),
    )["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// What a pod watch saw: the most live pods and the fewest live ready pods at any moment.
#[derive(Default)]
struct Observed {
    pods: HashMap<String, (bool, bool)>,
    max_live: usize,
    min_live_ready: usize,
    events: usize,
    names: BTreeSet<String>,
}

/// Changes the image of `deployment/<name>` (pods labelled `app=<name>`) while watching its
/// pods, waits until `replicas` pods run `image`, and returns what the watch saw.
fn set_image_watched(s: &Server, name: &str, image: &str, replicas: usize) -> Arc<Mutex<Observed>> {
    let selector = format!("app%3D{name}");
    let watch = PodWatch::start(s, &selector);
    s.kubectl_ok(
        "1.33",
        &[
            "set",
            "image",
            &format!("deployment/{name}"),
            &format!("main={image}"),
        ],
    );
    s.kubectl_ok(
        "1.33",
        &[
            "rollout",
            "status",
            &format!("deployment/{name}"),
            "--timeout=40s",
        ],
    );
    eventually(
        &format!("{replicas} pods on {image}"),
        Duration::from_secs(20),
        || {
            let ps = pods(s, &selector);
            (ps.len() == replicas && images_of(s, &selector) == BTreeSet::from([image.to_string()]))
                .then_some(())
        },
    );
    watch.stop()
}

/// Watches pods matching `selector` (from a list's resourceVersion, so every change is seen
/// in order) and keeps the extremes of live and ready counts.
struct PodWatch {
    child: Child,
    seen: Arc<Mutex<Observed>>,
}

impl PodWatch {
    fn start(s: &Server, selector: &str) -> PodWatch {
        let list = get(
            s,
            &format!("/api/v1/namespaces/{NS}/pods?labelSelector={selector}"),
        );
        let mut o = Observed::default();
        for p in list["items"].as_array().unwrap() {
            let name = p["metadata"]["name"].as_str().unwrap().to_string();
            o.pods.insert(name, (live(p), pod_ready(p)));
        }
        o.max_live = o.pods.values().filter(|(l, _)| *l).count();
        o.min_live_ready = o.pods.values().filter(|(l, r)| *l && *r).count();
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        let mut child = s
            .curl_cmd()
            .arg("-N")
            .arg(format!(
                "{}/api/v1/namespaces/{NS}/pods?watch=1&labelSelector={selector}&resourceVersion={rv}",
                s.url
            ))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("curl watch");
        let out = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(o));
        let shared = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let Ok(ev) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let p = &ev["object"];
                let Some(name) = p["metadata"]["name"].as_str() else {
                    continue;
                };
                let mut o = shared.lock().unwrap();
                if ev["type"] == "DELETED" {
                    o.pods.remove(name);
                } else {
                    o.pods.insert(name.to_string(), (live(p), pod_ready(p)));
                }
                o.names.insert(name.to_string());
                o.events += 1;
                let l = o.pods.values().filter(|(l, _)| *l).count();
                let r = o.pods.values().filter(|(l, r)| *l && *r).count();
                o.max_live = o.max_live.max(l);
                o.min_live_ready = o.min_live_ready.min(r);
            }
        });
        PodWatch { child, seen }
    }

    fn stop(mut self) -> Arc<Mutex<Observed>> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.seen.clone()
    }
}

fn images_of(s: &Server, selector: &str) -> BTreeSet<String> {
    pods(s, selector)
        .iter()
        .filter(|p| live(p))
        .map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn rolling_update_respects_surge_and_unavailability_then_history_and_undo() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 3, &[]);
    let strategy = "  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0";
    s.apply(&deployment("web", 5, "nginx:1.25", strategy));
    let out = s.kubectl_ok(
        "1.33",
        &["rollout", "status", "deployment/web", "--timeout=40s"],
    );
    assert!(out.contains("successfully rolled out"), "{out}");

    let d = deploy_json(&s, "web");
    let st = &d["status"];
    for f in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        assert_eq!(st[f], 5, "{f}: {d}");
    }
    assert!(st["unavailableReplicas"].is_null(), "{d}");
    assert_eq!(st["observedGeneration"], d["metadata"]["generation"]);
    assert_eq!(
        condition(&d, "Available"),
        ("True".into(), "MinimumReplicasAvailable".into())
    );
    assert_eq!(
        condition(&d, "Progressing"),
        ("True".into(), "NewReplicaSetAvailable".into())
    );
    assert_eq!(
        annotation(&d, "deployment.kubernetes.io/revision"),
        "1",
        "{d}\n{}",
        s.log()
    );

    let sets = replica_sets(&s, "web");
    assert_eq!(sets.len(), 1, "{sets:?}");
    let (first_name, first) = sets.into_iter().next().unwrap();
    let hash = first["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(first_name, format!("web-{hash}"));
    assert_eq!(
        first["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash.as_str()
    );
    assert_eq!(
        first["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
        hash.as_str()
    );
    assert_eq!(annotation(&first, "deployment.kubernetes.io/revision"), "1");
    assert_eq!(
        annotation(&first, "deployment.kubernetes.io/desired-replicas"),
        "5"
    );
    assert_eq!(
        annotation(&first, "deployment.kubernetes.io/max-replicas"),
        "6"
    );
    assert_eq!(
        first["metadata"]["ownerReferences"][0]["kind"],
        "Deployment"
    );
    assert_eq!(first["metadata"]["ownerReferences"][0]["controller"], true);
    let ready_pods = pods(&s, "app%3Dweb");
    assert_eq!(ready_pods.len(), 5);
    assert!(ready_pods.iter().all(|p| pod_ready(p)
        && p["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{first_name}-"))));
    assert!(
        events(&s, "Deployment", "web").contains(&(
            "ScalingReplicaSet".into(),
            format!("Scaled up replica set {first_name} from 0 to 5")
        )),
        "{:?}",
        events(&s, "Deployment", "web")
    );

    // A new template rolls through a second set, one surge pod at a time, never losing a
    // ready pod: watched event by event.
    let watch = PodWatch::start(&s, "app%3Dweb");
    s.kubectl_ok(
        "1.33",
        &["set", "image", "deployment/web", "main=nginx:1.26"],
    );
    s.kubectl_ok(
        "1.33",
        &["rollout", "status", "deployment/web", "--timeout=40s"],
    );
    eventually("only new pods left", Duration::from_secs(20), || {
        let ps = pods(&s, "app%3Dweb");
        (ps.len() == 5
            && ps
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.26"))
        .then_some(())
    });
    let seen = watch.stop();
    let seen = seen.lock().unwrap();
    assert!(
        seen.names.len() >= 10,
        "the watch saw the rollout: {} pods",
        seen.names.len()
    );
    assert!(
        seen.max_live <= 6,
        "maxSurge=1 exceeded: {} live pods",
        seen.max_live
    );
    assert!(
        seen.min_live_ready >= 5,
        "maxUnavailable=0 violated: {} ready",
        seen.min_live_ready
    );
    drop(seen);

    let sets = replica_sets(&s, "web");
    assert_eq!(sets.len(), 2, "{sets:?}");
    let (second_name, second) = sets
        .iter()
        .find(|(n, _)| **n != first_name)
        .map(|(n, v)| (n.clone(), v.clone()))
        .unwrap();
    assert_eq!(second["spec"]["replicas"], 5);
    assert_eq!(sets[&first_name]["spec"]["replicas"], 0);
    assert_eq!(
        annotation(&second, "deployment.kubernetes.io/revision"),
        "2"
    );
    let d = deploy_json(&s, "web");
    assert_eq!(annotation(&d, "deployment.kubernetes.io/revision"), "2");
    let evs = events(&s, "Deployment", "web");
    for m in [
        format!("Scaled up replica set {second_name} from 0 to 1"),
        format!("Scaled down replica set {first_name} from 5 to 4"),
        format!("Scaled down replica set {first_name} from 1 to 0"),
    ] {
        assert!(
            evs.contains(&("ScalingReplicaSet".into(), m.clone())),
            "{m}: {evs:?}"
        );
    }

    let history = s.kubectl_ok("1.33", &["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, vec!["1", "2"], "{history}");
    // The deployment's annotations are copied to its current set: CHANGE-CAUSE.
    s.kubectl_ok(
        "1.33",
        &[
            "annotate",
            "deployment/web",
            "kubernetes.io/change-cause=image 1.26",
        ],
    );
    eventually("change-cause in history", Duration::from_secs(20), || {
        let h = s.kubectl_ok("1.33", &["rollout", "history", "deployment/web"]);
        h.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["2", "image", "1.26"])
            .then_some(())
    });

    // undo: kubectl copies revision 1's template back; the controller reuses that set and
    // gives it revision 3.
    s.kubectl_ok("1.33", &["rollout", "undo", "deployment/web"]);
    s.kubectl_ok(
        "1.27",
        &["rollout", "status", "deployment/web", "--timeout=40s"],
    );
    eventually("pods back on nginx:1.25", Duration::from_secs(20), || {
        let ps = pods(&s, "app%3Dweb");
        (ps.len() == 5 && images_of(&s, "app%3Dweb") == BTreeSet::from(["nginx:1.25".to_string()]))
            .then_some(())
    });
    let sets = replica_sets(&s, "web");
    assert_eq!(sets.len(), 2, "no third set: {sets:?}");
    assert_eq!(sets[&first_name]["spec"]["replicas"], 5);
    assert_eq!(
        annotation(&sets[&first_name], "deployment.kubernetes.io/revision"),
        "3"
    );
    assert_eq!(
        annotation(
            &sets[&first_name],
            "deployment.kubernetes.io/revision-history"
        ),
        "1"
    );
    assert_eq!(
        annotation(&deploy_json(&s, "web"), "deployment.kubernetes.io/revision"),
        "3"
    );
    let history = s.kubectl_ok("1.33", &["rollout", "history", "deployment/web"]);
    assert!(
        history.contains("2 ") && history.contains("3 ") && !history.contains("\n1 "),
        "{history}"
    );

    // kubectl 1.27's undo to an explicit revision works the same way.
    s.kubectl_ok(
        "1.27",
        &["rollout", "undo", "deployment/web", "--to-revision=2"],
    );
    s.kubectl_ok(
        "1.27",
        &["rollout", "status", "deployment/web", "--timeout=40s"],
    );
    eventually("pods back on nginx:1.26", Duration::from_secs(20), || {
        (images_of(&s, "app%3Dweb") == BTreeSet::from(["nginx:1.26".to_string()])).then_some(())
    });
    let sets = replica_sets(&s, "web");
    assert_eq!(
        annotation(&sets[&second_name], "deployment.kubernetes.io/revision"),
        "4"
    );
}

#[test]
fn pause_resume_scale_restart_and_recreate() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 2, &[]);
    s.apply(&deployment("api", 3, "api:1", ""));
    s.kubectl_ok(
        "1.33",
        &["rollout", "status", "deployment/api", "--timeout=40s"],
    );

    // Paused: a template change makes no new set; scaling still applies to the current one.
    s.kubectl_ok("1.33", &["rollout", "pause", "deployment/api"]);
    s.kubectl_ok("1.33", &["set", "image", "deployment/api", "main=api:2"]);
    eventually(
        "Progressing DeploymentPaused",
        Duration::from_secs(20),
        || {
            let d = deploy_json(&s, "api");
            (condition(&d, "Progressing") == ("Unknown".into(), "DeploymentPaused".into())
                && d["status"]["observedGeneration"] == d["metadata"]["generation"])
                .then_some(())
        },
    );
    s.kubectl_ok("1.33", &["scale", "deployment/api", "--replicas=4"]);
    eventually(
        "4 pods of the paused template",
        Duration::from_secs(20),
        || {
            let ps: Vec<Value> = pods(&s, "app%3Dapi").into_iter().filter(live).collect();
            (ps.len() == 4 && ps.iter().filter(|p| pod_ready(p)).count() == 4).then_some(())
        },
    );
    assert_eq!(replica_sets(&s, "api").len(), 1, "no rollout while paused");
    assert_eq!(
        images_of(&s, "app%3Dapi"),
        BTreeSet::from(["api:1".to_string()])
    );

    s.kubectl_ok("1.33", &["rollout", "resume", "deployment/api"]);
    s.kubectl_ok(
        "1.33",
        &["rollout", "status", "deployment/api", "--timeout=40s"],
    );
    eventually("4 pods on api:2", Duration::from_secs(20), || {
        let ps: Vec<Value> = pods(&s, "app%3Dapi").into_iter().filter(live).collect();
        (ps.len() == 4 && images_of(&s, "app%3Dapi") == BTreeSet::from(["api:2".to_string()]))
            .then_some(())
    });
    assert_eq!(replica_sets(&s, "api").len(), 2);

    // restart: a new set whose template carries kubectl's restartedAt annotation.
    s.kubectl_ok("1.33", &["rollout", "restart", "deployment/api"]);
    s.kubectl_ok(
        "1.33",
        &["rollout", "status", "deployment/api", "--timeout=40s"],
    );
    let sets = replica_sets(&s, "api");
    assert_eq!(sets.len(), 3);
    let newest = sets
        .values()
        .find(|rs| annotation(rs, "deployment.kubernetes.io/revision") == "3")
        .expect("revision 3");
    assert!(!newest["spec"]["template"]["metadata"]["annotations"]
        ["kubectl.kubernetes.io/restartedAt"]
        .is_null());
    assert_eq!(newest["spec"]["replicas"], 4);

    // Recreate with revisionHistoryLimit 1: old pods are gone before new ones appear, and only
    // one old set is kept.
    s.kubectl_ok(
        "1.33",
        &[
            "patch",
            "deployment/api",
            "--type=merge",
            "-p",
            r#"{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null},"revisionHistoryLimit":1}}"#,
        ],
    );
    s.kubectl_ok(
        "1.33",
        &["rollout", "status", "deployment/api", "--timeout=40s"],
    );
    let seen = set_image_watched(&s, "api", "api:3", 4);
    assert!(
        seen.lock().unwrap().max_live <= 4,
        "Recreate never runs old and new together"
    );
    eventually(
        "history trimmed to one old set",
        Duration::from_secs(20),
        || (replica_sets(&s, "api").len() == 2).then_some(()),
    );
}

#[test]
fn progress_deadline_exceeded_is_reported() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 1, &[]);
    // Pods that can never be scheduled: no progress.
    let mut manifest = deployment("stuck", 2, "x:1", "  progressDeadlineSeconds: 2");
    manifest.push_str("      nodeSelector:\n        nowhere: \"true\"\n");
    s.apply(&manifest);
    let out = s.kubectl(
        "1.33",
        &["rollout", "status", "deployment/stuck", "--timeout=30s"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exceeded its progress deadline"), "{err}");
    let d = deploy_json(&s, "stuck");
    assert_eq!(
        condition(&d, "Progressing"),
        ("False".into(), "ProgressDeadlineExceeded".into())
    );
    assert_eq!(
        condition(&d, "Available"),
        ("False".into(), "MinimumReplicasUnavailable".into())
    );
    assert_eq!(d["status"]["unavailableReplicas"], 2, "{d}");
}

fn replica_set(name: &str, replicas: i32) -> String {
    format!(
        "apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      tier: {name}
  template:
    metadata:
      labels:
        tier: {name}
    spec:
      containers:
      - name: c
        image: busybox
"
    )
}

/// The current UTC time as an RFC 3339 string with seconds (compares as text).
fn utc_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn owner(p: &Value) -> String {
    p["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["controller"] == true))
        .and_then(|r| r["name"].as_str())
        .unwrap_or("")
        .to_string()
}

#[test]
fn replica_set_replaces_adopts_releases_and_scales_down_the_right_pods() {
    let s = Server::start();
    // One node, so every pod shares it and node spreading plays no part in the order.
    let _nodes = SimNodes::start(&s, "node", 1, &[]);

    // An orphan that matches is adopted instead of creating a third pod.
    s.apply("apiVersion: v1\nkind: Pod\nmetadata:\n  name: lonely\n  labels:\n    tier: fe\nspec:\n  containers:\n  - name: c\n    image: busybox\n");
    s.apply(&replica_set("fe", 3));
    let ps = eventually("3 ready fe pods", Duration::from_secs(20), || {
        let ps: Vec<Value> = pods(&s, "tier%3Dfe").into_iter().filter(live).collect();
        (ps.len() == 3 && ps.iter().all(pod_ready) && ps.iter().all(|p| owner(p) == "fe"))
            .then_some(ps)
    });
    assert!(name_set(&ps).contains("lonely"), "{:?}", name_set(&ps));
    // The status follows the pods (each pod change is another sync).
    let rs = eventually("fe status caught up", Duration::from_secs(20), || {
        let rs = get(&s, &format!("/apis/apps/v1/namespaces/{NS}/replicasets/fe"));
        (rs["status"]["availableReplicas"] == 3).then_some(rs)
    });
    let st = &rs["status"];
    for f in [
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        assert_eq!(st[f], 3, "{f}: {rs}");
    }
    assert_eq!(st["observedGeneration"], rs["metadata"]["generation"]);
    let evs = events(&s, "ReplicaSet", "fe");
    let created: Vec<&(String, String)> = evs
        .iter()
        .filter(|(r, _)| r == "SuccessfulCreate")
        .collect();
    assert_eq!(created.len(), 2, "{evs:?}");
    assert!(
        created
            .iter()
            .all(|(_, m)| m.starts_with("Created pod: fe-")),
        "{evs:?}"
    );

    // A deleted pod is replaced.
    let victim = ps
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .find(|n| n != "lonely")
        .unwrap();
    s.kubectl_ok("1.33", &["delete", "pod", &victim, "--wait=false"]);
    eventually("replacement pod", Duration::from_secs(20), || {
        let ps: Vec<Value> = pods(&s, "tier%3Dfe").into_iter().filter(live).collect();
        (ps.len() == 3 && !name_set(&ps).contains(&victim) && ps.iter().all(pod_ready))
            .then_some(())
    });

    // A pod relabelled out of the selector is released and replaced.
    s.kubectl_ok(
        "1.33",
        &["label", "pod", "lonely", "tier=gone", "--overwrite"],
    );
    eventually(
        "lonely released and replaced",
        Duration::from_secs(20),
        || {
            let lonely = get(&s, &format!("/api/v1/namespaces/{NS}/pods/lonely"));
            let ps: Vec<Value> = pods(&s, "tier%3Dfe").into_iter().filter(live).collect();
            (owner(&lonely).is_empty() && ps.len() == 3).then_some(())
        },
    );

    // Scale-down order: an unscheduled pod goes first, then an assigned-but-not-ready one,
    // and ready pods stay.
    s.apply(&replica_set("be", 2));
    let ready_be = eventually("2 ready be pods", Duration::from_secs(20), || {
        let ps: Vec<Value> = pods(&s, "tier%3Dbe").into_iter().filter(live).collect();
        (ps.len() == 2 && ps.iter().all(pod_ready)).then_some(name_set(&ps))
    });
    // Readiness times have one-second resolution: let the next pods become ready in a later
    // second than these.
    let latest_ready = pods(&s, "tier%3Dbe")
        .iter()
        .filter_map(|p| {
            p["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready")?["lastTransitionTime"]
                .as_str()
                .map(str::to_string)
        })
        .max()
        .unwrap();
    eventually("a later second", Duration::from_secs(5), || {
        (utc_now() > latest_ready).then_some(())
    });
    s.kubectl_ok("1.33", &["scale", "rs/be", "--replicas=4"]);
    eventually("4 be pods", Duration::from_secs(20), || {
        let ps: Vec<Value> = pods(&s, "tier%3Dbe").into_iter().filter(live).collect();
        (ps.len() == 4 && ps.iter().all(pod_ready)).then_some(())
    });
    s.kubectl_ok("1.33", &["scale", "rs/be", "--replicas=2"]);
    eventually("back to 2 be pods", Duration::from_secs(20), || {
        let ps: Vec<Value> = pods(&s, "tier%3Dbe").into_iter().filter(live).collect();
        (ps.len() == 2).then_some(())
    });
    // Equal ready pods: the most recently ready (the two added) go, the originals stay.
    let left: BTreeSet<String> = pods(&s, "tier%3Dbe")
        .into_iter()
        .filter(live)
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ready_be, "newer pods deleted first");

    s.apply("apiVersion: v1\nkind: Pod\nmetadata:\n  name: unscheduled\n  labels:\n    tier: be2\nspec:\n  nodeSelector:\n    nowhere: \"true\"\n  containers:\n  - name: c\n    image: busybox\n");
    s.apply("apiVersion: v1\nkind: Pod\nmetadata:\n  name: not-ready\n  labels:\n    tier: be2\nspec:\n  nodeName: no-kubelet\n  containers:\n  - name: c\n    image: busybox\n");
    s.apply(&replica_set("be2", 4));
    eventually(
        "be2 adopts both and adds 2",
        Duration::from_secs(20),
        || {
            let ps: Vec<Value> = pods(&s, "tier%3Dbe2").into_iter().filter(live).collect();
            (ps.len() == 4
                && ps.iter().all(|p| owner(p) == "be2")
                && ps.iter().filter(|p| pod_ready(p)).count() == 2)
                .then_some(())
        },
    );
    s.kubectl_ok("1.33", &["scale", "rs/be2", "--replicas=3"]);
    eventually(
        "the unscheduled pod goes first",
        Duration::from_secs(20),
        || {
            let ps: Vec<Value> = pods(&s, "tier%3Dbe2").into_iter().filter(live).collect();
            (ps.len() == 3 && !name_set(&ps).contains("unscheduled")).then_some(())
        },
    );
    assert!(name_set(&pods(&s, "tier%3Dbe2")).contains("not-ready"));
    s.kubectl_ok("1.33", &["scale", "rs/be2", "--replicas=2"]);
    eventually("then the not-ready one", Duration::from_secs(20), || {
        let ps: Vec<Value> = pods(&s, "tier%3Dbe2").into_iter().filter(live).collect();
        (ps.len() == 2 && !name_set(&ps).contains("not-ready") && ps.iter().all(pod_ready))
            .then_some(())
    });
    let evs = events(&s, "ReplicaSet", "be2");
    assert!(
        evs.contains(&("SuccessfulDelete".into(), "Deleted pod: unscheduled".into())),
        "{evs:?}"
    );
}

#[test]
fn deployment_adopts_a_replica_set_with_its_template_instead_of_creating_one() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 1, &[]);
    let template = "  template:\n    metadata:\n      labels:\n        app: legacy\n    spec:\n      containers:\n      - name: main\n        image: legacy:1\n";
    s.apply(&format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: legacy-rs\n  labels:\n    app: legacy\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: legacy\n{template}"
    ));
    let before = eventually("2 ready legacy pods", Duration::from_secs(20), || {
        let ps: Vec<Value> = pods(&s, "app%3Dlegacy").into_iter().filter(live).collect();
        (ps.len() == 2 && ps.iter().all(pod_ready)).then_some(name_set(&ps))
    });
    s.apply(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: legacy\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: legacy\n{template}"
    ));
    s.kubectl_ok(
        "1.33",
        &["rollout", "status", "deployment/legacy", "--timeout=30s"],
    );
    let sets = replica_sets(&s, "legacy");
    assert_eq!(
        sets.keys().collect::<Vec<_>>(),
        vec!["legacy-rs"],
        "no new set"
    );
    let rs = &sets["legacy-rs"];
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert_eq!(rs["metadata"]["ownerReferences"][0]["name"], "legacy");
    assert_eq!(annotation(rs, "deployment.kubernetes.io/revision"), "1");
    let after: BTreeSet<String> = pods(&s, "app%3Dlegacy")
        .into_iter()
        .filter(live)
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(after, before, "the adopted set's pods are kept");
    let d = deploy_json(&s, "legacy");
    assert_eq!(
        condition(&d, "Progressing").1,
        "NewReplicaSetAvailable",
        "{d}"
    );
    assert_eq!(annotation(&d, "deployment.kubernetes.io/revision"), "1");
}

#[test]
fn percentages_round_as_upstream_and_zero_zero_means_one_unavailable() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 2, &[]);
    // Defaults (25%/25%) on 3 replicas: surge rounds up to 1, unavailability down to 0.
    s.apply(&deployment("dflt", 3, "d:1", ""));
    s.kubectl_ok(
        "1.33",
        &["rollout", "status", "deployment/dflt", "--timeout=30s"],
    );
    let sets = replica_sets(&s, "dflt");
    let rs = sets.values().next().unwrap();
    assert_eq!(annotation(rs, "deployment.kubernetes.io/max-replicas"), "4");

    // 0% surge and 10% of 3 unavailable: both round to 0, so one pod may be unavailable and
    // none may surge.
    let strategy = "  strategy:\n    rollingUpdate:\n      maxSurge: 0%\n      maxUnavailable: 10%";
    s.apply(&deployment("tight", 3, "t:1", strategy));
    s.kubectl_ok(
        "1.33",
        &["rollout", "status", "deployment/tight", "--timeout=30s"],
    );
    let rs = replica_sets(&s, "tight").into_values().next().unwrap();
    assert_eq!(
        annotation(&rs, "deployment.kubernetes.io/max-replicas"),
        "3"
    );
    let seen = set_image_watched(&s, "tight", "t:2", 3);
    let seen = seen.lock().unwrap();
    assert!(seen.names.len() >= 6, "the watch saw the rollout");
    assert!(seen.max_live <= 3, "no surge: {} live", seen.max_live);
    assert!(
        seen.min_live_ready >= 2,
        "one unavailable at most: {} ready",
        seen.min_live_ready
    );
}

#[test]
fn scaling_during_a_stuck_rollout_is_proportional() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 2, &[]);
    // Upstream's documented example: 10 replicas, maxSurge 3, maxUnavailable 2.
    let strategy = "  strategy:\n    rollingUpdate:\n      maxSurge: 3\n      maxUnavailable: 2";
    s.apply(&deployment("prop", 10, "p:1", strategy));
    s.kubectl_ok(
        "1.33",
        &["rollout", "status", "deployment/prop", "--timeout=30s"],
    );
    let first = replica_sets(&s, "prop").into_keys().next().unwrap();
    // A template whose pods never schedule: the rollout stops at old 8 / new 5.
    s.kubectl_ok(
        "1.33",
        &[
            "patch",
            "deployment/prop",
            "-p",
            r#"{"spec":{"template":{"spec":{"nodeSelector":{"nowhere":"true"}}}}}"#,
        ],
    );
    let sizes = |s: &Server| -> (i64, i64) {
        let sets = replica_sets(s, "prop");
        let old = sets[&first]["spec"]["replicas"].as_i64().unwrap();
        let new = sets
            .iter()
            .find(|(n, _)| **n != first)
            .map(|(_, rs)| rs["spec"]["replicas"].as_i64().unwrap())
            .unwrap_or(0);
        (old, new)
    };
    eventually("old 8 / new 5", Duration::from_secs(20), || {
        (sizes(&s) == (8, 5)).then_some(())
    });
    // Scaling to 15 spreads the 5 extra replicas by size: 3 to the old set, 2 to the new.
    s.kubectl_ok("1.33", &["scale", "deployment/prop", "--replicas=15"]);
    eventually("old 11 / new 7", Duration::from_secs(20), || {
        (sizes(&s) == (11, 7)).then_some(())
    });
    let sets = replica_sets(&s, "prop");
    for rs in sets.values() {
        assert_eq!(
            annotation(rs, "deployment.kubernetes.io/desired-replicas"),
            "15"
        );
        assert_eq!(
            annotation(rs, "deployment.kubernetes.io/max-replicas"),
            "18"
        );
    }
    // 11 old pods available, 15 - 2 required: not minimally available.
    eventually(
        "11 available, Available=False",
        Duration::from_secs(20),
        || {
            let d = deploy_json(&s, "prop");
            (d["status"]["availableReplicas"] == 11
                && condition(&d, "Available")
                    == ("False".into(), "MinimumReplicasUnavailable".into()))
                .then_some(())
        },
    );
}

/// The ReplicaSet controller reads pods from a cache that lags its own writes; while 300
/// replicas start (hundreds of pod events, each a sync), it must create exactly 300 pods and
/// delete none (upstream's expectations), then scale down by exactly the difference.
#[test]
fn a_large_replica_set_creates_exactly_its_replicas_while_its_cache_lags() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 4, &[]);
    s.apply(&replica_set("big", 300));
    eventually("300 ready big pods", Duration::from_secs(120), || {
        let ps: Vec<Value> = pods(&s, "tier%3Dbig").into_iter().filter(live).collect();
        (ps.len() == 300 && ps.iter().all(pod_ready)).then_some(())
    });
    let rs = eventually("big status caught up", Duration::from_secs(30), || {
        let rs = get(
            &s,
            &format!("/apis/apps/v1/namespaces/{NS}/replicasets/big"),
        );
        (rs["status"]["readyReplicas"] == 300).then_some(rs)
    });
    assert_eq!(rs["status"]["replicas"], 300, "{rs}");
    let count = |reason: &str| {
        events(&s, "ReplicaSet", "big")
            .iter()
            .filter(|(r, _)| r == reason)
            .count()
    };
    // Events are written behind the controller's back: wait for the last of them.
    eventually("300 creation events", Duration::from_secs(30), || {
        (count("SuccessfulCreate") >= 300).then_some(())
    });
    assert_eq!(count("SuccessfulCreate"), 300);
    assert_eq!(count("SuccessfulDelete"), 0);
    assert_eq!(
        pods(&s, "tier%3Dbig").len(),
        300,
        "no pod beyond the replicas"
    );

    s.kubectl_ok("1.33", &["scale", "replicaset", "big", "--replicas=120"]);
    eventually("120 big pods", Duration::from_secs(60), || {
        let n = pods(&s, "tier%3Dbig").into_iter().filter(live).count();
        (n == 120).then_some(())
    });
    eventually("180 deletion events", Duration::from_secs(30), || {
        (count("SuccessfulDelete") >= 180).then_some(())
    });
    assert_eq!(count("SuccessfulDelete"), 180);
    assert_eq!(count("SuccessfulCreate"), 300);
}
