//! The legacy group apart from pods and Services (`pkg/apis/core/validation`): ConfigMaps,
//! Secrets, Namespaces, PodTemplates and ReplicationControllers.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::field::{go_string_map, q, IMMUTABLE};
use super::names::{config_map_key, push_msgs, qualified_name};
use super::pod::{nonnegative, restart_policy, validate_pod_template, PodOpts};
use super::{arr, str_at, FieldError};

/// `core.MaxSecretSize`.
const MAX_SIZE: usize = 1024 * 1024;

/// Standard base64 decoding (what Go's `[]byte` JSON decoding does).
fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some((c - b'A') as u32),
            b'a'..=b'z' => Some((c - b'a') as u32 + 26),
            b'0'..=b'9' => Some((c - b'0') as u32 + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let clean: Vec<u8> = s.bytes().filter(|c| *c != b'\n' && *c != b'\r').collect();
    let illegal = |i: usize| Err(format!("illegal base64 data at input byte {i}"));
    if clean.len() % 4 != 0 {
        return illegal(clean.len() / 4 * 4);
    }
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for (ci, chunk) in clean.chunks(4).enumerate() {
        let last = ci == clean.len() / 4 - 1;
        let mut acc = 0u32;
        let mut pad = 0;
        for (j, c) in chunk.iter().enumerate() {
            let pos = ci * 4 + j;
            if *c == b'=' {
                if !last || j < 2 || (j == 2 && chunk[3] != b'=') {
                    return illegal(pos);
                }
                pad += 1;
                acc <<= 6;
                continue;
            }
            if pad > 0 {
                return illegal(pos);
            }
            match val(*c) {
                Some(v) => acc = (acc << 6) | v,
                None => return illegal(pos),
            }
        }
        let bytes = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Ok(out)
}

/// Go's `json.Unmarshal` error text, roughly, for a value that should be a JSON object.
fn json_object_error(bytes: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(_)) => None,
        Ok(other) => Some(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            match other {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                Value::Bool(_) => "bool",
                _ => "null",
            }
        )),
        Err(e) if e.is_eof() => Some("unexpected end of JSON input".into()),
        Err(_) => {
            let c = bytes
                .iter()
                .find(|c| !c.is_ascii_whitespace())
                .map(|c| *c as char)
                .unwrap_or(' ');
            Some(format!(
                "invalid character '{c}' looking for beginning of value"
            ))
        }
    }
}

/// A Secret's data after upstream's conversion: `data` decoded, `stringData` merged over it.
fn secret_data(secret: &Value, errs: &mut Vec<FieldError>) -> BTreeMap<String, Vec<u8>> {
    let mut data = BTreeMap::new();
    if let Some(m) = secret.get("data").and_then(Value::as_object) {
        for (k, v) in m {
            match base64_decode(v.as_str().unwrap_or("")) {
                Ok(b) => {
                    data.insert(k.clone(), b);
                }
                Err(e) => errs.push(FieldError::invalid(
                    format!("data[{k}]"),
                    &q("<secret contents redacted>"),
                    &e,
                )),
            }
        }
    }
    if let Some(m) = secret.get("stringData").and_then(Value::as_object) {
        for (k, v) in m {
            data.insert(k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec());
        }
    }
    data
}

/// `ValidateSecret` / `ValidateSecretUpdate`.
pub fn validate_secret(secret: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let ty = str_at(secret, "type").unwrap_or("");
    if let Some(old) = old {
        let old_ty = str_at(old, "type").unwrap_or("");
        if old_ty != ty {
            errs.push(FieldError::invalid("type", &q(ty), IMMUTABLE));
        }
        if old.get("immutable") == Some(&Value::Bool(true)) {
            if secret.get("immutable") != Some(&Value::Bool(true)) {
                errs.push(FieldError::forbidden(
                    "immutable",
                    "field is immutable when `immutable` is set",
                ));
            }
            let mut ignore = Vec::new();
            if secret_data(secret, &mut ignore) != secret_data(old, &mut ignore) {
                errs.push(FieldError::forbidden(
                    "data",
                    "field is immutable when `immutable` is set",
                ));
            }
        }
    }
    let data = secret_data(secret, errs);
    let mut total = 0;
    for (k, v) in &data {
        push_msgs(errs, &format!("data[{k}]"), k, config_map_key(k));
        total += v.len();
    }
    if total > MAX_SIZE {
        errs.push(FieldError::too_long("data", MAX_SIZE));
    }
    let redacted = q("<secret contents redacted>");
    match ty {
        "kubernetes.io/service-account-token" => {
            let name = secret
                .pointer("/metadata/annotations")
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
            let key = if ty == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match data.get(key) {
                None => errs.push(FieldError::required(format!("data[{key}]"), "")),
                Some(b) => {
                    if let Some(e) = json_object_error(b) {
                        errs.push(FieldError::invalid(format!("data[{key}]"), &redacted, &e));
                    }
                }
            }
        }
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            errs.push(FieldError::required("data[username]", ""));
            errs.push(FieldError::required("data[password]", ""));
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(|v| v.is_empty()) => {
            errs.push(FieldError::required("data[ssh-privatekey]", ""));
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !data.contains_key(key) {
                    errs.push(FieldError::required(format!("data[{key}]"), ""));
                }
            }
        }
        _ => {}
    }
}

