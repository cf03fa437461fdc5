//! Schema metadata for strategic merge, server-side apply and OpenAPI: per message its fields
//! with JSON names, types and upstream's merge markers (`+patchStrategy`, `+patchMergeKey`,
//! `+listType`, `+listMapKey`, `+mapType`, `+structType`), and which fields upstream's OpenAPI
//! marks required. Built once, on first use, from the embedded `schema/k8s.schema`; the codec
//! does not need it, so servers that never patch never build it.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::schema::{self, Label, Schema, Ty, SCHEMA_TEXT};

/// Scalar types of protobuf fields (as their JSON form: strings, numbers, booleans; `Bytes` is
/// base64 text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarType {
    /// `string`.
    String,
    /// `int32`.
    Int32,
    /// `int64`.
    Int64,
    /// `bool`.
    Bool,
    /// `double`.
    Double,
    /// `[]byte`: a base64 string in JSON.
    Bytes,
}

/// Messages whose JSON form is not an object of their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialType {
    /// `resource.Quantity`: a string such as `"100m"` (numbers accepted).
    Quantity,
    /// `metav1.Time`: RFC 3339 string, seconds precision.
    Time,
    /// `metav1.MicroTime`: RFC 3339 string, microseconds.
    MicroTime,
    /// `metav1.Duration`: Go duration string.
    Duration,
    /// `metav1.FieldsV1`: a JSON object (managedFields).
    FieldsV1,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `runtime.RawExtension`: any embedded JSON object.
    RawExtension,
    /// apiextensions `JSON`: any JSON value.
    Json,
    /// apiextensions `JSONSchemaPropsOrArray`: a schema object or an array of them.
    JsonSchemaPropsOrArray,
    /// apiextensions `JSONSchemaPropsOrBool`: a schema object or a boolean.
    JsonSchemaPropsOrBool,
    /// apiextensions `JSONSchemaPropsOrStringArray`: a schema object or an array of strings.
    JsonSchemaPropsOrStringArray,
    /// A Go `[]string` type (`Verbs`, `ExtraValue`): an array of strings.
    StringList,
}

/// The type of a field's values (of each item for repeated fields, of each value for maps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// A scalar value.
    Scalar(ScalarType),
    /// A message whose JSON form is an object of its fields: its full protobuf name (see
    /// [`message`]).
    Message(&'static str),
    /// A message with a JSON form of its own: its full protobuf name and that form.
    Special(&'static str, SpecialType),
}

/// One protobuf field of a message, with upstream's merge markers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldInfo {
    /// Protobuf field number.
    pub number: u32,
    /// JSON key; empty for a Go embedded struct (`json:",inline"`, see `inline`).
    pub json: &'static str,
    /// A Go embedded struct: the fields of the message `ty` names appear in the parent object
    /// (`Volume` inlines `VolumeSource`). [`MessageInfo::field`] looks through these.
    pub inline: bool,
    /// The type of the field's values.
    pub ty: FieldType,
    /// A list (`[]T`).
    pub repeated: bool,
    /// A map with string keys (`map[string]T`).
    pub map: bool,
    /// `+patchStrategy` / Go tag `patchStrategy`: `"merge"`, `"retainKeys"`,
    /// `"merge,retainKeys"` or `"replace"`.
    pub patch_strategy: Option<&'static str>,
    /// `+patchMergeKey`: the key identifying list items for strategic merge (`"name"`).
    pub patch_merge_key: Option<&'static str>,
    /// `+listType`: `"atomic"`, `"set"` or `"map"` (server-side apply).
    pub list_type: Option<&'static str>,
    /// `+listMapKey` (in order): the keys of a `listType=map` list (`["port", "protocol"]`).
    pub list_map_keys: Vec<&'static str>,
    /// `+mapType` (`"atomic"` or `"granular"`), or a field-level `+structType`: how apply treats
    /// a map or struct value. Type-level `+structType=atomic` is [`MessageInfo::atomic`].
    pub map_type: Option<&'static str>,
    /// Listed in `required` of upstream's OpenAPI definition (Go field without `omitempty`).
    pub required: bool,
}

impl FieldInfo {
    /// The message of a message-typed field.
    pub fn message(&self) -> Option<&'static MessageInfo> {
        match self.ty {
            FieldType::Message(n) | FieldType::Special(n, _) => message(n),
            FieldType::Scalar(_) => None,
        }
    }

    /// A plain single (not repeated, not map) value.
    pub fn single(&self) -> bool {
        !self.repeated && !self.map
    }
}

