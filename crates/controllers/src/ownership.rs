//! Controller references (upstream `ControllerRef`): building and reading them, adopting
//! orphan pods (`ClaimPods`), and which controllers a pod event concerns.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use crate::label_selector::selector_matches;

/// An ownerReference naming `owner` as the controller (blockOwnerDeletion set, as upstream
/// controllers set it).
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The controller reference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Whether `meta` is controlled by the object with this uid.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// Upstream `ClaimPods` adoption: an orphan pod matching a controller's selector becomes
/// its pod. The patch is upstream's (strategic merge by owner uid, guarded by the pod's
/// uid); `None` if the pod changed or went away meanwhile.
pub async fn adopt_pod(client: &kube::Client, pod: &Pod, owner: OwnerReference) -> Option<Pod> {
    let api: kube::Api<Pod> =
        kube::Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let patch = serde_json::json!({"metadata": {
        "ownerReferences": [owner],
        "uid": pod.metadata.uid,
    }});
    api.patch(
        &pod.name_any(),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Strategic(patch),
    )
    .await
    .ok()
}

/// The pods a controller owns among those its selector matched, adopting orphans unless
/// the controller is being deleted.
pub async fn claim_pods<K: Resource<DynamicType = ()>>(
    client: &kube::Client,
    owner: &K,
    matched: Vec<Pod>,
) -> Vec<Pod> {
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let mut out = Vec::new();
    for pod in matched {
        if is_controlled_by(&pod.metadata, &uid) {
            out.push(pod);
        } else if controller_of(&pod.metadata).is_none()
            && pod.metadata.deletion_timestamp.is_none()
            && owner.meta().deletion_timestamp.is_none()
        {
            if let Some(p) = adopt_pod(client, &pod, controller_ref(owner)).await {
                if is_controlled_by(&p.metadata, &uid) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Which controllers a pod event concerns (upstream `addPod`/`updatePod` of the workload
/// controllers): its controller if it has one of `kind`, otherwise (an orphan) every one
/// in its namespace whose selector matches it, as they may adopt it (which
/// `Controller::owns` would not do).
///
/// Takes the pod's metadata only: the watch feeding it is metadata-only, so the controllers
/// do not decode every pod in the cluster.
pub fn pod_owners<K>(
    store: &kube::runtime::reflector::Store<K>,
    pod: &ObjectMeta,
    selector_of: impl Fn(&K) -> Option<&LabelSelector>,
) -> Vec<kube::runtime::reflector::ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let ns = pod.namespace.clone().unwrap_or_default();
    if let Some(owner) = controller_of(pod) {
        if owner.kind == K::kind(&()) {
            return vec![kube::runtime::reflector::ObjectRef::new(&owner.name).within(&ns)];
        }
        return Vec::new();
    }
    let labels = pod.labels.clone().unwrap_or_default();
    store
        .state()
        .iter()
        .filter(|k| k.meta().namespace.as_deref() == Some(ns.as_str()))
        .filter(|k| selector_of(k).is_some_and(|s| selector_matches(s, &labels)))
        .map(|k| kube::runtime::reflector::ObjectRef::from_obj(&**k))
        .collect()
}
