//! The catalogue of kinds reddwarf serves: group/version/kind ↔ resource, scope, names,
//! subresources, selectable fields, table columns and defaulting. The generic REST machinery
//! in the apiserver serves whatever is listed here; adding a kind is one entry in
//! [`builtin`].

mod builtin;
mod columns;
pub mod custom;
mod defaults;
mod duration;
mod jsonpath;
mod labels;
pub mod strategy;
pub mod validation;

pub use builtin::builtin_kinds;
pub use builtin::{core_event_to_events_v1, events_v1_to_core_event};
pub use columns::parse_rfc3339;
pub use columns::{Column, TableRow};
pub use duration::human_duration;
pub use jsonpath::field_value;
pub use labels::{label_selector_string, label_set_string};
pub use strategy::{Basic, Claims, DefaultGcPolicy, Requester, ScalePaths, Strategy, StrategyRef};

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
    /// API group (empty for the core group).
    pub group: &'static str,
    /// API version within the group (`v1`, `v1beta1`, ...).
    pub version: &'static str,
    /// The kind name objects carry in `kind` (`Pod`, `Deployment`, ...).
    pub kind: &'static str,
    /// The URL segment (plural, lower case).
    pub plural: &'static str,
    /// The singular lower-case name discovery reports (`kubectl get pod`).
    pub singular: &'static str,
    /// Whether objects live in a namespace (false: cluster-scoped).
    pub namespaced: bool,
    /// Abbreviations discovery advertises for kubectl (`po`, `deploy`, ...).
    pub short_names: &'static [&'static str],
    /// Discovery categories the resource belongs to (`all`, ...), for `kubectl get <category>`.
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
    /// Fields beyond metadata.name/metadata.namespace that field selectors accept. For a
    /// kind with a [`StorageAlias`] the paths read the storage form (selectors are tested on
    /// stored objects, as upstream tests them on the internal type).
    pub selectable_fields: &'static [SelectableField],
    /// Table columns (`kubectl get`), upstream's printer or the default NAME/CREATED AT.
    pub columns: fn() -> Vec<Column>,
    /// Table cells for one object, matching `columns`.
    pub row: fn(&Value, i64) -> Vec<Value>,
    /// The kind's rules for the generic registry: defaults, validation, what create and
    /// update reset, claims, deletion (see [`Strategy`]).
    pub strategy: StrategyRef,
    /// Where the kind's objects come from: the store, or a handler of its own.
    pub backend: Backend,
    /// Which rule object names of this kind follow.
    pub name_rule: NameRule,
    /// Whether a PUT of a missing object creates it (upstream's `AllowCreateOnUpdate`).
    pub create_on_update: bool,
    /// Fields upstream always serializes (Go non-pointer structs and counters without
    /// `omitempty`), as JSON filled into objects where absent: e.g. a new Deployment's
    /// `{"status":{}}`. Empty when there are none.
    pub always_emitted: &'static str,
    /// Subresources beyond `status` and `scale` (pods' `ephemeralcontainers`, the proxies,
    /// CSRs' `approval`, ...).
    pub extra_subresources: &'static [Subresource],
    /// Another kind's collection this one is served from (events.k8s.io Events live with
    /// core/v1 Events, as upstream stores both in one registry); `None` for most kinds.
    pub storage: Option<StorageAlias>,
}

/// What serves a kind's requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The generic registry over the store (every kind with objects).
    Store,
    /// `componentstatuses`: computed per request from this process's health, never stored.
    ComponentStatuses,
    /// `bindings`: a create assigns a pod to a node and stores nothing of its own.
    Binding,
    /// The authentication and authorization reviews: a create answers a question about
    /// who a request is or what it may do, and stores nothing.
    Review,
}

/// Where an aliased kind is stored, and how its objects convert to and from that form.
/// Both conversions keep `metadata` as it is (managedFields entries keep their apiVersion).
#[derive(Clone, Copy)]
pub struct StorageAlias {
    /// The group of the kind whose collection stores these objects.
    pub group: &'static str,
    /// That kind's version (the stored form's apiVersion).
    pub version: &'static str,
    /// That kind's resource (plural), naming the stored collection.
    pub plural: &'static str,
    /// This kind's form to the storage form (apiVersion and kind included).
    pub to_storage: Convert,
    /// The storage form to this kind's form.
    pub from_storage: Convert,
}

/// One direction of a conversion between versions.
#[derive(Clone, Copy)]
pub enum Convert {
    /// A conversion function (built-in kinds whose versions differ in shape).
    Fn(fn(&Value) -> Value),
    /// Only `apiVersion` changes, to this value (custom resources, conversion strategy None).
    ApiVersion(&'static str),
}

impl Convert {
    /// `v` converted.
    pub fn apply(&self, v: &Value) -> Value {
        match self {
            Convert::Fn(f) => f(v),
            Convert::ApiVersion(av) => {
                let mut out = v.clone();
                if let Some(m) = out.as_object_mut() {
                    m.insert("apiVersion".into(), Value::String((*av).to_string()));
                }
                out
            }
        }
    }
}

/// A subresource beyond `status` and `scale`: its name, what it answers with, its verbs and
/// what a write through it may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subresource {
    /// The URL segment after the object's name (`binding`, `proxy`, `approval`, ...).
    pub name: &'static str,
    /// The (group, kind) of its response (version v1), when it is not the parent's.
    pub response: Option<(&'static str, &'static str)>,
    /// The verbs served on the subresource (discovery lists them).
    pub verbs: &'static [&'static str],
    /// How the subresource is served.
    pub role: SubresourceRole,
}

