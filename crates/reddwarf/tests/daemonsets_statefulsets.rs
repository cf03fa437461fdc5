//! DaemonSets, StatefulSets, Endpoints and EndpointSlices against the real binary, with
//! simulated kubelets placing pods and making them Ready.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, pod_ready, Server, SimNodes};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

fn events_of(s: &Server, kind: &str, name: &str) -> Vec<(String, String)> {
    s.api_get("/api/v1/namespaces/default/events")["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["involvedObject"]["kind"] == kind && e["involvedObject"]["name"] == name)
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A watch read by curl in the background: every event line, in order.
struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Watch {
    fn start(s: &Server, path: &str) -> Watch {
        let mut child = s
            .curl_cmd()
            .args(["-N", "--max-time", "120"])
            .arg(format!("{}{path}", s.url))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("curl");
        let out = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        Watch { child, lines }
    }

    fn events(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const DAEMONSET: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 1}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: agent:1
"#;

fn ds_pods_by_node(s: &Server) -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = s
        .pods_matching("default", "app=agent")
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| (p["spec"]["nodeName"].as_str().unwrap_or("").to_string(), p))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn daemonset_runs_one_pod_per_eligible_node() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 2, &[]);
    let _tainted = SimNodes::start(&s, "infra", 1, &["--taint", "dedicated=infra:NoSchedule"]);
    s.apply(DAEMONSET);

    let placed = eventually("a ready agent on node-0 and node-1", T, || {
        let by_node = ds_pods_by_node(&s);
        let nodes: Vec<&str> = by_node.iter().map(|(n, _)| n.as_str()).collect();
        (nodes == ["node-0", "node-1"] && by_node.iter().all(|(_, p)| pod_ready(p)))
            .then_some(by_node)
    });
    // The pod is pinned to its node through required node affinity (the scheduler binds it),
    // tolerates node conditions, and carries the revision labels.
    let pod = &placed[0].1;
    let term = &pod["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0];
    assert_eq!(
        term["matchFields"][0],
        serde_json::json!({"key": "metadata.name", "operator": "In", "values": ["node-0"]}),
        "{pod}"
    );
    let tolerations: Vec<String> = pod["spec"]["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}:{}",
                t["key"].as_str().unwrap(),
                t["effect"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "node.kubernetes.io/not-ready:NoExecute",
        "node.kubernetes.io/unreachable:NoExecute",
        "node.kubernetes.io/disk-pressure:NoSchedule",
        "node.kubernetes.io/memory-pressure:NoSchedule",
        "node.kubernetes.io/pid-pressure:NoSchedule",
        "node.kubernetes.io/unschedulable:NoSchedule",
    ] {
        assert!(
            tolerations.iter().any(|t| t == want),
            "{want} in {tolerations:?}"
        );
    }
    let hash = pod["metadata"]["labels"]["controller-revision-hash"]
        .as_str()
        .expect("hash label")
        .to_string();
    assert_eq!(pod["metadata"]["labels"]["pod-template-generation"], "1");
    assert!(pod["metadata"]["generateName"] == "agent-", "{pod}");
    let rev = s.api_get(&format!(
        "/apis/apps/v1/namespaces/default/controllerrevisions/agent-{hash}"
    ));
    assert_eq!(rev["revision"], 1);

    let status = eventually("status counted", T, || {
        let st = s.api_get("/apis/apps/v1/namespaces/default/daemonsets/agent")["status"].clone();
        (st["numberAvailable"] == 2).then_some(st)
    });
    assert_eq!(status["desiredNumberScheduled"], 2, "{status}");
    assert_eq!(status["currentNumberScheduled"], 2, "{status}");
    assert_eq!(status["numberReady"], 2, "{status}");
    assert_eq!(status["updatedNumberScheduled"], 2, "{status}");
    assert_eq!(status["numberMisscheduled"], 0, "{status}");
    assert_eq!(status["observedGeneration"], 1, "{status}");
    let out = s.kubectl_ok("1.33", &["get", "ds", "agent"]);
    assert!(
        out.contains("agent   2         2         2       2            2"),
        "{out}"
    );

    // A new node gets its pod.
    let _more = SimNodes::start(&s, "late", 1, &[]);
    eventually("an agent on late-0", T, || {
        let nodes: Vec<String> = ds_pods_by_node(&s).into_iter().map(|(n, _)| n).collect();
        (nodes == ["late-0", "node-0", "node-1"]).then_some(())
    });
    let events = events_of(&s, "DaemonSet", "agent");
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "SuccessfulCreate" && m.starts_with("Created pod: agent-")),
        "{events:?}"
    );
    // The tainted node never got one.
    assert!(ds_pods_by_node(&s).iter().all(|(n, _)| n != "infra-0"));
}

