//! The storage-object-in-use protection controllers (upstream `pvcprotection` and
//! `pvprotection`): every claim carries `kubernetes.io/pvc-protection` and every volume
//! `kubernetes.io/pv-protection`; a deleted claim keeps its finalizer while a scheduled pod
//! still names it, a deleted volume while it is Bound.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use super::{pod_claim_names, volume_phase, PVC_PROTECTION_FINALIZER, PV_PROTECTION_FINALIZER};
use crate::api_errors::is_not_found;
use crate::Error;

/// Writes the object with `finalizers` as an update guarded by the resourceVersion read (the
/// protection controllers' upstream roles may update claims and volumes, not patch them).
async fn write_finalizers<K>(api: &Api<K>, obj: &K, finalizers: Vec<String>) -> kube::Result<bool>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let mut updated = obj.clone();
    updated.meta_mut().finalizers = (!finalizers.is_empty()).then_some(finalizers);
    match api
        .replace(&obj.name_any(), &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Adds `finalizer` unless the object is being deleted or has it.
async fn add_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> kube::Result<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let mut fins = obj.meta().finalizers.clone().unwrap_or_default();
    if obj.meta().deletion_timestamp.is_some() || fins.iter().any(|f| f == finalizer) {
        return Ok(());
    }
    fins.push(finalizer.to_string());
    write_finalizers(api, obj, fins).await.map(|_| ())
}

/// Removes `finalizer`; Ok(false) when the object is gone.
async fn remove_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> kube::Result<bool>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let fins = obj.meta().finalizers.clone().unwrap_or_default();
    if !fins.iter().any(|f| f == finalizer) {
        return Ok(true);
    }
    let rest = fins.into_iter().filter(|f| f != finalizer).collect();
    write_finalizers(api, obj, rest).await
}

fn has_finalizer(meta: &kube::api::ObjectMeta, f: &str) -> bool {
    meta.finalizers.iter().flatten().any(|x| x == f)
}

/// Runs the PersistentVolumeClaim protection controller until the process ends.
pub async fn run_pvc_protection(client: Client) {
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    Controller::new(claims, watcher::Config::default())
        .watches(pods, watcher::Config::default(), |pod| {
            let ns = pod.namespace().unwrap_or_default();
            pod_claim_names(&pod)
                .into_iter()
                .map(|(c, _)| ObjectRef::new(&c).within(&ns))
                .collect::<Vec<_>>()
        })
        .run(
            reconcile_claim,
            |_, e, _| crate::error_action("persistentvolumeclaim-protection", e),
            Arc::new(client),
        )
        .for_each(|_| async {})
        .await;
}

async fn reconcile_claim(
    pvc: Arc<PersistentVolumeClaim>,
    client: Arc<Client>,
) -> Result<Action, Error> {
    let ns = pvc.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced((*client).clone(), &ns);
    if pvc.metadata.deletion_timestamp.is_none() {
        add_finalizer(&api, &*pvc, PVC_PROTECTION_FINALIZER).await?;
        return Ok(Action::await_change());
    }
    if !has_finalizer(&pvc.metadata, PVC_PROTECTION_FINALIZER) {
        return Ok(Action::await_change());
    }
    // A live list, not a cache: a pod that names the claim must never be missed.
    let pods: Api<Pod> = Api::namespaced((*client).clone(), &ns);
    let name = pvc.name_any();
    let used = pods
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .any(|p| pod_uses_claim(p, &name));
    if !used {
        remove_finalizer(&api, &*pvc, PVC_PROTECTION_FINALIZER).await?;
    }
    Ok(Action::await_change())
}

/// Upstream `podUsesPVC`: a pod uses the claim once it is scheduled and until it is gone,
/// whatever its phase (the kubelet may still be tearing the volume down); a generic
/// ephemeral volume's claim stops counting once the pod is shut down (deleted with grace 0).
fn pod_uses_claim(pod: &Pod, claim: &str) -> bool {
    let scheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let shut_down = pod.metadata.deletion_timestamp.is_some()
        && pod.metadata.deletion_grace_period_seconds == Some(0);
    scheduled
        && pod_claim_names(pod)
            .iter()
            .any(|(c, ephemeral)| c == claim && (!ephemeral || !shut_down))
}

/// Runs the PersistentVolume protection controller until the process ends.
pub async fn run_pv_protection(client: Client) {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    Controller::new(volumes, watcher::Config::default())
        .run(
            reconcile_volume,
            |_, e, _| crate::error_action("persistentvolume-protection", e),
            Arc::new(client),
        )
        .for_each(|_| async {})
        .await;
}

async fn reconcile_volume(pv: Arc<PersistentVolume>, client: Arc<Client>) -> Result<Action, Error> {
    let api: Api<PersistentVolume> = Api::all((*client).clone());
    if pv.metadata.deletion_timestamp.is_none() {
        add_finalizer(&api, &*pv, PV_PROTECTION_FINALIZER).await?;
    } else if has_finalizer(&pv.metadata, PV_PROTECTION_FINALIZER) && volume_phase(&pv) != "Bound" {
        remove_finalizer(&api, &*pv, PV_PROTECTION_FINALIZER).await?;
    }
    Ok(Action::await_change())
}
