//! Schema-aware walks over values, as structured-merge-diff's `typed` package: the field set
//! of an object, the merge of an applied configuration into a live object, the comparison of
//! two objects, and the removal of a set of fields.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::error::MergeError;
use crate::fieldpath::{FieldSet, Path, PathElement};
use crate::schema::{ListKind, Node, Schema};

/// How a value is walked at a node.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cat {
    /// A scalar, an atomic list/map/struct, or a value whose shape the schema does not expect.
    Leaf,
    /// A granular map or struct (null counts as an empty one).
    Map,
    /// An associative list (null counts as an empty one).
    List,
}

fn cat(v: &Value, node: Node) -> Cat {
    match node {
        Node::Scalar | Node::Raw => Cat::Leaf,
        Node::Struct { atomic, .. } | Node::Map { atomic, .. } => match v {
            Value::Object(_) | Value::Null if !atomic => Cat::Map,
            _ => Cat::Leaf,
        },
        Node::List { kind, .. } => match (v, kind) {
            (_, ListKind::Atomic) => Cat::Leaf,
            (Value::Array(_) | Value::Null, _) => Cat::List,
            _ => Cat::Leaf,
        },
        Node::Deduced => match v {
            Value::Object(_) | Value::Null => Cat::Map,
            _ => Cat::Leaf,
        },
    }
}

fn as_map(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object)
}

fn as_list(v: Option<&Value>) -> Option<&Vec<Value>> {
    v.and_then(Value::as_array)
}

fn empty_map(m: Option<&Map<String, Value>>) -> bool {
    m.is_none_or(Map::is_empty)
}

fn empty_list(l: Option<&Vec<Value>>) -> bool {
    l.is_none_or(Vec::is_empty)
}

/// Prefixes an error's path with the element it happened under (paths are built while
/// unwinding, so the walks carry no path).
fn under(pe: &PathElement) -> impl FnOnce(MergeError) -> MergeError + '_ {
    move |mut e| {
        e.path = format!("{pe}{}", e.path);
        e
    }
}

fn under_field(name: &str) -> impl FnOnce(MergeError) -> MergeError + '_ {
    move |mut e| {
        e.path = format!(".{name}{}", e.path);
        e
    }
}

/// The path element of a list item.
pub(crate) fn item_pe(
    item: &Value,
    node: Node,
    schema: &dyn Schema,
) -> Result<PathElement, String> {
    let Node::List { kind, .. } = node else {
        return Err("invalid indexing of non-associative list".into());
    };
    match kind {
        ListKind::Atomic => Err("invalid indexing of non-associative list".into()),
        ListKind::Map(keys) => {
            let obj = match item {
                Value::Null => {
                    return Err("associative list with keys may not have a null element".into())
                }
                Value::Object(o) => o,
                _ => return Err("associative list with keys may not have non-map elements".into()),
            };
            let mut fields = Vec::with_capacity(keys.len());
            for key in keys {
                if let Some(v) = obj.get(key) {
                    fields.push((key.clone(), v.clone()));
                } else if let Some(def) = node.key_default(key, schema) {
                    fields.push((key.clone(), def.clone()));
                }
            }
            if fields.is_empty() {
                return Err(format!(
                    "associative list with keys has an element that omits all key fields {keys:?} \
                     (and doesn't have default values for any key fields)"
                ));
            }
            Ok(PathElement::key(fields))
        }
        ListKind::Set => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => {
                Err("associative list without keys has an element that's an explicit null".into())
            }
            v => Ok(PathElement::Value(v.clone())),
        },
    }
}

fn item_pes(
    items: &[Value],
    node: Node,
    schema: &dyn Schema,
) -> Result<Vec<PathElement>, MergeError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item_pe(item, node, schema)
                .map_err(|e| MergeError::invalid("", format!("element {i}: {e}")))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Field sets

/// The set of fields an object specifies: its leaves, the items of its associative lists, the
/// keys of its granular maps, and the fields holding null or `{}`.
pub(crate) fn to_field_set(
    v: &Value,
    node: Node,
    schema: &dyn Schema,
) -> Result<FieldSet, MergeError> {
    Ok(build(v, node, schema)?.0)
}

