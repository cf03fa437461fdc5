//! Orders controllers sort objects in: oldest first, and which pod goes first when scaling
//! down (upstream `ActivePodsWithRanks`).

use k8s_openapi::api::core::v1::Pod;
use kube::api::ObjectMeta;

use crate::pod_state::{is_pod_ready, pod_ready_since};

/// Sort key for "oldest first": creation time, then name.
pub fn creation_key(meta: &ObjectMeta) -> (i64, String) {
    (
        meta.creation_timestamp
            .as_ref()
            .map(|t| t.0.as_nanosecond() as i64)
            .unwrap_or(i64::MAX),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Which of two active pods to delete first when scaling down (upstream
/// `ActivePodsWithRanks.Less`): unassigned before assigned, Pending before Unknown before
/// Running, not ready before ready, lower `controller.kubernetes.io/pod-deletion-cost` first,
/// more pods of the owner on the same node first, ready more recently first, more container
/// restarts first, newer first. `rank_*` is how many pods of the owner share the pod's node.
pub fn deletion_order(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let phase = |p: &Pod| match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    };
    let cost = |p: &Pod| -> i32 {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let restarts = |p: &Pod| -> i32 {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
            .unwrap_or(0)
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    node(a)
        .cmp(&node(b))
        .then(phase(a).cmp(&phase(b)))
        .then(is_pod_ready(a).cmp(&is_pod_ready(b)))
        .then(cost(a).cmp(&cost(b)))
        .then(rank_b.cmp(&rank_a))
        .then_with(|| {
            if is_pod_ready(a) && is_pod_ready(b) {
                // Ready more recently sorts first; unknown readiness time counts as newest.
                match (pod_ready_since(a), pod_ready_since(b)) {
                    (Some(x), Some(y)) => y.cmp(&x),
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                }
            } else {
                Ordering::Equal
            }
        })
        .then(restarts(b).cmp(&restarts(a)))
        .then_with(|| match (created(a), created(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
}