/// One protobuf message (Go struct) of the built-in API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// Full protobuf name, e.g. `k8s.io.api.core.v1.PodSpec`.
    pub name: &'static str,
    /// Upstream's OpenAPI definition name, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub openapi_name: String,
    /// Fields in field-number order.
    pub fields: Vec<FieldInfo>,
    /// `+structType=atomic`: apply and merge replace the object as a whole.
    pub atomic: bool,
    /// The Go struct embeds TypeMeta: its JSON object carries `apiVersion` and `kind` (which
    /// are not protobuf fields).
    pub type_meta: bool,
    /// A JSON form other than an object of the fields.
    pub special: Option<SpecialType>,
    /// Every (apiVersion, kind) this message is the top-level kind of, sorted.
    pub kinds: Vec<(&'static str, &'static str)>,
}

impl MessageInfo {
    /// The field for a JSON key, looking through inlined (embedded) messages.
    pub fn field(&self, json: &str) -> Option<&'static FieldInfo> {
        let me = message(self.name)?;
        me.fields.iter().find_map(|f| {
            if f.inline {
                f.message().and_then(|m| m.field(json))
            } else if f.json == json {
                Some(f)
            } else {
                None
            }
        })
    }

    /// The JSON properties of the object in field order, with the fields of inlined messages
    /// in place of the embedding field. `apiVersion`/`kind` (see `type_meta`) are not fields.
    pub fn properties(&self) -> Vec<&'static FieldInfo> {
        fn walk(m: &'static MessageInfo, out: &mut Vec<&'static FieldInfo>, depth: usize) {
            for f in &m.fields {
                match (f.inline, f.message()) {
                    (true, Some(sub)) if depth < 16 => walk(sub, out, depth + 1),
                    (true, _) => {}
                    (false, _) => out.push(f),
                }
            }
        }
        let mut out = Vec::new();
        if let Some(me) = message(self.name) {
            walk(me, &mut out, 0);
        }
        out
    }
}

struct Meta {
    messages: Vec<MessageInfo>,
    by_name: HashMap<&'static str, usize>,
}

static META: OnceLock<Meta> = OnceLock::new();

fn meta() -> &'static Meta {
    META.get_or_init(build)
}

/// Upstream's OpenAPI definition name of a protobuf message name:
/// `k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON` ->
/// `io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON`.
pub fn openapi_name(proto_name: &str) -> String {
    let rest = proto_name.strip_prefix("k8s.io.").unwrap_or(proto_name);
    format!("io.k8s.{}", rest.replace('_', "-"))
}

/// Metadata of a message by full protobuf name (`k8s.io.api.core.v1.PodSpec`).
pub fn message(name: &str) -> Option<&'static MessageInfo> {
    let m = meta();
    m.by_name.get(name).map(|&i| &m.messages[i])
}

/// Metadata of the message of a top-level kind (`"apps/v1"`, `"Deployment"`). The meta options
/// kinds (`DeleteOptions`, `Status`, ...) are found under every known group version.
pub fn message_for_kind(api_version: &str, kind: &str) -> Option<&'static MessageInfo> {
    let idx = Schema::get().kind(api_version, kind)?;
    meta().messages.get(idx as usize)
}

/// Every message of the embedded schema.
pub fn messages() -> impl Iterator<Item = &'static MessageInfo> {
    meta().messages.iter()
}

