//! `bench startup`: start fresh servers (this same binary) and measure the time from process
//! start to `/readyz` 200, idle memory, memory after a load, and the restart time with that
//! data.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{populate, Common, Report};
use crate::client::Target;

#[derive(clap::Args, Clone, Debug)]
pub struct StartupArgs {
    /// Servers to start (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// ConfigMaps to create before measuring memory under load (0: skip).
    #[arg(long, default_value_t = 10_000)]
    pub load: u64,
    /// `text` (a table) or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a server on `dir` and waits for `/readyz`; returns it and the time it took.
async fn start(dir: &Path) -> anyhow::Result<(Running, Duration, Target)> {
    let kubeconfig = dir.join("admin.kubeconfig");
    let _ = std::fs::remove_file(&kubeconfig);
    let started = Instant::now();
    let child = Command::new(std::env::current_exe()?)
        .args([
            "server",
            "--disable-agent",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let running = Running(child);
    let deadline = started + Duration::from_secs(30);
    loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "server in {} not ready within 30s",
            dir.display()
        );
        if let Ok(target) = Target::from_kubeconfig(&kubeconfig) {
            if let Ok(mut c) = target.connect().await {
                if let Ok((200, _)) = c.request("GET", "/readyz", None).await {
                    return Ok((running, started.elapsed(), target));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub async fn run(a: StartupArgs) -> anyhow::Result<Report> {
    let mut ready_ms = Vec::new();
    let mut idle = Vec::new();
    let mut loaded = None;
    let mut restart_ms = None;
    for run in 0..a.runs.max(1) {
        let dir = tempfile::tempdir()?;
        let (server, took, target) = start(dir.path()).await?;
        ready_ms.push(took.as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_secs(1)).await;
        idle.push(rss_kib(server.0.id()) as f64 / 1024.0);
        if run == 0 && a.load > 0 {
            let common = Common {
                kubeconfig: dir.path().join("admin.kubeconfig"),
                concurrency: 32,
                size: 1024,
                namespace: "default".into(),
                output: a.output.clone(),
            };
            populate(&target, &common, "load", a.load).await?;
            loaded = Some(rss_kib(server.0.id()) as f64 / 1024.0);
            drop(server);
            let (_again, took, _) = start(dir.path()).await?;
            restart_ms = Some(took.as_secs_f64() * 1e3);
        }
    }
    let mut r = Report::new("startup", &a.output);
    r.add(
        "ready_ms",
        json!({"median": median(ready_ms.clone()), "runs": ready_ms}),
        format!("{:.1} ms median to /readyz 200 over {} fresh starts (first start: CA and certificates generated)", median(ready_ms.clone()), a.runs.max(1)),
    );
    r.add(
        "idle_rss_mib",
        json!(median(idle.clone())),
        format!("{:.1} MiB idle RSS (median)", median(idle)),
    );
    if let Some(l) = loaded {
        r.add(
            "loaded_rss_mib",
            json!(l),
            format!("{l:.1} MiB RSS holding {} ConfigMaps of 1 KiB", a.load),
        );
    }
    if let Some(t) = restart_ms {
        r.add(
            "restart_ms",
            json!(t),
            format!(
                "{t:.1} ms to /readyz 200 restarting with {} ConfigMaps",
                a.load
            ),
        );
    }
    Ok(r)
}
