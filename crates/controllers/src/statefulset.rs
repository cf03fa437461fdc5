//! The StatefulSet controller (upstream `pkg/controller/statefulset`): pods with stable
//! names `<set>-<ordinal>`, stable storage from volumeClaimTemplates, ordered (or parallel)
//! creation and deletion, and rolling updates from the highest ordinal down.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::events::{self, Recorder};
use crate::hash::{fnv32, safe_encode};
use crate::history::{self, Created, HASH_LABEL};
use crate::label_selector::selector_string;
use crate::ownership::controller_ref;
use crate::pod_state::{is_pod_available, is_pod_ready};
use crate::pod_template::pod_from_template;
use crate::MergeStatus;
use crate::{retry_after_error, Error};

const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

struct StatefulSetController {
    client: Client,
    recorder: Recorder,
}

pub async fn run(client: Client) {
    let controller = Controller::new(
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let sets = controller.store();
    controller
        .watches(
            Api::<PartialObjectMeta<Pod>>::all(client.clone()),
            watcher::Config::default(),
            move |pod| {
                crate::ownership::pod_owners(&sets, &pod.metadata, |s: &StatefulSet| {
                    s.spec.as_ref().map(|s| &s.selector)
                })
            },
        )
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("statefulset controller: {e}");
                retry_after_error()
            },
            Arc::new(StatefulSetController {
                recorder: Recorder::new(client.clone(), "statefulset-controller"),
                client,
            }),
        )
        .for_each(|_| async {})
        .await;
}

/// The ordinal of a pod named `<set>-<n>` belonging to `set`.
fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let (parent, n) = pod.rsplit_once('-')?;
    if parent != set || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Upstream `isRunningAndAvailable` plus Running phase.
fn running_and_available(pod: &Pod, min_ready: i32) -> bool {
    phase(pod) == "Running" && is_pod_available(pod, min_ready)
}

/// Upstream `isUnavailable`: not healthy (Running, Ready, not terminating) or not yet
/// available for minReadySeconds.
fn unavailable(pod: &Pod, min_ready: i32) -> bool {
    !(phase(pod) == "Running"
        && is_pod_ready(pod)
        && !terminating(pod)
        && is_pod_available(pod, min_ready))
}

fn revision_of(pod: &Pod) -> Option<&String> {
    pod.labels().get(HASH_LABEL)
}

/// The template a revision recorded (its data is a patch replacing `spec.template`).
fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = history::data_of(rev)?.get("spec")?.get("template")?.clone();
    t.as_object_mut()?.remove("$patch");
    serde_json::from_value(t).ok()
}

/// Upstream `HashControllerRevision`: FNV-1 of the data, salted with the collision count.
fn revision_hash(data: &serde_json::Value, collision: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(data).unwrap_or_default();
    if let Some(c) = collision {
        bytes.extend_from_slice(c.to_string().as_bytes());
    }
    safe_encode(&fnv32(&bytes).to_string())
}

/// Upstream `getStatefulSetRevisions`: (current, update, all revisions).
async fn revisions(
    ctx: &StatefulSetController,
    set: &StatefulSet,
) -> Result<
    (
        ControllerRevision,
        ControllerRevision,
        Vec<ControllerRevision>,
    ),
    Error,
> {
    let ns = set.namespace().unwrap_or_default();
    let spec = set.spec.clone().unwrap_or_default();
    let mut revs = history::controlled(
        &ctx.client,
        &ns,
        &spec.selector,
        &set.uid().unwrap_or_default(),
    )
    .await?;
    let data = history::template_patch(&spec.template);
    let next = history::next_number(&revs);
    let equal = revs
        .iter()
        .filter(|r| history::data_of(r) == Some(&data))
        .max_by_key(|r| r.revision)
        .cloned();
    let update = match equal {
        Some(r) if r.revision == next - 1 => r,
        Some(r) => {
            let renumbered = history::renumber(&ctx.client, &r, next).await?;
            revs.retain(|x| x.name_any() != r.name_any());
            revs.push(renumbered.clone());
            renumbered
        }
        None => {
            let mut collision = set.status.as_ref().and_then(|s| s.collision_count);
            loop {
                let hash = revision_hash(&data, collision);
                let mut labels = spec
                    .template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                labels.insert(HASH_LABEL.into(), hash.clone());
                match history::create(
                    &ctx.client,
                    &ns,
                    history::revision_name(&set.name_any(), &hash),
                    labels,
                    set.metadata.annotations.clone(),
                    controller_ref(set),
                    data.clone(),
                    next,
                )
                .await?
                {
                    Created::Revision(r) => {
                        revs.push((*r).clone());
                        break *r;
                    }
                    Created::Collision => {
                        let c = collision.unwrap_or(0) + 1;
                        collision = Some(c);
                        Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns)
                            .merge_status(
                                &set.name_any(),
                                &serde_json::json!({"status": {"collisionCount": c}}),
                            )
                            .await?;
                    }
                }
            }
        }
    };
    let current = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_ref())
        .and_then(|name| revs.iter().find(|r| &r.name_any() == name).cloned())
        .unwrap_or_else(|| update.clone());
    Ok((current, update, revs))
}

