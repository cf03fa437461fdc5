//! Validation of a value against a schema: kube-openapi's SchemaValidator (the part
//! apiextensions uses, with its messages and order), upstream's ratcheting of unchanged
//! values, and the apiextensions passes that follow it (embedded ObjectMeta/TypeMeta,
//! list-type set/map uniqueness, then the x-kubernetes-validations hook).

use serde_json::Value;

use crate::gofmt;
use crate::node::{Additional, Node};
use crate::{Cause, RuleHook};

/// kube-openapi's error codes that the conversion to field errors distinguishes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Code {
    InvalidType,
    Required,
    TooLong,
    Enum,
    MaxItems,
    TooManyProperties,
    Other,
}

/// A Go value carried in an error, printed as field.Error prints its BadValue.
#[derive(Debug, Clone)]
pub(crate) enum GoVal {
    Str(String),
    Int(i64),
    Float(f64),
    Json(Value),
    None,
}

impl GoVal {
    fn render(&self) -> String {
        match self {
            GoVal::Str(s) => gofmt::quote(s),
            GoVal::Int(i) => i.to_string(),
            GoVal::Float(f) => gofmt::float(*f),
            GoVal::Json(v) => gofmt::bad_value(v),
            GoVal::None => gofmt::quote(""),
        }
    }
}

/// One kube-openapi error: a `*errors.Validation` or a plain composite-code error.
#[derive(Debug, Clone)]
pub(crate) enum OErr {
    V {
        code: Code,
        name: String,
        value: GoVal,
        valid: i64,
        enum_values: Vec<Value>,
        msg: String,
    },
    Plain(String),
}

impl OErr {
    fn text(&self) -> &str {
        match self {
            OErr::V { msg, .. } => msg,
            OErr::Plain(m) => m,
        }
    }

    fn v(code: Code, name: &str, value: GoVal, msg: String) -> OErr {
        OErr::V {
            code,
            name: name.to_owned(),
            value,
            valid: -1,
            enum_values: vec![],
            msg,
        }
    }
}

/// kube-openapi's Result: errors deduplicated by text, and a match count that anyOf/oneOf
/// use to pick the "best" failing branch.
#[derive(Debug, Default)]
pub(crate) struct Res {
    pub errs: Vec<OErr>,
    matches: usize,
}

impl Res {
    fn add(&mut self, e: OErr) {
        if !self.errs.iter().any(|x| x.text() == e.text()) {
            self.errs.push(e);
        }
    }

    fn merge(&mut self, o: Res) {
        for e in o.errs {
            self.add(e);
        }
        self.matches += o.matches;
    }
}

/// A JSON number as Go decodes it: int64 when it fits, else float64.
#[derive(Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

fn num(v: &Value) -> Option<Num> {
    let n = v.as_number()?;
    Some(match n.as_i64() {
        Some(i) => Num::I(i),
        None => Num::F(n.as_f64().unwrap_or(0.0)),
    })
}

fn is_json_integer(f: f64) -> bool {
    const MAX: f64 = 9_007_199_254_740_992.0; // 1 << 53
    f.is_finite() && (-MAX..=MAX).contains(&f) && f == f.trunc()
}

