//! Property tests of the protobuf codec: bodies come from clients, so every byte string must
//! decode to a value or an error, never a panic; and what decodes must encode back to bytes that
//! decode to the same value (the API server re-encodes what it decoded).
//!
//! Case counts are bounded (PROPTEST_CASES overrides) so a debug `cargo test` stays quick.

use proptest::prelude::*;
use reddwarf_kubeproto::{
    canonicalize, canonicalize_unstructured, decode_object, decode_raw, decode_watch_frame,
    encode_object, encode_watch_frame, kinds, message, FieldInfo, FieldType, MessageInfo,
    ScalarType, SpecialType, MAGIC,
};
use serde_json::{Map, Value};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(256),
        // no failure-persistence files: nothing to commit, nothing left behind
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ------------------------------------------------------------------ a byte-driven generator

/// Reads choices from fuzz bytes (0 once they run out), so proptest's shrinking of the byte
/// vector shrinks the generated message too.
struct Choices<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (usize::from(self.byte()) << 8 | usize::from(self.byte())) % n
        }
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0u64, |a, _| a << 8 | u64::from(self.byte()))
    }
    fn exhausted(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn text(&mut self) -> Vec<u8> {
        let n = self.below(8);
        (0..n).map(|_| self.byte()).collect()
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, num: u32, wt: u8) {
    varint(out, u64::from(num) << 3 | u64::from(wt));
}

fn len_field(out: &mut Vec<u8>, num: u32, b: &[u8]) {
    tag(out, num, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A mostly well-typed encoding of `msg` driven by the choices: known fields with their wire
/// types, sometimes a wrong wire type, an unknown field or a truncation.
fn gen_message(c: &mut Choices, msg: &'static MessageInfo, depth: usize, out: &mut Vec<u8>) {
    if let Some(sp) = msg.special {
        gen_special(c, msg, sp, depth, out);
        return;
    }
    let n = if depth > 6 { 0 } else { c.below(5) };
    for _ in 0..n {
        if c.exhausted() || msg.fields.is_empty() {
            return;
        }
        match c.below(32) {
            0 => {
                // an unknown field, skipped by the decoder
                let wt = [0u8, 1, 2, 5][c.below(4)];
                tag(out, 1000 + c.below(100) as u32, wt);
                match wt {
                    0 => varint(out, c.u64()),
                    1 => out.extend_from_slice(&c.u64().to_le_bytes()),
                    2 => {
                        let t = c.text();
                        varint(out, t.len() as u64);
                        out.extend_from_slice(&t);
                    }
                    _ => out.extend_from_slice(&(c.u64() as u32).to_le_bytes()),
                }
            }
            1 => out.push(c.byte()), // garbage
            _ => {
                let f = &msg.fields[c.below(msg.fields.len())];
                gen_field(c, f, depth, out);
            }
        }
    }
}

fn gen_field(c: &mut Choices, f: &'static FieldInfo, depth: usize, out: &mut Vec<u8>) {
    let reps = if f.repeated || f.map { c.below(3) } else { 1 };
    for _ in 0..reps {
        if f.map {
            let mut entry = Vec::new();
            len_field(&mut entry, 1, &c.text());
            gen_value(c, f, 2, depth, &mut entry);
            len_field(out, f.number, &entry);
        } else {
            gen_value(c, f, f.number, depth, out);
        }
    }
}

fn gen_value(c: &mut Choices, f: &'static FieldInfo, num: u32, depth: usize, out: &mut Vec<u8>) {
    match f.ty {
        FieldType::Scalar(s) => gen_scalar(c, s, num, out),
        FieldType::Message(_) | FieldType::Special(..) => {
            let Some(m) = f.message() else { return };
            let mut b = Vec::new();
            gen_message(c, m, depth + 1, &mut b);
            len_field(out, num, &b);
        }
    }
}

fn gen_scalar(c: &mut Choices, s: ScalarType, num: u32, out: &mut Vec<u8>) {
    match s {
        ScalarType::String | ScalarType::Bytes => len_field(out, num, &c.text()),
        ScalarType::Double => {
            tag(out, num, 1);
            out.extend_from_slice(&c.u64().to_le_bytes());
        }
        ScalarType::Int32 | ScalarType::Int64 | ScalarType::Bool => {
            tag(out, num, 0);
            let v = match c.below(4) {
                0 => u64::from(c.byte()),
                1 => c.u64(),
                2 => i64::from(c.byte() as i8) as u64,
                _ => 0,
            };
            varint(out, v);
        }
    }
}

fn gen_special(
    c: &mut Choices,
    msg: &'static MessageInfo,
    sp: SpecialType,
    depth: usize,
    out: &mut Vec<u8>,
) {
    match sp {
        SpecialType::Quantity => {
            let q = ["", "1", "100m", "1Gi", "2.5", "1e3", "x"][c.below(7)];
            len_field(out, 1, q.as_bytes());
        }
        SpecialType::Time | SpecialType::MicroTime | SpecialType::Duration => {
            if c.below(4) != 0 {
                tag(out, 1, 0);
                let secs: i64 = match c.below(3) {
                    0 => i64::from(c.byte()) * 86_400 * 365,
                    1 => c.u64() as i64,
                    _ => -(i64::from(c.byte())),
                };
                varint(out, secs as u64);
                tag(out, 2, 0);
                varint(out, c.u64() % 2_000_000_000);
            }
        }
        SpecialType::RawExtension | SpecialType::Json | SpecialType::FieldsV1 => {
            let j = ["", "{}", "{\"a\":1}", "[1,2]", "null", "\"s\"", "{", "7"][c.below(8)];
            if !j.is_empty() || c.below(2) == 0 {
                len_field(out, 1, j.as_bytes());
            }
        }
        _ => {
            // IntOrString and the apiextensions unions are messages of ordinary fields
            let n = c.below(3);
            for _ in 0..n {
                if msg.fields.is_empty() {
                    break;
                }
                let f = &msg.fields[c.below(msg.fields.len())];
                gen_field(c, f, depth + 1, out);
            }
        }
    }
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut tm = Vec::new();
    len_field(&mut tm, 1, api_version.as_bytes());
    len_field(&mut tm, 2, kind.as_bytes());
    let mut out = MAGIC.to_vec();
    len_field(&mut out, 1, &tm);
    len_field(&mut out, 2, raw);
    out
}

/// Every (apiVersion, kind, message) that has an object form.
fn top_kinds() -> &'static [(String, String, &'static MessageInfo)] {
    static K: std::sync::OnceLock<Vec<(String, String, &'static MessageInfo)>> =
        std::sync::OnceLock::new();
    K.get_or_init(|| {
        kinds()
            .into_iter()
            .filter_map(|(a, k, m)| {
                let mi = message(&m)?;
                mi.special.is_none().then_some((a, k, mi))
            })
            .collect()
    })
}

/// Schema-guided body for a kind picked by the choices.
fn gen_body(data: &[u8]) -> (String, String, Vec<u8>) {
    let mut c = Choices { data, pos: 0 };
    let ks = top_kinds();
    let (a, k, m) = &ks[c.below(ks.len())];
    let mut raw = Vec::new();
    gen_message(&mut c, m, 0, &mut raw);
    (a.clone(), k.clone(), raw)
}

// ------------------------------------------------------------------ JSON values

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z0-9 ./:-]{0,8}".prop_map(Value::String),
    ]
}

