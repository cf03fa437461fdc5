//! The ReplicaSet controller (upstream `pkg/controller/replicaset`): keeps `spec.replicas`
//! active pods matching the selector, adopting orphans that match and releasing owned pods
//! that no longer do, and reports what it sees in the status.
//!
//! It is generic over [`Replicated`]: ReplicationControllers run on the same code, as
//! upstream's controller manager runs them (`pkg/controller/replication` adapts them to the
//! ReplicaSet controller).
//!
//! Pods come from the controllers' shared [`PodCache`] (one watch of every pod), which also
//! triggers the syncs, so a sync never sees a pod event before the cache holds it. As
//! upstream, a set whose own creations or deletions the cache has not shown yet
//! ([`Expectations`]) is not acted on again until it has.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::api_errors::{error_message, is_not_found};
use crate::events::{self, Recorder};
use crate::label_selector::selector_matches;
use crate::ordering::deletion_order;
use crate::ownership::{controller_of, controller_ref};
use crate::pod_cache::{CachedPod, Expectations, PodCache};
use crate::pod_state::{is_pod_active, is_pod_available, is_pod_ready, pod_ready_since};
use crate::pod_template::pod_from_template;
use crate::{retry_after_error, Error};

/// Upstream's `BurstReplicas`: at most this many creations or deletions per sync.
const BURST_REPLICAS: usize = 500;

/// What the controller needs of the kind it keeps replicas of. The status is read and
/// written in the ReplicaSet's shape, which the ReplicationController's has field for field.
pub trait Replicated:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The component its events name as their source.
    const COMPONENT: &'static str;
    /// The pod selector; `None` when there is no spec to act on.
    fn selector(&self) -> Option<LabelSelector>;
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// `spec.replicas`, 1 when unset.
    fn replicas(&self) -> i32;
    fn min_ready_seconds(&self) -> i32;
    fn replica_status(&self) -> ReplicaSetStatus;
    fn set_replica_status(&mut self, status: ReplicaSetStatus);
}

impl Replicated for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";
    fn selector(&self) -> Option<LabelSelector> {
        self.spec.as_ref().map(|s| s.selector.clone())
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn replica_status(&self) -> ReplicaSetStatus {
        self.status.clone().unwrap_or_default()
    }
    fn set_replica_status(&mut self, status: ReplicaSetStatus) {
        self.status = Some(status);
    }
}

struct ReplicaSetController<K: Replicated> {
    client: Client,
    recorder: Recorder,
    pods: PodCache,
    expectations: Expectations,
    _kind: std::marker::PhantomData<K>,
}

pub async fn run<K: Replicated>(client: Client, pods: PodCache) {
    let sets: Api<K> = Api::all(client.clone());
    let controller = Controller::new(sets, watcher::Config::default());
    let store = controller.store();
    pods.wait_ready().await;
    controller
        .watches_shared_stream(pods.subscribe(), move |pod| pod_owners(&store, &pod))
        .run(
            reconcile,
            |_, e, _| crate::error_action(K::COMPONENT, e),
            Arc::new(ReplicaSetController {
                recorder: Recorder::new(client.clone(), K::COMPONENT),
                client,
                pods,
                expectations: Expectations::default(),
                _kind: std::marker::PhantomData,
            }),
        )
        .for_each(|_| async {})
        .await;
}

/// The ReplicaSets a pod event concerns: its controller (which also releases it when its
/// selector no longer matches), or for an orphan every ReplicaSet in its namespace whose
/// selector matches it (one of them may adopt it).
fn pod_owners<K: Replicated>(store: &Store<K>, pod: &Pod) -> Vec<ObjectRef<K>> {
    let Some(ns) = pod.namespace() else {
        return vec![];
    };
    if let Some(r) = controller_of(&pod.metadata) {
        let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        if r.kind == K::kind(&()) && group == K::group(&()) {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return vec![];
    }
    let labels = pod.labels();
    store
        .state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()))
        .filter(|rs| rs.selector().is_some_and(|s| selector_matches(&s, labels)))
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

