//! Property tests of the patch and apply decoders: patches, apply configurations and
//! managedFields come from clients, so arbitrary JSON must give a result or an error, never a
//! panic; and the round trips the algorithms promise must hold.
//!
//! Case counts are bounded (PROPTEST_CASES overrides) so a debug `cargo test` stays quick.

use proptest::prelude::*;
use reddwarf_merge::{
    apply, create_merge_patch, create_two_way_merge_patch, fields_of, json_patch, merge_patch,
    strategic_merge, FieldSet, ManagedFields, MemorySchema, NoSchema, PathElement, Request, Schema,
    TypeRef,
};
use serde_json::{json, Map, Value};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn schema() -> &'static MemorySchema {
    static S: std::sync::OnceLock<MemorySchema> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let doc: Value = serde_json::from_str(include_str!("data/schema.json")).unwrap();
        MemorySchema::from_json(&doc).unwrap()
    })
}

/// Keys the test schema gives meaning to, directives, and a few others.
const KEYS: &[&str] = &[
    "name",
    "value",
    "other",
    "mergingList",
    "nonMergingList",
    "mergingIntList",
    "nonMergingIntList",
    "mergeItemPtr",
    "simpleMap",
    "replacingItem",
    "retainKeysMap",
    "retainKeysMergingList",
    "listOfLists",
    "$patch",
    "$retainKeys",
    "$deleteFromPrimitiveList/mergingIntList",
    "$setElementOrder/mergingList",
    "$setElementOrder/mergingIntList",
    "metadata",
    "spec",
    "labels",
    "containers",
    "a",
    "b",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(Value::from),
        prop::sample::select(vec![
            "a", "b", "x", "", "delete", "replace", "merge", "name"
        ])
        .prop_map(Value::from),
    ]
}

/// Arbitrary JSON leaning on the test schema's field names and the patch directives.
fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..5).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn any_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(KEYS), any_json()), 0..6)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

/// JSON without nulls as object values (RFC 7396 cannot express a null value in the target).
fn no_null_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn no_null_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-d]", no_null_json(), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

// ------------------------------------------------------------------ well-formed MergeItems

/// A MergeItem as a client would send it: merge keys present and unique in merging lists, set
/// lists without duplicates, no nulls.
fn merge_item(depth: u32) -> BoxedStrategy<Value> {
    let name = prop::sample::select(vec!["a", "b", "c", "d"]);
    let scalar = prop::option::of(prop::sample::select(vec!["1", "2", "x"]));
    let ints = prop::collection::btree_set(0i64..6, 0..4)
        .prop_map(|s| s.into_iter().collect::<Vec<_>>())
        .prop_shuffle();
    let map = prop::option::of(prop::collection::btree_map("[a-c]", "[x-z]", 0..3));
    let base = (name, scalar.clone(), scalar, ints.clone(), ints, map);
    if depth == 0 {
        return base
            .prop_map(|(n, v, o, mi, ni, m)| item(n, v, o, mi, ni, m, vec![], vec![]))
            .boxed();
    }
    let children = prop::collection::vec(merge_item(depth - 1), 0..3).prop_map(|items| {
        // unique names, as the merge key requires
        let mut seen = std::collections::HashSet::new();
        items
            .into_iter()
            .filter(|i| seen.insert(i["name"].clone()))
            .collect::<Vec<_>>()
    });
    let plain = prop::collection::vec(merge_item(depth - 1), 0..2);
    (base, children, plain)
        .prop_map(|((n, v, o, mi, ni, m), ml, nl)| item(n, v, o, mi, ni, m, ml, nl))
        .boxed()
}

#[allow(clippy::too_many_arguments)]
fn item(
    name: &str,
    value: Option<&str>,
    other: Option<&str>,
    merging_ints: Vec<i64>,
    plain_ints: Vec<i64>,
    map: Option<std::collections::BTreeMap<String, String>>,
    merging: Vec<Value>,
    plain: Vec<Value>,
) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(name));
    if let Some(v) = value {
        o.insert("value".into(), json!(v));
    }
    if let Some(v) = other {
        o.insert("other".into(), json!(v));
    }
    if !merging_ints.is_empty() {
        o.insert("mergingIntList".into(), json!(merging_ints));
    }
    if !plain_ints.is_empty() {
        o.insert("nonMergingIntList".into(), json!(plain_ints));
    }
    if let Some(m) = map {
        o.insert("simpleMap".into(), json!(m));
    }
    if !merging.is_empty() {
        o.insert("mergingList".into(), Value::Array(merging));
    }
    if !plain.is_empty() {
        o.insert("nonMergingList".into(), Value::Array(plain));
    }
    Value::Object(o)
}

// ------------------------------------------------------------------ JSON patch operations

