//! Simulated nodes, kwok-style: registers Node objects, renews their Leases in
//! `kube-node-lease`, and plays kubelet for pods bound to them (Running and Ready through the
//! status subresource; pods that do not restart finish Succeeded after a while). Tests and
//! `reddwarf bench schedule` use it the way upstream's integration tests stand in for kubelets.
//! Stopping the process stops the Leases, which is how a node "dies".

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use k8s_openapi::jiff::{Timestamp, Unit};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Mutex};

use crate::client::{Conn, Target};
use crate::GoDuration;

#[derive(clap::Args, Clone, Debug)]
pub struct SimNodesArgs {
    /// Kubeconfig with inline certificate data (the server's admin.kubeconfig).
    #[arg(
        long,
        env = "KUBECONFIG",
        default_value = "./reddwarf-data/admin.kubeconfig"
    )]
    pub kubeconfig: PathBuf,
    /// How many nodes.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// Node names are `<prefix>-<index>`.
    #[arg(long, default_value = "sim-node")]
    pub prefix: String,
    /// Index of the first node.
    #[arg(long, default_value_t = 0)]
    pub first_index: usize,
    #[arg(long, default_value = "4")]
    pub cpu: String,
    #[arg(long, default_value = "16Gi")]
    pub memory: String,
    #[arg(long, default_value = "110")]
    pub pods: String,
    /// Extra node labels, `key=value` (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Node taints, `key=value:Effect` or `key:Effect` (repeatable).
    #[arg(long = "taint")]
    pub taints: Vec<String>,
    /// How often Leases are renewed (upstream kubelets: 10s).
    #[arg(long, default_value = "10s")]
    pub renew_interval: GoDuration,
    /// How long pods that do not restart (Jobs) run before they succeed.
    #[arg(long, default_value = "1s")]
    pub run_time: GoDuration,
    /// How long containers of a deleted pod take to exit (at most its grace period).
    #[arg(long, default_value = "0s")]
    pub stop_time: GoDuration,
    /// Connections used for status writes.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
}

/// Annotation on a pod (or its template) that makes a non-restarting pod exit with this code.
pub const EXIT_CODE_ANNOTATION: &str = "sim.reddwarf.dev/exit-code";

