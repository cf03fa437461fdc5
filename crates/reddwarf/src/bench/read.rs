//! `bench get` and `bench list`: read latency, optionally with writers going on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::schedule::RssSampler;
use super::{background_writes, drive, fresh_namespace, populate, run_id, Common, Report};
use crate::client::Target;

#[derive(clap::Args, Clone, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    pub common: Common,
    /// GETs in total.
    #[arg(long, default_value_t = 20_000)]
    pub count: u64,
    /// Objects to read from (created first).
    #[arg(long, default_value_t = 1_000)]
    pub objects: u64,
    /// Clients creating objects meanwhile.
    #[arg(long, default_value_t = 0)]
    pub writers: usize,
}

#[derive(clap::Args, Clone, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub common: Common,
    /// LISTs in total.
    #[arg(long, default_value_t = 50)]
    pub count: u64,
    /// Objects in the listed namespace (created first).
    #[arg(long, default_value_t = 10_000)]
    pub objects: u64,
    /// Clients creating objects (in another namespace) meanwhile.
    #[arg(long, default_value_t = 0)]
    pub writers: usize,
}

pub async fn get(a: GetArgs) -> anyhow::Result<Report> {
    let target = Target::from_kubeconfig(&a.common.kubeconfig)?;
    let prefix = format!("get-{}", run_id());
    populate(&target, &a.common, &prefix, a.objects).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writes = background_writes(&target, &a.common, a.writers, stop.clone());
    let (ns, objects) = (a.common.namespace.clone(), a.objects.max(1));
    let (done, errors, elapsed) = drive(
        &target,
        a.common.concurrency,
        a.count,
        "get",
        200,
        move |i| {
            (
                "GET".into(),
                format!(
                    "/api/v1/namespaces/{ns}/configmaps/{prefix}-{}",
                    (i * 7919) % objects
                ),
                None,
            )
        },
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    let written = writes.await?;
    let mut r = Report::new("get", &a.common.output);
    r.add(
        "clients",
        json!(a.common.concurrency),
        format!("{} readers, {} writers", a.common.concurrency, a.writers),
    );
    r.latencies(
        "got",
        done.into_iter().map(|(_, d)| d).collect(),
        elapsed,
        errors,
    );
    r.add(
        "writes_meanwhile",
        json!(written),
        format!(
            "{written} creates ({:.0}/s)",
            written as f64 / elapsed.as_secs_f64()
        ),
    );
    Ok(r)
}

pub async fn list(a: ListArgs) -> anyhow::Result<Report> {
    let target = Target::from_kubeconfig(&a.common.kubeconfig)?;
    // The listed objects live in their own namespace so the list size is exact.
    let ns = fresh_namespace(&target, "bench-list").await?;
    let mut listed = a.common.clone();
    listed.namespace = ns.clone();
    populate(&target, &listed, "obj", a.objects).await?;
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    // First, while the server's memory has seen nothing larger than the creates.
    let memory = list_memory(&target, &path, a.objects).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writes = background_writes(&target, &a.common, a.writers, stop.clone());
    let (done, errors, elapsed) = drive(
        &target,
        a.common.concurrency,
        a.count,
        "list",
        200,
        move |_| ("GET".into(), path.clone(), None),
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    let written = writes.await?;
    let mut r = Report::new("list", &a.common.output);
    r.add(
        "objects",
        json!(a.objects),
        format!(
            "{} objects of {} B, {} clients, {} writers",
            a.objects, a.common.size, a.common.concurrency, a.writers
        ),
    );
    for (key, value, text) in memory {
        r.add(&key, value, text);
    }
    r.latencies(
        "listed",
        done.into_iter().map(|(_, d)| d).collect(),
        elapsed,
        errors,
    );
    r.add(
        "writes_meanwhile",
        json!(written),
        format!(
            "{written} creates ({:.0}/s)",
            written as f64 / elapsed.as_secs_f64()
        ),
    );
    Ok(r)
}

/// One LIST of the whole namespace in each format, alone, with the server's RSS sampled: how
/// much the server grows while it writes a response of that size. A whole list is written as
/// it is read; the last LIST asks for one page holding everything, which is built whole, for
/// comparison (it runs last: the memory it takes stays with the allocator).
async fn list_memory(
    target: &Target,
    path: &str,
    objects: u64,
) -> anyhow::Result<Vec<(String, serde_json::Value, String)>> {
    use http_body_util::BodyExt as _;
    let rss = RssSampler::start(target);
    let mut rows = Vec::new();
    let page = format!("{path}?limit={}", objects + 100);
    for (name, path, accept) in [
        ("json", path, "application/json"),
        ("protobuf", path, "application/vnd.kubernetes.protobuf"),
        ("json_one_page", page.as_str(), "application/json"),
    ] {
        // Let what the previous phase left settle before the baseline.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = rss.before_mib().await;
        rss.reset_peak();
        let mut conn = target.connect().await?;
        let started = Instant::now();
        let mut body = conn.stream_as(path, accept).await?;
        let mut bytes = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                bytes += data.len() as u64;
            }
        }
        let took = started.elapsed().as_secs_f64();
        // A sample taken after the response ended, so the peak covers all of it.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let peak = rss.peak_mib();
        let growth = (peak - before).max(0.0);
        let mib = bytes as f64 / (1 << 20) as f64;
        let pct = growth / mib.max(f64::MIN_POSITIVE) * 100.0;
        rows.push((
            format!("list_memory_{name}"),
            json!({"bytes": bytes, "seconds": took, "rss_before_mib": before,
                   "rss_peak_mib": peak, "growth_percent_of_response": pct}),
            format!(
                "{mib:.1} MiB in {took:.2} s; server RSS {before:.0} → {peak:.0} MiB (+{growth:.1} MiB, {pct:.1}% of the response)"
            ),
        ));
    }
    Ok(rows)
}
