//! The node's half of the local-path provisioner's reclaim: a deleted volume the provisioner
//! made on this node keeps its cleanup finalizer until the node has removed the volume's
//! directory (k3s runs a helper pod for this; the agent is already on the node).
//!
//! The names here are the provisioner's (`reddwarf_controllers::volume::local_path`); the
//! agent does not depend on the controllers, so they are repeated.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

/// The provisioner's name, in `pv.kubernetes.io/provisioned-by`.
pub const PROVISIONER: &str = "reddwarf.io/local-path";
/// Held by a provisioned volume until its directory is gone.
pub const CLEANUP_FINALIZER: &str = "reddwarf.io/local-path-cleanup";
const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

struct Ctx {
    client: Client,
    node: String,
}

/// Watches volumes until the agent stops; `node` is this node's `kubernetes.io/hostname`.
pub async fn run(client: Client, node: String) {
    let api: Api<PersistentVolume> = Api::all(client.clone());
    Controller::new(api, watcher::Config::default())
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("local volume cleanup: {e}");
                Action::requeue(Duration::from_secs(5))
            },
            Arc::new(Ctx { client, node }),
        )
        .for_each(|_| async {})
        .await;
}

#[derive(Debug)]
enum Error {
    Io(String),
    Kube(kube::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => f.write_str(e),
            Error::Kube(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

/// The node a volume's required node affinity names by hostname.
fn volume_node(pv: &PersistentVolume) -> Option<&str> {
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

/// The directory to remove: only one the provisioner would have named for this volume
/// (`<base>/<pv>_<namespace>_<claim>`), so a hand-made volume carrying the finalizer cannot
/// point the agent at any other path.
pub fn directory_to_remove(pv: &PersistentVolume) -> Option<&Path> {
    let path = Path::new(&pv.spec.as_ref()?.host_path.as_ref()?.path);
    let last = path.file_name()?.to_str()?;
    (path.is_absolute() && last.starts_with(&format!("{}_", pv.name_any()))).then_some(path)
}

async fn reconcile(pv: Arc<PersistentVolume>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ours = pv.annotations().get(ANN_PROVISIONED_BY).map(String::as_str) == Some(PROVISIONER);
    let held = pv.finalizers().iter().any(|f| f == CLEANUP_FINALIZER);
    if !ours
        || !held
        || pv.metadata.deletion_timestamp.is_none()
        || volume_node(&pv) != Some(ctx.node.as_str())
    {
        return Ok(Action::await_change());
    }
    // Retain keeps the data even when the object goes, as upstream's reclaim does.
    let delete = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        == Some("Delete");
    if delete {
        if let Some(dir) = directory_to_remove(&pv) {
            let dir = dir.to_path_buf();
            let removed =
                tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(format!("removing {}: {e}", dir.display()))
                    }
                    _ => Ok(()),
                })
                .await
                .map_err(|e| Error::Io(e.to_string()))?;
            removed.map_err(Error::Io)?;
            tracing::info!("removed the directory of local volume {}", pv.name_any());
        } else {
            tracing::warn!(
                "local volume {}: its hostPath is not one the provisioner made; left in place",
                pv.name_any()
            );
        }
    }
    let rest: Vec<&String> = pv
        .finalizers()
        .iter()
        .filter(|f| *f != CLEANUP_FINALIZER)
        .collect();
    let patch = serde_json::json!({"metadata": {
        "finalizers": (!rest.is_empty()).then_some(rest),
        "resourceVersion": pv.resource_version(),
    }});
    let api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    match api
        .patch(
            &pv.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(Error::Kube(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(name: &str, path: &str) -> PersistentVolume {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"hostPath": {"path": path}},
        }))
        .unwrap()
    }

    #[test]
    fn only_the_provisioners_own_directory_is_removed() {
        let ok = pv("pvc-1", "/var/lib/reddwarf/storage/pvc-1_ns_data");
        assert_eq!(
            directory_to_remove(&ok),
            Some(Path::new("/var/lib/reddwarf/storage/pvc-1_ns_data"))
        );
        assert!(directory_to_remove(&pv("pvc-1", "/")).is_none());
        assert!(directory_to_remove(&pv("pvc-1", "/etc")).is_none());
        assert!(directory_to_remove(&pv("pvc-1", "relative/pvc-1_ns_data")).is_none());
        assert!(directory_to_remove(&pv("pvc-1", "/srv/pvc-2_ns_data")).is_none());
    }
}
