//! What the OpenAPI documents (v2 `/openapi/v2`, v3 `/openapi/v3/...`) share: component
//! schemas built from reddwarf-kubeproto's schema metadata and upstream's descriptions, the
//! paths and operations of each served resource, and the cache key of a document.
//!
//! Schemas follow upstream's generator: one definition per Go struct named like
//! `io.k8s.api.core.v1.PodSpec`, properties with type/format/description, `required`, `$ref`s
//! to named definitions (v3 wraps a `$ref` with siblings in `allOf`), Go embedded structs
//! flattened into their parent, `apiVersion`/`kind` where Go embeds TypeMeta,
//! `x-kubernetes-group-version-kind` on top-level kinds, the merge extensions
//! (`x-kubernetes-patch-strategy`, `-patch-merge-key`, `-list-type`, `-list-map-keys`,
//! `-map-type`) and the special types' own forms (Quantity, IntOrString, Time, ...).

use std::collections::{BTreeMap, HashMap, HashSet};

use reddwarf_kubeproto::{
    description, field_description, message, message_for_kind, FieldInfo, FieldType, MessageInfo,
    ScalarType, SpecialType,
};
use reddwarf_resources::ResourceKind;
use serde_json::{json, Map, Value};

/// Bump when the generated documents change shape, so clients' caches keyed by `?hash=` miss.
const GENERATOR_VERSION: &str = "1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    V2,
    V3,
}

impl Flavor {
    fn ref_prefix(self) -> &'static str {
        match self {
            Flavor::V2 => "#/definitions/",
            Flavor::V3 => "#/components/schemas/",
        }
    }

    pub(crate) fn reference(self, name: &str) -> Value {
        json!({"$ref": format!("{}{name}", self.ref_prefix())})
    }
}

pub(crate) const PATCH_DEFINITION: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const PATCH_PROTO: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Patch";

/// A set of component schemas: the definitions of the messages added and of every message
/// they reference. Each is kept serialized, so building a document never holds more than one
/// definition as a `Value` tree.
pub(crate) struct Definitions {
    flavor: Flavor,
    defs: BTreeMap<String, String>,
    gvks: HashMap<String, Vec<Value>>,
}