#[test]
fn daemonset_rolls_out_and_back() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 3, &[]);
    s.apply(DAEMONSET);
    s.kubectl_ok("1.33", &["rollout", "status", "ds/agent", "--timeout=30s"]);
    s.kubectl_ok("1.33", &["set", "image", "ds/agent", "agent=agent:2"]);
    let out = s.kubectl_ok("1.33", &["rollout", "status", "ds/agent", "--timeout=40s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let images: Vec<String> = ds_pods_by_node(&s)
        .iter()
        .map(|(_, p)| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(images, ["agent:2", "agent:2", "agent:2"]);

    let history = s.kubectl_ok("1.27", &["rollout", "history", "ds/agent"]);
    assert!(
        history.contains("\n1 ") && history.contains("\n2 "),
        "{history}"
    );
    let rev1 = s.kubectl_ok("1.33", &["rollout", "history", "ds/agent", "--revision=1"]);
    assert!(rev1.contains("agent:1"), "{rev1}");

    s.kubectl_ok("1.33", &["rollout", "undo", "ds/agent"]);
    s.kubectl_ok("1.33", &["rollout", "status", "ds/agent", "--timeout=40s"]);
    eventually("all agents back at agent:1", T, || {
        let pods = ds_pods_by_node(&s);
        (pods.len() == 3
            && pods
                .iter()
                .all(|(_, p)| p["spec"]["containers"][0]["image"] == "agent:1" && pod_ready(p)))
        .then_some(())
    });
    // Undo makes revision 1 current again, as revision 3.
    let history = s.kubectl_ok("1.33", &["rollout", "history", "ds/agent"]);
    assert!(
        history.contains("\n2 ") && history.contains("\n3 "),
        "{history}"
    );
    assert!(!history.contains("\n1 "), "{history}");
}

/// The set, its Service, and a volume for each claim (the scheduler keeps a pod whose claim
/// is unbound Pending, as upstream).
const STATEFULSET: &str = r#"
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: www-0
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /srv/www-0}
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: www-1
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /srv/www-1}
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: www-2
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /srv/www-2}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector: {app: web}
  ports:
  - name: http
    port: 80
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - name: http
          containerPort: 80
        volumeMounts:
        - name: www
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#;

/// Position of the first watch event matching `f`.
fn first(events: &[Value], f: impl Fn(&Value) -> bool) -> Option<usize> {
    events.iter().position(f)
}

fn event_is(e: &Value, type_: &str, name: &str) -> bool {
    e["type"] == type_ && e["object"]["metadata"]["name"] == name
}

