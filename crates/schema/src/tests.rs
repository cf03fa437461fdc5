//! Behaviour against upstream's messages.

use serde_json::{json, Value};

use crate::{validate_crd_schema, Cause, NoRules, RuleHook, Schema};

fn schema(v: Value) -> Schema {
    Schema::parse(&v).expect("schema")
}

fn errs(s: &Schema, obj: Value) -> Vec<String> {
    s.validate(&obj, None, &mut NoRules)
        .iter()
        .map(Cause::to_string)
        .collect()
}

fn spec(props: Value) -> Schema {
    schema(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": props}}
    }))
}

#[test]
fn type_errors() {
    let s = spec(json!({"replicas": {"type": "integer"}, "name": {"type": "string"}}));
    assert_eq!(
        errs(&s, json!({"spec": {"replicas": "3", "name": 5}})),
        vec![
            r#"spec.name: Invalid value: "integer": spec.name in body must be of type string: "integer""#,
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
        ]
    );
    let c = &s.validate(&json!({"spec": {"replicas": 1.5}}), None, &mut NoRules)[0];
    assert_eq!(c.reason, "FieldValueTypeInvalid");
    assert_eq!(
        c.message,
        r#"Invalid value: "number": spec.replicas in body must be of type integer: "number""#
    );
    // A float without fraction is an integer, as upstream decodes JSON.
    assert!(errs(&s, json!({"spec": {"replicas": 3.0}})).is_empty());
}

#[test]
fn nulls_and_nullable() {
    let s = spec(json!({"a": {"type": "string"}, "b": {"type": "string", "nullable": true}}));
    assert_eq!(
        errs(&s, json!({"spec": {"a": null, "b": null}})),
        vec![r#"spec.a: Invalid value: "null": spec.a in body must be of type string: "null""#]
    );
}

#[test]
fn required_fields() {
    let s = schema(json!({
        "type": "object",
        "required": ["spec"],
        "properties": {"spec": {"type": "object", "required": ["x", "y"],
            "properties": {"x": {"type": "string"}, "y": {"type": "string"}}}}
    }));
    assert_eq!(errs(&s, json!({})), vec!["spec: Required value"]);
    let got = s.validate(&json!({"spec": {"y": "1"}}), None, &mut NoRules);
    assert_eq!(got[0].reason, "FieldValueRequired");
    assert_eq!(got[0].to_string(), "spec.x: Required value");
}

#[test]
fn enums() {
    let s = spec(
        json!({"mode": {"type": "string", "enum": ["a", "b"]}, "n": {"type": "integer", "enum": [1, 2]}}),
    );
    let got = s.validate(&json!({"spec": {"mode": "c", "n": 3}}), None, &mut NoRules);
    assert_eq!(got[0].reason, "FieldValueNotSupported");
    assert_eq!(
        got[0].to_string(),
        r#"spec.mode: Unsupported value: "c": supported values: "a", "b""#
    );
    assert_eq!(
        got[1].to_string(),
        r#"spec.n: Unsupported value: 3: supported values: "1", "2""#
    );
}

#[test]
fn numbers() {
    let s = spec(json!({
        "replicas": {"type": "integer", "maximum": 10, "minimum": 1},
        "ratio": {"type": "number", "maximum": 1.5, "exclusiveMaximum": true},
        "step": {"type": "integer", "multipleOf": 5}
    }));
    assert_eq!(
        errs(&s, json!({"spec": {"replicas": 11, "ratio": 1.5, "step": 7}})),
        vec![
            "spec.ratio: Invalid value: 1.5: spec.ratio in body should be less than 1.5",
            "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
            "spec.step: Invalid value: 7: spec.step in body should be a multiple of 5",
        ]
    );
    assert_eq!(
        errs(&s, json!({"spec": {"replicas": 0}})),
        vec!["spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"]
    );
}

#[test]
fn strings() {
    let s = spec(json!({
        "name": {"type": "string", "maxLength": 3},
        "short": {"type": "string", "minLength": 3},
        "pat": {"type": "string", "pattern": "^[a-z]+\\d$"}
    }));
    let got = s.validate(
        &json!({"spec": {"name": "abcd", "short": "ab", "pat": "abc"}}),
        None,
        &mut NoRules,
    );
    let text: Vec<String> = got.iter().map(Cause::to_string).collect();
    assert_eq!(
        text,
        vec![
            "spec.name: Too long: may not be more than 3 bytes",
            r#"spec.pat: Invalid value: "abc": spec.pat in body should match '^[a-z]+\d$'"#,
            r#"spec.short: Invalid value: "ab": spec.short in body should be at least 3 chars long"#,
        ]
    );
    assert_eq!(got[0].reason, "FieldValueTooLong");
    // maxLength counts characters, not bytes.
    assert!(errs(&s, json!({"spec": {"name": "äöü"}})).is_empty());
    // \d is ASCII as in Go.
    assert_eq!(errs(&s, json!({"spec": {"pat": "ab٣"}})).len(), 1);
}

#[test]
fn arrays_and_maps() {
    let s = spec(json!({
        "items": {"type": "array", "maxItems": 2, "minItems": 1, "items": {"type": "object",
            "properties": {"name": {"type": "string"}}, "required": ["name"]}},
        "labels": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}}
    }));
    let got = s.validate(
        &json!({"spec": {"items": [{"name": "a"}, {}, {"name": 1}], "labels": {"a": "x", "b": 2}}}),
        None,
        &mut NoRules,
    );
    let text: Vec<String> = got.iter().map(Cause::to_string).collect();
    assert_eq!(
        text,
        vec![
            "spec.items[1].name: Required value",
            r#"spec.items[2].name: Invalid value: "integer": spec.items[2].name in body must be of type string: "integer""#,
            "spec.items: Too many: 3: must have at most 2 items",
            "spec.labels: Too many: 2: must have at most 1 items",
            r#"spec.labels.b: Invalid value: "integer": spec.labels.b in body must be of type string: "integer""#,
        ]
    );
    assert_eq!(got[2].reason, "FieldValueTooMany");
    assert_eq!(
        errs(&s, json!({"spec": {"items": []}})),
        vec!["spec.items: Invalid value: 0: spec.items in body should have at least 1 items"]
    );
}

