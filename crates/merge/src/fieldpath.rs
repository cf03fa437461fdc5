//! Field paths and sets of them, as structured-merge-diff defines them, with the `FieldsV1`
//! encoding stored in `metadata.managedFields[].fieldsV1`.
//!
//! A path is a sequence of [`PathElement`]s: `f:<name>` selects a field of a struct or a key of
//! a map, `k:{"name":"nginx"}` the item of a list-map with those key values, `v:"x"` the item of
//! a set, and `i:3` the item of a list by position. A [`FieldSet`] is a trie of paths; in
//! `FieldsV1`, every node is a JSON object whose keys are serialized path elements and whose
//! `"."` key marks that the node's own path is in the set.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Map, Value};

use crate::value::{compare, display_value, write_go_json, write_go_string};

/// One step of a field path.
#[derive(Clone, Debug)]
pub enum PathElement {
    /// A struct field or map key.
    Field(String),
    /// A list-map item, by its key fields (sorted by name).
    Key(Vec<(String, Value)>),
    /// A set item, by value.
    Value(Value),
    /// A list item by position.
    Index(usize),
}

impl PathElement {
    /// A struct field or map key element.
    pub fn field(name: impl Into<String>) -> PathElement {
        PathElement::Field(name.into())
    }

    /// A key element; the fields are sorted by name.
    pub fn key(fields: impl IntoIterator<Item = (String, Value)>) -> PathElement {
        let mut fields: Vec<(String, Value)> = fields.into_iter().collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(fields)
    }

    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The `FieldsV1` key of this element (`f:name`, `k:{...}`, `v:...`, `i:3`).
    pub fn serialize(&self) -> String {
        let mut out = String::new();
        match self {
            PathElement::Field(name) => {
                out.push_str("f:");
                out.push_str(name);
            }
            PathElement::Key(fields) => {
                out.push_str("k:{");
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_go_string(&mut out, name);
                    out.push(':');
                    write_go_json(&mut out, value);
                }
                out.push('}');
            }
            PathElement::Value(v) => {
                out.push_str("v:");
                write_go_json(&mut out, v);
            }
            PathElement::Index(i) => {
                out.push_str("i:");
                out.push_str(&i.to_string());
            }
        }
        out
    }

    /// Parses a `FieldsV1` key. `Ok(None)` for an unknown prefix (skipped, as upstream does).
    pub fn parse(s: &str) -> Result<Option<PathElement>, String> {
        let (prefix, rest) = match s.split_at_checked(2) {
            Some((p, r)) if p.ends_with(':') => (p, r),
            _ => return Err(format!("invalid path element {s:?}")),
        };
        match prefix {
            "f:" => Ok(Some(PathElement::Field(rest.to_string()))),
            "v:" => serde_json::from_str::<Value>(rest)
                .map(|v| Some(PathElement::Value(v)))
                .map_err(|e| format!("invalid value in path element {s:?}: {e}")),
            "k:" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(map)) => Ok(Some(PathElement::key(map))),
                Ok(_) => Err(format!("path element {s:?}: key must be a JSON object")),
                Err(e) => Err(format!("invalid key in path element {s:?}: {e}")),
            },
            "i:" => rest
                .parse::<usize>()
                .map(|i| Some(PathElement::Index(i)))
                .map_err(|e| format!("invalid index in path element {s:?}: {e}")),
            _ => Ok(None),
        }
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for ((an, av), (bn, bv)) in a.iter().zip(b) {
                    let c = an.cmp(bn).then_with(|| compare(av, bv));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => compare(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl fmt::Display for PathElement {
    /// As upstream prints paths in conflicts: `.name`, `[name="nginx"]`, `[="x"]`, `[3]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(n, v)| format!("{n}={}", display_value(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", display_value(v)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A field path.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Path(pub Vec<PathElement>);

impl Path {
    /// A path of field names: `Path::fields(&["spec", "replicas"])`.
    pub fn fields(names: &[&str]) -> Path {
        Path(names.iter().map(|n| PathElement::field(*n)).collect())
    }
}

impl fmt::Display for Path {
    /// `.spec.containers[name="nginx"].image`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pe in &self.0 {
            write!(f, "{pe}")?;
        }
        Ok(())
    }
}

/// A set of field paths, stored as a trie. Children are never empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// Paths that end here (sorted).
    members: Vec<PathElement>,
    /// Sub-tries (sorted by element, never empty).
    children: Vec<(PathElement, FieldSet)>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Builds a set from members and children given in any order.
    pub(crate) fn from_parts(
        mut members: Vec<PathElement>,
        mut children: Vec<(PathElement, FieldSet)>,
    ) -> FieldSet {
        members.sort();
        members.dedup();
        children.retain(|(_, s)| !s.is_empty());
        children.sort_by(|a, b| a.0.cmp(&b.0));
        // Merge children that share an element (only possible with duplicated list items).
        let mut merged: Vec<(PathElement, FieldSet)> = Vec::with_capacity(children.len());
        for (pe, set) in children {
            match merged.last_mut() {
                Some((last, s)) if *last == pe => *s = s.union(&set),
                _ => merged.push((pe, set)),
            }
        }
        FieldSet {
            members,
            children: merged,
        }
    }

    /// Whether the set holds no path.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// The number of paths in the set.
    pub fn len(&self) -> usize {
        self.members.len() + self.children.iter().map(|(_, s)| s.len()).sum::<usize>()
    }

    /// The paths that end at this node (sorted).
    pub fn members(&self) -> &[PathElement] {
        &self.members
    }

    /// The sub-sets under each element, in element order.
    pub fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter().map(|(pe, s)| (pe, s))
    }

    /// Adds a path. The empty path (the whole object) is not tracked, as upstream.
    pub fn insert(&mut self, path: &[PathElement]) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut node = self;
        for pe in parents {
            node = node.descend(pe);
        }
        if let Err(at) = node.members.binary_search(last) {
            node.members.insert(at, last.clone());
        }
    }

    /// Adds `set`'s paths under `path`.
    pub fn insert_set(&mut self, path: &[PathElement], set: FieldSet) {
        if set.is_empty() {
            return;
        }
        let mut node = self;
        for pe in path {
            node = node.descend(pe);
        }
        *node = if node.is_empty() {
            set
        } else {
            node.union(&set)
        };
    }

    fn descend(&mut self, pe: &PathElement) -> &mut FieldSet {
        let at = match self.children.binary_search_by(|(p, _)| p.cmp(pe)) {
            Ok(at) => at,
            Err(at) => {
                self.children.insert(at, (pe.clone(), FieldSet::new()));
                at
            }
        };
        &mut self.children[at].1
    }

    /// Whether `path` is in the set (the empty path never is).
    pub fn has(&self, path: &[PathElement]) -> bool {
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        let mut node = self;
        for pe in parents {
            match node.child(pe) {
                Some(n) => node = n,
                None => return false,
            }
        }
        node.members.binary_search(last).is_ok()
    }

    /// Whether the one-element path `pe` is in the set.
    pub fn has_member(&self, pe: &PathElement) -> bool {
        self.members.binary_search(pe).is_ok()
    }

    /// The paths under `pe` (with `pe` removed), if any.
    pub fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children
            .binary_search_by(|(p, _)| p.cmp(pe))
            .ok()
            .map(|at| &self.children[at].1)
    }

    /// The paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let members = merge_sorted(&self.members, &other.members, |a, b| a.cmp(b), true, true);
        let mut children = Vec::with_capacity(self.children.len().max(other.children.len()));
        let (mut i, mut j) = (0, 0);
        while i < self.children.len() && j < other.children.len() {
            let (a, b) = (&self.children[i], &other.children[j]);
            match a.0.cmp(&b.0) {
                Ordering::Less => {
                    children.push(a.clone());
                    i += 1;
                }
                Ordering::Greater => {
                    children.push(b.clone());
                    j += 1;
                }
                Ordering::Equal => {
                    children.push((a.0.clone(), a.1.union(&b.1)));
                    i += 1;
                    j += 1;
                }
            }
        }
        children.extend_from_slice(&self.children[i..]);
        children.extend_from_slice(&other.children[j..]);
        FieldSet { members, children }
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self
            .members
            .iter()
            .filter(|m| other.has_member(m))
            .cloned()
            .collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, s)| {
                let o = other.child(pe)?;
                let r = s.intersection(o);
                (!r.is_empty()).then(|| (pe.clone(), r))
            })
            .collect();
        FieldSet { members, children }
    }

    /// The paths of `self` that are not in `other` (path by path: removing a parent does not
    /// remove its children).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self
            .members
            .iter()
            .filter(|m| !other.has_member(m))
            .cloned()
            .collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, s)| match other.child(pe) {
                None => Some((pe.clone(), s.clone())),
                Some(o) => {
                    let r = s.difference(o);
                    (!r.is_empty()).then(|| (pe.clone(), r))
                }
            })
            .collect();
        FieldSet { members, children }
    }

    /// Like [`difference`](Self::difference), but a path of `other` also removes everything
    /// under it.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let members = self
            .members
            .iter()
            .filter(|m| !other.has_member(m))
            .cloned()
            .collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, s)| {
                if other.has_member(pe) {
                    return None;
                }
                match other.child(pe) {
                    None => Some((pe.clone(), s.clone())),
                    Some(o) => {
                        let r = s.recursive_difference(o);
                        (!r.is_empty()).then(|| (pe.clone(), r))
                    }
                }
            })
            .collect();
        FieldSet { members, children }
    }

    /// Every path, members of a node before its children (upstream's iteration order).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect(&mut prefix, &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Path>) {
        for m in &self.members {
            let mut p = prefix.clone();
            p.push(m.clone());
            out.push(Path(p));
        }
        for (pe, s) in &self.children {
            prefix.push(pe.clone());
            s.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The `FieldsV1` JSON of this set.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit(false))
    }

    fn emit(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".to_string(), Value::Object(Map::new()));
        }
        let (mut i, mut j) = (0, 0);
        loop {
            let m = self.members.get(i);
            let c = self.children.get(j);
            match (m, c) {
                (None, None) => break,
                (Some(m), None) => {
                    out.insert(m.serialize(), Value::Object(Map::new()));
                    i += 1;
                }
                (None, Some((pe, s))) => {
                    out.insert(pe.serialize(), Value::Object(s.emit(false)));
                    j += 1;
                }
                (Some(m), Some((pe, s))) => match m.cmp(pe) {
                    Ordering::Less => {
                        out.insert(m.serialize(), Value::Object(Map::new()));
                        i += 1;
                    }
                    Ordering::Greater => {
                        out.insert(pe.serialize(), Value::Object(s.emit(false)));
                        j += 1;
                    }
                    Ordering::Equal => {
                        out.insert(pe.serialize(), Value::Object(s.emit(true)));
                        i += 1;
                        j += 1;
                    }
                },
            }
        }
        out
    }

    /// Parses `FieldsV1` JSON.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        match v {
            Value::Object(map) => Ok(FieldSet::read(map)?.0),
            Value::Null => Ok(FieldSet::new()),
            _ => Err("fieldsV1 must be a JSON object".to_string()),
        }
    }

    /// Returns the node's children and whether the node itself is a member.
    fn read(map: &Map<String, Value>) -> Result<(FieldSet, bool), String> {
        let mut members = Vec::new();
        let mut children = Vec::new();
        let mut is_member = false;
        for (key, v) in map {
            if key == "." {
                is_member = true;
                continue;
            }
            let Some(pe) = PathElement::parse(key)? else {
                continue;
            };
            let sub = match v {
                Value::Object(m) => m,
                _ => return Err(format!("{key}: expected a JSON object")),
            };
            let (grandchildren, child_member) = FieldSet::read(sub)?;
            if child_member {
                members.push(pe.clone());
            }
            if !grandchildren.is_empty() {
                children.push((pe, grandchildren));
            }
        }
        let set = FieldSet::from_parts(members, children);
        if set.is_empty() {
            is_member = true;
        }
        Ok((set, is_member))
    }
}