#[test]
fn statefulset_creates_ordinals_in_order_and_scales_down_from_the_top() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 2, &[]);
    let watch = Watch::start(
        &s,
        "/api/v1/namespaces/default/pods?watch=1&labelSelector=app%3Dweb",
    );
    s.apply(STATEFULSET);

    eventually("web-0..2 Ready", T, || {
        let ps = s.pods_matching("default", "app=web");
        (ps.len() == 3 && ps.iter().all(pod_ready)).then_some(())
    });
    // Each ordinal is created only after its predecessor became Ready.
    let events = watch.events();
    for (prev, next) in [("web-0", "web-1"), ("web-1", "web-2")] {
        let ready = first(&events, |e| {
            e["object"]["metadata"]["name"] == prev && pod_ready(&e["object"])
        })
        .unwrap_or_else(|| panic!("{prev} Ready in {events:?}"));
        let added = first(&events, |e| event_is(e, "ADDED", next))
            .unwrap_or_else(|| panic!("{next} ADDED in {events:?}"));
        assert!(ready < added, "{next} created before {prev} was Ready");
    }

    let pod = s.api_get("/api/v1/namespaces/default/pods/web-1");
    assert_eq!(pod["spec"]["hostname"], "web-1");
    assert_eq!(pod["spec"]["subdomain"], "web");
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-1");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "1");
    let revision = labels["controller-revision-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(revision.starts_with("web-"), "{revision}");
    let vol = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "www")
        .cloned()
        .expect("www volume");
    assert_eq!(vol["persistentVolumeClaim"]["claimName"], "www-web-1");

    // Claims per ordinal, labelled with the selector, not owned (Retain).
    for i in 0..3 {
        let pvc = s.api_get(&format!(
            "/api/v1/namespaces/default/persistentvolumeclaims/www-web-{i}"
        ));
        assert_eq!(pvc["metadata"]["labels"]["app"], "web", "{pvc}");
        assert!(pvc["metadata"]["ownerReferences"].is_null(), "{pvc}");
    }

    let status = eventually("status", T, || {
        let st = s.api_get("/apis/apps/v1/namespaces/default/statefulsets/web")["status"].clone();
        (st["readyReplicas"] == 3 && st["currentReplicas"] == 3).then_some(st)
    });
    assert_eq!(status["replicas"], 3, "{status}");
    assert_eq!(status["availableReplicas"], 3, "{status}");
    assert_eq!(status["updatedReplicas"], 3, "{status}");
    assert_eq!(status["currentRevision"], revision.as_str(), "{status}");
    assert_eq!(status["updateRevision"], revision.as_str(), "{status}");
    assert_eq!(status["observedGeneration"], 1, "{status}");
    let events = events_of(&s, "StatefulSet", "web");
    for want in [
        "create Claim www-web-0 Pod web-0 in StatefulSet web success",
        "create Pod web-0 in StatefulSet web successful",
        "create Pod web-2 in StatefulSet web successful",
    ] {
        assert!(
            events
                .iter()
                .any(|(r, m)| r == "SuccessfulCreate" && m == want),
            "{want} in {events:?}"
        );
    }

    // The headless Service's endpoints name each pod by hostname.
    let ep = eventually("endpoints of web", T, || {
        let (code, body) = s.curl(
            "GET",
            "/api/v1/namespaces/default/endpoints/web",
            None,
            None,
        );
        let ep: Value = serde_json::from_str(&body).ok()?;
        (code == 200 && ep["subsets"][0]["addresses"].as_array().map(Vec::len) == Some(3))
            .then_some(ep)
    });
    let hosts: Vec<&str> = ep["subsets"][0]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["hostname"].as_str().unwrap_or(""))
        .collect();
    assert!(hosts.contains(&"web-0") && hosts.contains(&"web-2"), "{ep}");
    assert_eq!(
        ep["metadata"]["labels"]["service.kubernetes.io/headless"],
        ""
    );

    // Scale down: the highest ordinal goes first, one at a time; claims stay.
    s.kubectl_ok("1.33", &["scale", "sts", "web", "--replicas=1"]);
    eventually("only web-0 left", T, || {
        let ps = s.pods_matching("default", "app=web");
        (ps.len() == 1 && ps[0]["metadata"]["name"] == "web-0").then_some(())
    });
    let events = watch.events();
    let gone = |name: &str| {
        first(&events, |e| {
            e["object"]["metadata"]["name"] == name
                && !e["object"]["metadata"]["deletionTimestamp"].is_null()
        })
        .unwrap_or_else(|| panic!("{name} terminating in {events:?}"))
    };
    let deleted_2 = first(&events, |e| event_is(e, "DELETED", "web-2")).expect("web-2 deleted");
    assert!(
        deleted_2 < gone("web-1"),
        "web-1 terminated before web-2 was gone"
    );
    for i in 0..3 {
        s.api_get(&format!(
            "/api/v1/namespaces/default/persistentvolumeclaims/www-web-{i}"
        ));
    }
    eventually("status replicas 1", T, || {
        let st = s.api_get("/apis/apps/v1/namespaces/default/statefulsets/web")["status"].clone();
        (st["replicas"] == 1 && st["readyReplicas"] == 1).then_some(())
    });
}

