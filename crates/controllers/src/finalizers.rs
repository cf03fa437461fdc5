//! Removing a finalizer without losing a concurrent change to the list.

use kube::{Resource, ResourceExt};

/// Removes `finalizer` from an object with a JSON merge patch guarded by the resourceVersion
/// read (so a concurrent change of the list is not lost): Ok(false) when it was not there.
pub async fn remove_finalizer<K>(api: &kube::Api<K>, obj: &K, finalizer: &str) -> kube::Result<bool>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let fins = obj.meta().finalizers.clone().unwrap_or_default();
    if !fins.iter().any(|f| f == finalizer) {
        return Ok(false);
    }
    let rest: Vec<&String> = fins.iter().filter(|f| *f != finalizer).collect();
    // Go omits an empty list: the field goes rather than becoming `[]`.
    let rest = (!rest.is_empty()).then_some(rest);
    let patch = serde_json::json!({"metadata": {
        "finalizers": rest,
        "resourceVersion": obj.meta().resource_version,
    }});
    match api
        .patch(
            &obj.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}