/// `ValidateConfigMap` / `ValidateConfigMapUpdate`.
pub fn validate_config_map(cm: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let empty = Map::new();
    let data = cm.get("data").and_then(Value::as_object).unwrap_or(&empty);
    let binary = cm
        .get("binaryData")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if let Some(old) = old {
        if old.get("immutable") == Some(&Value::Bool(true)) {
            if cm.get("immutable") != Some(&Value::Bool(true)) {
                errs.push(FieldError::forbidden(
                    "immutable",
                    "field is immutable when `immutable` is set",
                ));
            }
            for key in ["data", "binaryData"] {
                let norm = |v: Option<&Value>| {
                    v.and_then(Value::as_object)
                        .filter(|m| !m.is_empty())
                        .cloned()
                };
                if norm(cm.get(key)) != norm(old.get(key)) {
                    errs.push(FieldError::forbidden(
                        key,
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
    }
    let mut total = 0;
    for (k, v) in data {
        push_msgs(errs, &format!("data[{k}]"), k, config_map_key(k));
        if binary.contains_key(k) {
            errs.push(FieldError::invalid(
                format!("data[{k}]"),
                &q(k),
                "duplicate of key present in binaryData",
            ));
        }
        total += v.as_str().map(str::len).unwrap_or(0);
    }
    for (k, v) in binary {
        push_msgs(errs, &format!("binaryData[{k}]"), k, config_map_key(k));
        match base64_decode(v.as_str().unwrap_or("")) {
            Ok(b) => total += b.len(),
            Err(e) => errs.push(FieldError::invalid(
                format!("binaryData[{k}]"),
                &q(v.as_str().unwrap_or("")),
                &e,
            )),
        }
    }
    if total > MAX_SIZE {
        errs.push(FieldError::too_long("", MAX_SIZE));
    }
}

/// `ValidateNamespace`: spec.finalizers are qualified names, standard or fully qualified.
pub fn validate_namespace(ns: &Value, errs: &mut Vec<FieldError>) {
    for f in arr(ns.pointer("/spec/finalizers")) {
        let f = f.as_str().unwrap_or("");
        push_msgs(errs, "spec.finalizers", f, qualified_name(f));
        if !f.contains('/') && !matches!(f, "kubernetes" | "orphan" | "foregroundDeletion") {
            errs.push(FieldError::invalid(
                "spec.finalizers",
                &q(f),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
}

/// `ValidatePodTemplate`.
pub fn validate_pod_template_kind(pt: &Value, errs: &mut Vec<FieldError>) {
    validate_pod_template(pt.get("template"), "template", &PodOpts::default(), errs);
}

/// `ValidateReplicationControllerSpec`.
pub fn validate_replication_controller(rc: &Value, errs: &mut Vec<FieldError>) {
    let null = Value::Null;
    let spec = rc.get("spec").unwrap_or(&null);
    let tpl = spec.get("template").filter(|t| !t.is_null());
    let tpl_labels = tpl
        .and_then(|t| t.pointer("/metadata/labels"))
        .and_then(Value::as_object);
    nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds", errs);
    // An empty selector defaults to the template's labels.
    let selector = spec
        .get("selector")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .or(tpl_labels);
    if selector.is_none_or(|m| m.is_empty()) {
        errs.push(FieldError::required("spec.selector", ""));
    }
    nonnegative(spec.get("replicas"), "spec.replicas", errs);
    let Some(tpl) = tpl else {
        errs.push(FieldError::required("spec.template", ""));
        return;
    };
    if let Some(sel) = selector.filter(|m| !m.is_empty()) {
        let matches = sel
            .iter()
            .all(|(k, v)| tpl_labels.and_then(|l| l.get(k)) == Some(v));
        if !matches {
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                &go_string_map(tpl_labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    validate_pod_template(Some(tpl), "spec.template", &PodOpts::default(), errs);
    let rp = restart_policy(tpl.get("spec"));
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            &q(rp),
            &["Always"],
        ));
    }
    if tpl
        .pointer("/spec/activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicationController is not Supported",
        ));
    }
}

/// A CSR's conditions as `validateConditions` checks them: each has a type and a status,
/// `Approved`, `Denied` and `Failed` appear at most once, and a request is not both approved
/// and denied.
pub(super) fn validate_csr_conditions(csr: &Value, errs: &mut Vec<FieldError>) {
    let conds = arr(csr.pointer("/status/conditions"));
    let mut seen: Vec<&str> = Vec::new();
    for (i, c) in conds.iter().enumerate() {
        let path = format!("status.conditions[{i}]");
        let t = str_at(c, "type").unwrap_or("");
        if t.is_empty() {
            errs.push(FieldError::required(format!("{path}.type"), ""));
        }
        match str_at(c, "status").unwrap_or("") {
            "" => errs.push(FieldError::required(format!("{path}.status"), "")),
            "True" | "False" | "Unknown" => {}
            other => errs.push(FieldError::not_supported(
                format!("{path}.status"),
                &q(other),
                &["False", "True", "Unknown"],
            )),
        }
        if matches!(t, "Approved" | "Denied" | "Failed") {
            if seen.contains(&t) {
                errs.push(FieldError::duplicate(format!("{path}.type"), &q(t)));
            }
            seen.push(t);
        }
    }
    if seen.contains(&"Approved") && seen.contains(&"Denied") {
        errs.push(FieldError::invalid(
            "status.conditions",
            "",
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn has(errs: &[FieldError], field: &str, message: &str) -> bool {
        errs.iter()
            .any(|e| e.field == field && e.message == message)
    }

    #[test]
    fn config_maps() {
        let mut errs = Vec::new();
        validate_config_map(
            &json!({"data": {"bad key": "v", "dup": "x"}, "binaryData": {"dup": "eA=="}}),
            None,
            &mut errs,
        );
        assert!(has(&errs, "data[bad key]", "Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
        assert!(has(
            &errs,
            "data[dup]",
            "Invalid value: \"dup\": duplicate of key present in binaryData"
        ));
        let big = "x".repeat(MAX_SIZE + 1);
        let mut errs = Vec::new();
        validate_config_map(&json!({"data": {"a": big}}), None, &mut errs);
        assert!(has(&errs, "", "Too long: must have at most 1048576 bytes"));
        let old = json!({"immutable": true, "data": {"a": "1"}});
        let mut errs = Vec::new();
        validate_config_map(
            &json!({"immutable": true, "data": {"a": "2"}}),
            Some(&old),
            &mut errs,
        );
        assert!(has(
            &errs,
            "data",
            "Forbidden: field is immutable when `immutable` is set"
        ));
        let mut errs = Vec::new();
        validate_config_map(&json!({"data": {"a": "1"}}), Some(&old), &mut errs);
        assert!(has(
            &errs,
            "immutable",
            "Forbidden: field is immutable when `immutable` is set"
        ));
    }

    #[test]
    fn secrets() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}), "data[tls.key]", "Required value"),
            (json!({"type": "kubernetes.io/dockerconfigjson"}), "data[.dockerconfigjson]", "Required value"),
            (
                json!({"type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{"}}),
                "data[.dockerconfigjson]",
                "Invalid value: \"<secret contents redacted>\": unexpected end of JSON input",
            ),
            (json!({"type": "kubernetes.io/basic-auth"}), "data[password]", "Required value"),
            (json!({"type": "kubernetes.io/ssh-auth"}), "data[ssh-privatekey]", "Required value"),
            (
                json!({"type": "kubernetes.io/service-account-token"}),
                "metadata.annotations[kubernetes.io/service-account.name]",
                "Required value",
            ),
            (json!({"type": "Opaque", "stringData": {"a b": "x"}}), "data[a b]", "Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"),
        ];
        for (s, field, message) in cases {
            let mut errs = Vec::new();
            validate_secret(&s, None, &mut errs);
            assert!(has(&errs, field, message), "{s}: {errs:?}");
        }
        let mut errs = Vec::new();
        validate_secret(
            &json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA==", "tls.key": "eA=="}}),
            None,
            &mut errs,
        );
        assert_eq!(errs, vec![]);
        let mut errs = Vec::new();
        validate_secret(
            &json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA==", "tls.key": "eA=="}}),
            Some(&json!({"type": "Opaque"})),
            &mut errs,
        );
        assert!(has(
            &errs,
            "type",
            "Invalid value: \"kubernetes.io/tls\": field is immutable"
        ));
        let big = "eHh4".repeat(MAX_SIZE / 3 + 1);
        let mut errs = Vec::new();
        validate_secret(
            &json!({"type": "Opaque", "data": {"a": big}}),
            None,
            &mut errs,
        );
        assert!(has(
            &errs,
            "data",
            "Too long: must have at most 1048576 bytes"
        ));
        assert_eq!(base64_decode("aGk="), Ok(b"hi".to_vec()));
        assert!(base64_decode("a").is_err());
    }

    #[test]
    fn namespaces_and_rcs() {
        let mut errs = Vec::new();
        validate_namespace(
            &json!({"spec": {"finalizers": ["kubernetes", "bogus", "example.com/x"]}}),
            &mut errs,
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].message, "Invalid value: \"bogus\": name is neither a standard finalizer name nor is it fully qualified");
        let mut errs = Vec::new();
        validate_replication_controller(
            &json!({"spec": {"selector": {"app": "a"}, "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
            &mut errs,
        );
        assert!(has(&errs, "spec.template.metadata.labels", "Invalid value: map[string]string{\"app\":\"b\"}: `selector` does not match template `labels`"));
    }
}
