//! JSON -> protobuf.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::schema::{Label, Message, Scalar, Schema, Special, Target, Ty};
use crate::timefmt;
use crate::wire::{put_bytes, put_tag, put_varint, WT_I64, WT_VARINT};
use crate::{Error, MAGIC, MAX_DEPTH};

const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn expected(what: &str, v: &Value) -> Error {
    Error::json("", format!("expected {what}, got {}", type_name(v)))
}

/// `(apiVersion, kind)` of a JSON object.
pub(crate) fn type_meta(obj: &Value) -> Result<(&str, &str), Error> {
    let Value::Object(o) = obj else {
        return Err(expected("object", obj));
    };
    let get = |k: &str| -> Result<&str, Error> {
        match o.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            None | Some(Value::Null) => Err(Error::json(
                k,
                "missing; the object must carry apiVersion and kind",
            )),
            Some(Value::String(_)) => Err(Error::json(k, "must not be empty")),
            Some(v) => Err(expected("string", v).in_field(k)),
        }
    };
    Ok((get("apiVersion")?, get("kind")?))
}

/// Encode the message of a top-level object (without envelope).
pub(crate) fn encode_raw(obj: &Value) -> Result<(String, String, Vec<u8>), Error> {
    let (api_version, kind) = type_meta(obj)?;
    let schema = Schema::get();
    let m = schema
        .kind(api_version, kind)
        .ok_or_else(|| Error::unknown_kind(api_version, kind))?;
    let msg = schema.msg(m);
    let Value::Object(o) = obj else {
        return Err(expected("object", obj));
    };
    let mut raw = Vec::with_capacity(256);
    encode_object(schema, msg, o, &mut raw, 1)?;
    Ok((api_version.to_string(), kind.to_string(), raw))
}

/// `k8s\0` + runtime.Unknown{typeMeta, raw, contentEncoding "", contentType ""} (as Go writes it).
pub(crate) fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut tm = Vec::with_capacity(api_version.len() + kind.len() + 4);
    put_bytes(&mut tm, 1, api_version.as_bytes());
    put_bytes(&mut tm, 2, kind.as_bytes());
    let mut out = Vec::with_capacity(raw.len() + tm.len() + 16);
    out.extend_from_slice(&MAGIC);
    put_bytes(&mut out, 1, &tm);
    put_bytes(&mut out, 2, raw);
    put_bytes(&mut out, 3, b"");
    put_bytes(&mut out, 4, b"");
    out
}

fn encode_object(
    schema: &Schema,
    msg: &Message,
    o: &Map<String, Value>,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), Error> {
    let pairs: Vec<(&str, &Value)> = o.iter().map(|(k, v)| (k.as_str(), v)).collect();
    encode_pairs(schema, msg, &pairs, out, depth)
}

fn encode_pairs(
    schema: &Schema,
    msg: &Message,
    pairs: &[(&str, &Value)],
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep(MAX_DEPTH));
    }
    let n = msg.fields.len();
    let mut direct: Vec<Option<&Value>> = vec![None; n];
    let mut inline: Vec<Vec<(&str, &Value)>> = Vec::new();
    for &(k, v) in pairs {
        match msg.by_json.get(k).map(|key| key.target) {
            Some(Target::Field(i)) => direct[i as usize] = Some(v),
            Some(Target::Inline(i)) => {
                if inline.is_empty() {
                    inline.resize_with(n, Vec::new);
                }
                inline[i as usize].push((k, v));
            }
            None if msg.is_kind && (k == "apiVersion" || k == "kind") => {}
            None => {
                return Err(Error::json(
                    k,
                    format!("unknown field (not in {})", short_name(&msg.name)),
                ))
            }
        }
    }
    for (i, f) in msg.fields.iter().enumerate() {
        if f.inline() {
            if let (Some(sub), Ty::Msg(m)) = (inline.get(i), f.ty) {
                if !sub.is_empty() {
                    let mut b = Vec::new();
                    encode_pairs(schema, schema.msg(m), sub, &mut b, depth + 1)?;
                    put_bytes(out, f.num, &b);
                }
            }
            continue;
        }
        let Some(v) = direct[i] else { continue };
        if v.is_null() {
            continue;
        }
        encode_field(schema, f.num, f.ty, f.label, v, out, depth)
            .map_err(|e| e.in_field(&f.json))?;
    }
    Ok(())
}

