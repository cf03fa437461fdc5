//! The built-in kinds' merge metadata for strategic merge and server-side apply, taken from
//! upstream's Go markers (`+patchStrategy`, `+patchMergeKey`, `+listType`, `+listMapKey`,
//! `+mapType`, `+structType`) as the kubeproto schema records them. Built once, on first use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use reddwarf_kubeproto::{FieldInfo, FieldType, SpecialType};
use reddwarf_merge::{FieldMeta, MemorySchema, Schema, Shape, TypeRef};
use reddwarf_resources::ResourceKind;
use serde_json::Value;

static SCHEMA: OnceLock<MemorySchema> = OnceLock::new();

pub fn schema() -> &'static MemorySchema {
    SCHEMA.get_or_init(build)
}

/// The root type of a kind, or None for kinds without a compiled-in schema (custom resources).
pub fn root(api_version: &str, kind: &str) -> Option<TypeRef> {
    schema().root(api_version, kind)
}

/// Type names of a custom resource's schema start with this (no built-in type does).
const CUSTOM: &str = "custom:";

/// A custom resource's merge metadata, from its definition's schema
/// (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`), with
/// `metadata` typed as the built-in ObjectMeta.
pub struct CustomSchema {
    own: MemorySchema,
}

impl Schema for CustomSchema {
    fn root(&self, api_version: &str, kind: &str) -> Option<TypeRef> {
        self.own.root(api_version, kind)
    }

    fn field(&self, ty: &TypeRef, name: &str) -> Option<&FieldMeta> {
        if ty.0.starts_with(CUSTOM) {
            self.own.field(ty, name)
        } else {
            schema().field(ty, name)
        }
    }

    fn struct_atomic(&self, ty: &TypeRef) -> bool {
        if ty.0.starts_with(CUSTOM) {
            self.own.struct_atomic(ty)
        } else {
            schema().struct_atomic(ty)
        }
    }
}

/// The merge schema of a kind: the built-ins', or one built from a custom resource's schema
/// (cached by the schema's text, so a definition's objects share one).
pub fn for_kind(kind: &ResourceKind) -> (Arc<dyn Schema + Send + Sync>, Option<TypeRef>) {
    static BUILTIN: OnceLock<Arc<dyn Schema + Send + Sync>> = OnceLock::new();
    let av = kind.api_version();
    let Some(json) = kind.strategy.openapi_schema() else {
        let builtin = BUILTIN.get_or_init(|| Arc::new(BuiltinRef)).clone();
        return (builtin, root(&av, kind.kind));
    };
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<CustomSchema>>>> = OnceLock::new();
    let key = format!("{av}/{}/{:x}", kind.kind, kind.strategy.schema_digest());
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    // Definitions come and go; a bounded cache keeps memory flat.
    if cache.len() > 256 {
        cache.clear();
    }
    let custom = cache
        .entry(key)
        .or_insert_with(|| Arc::new(build_custom(&av, kind.kind, json)))
        .clone();
    let root = custom.root(&av, kind.kind);
    (custom, root)
}

/// The built-in schema behind an `Arc<dyn Schema>`.
struct BuiltinRef;

impl Schema for BuiltinRef {
    fn root(&self, api_version: &str, kind: &str) -> Option<TypeRef> {
        schema().root(api_version, kind)
    }
    fn field(&self, ty: &TypeRef, name: &str) -> Option<&FieldMeta> {
        schema().field(ty, name)
    }
    fn struct_atomic(&self, ty: &TypeRef) -> bool {
        schema().struct_atomic(ty)
    }
}

fn build_custom(api_version: &str, kind: &str, json: &Value) -> CustomSchema {
    let mut own = MemorySchema::new();
    let root = format!("{CUSTOM}{api_version}/{kind}");
    own.add_root(api_version, kind, &root);
    add_struct(&mut own, &root, json);
    // The root's metadata is ObjectMeta, whatever the schema says of it.
    if let Some(meta) =
        reddwarf_kubeproto::message("k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    {
        own.add_field(&root, "metadata", FieldMeta::structure(meta.name));
    }
    for f in ["apiVersion", "kind"] {
        own.add_field(&root, f, FieldMeta::scalar());
    }
    CustomSchema { own }
}

