//! The structural-schema engine for CustomResourceDefinitions: pruning, defaulting and
//! validation of custom resources against a version's `openAPIV3Schema`, and validation of
//! that schema itself, with upstream's (Kubernetes 1.33) rules, order and messages.
//!
//! Differences from upstream worth knowing:
//! - `pattern` is compiled with the `regex` crate. Like Go's `regexp` it is RE2 syntax (no
//!   backreferences or lookaround); `\d`, `\w`, `\s`, `\b` are rewritten to their ASCII
//!   meaning as in Go. Other Unicode class details may differ.
//! - Where upstream iterates a Go map (schema properties, object keys) the order is random
//!   there; here it is sorted by name, so results are stable.
//! - Embedded resources' `metadata` is checked for `name`/`generateName` path-segment rules
//!   and its type only; the rest of ObjectMeta validation (labels, annotations, ...) is the
//!   API server's, as is validation of the root object's metadata.

mod crd;
mod formats;
mod gofmt;
mod node;
mod prune;
mod validate;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use crd::validate_crd_schema;
/// Go's `strconv.Quote` (what `%q` prints), for messages that embed strings as upstream's.
pub use gofmt::quote as go_quote;
/// `IsDNS1035Label`: upstream's messages for a value that is not a DNS-1035 label.
pub use validate::dns1035_label;

/// One field error, as upstream's field.Error renders in a 422 Status cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The metav1 CauseType, e.g. "FieldValueInvalid", "FieldValueRequired".
    pub reason: &'static str,
    /// The field path, e.g. "spec.replicas" or "spec.items[2].name" ("<nil>" where upstream
    /// reports against a nil path).
    pub field: String,
    /// The text after "<field>: ", e.g. "Required value".
    pub message: String,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The x-kubernetes-validations (CEL) engine, plugged into [`Schema::validate`].
pub trait RuleHook {
    /// Called at a schema node that has `x-kubernetes-validations`, for a non-null value.
    /// `path` is the node's field path (field.Path rendering: `spec.map[key].list[0]`, ""
    /// at the root), `rules` the rules array, `schema` the node's raw schema, `old` the
    /// correlated old value (objects by property, map lists by key; None on create or when
    /// not correlatable). Errors go to `causes`.
    fn check(
        &mut self,
        path: &str,
        rules: &Value,
        schema: &Value,
        value: &Value,
        old: Option<&Value>,
        causes: &mut Vec<Cause>,
    );
}

/// A [`RuleHook`] that checks nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRules;

impl RuleHook for NoRules {
    fn check(
        &mut self,
        _: &str,
        _: &Value,
        _: &Value,
        _: &Value,
        _: Option<&Value>,
        _: &mut Vec<Cause>,
    ) {
    }
}

/// A compiled structural schema (an openAPIV3Schema, i.e. JSONSchemaProps).
#[derive(Debug, Clone)]
pub struct Schema {
    root: node::Node,
}

/// A view of one node of a [`Schema`].
#[derive(Debug, Clone, Copy)]
pub struct SchemaNode<'a>(&'a node::Node);

impl<'a> SchemaNode<'a> {
    /// The node's JSON as given.
    pub fn raw(&self) -> &'a Value {
        &self.0.raw
    }
    /// `type` ("" when unset).
    pub fn type_(&self) -> &'a str {
        &self.0.ty
    }
    /// `format`, as validation uses it (formats upstream does not support are "").
    pub fn format(&self) -> &'a str {
        &self.0.format
    }
    /// `nullable`.
    pub fn nullable(&self) -> bool {
        self.0.nullable
    }
    /// `default`.
    pub fn default(&self) -> Option<&'a Value> {
        self.0.default.as_ref()
    }
    /// The schema of property `name`.
    pub fn property(&self, name: &str) -> Option<SchemaNode<'a>> {
        self.0.prop(name).map(SchemaNode)
    }
    /// Property names, sorted.
    pub fn property_names(&self) -> impl Iterator<Item = &'a str> {
        self.0.properties.iter().map(|(k, _)| k.as_str())
    }
    /// The `additionalProperties` schema, when it is a schema.
    pub fn additional_properties(&self) -> Option<SchemaNode<'a>> {
        self.0.additional_schema().map(SchemaNode)
    }
    /// The `items` schema.
    pub fn items(&self) -> Option<SchemaNode<'a>> {
        self.0.items.as_deref().map(SchemaNode)
    }
    /// `x-kubernetes-list-type`.
    pub fn list_type(&self) -> Option<&'a str> {
        self.0.list_type.as_deref()
    }
    /// `x-kubernetes-list-map-keys`.
    pub fn list_map_keys(&self) -> &'a [String] {
        &self.0.list_map_keys
    }
    /// `x-kubernetes-map-type`.
    pub fn map_type(&self) -> Option<&'a str> {
        self.0.map_type.as_deref()
    }
    /// `x-kubernetes-preserve-unknown-fields`.
    pub fn preserves_unknown_fields(&self) -> bool {
        self.0.preserve_unknown
    }
    /// `x-kubernetes-embedded-resource`.
    pub fn embedded_resource(&self) -> bool {
        self.0.embedded
    }
    /// `x-kubernetes-int-or-string`.
    pub fn int_or_string(&self) -> bool {
        self.0.int_or_string
    }
    /// `x-kubernetes-validations`.
    pub fn validations(&self) -> Option<&'a Value> {
        self.0.validations.as_ref()
    }
}

