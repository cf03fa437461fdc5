//! JSON key order as upstream writes it. The Go API server re-encodes every object from its Go
//! struct, so objects come out in Go field declaration order (TypeMeta's `kind`, `apiVersion`
//! first), Go maps with their keys sorted, and custom resources (unstructured maps all the way
//! down) with every key sorted.

use std::mem;

use serde_json::{Map, Value};

use crate::schema::{Label, Message, Scalar, Schema, Special, Ty};
use crate::MAX_DEPTH;

/// Reorder an object of a built-in kind (by its `apiVersion` and `kind`) the way Go writes it.
/// Returns false, leaving `obj` as it is, when the kind is not in the schema.
pub(crate) fn canonicalize(obj: &mut Value) -> bool {
    let schema = Schema::get();
    let Some(m) = kind_of(schema, obj) else {
        return false;
    };
    if let Value::Object(o) = obj {
        reorder(schema, schema.msg(m), o, true, 0);
    }
    true
}

fn kind_of(schema: &Schema, obj: &Value) -> Option<u32> {
    let Value::Object(o) = obj else { return None };
    match (o.get("apiVersion"), o.get("kind")) {
        (Some(Value::String(av)), Some(Value::String(k))) => schema.kind(av, k),
        _ => None,
    }
}

/// Rank of a key: `kind`, `apiVersion` (TypeMeta), then the fields in Go order, then keys the
/// schema does not know in their present order.
const KIND: u32 = 0;
const API_VERSION: u32 = 1;
const FIRST_FIELD: u32 = 2;

fn reorder(schema: &Schema, msg: &Message, o: &mut Map<String, Value>, top: bool, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    // Go's encoder leaves out the zero value of a non-pointer `omitempty` scalar (an RBAC
    // subject's `apiGroup: ""`, a container's `workingDir: ""`).
    o.retain(|k, v| match msg.by_json.get(k.as_str()) {
        Some(key) => {
            let (owner, fi) = msg.order[key.rank as usize];
            let f = &schema.msg(owner).fields[fi as usize];
            !(f.omit_zero && f.label == Label::Single && is_zero(v))
        }
        None => true,
    });
    let type_meta = top || msg.type_meta;
    let unknown_base = FIRST_FIELD + msg.order.len() as u32;
    // objects are small: ranks on the stack unless there are many keys
    let mut stack = [0u32; 48];
    let mut heap = Vec::new();
    let ranks: &mut [u32] = if o.len() <= stack.len() {
        &mut stack[..o.len()]
    } else {
        heap.resize(o.len(), 0);
        &mut heap
    };
    let mut sorted = true;
    let mut prev = 0;
    for (i, (k, v)) in o.iter_mut().enumerate() {
        let rank = match msg.by_json.get(k.as_str()) {
            Some(key) => {
                let (owner, fi) = msg.order[key.rank as usize];
                let f = &schema.msg(owner).fields[fi as usize];
                field_value(schema, f.ty, f.label, v, depth + 1);
                FIRST_FIELD + key.rank as u32
            }
            None if type_meta && k == "kind" => KIND,
            None if type_meta && k == "apiVersion" => API_VERSION,
            None => unknown_base + i as u32,
        };
        sorted &= i == 0 || rank > prev;
        prev = rank;
        ranks[i] = rank;
    }
    if sorted {
        return;
    }
    let mut entries: Vec<(u32, String, Value)> = mem::take(o)
        .into_iter()
        .zip(ranks.iter())
        .map(|((k, v), &r)| (r, k, v))
        .collect();
    // ranks are distinct (one per key)
    entries.sort_unstable_by_key(|e| e.0);
    o.extend(entries.into_iter().map(|(_, k, v)| (k, v)));
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// Go decodes `[]byte` skipping line breaks and writes it back on one line: line-wrapped
/// base64 (PEM-style, as in the docs' TLS Secret example) is stored unwrapped.
fn unwrap_base64(v: &mut Value) {
    if let Value::String(s) = v {
        if s.contains(['\r', '\n']) {
            s.retain(|c| c != '\r' && c != '\n');
        }
    }
}

fn field_value(schema: &Schema, ty: Ty, label: Label, v: &mut Value, depth: usize) {
    if ty == Ty::Scalar(Scalar::Bytes) {
        match (label, v) {
            (Label::Single, v) => unwrap_base64(v),
            (Label::Repeated, Value::Array(items)) => items.iter_mut().for_each(unwrap_base64),
            (Label::Map, Value::Object(o)) => {
                sort_keys(o);
                o.values_mut().for_each(unwrap_base64);
            }
            _ => {}
        }
        return;
    }
    match label {
        Label::Single => {
            if let Ty::Msg(m) = ty {
                message_value(schema, m, v, depth);
            }
        }
        Label::Repeated => {
            if let (Ty::Msg(m), Value::Array(items)) = (ty, v) {
                for item in items {
                    message_value(schema, m, item, depth);
                }
            }
        }
        Label::Map => {
            // Go's encoding/json writes map keys sorted
            if let Value::Object(o) = v {
                sort_keys(o);
                if let Ty::Msg(m) = ty {
                    for item in o.values_mut() {
                        message_value(schema, m, item, depth);
                    }
                }
            }
        }
    }
}

fn message_value(schema: &Schema, m: u32, v: &mut Value, depth: usize) {
    let msg = schema.msg(m);
    match msg.special {
        Special::None => {
            if let Value::Object(o) = v {
                reorder(schema, msg, o, false, depth);
            }
        }
        // a JSONSchemaProps object, or (OrArray) an array of them
        Special::OrArray | Special::OrBool | Special::OrStringArray => {
            let Some(props) = msg.fields.iter().find_map(|f| match f.ty {
                Ty::Msg(p) => Some(p),
                Ty::Scalar(_) => None,
            }) else {
                return;
            };
            match v {
                Value::Object(_) => message_value(schema, props, v, depth),
                Value::Array(items) => {
                    for item in items {
                        message_value(schema, props, item, depth);
                    }
                }
                _ => {}
            }
        }
        // an embedded object (watch event object, List items, admission/conversion review
        // objects) is written by its own type; other embedded JSON is kept as it came, as Go
        // keeps the raw bytes
        Special::RawExtension => {
            if let (Some(k), Value::Object(o)) = (kind_of(schema, v), v) {
                reorder(schema, schema.msg(k), o, true, depth + 1);
            }
        }
        // raw JSON kept as given (FieldsV1, apiextensions JSON) or not objects
        _ => {}
    }
}

fn sort_keys(o: &mut Map<String, Value>) {
    let mut keys = o.keys();
    let mut sorted = true;
    if let Some(mut prev) = keys.next() {
        for k in keys {
            if k < prev {
                sorted = false;
                break;
            }
            prev = k;
        }
    }
    if !sorted {
        o.sort_keys();
    }
}

/// Sort the keys of every object, recursively: how Go writes unstructured objects.
pub(crate) fn sort_all_keys(v: &mut Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(o) => {
            sort_keys(o);
            for item in o.values_mut() {
                sort_all_keys(item, depth + 1);
            }
        }
        Value::Array(items) => {
            for item in items {
                sort_all_keys(item, depth + 1);
            }
        }
        _ => {}
    }
}