/// Arbitrary JSON whose keys are often real field names, so canonicalize reaches deep.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "metadata",
            "spec",
            "status",
            "name",
            "labels",
            "containers",
            "template",
            "data",
            "binaryData",
            "rules",
            "ports",
            "image",
            "selector",
            "items",
            "object",
            "kind",
            "apiVersion",
            "versions",
            "schema",
            "openAPIV3Schema",
            "properties",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z]{1,6}",
    ];
    json_leaf().prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn with_kind(v: Value, i: usize) -> Value {
    let ks = top_kinds();
    let (a, k, _) = &ks[i % ks.len()];
    let mut o = match v {
        Value::Object(o) => o,
        other => {
            let mut o = Map::new();
            o.insert("spec".into(), other);
            o
        }
    };
    o.insert("apiVersion".into(), Value::String(a.clone()));
    o.insert("kind".into(), Value::String(k.clone()));
    Value::Object(o)
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        v => v.clone(),
    }
}

/// Whether a zero value (which canonicalize may drop as Go's `omitempty` does) occurs anywhere.
fn has_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.iter().any(has_zero),
        Value::Object(o) => o.values().any(has_zero),
    }
}

fn all_sorted(v: &Value) -> bool {
    match v {
        Value::Object(o) => {
            o.keys().zip(o.keys().skip(1)).all(|(a, b)| a <= b) && o.values().all(all_sorted)
        }
        Value::Array(a) => a.iter().all(all_sorted),
        _ => true,
    }
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes, with and without the magic prefix: an error or a value, never a panic.
    #[test]
    fn decode_arbitrary_bytes(mut body in prop::collection::vec(any::<u8>(), 0..256), magic: bool) {
        if magic {
            body.splice(0..0, MAGIC);
        }
        let _ = decode_object(&body);
        let _ = decode_watch_frame(&body);
    }

    /// Arbitrary raw bytes under a real kind: the message decoder itself, not just the envelope.
    #[test]
    fn decode_raw_arbitrary(i in any::<prop::sample::Index>(), raw in prop::collection::vec(any::<u8>(), 0..256)) {
        let ks = top_kinds();
        let (a, k, _) = &ks[i.index(ks.len())];
        let _ = decode_raw(a, k, &raw);
        let _ = decode_object(&envelope(a, k, &raw));
    }

    /// Schema-guided bodies: what decodes re-encodes, and the re-encoded bytes decode to the
    /// same JSON (decode is the API server's view of a body; encode is how it answers).
    #[test]
    fn decode_encode_round_trip(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let (a, k, raw) = gen_body(&data);
        let body = envelope(&a, &k, &raw);
        if let Ok(v) = decode_object(&body) {
            let again = encode_object(&v)
                .unwrap_or_else(|e| panic!("{a} {k}: decoded {v} but cannot encode it: {e}"));
            let back = decode_object(&again)
                .unwrap_or_else(|e| panic!("{a} {k}: re-encoded {v} does not decode: {e}"));
            // a RawExtension holding `null` decodes to a null key, which encodes as absent (as
            // in Go, whose RawExtension.UnmarshalJSON keeps no bytes for null)
            prop_assert_eq!(strip_nulls(&back), strip_nulls(&v));
            // a second pass is a fixed point byte for byte
            prop_assert_eq!(encode_object(&back).unwrap(), again.clone());
            // and it travels through a watch frame unchanged
            let frame = encode_watch_frame("ADDED", &v).unwrap();
            let f = decode_watch_frame(&frame).unwrap();
            prop_assert_eq!(f.consumed, frame.len());
            prop_assert_eq!(f.event_type, "ADDED");
            prop_assert_eq!(strip_nulls(&f.object), strip_nulls(&v));
        }
    }

    /// Truncating a valid body anywhere gives an error or a value, never a panic.
    #[test]
    fn decode_truncated(data in prop::collection::vec(any::<u8>(), 0..512), cut in any::<prop::sample::Index>()) {
        let (a, k, raw) = gen_body(&data);
        let body = envelope(&a, &k, &raw);
        let _ = decode_object(&body[..cut.index(body.len() + 1)]);
    }

    /// Deep nesting in the wire format is refused with an error (no stack overflow): a chain of
    /// groups, and a chain of unknown length-delimited fields holding each other.
    #[test]
    fn decode_deep_groups(depth in 90usize..3000, kind in any::<prop::sample::Index>()) {
        let ks = top_kinds();
        let (a, k, _) = &ks[kind.index(ks.len())];
        let mut raw = Vec::new();
        for _ in 0..depth {
            tag(&mut raw, 999, 3);
        }
        for _ in 0..depth {
            tag(&mut raw, 999, 4);
        }
        let r = decode_raw(a, k, &raw);
        if depth > 101 {
            prop_assert!(r.is_err());
        }
    }

    /// canonicalize never panics, keeps every key and value (only order changes, and Go's
    /// omitted zero values go), is idempotent; canonicalize_unstructured sorts every map.
    #[test]
    fn canonicalize_properties(v in json_value(), i in any::<usize>()) {
        let v = with_kind(v, i);
        let mut c = v.clone();
        prop_assert!(canonicalize(&mut c));
        let mut twice = c.clone();
        canonicalize(&mut twice);
        prop_assert_eq!(twice.to_string(), c.to_string());
        prop_assert_eq!(&c["kind"], &v["kind"]);
        // only order changes (map equality ignores order) unless there were zeros to drop
        if !has_zero(&v) {
            prop_assert_eq!(&c, &v);
        }
        let mut u = v.clone();
        canonicalize_unstructured(&mut u);
        prop_assert_eq!(&u, &v);
        prop_assert!(all_sorted(&u));
    }
}

