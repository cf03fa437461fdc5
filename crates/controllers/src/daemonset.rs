//! The DaemonSet controller (upstream `pkg/controller/daemon`): one pod per eligible node.
//! Since 1.12 the default scheduler places daemon pods: each pod is created with a required
//! node affinity on `metadata.name` of its node, and the scheduler binds it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodTemplateSpec, Toleration,
};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::events::{self, Recorder};
use crate::history::{self, Created, HASH_LABEL};
use crate::int_or_percent::scaled_value;
use crate::label_selector::selector_string;
use crate::node_affinity::node_fits_pod_selectors;
use crate::ordering::creation_key;
use crate::ownership::controller_ref;
use crate::pod_state::{is_pod_available, is_pod_ready};
use crate::pod_template::pod_template_hash;
use crate::taints::untolerated_taint;
use crate::MergeStatus;
use crate::{retry_after_error, Error};

/// Label with the DaemonSet's template generation (deprecated upstream, still set).
const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// Annotation upstream's API server keeps the template generation in.
const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

struct DaemonSetController {
    client: Client,
    recorder: Recorder,
}

pub async fn run(client: Client) {
    let controller = Controller::new(
        Api::<DaemonSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let sets = controller.store();
    let owners = sets.clone();
    controller
        .watches(
            Api::<PartialObjectMeta<Pod>>::all(client.clone()),
            watcher::Config::default(),
            move |pod| {
                crate::ownership::pod_owners(&owners, &pod.metadata, |d: &DaemonSet| {
                    d.spec.as_ref().map(|s| &s.selector)
                })
            },
        )
        // A node coming or changing what eligibility depends on concerns every DaemonSet;
        // status heartbeats do not (upstream `shouldIgnoreNodeUpdate`).
        .watches(
            Api::<Node>::all(client.clone()),
            watcher::Config::default(),
            {
                let seen: Mutex<HashMap<String, u32>> = Mutex::new(HashMap::new());
                move |node: Node| {
                    let print = node_fingerprint(&node);
                    let before = seen.lock().unwrap().insert(node.name_any(), print);
                    if before == Some(print) {
                        return Vec::new();
                    }
                    sets.state()
                        .iter()
                        .map(|d| ObjectRef::from_obj(&**d))
                        .collect::<Vec<_>>()
                }
            },
        )
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("daemonset controller: {e}");
                retry_after_error()
            },
            Arc::new(DaemonSetController {
                recorder: Recorder::new(client.clone(), "daemonset-controller"),
                client,
            }),
        )
        .for_each(|_| async {})
        .await;
}

/// Upstream `AddOrUpdateDaemonPodTolerations`: daemon pods survive node conditions that
/// evict or repel other pods.
fn add_daemon_tolerations(spec: &mut k8s_openapi::api::core::v1::PodSpec) {
    let mut wanted = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in wanted {
        let tol = Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            ..Default::default()
        };
        // Upstream replaces a toleration with the same key, operator, value and effect.
        tolerations.retain(|t| {
            !(t.key == tol.key
                && t.operator.as_deref().unwrap_or("Equal") == "Exists"
                && t.value.as_deref().unwrap_or("").is_empty()
                && t.effect == tol.effect)
        });
        tolerations.push(tol);
    }
}

/// The template the pods are made from (upstream `CreatePodTemplate`): generation and hash
/// labels and the daemon tolerations.
fn pod_template(ds: &DaemonSet, hash: &str) -> PodTemplateSpec {
    let mut t = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let meta = t.metadata.get_or_insert_with(Default::default);
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(TEMPLATE_GENERATION_LABEL.into(), template_generation(ds));
    labels.insert(HASH_LABEL.into(), hash.into());
    add_daemon_tolerations(t.spec.get_or_insert_with(Default::default));
    t
}

fn template_generation(ds: &DaemonSet) -> String {
    ds.annotations()
        .get(TEMPLATE_GENERATION_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| ds.metadata.generation.unwrap_or(1).to_string())
}

/// Upstream `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes
/// exactly "metadata.name In [node]"; eligibility was checked by the controller already.
fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
            ..Default::default()
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default)
        .required_during_scheduling_ignored_during_execution = Some(selector);
    affinity
}

/// The node a daemon pod is for: where it is bound, or what its affinity pins it to.
fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| match r.values.as_deref() {
            Some([one]) => Some(one.clone()),
            _ => None,
        })
}

