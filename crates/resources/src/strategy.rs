//! What one kind contributes to the generic registry (upstream's `rest.RESTCreateStrategy`,
//! `RESTUpdateStrategy`, `RESTDeleteStrategy` and `GarbageCollectionDeleteStrategy`): the
//! API server's one create, update and delete path calls these hooks and never names a kind.
//!
//! Everything here works on JSON values and knows nothing of HTTP or storage, so a custom
//! resource can implement it from its schema. Most built-in kinds use [`Basic`] (defaults and
//! validation functions); kinds with more to say have a strategy of their own next to their
//! catalogue entry.

use std::ops::Deref;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::columns::Column;
use crate::validation::FieldError;
use crate::{ResourceKind, SubresourceRole};

/// The strategy a catalogue entry holds: a static one (built-in kinds, usable in `const`
/// entries) or a shared one built at run time (a custom resource's, from its schema).
#[derive(Clone)]
pub enum StrategyRef {
    /// A strategy that lives for the whole program (built-in kinds).
    Static(&'static dyn Strategy),
    /// A strategy built at run time (a custom resource's), shared between clones of the entry.
    Shared(Arc<dyn Strategy>),
}

impl Deref for StrategyRef {
    type Target = dyn Strategy;

    fn deref(&self) -> &Self::Target {
        match self {
            StrategyRef::Static(s) => *s,
            StrategyRef::Shared(s) => s.as_ref(),
        }
    }
}

/// Who sent a request, for strategies that record it (a CSR's requester).
pub struct Requester<'a> {
    /// The authenticated user name.
    pub name: &'a str,
    /// The groups the user belongs to.
    pub groups: &'a [String],
}

/// Values an object must hold exclusively across the cluster, taken in the same step as its
/// write (claims): the registry allocates and releases them through the allocator it has for
/// each variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claims {
    /// Nothing exclusive.
    None,
    /// Service cluster IPs and node ports.
    ServiceAddresses,
}

/// The propagation policy a DELETE without one gets, and the warning upstream sends then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultGcPolicy {
    /// The propagation policy applied (`Orphan`, ...).
    pub policy: &'static str,
    /// The warning header text sent with such a DELETE.
    pub warning: &'static str,
}

/// Where a kind's `/scale` reads and writes (JSON pointers into the object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    /// The desired replicas (`specReplicasPath`).
    pub spec_replicas: String,
    /// The observed replicas (`statusReplicasPath`).
    pub status_replicas: String,
    /// The label selector string (`labelSelectorPath`), when the definition names one.
    pub label_selector: Option<String>,
}

impl Default for ScalePaths {
    fn default() -> Self {
        ScalePaths {
            spec_replicas: "/spec/replicas".into(),
            status_replicas: "/status/replicas".into(),
            label_selector: None,
        }
    }
}

/// A kind's rules for the generic registry. Every method has the behaviour of a kind that
/// says nothing special.
pub trait Strategy: Send + Sync {
    /// Upstream defaulting (`SetDefaults_*`), on create and update; fills only what is absent.
    fn defaults(&self, _obj: &mut Value) {}

    /// Spec validation of a new object (`old` None) or of an update from `old`. Metadata is
    /// validated by the registry for every kind.
    fn validate(&self, _obj: &Value, _old: Option<&Value>, _errs: &mut Vec<FieldError>) {}

    /// The rules of the part a subresource writes (`Part(pointer)`), beyond the parent's.
    fn validate_part(
        &self,
        _pointer: &str,
        _obj: &Value,
        _old: &Value,
        _errs: &mut Vec<FieldError>,
    ) {
    }