/// The generator is useful only if many of its bodies decode: otherwise the round trip above
/// checks almost nothing.
#[test]
fn generated_bodies_mostly_decode() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut ok = 0;
    for _ in 0..400 {
        let data: Vec<u8> = (0..256)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (a, k, raw) = gen_body(&data);
        ok += usize::from(decode_object(&envelope(&a, &k, &raw)).is_ok());
    }
    assert!(ok >= 200, "only {ok} of 400 generated bodies decode");
}

/// Found by `decode_encode_round_trip`: a managedFields entry whose fieldsV1 held `[1,2]`
/// decoded, but the encoder (rightly) wants an object, so the stored object could not be
/// served to protobuf clients. The decoder now refuses it.
#[test]
fn fields_v1_must_be_an_object() {
    let entry = |raw: &[u8]| {
        let mut fv1 = Vec::new();
        len_field(&mut fv1, 1, raw);
        let mut e = Vec::new();
        len_field(&mut e, 7, &fv1);
        let mut meta = Vec::new();
        len_field(&mut meta, 17, &e);
        let mut cm = Vec::new();
        len_field(&mut cm, 1, &meta);
        envelope("v1", "ConfigMap", &cm)
    };
    let err = decode_object(&entry(b"[1,2]")).unwrap_err();
    assert!(err.to_string().contains("fieldsV1"), "{err}");
    let ok = decode_object(&entry(br#"{"f:data":{}}"#)).unwrap();
    assert_eq!(
        ok["metadata"]["managedFields"][0]["fieldsV1"],
        serde_json::json!({"f:data": {}})
    );
}