/// Upstream `NodeShouldRunDaemonPod`: (should run, should continue running).
fn node_should_run(template: &PodTemplateSpec, node: &Node) -> (bool, bool) {
    let Some(spec) = template.spec.as_ref() else {
        return (false, false);
    };
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && Some(n) != node.metadata.name.as_deref())
    {
        return (false, false);
    }
    if !node_fits_pod_selectors(spec, node) {
        return (false, false);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    if untolerated_taint(&taints, &tolerations, |t| {
        t.effect == "NoSchedule" || t.effect == "NoExecute"
    })
    .is_some()
    {
        // A pod already there may stay unless a NoExecute taint would evict it.
        let evicted =
            untolerated_taint(&taints, &tolerations, |t| t.effect == "NoExecute").is_some();
        return (false, !evicted);
    }
    (true, true)
}

/// What of a node DaemonSet placement depends on: labels, taints, unschedulable and the
/// condition statuses (not heartbeat times).
fn node_fingerprint(node: &Node) -> u32 {
    let conditions: Vec<(String, String)> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| (c.type_.clone(), c.status.clone()))
                .collect()
        })
        .unwrap_or_default();
    let spec = node.spec.as_ref();
    let relevant = serde_json::json!([
        node.metadata.labels,
        spec.and_then(|s| s.taints.clone()),
        spec.and_then(|s| s.unschedulable),
        conditions,
    ]);
    crate::hash::fnv32a(relevant.to_string().as_bytes())
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn is_updated(pod: &Pod, hash: &str, generation: &str, has_generation_annotation: bool) -> bool {
    let labels = pod.labels();
    labels.get(HASH_LABEL).is_some_and(|h| h == hash)
        || (has_generation_annotation
            && labels
                .get(TEMPLATE_GENERATION_LABEL)
                .is_some_and(|g| g == generation))
}

/// Everything one sync works from.
struct View {
    nodes: Vec<Node>,
    /// Daemon pods per target node, oldest first (terminating ones included).
    by_node: HashMap<String, Vec<Pod>>,
}

async fn view(ctx: &DaemonSetController, ds: &DaemonSet) -> Result<View, Error> {
    let ns = ds.namespace().unwrap_or_default();
    let nodes = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let selector = ds
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default().labels(&selector_string(&selector)))
        .await?
        .items;
    let mut by_node: HashMap<String, Vec<Pod>> = HashMap::new();
    for pod in crate::ownership::claim_pods(&ctx.client, ds, pods).await {
        // Finished pods that are already being deleted are gone as far as we care.
        if pod.metadata.deletion_timestamp.is_some()
            && matches!(phase(&pod), "Succeeded" | "Failed")
        {
            continue;
        }
        if let Some(node) = target_node(&pod) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    for pods in by_node.values_mut() {
        pods.sort_by_key(|p| creation_key(&p.metadata));
    }
    Ok(View { nodes, by_node })
}

/// Finds or creates the revision of the current template (upstream `constructHistory`);
/// returns its hash and all of the DaemonSet's revisions.
async fn current_revision(
    ctx: &DaemonSetController,
    ds: &DaemonSet,
) -> Result<(String, Vec<k8s_openapi::api::apps::v1::ControllerRevision>), Error> {
    let ns = ds.namespace().unwrap_or_default();
    let uid = ds.uid().unwrap_or_default();
    let spec = ds.spec.clone().unwrap_or_default();
    let mut revs = history::controlled(&ctx.client, &ns, &spec.selector, &uid).await?;
    let data = history::template_patch(&spec.template);
    let next = history::next_number(&revs);
    if let Some(cur) = revs
        .iter()
        .filter(|r| history::data_of(r) == Some(&data))
        .max_by_key(|r| r.revision)
        .cloned()
    {
        let hash = cur
            .labels()
            .get(HASH_LABEL)
            .cloned()
            .unwrap_or_else(|| pod_template_hash(&spec.template, None));
        if cur.revision < next - 1 {
            let renumbered = history::renumber(&ctx.client, &cur, next).await?;
            revs.retain(|r| r.name_any() != cur.name_any());
            revs.push(renumbered);
        }
        return Ok((hash, revs));
    }
    let mut collision = ds.status.as_ref().and_then(|s| s.collision_count);
    loop {
        let hash = pod_template_hash(&spec.template, collision);
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
            history::revision_name(&ds.name_any(), &hash),
            labels,
            ds.metadata.annotations.clone(),
            controller_ref(ds),
            data.clone(),
            next,
        )
        .await?
        {
            Created::Revision(r) => {
                revs.push(*r);
                return Ok((hash, revs));
            }
            Created::Collision => {
                let c = collision.unwrap_or(0) + 1;
                collision = Some(c);
                Api::<DaemonSet>::namespaced(ctx.client.clone(), &ns)
                    .merge_status(
                        &ds.name_any(),
                        &serde_json::json!({"status": {"collisionCount": c}}),
                    )
                    .await?;
            }
        }
    }
}

