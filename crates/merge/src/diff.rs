//! Computing strategic merge patches (upstream's `CreateTwoWayMergePatch`, as kubectl does):
//! the patch that turns `original` into `modified` when applied with
//! [`strategic_merge`](crate::strategic_merge).

use serde_json::{Map, Value};

use crate::error::{join, MergeError};
use crate::schema::{Node, Schema, TypeRef};
use crate::value::{json_eq, type_name};

/// The strategic merge patch from `original` to `modified` (two objects of the root type):
/// changed fields, `null` for removed ones, merging lists as additions plus
/// `$patch: delete` items (maps) or `$deleteFromPrimitiveList` (primitives), with
/// `$setElementOrder` when order or content changed, and `$retainKeys` for retainKeys fields.
pub fn create_two_way_merge_patch(
    original: &Value,
    modified: &Value,
    schema: &dyn Schema,
    root: Option<&TypeRef>,
) -> Result<Value, MergeError> {
    let empty = Map::new();
    let o = match original {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => return Err(MergeError::bad_request("", "invalid JSON document")),
    };
    let m = match modified {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => return Err(MergeError::bad_request("", "invalid JSON document")),
    };
    let d = Diff { schema };
    Ok(Value::Object(d.diff_maps(
        o,
        m,
        Node::root(root, schema),
        false,
        "",
    )?))
}

struct Diff<'s> {
    schema: &'s dyn Schema,
}

struct Meta<'s> {
    node: Node<'s>,
    strategy: Option<&'s str>,
    retain_keys: bool,
    merge_key: Option<&'s str>,
}

/// A scalar as Go's `%v` prints it (strings bare), which upstream sorts and matches by.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn same_type(a: &Value, b: &Value) -> bool {
    type_name(a) == type_name(b)
}