fn retention(set: &StatefulSet) -> (bool, bool) {
    let p = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.clone())
        .unwrap_or_default();
    (
        p.when_deleted.as_deref() == Some("Delete"),
        p.when_scaled.as_deref() == Some("Delete"),
    )
}

/// Upstream `getPersistentVolumeClaims`: the claims of the pod with this ordinal, by
/// template name.
fn claims(set: &StatefulSet, ordinal: i32) -> Vec<(String, PersistentVolumeClaim)> {
    let spec = set.spec.clone().unwrap_or_default();
    let match_labels = spec.selector.match_labels.clone().unwrap_or_default();
    spec.volume_claim_templates
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let tname = t.metadata.name.clone().unwrap_or_default();
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(match_labels.clone());
            let claim = PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(format!("{tname}-{}-{ordinal}", set.name_any())),
                    namespace: set.namespace(),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    ..Default::default()
                },
                spec: t.spec.clone(),
                status: None,
            };
            (tname, claim)
        })
        .collect()
}

/// The owner references a claim should carry (upstream `updateClaimOwnerRefForSetAndPod`):
/// the set's when deleting the set deletes claims, the pod's once it is scaled away and
/// scaling deletes claims.
fn claim_owners(
    set: &StatefulSet,
    pod: Option<&Pod>,
    scaled_down: bool,
    existing: &[OwnerReference],
) -> Vec<OwnerReference> {
    let set_uid = set.uid().unwrap_or_default();
    let pod_uid = pod.and_then(|p| p.uid());
    let mut refs: Vec<OwnerReference> = existing
        .iter()
        .filter(|r| r.uid != set_uid && Some(&r.uid) != pod_uid.as_ref())
        .cloned()
        .collect();
    let (when_deleted, when_scaled) = retention(set);
    if when_scaled && scaled_down {
        if let Some(pod) = pod {
            refs.push(controller_ref(pod));
        }
    } else if when_deleted {
        refs.push(controller_ref(set));
    }
    refs
}

/// A new pod for `ordinal` from `template` at `revision` (upstream `newStatefulSetPod`).
fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let ns = set.namespace().unwrap_or_default();
    let name = format!("{}-{ordinal}", set.name_any());
    let mut pod = pod_from_template(template, controller_ref(set), &ns, Some(name.clone()), "");
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(HASH_LABEL.into(), revision.into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name);
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    // Claim volumes first, then the template's other volumes.
    let claims = claims(set, ordinal);
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(tname, c)| Volume {
            name: tname.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: c.metadata.name.clone().unwrap_or_default(),
                read_only: None,
            }),
            ..Default::default()
        })
        .collect();
    for v in spec.volumes.take().unwrap_or_default() {
        if !claims.iter().any(|(t, _)| *t == v.name) {
            volumes.push(v);
        }
    }
    spec.volumes = (!volumes.is_empty()).then_some(volumes);
    pod
}