async fn create_pods(ctx: &DaemonSetController, ds: &DaemonSet, hash: &str, nodes: &[String]) {
    let ns = ds.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let template = pod_template(ds, hash);
    for node in nodes {
        let mut pod = crate::pod_template::pod_from_template(
            &template,
            controller_ref(ds),
            &ns,
            None,
            &ds.name_any(),
        );
        if let Some(spec) = pod.spec.as_mut() {
            spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
        }
        match api.create(&PostParams::default(), &pod).await {
            Ok(p) => {
                ctx.recorder
                    .normal(
                        &events::reference(ds),
                        "SuccessfulCreate",
                        format!("Created pod: {}", p.name_any()),
                    )
                    .await
            }
            Err(e) => {
                ctx.recorder
                    .warning(
                        &events::reference(ds),
                        "FailedCreate",
                        format!("Error creating: {e}"),
                    )
                    .await
            }
        }
    }
}

async fn delete_pods(ctx: &DaemonSetController, ds: &DaemonSet, pods: &[String]) {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
    for name in pods {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                ctx.recorder
                    .normal(
                        &events::reference(ds),
                        "SuccessfulDelete",
                        format!("Deleted pod: {name}"),
                    )
                    .await
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                ctx.recorder
                    .warning(
                        &events::reference(ds),
                        "FailedDelete",
                        format!("Error deleting: {e}"),
                    )
                    .await
            }
        }
    }
}

/// Upstream `manage`/`podsShouldBeOnNode`: nodes needing a pod, pods to delete.
async fn manage(
    ctx: &DaemonSetController,
    ds: &DaemonSet,
    v: &View,
    hash: &str,
) -> (Vec<String>, Vec<String>) {
    let template = pod_template(ds, hash);
    let surge = allows_surge(ds);
    let mut create = Vec::new();
    let mut delete = Vec::new();
    for node in &v.nodes {
        let name = node.name_any();
        let (should_run, should_continue) = node_should_run(&template, node);
        let pods = v.by_node.get(&name).map(Vec::as_slice).unwrap_or_default();
        if should_run && pods.is_empty() {
            create.push(name);
        } else if should_continue {
            let mut running: Vec<&Pod> = Vec::new();
            for pod in pods {
                if pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                match phase(pod) {
                    "Failed" => {
                        ctx.recorder
                            .warning(
                                &events::reference(ds),
                                "FailedDaemonPod",
                                format!(
                                    "Found failed daemon pod {}/{} on node {name}, will try to kill it",
                                    pod.namespace().unwrap_or_default(),
                                    pod.name_any()
                                ),
                            )
                            .await;
                        delete.push(pod.name_any());
                    }
                    "Succeeded" => {
                        ctx.recorder
                            .normal(
                                &events::reference(ds),
                                "SucceededDaemonPod",
                                format!(
                                    "Found succeeded daemon pod {}/{} on node {name}, will try to delete it",
                                    pod.namespace().unwrap_or_default(),
                                    pod.name_any()
                                ),
                            )
                            .await;
                        delete.push(pod.name_any());
                    }
                    _ => running.push(pod),
                }
            }
            if running.len() <= 1 {
                continue;
            }
            if !surge {
                // Keep the oldest.
                delete.extend(running[1..].iter().map(|p| p.name_any()));
                continue;
            }
            // With surge, an old and a new pod may coexist while the new one is not ready.
            let (mut oldest_new, mut oldest_old): (Option<&Pod>, Option<&Pod>) = (None, None);
            for pod in running {
                let is_new = pod.labels().get(HASH_LABEL).is_some_and(|h| h == hash);
                let slot = if is_new {
                    &mut oldest_new
                } else {
                    &mut oldest_old
                };
                if slot.is_none() {
                    *slot = Some(pod);
                } else {
                    delete.push(pod.name_any());
                }
            }
            if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
                if !is_pod_ready(old) || is_pod_ready(new) {
                    delete.push(old.name_any());
                }
            }
        } else {
            delete.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .map(|p| p.name_any()),
            );
        }
    }
    // Upstream `getUnscheduledPodsWithoutNode`: pods pinned to a node that no longer
    // exists would wait forever.
    for (node, pods) in &v.by_node {
        if v.nodes
            .iter()
            .any(|n| n.metadata.name.as_ref() == Some(node))
        {
            continue;
        }
        delete.extend(
            pods.iter()
                .filter(|p| {
                    p.metadata.deletion_timestamp.is_none()
                        && p.spec
                            .as_ref()
                            .and_then(|s| s.node_name.as_deref())
                            .unwrap_or("")
                            .is_empty()
                })
                .map(|p| p.name_any()),
        );
    }
    (create, delete)
}

