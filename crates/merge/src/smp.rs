//! Strategic merge patch (`application/strategic-merge-patch+json`), as upstream's
//! `k8s.io/apimachinery/pkg/util/strategicpatch` applies it.
//!
//! A strategic merge patch is a JSON merge patch whose lists may merge instead of being
//! replaced, driven by the schema's `patchStrategy`/`patchMergeKey`, plus directives:
//!
//! - `null` deletes a field;
//! - `$patch: replace` in a map replaces the map with the patch's; `$patch: delete` deletes it;
//! - in a merging list of maps, `{<mergeKey>: v, $patch: delete}` deletes the items with that
//!   key, `{$patch: replace}` replaces the whole list with the patch's other items;
//! - `$deleteFromPrimitiveList/<field>: [..]` deletes values from a list of primitives;
//! - `$setElementOrder/<field>: [..]` fixes the order of a merging list's items;
//! - `$retainKeys: [..]` clears every key of the map not listed (union types).
//!
//! Lists of primitives with `patchStrategy=merge` are united (duplicates dropped); lists
//! without the merge strategy are replaced.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::{join, MergeError};
use crate::schema::{Node, Schema, TypeRef};
use crate::value::{brief, json_eq, type_name};

const DIRECTIVE: &str = "$patch";
const DELETE: &str = "delete";
const REPLACE: &str = "replace";
const MERGE: &str = "merge";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

const ERR_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const ERR_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";

/// Applies a strategic merge patch to `original` (an object). `root` is the object's type
/// (`schema.root(apiVersion, kind)`); with None the object is handled schemaless: maps merge,
/// lists are replaced, directives still apply. (Upstream refuses strategic merge patches for
/// custom resources with 415; a caller wanting that checks `root` first.)
pub fn strategic_merge(
    original: &Value,
    patch: &Value,
    schema: &dyn Schema,
    root: Option<&TypeRef>,
) -> Result<Value, MergeError> {
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(MergeError::bad_request("", "invalid JSON document")),
    };
    let patch = match patch {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(MergeError::bad_request("", "invalid JSON document")),
    };
    let smp = Smp { schema };
    let merged = smp.merge_map(original, patch, Node::root(root, schema), "")?;
    Ok(Value::Object(merged))
}

struct Smp<'s> {
    schema: &'s dyn Schema,
}

/// Patch metadata of a field: its node, its patch strategy (retainKeys aside) and merge key.
struct Meta<'s> {
    node: Node<'s>,
    strategy: Option<&'s str>,
    merge_key: Option<&'s str>,
}

/// The element kinds upstream distinguishes when merging lists.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Elem {
    Map,
    Scalar,
}

fn bad_arg(path: &str, expected: &str, actual: &Value) -> MergeError {
    MergeError::invalid(
        path,
        format!(
            "expected a {expected}, but received a {}",
            type_name(actual)
        ),
    )
}

fn no_merge_key(path: &str, item: &Value, key: &str) -> MergeError {
    MergeError::invalid(
        path,
        format!(
            "map: {} does not contain declared merge key: {key}",
            brief(item)
        ),
    )
}