#[test]
fn statefulset_rolls_out_from_the_highest_ordinal_and_back() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 2, &[]);
    s.apply(STATEFULSET);
    s.kubectl_ok("1.33", &["rollout", "status", "sts/web", "--timeout=30s"]);
    let watch = Watch::start(
        &s,
        "/api/v1/namespaces/default/pods?watch=1&labelSelector=app%3Dweb",
    );
    s.kubectl_ok("1.33", &["set", "image", "sts/web", "nginx=nginx:1.28"]);
    let out = s.kubectl_ok("1.33", &["rollout", "status", "sts/web", "--timeout=40s"]);
    // A defaulted RollingUpdate strategy has `partition: 0`, so kubectl reports it as a
    // partitioned roll out, as against upstream.
    assert!(
        out.contains("partitioned roll out complete: 3 new pods have been updated"),
        "{out}"
    );
    for i in 0..3 {
        let p = s.api_get(&format!("/api/v1/namespaces/default/pods/web-{i}"));
        assert_eq!(p["spec"]["containers"][0]["image"], "nginx:1.28");
    }
    // Replaced from the highest ordinal down.
    let events = watch.events();
    let terminated = |name: &str| {
        first(&events, |e| {
            e["object"]["metadata"]["name"] == name
                && !e["object"]["metadata"]["deletionTimestamp"].is_null()
        })
        .unwrap_or_else(|| panic!("{name} replaced in {events:?}"))
    };
    assert!(terminated("web-2") < terminated("web-1"));
    assert!(terminated("web-1") < terminated("web-0"));

    let history = s.kubectl_ok("1.33", &["rollout", "history", "sts/web"]);
    assert!(
        history.contains("\n1 ") && history.contains("\n2 "),
        "{history}"
    );
    let rev1 = s.kubectl_ok("1.27", &["rollout", "history", "sts/web", "--revision=1"]);
    assert!(rev1.contains("nginx:1.27"), "{rev1}");
    s.kubectl_ok("1.27", &["rollout", "undo", "sts/web"]);
    s.kubectl_ok("1.33", &["rollout", "status", "sts/web", "--timeout=40s"]);
    eventually("all back at nginx:1.27", T, || {
        let ps = s.pods_matching("default", "app=web");
        (ps.len() == 3
            && ps.iter().all(|p| {
                p["spec"]["containers"][0]["image"] == "nginx:1.27"
                    && pod_ready(p)
                    && p["metadata"]["deletionTimestamp"].is_null()
            }))
        .then_some(())
    });

    // A partition keeps the ordinals below it at the old revision.
    s.kubectl_ok(
        "1.33",
        &[
            "patch",
            "sts",
            "web",
            "-p",
            r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}},"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.29"}]}}}}"#,
        ],
    );
    let out = s.kubectl_ok("1.33", &["rollout", "status", "sts/web", "--timeout=40s"]);
    assert!(
        out.contains("partitioned roll out complete: 1 new pods have been updated"),
        "{out}"
    );
    let images: Vec<String> = (0..3)
        .map(|i| {
            s.api_get(&format!("/api/v1/namespaces/default/pods/web-{i}"))["spec"]["containers"][0]
                ["image"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(images, ["nginx:1.27", "nginx:1.27", "nginx:1.29"]);
}

fn api_pod(name: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: api}}
spec:
  containers:
  - name: c
    image: api:1
    ports:
    - name: http
      containerPort: 8080
"#
    )
}

fn ip_of(s: &Server, pod: &str) -> String {
    eventually(&format!("{pod} has an IP"), T, || {
        let p = s.api_get(&format!("/api/v1/namespaces/default/pods/{pod}"));
        p["status"]["podIP"]
            .as_str()
            .filter(|ip| !ip.is_empty() && pod_ready(&p))
            .map(str::to_string)
    })
}

