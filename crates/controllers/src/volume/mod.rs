//! PersistentVolumes and their claims: upstream's binding rules (component-helpers
//! `storage/volume`), shared by the PV controller and the scheduler's VolumeBinding plugin,
//! and the controllers that act on them.

pub mod binder;
pub mod local_path;
pub mod protection;

use std::cmp::Ordering;
use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Node, ObjectReference, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use reddwarf_resources::validation::quantity;

use crate::label_selector::selector_matches;

/// On a claim: binding has been completed once (the claim is no longer new).
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// On a volume or claim: the binding was made by a controller, not pre-bound by a user.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// On a claim: the node the scheduler chose, for a provisioner to create the volume on.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// On a claim: the provisioner expected to create its volume, from the claim's class.
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The beta spelling of [`ANN_STORAGE_PROVISIONER`], still written alongside it.
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// On a volume: the plugin that provisioned it.
pub const ANN_DYNAMICALLY_PROVISIONED: &str = "pv.kubernetes.io/provisioned-by";
/// The storage class annotation that predates `storageClassName` and still wins over it.
pub const ANN_BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// The provisioner of classes whose volumes are created by hand (local volumes).
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";
/// The finalizer that keeps a claim while a pod still uses it.
pub const PVC_PROTECTION_FINALIZER: &str = "kubernetes.io/pvc-protection";
/// The finalizer that keeps a volume while it is Bound.
pub const PV_PROTECTION_FINALIZER: &str = "kubernetes.io/pv-protection";

fn annotation<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Whether the object carries annotation `key` (whatever its value).
pub fn has_annotation(meta: &kube::api::ObjectMeta, key: &str) -> bool {
    annotation(meta, key).is_some()
}

/// The claim's storage class (`GetPersistentVolumeClaimClass`): the beta annotation, else
/// `storageClassName`, else "".
pub fn claim_class(pvc: &PersistentVolumeClaim) -> &str {
    annotation(&pvc.metadata, ANN_BETA_CLASS)
        .or_else(|| pvc.spec.as_ref()?.storage_class_name.as_deref())
        .unwrap_or("")
}

/// The volume's storage class, by the same rule.
pub fn volume_class(pv: &PersistentVolume) -> &str {
    annotation(&pv.metadata, ANN_BETA_CLASS)
        .or_else(|| pv.spec.as_ref()?.storage_class_name.as_deref())
        .unwrap_or("")
}

/// The volume the claim is bound to (`spec.volumeName`), or "".
pub fn claim_volume_name(pvc: &PersistentVolumeClaim) -> &str {
    pvc.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("")
}

/// The claim the volume is bound or pre-bound to (`spec.claimRef`).
pub fn claim_ref_of(pv: &PersistentVolume) -> Option<&ObjectReference> {
    pv.spec.as_ref()?.claim_ref.as_ref()
}