    /// `PrepareForCreate`, after the registry reset the server-owned metadata: fields a
    /// kind sets or clears on create.
    fn prepare_for_create(&self, _obj: &mut Value, _requester: &Requester<'_>) {}

    /// `PrepareForUpdate`: the object to store when a client wrote `new` over `old`
    /// through `sub` (None: the object itself). The default keeps what the endpoint may not
    /// change ([`reset_for_update`]).
    fn prepare_for_update(
        &self,
        kind: &ResourceKind,
        new: Value,
        old: &Value,
        sub: Option<&str>,
    ) -> Value {
        reset_for_update(kind, new, old, sub)
    }

    /// Exclusive values this kind's objects hold.
    fn claims(&self) -> Claims {
        Claims::None
    }

    /// The propagation policy when a DELETE names none (None: Background).
    fn default_gc_policy(&self) -> Option<DefaultGcPolicy> {
        None
    }

    /// The grace period a DELETE gives `obj` (`requested` from DeleteOptions); 0 deletes at
    /// once (or when its finalizers are gone).
    fn grace_period(&self, _obj: &Value, _requested: Option<i64>) -> i64 {
        0
    }

    /// Whether `obj` still waits for finalization beyond `metadata.finalizers`
    /// (namespaces' `spec.finalizers`).
    fn finalizing(&self, _obj: &Value) -> bool {
        false
    }

    /// Changes made to an object when its deletion starts, beyond the deletion timestamp.
    fn begin_delete(&self, _obj: &mut Value) {}

    /// Table columns (`kubectl get`): the entry's printer columns unless the strategy has
    /// its own (a custom resource's `additionalPrinterColumns`).
    fn columns(&self, kind: &ResourceKind) -> Vec<Column> {
        (kind.columns)()
    }

    /// The table cells of one object, matching [`Strategy::columns`].
    fn row(&self, kind: &ResourceKind, obj: &Value, now: i64) -> Vec<Value> {
        (kind.row)(obj, now)
    }

    /// The selector a `/scale` reports, as the label-selector string upstream prints.
    fn scale_selector(&self, obj: &Value) -> String {
        obj.pointer("/spec/selector")
            .map(crate::label_selector_string)
            .unwrap_or_default()
    }

    /// Where `/scale` reads and writes replicas.
    fn scale_paths(&self) -> ScalePaths {
        ScalePaths::default()
    }

    /// Removes the fields a schema-driven kind (a custom resource) does not know and returns
    /// their paths; `None` for kinds whose unknown fields the decoder's built-in schemas find.
    fn prune(&self, _obj: &mut Value) -> Option<Vec<String>> {
        None
    }

    /// Whether stored objects get [`Strategy::defaults`] when read (a custom resource whose
    /// schema has defaults: objects stored before a default was added show it, as upstream
    /// defaults what it reads from storage).
    fn defaults_on_read(&self) -> bool {
        false
    }

    /// A `Warning` every request to this kind carries (a deprecated custom resource version).
    fn deprecation(&self) -> Option<&str> {
        None
    }

    /// Why creating objects of this kind is refused right now (a custom resource whose
    /// definition is being deleted); None when creates are served.
    fn create_refused(&self) -> Option<&str> {
        None
    }

    /// Why this kind cannot be served at all right now (a custom resource version that needs
    /// a conversion webhook); None when it can.
    fn unavailable(&self) -> Option<&str> {
        None
    }

    /// The kind's OpenAPI v3 schema when it comes from a definition (a custom resource's
    /// `openAPIV3Schema`); built-ins publish their compiled-in types.
    fn openapi_schema(&self) -> Option<&Value> {
        None
    }

    /// A digest of [`Strategy::openapi_schema`], computed once: caches of what is derived from
    /// the schema (merge metadata, OpenAPI documents) key on it instead of the schema's text.
    fn schema_digest(&self) -> u64 {
        0
    }

    /// Whether an update from `old` to `new` bumps `metadata.generation`.
    fn generation_changed(&self, kind: &ResourceKind, old: &Value, new: &Value) -> bool {
        kind.generation_fields
            .iter()
            .any(|p| old.pointer(p) != new.pointer(p))
    }
}

/// Defaults from a function.
pub type DefaultsFn = fn(&mut Value);
/// Validation from a function: the object, the old object on update, the errors found.
pub type ValidateFn = fn(&Value, Option<&Value>, &mut Vec<FieldError>);

/// The strategy of a kind whose only rules are its defaults and its validation.
pub struct Basic {
    /// Called as [`Strategy::defaults`].
    pub defaults: DefaultsFn,
    /// Called as [`Strategy::validate`].
    pub validate: ValidateFn,
}

fn no_defaults(_: &mut Value) {}
fn no_validation(_: &Value, _: Option<&Value>, _: &mut Vec<FieldError>) {}

impl Basic {
    /// No defaults, no validation beyond metadata.
    pub const NONE: Basic = Basic {
        defaults: no_defaults,
        validate: no_validation,
    };

