//! The scheduler and node lifecycle against the real binary, with simulated kubelets
//! (`reddwarf sim-nodes`) standing in for nodes.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{eventually, Server, SimNodes};
use serde_json::Value;

fn pod(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: demo\nspec:\n  containers:\n  - name: c\n    image: nginx:1.27\n{extra}"
    )
}

fn node_of(s: &Server, name: &str) -> String {
    s.default_pod(name)["spec"]["nodeName"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn running_on(s: &Server, name: &str) -> Option<String> {
    let p = s.default_pod(name);
    (p["status"]["phase"] == "Running").then(|| p["spec"]["nodeName"].as_str().unwrap().to_string())
}

fn scheduled_condition(s: &Server, name: &str) -> Option<(String, String)> {
    let p = s.default_pod(name);
    p["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
}

#[test]
fn pods_spread_fit_and_explain_why_not() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 2, &[]);

    // Six equal pods on two equal nodes: 3 + 3 (least-allocated and balanced scoring).
    for i in 0..6 {
        s.apply(&pod(&format!("web-{i}"), ""));
    }
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..6 {
        let n = eventually(&format!("web-{i} Running"), Duration::from_secs(30), || {
            running_on(&s, &format!("web-{i}"))
        });
        *per_node.entry(n).or_default() += 1;
    }
    assert_eq!(
        per_node.values().copied().collect::<Vec<_>>(),
        vec![3, 3],
        "{per_node:?}"
    );
    let p = s.default_pod("web-0");
    let cond = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .unwrap();
    assert_eq!(cond["status"], "True", "{p}");

    // A pod that fits nowhere: upstream's condition and event.
    s.apply(&pod(
        "huge",
        "    resources:\n      requests:\n        cpu: \"100\"\n",
    ));
    let want = "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.";
    let (status, message) = eventually("huge unschedulable", Duration::from_secs(20), || {
        scheduled_condition(&s, "huge").filter(|(st, _)| st == "False")
    });
    assert_eq!((status.as_str(), message.as_str()), ("False", want));
    assert_eq!(
        s.default_pod("huge")["status"]["conditions"][0]["reason"],
        "Unschedulable"
    );
    let describe = eventually("FailedScheduling event", Duration::from_secs(20), || {
        let d = s.kubectl_ok("1.33", &["describe", "pod", "huge"]);
        d.contains("FailedScheduling").then_some(d)
    });
    assert!(describe.contains(want), "{describe}");
    assert!(describe.contains("default-scheduler"), "{describe}");

    // A node big enough appears: the pod is retried and lands there.
    let _big = SimNodes::start(&s, "big", 1, &["--cpu", "200"]);
    let n = eventually("huge Running on big-0", Duration::from_secs(30), || {
        running_on(&s, "huge")
    });
    assert_eq!(n, "big-0");
    let describe = s.kubectl_ok("1.33", &["describe", "pod", "huge"]);
    assert!(
        describe.contains("Successfully assigned default/huge to big-0"),
        "{describe}"
    );
}

#[test]
fn taints_selectors_affinity_and_ports() {
    let s = Server::start();
    let _plain = SimNodes::start(&s, "plain", 2, &["--label", "disk=hdd"]);
    let _tainted = SimNodes::start(
        &s,
        "infra",
        1,
        &[
            "--taint",
            "dedicated=infra:NoSchedule",
            "--label",
            "disk=ssd",
        ],
    );

    // Wants the tainted node without tolerating it.
    s.apply(&pod("picky", "  nodeSelector:\n    disk: ssd\n"));
    let want = "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    let (_, message) = eventually("picky unschedulable", Duration::from_secs(20), || {
        scheduled_condition(&s, "picky").filter(|(st, _)| st == "False")
    });
    assert_eq!(message, want);
    // Adding a toleration (allowed on a pod) makes it schedulable at once.
    let (code, body) = s.curl(
        "PATCH",
        "/api/v1/namespaces/default/pods/picky",
        Some("application/strategic-merge-patch+json"),
        Some(br#"{"spec":{"tolerations":[{"key":"dedicated","operator":"Equal","value":"infra","effect":"NoSchedule"}]}}"#),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        eventually("picky Running", Duration::from_secs(20), || running_on(
            &s, "picky"
        )),
        "infra-0"
    );

    // Ten pods without tolerations never land on the tainted node.
    for i in 0..10 {
        s.apply(&pod(&format!("free-{i}"), ""));
    }
    for i in 0..10 {
        let n = eventually("free Running", Duration::from_secs(30), || {
            running_on(&s, &format!("free-{i}"))
        });
        assert!(n.starts_with("plain-"), "free-{i} on {n}");
    }

    // Required node affinity by field (what DaemonSet pods use), and by expression.
    s.apply(&pod(
        "pinned",
        "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchFields:\n          - key: metadata.name\n            operator: In\n            values: [plain-1]\n",
    ));
    assert_eq!(
        eventually("pinned Running", Duration::from_secs(20), || running_on(
            &s, "pinned"
        )),
        "plain-1"
    );

    // Host ports: two pods wanting the same port on a one-node choice cannot share it.
    let hp = "    ports:\n    - containerPort: 80\n      hostPort: 8080\n  nodeSelector:\n    kubernetes.io/hostname: plain-0\n";
    s.apply(&pod("port-a", hp));
    eventually("port-a Running", Duration::from_secs(20), || {
        running_on(&s, "port-a")
    });
    s.apply(&pod("port-b", hp));
    let (_, message) = eventually("port-b unschedulable", Duration::from_secs(20), || {
        scheduled_condition(&s, "port-b").filter(|(st, _)| st == "False")
    });
    assert!(
        message.contains("1 node(s) didn't have free ports for the requested pod ports"),
        "{message}"
    );

    // Required anti-affinity on hostname: the second pod avoids the first one's node.
    let anti = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - topologyKey: kubernetes.io/hostname\n        labelSelector:\n          matchLabels:\n            team: solo\n";
    let solo = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    team: solo\nspec:\n  containers:\n  - name: c\n    image: nginx:1.27\n{anti}"
        )
    };
    s.apply(&solo("solo-a"));
    let a = eventually("solo-a Running", Duration::from_secs(20), || {
        running_on(&s, "solo-a")
    });
    s.apply(&solo("solo-b"));
    let b = eventually("solo-b Running", Duration::from_secs(20), || {
        running_on(&s, "solo-b")
    });
    assert_ne!(a, b);
    assert!(!node_of(&s, "solo-b").is_empty());

    // The scheduler's metrics move.
    let scheduled = s
        .metric(
            "scheduler_schedule_attempts_total{result=\"scheduled\",profile=\"default-scheduler\"}",
        )
        .unwrap_or(0);
    assert!(scheduled >= 14, "scheduled attempts {scheduled}");
}

