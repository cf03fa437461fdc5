//! Admission: an ordered list of plugins, each with a mutating and a validating phase, run by
//! the registry on every create, update and delete after the kind's own preparation (all
//! mutations first, then all validations, as upstream's admission chain). Plugins decide for
//! themselves which resources they handle, as upstream's do; the seam RBAC-aware and webhook
//! admission plug into.

use reddwarf_resources::ResourceKind;
use reddwarf_store::{ObjectKey, Store};
use serde_json::{json, Value};

use crate::meta::meta_str;
use crate::status::{ApiError, ApiResult};
use crate::User;

/// What is being done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A create (POST, or a PUT that creates).
    Create,
    /// An update of an existing object, through the object or a subresource.
    Update,
    /// A delete.
    Delete,
}

/// The request as admission sees it.
pub struct Attributes<'a> {
    /// The catalogue entry of the resource written.
    pub kind: &'a ResourceKind,
    /// What is being done to it.
    pub operation: Operation,
    /// The subresource written (None: the object itself).
    pub subresource: Option<&'a str>,
    /// The request's namespace (empty for cluster-scoped resources).
    pub namespace: &'a str,
    /// The object's name.
    pub name: &'a str,
    /// Who sent the request.
    pub user: &'a User,
}

impl Attributes<'_> {
    /// Whether this is a write of `group`/`plural` itself (not a subresource).
    fn is(&self, group: &str, plural: &str) -> bool {
        self.kind.group == group && self.kind.plural == plural && self.subresource.is_none()
    }
}

/// One admission plugin. Both phases default to admitting unchanged.
pub trait Plugin: Send + Sync {
    /// The plugin's name, as upstream's `--enable-admission-plugins` spells it.
    fn name(&self) -> &'static str;

    /// Changes the object before validation (create and update only).
    fn mutate(&self, _a: &Attributes, _obj: &mut Value, _store: &Store) -> ApiResult<()> {
        Ok(())
    }

    /// Refuses a request (`obj` is the object written; on delete, the object deleted).
    fn validate(&self, _a: &Attributes, _obj: &Value, _store: &Store) -> ApiResult<()> {
        Ok(())
    }
}

/// Settings of the built-in plugins.
#[derive(Clone, Debug)]
pub struct AdmissionConfig {
    /// DefaultTolerationSeconds: `--default-not-ready-toleration-seconds`.
    pub not_ready_toleration_seconds: i64,
    /// DefaultTolerationSeconds: `--default-unreachable-toleration-seconds`.
    pub unreachable_toleration_seconds: i64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        // Upstream's defaults.
        AdmissionConfig {
            not_ready_toleration_seconds: 300,
            unreachable_toleration_seconds: 300,
        }
    }
}

/// The admission chain.
pub struct Admission {
    plugins: Vec<Box<dyn Plugin>>,
}

impl Admission {
    /// The built-in plugins in upstream's order.
    pub fn new(
        config: &AdmissionConfig,
        rbac: std::sync::Arc<crate::rbac::Rbac>,
        signer: crate::sa_token::SignerCell,
    ) -> Admission {
        Admission {
            plugins: vec![
                Box::new(NamespaceLifecycle),
                Box::new(ServiceAccount),
                Box::new(crate::node_authz::NodeRestriction),
                Box::new(crate::sa_token::LegacyTokens(signer)),
                Box::new(Priority),
                Box::new(DefaultTolerationSeconds {
                    not_ready: config.not_ready_toleration_seconds,
                    unreachable: config.unreachable_toleration_seconds,
                }),
                Box::new(DefaultStorageClass),
                Box::new(crate::rbac::escalation::Escalation(rbac)),
            ],
        }
    }

    /// The names of the plugins, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }

    /// Runs every plugin's mutating phase in order; the first error refuses the request.
    pub fn mutate(&self, a: &Attributes, obj: &mut Value, store: &Store) -> ApiResult<()> {
        for p in &self.plugins {
            p.mutate(a, obj, store)?;
        }
        Ok(())
    }

    /// Runs every plugin's validating phase in order; the first error refuses the request.
    pub fn validate(&self, a: &Attributes, obj: &Value, store: &Store) -> ApiResult<()> {
        for p in &self.plugins {
            p.validate(a, obj, store)?;
        }
        Ok(())
    }
}

/// NamespaceLifecycle: the namespaces the cluster needs may not be deleted. (Creating in a
/// missing or terminating namespace is refused by the store's create itself, atomically
/// with the write.)
struct NamespaceLifecycle;

const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

impl Plugin for NamespaceLifecycle {
    fn name(&self) -> &'static str {
        "NamespaceLifecycle"
    }

    fn validate(&self, a: &Attributes, _obj: &Value, _store: &Store) -> ApiResult<()> {
        if a.operation == Operation::Delete
            && a.is("", "namespaces")
            && IMMORTAL_NAMESPACES.contains(&a.name)
        {
            return Err(ApiError::forbidden(
                "",
                "namespaces",
                a.name,
                "this namespace may not be deleted",
            ));
        }
        Ok(())
    }
}