/// What a subresource does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubresourceRole {
    /// Reads the parent; a write changes only one part of it (upstream's per-subresource
    /// strategies): the JSON pointer of that part.
    Part(&'static str),
    /// Proxies HTTP to a node, pod or service (served through the node agents' tunnel).
    Proxy,
    /// Served by a handler of its own (pods' binding, eviction, log, exec, attach,
    /// portforward).
    Handler,
}

/// The verbs upstream's proxy subresources serve.
pub const PROXY_VERBS: &[&str] = &["create", "delete", "get", "patch", "update"];

/// A field a field selector may name: the selector's name, the dotted JSON path it reads,
/// and the text it compares when the field is absent. Upstream renders the Go value
/// (`fmt.Sprint(node.Spec.Unschedulable)`, `strconv.Itoa(job.Status.Succeeded)`), so an
/// absent bool is `false` and an absent counter `0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectableField {
    /// The name a field selector uses (`spec.nodeName`).
    pub name: &'static str,
    /// The dotted JSON path read from the object.
    pub path: &'static str,
    /// The text compared when the path is absent (Go's zero value as printed).
    pub zero: &'static str,
}

impl SelectableField {
    /// The value a field selector compares for `obj`.
    pub fn value(&self, obj: &Value) -> String {
        match jsonpath::field_value_opt(obj, self.path) {
            Some(v) => v,
            None => self.zero.to_string(),
        }
    }
}

/// A string field (absent: the empty string).
pub const fn field(name: &'static str, path: &'static str) -> SelectableField {
    SelectableField {
        name,
        path,
        zero: "",
    }
}

/// A Go `bool` field (absent: `false`).
pub const fn bool_field(name: &'static str, path: &'static str) -> SelectableField {
    SelectableField {
        name,
        path,
        zero: "false",
    }
}

/// A Go integer field (absent: `0`).
pub const fn int_field(name: &'static str, path: &'static str) -> SelectableField {
    SelectableField {
        name,
        path,
        zero: "0",
    }
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
    /// Only a valid path segment (not `.` or `..`, no `/` or `%`): RBAC kinds, and kinds whose
    /// own validation checks no name (core Events, PodDisruptionBudgets, CSRs).
    PathSegment,
    /// An IP address in canonical form: IPAddress objects.
    IpAddress,
}

impl ResourceKind {
    /// The `apiVersion` objects of this kind carry: `group/version`, or just `version` for
    /// the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The group whose collection holds this kind's objects.
    pub fn storage_group(&self) -> &'static str {
        self.storage.map_or(self.group, |s| s.group)
    }

    /// The resource whose collection holds this kind's objects.
    pub fn storage_plural(&self) -> &'static str {
        self.storage.map_or(self.plural, |s| s.plural)
    }

    /// The kind of a list of these objects (`PodList`).
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether a stored object must be decoded to be served (converted from another
    /// version's form, or defaulted on read); otherwise its bytes are served as they are.
    pub fn converts_on_read(&self) -> bool {
        self.storage.is_some() || self.strategy.defaults_on_read()
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
        v.extend(self.extra_subresources.iter().map(|s| s.name));
        v
    }

    /// Upstream defaulting, then the fields Go always emits.
    pub fn apply_defaults(&self, obj: &mut Value) {
        self.strategy.defaults(obj);
        self.fill_always_emitted(obj);
    }

    /// Fills in [`Self::always_emitted`] where absent (or null); never overwrites a value.
    pub fn fill_always_emitted(&self, obj: &mut Value) {
        fn fill(obj: &mut serde_json::Map<String, Value>, zero: &serde_json::Map<String, Value>) {
            for (k, z) in zero {
                match (obj.get_mut(k), z) {
                    (Some(Value::Object(o)), Value::Object(zm)) => fill(o, zm),
                    (Some(v), _) if !v.is_null() => {}
                    _ => {
                        obj.insert(k.clone(), z.clone());
                    }
                }
            }
        }
        if self.always_emitted.is_empty() {
            return;
        }
        if let (Some(o), Ok(Value::Object(z))) = (
            obj.as_object_mut(),
            serde_json::from_str::<Value>(self.always_emitted),
        ) {
            fill(o, &z);
        }
    }

    /// One of [`Self::extra_subresources`] by name.
    pub fn extra_subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.extra_subresources.iter().find(|s| s.name == name)
    }

    /// The verbs this resource serves, as discovery lists them.
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
        self.strategy.generation_changed(self, old, new)
    }
}

/// All served kinds, looked up by group/version and resource or kind.
pub struct Catalogue {
    kinds: Vec<ResourceKind>,
}

impl Catalogue {
    /// The catalogue of every built-in kind ([`builtin_kinds`]).
    pub fn builtin() -> Catalogue {
        Catalogue {
            kinds: builtin_kinds(),
        }
    }

    /// The built-in kinds followed by `custom` ones (served custom resources), which never
    /// shadow a built-in: a custom kind at a built-in's group/version/resource is left out.
    pub fn with_custom(custom: impl IntoIterator<Item = ResourceKind>) -> Catalogue {
        let mut c = Catalogue::builtin();
        for k in custom {
            if c.by_resource(k.group, k.version, k.plural).is_none() {
                c.kinds.push(k);
            }
        }
        c
    }

    /// Every served kind, in catalogue order.
    pub fn kinds(&self) -> &[ResourceKind] {
        &self.kinds
    }

    /// The kind served at `group/version/plural` (the URL form), if any.
    pub fn by_resource(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceKind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
    }

    /// The kind named `kind` in `group/version` (the object form), if any.
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

    /// The kinds of one group/version, in catalogue order (its discovery document).
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<&ResourceKind> {
        self.kinds
            .iter()
            .filter(|k| k.group == group && k.version == version)
            .collect()
    }
}