fn endpoints(s: &Server, name: &str) -> Option<Value> {
    let (code, body) = s.curl(
        "GET",
        &format!("/api/v1/namespaces/default/endpoints/{name}"),
        None,
        None,
    );
    (code == 200).then(|| serde_json::from_str(&body).unwrap())
}

fn slices(s: &Server, service: &str) -> Vec<Value> {
    s.api_get(&format!(
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D{service}"
    ))["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn addresses(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["ip"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn services_get_endpoints_and_endpointslices_of_their_pods() {
    let s = Server::start();
    let _nodes = SimNodes::start(
        &s,
        "node",
        2,
        &["--label", "topology.kubernetes.io/zone=z1"],
    );
    s.apply(&api_pod("api-a"));
    s.apply(&api_pod("api-b"));
    s.apply(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: api
  labels: {team: core}
spec:
  selector: {app: api}
  ports:
  - name: web
    port: 80
    targetPort: http
---
apiVersion: v1
kind: Service
metadata:
  name: manual
spec:
  ports:
  - port: 80
"#,
    );
    let (a, b) = (ip_of(&s, "api-a"), ip_of(&s, "api-b"));
    let mut both = vec![a.clone(), b.clone()];
    both.sort();

    // Endpoints: ready addresses with their pods, the named target port resolved.
    let ep = eventually("endpoints with both pods", T, || {
        endpoints(&s, "api").filter(|ep| addresses(&ep["subsets"][0]["addresses"]) == both)
    });
    let subset = &ep["subsets"][0];
    assert_eq!(
        subset["ports"],
        serde_json::json!([{"name": "web", "port": 8080, "protocol": "TCP"}])
    );
    let addr = &subset["addresses"][0];
    assert_eq!(addr["targetRef"]["kind"], "Pod");
    assert!(
        addr["nodeName"].as_str().unwrap().starts_with("node-"),
        "{addr}"
    );
    assert_eq!(ep["metadata"]["labels"]["team"], "core");
    let out = s.kubectl_ok("1.33", &["get", "endpoints", "api"]);
    assert!(out.contains(&format!("{}:8080", both[0])), "{out}");

    // EndpointSlices: generated name, labels, owner, conditions, zone, ports.
    let slice = eventually("a slice with both pods", T, || {
        slices(&s, "api")
            .into_iter()
            .find(|sl| sl["endpoints"].as_array().map(Vec::len) == Some(2))
    });
    assert!(slice["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("api-"));
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice["metadata"]["labels"]["team"], "core");
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["ports"],
        serde_json::json!([{"name": "web", "port": 8080, "protocol": "TCP"}])
    );
    let e0 = &slice["endpoints"][0];
    assert_eq!(
        e0["conditions"],
        serde_json::json!({"ready": true, "serving": true, "terminating": false})
    );
    assert_eq!(e0["zone"], "z1");
    assert!(e0["nodeName"].as_str().unwrap().starts_with("node-"));
    let out = s.kubectl_ok(
        "1.33",
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=api",
        ],
    );
    assert!(out.contains("IPv4") && out.contains("8080"), "{out}");

    // A pod turning unready moves to notReadyAddresses / ready=false.
    s.kubectl_ok(
        "1.33",
        &[
            "patch",
            "pod",
            "api-b",
            "--subresource=status",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/status/conditions","value":[{"type":"Ready","status":"False"}]}]"#,
        ],
    );
    eventually("api-b not ready in endpoints", T, || {
        let ep = endpoints(&s, "api")?;
        (addresses(&ep["subsets"][0]["addresses"]) == [a.clone()]
            && addresses(&ep["subsets"][0]["notReadyAddresses"]) == [b.clone()])
        .then_some(())
    });
    eventually("api-b not ready in its slice", T, || {
        slices(&s, "api").iter().find_map(|sl| {
            sl["endpoints"].as_array()?.iter().find(|e| {
                e["addresses"][0] == b.as_str()
                    && e["conditions"]["ready"] == false
                    && e["conditions"]["serving"] == false
            })?;
            Some(())
        })
    });

    // A deleted pod leaves both.
    s.kubectl_ok("1.33", &["delete", "pod", "api-a", "--wait=false"]);
    eventually("api-a gone from endpoints and slices", T, || {
        let ep = endpoints(&s, "api")?;
        let in_slices = slices(&s, "api")
            .iter()
            .flat_map(|sl| sl["endpoints"].as_array().cloned().unwrap_or_default())
            .any(|e| e["addresses"][0] == a.as_str());
        (addresses(&ep["subsets"][0]["addresses"]).is_empty() && !in_slices).then_some(())
    });

    // The kubernetes Service points at the API server; a Service without a selector is
    // left alone.
    let k = endpoints(&s, "kubernetes").expect("kubernetes endpoints");
    let port: u16 = s.url.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(k["subsets"][0]["addresses"][0]["ip"], "127.0.0.1");
    assert_eq!(k["subsets"][0]["ports"][0]["port"], port);
    assert_eq!(slices(&s, "kubernetes").len(), 1);
    assert!(endpoints(&s, "manual").is_none());
    assert!(slices(&s, "manual").is_empty());

    // Deleting the Service removes its endpoints.
    s.kubectl_ok("1.33", &["delete", "service", "api"]);
    eventually("endpoints of api gone", T, || {
        (endpoints(&s, "api").is_none() && slices(&s, "api").is_empty()).then_some(())
    });
}

