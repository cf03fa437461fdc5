//! Pod garbage collection (upstream pkg/controller/podgc): terminated pods beyond
//! `--terminated-pod-gc-threshold` are deleted oldest first, pods bound to nodes that no
//! longer exist are marked Failed (DisruptionTarget, `DeletionByPodGC`) and force-deleted, and
//! unscheduled pods being deleted are force-deleted.
//!
//! It sweeps every 20 s as upstream (gcCheckPeriod) and at once when a Node is deleted. A
//! node missing from the cache is confirmed with a live GET before its pods go (upstream
//! quarantines such nodes for the same reason: a lagging cache must not cost pods).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

use crate::pod_cache::{CachedPod, PodCache};

use crate::pod_state::{is_pod_terminal, pod_phase};

/// Upstream gcCheckPeriod.
const CHECK_PERIOD: Duration = Duration::from_secs(20);

pub async fn run(client: Client, terminated_threshold: usize, pods: PodCache) {
    // Only node names are read: their metadata is enough.
    let (nodes, node_writer) = reflector::store::<PartialObjectMeta<Node>>();
    let node_deleted = Arc::new(Notify::new());
    let wake = node_deleted.clone();
    tokio::spawn(
        reflector::reflector(
            node_writer,
            crate::node_slim::names_and_labels(client.clone()),
        )
        .default_backoff()
        .for_each(move |ev| {
            if matches!(ev, Ok(watcher::Event::Delete(_))) {
                wake.notify_one();
            }
            async {}
        }),
    );
    pods.wait_ready().await;
    if nodes.wait_until_ready().await.is_err() {
        return;
    }
    loop {
        if let Err(e) = sweep(&client, &pods, &nodes, terminated_threshold).await {
            tracing::debug!("pod gc: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_PERIOD) => {}
            _ = node_deleted.notified() => {}
        }
    }
}

async fn sweep(
    client: &Client,
    pods: &PodCache,
    nodes: &Store<PartialObjectMeta<Node>>,
    threshold: usize,
) -> Result<(), kube::Error> {
    let all: Vec<Arc<CachedPod>> = pods.all();

    // Terminated pods beyond the threshold, oldest first (0 turns this off).
    if threshold > 0 {
        let mut terminated: Vec<&Arc<CachedPod>> = all
            .iter()
            .filter(|p| is_pod_terminal(p) && p.metadata.deletion_timestamp.is_none())
            .collect();
        if terminated.len() > threshold {
            terminated.sort_by_key(|p| {
                (
                    p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    p.name_any(),
                )
            });
            let excess = terminated.len() - threshold;
            for p in terminated.into_iter().take(excess) {
                force_delete(client, p, None).await?;
            }
        }
    }

    // Pods on nodes that are gone.
    let known: HashSet<String> = nodes.state().iter().map(|n| n.name_any()).collect();
    let mut confirmed: HashMap<String, bool> = HashMap::new();
    for p in &all {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        if node.is_empty() || known.contains(&node) {
            continue;
        }
        let gone = match confirmed.get(&node) {
            Some(g) => *g,
            None => {
                let g = Api::<Node>::all(client.clone())
                    .get_opt(&node)
                    .await?
                    .is_none();
                confirmed.insert(node.clone(), g);
                g
            }
        };
        if gone {
            tracing::info!(
                "pod gc: deleting {}/{}: node {node} no longer exists",
                p.namespace().unwrap_or_default(),
                p.name_any()
            );
            force_delete(
                client,
                p,
                Some(("DeletionByPodGC", "PodGC: node no longer exists")),
            )
            .await?;
        }
    }

    // Unscheduled pods being deleted: no kubelet will ever confirm them.
    for p in &all {
        let unscheduled = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_none_or(str::is_empty);
        if unscheduled && p.metadata.deletion_timestamp.is_some() {
            force_delete(client, p, None).await?;
        }
    }
    Ok(())
}

/// Upstream `markFailedAndDeletePod(WithCondition)`: a pod not yet finished is marked Failed
/// (with a DisruptionTarget condition when a reason is given), then deleted with grace 0.
async fn force_delete(
    client: &Client,
    pod: &Pod,
    disruption: Option<(&str, &str)>,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let name = pod.name_any();
    if !is_pod_terminal(pod) {
        let mut status = json!({"phase": "Failed"});
        if let Some((reason, message)) = disruption {
            status["conditions"] = json!([{
                "type": "DisruptionTarget", "status": "True",
                "reason": reason, "message": message,
                "lastTransitionTime": Time(Timestamp::now()),
            }]);
        }
        // Strategic merge: the condition merges by type into the pod's conditions.
        let patch = json!({"metadata": {"uid": pod.uid()}, "status": status});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return Ok(()),
            Err(e) => return Err(e),
        }
        tracing::debug!("pod gc: {name} was {}, marked Failed", pod_phase(pod));
    }
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
