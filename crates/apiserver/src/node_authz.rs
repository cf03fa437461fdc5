//! The Node authorizer and NodeRestriction admission, as upstream's: an agent
//! (`system:node:<name>` in `system:nodes`) holds the `system:node` role's rules, except that
//! it reads only the secrets, configmaps, claims and volumes its own pods use and asks for
//! tokens only of its pods' service accounts; and it writes only its own Node, its Lease and
//! its own pods.
//!
//! Where upstream keeps a graph of pods, nodes and what they use, the check here reads the
//! pods bound to the node in the object's namespace: agents fetch these objects when a pod
//! starts, not per request of other clients.

use std::sync::OnceLock;

use reddwarf_store::{ObjectKey, Store};
use serde_json::Value;

use crate::admission::{Attributes as Admitted, Operation, Plugin};
use crate::auth::{Attributes, Decision, User};
use crate::node_proxy::{NODES_GROUP, NODE_USER_PREFIX};
use crate::rbac::PolicyRule;
use crate::status::{ApiError, ApiResult};

/// The node a user is, when it is an agent.
pub fn node_name(user: &User) -> Option<&str> {
    if !user.in_group(NODES_GROUP) {
        return None;
    }
    user.name.strip_prefix(NODE_USER_PREFIX)
}

/// What every node may do, before the per-object checks: the bootstrap `system:node` role's
/// rules, plus what reddwarf's agent does beyond a kubelet (its local volume provisioner
/// lists, watches and patches PersistentVolumes).
fn node_rules() -> &'static [PolicyRule] {
    static RULES: OnceLock<Vec<PolicyRule>> = OnceLock::new();
    RULES.get_or_init(|| {
        let mut rules: Vec<PolicyRule> = crate::rbac::bootstrap::cluster_roles()
            .iter()
            .find(|r| r["metadata"]["name"] == "system:node")
            .map(PolicyRule::of_role)
            .unwrap_or_default();
        rules.push(PolicyRule::from_value(&serde_json::json!({
            "verbs": ["list", "watch", "patch"], "apiGroups": [""],
            "resources": ["persistentvolumes"]})));
        rules
    })
}

/// Upstream's Node authorizer.
pub struct NodeAuthorizer {
    store: Store,
}

impl NodeAuthorizer {
    /// An authorizer reading pods from `store`.
    pub fn new(store: Store) -> NodeAuthorizer {
        NodeAuthorizer { store }
    }

    /// The decision for `user`; `None` when the user is not a node (no opinion).
    pub fn authorize(&self, user: &User, a: &Attributes<'_>) -> Option<Decision> {
        let node = node_name(user)?;
        if a.path.is_none() {
            match (a.group, a.resource) {
                ("", "secrets") | ("", "configmaps") => {
                    return Some(self.read_used(node, a, Uses::by_name(a.resource)));
                }
                ("", "persistentvolumeclaims") if a.subresource.is_empty() => {
                    return Some(self.read_used(node, a, Uses::Claim));
                }
                ("", "persistentvolumes") if a.verb == "get" => {
                    return Some(self.read_used(node, a, Uses::Volume));
                }
                ("", "serviceaccounts") if a.subresource == "token" => {
                    if a.verb != "create" {
                        return Some(Decision::deny(
                            "can only create tokens for individual service accounts",
                        ));
                    }
                    return Some(self.related(node, a, Uses::Account));
                }
                ("coordination.k8s.io", "leases")
                    if a.namespace != "kube-node-lease"
                        || !(a.name.is_empty() || a.name == node) =>
                {
                    return Some(Decision::deny(
                        "can only access node lease with the same name as the requesting node",
                    ));
                }
                _ => {}
            }
        }
        if node_rules().iter().any(|r| r.allows(a)) {
            return Some(Decision::allow(""));
        }
        Some(Decision::default())
    }

    fn read_used(&self, node: &str, a: &Attributes<'_>, uses: Uses) -> Decision {
        if a.verb != "get" {
            return Decision::deny("can only get individual resources of this type");
        }
        if a.name.is_empty() {
            return Decision::deny("can only get individual resources of this type");
        }
        self.related(node, a, uses)
    }

