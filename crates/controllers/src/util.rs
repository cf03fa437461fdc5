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

/// 32-bit FNV-1a, the hash upstream uses for pod template hashes.
pub fn fnv32a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
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
