//! Services (`ValidateService`, `ValidateServiceUpdate` of `pkg/apis/core/validation`): type,
//! cluster IPs and IP families, ports, node ports, external names and traffic policies.

use std::collections::HashSet;

use serde_json::Value;

use super::field::q;
use super::names::{
    dns1123_label, dns1123_subdomain, ip_errors, port_name, port_num, push_msgs, qualified_name,
    validate_labels,
};
use super::pod::protocol;
use super::{arr, int, str_at, FieldError};

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
}
