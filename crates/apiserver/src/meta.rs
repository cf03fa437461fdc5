//! Object metadata: upstream validation of names, labels and annotations, and the fields the
//! server decides (uid, timestamps, generated names).

use rand::Rng;
use reddwarf_resources::NameRule;
use serde_json::Value;

use crate::status::Cause;

pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The time `seconds` from now (a pod's deletionTimestamp is the end of its grace period).
pub fn rfc3339_after(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(seconds))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `generateName` plus five characters from upstream's alphabet (no vowels, no lookalikes).
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let max_prefix = 63 - 5;
    let prefix = if prefix.len() > max_prefix {
        &prefix[..max_prefix]
    } else {
        prefix
    };
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_qualified_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// `ValidateIPAddressName`: a valid IP address, written canonically.
fn ip_address_name_errors(name: &str) -> Vec<String> {
    match name.parse::<std::net::IpAddr>() {
        Err(_) => vec!["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into()],
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => {
            vec!["must not be an IPv4-mapped IPv6 address".into()]
        }
        Ok(ip) if ip.to_string() != name => {
            vec![format!("must be in canonical form (\"{ip}\")")]
        }
        Ok(_) => vec![],
    }
}

/// Messages for an invalid object name under `rule` (empty when valid).
pub fn name_errors(rule: NameRule, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if name == "." || name == ".." {
        out.push(format!("may not be '{name}'"));
        return out;
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            out.push(format!("may not contain '{bad}'"));
        }
    }
    match rule {
        NameRule::Subdomain => {
            if name.len() > 253 {
                out.push("must be no more than 253 characters".into());
            }
            if !is_dns_subdomain(name) {
                out.push(SUBDOMAIN_MSG.into());
            }
        }
        NameRule::Label => {
            if name.len() > 63 {
                out.push("must be no more than 63 characters".into());
            }
            if !is_dns_label(name) {
                out.push(LABEL_MSG.into());
            }
        }
        NameRule::PathSegment => {}
        NameRule::IpAddress => out.extend(ip_address_name_errors(name)),
        NameRule::Label1035 => {
            if name.len() > 63 {
                out.push("must be no more than 63 characters".into());
            }
            if !is_dns_label(name) || !name.as_bytes()[0].is_ascii_lowercase() {
                out.push(LABEL1035_MSG.into());
            }
        }
    }
    out
}

fn qualified_name_errors(key: &str) -> Vec<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut out = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() {
            out.push("prefix part must be non-empty".into());
        } else if !is_dns_subdomain(p) {
            out.push(format!("prefix part {SUBDOMAIN_MSG}"));
        }
    }
    if name.is_empty() {
        out.push("name part must be non-empty".into());
    } else {
        if name.len() > 63 {
            out.push("name part must be no more than 63 characters".into());
        }
        if !is_qualified_part(name) {
            out.push(QUALIFIED_NAME_MSG.into());
        }
    }
    out
}

