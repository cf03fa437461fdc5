//! protobuf -> JSON.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::schema::{Label, Message, Scalar, Schema, Special, Ty};
use crate::timefmt;
use crate::wire::{find_len_field, Reader, WT_I64, WT_LEN, WT_VARINT};
use crate::{Error, MAGIC, MAX_DEPTH};

/// Decode an envelope (`k8s\0` + runtime.Unknown) found at absolute offset `base`.
pub(crate) fn decode_envelope(body: &[u8], base: usize, depth: usize) -> Result<Value, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep(MAX_DEPTH));
    }
    if body.len() < 4 || body[..4] != MAGIC {
        return Err(Error::MissingMagic);
    }
    let mut r = Reader::new(&body[4..], base + 4);
    let (mut api_version, mut kind) = (String::new(), String::new());
    let mut raw: (&[u8], usize) = (&[], base + 4);
    let mut encoding = String::new();
    while !r.at_end() {
        let at = r.offset();
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, WT_LEN) => {
                let (tm, off) = r.bytes()?;
                let mut t = Reader::new(tm, off);
                while !t.at_end() {
                    let at = t.offset();
                    match t.tag()? {
                        (1, WT_LEN) => api_version = lossy(t.bytes()?.0),
                        (2, WT_LEN) => kind = lossy(t.bytes()?.0),
                        (n @ (1 | 2), w) => {
                            return Err(t.err(at, format!("typeMeta field {n}: wire type {w}")))
                        }
                        (n, w) => t.skip(n, w, depth)?,
                    }
                }
            }
            (2, WT_LEN) => raw = r.bytes()?,
            (3, WT_LEN) => encoding = lossy(r.bytes()?.0),
            (4, WT_LEN) => {
                r.bytes()?;
            }
            (1..=4, w) => return Err(r.err(at, format!("envelope field {num}: wire type {w}"))),
            (n, w) => r.skip(n, w, depth)?,
        }
    }
    if !encoding.is_empty() {
        return Err(Error::Envelope(format!(
            "content encoding {encoding:?} is not supported"
        )));
    }
    if kind.is_empty() {
        return Err(Error::Envelope(
            "envelope has no typeMeta.kind; cannot tell which message raw holds".into(),
        ));
    }
    decode_typed(&api_version, &kind, raw.0, raw.1, depth)
}

pub(crate) fn decode_typed(
    api_version: &str,
    kind: &str,
    raw: &[u8],
    base: usize,
    depth: usize,
) -> Result<Value, Error> {
    let schema = Schema::get();
    let m = schema
        .kind(api_version, kind)
        .ok_or_else(|| Error::unknown_kind(api_version, kind))?;
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String(kind.into()));
    let msg = schema.msg(m);
    if msg.special != Special::None {
        return Err(Error::unknown_kind(api_version, kind));
    }
    decode_fields_into(schema, msg, raw, base, depth + 1, &mut out)?;
    Ok(Value::Object(out))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn num_i64(v: i64) -> Value {
    Value::Number(Number::from(v))
}

/// Decode a plain (non-special) message into `out`, fields in number order.
fn decode_fields_into(
    schema: &Schema,
    msg: &Message,
    buf: &[u8],
    base: usize,
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), Error> {
    for (fi, slot) in decode_slots(schema, msg, buf, base, depth)?
        .into_iter()
        .enumerate()
    {
        let Some(v) = slot else { continue };
        let f = &msg.fields[fi];
        if f.inline() {
            if let Value::Object(m) = v {
                out.extend(m);
            }
        } else {
            out.insert(f.json.to_string(), v);
        }
    }
    Ok(())
}