fn short_name(full: &str) -> &str {
    full.rsplit('.').next().unwrap_or(full)
}

fn encode_field(
    schema: &Schema,
    num: u32,
    ty: Ty,
    label: Label,
    v: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), Error> {
    match label {
        Label::Single => match ty {
            Ty::Scalar(s) => put_scalar(out, num, s, v),
            Ty::Msg(m) => {
                if let Some(b) = encode_msg_value(schema, schema.msg(m), v, depth + 1)? {
                    put_bytes(out, num, &b);
                }
                Ok(())
            }
        },
        Label::Repeated => {
            let Value::Array(items) = v else {
                return Err(expected("array", v));
            };
            for (i, item) in items.iter().enumerate() {
                let r = match ty {
                    Ty::Scalar(s) => put_scalar(out, num, s, item),
                    Ty::Msg(m) => {
                        encode_msg_value(schema, schema.msg(m), item, depth + 1).map(|b| {
                            put_bytes(out, num, &b.unwrap_or_default());
                        })
                    }
                };
                r.map_err(|e| e.in_field(&format!("[{i}]")))?;
            }
            Ok(())
        }
        Label::Map => {
            let Value::Object(o) = v else {
                return Err(expected("object", v));
            };
            // Go writes map entries sorted by key
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort_unstable();
            let mut entry = Vec::new();
            for k in keys {
                entry.clear();
                put_bytes(&mut entry, 1, k.as_bytes());
                let item = &o[k];
                match ty {
                    Ty::Scalar(s) => put_scalar(&mut entry, 2, s, item),
                    Ty::Msg(m) => {
                        encode_msg_value(schema, schema.msg(m), item, depth + 1).map(|b| {
                            put_bytes(&mut entry, 2, &b.unwrap_or_default());
                        })
                    }
                }
                .map_err(|e| e.in_field(k))?;
                put_bytes(out, num, &entry);
            }
            Ok(())
        }
    }
}

fn as_int(v: &Value, lo: i64, hi: i64, what: &str) -> Result<i64, Error> {
    let n = match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        }),
        Value::Null => Some(0),
        _ => return Err(expected(what, v)),
    };
    match n {
        Some(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(Error::json("", format!("{v} is not a valid {what}"))),
    }
}

