//! The RollingUpdate strategy (upstream `rolling.go`): maxSurge / maxUnavailable resolved
//! against the replica count, the new set grown within the surge, old sets shrunk within the
//! availability budget.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::progress::deployment_complete;
use super::sync::DeploymentSync;
use super::{by_creation, desired, is_recreate, rs_available, rs_replicas, rs_status_replicas};
use crate::int_or_percent::scaled_value;
use crate::Error;

/// maxSurge and maxUnavailable resolved against the replica count (upstream
/// `ResolveFenceposts`): surge rounds up, unavailability down, and both zero means one may be
/// unavailable. An unset value counts as 0 (the API defaults both to 25%); a value that does
/// not parse resolves both to 0, as upstream's callers take them on its error.
pub(super) fn fenceposts(d: &Deployment) -> (i32, i32) {
    if is_recreate(d) {
        return (0, 0);
    }
    let n = desired(d);
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let zero = IntOrString::Int(0);
    let surge_v = ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&zero);
    let unavail_v = ru.and_then(|r| r.max_unavailable.as_ref()).unwrap_or(&zero);
    let (Ok(surge), Ok(mut unavailable)) = (
        scaled_value(surge_v, n, true),
        scaled_value(unavail_v, n, false),
    ) else {
        return (0, 0);
    };
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

pub(super) fn max_surge(d: &Deployment) -> i32 {
    fenceposts(d).0
}

pub(super) fn max_unavailable(d: &Deployment) -> i32 {
    let n = desired(d);
    if is_recreate(d) || n == 0 {
        return 0;
    }
    fenceposts(d).1.min(n)
}

/// Upstream `NewRSNewReplicas`: how far the new set may grow now.
pub(super) fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> i32 {
    let want = desired(d);
    if is_recreate(d) {
        return want;
    }
    // Counted as the larger of desired and observed per set, so pods an old set has not
    // removed yet still count against the surge. (Upstream counts spec.replicas only and can
    // overshoot briefly while a scale-down is being carried out.)
    let current: i32 = all
        .iter()
        .map(|rs| rs_replicas(rs).max(rs_status_replicas(rs)))
        .sum();
    let max_total = want + max_surge(d);
    if current >= max_total {
        return rs_replicas(new);
    }
    let up = (max_total - current).min(want - rs_replicas(new));
    rs_replicas(new) + up.max(0)
}

impl DeploymentSync<'_> {
    pub(super) async fn rollout_rolling(&mut self) -> Result<(), Error> {
        let (new, old) = self.get_all_and_sync_revision(true).await?;
        let new = new.expect("created when missing");
        if self.reconcile_new_replica_set(&new, &old).await? {
            let (new, old) = self.refreshed(Some(new), old);
            return self.sync_rollout_status(new, &old).await;
        }
        if self.reconcile_old_replica_sets(&new, &old).await? {
            let (new, old) = self.refreshed(Some(new), old);
            return self.sync_rollout_status(new, &old).await;
        }
        let status = self.d.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &status) {
            self.cleanup(&old).await?;
        }
        let (new, old) = self.refreshed(Some(new), old);
        self.sync_rollout_status(new, &old).await
    }

    async fn reconcile_new_replica_set(
        &mut self,
        new: &ReplicaSet,
        old: &[ReplicaSet],
    ) -> Result<bool, Error> {
        let target = new_rs_target(&self.d, new, old);
        self.scale_rs(new, target).await
    }

    async fn reconcile_old_replica_sets(
        &mut self,
        new: &ReplicaSet,
        old: &[ReplicaSet],
    ) -> Result<bool, Error> {
        let old_active: Vec<ReplicaSet> = old
            .iter()
            .filter(|rs| rs_replicas(rs) > 0)
            .cloned()
            .collect();
        if old_active.iter().map(rs_replicas).sum::<i32>() == 0 {
            return Ok(false);
        }
        let max_scaled_down = max_scaled_down(&self.d, new, &old_active);
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        // Unhealthy old pods go first: they cost no availability.
        let (old_active, cleaned) = self.cleanup_unhealthy(old_active, max_scaled_down).await?;
        let scaled = self.scale_down_old_for_rolling(new, old_active).await?;
        Ok(cleaned + scaled > 0)
    }

    async fn cleanup_unhealthy(
        &mut self,
        mut old: Vec<ReplicaSet>,
        max_cleanup: i32,
    ) -> Result<(Vec<ReplicaSet>, i32), Error> {
        old.sort_by(by_creation);
        let downs = unhealthy_scale_downs(&old, max_cleanup);
        let mut total = 0;
        for (rs, down) in old.iter_mut().zip(downs) {
            if down == 0 {
                continue;
            }
            self.scale_rs(rs, rs_replicas(rs) - down).await?;
            if let Some(fresh) = self.sets.iter().find(|x| x.uid() == rs.uid()) {
                *rs = fresh.clone();
            }
            total += down;
        }
        Ok((old, total))
    }

    async fn scale_down_old_for_rolling(
        &mut self,
        new: &ReplicaSet,
        mut old: Vec<ReplicaSet>,
    ) -> Result<i32, Error> {
        old.sort_by(by_creation);
        let downs = rolling_scale_downs(&self.d, new, &old);
        let mut total = 0;
        for (rs, down) in old.iter().zip(downs) {
            if down == 0 {
                continue;
            }
            self.scale_rs(rs, rs_replicas(rs) - down).await?;
            total += down;
        }
        Ok(total)
    }
}

