//! `bench schedule`: registers simulated nodes (kwok-style, the same code as
//! `reddwarf sim-nodes`: Leases renewed, bound pods marked Running through the status
//! subresource), creates pods, and measures how fast they are scheduled and running.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{fresh_namespace, progress, run_id, Common, Report};
use crate::client::Target;
use crate::simnodes::{self, SimNodesArgs};
use crate::GoDuration;

#[derive(clap::Args, Clone, Debug)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub common: Common,
    /// Simulated nodes to register.
    #[arg(long, default_value_t = 1_000)]
    pub nodes: usize,
    /// Pods to create.
    #[arg(long, default_value_t = 10_000)]
    pub pods: u64,
    /// Give up waiting for pods to run after this long.
    #[arg(long, default_value = "10m")]
    pub timeout: GoDuration,
}

/// When each pod of a run was created, bound and first seen Running.
#[derive(Default)]
pub struct PodTimes {
    pub created: HashMap<String, Instant>,
    pub bound: HashMap<String, Instant>,
    pub running: HashMap<String, Instant>,
}

/// Follows the pods of `ns` into `times` (and counts the Running ones in `running`);
/// `created` is noted too when `note_created` (else the caller notes its own send times).
pub fn follow_pods(
    target: &Target,
    ns: &str,
    times: Arc<Mutex<PodTimes>>,
    running: Arc<AtomicU64>,
    note_created: bool,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    super::follow(
        target,
        format!("/api/v1/namespaces/{ns}/pods"),
        move |p, now| {
            let name = p["metadata"]["name"].as_str().unwrap_or("").to_string();
            let mut t = times.lock().unwrap();
            if note_created {
                t.created.entry(name.clone()).or_insert(now);
            }
            if p["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
            {
                t.bound.entry(name.clone()).or_insert(now);
            }
            if p["status"]["phase"] == "Running" && !t.running.contains_key(&name) {
                t.running.insert(name, now);
                running.fetch_add(1, Ordering::Relaxed);
            }
        },
    )
}

fn pod(name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench-schedule"}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
    }))
    .expect("encode")
}

