//! Helpers every workload controller needs: label selectors, pod state, owner references
//! and pods made from templates, with upstream's semantics.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

/// Whether `labels` match `selector` (matchLabels and matchExpressions). An empty selector
/// matches everything, as upstream's `LabelSelectorAsSelector` does.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &selector.match_labels {
        if ml.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return false;
        }
    }
    for e in selector.match_expressions.iter().flatten() {
        let have = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        let ok = match e.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// A pod that counts towards its controller's replicas: not finished, not being deleted.
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// The pod's Ready condition is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// When the pod became Ready (for minReadySeconds / availability).
pub fn pod_ready_since(pod: &Pod) -> Option<k8s_openapi::jiff::Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// Ready for at least `min_ready_seconds` (upstream `IsPodAvailable`).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    pod_ready_since(pod).is_some_and(|t| {
        k8s_openapi::jiff::Timestamp::now().as_second() - t.as_second()
            >= i64::from(min_ready_seconds)
    })
}

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

/// A pod built from a template, owned by `owner` (upstream `GetPodFromTemplate`): labels,
/// annotations and finalizers from the template, `generateName` `<prefix>-` unless a name is
/// given.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    owner: OwnerReference,
    namespace: &str,
    name: Option<String>,
    generate_prefix: &str,
) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    let generate_name = if name.is_none() {
        Some(format!("{generate_prefix}-"))
    } else {
        None
    };
    Pod {
        metadata: ObjectMeta {
            name,
            generate_name,
            namespace: Some(namespace.to_string()),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// A label selector in the query-string form `labelSelector=` takes (upstream
/// `LabelSelectorAsSelector(...).String()`).
pub fn selector_string(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// Whether the pod finished (phase Succeeded or Failed).
pub fn is_pod_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The pod's phase, `Pending` when unset.
pub fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

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

/// Whether a node selector requirement holds for `value` (a label's value, or a field's).
/// `Gt`/`Lt` compare integers, as upstream's `NodeSelectorRequirementsAsSelector` does.
fn node_requirement_holds(
    req: &k8s_openapi::api::core::v1::NodeSelectorRequirement,
    value: Option<&str>,
) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let int = |s: &str| s.parse::<i64>().ok();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(want)) =
                (value.and_then(int), values.first().and_then(|v| int(v)))
            else {
                return false;
            };
            if req.operator == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

/// One node selector term: all expressions (labels) and fields (`metadata.name`) hold. A
/// term with neither matches nothing, as upstream.
pub fn node_selector_term_matches(
    term: &k8s_openapi::api::core::v1::NodeSelectorTerm,
    node: &k8s_openapi::api::core::v1::Node,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    exprs
        .iter()
        .all(|r| node_requirement_holds(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = match r.key.as_str() {
                "metadata.name" => node.metadata.name.as_deref(),
                _ => None,
            };
            node_requirement_holds(r, value)
        })
}

/// Whether a pod with this spec may run on `node` by its `nodeSelector` and required node
/// affinity (upstream `GetRequiredNodeAffinity(pod).Match(node)`).
pub fn node_fits_pod_selectors(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    node: &k8s_openapi::api::core::v1::Node,
) -> bool {
    let labels = node.metadata.labels.as_ref();
    if let Some(sel) = &spec.node_selector {
        if sel
            .iter()
            .any(|(k, v)| labels.and_then(|l| l.get(k)) != Some(v))
        {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| node_selector_term_matches(t, node)),
    }
}

/// Whether a toleration tolerates a taint (upstream `Toleration.ToleratesTaint`).
pub fn tolerates(
    tol: &k8s_openapi::api::core::v1::Toleration,
    taint: &k8s_openapi::api::core::v1::Taint,
) -> bool {
    if tol
        .effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    let key = tol.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "" | "Equal" => tol.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// The first taint passing `filter` that no toleration tolerates.
pub fn untolerated_taint<'a>(
    taints: &'a [k8s_openapi::api::core::v1::Taint],
    tolerations: &[k8s_openapi::api::core::v1::Toleration],
    filter: impl Fn(&k8s_openapi::api::core::v1::Taint) -> bool,
) -> Option<&'a k8s_openapi::api::core::v1::Taint> {
    taints
        .iter()
        .filter(|t| filter(t))
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// 32-bit FNV-1a, the hash upstream uses for pod template hashes.
pub fn fnv32a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// 32-bit FNV-1, the hash upstream's `HashControllerRevision` uses.
pub fn fnv32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        h.wrapping_mul(0x0100_0193) ^ u32::from(*b)
    })
}

