//! The local-path provisioner (`local-path-provisioner`), as k3s ships one: a default
//! StorageClass `local-path` whose claims wait for their first pod; once the scheduler has
//! picked a node (`volume.kubernetes.io/selected-node`), a `hostPath` volume is made for the
//! claim in a directory on that node, pinned there by node affinity, and the PV controller
//! binds the two. The directory itself is created by the node's agent when a pod mounts it.
//!
//! Reclaim: a released volume with policy Delete is deleted here; its
//! [`CLEANUP_FINALIZER`] keeps the object until the agent of the volume's node has removed
//! the directory (k3s runs a helper pod for that; our agent does it itself).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use super::*;
use crate::api_errors::is_not_found;
use crate::events::{self, Recorder};
use crate::Error;

/// Our provisioner's name. Not k3s's `rancher.io/local-path`: this is a different
/// implementation (no helper pods, a different reclaim path), and a separately installed
/// rancher provisioner would otherwise race this one for the same claims. Manifests name the
/// class (`local-path`), which is k3s's.
pub const PROVISIONER: &str = "reddwarf.io/local-path";
/// The class made at start, named as k3s names its own.
pub const CLASS: &str = "local-path";
/// The annotation that makes a class the default for claims that name none.
pub const ANN_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// On a volume this provisioner made: its directory is still on the node. The node's agent
/// removes the directory (reclaim Delete) and then this finalizer.
pub const CLEANUP_FINALIZER: &str = "reddwarf.io/local-path-cleanup";
/// The node label a volume's node affinity names (upstream's well-known hostname label).
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

const COMPONENT: &str = "reddwarf.io/local-path";

/// The class ensured at start: default, WaitForFirstConsumer, reclaim Delete.
pub fn storage_class() -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some(CLASS.into()),
            annotations: Some(BTreeMap::from([(ANN_DEFAULT_CLASS.into(), "true".into())])),
            ..Default::default()
        },
        provisioner: PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        ..Default::default()
    }
}

/// The directory of a claim's volume under `base`: `<pv>_<namespace>_<claim>`, as rancher's
/// local-path-provisioner names it (the volume name first keeps it unique when a claim of
/// the same name is made again).
pub fn volume_dir(base: &Path, pv: &str, pvc: &PersistentVolumeClaim) -> PathBuf {
    base.join(format!(
        "{pv}_{}_{}",
        pvc.namespace().unwrap_or_default(),
        pvc.name_any()
    ))
}

/// The volume's name: upstream's `pvc-<claim uid>`, so a retried provisioning finds the
/// volume it already made.
pub fn volume_name(pvc: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", pvc.uid().unwrap_or_default())
}

/// Why this provisioner cannot serve the claim (upstream external-provisioner's and rancher's
/// refusals), or Ok.
pub fn unsupported(pvc: &PersistentVolumeClaim) -> Result<(), String> {
    let spec = pvc.spec.clone().unwrap_or_default();
    if spec.selector.is_some() {
        return Err("claim Selector is not supported".into());
    }
    if spec.volume_mode.as_deref() == Some("Block") {
        return Err("volumeMode Block is not supported: a local path is a filesystem".into());
    }
    if let Some(m) = spec
        .access_modes
        .iter()
        .flatten()
        .find(|m| !matches!(m.as_str(), "ReadWriteOnce" | "ReadWriteOncePod"))
    {
        return Err(format!(
            "only ReadWriteOnce and ReadWriteOncePod access modes are supported, not {m}"
        ));
    }
    Ok(())
}