/// Decode the fields of a message into one slot per schema field (None = omitted).
fn decode_slots(
    schema: &Schema,
    msg: &Message,
    buf: &[u8],
    base: usize,
    depth: usize,
) -> Result<Vec<Option<Value>>, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep(MAX_DEPTH));
    }
    let mut slots: Vec<Option<Value>> = Vec::new();
    slots.resize_with(msg.fields.len(), || None);
    let mut r = Reader::new(buf, base);
    while !r.at_end() {
        let at = r.offset();
        let (num, wt) = r.tag()?;
        let Some(fi) = msg.field_by_num(num) else {
            r.skip(num, wt, depth)?;
            continue;
        };
        let f = &msg.fields[fi];
        let name = || -> String {
            if f.inline() {
                String::new()
            } else {
                f.json.to_string()
            }
        };
        let res = (|| -> Result<(), Error> {
            match f.label {
                Label::Single => {
                    let v = match f.ty {
                        Ty::Scalar(s) => {
                            let v = read_scalar(&mut r, s, wt, at, num)?;
                            // Go marshals every non-pointer field; for `omitempty` ones a zero
                            // value means "unset" and Go's JSON leaves it out.
                            if f.omit_zero && is_zero(&v) {
                                None
                            } else {
                                Some(v)
                            }
                        }
                        Ty::Msg(m) => {
                            let (b, off) = expect_len(&mut r, wt, at, num)?;
                            let sub = schema.msg(m);
                            let v = decode_msg_value(schema, sub, b, off, depth + 1)?;
                            // repeated occurrences of a singular message merge (proto semantics)
                            match (&mut slots[fi], v) {
                                (Some(Value::Object(old)), Some(Value::Object(new)))
                                    if sub.special == Special::None =>
                                {
                                    old.extend(new);
                                    return Ok(());
                                }
                                (_, v) => v,
                            }
                        }
                    };
                    slots[fi] = v;
                }
                Label::Repeated => {
                    let arr = match slots[fi].get_or_insert_with(|| Value::Array(Vec::new())) {
                        Value::Array(a) => a,
                        _ => unreachable!("repeated slot holds an array"),
                    };
                    match f.ty {
                        Ty::Scalar(s)
                            if wt == WT_LEN && s != Scalar::String && s != Scalar::Bytes =>
                        {
                            // packed
                            let (b, off) = r.bytes()?;
                            let mut pr = Reader::new(b, off);
                            let ewt = if s == Scalar::Double {
                                WT_I64
                            } else {
                                WT_VARINT
                            };
                            while !pr.at_end() {
                                let at = pr.offset();
                                arr.push(read_scalar(&mut pr, s, ewt, at, num)?);
                            }
                        }
                        Ty::Scalar(s) => arr.push(read_scalar(&mut r, s, wt, at, num)?),
                        Ty::Msg(m) => {
                            let (b, off) = expect_len(&mut r, wt, at, num)?;
                            let idx = arr.len();
                            let v = decode_msg_value(schema, schema.msg(m), b, off, depth + 1)
                                .map_err(|e| e.in_field(&format!("[{idx}]")))?;
                            arr.push(v.unwrap_or(Value::Null));
                        }
                    }
                }
                Label::Map => {
                    let (b, off) = expect_len(&mut r, wt, at, num)?;
                    let (k, v) = decode_map_entry(schema, f.ty, b, off, depth + 1)?;
                    match slots[fi].get_or_insert_with(|| Value::Object(Map::new())) {
                        Value::Object(o) => {
                            o.insert(k, v);
                        }
                        _ => unreachable!("map slot holds an object"),
                    }
                }
            }
            Ok(())
        })();
        res.map_err(|e| e.in_field(&name()))?;
    }
    // repeated fields present but empty (packed with zero length) are omitted
    for s in slots.iter_mut() {
        if matches!(s, Some(Value::Array(a)) if a.is_empty()) {
            *s = None;
        }
    }
    Ok(slots)
}

fn expect_len<'a>(
    r: &mut Reader<'a>,
    wt: u8,
    at: usize,
    num: u32,
) -> Result<(&'a [u8], usize), Error> {
    if wt != WT_LEN {
        return Err(r.err(
            at,
            format!("field {num}: wire type {wt}, expected {WT_LEN}"),
        ));
    }
    r.bytes()
}

fn read_scalar(r: &mut Reader, s: Scalar, wt: u8, at: usize, num: u32) -> Result<Value, Error> {
    let want = match s {
        Scalar::Int32 | Scalar::Int64 | Scalar::Bool => WT_VARINT,
        Scalar::Double => WT_I64,
        Scalar::String | Scalar::Bytes => WT_LEN,
    };
    if wt != want {
        return Err(r.err(at, format!("field {num}: wire type {wt}, expected {want}")));
    }
    Ok(match s {
        Scalar::Int32 => num_i64(i64::from(r.varint()? as i32)),
        Scalar::Int64 => num_i64(r.varint()? as i64),
        Scalar::Bool => Value::Bool(r.varint()? != 0),
        Scalar::Double => {
            let f = f64::from_bits(r.fixed64()?);
            Value::Number(Number::from_f64(f).ok_or_else(|| {
                r.err(at, format!("field {num}: {f} is not representable in JSON"))
            })?)
        }
        Scalar::String => Value::String(lossy(r.bytes()?.0)),
        Scalar::Bytes => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(r.bytes()?.0))
        }
    })
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn zero_scalar(s: Scalar) -> Value {
    match s {
        Scalar::Int32 | Scalar::Int64 => num_i64(0),
        Scalar::Bool => Value::Bool(false),
        Scalar::Double => Value::Number(Number::from(0)),
        Scalar::String | Scalar::Bytes => Value::String(String::new()),
    }
}

fn decode_map_entry(
    schema: &Schema,
    ty: Ty,
    buf: &[u8],
    base: usize,
    depth: usize,
) -> Result<(String, Value), Error> {
    let mut r = Reader::new(buf, base);
    let mut key = String::new();
    let mut val: Option<Value> = None;
    while !r.at_end() {
        let at = r.offset();
        let (n, wt) = r.tag()?;
        match n {
            1 => {
                let (b, _) = expect_len(&mut r, wt, at, n)?;
                key = lossy(b);
            }
            2 => {
                val = Some(match ty {
                    Ty::Scalar(s) => read_scalar(&mut r, s, wt, at, n)?,
                    Ty::Msg(m) => {
                        let (b, off) = expect_len(&mut r, wt, at, n)?;
                        decode_msg_value(schema, schema.msg(m), b, off, depth + 1)
                            .map_err(|e| e.in_field(&key))?
                            .unwrap_or(Value::Null)
                    }
                })
            }
            _ => r.skip(n, wt, depth)?,
        }
    }
    let val = match (val, ty) {
        (Some(v), _) => v,
        (None, Ty::Scalar(s)) => zero_scalar(s),
        (None, Ty::Msg(m)) => {
            decode_msg_value(schema, schema.msg(m), &[], base, depth + 1)?.unwrap_or(Value::Null)
        }
    };
    Ok((key, val))
}

