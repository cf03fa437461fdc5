//! `bench rollout`: Deployments, not bare pods. Registers simulated nodes, creates
//! Deployments the way `kubectl apply` does (a POST carrying the last-applied annotation), and
//! measures how fast the Deployment → ReplicaSet → pod path gets every replica created, bound
//! and Running, with the server's memory before and after.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::schedule::{follow_pods, PodTimes, RssSampler, SimCluster};
use super::{fresh_namespace, progress, run_id, Common, Report};
use crate::client::Target;
use crate::GoDuration;

#[derive(clap::Args, Clone, Debug)]
pub struct RolloutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Simulated nodes to register.
    #[arg(long, default_value_t = 1_000)]
    pub nodes: usize,
    /// Deployments to apply.
    #[arg(long, default_value_t = 10)]
    pub deployments: usize,
    /// Replicas of each.
    #[arg(long, default_value_t = 1_000)]
    pub replicas: u64,
    /// Give up waiting for pods to run after this long.
    #[arg(long, default_value = "15m")]
    pub timeout: GoDuration,
    /// Keep the Deployments and the nodes this long after measuring, before deleting them
    /// (to look at the cluster, or profile the server, with the pods in place).
    #[arg(long, default_value = "0s")]
    pub hold: GoDuration,
}

fn deployment(name: &str, replicas: u64) -> Vec<u8> {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
            },
        },
    });
    let applied = serde_json::to_string(&d).expect("encode");
    d["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": applied + "\n"});
    serde_json::to_vec(&d).expect("encode")
}

pub async fn run(a: RolloutArgs) -> anyhow::Result<Report> {
    let target = Target::from_kubeconfig(&a.common.kubeconfig)?;
    let id = run_id();
    let ns = fresh_namespace(&target, "bench-rollout").await?;
    let sim = SimCluster::start(&a.common.kubeconfig, &target, a.nodes, &id).await?;
    let rss = RssSampler::start(&target);
    let rss_before = rss.before_mib().await;
    let total = a.deployments as u64 * a.replicas;

    // Every pod of the namespace from now on: when it appeared, was bound, ran.
    let seen = Arc::new(Mutex::new(PodTimes::default()));
    let running = Arc::new(AtomicU64::new(0));
    let watcher = follow_pods(&target, &ns, seen.clone(), running.clone(), true);

    let started = Instant::now();
    let mut applies = Vec::new();
    for d in 0..a.deployments {
        let (target, ns, replicas) = (target.clone(), ns.clone(), a.replicas);
        applies.push(tokio::spawn(async move {
            let mut conn = target.connect().await?;
            let (code, body) = conn
                .request(
                    "POST",
                    &format!(
                        "/apis/apps/v1/namespaces/{ns}/deployments?fieldManager=kubectl-client-side-apply"
                    ),
                    Some(deployment(&format!("web-{d}"), replicas)),
                )
                .await?;
            anyhow::ensure!(
                code == 201,
                "creating deployment: {code} {}",
                String::from_utf8_lossy(&body)
            );
            anyhow::Ok(())
        }));
    }
    for t in applies {
        t.await??;
    }
    let applied_in = started.elapsed();

    let pb = progress(total, "running");
    let deadline = Instant::now() + a.timeout.0;
    let mut timed_out = false;
    loop {
        let n = running.load(Ordering::Relaxed);
        pb.set_position(n);
        if n >= total {
            break;
        }
        if Instant::now() > deadline {
            timed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pb.finish_and_clear();
    watcher.abort();

    let s = std::mem::take(&mut *seen.lock().unwrap());
    let mut r = Report::new("rollout", &a.common.output);
    r.add("nodes", json!(a.nodes), a.nodes.to_string());
    r.add(
        "deployments",
        json!({"count": a.deployments, "replicas": a.replicas, "applied_s": applied_in.as_secs_f64()}),
        format!(
            "{} × {} replicas, applied in {:.2}s{}",
            a.deployments,
            a.replicas,
            applied_in.as_secs_f64(),
            if timed_out { " (timed out waiting)" } else { "" }
        ),
    );
    for (key, what, done) in [
        ("created", "created", &s.created),
        ("scheduled", "bound", &s.bound),
        ("running", "Running", &s.running),
    ] {
        let last = done
            .values()
            .max()
            .map(|l| l.saturating_duration_since(started))
            .unwrap_or_default();
        let secs = last.as_secs_f64().max(1e-9);
        r.add(
            &format!("{key}_per_second"),
            json!(done.len() as f64 / secs),
            format!(
                "{} pods {what} {secs:.2}s after the apply: {:.0} pods/s",
                done.len(),
                done.len() as f64 / secs
            ),
        );
    }
    let mut to_running: Vec<Duration> = s
        .running
        .iter()
        .filter_map(|(n, at)| s.created.get(n).map(|c| at.saturating_duration_since(*c)))
        .collect();
    to_running.sort();
    let p = |q| super::report::percentile(&to_running, q).as_secs_f64() * 1e3;
    r.add(
        "created_to_running_ms",
        json!({"p50": p(0.5), "p99": p(0.99)}),
        format!(
            "pod created to Running: p50 {:.1} ms   p99 {:.1} ms",
            p(0.5),
            p(0.99)
        ),
    );
    rss.report(&mut r, rss_before, total).await;
    if !a.hold.0.is_zero() {
        eprintln!("measured; holding the pods for {:?}", a.hold.0);
        tokio::time::sleep(a.hold.0).await;
    }
    r.print();
    sim.cleanup(&target, &ns).await?;
    Ok(r)
}
