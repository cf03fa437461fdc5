//! Schema metadata: what the merge algorithms need to know about a kind's fields.
//!
//! Types are named by [`TypeRef`]s; a [`Schema`] answers, for a struct type and a field name,
//! the field's [`FieldMeta`]: its shape, the struct type of its value (or of its elements), and
//! the markers upstream's Go types carry (`+patchStrategy`, `+patchMergeKey`, `+listType`,
//! `+listMapKey`, `+mapType`, `+structType`). Everything the schema does not describe is
//! handled as upstream handles schemaless data: maps are merged key by key, lists are atomic.
//!
//! [`MemorySchema`] is a small table-driven implementation, built from JSON, for tests and
//! for kinds described by hand.

use std::collections::HashMap;

use serde_json::Value;

/// The name of a struct type, e.g. `io.k8s.api.core.v1.PodSpec` (any naming works, as long as
/// the [`Schema`] understands it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeRef(pub String);

impl TypeRef {
    /// Names a type.
    pub fn new(name: impl Into<String>) -> TypeRef {
        TypeRef(name.into())
    }
}

/// The shape of a field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Shape {
    /// A string, number or boolean (also `Quantity`, `IntOrString`, `Time`: JSON scalars).
    Scalar,
    /// A struct of the type [`FieldMeta::ty`].
    Struct,
    /// A list; its elements are structs of [`FieldMeta::ty`], or schemaless when `ty` is None.
    List,
    /// A map with string keys (`map[string]T`); values as for lists.
    Map,
    /// No schema (`x-kubernetes-preserve-unknown-fields`, `interface{}`): maps are granular,
    /// lists atomic, decided by the value itself.
    #[default]
    Untyped,
    /// An opaque value owned and replaced as a whole (`runtime.RawExtension`).
    Raw,
}

/// Metadata of one field of a struct type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldMeta {
    /// Whether the value is a scalar, struct, list, map, untyped or raw.
    pub shape: Shape,
    /// The struct type of the value (for [`Shape::Struct`]) or of the elements (for
    /// [`Shape::List`] and [`Shape::Map`]); None for scalars and schemaless elements.
    pub ty: Option<TypeRef>,
    /// `+patchStrategy`: any of `merge`, `retainKeys`, `replace` (comma-separated entries are
    /// accepted too: `["merge,retainKeys"]`).
    pub patch_strategy: Vec<String>,
    /// `+patchMergeKey`.
    pub patch_merge_key: Option<String>,
    /// `+listType`: `atomic`, `set` or `map`. When absent, server-side apply derives it from
    /// the patch strategy as upstream's OpenAPI conversion does (`merge` with a merge key is a
    /// map keyed by it, `merge` without one a set, anything else atomic).
    pub list_type: Option<String>,
    /// `+listMapKey` (for `list_type = map`).
    pub list_map_keys: Vec<String>,
    /// `+mapType`: `atomic` or `granular` (default). On a struct field, `atomic` makes the
    /// struct atomic.
    pub map_type: Option<String>,
    /// `+structType=atomic`: the struct value (or, for lists and maps, each struct element) is
    /// owned and replaced as a whole. A type can also be atomic everywhere through
    /// [`Schema::struct_atomic`].
    pub struct_atomic: bool,
    /// The field's default, used when a list-map key field is missing from an item (e.g. a
    /// container port's `protocol` defaults to `TCP`).
    pub default: Option<Value>,
}

impl FieldMeta {
    /// Metadata of a scalar field.
    pub fn scalar() -> FieldMeta {
        FieldMeta {
            shape: Shape::Scalar,
            ..FieldMeta::default()
        }
    }

    /// Metadata of a field holding a struct of type `ty`.
    pub fn structure(ty: impl Into<String>) -> FieldMeta {
        FieldMeta {
            shape: Shape::Struct,
            ty: Some(TypeRef::new(ty)),
            ..FieldMeta::default()
        }
    }