async fn reconcile<K: Replicated>(
    rs: Arc<K>,
    ctx: Arc<ReplicaSetController<K>>,
) -> Result<Action, Error> {
    let ns = rs.namespace().unwrap_or_default();
    let Some(selector) = rs.selector() else {
        return Ok(Action::await_change());
    };
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let uid = rs.uid().unwrap_or_default();
    // Our own creations and deletions not in the cache yet: their events will sync us again.
    if !ctx.expectations.satisfied(&uid, &ctx.pods, &ns) {
        return Ok(Action::await_change());
    }
    let candidates = ctx.pods.controlled_or_orphans(&ns, &uid);
    let pods = claim_pods(&*rs, &selector, &ctx, &pods_api, candidates).await?;

    let desired = rs.replicas().max(0) as usize;
    let manage_err = if rs.meta().deletion_timestamp.is_none() {
        manage_replicas(&*rs, &ctx, &pods_api, &pods, desired)
            .await
            .err()
    } else {
        None
    };

    let status = calculate_status(&*rs, &pods, manage_err.as_deref());
    let current = rs.replica_status();
    let mut action = Action::await_change();
    if status != current {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
        let mut updated = (*rs).clone();
        updated.set_replica_status(status.clone());
        match api
            .replace_status(&rs.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    // Pods become available minReadySeconds after turning ready: look again then.
    let min_ready = rs.min_ready_seconds();
    if min_ready > 0 {
        let now = Timestamp::now().as_second();
        let next = pods
            .iter()
            .filter(|p| is_pod_ready(p) && !is_pod_available(p, min_ready))
            .filter_map(|p| pod_ready_since(p))
            .map(|t| t.as_second() + i64::from(min_ready) - now)
            .min();
        if let Some(secs) = next {
            action = Action::requeue(Duration::from_secs(secs.clamp(0, 3600) as u64 + 1));
        }
    }
    if manage_err.is_some() {
        action = retry_after_error();
    }
    Ok(action)
}

/// Upstream `ClaimPods`: keeps the active pods this set controls and still selects, adopts
/// matching orphans, releases owned pods that stopped matching.
async fn claim_pods<K: Replicated>(
    rs: &K,
    selector: &LabelSelector,
    ctx: &ReplicaSetController<K>,
    pods_api: &Api<Pod>,
    all: Vec<Arc<CachedPod>>,
) -> Result<Vec<Arc<CachedPod>>, Error> {
    let uid = rs.uid().unwrap_or_default();
    let deleting = rs.meta().deletion_timestamp.is_some();
    let mut can_adopt: Option<bool> = None;
    let mut owned = Vec::new();
    for pod in all.into_iter().filter(|p| is_pod_active(p)) {
        let matches = selector_matches(selector, pod.labels());
        match controller_of(&pod.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    owned.push(pod);
                } else if !deleting {
                    release(rs, pods_api, &pod).await?;
                }
            }
            Some(_) => {}
            None => {
                if !matches || deleting || pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                // As upstream: re-read the owner before adopting, so a set deleted (or
                // replaced under the same name) meanwhile adopts nothing.
                if can_adopt.is_none() {
                    let api: Api<K> =
                        Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
                    let fresh = api.get_opt(&rs.name_any()).await?;
                    can_adopt = Some(fresh.is_some_and(|f| {
                        f.uid().as_deref() == Some(uid.as_str())
                            && f.meta().deletion_timestamp.is_none()
                    }));
                }
                if can_adopt != Some(true) {
                    continue;
                }
                if let Some(p) = adopt(rs, pods_api, &pod).await? {
                    owned.push(Arc::new(CachedPod::new(p)));
                }
            }
        }
    }
    Ok(owned)
}