/// kube-openapi's schemaInfoForType for decoded JSON.
fn sch_type(v: &Value) -> (&'static str, &'static str) {
    match v {
        Value::Bool(_) => ("boolean", ""),
        Value::String(_) => ("string", ""),
        Value::Number(_) => match num(v) {
            Some(Num::I(_)) => ("integer", "int64"),
            _ => ("number", "float64"),
        },
        Value::Array(_) => ("array", ""),
        Value::Object(_) => ("object", ""),
        Value::Null => ("", ""),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Validates `data` at `path` (kube-openapi path: dotted, `[i]` for items). `old` is the
/// correlated old value when ratcheting applies to this node.
pub(crate) fn node(n: &Node, path: &str, data: &Value, old: Option<&Value>) -> Res {
    let mut res = Res::default();
    let types = n.types();
    if data.is_null() {
        if !types.is_empty() && !n.nullable {
            res.add(invalid_type(path, &types.join(","), "null".into()));
        }
        if let Some(e) = enum_check(n, path, data) {
            res.add(e);
        }
        return ratchet(n, data, old, res);
    }
    // type
    if !types.is_empty() || !n.format.is_empty() {
        if let Some(e) = type_check(n, &types, path, data) {
            res.add(e);
        }
        res.matches += 1;
    }
    // allOf / anyOf / oneOf / not
    res.merge(schema_props(n, path, data));
    res.matches += 1;
    if let Value::String(s) = data {
        if let Some(e) = string_check(n, path, s) {
            res.add(e);
        }
        res.matches += 1;
        if crate::formats::known(&n.format) {
            if !crate::formats::check(&n.format, s) {
                res.add(OErr::v(
                    Code::InvalidType,
                    path,
                    GoVal::Str(s.clone()),
                    format!(
                        "{path} in body must be of type {}: {}",
                        n.format,
                        gofmt::quote(s)
                    ),
                ));
            }
            res.matches += 1;
        }
    }
    if let Some(x) = num(data) {
        for e in number_check(n, path, x) {
            res.add(e);
        }
        res.matches += 1;
    }
    if let Value::Array(items) = data {
        res.merge(slice_check(n, path, items, old));
        res.matches += 1;
    }
    if let Some(e) = enum_check(n, path, data) {
        res.add(e);
    }
    res.matches += 1;
    if let Value::Object(_) = data {
        res.merge(object_check(n, path, data, old));
        res.matches += 1;
    }
    res.matches += 1;
    ratchet(n, data, old, res)
}

/// Upstream ratcheting: errors of a node whose value equals its correlated old value are
/// dropped (turned into warnings upstream).
fn ratchet(n: &Node, data: &Value, old: Option<&Value>, mut res: Res) -> Res {
    if let Some(o) = old {
        if !res.errs.is_empty() && equal_correlated(n, data, o) {
            res.errs.clear();
        }
    }
    res
}

/// Upstream's CachedDeepEqual: equality that only counts children the validator could
/// correlate, so unchanged atomic lists/sets, or objects with fields no schema explores,
/// are "not equal" and keep their errors.
fn equal_correlated(n: &Node, new: &Value, old: &Value) -> bool {
    match (new, old) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return false;
            }
            let Some(items) = n.items.as_deref() else {
                return a.is_empty();
            };
            (0..a.len()).all(|i| match correlate_index(n, a, b, i) {
                Some(o) => equal_correlated(items, &a[i], o),
                None => false,
            })
        }
        (Value::Array(_), _) | (_, Value::Array(_)) => false,
        (Value::Object(a), Value::Object(b)) => {
            if a.len() != b.len() {
                return false;
            }
            if a.is_empty() {
                return true;
            }
            b.iter().all(|(k, ov)| {
                let Some(nv) = a.get(k) else {
                    return false;
                };
                match n.field(k) {
                    Some(s) => equal_correlated(s, nv, ov),
                    None => false,
                }
            })
        }
        (Value::Object(_), _) | (_, Value::Object(_)) => false,
        (a, b) => a == b,
    }
}

/// The old item correlated with new index `i`, as upstream's ratcheting does: by key for
/// map lists, never for sets and atomic lists, by index otherwise.
fn correlate_index<'a>(n: &Node, new: &[Value], old: &'a [Value], i: usize) -> Option<&'a Value> {
    match n.list_type.as_deref() {
        Some("map") => map_list_get(&n.list_map_keys, old, new.get(i)?),
        Some("set") | Some("atomic") => None,
        _ => old.get(i),
    }
}

/// Finds the item of a map list with the same key values as `item`.
pub(crate) fn map_list_get<'a>(
    keys: &[String],
    list: &'a [Value],
    item: &Value,
) -> Option<&'a Value> {
    let item = item.as_object()?;
    list.iter().find(|o| {
        o.as_object()
            .is_some_and(|o| keys.iter().all(|k| o.get(k) == item.get(k)))
    })
}

fn invalid_type(path: &str, ty: &str, got: String) -> OErr {
    let msg = format!(
        "{path} in body must be of type {ty}: {}",
        gofmt::quote(&got)
    );
    OErr::v(Code::InvalidType, path, GoVal::Str(got), msg)
}