fn put_scalar(out: &mut Vec<u8>, num: u32, s: Scalar, v: &Value) -> Result<(), Error> {
    match s {
        Scalar::String => match v {
            Value::String(x) => put_bytes(out, num, x.as_bytes()),
            Value::Null => put_bytes(out, num, b""),
            _ => return Err(expected("string", v)),
        },
        Scalar::Bytes => match v {
            Value::String(x) => {
                // Go's decoder skips `\r` and `\n`, so line-wrapped base64 (PEM-style) is valid.
                let b = if x.contains(['\r', '\n']) {
                    B64.decode(x.replace(['\r', '\n'], ""))
                } else {
                    B64.decode(x)
                }
                .map_err(|e| Error::json("", format!("invalid base64: {e}")))?;
                put_bytes(out, num, &b);
            }
            Value::Null => put_bytes(out, num, b""),
            _ => return Err(expected("base64 string", v)),
        },
        Scalar::Int32 => {
            let n = as_int(v, i64::from(i32::MIN), i64::from(i32::MAX), "int32")?;
            put_tag(out, num, WT_VARINT);
            put_varint(out, n as u64);
        }
        Scalar::Int64 => {
            let n = as_int(v, i64::MIN, i64::MAX, "int64")?;
            put_tag(out, num, WT_VARINT);
            put_varint(out, n as u64);
        }
        Scalar::Bool => {
            let b = match v {
                Value::Bool(b) => *b,
                Value::Null => false,
                _ => return Err(expected("boolean", v)),
            };
            put_tag(out, num, WT_VARINT);
            put_varint(out, u64::from(b));
        }
        Scalar::Double => {
            let f = match v {
                Value::Number(n) => n.as_f64().unwrap_or(0.0),
                Value::Null => 0.0,
                _ => return Err(expected("number", v)),
            };
            put_tag(out, num, WT_I64);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
    }
    Ok(())
}

fn put_int(out: &mut Vec<u8>, num: u32, n: i64) {
    put_tag(out, num, WT_VARINT);
    put_varint(out, n as u64);
}

/// Encode an embedded message value. `None` means "absent".
fn encode_msg_value(
    schema: &Schema,
    msg: &Message,
    v: &Value,
    depth: usize,
) -> Result<Option<Vec<u8>>, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep(MAX_DEPTH));
    }
    let mut out = Vec::new();
    let sub = |n: u32| -> Option<&Message> {
        let f = &msg.fields[msg.field_by_num(n)?];
        match f.ty {
            Ty::Msg(m) => Some(schema.msg(m)),
            Ty::Scalar(_) => None,
        }
    };
    match (msg.special, v) {
        (_, Value::Null) => return Ok(None),
        (Special::None, Value::Object(o)) => encode_object(schema, msg, o, &mut out, depth)?,
        (Special::None, _) => return Err(expected("object", v)),
        (Special::Quantity, Value::String(s)) => put_bytes(&mut out, 1, s.as_bytes()),
        (Special::Quantity, Value::Number(n)) => put_bytes(&mut out, 1, n.to_string().as_bytes()),
        (Special::Quantity, _) => return Err(expected("quantity string", v)),
        (Special::Time | Special::MicroTime, Value::String(s)) => {
            let (secs, nanos) = timefmt::parse_rfc3339(s).ok_or_else(|| {
                Error::json(
                    "",
                    format!("{s:?} is not an RFC 3339 time like 2024-01-02T03:04:05Z"),
                )
            })?;
            put_int(&mut out, 1, secs);
            let nanos = if msg.special == Special::MicroTime {
                i64::from(nanos / 1000 * 1000)
            } else {
                0
            };
            put_int(&mut out, 2, nanos);
        }
        (Special::Time | Special::MicroTime, _) => return Err(expected("RFC 3339 time string", v)),
        (Special::Duration, Value::String(s)) => {
            let d = timefmt::parse_duration(s)
                .ok_or_else(|| Error::json("", format!("{s:?} is not a duration like 1h2m3s")))?;
            put_int(&mut out, 1, d);
        }
        (Special::Duration, _) => return Err(expected("duration string", v)),
        (Special::IntOrString, Value::Number(_)) => {
            let n = as_int(v, i64::from(i32::MIN), i64::from(i32::MAX), "int32")?;
            put_int(&mut out, 1, 0);
            put_int(&mut out, 2, n);
            put_bytes(&mut out, 3, b"");
        }
        (Special::IntOrString, Value::String(s)) => {
            put_int(&mut out, 1, 1);
            put_int(&mut out, 2, 0);
            put_bytes(&mut out, 3, s.as_bytes());
        }
        (Special::IntOrString, _) => return Err(expected("integer or string", v)),
        (Special::RawExtension | Special::Json, _) | (Special::FieldsV1, Value::Object(_)) => {
            let b = serde_json::to_vec(v).map_err(|e| Error::json("", e.to_string()))?;
            put_bytes(&mut out, 1, &b);
        }
        (Special::FieldsV1, _) => return Err(expected("object", v)),
        (Special::OrArray, Value::Array(items)) => {
            let m = sub(2).ok_or_else(|| Error::json("", "schema has no JSONSchemas field"))?;
            for (i, item) in items.iter().enumerate() {
                let b = encode_msg_value(schema, m, item, depth + 1)
                    .map_err(|e| e.in_field(&format!("[{i}]")))?;
                put_bytes(&mut out, 2, &b.unwrap_or_default());
            }
        }
        (Special::OrArray | Special::OrStringArray, Value::Object(_)) => {
            let m = sub(1).ok_or_else(|| Error::json("", "schema has no schema field"))?;
            let b = encode_msg_value(schema, m, v, depth + 1)?;
            put_bytes(&mut out, 1, &b.unwrap_or_default());
        }
        (Special::OrArray, _) => return Err(expected("object or array", v)),
        (Special::OrBool, Value::Bool(b)) => put_int(&mut out, 1, i64::from(*b)),
        (Special::OrBool, Value::Object(_)) => {
            let m = sub(2).ok_or_else(|| Error::json("", "schema has no schema field"))?;
            let b = encode_msg_value(schema, m, v, depth + 1)?;
            put_int(&mut out, 1, 1);
            put_bytes(&mut out, 2, &b.unwrap_or_default());
        }
        (Special::OrBool, _) => return Err(expected("object or boolean", v)),
        (Special::OrStringArray | Special::Strings, Value::Array(items)) => {
            let num = if msg.special == Special::Strings {
                1
            } else {
                2
            };
            for (i, item) in items.iter().enumerate() {
                put_scalar(&mut out, num, Scalar::String, item)
                    .map_err(|e| e.in_field(&format!("[{i}]")))?;
            }
        }
        (Special::OrStringArray, _) => return Err(expected("object or array of strings", v)),
        (Special::Strings, _) => return Err(expected("array of strings", v)),
    }
    Ok(Some(out))
}