#[test]
fn a_silent_node_goes_unknown_is_tainted_and_its_pods_are_evicted() {
    let s = Server::start_with(&[
        "--node-monitor-grace-period",
        "3s",
        "--default-unreachable-toleration-seconds",
        "2",
    ]);
    // A Node registered before its kubelet's first status is not judged (or tainted) until
    // it has been silent for the grace period.
    s.apply("apiVersion: v1\nkind: Node\nmetadata:\n  name: mute\n");
    let started = std::time::Instant::now();
    let mut doomed = SimNodes::start(&s, "doomed", 1, &[]);
    let _healthy = SimNodes::start(&s, "healthy", 1, &[]);
    let taints_of = |name: &str| -> Vec<String> {
        s.api_get(&format!("/api/v1/nodes/{name}"))["spec"]["taints"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| {
                        format!(
                            "{}:{}",
                            t["key"].as_str().unwrap(),
                            t["effect"].as_str().unwrap()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    // The controller checks every 375 ms here, so well within the 3 s grace it has looked.
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(started.elapsed()));
    if started.elapsed() < Duration::from_millis(2500) {
        assert_eq!(taints_of("mute"), Vec::<String>::new());
    }
    s.apply(&pod("victim", "  nodeName: doomed-0\n"));
    s.apply(&pod(
        "stayer",
        "  nodeName: doomed-0\n  tolerations:\n  - key: node.kubernetes.io/unreachable\n    operator: Exists\n    effect: NoExecute\n",
    ));
    let victim = s.default_pod("victim");
    let seconds: Vec<i64> = victim["spec"]["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["tolerationSeconds"].as_i64())
        .collect();
    assert_eq!(
        seconds,
        vec![300, 2],
        "DefaultTolerationSeconds from the flags"
    );
    eventually("victim Running", Duration::from_secs(20), || {
        running_on(&s, "victim")
    });

    doomed.stop();
    let node = eventually("doomed-0 Ready=Unknown", Duration::from_secs(20), || {
        let n = s.api_get("/api/v1/nodes/doomed-0");
        let ready = n["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")?
            .clone();
        (ready["status"] == "Unknown").then_some(n)
    });
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    let taints = eventually("unreachable taints", Duration::from_secs(20), || {
        let n = s.api_get("/api/v1/nodes/doomed-0");
        let t: Vec<String> = n["spec"]["taints"]
            .as_array()?
            .iter()
            .map(|t| {
                format!(
                    "{}:{}",
                    t["key"].as_str().unwrap(),
                    t["effect"].as_str().unwrap()
                )
            })
            .collect();
        (t.len() == 2).then_some(t)
    });
    assert!(
        taints.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string()),
        "{taints:?}"
    );
    assert!(
        taints.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string()),
        "{taints:?}"
    );
    // After its 2 s toleration the victim is evicted (terminating: its kubelet is gone);
    // the pod that tolerates unreachable forever stays.
    eventually("victim evicted", Duration::from_secs(20), || {
        s.default_pod("victim")["metadata"]["deletionTimestamp"]
            .is_string()
            .then_some(())
    });
    assert!(s.default_pod("stayer")["metadata"]["deletionTimestamp"].is_null());
    // New pods avoid the unreachable node.
    s.apply(&pod("newcomer", ""));
    assert_eq!(
        eventually("newcomer Running", Duration::from_secs(20), || running_on(
            &s, "newcomer"
        )),
        "healthy-0"
    );
    // The node that never posted a status is Unknown and unreachable by now.
    eventually("mute tainted unreachable", Duration::from_secs(20), || {
        (taints_of("mute").len() == 2).then_some(())
    });
    // The node comes back: its taints go.
    let _back = SimNodes::start(&s, "doomed", 1, &[]);
    eventually("taints removed", Duration::from_secs(20), || {
        let n = s.api_get("/api/v1/nodes/doomed-0");
        n["spec"]["taints"]
            .as_array()
            .is_none_or(|t| t.is_empty())
            .then_some(())
    });
}

#[test]
fn priority_classes_admit_and_preempt() {
    let s = Server::start();
    let classes = s.kubectl_ok("1.33", &["get", "priorityclasses"]);
    assert!(classes.contains("system-node-critical"), "{classes}");
    assert!(classes.contains("system-cluster-critical"), "{classes}");
    s.apply("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: low\nvalue: 10\n---\napiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: high\nvalue: 1000\n");

    // Priority admission: the class decides the number; unknown classes are refused.
    let (code, body) = s.curl(
        "POST",
        "/api/v1/namespaces/default/pods",
        Some("application/json"),
        Some(br#"{"metadata":{"name":"ghost"},"spec":{"priorityClassName":"nope","containers":[{"name":"c","image":"nginx"}]}}"#),
    );
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("no PriorityClass with name nope was found"),
        "{body}"
    );
    let (code, body) = s.curl(
        "POST",
        "/api/v1/namespaces/default/pods",
        Some("application/json"),
        Some(br#"{"metadata":{"name":"liar"},"spec":{"priorityClassName":"low","priority":5,"containers":[{"name":"c","image":"nginx"}]}}"#),
    );
    assert_eq!(code, 403, "{body}");

    let _node = SimNodes::start(&s, "small", 1, &["--cpu", "2"]);
    let req = |cpu: &str, class: &str| {
        format!("  priorityClassName: {class}\n  containers:\n  - name: c\n    image: nginx:1.27\n    resources:\n      requests:\n        cpu: {cpu}\n")
    };
    let manifest = |name: &str, cpu: &str, class: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{}",
            req(cpu, class)
        )
    };
    s.apply(&manifest("low-a", "800m", "low"));
    s.apply(&manifest("low-b", "800m", "low"));
    eventually("low pods Running", Duration::from_secs(20), || {
        (running_on(&s, "low-a").is_some() && running_on(&s, "low-b").is_some()).then_some(())
    });
    assert_eq!(s.default_pod("low-a")["spec"]["priority"], 10);

    // A more important pod that does not fit: one low pod is preempted, not both.
    s.apply(&manifest("vip", "1", "high"));
    assert_eq!(s.default_pod("vip")["spec"]["priority"], 1000);
    assert_eq!(
        eventually("vip Running", Duration::from_secs(30), || running_on(
            &s, "vip"
        )),
        "small-0"
    );
    let gone: Vec<&str> = ["low-a", "low-b"]
        .into_iter()
        .filter(|n| {
            let (code, _) = s.curl(
                "GET",
                &format!("/api/v1/namespaces/default/pods/{n}"),
                None,
                None,
            );
            code == 404
        })
        .collect();
    assert_eq!(gone.len(), 1, "exactly one victim: {gone:?}");
    let events = s.kubectl_ok(
        "1.33",
        &[
            "get",
            "events",
            "--field-selector",
            "reason=Preempted",
            "-o",
            "name",
        ],
    );
    assert!(!events.trim().is_empty(), "a Preempted event");
}

#[test]
fn a_deployment_spreads_evenly_and_moves_off_a_dead_node() {
    let s = Server::start_with(&[
        "--node-monitor-grace-period",
        "3s",
        "--default-unreachable-toleration-seconds",
        "2",
    ]);
    let mut doomed = SimNodes::start(&s, "doomed", 1, &[]);
    let _healthy = SimNodes::start(&s, "healthy", 1, &[]);
    // Six replicas on two equal nodes: 3 + 3 (system default spreading and least-allocated).
    s.kubectl_ok(
        "1.33",
        &[
            "create",
            "deployment",
            "spread",
            "--image=nginx:1.27",
            "--replicas=6",
        ],
    );
    s.kubectl_ok(
        "1.33",
        &["rollout", "status", "deployment/spread", "--timeout=60s"],
    );
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in s.pods_matching("default", "app=spread") {
        *per_node
            .entry(p["spec"]["nodeName"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(
        per_node,
        BTreeMap::from([("doomed-0".to_string(), 3), ("healthy-0".to_string(), 3)])
    );

    // The node's kubelet stops: its pods are evicted after their 2 s toleration and the
    // ReplicaSet's replacements land on the other node.
    doomed.stop();
    eventually(
        "six running replicas, all on healthy-0",
        Duration::from_secs(60),
        || {
            let live: Vec<Value> = s
                .pods_matching("default", "app=spread")
                .into_iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .collect();
            (live.len() == 6
                && live.iter().all(|p| {
                    p["spec"]["nodeName"] == "healthy-0" && p["status"]["phase"] == "Running"
                }))
            .then_some(())
        },
    );
    // The evicted ones wait, terminating, for a kubelet that is gone.
    let stuck = s
        .pods_matching("default", "app=spread")
        .into_iter()
        .filter(|p| p["spec"]["nodeName"] == "doomed-0")
        .count();
    assert_eq!(stuck, 3);
    let describe = s.kubectl_ok("1.33", &["describe", "node", "doomed-0"]);
    assert!(
        describe.contains("node.kubernetes.io/unreachable:NoExecute"),
        "{describe}"
    );
}