impl Schema {
    /// Compiles an openAPIV3Schema. Lenient: keywords of the wrong JSON type are ignored
    /// (use [`validate_crd_schema`] to reject them); only a non-object node is an error.
    pub fn parse(v: &Value) -> Result<Schema, String> {
        Ok(Schema {
            root: node::Node::parse(v)?,
        })
    }

    /// The raw schema JSON.
    pub fn raw(&self) -> &Value {
        &self.root.raw
    }

    /// The root node.
    pub fn root(&self) -> SchemaNode<'_> {
        SchemaNode(&self.root)
    }

    /// The node at a JSON path such as `.spec.replicas`, `spec.items[*].name` or
    /// `.status.conditions[0]` (printer columns, scale paths): properties first, then
    /// `additionalProperties`; any `[...]` steps into `items`.
    pub fn node_at(&self, path: &str) -> Option<SchemaNode<'_>> {
        let mut n = &self.root;
        let path = path.strip_prefix('.').unwrap_or(path);
        if path.is_empty() {
            return Some(SchemaNode(n));
        }
        for seg in path.split('.') {
            let (name, rest) = match seg.find('[') {
                Some(i) => (&seg[..i], &seg[i..]),
                None => (seg, ""),
            };
            if !name.is_empty() {
                n = n.field(name)?;
            }
            for _ in rest.matches('[') {
                n = n.items.as_deref()?;
            }
        }
        Some(SchemaNode(n))
    }

    /// Removes fields the schema does not know (except under
    /// x-kubernetes-preserve-unknown-fields). At the root and in embedded resources
    /// apiVersion/kind/metadata are kept and metadata is cut to ObjectMeta's fields; nulls
    /// in non-nullable fields without a default are dropped. Returns the pruned paths
    /// sorted, as upstream reports `unknown field "spec.foo"`.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        prune::prune_root(&self.root, obj)
    }

    /// Applies `default`s, nested and recursively, replacing nulls in non-nullable fields
    /// that have a default.
    pub fn apply_defaults(&self, obj: &mut Value) {
        prune::default(obj, &self.root)
    }

    /// Validates `obj` (with `old`, the stored object, on update: errors on values equal to
    /// their correlated old value are dropped, as upstream's ratcheting does). Causes come
    /// in upstream's order: schema validation, embedded resources' type/object meta,
    /// list-type set/map uniqueness, then the rules hook — which is skipped, with upstream's
    /// "some validation rules were not checked" cause, after blocking errors.
    pub fn validate(
        &self,
        obj: &Value,
        old: Option<&Value>,
        rules: &mut dyn RuleHook,
    ) -> Vec<Cause> {
        let res = validate::node(&self.root, "", obj, old);
        let mut causes = validate::to_causes(res.errs, None);
        validate::embedded_meta(&self.root, "", obj, true, &mut causes);
        // Ratcheting of list uniqueness is all or nothing: skipped when the old object
        // already broke it.
        let old_ok = old.is_none_or(|o| {
            let mut v = vec![];
            validate::list_sets(&self.root, "", o, &mut v);
            v.is_empty()
        });
        if old_ok {
            validate::list_sets(&self.root, "", obj, &mut causes);
        }
        if validate::has_rules(&self.root) {
            if validate::blocking(&causes) {
                causes.push(Cause {
                    reason: "FieldValueInvalid",
                    field: "<nil>".into(),
                    message: "Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
                });
            } else {
                validate::run_rules(&self.root, "", obj, old, rules, &mut causes);
            }
        }
        causes
    }
}