/// The volume's `status.phase`, or "".
pub fn volume_phase(pv: &PersistentVolume) -> &str {
    pv.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The claim's `status.phase`, or "".
pub fn claim_phase(pvc: &PersistentVolumeClaim) -> &str {
    pvc.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The volume's claimRef names this claim (and its uid, when the ref has one).
pub fn is_bound_to_claim(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> bool {
    let Some(r) = claim_ref_of(pv) else {
        return false;
    };
    r.name.as_deref() == pvc.metadata.name.as_deref()
        && r.namespace.as_deref() == pvc.metadata.namespace.as_deref()
        && r.uid
            .as_deref()
            .is_none_or(|u| u.is_empty() || Some(u) == pvc.metadata.uid.as_deref())
}

/// Bound with the binding completed (`IsPVCFullyBound` of the scheduler's binder).
pub fn is_fully_bound(pvc: &PersistentVolumeClaim) -> bool {
    !claim_volume_name(pvc).is_empty() && has_annotation(&pvc.metadata, ANN_BIND_COMPLETED)
}

/// The claim waits for its first pod to be scheduled (`IsDelayBindingMode`): its class
/// exists and says `WaitForFirstConsumer`. No class, or a class that does not exist, binds
/// at once.
pub fn is_delay_binding(
    pvc: &PersistentVolumeClaim,
    class: impl Fn(&str) -> Option<StorageClass>,
) -> bool {
    let name = claim_class(pvc);
    !name.is_empty()
        && class(name)
            .is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"))
}

/// The claim's volume mode differs from the volume's (both default to Filesystem).
pub fn volume_mode_mismatch(pvc: &PersistentVolumeClaim, pv: &PersistentVolume) -> bool {
    let want = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem");
    let have = pv
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem");
    want != have
}

fn claim_modes(pvc: &PersistentVolumeClaim) -> &[String] {
    pvc.spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default()
}

fn volume_modes(pv: &PersistentVolume) -> &[String] {
    pv.spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default()
}

/// Every access mode the claim asks for is one the volume offers.
pub fn access_modes_fit(pvc: &PersistentVolumeClaim, pv: &PersistentVolume) -> bool {
    let have = volume_modes(pv);
    claim_modes(pvc).iter().all(|m| have.contains(m))
}

fn storage(
    list: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
) -> quantity::Quantity {
    list.and_then(|l| l.get("storage"))
        .and_then(|q| quantity::parse(&q.0).ok())
        .unwrap_or_else(|| quantity::parse("0").expect("zero parses"))
}

/// The storage the claim requests (`spec.resources.requests.storage`; 0 if absent or
/// unparsable).
pub fn requested_storage(pvc: &PersistentVolumeClaim) -> quantity::Quantity {
    storage(
        pvc.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    )
}

/// The volume's capacity (`spec.capacity.storage`; 0 if absent or unparsable).
pub fn volume_storage(pv: &PersistentVolume) -> quantity::Quantity {
    storage(pv.spec.as_ref().and_then(|s| s.capacity.as_ref()))
}

/// The volume's required node affinity admits the node (`CheckNodeAffinity`).
pub fn node_affinity_fits(pv: &PersistentVolume, node: &Node) -> bool {
    let required = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref());
    match required {
        None => true,
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| crate::node_affinity::node_selector_term_matches(t, node)),
    }
}

/// Upstream `FindMatchingVolume`: a volume pre-bound to the claim wins (unless its node
/// affinity excludes `node`); otherwise the smallest Available volume that is big enough,
/// of the claim's class and volume mode, matching its selector, admitting `node`, and (on
/// the scheduler's path, `node` given) offering its access modes. Without a node (the PV
/// controller), delay-binding claims are only matched to volumes pre-bound to them.
pub fn find_matching_volume<'a>(
    pvc: &PersistentVolumeClaim,
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
    node: Option<&Node>,
    excluded: &HashSet<String>,
    delay_binding: bool,
) -> Option<&'a PersistentVolume> {
    let requested = requested_storage(pvc);
    let class = claim_class(pvc);
    let selector = pvc.spec.as_ref().and_then(|s| s.selector.as_ref());
    let mut best: Option<(&PersistentVolume, quantity::Quantity)> = None;
    for pv in volumes {
        if pv
            .metadata
            .name
            .as_ref()
            .is_some_and(|n| excluded.contains(n))
        {
            continue;
        }
        if claim_ref_of(pv).is_some() && !is_bound_to_claim(pv, pvc) {
            continue;
        }
        let size = volume_storage(pv);
        if size.cmp_value(&requested) == Ordering::Less
            || volume_mode_mismatch(pvc, pv)
            || pv.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let affinity_ok = node.is_none_or(|n| node_affinity_fits(pv, n));
        if is_bound_to_claim(pv, pvc) {
            return affinity_ok.then_some(pv);
        }
        if node.is_none() && delay_binding {
            continue;
        }
        if volume_phase(pv) != "Available"
            || selector.is_some_and(|s| {
                !selector_matches(s, &pv.metadata.labels.clone().unwrap_or_default())
            })
            || volume_class(pv) != class
            || !affinity_ok
            || (node.is_some() && !access_modes_fit(pvc, pv))
        {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|(_, s)| s.cmp_value(&size) == Ordering::Greater)
        {
            best = Some((pv, size));
        }
    }
    best.map(|(pv, _)| pv)
}