/// A JSON pointer into `doc` (existing, one past, or made up), escaped per RFC 6901.
fn pointers(doc: &Value, prefix: String, out: &mut Vec<String>) {
    out.push(prefix.clone());
    match doc {
        Value::Object(o) => {
            for (k, v) in o {
                let esc = k.replace('~', "~0").replace('/', "~1");
                pointers(v, format!("{prefix}/{esc}"), out);
            }
            out.push(format!("{prefix}/new"));
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                pointers(v, format!("{prefix}/{i}"), out);
            }
            out.push(format!("{prefix}/{}", a.len()));
            out.push(format!("{prefix}/-"));
            out.push(format!("{prefix}/01"));
        }
        _ => {}
    }
}

fn json_patch_case() -> impl Strategy<Value = (Value, Value)> {
    any_object().prop_flat_map(|doc| {
        let mut ptrs = Vec::new();
        pointers(&doc, String::new(), &mut ptrs);
        ptrs.extend(["/", "x", "/~2", "/a/b/c"].map(String::from));
        let ptr = prop::sample::select(ptrs);
        let op = (
            prop::sample::select(vec![
                "add", "remove", "replace", "move", "copy", "test", "bogus",
            ]),
            ptr.clone(),
            ptr,
            prop::option::of(any_json()),
        )
            .prop_map(|(op, path, from, value)| {
                let mut o = Map::new();
                o.insert("op".into(), json!(op));
                o.insert("path".into(), json!(path));
                o.insert("from".into(), json!(from));
                if let Some(v) = value {
                    o.insert("value".into(), v);
                }
                Value::Object(o)
            });
        (
            Just(doc),
            prop::collection::vec(prop_oneof![9 => op, 1 => any_json()], 0..5)
                .prop_map(Value::Array),
        )
    })
}

fn req<'a>(manager: &'a str, time: &'a str) -> Request<'a> {
    Request {
        manager,
        api_version: "test/v1",
        subresource: "",
        time,
        ignored: None,
    }
}

fn merge_item_root() -> TypeRef {
    schema().root("test/v1", "MergeItem").unwrap()
}

