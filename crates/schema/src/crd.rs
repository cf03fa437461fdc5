//! Validation of a CRD version's openAPIV3Schema itself: upstream's structural-schema
//! rules, default values, and the apiextensions OpenAPI schema checks.

use serde_json::{Map, Value};

use crate::gofmt;
use crate::node::{go_regex, Node};
use crate::{prune, validate, Cause};

fn child(p: &str, k: &str) -> String {
    if p.is_empty() {
        k.to_owned()
    } else {
        format!("{p}.{k}")
    }
}

fn key(p: &str, k: &str) -> String {
    format!("{p}[{k}]")
}

fn index(p: &str, i: usize) -> String {
    format!("{p}[{i}]")
}

fn forbidden(field: String, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueForbidden",
        field,
        message: format!("Forbidden: {detail}"),
    }
}

fn required(field: String, detail: &str) -> Cause {
    let message = if detail.is_empty() {
        "Required value".to_owned()
    } else {
        format!("Required value: {detail}")
    };
    Cause {
        reason: "FieldValueRequired",
        field,
        message,
    }
}

/// field.Invalid with an already rendered value.
fn invalid_r(field: String, value: String, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field,
        message: format!("Invalid value: {value}: {detail}"),
    }
}

fn invalid(field: String, value: &Value, detail: &str) -> Cause {
    invalid_r(field, gofmt::bad_value(value), detail)
}

fn not_supported(field: String, value: &str, supported: &[&str]) -> Cause {
    let quoted: Vec<String> = supported.iter().map(|s| gofmt::quote(s)).collect();
    Cause {
        reason: "FieldValueNotSupported",
        field,
        message: format!(
            "Unsupported value: {}: supported values: {}",
            gofmt::quote(value),
            quoted.join(", ")
        ),
    }
}

fn obj(v: &Value) -> Option<&Map<String, Value>> {
    v.as_object()
}

fn s<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

fn b(m: &Map<String, Value>, k: &str) -> bool {
    m.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn sorted_props(m: &Map<String, Value>, k: &str) -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = m
        .get(k)
        .and_then(Value::as_object)
        .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn list<'a>(m: &'a Map<String, Value>, k: &str) -> &'a [Value] {
    m.get(k)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The schema `items` when it is a single schema (an array form is reported separately).
fn items(m: &Map<String, Value>) -> Option<&Map<String, Value>> {
    m.get("items").and_then(Value::as_object)
}

/// JSON zero values, which Go's structs cannot tell from unset.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) => false,
    }
}

fn set(m: &Map<String, Value>, k: &str) -> bool {
    m.get(k).is_some_and(|v| !is_zero(v))
}

/// Validates a CRD version's openAPIV3Schema; `path` is its field path in the CRD (e.g.
/// "spec.versions[0].schema.openAPIV3Schema"). Returns upstream's causes in upstream's
/// order: root nullable, then the structural-schema rules (sorted by message, as upstream
/// sorts them) or, when those pass, the checks of `default` values, then the OpenAPI schema
/// checks. CEL rules are only checked statically (not compiled), and the restriction of
/// root fields when the status subresource is enabled is the caller's.
pub fn validate_crd_schema(schema: &Value, path: &str) -> Vec<Cause> {
    let mut out = vec![];
    let Some(m) = obj(schema) else {
        out.push(invalid_r(
            path.to_owned(),
            gofmt::quote(""),
            "must be an object",
        ));
        return out;
    };
    if b(m, "nullable") {
        out.push(forbidden(
            child(path, "nullable"),
            "nullable cannot be true at the root",
        ));
    }
    let mut structural = vec![];
    invariants(m, Level::Root, path, &mut structural);
    completeness(m, path, &mut structural);
    structural.sort_by_key(|c| c.to_string());
    if structural.is_empty() {
        defaults(m, path, true, false, &mut out);
    } else {
        out.extend(structural);
    }
    let ctx = Ctx {
        allow_defaults: true,
        reason: String::new(),
        inside_meta: false,
    };
    openapi(m, path, &ctx, true, &mut out);
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Item,
    Field,
}