impl<'s> Smp<'s> {
    fn lookup(&self, node: Node<'s>, key: &str, path: &str) -> Result<Meta<'s>, MergeError> {
        let (node, meta) = match node {
            Node::Struct { ty, .. } => match self.schema.field(ty, key) {
                Some(meta) => (Node::from_meta(meta, self.schema), Some(meta)),
                None => (Node::Deduced, None),
            },
            other => (other.child(key, self.schema), None),
        };
        let Some(meta) = meta else {
            return Ok(Meta {
                node,
                strategy: None,
                merge_key: None,
            });
        };
        let strategies = meta.strategies();
        let strategy = match strategies.as_slice() {
            [] => None,
            ["retainKeys"] => None,
            [s] => Some(*s),
            ["retainKeys", s] | [s, "retainKeys"] => Some(*s),
            _ => {
                return Err(MergeError::invalid(
                    &join(path, key),
                    format!("unexpected patch strategy: {strategies:?}"),
                ))
            }
        };
        Ok(Meta {
            node,
            strategy,
            merge_key: meta.patch_merge_key.as_deref(),
        })
    }

    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
        node: Node<'s>,
        path: &str,
    ) -> Result<Map<String, Value>, MergeError> {
        if let Some(directive) = patch.get(DIRECTIVE) {
            return match directive.as_str() {
                Some(REPLACE) => {
                    patch.shift_remove(DIRECTIVE);
                    Ok(patch)
                }
                Some(DELETE) => Ok(Map::new()),
                _ => Err(MergeError::bad_request(
                    path,
                    format!(
                        "unknown patch type: {} in map: {}",
                        brief(directive),
                        brief(&Value::Object(patch.clone()))
                    ),
                )),
            };
        }

        self.apply_retain_keys(&mut original, &mut patch, path)?;
        self.merge_set_element_order(&mut original, &mut patch, node, path)?;

        for (key, patch_v) in patch {
            let (key, is_delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                Some(rest) => match rest.strip_prefix('/') {
                    Some(k) if !k.is_empty() => (k.to_string(), true),
                    _ => return Err(MergeError::bad_request(path, ERR_PRIMITIVE_LIST)),
                },
                None => (key, false),
            };
            let field_path = join(path, &key);

            if patch_v.is_null() {
                original.shift_remove(&key);
                continue;
            }

            let same_kind = match (original.get(&key), &patch_v) {
                (None, _) => None,
                (Some(Value::Object(_)), Value::Object(_)) => Some(true),
                (Some(Value::Array(_)), Value::Array(_)) => Some(true),
                (Some(o), p) if o.is_object() || o.is_array() || p.is_object() || p.is_array() => {
                    Some(false)
                }
                (Some(_), _) => Some(true),
            };
            match same_kind {
                None | Some(false) => {
                    // Absent from the original, or of another kind: take the patch's value.
                    if !is_delete_list {
                        let mut v = patch_v;
                        discard_nulls(&mut v);
                        match remove_directives(v) {
                            Some(v) => {
                                original.insert(key, v);
                            }
                            None => {
                                original.shift_remove(&key);
                            }
                        }
                    }
                    continue;
                }
                Some(true) => {}
            }

            let slot = original.get_mut(&key).expect("checked above");
            let orig_v = std::mem::take(slot);
            let merged = match (orig_v, patch_v) {
                (Value::Object(o), Value::Object(p)) => {
                    let meta = self.lookup(node, &key, path)?;
                    if meta.strategy == Some(REPLACE) {
                        Value::Object(p)
                    } else {
                        Value::Object(self.merge_map(o, p, meta.node, &field_path)?)
                    }
                }
                (Value::Array(o), Value::Array(p)) => {
                    let meta = self.lookup(node, &key, path)?;
                    if meta.strategy == Some(MERGE) || is_delete_list {
                        let (merged, _) = self.merge_slice(
                            o,
                            p,
                            meta.node.elem(self.schema),
                            meta.merge_key,
                            is_delete_list,
                            &field_path,
                        )?;
                        Value::Array(merged)
                    } else {
                        Value::Array(p)
                    }
                }
                (_, p) => match remove_directives(p) {
                    Some(v) => v,
                    None => {
                        original.shift_remove(&key);
                        continue;
                    }
                },
            };
            original.insert(key, merged);
        }
        Ok(original)
    }

