//! `bench pods`: real pods on real node agents. Creates pods running `sleep 3600`, takes
//! create → Running and delete → gone from a watch, reads the agent's (and its shims')
//! memory, and compares port-forward through the node tunnel with a direct download from the
//! pod IP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::report::rate;
use super::{fresh_namespace, progress, Common, Report};
use crate::client::Target;
use crate::GoDuration;

#[derive(clap::Args, Clone, Debug)]
pub struct PodsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Pods to create (each one container running `sleep 3600`).
    #[arg(long, default_value_t = 50)]
    pub pods: u64,
    /// The pods' image; warm (imported with the agent's `--images-dir`) unless pulled.
    #[arg(long, default_value = "busybox:1.36")]
    pub image: String,
    #[arg(long, default_value = "IfNotPresent", value_parser = ["IfNotPresent", "Never", "Always"])]
    pub image_pull_policy: String,
    /// Put every pod on this node (a `kubernetes.io/hostname` node selector).
    #[arg(long)]
    pub node: Option<String>,
    /// The pods' terminationGracePeriodSeconds. `sleep` as PID 1 ignores SIGTERM, so
    /// delete → gone includes this whole grace period.
    #[arg(long, default_value_t = 1)]
    pub grace_period: i64,
    /// Leave the pods (and their namespace) in place.
    #[arg(long)]
    pub keep: bool,
    /// Give up waiting for pods to run, or to go, after this long.
    #[arg(long, default_value = "5m")]
    pub timeout: GoDuration,
    /// PID of the node agent whose RSS (and its container shims') to report.
    #[arg(long)]
    pub agent_pid: Option<u32>,
    /// Size in MB of a file to download from a pod through `kubectl port-forward` and
    /// directly from the pod IP (0: skip). The pod IP must be reachable from here (the agent
    /// runs on this host).
    #[arg(long, default_value_t = 0)]
    pub port_forward_mb: u64,
    /// Downloads of each kind, alternating; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// kubectl binary (default: `kubectl.1.33` beside the `kubectl` on PATH, else `kubectl`).
    #[arg(long)]
    pub kubectl: Option<PathBuf>,
}

/// When each pod was asked for, seen running, asked to go, and seen gone.
#[derive(Default)]
struct Times {
    created: HashMap<String, Instant>,
    running: HashMap<String, Instant>,
    deleted: HashMap<String, Instant>,
    gone: HashMap<String, Instant>,
    /// Pods that will not run (image errors, failed containers): name → reason.
    stuck: HashMap<String, String>,
    /// Why each pod not yet running waits, as its last status said (`reason: message`).
    waiting: HashMap<String, String>,
}

fn sleeper(a: &PodsArgs, name: &str) -> Vec<u8> {
    let mut spec = json!({
        "terminationGracePeriodSeconds": a.grace_period,
        "containers": [{"name": "c", "image": a.image, "imagePullPolicy": a.image_pull_policy,
            "command": ["sleep", "3600"]}],
    });
    if let Some(n) = &a.node {
        spec["nodeSelector"] = json!({"kubernetes.io/hostname": n});
    }
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench-pods"}},
        "spec": spec,
    }))
    .expect("encode")
}

/// Phase Running with every container running (upstream's kubelet reports Running as soon
/// as one container is, so look at each).
fn is_running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|cs| {
                !cs.is_empty() && cs.iter().all(|c| c["state"]["running"].is_object())
            })
}