/// Returns the set under this position and whether the position itself is a member.
fn build(v: &Value, node: Node, schema: &dyn Schema) -> Result<(FieldSet, bool), MergeError> {
    match cat(v, node) {
        Cat::Leaf => Ok((FieldSet::new(), true)),
        Cat::Map => {
            let Some(obj) = v.as_object() else {
                return Ok((FieldSet::new(), false));
            };
            let mut members = Vec::new();
            let mut children = Vec::new();
            for (k, val) in obj {
                let (sub, member) =
                    build(val, node.child(k, schema), schema).map_err(under_field(k))?;
                let pe = PathElement::Field(k.clone());
                let empty = val.is_null() || val.as_object().is_some_and(Map::is_empty);
                let is_member = member || empty || !node.is_named(k, schema);
                match (is_member, sub.is_empty()) {
                    (true, true) => members.push(pe),
                    (true, false) => {
                        members.push(pe.clone());
                        children.push((pe, sub));
                    }
                    (false, false) => children.push((pe, sub)),
                    (false, true) => {}
                }
            }
            Ok((FieldSet::from_parts(members, children), false))
        }
        Cat::List => {
            let Some(items) = v.as_array() else {
                return Ok((FieldSet::new(), false));
            };
            let pes = item_pes(items, node, schema)?;
            let mut seen = BTreeSet::new();
            let mut dups = BTreeSet::new();
            for pe in &pes {
                if !seen.insert(pe) {
                    dups.insert(pe);
                }
            }
            let elem = node.elem(schema);
            let mut members = Vec::with_capacity(items.len());
            let mut children = Vec::with_capacity(items.len());
            for (item, pe) in items.iter().zip(&pes) {
                members.push(pe.clone());
                if dups.contains(pe) {
                    continue;
                }
                let (sub, _) = build(item, elem, schema).map_err(under(pe))?;
                if !sub.is_empty() {
                    children.push((pe.clone(), sub));
                }
            }
            Ok((FieldSet::from_parts(members, children), false))
        }
    }
}

/// Adds the named struct fields above every path as members (upstream's
/// `EnsureNamedFieldsAreMembers`), so that removing them removes the struct.
pub(crate) fn ensure_named_fields(set: &FieldSet, node: Node, schema: &dyn Schema) -> FieldSet {
    let mut members: Vec<PathElement> = set.members().to_vec();
    let mut children = Vec::new();
    for (pe, sub) in set.children() {
        let child = match pe {
            PathElement::Field(name) => {
                if node.is_named(name, schema) {
                    members.push(pe.clone());
                }
                node.child(name, schema)
            }
            PathElement::Key(_) => node.elem(schema),
            _ => Node::Deduced,
        };
        children.push((pe.clone(), ensure_named_fields(sub, child, schema)));
    }
    FieldSet::from_parts(members, children)
}

// ---------------------------------------------------------------------------------------------
// Merge (apply)

/// Merges `rhs` (the applied configuration) into `lhs` (the live object): granular maps and
/// structs key by key, associative lists item by item, everything else replaced by `rhs`.
pub(crate) fn merge(
    lhs: &Value,
    rhs: &Value,
    node: Node,
    schema: &dyn Schema,
) -> Result<Value, MergeError> {
    merge_at(lhs, rhs, node, schema)
}

fn merge_at(l: &Value, r: &Value, node: Node, schema: &dyn Schema) -> Result<Value, MergeError> {
    let (cl, cr) = (cat(l, node), cat(r, node));
    if cl != cr {
        if cr != Cat::Leaf {
            validate(r, node, schema)?;
        }
        return Ok(r.clone());
    }
    match cr {
        Cat::Leaf => Ok(r.clone()),
        Cat::Map => {
            let (lm, rm) = (l.as_object(), r.as_object());
            if empty_map(lm) && empty_map(rm) {
                return Ok(r.clone());
            }
            let mut out = Map::new();
            if let Some(lm) = lm {
                for (k, lv) in lm {
                    let v = match rm.and_then(|m| m.get(k)) {
                        None => lv.clone(),
                        Some(rv) => merge_at(lv, rv, node.child(k, schema), schema)
                            .map_err(under_field(k))?,
                    };
                    out.insert(k.clone(), v);
                }
            }
            if let Some(rm) = rm {
                for (k, rv) in rm {
                    if lm.is_some_and(|m| m.contains_key(k)) {
                        continue;
                    }
                    validate(rv, node.child(k, schema), schema).map_err(under_field(k))?;
                    out.insert(k.clone(), rv.clone());
                }
            }
            Ok(Value::Object(out))
        }
        Cat::List => {
            let (ll, rl) = (l.as_array(), r.as_array());
            if empty_list(ll) && empty_list(rl) {
                return Ok(r.clone());
            }
            let empty = Vec::new();
            let out = merge_list(ll.unwrap_or(&empty), rl.unwrap_or(&empty), node, schema)?;
            Ok(Value::Array(out))
        }
    }
}

