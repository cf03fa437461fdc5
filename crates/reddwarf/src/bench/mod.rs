//! `reddwarf bench`: load generation against a running server over real HTTPS, using the
//! admin kubeconfig (or, for `startup`, servers it starts itself). Benchmarks report numbers;
//! they assert nothing.

mod authz;
mod create;
mod custom;
mod ha;
mod pods;
mod read;
mod report;
mod rollout;
mod schedule;
mod startup;
mod update;
mod watch;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::client::{Conn, Target};
pub use report::Report;

#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(clap::Subcommand, Clone, Debug)]
pub enum Scenario {
    /// The cost of one authorization decision, in process, over many bindings.
    Authz(authz::AuthzArgs),
    /// Durable creates of ConfigMaps: throughput, latency, and fsyncs (group commit).
    Create(create::CreateArgs),
    /// Creates of custom objects (a large schema with CEL rules) next to ConfigMaps.
    Custom(custom::CustomArgs),
    /// Updates (PUT) of existing ConfigMaps: throughput and latency.
    Update(update::UpdateArgs),
    /// GETs of single objects, optionally with writes going on.
    Get(read::GetArgs),
    /// LISTs of a namespace holding many objects, optionally with writes going on.
    List(read::ListArgs),
    /// Many watchers on one resource while writes go on: delivery latency and events/s.
    Watch(watch::WatchArgs),
    /// Start-to-ready time and memory of freshly started servers.
    Startup(startup::StartupArgs),
    /// Simulated nodes and pods: how fast pods are scheduled and running.
    Schedule(schedule::ScheduleArgs),
    /// Deployments on simulated nodes: how fast every replica is created, bound and Running.
    Rollout(rollout::RolloutArgs),
    /// A cluster of members: failover time after leader kills, and a member joining through
    /// a snapshot of many objects.
    Ha(ha::HaArgs),
    /// Real pods on real node agents: create → Running, delete → gone, agent memory, and
    /// port-forward (tunnel) vs direct throughput.
    Pods(pods::PodsArgs),
}

/// Options every scenario that drives a running server shares.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// Kubeconfig with inline certificate data (the server's admin.kubeconfig).
    #[arg(
        long,
        env = "KUBECONFIG",
        default_value = "./reddwarf-data/admin.kubeconfig"
    )]
    pub kubeconfig: PathBuf,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Bytes of data per ConfigMap.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// `text` (a table) or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let report = match args.scenario {
        Scenario::Authz(a) => authz::run(a)?,
        Scenario::Create(a) => create::run(a).await?,
        Scenario::Custom(a) => custom::run(a).await?,
        Scenario::Update(a) => update::run(a).await?,
        Scenario::Get(a) => read::get(a).await?,
        Scenario::List(a) => read::list(a).await?,
        Scenario::Watch(a) => watch::run(a).await?,
        Scenario::Startup(a) => startup::run(a).await?,
        Scenario::Schedule(a) => schedule::run(a).await?,
        Scenario::Pods(a) => pods::run(a).await?,
        Scenario::Rollout(a) => rollout::run(a).await?,
        Scenario::Ha(a) => ha::run(a).await?,
    };
    report.print();
    Ok(())
}

/// Reads a watch response to its end, handing each event (one JSON object per line) to `f`
/// with the instant it arrived.
pub async fn for_each_watch_event(
    body: &mut hyper::body::Incoming,
    mut f: impl FnMut(serde_json::Value, Instant),
) {
    use http_body_util::BodyExt;
    let mut buf = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        let Some(data) = frame.data_ref() else {
            continue;
        };
        buf.extend_from_slice(data);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            if let Ok(ev) = serde_json::from_slice(&line) {
                f(ev, Instant::now());
            }
        }
    }
}

/// Follows a collection as an informer does: lists it, hands `f` every item, watches from the
/// list's revision, and lists again whenever the server ends the watch (a watcher that falls
/// more than a queue behind is closed). `f` gets each object and the instant it was seen.
pub fn follow(
    target: &Target,
    path: String,
    mut f: impl FnMut(&serde_json::Value, Instant) + Send + 'static,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let target = target.clone();
    tokio::spawn(async move {
        loop {
            let mut conn = target.connect().await?;
            let (code, body) = conn.request("GET", &path, None).await?;
            anyhow::ensure!(code == 200, "listing {path}: {code}");
            let list: serde_json::Value = serde_json::from_slice(&body)?;
            let now = Instant::now();
            for item in list["items"].as_array().into_iter().flatten() {
                f(item, now);
            }
            let rv = list["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("0")
                .to_string();
            let sep = if path.contains('?') { '&' } else { '?' };
            let mut stream = conn
                .stream(&format!(
                    "{path}{sep}watch=true&resourceVersion={rv}&timeoutSeconds=3600"
                ))
                .await?;
            for_each_watch_event(&mut stream, |ev, now| f(&ev["object"], now)).await;
        }
    })
}

/// A ConfigMap body of about `size` bytes of data.
pub fn configmap(name: &str, size: usize, extra: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"payload": "x".repeat(size), "extra": extra},
    }))
    .expect("encode")
}