/// Why a pod will not run, if it has given up (so the run does not wait for its timeout).
fn stuck_reason(p: &Value) -> Option<String> {
    if p["status"]["phase"] == "Failed" {
        return Some(format!(
            "Failed: {}",
            p["status"]["reason"].as_str().unwrap_or("")
        ));
    }
    p["status"]["containerStatuses"]
        .as_array()?
        .iter()
        .find_map(|c| {
            let r = c["state"]["waiting"]["reason"].as_str()?;
            matches!(
                r,
                "ErrImagePull"
                    | "ImagePullBackOff"
                    | "ErrImageNeverPull"
                    | "InvalidImageName"
                    | "CreateContainerError"
                    | "CreateContainerConfigError"
                    | "RunContainerError"
                    | "CrashLoopBackOff"
            )
            .then(|| {
                format!(
                    "{r}: {}",
                    c["state"]["waiting"]["message"].as_str().unwrap_or("")
                )
            })
        })
}

/// The first waiting container's `reason: message`, or the pod's phase.
fn waiting_reason(p: &Value) -> Option<String> {
    let w = p["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["state"]["waiting"].is_object()))
        .map(|c| &c["state"]["waiting"]);
    match w {
        Some(w) => Some(format!(
            "{}: {}",
            w["reason"].as_str().unwrap_or(""),
            w["message"].as_str().unwrap_or("")
        )),
        None => p["status"]["phase"].as_str().map(str::to_string),
    }
}

/// Watches the namespace's pods from `rv` on, recording when each runs and when each goes;
/// re-watches from the last seen resourceVersion if the server ends the stream.
fn watch_pods(
    target: Target,
    ns: String,
    mut rv: String,
    times: Arc<Mutex<Times>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let Ok(mut conn) = target.connect().await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let path = format!(
                "/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}&timeoutSeconds=3600"
            );
            let Ok(mut stream) = conn.stream(&path).await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            super::for_each_watch_event(&mut stream, |ev, now| {
                let p = &ev["object"];
                if let Some(v) = p["metadata"]["resourceVersion"].as_str() {
                    rv = v.to_string();
                }
                let name = p["metadata"]["name"].as_str().unwrap_or("").to_string();
                let mut t = times.lock().unwrap();
                if ev["type"] == "DELETED" {
                    t.gone.entry(name).or_insert(now);
                } else if is_running(p) {
                    t.running.entry(name.clone()).or_insert(now);
                    t.stuck.remove(&name);
                } else if let Some(why) = stuck_reason(p) {
                    if !t.running.contains_key(&name) {
                        t.stuck.insert(name, why);
                    }
                } else if let Some(w) = waiting_reason(p) {
                    t.waiting.insert(name, w);
                }
            })
            .await;
        }
    })
}

/// The current resourceVersion of the namespace's pod list (where the watch starts).
async fn list_rv(target: &Target, ns: &str) -> anyhow::Result<String> {
    let mut conn = target.connect().await?;
    let (code, body) = conn
        .request(
            "GET",
            &format!("/api/v1/namespaces/{ns}/pods?limit=1"),
            None,
        )
        .await?;
    anyhow::ensure!(code == 200, "listing pods: {code}");
    Ok(
        serde_json::from_slice::<Value>(&body)?["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("0")
            .to_string(),
    )
}

/// Method, path and body of the request for one pod name.
type PodRequest = Arc<dyn Fn(&str) -> (String, String, Option<Vec<u8>>) + Send + Sync>;

/// Sends `count` requests (`pod-0..`) from `concurrency` clients, recording when each was
/// sent in `record` for those answered with one of `ok`. Returns the failures.
async fn fan_out(
    target: &Target,
    concurrency: usize,
    count: u64,
    ok: &'static [u16],
    times: Arc<Mutex<Times>>,
    req: PodRequest,
    record: fn(&mut Times) -> &mut HashMap<String, Instant>,
) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (target, next, times, req) = (target.clone(), next.clone(), times.clone(), req.clone());
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut conn = target.connect().await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(failures);
                }
                let name = format!("pod-{i}");
                let (method, path, body) = req(&name);
                let sent = Instant::now();
                let (code, text) = conn.request(&method, &path, body).await?;
                if ok.contains(&code) {
                    record(&mut times.lock().unwrap()).insert(name, sent);
                } else {
                    failures.push(format!(
                        "{method} {name}: {code} {}",
                        String::from_utf8_lossy(&text)
                    ));
                }
            }
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await??);
    }
    Ok(failures)
}