fn invariants(m: &Map<String, Value>, lvl: Level, path: &str, out: &mut Vec<Cause>) {
    let ty = s(m, "type");
    let its = items(m);
    if ty == "array" && its.is_none() {
        out.push(required(child(path, "items"), "must be specified"));
    }
    if let Some(i) = its {
        invariants(i, Level::Item, &child(path, "items"), out);
    }
    let props = sorted_props(m, "properties");
    for (k, v) in &props {
        if let Some(p) = obj(v) {
            invariants(p, Level::Field, &key(&child(path, "properties"), k), out);
        }
    }
    let addl = m
        .get("additionalProperties")
        .filter(|v| v.is_boolean() || v.is_object());
    if let Some(a) = addl {
        if lvl == Level::Root {
            out.push(forbidden(
                child(path, "additionalProperties"),
                "must not be used at the root",
            ));
        }
        if let Some(a) = obj(a) {
            invariants(a, Level::Field, &child(path, "additionalProperties"), out);
        }
    }
    let ios = b(m, "x-kubernetes-int-or-string");
    let preserve = b(m, "x-kubernetes-preserve-unknown-fields");
    let embedded = b(m, "x-kubernetes-embedded-resource");
    if ios && preserve {
        out.push(invalid(
            child(path, "x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if ios && embedded {
        out.push(invalid(
            child(path, "x-kubernetes-embedded-resource"),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    let skip_any_of = int_or_string_any_of(list(m, "anyOf"));
    let skip_first_all_of = list(m, "allOf")
        .first()
        .and_then(obj)
        .is_some_and(|a| int_or_string_any_of(list(a, "anyOf")));
    value_validation(m, skip_any_of, skip_first_all_of, lvl, path, out);
    let check_meta = lvl == Level::Root || embedded;
    if embedded && ty != "object" {
        if ty.is_empty() {
            out.push(required(
                child(path, "type"),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        } else {
            out.push(invalid(
                child(path, "type"),
                &Value::String(ty.into()),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        }
    } else if ty.is_empty() && !ios && !preserve {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        out.push(required(child(path, "type"), detail));
    }
    if embedded && addl.is_some() {
        out.push(forbidden(
            child(path, "additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        out.push(invalid(
            child(path, "type"),
            &Value::String(ty.into()),
            "must be object at the root",
        ));
    }
    let prop = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    for k in ["kind", "apiVersion"] {
        if let (Some(p), true) = (prop(k), check_meta) {
            let pt = p.get("type").and_then(Value::as_str).unwrap_or("");
            if pt != "string" {
                out.push(invalid(
                    child(&key(&child(path, "properties"), k), "type"),
                    &Value::String(pt.into()),
                    "must be string",
                ));
            }
        }
    }
    if let Some(md) = prop("metadata").and_then(obj) {
        metadata_invariants(
            md,
            check_meta,
            lvl,
            &key(&child(path, "properties"), "metadata"),
            out,
        );
    }
    if embedded && !preserve && props.is_empty() {
        out.push(required(
            child(path, "properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

fn metadata_invariants(
    m: &Map<String, Value>,
    check_meta: bool,
    lvl: Level,
    path: &str,
    out: &mut Vec<Cause>,
) {
    let ty = s(m, "type");
    if check_meta && ty != "object" {
        out.push(invalid(
            child(path, "type"),
            &Value::String(ty.into()),
            "must be object",
        ));
    }
    if lvl == Level::Root {
        let props = m.get("properties").and_then(Value::as_object);
        let props_ok = match props {
            None => true,
            Some(p) => {
                let name = p.contains_key("name");
                let gen = p.contains_key("generateName");
                p.is_empty() || (name && gen && p.len() == 2) || ((name || gen) && p.len() == 1)
            }
        };
        let other = m
            .iter()
            .any(|(k, v)| !matches!(k.as_str(), "type" | "default" | "properties") && !is_zero(v));
        if !props_ok || other {
            out.push(forbidden(
                path.to_owned(),
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
}

/// `anyOf: [{type: integer}, {type: string}]` exactly, upstream's IntOrString pattern.
fn int_or_string_any_of(a: &[Value]) -> bool {
    let only_type = |v: &Value, t: &str| {
        obj(v)
            .is_some_and(|m| s(m, "type") == t && m.iter().all(|(k, v)| k == "type" || is_zero(v)))
    };
    a.len() == 2 && only_type(&a[0], "integer") && only_type(&a[1], "string")
}

fn value_validation(
    m: &Map<String, Value>,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    lvl: Level,
    path: &str,
    out: &mut Vec<Cause>,
) {
    if !skip_any_of {
        for (i, v) in list(m, "anyOf").iter().enumerate() {
            if let Some(v) = obj(v) {
                nested(v, false, false, lvl, &index(&child(path, "anyOf"), i), out);
            }
        }
    }
    for (i, v) in list(m, "allOf").iter().enumerate() {
        if let Some(v) = obj(v) {
            let skip = skip_first_all_of_any_of && i == 0;
            nested(v, skip, false, lvl, &index(&child(path, "allOf"), i), out);
        }
    }
    for (i, v) in list(m, "oneOf").iter().enumerate() {
        if let Some(v) = obj(v) {
            nested(v, false, false, lvl, &index(&child(path, "oneOf"), i), out);
        }
    }
    if let Some(not) = m.get("not").and_then(obj) {
        nested(not, false, false, lvl, &child(path, "not"), out);
    }
    let p = s(m, "pattern");
    if !p.is_empty() {
        if let Err(e) = go_regex(p) {
            out.push(invalid(
                child(path, "pattern"),
                &Value::String(p.into()),
                &format!("must be a valid regular expression, but isn't: {e}"),
            ));
        }
    }
}

fn nested(
    m: &Map<String, Value>,
    skip_any_of: bool,
    skip_all: bool,
    lvl: Level,
    path: &str,
    out: &mut Vec<Cause>,
) {
    value_validation(m, skip_any_of, skip_all, lvl, path, out);
    if let Some(i) = items(m) {
        nested(i, false, false, lvl, &child(path, "items"), out);
    }
    for (k, v) in sorted_props(m, "properties") {
        if let Some(p) = obj(&v) {
            nested(
                p,
                false,
                false,
                Level::Field,
                &key(&child(path, "properties"), &k),
                out,
            );
        }
    }
    let checks: [(&str, &str); 14] = [
        ("type", "must be empty to be structural"),
        ("additionalProperties", "must be undefined to be structural"),
        ("default", "must be undefined to be structural"),
        ("title", "must be empty to be structural"),
        ("description", "must be empty to be structural"),
        ("nullable", "must be false to be structural"),
        ("externalDocs", "must be undefined to be structural"),
        (
            "x-kubernetes-preserve-unknown-fields",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-int-or-string",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        ),
        (
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        ),
        (
            "x-kubernetes-map-type",
            "must be undefined to be structural",
        ),
        ("x-kubernetes-validations", "must be empty to be structural"),
    ];
    for (k, detail) in checks {
        let present = match k {
            // Pointers upstream: set even when false or empty.
            "additionalProperties"
            | "default"
            | "externalDocs"
            | "x-kubernetes-list-type"
            | "x-kubernetes-map-type" => m.get(k).is_some_and(|v| !v.is_null()),
            _ => set(m, k),
        };
        if present {
            out.push(forbidden(child(path, k), detail));
        }
    }
    if m.get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| p.contains_key("metadata"))
    {
        out.push(forbidden(
            key(&child(path, "properties"), "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

/// Every field a value validation (anyOf/allOf/oneOf/not) mentions must be specified in the
/// structural part too. Upstream checks the root's value validations only.
fn completeness(m: &Map<String, Value>, path: &str, out: &mut Vec<Cause>) {
    vv_complete(m, Some(m), path, path, out);
}

fn vv_complete(
    v: &Map<String, Value>,
    st: Option<&Map<String, Value>>,
    sp: &str,
    vp: &str,
    out: &mut Vec<Cause>,
) {
    let has_vv = ["not", "allOf", "anyOf", "oneOf"]
        .iter()
        .any(|k| v.contains_key(*k));
    if !has_vv {
        return;
    }
    let Some(st) = st else {
        out.push(required(
            sp.to_owned(),
            &format!("because it is defined in {vp}"),
        ));
        return;
    };
    if let Some(n) = v.get("not").and_then(obj) {
        nested_complete(n, Some(st), sp, &child(vp, "not"), out);
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        for (i, x) in list(v, k).iter().enumerate() {
            if let Some(x) = obj(x) {
                nested_complete(x, Some(st), sp, &index(&child(vp, k), i), out);
            }
        }
    }
}

fn nested_complete(
    v: &Map<String, Value>,
    st: Option<&Map<String, Value>>,
    sp: &str,
    vp: &str,
    out: &mut Vec<Cause>,
) {
    let Some(st) = st else {
        out.push(required(
            sp.to_owned(),
            &format!("because it is defined in {vp}"),
        ));
        return;
    };
    vv_complete(v, Some(st), sp, vp, out);
    if let Some(vi) = items(v) {
        nested_complete(vi, items(st), &child(sp, "items"), &child(vp, "items"), out);
    }
    let sprops = st.get("properties").and_then(Value::as_object);
    for (k, vf) in sorted_props(v, "properties") {
        let Some(vf) = obj(&vf) else { continue };
        let spk = key(&child(sp, "properties"), &k);
        let vpk = key(&child(vp, "properties"), &k);
        match sprops.and_then(|p| p.get(&k)).and_then(obj) {
            None => out.push(required(spk, &format!("because it is defined in {vpk}"))),
            Some(sf) => nested_complete(vf, Some(sf), &spk, &vpk, out),
        }
    }
}

const META: [&str; 3] = ["metadata", "kind", "apiVersion"];

/// Checks `default`s: pruned-equal to themselves, and valid against their schema.
fn defaults(
    m: &Map<String, Value>,
    path: &str,
    root: bool,
    inside_meta: bool,
    out: &mut Vec<Cause>,
) {
    let raw = Value::Object(m.clone());
    let Ok(mut n) = Node::parse(&raw) else { return };
    if root {
        n.embedded = true;
    }
    let inside_meta = if n.embedded { false } else { inside_meta };
    if let Some(d) = m.get("default").filter(|d| !d.is_null()) {
        // Defaults inside resource metadata are validated upstream by building the
        // surrounding object; they are forbidden at the top level anyway.
        if !inside_meta {
            let dp = child(path, "default");
            let mut pruned = d.clone();
            prune::prune_default(&mut pruned, &n);
            if &pruned != d {
                out.push(invalid(dp.clone(), d, "must not have unknown fields"));
            }
            let mut meta = vec![];
            validate::embedded_meta(&n, &dp, d, false, &mut meta);
            if !meta.is_empty() {
                out.extend(meta);
            } else {
                let res = validate::node(&n, "", d, None);
                out.extend(validate::to_causes(res.errs, Some(&dp)));
            }
        }
    }
    if let Some(i) = items(m) {
        defaults(i, &child(path, "items"), false, inside_meta, out);
    }
    for (k, v) in sorted_props(m, "properties") {
        if let Some(p) = obj(&v) {
            let sub_meta = inside_meta || (n.embedded && META.contains(&k.as_str()));
            defaults(
                p,
                &key(&child(path, "properties"), &k),
                false,
                sub_meta,
                out,
            );
        }
    }
}

#[derive(Clone)]
struct Ctx {
    allow_defaults: bool,
    reason: String,
    inside_meta: bool,
}

impl Ctx {
    fn forbid_defaults(&self, reason: &str) -> Ctx {
        Ctx {
            allow_defaults: false,
            reason: reason.into(),
            ..self.clone()
        }
    }
}

const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

fn openapi(m: &Map<String, Value>, path: &str, ctx: &Ctx, is_root: bool, out: &mut Vec<Cause>) {
    let ty = s(m, "type");
    // specStandardValidatorV3
    if !ty.is_empty() && !TYPES.contains(&ty) {
        out.push(not_supported(child(path, "type"), ty, &TYPES));
    }
    if m.get("default").is_some_and(|d| !d.is_null()) && !ctx.allow_defaults {
        let mut detail = "must not be set".to_owned();
        if !ctx.reason.is_empty() {
            detail.push(' ');
            detail.push_str(&ctx.reason);
        }
        out.push(forbidden(child(path, "default"), &detail));
    }
    if set(m, "id") {
        out.push(forbidden(child(path, "id"), "id is not supported"));
    }
    if m.get("additionalItems").is_some_and(|v| !v.is_null()) {
        out.push(forbidden(
            child(path, "additionalItems"),
            "additionalItems is not supported",
        ));
    }
    if set(m, "patternProperties") {
        out.push(forbidden(
            child(path, "patternProperties"),
            "patternProperties is not supported",
        ));
    }
    if set(m, "definitions") {
        out.push(forbidden(
            child(path, "definitions"),
            "definitions is not supported",
        ));
    }
    if m.get("dependencies").is_some_and(|v| !v.is_null()) {
        out.push(forbidden(
            child(path, "dependencies"),
            "dependencies is not supported",
        ));
    }
    if m.get("$ref").is_some_and(|v| !v.is_null()) {
        out.push(forbidden(child(path, "$ref"), "$ref is not supported"));
    }
    if ty == "null" {
        out.push(forbidden(
            child(path, "type"),
            "type cannot be set to null, use nullable as an alternative",
        ));
    }
    let items_array = m.get("items").and_then(Value::as_array);
    if items_array.is_some_and(|a| !a.is_empty()) {
        out.push(forbidden(
            child(path, "items"),
            "items must be a schema object and not an array",
        ));
    }
    let embedded = b(m, "x-kubernetes-embedded-resource");
    if ctx.inside_meta && embedded {
        out.push(forbidden(
            child(path, "x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        ));
    }
    if b(m, "uniqueItems") {
        out.push(forbidden(
            child(path, "uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let props = sorted_props(m, "properties");
    if let Some(a) = m
        .get("additionalProperties")
        .filter(|v| v.is_boolean() || v.is_object())
    {
        if !props.is_empty() && (a == &Value::Bool(false) || a.is_object()) {
            out.push(forbidden(
                child(path, "additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        let sub = if ctx.inside_meta {
            ctx.forbid_defaults("inside additionalProperties applying to object metadata")
        } else {
            ctx.clone()
        };
        if let Some(a) = obj(a) {
            openapi(a, &child(path, "additionalProperties"), &sub, false, out);
        }
    }
    for (k, v) in &props {
        let Some(p) = obj(v) else { continue };
        let mut sub = ctx.clone();
        if (is_root || embedded) && META.contains(&k.as_str()) {
            sub.inside_meta = true;
            if is_root {
                sub = sub.forbid_defaults(&format!("in top-level {k}"));
            }
        }
        openapi(p, &key(&child(path, "properties"), k), &sub, false, out);
    }
    if let Some(n) = m.get("not").and_then(obj) {
        openapi(n, &child(path, "not"), ctx, false, out);
    }
    for k in ["allOf", "oneOf", "anyOf"] {
        for (i, x) in list(m, k).iter().enumerate() {
            if let Some(x) = obj(x) {
                openapi(x, &index(&child(path, k), i), ctx, false, out);
            }
        }
    }
    for (k, v) in sorted_props(m, "definitions") {
        if let Some(d) = obj(&v) {
            openapi(d, &key(&child(path, "definitions"), &k), ctx, false, out);
        }
    }
    if let Some(i) = items(m) {
        openapi(i, &child(path, "items"), ctx, false, out);
    }
    if let Some(a) = items_array {
        for (i, x) in a.iter().enumerate() {
            if let Some(x) = obj(x) {
                openapi(x, &index(&child(path, "items"), i), ctx, false, out);
            }
        }
    }
    for (k, v) in sorted_props(m, "dependencies") {
        if let Some(d) = obj(&v) {
            openapi(d, &key(&child(path, "dependencies"), &k), ctx, false, out);
        }
    }
    if m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        out.push(invalid(
            child(path, "x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(false),
            "must be true or undefined",
        ));
    }
    list_and_map_types(m, ty, path, out);
    rules(m, path, out);
}

fn list_and_map_types(m: &Map<String, Value>, ty: &str, path: &str, out: &mut Vec<Cause>) {
    let map_type = m.get("x-kubernetes-map-type").and_then(Value::as_str);
    if map_type.is_some() && ty != "object" {
        type_must_be(ty, "object", "x-kubernetes-map-type", path, out);
    }
    if let Some(mt) = map_type {
        if mt != "atomic" && mt != "granular" {
            out.push(not_supported(
                child(path, "x-kubernetes-map-type"),
                mt,
                &["atomic", "granular"],
            ));
        }
    }
    let list_type = m.get("x-kubernetes-list-type").and_then(Value::as_str);
    if list_type.is_some() && ty != "array" {
        type_must_be(ty, "array", "x-kubernetes-list-type", path, out);
    } else if let (Some("set"), Some(is)) = (list_type, items(m)) {
        let ip = child(path, "items");
        let ilt = is.get("x-kubernetes-list-type").and_then(Value::as_str);
        let msg = "must be atomic as item of a list with x-kubernetes-list-type=set";
        match s(is, "type") {
            "array" => {
                if let Some(l) = ilt.filter(|l| *l != "atomic") {
                    out.push(invalid(
                        child(&ip, "x-kubernetes-list-type"),
                        &Value::String(l.into()),
                        msg,
                    ));
                }
            }
            "object" => {
                let imt = is.get("x-kubernetes-map-type").and_then(Value::as_str);
                if imt != Some("atomic") {
                    // Upstream prints the item's list type here.
                    let shown = ilt.map(|l| Value::String(l.into())).unwrap_or(Value::Null);
                    out.push(invalid(child(&ip, "x-kubernetes-map-type"), &shown, msg));
                }
            }
            _ => {}
        }
    }
    if let Some(lt) = list_type {
        if !matches!(lt, "atomic" | "set" | "map") {
            out.push(not_supported(
                child(path, "x-kubernetes-list-type"),
                lt,
                &["atomic", "set", "map"],
            ));
        }
    }
    let keys: Vec<&str> = list(m, "x-kubernetes-list-map-keys")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let keys_shown = {
        let q: Vec<String> = keys.iter().map(|k| gofmt::quote(k)).collect();
        format!("[]string{{{}}}", q.join(", "))
    };
    if !keys.is_empty() {
        match list_type {
            None => out.push(required(
                child(path, "x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some(lt) if lt != "map" => out.push(invalid(
                child(path, "x-kubernetes-list-type"),
                &Value::String(lt.into()),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            _ => {}
        }
    }
    if list_type == Some("map") {
        if keys.is_empty() {
            out.push(required(
                child(path, "x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        match m.get("items") {
            None | Some(Value::Null) => out.push(required(
                child(path, "items"),
                "must have a schema if x-kubernetes-list-type is map",
            )),
            Some(a @ Value::Array(_)) => out.push(invalid(
                child(path, "items"),
                a,
                "must only have a single schema if x-kubernetes-list-type is map",
            )),
            _ => {}
        }
        if let Some(is) = items(m) {
            let it = s(is, "type");
            if it != "object" {
                out.push(invalid(
                    child(&child(path, "items"), "type"),
                    &Value::String(it.into()),
                    "must be object if parent array's x-kubernetes-list-type is map",
                ));
            } else {
                let iprops = is.get("properties").and_then(Value::as_object);
                let mut seen: Vec<&str> = vec![];
                for k in &keys {
                    match iprops.and_then(|p| p.get(*k)).and_then(obj) {
                        Some(p) => {
                            if matches!(s(p, "type"), "array" | "object") {
                                out.push(invalid(
                                    child(&key(&child(&child(path, "items"), "properties"), k), "type"),
                                    &Value::String(it.into()),
                                    "must be a scalar type if parent array's x-kubernetes-list-type is map",
                                ));
                            }
                        }
                        None => out.push(invalid_r(
                            child(path, "x-kubernetes-list-map-keys"),
                            keys_shown.clone(),
                            "entries must all be names of item properties",
                        )),
                    }
                    if seen.contains(k) {
                        out.push(invalid_r(
                            child(path, "x-kubernetes-list-map-keys"),
                            keys_shown.clone(),
                            "must not contain duplicate entries",
                        ));
                    }
                    seen.push(k);
                }
            }
        }
    }
    // validateMapListKeysMapSet
    if let (Some(lt @ ("set" | "map")), Some(is)) = (list_type, items(m)) {
        let ip = child(path, "items");
        if b(is, "nullable") {
            out.push(forbidden(
                child(&ip, "nullable"),
                &format!("cannot be nullable when x-kubernetes-list-type is {lt}"),
            ));
        }
        if lt == "map" {
            let req: Vec<&str> = list(is, "required")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let iprops = is.get("properties").and_then(Value::as_object);
            for k in &keys {
                let Some(p) = iprops.and_then(|p| p.get(*k)).and_then(obj) else {
                    continue;
                };
                let kp = key(&child(&ip, "properties"), k);
                if !req.contains(k) && p.get("default").is_none_or(Value::is_null) {
                    out.push(required(
                        child(&kp, "default"),
                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                    ));
                }
                if b(p, "nullable") {
                    out.push(forbidden(
                        child(&kp, "nullable"),
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    ));
                }
            }
        }
    }
}

fn type_must_be(ty: &str, want: &str, ext: &str, path: &str, out: &mut Vec<Cause>) {
    let detail = format!("must be {want} if {ext} is specified");
    if ty.is_empty() {
        out.push(required(child(path, "type"), &detail));
    } else {
        out.push(invalid(
            child(path, "type"),
            &Value::String(ty.into()),
            &detail,
        ));
    }
}

const REASONS: [&str; 4] = [
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

fn has_newlines(s: &str) -> bool {
    s.contains(['\n', '\r'])
}

/// The static checks of x-kubernetes-validations (compiling the CEL is the CEL engine's).
fn rules(m: &Map<String, Value>, path: &str, out: &mut Vec<Cause>) {
    for (i, r) in list(m, "x-kubernetes-validations").iter().enumerate() {
        let Some(r) = obj(r) else { continue };
        let rp = index(&child(path, "x-kubernetes-validations"), i);
        let rule = s(r, "rule");
        let msg = s(r, "message");
        let (tr, tm) = (rule.trim(), msg.trim());
        if tr.is_empty() {
            out.push(required(child(&rp, "rule"), "rule is not specified"));
        } else if !msg.is_empty() && tm.is_empty() {
            out.push(invalid(
                child(&rp, "message"),
                &Value::String(msg.into()),
                "message must be non-empty if specified",
            ));
        } else if has_newlines(tm) {
            out.push(invalid(
                child(&rp, "message"),
                &Value::String(msg.into()),
                "message must not contain line breaks",
            ));
        } else if has_newlines(tr) && tm.is_empty() {
            out.push(required(
                child(&rp, "message"),
                "message must be specified if rule contains line breaks",
            ));
        }
        let me = s(r, "messageExpression");
        if !me.is_empty() && me.trim().is_empty() {
            out.push(required(
                child(&rp, "messageExpression"),
                "messageExpression must be non-empty if specified",
            ));
        }
        if let Some(reason) = r.get("reason").and_then(Value::as_str) {
            if !REASONS.contains(&reason) {
                out.push(not_supported(child(&rp, "reason"), reason, &REASONS));
            }
        }
        let fp = s(r, "fieldPath");
        if !fp.is_empty() && fp.trim().is_empty() {
            out.push(invalid(
                child(&rp, "fieldPath"),
                &Value::String(fp.into()),
                "fieldPath must be non-empty if specified",
            ));
        }
        if has_newlines(fp) {
            out.push(invalid(
                child(&rp, "fieldPath"),
                &Value::String(fp.into()),
                "fieldPath must not contain line breaks",
            ));
        }
    }
}
