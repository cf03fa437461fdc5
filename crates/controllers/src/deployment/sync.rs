//! One sync of one Deployment (upstream `sync.go`): claiming its ReplicaSets, finding or
//! creating the new set, scaling (proportionally while a rollout is under way), cleanup past
//! `revisionHistoryLimit`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::ResourceExt;
use serde_json::json;

use super::annotations::{
    annotation_i32, replicas_annotations_need_update, set_deployment_revision,
    set_new_rs_annotations, set_replicas_annotations,
};
use super::progress::{get_condition, has_progress_deadline, new_condition, set_condition};
use super::rolling::{max_surge, new_rs_new_replicas};
use super::{
    by_creation, desired, is_recreate, revision, rs_available, rs_replicas, rs_status_replicas,
    DeploymentController, DESIRED_REPLICAS_ANNOTATION, FAILED_RS_CREATE_REASON,
    FOUND_NEW_RS_REASON, MAX_REPLICAS_ANNOTATION, NEW_RS_REASON, REVISION_ANNOTATION,
};
use crate::api_errors::{error_message, is_conflict, is_not_found};
use crate::events;
use crate::label_selector::selector_matches;
use crate::ownership::{controller_of, controller_ref};
use crate::pod_template::{
    pod_template_hash, templates_equal_ignoring_hash, POD_TEMPLATE_HASH_LABEL,
};
use crate::Error;

/// What one sync works on: the deployment (refreshed after each write) and its sets.
pub(super) struct DeploymentSync<'a> {
    pub(super) ctx: &'a DeploymentController,
    pub(super) d: Deployment,
    pub(super) ns: String,
    /// Every ReplicaSet the deployment controls.
    pub(super) sets: Vec<ReplicaSet>,
    /// When the sync should look again (progress deadline, old pods still running).
    pub(super) requeue: Option<Duration>,
}