fn allows_surge(ds: &DaemonSet) -> bool {
    rolling(ds)
        .and_then(|r| r.max_surge.as_ref())
        .is_some_and(|s| scaled_or(Some(s), 100, 0) > 0)
}

/// maxSurge/maxUnavailable against the desired count, rounded up as upstream's
/// `SurgeCount`/`UnavailableCount`; `default` when unset or malformed (validation refuses
/// those).
fn scaled_or(
    v: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    total: i32,
    default: i32,
) -> i32 {
    v.and_then(|v| scaled_value(v, total, true).ok())
        .unwrap_or(default)
}

fn rolling(ds: &DaemonSet) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDaemonSet> {
    let strategy = ds.spec.as_ref()?.update_strategy.as_ref()?;
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return None;
    }
    strategy.rolling_update.as_ref()
}

/// Upstream `rollingUpdate`: old pods to delete and nodes to surge onto.
fn rolling_update(ds: &DaemonSet, v: &View, hash: &str) -> (Vec<String>, Vec<String>) {
    let spec = ds.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template = pod_template(ds, hash);
    let gen = template_generation(ds);
    let has_gen = ds
        .annotations()
        .contains_key(TEMPLATE_GENERATION_ANNOTATION);
    // Nodes that should run a pod or have one (upstream `updatedDesiredNodeCounts`).
    let mut nodes: Vec<(String, Vec<&Pod>)> = Vec::new();
    for node in &v.nodes {
        let name = node.name_any();
        if node_should_run(&template, node).0 || v.by_node.contains_key(&name) {
            let pods = v
                .by_node
                .get(&name)
                .map(|p| p.iter().collect())
                .unwrap_or_default();
            nodes.push((name, pods));
        }
    }
    let desired = v
        .nodes
        .iter()
        .filter(|n| node_should_run(&template, n).0)
        .count() as i32;
    let r = rolling(ds).cloned().unwrap_or_default();
    let mut max_unavailable = scaled_or(r.max_unavailable.as_ref(), desired, 1);
    let max_surge = scaled_or(r.max_surge.as_ref(), desired, 0);
    if max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }
    // Upstream `findUpdatedPodsOnNode`: at most one new and one old live pod, or give up.
    let split = |pods: &[&Pod]| -> Option<(Option<Pod>, Option<Pod>)> {
        let (mut new, mut old) = (None, None);
        for p in pods {
            if p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let slot = if is_updated(p, hash, &gen, has_gen) {
                &mut new
            } else {
                &mut old
            };
            if slot.is_some() {
                return None;
            }
            *slot = Some((*p).clone());
        }
        Some((new, old))
    };
    let available = |p: &Pod| is_pod_available(p, min_ready);
    if max_surge == 0 {
        let mut unavailable = 0;
        let mut replace = Vec::new();
        let mut candidates = Vec::new();
        for (_, pods) in &nodes {
            let Some((new, old)) = split(pods) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !available(&new) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !available(&old) {
                        replace.push(old.name_any());
                    } else if unavailable < max_unavailable {
                        candidates.push(old.name_any());
                    }
                }
            }
        }
        let room = (max_unavailable - unavailable).clamp(0, candidates.len() as i32) as usize;
        replace.extend(candidates.into_iter().take(room));
        return (replace, Vec::new());
    }
    let mut surged = 0;
    let mut allowed = Vec::new();
    let mut candidates = Vec::new();
    let mut delete = Vec::new();
    for (node, pods) in &nodes {
        let Some((new, old)) = split(pods) else {
            continue;
        };
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !available(&old) {
                    allowed.push(node.clone());
                } else if surged < max_surge {
                    candidates.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if !available(&new) {
                    surged += 1;
                } else {
                    delete.push(old.name_any());
                }
            }
        }
    }
    let room = (max_surge - surged).clamp(0, candidates.len() as i32) as usize;
    allowed.extend(candidates.into_iter().take(room));
    (delete, allowed)
}