/// Adds the fields of an object schema as struct type `ty`.
fn add_struct(own: &mut MemorySchema, ty: &str, node: &Value) {
    if node["x-kubernetes-map-type"] == "atomic" {
        own.set_struct_atomic(ty, true);
    }
    let Some(props) = node["properties"].as_object() else {
        return;
    };
    for (name, sub) in props {
        let meta = custom_field(own, &format!("{ty}.{name}"), sub);
        own.add_field(ty, name, meta);
    }
}

/// The merge metadata of one property of a custom resource's schema; struct types are
/// named by their path under the root.
fn custom_field(own: &mut MemorySchema, path: &str, node: &Value) -> FieldMeta {
    let struct_of = |own: &mut MemorySchema, path: &str, n: &Value| -> Option<TypeRef> {
        if n["properties"].is_object() {
            add_struct(own, path, n);
            Some(TypeRef::new(path))
        } else {
            None
        }
    };
    match node["type"].as_str().unwrap_or("") {
        "array" => {
            let items = &node["items"];
            let ty = struct_of(own, &format!("{path}[]"), items);
            // A list without a list type is atomic in a custom resource (upstream's
            // structural-schema default).
            let list_type = node["x-kubernetes-list-type"]
                .as_str()
                .unwrap_or("atomic")
                .to_string();
            let keys: Vec<String> = node["x-kubernetes-list-map-keys"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(t) = &ty {
                for k in &keys {
                    if let Some(d) = items.pointer(&format!("/properties/{k}/default")) {
                        let mut m = FieldMeta::scalar();
                        m.default = Some(d.clone());
                        own.add_field(&t.0, k, m);
                    }
                }
            }
            FieldMeta {
                shape: Shape::List,
                struct_atomic: items["x-kubernetes-map-type"] == "atomic",
                ty,
                list_type: Some(list_type),
                list_map_keys: keys,
                ..FieldMeta::default()
            }
        }
        "object" if node["properties"].is_object() => {
            let ty = struct_of(own, path, node);
            FieldMeta {
                shape: Shape::Struct,
                ty,
                map_type: node["x-kubernetes-map-type"].as_str().map(String::from),
                ..FieldMeta::default()
            }
        }
        "object" if node["additionalProperties"].is_object() => {
            let values = &node["additionalProperties"];
            FieldMeta {
                shape: Shape::Map,
                ty: struct_of(own, &format!("{path}{{}}"), values),
                map_type: node["x-kubernetes-map-type"].as_str().map(String::from),
                ..FieldMeta::default()
            }
        }
        "object" | "" => FieldMeta {
            shape: Shape::Untyped,
            map_type: node["x-kubernetes-map-type"].as_str().map(String::from),
            ..FieldMeta::default()
        },
        _ => FieldMeta::scalar(),
    }
}

fn build() -> MemorySchema {
    let mut s = MemorySchema::new();
    for m in reddwarf_kubeproto::messages() {
        for (api_version, kind) in &m.kinds {
            s.add_root(api_version, kind, m.name);
        }
        if m.atomic {
            s.set_struct_atomic(m.name, true);
        }
        for f in m.properties() {
            s.add_field(m.name, f.json, field_meta(m.name, f));
        }
    }
    s
}

fn element(f: &FieldInfo) -> (Shape, Option<TypeRef>) {
    match f.ty {
        FieldType::Scalar(_) => (Shape::Scalar, None),
        FieldType::Message(name) => (Shape::Struct, Some(TypeRef::new(name))),
        FieldType::Special(_, sp) => match sp {
            // JSON scalars on the wire.
            SpecialType::Quantity
            | SpecialType::Time
            | SpecialType::MicroTime
            | SpecialType::Duration
            | SpecialType::IntOrString => (Shape::Scalar, None),
            SpecialType::StringList => (Shape::List, None),
            SpecialType::FieldsV1 => (Shape::Untyped, None),
            // Opaque documents, owned and replaced as a whole.
            _ => (Shape::Raw, None),
        },
    }
}

fn field_meta(owner: &str, f: &FieldInfo) -> FieldMeta {
    let (inner, ty) = element(f);
    let shape = if f.repeated {
        Shape::List
    } else if f.map {
        Shape::Map
    } else {
        inner
    };
    let ty = if matches!(inner, Shape::Struct) {
        ty
    } else {
        None
    };
    // Upstream defaults `protocol` to TCP; list-map keys that omit it must still match.
    let default = (f.json == "protocol"
        && (owner.ends_with(".ContainerPort")
            || owner.ends_with(".ServicePort")
            || owner.ends_with(".EndpointPort")))
    .then(|| serde_json::json!("TCP"));
    FieldMeta {
        shape,
        ty,
        patch_strategy: f
            .patch_strategy
            .map(|p| p.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default(),
        patch_merge_key: f.patch_merge_key.map(String::from),
        list_type: f.list_type.map(String::from),
        list_map_keys: f.list_map_keys.iter().map(|k| k.to_string()).collect(),
        map_type: f.map_type.map(String::from),
        struct_atomic: false,
        default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_upstream_markers() {
        let pod_spec = root("v1", "Pod")
            .and_then(|t| schema().field(&t, "spec").and_then(|f| f.ty.clone()))
            .expect("PodSpec");
        let c = schema().field(&pod_spec, "containers").expect("containers");
        assert_eq!(c.shape, Shape::List);
        assert_eq!(c.patch_merge_key.as_deref(), Some("name"));
        assert_eq!(c.list_map_keys, vec!["name"]);
        let container = c.ty.clone().expect("Container");
        let ports = schema().field(&container, "ports").expect("ports");
        assert_eq!(ports.patch_merge_key.as_deref(), Some("containerPort"));
        let port = ports.ty.clone().expect("ContainerPort");
        assert_eq!(
            schema()
                .field(&port, "protocol")
                .and_then(|f| f.default.clone()),
            Some(serde_json::json!("TCP"))
        );
        assert!(root("example.com/v1", "Widget").is_none());
    }
}

#[cfg(test)]
mod custom_tests {
    use super::*;
    use reddwarf_merge::{ManagedFields, Request};
    use serde_json::json;

    fn widget_kind() -> ResourceKind {
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"kind": "Widget", "plural": "widgets"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "size": {"type": "integer"},
                            "tags": {"type": "array", "items": {"type": "string"}},
                            "ports": {"type": "array", "x-kubernetes-list-type": "map",
                                "x-kubernetes-list-map-keys": ["name"],
                                "items": {"type": "object", "properties": {
                                    "name": {"type": "string"}, "port": {"type": "integer"}}}},
                        }}}}}}]},
            "status": {"acceptedNames": {"kind": "Widget", "plural": "widgets"},
                "conditions": [{"type": "Established", "status": "True"}]},
        });
        reddwarf_resources::custom::kinds_from_crd(&crd).remove(0)
    }

    #[test]
    fn custom_list_maps_merge_by_key_and_other_managers_keep_their_fields() {
        let kind = widget_kind();
        let (schema, root) = for_kind(&kind);
        assert!(root.is_some());
        let req = |manager| Request {
            manager,
            api_version: "example.com/v1",
            subresource: "",
            time: "2026-01-01T00:00:00Z",
            ignored: None,
        };
        let first = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w"}, "spec": {"size": 1, "tags": ["a"], "ports": [{"name": "http", "port": 80}]}});
        let a = reddwarf_merge::apply(
            &json!({}),
            &first,
            &ManagedFields::default(),
            false,
            &req("one"),
            schema.as_ref(),
            root.as_ref(),
        )
        .expect("first apply");
        let mut live = a.object.clone();
        a.managed_fields.write_to(&mut live);
        let second = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w"}, "spec": {"ports": [{"name": "https", "port": 443}]}});
        let managed = ManagedFields::from_object(&live).unwrap();
        let b = reddwarf_merge::apply(
            &live,
            &second,
            &managed,
            false,
            &req("two"),
            schema.as_ref(),
            root.as_ref(),
        )
        .expect("no conflict: different keys");
        assert_eq!(b.object["spec"]["size"], 1);
        assert_eq!(b.object["spec"]["tags"], json!(["a"]));
        assert_eq!(
            b.object["spec"]["ports"],
            json!([{"name": "http", "port": 80}, {"name": "https", "port": 443}])
        );
        // An atomic list (no list type) conflicts as a whole.
        let third = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w"}, "spec": {"tags": ["b"]}});
        let mut live = b.object.clone();
        b.managed_fields.write_to(&mut live);
        let managed = ManagedFields::from_object(&live).unwrap();
        assert!(reddwarf_merge::apply(
            &live,
            &third,
            &managed,
            false,
            &req("two"),
            schema.as_ref(),
            root.as_ref()
        )
        .is_err());
    }
}
