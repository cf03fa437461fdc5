//! Pruning of unknown fields and structural defaulting, as upstream's pruning/,
//! defaulting/ and objectmeta/ packages do them.

use serde_json::Value;

use crate::node::{Additional, Node};

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// The JSON fields of metav1.ObjectMeta (what survives the round trip through the type).
const OBJECT_META_FIELDS: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_owned()
    } else {
        format!("{path}.{k}")
    }
}

/// Prunes the object at the resource root; returns the pruned paths sorted, as upstream
/// reports them for fieldValidation.
pub(crate) fn prune_root(root: &Node, obj: &mut Value) -> Vec<String> {
    let mut out = vec![];
    prune_meta(obj, "", &mut out);
    prune(obj, Some(root), true, "", &mut out);
    prune_nulls(obj, Some(root));
    out.sort();
    out
}

/// Drops fields of `metadata` that ObjectMeta does not have (upstream decodes metadata into
/// the Go type and writes it back).
fn prune_meta(obj: &mut Value, path: &str, out: &mut Vec<String>) {
    let Some(Value::Object(meta)) = obj.get_mut("metadata") else {
        return;
    };
    let mp = join(path, "metadata");
    meta.retain(|k, _| {
        let keep = OBJECT_META_FIELDS.contains(&k.as_str());
        if !keep {
            out.push(join(&mp, k));
        }
        keep
    });
}

fn prune(x: &mut Value, s: Option<&Node>, root: bool, path: &str, out: &mut Vec<String>) {
    if let Some(s) = s {
        if s.preserve_unknown {
            skip_prune(x, s, root, path, out);
            return;
        }
    }
    match x {
        Value::Object(m) => {
            let Some(s) = s else {
                for k in m.keys() {
                    out.push(join(path, k));
                }
                m.clear();
                return;
            };
            let embedded = root || s.embedded;
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                let sub = join(path, &k);
                if let Some(p) = s.prop(&k) {
                    prune(m.get_mut(&k).expect("key"), Some(p), false, &sub, out);
                } else if let Some(a) = &s.additional {
                    let a = match a {
                        Additional::Schema(a) => Some(a.as_ref()),
                        Additional::Bool(_) => None,
                    };
                    prune(m.get_mut(&k).expect("key"), a, false, &sub, out);
                } else {
                    if !META_FIELDS.contains(&k.as_str()) || !path.is_empty() {
                        out.push(sub);
                    }
                    m.remove(&k);
                }
            }
            if s.embedded && !root {
                prune_meta(x, path, out);
            }
        }
        Value::Array(a) => {
            let items = s.and_then(|s| s.items.as_deref());
            for (i, v) in a.iter_mut().enumerate() {
                prune(v, items, false, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Below x-kubernetes-preserve-unknown-fields: unknown fields stay, known ones are pruned
/// by their schemas.
fn skip_prune(x: &mut Value, s: &Node, root: bool, path: &str, out: &mut Vec<String>) {
    match x {
        Value::Object(m) => {
            let embedded = root || s.embedded;
            for (k, v) in m.iter_mut() {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                let sub = join(path, k);
                if let Some(p) = s.prop(k) {
                    prune(v, Some(p), false, &sub, out);
                } else if let Some(a) = &s.additional {
                    let a = match a {
                        Additional::Schema(a) => Some(a.as_ref()),
                        Additional::Bool(_) => None,
                    };
                    prune(v, a, false, &sub, out);
                }
            }
            if s.embedded && !root {
                prune_meta(x, path, out);
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.items.as_deref() {
                for (i, v) in a.iter_mut().enumerate() {
                    skip_prune(v, items, false, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Upstream's PruneNonNullableNullsWithoutDefaults: nulls where the schema is neither
/// nullable nor defaulted are dropped (nulls with a default are left for defaulting).
fn prune_nulls(x: &mut Value, s: Option<&Node>) {
    match x {
        Value::Object(m) => {
            m.retain(|k, v| {
                let sub = s.and_then(|s| s.field(k));
                !(v.is_null() && sub.is_some_and(|s| !s.nullable && s.default.is_none()))
            });
            for (k, v) in m.iter_mut() {
                prune_nulls(v, s.and_then(|s| s.field(k)));
            }
        }
        Value::Array(a) => {
            let items = s.and_then(|s| s.items.as_deref());
            for v in a {
                prune_nulls(v, items);
            }
        }
        _ => {}
    }
}

/// Upstream's structural defaulting: missing fields and non-nullable nulls get the
/// property's default; recursion then continues into the (possibly defaulted) values.
pub(crate) fn default(x: &mut Value, s: &Node) {
    match x {
        Value::Object(m) => {
            for (k, p) in &s.properties {
                let Some(d) = &p.default else { continue };
                let replace = match m.get(k) {
                    None => true,
                    Some(Value::Null) => !p.nullable,
                    Some(_) => false,
                };
                if replace {
                    m.insert(k.clone(), d.clone());
                }
            }
            for (k, v) in m.iter_mut() {
                if let Some(p) = s.prop(k) {
                    default(v, p);
                } else if let Some(a) = s.additional_schema() {
                    if v.is_null() && !a.nullable {
                        if let Some(d) = &a.default {
                            *v = d.clone();
                        }
                    }
                    default(v, a);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.items.as_deref() {
                for v in a {
                    if v.is_null() && !items.nullable {
                        if let Some(d) = &items.default {
                            *v = d.clone();
                        }
                    }
                    default(v, items);
                }
            }
        }
        _ => {}
    }
}

/// Prunes a default value against its own schema, as the CRD check "must not have unknown
/// fields" does (upstream's pruning.Prune with isResourceRoot = x-kubernetes-embedded-resource).
pub(crate) fn prune_default(v: &mut Value, s: &Node) {
    let mut sink = vec![];
    prune(v, Some(s), s.embedded, "", &mut sink);
}
