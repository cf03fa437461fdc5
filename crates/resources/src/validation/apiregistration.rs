//! apiregistration.k8s.io/v1 (kube-aggregator's `ValidateAPIService`).

use serde_json::Value;

use super::field::q;
use super::names::{dns1123_label, dns1123_subdomain, port_num, push_msgs};
use super::{int, str_at, FieldError};

/// An APIService's name is `<version>.<group>`; group and version are DNS names, the
/// priorities in range, and a local APIService (no service) has no CA bundle or TLS skip.
pub(super) fn validate_api_service(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let group = str_at(&spec, "group").unwrap_or("");
    let version = str_at(&spec, "version").unwrap_or("");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let required = format!("{version}.{group}");
    if !name.is_empty() && name != required {
        errs.push(FieldError::invalid(
            "metadata.name",
            &q(name),
            &format!("must be `spec.version+\".\"+spec.group`: {}", q(&required)),
        ));
    }
    if group.is_empty() && version != "v1" {
        errs.push(FieldError::required(
            "spec.group",
            "only v1 may have an empty group and it better be legacy kube",
        ));
    }
    if !group.is_empty() {
        push_msgs(errs, "spec.group", group, dns1123_subdomain(group));
    }
    let mut version_msgs = dns1123_label(version);
    if version_msgs.is_empty() && !version.starts_with(|c: char| c.is_ascii_lowercase()) {
        version_msgs.push("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".into());
    }
    push_msgs(errs, "spec.version", version, version_msgs);
    let gpm = int(spec.get("groupPriorityMinimum")).unwrap_or(0);
    if gpm <= 0 || gpm > 20000 {
        errs.push(FieldError::invalid(
            "spec.groupPriorityMinimum",
            &gpm.to_string(),
            "must be positive and less than 20000",
        ));
    }
    let vp = int(spec.get("versionPriority")).unwrap_or(0);
    if vp <= 0 || vp > 1000 {
        errs.push(FieldError::invalid(
            "spec.versionPriority",
            &vp.to_string(),
            "must be positive and less than 1000",
        ));
    }
    let ca = str_at(&spec, "caBundle").unwrap_or("");
    let skip = spec
        .get("insecureSkipTLSVerify")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match spec.get("service").filter(|s| s.is_object()) {
        None => {
            if !ca.is_empty() {
                errs.push(FieldError::invalid(
                    "spec.caBundle",
                    &q(&format!("{} bytes", ca.len() / 4 * 3)),
                    "local APIServices may not have a caBundle",
                ));
            }
            if skip {
                errs.push(FieldError::invalid(
                    "spec.insecureSkipTLSVerify",
                    "true",
                    "local APIServices may not have insecureSkipTLSVerify",
                ));
            }
        }
        Some(svc) => {
            if str_at(svc, "namespace").unwrap_or("").is_empty() {
                errs.push(FieldError::required("spec.service.namespace", ""));
            }
            if str_at(svc, "name").unwrap_or("").is_empty() {
                errs.push(FieldError::required("spec.service.name", ""));
            }
            let port = int(svc.get("port")).unwrap_or(443);
            for m in port_num(port) {
                errs.push(FieldError::invalid(
                    "spec.service.port",
                    &port.to_string(),
                    &m,
                ));
            }
            if skip && !ca.is_empty() {
                errs.push(FieldError::invalid(
                    "spec.insecureSkipTLSVerify",
                    "true",
                    "may not be true if caBundle is present",
                ));
            }
        }
    }
}
