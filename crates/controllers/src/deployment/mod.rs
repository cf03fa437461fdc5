//! The Deployment controller (upstream `pkg/controller/deployment`): one ReplicaSet per pod
//! template (`<name>-<pod-template-hash>`), rolled with RollingUpdate (maxSurge /
//! maxUnavailable) or Recreate, revisions in annotations so `kubectl rollout history|undo`
//! work, proportional scaling while a rollout is under way or paused, old sets cleaned up past
//! `revisionHistoryLimit`, and status with the Progressing / Available conditions.
//!
//! ReplicaSets and pods are listed from the API at each sync (consistent reads in-process);
//! ReplicaSet status comes from the ReplicaSet controller, as upstream.

mod annotations;
mod progress;
mod recreate;
mod rolling;
mod sync;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::events::Recorder;
use crate::label_selector::selector_matches;
use crate::ownership::controller_of;

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";

// Condition reasons (upstream deploymentutil).
const NEW_RS_REASON: &str = "NewReplicaSetCreated";
const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
const RS_UPDATED_REASON: &str = "ReplicaSetUpdated";
const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
const PAUSED_REASON: &str = "DeploymentPaused";
const RESUMED_REASON: &str = "DeploymentResumed";
const FAILED_RS_CREATE_REASON: &str = "ReplicaSetCreateError";
const MIN_AVAILABLE_REASON: &str = "MinimumReplicasAvailable";
const MIN_UNAVAILABLE_REASON: &str = "MinimumReplicasUnavailable";

struct DeploymentController {
    client: Client,
    recorder: Recorder,
}

pub async fn run(client: Client) {
    let deployments: Api<Deployment> = Api::all(client.clone());
    let sets: Api<ReplicaSet> = Api::all(client.clone());
    let controller = Controller::new(deployments, watcher::Config::default());
    let store = controller.store();
    controller
        .watches(sets, watcher::Config::default(), move |rs| {
            rs_owners(&store, &rs)
        })
        .run(
            sync::reconcile,
            |_, e, _| crate::error_action("deployment controller", e),
            Arc::new(DeploymentController {
                recorder: Recorder::new(client.clone(), "deployment-controller"),
                client,
            }),
        )
        .for_each(|_| async {})
        .await;
}

/// The Deployments a ReplicaSet event concerns: its controller, or for an orphan every
/// Deployment in its namespace that selects it.
fn rs_owners(store: &Store<Deployment>, rs: &ReplicaSet) -> Vec<ObjectRef<Deployment>> {
    let Some(ns) = rs.namespace() else {
        return vec![];
    };
    if let Some(r) = controller_of(&rs.metadata) {
        if r.kind == "Deployment" && r.api_version.starts_with("apps/") {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return vec![];
    }
    store
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
        .filter(|d| {
            d.spec
                .as_ref()
                .is_some_and(|s| selector_matches(&s.selector, rs.labels()))
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

// ---- small accessors -------------------------------------------------------------------

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn created(rs: &ReplicaSet) -> Option<Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Oldest first, ties by name (upstream `ReplicaSetsByCreationTimestamp`).
fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    created(a)
        .cmp(&created(b))
        .then_with(|| a.name_any().cmp(&b.name_any()))
}

fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}