/// A short id that keeps object names of different runs apart.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}", (std::process::id() as u64) << 32 | nanos as u64)
}

/// Creates a namespace of its own for a run (`<prefix>-<run id>`), so counts are exact.
pub async fn fresh_namespace(target: &Target, prefix: &str) -> anyhow::Result<String> {
    let ns = format!("{prefix}-{}", run_id());
    let mut conn = target.connect().await?;
    let body = serde_json::to_vec(
        &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )?;
    let (code, text) = conn
        .request("POST", "/api/v1/namespaces", Some(body))
        .await?;
    anyhow::ensure!(
        code == 201,
        "creating namespace {ns}: {code} {}",
        String::from_utf8_lossy(&text)
    );
    Ok(ns)
}

pub async fn fsyncs(conn: &mut Conn) -> anyhow::Result<u64> {
    let (code, body) = conn.request("GET", "/metrics", None).await?;
    anyhow::ensure!(code == 200, "GET /metrics answered {code}");
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|l| l.strip_prefix("reddwarf_raft_log_fsyncs_total "))
        .and_then(|v| v.trim().parse().ok())
        .context("no reddwarf_raft_log_fsyncs_total in /metrics")
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(total: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, {eta})",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Creates `count` ConfigMaps named `<prefix>-<i>` with `concurrency` clients.
pub async fn populate(
    target: &Target,
    common: &Common,
    prefix: &str,
    count: u64,
) -> anyhow::Result<()> {
    let pb = progress(count, "populate");
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..common.concurrency.max(1) {
        let (target, next, pb) = (target.clone(), next.clone(), pb.clone());
        let (ns, prefix, size) = (common.namespace.clone(), prefix.to_string(), common.size);
        tasks.push(tokio::spawn(async move {
            let mut conn = target.connect().await?;
            let path = format!("/api/v1/namespaces/{ns}/configmaps");
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(());
                }
                let (code, body) = conn
                    .request(
                        "POST",
                        &path,
                        Some(configmap(&format!("{prefix}-{i}"), size, "")),
                    )
                    .await?;
                anyhow::ensure!(
                    code == 201,
                    "create answered {code}: {}",
                    String::from_utf8_lossy(&body)
                );
                pb.inc(1);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    pb.finish_and_clear();
    Ok(())
}

/// Background writers that keep creating objects until `stop` is set; returns how many.
pub fn background_writes(
    target: &Target,
    common: &Common,
    writers: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    let (target, ns, size) = (target.clone(), common.namespace.clone(), common.size);
    tokio::spawn(async move {
        let done = Arc::new(AtomicU64::new(0));
        let id = run_id();
        let mut tasks = Vec::new();
        for w in 0..writers {
            let (target, ns, stop, done, id) = (
                target.clone(),
                ns.clone(),
                stop.clone(),
                done.clone(),
                id.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let Ok(mut conn) = target.connect().await else {
                    return;
                };
                let path = format!("/api/v1/namespaces/{ns}/configmaps");
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("bg-{id}-{w}-{i}");
                    if conn
                        .request("POST", &path, Some(configmap(&name, size, "")))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        done.load(Ordering::Relaxed)
    })
}

/// Runs `count` requests across `concurrency` clients; `req(i)` gives method, path and body.
/// Returns (index, latency) of each successful request, the error count and the wall time.
pub async fn drive<F>(
    target: &Target,
    concurrency: usize,
    count: u64,
    what: &str,
    ok: u16,
    req: F,
) -> anyhow::Result<(Vec<(u64, Duration)>, u64, Duration)>
where
    F: Fn(u64) -> (String, String, Option<Vec<u8>>) + Send + Sync + 'static,
{
    let req = Arc::new(req);
    let pb = progress(count, what);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (target, next, errors, req, pb) = (
            target.clone(),
            next.clone(),
            errors.clone(),
            req.clone(),
            pb.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let Ok(mut conn) = target.connect().await else {
                errors.fetch_add(1, Ordering::Relaxed);
                return lat;
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return lat;
                }
                let (method, path, body) = req(i);
                let t = Instant::now();
                match conn.request(&method, &path, body).await {
                    Ok((code, _)) if code == ok => lat.push((i, t.elapsed())),
                    Ok(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return lat;
                    }
                }
                pb.inc(1);
            }
        }));
    }
    let mut all = Vec::with_capacity(count as usize);
    for t in tasks {
        all.extend(t.await?);
    }
    pb.finish_and_clear();
    Ok((all, errors.load(Ordering::Relaxed), started.elapsed()))
}
