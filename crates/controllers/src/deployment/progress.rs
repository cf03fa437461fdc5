//! Deployment status and conditions (upstream `progress.go` and the status half of
//! `sync.go`): counts summed over the sets, Available, Progressing with its deadline, paused
//! and resumed, ReplicaFailure mirrored from the sets.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::rolling::max_unavailable;
use super::sync::DeploymentSync;
use super::{
    desired, rs_available, rs_ready, rs_replicas, rs_status_replicas, MIN_AVAILABLE_REASON,
    MIN_UNAVAILABLE_REASON, NEW_RS_AVAILABLE_REASON, PAUSED_REASON, RESUMED_REASON,
    RS_UPDATED_REASON, TIMED_OUT_REASON,
};
use crate::Error;

pub(super) fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|p| p != i32::MAX)
}

fn sum(rss: &[&ReplicaSet], f: impl Fn(&ReplicaSet) -> i32) -> i32 {
    rss.iter().map(|rs| f(rs)).sum()
}

pub(super) fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) -> DeploymentCondition {
    let now = Time(Timestamp::now());
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

pub(super) fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// Upstream `SetDeploymentCondition`: same status and reason changes nothing; same status
/// keeps the transition time.
pub(super) fn set_condition(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = get_condition(status, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    let mut conds: Vec<DeploymentCondition> = status
        .conditions
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|x| x.type_ != c.type_)
        .collect();
    conds.push(c);
    status.conditions = Some(conds);
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = status.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
        if cs.is_empty() {
            status.conditions = None;
        }
    }
}

impl DeploymentSync<'_> {
    /// Upstream `checkPausedConditions`.
    pub(super) async fn check_paused_conditions(&mut self) -> Result<(), Error> {
        if !has_progress_deadline(&self.d) {
            return Ok(());
        }
        let status = self.d.status.clone().unwrap_or_default();
        let cond = get_condition(&status, "Progressing");
        if cond.is_some_and(|c| c.reason.as_deref() == Some(TIMED_OUT_REASON)) {
            return Ok(());
        }
        let paused_cond = cond.is_some_and(|c| c.reason.as_deref() == Some(PAUSED_REASON));
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let c = if paused && !paused_cond {
            new_condition(
                "Progressing",
                "Unknown",
                PAUSED_REASON,
                "Deployment is paused".into(),
            )
        } else if !paused && paused_cond {
            new_condition(
                "Progressing",
                "Unknown",
                RESUMED_REASON,
                "Deployment is resumed".into(),
            )
        } else {
            return Ok(());
        };
        set_condition(self.d.status.get_or_insert_with(Default::default), c);
        self.update_status().await
    }

    pub(super) async fn sync_deployment_status(
        &mut self,
        new: Option<ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<(), Error> {
        let all: Vec<&ReplicaSet> = old.iter().chain(new.iter()).collect();
        let status = calculate_status(&self.d, &all, new.as_ref());
        if Some(&status) == self.d.status.as_ref() {
            return Ok(());
        }
        self.d.status = Some(status);
        self.update_status().await
    }

    /// Upstream `syncRolloutStatus`: status plus the Progressing condition (and the requeue
    /// that notices a missed deadline).
    pub(super) async fn sync_rollout_status(
        &mut self,
        new: Option<ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<(), Error> {
        let all: Vec<&ReplicaSet> = old.iter().chain(new.iter()).collect();
        let mut status = calculate_status(&self.d, &all, new.as_ref());
        if !has_progress_deadline(&self.d) {
            remove_condition(&mut status, "Progressing");
        }
        let old_status = self.d.status.clone().unwrap_or_default();
        let current = get_condition(&old_status, "Progressing").cloned();
        let complete_before = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE_REASON));
        if has_progress_deadline(&self.d) && !complete_before {
            let name = self.name();
            if deployment_complete(&self.d, &status) {
                let msg = match &new {
                    Some(n) => {
                        format!("ReplicaSet {:?} has successfully progressed.", n.name_any())
                    }
                    None => format!("Deployment {name:?} has successfully progressed."),
                };
                set_condition(
                    &mut status,
                    new_condition("Progressing", "True", NEW_RS_AVAILABLE_REASON, msg),
                );
            } else if deployment_progressing(&old_status, &status) {
                let msg = match &new {
                    Some(n) => format!("ReplicaSet {:?} is progressing.", n.name_any()),
                    None => format!("Deployment {name:?} is progressing."),
                };
                let mut c = new_condition("Progressing", "True", RS_UPDATED_REASON, msg);
                // Progress refreshes lastUpdateTime; a True condition keeps its transition.
                if let Some(cur) = &current {
                    if cur.status == "True" {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                    remove_condition(&mut status, "Progressing");
                }
                set_condition(&mut status, c);
            } else if deployment_timed_out(&self.d, &status) {
                let msg = match &new {
                    Some(n) => format!("ReplicaSet {:?} has timed out progressing.", n.name_any()),
                    None => format!("Deployment {name:?} has timed out progressing."),
                };
                set_condition(
                    &mut status,
                    new_condition("Progressing", "False", TIMED_OUT_REASON, msg),
                );
            }
        }
        // ReplicaFailure mirrors the first failing set's condition.
        let failure = new
            .iter()
            .chain(old.iter())
            .filter_map(|rs| rs.status.as_ref()?.conditions.as_ref())
            .flatten()
            .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
            .cloned();
        match failure {
            Some(f) => set_condition(
                &mut status,
                DeploymentCondition {
                    type_: "ReplicaFailure".into(),
                    status: f.status,
                    reason: f.reason,
                    message: f.message,
                    last_update_time: f.last_transition_time.clone(),
                    last_transition_time: f.last_transition_time,
                },
            ),
            None => remove_condition(&mut status, "ReplicaFailure"),
        }
        if Some(&status) != self.d.status.as_ref() {
            self.d.status = Some(status.clone());
            self.update_status().await?;
        }
        if let Some(after) = stuck_requeue(&self.d, &status) {
            self.requeue_after(after);
        }
        Ok(())
    }
}