/// A list encoded item by item, for responses written while the items are read. The bytes
/// equal those of encoding the whole list at once: the list message is its `metadata` field
/// then one `items` field per item, and the envelope needs only the message's length up front.
pub struct ListEncoder {
    api_version: String,
    kind: String,
    list_msg: u32,
    items_num: u32,
    item_msg: u32,
}

impl ListEncoder {
    /// The encoder of `kind` (a list kind such as `PodList`) in `api_version`.
    pub fn new(api_version: &str, kind: &str) -> Result<ListEncoder, Error> {
        let schema = Schema::get();
        let list_msg = schema
            .kind(api_version, kind)
            .ok_or_else(|| Error::unknown_kind(api_version, kind))?;
        let msg = schema.msg(list_msg);
        let items = msg
            .fields
            .iter()
            .find(|f| &*f.json == "items" && f.label == Label::Repeated)
            .ok_or_else(|| Error::json("items", format!("{} is not a list", msg.name)))?;
        let Ty::Msg(item_msg) = items.ty else {
            return Err(Error::json("items", "not a list of objects"));
        };
        // Items are written last; a field after them would have to follow them.
        if msg.fields.iter().any(|f| f.num > items.num) {
            return Err(Error::json("items", "not the list's last field"));
        }
        Ok(ListEncoder {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            list_msg,
            items_num: items.num,
            item_msg,
        })
    }

    /// The list message's fields before its items (`metadata` is field 1, `items` field 2).
    pub fn head(&self, metadata: &Value) -> Result<Vec<u8>, Error> {
        let schema = Schema::get();
        let mut out = Vec::new();
        encode_pairs(
            schema,
            schema.msg(self.list_msg),
            &[("metadata", metadata)],
            &mut out,
            1,
        )?;
        Ok(out)
    }

    /// Appends one item as the list's `items` field.
    pub fn item(&self, item: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
        let schema = Schema::get();
        // Depth as when the item is reached inside the whole list's encoding.
        let b = encode_msg_value(schema, schema.msg(self.item_msg), item, 2)?;
        put_bytes(out, self.items_num, &b.unwrap_or_default());
        Ok(())
    }

    /// The envelope up to the list message, whose length must be known: `k8s\0`, the type
    /// meta, and the tag and length of `raw`.
    pub fn envelope_start(&self, message_len: usize) -> Vec<u8> {
        let mut tm = Vec::with_capacity(self.api_version.len() + self.kind.len() + 4);
        put_bytes(&mut tm, 1, self.api_version.as_bytes());
        put_bytes(&mut tm, 2, self.kind.as_bytes());
        let mut out = Vec::with_capacity(tm.len() + 16);
        out.extend_from_slice(&MAGIC);
        put_bytes(&mut out, 1, &tm);
        crate::wire::put_tag(&mut out, 2, crate::wire::WT_LEN);
        put_varint(&mut out, message_len as u64);
        out
    }

    /// The envelope after the list message (empty content encoding and type, as Go writes).
    pub fn envelope_end(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4);
        put_bytes(&mut out, 3, b"");
        put_bytes(&mut out, 4, b"");
        out
    }
}
