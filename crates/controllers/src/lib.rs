//! Controllers, as tasks of the server process. They use kube-runtime (watcher, reflector,
//! Controller) through a `kube::Client` the binary builds over the API server's router, so
//! they see exactly the API clients see and their writes go through admission, validation and
//! raft like anyone's.
//!
//! What one controller's reconciles share (client, recorder, caches) is a struct named for the
//! controller: `DeploymentController`, `JobController`, `ReplicaSetController`, … — the
//! garbage collector, the volume binder and the scheduler keep theirs as `Gc`, `Binder` and
//! `Scheduler`.
//!
//! The k8s-openapi version feature is chosen by the binary, so this crate stays
//! version-agnostic.

mod apiservice;
mod cronjob;
pub use cronjob::next_after;
pub mod csr;
mod daemonset;
mod deployment;
mod endpoints;
pub mod events;
mod gc;
pub mod history;
mod job;
mod node_slim;
pub mod nodeipam;
mod nodelifecycle;
pub mod pod_cache;
pub mod pod_status;
mod podgc;
mod replicaset;
mod replicationcontroller;
mod root_ca;
pub mod scheduler;
mod serviceaccount;
mod statefulset;
pub mod volume;

// What the controllers share, one concept a module.
pub mod api_errors;
pub mod finalizers;
pub mod hash;
pub mod int_or_percent;
pub mod label_selector;
pub mod node_affinity;
pub mod ordering;
pub mod ownership;
pub mod pod_state;
pub mod pod_template;
pub mod taints;

use std::time::Duration;

use futures::future::BoxFuture;
use kube::Client;

/// What the controllers need besides the API.
#[derive(Clone)]
pub struct Settings {
    /// The cluster CA certificate (PEM) published as `kube-root-ca.crt` in every namespace.
    pub root_ca_pem: String,
    /// The cluster CA's key (PEM), for signing node client certificates.
    pub ca_key_pem: String,
    /// How long a node's Lease may go unrenewed before the node is Ready=Unknown
    /// (`--node-monitor-grace-period`).
    pub node_monitor_grace_period: Duration,
    /// Terminated pods kept before the oldest are deleted (`--terminated-pod-gc-threshold`;
    /// 0 keeps them all).
    pub terminated_pod_gc_threshold: usize,
    /// Where the scheduler's metrics go (registered by the binary into `/metrics`).
    pub scheduler_metrics: scheduler::Metrics,
    /// Where node pod CIDRs come from (`--cluster-cidr`, `--node-cidr-mask-size`).
    pub cluster_cidr: nodeipam::ClusterCidr,
    /// Which controllers run (`--controllers`: `*`, `name`, `-name`).
    pub controllers: Vec<String>,
    /// Where on a node the local-path provisioner puts its volumes' directories
    /// (`--local-storage-path`).
    pub local_storage_path: std::path::PathBuf,
}

/// kube-controller-manager's `IsControllerEnabled`: the first entry naming the controller
/// decides; otherwise `*` enables it.
pub fn controller_enabled(list: &[String], name: &str) -> bool {
    let mut star = false;
    for c in list.iter().map(|c| c.trim()) {
        if c == name {
            return true;
        }
        if c.strip_prefix('-') == Some(name) {
            return false;
        }
        star |= c == "*";
    }
    star
}

/// What a reconcile can fail with; the controller logs it and requeues the object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed (a conflict is retried sooner).
    #[error("kube: {0}")]
    Kube(#[from] kube::Error),
}

/// The upstream identity each controller acts as (`--use-service-account-credentials`: a
/// service account in kube-system per controller; the scheduler as `system:kube-scheduler`).
/// `None`: a reddwarf component with no upstream role, acting as the control plane itself.
pub fn identity(controller: &str) -> Option<&'static str> {
    Some(match controller {
        "serviceaccount" => "service-account-controller",
        "garbagecollector" => "generic-garbage-collector",
        "job" => "job-controller",
        "ttl-after-finished" => "ttl-after-finished-controller",
        "cronjob" => "cronjob-controller",
        "podgc" => "pod-garbage-collector",
        "root-ca-cert-publisher" => "root-ca-cert-publisher",
        "csrsigning" => "certificate-controller",
        "nodelifecycle" | "nodeipam" => "node-controller",
        "scheduler" => return Some("system:kube-scheduler"),
        "replicaset" => "replicaset-controller",
        "replicationcontroller" => "replication-controller",
        "deployment" => "deployment-controller",
        "daemonset" => "daemon-set-controller",
        "statefulset" => "statefulset-controller",
        "persistentvolume-binder" => "persistent-volume-binder",
        "persistentvolumeclaim-protection" => "pvc-protection-controller",
        "persistentvolume-protection" => "pv-protection-controller",
        "endpoint+endpointslice" => "endpoint-controller",
        _ => return None,
    })
}