    /// `$retainKeys`: every key of the original not listed is cleared; every key the patch sets
    /// must be listed.
    fn apply_retain_keys(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        path: &str,
    ) -> Result<(), MergeError> {
        let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
            return Ok(());
        };
        let Value::Array(retain) = retain else {
            return Err(MergeError::bad_request(path, ERR_RETAIN_KEYS));
        };
        let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
        for (k, v) in patch.iter() {
            if v.is_null()
                || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
                || k.starts_with(SET_ELEMENT_ORDER)
            {
                continue;
            }
            if !listed(k) {
                return Err(MergeError::bad_request(
                    path,
                    format!("{ERR_RETAIN_KEYS}: {k:?} is not listed in $retainKeys"),
                ));
            }
        }
        original.retain(|k, _| listed(k));
        Ok(())
    }

    /// Processes every `$setElementOrder/<field>` with its list: merges the list, then orders
    /// its items as the directive says, with items only the server has kept in their relative
    /// place.
    fn merge_set_element_order(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        node: Node<'s>,
        path: &str,
    ) -> Result<(), MergeError> {
        let keys: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
            .cloned()
            .collect();
        for directive_key in keys {
            let order = patch.shift_remove(&directive_key).unwrap_or(Value::Null);
            let Value::Array(order) = order else {
                return Err(bad_arg(&join(path, &directive_key), "list", &order));
            };
            let key = match directive_key
                .strip_prefix(SET_ELEMENT_ORDER)
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(k) if !k.is_empty() => k.to_string(),
                _ => return Err(MergeError::bad_request(path, ERR_SET_ELEMENT_ORDER)),
            };
            let field_path = join(path, &key);
            let original_list = match original.get(&key) {
                None | Some(Value::Null) => None,
                Some(Value::Array(l)) => Some(l.clone()),
                Some(other) => return Err(bad_arg(&field_path, "list", other)),
            };
            let patch_list = match patch.get(&key) {
                None => None,
                Some(Value::Array(l)) => Some(l.clone()),
                Some(other) => return Err(bad_arg(&field_path, "list", other)),
            };
            let meta = self.lookup(node, &key, path)?;
            let merge_key = meta.merge_key;
            if let Some(p) = &patch_list {
                validate_set_element_order(p, &order, merge_key, &field_path)?;
            }
            let empty = Vec::new();
            let orig_ref = original_list.as_ref().unwrap_or(&empty);
            let mut server_order = None;
            let merged = match (&original_list, &patch_list) {
                (Some(o), None) => o.clone(),
                (None, Some(p)) => match remove_directives(Value::Array(p.clone())) {
                    Some(Value::Array(v)) => v,
                    _ => continue,
                },
                (Some(o), Some(p)) => {
                    if meta.strategy == Some(MERGE) {
                        let (merged, view) = self.merge_slice(
                            o.clone(),
                            p.clone(),
                            meta.node.elem(self.schema),
                            merge_key,
                            false,
                            &field_path,
                        )?;
                        server_order = Some(view);
                        merged
                    } else {
                        p.clone()
                    }
                }
                (None, None) => continue,
            };
            let elem = element_kind(&[orig_ref, patch_list.as_ref().unwrap_or(&empty)])
                .map_err(|m| MergeError::invalid(&field_path, m))?
                .unwrap_or(if merge_key.is_some() {
                    Elem::Map
                } else {
                    Elem::Scalar
                });
            let (in_order, server_only) = partition(merged, &order, merge_key, &field_path)?;
            let both = normalize_element_order(
                in_order,
                server_only,
                &order,
                server_order.as_deref().unwrap_or(orig_ref),
                merge_key,
                elem,
                &field_path,
            )?;
            original.insert(key.clone(), Value::Array(both));
            patch.shift_remove(&key);
        }
        Ok(())
    }

    /// Merges a list per its element kind. Also returns what upstream's caller later sees as
    /// the live list: upstream deletes and appends in place in the live list's backing array,
    /// and `$setElementOrder` then orders server-only items by that array (deleted items
    /// shifted out, new items written into the freed slots). Reproducing it keeps item order
    /// identical to upstream's.
    fn merge_slice(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        elem_node: Node<'s>,
        merge_key: Option<&str>,
        is_delete_list: bool,
        path: &str,
    ) -> Result<(Vec<Value>, Vec<Value>), MergeError> {
        if original.is_empty() && patch.is_empty() {
            return Ok((original, Vec::new()));
        }
        let kind = element_kind(&[&original, &patch])
            .map_err(|m| MergeError::invalid(path, m))?
            .unwrap_or(Elem::Scalar);
        if kind == Elem::Scalar {
            if is_delete_list {
                let kept = original
                    .iter()
                    .filter(|v| !patch.iter().any(|p| json_eq(p, v)))
                    .cloned()
                    .collect();
                return Ok((kept, original));
            }
            let mut both = original.clone();
            both.extend(patch.iter().cloned());
            let merged = dedup_scalars(both);
            let (in_patch, server_only) = partition(merged, &patch, None, path)?;
            let out = normalize_element_order(
                in_patch,
                server_only,
                &patch,
                &original,
                None,
                kind,
                path,
            )?;
            return Ok((out, original));
        }
        let Some(key) = merge_key else {
            return Err(MergeError::invalid(
                path,
                "cannot merge lists without merge key",
            ));
        };
        // What upstream's `$setElementOrder` later sees as the live list, by merge key only.
        let mut view: Vec<Value> = original.iter().map(|v| key_stub(v, key)).collect();
        let (base, patch, mut len) = merge_special_elements(original, &mut view, patch, key, path)?;
        let base_len = base.len();
        let server_order: Vec<Value> = base.iter().map(|v| key_stub(v, key)).collect();
        let merged = self.merge_without_special_elements(base, &patch, key, elem_node, path)?;
        for item in &merged[base_len..] {
            if len < view.len() {
                view[len] = key_stub(item, key);
                len += 1;
            }
        }
        let (in_patch, server_only) = partition(merged, &patch, Some(key), path)?;
        let out = normalize_element_order(
            in_patch,
            server_only,
            &patch,
            &server_order,
            Some(key),
            kind,
            path,
        )?;
        Ok((out, view))
    }

    fn merge_without_special_elements(
        &self,
        mut original: Vec<Value>,
        patch: &[Value],
        key: &str,
        elem_node: Node<'s>,
        path: &str,
    ) -> Result<Vec<Value>, MergeError> {
        for (i, item) in patch.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let Value::Object(p) = item else {
                return Err(bad_arg(&item_path, "map", item));
            };
            let Some(kv) = p.get(key) else {
                return Err(no_merge_key(&item_path, item, key));
            };
            let found = find_by_key(&original, key, kv, &item_path)?;
            match found {
                Some(at) => {
                    let Value::Object(o) = std::mem::take(&mut original[at]) else {
                        unreachable!("find_by_key only matches maps")
                    };
                    original[at] =
                        Value::Object(self.merge_map(o, p.clone(), elem_node, &item_path)?);
                }
                None => {
                    // A new item: merged into nothing, so its own directives and nulls are
                    // resolved rather than stored.
                    let v = self.merge_map(Map::new(), p.clone(), elem_node, &item_path)?;
                    original.push(Value::Object(v));
                }
            }
        }
        Ok(original)
    }
}

