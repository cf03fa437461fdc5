//! The legacy group apart from pods (`pkg/apis/core/validation`): Services, ConfigMaps,
//! Secrets, Namespaces, PodTemplates and ReplicationControllers.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use super::field::{go_string_map, q, IMMUTABLE};
use super::names::{
    config_map_key, dns1123_label, dns1123_subdomain, ip_errors, port_name, port_num, push_msgs,
    qualified_name, validate_labels,
};
use super::pod::{nonnegative, protocol, restart_policy, validate_pod_template, PodOpts};
use super::{arr, int, str_at, FieldError};

/// `core.MaxSecretSize`.
const MAX_SIZE: usize = 1024 * 1024;

fn normalized_cluster_ips(spec: &Value) -> Vec<String> {
    let mut ips: Vec<String> = arr(spec.get("clusterIPs"))
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect();
    let ip = str_at(spec, "clusterIP").unwrap_or("");
    if ips.is_empty() && !ip.is_empty() {
        ips.push(ip.to_string());
    }
    ips
}

fn service_type(spec: &Value) -> &str {
    str_at(spec, "type")
        .filter(|t| !t.is_empty())
        .unwrap_or("ClusterIP")
}

fn go_slice(v: &[String]) -> String {
    let parts: Vec<String> = v.iter().map(|s| q(s)).collect();
    format!("[]string{{{}}}", parts.join(", "))
}

/// `%#v` of the `core.ServicePort{Protocol, Port}` key upstream reports for duplicates.
fn go_service_port_key(protocol: &str, port: i64) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        q(protocol)
    )
}