#[test]
fn formats() {
    let s = spec(json!({
        "when": {"type": "string", "format": "date-time"},
        "ip": {"type": "string", "format": "ipv4"},
        "other": {"type": "string", "format": "no-such-format"}
    }));
    assert_eq!(
        errs(
            &s,
            json!({"spec": {"when": "yesterday", "ip": "1.2.3.4", "other": "x"}})
        ),
        vec![
            r#"spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday""#
        ]
    );
}

#[test]
fn int_or_string() {
    let s = spec(json!({"port": {"x-kubernetes-int-or-string": true}}));
    assert!(errs(&s, json!({"spec": {"port": 80}})).is_empty());
    assert!(errs(&s, json!({"spec": {"port": "http"}})).is_empty());
    assert_eq!(
        errs(&s, json!({"spec": {"port": true}})),
        vec![
            r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#
        ]
    );
}

#[test]
fn list_types() {
    let s = spec(json!({
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
    }));
    let got = s.validate(
        &json!({"spec": {"tags": ["a", "b", "a"], "ports": [{"name": "x"}, {"name": "x"}]}}),
        None,
        &mut NoRules,
    );
    let text: Vec<String> = got.iter().map(Cause::to_string).collect();
    assert_eq!(
        text,
        vec![
            r#"spec.ports[1]: Duplicate value: map[string]interface {}{"name":"x"}"#,
            r#"spec.tags[2]: Duplicate value: "a""#,
        ]
    );
    assert_eq!(got[0].reason, "FieldValueDuplicate");
}

