//! Request body decoding (JSON, YAML, Kubernetes protobuf) and response content negotiation.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};
use serde_json::Value;

use crate::status::{ApiError, ApiResult};

/// Upstream's limit on request bodies.
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// Deepest JSON nesting accepted; deeper bodies are refused before they can exhaust the stack.
const MAX_DEPTH: usize = 100;

/// The media type of a request body, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

fn check_depth(body: &[u8]) -> ApiResult<()> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    for &b in body {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ApiError::bad_request(format!(
                        "the request body is nested more than {MAX_DEPTH} levels deep"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Decodes a JSON body into a value, with upstream-style messages for malformed input.
pub fn decode_json(body: &[u8]) -> ApiResult<Value> {
    check_depth(body)?;
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))
    })
}

/// Decodes an object body of any supported media type.
pub fn decode_object(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let ct = content_type(headers);
    let v = match ct.as_str() {
        "application/json" | "" => decode_json(body)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(body)?,
        "application/vnd.kubernetes.protobuf" => {
            reddwarf_kubeproto::decode_object(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body of the request could not be decoded as protobuf: {e}"
                ))
            })?
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body of the request must be a JSON object, got {}",
            type_name(&v)
        )));
    }
    Ok(v)
}

pub fn decode_yaml(body: &[u8]) -> ApiResult<Value> {
    // YAML aliases can expand exponentially; serde_yaml bounds recursion, and the body size
    // is already capped, so decoding is bounded.
    let v: Value = serde_yaml::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as YAML: {e}"
        ))
    })?;
    let text = serde_json::to_vec(&v).map_err(ApiError::internal)?;
    check_depth(&text)?;
    Ok(v)
}

/// One step of a field path as the protobuf encoder reports it (`spec.containers[0].image`).
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let (n, tail) = r.split_once(']')?;
            out.push(Step::Index(n.parse().ok()?));
            rest = tail;
        }
        if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

/// Removes the field at `path`; false when the path does not lead to an object member.
fn remove_path(obj: &mut Value, path: &str) -> bool {
    let Some(steps) = steps(path) else {
        return false;
    };
    let Some((Step::Key(last), parents)) = steps.split_last() else {
        return false;
    };
    let mut cur = obj;
    for s in parents {
        let next = match s {
            Step::Key(k) => cur.get_mut(*k),
            Step::Index(i) => cur.get_mut(*i),
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    cur.as_object_mut().and_then(|m| m.remove(*last)).is_some()
}

/// Go's words for the JSON types the encoder names.
fn go_type(t: &str) -> &str {
    match t {
        "boolean" => "bool",
        "integer or string" => "intstr.IntOrString",
        other => other,
    }
}

/// Decodes a built-in object as upstream's typed decoder would: a value of the wrong JSON
/// type is a 400 (`<Kind> in version "v1" cannot be handled as a <Kind>: ...`); fields the
/// kind does not have are dropped, or refused when `strict` (`fieldValidation=Strict`).
/// Kinds without a compiled-in schema (custom resources) pass unchanged.
pub fn check_schema(obj: &mut Value, strict: bool) -> ApiResult<Vec<String>> {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(|av| av.rsplit('/').next().unwrap_or(av))
        .unwrap_or("")
        .to_string();
    let cannot = |why: String| {
        ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: {why}"
        ))
    };
    let mut unknown = Vec::new();
    // Each round either succeeds, fails on a type, or drops one unknown field.
    for _ in 0..10_000 {
        match reddwarf_kubeproto::encode_raw(obj) {
            Ok(_) => break,
            Err(reddwarf_kubeproto::Error::Json { path, msg }) => {
                if msg.starts_with("unknown field") {
                    if !remove_path(obj, &path) {
                        break;
                    }
                    unknown.push(format!("unknown field {path:?}"));
                    continue;
                }
                let why = match msg
                    .strip_prefix("expected ")
                    .and_then(|m| m.split_once(", got "))
                {
                    Some((want, got)) => format!(
                        "json: cannot unmarshal {} into Go struct field {kind}.{path} of type {}",
                        go_type(got),
                        go_type(want)
                    ),
                    None if path.is_empty() => msg,
                    None => format!("{path}: {msg}"),
                };
                return Err(cannot(why));
            }
            Err(reddwarf_kubeproto::Error::TooDeep(n)) => {
                return Err(cannot(format!("nested more than {n} levels deep")))
            }
            // Not a compiled-in kind (custom resources): nothing to check against.
            Err(_) => break,
        }
    }
    if strict && !unknown.is_empty() {
        return Err(cannot(format!(
            "strict decoding error: {}",
            unknown.join(", ")
        )));
    }
    Ok(unknown)
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// What the client asked to receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Json,
    Yaml,
    Protobuf,
    /// `as=Table;g=meta.k8s.io;v=v1` (or v1beta1).
    Table {
        v1beta1: bool,
    },
    /// Aggregated discovery, `as=APIGroupDiscoveryList` (v2 or v2beta1).
    Discovery {
        v2beta1: bool,
    },
    /// `as=PartialObjectMetadata` / `PartialObjectMetadataList` (meta.k8s.io v1 or v1beta1):
    /// objects reduced to their metadata (metadata informers, the garbage collector).
    Metadata {
        v1beta1: bool,
    },
}