/// ServiceAccount: a pod runs as a service account (`default` unless it names one) and, unless
/// it or its account opts out, gets upstream's `kube-api-access-<suffix>` projected volume
/// (a token bound to the pod, the cluster CA, the namespace) mounted in every container at
/// `/var/run/secrets/kubernetes.io/serviceaccount`. Unlike upstream, a pod whose account does
/// not exist yet is admitted: its agent waits for the account before starting it.
struct ServiceAccount;

/// Where service-account credentials are mounted in containers.
const SA_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

impl Plugin for ServiceAccount {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }

    fn mutate(&self, a: &Attributes, pod: &mut Value, store: &Store) -> ApiResult<()> {
        if a.operation != Operation::Create || !a.is("", "pods") {
            return Ok(());
        }
        if pod["metadata"]["annotations"]
            .get("kubernetes.io/config.mirror")
            .is_some()
        {
            return Ok(());
        }
        let account = match pod["spec"]["serviceAccountName"].as_str() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => {
                pod["spec"]["serviceAccountName"] = json!("default");
                "default".to_string()
            }
        };
        let automount = match pod["spec"]["automountServiceAccountToken"].as_bool() {
            Some(b) => b,
            None => {
                let key = ObjectKey::new("", "serviceaccounts", a.namespace, &account);
                store
                    .read()
                    .ok()
                    .and_then(|v| v.get(key.as_str()).ok().flatten())
                    .and_then(|(_, b)| serde_json::from_slice::<Value>(&b).ok())
                    .and_then(|sa| sa["automountServiceAccountToken"].as_bool())
                    .unwrap_or(true)
            }
        };
        if !automount {
            return Ok(());
        }
        let mounted = |c: &Value| {
            c["volumeMounts"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["mountPath"] == SA_MOUNT_PATH))
        };
        let containers = ["initContainers", "containers"];
        let wanted = containers.iter().any(|f| {
            pod["spec"][*f]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| !mounted(c)))
        });
        if !wanted {
            return Ok(());
        }
        // Upstream's suffix alphabet (no vowels, no look-alikes).
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let suffix: String = (0..5)
            .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
            .collect();
        let volume = format!("kube-api-access-{suffix}");
        let projection = json!({"name": volume, "projected": {"sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]}});
        match pod["spec"]["volumes"].as_array_mut() {
            Some(v) => v.push(projection),
            None => pod["spec"]["volumes"] = json!([projection]),
        }
        let mount = json!({"name": volume, "readOnly": true, "mountPath": SA_MOUNT_PATH});
        for f in containers {
            for c in pod["spec"][f].as_array_mut().into_iter().flatten() {
                if mounted(c) {
                    continue;
                }
                match c["volumeMounts"].as_array_mut() {
                    Some(m) => m.push(mount.clone()),
                    None => c["volumeMounts"] = json!([mount.clone()]),
                }
            }
        }
        Ok(())
    }
}

/// Priority: a pod's priority (and preemption policy) come from its PriorityClass, or from
/// the cluster's globalDefault class; a pod may not state its own.
struct Priority;

impl Plugin for Priority {
    fn name(&self) -> &'static str {
        "Priority"
    }

    fn mutate(&self, a: &Attributes, pod: &mut Value, store: &Store) -> ApiResult<()> {
        if a.operation != Operation::Create || !a.is("", "pods") {
            return Ok(());
        }
        let name = meta_str(pod, "name").to_string();
        let class_name = pod
            .pointer("/spec/priorityClassName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let view = store.read().map_err(ApiError::internal)?;
        let class: Option<Value> = if class_name.is_empty() {
            let prefix = ObjectKey::resource_prefix("scheduling.k8s.io", "priorityclasses");
            let page = view
                .list(&prefix, None, 0, false, |b| {
                    serde_json::from_slice::<Value>(b)
                        .map(|v| v["globalDefault"] == true)
                        .unwrap_or(false)
                })
                .map_err(ApiError::internal)?;
            page.items
                .first()
                .and_then(|(_, b)| serde_json::from_slice(b).ok())
        } else {
            let key = ObjectKey::new("scheduling.k8s.io", "priorityclasses", "", &class_name);
            match view.get(key.as_str()).map_err(ApiError::internal)? {
                Some((_, b)) => Some(serde_json::from_slice(&b).map_err(ApiError::internal)?),
                None => {
                    return Err(ApiError::forbidden(
                        "",
                        "pods",
                        &name,
                        &format!("no PriorityClass with name {class_name} was found"),
                    ))
                }
            }
        };
        drop(view);
        let priority = class
            .as_ref()
            .and_then(|c| c["value"].as_i64())
            .unwrap_or(0);
        if let Some(given) = pod.pointer("/spec/priority").and_then(Value::as_i64) {
            if given != priority {
                return Err(ApiError::forbidden("", "pods", &name, &format!(
                    "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
                )));
            }
        }
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        spec.insert("priority".into(), json!(priority));
        if let Some(c) = &class {
            if class_name.is_empty() {
                spec.insert("priorityClassName".into(), c["metadata"]["name"].clone());
            }
            if let Some(policy) = c["preemptionPolicy"].as_str() {
                spec.insert("preemptionPolicy".into(), json!(policy));
            }
        }
        Ok(())
    }
}

/// DefaultTolerationSeconds: pods tolerate not-ready and unreachable nodes for a while
/// (300 s unless configured) unless they already say otherwise.
struct DefaultTolerationSeconds {
    not_ready: i64,
    unreachable: i64,
}

impl Plugin for DefaultTolerationSeconds {
    fn name(&self) -> &'static str {
        "DefaultTolerationSeconds"
    }

    fn mutate(&self, a: &Attributes, pod: &mut Value, _store: &Store) -> ApiResult<()> {
        if a.operation == Operation::Delete || !a.is("", "pods") {
            return Ok(());
        }
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let tolerates = |spec: &serde_json::Map<String, Value>, key: &str| {
            spec.get("tolerations")
                .and_then(Value::as_array)
                .is_some_and(|ts| {
                    ts.iter().any(|t| {
                        let k = t.get("key").and_then(Value::as_str).unwrap_or("");
                        let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
                        let op = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
                        (k == key || (k.is_empty() && op == "Exists"))
                            && (effect.is_empty() || effect == "NoExecute")
                    })
                })
        };
        for (key, seconds) in [
            ("node.kubernetes.io/not-ready", self.not_ready),
            ("node.kubernetes.io/unreachable", self.unreachable),
        ] {
            if tolerates(spec, key) {
                continue;
            }
            let t = json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds});
            match spec.get_mut("tolerations") {
                Some(Value::Array(ts)) => ts.push(t),
                _ => {
                    spec.insert("tolerations".into(), json!([t]));
                }
            }
        }
        Ok(())
    }
}