/// Creates the claims of a pod that are missing (upstream `createPersistentVolumeClaims`).
async fn create_claims(
    ctx: &StatefulSetController,
    set: &StatefulSet,
    pod_name: &str,
    ordinal: i32,
) -> Result<(), String> {
    let api: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    for (_, mut claim) in claims(set, ordinal) {
        let name = claim.metadata.name.clone().unwrap_or_default();
        match api.get_opt(&name).await {
            Ok(Some(existing)) if existing.metadata.deletion_timestamp.is_some() => {
                return Err(format!("pvc {name} is being deleted"));
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                let owners = claim_owners(set, None, false, &[]);
                claim.metadata.owner_references = (!owners.is_empty()).then_some(owners);
                let res = api.create(&PostParams::default(), &claim).await;
                let reference = events::reference(set);
                match res {
                    Ok(_) => {
                        ctx.recorder
                            .normal(
                                &reference,
                                "SuccessfulCreate",
                                format!(
                                    "create Claim {name} Pod {pod_name} in StatefulSet {} success",
                                    set.name_any()
                                ),
                            )
                            .await
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => {
                        ctx.recorder
                            .warning(
                                &reference,
                                "FailedCreate",
                                format!(
                                    "create Claim {name} for Pod {pod_name} in StatefulSet {} failed error: {e}",
                                    set.name_any()
                                ),
                            )
                            .await;
                        return Err(format!("Failed to create PVC {name}: {e}"));
                    }
                }
            }
            Err(e) => return Err(format!("Failed to retrieve PVC {name}: {e}")),
        }
    }
    Ok(())
}

/// Points the claims of a pod scaled away at the pod, per the retention policy.
async fn fix_claim_owners(
    ctx: &StatefulSetController,
    set: &StatefulSet,
    pod: &Pod,
    ordinal: i32,
    scaled_down: bool,
) {
    let api: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    for (_, claim) in claims(set, ordinal) {
        let name = claim.metadata.name.clone().unwrap_or_default();
        let Ok(Some(existing)) = api.get_opt(&name).await else {
            continue;
        };
        let have = existing
            .metadata
            .owner_references
            .clone()
            .unwrap_or_default();
        let want = claim_owners(set, Some(pod), scaled_down, &have);
        let same =
            have.len() == want.len() && want.iter().all(|w| have.iter().any(|h| h.uid == w.uid));
        if !same {
            // An update, guarded by the resourceVersion read: the controller's upstream role
            // may update claims, not patch them.
            let mut updated = existing.clone();
            updated.metadata.owner_references = (!want.is_empty()).then_some(want);
            if let Err(e) = api.replace(&name, &PostParams::default(), &updated).await {
                tracing::debug!("statefulset: owner references of claim {name}: {e}");
            }
        }
    }
}

async fn create_pod(
    ctx: &StatefulSetController,
    set: &StatefulSet,
    pod: &Pod,
    ordinal: i32,
) -> bool {
    let name = pod.name_any();
    let reference = events::reference(set);
    if let Err(e) = create_claims(ctx, set, &name, ordinal).await {
        ctx.recorder
            .warning(
                &reference,
                "FailedCreate",
                format!(
                    "create Pod {name} in StatefulSet {} failed error: {e}",
                    set.name_any()
                ),
            )
            .await;
        return false;
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    match api.create(&PostParams::default(), pod).await {
        Ok(_) => {
            ctx.recorder
                .normal(
                    &reference,
                    "SuccessfulCreate",
                    format!(
                        "create Pod {name} in StatefulSet {} successful",
                        set.name_any()
                    ),
                )
                .await;
            true
        }
        Err(kube::Error::Api(e)) if e.code == 409 => false,
        Err(e) => {
            ctx.recorder
                .warning(
                    &reference,
                    "FailedCreate",
                    format!(
                        "create Pod {name} in StatefulSet {} failed error: {e}",
                        set.name_any()
                    ),
                )
                .await;
            false
        }
    }
}

async fn delete_pod(ctx: &StatefulSetController, set: &StatefulSet, pod: &Pod) {
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    let reference = events::reference(set);
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {
            ctx.recorder
                .normal(
                    &reference,
                    "SuccessfulDelete",
                    format!(
                        "delete Pod {name} in StatefulSet {} successful",
                        set.name_any()
                    ),
                )
                .await
        }
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => {
            ctx.recorder
                .warning(
                    &reference,
                    "FailedDelete",
                    format!(
                        "delete Pod {name} in StatefulSet {} failed error: {e}",
                        set.name_any()
                    ),
                )
                .await
        }
    }
}

/// The set's pods with their ordinals.
async fn pods_of(ctx: &StatefulSetController, set: &StatefulSet) -> Result<Vec<(i32, Pod)>, Error> {
    let selector = set
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    let name = set.name_any();
    let matched = Api::<Pod>::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default())
        .list(&ListParams::default().labels(&selector_string(&selector)))
        .await?
        .items;
    Ok(crate::ownership::claim_pods(&ctx.client, set, matched)
        .await
        .into_iter()
        .filter_map(|p| ordinal_of(&name, &p.name_any()).map(|o| (o, p)))
        .collect())
}