/// `ValidateService` and, on update, `ValidateServiceUpdate`.
pub fn validate_service(svc: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let null = Value::Null;
    let spec = svc.get("spec").unwrap_or(&null);
    let ty = service_type(spec);
    let ips = normalized_cluster_ips(spec);
    let headless = ips.len() == 1 && ips[0] == "None";
    let ports = arr(spec.get("ports"));

    if let Some(old) = old {
        let old_spec = old.get("spec").unwrap_or(&null);
        update_cluster_ips(old_spec, spec, errs);
        let old_ty = service_type(old_spec);
        if ty == "LoadBalancer" && old_ty == "LoadBalancer" {
            let (a, b) = (
                old_spec.get("loadBalancerClass"),
                spec.get("loadBalancerClass"),
            );
            if a.filter(|v| !v.is_null()) != b.filter(|v| !v.is_null()) {
                errs.push(FieldError::invalid(
                    "spec.loadBalancerClass",
                    &b.and_then(Value::as_str).map(q).unwrap_or("null".into()),
                    "may not change once set",
                ));
            }
        }
    }

    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    match ty {
        "LoadBalancer" | "NodePort" if headless => errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            &q(&ips[0]),
            &format!("may not be set to 'None' for {ty} services"),
        )),
        "ExternalName" => {
            if !ips.is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            if !arr(spec.get("ipFamilies")).is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.ipFamilies",
                    "may not be set for ExternalName services",
                ));
            }
            if spec.get("ipFamilyPolicy").is_some_and(|v| !v.is_null()) {
                errs.push(FieldError::forbidden(
                    "spec.ipFamilyPolicy",
                    "may not be set for ExternalName services",
                ));
            }
            let cname = str_at(spec, "externalName").unwrap_or("");
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                push_msgs(errs, "spec.externalName", cname, dns1123_subdomain(cname));
            }
        }
        _ => {}
    }

    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let idx = format!("spec.ports[{i}]");
        let name = str_at(p, "name").unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(format!("{idx}.name"), ""));
        } else if !name.is_empty() {
            push_msgs(errs, &format!("{idx}.name"), name, dns1123_label(name));
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(format!("{idx}.name"), &q(name)));
            }
        }
        let port = int(p.get("port")).unwrap_or(0);
        for m in port_num(port) {
            errs.push(FieldError::invalid(
                format!("{idx}.port"),
                &port.to_string(),
                &m,
            ));
        }
        protocol(p, &format!("{idx}.protocol"), errs);
        match p.get("targetPort") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                push_msgs(errs, &format!("{idx}.targetPort"), s, port_name(s))
            }
            Some(v) => {
                let n = v.as_i64().unwrap_or(0);
                for m in port_num(n) {
                    errs.push(FieldError::invalid(
                        format!("{idx}.targetPort"),
                        &n.to_string(),
                        &m,
                    ));
                }
            }
        }
        if let Some(ap) = str_at(p, "appProtocol") {
            push_msgs(errs, &format!("{idx}.appProtocol"), ap, qualified_name(ap));
        }
    }

    validate_labels(spec.get("selector"), "spec.selector", errs);

    match spec.get("sessionAffinity").filter(|v| !v.is_null()) {
        None => {}
        Some(v) => match v.as_str().unwrap_or("") {
            "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
            "ClientIP" => {
                if let Some(t) = int(spec.pointer("/sessionAffinityConfig/clientIP/timeoutSeconds"))
                {
                    if t <= 0 || t > 86400 {
                        errs.push(FieldError::invalid(
                            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                            &t.to_string(),
                            "must be greater than 0 and less than 86400",
                        ));
                    }
                }
            }
            "None" => {
                if spec
                    .get("sessionAffinityConfig")
                    .is_some_and(|v| !v.is_null())
                {
                    errs.push(FieldError::forbidden(
                        "spec.sessionAffinityConfig",
                        "must not be set when session affinity is None",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                "spec.sessionAffinity",
                &q(other),
                &["ClientIP", "None"],
            )),
        },
    }

    if ty != "ExternalName" {
        cluster_ips_related(spec, &ips, headless, errs);
    }
    for (i, ip) in arr(spec.get("externalIPs")).iter().enumerate() {
        errs.extend(ip_errors(
            &format!("spec.externalIPs[{i}]"),
            ip.as_str().unwrap_or(""),
        ));
    }
    match spec
        .get("type")
        .filter(|v| !v.is_null())
        .and_then(Value::as_str)
    {
        Some("") => errs.push(FieldError::required("spec.type", "")),
        Some(t)
            if !matches!(
                t,
                "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
            ) =>
        {
            errs.push(FieldError::not_supported(
                "spec.type",
                &q(t),
                &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
            ))
        }
        _ => {}
    }
    if ty == "ClusterIP" {
        for (i, p) in ports.iter().enumerate() {
            if int(p.get("nodePort")).unwrap_or(0) != 0 {
                errs.push(FieldError::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = HashSet::new();
    let mut port_keys = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let proto = str_at(p, "protocol").unwrap_or("TCP");
        let np = int(p.get("nodePort")).unwrap_or(0);
        if np != 0 && !node_ports.insert((proto.to_string(), np)) {
            errs.push(FieldError::duplicate(
                format!("spec.ports[{i}].nodePort"),
                &np.to_string(),
            ));
        }
    }
    for (i, p) in ports.iter().enumerate() {
        let proto = str_at(p, "protocol").unwrap_or("TCP");
        let port = int(p.get("port")).unwrap_or(0);
        if !port_keys.insert((proto.to_string(), port)) {
            errs.push(FieldError::duplicate(
                format!("spec.ports[{i}]"),
                &go_service_port_key(proto, port),
            ));
        }
    }
    let lb = ty == "LoadBalancer";
    if !arr(spec.get("loadBalancerSourceRanges")).is_empty() && !lb {
        errs.push(FieldError::forbidden(
            "spec.LoadBalancerSourceRanges",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    for key in ["allocateLoadBalancerNodePorts", "loadBalancerClass"] {
        if spec.get(key).is_some_and(|v| !v.is_null()) && !lb {
            errs.push(FieldError::forbidden(
                format!("spec.{key}"),
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
    }
    if lb {
        if let Some(class) = str_at(spec, "loadBalancerClass") {
            push_msgs(errs, "spec.loadBalancerClass", class, qualified_name(class));
        }
    }
    let externally_accessible =
        lb || ty == "NodePort" || (ty == "ClusterIP" && !arr(spec.get("externalIPs")).is_empty());
    // Upstream's update strategy drops an unchanged policy when the service stops being
    // externally accessible (`dropTypeDependentFields`).
    let dropped_on_update = old.is_some_and(|o| {
        o.pointer("/spec/externalTrafficPolicy") == spec.get("externalTrafficPolicy")
    });
    if let Some(etp) = str_at(spec, "externalTrafficPolicy").filter(|s| !s.is_empty()) {
        if !externally_accessible && dropped_on_update {
            // Accepted: the stored object keeps what the server would have dropped.
        } else if !externally_accessible {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                &q(etp),
                "may only be set for externally-accessible services",
            ));
        } else if etp != "Cluster" && etp != "Local" {
            errs.push(FieldError::not_supported(
                "spec.externalTrafficPolicy",
                &q(etp),
                &["Cluster", "Local"],
            ));
        }
    }
    if let Some(itp) = str_at(spec, "internalTrafficPolicy") {
        if itp != "Cluster" && itp != "Local" {
            errs.push(FieldError::not_supported(
                "spec.internalTrafficPolicy",
                &q(itp),
                &["Cluster", "Local"],
            ));
        }
    }
    if let Some(td) = str_at(spec, "trafficDistribution") {
        if !matches!(td, "PreferClose" | "PreferSameZone" | "PreferSameNode") {
            errs.push(FieldError::not_supported(
                "spec.trafficDistribution",
                &q(td),
                &["PreferClose"],
            ));
        }
    }
}

/// `ValidateServiceClusterIPsRelatedFields`.
fn cluster_ips_related(spec: &Value, ips: &[String], headless: bool, errs: &mut Vec<FieldError>) {
    let ip = str_at(spec, "clusterIP").unwrap_or("");
    let given: Vec<String> = arr(spec.get("clusterIPs"))
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect();
    if !ip.is_empty() {
        if !given.is_empty() && given[0] != ip {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                &go_slice(&given),
                "first value must match `clusterIP`",
            ));
        }
    } else if !given.is_empty() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            &go_slice(&given),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let mut seen = HashSet::new();
    for (i, f) in arr(spec.get("ipFamilies")).iter().enumerate() {
        let f = f.as_str().unwrap_or("");
        if f != "IPv4" && f != "IPv6" {
            errs.push(FieldError::not_supported(
                format!("spec.ipFamilies[{i}]"),
                &q(f),
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(f.to_string()) {
            errs.push(FieldError::duplicate(
                format!("spec.ipFamilies[{i}]"),
                &q(f),
            ));
        }
    }
    if let Some(p) = str_at(spec, "ipFamilyPolicy") {
        if !matches!(p, "SingleStack" | "PreferDualStack" | "RequireDualStack") {
            errs.push(FieldError::not_supported(
                "spec.ipFamilyPolicy",
                &q(p),
                &["PreferDualStack", "RequireDualStack", "SingleStack"],
            ));
        }
    }
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                errs.push(FieldError::invalid(
                    "spec.clusterIPs",
                    &go_slice(ips),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        errs.extend(ip_errors(&format!("spec.clusterIPs[{i}]"), ip));
    }
    if ips.len() > 2 {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            &go_slice(ips),
            "may only hold up to 2 values",
        ));
    }
    let _ = headless;
}

/// `validateUpgradeDowngradeClusterIPs`: allocated cluster IPs may not change.
fn update_cluster_ips(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    if service_type(old) == "ExternalName" || service_type(new) == "ExternalName" {
        return;
    }
    let (a, b) = (normalized_cluster_ips(old), normalized_cluster_ips(new));
    let headless = |v: &[String]| v.len() == 1 && v[0] == "None";
    if headless(&a) && headless(&b) {
        return;
    }
    let changed = |errs: &mut Vec<FieldError>, i: usize| {
        errs.push(FieldError::invalid(
            format!("spec.clusterIPs[{i}]"),
            &go_slice(&b),
            "may not change once set",
        ))
    };
    if a.len() == b.len() {
        for i in 0..a.len() {
            if a[i] != b[i] {
                changed(errs, i);
            }
        }
    } else if a.len() > b.len() {
        if b.is_empty() {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                &go_slice(&b),
                "primary clusterIP can not be unset",
            ));
        } else if b[0] != a[0] {
            changed(errs, 0);
        }
    } else if !a.is_empty() && b[0] != a[0] {
        changed(errs, 0);
    }
}

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
    fn services() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"spec": {}}), "spec.ports", "Required value"),
            (
                json!({"spec": {"ports": [{"port": 0}]}}),
                "spec.ports[0].port",
                "Invalid value: 0: must be between 1 and 65535, inclusive",
            ),
            (
                json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}}),
                "spec.ports[0].name",
                "Required value",
            ),
            (
                json!({"spec": {"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}}),
                "spec.ports[1].name",
                "Duplicate value: \"a\"",
            ),
            (
                json!({"spec": {"ports": [{"port": 80, "protocol": "ICMP"}]}}),
                "spec.ports[0].protocol",
                "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ),
            (
                json!({"spec": {"type": "Magic", "ports": [{"port": 80}]}}),
                "spec.type",
                "Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ),
            (
                json!({"spec": {"ports": [{"port": 80, "targetPort": 0}]}}),
                "spec.ports[0].targetPort",
                "Invalid value: 0: must be between 1 and 65535, inclusive",
            ),
            (
                json!({"spec": {"ports": [{"port": 80, "targetPort": "HTTP"}]}}),
                "spec.ports[0].targetPort",
                "Invalid value: \"HTTP\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            ),
            (
                json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30080}]}}),
                "spec.ports[0].nodePort",
                "Forbidden: may not be used when `type` is 'ClusterIP'",
            ),
            (
                json!({"spec": {"ports": [{"port": 80}], "selector": {"app": "-bad"}}}),
                "spec.selector",
                "Invalid value: \"-bad\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ),
            (
                json!({"spec": {"type": "ExternalName"}}),
                "spec.externalName",
                "Required value",
            ),
            (
                json!({"spec": {"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}}),
                "spec.clusterIPs[0]",
                "Invalid value: \"None\": may not be set to 'None' for NodePort services",
            ),
            (
                json!({"spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}}),
                "spec.ports[1]",
                "Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
            ),
            (
                json!({"spec": {"ports": [{"port": 80}], "sessionAffinity": "Sticky"}}),
                "spec.sessionAffinity",
                "Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
            ),
            (
                json!({"spec": {"ports": [{"port": 80}], "clusterIP": "10.0.0.300"}}),
                "spec.clusterIPs[0]",
                "Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ),
        ];
        for (svc, field, message) in cases {
            let mut errs = Vec::new();
            validate_service(&svc, None, &mut errs);
            assert!(has(&errs, field, message), "{svc}: {errs:?}");
        }
        // Headless services need no ports.
        let mut errs = Vec::new();
        validate_service(&json!({"spec": {"clusterIP": "None"}}), None, &mut errs);
        assert_eq!(errs, vec![]);
    }

    #[test]
    fn service_cluster_ip_is_immutable() {
        let old = json!({"spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 80}]}});
        let new = json!({"spec": {"clusterIP": "10.96.0.11", "clusterIPs": ["10.96.0.11"], "ports": [{"port": 80}]}});
        let mut errs = Vec::new();
        validate_service(&new, Some(&old), &mut errs);
        assert!(has(
            &errs,
            "spec.clusterIPs[0]",
            "Invalid value: []string{\"10.96.0.11\"}: may not change once set"
        ));
        let mut errs = Vec::new();
        validate_service(&old, Some(&old), &mut errs);
        assert_eq!(errs, vec![]);
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
