//! networking.k8s.io/v1 (IPAddress and ServiceCIDR are GA and on by default in 1.33).

use serde_json::{json, Value};

use super::core::load_balancer_ips;
use super::BASE;
use crate::columns::{age, age_col, col, name, name_col, str_or, TableRow};
use crate::defaults;
use crate::jsonpath::s;
use crate::labels::format_label_selector;
use crate::Basic;
use crate::StrategyRef;
use crate::{NameRule, ResourceKind};

const NET: ResourceKind = ResourceKind {
    group: "networking.k8s.io",
    ..BASE
};

pub(super) fn kinds() -> Vec<ResourceKind> {
    vec![
        ResourceKind {
            kind: "IngressClass",
            plural: "ingressclasses",
            singular: "ingressclass",
            namespaced: false,
            generation: true,
            columns: || {
                vec![
                    name_col(),
                    col(
                        "Controller",
                        "string",
                        "Controller that is responsible for handling this class",
                    ),
                    col(
                        "Parameters",
                        "string",
                        "A reference to a resource with additional parameters",
                    ),
                    age_col(),
                ]
            },
            row: |o, now| {
                let params = match o.pointer("/spec/parameters") {
                    Some(p) if p.is_object() => {
                        let mut k = s(p, "/kind").to_string();
                        if let Some(g) = p.get("apiGroup").and_then(Value::as_str) {
                            k = format!("{k}.{g}");
                        }
                        format!("{k}/{}", s(p, "/name"))
                    }
                    _ => "<none>".into(),
                };
                vec![
                    name(o),
                    json!(s(o, "/spec/controller")),
                    json!(params),
                    age(o, now),
                ]
            },
            strategy: StrategyRef::Static(const { &Basic::defaults(defaults::ingress_class) }),
            ..NET
        },
        ResourceKind {
            kind: "Ingress",
            always_emitted: r#"{"status":{"loadBalancer":{}}}"#,
            plural: "ingresses",
            singular: "ingress",
            short_names: &["ing"],
            status: true,
            generation: true,
            columns: || {
                vec![
                    name_col(),
                    col("Class", "string", "The name of the IngressClass resource that should be used for additional configuration"),
                    col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
                    col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
                    col("Ports", "string", "Ports of TLS configurations that open"),
                    age_col(),
                ]
            },
            row: ingress_row,
            ..NET
        },
        ResourceKind {
            kind: "IPAddress",
            name_rule: NameRule::IpAddress,
            plural: "ipaddresses",
            singular: "ipaddress",
            namespaced: false,
            short_names: &["ip"],
            // Upstream's printer declares no AGE column (its cell is dropped).
            columns: || {
                vec![
                    name_col(),
                    col(
                        "ParentRef",
                        "string",
                        "ParentRef references the resource that an IPAddress is attached to.",
                    ),
                ]
            },
            row: |o, _| {
                let parent = match o.pointer("/spec/parentRef") {
                    Some(p) if p.is_object() => {
                        let group = s(p, "/group");
                        let resource = s(p, "/resource");
                        let mut n = if group.is_empty() {
                            resource.to_lowercase()
                        } else {
                            format!("{resource}.{group}").to_lowercase()
                        };
                        if !s(p, "/namespace").is_empty() {
                            n = format!("{n}/{}", s(p, "/namespace"));
                        }
                        format!("{n}/{}", s(p, "/name"))
                    }
                    _ => "<none>".into(),
                };
                vec![name(o), json!(parent)]
            },
            ..NET
        },
        ResourceKind {
            kind: "NetworkPolicy",
            always_emitted: r#"{"spec":{"podSelector":{}}}"#,
            plural: "networkpolicies",
            singular: "networkpolicy",
            short_names: &["netpol"],
            generation: true,
            columns: || {
                vec![
                    name_col(),
                    col(
                        "Pod-Selector",
                        "string",
                        "Selects the pods to which this NetworkPolicy object applies.",
                    ),
                    age_col(),
                ]
            },
            row: |o, now| {
                vec![
                    name(o),
                    json!(format_label_selector(Some(
                        o.pointer("/spec/podSelector").unwrap_or(&json!({}))
                    ))),
                    age(o, now),
                ]
            },
            strategy: StrategyRef::Static(const { &Basic::defaults(defaults::network_policy) }),
            ..NET
        },
        ResourceKind {
            kind: "ServiceCIDR",
            always_emitted: r#"{"status":{}}"#,
            plural: "servicecidrs",
            singular: "servicecidr",
            namespaced: false,
            status: true,
            columns: || {
                vec![
                    name_col(),
                    col("CIDRs", "string", "CIDRs defines the IP blocks in CIDR notation (e.g. \"192.168.0.0/24\" or \"2001:db8::/64\") from which to assign service cluster IPs."),
                    age_col(),
                ]
            },
            row: |o, now| {
                let cidrs: Vec<&str> = o
                    .pointer("/spec/cidrs")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                vec![name(o), json!(cidrs.join(",")), age(o, now)]
            },
            ..NET
        },
    ]
}

/// `printIngress`.
fn ingress_row(o: &Value, now: i64) -> TableRow {
    let rules = o
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let max = 3;
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for r in rules {
        if hosts.len() == max {
            more = true;
        }
        let h = s(r, "/host");
        if !more && !h.is_empty() {
            hosts.push(h);
        }
    }
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - max)
    } else {
        hosts.join(",")
    };
    let tls = o
        .pointer("/spec/tls")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    vec![
        name(o),
        str_or(o, "/spec/ingressClassName", "<none>"),
        json!(hosts),
        json!(load_balancer_ips(o, "/status/loadBalancer/ingress")),
        json!(if tls { "80, 443" } else { "80" }),
        age(o, now),
    ]
}