/// The volume for a claim on `node` (whose `kubernetes.io/hostname` label is `hostname`),
/// as the external-provisioner library shapes it: claimRef to the claim, the class's reclaim
/// policy and mount options, capacity the claim's request.
pub fn volume_for_claim(
    pvc: &PersistentVolumeClaim,
    class: &StorageClass,
    hostname: &str,
    base: &Path,
) -> PersistentVolume {
    let name = volume_name(pvc);
    let spec = pvc.spec.clone().unwrap_or_default();
    let request = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned();
    let modes = spec
        .access_modes
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| vec!["ReadWriteOnce".into()]);
    let path = volume_dir(base, &name, pvc);
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name),
            annotations: Some(BTreeMap::from([(
                ANN_DYNAMICALLY_PROVISIONED.into(),
                PROVISIONER.into(),
            )])),
            finalizers: Some(vec![CLEANUP_FINALIZER.into()]),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: request.map(|q| BTreeMap::from([("storage".into(), q)])),
            access_modes: Some(modes),
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".into()),
            ),
            storage_class_name: Some(class.metadata.name.clone().unwrap_or_default()),
            mount_options: class.mount_options.clone(),
            volume_mode: Some(spec.volume_mode.unwrap_or_else(|| "Filesystem".into())),
            claim_ref: Some(claim_reference(pvc)),
            host_path: Some(HostPathVolumeSource {
                path: path.display().to_string(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: HOSTNAME_LABEL.into(),
                            operator: "In".into(),
                            values: Some(vec![hostname.into()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// The node a volume this provisioner made is pinned to (the value of its hostname term).
pub fn volume_node(pv: &PersistentVolume) -> Option<&str> {
    pv.spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_expressions.iter().flatten())
        .find(|e| e.key == HOSTNAME_LABEL && e.operator == "In")
        .and_then(|e| e.values.as_ref()?.first())
        .map(String::as_str)
}

struct LocalPathController {
    client: Client,
    base: PathBuf,
    recorder: Recorder,
}

/// Ensures the class, then provisions claims and deletes released volumes until the
/// process ends.
pub async fn run(client: Client, base: PathBuf) {
    ensure_class(&client).await;
    let ctx = Arc::new(LocalPathController {
        recorder: Recorder::new(client.clone(), COMPONENT),
        client: client.clone(),
        base,
    });
    let claims = Controller::new(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    )
    .run(
        reconcile_claim,
        |_, e, _| crate::error_action("local-path-provisioner", e),
        ctx.clone(),
    )
    .for_each(|_| async {});
    let volumes = Controller::new(
        Api::<PersistentVolume>::all(client),
        watcher::Config::default(),
    )
    .run(
        reconcile_volume,
        |_, e, _| crate::error_action("local-path-provisioner", e),
        ctx,
    )
    .for_each(|_| async {});
    futures::join!(claims, volumes);
}

/// Creates the class unless a class of that name exists (an operator's edits to it, such as
/// taking the default annotation away, are kept).
async fn ensure_class(client: &Client) {
    let api: Api<StorageClass> = Api::all(client.clone());
    loop {
        match api.create(&PostParams::default(), &storage_class()).await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 409 => return,
            Err(e) => {
                tracing::warn!("local-path-provisioner: creating StorageClass {CLASS}: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

async fn reconcile_claim(
    pvc: Arc<PersistentVolumeClaim>,
    ctx: Arc<LocalPathController>,
) -> Result<Action, Error> {
    if pvc.metadata.deletion_timestamp.is_some() || !claim_volume_name(&pvc).is_empty() {
        return Ok(Action::await_change());
    }
    let anns = pvc.annotations();
    let Some(node_name) = anns.get(ANN_SELECTED_NODE).cloned() else {
        return Ok(Action::await_change());
    };
    // The PV controller names the provisioner it waits for; another's claim is not ours.
    if anns
        .get(ANN_STORAGE_PROVISIONER)
        .is_some_and(|p| p != PROVISIONER)
    {
        return Ok(Action::await_change());
    }
    let class_name = claim_class(&pvc);
    if class_name.is_empty() {
        return Ok(Action::await_change());
    }
    let classes: Api<StorageClass> = Api::all(ctx.client.clone());
    let Some(class) = classes.get_opt(class_name).await? else {
        return Ok(Action::await_change());
    };
    if class.provisioner != PROVISIONER {
        return Ok(Action::await_change());
    }
    let reference = events::reference(&*pvc);
    if let Err(why) = unsupported(&pvc) {
        ctx.recorder
            .warning(&reference, "ProvisioningFailed", why)
            .await;
        return Ok(Action::await_change());
    }
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let name = volume_name(&pvc);
    if pvs.get_opt(&name).await?.is_some() {
        // Made on an earlier pass; the PV controller binds it.
        return Ok(Action::await_change());
    }
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let Some(node) = nodes.get_opt(&node_name).await? else {
        ctx.recorder
            .warning(
                &reference,
                "ProvisioningFailed",
                format!("failed to get target node: nodes {node_name:?} not found"),
            )
            .await;
        return Ok(crate::retry_after_error());
    };
    let hostname = node
        .labels()
        .get(HOSTNAME_LABEL)
        .cloned()
        .unwrap_or(node_name);
    ctx.recorder
        .normal(
            &reference,
            "Provisioning",
            format!(
                "External provisioner is provisioning volume for claim \"{}/{}\"",
                pvc.namespace().unwrap_or_default(),
                pvc.name_any()
            ),
        )
        .await;
    let pv = volume_for_claim(&pvc, &class, &hostname, &ctx.base);
    match pvs.create(&PostParams::default(), &pv).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => return Ok(Action::await_change()),
        Err(e) => {
            ctx.recorder
                .warning(
                    &reference,
                    "ProvisioningFailed",
                    format!(
                        "failed to provision volume with StorageClass {class_name:?}: {}",
                        crate::api_errors::error_message(&e)
                    ),
                )
                .await;
            return Err(e.into());
        }
    }
    ctx.recorder
        .normal(
            &reference,
            "ProvisioningSucceeded",
            format!("Successfully provisioned volume {name}"),
        )
        .await;
    Ok(Action::await_change())
}

/// The external-provisioner library's `shouldDelete`: our volume, Released, policy Delete.
/// The object goes; the finalizer keeps it until the node has removed the directory.
async fn reconcile_volume(
    pv: Arc<PersistentVolume>,
    ctx: Arc<LocalPathController>,
) -> Result<Action, Error> {
    let ours = pv
        .annotations()
        .get(ANN_DYNAMICALLY_PROVISIONED)
        .map(String::as_str)
        == Some(PROVISIONER);
    let policy = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref());
    if !ours
        || pv.metadata.deletion_timestamp.is_some()
        || volume_phase(&pv) != "Released"
        || policy != Some("Delete")
    {
        return Ok(Action::await_change());
    }
    let api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    match api.delete(&pv.name_any(), &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(extra: serde_json::Value) -> PersistentVolumeClaim {
        let mut v = serde_json::json!({
            "metadata": {"name": "data-web-0", "namespace": "apps", "uid": "1234",
                         "resourceVersion": "7"},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "2Gi"}},
                     "storageClassName": "local-path"},
        });
        if let (Some(spec), Some(more)) = (v["spec"].as_object_mut(), extra.as_object()) {
            for (k, x) in more {
                spec.insert(k.clone(), x.clone());
            }
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_volume_is_a_host_directory_pinned_to_the_node_and_reserved_for_the_claim() {
        let c = claim(serde_json::json!({}));
        let pv = volume_for_claim(&c, &storage_class(), "w1", Path::new("/var/lib/x"));
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-1234"));
        assert_eq!(
            pv.annotations().get(ANN_DYNAMICALLY_PROVISIONED).unwrap(),
            PROVISIONER
        );
        let spec = pv.spec.as_ref().unwrap();
        let hp = spec.host_path.as_ref().unwrap();
        assert_eq!(hp.path, "/var/lib/x/pvc-1234_apps_data-web-0");
        assert_eq!(hp.type_.as_deref(), Some("DirectoryOrCreate"));
        assert_eq!(spec.capacity.as_ref().unwrap()["storage"].0, "2Gi");
        assert_eq!(spec.access_modes.as_deref().unwrap(), ["ReadWriteOnce"]);
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Delete")
        );
        assert_eq!(spec.storage_class_name.as_deref(), Some("local-path"));
        assert_eq!(volume_node(&pv), Some("w1"));
        // The binder's rules accept it for this claim only, on this node only.
        assert!(is_bound_to_claim(&pv, &c));
        let node = |n: &str| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": n, "labels": {HOSTNAME_LABEL: n}}
            }))
            .unwrap()
        };
        assert!(node_affinity_fits(&pv, &node("w1")));
        assert!(!node_affinity_fits(&pv, &node("w2")));
        let found = find_best_match_for_claim(&c, &[&pv], true);
        assert_eq!(
            found.and_then(|v| v.metadata.name.as_deref()),
            Some("pvc-1234")
        );
    }

    #[test]
    fn claims_a_local_directory_cannot_serve_are_refused() {
        assert!(unsupported(&claim(serde_json::json!({}))).is_ok());
        assert!(unsupported(&claim(
            serde_json::json!({"accessModes": ["ReadWriteMany"]})
        ))
        .is_err());
        assert!(unsupported(&claim(serde_json::json!({"volumeMode": "Block"}))).is_err());
        assert!(unsupported(&claim(
            serde_json::json!({"selector": {"matchLabels": {"a": "b"}}})
        ))
        .is_err());
    }

    #[test]
    fn the_class_is_the_default_and_waits_for_the_first_consumer() {
        let sc = storage_class();
        assert_eq!(sc.metadata.annotations.unwrap()[ANN_DEFAULT_CLASS], "true");
        assert_eq!(
            sc.volume_binding_mode.as_deref(),
            Some("WaitForFirstConsumer")
        );
        assert_eq!(sc.reclaim_policy.as_deref(), Some("Delete"));
    }
}