fn type_check(n: &Node, types: &[&str], path: &str, data: &Value) -> Option<OErr> {
    let (sch, fmt) = sch_type(data);
    let has = |t: &str| types.contains(&t);
    let is_float_int =
        sch == "number" && data.as_f64().is_some_and(is_json_integer) && has("integer");
    let is_int_float = sch == "integer" && has("number");
    let stringish = matches!(data, Value::String(_) | Value::Array(_));
    let matches = has(sch) || fmt == n.format || is_float_int || is_int_float;
    if !stringish && !n.format.is_empty() && !matches {
        return Some(invalid_type(path, &n.format, fmt.into()));
    }
    let numeric = has("number") || has("integer");
    if !numeric && !n.format.is_empty() && stringish {
        return None;
    }
    if !(has(sch) || is_float_int || is_int_float) {
        return Some(invalid_type(path, &types.join(","), sch.into()));
    }
    None
}

fn string_check(n: &Node, path: &str, s: &str) -> Option<OErr> {
    let len = s.chars().count() as i64;
    if let Some(max) = n.max_length {
        if len > max {
            let mut e = OErr::v(
                Code::TooLong,
                path,
                GoVal::Str(s.into()),
                format!("{path} in body should be at most {max} chars long"),
            );
            if let OErr::V { valid, .. } = &mut e {
                *valid = max;
            }
            return Some(e);
        }
    }
    if let Some(min) = n.min_length {
        if len < min {
            return Some(OErr::v(
                Code::Other,
                path,
                GoVal::Str(s.into()),
                format!("{path} in body should be at least {min} chars long"),
            ));
        }
    }
    if let Some((p, re)) = &n.pattern {
        let shown = match re {
            Ok(re) if re.is_match(s) => return None,
            Ok(_) => p.clone(),
            Err(e) => format!("{p}, but pattern is invalid: {e}"),
        };
        return Some(OErr::v(
            Code::Other,
            path,
            GoVal::Str(s.into()),
            format!("{path} in body should match '{shown}'"),
        ));
    }
    None
}

fn num_val(x: Num) -> GoVal {
    match x {
        Num::I(i) => GoVal::Int(i),
        Num::F(f) => GoVal::Float(f),
    }
}

fn number_check(n: &Node, path: &str, x: Num) -> Vec<OErr> {
    let mut out = vec![];
    let value = num_val(x);
    if let Some(factor) = n.multiple_of {
        match x {
            Num::I(d) => {
                // Upstream truncates the factor to int64 for integer data.
                let f = factor as i64;
                if f <= 0 {
                    out.push(OErr::v(
                        Code::Other,
                        path,
                        GoVal::Int(f),
                        format!("factor MultipleOf declared for {path} must be positive: {f}"),
                    ));
                } else if d % f != 0 {
                    out.push(OErr::v(
                        Code::Other,
                        path,
                        value.clone(),
                        format!("{path} in body should be a multiple of {f}"),
                    ));
                }
            }
            Num::F(d) => {
                if factor <= 0.0 {
                    out.push(OErr::v(
                        Code::Other,
                        path,
                        GoVal::Float(factor),
                        format!(
                            "factor MultipleOf declared for {path} must be positive: {}",
                            gofmt::float(factor)
                        ),
                    ));
                } else {
                    let mult = if factor < 1.0 {
                        1.0 / factor * d
                    } else {
                        d / factor
                    };
                    if !is_json_integer(mult) {
                        out.push(OErr::v(
                            Code::Other,
                            path,
                            value.clone(),
                            format!(
                                "{path} in body should be a multiple of {}",
                                gofmt::float(factor)
                            ),
                        ));
                    }
                }
            }
        }
    }
    if let Some(min) = n.minimum {
        let ex = n.exclusive_minimum;
        let (fail, shown) = match x {
            Num::I(d) => {
                let m = min as i64;
                ((!ex && d < m) || (ex && d <= m), m.to_string())
            }
            Num::F(d) => ((!ex && d < min) || (ex && d <= min), gofmt::float(min)),
        };
        if fail {
            let op = if ex {
                "greater than"
            } else {
                "greater than or equal to"
            };
            out.push(OErr::v(
                Code::Other,
                path,
                value.clone(),
                format!("{path} in body should be {op} {shown}"),
            ));
        }
    }
    if let Some(max) = n.maximum {
        let ex = n.exclusive_maximum;
        let (fail, shown) = match x {
            Num::I(d) => {
                let m = max as i64;
                ((!ex && d > m) || (ex && d >= m), m.to_string())
            }
            Num::F(d) => ((!ex && d > max) || (ex && d >= max), gofmt::float(max)),
        };
        if fail {
            let op = if ex {
                "less than"
            } else {
                "less than or equal to"
            };
            out.push(OErr::v(
                Code::Other,
                path,
                value,
                format!("{path} in body should be {op} {shown}"),
            ));
        }
    }
    out
}