    /// A kind with defaults and no spec validation.
    pub const fn defaults(defaults: DefaultsFn) -> Basic {
        Basic {
            defaults,
            validate: no_validation,
        }
    }

    /// A kind with spec validation and no defaults.
    pub const fn validated(validate: ValidateFn) -> Basic {
        Basic {
            defaults: no_defaults,
            validate,
        }
    }
}

impl Strategy for Basic {
    fn defaults(&self, obj: &mut Value) {
        (self.defaults)(obj)
    }

    fn validate(&self, obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
        (self.validate)(obj, old, errs)
    }
}

/// Upstream's per-endpoint update strategies: a write through `/status` changes only
/// status; through a part subresource (`ephemeralcontainers`, `resize`, `approval`...) only
/// that part; to the object itself everything but a status that has its own endpoint.
pub fn reset_for_update(kind: &ResourceKind, new: Value, old: &Value, sub: Option<&str>) -> Value {
    let keep_rv = |from: &Value, into: &mut Value| {
        if let Some(rv) = from.pointer("/metadata/resourceVersion").cloned() {
            if let Some(m) = into.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("resourceVersion".into(), rv);
            }
        }
    };
    match sub {
        Some("status") => {
            let mut merged = old.clone();
            match new.get("status") {
                Some(s) => merged["status"] = s.clone(),
                None => {
                    merged.as_object_mut().map(|m| m.remove("status"));
                }
            }
            keep_rv(&new, &mut merged);
            merged
        }
        Some(part) => match kind.extra_subresource(part).map(|s| s.role) {
            Some(SubresourceRole::Part(pointer)) => {
                let mut merged = old.clone();
                copy_part(pointer, &new, &mut merged);
                keep_rv(&new, &mut merged);
                merged
            }
            _ => new,
        },
        None => {
            let mut new = new;
            if kind.status {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        new.as_object_mut().map(|m| m.remove("status"));
                    }
                }
            }
            new
        }
    }
}

/// Copies the part at `pointer` from `from` into `to`. Containers (pods' `resize`) carry only
/// their resources and resize policy over, matched by name.
pub fn copy_part(pointer: &str, from: &Value, to: &mut Value) {
    if pointer == "/spec/containers" {
        let Some(Value::Array(old)) = to.pointer_mut(pointer) else {
            return;
        };
        let new = from.pointer(pointer).and_then(Value::as_array);
        for c in old.iter_mut() {
            let name = c.get("name").cloned();
            let n = new.and_then(|n| n.iter().find(|x| x.get("name") == name.as_ref()));
            for f in ["resources", "resizePolicy"] {
                match n.and_then(|n| n.get(f)) {
                    Some(v) => c[f] = v.clone(),
                    None => {
                        c.as_object_mut().map(|m| m.remove(f));
                    }
                }
            }
        }
        return;
    }
    let (parent, field) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    let value = from.pointer(pointer).cloned();
    let mut cur = &mut *to;
    for seg in parent.split('/').filter(|s| !s.is_empty()) {
        if !cur.get(seg).is_some_and(Value::is_object) {
            if value.is_none() {
                return;
            }
            cur[seg] = json!({});
        }
        cur = &mut cur[seg];
    }
    match value {
        Some(v) => cur[field] = v,
        None => {
            cur.as_object_mut().map(|m| m.remove(field));
        }
    }
}

/// The object's metadata map, created when absent.
pub(crate) fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("just inserted an object"),
    }
}