    /// The patch strategies, with comma-separated entries split.
    pub fn strategies(&self) -> Vec<&str> {
        self.patch_strategy
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// Where the merge algorithms get their type information from.
pub trait Schema {
    /// The type of the object root for apiVersion/kind; None for a kind without a schema
    /// (custom resources): the object is then handled schemaless.
    fn root(&self, api_version: &str, kind: &str) -> Option<TypeRef>;

    /// Metadata of field `name` of the struct type `ty`; None for a field the type does not
    /// declare (it is then handled schemaless).
    fn field(&self, ty: &TypeRef, name: &str) -> Option<&FieldMeta>;

    /// Whether the struct type is `+structType=atomic` wherever it is used.
    fn struct_atomic(&self, _ty: &TypeRef) -> bool {
        false
    }
}

/// A schema that describes nothing: every object is handled schemaless.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSchema;

impl Schema for NoSchema {
    fn root(&self, _: &str, _: &str) -> Option<TypeRef> {
        None
    }
    fn field(&self, _: &TypeRef, _: &str) -> Option<&FieldMeta> {
        None
    }
}

/// How server-side apply treats a list.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ListKind<'s> {
    Atomic,
    Set,
    Map(&'s [String]),
}

/// The resolved type at one position of a value.
#[derive(Clone, Copy)]
pub(crate) enum Node<'s> {
    Struct {
        ty: &'s TypeRef,
        atomic: bool,
    },
    Map {
        elem: Option<&'s TypeRef>,
        atomic: bool,
        elem_atomic: bool,
    },
    List {
        elem: Option<&'s TypeRef>,
        kind: ListKind<'s>,
        elem_atomic: bool,
    },
    Scalar,
    /// Schemaless: maps granular, lists atomic.
    Deduced,
    /// Opaque: one leaf.
    Raw,
}

impl<'s> Node<'s> {
    pub(crate) fn root(root: Option<&'s TypeRef>, schema: &'s dyn Schema) -> Node<'s> {
        match root {
            Some(ty) => Node::Struct {
                ty,
                atomic: schema.struct_atomic(ty),
            },
            None => Node::Deduced,
        }
    }