fn slice_check(n: &Node, path: &str, items: &[Value], old: Option<&Value>) -> Res {
    let mut res = Res::default();
    if let Some(s) = n.items.as_deref() {
        let old_items = old.and_then(Value::as_array);
        for (i, v) in items.iter().enumerate() {
            let o = old_items.and_then(|o| correlate_index(n, items, o, i));
            res.merge(node(s, &format!("{path}[{i}]"), v, o));
        }
    }
    let size = items.len() as i64;
    if let Some(min) = n.min_items {
        if size < min {
            res.add(OErr::v(
                Code::Other,
                path,
                GoVal::Int(size),
                format!("{path} in body should have at least {min} items"),
            ));
        }
    }
    if let Some(max) = n.max_items {
        if size > max {
            res.add(OErr::V {
                code: Code::MaxItems,
                name: path.into(),
                value: GoVal::Int(size),
                valid: max,
                enum_values: vec![],
                msg: format!("{path} in body should have at most {max} items"),
            });
        }
    }
    if n.unique_items {
        let dup = items
            .iter()
            .enumerate()
            .any(|(i, a)| items[..i].contains(a));
        if dup {
            res.add(OErr::v(
                Code::Other,
                path,
                GoVal::None,
                format!("{path} in body shouldn't contain duplicates"),
            ));
        }
    }
    res
}

/// Go's enum match: the value is converted to each enum value's Go type before comparing,
/// so 5.5 matches an integer 5 (float to int truncates) and 97 matches "a" (int to string
/// makes a rune).
fn enum_matches(data: &Value, e: &Value) -> bool {
    match (data, e) {
        (_, Value::Null) | (Value::Null, _) => false,
        (Value::Number(_), Value::Number(_)) => match (num(data), num(e)) {
            (Some(d), Some(Num::I(ei))) => match d {
                Num::I(di) => di == ei,
                Num::F(df) => df as i64 == ei,
            },
            (Some(d), Some(Num::F(ef))) => match d {
                Num::I(di) => di as f64 == ef,
                Num::F(df) => df == ef,
            },
            _ => false,
        },
        (Value::Number(_), Value::String(s)) => match num(data) {
            Some(Num::I(i)) => {
                let c = u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{fffd}');
                s.chars().eq(std::iter::once(c))
            }
            _ => false,
        },
        (a, b) => a == b,
    }
}

fn enum_check(n: &Node, path: &str, data: &Value) -> Option<OErr> {
    let values = n.enum_.as_ref().filter(|v| !v.is_empty())?;
    if values.iter().any(|e| enum_matches(data, e)) {
        return None;
    }
    let shown: Vec<String> = values.iter().map(gofmt::json).collect();
    Some(OErr::V {
        code: Code::Enum,
        name: path.into(),
        value: GoVal::Json(data.clone()),
        valid: -1,
        enum_values: values.clone(),
        msg: format!("{path} in body should be one of [{}]", shown.join(" ")),
    })
}