/// Upstream `updateStatefulSet`: one pass of creations, deletions and updates. Returns
/// whether anything was written.
async fn sync(
    ctx: &StatefulSetController,
    set: &StatefulSet,
    pods: &[(i32, Pod)],
    current: &ControllerRevision,
    update: &ControllerRevision,
) -> bool {
    let spec = set.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate";
    let partition = strategy
        .rolling_update
        .as_ref()
        .and_then(|r| r.partition)
        .unwrap_or(0);

    let in_range = |o: i32| o >= start && o < start + replicas;
    let mut slots: Vec<Option<&Pod>> = vec![None; replicas as usize];
    let mut condemned: Vec<(i32, &Pod)> = Vec::new();
    for (o, p) in pods {
        if in_range(*o) {
            slots[(o - start) as usize] = Some(p);
        } else {
            condemned.push((*o, p));
        }
    }
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));
    let first_unhealthy: Option<String> = slots
        .iter()
        .flatten()
        .chain(condemned.iter().rev().map(|(_, p)| p))
        .find(|p| unavailable(p, min_ready))
        .map(|p| p.name_any());

    let current_template = template_of(current).unwrap_or_else(|| spec.template.clone());
    let mut wrote = false;
    let mut exit = false;
    for (i, slot) in slots.iter().enumerate() {
        let ordinal = start + i as i32;
        match slot {
            Some(pod) if matches!(phase(pod), "Failed" | "Succeeded") => {
                // Restart it regardless of how it ended; the next sync creates it again.
                if !terminating(pod) {
                    delete_pod(ctx, set, pod).await;
                    wrote = true;
                }
                exit = true;
            }
            None => {
                // Upstream `newVersionedStatefulSetPod`: below the partition, the current
                // revision; otherwise the update revision.
                let pod = if rolling && (i as i32) < partition {
                    new_pod(set, &current_template, &current.name_any(), ordinal)
                } else {
                    new_pod(set, &spec.template, &update.name_any(), ordinal)
                };
                let created = create_pod(ctx, set, &pod, ordinal).await;
                wrote |= created;
                if monotonic || !created {
                    exit = true;
                }
            }
            Some(pod) => {
                if phase(pod) == "Pending" {
                    if let Err(e) = create_claims(ctx, set, &pod.name_any(), ordinal).await {
                        tracing::debug!("statefulset: claims of {}: {e}", pod.name_any());
                    }
                }
                if monotonic && (terminating(pod) || !running_and_available(pod, min_ready)) {
                    exit = true;
                } else {
                    wrote |= fix_identity(ctx, set, pod, ordinal).await;
                }
            }
        }
        if exit && monotonic {
            return wrote;
        }
    }
    if exit {
        return wrote;
    }
    // Scale down from the highest ordinal, one at a time when ordered, only once every
    // remaining replica is Running and available.
    for (o, pod) in &condemned {
        fix_claim_owners(ctx, set, pod, *o, true).await;
        if terminating(pod) {
            if monotonic {
                return wrote;
            }
            continue;
        }
        if monotonic
            && !running_and_available(pod, min_ready)
            && first_unhealthy.as_deref() != Some(pod.name_any().as_str())
        {
            return wrote;
        }
        delete_pod(ctx, set, pod).await;
        wrote = true;
        if monotonic {
            return wrote;
        }
    }
    if !rolling {
        return wrote;
    }
    // Rolling update: the highest ordinal not at the update revision goes first; wait for
    // each replacement to be available.
    for target in (partition.max(0)..replicas).rev() {
        let Some(pod) = slots[target as usize] else {
            return wrote;
        };
        if revision_of(pod) != Some(&update.name_any()) && !terminating(pod) {
            delete_pod(ctx, set, pod).await;
            return true;
        }
        if unavailable(pod, min_ready) {
            return wrote;
        }
    }
    wrote
}