/// Waits until `done(times)` reaches `want` (or the deadline), showing progress.
async fn wait_for(
    times: &Mutex<Times>,
    want: u64,
    what: &str,
    deadline: Instant,
    done: fn(&Times) -> u64,
) -> bool {
    let pb = progress(want, what);
    let reached = loop {
        let n = done(&times.lock().unwrap());
        pb.set_position(n);
        if n >= want {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    pb.finish_and_clear();
    reached
}

/// Latencies from `from` to `to` for every pod in both, and the span from the first `from`
/// to the last `to`.
fn between(
    from: &HashMap<String, Instant>,
    to: &HashMap<String, Instant>,
) -> (Vec<Duration>, Duration) {
    let lat = to
        .iter()
        .filter_map(|(n, at)| from.get(n).map(|s| at.saturating_duration_since(*s)))
        .collect();
    let span = match (from.values().min(), to.values().max()) {
        (Some(first), Some(last)) => last.saturating_duration_since(*first),
        _ => Duration::ZERO,
    };
    (lat, span)
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// Proportional set size: shared pages (the shims are all the same binary) split among the
/// processes mapping them, so a sum over processes does not count them many times.
fn pss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The agent's container shims (children of the agent started as the shim): how many, and
/// their summed RSS and PSS in KiB.
fn shims_memory_kib(agent: u32) -> (usize, u64, u64) {
    let (mut count, mut rss, mut pss) = (0, 0, 0);
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0, 0, 0);
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if status_kib(pid, "PPid:") != Some(agent as u64) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let is_shim = cmdline
            .split(|b| *b == 0)
            .nth(1)
            .is_some_and(|a| a == reddwarf_runtime::shim::SHIM_ARG.as_bytes());
        if is_shim {
            count += 1;
            rss += rss_kib(pid).unwrap_or(0);
            pss += pss_kib(pid).unwrap_or(0);
        }
    }
    (count, rss, pss)
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

/// Adds the agent's RSS (and its shims') as `agent_<when>`.
fn agent_memory(r: &mut Report, pid: Option<u32>, when: &str, label: &str) {
    let Some(pid) = pid else { return };
    let Some(rss) = rss_kib(pid) else {
        r.add(
            &format!("agent_{when}"),
            Value::Null,
            format!("agent pid {pid} is gone"),
        );
        return;
    };
    let (shims, shims_rss, shims_pss) = shims_memory_kib(pid);
    r.add(
        &format!("agent_{when}"),
        json!({"rss_mib": mib(rss), "pss_mib": mib(pss_kib(pid).unwrap_or(0)), "shims": shims,
            "shims_rss_mib": mib(shims_rss), "shims_pss_mib": mib(shims_pss)}),
        format!(
            "agent RSS {label}: {:.1} MiB; {shims} shims: RSS {:.1} MiB summed, PSS {:.1} MiB",
            mib(rss),
            mib(shims_rss),
            mib(shims_pss)
        ),
    );
}

pub async fn run(a: PodsArgs) -> anyhow::Result<Report> {
    let target = Target::from_kubeconfig(&a.common.kubeconfig)?;
    let ns = fresh_namespace(&target, "bench-pods").await?;
    let mut r = Report::new("pods", &a.common.output);
    r.add("namespace", json!(ns), ns.clone());
    // Pods wait for their namespace's default ServiceAccount (its token is mounted).
    let mut conn = target.connect().await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _) = conn
            .request(
                "GET",
                &format!("/api/v1/namespaces/{ns}/serviceaccounts/default"),
                None,
            )
            .await?;
        if code == 200 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no default ServiceAccount in {ns} after 30s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent_memory(&mut r, a.agent_pid, "before", "before");

    let result = measure(&a, &target, &ns, &mut r).await;
    if !a.keep {
        // Whatever happened, leave no pods behind.
        let _ = conn
            .request("DELETE", &format!("/api/v1/namespaces/{ns}"), None)
            .await;
        let deadline = Instant::now() + a.timeout.0;
        while Instant::now() < deadline {
            match conn
                .request("GET", &format!("/api/v1/namespaces/{ns}"), None)
                .await
            {
                Ok((404, _)) => break,
                Ok(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                Err(_) => conn = target.connect().await?,
            }
        }
        if a.agent_pid.is_some() {
            // The agent frees what it held once the pods are gone; give it a moment.
            tokio::time::sleep(Duration::from_secs(5)).await;
            agent_memory(&mut r, a.agent_pid, "after", "after, pods gone");
        }
    }
    result?;
    Ok(r)
}

async fn measure(a: &PodsArgs, target: &Target, ns: &str, r: &mut Report) -> anyhow::Result<()> {
    let times = Arc::new(Mutex::new(Times::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_pods(
        target.clone(),
        ns.to_string(),
        list_rv(target, ns).await?,
        times.clone(),
        stop.clone(),
    );
    let outcome = if a.pods > 0 {
        pods_phase(a, target, ns, r, &times).await
    } else {
        Ok(())
    };
    stop.store(true, Ordering::Relaxed);
    watcher.abort();
    outcome?;
    if a.port_forward_mb > 0 {
        port_forward_phase(a, target, ns, r).await?;
    }
    Ok(())
}

async fn pods_phase(
    a: &PodsArgs,
    target: &Target,
    ns: &str,
    r: &mut Report,
    times: &Arc<Mutex<Times>>,
) -> anyhow::Result<()> {
    let create = {
        let (a, ns) = (a.clone(), ns.to_string());
        Arc::new(move |name: &str| {
            (
                "POST".to_string(),
                format!("/api/v1/namespaces/{ns}/pods"),
                Some(sleeper(&a, name)),
            )
        })
    };
    let failures = fan_out(
        target,
        a.common.concurrency,
        a.pods,
        &[201],
        times.clone(),
        create,
        |t| &mut t.created,
    )
    .await?;
    if let Some(f) = failures.first() {
        eprintln!("{} creates failed, the first: {f}", failures.len());
    }
    let created = times.lock().unwrap().created.len() as u64;
    let all_running = wait_for(
        times,
        created,
        "running",
        Instant::now() + a.timeout.0,
        |t| (t.running.len() + t.stuck.len()) as u64,
    )
    .await;
    let (to_running, span) = {
        let t = times.lock().unwrap();
        between(&t.created, &t.running)
    };
    let n = to_running.len();
    r.add(
        "pods_running",
        json!({"created": created, "running": n, "create_errors": failures.len(),
            "seconds": span.as_secs_f64(), "per_second": rate(n, span)}),
        format!(
            "{n} of {} pods Running in {:.2}s: {:.2} pods/s ({} create errors{})",
            a.pods,
            span.as_secs_f64(),
            rate(n, span),
            failures.len(),
            if all_running { "" } else { ", timed out" }
        ),
    );
    r.spread("running_ms", "create to Running", to_running);
    {
        let t = times.lock().unwrap();
        let mut reasons: HashMap<&str, usize> = HashMap::new();
        for why in t.stuck.values() {
            *reasons.entry(why.as_str()).or_default() += 1;
        }
        for (why, count) in reasons {
            eprintln!("{count} pods stuck: {why}");
        }
        if !all_running {
            let mut waits: HashMap<&str, usize> = HashMap::new();
            for (name, why) in &t.waiting {
                if !t.running.contains_key(name) && !t.stuck.contains_key(name) {
                    *waits.entry(why.as_str()).or_default() += 1;
                }
            }
            for (why, count) in waits {
                eprintln!("{count} pods still waiting: {why}");
            }
        }
        if !t.stuck.is_empty() {
            r.add("stuck", json!(t.stuck.len()), format!("{}", t.stuck.len()));
        }
    }
    agent_memory(r, a.agent_pid, "running", &format!("with {n} pods"));
    if a.keep {
        return Ok(());
    }

    let delete = {
        let ns = ns.to_string();
        Arc::new(move |name: &str| {
            (
                "DELETE".to_string(),
                format!("/api/v1/namespaces/{ns}/pods/{name}"),
                None,
            )
        })
    };
    let failures = fan_out(
        target,
        a.common.concurrency,
        a.pods,
        &[200, 202],
        times.clone(),
        delete,
        |t| &mut t.deleted,
    )
    .await?;
    if let Some(f) = failures.first() {
        eprintln!("{} deletes failed, the first: {f}", failures.len());
    }
    let deleted = times.lock().unwrap().deleted.len() as u64;
    let all_gone = wait_for(times, deleted, "gone", Instant::now() + a.timeout.0, |t| {
        t.gone.len() as u64
    })
    .await;
    let (to_gone, span) = {
        let t = times.lock().unwrap();
        between(&t.deleted, &t.gone)
    };
    let n = to_gone.len();
    r.add(
        "pods_gone",
        json!({"deleted": deleted, "gone": n, "seconds": span.as_secs_f64(),
            "per_second": rate(n, span), "grace_period_seconds": a.grace_period}),
        format!(
            "{n} of {deleted} pods gone in {:.2}s: {:.2} pods/s (grace period {}s{})",
            span.as_secs_f64(),
            rate(n, span),
            a.grace_period,
            if all_gone { "" } else { ", timed out" }
        ),
    );
    r.spread("gone_ms", "delete to gone", to_gone);
    Ok(())
}

/// kubectl as the tests find it: the newest versioned binary beside the `kubectl` on PATH.
fn find_kubectl() -> PathBuf {
    let resolved = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("kubectl"))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::canonicalize(p).ok())
    });
    if let Some(p) = resolved {
        let versioned = p.with_file_name("kubectl.1.33");
        return if versioned.is_file() { versioned } else { p };
    }
    PathBuf::from("kubectl")
}