fn object_check(n: &Node, path: &str, data: &Value, old: Option<&Value>) -> Res {
    let mut res = Res::default();
    let Value::Object(m) = data else {
        return res;
    };
    let old_m = old.and_then(Value::as_object);
    let size = m.len() as i64;
    if let Some(min) = n.min_properties {
        if size < min {
            res.add(OErr::v(
                Code::Other,
                path,
                GoVal::Int(size),
                format!("{path} in body should have at least {min} properties"),
            ));
        }
    }
    if let Some(max) = n.max_properties {
        if size > max {
            res.add(OErr::V {
                code: Code::TooManyProperties,
                name: path.into(),
                value: GoVal::Int(size),
                valid: max,
                enum_values: vec![],
                msg: format!("{path} in body should have at most {max} properties"),
            });
        }
    }
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    match &n.additional {
        Some(Additional::Bool(false)) => {
            for k in &keys {
                if n.prop(k).is_none() {
                    res.add(OErr::v(
                        Code::Other,
                        path,
                        GoVal::Str((*k).clone()),
                        format!("{path}.{k} in body is a forbidden property"),
                    ));
                }
            }
        }
        Some(Additional::Schema(s)) => {
            for k in &keys {
                if n.prop(k).is_none() {
                    let o = old_m.and_then(|o| o.get(k.as_str()));
                    res.merge(node(s, &format!("{path}.{k}"), &m[k.as_str()], o));
                }
            }
        }
        _ => {}
    }
    for (k, s) in &n.properties {
        if let Some(v) = m.get(k) {
            let o = old_m.and_then(|o| o.get(k));
            res.merge(node(s, &join(path, k), v, o));
        }
    }
    for k in &n.required {
        if !m.contains_key(k) {
            let name = format!("{path}.{k}");
            let msg = format!("{name} in body is required");
            res.add(OErr::v(Code::Required, &name, GoVal::None, msg));
        }
    }
    res
}

fn schema_props(n: &Node, path: &str, data: &Value) -> Res {
    let mut main = Res::default();
    if !n.any_of.is_empty() {
        let mut best: Option<Res> = None;
        let mut ok = None;
        for s in &n.any_of {
            let r = node(s, path, data, None);
            if r.errs.is_empty() {
                ok = Some(r);
                best = None;
                break;
            }
            if best.as_ref().is_none_or(|b| r.matches > b.matches) {
                best = Some(r);
            }
        }
        if ok.is_none() {
            main.add(OErr::Plain(format!(
                "{} must validate at least one schema (anyOf)",
                gofmt::quote(path)
            )));
        }
        if let Some(b) = best {
            main.merge(b);
        } else if let Some(o) = ok {
            main.merge(o);
        }
    }
    if !n.one_of.is_empty() {
        let mut best: Option<Res> = None;
        let mut first_ok = None;
        let mut valid = 0;
        for s in &n.one_of {
            let r = node(s, path, data, None);
            if r.errs.is_empty() {
                valid += 1;
                best = None;
                if first_ok.is_none() {
                    first_ok = Some(r);
                }
                continue;
            }
            if valid == 0 && best.as_ref().is_none_or(|b| r.matches > b.matches) {
                best = Some(r);
            }
        }
        if valid != 1 {
            let extra = if valid == 0 {
                "Found none valid".to_owned()
            } else {
                format!("Found {valid} valid alternatives")
            };
            main.add(OErr::Plain(format!(
                "{} must validate one and only one schema (oneOf). {extra}",
                gofmt::quote(path)
            )));
            if let Some(b) = best {
                main.merge(b);
            }
        } else if let Some(o) = first_ok {
            main.merge(o);
        }
    }
    if !n.all_of.is_empty() {
        let mut valid = 0;
        for s in &n.all_of {
            let r = node(s, path, data, None);
            if r.errs.is_empty() {
                valid += 1;
            }
            main.merge(r);
        }
        if valid != n.all_of.len() {
            let extra = if valid == 0 { ". None validated" } else { "" };
            main.add(OErr::Plain(format!(
                "{} must validate all the schemas (allOf){extra}",
                gofmt::quote(path)
            )));
        }
    }
    if let Some(not) = &n.not {
        if node(not, path, data, None).errs.is_empty() {
            main.add(OErr::Plain(format!(
                "{} must not validate the schema (not)",
                gofmt::quote(path)
            )));
        }
    }
    main
}

