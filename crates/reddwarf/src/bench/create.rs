//! `bench create`: durable creates, and how many of them shared each fsync.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use super::{configmap, drive, fsyncs, run_id, Common, Report};
use crate::client::Target;

#[derive(clap::Args, Clone, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub common: Common,
    /// Creates in total.
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Write the name of every acknowledged (201) create to this file, one per line.
    #[arg(long)]
    pub acked_log: Option<PathBuf>,
}

pub async fn run(a: CreateArgs) -> anyhow::Result<Report> {
    let target = Target::from_kubeconfig(&a.common.kubeconfig)?;
    let before = fsyncs(&mut target.connect().await?).await?;
    let prefix = format!("bench-{}", run_id());
    let (ns, size, p) = (a.common.namespace.clone(), a.common.size, prefix.clone());
    let (done, errors, elapsed) = drive(
        &target,
        a.common.concurrency,
        a.count,
        "create",
        201,
        move |i| {
            (
                "POST".into(),
                format!("/api/v1/namespaces/{ns}/configmaps"),
                Some(configmap(&format!("{p}-{i}"), size, "")),
            )
        },
    )
    .await?;
    let after = match target.connect().await {
        Ok(mut c) => fsyncs(&mut c).await.ok(),
        Err(_) => None,
    };
    if let Some(path) = &a.acked_log {
        let mut f = std::fs::File::create(path)?;
        for (i, _) in &done {
            writeln!(f, "{prefix}-{i}")?;
        }
        f.sync_all()?;
    }
    let ok = done.len() as f64;
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mut r = Report::new("create", &a.common.output);
    r.add(
        "clients",
        json!(a.common.concurrency),
        format!(
            "{} clients, {} B objects",
            a.common.concurrency, a.common.size
        ),
    );
    r.latencies(
        "created",
        done.into_iter().map(|(_, d)| d).collect(),
        elapsed,
        errors,
    );
    match after.map(|f| f.saturating_sub(before)) {
        Some(f) => {
            let per = if f == 0 { 0.0 } else { ok / f as f64 };
            r.add(
                "fsyncs",
                json!({"total": f, "per_second": f as f64 / secs, "creates_per_fsync": per}),
                format!("{f} ({:.0}/s, {per:.1} creates per fsync)", f as f64 / secs),
            )
        }
        None => r.add(
            "fsyncs",
            json!(null),
            "unknown (server unreachable after the run)".into(),
        ),
    }
    Ok(r)
}
