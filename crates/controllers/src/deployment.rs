//! The Deployment controller (upstream `pkg/controller/deployment`): one ReplicaSet per pod
//! template (`<name>-<pod-template-hash>`), rolled with RollingUpdate (maxSurge /
//! maxUnavailable) or Recreate, revisions in annotations so `kubectl rollout history|undo`
//! work, proportional scaling while a rollout is under way or paused, old sets cleaned up past
//! `revisionHistoryLimit`, and status with the Progressing / Available conditions.
//!
//! ReplicaSets and pods are listed from the API at each sync (consistent reads in-process);
//! ReplicaSet status comes from the ReplicaSet controller, as upstream.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::events::{self, Recorder};
use crate::util::{
    controller_of, controller_ref, error_message, is_conflict, is_not_found, pod_template_hash,
    scaled_value, selector_matches, selector_string, templates_equal_ignoring_hash,
    POD_TEMPLATE_HASH_LABEL,
};
use crate::Error;

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
const ROLLBACK_TO_ANNOTATION: &str = "deprecated.deployment.rollback.to";
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Upstream `maxRevHistoryLengthInChars`.
const MAX_REV_HISTORY_CHARS: usize = 2000;

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

struct Ctx {
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
            reconcile,
            |_, e, _| crate::error_action("deployment controller", e),
            Arc::new(Ctx {
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

/// maxSurge and maxUnavailable resolved against the replica count (upstream
/// `ResolveFenceposts`): surge rounds up, unavailability down, and both zero means one may be
/// unavailable.
fn fenceposts(d: &Deployment) -> (i32, i32) {
    if is_recreate(d) {
        return (0, 0);
    }
    let n = desired(d);
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let pct25 = IntOrString::String("25%".into());
    let surge_v = ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&pct25);
    let unavail_v = ru
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&pct25);
    let surge = scaled_value(surge_v, n, true).unwrap_or(0);
    let mut unavailable = scaled_value(unavail_v, n, false).unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

fn max_surge(d: &Deployment) -> i32 {
    fenceposts(d).0
}

fn max_unavailable(d: &Deployment) -> i32 {
    let n = desired(d);
    if is_recreate(d) || n == 0 {
        return 0;
    }
    fenceposts(d).1.min(n)
}

fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|p| p != i32::MAX)
}

fn sum(rss: &[&ReplicaSet], f: impl Fn(&ReplicaSet) -> i32) -> i32 {
    rss.iter().map(|rs| f(rs)).sum()
}

// ---- conditions ------------------------------------------------------------------------

