//! The catalogue of kinds reddwarf serves: group/version/kind ↔ resource, scope, names,
//! subresources, selectable fields, table columns and defaulting. The generic REST machinery
//! in the apiserver serves whatever is listed here; adding a kind is one entry in
//! [`builtin`].

mod builtin;
mod columns;
mod defaults;
pub use defaults::set_default_toleration_seconds;
mod duration;
mod jsonpath;
mod labels;
pub mod validation;

pub use builtin::builtin_kinds;
pub use columns::parse_rfc3339;
pub use columns::{Column, TableRow};
pub use duration::human_duration;
pub use jsonpath::field_value;
pub use labels::{label_selector_string, label_set_string};

/// The verbs of a resource that serves everything.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

use serde_json::Value;

/// One served resource of one group/version.
#[derive(Clone)]
pub struct ResourceKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The URL segment (plural, lower case).
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Whether `/status` is a subresource (spec and status are then written separately).
    pub status: bool,
    /// Whether `/scale` is a subresource, with the JSON pointers of desired/current replicas.
    pub scale: bool,
    /// Whether `metadata.generation` is tracked (bumped when `generation_fields` change).
    pub generation: bool,
    /// JSON pointers of the fields whose change bumps `metadata.generation` (upstream's
    /// PrepareForUpdate): `/spec` for most kinds, `/webhooks`, `/template`... for others.
    pub generation_fields: &'static [&'static str],
    /// The verbs this resource serves (discovery lists them; others answer 405).
    pub verbs: &'static [&'static str],
    /// Whether DELETE answers with the object rather than a Status (upstream
    /// `ReturnDeletedObject`).
    pub delete_returns_object: bool,
    /// Whether a create keeps the status it was given (nodes: kubelets register with their
    /// status); otherwise a kind with a `/status` subresource starts with an empty one.
    pub create_keeps_status: bool,
    /// Fields beyond metadata.name/metadata.namespace that field selectors accept:
    /// (selector name, dotted JSON path).
    pub selectable_fields: &'static [(&'static str, &'static str)],
    /// Table columns (`kubectl get`), upstream's printer or the default NAME/CREATED AT.
    pub columns: fn() -> Vec<Column>,
    /// Table cells for one object, matching `columns`.
    pub row: fn(&Value, i64) -> Vec<Value>,
    /// Upstream defaulting (`SetDefaults_*`) applied on create and update.
    pub defaults: fn(&mut Value),
    /// Which rule object names of this kind follow.
    pub name_rule: NameRule,
}

/// Upstream's name validation rules (`apimachinery/pkg/api/validation/path` and `util/validation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain: most kinds.
    Subdomain,
    /// DNS-1123 label: namespaces.
    Label,
    /// DNS-1035 label: services.
    Label1035,
}

impl ResourceKind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Subresources served for this kind, by name.
    pub fn subresources(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.status {
            v.push("status");
        }
        if self.scale {
            v.push("scale");
        }
        v
    }

    pub fn verbs(&self) -> &'static [&'static str] {
        self.verbs
    }

    /// Whether `verb` (create, get, list, watch, update, patch, delete, deletecollection)
    /// is served for this resource itself.
    pub fn serves(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// Whether an update from `old` to `new` changes what bumps `metadata.generation`.
    pub fn generation_changed(&self, old: &Value, new: &Value) -> bool {
        self.generation_fields
            .iter()
            .any(|p| old.pointer(p) != new.pointer(p))
    }
}

/// All served kinds, looked up by group/version and resource or kind.
pub struct Catalogue {
    kinds: Vec<ResourceKind>,
}

impl Catalogue {
    pub fn builtin() -> Catalogue {
        Catalogue {
            kinds: builtin_kinds(),
        }
    }

    pub fn kinds(&self) -> &[ResourceKind] {
        &self.kinds
    }

    pub fn by_resource(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceKind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
    }

    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<&ResourceKind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.kind == kind)
    }

    /// Groups in the order discovery lists them (core first), each with its versions.
    pub fn groups(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
        for k in &self.kinds {
            match out.iter_mut().find(|(g, _)| *g == k.group) {
                Some((_, vs)) => {
                    if !vs.contains(&k.version) {
                        vs.push(k.version)
                    }
                }
                None => out.push((k.group, vec![k.version])),
            }
        }
        out
    }

    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<&ResourceKind> {
        self.kinds
            .iter()
            .filter(|k| k.group == group && k.version == version)
            .collect()
    }
}
