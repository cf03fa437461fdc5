//! The bookkeeping a Deployment keeps in annotations: its revision (and the revisions a
//! reused set had before), the annotations copied onto its sets, and the replica counts a set
//! was last sized for, which proportional scaling reads.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::ResourceExt;

use super::{
    desired, rolling::max_surge, DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION,
    REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
};

const ROLLBACK_TO_ANNOTATION: &str = "deprecated.deployment.rollback.to";
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Upstream `maxRevHistoryLengthInChars`.
const MAX_REV_HISTORY_CHARS: usize = 2000;

fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED_ANNOTATION
            | REVISION_ANNOTATION
            | REVISION_HISTORY_ANNOTATION
            | DESIRED_REPLICAS_ANNOTATION
            | MAX_REPLICAS_ANNOTATION
            | ROLLBACK_TO_ANNOTATION
    )
}

/// Upstream `SetNewReplicaSetAnnotations`: the deployment's annotations (but its own
/// bookkeeping) copied on, the revision raised to `new_revision` (keeping the earlier ones in
/// `revision-history` when a set is reused, as after `rollout undo`), and for a set about to
/// be created the replica annotations.
pub(super) fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = false;
    let anns = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.annotations() {
        if skip_copy(k) || anns.get(k) == Some(v) {
            continue;
        }
        anns.insert(k.clone(), v.clone());
        changed = true;
    }
    let old_revision = anns.get(REVISION_ANNOTATION).cloned();
    let old_int = match old_revision.as_deref() {
        None | Some("") => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(v) => v,
            Err(_) => return false,
        },
    };
    if old_int < new_revision {
        anns.insert(REVISION_ANNOTATION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old_revision.filter(|o| !o.is_empty()) {
            let history = anns
                .get(REVISION_HISTORY_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            let value = if history.is_empty() {
                old
            } else {
                let mut olds: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > MAX_REV_HISTORY_CHARS && start < olds.len() {
                    total -= olds[start].len() + 1;
                    start += 1;
                }
                olds = olds.split_off(start);
                olds.push(&old);
                olds.join(",")
            };
            anns.insert(REVISION_HISTORY_ANNOTATION.into(), value);
        }
    }
    if !exists && set_replicas_annotations(rs, desired(d), desired(d) + max_surge(d)) {
        changed = true;
    }
    changed
}

pub(super) fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let anns = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [
        (DESIRED_REPLICAS_ANNOTATION, desired),
        (MAX_REPLICAS_ANNOTATION, max),
    ] {
        if anns.get(k).map(String::as_str) != Some(v.to_string().as_str()) {
            anns.insert(k.into(), v.to_string());
            changed = true;
        }
    }
    changed
}

pub(super) fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    let anns = rs.annotations();
    anns.get(DESIRED_REPLICAS_ANNOTATION) != Some(&desired.to_string())
        || anns.get(MAX_REPLICAS_ANNOTATION) != Some(&max.to_string())
}

/// A replica-count annotation; upstream reads them as non-negative int32s and treats anything
/// else as unset.
pub(super) fn annotation_i32(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.annotations()
        .get(key)
        .and_then(|v| v.parse().ok())
        .filter(|v| *v >= 0)
}

pub(super) fn set_deployment_revision(d: &mut Deployment, rev: &str) -> bool {
    let anns = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if anns.get(REVISION_ANNOTATION).map(String::as_str) == Some(rev) {
        return false;
    }
    anns.insert(REVISION_ANNOTATION.into(), rev.into());
    true
}
