//! Properties of pruning, defaulting and validation over arbitrary JSON.

use proptest::prelude::*;
use reddwarf_schema::{validate_crd_schema, NoRules, Schema};
use serde_json::{json, Map, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "[a-z0-9 ]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("spec".to_owned()),
                        Just("metadata".to_owned()),
                        Just("items".to_owned()),
                        Just("name".to_owned()),
                        Just("type".to_owned()),
                        Just("properties".to_owned()),
                        "[a-z]{1,4}"
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn schemas() -> Vec<Schema> {
    [
        json!({"type": "object", "properties": {"spec": {"type": "object", "default": {}, "properties": {
            "replicas": {"type": "integer", "default": 1, "maximum": 5},
            "name": {"type": "string", "maxLength": 3, "pattern": "^[a-z]*$", "default": "x"},
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string", "default": "n"},
                    "v": {"type": "number", "nullable": true, "default": 1.5}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "default": "l"}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"k": {"type": "integer", "default": 3}}},
            "emb": {"type": "object", "x-kubernetes-embedded-resource": true,
                "x-kubernetes-preserve-unknown-fields": true,
                "x-kubernetes-validations": [{"rule": "true"}]}
        }}}}),
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        json!({"type": "object", "properties": {"items": {"type": "array", "items": {
            "type": "object", "properties": {"name": {"type": "string", "enum": ["a", "b"]}},
            "required": ["name"], "oneOf": [{"required": ["name"]}], "not": {"properties": {"name": {"pattern": "z"}}}}}}}),
    ]
    .iter()
    .map(|v| Schema::parse(v).expect("schema"))
    .collect()
}

proptest! {
    #[test]
    fn prune_is_idempotent(v in arb_json()) {
        for s in schemas() {
            let mut once = v.clone();
            s.prune(&mut once);
            let mut twice = once.clone();
            let more = s.prune(&mut twice);
            prop_assert_eq!(&once, &twice);
            prop_assert!(more.is_empty(), "second prune removed {:?}", more);
        }
    }

    #[test]
    fn apply_defaults_is_idempotent(v in arb_json()) {
        for s in schemas() {
            let mut once = v.clone();
            s.apply_defaults(&mut once);
            let mut twice = once.clone();
            s.apply_defaults(&mut twice);
            prop_assert_eq!(once, twice);
        }
    }

    #[test]
    fn validate_never_panics(v in arb_json(), old in arb_json()) {
        for s in schemas() {
            let _ = s.validate(&v, None, &mut NoRules);
            let _ = s.validate(&v, Some(&old), &mut NoRules);
            let _ = s.validate(&v, Some(&v), &mut NoRules);
        }
    }

    #[test]
    fn parse_and_crd_checks_never_panic(v in arb_json()) {
        if let Ok(s) = Schema::parse(&v) {
            let _ = s.validate(&v, None, &mut NoRules);
            let _ = s.node_at(".spec.items[*].name");
        }
        let _ = validate_crd_schema(&v, "spec.versions[0].schema.openAPIV3Schema");
    }
}