/// Upstream `identityMatches`/`updateIdentity`: the pod-name and pod-index labels.
async fn fix_identity(
    ctx: &StatefulSetController,
    set: &StatefulSet,
    pod: &Pod,
    ordinal: i32,
) -> bool {
    let labels = pod.labels();
    let name = pod.name_any();
    if labels.get(POD_NAME_LABEL) == Some(&name)
        && labels.get(POD_INDEX_LABEL) == Some(&ordinal.to_string())
    {
        return false;
    }
    let patch = serde_json::json!({"metadata": {"labels": {
        POD_NAME_LABEL: name, POD_INDEX_LABEL: ordinal.to_string(),
    }}});
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    let ok = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .is_ok();
    let verb = if ok { "successful" } else { "failed" };
    ctx.recorder
        .record(
            &events::reference(set),
            if ok { "Normal" } else { "Warning" },
            if ok {
                "SuccessfulUpdate"
            } else {
                "FailedUpdate"
            },
            format!("update Pod {name} in StatefulSet {} {verb}", set.name_any()),
        )
        .await;
    ok
}

/// Upstream `updateStatefulSetStatus` (with `completeRollingUpdate`). Returns whether a
/// pod is ready but not yet available.
async fn update_status(
    ctx: &StatefulSetController,
    set: &StatefulSet,
    pods: &[(i32, Pod)],
    current: &ControllerRevision,
    update: &ControllerRevision,
) -> Result<bool, Error> {
    let spec = set.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let (cur_name, upd_name) = (current.name_any(), update.name_any());
    let (mut replicas, mut ready, mut available, mut cur, mut upd) = (0, 0, 0, 0, 0);
    let mut pending = false;
    for (_, p) in pods {
        if phase(p).is_empty() {
            continue;
        }
        replicas += 1;
        if phase(p) == "Running" && is_pod_ready(p) {
            ready += 1;
            if is_pod_available(p, min_ready) {
                available += 1;
            } else {
                pending = true;
            }
        }
        if !terminating(p) {
            if revision_of(p) == Some(&cur_name) {
                cur += 1;
            }
            if revision_of(p) == Some(&upd_name) {
                upd += 1;
            }
        }
    }
    let mut current_revision = cur_name;
    let want = spec.replicas.unwrap_or(1);
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    if rolling && upd == want && ready == want && replicas == want {
        cur = upd;
        current_revision = upd_name.clone();
    }
    let omit_zero = |n: i32| {
        if n == 0 {
            serde_json::Value::Null
        } else {
            n.into()
        }
    };
    let status = serde_json::json!({
        "observedGeneration": set.metadata.generation,
        "replicas": replicas,
        "readyReplicas": omit_zero(ready),
        "currentReplicas": omit_zero(cur),
        "updatedReplicas": omit_zero(upd),
        "availableReplicas": available,
        "currentRevision": current_revision,
        "updateRevision": upd_name,
        "collisionCount": set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0),
    });
    let old = serde_json::to_value(set.status.clone().unwrap_or_default()).unwrap_or_default();
    let changed = status
        .as_object()
        .into_iter()
        .flatten()
        .any(|(k, v)| old.get(k).unwrap_or(&serde_json::Value::Null) != v);
    if changed {
        Api::<StatefulSet>::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default())
            .merge_status(&set.name_any(), &serde_json::json!({ "status": status }))
            .await?;
    }
    Ok(pending)
}

async fn reconcile(
    set: Arc<StatefulSet>,
    ctx: Arc<StatefulSetController>,
) -> Result<Action, Error> {
    if set.spec.is_none() {
        return Ok(Action::await_change());
    }
    let (current, update, revs) = revisions(&ctx, &set).await?;
    let mut pods = pods_of(&ctx, &set).await?;
    // A set being deleted only reports status; the garbage collector takes the pods.
    if set.meta().deletion_timestamp.is_none() {
        if sync(&ctx, &set, &pods, &current, &update).await {
            pods = pods_of(&ctx, &set).await?;
        }
        let mut live: HashSet<String> = pods
            .iter()
            .filter_map(|(_, p)| revision_of(p).cloned())
            .collect();
        live.insert(current.name_any());
        live.insert(update.name_any());
        let limit = set
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        history::truncate(&ctx.client, &revs, &live, limit).await?;
    }
    let pending = update_status(&ctx, &set, &pods, &current, &update).await?;
    let min_ready = set
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    if pending && min_ready > 0 {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_come_from_the_name() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "webby-1"), None);
        assert_eq!(ordinal_of("my-web", "my-web-3"), Some(3));
    }
}