/// Starts every controller; each runs until the process ends. `client_for(name)` is the
/// client controller `name` acts through (see [`identity`]).
pub fn start(
    client_for: impl Fn(&'static str) -> Client,
    settings: Settings,
) -> Vec<tokio::task::JoinHandle<()>> {
    let c = client_for;
    // One watch of every pod for the controllers that read pods by namespace.
    let pods = pod_cache::PodCache::start(c("replicaset"));
    let runs: Vec<(&'static str, BoxFuture<'static, ()>)> = vec![
        (
            "serviceaccount",
            Box::pin(serviceaccount::run(c("serviceaccount"))),
        ),
        ("garbagecollector", Box::pin(gc::run(c("garbagecollector")))),
        ("job", Box::pin(job::run(c("job"), c("ttl-after-finished")))),
        ("cronjob", Box::pin(cronjob::run(c("cronjob")))),
        (
            "podgc",
            Box::pin(podgc::run(
                c("podgc"),
                settings.terminated_pod_gc_threshold,
                pods.clone(),
            )),
        ),
        (
            "root-ca-cert-publisher",
            Box::pin(root_ca::run(
                c("root-ca-cert-publisher"),
                settings.root_ca_pem.clone(),
            )),
        ),
        (
            "csrsigning",
            Box::pin(csr::run(
                c("csrsigning"),
                settings.root_ca_pem,
                settings.ca_key_pem,
            )),
        ),
        (
            "nodelifecycle",
            Box::pin(nodelifecycle::run(
                c("nodelifecycle"),
                settings.node_monitor_grace_period,
                pods.clone(),
            )),
        ),
        (
            "scheduler",
            Box::pin(scheduler::run(
                c("scheduler"),
                settings.scheduler_metrics,
                pods.clone(),
            )),
        ),
        (
            "replicaset",
            Box::pin(replicaset::run::<k8s_openapi::api::apps::v1::ReplicaSet>(
                c("replicaset"),
                pods.clone(),
            )),
        ),
        (
            "replicationcontroller",
            Box::pin(replicaset::run::<
                k8s_openapi::api::core::v1::ReplicationController,
            >(c("replicationcontroller"), pods.clone())),
        ),
        ("deployment", Box::pin(deployment::run(c("deployment")))),
        (
            "nodeipam",
            Box::pin(nodeipam::run(c("nodeipam"), settings.cluster_cidr)),
        ),
        ("daemonset", Box::pin(daemonset::run(c("daemonset")))),
        ("statefulset", Box::pin(statefulset::run(c("statefulset")))),
        (
            "apiservice-availability",
            Box::pin(apiservice::run(c("apiservice-availability"))),
        ),
        (
            "persistentvolume-binder",
            Box::pin(volume::binder::run(c("persistentvolume-binder"))),
        ),
        (
            "persistentvolumeclaim-protection",
            Box::pin(volume::protection::run_pvc_protection(c(
                "persistentvolumeclaim-protection",
            ))),
        ),
        (
            "persistentvolume-protection",
            Box::pin(volume::protection::run_pv_protection(c(
                "persistentvolume-protection",
            ))),
        ),
        (
            "local-path-provisioner",
            Box::pin(volume::local_path::run(
                c("local-path-provisioner"),
                settings.local_storage_path.clone(),
            )),
        ),
        (
            "endpoint+endpointslice",
            Box::pin(endpoints::run(c("endpoint+endpointslice"))),
        ),
    ];
    runs.into_iter()
        .filter(|(name, _)| controller_enabled(&settings.controllers, name))
        .map(|(name, fut)| {
            tokio::spawn(async move {
                fut.await;
                tracing::warn!("controller {name} stopped");
            })
        })
        .collect()
}

/// A JSON merge patch of an object's status, written as an update of the status subresource
/// (read, merge, replace with the read resourceVersion): the controllers' upstream roles may
/// update their objects' status, not patch it. A `metadata.resourceVersion` in the patch is a
/// precondition, as in a patch; a concurrent change is a conflict the controller retries.
pub(crate) trait MergeStatus<K> {
    /// Merges `patch` into the object `name` and updates its status.
    fn merge_status(
        &self,
        name: &str,
        patch: &serde_json::Value,
    ) -> impl std::future::Future<Output = Result<K, kube::Error>> + Send;
}

impl<K> MergeStatus<K> for kube::Api<K>
where
    K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug + Send + Sync,
{
    async fn merge_status(&self, name: &str, patch: &serde_json::Value) -> Result<K, kube::Error> {
        let current = self.get(name).await?;
        let mut merged = serde_json::to_value(&current).map_err(kube::Error::SerdeError)?;
        merge(&mut merged, patch);
        let updated: K = serde_json::from_value(merged).map_err(kube::Error::SerdeError)?;
        self.replace_status(name, &kube::api::PostParams::default(), &updated)
            .await
    }
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::json!({});
    }
    if let serde_json::Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
    }
}

/// Requeue after an error: soon, but not in a hot loop.
pub(crate) fn retry_after_error() -> kube::runtime::controller::Action {
    kube::runtime::controller::Action::requeue(Duration::from_secs(2))
}

/// Requeue after an error: a conflict (a stale copy; the fresh one is on its way) soon,
/// anything else after the usual pause.
pub(crate) fn error_action(who: &str, e: &Error) -> kube::runtime::controller::Action {
    #[allow(irrefutable_let_patterns)]
    if let Error::Kube(k) = e {
        if api_errors::is_conflict(k) {
            return kube::runtime::controller::Action::requeue(Duration::from_millis(200));
        }
    }
    tracing::warn!("{who}: {e}");
    retry_after_error()
}
