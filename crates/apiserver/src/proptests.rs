//! Property tests of the API server's decoders of client input: request bodies (JSON, YAML,
//! depth limits, duplicate keys), continue tokens, label and field selectors, query strings.
//! Arbitrary input must give a value or a 4xx error, never a panic or a stack overflow; what
//! the server encodes must decode back.
//!
//! Case counts are bounded (PROPTEST_CASES overrides) so a debug `cargo test` stays quick.

use std::collections::BTreeMap;

use http::HeaderMap;
use proptest::prelude::*;
use reddwarf_store::ObjectKey;
use serde_json::{json, Value};

use crate::codec::{decode_json, decode_object, decode_yaml, duplicate_fields};
use crate::pagination::{decode_token, encode_token};
use crate::query::Query;
use crate::selector::{FieldSelector, LabelSelector};
use crate::slim::without_managed_fields;
use crate::status::ApiError;

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

fn client_error(e: &ApiError) -> bool {
    (400..500).contains(&e.code)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z \"\\\\/]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["a", "b", "metadata", "managedFields", "x\"y"]),
                    inner
                ),
                0..4
            )
            .prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

/// Bodies that are JSON-ish: brackets, quotes, escapes, commas in any order.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(vec![
            "{", "}", "[", "]", "\"", "\\", ":", ",", "\"a\"", "1", "null", " ", "\"\\\"\"",
            "{\"a\":", "[[", "]]", "\u{e9}",
        ]),
        0..40,
    )
    .prop_map(|p| p.concat().into_bytes())
}

fn nested(open: &str, close: &str, depth: usize) -> Vec<u8> {
    format!("{}1{}", open.repeat(depth), close.repeat(depth)).into_bytes()
}

fn label_key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["app", "tier", "example.com/role", "k-1", "a_b"])
        .prop_map(String::from)
}

fn label_value() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["web", "db", "x", "1"]).prop_map(String::from)
}

/// A label requirement: its text and, independently, what it means.
#[derive(Clone, Debug)]
enum Req {
    Eq(String, String, &'static str),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Req {
    fn text(&self) -> String {
        match self {
            Req::Eq(k, v, op) => format!("{k}{op}{v}"),
            Req::NotEq(k, v) => format!("{k} != {v}"),
            Req::In(k, vs) => format!("{k} in ({})", vs.join(",")),
            Req::NotIn(k, vs) => format!("{k} notin ( {} )", vs.join(", ")),
            Req::Exists(k) => k.clone(),
            Req::NotExists(k) => format!("!{k}"),
        }
    }

    fn holds(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Req::Eq(k, v, _) => labels.get(k) == Some(v),
            Req::NotEq(k, v) => labels.get(k) != Some(v),
            Req::In(k, vs) => labels.get(k).is_some_and(|x| vs.contains(x)),
            Req::NotIn(k, vs) => labels.get(k).is_none_or(|x| !vs.contains(x)),
            Req::Exists(k) => labels.contains_key(k),
            Req::NotExists(k) => !labels.contains_key(k),
        }
    }
}

fn req() -> impl Strategy<Value = Req> {
    let values = || prop::collection::vec(label_value(), 1..3);
    prop_oneof![
        (
            label_key(),
            label_value(),
            prop::sample::select(vec!["=", "==", " = "])
        )
            .prop_map(|(k, v, op)| Req::Eq(k, v, op)),
        (label_key(), label_value()).prop_map(|(k, v)| Req::NotEq(k, v)),
        (label_key(), values()).prop_map(|(k, v)| Req::In(k, v)),
        (label_key(), values()).prop_map(|(k, v)| Req::NotIn(k, v)),
        label_key().prop_map(Req::Exists),
        label_key().prop_map(Req::NotExists),
    ]
}