/// GETs `path` over plain HTTP/1.0 from `addr` and reads the body to the end; returns the
/// body's length and the time from connecting to the last byte.
async fn download(addr: SocketAddr, path: &str) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n").as_bytes())
        .await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut head = Vec::new();
    let mut in_body = false;
    let mut body = 0u64;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if in_body {
            body += n as u64;
            continue;
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            body = (head.len() - end - 4) as u64;
            head.truncate(end + 4);
            in_body = true;
        }
    }
    let status = String::from_utf8_lossy(head.split(|b| *b == b'\n').next().unwrap_or(b""))
        .trim()
        .to_string();
    anyhow::ensure!(
        status.contains(" 200"),
        "GET {path} from {addr}: {status:?}"
    );
    Ok((body, started.elapsed()))
}

/// `kubectl port-forward` to `pod`'s `port` on a free local port; returns the child (killed
/// on drop) and the local address once it forwards.
async fn port_forward(
    kubectl: &std::path::Path,
    kubeconfig: &std::path::Path,
    ns: &str,
    pod: &str,
    port: u16,
) -> anyhow::Result<(tokio::process::Child, SocketAddr)> {
    let mut child = tokio::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["-n", ns, "port-forward", "--address", "127.0.0.1"])
        .arg(format!("pod/{pod}"))
        .arg(format!(":{port}"))
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", kubectl.display()))?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
    // "Forwarding from 127.0.0.1:41234 -> 8080"
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix("Forwarding from ") {
                if let Some(a) = rest.split_whitespace().next() {
                    return Ok(a.parse::<SocketAddr>()?);
                }
            }
        }
        anyhow::bail!("kubectl port-forward exited without forwarding")
    })
    .await
    .context("kubectl port-forward did not start in 30s")??;
    // Keep draining stdout ("Handling connection for ...") so kubectl never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, addr))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