/// `$patch` items of a merging list: deletions are applied to the original (and simulated on
/// `view` as upstream shifts its array in place); `replace` makes the other patch items the
/// whole list. Returns the list to merge into, the patch without directive items, and the
/// logical length of `view` after the deletions.
fn merge_special_elements(
    mut original: Vec<Value>,
    view: &mut [Value],
    patch: Vec<Value>,
    key: &str,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>, usize), MergeError> {
    let mut len = view.len();
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for (i, item) in patch.into_iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let Some(directive) = item.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some(DELETE) => {
                let Some(kv) = item.get(key) else {
                    return Err(no_merge_key(&item_path, &item, key));
                };
                while let Some(at) = find_by_key(&view[..len], key, kv, path)? {
                    if at + 1 < len {
                        // Shift left; the slot left behind keeps a copy of the last item, as
                        // Go's append does.
                        view[at..len].rotate_left(1);
                        view[len - 1] = view[len - 2].clone();
                    }
                    len -= 1;
                }
                original.retain(|o| !o.get(key).is_some_and(|v| json_eq(v, kv)));
            }
            Some(REPLACE) => replace = true,
            Some(MERGE) => {
                return Err(MergeError::invalid(
                    &item_path,
                    "merging lists cannot yet be specified in the patch",
                ))
            }
            _ => {
                return Err(MergeError::bad_request(
                    &item_path,
                    format!(
                        "unknown patch type: {} in map: {}",
                        brief(directive),
                        brief(&item)
                    ),
                ))
            }
        }
    }
    if replace {
        Ok((plain, Vec::new(), len))
    } else {
        Ok((original, plain, len))
    }
}