/// Upstream `calculateStatus` (zero counts left out, as upstream's omitempty does).
fn calculate_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
) -> DeploymentStatus {
    let available = sum(all, rs_available);
    let total = sum(all, rs_replicas);
    let unavailable = (total - available).max(0);
    let nonzero = |n: i32| (n != 0).then_some(n);
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nonzero(sum(all, rs_status_replicas)),
        updated_replicas: nonzero(new.map(rs_status_replicas).unwrap_or(0)),
        ready_replicas: nonzero(sum(all, rs_ready)),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero(unavailable),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: old.terminating_replicas,
    };
    if available >= desired(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "True",
                MIN_AVAILABLE_REASON,
                "Deployment has minimum availability.".into(),
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "False",
                MIN_UNAVAILABLE_REASON,
                "Deployment does not have minimum availability.".into(),
            ),
        );
    }
    status
}

pub(super) fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = desired(d);
    s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
        && s.observed_generation >= d.metadata.generation
}

fn deployment_progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let v = |x: Option<i32>| x.unwrap_or(0);
    let old_old = v(old.replicas) - v(old.updated_replicas);
    let new_old = v(new.replicas) - v(new.updated_replicas);
    v(new.updated_replicas) > v(old.updated_replicas)
        || new_old < old_old
        || v(new.ready_replicas) > v(old.ready_replicas)
        || v(new.available_replicas) > v(old.available_replicas)
}

fn progress_deadline(d: &Deployment) -> i64 {
    i64::from(
        d.spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(600),
    )
}

fn deployment_timed_out(d: &Deployment, s: &DeploymentStatus) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(c) = get_condition(s, "Progressing") else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE_REASON) => false,
        Some(TIMED_OUT_REASON) => true,
        _ => c
            .last_update_time
            .as_ref()
            .is_some_and(|t| t.0.as_second() + progress_deadline(d) < Timestamp::now().as_second()),
    }
}

/// Upstream `requeueStuckDeployment`: when a rollout in progress would pass its deadline.
fn stuck_requeue(d: &Deployment, s: &DeploymentStatus) -> Option<Duration> {
    let c = get_condition(s, "Progressing")?;
    if !has_progress_deadline(d)
        || matches!(
            c.reason.as_deref(),
            Some(NEW_RS_AVAILABLE_REASON | TIMED_OUT_REASON)
        )
        || d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
        || deployment_complete(d, s)
    {
        return None;
    }
    let updated = c.last_update_time.as_ref()?.0.as_second();
    let after = updated + progress_deadline(d) - Timestamp::now().as_second();
    Some(Duration::from_secs(after.max(0) as u64 + 1))
}
