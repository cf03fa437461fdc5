//! `reddwarf bench`: load generation against a running server over real HTTPS, using the
//! admin kubeconfig. Benchmarks report numbers; they assert nothing.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::client::{Conn, Target};

#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(clap::Subcommand, Clone, Debug)]
pub enum Scenario {
    /// Durable creates of ConfigMaps: throughput, latency, and fsyncs (group commit).
    Create(CreateArgs),
}

#[derive(clap::Args, Clone, Debug)]
pub struct CreateArgs {
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
    /// Creates in total.
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Bytes of data per ConfigMap.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Append the name of every acknowledged (201) create to this file, one per line.
    #[arg(long)]
    pub acked_log: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.scenario {
        Scenario::Create(a) => create(a).await,
    }
}

async fn fsyncs(conn: &mut Conn) -> anyhow::Result<u64> {
    let (code, body) = conn.request("GET", "/metrics", None).await?;
    anyhow::ensure!(code == 200, "GET /metrics answered {code}");
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|l| l.strip_prefix("reddwarf_raft_log_fsyncs_total "))
        .and_then(|v| v.trim().parse().ok())
        .context("no reddwarf_raft_log_fsyncs_total in /metrics")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn create(a: CreateArgs) -> anyhow::Result<()> {
    let target = Target::from_kubeconfig(&a.kubeconfig)?;
    let mut probe = target.connect().await.context("connecting")?;
    let fsyncs_before = fsyncs(&mut probe).await?;
    let run_id: String = format!(
        "{:x}",
        std::process::id() ^ (Instant::now().elapsed().subsec_nanos())
    );
    let payload = "x".repeat(a.size);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::with_capacity(a.count as usize)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency.max(1) {
        let target = target.clone();
        let (next, errors, acked, latencies) = (
            next.clone(),
            errors.clone(),
            acked.clone(),
            latencies.clone(),
        );
        let (payload, run_id, ns, count) = (
            payload.clone(),
            run_id.clone(),
            a.namespace.clone(),
            a.count,
        );
        tasks.push(tokio::spawn(async move {
            let Ok(mut conn) = target.connect().await else {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let path = format!("/api/v1/namespaces/{ns}/configmaps");
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let name = format!("bench-{run_id}-{i}");
                let body = serde_json::to_vec(&serde_json::json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name}, "data": {"payload": payload},
                }))
                .expect("encode");
                let t = Instant::now();
                match conn.request("POST", &path, Some(body)).await {
                    Ok((201, _)) => {
                        latencies.lock().expect("lock").push(t.elapsed());
                        acked.lock().expect("lock").push(name);
                    }
                    Ok(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        // The connection is gone (server stopped): this client is done.
                        errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed();
    let fsyncs_after = match target.connect().await {
        Ok(mut c) => fsyncs(&mut c).await.ok(),
        Err(_) => None,
    };
    let acked = std::mem::take(&mut *acked.lock().expect("lock"));
    if let Some(path) = &a.acked_log {
        let mut f = std::fs::File::create(path)?;
        for n in &acked {
            writeln!(f, "{n}")?;
        }
        f.sync_all()?;
    }
    let mut lat = std::mem::take(&mut *latencies.lock().expect("lock"));
    lat.sort();
    let ok = acked.len() as f64;
    let secs = elapsed.as_secs_f64().max(1e-9);
    let fs = fsyncs_after.map(|f| f.saturating_sub(fsyncs_before));
    let summary = serde_json::json!({
        "scenario": "create",
        "concurrency": a.concurrency,
        "object_bytes": a.size,
        "created": acked.len(),
        "errors": errors.load(Ordering::Relaxed),
        "seconds": secs,
        "creates_per_second": ok / secs,
        "latency_ms": {
            "p50": percentile(&lat, 0.50).as_secs_f64() * 1e3,
            "p90": percentile(&lat, 0.90).as_secs_f64() * 1e3,
            "p99": percentile(&lat, 0.99).as_secs_f64() * 1e3,
        },
        "fsyncs": fs,
        "fsyncs_per_second": fs.map(|f| f as f64 / secs),
        "creates_per_fsync": fs.map(|f| if f == 0 { 0.0 } else { ok / f as f64 }),
    });
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "scenario        create ({} clients, {} B objects)",
            a.concurrency, a.size
        );
        println!(
            "created         {} ({} errors) in {:.2}s",
            acked.len(),
            summary["errors"],
            secs
        );
        println!("throughput      {:.0} creates/s", ok / secs);
        println!(
            "latency         p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms",
            summary["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
            summary["latency_ms"]["p90"].as_f64().unwrap_or(0.0),
            summary["latency_ms"]["p99"].as_f64().unwrap_or(0.0)
        );
        match fs {
            Some(f) => println!(
                "fsyncs          {f} ({:.0}/s, {:.1} creates per fsync)",
                f as f64 / secs,
                if f == 0 { 0.0 } else { ok / f as f64 }
            ),
            None => println!("fsyncs          unknown (server unreachable after the run)"),
        }
    }
    Ok(())
}
