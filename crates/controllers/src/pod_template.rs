//! Pod templates: pods made from them, the `pod-template-hash` that names a Deployment's
//! ReplicaSets, and template equality ignoring that hash.

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;

use crate::hash::{fnv32a, safe_encode};

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
