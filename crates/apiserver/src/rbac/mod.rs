//! RBAC with upstream semantics: Roles, ClusterRoles and their bindings, read from the store
//! on the apply path (a store [`Observer`] per resource) into an index by subject, so a
//! decision looks only at the bindings of the caller's name and groups — never a list of every
//! binding. Roles are looked up by name at decision time: a role's change needs no rebinding.
//!
//! Also here: escalation prevention (a user may only grant what they hold, or hold `bind` /
//! `escalate`), upstream's bootstrap policy and its reconciliation, and the ClusterRole
//! aggregation controller.

pub mod aggregation;
pub mod bootstrap;
pub mod escalation;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};

use reddwarf_store::{Event, EventType, ObjectKey, Observer, Store};
use serde_json::{json, Value};

use crate::auth::{Attributes, Decision, User};

/// The RBAC API group.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// One rule of a role, as `rbac/v1` PolicyRule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyRule {
    /// Verbs (`*` for all).
    pub verbs: Vec<String>,
    /// API groups (`*` for all, empty string for core).
    pub api_groups: Vec<String>,
    /// Resources (`*`, `pods`, `pods/status`, `*/scale`).
    pub resources: Vec<String>,
    /// Object names the rule is limited to (empty: every name).
    pub resource_names: Vec<String>,
    /// Non-resource URLs (`/healthz`, `/api/*`, `*`).
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn has(set: &[String], want: &str) -> bool {
    set.iter().any(|s| s == want)
}

impl PolicyRule {
    /// A rule from its JSON form.
    pub fn from_value(v: &Value) -> PolicyRule {
        PolicyRule {
            verbs: strings(v, "verbs"),
            api_groups: strings(v, "apiGroups"),
            resources: strings(v, "resources"),
            resource_names: strings(v, "resourceNames"),
            non_resource_urls: strings(v, "nonResourceURLs"),
        }
    }

    /// The rules of a Role or ClusterRole object.
    pub fn of_role(role: &Value) -> Vec<PolicyRule> {
        role.get("rules")
            .and_then(Value::as_array)
            .map(|r| r.iter().map(PolicyRule::from_value).collect())
            .unwrap_or_default()
    }

    /// The JSON form (fields left out when empty, as upstream serializes them).
    pub fn to_value(&self) -> Value {
        let mut v = json!({"verbs": self.verbs});
        if !self.non_resource_urls.is_empty() {
            v["nonResourceURLs"] = json!(self.non_resource_urls);
            return v;
        }
        v["apiGroups"] = json!(self.api_groups);
        v["resources"] = json!(self.resources);
        if !self.resource_names.is_empty() {
            v["resourceNames"] = json!(self.resource_names);
        }
        v
    }

    /// Whether the rule allows the request (upstream's `RuleAllows`).
    pub fn allows(&self, a: &Attributes<'_>) -> bool {
        if !(has(&self.verbs, "*") || has(&self.verbs, a.verb)) {
            return false;
        }
        if let Some(path) = a.path {
            return self.non_resource_urls.iter().any(|u| url_matches(u, path));
        }
        if !(has(&self.api_groups, "*") || has(&self.api_groups, a.group)) {
            return false;
        }
        if !self.resources.iter().any(|r| resource_matches(r, a)) {
            return false;
        }
        self.resource_names.is_empty() || has(&self.resource_names, a.name)
    }
}

fn url_matches(rule: &str, path: &str) -> bool {
    if rule == "*" || rule == path {
        return true;
    }
    rule.strip_suffix('*')
        .is_some_and(|prefix| path.starts_with(prefix))
}

fn resource_matches(rule: &str, a: &Attributes<'_>) -> bool {
    if rule == "*" {
        return true;
    }
    if a.subresource.is_empty() {
        return rule == a.resource;
    }
    // `pods/status`, or `*/status` for every resource's status.
    match rule.split_once('/') {
        Some((r, s)) => (r == a.resource || r == "*") && s == a.subresource,
        None => false,
    }
}

/// A binding's role.
#[derive(Clone, Debug, PartialEq)]
struct RoleRef {
    cluster: bool,
    name: String,
}