/// apiextensions' conversion of kube-openapi errors to field errors. `prefix` is the field
/// path the validated value sits at (None for a custom resource: upstream passes a nil
/// path, which prints as "<nil>" for errors without a name).
pub(crate) fn to_causes(errs: Vec<OErr>, prefix: Option<&str>) -> Vec<Cause> {
    errs.into_iter()
        .map(|e| match e {
            OErr::Plain(msg) => Cause {
                reason: "FieldValueInvalid",
                field: prefix.unwrap_or("<nil>").to_owned(),
                message: format!("Invalid value: \"\": {msg}"),
            },
            OErr::V {
                code,
                name,
                value,
                valid,
                enum_values,
                msg,
            } => {
                let name = name.strip_prefix('.').unwrap_or(&name);
                let field = if !name.is_empty() && name != "." {
                    match prefix {
                        Some(p) if !p.is_empty() => format!("{p}.{name}"),
                        _ => name.to_owned(),
                    }
                } else {
                    prefix.unwrap_or("<nil>").to_owned()
                };
                match code {
                    Code::Required => Cause {
                        reason: "FieldValueRequired",
                        field,
                        message: "Required value".into(),
                    },
                    Code::Enum => {
                        let values: Vec<String> = enum_values
                            .iter()
                            .map(|v| match v {
                                Value::String(s) => gofmt::quote(s),
                                other => gofmt::quote(&gofmt::json(other)),
                            })
                            .collect();
                        let mut message = format!("Unsupported value: {}", value.render());
                        if !values.is_empty() {
                            message.push_str(&format!(": supported values: {}", values.join(", ")));
                        }
                        Cause {
                            reason: "FieldValueNotSupported",
                            field,
                            message,
                        }
                    }
                    Code::TooLong => Cause {
                        reason: "FieldValueTooLong",
                        field,
                        message: if valid >= 0 {
                            format!("Too long: may not be more than {valid} bytes")
                        } else {
                            "Too long: value is too long".into()
                        },
                    },
                    Code::MaxItems | Code::TooManyProperties => Cause {
                        reason: "FieldValueTooMany",
                        field,
                        message: format!(
                            "Too many: {}: must have at most {valid} items",
                            value.render()
                        ),
                    },
                    Code::InvalidType => Cause {
                        reason: "FieldValueTypeInvalid",
                        field,
                        message: format!("Invalid value: {}: {msg}", value.render()),
                    },
                    Code::Other => Cause {
                        reason: "FieldValueInvalid",
                        field,
                        message: format!("Invalid value: {}: {msg}", value.render()),
                    },
                }
            }
        })
        .collect()
}

/// field.Path rendering: `.child`, `[key]`, `[index]`.
fn child(p: &str, k: &str) -> String {
    join(p, k)
}

fn key(p: &str, k: &str) -> String {
    format!("{p}[{k}]")
}

fn index(p: &str, i: usize) -> String {
    format!("{p}[{i}]")
}

/// Upstream's objectmeta.Validate for embedded resources (not the root, which the API
/// server validates as ObjectMeta itself).
pub(crate) fn embedded_meta(n: &Node, path: &str, v: &Value, root: bool, out: &mut Vec<Cause>) {
    match v {
        Value::Object(m) => {
            if n.embedded && !root {
                embedded_resource(path, m, out);
            }
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                if let Some(p) = n.prop(k) {
                    embedded_meta(p, &child(path, k), &m[k.as_str()], false, out);
                } else if let Some(a) = n.additional_schema() {
                    embedded_meta(a, &key(path, k), &m[k.as_str()], false, out);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = n.items.as_deref() {
                for (i, x) in a.iter().enumerate() {
                    embedded_meta(items, &index(path, i), x, false, out);
                }
            }
        }
        _ => {}
    }
}

fn invalid(field: String, value: &Value, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field,
        message: format!("Invalid value: {}: {detail}", gofmt::bad_value(value)),
    }
}

fn required(field: String) -> Cause {
    Cause {
        reason: "FieldValueRequired",
        field,
        message: "Required value".into(),
    }
}