impl<'s> Diff<'s> {
    fn lookup(&self, node: Node<'s>, key: &str, path: &str) -> Result<Meta<'s>, MergeError> {
        let Node::Struct { ty, .. } = node else {
            return Ok(Meta {
                node: node.child(key, self.schema),
                strategy: None,
                retain_keys: false,
                merge_key: None,
            });
        };
        let Some(meta) = self.schema.field(ty, key) else {
            return Ok(Meta {
                node: Node::Deduced,
                strategy: None,
                retain_keys: false,
                merge_key: None,
            });
        };
        let strategies = meta.strategies();
        let (retain_keys, strategy) = match strategies.as_slice() {
            [] => (false, None),
            ["retainKeys"] => (true, None),
            [s] => (false, Some(*s)),
            ["retainKeys", s] | [s, "retainKeys"] => (true, Some(*s)),
            _ => {
                return Err(MergeError::invalid(
                    &join(path, key),
                    format!("unexpected patch strategy: {strategies:?}"),
                ))
            }
        };
        Ok(Meta {
            node: Node::from_meta(meta, self.schema),
            strategy,
            retain_keys,
            merge_key: meta.patch_merge_key.as_deref(),
        })
    }

    fn diff_maps(
        &self,
        original: &Map<String, Value>,
        modified: &Map<String, Value>,
        node: Node<'s>,
        retain_keys: bool,
        path: &str,
    ) -> Result<Map<String, Value>, MergeError> {
        let mut patch = Map::new();
        let mut retain: Vec<String> = Vec::new();
        for (key, mv) in modified {
            if retain_keys && !mv.is_null() {
                retain.push(key.clone());
            }
            let Some(ov) = original.get(key) else {
                patch.insert(key.clone(), mv.clone());
                continue;
            };
            if key == "$patch" {
                match (ov.as_str(), mv.as_str()) {
                    (Some(a), Some(b)) => {
                        if a != b {
                            patch.insert(key.clone(), mv.clone());
                        }
                        continue;
                    }
                    _ => {
                        return Err(MergeError::bad_request(
                            path,
                            "invalid value for special key: $patch",
                        ))
                    }
                }
            }
            if !same_type(ov, mv) {
                patch.insert(key.clone(), mv.clone());
                continue;
            }
            let field_path = join(path, key);
            match (ov, mv) {
                (Value::Object(o), Value::Object(m)) => {
                    let meta = self.lookup(node, key, path)?;
                    if meta.strategy == Some("replace") {
                        patch.insert(key.clone(), mv.clone());
                    } else {
                        let p = self.diff_maps(o, m, meta.node, meta.retain_keys, &field_path)?;
                        if !p.is_empty() {
                            patch.insert(key.clone(), Value::Object(p));
                        }
                    }
                }
                (Value::Array(o), Value::Array(m)) => {
                    let meta = self.lookup(node, key, path)?;
                    if meta.strategy == Some("merge") {
                        let (add, delete, order) = self.diff_lists(
                            o,
                            m,
                            meta.node.elem(self.schema),
                            meta.merge_key,
                            meta.retain_keys,
                            &field_path,
                        )?;
                        if !add.is_empty() {
                            patch.insert(key.clone(), Value::Array(add));
                        }
                        if !delete.is_empty() {
                            patch.insert(
                                format!("$deleteFromPrimitiveList/{key}"),
                                Value::Array(delete),
                            );
                        }
                        if !order.is_empty() {
                            patch.insert(format!("$setElementOrder/{key}"), Value::Array(order));
                        }
                    } else if !json_eq(ov, mv) {
                        patch.insert(key.clone(), mv.clone());
                    }
                }
                _ => {
                    if !json_eq(ov, mv) {
                        patch.insert(key.clone(), mv.clone());
                    }
                }
            }
        }
        for key in original.keys() {
            if !modified.contains_key(key) {
                patch.insert(key.clone(), Value::Null);
            }
        }
        let additional = original
            .iter()
            .any(|(k, v)| !v.is_null() && !modified.contains_key(k));
        if !retain.is_empty() && (!patch.is_empty() || additional) {
            retain.sort();
            patch.insert(
                "$retainKeys".into(),
                Value::Array(retain.into_iter().map(Value::String).collect()),
            );
        }
        Ok(patch)
    }

    /// Returns (patch list, primitive deletion list, `$setElementOrder` list).
    #[allow(clippy::type_complexity)]
    fn diff_lists(
        &self,
        original: &[Value],
        modified: &[Value],
        elem: Node<'s>,
        merge_key: Option<&str>,
        retain_keys: bool,
        path: &str,
    ) -> Result<(Vec<Value>, Vec<Value>, Vec<Value>), MergeError> {
        if original.is_empty() {
            return Ok((modified.to_vec(), Vec::new(), Vec::new()));
        }
        let mut kind: Option<&str> = None;
        for v in original.iter().chain(modified) {
            let t = type_name(v);
            if t == "list" {
                return Err(MergeError::invalid(
                    path,
                    "lists of lists are not supported",
                ));
            }
            match kind {
                None => kind = Some(t),
                Some(k) if k != t => {
                    return Err(MergeError::invalid(
                        path,
                        format!("list element types are not identical: {k} and {t}"),
                    ))
                }
                _ => {}
            }
        }
        if kind == Some("map") {
            let Some(key) = merge_key else {
                return Err(MergeError::invalid(
                    path,
                    "cannot merge lists without merge key",
                ));
            };
            let key_of = |v: &Value| -> Result<Value, MergeError> {
                v.get(key).cloned().ok_or_else(|| {
                    MergeError::invalid(
                        path,
                        format!("map: {v} does not contain declared merge key: {key}"),
                    )
                })
            };
            let mut os: Vec<(String, &Value)> = Vec::with_capacity(original.len());
            for v in original {
                os.push((plain(&key_of(v)?), v));
            }
            let mut ms: Vec<(String, &Value)> = Vec::with_capacity(modified.len());
            for v in modified {
                ms.push((plain(&key_of(v)?), v));
            }
            os.sort_by(|a, b| a.0.cmp(&b.0));
            ms.sort_by(|a, b| a.0.cmp(&b.0));
            let mut patch = Vec::new();
            let mut deletions = Vec::new();
            let (mut i, mut j) = (0, 0);
            while i < os.len() || j < ms.len() {
                let cmp = match (os.get(i), ms.get(j)) {
                    (Some(o), Some(m)) => o.0.cmp(&m.0),
                    (None, _) => std::cmp::Ordering::Greater,
                    (_, None) => std::cmp::Ordering::Less,
                };
                match cmp {
                    std::cmp::Ordering::Equal => {
                        let (o, m) = (os[i].1, ms[j].1);
                        if let (Value::Object(oo), Value::Object(mm)) = (o, m) {
                            let mut p = self.diff_maps(oo, mm, elem, retain_keys, path)?;
                            if !p.is_empty() {
                                p.insert(key.to_string(), key_of(m)?);
                                patch.push(Value::Object(p));
                            }
                        }
                        i += 1;
                        j += 1;
                    }
                    std::cmp::Ordering::Greater => {
                        patch.push(ms[j].1.clone());
                        j += 1;
                    }
                    std::cmp::Ordering::Less => {
                        let mut d = Map::new();
                        d.insert(key.to_string(), key_of(os[i].1)?);
                        d.insert("$patch".into(), Value::String("delete".into()));
                        deletions.push(Value::Object(d));
                        i += 1;
                    }
                }
            }
            // Order the patch items as in the modified list.
            let position = |v: &Value| {
                modified
                    .iter()
                    .position(|m| match (m.get(key), v.get(key)) {
                        (Some(a), Some(b)) => json_eq(a, b),
                        _ => false,
                    })
                    .unwrap_or(usize::MAX)
            };
            patch.sort_by_cached_key(position);
            let order_same = original.len() == modified.len()
                && original
                    .iter()
                    .zip(modified)
                    .all(|(o, m)| match (o.get(key), m.get(key)) {
                        (Some(a), Some(b)) => json_eq(a, b),
                        _ => false,
                    });
            patch.extend(deletions);
            let mut order = Vec::new();
            if !patch.is_empty() || !order_same {
                for m in modified {
                    let mut e = Map::new();
                    e.insert(key.to_string(), m.get(key).cloned().unwrap_or(Value::Null));
                    order.push(Value::Object(e));
                }
            }
            Ok((patch, Vec::new(), order))
        } else {
            let mut os: Vec<&Value> = original.iter().collect();
            let mut ms: Vec<&Value> = modified.iter().collect();
            os.sort_by_key(|v| plain(v));
            ms.sort_by_key(|v| plain(v));
            let mut add = Vec::new();
            let mut delete: Vec<Value> = Vec::new();
            let (mut i, mut j) = (0, 0);
            while i < os.len() || j < ms.len() {
                let cmp = match (os.get(i), ms.get(j)) {
                    (Some(o), Some(m)) => plain(o).cmp(&plain(m)),
                    (None, _) => std::cmp::Ordering::Greater,
                    (_, None) => std::cmp::Ordering::Less,
                };
                match cmp {
                    std::cmp::Ordering::Equal => {
                        i += 1;
                        j += 1;
                    }
                    std::cmp::Ordering::Greater => {
                        add.push(ms[j].clone());
                        j += 1;
                    }
                    std::cmp::Ordering::Less => {
                        if !delete.iter().any(|d| json_eq(d, os[i])) {
                            delete.push(os[i].clone());
                        }
                        i += 1;
                    }
                }
            }
            add.sort_by_cached_key(|v| {
                modified
                    .iter()
                    .position(|m| json_eq(m, v))
                    .unwrap_or(usize::MAX)
            });
            let changed = original.len() != modified.len()
                || original.iter().zip(modified).any(|(a, b)| !json_eq(a, b));
            let order = if !delete.is_empty() || changed {
                modified.to_vec()
            } else {
                Vec::new()
            };
            Ok((add, delete, order))
        }
    }
}