#[test]
fn embedded_resources() {
    let s = spec(json!({
        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
            "x-kubernetes-preserve-unknown-fields": true}
    }));
    assert_eq!(
        errs(
            &s,
            json!({"spec": {"template": {"metadata": {"name": "a/b"}}}})
        ),
        vec![
            "spec.template.apiVersion: Required value",
            "spec.template.kind: Required value",
            r#"spec.template.metadata.name: Invalid value: "a/b": may not contain '/'"#,
        ]
    );
    assert!(errs(
        &s,
        json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod"}}})
    )
    .is_empty());
}

#[test]
fn composition() {
    let s = spec(json!({
        "v": {"type": "string", "anyOf": [{"pattern": "^a"}, {"pattern": "^b"}]},
        "w": {"type": "string", "not": {"pattern": "^x"}}
    }));
    assert_eq!(
        errs(&s, json!({"spec": {"v": "c", "w": "xy"}})),
        vec![
            r#"<nil>: Invalid value: "": "spec.v" must validate at least one schema (anyOf)"#,
            r#"spec.v: Invalid value: "c": spec.v in body should match '^a'"#,
            r#"<nil>: Invalid value: "": "spec.w" must not validate the schema (not)"#,
        ]
    );
}

#[test]
fn ratcheting() {
    let s =
        spec(json!({"replicas": {"type": "integer", "maximum": 10}, "other": {"type": "string"}}));
    let old = json!({"spec": {"replicas": 20, "other": "a"}});
    // Unchanged invalid value: dropped.
    let new = json!({"spec": {"replicas": 20, "other": "b"}});
    assert!(s.validate(&new, Some(&old), &mut NoRules).is_empty());
    // Changed: reported.
    let new = json!({"spec": {"replicas": 21, "other": "a"}});
    assert_eq!(s.validate(&new, Some(&old), &mut NoRules).len(), 1);
    // Atomic lists do not correlate by index: an unchanged bad item is still reported.
    let s = spec(
        json!({"xs": {"type": "array", "x-kubernetes-list-type": "atomic",
        "items": {"type": "integer", "maximum": 1}}}),
    );
    let old = json!({"spec": {"xs": [5]}});
    assert_eq!(s.validate(&old, Some(&old), &mut NoRules).len(), 1);
    // Map lists correlate by key.
    let s = spec(
        json!({"xs": {"type": "array", "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["k"],
        "items": {"type": "object", "properties": {"k": {"type": "string"}, "v": {"type": "integer", "maximum": 1}}}}}),
    );
    let old = json!({"spec": {"xs": [{"k": "a", "v": 5}]}});
    let new = json!({"spec": {"xs": [{"k": "b", "v": 0}, {"k": "a", "v": 5}]}});
    assert!(s.validate(&new, Some(&old), &mut NoRules).is_empty());
}

struct Recorder(Vec<(String, Option<Value>)>);

impl RuleHook for Recorder {
    fn check(
        &mut self,
        path: &str,
        _: &Value,
        _: &Value,
        v: &Value,
        old: Option<&Value>,
        causes: &mut Vec<Cause>,
    ) {
        self.0.push((path.to_owned(), old.cloned()));
        if v.as_i64() == Some(13) {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                field: path.into(),
                message: "unlucky".into(),
            });
        }
    }
}

#[test]
fn rule_hook() {
    let s = spec(json!({
        "n": {"type": "integer", "maximum": 100, "x-kubernetes-validations": [{"rule": "self != 13"}]},
        "m": {"type": "object", "additionalProperties": {"type": "integer",
            "x-kubernetes-validations": [{"rule": "true"}]}}
    }));
    let mut r = Recorder(vec![]);
    let got = s.validate(
        &json!({"spec": {"n": 13, "m": {"a": 1}}}),
        Some(&json!({"spec": {"n": 12}})),
        &mut r,
    );
    assert_eq!(got.len(), 1);
    assert_eq!(
        r.0,
        vec![
            ("spec.m[a]".to_owned(), None),
            ("spec.n".to_owned(), Some(json!(12)))
        ]
    );
    // Blocking errors skip the rules.
    let mut r = Recorder(vec![]);
    let got = s.validate(&json!({"spec": {"n": "x"}}), None, &mut r);
    assert!(r.0.is_empty());
    assert_eq!(
        got.last().map(Cause::to_string).as_deref(),
        Some(
            r#"<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#
        )
    );
}