    fn struct_of(ty: Option<&'s TypeRef>, atomic: bool, schema: &'s dyn Schema) -> Node<'s> {
        match ty {
            Some(ty) => Node::Struct {
                ty,
                atomic: atomic || schema.struct_atomic(ty),
            },
            None => Node::Deduced,
        }
    }

    pub(crate) fn from_meta(meta: &'s FieldMeta, schema: &'s dyn Schema) -> Node<'s> {
        match meta.shape {
            Shape::Scalar => Node::Scalar,
            Shape::Raw => Node::Raw,
            Shape::Untyped => Node::Deduced,
            Shape::Struct => Node::struct_of(
                meta.ty.as_ref(),
                meta.struct_atomic || meta.map_type.as_deref() == Some("atomic"),
                schema,
            ),
            Shape::Map => Node::Map {
                elem: meta.ty.as_ref(),
                atomic: meta.map_type.as_deref() == Some("atomic"),
                elem_atomic: meta.struct_atomic,
            },
            Shape::List => Node::List {
                elem: meta.ty.as_ref(),
                kind: list_kind(meta),
                elem_atomic: meta.struct_atomic,
            },
        }
    }

    /// The node of field/key `name` of a map-like node.
    pub(crate) fn child(self, name: &str, schema: &'s dyn Schema) -> Node<'s> {
        match self {
            Node::Struct { ty, .. } => match schema.field(ty, name) {
                Some(meta) => Node::from_meta(meta, schema),
                None => Node::Deduced,
            },
            Node::Map {
                elem, elem_atomic, ..
            } => Node::struct_of(elem, elem_atomic, schema),
            Node::Raw => Node::Raw,
            _ => Node::Deduced,
        }
    }

    /// The node of the elements of a list node.
    pub(crate) fn elem(self, schema: &'s dyn Schema) -> Node<'s> {
        match self {
            Node::List {
                elem, elem_atomic, ..
            } => Node::struct_of(elem, elem_atomic, schema),
            Node::Raw => Node::Raw,
            _ => Node::Deduced,
        }
    }

    /// Whether `name` is a declared field of this struct node.
    pub(crate) fn is_named(self, name: &str, schema: &'s dyn Schema) -> bool {
        match self {
            Node::Struct { ty, .. } => schema.field(ty, name).is_some(),
            _ => false,
        }
    }

    /// The default of a list-map key field of this list's elements.
    pub(crate) fn key_default(self, key: &str, schema: &'s dyn Schema) -> Option<&'s Value> {
        match self {
            Node::List { elem: Some(ty), .. } => {
                schema.field(ty, key).and_then(|m| m.default.as_ref())
            }
            _ => None,
        }
    }
}

fn list_kind(meta: &FieldMeta) -> ListKind<'_> {
    match meta.list_type.as_deref() {
        Some("atomic") => ListKind::Atomic,
        Some("set") => ListKind::Set,
        Some("map") if !meta.list_map_keys.is_empty() => ListKind::Map(&meta.list_map_keys),
        Some(_) => ListKind::Atomic,
        None => {
            if meta.strategies().contains(&"merge") {
                match &meta.patch_merge_key {
                    Some(key) => ListKind::Map(std::slice::from_ref(key)),
                    None => ListKind::Set,
                }
            } else {
                ListKind::Atomic
            }
        }
    }
}

/// An in-memory [`Schema`] built from a JSON description:
///
/// ```json
/// {
///   "roots": { "apps/v1/Deployment": "Deployment" },
///   "types": {
///     "Deployment": { "metadata": "ObjectMeta", "spec": "DeploymentSpec" },
///     "DeploymentSpec": { "replicas": "scalar", "template": "PodTemplateSpec" },
///     "PodSpec": {
///       "containers": { "list": "Container", "patchStrategy": "merge",
///                       "patchMergeKey": "name", "listType": "map", "listMapKeys": ["name"] },
///       "nodeSelector": { "map": "scalar", "mapType": "atomic" }
///     },
///     "LocalObjectReference": { "$atomic": true, "name": "scalar" }
///   }
/// }
/// ```
///
/// A field is a string — `scalar` (also `string`, `integer`, `number`, `boolean`), `untyped`,
/// `raw`, or the name of a struct type — or an object with one of `list`, `map` (element:
/// `scalar` or a struct type name) or `type` (a struct), plus the markers `patchStrategy`,
/// `patchMergeKey`, `listType`, `listMapKeys`, `mapType`, `structType` and `default`.
/// A type with `"$atomic": true` is `+structType=atomic`.
#[derive(Clone, Debug, Default)]
pub struct MemorySchema {
    roots: HashMap<(String, String), TypeRef>,
    types: HashMap<TypeRef, HashMap<String, FieldMeta>>,
    atomic: HashMap<TypeRef, bool>,
}

impl MemorySchema {
    /// An empty schema; fill it with [`MemorySchema::add_root`] and [`MemorySchema::add_field`], or build it with [`MemorySchema::from_json`].
    pub fn new() -> MemorySchema {
        MemorySchema::default()
    }

    /// Builds a schema from the JSON description above.
    pub fn from_json(doc: &Value) -> Result<MemorySchema, String> {
        let mut schema = MemorySchema::new();
        if let Some(roots) = doc.get("roots") {
            let roots = roots.as_object().ok_or("roots: expected a map")?;
            for (gvk, ty) in roots {
                let (api_version, kind) = gvk
                    .rsplit_once('/')
                    .ok_or_else(|| format!("roots: {gvk:?} is not <apiVersion>/<kind>"))?;
                let ty = ty
                    .as_str()
                    .ok_or_else(|| format!("roots.{gvk}: expected a type name"))?;
                schema.add_root(api_version, kind, ty);
            }
        }
        if let Some(types) = doc.get("types") {
            let types = types.as_object().ok_or("types: expected a map")?;
            for (name, fields) in types {
                let fields = fields
                    .as_object()
                    .ok_or_else(|| format!("types.{name}: expected a map of fields"))?;
                let mut table = HashMap::new();
                for (field, spec) in fields {
                    if field == "$atomic" {
                        schema
                            .atomic
                            .insert(TypeRef::new(name.clone()), spec.as_bool() == Some(true));
                        continue;
                    }
                    let meta =
                        parse_field(spec).map_err(|e| format!("types.{name}.{field}: {e}"))?;
                    table.insert(field.clone(), meta);
                }
                schema
                    .types
                    .entry(TypeRef::new(name.clone()))
                    .or_default()
                    .extend(table);
            }
        }
        Ok(schema)
    }

    /// Maps `api_version`/`kind` to its root struct type `ty`.
    pub fn add_root(&mut self, api_version: &str, kind: &str, ty: &str) {
        self.roots.insert(
            (api_version.to_string(), kind.to_string()),
            TypeRef::new(ty),
        );
    }

    /// Adds (or replaces) field `name` of struct type `ty`.
    pub fn add_field(&mut self, ty: &str, name: &str, meta: FieldMeta) {
        self.types
            .entry(TypeRef::new(ty))
            .or_default()
            .insert(name.to_string(), meta);
    }

    /// Marks struct type `ty` atomic (`+structType=atomic`): owned and replaced as a whole.
    pub fn set_struct_atomic(&mut self, ty: &str, atomic: bool) {
        self.atomic.insert(TypeRef::new(ty), atomic);
    }
}

fn scalar_name(s: &str) -> bool {
    matches!(
        s,
        "scalar" | "string" | "integer" | "number" | "boolean" | "bool" | "int"
    )
}

fn parse_field(spec: &Value) -> Result<FieldMeta, String> {
    match spec {
        Value::String(s) => Ok(match s.as_str() {
            s if scalar_name(s) => FieldMeta::scalar(),
            "untyped" => FieldMeta::default(),
            "raw" => FieldMeta {
                shape: Shape::Raw,
                ..FieldMeta::default()
            },
            ty => FieldMeta::structure(ty),
        }),
        Value::Object(o) => {
            let mut meta = FieldMeta::default();
            let elem = |v: &Value| -> Result<Option<TypeRef>, String> {
                let s = v.as_str().ok_or("element type: expected a string")?;
                Ok(if scalar_name(s) || s == "untyped" {
                    None
                } else {
                    Some(TypeRef::new(s))
                })
            };
            if let Some(e) = o.get("list") {
                meta.shape = Shape::List;
                meta.ty = elem(e)?;
            } else if let Some(e) = o.get("map") {
                meta.shape = Shape::Map;
                meta.ty = elem(e)?;
            } else if let Some(t) = o.get("type") {
                meta = parse_field(t)?;
            } else {
                return Err("expected one of list, map, type".into());
            }
            let string = |key: &str| -> Result<Option<String>, String> {
                match o.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(format!("{key}: expected a string")),
                }
            };
            if let Some(s) = string("patchStrategy")? {
                meta.patch_strategy = s.split(',').map(|s| s.trim().to_string()).collect();
            }
            meta.patch_merge_key = string("patchMergeKey")?;
            meta.list_type = string("listType")?;
            meta.map_type = string("mapType")?;
            if let Some(keys) = o.get("listMapKeys") {
                meta.list_map_keys = keys
                    .as_array()
                    .ok_or("listMapKeys: expected a list")?
                    .iter()
                    .map(|k| k.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("listMapKeys: expected strings")?;
            }
            meta.struct_atomic = string("structType")?.as_deref() == Some("atomic");
            meta.default = o.get("default").cloned();
            Ok(meta)
        }
        _ => Err("expected a type name or a map".into()),
    }
}

impl Schema for MemorySchema {
    fn root(&self, api_version: &str, kind: &str) -> Option<TypeRef> {
        self.roots
            .get(&(api_version.to_string(), kind.to_string()))
            .cloned()
    }

    fn field(&self, ty: &TypeRef, name: &str) -> Option<&FieldMeta> {
        self.types.get(ty)?.get(name)
    }

    fn struct_atomic(&self, ty: &TypeRef) -> bool {
        self.atomic.get(ty).copied().unwrap_or(false)
    }
}