proptest! {
    #![proptest_config(config())]

    /// RFC 7396: applying the computed patch gives the target; applying a patch twice is the
    /// same as once.
    #[test]
    fn merge_patch_round_trip(o in no_null_object(), m in no_null_object(), p in any_json()) {
        let patch = create_merge_patch(&o, &m);
        prop_assert_eq!(merge_patch(&o, &patch), m);
        let once = merge_patch(&o, &p);
        prop_assert_eq!(merge_patch(&once, &p), once);
    }

    /// JSON patch: arbitrary operations give a document or an error, never a panic; an
    /// operation list that applies can be followed by a `test` of what it added.
    #[test]
    fn json_patch_never_panics((doc, ops) in json_patch_case()) {
        if let Ok(out) = json_patch(&doc, &ops) {
            for op in ops.as_array().unwrap() {
                if op["op"] == "add" && op.get("value").is_some() && !op["path"].as_str().unwrap().ends_with('-') {
                    // later operations may have changed it: only check a lone add
                    if ops.as_array().unwrap().len() == 1 {
                        let t = json!([{"op": "test", "path": op["path"], "value": op["value"]}]);
                        prop_assert!(json_patch(&out, &t).is_ok(), "{out} {t}");
                    }
                }
            }
        }
    }

    /// Strategic merge patch of arbitrary documents and patches, typed and schemaless: a
    /// result or an error, never a panic.
    #[test]
    fn strategic_merge_never_panics(o in any_json(), p in any_json()) {
        let root = merge_item_root();
        let _ = strategic_merge(&o, &p, schema(), Some(&root));
        let _ = strategic_merge(&o, &p, &NoSchema, None);
        let _ = create_two_way_merge_patch(&o, &p, schema(), Some(&root));
    }

    /// The computed strategic merge patch turns the original into the target (what kubectl
    /// relies on), and applying it again changes nothing.
    #[test]
    fn two_way_patch_round_trip(o in merge_item(2), m in merge_item(2)) {
        let root = merge_item_root();
        let patch = create_two_way_merge_patch(&o, &m, schema(), Some(&root)).unwrap();
        let got = strategic_merge(&o, &patch, schema(), Some(&root)).unwrap();
        prop_assert_eq!(&got, &m, "patch {}", patch);
        let again = strategic_merge(&got, &patch, schema(), Some(&root)).unwrap();
        prop_assert_eq!(&again, &m, "patch {}", patch);
    }

    /// FieldsV1 and its path elements: arbitrary JSON parses or errs; a field set written out
    /// reads back the same.
    #[test]
    fn fields_v1_round_trip(
        v in any_json(),
        key in (prop::sample::select(vec!["f:", "k:", "v:", "i:", "x:", ""]), ".{0,12}", any_json())
            .prop_map(|(p, s, j)| if s.len() % 2 == 0 { format!("{p}{s}") } else { format!("{p}{j}") }),
        obj in any_object(),
    ) {
        let _ = FieldSet::from_fields_v1(&v);
        if let Ok(Some(pe)) = PathElement::parse(&key) {
            prop_assert_eq!(PathElement::parse(&pe.serialize()).unwrap(), Some(pe));
        }
        let root = merge_item_root();
        if let Ok(set) = fields_of(&obj, schema(), Some(&root)) {
            let back = FieldSet::from_fields_v1(&set.to_fields_v1()).unwrap();
            prop_assert_eq!(back, set);
        }
        let set = fields_of(&obj, &NoSchema, None).unwrap();
        prop_assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()).unwrap(), set);
    }

    /// metadata.managedFields from a client: parsed or refused, never a panic; what parses
    /// writes back to an equal value.
    #[test]
    fn managed_fields_decode(entries in prop::collection::vec(any_json(), 0..3), fields in any_json(), time: bool) {
        let _ = ManagedFields::from_json(&Value::Array(entries.clone()));
        let entry = json!({
            "manager": "m", "operation": if time { "Apply" } else { "Update" },
            "apiVersion": "v1", "time": "2024-01-01T00:00:00Z",
            "fieldsType": "FieldsV1", "fieldsV1": fields,
        });
        if let Ok(mf) = ManagedFields::from_json(&json!([entry])) {
            prop_assert_eq!(ManagedFields::from_json(&mf.to_json()).unwrap(), mf);
        }
    }

    /// Server-side apply of arbitrary configurations: an object or an error, never a panic.
    #[test]
    fn apply_never_panics(live in any_object(), cfg in any_json(), force: bool) {
        let root = merge_item_root();
        let managed = ManagedFields::from_object(&live).unwrap_or_default();
        let _ = apply(&live, &cfg, &managed, force, &req("m", "2024-01-01T00:00:00Z"), schema(), Some(&root));
        let _ = apply(&live, &cfg, &managed, force, &req("m", "2024-01-01T00:00:00Z"), &NoSchema, None);
    }

    /// Applying the same configuration twice: the second apply changes nothing (upstream then
    /// skips the write), and a second manager applying the same values does not conflict.
    #[test]
    fn apply_is_idempotent(cfg in merge_item(2)) {
        let root = merge_item_root();
        let first = apply(&json!({}), &cfg, &ManagedFields::new(), false,
            &req("m", "2024-01-01T00:00:00Z"), schema(), Some(&root)).unwrap();
        let second = apply(&first.object, &cfg, &first.managed_fields, false,
            &req("m", "2024-01-01T00:00:01Z"), schema(), Some(&root)).unwrap();
        prop_assert!(!second.changed);
        prop_assert_eq!(&second.object, &first.object);
        let shared = apply(&first.object, &cfg, &first.managed_fields, false,
            &req("other", "2024-01-01T00:00:02Z"), schema(), Some(&root));
        prop_assert!(shared.is_ok(), "{:?}", shared.err());
    }
}

/// The deepest JSON a client can send is what serde_json parses (128 levels): every
/// algorithm must handle that without overflowing the stack of a (debug, 2 MiB) test thread.
#[test]
fn deepest_parsable_json_does_not_overflow() {
    let root = merge_item_root();
    for key in ["mergeItemPtr", "a", "mergingList", "simpleMap"] {
        let (open, close) = if key == "mergingList" {
            (format!("{{\"name\":\"n\",\"{key}\":["), "]}")
        } else {
            (format!("{{\"{key}\":"), "}")
        };
        // find the deepest nesting serde_json accepts
        let mut depth = 1;
        let mut deepest = None;
        while depth < 1000 {
            let text = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => deepest = Some(v),
                Err(_) => break,
            }
            depth += 1;
        }
        assert!(depth < 1000, "serde_json accepted {depth} levels");
        let v = deepest.unwrap();
        let patch = json!({key: v.get(key).cloned().unwrap_or(Value::Null)});
        let _ = strategic_merge(&v, &patch, schema(), Some(&root));
        let _ = strategic_merge(&v, &patch, &NoSchema, None);
        let _ = create_two_way_merge_patch(&v, &json!({}), schema(), Some(&root));
        let _ = merge_patch(&v, &v);
        let _ = create_merge_patch(&json!({}), &v);
        let _ = fields_of(&v, schema(), Some(&root));
        let _ = apply(
            &json!({}),
            &v,
            &ManagedFields::new(),
            false,
            &req("m", "2024-01-01T00:00:00Z"),
            schema(),
            Some(&root),
        );
        let _ = FieldSet::from_fields_v1(&v);
    }
}