fn gvk_value(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

impl Definitions {
    pub(crate) fn new(flavor: Flavor) -> Definitions {
        Definitions {
            flavor,
            defs: BTreeMap::new(),
            gvks: HashMap::new(),
        }
    }

    /// Marks the definition `name` as the schema of a group/version/kind.
    pub(crate) fn add_gvk(&mut self, name: &str, group: &str, version: &str, kind: &str) {
        let v = gvk_value(group, version, kind);
        let list = self.gvks.entry(name.to_string()).or_default();
        if list.contains(&v) {
            return;
        }
        list.push(v);
        let list = Value::Array(list.clone());
        if let Some(raw) = self.defs.get_mut(name) {
            if let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(raw) {
                o.insert("x-kubernetes-group-version-kind".into(), list);
                sort_keys(&mut o);
                *raw = Value::Object(o).to_string();
            }
        }
    }

    fn insert(&mut self, name: &str, mut schema: Map<String, Value>) {
        if let Some(list) = self.gvks.get(name) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                Value::Array(list.clone()),
            );
        }
        sort_keys(&mut schema);
        self.defs
            .insert(name.to_string(), Value::Object(schema).to_string());
    }

    /// Adds a message and everything it references; returns its definition name.
    pub(crate) fn add(&mut self, msg: &'static MessageInfo) -> String {
        let mut queue = vec![msg];
        while let Some(m) = queue.pop() {
            if self.defs.contains_key(&m.openapi_name) {
                continue;
            }
            let schema = self.message_schema(m, &mut queue);
            self.insert(&m.openapi_name, schema);
        }
        msg.openapi_name.clone()
    }

    /// Adds the `Patch` request body type (a Go type without a protobuf message).
    pub(crate) fn add_patch(&mut self) -> String {
        let mut s = Map::new();
        if let Some(d) = description(PATCH_PROTO) {
            s.insert("description".into(), d.into());
        }
        s.insert("type".into(), "object".into());
        self.insert(PATCH_DEFINITION, s);
        PATCH_DEFINITION.into()
    }

    /// A custom resource's object and list definitions from its version's schema, named as
    /// upstream names them (the group reversed, then version and kind:
    /// `com.example.stable.v1.CronTab`).
    pub(crate) fn add_custom(&mut self, k: &ResourceKind, schema: &Value) -> (String, String) {
        let mut rev: Vec<&str> = k.group.split('.').collect();
        rev.reverse();
        let base = format!("{}.{}", rev.join("."), k.version);
        let meta = message("k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .map(|m| self.add(m))
            .unwrap_or_default();
        let list_meta = message("k8s.io.apimachinery.pkg.apis.meta.v1.ListMeta")
            .map(|m| self.add(m))
            .unwrap_or_default();
        let type_meta = |m: &mut Map<String, Value>| {
            for (key, what) in [
                ("apiVersion", "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"),
                ("kind", "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"),
            ] {
                m.insert(key.into(), json!({"description": what, "type": "string"}));
            }
        };
        let mut obj = match self.flavor {
            Flavor::V3 => schema.clone(),
            Flavor::V2 => v2_schema(schema),
        };
        if !obj.is_object() {
            obj = json!({"type": "object"});
        }
        if !obj["properties"].is_object() {
            obj["properties"] = json!({});
        }
        if let Some(props) = obj["properties"].as_object_mut() {
            type_meta(props);
            props.insert("metadata".into(), self.reference(&meta));
        }
        let obj_name = format!("{base}.{}", k.kind);
        if let Value::Object(m) = obj {
            self.insert(&obj_name, m);
        }
        let mut list_props = Map::new();
        type_meta(&mut list_props);
        list_props.insert(
            "items".into(),
            json!({"description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", k.plural),
                "items": self.reference(&obj_name), "type": "array"}),
        );
        list_props.insert("metadata".into(), self.reference(&list_meta));
        let list_name = format!("{base}.{}", k.list_kind());
        let mut list = Map::new();
        list.insert(
            "description".into(),
            format!("{} is a list of {}", k.list_kind(), k.kind).into(),
        );
        list.insert("properties".into(), Value::Object(list_props));
        list.insert("required".into(), json!(["items"]));
        list.insert("type".into(), "object".into());
        self.insert(&list_name, list);
        (obj_name, list_name)
    }

    /// A placeholder for a kind that has no protobuf message (nothing is known of its fields).
    pub(crate) fn add_opaque(&mut self, name: &str) -> String {
        if !self.defs.contains_key(name) {
            let mut s = Map::new();
            s.insert("type".into(), "object".into());
            s.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
            self.insert(name, s);
        }
        name.to_string()
    }

    pub(crate) fn reference(&self, name: &str) -> Value {
        self.flavor.reference(name)
    }

    /// Writes the definitions as one JSON object, sorted by name.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (name, raw)) in self.defs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut *out, name);
            out.push(b':');
            out.extend_from_slice(raw.as_bytes());
        }
        out.push(b'}');
    }

    /// Every (name, definition), sorted by name, one parsed at a time.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&str, &Value)) {
        for (name, raw) in &self.defs {
            if let Ok(v) = serde_json::from_str::<Value>(raw) {
                f(name, &v);
            }
        }
    }

    fn message_schema(
        &self,
        m: &'static MessageInfo,
        queue: &mut Vec<&'static MessageInfo>,
    ) -> Map<String, Value> {
        let mut s = Map::new();
        if let Some(d) = description(m.name) {
            s.insert("description".into(), d.into());
        }
        if let Some(sp) = m.special {
            self.special_schema(sp, &mut s);
            return s;
        }
        let mut props = BTreeMap::new();
        let mut required = Vec::new();
        if m.type_meta {
            for key in ["apiVersion", "kind"] {
                let mut p = Map::new();
                if let Some(d) = field_description(m.name, key) {
                    p.insert("description".into(), d.into());
                }
                p.insert("type".into(), "string".into());
                props.insert(key.to_string(), Value::Object(p));
            }
        }
        let mut fields = Vec::new();
        flatten(m, m, &mut fields, 0);
        for (owner, f) in fields {
            let desc =
                field_description(m.name, f.json).or_else(|| field_description(owner.name, f.json));
            props.insert(f.json.to_string(), self.field_schema(f, desc, queue));
            if f.required {
                required.push(Value::String(f.json.to_string()));
            }
        }
        if !props.is_empty() {
            s.insert(
                "properties".into(),
                Value::Object(props.into_iter().collect()),
            );
        }
        if !required.is_empty() {
            s.insert("required".into(), Value::Array(required));
        }
        s.insert("type".into(), "object".into());
        if m.atomic {
            s.insert("x-kubernetes-map-type".into(), "atomic".into());
        }
        s
    }

    fn special_schema(&self, sp: SpecialType, s: &mut Map<String, Value>) {
        let v3 = self.flavor == Flavor::V3;
        match sp {
            SpecialType::Quantity if v3 => {
                s.insert(
                    "oneOf".into(),
                    json!([{"type": "string"}, {"type": "number"}]),
                );
            }
            SpecialType::Quantity | SpecialType::Duration => {
                s.insert("type".into(), "string".into());
            }
            SpecialType::IntOrString => {
                s.insert("format".into(), "int-or-string".into());
                if v3 {
                    s.insert(
                        "oneOf".into(),
                        json!([{"type": "integer"}, {"type": "string"}]),
                    );
                } else {
                    s.insert("type".into(), "string".into());
                }
                s.insert("x-kubernetes-int-or-string".into(), true.into());
            }
            SpecialType::Time | SpecialType::MicroTime => {
                s.insert("type".into(), "string".into());
                s.insert("format".into(), "date-time".into());
            }
            SpecialType::FieldsV1 | SpecialType::RawExtension => {
                s.insert("type".into(), "object".into());
            }
            SpecialType::StringList => {
                s.insert("type".into(), "array".into());
                s.insert("items".into(), json!({"type": "string"}));
            }
            // any JSON value / schema-or-array / schema-or-bool / schema-or-strings: no type
            SpecialType::Json
            | SpecialType::JsonSchemaPropsOrArray
            | SpecialType::JsonSchemaPropsOrBool
            | SpecialType::JsonSchemaPropsOrStringArray => {}
        }
    }

    /// The schema of one value of a field's type; `true` when it is a `$ref`.
    fn item_schema(&self, ty: FieldType, queue: &mut Vec<&'static MessageInfo>) -> (Value, bool) {
        match ty {
            FieldType::Scalar(sc) => (
                match sc {
                    ScalarType::String => json!({"type": "string"}),
                    ScalarType::Bytes => json!({"format": "byte", "type": "string"}),
                    ScalarType::Int32 => json!({"format": "int32", "type": "integer"}),
                    ScalarType::Int64 => json!({"format": "int64", "type": "integer"}),
                    ScalarType::Bool => json!({"type": "boolean"}),
                    ScalarType::Double => json!({"format": "double", "type": "number"}),
                },
                false,
            ),
            // Go `[]string` types are inlined as arrays, as upstream's generator does
            FieldType::Special(_, SpecialType::StringList) => {
                (json!({"items": {"type": "string"}, "type": "array"}), false)
            }
            FieldType::Message(name) | FieldType::Special(name, _) => match message(name) {
                Some(m) => {
                    queue.push(m);
                    (self.reference(&m.openapi_name), true)
                }
                None => (json!({"type": "object"}), false),
            },
        }
    }

    fn field_schema(
        &self,
        f: &FieldInfo,
        desc: Option<String>,
        queue: &mut Vec<&'static MessageInfo>,
    ) -> Value {
        let (item, is_ref) = self.item_schema(f.ty, queue);
        let mut s = if f.repeated {
            let mut s = Map::new();
            s.insert("items".into(), item);
            s.insert("type".into(), "array".into());
            s
        } else if f.map {
            let mut s = Map::new();
            s.insert("additionalProperties".into(), item);
            s.insert("type".into(), "object".into());
            s
        } else if is_ref && self.flavor == Flavor::V3 {
            // a $ref with siblings: upstream's v3 wraps the reference in allOf
            let mut s = Map::new();
            s.insert("allOf".into(), Value::Array(vec![item]));
            s
        } else {
            match item {
                Value::Object(o) => o,
                _ => Map::new(),
            }
        };
        if let Some(d) = desc {
            s.insert("description".into(), d.into());
        }
        if !f.list_map_keys.is_empty() {
            s.insert("x-kubernetes-list-map-keys".into(), json!(f.list_map_keys));
        }
        let ext = [
            ("x-kubernetes-list-type", &f.list_type),
            ("x-kubernetes-map-type", &f.map_type),
            ("x-kubernetes-patch-merge-key", &f.patch_merge_key),
            ("x-kubernetes-patch-strategy", &f.patch_strategy),
        ];
        for (k, v) in ext {
            if let Some(v) = v {
                s.insert(k.into(), (*v).into());
            }
        }
        // a bare reference stays a bare reference
        if s.len() == 1 && s.contains_key("allOf") {
            return s
                .remove("allOf")
                .and_then(|a| a.as_array().and_then(|a| a.first().cloned()))
                .unwrap_or_default();
        }
        sort_keys(&mut s);
        Value::Object(s)
    }
}