pub(super) async fn reconcile(
    d: Arc<Deployment>,
    ctx: Arc<DeploymentController>,
) -> Result<Action, Error> {
    let ns = d.namespace().unwrap_or_default();
    let Some(spec) = d.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    let mut s = DeploymentSync {
        ctx: &ctx,
        d: (*d).clone(),
        ns,
        sets: Vec::new(),
        requeue: None,
    };
    let selector = &spec.selector;
    if selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|m| m.is_empty())
    {
        ctx.recorder
            .warning(
                &events::reference(&s.d),
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            .await;
        let st = s.d.status.get_or_insert_with(Default::default);
        if st.observed_generation < s.d.metadata.generation {
            st.observed_generation = s.d.metadata.generation;
            s.update_status().await?;
        }
        return Ok(Action::await_change());
    }

    s.claim_replica_sets().await?;

    if s.d.metadata.deletion_timestamp.is_some() {
        let (new, old) = s.get_all_and_sync_revision(false).await?;
        s.sync_deployment_status(new, &old).await?;
        return Ok(Action::await_change());
    }

    s.check_paused_conditions().await?;
    let paused = s.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    if paused || s.is_scaling_event().await? {
        s.sync().await?;
    } else if is_recreate(&s.d) {
        s.rollout_recreate().await?;
    } else {
        s.rollout_rolling().await?;
    }
    Ok(match s.requeue {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

impl DeploymentSync<'_> {
    fn rs_api(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.ctx.client.clone(), &self.ns)
    }

    pub(super) fn name(&self) -> String {
        self.d.name_any()
    }

    fn uid(&self) -> String {
        self.d.uid().unwrap_or_default()
    }

    pub(super) fn requeue_after(&mut self, after: Duration) {
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }

    pub(super) async fn update_status(&mut self) -> Result<(), Error> {
        let api: Api<Deployment> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        self.d = api
            .replace_status(&self.name(), &PostParams::default(), &self.d)
            .await?;
        Ok(())
    }

    /// Replaces a set in `sets` with its newer copy.
    fn remember(&mut self, rs: &ReplicaSet) {
        if let Some(slot) = self.sets.iter_mut().find(|x| x.uid() == rs.uid()) {
            *slot = rs.clone();
        } else {
            self.sets.push(rs.clone());
        }
    }

    /// Upstream `getReplicaSetsForDeployment` / `ClaimReplicaSets`.
    async fn claim_replica_sets(&mut self) -> Result<(), Error> {
        let api = self.rs_api();
        let all = api.list(&ListParams::default()).await?.items;
        let uid = self.uid();
        let selector = self.d.spec.as_ref().expect("checked").selector.clone();
        let deleting = self.d.metadata.deletion_timestamp.is_some();
        let mut can_adopt: Option<bool> = None;
        for rs in all {
            let matches = selector_matches(&selector, rs.labels());
            match controller_of(&rs.metadata) {
                Some(r) if r.uid == uid => {
                    if matches || deleting {
                        self.sets.push(rs);
                    } else {
                        let patch = json!({"metadata": {
                            "ownerReferences": [{"$patch": "delete", "uid": uid}],
                            "uid": rs.uid(),
                        }});
                        match api
                            .patch(
                                &rs.name_any(),
                                &PatchParams::default(),
                                &Patch::Strategic(&patch),
                            )
                            .await
                        {
                            Ok(_) => {}
                            Err(e) if is_not_found(&e) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Some(_) => {}
                None => {
                    if !matches || deleting || rs.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    if can_adopt.is_none() {
                        let dapi: Api<Deployment> =
                            Api::namespaced(self.ctx.client.clone(), &self.ns);
                        let fresh = dapi.get_opt(&self.name()).await?;
                        can_adopt = Some(fresh.is_some_and(|f| {
                            f.uid().as_deref() == Some(uid.as_str())
                                && f.metadata.deletion_timestamp.is_none()
                        }));
                    }
                    if can_adopt != Some(true) {
                        continue;
                    }
                    let patch = json!({"metadata": {
                        "ownerReferences": [controller_ref(&self.d)],
                        "uid": rs.uid(),
                    }});
                    match api
                        .patch(
                            &rs.name_any(),
                            &PatchParams::default(),
                            &Patch::Strategic(&patch),
                        )
                        .await
                    {
                        Ok(adopted) => self.sets.push(adopted),
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(())
    }

    /// The set whose template is the deployment's (oldest first if several) and the others.
    fn split(&self) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
        let template = self
            .d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let mut sorted = self.sets.clone();
        sorted.sort_by(by_creation);
        let new_pos = sorted.iter().position(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| templates_equal_ignoring_hash(t, &template))
        });
        let new = new_pos.map(|i| sorted.remove(i));
        (new, sorted)
    }

    /// Upstream `getAllReplicaSetsAndSyncRevision` / `getNewReplicaSet`.
    pub(super) async fn get_all_and_sync_revision(
        &mut self,
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), Error> {
        let (existing, old) = self.split();
        let new_revision = old.iter().map(revision).max().unwrap_or(0) + 1;
        let d = self.d.clone();
        let spec = d.spec.as_ref().expect("checked");

        if let Some(existing) = existing {
            let mut copy = existing.clone();
            let anns_changed = set_new_rs_annotations(&d, &mut copy, new_revision, true);
            let rs_spec = copy.spec.get_or_insert_with(Default::default);
            let min_ready_changed = rs_spec.min_ready_seconds != spec.min_ready_seconds;
            if anns_changed || min_ready_changed {
                rs_spec.min_ready_seconds = spec.min_ready_seconds;
                let updated = self
                    .rs_api()
                    .replace(&copy.name_any(), &PostParams::default(), &copy)
                    .await?;
                self.remember(&updated);
                return Ok((Some(updated), old));
            }
            let rev = copy
                .annotations()
                .get(REVISION_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            let mut needs_update = set_deployment_revision(&mut self.d, &rev);
            let status = self.d.status.get_or_insert_with(Default::default);
            if get_condition(status, "Progressing").is_none() {
                let msg = format!("Found new replica set {:?}", copy.name_any());
                set_condition(
                    status,
                    new_condition("Progressing", "True", FOUND_NEW_RS_REASON, msg),
                );
                needs_update = true;
            }
            if needs_update {
                self.update_status().await?;
            }
            return Ok((Some(copy), old));
        }
        if !create {
            return Ok((None, old));
        }

        // A new set for the current template.
        let collision = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = pod_template_hash(&spec.template, collision);
        let mut template = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let rs_name = format!("{}-{hash}", self.name());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: Some(self.ns.clone()),
                owner_references: Some(vec![controller_ref(&self.d)]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let all: Vec<&ReplicaSet> = old.iter().chain([&rs]).collect();
        let count = new_rs_new_replicas(&d, &all, &rs);
        rs.spec.as_mut().expect("set").replicas = Some(count);
        set_new_rs_annotations(&d, &mut rs, new_revision, false);

        let mut already_exists = false;
        let created = match self.rs_api().create(&PostParams::default(), &rs).await {
            Ok(c) => c,
            Err(e) if is_conflict(&e) => {
                // Ours from an earlier sync (same template), or a hash collision.
                let found = self.rs_api().get_opt(&rs_name).await?;
                match found {
                    Some(f)
                        if controller_of(&f.metadata).is_some_and(|r| r.uid == self.uid())
                            && f.spec
                                .as_ref()
                                .and_then(|s| s.template.as_ref())
                                .is_some_and(|t| {
                                    templates_equal_ignoring_hash(t, &spec.template)
                                }) =>
                    {
                        already_exists = true;
                        f
                    }
                    _ => {
                        let st = self.d.status.get_or_insert_with(Default::default);
                        st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
                        self.update_status().await?;
                        return Err(e.into());
                    }
                }
            }
            Err(e) => {
                let msg = format!(
                    "Failed to create new replica set {rs_name:?}: {}",
                    error_message(&e)
                );
                if matches!(&e, kube::Error::Api(s) if s.code == 403 && s.message.contains("terminat"))
                {
                    return Err(e.into());
                }
                if has_progress_deadline(&self.d) {
                    set_condition(
                        self.d.status.get_or_insert_with(Default::default),
                        new_condition("Progressing", "False", FAILED_RS_CREATE_REASON, msg.clone()),
                    );
                    let _ = self.update_status().await;
                }
                self.ctx
                    .recorder
                    .warning(&events::reference(&self.d), FAILED_RS_CREATE_REASON, msg)
                    .await;
                return Err(e.into());
            }
        };
        self.remember(&created);
        if !already_exists && count > 0 {
            self.ctx
                .recorder
                .normal(
                    &events::reference(&self.d),
                    "ScalingReplicaSet",
                    format!(
                        "Scaled up replica set {} from 0 to {count}",
                        created.name_any()
                    ),
                )
                .await;
        }
        let mut needs_update = set_deployment_revision(&mut self.d, &new_revision.to_string());
        if !already_exists && has_progress_deadline(&self.d) {
            let msg = format!("Created new replica set {:?}", created.name_any());
            set_condition(
                self.d.status.get_or_insert_with(Default::default),
                new_condition("Progressing", "True", NEW_RS_REASON, msg),
            );
            needs_update = true;
        }
        if needs_update {
            self.update_status().await?;
        }
        Ok((Some(created), old))
    }

    /// Upstream `isScalingEvent`: an active set's desired-replicas annotation differs from the
    /// deployment's replicas.
    async fn is_scaling_event(&mut self) -> Result<bool, Error> {
        let (new, old) = self.get_all_and_sync_revision(false).await?;
        let want = desired(&self.d);
        Ok(new
            .iter()
            .chain(old.iter())
            .filter(|rs| rs_replicas(rs) > 0)
            .filter_map(|rs| annotation_i32(rs, DESIRED_REPLICAS_ANNOTATION))
            .any(|v| v != want))
    }

    /// Upstream `sync`: scaling (proportional while a rollout is under way) and, when paused,
    /// history cleanup; no rollout progress.
    async fn sync(&mut self) -> Result<(), Error> {
        let (new, old) = self.get_all_and_sync_revision(false).await?;
        self.scale(new.clone(), old.clone()).await?;
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let (new, old) = self.refreshed(new, old);
        if paused {
            self.cleanup(&old).await?;
        }
        self.sync_deployment_status(new, &old).await
    }

    /// The newest copies of `new` and `old` after writes during this sync.
    pub(super) fn refreshed(
        &self,
        new: Option<ReplicaSet>,
        old: Vec<ReplicaSet>,
    ) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
        let fresh = |rs: ReplicaSet| {
            self.sets
                .iter()
                .find(|x| x.uid() == rs.uid())
                .cloned()
                .unwrap_or(rs)
        };
        (new.map(fresh), old.into_iter().map(fresh).collect())
    }

    /// Upstream `scale`: a lone active set takes the whole count; a saturated new set empties
    /// the old ones; otherwise (rolling) the change is spread in proportion to set sizes.
    async fn scale(&mut self, new: Option<ReplicaSet>, old: Vec<ReplicaSet>) -> Result<(), Error> {
        for step in scale_plan(&self.d, new.as_ref(), old) {
            match step.op {
                Some(op) => self.scale_rs_op(&step.rs, step.size, op).await?,
                None => self.scale_rs(&step.rs, step.size).await?,
            };
        }
        Ok(())
    }

    pub(super) async fn scale_rs(
        &mut self,
        rs: &ReplicaSet,
        new_scale: i32,
    ) -> Result<bool, Error> {
        if rs_replicas(rs) == new_scale {
            return Ok(false);
        }
        let op = if rs_replicas(rs) < new_scale {
            "up"
        } else {
            "down"
        };
        self.scale_rs_op(rs, new_scale, op).await
    }

    /// Upstream `scaleReplicaSet`: size and replica annotations in one update, and a
    /// ScalingReplicaSet event when the size changed.
    async fn scale_rs_op(
        &mut self,
        rs: &ReplicaSet,
        new_scale: i32,
        op: &str,
    ) -> Result<bool, Error> {
        // Work on the newest copy this sync has of the set.
        let rs = self
            .sets
            .iter()
            .find(|x| x.uid() == rs.uid())
            .cloned()
            .unwrap_or_else(|| rs.clone());
        let want = desired(&self.d);
        let max = want + max_surge(&self.d);
        let size_changes = rs_replicas(&rs) != new_scale;
        if !size_changes && !replicas_annotations_need_update(&rs, want, max) {
            return Ok(false);
        }
        let old_scale = rs_replicas(&rs);
        let mut copy = rs.clone();
        copy.spec.get_or_insert_with(Default::default).replicas = Some(new_scale);
        set_replicas_annotations(&mut copy, want, max);
        let updated = self
            .rs_api()
            .replace(&copy.name_any(), &PostParams::default(), &copy)
            .await?;
        self.remember(&updated);
        if size_changes {
            self.ctx
                .recorder
                .normal(
                    &events::reference(&self.d),
                    "ScalingReplicaSet",
                    format!(
                        "Scaled {op} replica set {} from {old_scale} to {new_scale}",
                        updated.name_any()
                    ),
                )
                .await;
        }
        Ok(size_changes)
    }

    /// Upstream `cleanupDeployment`: delete the oldest empty sets beyond revisionHistoryLimit.
    pub(super) async fn cleanup(&mut self, old: &[ReplicaSet]) -> Result<(), Error> {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable.len() as i32 - limit;
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| {
            revision(a)
                .cmp(&revision(b))
                .then_with(|| by_creation(a, b))
        });
        for rs in cleanable.into_iter().take(diff as usize) {
            let observed = rs.status.as_ref().and_then(|s| s.observed_generation);
            if rs_status_replicas(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation > observed
            {
                continue;
            }
            match self
                .rs_api()
                .delete(&rs.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// One resize `scale` makes. `op` names the direction of a proportional resize, which is
/// written even when the size stays (to refresh the set's replica annotations); without it only
/// a change of size is written.
pub(super) struct Resize {
    pub(super) rs: ReplicaSet,
    pub(super) size: i32,
    pub(super) op: Option<&'static str>,
}

/// The resizes of upstream `scale`, in the order they are written: a lone active set (or the
/// newest when none is active) takes the whole count; a saturated new set empties the old ones;
/// otherwise (rolling) the change is spread in proportion to set sizes, the leftover going to
/// the first set (the largest; among equals the newest when growing, the oldest when
/// shrinking).
pub(super) fn scale_plan(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    mut old: Vec<ReplicaSet>,
) -> Vec<Resize> {
    let want = desired(d);
    // FindActiveOrLatest.
    old.sort_by(|a, b| by_creation(b, a));
    let active: Vec<&ReplicaSet> = old
        .iter()
        .chain(new)
        .filter(|rs| rs_replicas(rs) > 0)
        .collect();
    let lone = match active.len() {
        0 => new.cloned().or_else(|| old.first().cloned()),
        1 => Some(active[0].clone()),
        _ => None,
    };
    if let Some(rs) = lone {
        if rs_replicas(&rs) == want {
            return Vec::new();
        }
        return vec![Resize {
            rs,
            size: want,
            op: None,
        }];
    }
    if new.is_some_and(|n| is_saturated(d, n)) {
        return old
            .into_iter()
            .filter(|rs| rs_replicas(rs) > 0)
            .map(|rs| Resize {
                rs,
                size: 0,
                op: None,
            })
            .collect();
    }
    if is_recreate(d) {
        return Vec::new();
    }
    let mut all: Vec<ReplicaSet> = old
        .iter()
        .chain(new)
        .filter(|rs| rs_replicas(rs) > 0)
        .cloned()
        .collect();
    let all_replicas: i32 = all.iter().map(rs_replicas).sum();
    let allowed = if want > 0 { want + max_surge(d) } else { 0 };
    let to_add = allowed - all_replicas;
    let operation = match to_add.cmp(&0) {
        Ordering::Greater => {
            // Larger first; among equals the newer grows first.
            all.sort_by(|a, b| {
                rs_replicas(b)
                    .cmp(&rs_replicas(a))
                    .then_with(|| by_creation(b, a))
            });
            "up"
        }
        Ordering::Less => {
            // Larger first; among equals the older shrinks first.
            all.sort_by(|a, b| {
                rs_replicas(b)
                    .cmp(&rs_replicas(a))
                    .then_with(|| by_creation(a, b))
            });
            "down"
        }
        Ordering::Equal => "",
    };
    let mut added = 0;
    let mut sizes: HashMap<String, i32> = HashMap::new();
    for rs in &all {
        let size = if to_add != 0 {
            let p = rs_proportion(d, rs, to_add, added);
            added += p;
            rs_replicas(rs) + p
        } else {
            rs_replicas(rs)
        };
        sizes.insert(rs.name_any(), size);
    }
    all.into_iter()
        .enumerate()
        .map(|(i, rs)| {
            let mut size = sizes[&rs.name_any()];
            if i == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            Resize {
                rs,
                size,
                op: Some(operation),
            }
        })
        .collect()
}

pub(super) fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    let want = desired(d);
    annotation_i32(rs, DESIRED_REPLICAS_ANNOTATION) == Some(want)
        && rs_replicas(rs) == want
        && rs_available(rs) == want
}

/// Upstream `GetReplicaSetProportion`.
pub(super) fn rs_proportion(d: &Deployment, rs: &ReplicaSet, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = rs_fraction(d, rs);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// Upstream `getReplicaSetFraction`.
pub(super) fn rs_fraction(d: &Deployment, rs: &ReplicaSet) -> i32 {
    let want = desired(d);
    if want == 0 {
        return -rs_replicas(rs);
    }
    let deployment_replicas = want + max_surge(d);
    // A missing or zero annotation (removed or zeroed by someone else) falls back to the
    // deployment's current size; with none either, the set keeps its size.
    let annotated = annotation_i32(rs, MAX_REPLICAS_ANNOTATION)
        .filter(|v| *v != 0)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
    size.round() as i32 - rs_replicas(rs)
}