#[test]
fn daemonset_adopts_orphans_and_surges_during_updates() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 2, &[]);
    // A bare pod matching the selector on node-0 is adopted instead of duplicated.
    s.apply(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: stray
  labels: {app: agent}
spec:
  nodeName: node-0
  containers:
  - name: agent
    image: agent:1
"#,
    );
    // OnDelete: the adopted pod (which has no revision label) is not replaced.
    s.apply(&DAEMONSET.replace(
        "type: RollingUpdate\n    rollingUpdate: {maxUnavailable: 1}",
        "type: OnDelete",
    ));
    eventually("stray adopted and node-1 served", T, || {
        let by_node = ds_pods_by_node(&s);
        let names: Vec<(&str, &str)> = by_node
            .iter()
            .map(|(n, p)| (n.as_str(), p["metadata"]["name"].as_str().unwrap_or("")))
            .collect();
        (names.len() == 2 && names[0] == ("node-0", "stray") && names[1].0 == "node-1")
            .then_some(())
    });
    let stray = s.api_get("/api/v1/namespaces/default/pods/stray");
    assert_eq!(stray["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    assert_eq!(stray["metadata"]["ownerReferences"][0]["controller"], true);

    // maxUnavailable 0, maxSurge 1: new pods start beside the old ones, which go once the
    // new ones are available.
    s.kubectl_ok(
        "1.33",
        &[
            "patch",
            "ds",
            "agent",
            "-p",
            r#"{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":0,"maxSurge":1}}}}"#,
        ],
    );
    // The template generation counts template changes only (upstream's strategy).
    let generation = |s: &Server| {
        s.api_get("/apis/apps/v1/namespaces/default/daemonsets/agent")["metadata"]["annotations"]
            ["deprecated.daemonset.template.generation"]
            .clone()
    };
    assert_eq!(generation(&s), "1");
    s.kubectl_ok("1.33", &["set", "image", "ds/agent", "agent=agent:2"]);
    assert_eq!(generation(&s), "2");
    let out = s.kubectl_ok("1.33", &["rollout", "status", "ds/agent", "--timeout=40s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    eventually("one agent:2 per node", T, || {
        let pods = ds_pods_by_node(&s);
        (pods.len() == 2
            && pods.iter().all(|(_, p)| {
                p["spec"]["containers"][0]["image"] == "agent:2"
                    && p["metadata"]["labels"]["pod-template-generation"] == "2"
            }))
        .then_some(())
    });
}

#[test]
fn statefulset_parallel_creates_at_once_and_ordered_waits() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "node", 1, &[]);
    // Pods no node fits stay Pending (never Ready).
    let set = |name: &str, policy: &str, retention: &str| {
        format!(
            r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {name}
spec:
  serviceName: {name}
  replicas: 3
  podManagementPolicy: {policy}
  persistentVolumeClaimRetentionPolicy: {retention}
  selector:
    matchLabels: {{set: {name}}}
  template:
    metadata:
      labels: {{set: {name}}}
    spec:
      nodeSelector: {{disk: none}}
      containers:
      - name: c
        image: db:1
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#
        )
    };
    s.apply(&set("ordered", "OrderedReady", "{}"));
    s.apply(&set(
        "par",
        "Parallel",
        "{whenDeleted: Delete, whenScaled: Retain}",
    ));
    eventually("par-0..2 all created", T, || {
        (s.pods_matching("default", "set=par").len() == 3).then_some(())
    });
    eventually("ordered reports one replica", T, || {
        let st =
            s.api_get("/apis/apps/v1/namespaces/default/statefulsets/ordered")["status"].clone();
        (st["replicas"] == 1 && st["observedGeneration"] == 1).then_some(())
    });
    let ordered: Vec<String> = s
        .pods_matching("default", "set=ordered")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ordered,
        ["ordered-0"],
        "ordered-1 waits for ordered-0 to be Ready"
    );

    // whenDeleted: Delete makes the set own its claims; Retain leaves them unowned.
    let pvc = s.api_get("/api/v1/namespaces/default/persistentvolumeclaims/data-par-1");
    let owner = &pvc["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "StatefulSet", "{pvc}");
    assert_eq!(owner["name"], "par", "{pvc}");
    let pvc = s.api_get("/api/v1/namespaces/default/persistentvolumeclaims/data-ordered-0");
    assert!(pvc["metadata"]["ownerReferences"].is_null(), "{pvc}");

    // whenScaled: Delete hands the claims of a scaled-away pod to that pod.
    s.kubectl_ok(
        "1.33",
        &[
            "patch",
            "sts",
            "par",
            "-p",
            r#"{"spec":{"replicas":2,"persistentVolumeClaimRetentionPolicy":{"whenScaled":"Delete"}}}"#,
        ],
    );
    // The garbage collector then deletes the claim with its pod.
    eventually("par-2 gone, and its claim with it", T, || {
        let names: Vec<String> = s
            .pods_matching("default", "set=par")
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        let (code, _) = s.curl(
            "GET",
            "/api/v1/namespaces/default/persistentvolumeclaims/data-par-2",
            None,
            None,
        );
        (names == ["par-0", "par-1"] && code == 404).then_some(())
    });
    let pvc = s.api_get("/api/v1/namespaces/default/persistentvolumeclaims/data-par-0");
    assert_eq!(
        pvc["metadata"]["ownerReferences"][0]["kind"], "StatefulSet",
        "{pvc}"
    );
}