fn new_condition(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
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

fn get_condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// Upstream `SetDeploymentCondition`: same status and reason changes nothing; same status
/// keeps the transition time.
fn set_condition(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
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

// ---- annotations -----------------------------------------------------------------------

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
fn set_new_rs_annotations(
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

fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
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

fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    let anns = rs.annotations();
    anns.get(DESIRED_REPLICAS_ANNOTATION) != Some(&desired.to_string())
        || anns.get(MAX_REPLICAS_ANNOTATION) != Some(&max.to_string())
}

fn annotation_i32(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.annotations().get(key).and_then(|v| v.parse().ok())
}

// ---- the sync ---------------------------------------------------------------------------

/// What one sync works on: the deployment (refreshed after each write) and its sets.
struct Sync<'a> {
    ctx: &'a Ctx,
    d: Deployment,
    ns: String,
    /// Every ReplicaSet the deployment controls.
    sets: Vec<ReplicaSet>,
    /// When the sync should look again (progress deadline, old pods still running).
    requeue: Option<Duration>,
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = d.namespace().unwrap_or_default();
    let Some(spec) = d.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    let mut s = Sync {
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

impl Sync<'_> {
    fn rs_api(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.ctx.client.clone(), &self.ns)
    }

    fn name(&self) -> String {
        self.d.name_any()
    }

    fn uid(&self) -> String {
        self.d.uid().unwrap_or_default()
    }

    fn requeue_after(&mut self, after: Duration) {
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }

    async fn update_status(&mut self) -> Result<(), Error> {
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

    /// Upstream `checkPausedConditions`.
    async fn check_paused_conditions(&mut self) -> Result<(), Error> {
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
    async fn get_all_and_sync_revision(
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
    fn refreshed(
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

    async fn rollout_rolling(&mut self) -> Result<(), Error> {
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
        let want = desired(&self.d);
        let have = rs_replicas(new);
        if have == want {
            return Ok(false);
        }
        if have > want {
            return self.scale_rs(new, want).await;
        }
        let all: Vec<&ReplicaSet> = old.iter().chain([new]).collect();
        let count = new_rs_new_replicas(&self.d, &all, new);
        self.scale_rs(new, count).await
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
        let old_count: i32 = old_active.iter().map(rs_replicas).sum();
        if old_count == 0 {
            return Ok(false);
        }
        let all_count = old_count + rs_replicas(new);
        let min_available = desired(&self.d) - max_unavailable(&self.d);
        let new_unavailable = rs_replicas(new) - rs_available(new);
        let max_scaled_down = all_count - min_available - new_unavailable;
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
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= max_cleanup {
                break;
            }
            let replicas = rs_replicas(rs);
            if replicas == 0 || replicas == rs_available(rs) {
                continue;
            }
            let down = (max_cleanup - total).min(replicas - rs_available(rs));
            self.scale_rs(rs, replicas - down).await?;
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
        let min_available = desired(&self.d) - max_unavailable(&self.d);
        let available: i32 = old.iter().chain([new]).map(rs_available).sum();
        if available <= min_available {
            return Ok(0);
        }
        old.sort_by(by_creation);
        let total_to_scale = available - min_available;
        let mut total = 0;
        for rs in &old {
            if total >= total_to_scale {
                break;
            }
            let replicas = rs_replicas(rs);
            if replicas == 0 {
                continue;
            }
            let down = replicas.min(total_to_scale - total);
            self.scale_rs(rs, replicas - down).await?;
            total += down;
        }
        Ok(total)
    }

    async fn rollout_recreate(&mut self) -> Result<(), Error> {
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

    /// Upstream `scale`: a lone active set takes the whole count; a saturated new set empties
    /// the old ones; otherwise (rolling) the change is spread in proportion to set sizes.
    async fn scale(
        &mut self,
        new: Option<ReplicaSet>,
        mut old: Vec<ReplicaSet>,
    ) -> Result<(), Error> {
        let want = desired(&self.d);
        // FindActiveOrLatest.
        old.sort_by(|a, b| by_creation(b, a));
        let active: Vec<&ReplicaSet> = old
            .iter()
            .chain(new.iter())
            .filter(|rs| rs_replicas(rs) > 0)
            .collect();
        let lone = match active.len() {
            0 => new.clone().or_else(|| old.first().cloned()),
            1 => Some(active[0].clone()),
            _ => None,
        };
        if let Some(rs) = lone {
            if rs_replicas(&rs) != want {
                self.scale_rs(&rs, want).await?;
            }
            return Ok(());
        }
        if let Some(n) = new.as_ref().filter(|n| is_saturated(&self.d, n)) {
            let _ = n;
            for rs in old.iter().filter(|rs| rs_replicas(rs) > 0) {
                self.scale_rs(rs, 0).await?;
            }
            return Ok(());
        }
        if is_recreate(&self.d) {
            return Ok(());
        }
        let mut all: Vec<ReplicaSet> = old
            .iter()
            .chain(new.iter())
            .filter(|rs| rs_replicas(rs) > 0)
            .cloned()
            .collect();
        let all_replicas: i32 = all.iter().map(rs_replicas).sum();
        let allowed = if want > 0 {
            want + max_surge(&self.d)
        } else {
            0
        };
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
                let p = rs_proportion(&self.d, rs, to_add, added);
                added += p;
                rs_replicas(rs) + p
            } else {
                rs_replicas(rs)
            };
            sizes.insert(rs.name_any(), size);
        }
        for (i, rs) in all.iter().enumerate() {
            let mut size = sizes[&rs.name_any()];
            if i == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale_rs_op(rs, size, operation).await?;
        }
        Ok(())
    }

    async fn scale_rs(&mut self, rs: &ReplicaSet, new_scale: i32) -> Result<bool, Error> {
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
    async fn cleanup(&mut self, old: &[ReplicaSet]) -> Result<(), Error> {
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

    async fn sync_deployment_status(
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
    async fn sync_rollout_status(
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

fn set_deployment_revision(d: &mut Deployment, rev: &str) -> bool {
    let anns = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if anns.get(REVISION_ANNOTATION).map(String::as_str) == Some(rev) {
        return false;
    }
    anns.insert(REVISION_ANNOTATION.into(), rev.into());
    true
}

/// Upstream `NewRSNewReplicas`: how far the new set may grow now.
fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> i32 {
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

fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    let want = desired(d);
    annotation_i32(rs, DESIRED_REPLICAS_ANNOTATION) == Some(want)
        && rs_replicas(rs) == want
        && rs_available(rs) == want
}

/// Upstream `GetReplicaSetProportion`.
fn rs_proportion(d: &Deployment, rs: &ReplicaSet, to_add: i32, added: i32) -> i32 {
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
fn rs_fraction(d: &Deployment, rs: &ReplicaSet) -> i32 {
    let want = desired(d);
    if want == 0 {
        return -rs_replicas(rs);
    }
    let deployment_replicas = want + max_surge(d);
    let annotated = annotation_i32(rs, MAX_REPLICAS_ANNOTATION)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
    size.round() as i32 - rs_replicas(rs)
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

fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
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