async fn update_status(
    ctx: &DaemonSetController,
    ds: &DaemonSet,
    v: &View,
    hash: &str,
) -> Result<bool, Error> {
    let spec = ds.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template = pod_template(ds, hash);
    let gen = template_generation(ds);
    let has_gen = ds
        .annotations()
        .contains_key(TEMPLATE_GENERATION_ANNOTATION);
    let (mut desired, mut current, mut ready, mut available, mut updated, mut misscheduled) =
        (0, 0, 0, 0, 0, 0);
    // Whether a pod is ready but not yet available: check again once it may be.
    let mut pending_availability = false;
    for node in &v.nodes {
        let pods = v
            .by_node
            .get(&node.name_any())
            .map(Vec::as_slice)
            .unwrap_or_default();
        if node_should_run(&template, node).0 {
            desired += 1;
            let Some(pod) = pods.first() else {
                continue;
            };
            current += 1;
            if is_pod_ready(pod) {
                ready += 1;
                if is_pod_available(pod, min_ready) {
                    available += 1;
                } else {
                    pending_availability = true;
                }
            }
            if is_updated(pod, hash, &gen, has_gen) {
                updated += 1;
            }
        } else if !pods.is_empty() {
            misscheduled += 1;
        }
    }
    let omit_zero = |n: i32| {
        if n == 0 {
            serde_json::Value::Null
        } else {
            n.into()
        }
    };
    let status = serde_json::json!({
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
        "observedGeneration": ds.metadata.generation,
        "updatedNumberScheduled": omit_zero(updated),
        "numberAvailable": omit_zero(available),
        "numberUnavailable": omit_zero(desired - available),
    });
    let old = serde_json::to_value(ds.status.clone().unwrap_or_default()).unwrap_or_default();
    let changed = status
        .as_object()
        .into_iter()
        .flatten()
        .any(|(k, v)| old.get(k).unwrap_or(&serde_json::Value::Null) != v);
    if changed {
        Api::<DaemonSet>::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default())
            .merge_status(&ds.name_any(), &serde_json::json!({ "status": status }))
            .await?;
    }
    Ok(pending_availability)
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<DaemonSetController>) -> Result<Action, Error> {
    // A DaemonSet being deleted is left alone (upstream returns before building its
    // history); the garbage collector takes the pods.
    if ds.spec.is_none() || ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let (hash, revs) = current_revision(&ctx, &ds).await?;
    let mut v = view(&ctx, &ds).await?;
    let (create, delete) = manage(&ctx, &ds, &v, &hash).await;
    let mut changed = !create.is_empty() || !delete.is_empty();
    create_pods(&ctx, &ds, &hash, &create).await;
    delete_pods(&ctx, &ds, &delete).await;
    // Roll only from a settled view, as upstream waits for its expectations.
    if !changed && is_rolling_update(&ds) {
        let (delete, surge) = rolling_update(&ds, &v, &hash);
        changed = !delete.is_empty() || !surge.is_empty();
        create_pods(&ctx, &ds, &hash, &surge).await;
        delete_pods(&ctx, &ds, &delete).await;
    }
    if changed {
        v = view(&ctx, &ds).await?;
    }
    // Upstream `cleanupHistory`: revisions no pod uses, beyond the limit.
    let mut live_hashes: HashSet<String> = v
        .by_node
        .values()
        .flatten()
        .filter_map(|p| p.labels().get(HASH_LABEL).cloned())
        .collect();
    live_hashes.insert(hash.clone());
    let live: HashSet<String> = revs
        .iter()
        .filter(|r| {
            r.labels()
                .get(HASH_LABEL)
                .is_some_and(|h| live_hashes.contains(h))
        })
        .map(|r| r.name_any())
        .collect();
    let limit = ds
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10);
    history::truncate(&ctx.client, &revs, &live, limit).await?;
    let pending = update_status(&ctx, &ds, &v, &hash).await?;
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    if pending && min_ready > 0 {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn is_rolling_update(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}