/// An object reduced to its metadata (upstream `PartialObjectMetadata`): apiVersion and kind
/// of the object are kept as upstream does.
pub fn partial_metadata(obj: &Value, v1beta1: bool) -> Value {
    serde_json::json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": if v1beta1 { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" },
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| serde_json::json!({})),
    })
}

/// A stored object or list in its metadata-only form; Status bodies pass unchanged.
fn to_partial(body: &[u8], v1beta1: bool) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("kind").and_then(Value::as_str) == Some("Status") {
        return None;
    }
    let out = match v.get("items").and_then(Value::as_array) {
        Some(items) => serde_json::json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": if v1beta1 { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" },
            "metadata": v.get("metadata").cloned().unwrap_or_else(|| serde_json::json!({})),
            "items": items.iter().map(|i| partial_metadata(i, v1beta1)).collect::<Vec<_>>(),
        }),
        None => partial_metadata(&v, v1beta1),
    };
    serde_json::to_vec(&out).ok()
}

/// Picks the first acceptable media type from `Accept`, in the client's order.
pub fn negotiate(headers: &HeaderMap) -> ApiResult<Wanted> {
    negotiate_with(headers, true)
}

/// [`negotiate`] for a kind that may have no protobuf form (custom resources): protobuf
/// clauses are then skipped, and nothing else acceptable is a 406 naming JSON and YAML only.
pub fn negotiate_with(headers: &HeaderMap, protobuf: bool) -> ApiResult<Wanted> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if accept.trim().is_empty() {
        return Ok(Wanted::Json);
    }
    for clause in accept.split(',') {
        let mut it = clause.split(';').map(str::trim);
        let mt = it.next().unwrap_or("").to_ascii_lowercase();
        let mut g = "";
        let mut v = "";
        let mut as_ = "";
        for p in it {
            if let Some((k, val)) = p.split_once('=') {
                match k.trim() {
                    "g" => g = val.trim(),
                    "v" => v = val.trim(),
                    "as" => as_ = val.trim(),
                    _ => {}
                }
            }
        }
        let json_like = matches!(mt.as_str(), "application/json" | "*/*" | "application/*");
        if !as_.is_empty() {
            if json_like && as_ == "Table" && g == "meta.k8s.io" && (v == "v1" || v == "v1beta1") {
                return Ok(Wanted::Table {
                    v1beta1: v == "v1beta1",
                });
            }
            if json_like
                && as_ == "APIGroupDiscoveryList"
                && g == "apidiscovery.k8s.io"
                && (v == "v2" || v == "v2beta1")
            {
                return Ok(Wanted::Discovery {
                    v2beta1: v == "v2beta1",
                });
            }
            if json_like
                && (as_ == "PartialObjectMetadata" || as_ == "PartialObjectMetadataList")
                && g == "meta.k8s.io"
                && (v == "v1" || v == "v1beta1")
            {
                return Ok(Wanted::Metadata {
                    v1beta1: v == "v1beta1",
                });
            }
            // Other transformations are not served: try the next clause.
            continue;
        }
        match mt.as_str() {
            "application/json" | "*/*" | "application/*" => return Ok(Wanted::Json),
            "application/yaml" => return Ok(Wanted::Yaml),
            "application/vnd.kubernetes.protobuf" if protobuf => return Ok(Wanted::Protobuf),
            _ => {}
        }
    }
    if !protobuf {
        return Err(ApiError::new(
            406,
            "NotAcceptable",
            format!("only the following media types are accepted: application/json, application/yaml, application/json;stream=watch (asked for {accept:?})"),
        ));
    }
    Err(ApiError::not_acceptable(&accept))
}

/// Sends an object in the negotiated encoding (protobuf when asked and encodable, else JSON).
pub fn respond_object(code: StatusCode, wanted: Wanted, body: Vec<u8>) -> Response {
    match wanted {
        Wanted::Yaml => match serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| serde_yaml::to_string(&v).ok())
        {
            Some(y) => (code, [(header::CONTENT_TYPE, "application/yaml")], y).into_response(),
            None => json_response(code, body),
        },
        Wanted::Protobuf => {
            let encoded = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| reddwarf_kubeproto::encode_object(&v).ok());
            match encoded {
                Some(pb) => (
                    code,
                    [(header::CONTENT_TYPE, "application/vnd.kubernetes.protobuf")],
                    pb,
                )
                    .into_response(),
                None => json_response(code, body),
            }
        }
        Wanted::Metadata { v1beta1 } => match to_partial(&body, v1beta1) {
            Some(b) => json_response(code, b),
            None => json_response(code, body),
        },
        _ => json_response(code, body),
    }
}