fn merge_sorted<T: Clone>(
    a: &[T],
    b: &[T],
    cmp: impl Fn(&T, &T) -> Ordering,
    keep_a_only: bool,
    keep_b_only: bool,
) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match cmp(&a[i], &b[j]) {
            Ordering::Less => {
                if keep_a_only {
                    out.push(a[i].clone());
                }
                i += 1;
            }
            Ordering::Greater => {
                if keep_b_only {
                    out.push(b[j].clone());
                }
                j += 1;
            }
            Ordering::Equal => {
                out.push(a[i].clone());
                i += 1;
                j += 1;
            }
        }
    }
    if keep_a_only {
        out.extend_from_slice(&a[i..]);
    }
    if keep_b_only {
        out.extend_from_slice(&b[j..]);
    }
    out
}

impl fmt::Display for FieldSet {
    /// One path per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.paths().iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(s: &str) -> PathElement {
        PathElement::field(s)
    }

    #[test]
    fn fields_v1_round_trip() {
        let v = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:containers": {
                    "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}
                },
                "f:finalizers": {"v:\"a\"": {}},
                "f:replicas": {}
            }
        });
        let set = FieldSet::from_fields_v1(&v).unwrap();
        assert!(set.has(&[f("spec"), f("replicas")]));
        assert!(set.has(&[f("metadata"), f("labels")]));
        let key = PathElement::key([("name".to_string(), json!("nginx"))]);
        assert!(set.has(&[f("spec"), f("containers"), key.clone()]));
        assert!(set.has(&[f("spec"), f("containers"), key, f("image")]));
        assert!(!set.has(&[f("spec")]));
        assert_eq!(set.to_fields_v1(), v);
        assert_eq!(
            set.to_fields_v1().to_string(),
            serde_json::to_string(&v).unwrap()
        );
    }

    #[test]
    fn ordering_fields_before_keys_before_values() {
        let mut s = FieldSet::new();
        s.insert(&[PathElement::Index(0)]);
        s.insert(&[PathElement::Value(json!("x"))]);
        s.insert(&[PathElement::key([("a".into(), json!(1))])]);
        s.insert(&[f("z")]);
        let keys: Vec<String> = s
            .to_fields_v1()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, vec!["f:z", "k:{\"a\":1}", "v:\"x\"", "i:0"]);
    }

    #[test]
    fn set_operations() {
        let mut a = FieldSet::new();
        a.insert(&[f("a"), f("b")]);
        a.insert(&[f("a"), f("c")]);
        a.insert(&[f("d")]);
        let mut b = FieldSet::new();
        b.insert(&[f("a")]);
        b.insert(&[f("a"), f("b")]);
        assert_eq!(a.difference(&b).paths().len(), 2);
        assert_eq!(
            a.recursive_difference(&b).paths(),
            vec![Path::fields(&["d"])]
        );
        assert_eq!(a.intersection(&b).paths(), vec![Path::fields(&["a", "b"])]);
        assert_eq!(a.union(&b).len(), 4);
        let key = PathElement::key([("name".to_string(), json!("nginx"))]);
        let p = Path(vec![f("spec"), f("containers"), key, f("image")]);
        assert_eq!(p.to_string(), ".spec.containers[name=\"nginx\"].image");
    }
}