/// Keys as the store makes them under a list prefix: (prefix, key).
fn listed_key() -> impl Strategy<Value = (String, String)> {
    let group = prop::sample::select(vec!["", "apps", "example.com"]);
    let name = "[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?";
    (
        group,
        "[a-z]{1,10}",
        prop::option::of("[a-z0-9-]{1,12}"),
        name,
    )
        .prop_map(|(g, res, ns, name)| match ns {
            // a list in one namespace, or a cluster-scoped list (namespace "")
            Some(ns) => (
                ObjectKey::namespace_prefix(g, &res, &ns),
                ObjectKey::new(g, &res, &ns, &name).as_str().to_string(),
            ),
            None => (
                ObjectKey::namespace_prefix(g, &res, ""),
                ObjectKey::new(g, &res, "", &name).as_str().to_string(),
            ),
        })
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// Any body: a value or a 400, never a panic; what decodes is what serde_json reads.
    #[test]
    fn json_bodies(body in prop_oneof![jsonish(), prop::collection::vec(any::<u8>(), 0..64)]) {
        match decode_json(&body) {
            Ok(v) => prop_assert_eq!(Some(v), serde_json::from_slice::<Value>(&body).ok()),
            Err(e) => prop_assert_eq!(e.code, 400, "{}", e.message),
        }
        let _ = duplicate_fields(&body);
        match decode_yaml(&body) {
            Ok(_) => {}
            Err(e) => prop_assert_eq!(e.code, 400, "{}", e.message),
        }
        let mut headers = HeaderMap::new();
        for ct in ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf", "text/plain"] {
            headers.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            match decode_object(&headers, &body) {
                Ok(v) => prop_assert!(v.is_object()),
                Err(e) => prop_assert!(client_error(&e), "{}: {} {}", ct, e.code, e.message),
            }
        }
    }

    /// Nesting deeper than the limit is refused with a 400 in every body format, at any depth
    /// (no stack overflow), and nesting within it decodes. (Deep YAML is slow to parse in a
    /// debug build: depths up to 600, and the 5000-level case below.)
    #[test]
    fn deep_nesting_is_refused(depth in prop_oneof![90usize..140, 1usize..600], arrays: bool) {
        let (open, close) = if arrays { ("[", "]") } else { ("{\"a\":", "}") };
        let body = nested(open, close, depth);
        let r = decode_json(&body);
        if depth <= 100 {
            prop_assert!(r.is_ok());
        } else {
            prop_assert_eq!(r.unwrap_err().code, 400);
        }
        let _ = duplicate_fields(&body);
        // YAML flow style and block style
        let y = decode_yaml(&body);
        if depth > 100 {
            prop_assert_eq!(y.unwrap_err().code, 400);
        }
        let block: String = (0..depth.min(200)).map(|i| format!("{}a:\n", "  ".repeat(i))).collect();
        if let Err(e) = decode_yaml(block.as_bytes()) {
            prop_assert_eq!(e.code, 400);
        }
    }

    /// Every key given twice is reported with its path, and nothing else is.
    #[test]
    fn duplicate_keys_found(v in json_value()) {
        let body = serde_json::to_vec(&v).unwrap();
        prop_assert_eq!(duplicate_fields(&body), Vec::<String>::new());
        if let Value::Object(o) = &v {
            if let Some((k, val)) = o.iter().next() {
                // `{"k":…,<the rest>}` plus the first member again
                let mut text = String::from_utf8(body.clone()).unwrap();
                text.pop();
                let sep = if o.is_empty() { "" } else { "," };
                text.push_str(&format!("{sep}{}:{}}}", serde_json::to_string(k).unwrap(), val));
                prop_assert_eq!(duplicate_fields(text.as_bytes()), vec![k.clone()]);
            }
        }
    }

    /// Continue tokens: what the server writes reads back; anything else is a 400.
    #[test]
    fn continue_tokens((prefix, key) in listed_key(), rev in 1u64..i64::MAX as u64, junk in ".{0,40}", b64 in "[A-Za-z0-9_=-]{0,60}") {
        let t = encode_token(rev, &prefix, &key);
        prop_assert_eq!(decode_token(&t, &prefix).unwrap(), (Some(rev), key.clone()));
        for bad in [junk.as_str(), b64.as_str()] {
            if let Err(e) = decode_token(bad, &prefix) {
                prop_assert_eq!(e.code, 400);
            }
        }
        // well-formed JSON with odd fields
        for body in [
            json!({"v": "meta.k8s.io/v1", "rv": rev, "start": junk}),
            json!({"v": "meta.k8s.io/v1", "rv": -1, "start": format!("../{junk}")}),
            json!({"v": "meta.k8s.io/v1", "rv": 0, "start": "a"}),
            json!({"v": "x", "rv": rev, "start": "a"}),
            json!({"rv": junk, "start": 5}),
        ] {
            let t = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, serde_json::to_vec(&body).unwrap());
            match decode_token(&t, &prefix) {
                // a token may only name keys below the listed prefix
                Ok((_, k)) => prop_assert!(k.starts_with(&prefix) && !k.contains("/../"), "{}", k),
                Err(e) => prop_assert_eq!(e.code, 400),
            }
        }
    }

    /// Label selectors: the parsed selector means what its requirements say; arbitrary text is
    /// a selector or a 400.
    #[test]
    fn label_selectors(
        reqs in prop::collection::vec(req(), 0..4),
        labels in prop::collection::btree_map(label_key(), label_value(), 0..4),
        junk in "[a-z!=(), .-]{0,30}",
    ) {
        let text: Vec<String> = reqs.iter().map(Req::text).collect();
        let text = text.join(", ");
        let sel = LabelSelector::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {}", e.message));
        let obj = json!({"metadata": {"labels": labels}});
        prop_assert_eq!(sel.matches(&obj), reqs.iter().all(|r| r.holds(&labels)), "{}", text);
        match LabelSelector::parse(&junk) {
            Ok(s) => { let _ = s.matches(&obj); }
            Err(e) => prop_assert_eq!(e.code, 400),
        }
    }

    /// Field selectors: a selector or a 400.
    #[test]
    fn field_selectors(s in "[a-z.!=, ]{0,40}", name in "[a-z]{1,3}", eq: bool) {
        let fields = [reddwarf_resources::field("status.phase", "status.phase")];
        let obj = json!({"metadata": {"name": name, "namespace": "d"}, "status": {"phase": "Running"}});
        for f in [&fields[..], &[]] {
            match FieldSelector::parse(&s, f) {
                Ok(sel) => { let _ = sel.matches(&obj); }
                Err(e) => prop_assert_eq!(e.code, 400),
            }
        }
        let text = format!("metadata.name{}{name}", if eq { "==" } else { "!=" });
        prop_assert_eq!(FieldSelector::parse(&text, &[]).unwrap().matches(&obj), eq);
    }

    /// Query strings: percent-encoded pairs read back as written; any text parses.
    #[test]
    fn query_strings(pairs in prop::collection::btree_map("[a-z]{1,5}", ".{1,10}", 0..4), junk in ".{0,30}") {
        let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", percent_encode(v))).collect();
        let parsed = Query::parse(Some(&q.join("&")));
        for (k, v) in &pairs {
            prop_assert_eq!(parsed.get(k), Some(v.as_str()));
        }
        let _ = Query::parse(Some(&junk));
    }

    /// Dropping managedFields from stored bytes: the object without exactly that member, for
    /// compact and pretty JSON; bytes that are not JSON do not panic.
    #[test]
    fn managed_fields_stripped(v in json_value(), mf in json_value(), junk in jsonish()) {
        let mut obj = match v { Value::Object(o) => o, _ => Default::default() };
        let mut meta = serde_json::Map::new();
        meta.insert("name".into(), json!("n"));
        meta.insert("managedFields".into(), mf);
        meta.insert("uid".into(), json!("u"));
        obj.insert("metadata".into(), Value::Object(meta));
        let obj = Value::Object(obj);
        let mut want = obj.clone();
        want["metadata"].as_object_mut().unwrap().shift_remove("managedFields");
        for bytes in [serde_json::to_vec(&obj).unwrap(), serde_json::to_vec_pretty(&obj).unwrap()] {
            let got: Value = serde_json::from_slice(&without_managed_fields(&bytes)).unwrap();
            prop_assert_eq!(&got, &want);
        }
        let _ = without_managed_fields(&junk);
    }
}

/// A YAML "billion laughs" body (aliases expanding exponentially) is refused quickly.
#[test]
fn yaml_alias_bomb_is_refused() {
    let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let start = std::time::Instant::now();
    let e = decode_yaml(doc.as_bytes()).unwrap_err();
    assert_eq!(e.code, 400);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}

/// Far past every limit (serde_json's and serde_yaml's own included): still a 400.
#[test]
fn very_deep_bodies_are_refused() {
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let body = nested(open, close, 5000);
        assert_eq!(decode_json(&body).unwrap_err().code, 400);
        assert_eq!(decode_yaml(&body).unwrap_err().code, 400);
        assert!(duplicate_fields(&body).is_empty());
    }
}