/// The JSON properties of `m` with their owning message (inlined messages flattened in).
fn flatten(
    m: &'static MessageInfo,
    owner: &'static MessageInfo,
    out: &mut Vec<(&'static MessageInfo, &'static FieldInfo)>,
    depth: usize,
) {
    let Some(me) = message(m.name) else { return };
    for f in &me.fields {
        if f.inline {
            if let (Some(sub), true) = (f.message(), depth < 16) {
                flatten(sub, sub, out, depth + 1);
            }
        } else {
            out.push((owner, f));
        }
    }
}

fn sort_keys(m: &mut Map<String, Value>) {
    let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    m.extend(entries);
}

// ------------------------------------------------------------------------------------------
// paths and operations

/// The URL of a group version: `api/v1`, `apis/apps/v1`.
pub(crate) fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// One query or path parameter.
pub(crate) struct Param {
    pub name: &'static str,
    pub location: &'static str,
    pub ty: &'static str,
    pub description: String,
}

fn query(name: &'static str, ty: &'static str, description: &str) -> Param {
    Param {
        name,
        location: "query",
        ty,
        description: description.to_string(),
    }
}

/// One operation of a path.
pub(crate) struct Operation {
    pub method: &'static str,
    pub id: String,
    pub description: String,
    pub action: &'static str,
    /// (group, version, kind) of the object the operation serves.
    pub gvk: (String, String, String),
    pub params: Vec<Param>,
    /// Definition name of the request body.
    pub body: Option<String>,
    /// Definition name of the response.
    pub response: String,
}