/// Upstream `reconcileNewReplicaSet`: the size the new set should have now — the deployment's
/// count when it has that many or more, else as far as the surge allows.
pub(super) fn new_rs_target(d: &Deployment, new: &ReplicaSet, old: &[ReplicaSet]) -> i32 {
    let want = desired(d);
    if rs_replicas(new) >= want {
        return want;
    }
    let all: Vec<&ReplicaSet> = old.iter().chain([new]).collect();
    new_rs_new_replicas(d, &all, new)
}

/// How many old pods may go now (upstream `reconcileOldReplicaSets`' `maxScaledDown`): every
/// pod beyond the minimum available, less the new set's pods that are not available yet
/// (removing old pods would not make those available).
pub(super) fn max_scaled_down(d: &Deployment, new: &ReplicaSet, old: &[ReplicaSet]) -> i32 {
    let old_count: i32 = old.iter().map(rs_replicas).sum();
    let all_count = old_count + rs_replicas(new);
    let min_available = desired(d) - max_unavailable(d);
    let new_unavailable = rs_replicas(new) - rs_available(new);
    all_count - min_available - new_unavailable
}

/// Upstream `cleanupUnhealthyReplicas`: per old set (in the order given, oldest first), how
/// many of its unavailable pods go, at most `max_cleanup` in all.
pub(super) fn unhealthy_scale_downs(old: &[ReplicaSet], max_cleanup: i32) -> Vec<i32> {
    let mut total = 0;
    old.iter()
        .map(|rs| {
            let replicas = rs_replicas(rs);
            // A set reporting as many available pods as it wants, or more (it was just scaled
            // down and its pods are still going), has none to clean up: upstream refuses the
            // scale-up this would otherwise compute.
            if total >= max_cleanup || replicas == 0 || replicas <= rs_available(rs) {
                return 0;
            }
            let down = (max_cleanup - total).min(replicas - rs_available(rs));
            total += down;
            down
        })
        .collect()
}

/// Upstream `scaleDownOldReplicaSetsForRollingUpdate`: per old set (oldest first), how many
/// pods go so that availability (old and new sets together) stays at the minimum.
pub(super) fn rolling_scale_downs(
    d: &Deployment,
    new: &ReplicaSet,
    old: &[ReplicaSet],
) -> Vec<i32> {
    let min_available = desired(d) - max_unavailable(d);
    let available: i32 = old.iter().chain([new]).map(rs_available).sum();
    let total_to_scale = (available - min_available).max(0);
    let mut total = 0;
    old.iter()
        .map(|rs| {
            let replicas = rs_replicas(rs);
            if total >= total_to_scale || replicas == 0 {
                return 0;
            }
            let down = replicas.min(total_to_scale - total);
            total += down;
            down
        })
        .collect()
}