pub async fn run(args: SimNodesArgs) -> anyhow::Result<()> {
    let target = Target::from_kubeconfig(&args.kubeconfig)?;
    let names: Vec<String> = (args.first_index..args.first_index + args.count)
        .map(|i| format!("{}-{i}", args.prefix))
        .collect();
    let sim = Arc::new(Sim {
        target: target.clone(),
        args: args.clone(),
        nodes: names.iter().cloned().collect(),
        node_index: names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i + args.first_index))
            .collect(),
    });
    let (tx, rx) = mpsc::channel::<Work>(100_000);
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..args.connections.max(1) {
        let sim = sim.clone();
        let rx = rx.clone();
        let tx = tx.clone();
        tokio::spawn(async move { sim.worker(rx, tx).await });
    }
    for chunk in names.chunks(names.len().div_ceil(args.connections.max(1)).max(1)) {
        for n in chunk {
            tx.send(Work::Register(n.clone())).await?;
        }
    }
    let renew = {
        let sim = sim.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(sim.args.renew_interval.0);
            tick.tick().await;
            loop {
                tick.tick().await;
                for n in &sim.nodes.iter().cloned().collect::<Vec<_>>() {
                    let _ = tx.send(Work::Renew(n.clone())).await;
                }
            }
        })
    };
    let pods = {
        let sim = sim.clone();
        tokio::spawn(async move { sim.watch_pods(tx).await })
    };
    tokio::select! {
        r = pods => r?,
        r = renew => { r?; Ok(()) },
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

enum Work {
    Register(String),
    Renew(String),
    Start(Value),
    Finish(Value),
    /// A pod marked for deletion: stop its containers and report it.
    Stop(Value),
    /// A stopped pod marked for deletion: the kubelet's final delete.
    Remove(Value),
}

struct Sim {
    target: Target,
    args: SimNodesArgs,
    nodes: HashSet<String>,
    node_index: HashMap<String, usize>,
}

fn now() -> String {
    Timestamp::now()
        .round(Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn now_micro() -> String {
    format!("{:.6}", Timestamp::now())
}

async fn connect(target: &Target) -> Conn {
    loop {
        match target.connect().await {
            Ok(c) => return c,
            Err(e) => {
                tracing::warn!("sim-nodes: connecting: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

impl Sim {
    async fn worker(self: Arc<Self>, rx: Arc<Mutex<mpsc::Receiver<Work>>>, tx: mpsc::Sender<Work>) {
        let mut conn = connect(&self.target).await;
        loop {
            let work = { rx.lock().await.recv().await };
            let Some(work) = work else { return };
            let result = match &work {
                Work::Register(n) => self.register(&mut conn, n).await,
                Work::Renew(n) => self.renew(&mut conn, n).await,
                Work::Start(p) => self.start_pod(&mut conn, p, &tx).await,
                Work::Finish(p) => self.finish_pod(&mut conn, p).await,
                Work::Stop(p) => self.stop_pod(&mut conn, p, &tx).await,
                Work::Remove(p) => self.remove_pod(&mut conn, p).await,
            };
            if let Err(e) = result {
                tracing::warn!("sim-nodes: {e:#}");
                conn = connect(&self.target).await;
            }
        }
    }

    fn node_object(&self, name: &str) -> Value {
        let mut labels = serde_json::Map::new();
        labels.insert("kubernetes.io/hostname".into(), json!(name));
        labels.insert("kubernetes.io/os".into(), json!("linux"));
        labels.insert("kubernetes.io/arch".into(), json!("amd64"));
        labels.insert("type".into(), json!("sim"));
        for l in &self.args.labels {
            if let Some((k, v)) = l.split_once('=') {
                labels.insert(k.into(), json!(v));
            }
        }
        let taints: Vec<Value> = self
            .args
            .taints
            .iter()
            .filter_map(|t| {
                let (kv, effect) = t.rsplit_once(':')?;
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                let mut t = json!({"key": k, "effect": effect});
                if !v.is_empty() {
                    t["value"] = json!(v);
                }
                Some(t)
            })
            .collect();
        let mut spec = json!({});
        if !taints.is_empty() {
            spec["taints"] = json!(taints);
        }
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels,
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": spec,
        })
    }

    fn node_status(&self, name: &str) -> Value {
        let i = self.node_index.get(name).copied().unwrap_or(0) + 1;
        let resources = json!({"cpu": self.args.cpu, "memory": self.args.memory,
            "pods": self.args.pods, "ephemeral-storage": "100Gi"});
        let t = now();
        let cond = |type_: &str, status: &str, reason: &str, message: &str| {
            json!({"type": type_, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": t, "lastTransitionTime": t})
        };
        json!({
            "capacity": resources, "allocatable": resources,
            "phase": "Running",
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": format!("10.{}.{}.{}", 200 + (i >> 16) % 50, (i >> 8) & 255, i & 255)},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": format!("sim-{i}"), "systemUUID": format!("sim-{i}"), "bootID": format!("sim-{i}"),
                "kernelVersion": "6.1.0-sim", "osImage": "reddwarf simulated node",
                "containerRuntimeVersion": "sim://1.0.0", "kubeletVersion": "v1.33.0-sim",
                "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
            },
        })
    }

    async fn register(&self, conn: &mut Conn, name: &str) -> anyhow::Result<()> {
        let body = serde_json::to_vec(&self.node_object(name))?;
        let (code, resp) = conn.request("POST", "/api/v1/nodes", Some(body)).await?;
        anyhow::ensure!(
            code == 201 || code == 409,
            "registering node {name}: {code} {}",
            String::from_utf8_lossy(&resp)
        );
        let (code, resp) = conn
            .request("GET", &format!("/api/v1/nodes/{name}"), None)
            .await?;
        anyhow::ensure!(code == 200, "reading node {name}: {code}");
        let node: Value = serde_json::from_slice(&resp)?;
        let patch = json!({"status": self.node_status(name)});
        let (code, resp) =
            merge_patch(conn, &format!("/api/v1/nodes/{name}/status"), &patch).await?;
        anyhow::ensure!(
            code == 200,
            "node {name} status: {code} {}",
            String::from_utf8_lossy(&resp)
        );
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease",
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name,
                    "uid": node["metadata"]["uid"]}]},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now_micro()},
        });
        let (code, resp) = conn
            .request(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                Some(serde_json::to_vec(&lease)?),
            )
            .await?;
        if code == 409 {
            return self.patch_lease(conn, name).await;
        }
        anyhow::ensure!(
            code == 201,
            "lease {name}: {code} {}",
            String::from_utf8_lossy(&resp)
        );
        Ok(())
    }

    async fn patch_lease(&self, conn: &mut Conn, name: &str) -> anyhow::Result<()> {
        let patch = json!({"spec": {"renewTime": now_micro(), "holderIdentity": name}});
        let (code, resp) = merge_patch(
            conn,
            &format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"),
            &patch,
        )
        .await?;
        anyhow::ensure!(
            code == 200,
            "renewing lease {name}: {code} {}",
            String::from_utf8_lossy(&resp)
        );
        Ok(())
    }

    async fn renew(&self, conn: &mut Conn, name: &str) -> anyhow::Result<()> {
        self.patch_lease(conn, name).await?;
        // A node the lifecycle controller marked Unknown comes back once its kubelet is heard.
        let (code, resp) = conn
            .request("GET", &format!("/api/v1/nodes/{name}"), None)
            .await?;
        if code == 200 {
            let node: Value = serde_json::from_slice(&resp)?;
            let ready = node["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .map(|c| c["status"] == "True")
                .unwrap_or(false);
            if !ready {
                let patch = json!({"status": self.node_status(name)});
                merge_patch(conn, &format!("/api/v1/nodes/{name}/status"), &patch).await?;
            }
        } else if code == 404 {
            return Box::pin(self.register(conn, name)).await;
        }
        Ok(())
    }

    fn pod_ip(&self, pod: &Value) -> String {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
        let i = self.node_index.get(node).copied().unwrap_or(0);
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
        let h = uid
            .bytes()
            .fold(7u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
        format!("10.{}.{}.{}", 64 + (i >> 8) % 64, i & 255, 2 + h % 250)
    }

    fn restarts(pod: &Value) -> bool {
        pod["spec"]["restartPolicy"].as_str().unwrap_or("Always") == "Always"
    }

    async fn start_pod(
        &self,
        conn: &mut Conn,
        pod: &Value,
        tx: &mpsc::Sender<Work>,
    ) -> anyhow::Result<()> {
        let t = now();
        let containers: Vec<Value> = pod["spec"]["containers"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        json!({"name": c["name"], "image": c["image"],
                            "imageID": format!("sim://{}", c["image"].as_str().unwrap_or("")),
                            "containerID": format!("sim://{}-{}", pod["metadata"]["uid"].as_str().unwrap_or(""), c["name"].as_str().unwrap_or("")),
                            "ready": true, "started": true, "restartCount": 0,
                            "state": {"running": {"startedAt": t}}})
                    })
                    .collect()
            })
            .unwrap_or_default();
        let cond = |type_: &str| json!({"type": type_, "status": "True", "lastTransitionTime": t});
        let ip = self.pod_ip(pod);
        let host_ip = self.node_status(pod["spec"]["nodeName"].as_str().unwrap_or(""))["addresses"]
            [0]["address"]
            .clone();
        let status = json!({"status": {
            "phase": "Running",
            "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": t,
            "containerStatuses": containers,
        }});
        let path = pod_path(pod);
        if !patch_pod_status(conn, &path, &status).await? {
            return Ok(());
        }
        if !Self::restarts(pod) {
            let tx = tx.clone();
            let pod = pod.clone();
            let after = self.args.run_time.0;
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = tx.send(Work::Finish(pod)).await;
            });
        }
        Ok(())
    }

    async fn finish_pod(&self, conn: &mut Conn, pod: &Value) -> anyhow::Result<()> {
        let code: i64 = pod["metadata"]["annotations"][EXIT_CODE_ANNOTATION]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let status = reddwarf_controllers::pod_status::stopped(pod, code, &now());
        let path = pod_path(pod);
        patch_pod_status(conn, &path, &status).await?;
        Ok(())
    }

    /// A kubelet stops a deleted pod's containers (they exit on SIGTERM), reports them
    /// terminated and the pod not ready, and only then deletes the pod for good, so clients
    /// see `Ready=False` before the pod goes away.
    async fn stop_pod(
        &self,
        conn: &mut Conn,
        pod: &Value,
        tx: &mpsc::Sender<Work>,
    ) -> anyhow::Result<()> {
        let path = pod_path(pod);
        if !reddwarf_controllers::pod_status::is_stopped(pod) {
            // The current status: the watch event may predate our own Running report.
            let (code, body) = conn.request("GET", &path, None).await?;
            if code == 404 {
                return Ok(());
            }
            let current: Value = serde_json::from_slice(&body).unwrap_or_else(|_| pod.clone());
            // Killed by SIGTERM: 128 + 15, reported as an Error and the pod Failed, as the
            // kubelet reports a process that does not trap the signal.
            let status = reddwarf_controllers::pod_status::stopped(&current, 143, &now());
            if !patch_pod_status(conn, &path, &status).await? {
                return Ok(());
            }
        }
        // Containers take `--stop-time` to exit, never longer than the grace period.
        let grace = pod["metadata"]["deletionGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30);
        let wait = self.args.stop_time.0.min(Duration::from_secs(grace));
        let tx = tx.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = tx.send(Work::Remove(pod)).await;
        });
        Ok(())
    }

    async fn remove_pod(&self, conn: &mut Conn, pod: &Value) -> anyhow::Result<()> {
        let path = pod_path(pod);
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
        let opts = json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
            "preconditions": {"uid": uid}});
        let (code, resp) = conn
            .request("DELETE", &path, Some(serde_json::to_vec(&opts)?))
            .await?;
        anyhow::ensure!(
            matches!(code, 200 | 404 | 409),
            "deleting {path}: {code} {}",
            String::from_utf8_lossy(&resp)
        );
        Ok(())
    }

    /// Lists and watches every pod; pods newly bound to one of our nodes are started, pods
    /// marked for deletion on our nodes are removed (the kubelet's final delete).
    async fn watch_pods(self: Arc<Self>, tx: mpsc::Sender<Work>) -> anyhow::Result<()> {
        let mut started: HashSet<String> = HashSet::new();
        let mut stopping: HashSet<String> = HashSet::new();
        loop {
            let mut conn = connect(&self.target).await;
            let (code, body) = conn.request("GET", "/api/v1/pods", None).await?;
            anyhow::ensure!(code == 200, "listing pods: {code}");
            let list: Value = serde_json::from_slice(&body)?;
            let rv = list["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("0")
                .to_string();
            for p in list["items"].as_array().into_iter().flatten() {
                self.consider(p, &mut started, &mut stopping, &tx).await;
            }
            let path =
                format!("/api/v1/pods?watch=true&allowWatchBookmarks=true&resourceVersion={rv}");
            let mut body = match conn.stream(&path).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!("sim-nodes: watching pods: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut buf: Vec<u8> = Vec::new();
            'frames: while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                buf.extend_from_slice(data);
                while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                        continue;
                    };
                    match ev["type"].as_str() {
                        Some("ADDED") | Some("MODIFIED") => {
                            self.consider(&ev["object"], &mut started, &mut stopping, &tx)
                                .await
                        }
                        Some("DELETED") => {
                            if let Some(uid) = ev["object"]["metadata"]["uid"].as_str() {
                                started.remove(uid);
                                stopping.remove(uid);
                            }
                        }
                        Some("ERROR") => break 'frames,
                        _ => {}
                    }
                }
            }
        }
    }

    async fn consider(
        &self,
        pod: &Value,
        started: &mut HashSet<String>,
        stopping: &mut HashSet<String>,
        tx: &mpsc::Sender<Work>,
    ) {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
        if !self.nodes.contains(node) {
            return;
        }
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
        if pod["metadata"]["deletionTimestamp"].is_string() {
            // Once per pod: our own status report comes back as another watch event.
            if stopping.insert(uid) {
                let _ = tx.send(Work::Stop(pod.clone())).await;
            }
            return;
        }
        let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
        if phase != "Pending" || started.contains(&uid) {
            return;
        }
        started.insert(uid);
        let _ = tx.send(Work::Start(pod.clone())).await;
    }
}

/// A merge patch of a pod's status: Ok(false) when the pod is gone.
async fn patch_pod_status(conn: &mut Conn, path: &str, status: &Value) -> anyhow::Result<bool> {
    let (code, resp) = merge_patch(conn, &format!("{path}/status"), status).await?;
    anyhow::ensure!(
        code == 200 || code == 404,
        "pod {path} status: {code} {}",
        String::from_utf8_lossy(&resp)
    );
    Ok(code == 200)
}

/// A JSON merge patch of `path`; returns the status code and body.
async fn merge_patch(
    conn: &mut Conn,
    path: &str,
    body: &Value,
) -> anyhow::Result<(u16, bytes::Bytes)> {
    conn.request_typed(
        "PATCH",
        path,
        "application/merge-patch+json",
        Some(serde_json::to_vec(body)?),
    )
    .await
}

fn pod_path(pod: &Value) -> String {
    format!(
        "/api/v1/namespaces/{}/pods/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or("default"),
        pod["metadata"]["name"].as_str().unwrap_or("")
    )
}
