//! `bench update`: PUTs of existing objects (each a read, a precondition and a durable write).

use serde_json::json;

use super::{configmap, drive, populate, run_id, Common, Report};
use crate::client::Target;

#[derive(clap::Args, Clone, Debug)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub common: Common,
    /// Updates in total.
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Objects the updates cycle over (created first).
    #[arg(long, default_value_t = 1_000)]
    pub objects: u64,
}

pub async fn run(a: UpdateArgs) -> anyhow::Result<Report> {
    let target = Target::from_kubeconfig(&a.common.kubeconfig)?;
    let prefix = format!("upd-{}", run_id());
    populate(&target, &a.common, &prefix, a.objects).await?;
    let (ns, size, objects) = (a.common.namespace.clone(), a.common.size, a.objects.max(1));
    // Unconditional updates (no resourceVersion), each with new data so none is a no-op.
    let (done, errors, elapsed) = drive(
        &target,
        a.common.concurrency,
        a.count,
        "update",
        200,
        move |i| {
            let name = format!("{prefix}-{}", i % objects);
            (
                "PUT".into(),
                format!("/api/v1/namespaces/{ns}/configmaps/{name}"),
                Some(configmap(&name, size, &i.to_string())),
            )
        },
    )
    .await?;
    let mut r = Report::new("update", &a.common.output);
    r.add(
        "clients",
        json!(a.common.concurrency),
        format!(
            "{} clients over {} objects",
            a.common.concurrency, a.objects
        ),
    );
    r.latencies(
        "updated",
        done.into_iter().map(|(_, d)| d).collect(),
        elapsed,
        errors,
    );
    Ok(r)
}