#[test]
fn pruning() {
    let s = schema(json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {
                "a": {"type": "string"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "list": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "string"}}}},
                "emb": {"type": "object", "x-kubernetes-embedded-resource": true,
                    "properties": {"spec": {"type": "string"}}}
            }}
        }
    }));
    let mut obj = json!({
        "apiVersion": "v1", "kind": "K",
        "metadata": {"name": "n", "bogus": 1},
        "spec": {"a": "x", "b": 1, "free": {"any": 1}, "list": [{"x": "1", "y": 2}],
            "emb": {"apiVersion": "v1", "kind": "P", "metadata": {"name": "p", "junk": true}, "spec": "s", "z": 1}},
        "status": {}
    });
    let pruned = s.prune(&mut obj);
    assert_eq!(
        pruned,
        vec![
            "metadata.bogus",
            "spec.b",
            "spec.emb.metadata.junk",
            "spec.emb.z",
            "spec.list[0].y",
            "status",
        ]
    );
    assert_eq!(
        obj,
        json!({
            "apiVersion": "v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"a": "x", "free": {"any": 1}, "list": [{"x": "1"}],
                "emb": {"apiVersion": "v1", "kind": "P", "metadata": {"name": "p"}, "spec": "s"}}
        })
    );
    // Nulls without a default in non-nullable fields go.
    let mut obj = json!({"spec": {"a": null}});
    s.prune(&mut obj);
    assert_eq!(obj, json!({"spec": {}}));
}

#[test]
fn defaulting() {
    let s = schema(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "default": {}, "properties": {
            "replicas": {"type": "integer", "default": 1},
            "opt": {"type": "string", "nullable": true, "default": "d"},
            "items": {"type": "array", "items": {"type": "object",
                "properties": {"p": {"type": "string", "default": "x"}}}}
        }}}
    }));
    let mut obj = json!({});
    s.apply_defaults(&mut obj);
    assert_eq!(obj, json!({"spec": {"replicas": 1, "opt": "d"}}));
    let mut obj = json!({"spec": {"replicas": null, "opt": null, "items": [{}]}});
    s.apply_defaults(&mut obj);
    assert_eq!(
        obj,
        json!({"spec": {"replicas": 1, "opt": null, "items": [{"p": "x"}]}})
    );
}

#[test]
fn accessors() {
    let s = schema(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "replicas": {"type": "integer"},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
        }}}
    }));
    assert_eq!(
        s.node_at(".spec.replicas").map(|n| n.type_()),
        Some("integer")
    );
    let ports = s.node_at("spec.ports").expect("ports");
    assert_eq!(ports.list_type(), Some("map"));
    assert_eq!(ports.list_map_keys(), ["name"]);
    assert_eq!(
        s.node_at(".spec.ports[*].name").map(|n| n.type_()),
        Some("string")
    );
    assert!(s.node_at(".spec.nope").is_none());
}

const P: &str = "spec.versions[0].schema.openAPIV3Schema";

fn crd(v: Value) -> Vec<String> {
    validate_crd_schema(&v, P)
        .iter()
        .map(Cause::to_string)
        .collect()
}

