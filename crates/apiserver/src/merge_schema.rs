//! The built-in kinds' merge metadata for strategic merge and server-side apply, taken from
//! upstream's Go markers (`+patchStrategy`, `+patchMergeKey`, `+listType`, `+listMapKey`,
//! `+mapType`, `+structType`) as the kubeproto schema records them. Built once, on first use.

use std::sync::OnceLock;

use reddwarf_kubeproto::{FieldInfo, FieldType, SpecialType};
use reddwarf_merge::{FieldMeta, MemorySchema, Schema, Shape, TypeRef};

static SCHEMA: OnceLock<MemorySchema> = OnceLock::new();

pub fn schema() -> &'static MemorySchema {
    SCHEMA.get_or_init(build)
}

/// The root type of a kind, or None for kinds without a compiled-in schema (custom resources).
pub fn root(api_version: &str, kind: &str) -> Option<TypeRef> {
    schema().root(api_version, kind)
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