/// DefaultStorageClass (upstream `setdefault`): a new claim that names no class (neither
/// `storageClassName`, not even "", nor the beta annotation) gets the default StorageClass,
/// the newest of those annotated default (ties: the first by name).
struct DefaultStorageClass;

impl Plugin for DefaultStorageClass {
    fn name(&self) -> &'static str {
        "DefaultStorageClass"
    }

    fn mutate(&self, a: &Attributes, pvc: &mut Value, store: &Store) -> ApiResult<()> {
        if a.operation != Operation::Create || !a.is("", "persistentvolumeclaims") {
            return Ok(());
        }
        let beta = pvc
            .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
            .is_some();
        if beta
            || pvc
                .pointer("/spec/storageClassName")
                .is_some_and(|c| !c.is_null())
        {
            return Ok(());
        }
        let view = store.read().map_err(ApiError::internal)?;
        let prefix = ObjectKey::resource_prefix("storage.k8s.io", "storageclasses");
        let page = view
            .list(&prefix, None, 0, false, |b| {
                serde_json::from_slice::<Value>(b)
                    .map(|v| {
                        let ann = |k: &str| v["metadata"]["annotations"][k] == "true";
                        ann("storageclass.kubernetes.io/is-default-class")
                            || ann("storageclass.beta.kubernetes.io/is-default-class")
                    })
                    .unwrap_or(false)
            })
            .map_err(ApiError::internal)?;
        drop(view);
        let mut defaults: Vec<(String, String)> = page
            .items
            .iter()
            .filter_map(|(_, b)| serde_json::from_slice::<Value>(b).ok())
            .map(|c| {
                (
                    meta_str(&c, "creationTimestamp").to_string(),
                    meta_str(&c, "name").to_string(),
                )
            })
            .collect();
        // RFC 3339 UTC timestamps of one width order as strings: newest first, then by name.
        defaults.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let Some((_, name)) = defaults.into_iter().next() else {
            return Ok(());
        };
        if let Some(spec) = pvc.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("storageClassName".into(), json!(name));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_run_in_upstream_order() {
        let signer = std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(
            crate::sa_token::Signer::ephemeral(),
        )));
        let a = Admission::new(&AdmissionConfig::default(), Default::default(), signer);
        assert_eq!(
            a.names(),
            [
                "NamespaceLifecycle",
                "ServiceAccount",
                "NodeRestriction",
                "ServiceAccountTokens",
                "Priority",
                "DefaultTolerationSeconds",
                "DefaultStorageClass",
                "RBACEscalation"
            ]
        );
    }
}