fn embedded_resource(path: &str, m: &serde_json::Map<String, Value>, out: &mut Vec<Cause>) {
    if !m.contains_key("apiVersion") {
        out.push(required(child(path, "apiVersion")));
    }
    if !m.contains_key("kind") {
        out.push(required(child(path, "kind")));
    }
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for k in keys {
        let v = &m[k.as_str()];
        match k.as_str() {
            "apiVersion" => match v.as_str() {
                None => out.push(invalid(child(path, "apiVersion"), v, "must be a string")),
                Some("") => out.push(required(child(path, "apiVersion"))),
                Some(s) if s.matches('/').count() > 1 => out.push(invalid(
                    child(path, "apiVersion"),
                    v,
                    &format!("unexpected GroupVersion string: {s}"),
                )),
                Some(_) => {}
            },
            "kind" => match v.as_str() {
                None => out.push(invalid(child(path, "kind"), v, "must be a string")),
                Some("") => out.push(required(child(path, "kind"))),
                Some(s) => {
                    let errs = dns1035_label(&s.to_lowercase());
                    if !errs.is_empty() {
                        out.push(invalid(
                            child(path, "kind"),
                            v,
                            &format!(
                                "may have mixed case, but should otherwise match: {}",
                                errs.join(",")
                            ),
                        ));
                    }
                }
            },
            "metadata" => {
                let mp = child(path, "metadata");
                let what = match v {
                    Value::Object(_) | Value::Null => None,
                    Value::String(_) => Some("string"),
                    Value::Number(_) => Some("number"),
                    Value::Bool(_) => Some("bool"),
                    Value::Array(_) => Some("array"),
                };
                if let Some(what) = what {
                    out.push(invalid(
                        mp,
                        v,
                        &format!(
                            "json: cannot unmarshal {what} into Go value of type v1.ObjectMeta"
                        ),
                    ));
                    continue;
                }
                let name = v.get("name").and_then(Value::as_str).unwrap_or("");
                if !name.is_empty() {
                    for msg in path_segment(name, false) {
                        out.push(invalid(
                            child(&mp, "name"),
                            &Value::String(name.into()),
                            &msg,
                        ));
                    }
                }
                if let Some(g) = v.get("generateName").and_then(Value::as_str) {
                    for msg in path_segment(g, true) {
                        out.push(invalid(
                            child(&mp, "generateName"),
                            &Value::String(g.into()),
                            &msg,
                        ));
                    }
                }
            }
            _ => {}
        }
    }
}

/// `IsDNS1035Label`'s messages for `s` (none when it is a DNS-1035 label).
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = vec![];
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_owned());
    }
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-';
    if !ok {
        errs.push("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_owned());
    }
    errs
}

/// apimachinery's IsValidPathSegmentName / Prefix.
fn path_segment(s: &str, prefix: bool) -> Vec<String> {
    let mut errs = vec![];
    if !prefix && (s == "." || s == "..") {
        errs.push(format!("may not be '{s}'"));
        return errs;
    }
    for bad in ["/", "%"] {
        if s.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// Upstream's listtype.ValidateListSetsAndMaps: duplicates in x-kubernetes-list-type set
/// and map lists.
pub(crate) fn list_sets(n: &Node, path: &str, v: &Value, out: &mut Vec<Cause>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            if let Some(a) = n.additional_schema() {
                for k in &keys {
                    list_sets(a, &key(path, k), &m[k.as_str()], out);
                }
            }
            for k in &keys {
                if let Some(p) = n.prop(k) {
                    list_sets(p, &child(path, k), &m[k.as_str()], out);
                }
            }
        }
        Value::Array(a) => {
            match n.list_type.as_deref() {
                Some("set") => {
                    for i in non_unique(a) {
                        out.push(duplicate(index(path, i), &a[i]));
                    }
                }
                Some("map") => list_map(n, path, a, out),
                _ => {}
            }
            if let Some(items) = n.items.as_deref() {
                for (i, x) in a.iter().enumerate() {
                    list_sets(items, &index(path, i), x, out);
                }
            }
        }
        _ => {}
    }
}

fn duplicate(field: String, v: &Value) -> Cause {
    Cause {
        reason: "FieldValueDuplicate",
        field,
        message: format!("Duplicate value: {}", gofmt::bad_value(v)),
    }
}

