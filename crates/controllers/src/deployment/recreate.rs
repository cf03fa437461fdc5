//! The Recreate strategy (upstream `recreate.go`): every old set to zero, wait for their pods
//! to go, then the new set to full size.

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::ResourceExt;

use super::progress::deployment_complete;
use super::sync::DeploymentSync;
use super::{desired, rs_replicas, rs_status_replicas};
use crate::label_selector::selector_string;
use crate::ownership::controller_of;
use crate::Error;

impl DeploymentSync<'_> {
    pub(super) async fn rollout_recreate(&mut self) -> Result<(), Error> {
        let (new, old) = self.get_all_and_sync_revision(false).await?;
        // Scale every old set to zero first.
        let mut scaled = false;
        for rs in old.iter().filter(|rs| rs_replicas(rs) > 0) {
            scaled |= self.scale_rs(rs, 0).await?;
        }
        if scaled {
            let (new, old) = self.refreshed(new, old);
            return self.sync_rollout_status(new, &old).await;
        }
        if self.old_pods_running(new.as_ref(), &old).await? {
            // Pods leaving do not touch the sets we watch once their status settled: poll.
            self.requeue_after(Duration::from_secs(1));
            return self.sync_rollout_status(new, &old).await;
        }
        let (new, old) = match new {
            Some(n) => (n, old),
            None => {
                let (n, o) = self.get_all_and_sync_revision(true).await?;
                (n.expect("created when missing"), o)
            }
        };
        let want = desired(&self.d);
        if rs_replicas(&new) != want {
            self.scale_rs(&new, want).await?;
        }
        let status = self.d.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &status) {
            self.cleanup(&old).await?;
        }
        let (new, old) = self.refreshed(Some(new), old);
        self.sync_rollout_status(new, &old).await
    }

    /// Upstream `oldPodsRunning`: old sets still report pods, or pods of old sets that have
    /// not finished still exist.
    async fn old_pods_running(
        &self,
        new: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<bool, Error> {
        if old.iter().map(rs_status_replicas).sum::<i32>() > 0 {
            return Ok(true);
        }
        let selector = &self.d.spec.as_ref().expect("checked").selector;
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let list = pods
            .list(&ListParams::default().labels(&selector_string(selector)))
            .await?;
        let old_uids: Vec<String> = old.iter().filter_map(|rs| rs.uid()).collect();
        let new_uid = new.and_then(|n| n.uid());
        Ok(list.items.iter().any(|p| {
            let owner = controller_of(&p.metadata).map(|r| r.uid.clone());
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            owner.is_some_and(|o| old_uids.contains(&o) && Some(&o) != new_uid.as_ref())
                && !matches!(phase, Some("Succeeded" | "Failed"))
        }))
    }
}