/// One stored binding, indexed under each of its subjects.
#[derive(Debug)]
struct Binding {
    /// Empty for a ClusterRoleBinding.
    namespace: String,
    name: String,
    role: RoleRef,
    /// `(kind, name)` of each subject, kind `User`, `Group` or the user name of a
    /// ServiceAccount.
    subjects: Vec<Subject>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Subject {
    User(String),
    Group(String),
}

#[derive(Default)]
struct Index {
    cluster_roles: HashMap<String, Arc<[PolicyRule]>>,
    /// By `(namespace, name)`.
    roles: HashMap<(String, String), Arc<[PolicyRule]>>,
    /// By store key.
    bindings: HashMap<String, Arc<Binding>>,
    by_user: HashMap<String, Vec<Arc<Binding>>>,
    by_group: HashMap<String, Vec<Arc<Binding>>>,
}

impl Index {
    fn role_rules(&self, b: &Binding) -> Option<&Arc<[PolicyRule]>> {
        if b.role.cluster {
            self.cluster_roles.get(&b.role.name)
        } else {
            self.roles.get(&(b.namespace.clone(), b.role.name.clone()))
        }
    }

    /// The bindings that apply to `user` for a request in `namespace` (cluster bindings and
    /// the namespace's bindings), in a stable order.
    fn bindings_for<'a>(
        &'a self,
        user: &'a User,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Binding>> + 'a {
        // Looked up by borrowed names: a decision allocates nothing.
        let own = self.by_user.get(user.name.as_str());
        let groups = user
            .groups
            .iter()
            .filter_map(|g| self.by_group.get(g.as_str()));
        own.into_iter()
            .chain(groups)
            .flatten()
            .filter(move |b| b.namespace.is_empty() || b.namespace == namespace)
    }

    fn unbind(&mut self, key: &str) {
        let Some(old) = self.bindings.remove(key) else {
            return;
        };
        for s in &old.subjects {
            let (map, name) = match s {
                Subject::User(n) => (&mut self.by_user, n),
                Subject::Group(n) => (&mut self.by_group, n),
            };
            if let Some(list) = map.get_mut(name) {
                list.retain(|b| !Arc::ptr_eq(b, &old));
                if list.is_empty() {
                    map.remove(name);
                }
            }
        }
    }

    fn bind(&mut self, key: &str, obj: &Value) {
        self.unbind(key);
        let meta = &obj["metadata"];
        let namespace = meta["namespace"].as_str().unwrap_or("").to_string();
        let role = RoleRef {
            cluster: obj["roleRef"]["kind"].as_str() == Some("ClusterRole"),
            name: obj["roleRef"]["name"].as_str().unwrap_or("").to_string(),
        };
        let mut subjects = Vec::new();
        for s in obj["subjects"].as_array().into_iter().flatten() {
            let name = s["name"].as_str().unwrap_or("");
            let subject = match s["kind"].as_str().unwrap_or("") {
                "User" => Subject::User(name.to_string()),
                "Group" => Subject::Group(name.to_string()),
                "ServiceAccount" => {
                    let ns = s["namespace"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                        .unwrap_or(&namespace);
                    Subject::User(format!("system:serviceaccount:{ns}:{name}"))
                }
                _ => continue,
            };
            if !subjects.contains(&subject) {
                subjects.push(subject);
            }
        }
        let binding = Arc::new(Binding {
            namespace,
            name: meta["name"].as_str().unwrap_or("").to_string(),
            role,
            subjects,
        });
        for s in &binding.subjects {
            let (map, name) = match s {
                Subject::User(n) => (&mut self.by_user, n),
                Subject::Group(n) => (&mut self.by_group, n),
            };
            map.entry(name.clone()).or_default().push(binding.clone());
        }
        self.bindings.insert(key.to_string(), binding);
    }

    fn apply(&mut self, resource: &str, key: &str, obj: Option<&Value>) {
        let k = ObjectKey::from_string(key.to_string());
        match (resource, obj) {
            ("clusterroles", Some(o)) => {
                self.cluster_roles
                    .insert(k.name().to_string(), PolicyRule::of_role(o).into());
            }
            ("clusterroles", None) => {
                self.cluster_roles.remove(k.name());
            }
            ("roles", Some(o)) => {
                let id = (k.namespace().to_string(), k.name().to_string());
                self.roles.insert(id, PolicyRule::of_role(o).into());
            }
            ("roles", None) => {
                self.roles
                    .remove(&(k.namespace().to_string(), k.name().to_string()));
            }
            (_, Some(o)) => self.bind(key, o),
            (_, None) => self.unbind(key),
        }
    }
}

/// The four resources the index follows.
const RESOURCES: [&str; 4] = [
    "clusterroles",
    "roles",
    "clusterrolebindings",
    "rolebindings",
];

/// The RBAC authorizer: an index of roles and bindings kept current from the apply path.
#[derive(Default)]
pub struct Rbac {
    index: RwLock<Index>,
    /// The store's contents were replaced: re-read before the next decision.
    stale: AtomicBool,
    /// Woken when a ClusterRole changes (the aggregation controller waits on it).
    pub(crate) cluster_roles_changed: tokio::sync::Notify,
    store: std::sync::OnceLock<Store>,
}

impl Rbac {
    /// An authorizer following the roles and bindings of `store` from now on.
    pub fn follow(store: &Store) -> Arc<Rbac> {
        let rbac = Arc::new(Rbac::default());
        let _ = rbac.store.set(store.clone());
        for resource in RESOURCES {
            store.observe(
                ObjectKey::resource_prefix(GROUP, resource),
                Arc::new(Follower {
                    rbac: Arc::downgrade(&rbac),
                    resource,
                }),
            );
        }
        rbac.reload();
        rbac
    }