pub async fn run(a: ScheduleArgs) -> anyhow::Result<Report> {
    let target = Target::from_kubeconfig(&a.common.kubeconfig)?;
    let id = run_id();
    let ns = fresh_namespace(&target, "bench-schedule").await?;

    let sim = SimCluster::start(&a.common.kubeconfig, &target, a.nodes, &id).await?;
    let rss = RssSampler::start(&target);
    let rss_before = rss.before_mib().await;

    // Watch our namespace's pods from now on: when each is bound, and when it runs.
    let times = Arc::new(Mutex::new(PodTimes::default()));
    let running = Arc::new(AtomicU64::new(0));
    let watcher = follow_pods(&target, &ns, times.clone(), running.clone(), false);

    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut creators = Vec::new();
    for _ in 0..a.common.concurrency.max(1) {
        let (target, next, errors, times, ns) = (
            target.clone(),
            next.clone(),
            errors.clone(),
            times.clone(),
            ns.clone(),
        );
        let count = a.pods;
        creators.push(tokio::spawn(async move {
            let mut conn = target.connect().await?;
            let path = format!("/api/v1/namespaces/{ns}/pods");
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(());
                }
                let name = format!("pod-{i}");
                let sent = Instant::now();
                let (code, _) = conn.request("POST", &path, Some(pod(&name))).await?;
                if code == 201 {
                    times.lock().unwrap().created.insert(name, sent);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let pb = progress(a.pods, "running");
    let deadline = Instant::now() + a.timeout.0;
    let mut created_in = None;
    loop {
        if created_in.is_none() && creators.iter().all(|c| c.is_finished()) {
            created_in = Some(started.elapsed());
        }
        let n = running.load(Ordering::Relaxed);
        pb.set_position(n);
        if n + errors.load(Ordering::Relaxed) >= a.pods {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pb.finish_and_clear();
    for c in creators {
        c.await??;
    }
    watcher.abort();

    let t = std::mem::take(&mut *times.lock().unwrap());
    let lat = |done: &HashMap<String, Instant>| -> (Vec<Duration>, Option<Instant>) {
        let mut v: Vec<Duration> = done
            .iter()
            .filter_map(|(n, at)| t.created.get(n).map(|c| at.saturating_duration_since(*c)))
            .collect();
        v.sort();
        (v, done.values().max().copied())
    };
    let (to_bound, last_bound) = lat(&t.bound);
    let (to_running, last_running) = lat(&t.running);
    let span = |last: Option<Instant>| {
        last.map(|l| l.saturating_duration_since(started))
            .unwrap_or_default()
    };
    let mut r = Report::new("schedule", &a.common.output);
    r.add("nodes", json!(a.nodes), a.nodes.to_string());
    r.add(
        "pods_created",
        json!(t.created.len()),
        format!(
            "{} in {:.2}s ({} errors)",
            t.created.len(),
            created_in.unwrap_or_default().as_secs_f64(),
            errors.load(Ordering::Relaxed)
        ),
    );
    for (key, what, v, last) in [
        ("scheduled", "bound", &to_bound, last_bound),
        ("running", "Running", &to_running, last_running),
    ] {
        let secs = span(last).as_secs_f64().max(1e-9);
        r.add(
            &format!("{key}_per_second"),
            json!(v.len() as f64 / secs),
            format!(
                "{} pods {what} in {secs:.2}s: {:.0} pods/s",
                v.len(),
                v.len() as f64 / secs
            ),
        );
        let p = |q| super::report::percentile(v, q).as_secs_f64() * 1e3;
        r.add(
            &format!("{key}_latency_ms"),
            json!({"p50": p(0.5), "p99": p(0.99)}),
            format!(
                "create to {what}: p50 {:.1} ms   p99 {:.1} ms",
                p(0.5),
                p(0.99)
            ),
        );
    }

    rss.report(&mut r, rss_before, a.pods).await;
    r.print();
    sim.cleanup(&target, &ns).await?;
    Ok(r)
}

/// Simulated nodes in this process (the code of `reddwarf sim-nodes`), labelled with the run.
pub struct SimCluster {
    id: String,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl SimCluster {
    /// Registers `nodes` nodes and waits (up to 300 s) until all are Ready.
    pub async fn start(
        kubeconfig: &std::path::Path,
        target: &Target,
        nodes: usize,
        id: &str,
    ) -> anyhow::Result<SimCluster> {
        let task = tokio::spawn(simnodes::run(SimNodesArgs {
            kubeconfig: kubeconfig.to_path_buf(),
            count: nodes,
            prefix: format!("bench-{id}"),
            first_index: 0,
            cpu: "32".into(),
            memory: "256Gi".into(),
            pods: "110".into(),
            labels: vec![format!("bench.reddwarf.dev/run={id}")],
            taints: vec![],
            renew_interval: GoDuration(Duration::from_secs(10)),
            run_time: GoDuration(Duration::from_secs(1)),
            stop_time: GoDuration(Duration::ZERO),
            // Real kubelets each have their own connection; 64 keeps the status writes
            // concurrent enough to share fsyncs, as theirs would.
            connections: 64,
        }));
        let pb = progress(nodes as u64, "nodes");
        let mut conn = target.connect().await?;
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let (code, body) = conn
                .request(
                    "GET",
                    &format!("/api/v1/nodes?labelSelector=bench.reddwarf.dev%2Frun%3D{id}"),
                    None,
                )
                .await?;
            anyhow::ensure!(code == 200, "listing nodes: {code}");
            let list: Value = serde_json::from_slice(&body)?;
            let ready = list["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter(|n| {
                            n["status"]["conditions"].as_array().is_some_and(|cs| {
                                cs.iter()
                                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
                            })
                        })
                        .count()
                })
                .unwrap_or(0);
            pb.set_position(ready as u64);
            if ready >= nodes {
                break;
            }
            if task.is_finished() {
                anyhow::bail!("simulated nodes stopped: {:?}", task.await);
            }
            anyhow::ensure!(Instant::now() < deadline, "nodes not ready in 300s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        pb.finish_and_clear();
        Ok(SimCluster {
            id: id.to_string(),
            task,
        })
    }

    /// Leaves the cluster as found: the namespace and its pods go (the simulated kubelets
    /// confirm the pods' graceful deletion, so they must still run), then the nodes.
    pub async fn cleanup(self, target: &Target, ns: &str) -> anyhow::Result<()> {
        let mut conn = target.connect().await?;
        let _ = conn
            .request("DELETE", &format!("/api/v1/namespaces/{ns}"), None)
            .await;
        let pb = progress(1, "cleanup");
        let started = Instant::now();
        let deadline = started + Duration::from_secs(900);
        let mut gone = false;
        while Instant::now() < deadline {
            match conn
                .request("GET", &format!("/api/v1/namespaces/{ns}"), None)
                .await
            {
                Ok((404, _)) => {
                    gone = true;
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                Err(_) => conn = target.connect().await?,
            }
        }
        pb.finish_and_clear();
        // Deleting a namespace of many pods is a load of its own (every pod is marked, then
        // confirmed by its kubelet): said on stderr, after the report.
        if gone {
            eprintln!(
                "cleanup: namespace {ns} deleted in {:.1}s",
                started.elapsed().as_secs_f64()
            );
        } else {
            eprintln!(
                "cleanup: namespace {ns} still terminating after {:.0}s; left to the server",
                started.elapsed().as_secs_f64()
            );
        }
        self.task.abort();
        let _ = conn
            .request(
                "DELETE",
                &format!(
                    "/api/v1/nodes?labelSelector=bench.reddwarf.dev%2Frun%3D{}",
                    self.id
                ),
                None,
            )
            .await;
        Ok(())
    }
}

/// The server's resident memory, read from its `/metrics` every 250 ms; keeps the peak. The
/// server's heap (bytes allocated and not freed) is sampled alongside.
pub struct RssSampler {
    peak: Arc<AtomicU64>,
    last: Arc<AtomicU64>,
    heap: Arc<AtomicU64>,
    heap_before: AtomicU64,
    task: tokio::task::JoinHandle<()>,
}

/// The server's RSS and heap bytes from its metrics.
async fn server_rss(conn: &mut crate::client::Conn) -> Option<(u64, u64)> {
    let (code, body) = conn.request("GET", "/metrics", None).await.ok()?;
    if code != 200 {
        return None;
    }
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    };
    Some((
        value("process_resident_memory_bytes")?,
        value("reddwarf_heap_bytes").unwrap_or(0),
    ))
}

impl RssSampler {
    pub fn start(target: &Target) -> RssSampler {
        let (peak, last) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let heap = Arc::new(AtomicU64::new(0));
        let task = {
            let (peak, last, heap, target) =
                (peak.clone(), last.clone(), heap.clone(), target.clone());
            tokio::spawn(async move {
                let Ok(mut conn) = target.connect().await else {
                    return;
                };
                loop {
                    match server_rss(&mut conn).await {
                        Some((v, h)) => {
                            heap.store(h, Ordering::Relaxed);
                            last.store(v, Ordering::Relaxed);
                            peak.fetch_max(v, Ordering::Relaxed);
                        }
                        None => match target.connect().await {
                            Ok(c) => conn = c,
                            Err(_) => return,
                        },
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };
        RssSampler {
            peak,
            last,
            heap,
            heap_before: AtomicU64::new(0),
            task,
        }
    }

    /// Forgets the peak so far: the next samples start a new one.
    pub fn reset_peak(&self) {
        self.peak
            .store(self.last.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The highest sample since the start or the last [`RssSampler::reset_peak`].
    pub fn peak_mib(&self) -> f64 {
        self.peak.load(Ordering::Relaxed) as f64 / (1 << 20) as f64
    }

    /// The latest sample, waiting for the first.
    pub async fn current_mib(&self) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.last.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.last.load(Ordering::Relaxed) as f64 / (1 << 20) as f64
    }

    /// The latest sample before the pods: RSS in MiB (the heap is kept for the report).
    pub async fn before_mib(&self) -> f64 {
        let rss = self.current_mib().await;
        self.heap_before
            .store(self.heap.load(Ordering::Relaxed), Ordering::Relaxed);
        rss
    }

    fn heap_mib(&self) -> f64 {
        self.heap.load(Ordering::Relaxed) as f64 / (1 << 20) as f64
    }

    /// Adds the server's RSS before the pods, at its peak and now, and the growth per pod.
    pub async fn report(self, r: &mut Report, before_mib: f64, pods: u64) {
        // A fresh sample, not one from before the last pods ran.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = self.current_mib().await;
        let peak = self.peak_mib();
        let per_pod_kib = (now - before_mib).max(0.0) * 1024.0 / pods.max(1) as f64;
        let heap_before = self.heap_before.load(Ordering::Relaxed) as f64 / (1 << 20) as f64;
        let heap_now = self.heap_mib();
        let heap_per_pod_kib = (heap_now - heap_before).max(0.0) * 1024.0 / pods.max(1) as f64;
        let (settled_rss, settled_heap, settled_after) = self.settle().await;
        self.task.abort();
        let settled_per_pod_kib = (settled_rss - before_mib).max(0.0) * 1024.0 / pods.max(1) as f64;
        r.add(
            "server_rss_mib",
            json!({"before_pods": before_mib, "peak": peak, "after": now, "per_pod_kib": per_pod_kib}),
            format!(
                "server RSS: {before_mib:.0} MiB with the nodes, {peak:.0} MiB at peak, {now:.0} MiB with the pods ({per_pod_kib:.1} KiB per pod)"
            ),
        );
        r.add(
            "server_heap_mib",
            json!({"before_pods": heap_before, "after": heap_now, "per_pod_kib": heap_per_pod_kib}),
            format!(
                "server heap (allocated, not freed): {heap_before:.0} MiB with the nodes, {heap_now:.0} MiB with the pods ({heap_per_pod_kib:.1} KiB per pod)"
            ),
        );
        r.add(
            "server_settled_mib",
            json!({"rss": settled_rss, "heap": settled_heap, "after_s": settled_after.as_secs_f64(),
                "rss_per_pod_kib": settled_per_pod_kib}),
            format!(
                "server settled {:.0}s later, pods still there: RSS {settled_rss:.0} MiB ({settled_per_pod_kib:.1} KiB per pod beyond the nodes), heap {settled_heap:.0} MiB",
                settled_after.as_secs_f64()
            ),
        );
    }

    /// Waits for the server to go quiet once the pods run (controllers, events and status
    /// writes trail the last pod), then samples: the steady state with the pods, which is
    /// what a cluster of this size costs, as against the peak of getting there. Quiet means
    /// the heap fell by less than 1% over 5 s; at most 60 s are waited.
    async fn settle(&self) -> (f64, f64, Duration) {
        let start = Instant::now();
        let mut window = std::collections::VecDeque::new();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            window.push_back(self.heap.load(Ordering::Relaxed));
            if window.len() > 6 {
                window.pop_front();
            }
            let (first, last) = (window[0] as f64, *window.back().unwrap_or(&0) as f64);
            // `>=`: a server without the heap metric (another distribution) reads 0 throughout.
            let quiet = window.len() == 6 && last >= first * 0.99;
            if quiet || start.elapsed() >= Duration::from_secs(60) {
                return (
                    self.last.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
                    self.heap_mib(),
                    start.elapsed(),
                );
            }
        }
    }
}
