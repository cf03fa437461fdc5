//! `bench get` and `bench list`: read latency, optionally with writers going on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::json;

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
    let stop = Arc::new(AtomicBool::new(false));
    let writes = background_writes(&target, &a.common, a.writers, stop.clone());
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
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