    /// An index of `objects` (`(resource, store key, object)`), following no store: for
    /// benchmarks of the decision itself.
    pub fn of_objects<'a>(objects: impl IntoIterator<Item = (&'a str, String, Value)>) -> Rbac {
        let rbac = Rbac::default();
        {
            let mut index = rbac.index.write().unwrap_or_else(|e| e.into_inner());
            for (resource, key, obj) in objects {
                index.apply(resource, &key, Some(&obj));
            }
        }
        rbac
    }

    fn reload(&self) {
        let Some(store) = self.store.get() else {
            return;
        };
        let mut fresh = Index::default();
        for resource in RESOURCES {
            let prefix = ObjectKey::resource_prefix(GROUP, resource);
            let page = match store
                .read()
                .and_then(|v| v.list(&prefix, None, 0, false, |_| true))
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("reading {resource}: {e}");
                    continue;
                }
            };
            for (key, bytes) in page.items {
                if let Ok(obj) = serde_json::from_slice::<Value>(&bytes) {
                    fresh.apply(resource, &key, Some(&obj));
                }
            }
        }
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        self.cluster_roles_changed.notify_one();
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        if self.stale.swap(false, Ordering::AcqRel) {
            self.reload();
        }
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Upstream's RBAC decision: allowed when a rule of a role bound to the user (by name or
    /// group; cluster-wide, or in the request's namespace) allows the request.
    pub fn authorize(&self, user: &User, a: &Attributes<'_>) -> Decision {
        let index = self.index();
        let namespace = if a.path.is_some() { "" } else { a.namespace };
        for b in index.bindings_for(user, namespace) {
            let Some(rules) = index.role_rules(b) else {
                continue;
            };
            if rules.iter().any(|r| r.allows(a)) {
                return Decision::allow(reason(b, user));
            }
        }
        Decision::default()
    }

    /// Every rule `user` holds in `namespace` (cluster-wide rules included; only those when
    /// `namespace` is empty), for SelfSubjectRulesReview and escalation checks.
    pub fn rules_for(&self, user: &User, namespace: &str) -> Vec<PolicyRule> {
        let index = self.index();
        let mut out: Vec<PolicyRule> = Vec::new();
        for b in index.bindings_for(user, namespace) {
            for r in index.role_rules(b).into_iter().flat_map(|r| r.iter()) {
                if !out.contains(r) {
                    out.push(r.clone());
                }
            }
        }
        out
    }

    /// The rules of the role a binding refers to.
    pub(crate) fn role_rules(
        &self,
        cluster: bool,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<[PolicyRule]>> {
        let index = self.index();
        if cluster {
            index.cluster_roles.get(name).cloned()
        } else {
            index
                .roles
                .get(&(namespace.to_string(), name.to_string()))
                .cloned()
        }
    }

    fn changed(&self, resource: &str, events: &[Arc<Event>]) {
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for e in events {
            if e.event_type == EventType::Deleted {
                index.apply(resource, &e.key, None);
            } else if let Ok(obj) = serde_json::from_slice::<Value>(&e.object) {
                index.apply(resource, &e.key, Some(&obj));
            }
        }
        drop(index);
        if resource == "clusterroles" {
            self.cluster_roles_changed.notify_one();
        }
    }
}