/// Validates metadata.name/labels/annotations of an object; appends causes.
pub fn validate_metadata(rule: NameRule, obj: &Value, causes: &mut Vec<Cause>) {
    let meta = obj.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        causes.push(Cause::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for msg in name_errors(rule, name) {
            causes.push(Cause::invalid("metadata.name", name, &msg));
        }
    }
    match meta.and_then(|m| m.get("labels")) {
        None | Some(Value::Null) => {}
        Some(Value::Object(labels)) => {
            for (k, v) in labels {
                for msg in qualified_name_errors(k) {
                    causes.push(Cause::invalid("metadata.labels", k, &msg));
                }
                match v.as_str() {
                    Some(v) => {
                        if v.len() > 63 {
                            causes.push(Cause::invalid(
                                &format!("metadata.labels[{k}]"),
                                v,
                                "must be no more than 63 characters",
                            ));
                        }
                        if !v.is_empty() && !is_qualified_part(v) {
                            causes.push(Cause::invalid(
                                &format!("metadata.labels[{k}]"),
                                v,
                                LABEL_VALUE_MSG,
                            ));
                        }
                    }
                    None => causes.push(Cause::invalid(
                        &format!("metadata.labels[{k}]"),
                        &v.to_string(),
                        "must be a string",
                    )),
                }
            }
        }
        Some(other) => causes.push(Cause::invalid(
            "metadata.labels",
            &other.to_string(),
            "must be a map of strings",
        )),
    }
    match meta.and_then(|m| m.get("annotations")) {
        None | Some(Value::Null) => {}
        Some(Value::Object(ann)) => {
            let mut total = 0usize;
            for (k, v) in ann {
                for msg in qualified_name_errors(&k.to_ascii_lowercase()) {
                    causes.push(Cause::invalid("metadata.annotations", k, &msg));
                }
                total += k.len() + v.as_str().map(str::len).unwrap_or(0);
                if !v.is_string() {
                    causes.push(Cause::invalid(
                        &format!("metadata.annotations[{k}]"),
                        &v.to_string(),
                        "must be a string",
                    ));
                }
            }
            if total > 256 * 1024 {
                causes.push(Cause {
                    reason: "FieldValueTooLong",
                    message: "Too long: may not be more than 262144 bytes".into(),
                    field: "metadata.annotations".into(),
                });
            }
        }
        Some(other) => causes.push(Cause::invalid(
            "metadata.annotations",
            &other.to_string(),
            "must be a map of strings",
        )),
    }
    if let Some(f) = meta.and_then(|m| m.get("finalizers")) {
        match f.as_array() {
            Some(list) => {
                for item in list {
                    let s = item.as_str().unwrap_or("");
                    let errs = qualified_name_errors(s);
                    if !errs.is_empty() {
                        causes.push(Cause::invalid("metadata.finalizers", s, &errs[0]));
                    }
                }
            }
            None => causes.push(Cause::invalid(
                "metadata.finalizers",
                &f.to_string(),
                "must be a list of strings",
            )),
        }
    }
}

/// `metadata.<field>` of an object as a string, or "".
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Mutable `metadata`, created if missing.
pub fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !matches!(obj.get("metadata"), Some(Value::Object(_))) {
        obj["metadata"] = Value::Object(Default::default());
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_the_kind_rule() {
        assert!(name_errors(NameRule::Subdomain, "my.config-1").is_empty());
        assert!(!name_errors(NameRule::Subdomain, "Bad").is_empty());
        assert!(!name_errors(NameRule::Label, "a.b").is_empty());
        assert!(!name_errors(NameRule::Label1035, "1abc").is_empty());
        assert!(name_errors(NameRule::Label1035, "abc-1").is_empty());
        assert!(!name_errors(NameRule::Subdomain, "..").is_empty());
        // RBAC names are path segments (`ValidateRBACName`).
        assert!(name_errors(NameRule::PathSegment, "system:metrics-server").is_empty());
        assert!(name_errors(NameRule::PathSegment, "cert-manager:leaderelection").is_empty());
        assert!(name_errors(NameRule::PathSegment, "Upper_Case").is_empty());
        assert_eq!(
            name_errors(NameRule::PathSegment, "a/b"),
            vec!["may not contain '/'"]
        );
        assert_eq!(
            name_errors(NameRule::PathSegment, ".."),
            vec!["may not be '..'"]
        );
        assert!(name_errors(NameRule::IpAddress, "10.0.0.1").is_empty());
        assert_eq!(
            name_errors(NameRule::IpAddress, "2001:DB8::1"),
            vec!["must be in canonical form (\"2001:db8::1\")"]
        );
        assert!(!name_errors(NameRule::IpAddress, "x").is_empty());
    }

    #[test]
    fn labels_and_annotations() {
        let mut c = Vec::new();
        validate_metadata(
            NameRule::Subdomain,
            &json!({"metadata": {"name": "ok", "labels": {"app": "web", "example.com/x": "y", "bad key": "v", "k": "-bad"}}}),
            &mut c,
        );
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["metadata.labels", "metadata.labels[k]"]);
        let name = generate_name("web-");
        assert_eq!(name.len(), 9);
        assert!(name.starts_with("web-"));
    }
}