/// An item reduced to its merge key (what ordering looks at).
fn key_stub(v: &Value, key: &str) -> Value {
    match v {
        Value::Object(m) => {
            let mut stub = Map::new();
            if let Some(k) = m.get(key) {
                stub.insert(key.to_string(), k.clone());
            }
            Value::Object(stub)
        }
        other => other.clone(),
    }
}

/// A hashable rendering of an item's identity (its merge key's value, or itself), equal for
/// values `json_eq` finds equal in practice (numbers normalized).
fn ident_string(item: &Value, key: Option<&str>) -> String {
    fn canonical(v: &Value) -> String {
        match v {
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => i.to_string(),
                (_, Some(u), _) => u.to_string(),
                (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => (f as i64).to_string(),
                _ => n.to_string(),
            },
            other => other.to_string(),
        }
    }
    match ident(item, key) {
        Some(v) => canonical(v),
        None => "\u{0}".to_string(),
    }
}

/// First positions of identities in a list.
struct Positions(HashMap<String, usize>);

impl Positions {
    fn of(list: &[Value], key: Option<&str>) -> Positions {
        let mut map = HashMap::with_capacity(list.len());
        for (i, v) in list.iter().enumerate() {
            map.entry(ident_string(v, key)).or_insert(i);
        }
        Positions(map)
    }

    fn get(&self, item: &Value, key: Option<&str>) -> Option<usize> {
        self.0.get(&ident_string(item, key)).copied()
    }
}

fn find_by_key(
    list: &[Value],
    key: &str,
    value: &Value,
    path: &str,
) -> Result<Option<usize>, MergeError> {
    for (i, v) in list.iter().enumerate() {
        let Value::Object(m) = v else {
            return Err(MergeError::invalid(
                path,
                format!("value for key {i} is not a map"),
            ));
        };
        if m.get(key).is_some_and(|k| json_eq(k, value)) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// The kind of the elements of the lists: all must be maps or all scalars (lists of lists are
/// not supported). None when the lists are empty.
fn element_kind(lists: &[&Vec<Value>]) -> Result<Option<Elem>, String> {
    let mut seen: Option<&'static str> = None;
    for list in lists {
        for v in list.iter() {
            let t = type_name(v);
            if t == "list" {
                return Err("lists of lists are not supported".into());
            }
            match seen {
                None => seen = Some(t),
                Some(s) if s != t => {
                    return Err(format!("list element types are not identical: {s} and {t}"))
                }
                _ => {}
            }
        }
    }
    Ok(seen.map(|t| if t == "map" { Elem::Map } else { Elem::Scalar }))
}

fn dedup_scalars(list: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(list.len());
    for v in list {
        if !out.iter().any(|o| json_eq(o, &v)) {
            out.push(v);
        }
    }
    out
}

/// What identifies an item when ordering: its merge key's value, or the item itself.
fn ident<'a>(item: &'a Value, key: Option<&str>) -> Option<&'a Value> {
    match key {
        Some(k) => item.get(k),
        None => Some(item),
    }
}

/// Splits `list` into the items present in `by` and the others.
fn partition(
    list: Vec<Value>,
    by: &[Value],
    key: Option<&str>,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>), MergeError> {
    let mut present = Vec::with_capacity(list.len());
    let mut others = Vec::with_capacity(list.len());
    if key.is_some() && !list.is_empty() {
        if let Some((i, _)) = by.iter().enumerate().find(|(_, b)| !b.is_object()) {
            return Err(MergeError::invalid(
                path,
                format!("value for key {i} is not a map"),
            ));
        }
    }
    let positions = Positions::of(by, key);
    for v in list {
        if let Some(k) = key {
            if !v.is_object() {
                return Err(bad_arg(path, "map", &v));
            }
            if v.get(k).is_none() {
                return Err(no_merge_key(path, &v, k));
            }
        }
        let found = positions.get(&v, key).is_some();
        if found {
            present.push(v);
        } else {
            others.push(v);
        }
    }
    Ok((present, others))
}