/// Upstream's wording of why RBAC allowed a request.
fn reason(b: &Binding, user: &User) -> String {
    let binding = if b.namespace.is_empty() {
        format!("ClusterRoleBinding {:?}", b.name)
    } else {
        format!("RoleBinding \"{}/{}\"", b.name, b.namespace)
    };
    let role = if b.role.cluster {
        format!("ClusterRole {:?}", b.role.name)
    } else {
        format!("Role \"{}/{}\"", b.role.name, b.namespace)
    };
    // The subject that matched: the user's own name first, as upstream reports it.
    let subject = b
        .subjects
        .iter()
        .find(|s| matches!(s, Subject::User(n) if *n == user.name))
        .or_else(|| {
            b.subjects
                .iter()
                .find(|s| matches!(s, Subject::Group(g) if user.in_group(g)))
        });
    let subject = match subject {
        Some(Subject::User(n)) => match n
            .strip_prefix("system:serviceaccount:")
            .and_then(|r| r.split_once(':'))
        {
            Some((ns, sa)) => format!("ServiceAccount \"{sa}/{ns}\""),
            None => format!("User {n:?}"),
        },
        Some(Subject::Group(g)) => format!("Group {g:?}"),
        None => String::new(),
    };
    format!("RBAC: allowed by {binding} of {role} to {subject}")
}

/// The index's link from the store's apply path (weak: the store must not keep it alive).
struct Follower {
    rbac: Weak<Rbac>,
    resource: &'static str,
}

impl Observer for Follower {
    fn changed(&self, events: &[Arc<Event>]) {
        if let Some(rbac) = self.rbac.upgrade() {
            rbac.changed(self.resource, events);
        }
    }

    fn reset(&self) {
        if let Some(rbac) = self.rbac.upgrade() {
            rbac.stale.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(v: Value) -> PolicyRule {
        PolicyRule::from_value(&v)
    }

    #[test]
    fn rules_match_as_upstream() {
        let r =
            rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "*/scale"]}));
        assert!(r.allows(&Attributes::resource("get", "", "pods", "", "ns", "x")));
        assert!(!r.allows(&Attributes::resource("list", "", "pods", "", "ns", "")));
        assert!(!r.allows(&Attributes::resource("get", "apps", "pods", "", "ns", "x")));
        // A resource rule does not grant its subresources.
        assert!(!r.allows(&Attributes::resource("get", "", "pods", "log", "ns", "x")));
        assert!(r.allows(&Attributes::resource(
            "get",
            "",
            "deployments",
            "scale",
            "ns",
            "x"
        )));
        let named = rule(
            json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["secrets"],
            "resourceNames": ["a"]}),
        );
        assert!(named.allows(&Attributes::resource("get", "", "secrets", "", "ns", "a")));
        assert!(!named.allows(&Attributes::resource("get", "", "secrets", "", "ns", "b")));
        assert!(!named.allows(&Attributes::resource("list", "", "secrets", "", "ns", "")));
        let urls = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}));
        assert!(urls.allows(&Attributes::path("get", "/healthz")));
        assert!(urls.allows(&Attributes::path("get", "/apis/apps/v1")));
        assert!(!urls.allows(&Attributes::path("get", "/api")));
        assert!(!urls.allows(&Attributes::resource("get", "", "pods", "", "", "")));
    }

    #[test]
    fn bindings_apply_by_subject_and_namespace() {
        let mut index = Index::default();
        index.apply(
            "roles",
            "rbac.authorization.k8s.io/roles/team/reader",
            Some(
                &json!({"rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]}),
            ),
        );
        index.apply(
            "rolebindings",
            "rbac.authorization.k8s.io/rolebindings/team/b",
            Some(&json!({"metadata": {"name": "b", "namespace": "team"},
                "roleRef": {"kind": "Role", "name": "reader"},
                "subjects": [{"kind": "Group", "name": "devs"},
                             {"kind": "ServiceAccount", "name": "bot"}]})),
        );
        let rbac = Rbac {
            index: RwLock::new(index),
            ..Rbac::default()
        };
        let dev = User {
            name: "jane".into(),
            groups: vec!["devs".into()],
        };
        let list = |ns| Attributes::resource("list", "", "pods", "", ns, "");
        let d = rbac.authorize(&dev, &list("team"));
        assert!(d.allowed);
        assert_eq!(
            d.reason,
            "RBAC: allowed by RoleBinding \"b/team\" of Role \"reader/team\" to Group \"devs\""
        );
        assert!(!rbac.authorize(&dev, &list("other")).allowed);
        let bot = User::named("system:serviceaccount:team:bot");
        assert!(rbac.authorize(&bot, &list("team")).allowed);
        assert_eq!(rbac.rules_for(&bot, "team").len(), 1);
        assert!(rbac.rules_for(&bot, "other").is_empty());
        rbac.index.write().unwrap().apply(
            "rolebindings",
            "rbac.authorization.k8s.io/rolebindings/team/b",
            None,
        );
        assert!(!rbac.authorize(&dev, &list("team")).allowed);
        let index = rbac.index.read().unwrap();
        assert!(index.by_user.is_empty() && index.by_group.is_empty());
    }
}