/// Checks that the associative lists of an applied value can be indexed and have no
/// duplicates.
fn validate(v: &Value, node: Node, schema: &dyn Schema) -> Result<(), MergeError> {
    match cat(v, node) {
        Cat::Leaf => Ok(()),
        Cat::Map => {
            if let Some(obj) = v.as_object() {
                for (k, val) in obj {
                    validate(val, node.child(k, schema), schema).map_err(under_field(k))?;
                }
            }
            Ok(())
        }
        Cat::List => {
            let Some(items) = v.as_array() else {
                return Ok(());
            };
            let pes = item_pes(items, node, schema)?;
            let mut seen = BTreeSet::new();
            let elem = node.elem(schema);
            for (item, pe) in items.iter().zip(&pes) {
                if !seen.insert(pe) {
                    return Err(MergeError::invalid(
                        "",
                        format!("duplicate entries for key {pe}"),
                    ));
                }
                validate(item, elem, schema).map_err(under(pe))?;
            }
            Ok(())
        }
    }
}

/// Merges two associative lists, keeping the live order and placing new applied items where
/// the applied list puts them (structured-merge-diff's ordering).
fn merge_list(
    lhs: &[Value],
    rhs: &[Value],
    node: Node,
    schema: &dyn Schema,
) -> Result<Vec<Value>, MergeError> {
    let rpes = item_pes(rhs, node, schema)?;
    let lpes = item_pes(lhs, node, schema)?;
    let mut observed_r: BTreeMap<&PathElement, usize> = BTreeMap::new();
    for (i, pe) in rpes.iter().enumerate() {
        if observed_r.insert(pe, i).is_some() {
            return Err(MergeError::invalid(
                "",
                format!("duplicate entries for key {pe}"),
            ));
        }
    }
    // None: the live list holds this key more than once (such items are not merged).
    let mut observed_l: BTreeMap<&PathElement, Option<usize>> = BTreeMap::new();
    for (i, pe) in lpes.iter().enumerate() {
        observed_l
            .entry(pe)
            .and_modify(|e| *e = None)
            .or_insert(Some(i));
    }
    let elem = node.elem(schema);
    // Merges the applied item at `ri` with its live counterpart.
    let merge_item = |ri: usize| -> Result<Value, MergeError> {
        let pe = &rpes[ri];
        let r = &rhs[ri];
        match observed_l.get(pe) {
            None => validate(r, elem, schema).map(|_| r.clone()),
            Some(None) => merge_at(&Value::Null, r, elem, schema),
            Some(Some(li)) => merge_at(&lhs[*li], r, elem, schema),
        }
        .map_err(under(pe))
    };
    let mut shared = rpes.iter().filter(|pe| observed_l.contains_key(pe));
    let mut next_shared = shared.next();
    let mut merged_r: BTreeSet<&PathElement> = BTreeSet::new();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let (mut li, mut ri) = (0, 0);
    while li < lpes.len() || ri < rpes.len() {
        if li < lpes.len() && ri < rpes.len() {
            let pe = &lpes[li];
            if *pe == rpes[ri] {
                merged_r.insert(pe);
                out.push(merge_item(ri)?);
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if observed_r.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                // A shared item, but not the next one in the applied order.
                li += 1;
                continue;
            }
        }
        if li < lpes.len() {
            let pe = &lpes[li];
            if !observed_r.contains_key(pe) {
                out.push(lhs[li].clone());
                li += 1;
                continue;
            } else if merged_r.contains(pe) {
                li += 1;
            }
        }
        if ri < rpes.len() {
            let pe = &rpes[ri];
            merged_r.insert(pe);
            out.push(merge_item(ri)?);
            ri += 1;
            if next_shared.is_some_and(|n| n == pe) {
                next_shared = shared.next();
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Compare

/// The fields that differ between two objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Fields set in the new object only.
    pub added: FieldSet,
    /// Fields whose value changed.
    pub modified: FieldSet,
    /// Fields set in the old object only.
    pub removed: FieldSet,
}

impl Comparison {
    /// Whether no field differs.
    pub fn is_same(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

/// A step of the path walked by [`compare`], borrowed from the values.
#[derive(Clone, Copy)]
enum Step<'a> {
    Field(&'a str),
    Item(&'a PathElement),
}

fn owned(path: &[Step]) -> Vec<PathElement> {
    path.iter()
        .map(|s| match s {
            Step::Field(f) => PathElement::Field((*f).to_string()),
            Step::Item(pe) => (*pe).clone(),
        })
        .collect()
}

fn insert(set: &mut FieldSet, path: &[Step]) {
    if !path.is_empty() {
        set.insert(&owned(path));
    }
}

pub(crate) fn compare(
    lhs: &Value,
    rhs: &Value,
    node: Node,
    schema: &dyn Schema,
) -> Result<Comparison, MergeError> {
    let mut cmp = Comparison::default();
    let mut path = Vec::new();
    compare_at(Some(lhs), Some(rhs), node, schema, &mut path, &mut cmp)?;
    Ok(cmp)
}

fn compare_at<'a>(
    lhs: Option<&'a Value>,
    rhs: Option<&'a Value>,
    node: Node,
    schema: &dyn Schema,
    path: &mut Vec<Step<'a>>,
    cmp: &mut Comparison,
) -> Result<(), MergeError> {
    if let (Some(v), None) | (None, Some(v)) = (lhs, rhs) {
        // Added or removed as a whole: the position and everything under it.
        let below = subtree(v, node, schema)?;
        let target = if lhs.is_none() {
            &mut cmp.added
        } else {
            &mut cmp.removed
        };
        let at = owned(path);
        target.insert(&at);
        target.insert_set(&at, below);
        return Ok(());
    }
    let cl = lhs.map(|v| cat(v, node));
    let cr = rhs.map(|v| cat(v, node));
    let in_leaf = match (cl, cr) {
        (Some(a), Some(b)) if a == b => compare_as(b, lhs, rhs, node, schema, path, cmp)?,
        (Some(a), Some(b)) => {
            // Different shapes: walk the live value as its own shape, then the new one.
            compare_as(a, lhs, rhs, node, schema, path, cmp)?;
            compare_as(b, lhs, rhs, node, schema, path, cmp)?
        }
        _ => return Ok(()),
    };
    if !in_leaf {
        if lhs.is_none() {
            insert(&mut cmp.added, path);
        } else if rhs.is_none() {
            insert(&mut cmp.removed, path);
        }
    }
    Ok(())
}

/// Every position under a value (what comparing it with nothing reports).
fn subtree(v: &Value, node: Node, schema: &dyn Schema) -> Result<FieldSet, MergeError> {
    match (cat(v, node), v) {
        (Cat::Map, Value::Object(obj)) => {
            let mut members = Vec::with_capacity(obj.len());
            let mut children = Vec::new();
            for (k, val) in obj {
                let below = subtree(val, node.child(k, schema), schema).map_err(under_field(k))?;
                let pe = PathElement::Field(k.clone());
                if !below.is_empty() {
                    children.push((pe.clone(), below));
                }
                members.push(pe);
            }
            Ok(FieldSet::from_parts(members, children))
        }
        (Cat::List, Value::Array(items)) => {
            let pes = item_pes(items, node, schema)?;
            let mut count: BTreeMap<&PathElement, usize> = BTreeMap::new();
            for pe in &pes {
                *count.entry(pe).or_default() += 1;
            }
            let elem = node.elem(schema);
            let mut children = Vec::new();
            for (item, pe) in items.iter().zip(&pes) {
                if count[pe] == 1 {
                    let below = subtree(item, elem, schema).map_err(under(pe))?;
                    if !below.is_empty() {
                        children.push((pe.clone(), below));
                    }
                }
            }
            Ok(FieldSet::from_parts(pes, children))
        }
        _ => Ok(FieldSet::new()),
    }
}

/// Compares the values walked as category `c`; returns whether this position was a leaf.
fn compare_as<'a>(
    c: Cat,
    lhs: Option<&'a Value>,
    rhs: Option<&'a Value>,
    node: Node,
    schema: &dyn Schema,
    path: &mut Vec<Step<'a>>,
    cmp: &mut Comparison,
) -> Result<bool, MergeError> {
    let leaf = |cmp: &mut Comparison, path: &[Step]| {
        match (lhs, rhs) {
            (None, _) => insert(&mut cmp.added, path),
            (_, None) => insert(&mut cmp.removed, path),
            (Some(l), Some(r)) => {
                if !crate::value::json_eq(l, r) {
                    insert(&mut cmp.modified, path)
                }
            }
        }
        true
    };
    match c {
        Cat::Leaf => Ok(leaf(cmp, path)),
        Cat::Map => {
            let (lm, rm) = (as_map(lhs), as_map(rhs));
            if empty_map(lm) && empty_map(rm) {
                return Ok(leaf(cmp, path));
            }
            if let Some(lm) = lm {
                for (k, lv) in lm {
                    path.push(Step::Field(k));
                    let rv = rm.and_then(|m| m.get(k));
                    compare_at(Some(lv), rv, node.child(k, schema), schema, path, cmp)?;
                    path.pop();
                }
            }
            if let Some(rm) = rm {
                for (k, rv) in rm {
                    if lm.is_some_and(|m| m.contains_key(k)) {
                        continue;
                    }
                    path.push(Step::Field(k));
                    compare_at(None, Some(rv), node.child(k, schema), schema, path, cmp)?;
                    path.pop();
                }
            }
            Ok(false)
        }
        Cat::List => {
            let (ll, rl) = (as_list(lhs), as_list(rhs));
            if empty_list(ll) && empty_list(rl) {
                return Ok(leaf(cmp, path));
            }
            compare_list(
                ll.map(Vec::as_slice).unwrap_or(&[]),
                rl.map(Vec::as_slice).unwrap_or(&[]),
                node,
                schema,
                path,
                cmp,
            )
            .map_err(|mut e| {
                e.path = Path(owned(path)).to_string() + &e.path;
                e
            })?;
            Ok(false)
        }
    }
}

fn compare_list<'a>(
    lhs: &'a [Value],
    rhs: &'a [Value],
    node: Node,
    schema: &dyn Schema,
    path: &[Step<'a>],
    cmp: &mut Comparison,
) -> Result<(), MergeError> {
    let lpes = item_pes(lhs, node, schema)?;
    let rpes = item_pes(rhs, node, schema)?;
    let mut order: Vec<&PathElement> = Vec::new();
    let mut lvals: BTreeMap<&PathElement, Vec<&Value>> = BTreeMap::new();
    for (pe, v) in lpes.iter().zip(lhs) {
        let e = lvals.entry(pe).or_default();
        if e.is_empty() {
            order.push(pe);
        }
        e.push(v);
    }
    let mut rvals: BTreeMap<&PathElement, Vec<&Value>> = BTreeMap::new();
    for (pe, v) in rpes.iter().zip(rhs) {
        let e = rvals.entry(pe).or_default();
        if e.is_empty() && !lvals.contains_key(pe) {
            order.push(pe);
        }
        e.push(v);
    }
    let elem = node.elem(schema);
    for pe in order {
        let l = lvals.get(pe).map(Vec::as_slice).unwrap_or(&[]);
        let r = rvals.get(pe).map(Vec::as_slice).unwrap_or(&[]);
        // The path borrows the element for the duration of this item only.
        let mut sub: Vec<Step> = path.to_vec();
        sub.push(Step::Item(pe));
        if l.len() <= 1 && r.len() <= 1 {
            compare_at(
                l.first().copied(),
                r.first().copied(),
                elem,
                schema,
                &mut sub,
                cmp,
            )?;
        } else if l.len() >= 2 && r.len() >= 2 {
            let same =
                l.len() == r.len() && l.iter().zip(r).all(|(a, b)| crate::value::json_eq(a, b));
            if !same {
                insert(&mut cmp.modified, &sub);
            }
        } else if l.len() >= 2 {
            if let Some(r0) = r.first() {
                compare_at(None, Some(r0), elem, schema, &mut sub, cmp)?;
            }
            insert(&mut cmp.removed, &sub);
        } else {
            if let Some(l0) = l.first() {
                compare_at(Some(l0), None, elem, schema, &mut sub, cmp)?;
            }
            insert(&mut cmp.added, &sub);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Remove

/// Removes the fields of `set` (each with everything under it) from `v`. Maps and lists that
/// become empty through the removal are dropped too.
pub(crate) fn remove_items(
    v: &Value,
    set: &FieldSet,
    node: Node,
    schema: &dyn Schema,
) -> Result<Value, MergeError> {
    Ok(remove_at(v, set, node, schema)?.unwrap_or_else(|| Value::Object(Map::new())))
}

fn remove_at(
    v: &Value,
    set: &FieldSet,
    node: Node,
    schema: &dyn Schema,
) -> Result<Option<Value>, MergeError> {
    match (cat(v, node), v) {
        (Cat::Map, Value::Object(obj)) if !obj.is_empty() => {
            let mut out = Map::new();
            for (k, val) in obj {
                let pe = PathElement::Field(k.clone());
                if set.has_member(&pe) {
                    continue;
                }
                match set.child(&pe) {
                    Some(sub) => {
                        let r = remove_at(val, sub, node.child(k, schema), schema)
                            .map_err(under(&pe))?;
                        if let Some(r) = r {
                            out.insert(k.clone(), r);
                        }
                    }
                    None => {
                        out.insert(k.clone(), val.clone());
                    }
                }
            }
            Ok((!out.is_empty()).then_some(Value::Object(out)))
        }
        (Cat::List, Value::Array(items)) if !items.is_empty() => {
            let pes = item_pes(items, node, schema)?;
            let elem = node.elem(schema);
            let mut out = Vec::with_capacity(items.len());
            for (item, pe) in items.iter().zip(pes) {
                if set.has_member(&pe) {
                    continue;
                }
                match set.child(&pe) {
                    Some(sub) => {
                        let r = remove_at(item, sub, elem, schema).map_err(under(&pe))?;
                        if let Some(r) = r {
                            out.push(r);
                        }
                    }
                    None => out.push(item.clone()),
                }
            }
            Ok((!out.is_empty()).then_some(Value::Array(out)))
        }
        _ => Ok(Some(v.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{FieldMeta, MemorySchema, Shape, TypeRef};
    use serde_json::json;

    fn schema() -> MemorySchema {
        let mut s = MemorySchema::new();
        s.add_field("Root", "spec", FieldMeta::structure("Spec"));
        s.add_field(
            "Spec",
            "items",
            FieldMeta {
                shape: Shape::List,
                ty: Some(TypeRef::new("Item")),
                list_type: Some("map".into()),
                list_map_keys: vec!["name".into()],
                ..FieldMeta::default()
            },
        );
        s.add_field("Item", "name", FieldMeta::scalar());
        s.add_field("Item", "v", FieldMeta::scalar());
        s
    }

    fn paths(set: &FieldSet) -> Vec<String> {
        set.paths().iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn compare_reports_whole_subtrees_and_duplicates_as_items() {
        let s = schema();
        let root = TypeRef::new("Root");
        let node = Node::root(Some(&root), &s);
        let obj = json!({"spec": {"items": [
            {"name": "a", "v": 1}, {"name": "a", "v": 2}, {"name": "b", "v": 3}
        ]}});
        let cmp = compare(&json!({}), &obj, node, &s).unwrap();
        assert_eq!(
            paths(&cmp.added),
            [
                ".spec",
                ".spec.items",
                ".spec.items[name=\"a\"]",
                ".spec.items[name=\"b\"]",
                ".spec.items[name=\"b\"].name",
                ".spec.items[name=\"b\"].v",
            ]
        );
        assert!(cmp.modified.is_empty() && cmp.removed.is_empty());
        let cmp = compare(&obj, &json!({"spec": {}}), node, &s).unwrap();
        assert_eq!(cmp.removed.len(), 5);
        // Same walk, element by element, when both sides have the list.
        let one = json!({"spec": {"items": [{"name": "b", "v": 4}]}});
        let cmp = compare(&obj, &one, node, &s).unwrap();
        assert_eq!(paths(&cmp.modified), [".spec.items[name=\"b\"].v"]);
        assert_eq!(paths(&cmp.removed), [".spec.items[name=\"a\"]"]);
    }

    #[test]
    fn errors_name_the_path() {
        let s = schema();
        let root = TypeRef::new("Root");
        let node = Node::root(Some(&root), &s);
        let bad = json!({"spec": {"items": [{"v": 1}]}});
        let e = to_field_set(&bad, node, &s).unwrap_err();
        assert_eq!(e.path, ".spec.items");
        assert!(e
            .message
            .starts_with("element 0: associative list with keys"));
        let dup = json!({"spec": {"items": [{"name": "a"}, {"name": "a"}]}});
        let e = merge(&json!({}), &dup, node, &s).unwrap_err();
        assert_eq!(
            e.to_string(),
            ".spec.items: duplicate entries for key [name=\"a\"]"
        );
    }
}