/// The PV controller's `findBestMatchForClaim`: volumes are indexed by access modes, and
/// the sets offering the claim's modes are tried fewest modes first, so a claim for
/// ReadWriteOnce prefers a RWO-only volume to a RWO+RWX one.
pub fn find_best_match_for_claim<'a>(
    pvc: &PersistentVolumeClaim,
    volumes: &[&'a PersistentVolume],
    delay_binding: bool,
) -> Option<&'a PersistentVolume> {
    let mut sets: Vec<Vec<String>> = Vec::new();
    for pv in volumes {
        if !access_modes_fit(pvc, pv) {
            continue;
        }
        let mut modes = volume_modes(pv).to_vec();
        modes.sort();
        modes.dedup();
        if !sets.contains(&modes) {
            sets.push(modes);
        }
    }
    sets.sort_by_key(|m| m.len());
    let excluded = HashSet::new();
    for modes in sets {
        let candidates = volumes.iter().copied().filter(|pv| {
            let mut m = volume_modes(pv).to_vec();
            m.sort();
            m.dedup();
            m == modes
        });
        if let Some(pv) = find_matching_volume(pvc, candidates, None, &excluded, delay_binding) {
            return Some(pv);
        }
    }
    None
}

/// A reference to the claim, as a volume's claimRef (`GetReference`).
pub fn claim_reference(pvc: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        name: pvc.metadata.name.clone(),
        namespace: pvc.metadata.namespace.clone(),
        uid: pvc.metadata.uid.clone(),
        resource_version: pvc.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// The claims a pod's volumes name (`persistentVolumeClaim.claimName`; a generic ephemeral
/// volume's claim is `<pod>-<volume>`).
pub fn pod_claim_names(pod: &k8s_openapi::api::core::v1::Pod) -> Vec<(String, bool)> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some((c.claim_name.clone(), false))
            } else if v.ephemeral.is_some() {
                Some((format!("{pod_name}-{}", v.name), true))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(name: &str, size: &str, modes: &[&str]) -> PersistentVolume {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": modes},
            "status": {"phase": "Available"},
        }))
        .unwrap()
    }

    fn pvc(size: &str, modes: &[&str]) -> PersistentVolumeClaim {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c", "namespace": "ns", "uid": "u"},
            "spec": {"resources": {"requests": {"storage": size}}, "accessModes": modes},
        }))
        .unwrap()
    }

    #[test]
    fn fewest_access_modes_then_smallest_that_fits() {
        let a = pv("rwo-big", "10Gi", &["ReadWriteOnce"]);
        let b = pv("rwo-small", "2Gi", &["ReadWriteOnce"]);
        let c = pv("both-tiny", "1Gi", &["ReadWriteOnce", "ReadWriteMany"]);
        let d = pv("too-small", "500Mi", &["ReadWriteOnce"]);
        let all = [&a, &b, &c, &d];
        let claim = pvc("1Gi", &["ReadWriteOnce"]);
        let got = find_best_match_for_claim(&claim, &all, false).unwrap();
        assert_eq!(got.metadata.name.as_deref(), Some("rwo-small"));
        // Delay-binding claims are matched only to volumes reserved for them.
        assert!(find_best_match_for_claim(&claim, &all, true).is_none());
        let mut reserved = pv("reserved", "20Gi", &["ReadWriteOnce"]);
        reserved.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
            name: Some("c".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        });
        let all = [&a, &b, &reserved];
        let got = find_best_match_for_claim(&claim, &all, true).unwrap();
        assert_eq!(got.metadata.name.as_deref(), Some("reserved"));
    }
}