    /// Whether a pod bound to `node` uses the object `a` names.
    fn related(&self, node: &str, a: &Attributes<'_>, uses: Uses) -> Decision {
        let found = match uses {
            Uses::Volume => self.volume_used(node, a.name),
            _ => self
                .pods_on(node, a.namespace)
                .iter()
                .any(|p| uses.by(p, a.name)),
        };
        if found {
            return Decision::allow("");
        }
        Decision::deny(format!(
            "no relationship found between node '{node}' and this object"
        ))
    }

    /// The pods bound to `node` in `namespace` (every namespace when empty).
    fn pods_on(&self, node: &str, namespace: &str) -> Vec<Value> {
        let prefix = if namespace.is_empty() {
            ObjectKey::resource_prefix("", "pods")
        } else {
            ObjectKey::namespace_prefix("", "pods", namespace)
        };
        let mut out = Vec::new();
        let Ok(view) = self.store.read() else {
            return out;
        };
        let needle = format!("\"nodeName\":\"{node}\"");
        let _ = view.list_each(
            &prefix,
            None,
            0,
            false,
            // A cheap scan first: only pods naming the node are decoded.
            |bytes| memchr_str(bytes, needle.as_bytes()),
            |_, bytes| {
                if let Ok(p) = serde_json::from_slice::<Value>(bytes) {
                    if p["spec"]["nodeName"] == node {
                        out.push(p);
                    }
                }
            },
        );
        out
    }

    /// Whether a pod on `node` mounts a claim bound to volume `name`.
    fn volume_used(&self, node: &str, name: &str) -> bool {
        let Ok(view) = self.store.read() else {
            return false;
        };
        self.pods_on(node, "").iter().any(|pod| {
            let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
            claims(pod).iter().any(|claim| {
                let key = ObjectKey::new("", "persistentvolumeclaims", ns, claim);
                view.get(key.as_str())
                    .ok()
                    .flatten()
                    .and_then(|(_, b)| serde_json::from_slice::<Value>(&b).ok())
                    .is_some_and(|pvc| pvc["spec"]["volumeName"] == name)
            })
        })
    }
}