/// Decode one embedded message to its JSON value. `None`: Go would write null (omit it).
fn decode_msg_value(
    schema: &Schema,
    msg: &Message,
    buf: &[u8],
    base: usize,
    depth: usize,
) -> Result<Option<Value>, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep(MAX_DEPTH));
    }
    let bytes_field = |n: u32| find_len_field(buf, base, n, depth);
    let parse_json = |b: &[u8], what: &str| -> Result<Value, Error> {
        serde_json::from_slice(b)
            .map_err(|e| Error::malformed(base, format!("{what} does not hold valid JSON: {e}")))
    };
    Ok(match msg.special {
        Special::None => {
            let mut out = Map::new();
            decode_fields_into(schema, msg, buf, base, depth, &mut out)?;
            Some(Value::Object(out))
        }
        Special::Quantity => {
            let s = bytes_field(1)?.map(|b| lossy(b.0)).unwrap_or_default();
            Some(Value::String(if s.is_empty() { "0".into() } else { s }))
        }
        Special::Time | Special::MicroTime => {
            if buf.is_empty() {
                return Ok(None); // Go marshals the zero time as an empty message; JSON null
            }
            let (secs, nanos) = read_seconds_nanos(buf, base, depth)?;
            let micro = msg.special == Special::MicroTime;
            let s = timefmt::format_rfc3339(secs, if micro { nanos } else { 0 }, micro)
                .ok_or_else(|| {
                    Error::malformed(base, format!("time {secs}s is outside years 0000-9999"))
                })?;
            Some(Value::String(s))
        }
        Special::Duration => {
            let (d, _) = read_seconds_nanos(buf, base, depth)?;
            Some(Value::String(timefmt::format_duration(d)))
        }
        Special::IntOrString => {
            let slots = decode_slots(schema, msg, buf, base, depth)?;
            let get = |n: u32| msg.field_by_num(n).and_then(|i| slots[i].clone());
            let is_str = get(1).and_then(|v| v.as_i64()) == Some(1);
            Some(if is_str {
                get(3).unwrap_or(Value::String(String::new()))
            } else {
                get(2).unwrap_or(num_i64(0))
            })
        }
        Special::RawExtension => match bytes_field(1)? {
            None | Some(([], _)) => None,
            Some((b, off)) if b.starts_with(&MAGIC) => Some(decode_envelope(b, off, depth + 1)?),
            Some((b, _)) => Some(parse_json(b, "RawExtension")?),
        },
        Special::FieldsV1 | Special::Json => match bytes_field(1)? {
            None | Some(([], _)) => None,
            Some((b, _)) => {
                let v = parse_json(b, "raw JSON field")?;
                // a field set is a JSON object; anything else could not be encoded back
                if msg.special == Special::FieldsV1 && !v.is_object() {
                    return Err(Error::malformed(
                        base,
                        "fieldsV1 does not hold a JSON object",
                    ));
                }
                Some(v)
            }
        },
        Special::OrArray | Special::OrBool | Special::OrStringArray => {
            let slots = decode_slots(schema, msg, buf, base, depth)?;
            let get = |n: u32| msg.field_by_num(n).and_then(|i| slots[i].clone());
            match msg.special {
                // JSONSchemaPropsOrArray{schema=1, jSONSchemas=2}
                Special::OrArray => get(2).or_else(|| get(1)),
                // JSONSchemaPropsOrBool{allows=1, schema=2}
                Special::OrBool => get(2).or_else(|| Some(get(1).unwrap_or(Value::Bool(false)))),
                // JSONSchemaPropsOrStringArray{schema=1, property=2}
                _ => get(2).or_else(|| get(1)),
            }
        }
        Special::Strings => {
            let slots = decode_slots(schema, msg, buf, base, depth)?;
            Some(
                slots
                    .into_iter()
                    .next()
                    .flatten()
                    .unwrap_or(Value::Array(Vec::new())),
            )
        }
    })
}

/// Fields 1 (int64) and 2 (int32) of Time/MicroTime/Duration.
fn read_seconds_nanos(buf: &[u8], base: usize, depth: usize) -> Result<(i64, i64), Error> {
    let mut r = Reader::new(buf, base);
    let (mut a, mut b) = (0i64, 0i64);
    while !r.at_end() {
        let at = r.offset();
        match r.tag()? {
            (1, WT_VARINT) => a = r.varint()? as i64,
            (2, WT_VARINT) => b = i64::from(r.varint()? as i32),
            (n @ (1 | 2), w) => {
                return Err(r.err(at, format!("field {n}: wire type {w}, expected 0")))
            }
            (n, w) => r.skip(n, w, depth)?,
        }
    }
    Ok((a, b))
}