/// Indices of the second appearance of each repeated element (Go compares scalars by type
/// and value, compounds by their JSON encoding).
fn non_unique(a: &[Value]) -> Vec<usize> {
    if a.len() <= 1 {
        return vec![];
    }
    let canon: Vec<String> = a
        .iter()
        .map(|x| match x {
            Value::Number(n) => match num(x) {
                Some(Num::I(i)) => format!("i{i}"),
                _ => format!("f{}", n.as_f64().unwrap_or(0.0)),
            },
            other => format!("j{}", gofmt::json(other)),
        })
        .collect();
    let mut out = vec![];
    for i in 0..a.len() {
        let times = canon[..i].iter().filter(|c| **c == canon[i]).count();
        if times == 1 {
            out.push(i);
        }
    }
    out
}

fn list_map(n: &Node, path: &str, a: &[Value], out: &mut Vec<Cause>) {
    for (i, x) in a.iter().enumerate() {
        if !x.is_null() && !x.is_object() {
            out.push(invalid(
                index(path, i),
                x,
                "must be an object for an array of list-type map",
            ));
            return;
        }
    }
    if a.len() <= 1 {
        return;
    }
    // Keys per element; an absent key is distinct from null, as upstream.
    let keys: Vec<Value> = a
        .iter()
        .map(|x| {
            let mut k = serde_json::Map::new();
            if let Some(o) = x.as_object() {
                for f in &n.list_map_keys {
                    if let Some(v) = o.get(f) {
                        k.insert(f.clone(), v.clone());
                    }
                }
            }
            Value::Object(k)
        })
        .collect();
    for i in non_unique(&keys) {
        out.push(duplicate(index(path, i), &keys[i]));
    }
}

/// Whether any node has x-kubernetes-validations (upstream builds no CEL validator otherwise).
pub(crate) fn has_rules(n: &Node) -> bool {
    n.validations.is_some()
        || n.properties.iter().any(|(_, p)| has_rules(p))
        || n.additional_schema().is_some_and(has_rules)
        || n.items.as_deref().is_some_and(has_rules)
}

/// Calls the rule hook at every node with rules, in upstream's CEL validator order: a
/// node's rules, then its properties, map values and items. Old values correlate by key
/// for objects and map lists only, as upstream's CEL correlation does.
pub(crate) fn run_rules(
    n: &Node,
    path: &str,
    v: &Value,
    old: Option<&Value>,
    hook: &mut dyn RuleHook,
    out: &mut Vec<Cause>,
) {
    if v.is_null() {
        return;
    }
    if let Some(rules) = &n.validations {
        hook.check(path, rules, &n.raw, v, old, out);
    }
    match v {
        Value::Object(m) => {
            let old_m = old.and_then(Value::as_object);
            for (k, p) in &n.properties {
                if let Some(x) = m.get(k) {
                    run_rules(
                        p,
                        &child(path, k),
                        x,
                        old_m.and_then(|o| o.get(k)),
                        hook,
                        out,
                    );
                }
            }
            if let Some(a) = n.additional_schema() {
                for (k, x) in m {
                    if n.prop(k).is_none() {
                        let o = old_m.and_then(|o| o.get(k));
                        run_rules(a, &key(path, k), x, o, hook, out);
                    }
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = n.items.as_deref() {
                let old_a = old.and_then(Value::as_array);
                for (i, x) in a.iter().enumerate() {
                    let o = match (n.list_type.as_deref(), old_a) {
                        (Some("map"), Some(oa)) => map_list_get(&n.list_map_keys, oa, x),
                        _ => None,
                    };
                    run_rules(items, &index(path, i), x, o, hook, out);
                }
            }
        }
        _ => {}
    }
}

/// The error types after which upstream skips CEL rules.
pub(crate) fn blocking(causes: &[Cause]) -> bool {
    causes.iter().any(|c| {
        matches!(
            c.reason,
            "FieldValueNotSupported"
                | "FieldValueRequired"
                | "FieldValueTooLong"
                | "FieldValueTooMany"
                | "FieldValueTypeInvalid"
        )
    })
}