/// Upstream `rand.SafeEncodeString`: maps each character onto consonants and digits that
/// cannot spell words, so a hash is a valid (and inoffensive) label value and name suffix.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// The `pod-template-hash` of a template: FNV-1a over its canonical JSON (field order fixed by
/// the types, maps sorted), plus the collision count when set, encoded as upstream encodes it.
/// Stable across restarts because it depends only on the stored template.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(template).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&(c as u32).to_le_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// An int-or-percent scaled against `total` (upstream `GetScaledValueFromIntOrPercent`):
/// percentages round up or down as asked.
pub fn scaled_value(
    v: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
    total: i32,
    round_up: bool,
) -> Result<i32, String> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let scaled = pct * i64::from(total);
            let v = if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            };
            Ok(v as i32)
        }
    }
}

/// Which of two active pods to delete first when scaling down (upstream
/// `ActivePodsWithRanks.Less`): unassigned before assigned, Pending before Unknown before
/// Running, not ready before ready, lower `controller.kubernetes.io/pod-deletion-cost` first,
/// more pods of the owner on the same node first, ready more recently first, more container
/// restarts first, newer first. `rank_*` is how many pods of the owner share the pod's node.
pub fn deletion_order(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let phase = |p: &Pod| match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    };
    let cost = |p: &Pod| -> i32 {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let restarts = |p: &Pod| -> i32 {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
            .unwrap_or(0)
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    node(a)
        .cmp(&node(b))
        .then(phase(a).cmp(&phase(b)))
        .then(is_pod_ready(a).cmp(&is_pod_ready(b)))
        .then(cost(a).cmp(&cost(b)))
        .then(rank_b.cmp(&rank_a))
        .then_with(|| {
            if is_pod_ready(a) && is_pod_ready(b) {
                // Ready more recently sorts first; unknown readiness time counts as newest.
                match (pod_ready_since(a), pod_ready_since(b)) {
                    (Some(x), Some(y)) => y.cmp(&x),
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                }
            } else {
                Ordering::Equal
            }
        })
        .then(restarts(b).cmp(&restarts(a)))
        .then_with(|| match (created(a), created(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
}

/// Two pod templates equal apart from the `pod-template-hash` label (upstream
/// `EqualIgnoreHash`).
pub fn templates_equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        let meta = t.metadata.get_or_insert_with(Default::default);
        if let Some(l) = meta.labels.as_mut() {
            l.remove(POD_TEMPLATE_HASH_LABEL);
            if l.is_empty() {
                meta.labels = None;
            }
        }
        if meta.annotations.as_ref().is_some_and(|a| a.is_empty()) {
            meta.annotations = None;
        }
        if *meta == ObjectMeta::default() {
            t.metadata = None;
        }
        t
    };
    strip(a) == strip(b)
}

/// The label a Deployment adds to its ReplicaSets' selectors and templates.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// A short message for an API error (the Status message, not the debug dump).
pub fn error_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// The API answered 409 Conflict (stale resourceVersion or already exists).
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// The API answered 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Sort key for "oldest first": creation time, then name.
pub fn creation_key(meta: &ObjectMeta) -> (i64, String) {
    (
        meta.creation_timestamp
            .as_ref()
            .map(|t| t.0.as_nanosecond() as i64)
            .unwrap_or(i64::MAX),
        meta.name.clone().unwrap_or_default(),
    )
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

#[cfg(test)]
mod hash_tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(fnv32(b"a"), 0x050c5d7e);
    }

    #[test]
    fn safe_encoding_of_decimal_digits() {
        // '0'..'9' are bytes 48..57, which land on "456789bcdf".
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }
}