pub(crate) struct PathSpec {
    pub path: String,
    /// Path-level parameters (path segments, `pretty`).
    pub params: Vec<Param>,
    pub operations: Vec<Operation>,
}

fn write_params(patch: bool) -> Vec<Param> {
    let mut p = vec![
        query("dryRun", "string", "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed"),
        query("fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes."),
        query("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict."),
    ];
    if patch {
        p.push(query(
            "force",
            "boolean",
            "Force is going to \"force\" Apply requests. Force flag must be unset for non-apply patch requests.",
        ));
    }
    p
}

fn list_params() -> Vec<Param> {
    vec![
        query("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
        query("continue", "string", "The continue option should be set when retrieving more results from the server."),
        query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        query("limit", "integer", "limit is a maximum number of responses to return for a list call."),
        query("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
        query("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
        query("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true` to start the watch with the current state."),
        query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
        query("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
    ]
}

fn delete_params() -> Vec<Param> {
    vec![
        query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted.",
        ),
        query(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection will be performed.",
        ),
    ]
}

/// `apps` -> `Apps`, `rbac.authorization.k8s.io` -> `RbacAuthorization`, core -> `Core`.
fn group_camel(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group
        .trim_end_matches(".k8s.io")
        .split(['.', '-'])
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// Definition names a kind's paths refer to: (object, list). Adds them (and what they
/// reference) to `defs` with their group-version-kind.
/// A v3 schema as OpenAPI v2 can say it: without `nullable` and the combinators v2 lacks
/// (upstream publishes custom resources' v2 schemas the same way).
fn v2_schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "nullable" | "oneOf" | "anyOf" | "not"))
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        // Maps of schemas: each value is a schema.
                        "properties" | "patternProperties" | "definitions" => match v {
                            Value::Object(ps) => Value::Object(
                                ps.iter().map(|(n, s)| (n.clone(), v2_schema(s))).collect(),
                            ),
                            other => other.clone(),
                        },
                        "items" | "additionalProperties" => v2_schema(v),
                        "allOf" => match v {
                            Value::Array(a) => Value::Array(a.iter().map(v2_schema).collect()),
                            other => other.clone(),
                        },
                        _ => v.clone(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

pub(crate) fn kind_definitions(defs: &mut Definitions, k: &ResourceKind) -> (String, String) {
    if let Some(schema) = k.strategy.openapi_schema() {
        let (obj, list) = defs.add_custom(k, schema);
        defs.add_gvk(&obj, k.group, k.version, k.kind);
        defs.add_gvk(&list, k.group, k.version, &k.list_kind());
        return (obj, list);
    }
    let av = k.api_version();
    let obj = match message_for_kind(&av, k.kind) {
        Some(m) => defs.add(m),
        None => defs.add_opaque(&format!("{}.{}", opaque_prefix(k), k.kind)),
    };
    defs.add_gvk(&obj, k.group, k.version, k.kind);
    let list_kind = k.list_kind();
    let list = match message_for_kind(&av, &list_kind) {
        Some(m) => defs.add(m),
        None => defs.add_opaque(&format!("{}.{list_kind}", opaque_prefix(k))),
    };
    defs.add_gvk(&list, k.group, k.version, &list_kind);
    (obj, list)
}

fn opaque_prefix(k: &ResourceKind) -> String {
    let g = if k.group.is_empty() { "core" } else { k.group };
    format!("io.reddwarf.{g}.{}", k.version)
}

/// Definition names of the meta types operations use: (Status, DeleteOptions, Patch,
/// autoscaling/v1 Scale). `gvs` are the group versions the document covers (DeleteOptions is
/// registered in each, as upstream's definitions say).
pub(crate) fn meta_definitions(
    defs: &mut Definitions,
    gvs: &[(&str, &str)],
    scale: bool,
) -> (String, String, String, Option<String>) {
    let mut name = |av: &str, kind: &str| message_for_kind(av, kind).map(|m| defs.add(m));
    let status = name("v1", "Status").unwrap_or_default();
    let delete = name("meta.k8s.io/v1", "DeleteOptions").unwrap_or_default();
    let scale_def = if scale {
        name("autoscaling/v1", "Scale")
    } else {
        None
    };
    defs.add_gvk(&status, "", "v1", "Status");
    for (g, v) in gvs {
        defs.add_gvk(&delete, g, v, "DeleteOptions");
    }
    if let Some(s) = &scale_def {
        defs.add_gvk(s, "autoscaling", "v1", "Scale");
    }
    let patch = defs.add_patch();
    (status, delete, patch, scale_def)
}

/// The paths serving one kind, upstream's layout: the collection (namespaced and, for
/// namespaced kinds, across all namespaces), the object, and its `status`/`scale`
/// subresources.
pub(crate) fn kind_paths(
    k: &ResourceKind,
    obj: &str,
    list: &str,
    meta: &(String, String, String, Option<String>),
) -> Vec<PathSpec> {
    let (status_def, delete_def, patch_def, scale_def) = meta;
    let base = format!("/{}", gv_path(k.group, k.version));
    let ns = if k.namespaced {
        "namespaces/{namespace}/"
    } else {
        ""
    };
    let coll = format!("{base}/{ns}{}", k.plural);
    let scope = if k.namespaced { "Namespaced" } else { "" };
    let gv_camel = format!("{}{}", group_camel(k.group), upper_first(k.version));
    let id = |verb: &str, suffix: &str| format!("{verb}{gv_camel}{scope}{}{suffix}", k.kind);
    let gvk = (
        k.group.to_string(),
        k.version.to_string(),
        k.kind.to_string(),
    );
    let op = |method,
              id: String,
              description: String,
              action,
              params,
              body: Option<&str>,
              response: &str| Operation {
        method,
        id,
        description,
        action,
        gvk: gvk.clone(),
        params,
        body: body.map(str::to_string),
        response: response.to_string(),
    };
    let pretty = || {
        query(
            "pretty",
            "string",
            "If 'true', then the output is pretty printed.",
        )
    };
    let path_param = |name: &'static str, d: String| Param {
        name,
        location: "path",
        ty: "string",
        description: d,
    };
    let ns_param = || {
        path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects".into(),
        )
    };
    let name_param = |what: &str| path_param("name", format!("name of the {what}"));
    let mut coll_params = Vec::new();
    if k.namespaced {
        coll_params.push(ns_param());
    }
    coll_params.push(pretty());
    let verbs = k.verbs();
    let serves = |v: &str| verbs.contains(&v);
    let mut coll_ops = Vec::new();
    if serves("list") {
        coll_ops.push(op(
            "get",
            id("list", ""),
            format!("list or watch objects of kind {}", k.kind),
            "list",
            list_params(),
            None,
            list,
        ));
    }
    if serves("create") {
        coll_ops.push(op(
            "post",
            id("create", ""),
            format!("create a {}", k.kind),
            "post",
            write_params(false),
            Some(obj),
            obj,
        ));
    }
    if serves("deletecollection") {
        coll_ops.push(op(
            "delete",
            id("deleteCollection", ""),
            format!("delete collection of {}", k.kind),
            "deletecollection",
            {
                let mut p = delete_params();
                p.extend(
                    list_params()
                        .into_iter()
                        .filter(|p| p.name != "watch" && p.name != "allowWatchBookmarks"),
                );
                p
            },
            Some(delete_def),
            status_def,
        ));
    }
    let mut out = Vec::new();
    if !coll_ops.is_empty() {
        out.push(PathSpec {
            path: coll.clone(),
            params: coll_params,
            operations: coll_ops,
        });
    }
    let item_params = |what: &str| {
        let mut p = vec![name_param(what)];
        if k.namespaced {
            p.push(ns_param());
        }
        p.push(pretty());
        p
    };
    let mut item_ops = Vec::new();
    if serves("get") {
        item_ops.push(op(
            "get",
            id("read", ""),
            format!("read the specified {}", k.kind),
            "get",
            vec![],
            None,
            obj,
        ));
    }
    if serves("update") {
        item_ops.push(op(
            "put",
            id("replace", ""),
            format!("replace the specified {}", k.kind),
            "put",
            write_params(false),
            Some(obj),
            obj,
        ));
    }
    if serves("patch") {
        item_ops.push(op(
            "patch",
            id("patch", ""),
            format!("partially update the specified {}", k.kind),
            "patch",
            write_params(true),
            Some(patch_def),
            obj,
        ));
    }
    if serves("delete") {
        item_ops.push(op(
            "delete",
            id("delete", ""),
            format!("delete a {}", k.kind),
            "delete",
            delete_params(),
            Some(delete_def),
            status_def,
        ));
    }
    if !item_ops.is_empty() {
        out.push(PathSpec {
            path: format!("{coll}/{{name}}"),
            params: item_params(k.kind),
            operations: item_ops,
        });
    }
    if k.status {
        out.push(PathSpec {
            path: format!("{coll}/{{name}}/status"),
            params: item_params(k.kind),
            operations: vec![
                op(
                    "get",
                    id("read", "Status"),
                    format!("read status of the specified {}", k.kind),
                    "get",
                    vec![],
                    None,
                    obj,
                ),
                op(
                    "put",
                    id("replace", "Status"),
                    format!("replace status of the specified {}", k.kind),
                    "put",
                    write_params(false),
                    Some(obj),
                    obj,
                ),
                op(
                    "patch",
                    id("patch", "Status"),
                    format!("partially update status of the specified {}", k.kind),
                    "patch",
                    write_params(true),
                    Some(patch_def),
                    obj,
                ),
            ],
        });
    }
    if let (true, Some(scale)) = (k.scale, scale_def) {
        let sgvk = (
            "autoscaling".to_string(),
            "v1".to_string(),
            "Scale".to_string(),
        );
        let mut ops = vec![
            op(
                "get",
                id("read", "Scale"),
                format!("read scale of the specified {}", k.kind),
                "get",
                vec![],
                None,
                scale,
            ),
            op(
                "put",
                id("replace", "Scale"),
                format!("replace scale of the specified {}", k.kind),
                "put",
                write_params(false),
                Some(scale),
                scale,
            ),
            op(
                "patch",
                id("patch", "Scale"),
                format!("partially update scale of the specified {}", k.kind),
                "patch",
                write_params(true),
                Some(patch_def),
                scale,
            ),
        ];
        for o in &mut ops {
            o.gvk = sgvk.clone();
        }
        out.push(PathSpec {
            path: format!("{coll}/{{name}}/scale"),
            params: item_params("Scale"),
            operations: ops,
        });
    }
    if k.namespaced && serves("list") {
        out.push(PathSpec {
            path: format!("{base}/{}", k.plural),
            params: vec![pretty()],
            operations: vec![op(
                "get",
                format!("list{gv_camel}{}ForAllNamespaces", k.kind),
                format!("list or watch objects of kind {}", k.kind),
                "list",
                list_params(),
                None,
                list,
            )],
        });
    }
    out
}

/// The OpenAPI tag of a group version: `apps_v1`, `rbacAuthorization_v1`, `core_v1`.
pub(crate) fn tag(group: &str, version: &str) -> String {
    let c = group_camel(group);
    let mut chars = c.chars();
    let lower = chars
        .next()
        .map(|f| f.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default();
    format!("{lower}_{version}")
}

/// What a document of these kinds depends on, as a stable string: the served kinds, the
/// embedded schema and descriptions, and this generator.
pub(crate) fn fingerprint<'a>(kinds: impl IntoIterator<Item = &'a ResourceKind>) -> String {
    let mut s = format!(
        "{}|{}|{}",
        env!("CARGO_PKG_VERSION"),
        GENERATOR_VERSION,
        reddwarf_kubeproto::data_digest()
    );
    let mut seen = HashSet::new();
    for k in kinds {
        if seen.insert((k.group, k.version, k.kind)) {
            s.push_str(&format!(
                "|{}/{}/{}/{}/{}/{}/{}",
                k.group, k.version, k.kind, k.plural, k.namespaced, k.status, k.scale
            ));
            // A custom resource's document changes with its schema.
            if k.strategy.openapi_schema().is_some() {
                s.push_str(&format!("/{:x}", k.strategy.schema_digest()));
            }
        }
    }
    s
}

/// FNV-1a of a fingerprint: the `?hash=` of a document.
pub(crate) fn hash(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

/// The `info` of every document.
pub(crate) fn info() -> Value {
    json!({"title": "Kubernetes", "version": format!("v1.{}.0", crate::health::KUBE_VERSION_MINOR)})
}