/// A JSON body, ended by a newline as Go's encoder ends every document.
pub fn json_response(code: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut body: Vec<u8> = body.into().into();
    if body.last() != Some(&b'\n') {
        body.push(b'\n');
    }
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub fn json_value(code: StatusCode, v: &Value) -> Response {
    json_response(code, serde_json::to_vec(v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, v.parse().unwrap());
        h
    }

    #[test]
    fn negotiates_like_kubectl_asks() {
        assert_eq!(
            negotiate(&accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")).unwrap(),
            Wanted::Table { v1beta1: false }
        );
        assert_eq!(
            negotiate(&accept("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")).unwrap(),
            Wanted::Discovery { v2beta1: false }
        );
        assert_eq!(
            negotiate(&accept("application/json, */*")).unwrap(),
            Wanted::Json
        );
        assert_eq!(
            negotiate(&accept(
                "application/vnd.kubernetes.protobuf,application/json"
            ))
            .unwrap(),
            Wanted::Protobuf
        );
        assert_eq!(negotiate(&accept("text/html")).unwrap_err().code, 406);
        assert_eq!(
            negotiate(&accept(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
            ))
            .unwrap(),
            Wanted::Metadata { v1beta1: false }
        );
    }

    #[test]
    fn schema_check_refuses_wrong_types_and_drops_unknown_fields() {
        let mut cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": "x"});
        let e = check_schema(&mut cm, false).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal string into Go struct field ConfigMap.data of type object"
        );
        let mut extra = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "nope": 1}, "data": {"k": "v"}, "datta": {}});
        let e = check_schema(&mut extra.clone(), true).unwrap_err();
        assert!(
            e.message.contains("strict decoding error: unknown field"),
            "{}",
            e.message
        );
        check_schema(&mut extra, false).unwrap();
        assert_eq!(
            extra,
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}})
        );
        let mut dep = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "bogus": true, "ports": [{"containerPort": "80"}]}]}}}});
        let e = check_schema(&mut dep, false).unwrap_err();
        assert!(
            e.message
                .contains("Deployment.spec.template.spec.containers[0].ports[0].containerPort"),
            "{}",
            e.message
        );
        let mut cr = serde_json::json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"anything": 1}});
        check_schema(&mut cr, true).unwrap();
        assert_eq!(cr["spec"]["anything"], 1);
    }

    #[test]
    fn refuses_deep_and_malformed_json() {
        let deep = "[".repeat(500) + &"]".repeat(500);
        assert_eq!(decode_json(deep.as_bytes()).unwrap_err().code, 400);
        assert_eq!(decode_json(b"{\"a\":").unwrap_err().code, 400);
        assert!(decode_json(b"{\"a\":\"[[[[\"}").is_ok());
    }
}

/// Keys that appear more than once in the same JSON object, as dotted paths
/// (`metadata.name`, `spec.containers[0].image`). serde_json keeps the last silently; upstream
/// warns or refuses depending on `fieldValidation`.
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;

    struct Walk<'a> {
        path: String,
        found: &'a RefCell<Vec<String>>,
    }
    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            while seq
                .next_element_seed(Walk {
                    path: format!("{}[{i}]", self.path),
                    found: self.found,
                })?
                .is_some()
            {
                i += 1;
            }
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let path = if self.path.is_empty() {
                    key.clone()
                } else {
                    format!("{}.{key}", self.path)
                };
                if !seen.insert(key) {
                    self.found.borrow_mut().push(path.clone());
                }
                map.next_value_seed(Walk {
                    path,
                    found: self.found,
                })?;
            }
            Ok(())
        }
    }
    let found = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(body);
    let _ = Walk {
        path: String::new(),
        found: &found,
    }
    .deserialize(&mut de);
    found.into_inner()
}

#[cfg(test)]
mod duplicate_tests {
    use super::duplicate_fields;

    #[test]
    fn finds_duplicate_keys_with_their_paths() {
        let body = br#"{"metadata":{"name":"a","name":"b"},"data":{"k":"1"},"items":[{"x":1,"x":2}],"data":{}}"#;
        assert_eq!(
            duplicate_fields(body),
            vec!["metadata.name", "items[0].x", "data"]
        );
        assert!(duplicate_fields(br#"{"a":{"b":1},"c":{"b":2}}"#).is_empty());
    }
}