fn build() -> Meta {
    let s = Schema::get();
    // marker tokens per message (in file order, the order of `Schema::messages`) and field
    let mut flags: Vec<Vec<&'static str>> = Vec::with_capacity(s.messages.len());
    let mut tokens: Vec<HashMap<u32, Vec<&'static str>>> = Vec::with_capacity(s.messages.len());
    for line in SCHEMA_TEXT.lines() {
        if let Some(rest) = line.strip_prefix("M ") {
            flags.push(rest.split(' ').skip(1).collect());
            tokens.push(HashMap::new());
        } else if line.starts_with(|c: char| c.is_ascii_digit()) {
            let mut it = line.split(' ');
            let num = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let extra: Vec<&str> = it.skip(2).collect();
            if let (false, Some(t)) = (extra.is_empty(), tokens.last_mut()) {
                t.insert(num, extra);
            }
        }
    }
    assert_eq!(flags.len(), s.messages.len(), "k8s.schema: message count");
    let mut kinds: HashMap<u32, Vec<(&'static str, &'static str)>> = HashMap::new();
    for (av, kind, m) in s.kind_indices() {
        kinds.entry(m).or_default().push((av, kind));
    }
    let special_of = |idx: u32| -> Option<SpecialType> {
        use schema::Special as S;
        Some(match s.msg(idx).special {
            S::None => return None,
            S::Quantity => SpecialType::Quantity,
            S::Time => SpecialType::Time,
            S::MicroTime => SpecialType::MicroTime,
            S::Duration => SpecialType::Duration,
            S::FieldsV1 => SpecialType::FieldsV1,
            S::IntOrString => SpecialType::IntOrString,
            S::RawExtension => SpecialType::RawExtension,
            S::Json => SpecialType::Json,
            S::OrArray => SpecialType::JsonSchemaPropsOrArray,
            S::OrBool => SpecialType::JsonSchemaPropsOrBool,
            S::OrStringArray => SpecialType::JsonSchemaPropsOrStringArray,
            S::Strings => SpecialType::StringList,
        })
    };
    let mut messages = Vec::with_capacity(s.messages.len());
    let mut by_name = HashMap::with_capacity(s.messages.len());
    for (i, m) in s.messages.iter().enumerate() {
        let name: &'static str = &m.name;
        let fields = m
            .fields
            .iter()
            .map(|f| {
                let ty = match f.ty {
                    Ty::Scalar(sc) => FieldType::Scalar(match sc {
                        schema::Scalar::String => ScalarType::String,
                        schema::Scalar::Int32 => ScalarType::Int32,
                        schema::Scalar::Int64 => ScalarType::Int64,
                        schema::Scalar::Bool => ScalarType::Bool,
                        schema::Scalar::Double => ScalarType::Double,
                        schema::Scalar::Bytes => ScalarType::Bytes,
                    }),
                    Ty::Msg(idx) => {
                        let n: &'static str = &s.msg(idx).name;
                        match special_of(idx) {
                            Some(sp) => FieldType::Special(n, sp),
                            None => FieldType::Message(n),
                        }
                    }
                };
                let json: &'static str = &f.json;
                let mut fi = FieldInfo {
                    number: f.num,
                    json,
                    inline: f.inline(),
                    ty,
                    repeated: f.label == Label::Repeated,
                    map: f.label == Label::Map,
                    patch_strategy: None,
                    patch_merge_key: None,
                    list_type: None,
                    list_map_keys: Vec::new(),
                    map_type: None,
                    required: false,
                };
                for tok in tokens[i].get(&f.num).into_iter().flatten() {
                    match tok.split_once('=') {
                        Some(("ps", v)) => fi.patch_strategy = Some(v),
                        Some(("pk", v)) => fi.patch_merge_key = Some(v),
                        Some(("lt", v)) => fi.list_type = Some(v),
                        Some(("lk", v)) => fi.list_map_keys = v.split(',').collect(),
                        Some(("mt", v)) => fi.map_type = Some(v),
                        None if *tok == "!" => fi.required = true,
                        _ => {}
                    }
                }
                fi
            })
            .collect();
        let mut k = kinds.remove(&(i as u32)).unwrap_or_default();
        k.sort();
        by_name.insert(name, i);
        messages.push(MessageInfo {
            name,
            openapi_name: openapi_name(name),
            fields,
            atomic: flags[i].contains(&"atomic"),
            type_meta: flags[i].contains(&"tm"),
            special: special_of(i as u32),
            kinds: k,
        });
    }
    Meta { messages, by_name }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(msg: &str, json: &str) -> &'static FieldInfo {
        message(msg)
            .unwrap_or_else(|| panic!("no message {msg}"))
            .field(json)
            .unwrap_or_else(|| panic!("no field {msg}.{json}"))
    }

    #[test]
    fn pod_spec_containers() {
        let f = field("k8s.io.api.core.v1.PodSpec", "containers");
        assert_eq!(f.ty, FieldType::Message("k8s.io.api.core.v1.Container"));
        assert!(f.repeated && !f.map && !f.inline);
        assert_eq!(f.patch_strategy, Some("merge"));
        assert_eq!(f.patch_merge_key, Some("name"));
        assert_eq!(f.list_type, Some("map"));
        assert_eq!(f.list_map_keys, ["name"]);
        assert!(f.required);
        let v = field("k8s.io.api.core.v1.PodSpec", "volumes");
        assert_eq!(v.patch_strategy, Some("merge,retainKeys"));
        assert!(!v.required);
        let pod = message_for_kind("v1", "Pod").unwrap();
        assert!(pod.type_meta && !pod.atomic);
        assert_eq!(pod.openapi_name, "io.k8s.api.core.v1.Pod");
        assert_eq!(pod.kinds, [("v1", "Pod")]);
        let spec = pod.field("spec").unwrap().message().unwrap();
        assert_eq!(spec.name, "k8s.io.api.core.v1.PodSpec");
    }

    #[test]
    fn container_ports() {
        let f = field("k8s.io.api.core.v1.Container", "ports");
        assert_eq!(f.patch_strategy, Some("merge"));
        assert_eq!(f.patch_merge_key, Some("containerPort"));
        assert_eq!(f.list_type, Some("map"));
        assert_eq!(f.list_map_keys, ["containerPort", "protocol"]);
        let name = field("k8s.io.api.core.v1.Container", "name");
        assert!(name.required);
        assert_eq!(name.ty, FieldType::Scalar(ScalarType::String));
    }

    #[test]
    fn object_meta_finalizers_and_maps() {
        let f = field(
            "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "finalizers",
        );
        assert_eq!(f.patch_strategy, Some("merge"));
        assert_eq!(f.patch_merge_key, None);
        assert_eq!(f.list_type, Some("set"));
        assert_eq!(f.ty, FieldType::Scalar(ScalarType::String));
        let labels = field("k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta", "labels");
        assert!(labels.map && !labels.repeated);
        let ts = field(
            "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "creationTimestamp",
        );
        assert_eq!(
            ts.ty,
            FieldType::Special(
                "k8s.io.apimachinery.pkg.apis.meta.v1.Time",
                SpecialType::Time
            )
        );
        let sel = field("k8s.io.api.core.v1.PodSpec", "nodeSelector");
        assert_eq!(sel.map_type, Some("atomic"));
    }

    #[test]
    fn service_ports() {
        let spec = message_for_kind("v1", "Service")
            .unwrap()
            .field("spec")
            .unwrap()
            .message()
            .unwrap();
        let f = spec.field("ports").unwrap();
        assert_eq!(f.patch_strategy, Some("merge"));
        assert_eq!(f.patch_merge_key, Some("port"));
        assert_eq!(f.list_type, Some("map"));
        assert_eq!(f.list_map_keys, ["port", "protocol"]);
        let tp = spec.field("ports").unwrap().message().unwrap();
        assert_eq!(
            tp.field("targetPort").unwrap().ty,
            FieldType::Special(
                "k8s.io.apimachinery.pkg.util.intstr.IntOrString",
                SpecialType::IntOrString
            )
        );
    }

    #[test]
    fn atomic_structs_inline_fields_and_options_kinds() {
        let lor = message("k8s.io.api.core.v1.LocalObjectReference").unwrap();
        assert!(lor.atomic && !lor.type_meta);
        let sel = message("k8s.io.apimachinery.pkg.apis.meta.v1.LabelSelector").unwrap();
        assert!(sel.atomic);
        // Volume inlines VolumeSource: its keys resolve through the embedded message
        let vol = message("k8s.io.api.core.v1.Volume").unwrap();
        assert!(vol.fields.iter().any(|f| f.inline));
        assert!(vol.field("configMap").is_some());
        assert!(vol.field("name").unwrap().required);
        let props: Vec<&str> = vol.properties().iter().map(|f| f.json).collect();
        assert!(props.contains(&"name") && props.contains(&"emptyDir"));
        assert!(!props.contains(&""));
        let claim = field("k8s.io.api.core.v1.PersistentVolumeSpec", "claimRef");
        assert_eq!(claim.map_type, Some("granular"));
        let del = message_for_kind("apps/v1", "DeleteOptions").unwrap();
        assert_eq!(
            del.name,
            "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions"
        );
        assert!(del.type_meta);
        let we = message_for_kind("meta.k8s.io/v1", "WatchEvent").unwrap();
        assert!(!we.type_meta);
        assert_eq!(
            openapi_name("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON"),
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON"
        );
        assert!(message("nope").is_none());
        assert!(messages().count() > 1000);
    }
}