fn memchr_str(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What kind of reference links a pod to an object.
#[derive(Clone, Copy)]
enum Uses {
    Secret,
    ConfigMap,
    Claim,
    Volume,
    Account,
}

impl Uses {
    fn by_name(resource: &str) -> Uses {
        if resource == "secrets" {
            Uses::Secret
        } else {
            Uses::ConfigMap
        }
    }

    fn by(self, pod: &Value, name: &str) -> bool {
        match self {
            Uses::Secret => secrets(pod).iter().any(|s| s == name),
            Uses::ConfigMap => config_maps(pod).iter().any(|s| s == name),
            Uses::Claim => claims(pod).iter().any(|s| s == name),
            Uses::Account => {
                pod["spec"]["serviceAccountName"]
                    .as_str()
                    .unwrap_or("default")
                    == name
            }
            Uses::Volume => false,
        }
    }
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["containers", "initContainers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |f| pod["spec"][f].as_array().into_iter().flatten())
}

fn volumes(pod: &Value) -> impl Iterator<Item = &Value> {
    pod["spec"]["volumes"].as_array().into_iter().flatten()
}

fn push(out: &mut Vec<String>, v: &Value) {
    if let Some(s) = v.as_str() {
        out.push(s.to_string());
    }
}

/// Secrets a pod uses: volumes, projections, env, envFrom, image pull secrets.
fn secrets(pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in pod["spec"]["imagePullSecrets"]
        .as_array()
        .into_iter()
        .flatten()
    {
        push(&mut out, &p["name"]);
    }
    for v in volumes(pod) {
        push(&mut out, &v["secret"]["secretName"]);
        for s in v["projected"]["sources"].as_array().into_iter().flatten() {
            push(&mut out, &s["secret"]["name"]);
        }
        for driver in [
            "csi",
            "flexVolume",
            "cephfs",
            "rbd",
            "iscsi",
            "azureFile",
            "scaleIO",
        ] {
            push(&mut out, &v[driver]["nodePublishSecretRef"]["name"]);
            push(&mut out, &v[driver]["secretRef"]["name"]);
        }
        push(&mut out, &v["azureFile"]["secretName"]);
    }
    for c in containers(pod) {
        for e in c["env"].as_array().into_iter().flatten() {
            push(&mut out, &e["valueFrom"]["secretKeyRef"]["name"]);
        }
        for e in c["envFrom"].as_array().into_iter().flatten() {
            push(&mut out, &e["secretRef"]["name"]);
        }
    }
    out
}

/// ConfigMaps a pod uses: volumes, projections, env, envFrom.
fn config_maps(pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for v in volumes(pod) {
        push(&mut out, &v["configMap"]["name"]);
        for s in v["projected"]["sources"].as_array().into_iter().flatten() {
            push(&mut out, &s["configMap"]["name"]);
        }
    }
    for c in containers(pod) {
        for e in c["env"].as_array().into_iter().flatten() {
            push(&mut out, &e["valueFrom"]["configMapKeyRef"]["name"]);
        }
        for e in c["envFrom"].as_array().into_iter().flatten() {
            push(&mut out, &e["configMapRef"]["name"]);
        }
    }
    out
}

/// Claims a pod mounts, generic ephemeral volumes' (`<pod>-<volume>`) included.
fn claims(pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    for v in volumes(pod) {
        push(&mut out, &v["persistentVolumeClaim"]["claimName"]);
        if v.get("ephemeral").is_some() {
            out.push(format!("{pod_name}-{}", v["name"].as_str().unwrap_or("")));
        }
    }
    out
}

/// NodeRestriction: a node writes only its own Node and Lease, and only pods bound to it.
pub struct NodeRestriction;

impl Plugin for NodeRestriction {
    fn name(&self) -> &'static str {
        "NodeRestriction"
    }

    fn validate(&self, a: &Admitted, obj: &Value, _store: &Store) -> ApiResult<()> {
        let Some(node) = node_name(a.user) else {
            return Ok(());
        };
        let refuse = |why: String| {
            Err(ApiError::forbidden(
                a.kind.group,
                a.kind.plural,
                a.name,
                &why,
            ))
        };
        match (a.kind.group, a.kind.plural) {
            ("", "nodes") if a.name != node => {
                return refuse(format!(
                    "node {node:?} is not allowed to modify node {:?}",
                    a.name
                ));
            }
            ("coordination.k8s.io", "leases")
                if a.name != node || a.namespace != "kube-node-lease" =>
            {
                return refuse(
                    "can only access node lease with the same name as the requesting node"
                        .to_string(),
                );
            }
            ("", "pods") => {
                let bound = obj["spec"]["nodeName"].as_str() == Some(node);
                match (a.operation, a.subresource) {
                    (Operation::Create, None) => {
                        let mirror = obj["metadata"]["annotations"]
                            .get("kubernetes.io/config.mirror")
                            .is_some();
                        if !mirror {
                            return refuse(format!(
                                "pod does not have \"kubernetes.io/config.mirror\" annotation, node {node:?} can only create mirror pods"
                            ));
                        }
                        if !bound {
                            return refuse(format!(
                                "node {node:?} can only create pods with spec.nodeName set to itself"
                            ));
                        }
                    }
                    (Operation::Delete, _) if !bound => {
                        return refuse(format!(
                            "node {node:?} can only delete pods with spec.nodeName set to itself"
                        ));
                    }
                    (Operation::Update, Some("status")) if !bound => {
                        return refuse(format!(
                            "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
                        ));
                    }
                    (Operation::Update, None) => {
                        return refuse(format!("node {node:?} can only update pod status"));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_name_what_they_use() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [{"name": "v", "secret": {"secretName": "vol"}},
                        {"name": "c", "configMap": {"name": "cm"}},
                        {"name": "e", "ephemeral": {}},
                        {"name": "x", "projected": {"sources": [{"secret": {"name": "proj"}}]}}],
            "containers": [{"env": [{"valueFrom": {"secretKeyRef": {"name": "env"}}}],
                            "envFrom": [{"configMapRef": {"name": "cm2"}}]}]}});
        assert_eq!(secrets(&pod), ["pull", "vol", "proj", "env"]);
        assert_eq!(config_maps(&pod), ["cm", "cm2"]);
        assert_eq!(claims(&pod), ["p-e"]);
    }

    #[test]
    fn node_rules_come_from_the_bootstrap_role() {
        let may = |verb, resource, sub| {
            node_rules()
                .iter()
                .any(|r| r.allows(&Attributes::resource(verb, "", resource, sub, "ns", "x")))
        };
        assert!(may("update", "pods", "status"));
        assert!(may("list", "pods", ""));
        assert!(!may("update", "pods", ""));
        assert!(!may("list", "namespaces", ""));
    }
}