async fn adopt<K: Replicated>(
    rs: &K,
    pods_api: &Api<Pod>,
    pod: &Pod,
) -> Result<Option<Pod>, Error> {
    let patch = json!({"metadata": {
        "ownerReferences": [controller_ref(rs)],
        "uid": pod.uid(),
    }});
    match pods_api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
    {
        Ok(p) => Ok(Some(p)),
        // Gone, or replaced by another pod of the same name.
        Err(e) if is_not_found(&e) || matches!(&e, kube::Error::Api(s) if s.code == 422) => {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

async fn release<K: Replicated>(rs: &K, pods_api: &Api<Pod>, pod: &Pod) -> Result<(), Error> {
    let patch = json!({"metadata": {
        "ownerReferences": [{"$patch": "delete", "uid": rs.uid()}],
        "uid": pod.uid(),
    }});
    match pods_api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) || matches!(&e, kube::Error::Api(s) if s.code == 422) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates or deletes pods so `desired` are active. Errors come back as the message the
/// ReplicaFailure condition carries.
async fn manage_replicas<K: Replicated>(
    rs: &K,
    ctx: &ReplicaSetController<K>,
    pods_api: &Api<Pod>,
    pods: &[Arc<CachedPod>],
    desired: usize,
) -> Result<(), String> {
    let name = rs.name_any();
    let ns = rs.namespace().unwrap_or_default();
    let reference = events::reference(rs);
    if pods.len() < desired {
        let template = rs.template().cloned().unwrap_or_default();
        let owner = controller_ref(rs);
        let mut remaining = (desired - pods.len()).min(BURST_REPLICAS);
        // Upstream's slow start: batches of 1, 2, 4, … so a failing template costs one
        // request, not hundreds.
        let mut batch = 1usize;
        while remaining > 0 {
            let n = batch.min(remaining);
            let creates = (0..n).map(|_| {
                let pod = pod_from_template(&template, owner.clone(), &ns, None, &name);
                async move { pods_api.create(&PostParams::default(), &pod).await }
            });
            let results = futures::future::join_all(creates).await;
            ctx.expectations.expect(
                &rs.uid().unwrap_or_default(),
                results
                    .iter()
                    .filter_map(|r| r.as_ref().ok().map(|p| p.name_any())),
                [],
            );
            let mut first_err = None;
            for r in results {
                match r {
                    Ok(p) => {
                        ctx.recorder
                            .normal(
                                &reference,
                                "SuccessfulCreate",
                                format!("Created pod: {}", p.name_any()),
                            )
                            .await
                    }
                    Err(e) => {
                        let msg = error_message(&e);
                        // A terminating namespace refuses creations; that is not news.
                        if !matches!(&e, kube::Error::Api(s) if s.code == 403 && msg.contains("terminat"))
                        {
                            ctx.recorder
                                .warning(
                                    &reference,
                                    "FailedCreate",
                                    format!("Error creating: {msg}"),
                                )
                                .await;
                        }
                        first_err.get_or_insert(msg);
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
            remaining -= n;
            batch *= 2;
        }
    } else if pods.len() > desired {
        let diff = (pods.len() - desired).min(BURST_REPLICAS);
        // Pods of this set per node: doubled-up pods go first.
        let mut per_node: HashMap<&str, usize> = HashMap::new();
        for p in pods {
            if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                *per_node.entry(n).or_default() += 1;
            }
        }
        let rank = |p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .and_then(|n| per_node.get(n).copied())
                .unwrap_or(0)
        };
        let mut ranked: Vec<&Pod> = pods.iter().map(|p| &***p).collect();
        ranked.sort_by(|a, b| deletion_order(a, rank(a), b, rank(b)));
        let deletes = ranked[..diff].iter().map(|p| {
            let pname = p.name_any();
            async move {
                let r = pods_api.delete(&pname, &DeleteParams::default()).await;
                (pname, r)
            }
        });
        let mut first_err = None;
        let results = futures::future::join_all(deletes).await;
        ctx.expectations.expect(
            &rs.uid().unwrap_or_default(),
            [],
            results
                .iter()
                .filter(|(_, r)| r.is_ok())
                .map(|(n, _)| n.clone()),
        );
        for (pname, r) in results {
            match r {
                Ok(_) => {
                    ctx.recorder
                        .normal(
                            &reference,
                            "SuccessfulDelete",
                            format!("Deleted pod: {pname}"),
                        )
                        .await
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    let msg = error_message(&e);
                    ctx.recorder
                        .warning(&reference, "FailedDelete", format!("Error deleting: {msg}"))
                        .await;
                    first_err.get_or_insert(msg);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
    }
    Ok(())
}

/// Upstream `calculateStatus`: counts over the pods the set owns before this sync acted.
fn calculate_status<K: Replicated>(
    rs: &K,
    pods: &[Arc<CachedPod>],
    manage_err: Option<&str>,
) -> ReplicaSetStatus {
    let template_labels = rs
        .template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = rs.min_ready_seconds();
    let fully_labeled = pods
        .iter()
        .filter(|p| {
            template_labels
                .iter()
                .all(|(k, v)| p.labels().get(k) == Some(v))
        })
        .count() as i32;
    let ready = pods.iter().filter(|p| is_pod_ready(p)).count() as i32;
    let available = pods
        .iter()
        .filter(|p| is_pod_available(p, min_ready))
        .count() as i32;

    let mut status = rs.replica_status();
    let mut conditions = status.conditions.take().unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match manage_err {
        Some(msg) if !has_failure => {
            let desired = rs.replicas().max(0) as usize;
            let reason = if pods.len() < desired {
                "FailedCreate"
            } else {
                "FailedDelete"
            };
            conditions.push(ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(msg.to_string()),
                last_transition_time: Some(Time(Timestamp::now())),
            });
        }
        None if has_failure => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    // Zero counts are left out, as upstream's omitempty fields are.
    let nonzero = |n: i32| (n != 0).then_some(n);
    status.replicas = pods.len() as i32;
    status.fully_labeled_replicas = nonzero(fully_labeled);
    status.ready_replicas = nonzero(ready);
    status.available_replicas = nonzero(available);
    status.observed_generation = rs.meta().generation;
    status
}