#[test]
fn crd_structural() {
    assert_eq!(
        crd(json!({"type": "object", "properties": {"spec": {"properties": {"x": {"type": "string"}}}}})),
        vec![format!("{P}.properties[spec].type: Required value: must not be empty for specified object fields")]
    );
    assert_eq!(
        crd(json!({"type": "object", "properties": {"a": {"type": "array"}}})),
        vec![format!(
            "{P}.properties[a].items: Required value: must be specified"
        )]
    );
    assert_eq!(
        crd(
            json!({"type": "object", "properties": {"a": {"type": "string",
            "anyOf": [{"type": "string", "description": "x"}]}}})
        ),
        vec![
            format!(
                "{P}.properties[a].anyOf[0].description: Forbidden: must be empty to be structural"
            ),
            format!("{P}.properties[a].anyOf[0].type: Forbidden: must be empty to be structural"),
        ]
    );
    assert_eq!(
        crd(json!({"type": "object", "properties": {"metadata": {"type": "object",
            "properties": {"labels": {"type": "object"}}}}})),
        vec![format!("{P}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified")]
    );
    assert!(crd(
        json!({"type": "object", "properties": {"metadata": {"type": "object",
        "properties": {"name": {"type": "string", "maxLength": 10}}}}})
    )
    .is_empty());
    // The int-or-string pattern is allowed.
    assert!(crd(
        json!({"type": "object", "properties": {"p": {"x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}]}}})
    )
    .is_empty());
}

#[test]
fn crd_defaults() {
    assert_eq!(
        crd(json!({"type": "object", "properties": {"r": {"type": "integer", "maximum": 10, "default": 20}}})),
        vec![format!("{P}.properties[r].default: Invalid value: 20:  in body should be less than or equal to 10")]
    );
    assert_eq!(
        crd(
            json!({"type": "object", "properties": {"o": {"type": "object",
            "properties": {"a": {"type": "string"}}, "default": {"a": "x", "b": 1}}}})
        ),
        vec![format!(
            r#"{P}.properties[o].default: Invalid value: map[string]interface {{}}{{"a":"x", "b":1}}: must not have unknown fields"#
        )]
    );
    assert_eq!(
        crd(
            json!({"type": "object", "properties": {"metadata": {"type": "object", "default": {}}}})
        ),
        vec![format!(
            "{P}.properties[metadata].default: Forbidden: must not be set in top-level metadata"
        )]
    );
}

#[test]
fn crd_openapi_rules() {
    assert_eq!(
        crd(json!({"type": "object", "properties": {"a": {"type": "array", "uniqueItems": true, "items": {"type": "string"}}}})),
        vec![format!("{P}.properties[a].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic")]
    );
    assert_eq!(
        crd(json!({"type": "object", "properties": {"a": {"type": "array", "x-kubernetes-list-type": "map",
            "items": {"type": "object", "properties": {"k": {"type": "string"}}}}}})),
        vec![format!("{P}.properties[a].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map")]
    );
    assert_eq!(
        crd(json!({"type": "object", "properties": {"a": {"type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["k"],
            "items": {"type": "object", "properties": {"k": {"type": "string"}}}}}})),
        vec![format!("{P}.properties[a].items.properties[k].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property")]
    );
    assert_eq!(
        crd(json!({"type": "object", "properties": {"a": {"type": "string", "x-kubernetes-list-type": "bag"}}})),
        vec![
            format!("{P}.properties[a].type: Invalid value: \"string\": must be array if x-kubernetes-list-type is specified"),
            format!("{P}.properties[a].x-kubernetes-list-type: Unsupported value: \"bag\": supported values: \"atomic\", \"set\", \"map\""),
        ]
    );
    assert_eq!(
        crd(json!({"type": "object", "nullable": true, "properties": {"a": {"type": "string",
            "x-kubernetes-preserve-unknown-fields": false}}})),
        vec![
            format!("{P}.nullable: Forbidden: nullable cannot be true at the root"),
            format!("{P}.properties[a].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"),
        ]
    );
    assert_eq!(
        crd(json!({"type": "object", "properties": {"a": {"type": "string",
            "x-kubernetes-validations": [{"rule": " "}, {"rule": "self.size() > 1", "reason": "Nope"}]}}})),
        vec![
            format!("{P}.properties[a].x-kubernetes-validations[0].rule: Required value: rule is not specified"),
            format!("{P}.properties[a].x-kubernetes-validations[1].reason: Unsupported value: \"Nope\": supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\""),
        ]
    );
}