/// Checks that the patch list's items appear in the `$setElementOrder` list, in the same
/// relative order.
fn validate_set_element_order(
    patch: &[Value],
    order: &[Value],
    key: Option<&str>,
    path: &str,
) -> Result<(), MergeError> {
    if order.is_empty() || patch.is_empty() {
        return Ok(());
    }
    let items: Vec<&Value> = match key {
        Some(_) => {
            let mut kept = Vec::new();
            for v in patch {
                if !v.is_object() {
                    return Err(bad_arg(path, "map", v));
                }
                if v.get(DIRECTIVE).and_then(Value::as_str) != Some(DELETE) {
                    kept.push(v);
                }
            }
            kept
        }
        None => patch.iter().collect(),
    };
    let (mut pi, mut oi) = (0, 0);
    while pi < items.len() && oi < order.len() {
        if items[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        let equal = match key {
            None => json_eq(items[pi], &order[oi]),
            Some(k) => {
                let Some(a) = items[pi].get(k) else {
                    return Err(no_merge_key(path, items[pi], k));
                };
                let Some(b) = order[oi].get(k) else {
                    return Err(no_merge_key(path, &order[oi], k));
                };
                json_eq(a, b)
            }
        };
        if equal {
            pi += 1;
        }
        oi += 1;
    }
    if pi < items.len() && oi >= order.len() {
        return Err(MergeError::bad_request(
            path,
            format!(
                "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
                brief(&Value::Array(patch.to_vec())),
                brief(&Value::Array(order.to_vec()))
            ),
        ));
    }
    Ok(())
}

/// Orders the patch items by `patch_order` and the server-only items by `server_order`, then
/// interleaves them: a server-only item goes before a patch item that the live list has after
/// it.
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
    elem: Elem,
    path: &str,
) -> Result<Vec<Value>, MergeError> {
    let patch = normalize_slice_order(patch, patch_order, key, elem, path)?;
    let server_only = normalize_slice_order(server_only, server_order, key, elem, path)?;
    let mut out = Vec::with_capacity(patch.len() + server_only.len());
    let positions = Positions::of(server_order, key);
    let mut left = server_only.into_iter().peekable();
    let mut right = patch.into_iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => out.push(left.next().unwrap()),
            (None, Some(_)) => out.push(right.next().unwrap()),
            (Some(l), Some(r)) => {
                let li = positions.get(l, key);
                let ri = positions.get(r, key);
                if matches!((li, ri), (Some(a), Some(b)) if a < b) {
                    out.push(left.next().unwrap());
                } else {
                    out.push(right.next().unwrap());
                }
            }
        }
    }
    Ok(out)
}

fn normalize_slice_order(
    items: Vec<Value>,
    order: &[Value],
    key: Option<&str>,
    elem: Elem,
    path: &str,
) -> Result<Vec<Value>, MergeError> {
    let (mut items, to_delete) = if elem == Elem::Map {
        let k = key.unwrap_or_default();
        for v in items.iter().chain(order) {
            if !v.is_object() {
                return Err(bad_arg(path, "map", v));
            }
            if v.get(k).is_none() {
                return Err(no_merge_key(path, v, k));
            }
        }
        items
            .into_iter()
            .partition(|v| v.get(DIRECTIVE).and_then(Value::as_str) != Some(DELETE))
    } else {
        (items, Vec::new())
    };
    let positions = Positions::of(order, key);
    items.sort_by_cached_key(|v| positions.get(v, key).unwrap_or(usize::MAX));
    items.extend(to_delete);
    Ok(items)
}

/// Drops `null` map values, recursively.
fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            for v in m.values_mut() {
                discard_nulls(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

fn is_directive_key(k: &str) -> bool {
    k == DIRECTIVE
        || k == RETAIN_KEYS
        || k.starts_with("$setElementOrder/")
        || k.starts_with("$deleteFromPrimitiveList/")
}

/// Removes directives from a value taken as is from the patch; None when the value itself is a
/// `$patch` directive.
fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            let mut out = Map::with_capacity(m.len());
            for (k, v) in m {
                if is_directive_key(&k) {
                    continue;
                }
                if let Some(v) = remove_directives(v) {
                    out.insert(k, v);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(remove_directives).collect(),
        )),
        v => Some(v),
    }
}