#[test]
fn daemonset_follows_node_labels() {
    let s = Server::start();
    let _edge = SimNodes::start(&s, "edge", 1, &["--label", "role=edge"]);
    let _plain = SimNodes::start(&s, "node", 1, &[]);
    s.apply(&DAEMONSET.replace(
        "    spec:\n      containers:",
        "    spec:\n      nodeSelector: {role: edge}\n      containers:",
    ));
    let on = |s: &Server| -> Vec<String> {
        ds_pods_by_node(s)
            .into_iter()
            .filter(|(_, p)| pod_ready(p))
            .map(|(n, _)| n)
            .collect()
    };
    eventually("an agent on edge-0 only", T, || {
        (on(&s) == ["edge-0"]).then_some(())
    });
    // The label moves: the pod follows it.
    s.kubectl_ok("1.33", &["label", "node", "node-0", "role=edge"]);
    s.kubectl_ok("1.33", &["label", "node", "edge-0", "role-"]);
    eventually("an agent on node-0 only", T, || {
        (ds_pods_by_node(&s)
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            == ["node-0"]
            && on(&s) == ["node-0"])
        .then_some(())
    });
    // The status catches up once the old pod is gone (kubelets report it stopped first).
    eventually("status settled", T, || {
        let st = s.api_get("/apis/apps/v1/namespaces/default/daemonsets/agent")["status"].clone();
        (st["desiredNumberScheduled"] == 1 && st["numberMisscheduled"] == 0).then_some(())
    });
}