async fn port_forward_phase(
    a: &PodsArgs,
    target: &Target,
    ns: &str,
    r: &mut Report,
) -> anyhow::Result<()> {
    const PORT: u16 = 8080;
    let mb = a.port_forward_mb;
    // Random bytes, so nothing on the way can compress them.
    let script = format!(
        "mkdir -p /www && dd if=/dev/urandom of=/www/big bs=1048576 count={mb} 2>/dev/null \
         && exec httpd -f -p {PORT} -h /www"
    );
    let mut spec = json!({
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "httpd", "image": a.image, "imagePullPolicy": a.image_pull_policy,
            "command": ["sh", "-c", script],
            "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 1}}],
    });
    if let Some(n) = &a.node {
        spec["nodeSelector"] = json!({"kubernetes.io/hostname": n});
    }
    let body = serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "serve"}, "spec": spec,
    }))?;
    let mut conn = target.connect().await?;
    let (code, text) = conn
        .request("POST", &format!("/api/v1/namespaces/{ns}/pods"), Some(body))
        .await?;
    anyhow::ensure!(
        code == 201,
        "creating the file server pod: {code} {}",
        String::from_utf8_lossy(&text)
    );
    let deadline = Instant::now() + a.timeout.0;
    let ip = loop {
        let (code, text) = conn
            .request("GET", &format!("/api/v1/namespaces/{ns}/pods/serve"), None)
            .await?;
        let p: Value = serde_json::from_slice(&text).unwrap_or_default();
        let ready = p["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        if code == 200 && ready {
            break p["status"]["podIP"]
                .as_str()
                .context("a ready pod without podIP")?
                .parse::<std::net::IpAddr>()?;
        }
        if let Some(why) = stuck_reason(&p) {
            anyhow::bail!("the file server pod will not run: {why}");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the file server pod not ready in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let kubectl = a.kubectl.clone().unwrap_or_else(find_kubectl);
    let (mut child, local) =
        port_forward(&kubectl, &a.common.kubeconfig, ns, "serve", PORT).await?;
    let direct_addr = SocketAddr::new(ip, PORT);
    let want = mb * 1024 * 1024;
    let (mut direct, mut tunnel) = (Vec::new(), Vec::new());
    let mbps = |bytes: u64, d: Duration| bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9);
    let pb = progress(2 * a.rounds.max(1) as u64, "download");
    for _ in 0..a.rounds.max(1) {
        for (addr, out) in [(direct_addr, &mut direct), (local, &mut tunnel)] {
            let (bytes, took) = download(addr, "/big").await?;
            anyhow::ensure!(
                bytes == want,
                "downloaded {bytes} of {want} bytes from {addr}"
            );
            out.push(mbps(bytes, took));
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    let _ = child.start_kill();
    let _ = child.wait().await;
    let round = |v: &[f64]| {
        v.iter()
            .map(|x| (x * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    };
    let (d, t) = (median(direct.clone()), median(tunnel.clone()));
    r.add(
        "download_mb_per_second",
        json!({"size_mb": want as f64 / 1e6, "direct": d, "port_forward": t,
            "direct_runs": round(&direct), "port_forward_runs": round(&tunnel),
            "kubectl": kubectl.display().to_string()}),
        format!(
            "{mb} MiB from the pod: direct {d:.1} MB/s, kubectl port-forward {t:.1} MB/s \
             ({:.0}% of direct; medians of {}, {})",
            t / d.max(1e-9) * 100.0,
            a.rounds.max(1),
            kubectl.file_name().unwrap_or_default().to_string_lossy()
        ),
    );
    let _ = conn
        .request(
            "DELETE",
            &format!("/api/v1/namespaces/{ns}/pods/serve"),
            None,
        )
        .await;
    Ok(())
}
