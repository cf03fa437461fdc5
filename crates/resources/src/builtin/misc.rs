//! The small groups: events.k8s.io, certificates.k8s.io, policy, scheduling.k8s.io,
//! coordination.k8s.io, node.k8s.io and discovery.k8s.io (all v1).

use serde_json::{json, Map, Value};

use super::core::{event_columns, event_row};
use super::strategies::*;
use super::BASE;
use crate::columns::{age, age_col, col, name, name_col, scalar_text, TableRow};
use crate::defaults;
use crate::duration::human_duration;
use crate::jsonpath::s;
use crate::validation;
use crate::Basic;
use crate::StrategyRef;
use crate::{field, Convert, NameRule, ResourceKind, StorageAlias, Subresource, SubresourceRole};

pub(super) fn events() -> Vec<ResourceKind> {
    vec![ResourceKind {
        group: "events.k8s.io",
        kind: "Event",
        create_on_update: true,
        name_rule: NameRule::PathSegment,
        plural: "events",
        singular: "event",
        short_names: &["ev"],
        // Upstream's events.k8s.io field label conversion, onto the core/v1 form stored.
        selectable_fields: const {
            &[
                field("regarding.kind", "involvedObject.kind"),
                field("regarding.namespace", "involvedObject.namespace"),
                field("regarding.name", "involvedObject.name"),
                field("regarding.uid", "involvedObject.uid"),
                field("regarding.apiVersion", "involvedObject.apiVersion"),
                field(
                    "regarding.resourceVersion",
                    "involvedObject.resourceVersion",
                ),
                field("regarding.fieldPath", "involvedObject.fieldPath"),
                field("reason", "reason"),
                field("reportingController", "reportingComponent"),
                field("source", "source.component"),
                field("type", "type"),
            ]
        },
        columns: event_columns,
        row: |o, now| event_row(&events_v1_to_core_event(o), now),
        // Go writes these structs even when empty (`omitempty` does not omit structs).
        always_emitted: r#"{"eventTime":null,"regarding":{},"deprecatedSource":{},"deprecatedFirstTimestamp":null,"deprecatedLastTimestamp":null}"#,
        // One collection for both Event APIs, as upstream's single event registry.
        storage: Some(StorageAlias {
            group: "",
            version: "v1",
            plural: "events",
            to_storage: Convert::Fn(events_v1_to_core_event),
            from_storage: Convert::Fn(core_event_to_events_v1),
        }),
        ..BASE
    }]
}

/// events.k8s.io/v1 field and the core/v1 field it is (upstream's pkg/apis/events/v1
/// conversion through the internal Event).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingController", "reportingComponent"),
    ("reportingInstance", "reportingInstance"),
    ("action", "action"),
    ("reason", "reason"),
    ("regarding", "involvedObject"),
    ("related", "related"),
    ("note", "message"),
    ("type", "type"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Copies the mapped fields of `o` into a new object of `api_version`. Go leaves out empty
/// strings and zero counts of `omitempty` fields and always writes the others (`always`,
/// with their zero value when the source has none), so a converted object reads as
/// upstream would encode it. Fields without a counterpart do not exist: both types carry
/// the same information.
fn convert_event(
    o: &Value,
    api_version: &str,
    pairs: impl Iterator<Item = (&'static str, &'static str)>,
    always: &[(&str, Value)],
) -> Value {
    let mut m = Map::new();
    m.insert("apiVersion".into(), json!(api_version));
    m.insert("kind".into(), json!("Event"));
    if let Some(meta) = o.get("metadata") {
        m.insert("metadata".into(), meta.clone());
    }
    for (from, to) in pairs {
        let Some(v) = o.get(from) else { continue };
        let zero = v.as_str() == Some("") || v.as_i64() == Some(0);
        if zero && !always.iter().any(|(f, _)| *f == to) {
            continue;
        }
        m.insert(to.into(), v.clone());
    }
    for (f, z) in always {
        if m.get(*f).is_none_or(Value::is_null) {
            m.insert((*f).into(), z.clone());
        }
    }
    Value::Object(m)
}

/// An events.k8s.io/v1 Event as the core/v1 Event upstream stores and serves for it.
pub fn events_v1_to_core_event(o: &Value) -> Value {
    convert_event(
        o,
        "v1",
        EVENT_FIELDS.iter().copied(),
        &[
            ("involvedObject", json!({})),
            ("source", json!({})),
            ("reportingComponent", json!("")),
            ("reportingInstance", json!("")),
        ],
    )
}

/// A core/v1 Event as events.k8s.io/v1 serves it.
pub fn core_event_to_events_v1(o: &Value) -> Value {
    convert_event(
        o,
        "events.k8s.io/v1",
        EVENT_FIELDS.iter().map(|&(v1, core)| (core, v1)),
        &[("regarding", json!({})), ("deprecatedSource", json!({}))],
    )
}

pub(super) fn certificates() -> Vec<ResourceKind> {
    vec![ResourceKind {
        group: "certificates.k8s.io",
        kind: "CertificateSigningRequest",
        name_rule: NameRule::PathSegment,
        always_emitted: r#"{"status":{}}"#,
        plural: "certificatesigningrequests",
        singular: "certificatesigningrequest",
        namespaced: false,
        short_names: &["csr"],
        status: true,
        // Upstream's approval strategy: only the conditions change through it.
        extra_subresources: &[Subresource {
            name: "approval",
            response: None,
            verbs: &["get", "patch", "update"],
            role: SubresourceRole::Part("/status/conditions"),
        }],
        selectable_fields: const { &[field("spec.signerName", "spec.signerName")] },
        columns: || {
            vec![
                name_col(),
                age_col(),
                col("SignerName", "string", "signerName indicates the requested signer, and is a qualified name."),
                col("Requestor", "string", "request contains an x509 certificate signing request encoded in a \"CERTIFICATE REQUEST\" PEM block."),
                col("RequestedDuration", "string", "expirationSeconds is the requested duration of validity of the issued certificate."),
                col("Condition", "string", "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\"."),
            ]
        },
        row: csr_row,
        strategy: StrategyRef::Static(&CsrStrategy),
        ..BASE
    }]
}

/// `printCertificateSigningRequest` with `extractCSRStatus`.
fn csr_row(o: &Value, now: i64) -> TableRow {
    let (mut approved, mut denied, mut failed) = (false, false, false);
    for c in o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        match s(c, "/type") {
            "Approved" => approved = true,
            "Denied" => denied = true,
            "Failed" => failed = true,
            _ => {}
        }
    }
    let mut status = if denied {
        "Denied".to_string()
    } else if approved {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if failed {
        status.push_str(",Failed");
    }
    if !s(o, "/status/certificate").is_empty() {
        status.push_str(",Issued");
    }
    let duration = match o.pointer("/spec/expirationSeconds").and_then(Value::as_i64) {
        Some(secs) => human_duration(secs),
        None => "<none>".into(),
    };
    let signer = match s(o, "/spec/signerName") {
        "" => "<none>",
        v => v,
    };
    vec![
        name(o),
        age(o, now),
        json!(signer),
        json!(s(o, "/spec/username")),
        json!(duration),
        json!(status),
    ]
}

pub(super) fn policy() -> Vec<ResourceKind> {
    vec![ResourceKind {
        group: "policy",
        kind: "PodDisruptionBudget",
        name_rule: NameRule::PathSegment,
        always_emitted: r#"{"status":{"disruptionsAllowed":0,"currentHealthy":0,"desiredHealthy":0,"expectedPods":0}}"#,
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        short_names: &["pdb"],
        status: true,
        generation: true,
        columns: || {
            vec![
                name_col(),
                col(
                    "Min Available",
                    "string",
                    "The minimum number of pods that must be available.",
                ),
                col(
                    "Max Unavailable",
                    "string",
                    "The maximum number of pods that may be unavailable.",
                ),
                col(
                    "Allowed Disruptions",
                    "integer",
                    "Calculated number of pods that may be disrupted at this time.",
                ),
                age_col(),
            ]
        },
        row: |o, now| {
            let or_na = |p: &str| scalar_text(o.pointer(p)).unwrap_or_else(|| "N/A".into());
            vec![
                name(o),
                json!(or_na("/spec/minAvailable")),
                json!(or_na("/spec/maxUnavailable")),
                json!(o
                    .pointer("/status/disruptionsAllowed")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)),
                age(o, now),
            ]
        },
        ..BASE
    }]
}

pub(super) fn scheduling() -> Vec<ResourceKind> {
    vec![ResourceKind {
        group: "scheduling.k8s.io",
        kind: "PriorityClass",
        always_emitted: r#"{"value":0}"#,
        plural: "priorityclasses",
        singular: "priorityclass",
        namespaced: false,
        short_names: &["pc"],
        columns: || {
            vec![
                name_col(),
                col("Value", "integer", "value represents the integer value of this priority class."),
                col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class."),
                age_col(),
                col("PreemptionPolicy", "string", "preemptionPolicy is the Policy for preempting pods with lower priority."),
            ]
        },
        row: |o, now| {
            vec![
                name(o),
                json!(o.get("value").and_then(Value::as_i64).unwrap_or(0)),
                json!(o
                    .get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)),
                age(o, now),
                json!(s(o, "/preemptionPolicy")),
            ]
        },
        strategy: StrategyRef::Static(
            const {
                &Basic {
                    defaults: defaults::priority_class,
                    validate: validation::priority_class,
                }
            },
        ),
        ..BASE
    }]
}

pub(super) fn coordination() -> Vec<ResourceKind> {
    vec![ResourceKind {
        group: "coordination.k8s.io",
        kind: "Lease",
        create_on_update: true,
        plural: "leases",
        singular: "lease",
        columns: || {
            vec![
                name_col(),
                col(
                    "Holder",
                    "string",
                    "holderIdentity contains the identity of the holder of a current lease.",
                ),
                age_col(),
            ]
        },
        row: |o, now| vec![name(o), json!(s(o, "/spec/holderIdentity")), age(o, now)],
        strategy: StrategyRef::Static(const { &Basic::validated(validation::lease) }),
        ..BASE
    }]
}

pub(super) fn node() -> Vec<ResourceKind> {
    vec![ResourceKind {
        group: "node.k8s.io",
        kind: "RuntimeClass",
        create_on_update: true,
        plural: "runtimeclasses",
        singular: "runtimeclass",
        namespaced: false,
        columns: || {
            vec![
                name_col(),
                col("Handler", "string", "handler specifies the underlying runtime and configuration that the CRI implementation will use to handle pods of this class."),
                age_col(),
            ]
        },
        row: |o, now| vec![name(o), json!(s(o, "/handler")), age(o, now)],
        ..BASE
    }]
}

pub(super) fn discovery() -> Vec<ResourceKind> {
    vec![ResourceKind {
        group: "discovery.k8s.io",
        kind: "EndpointSlice",
        always_emitted: r#"{"endpoints":null,"ports":null}"#,
        plural: "endpointslices",
        singular: "endpointslice",
        generation: true,
        generation_fields: &["/addressType", "/endpoints", "/ports", "/metadata/labels"],
        columns: || {
            vec![
                name_col(),
                col("AddressType", "string", "addressType specifies the type of address carried by this EndpointSlice."),
                col("Ports", "string", "ports specifies the list of network ports exposed by each endpoint in this slice."),
                col("Endpoints", "string", "endpoints is a list of unique endpoints in this slice."),
                age_col(),
            ]
        },
        row: endpoint_slice_row,
        strategy: StrategyRef::Static(const { &Basic::defaults(defaults::endpoint_slice) }),
        ..BASE
    }]
}

/// `listWithMoreString`: up to three, `+ N more...`, `<unset>` when empty.
fn list_with_more(list: Vec<String>, count: usize) -> String {
    let max = 3;
    let shown: Vec<String> = list.into_iter().take(max).collect();
    let ret = shown.join(",");
    if count > max {
        format!("{ret} + {} more...", count - max)
    } else if ret.is_empty() {
        "<unset>".into()
    } else {
        ret
    }
}

fn endpoint_slice_row(o: &Value, now: i64) -> TableRow {
    let ports: Vec<String> = o
        .get("ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| match p.get("port").and_then(Value::as_i64) {
                    Some(n) => n.to_string(),
                    None => p
                        .get("name")
                        .and_then(Value::as_str)
                        .map(String::from)
                        .unwrap_or_else(|| "*".into()),
                })
                .collect()
        })
        .unwrap_or_default();
    let port_count = ports.len();
    let addrs: Vec<String> = o
        .get("endpoints")
        .and_then(Value::as_array)
        .map(|es| {
            es.iter()
                .flat_map(|e| {
                    e.get("addresses")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|a| a.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let addr_count = addrs.len();
    vec![
        name(o),
        json!(s(o, "/addressType")),
        json!(list_with_more(ports, port_count)),
        json!(list_with_more(addrs, addr_count)),
        age(o, now),
    ]
}

#[cfg(test)]
mod event_conversion {
    use super::*;

    fn events_v1() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "e1", "namespace": "default", "managedFields": [{"apiVersion": "events.k8s.io/v1", "manager": "m"}]},
            "eventTime": "2024-01-02T03:04:05.000006Z",
            "series": {"count": 3, "lastObservedTime": "2024-01-02T03:05:00.000000Z"},
            "reportingController": "example.com/ctl",
            "reportingInstance": "ctl-1",
            "action": "Scale",
            "reason": "Scaled",
            "regarding": {"kind": "Deployment", "name": "web", "namespace": "default", "apiVersion": "apps/v1"},
            "related": {"kind": "ReplicaSet", "name": "web-1"},
            "note": "scaled up",
            "type": "Normal",
            "deprecatedSource": {"component": "ctl", "host": "h"},
            "deprecatedFirstTimestamp": "2024-01-02T03:04:05Z",
            "deprecatedLastTimestamp": "2024-01-02T03:05:00Z",
            "deprecatedCount": 3
        })
    }

    #[test]
    fn events_v1_maps_onto_core() {
        let core = events_v1_to_core_event(&events_v1());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["kind"], "Event");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["related"]["name"], "web-1");
        assert_eq!(core["message"], "scaled up");
        assert_eq!(core["reportingComponent"], "example.com/ctl");
        assert_eq!(core["source"]["component"], "ctl");
        assert_eq!(core["firstTimestamp"], "2024-01-02T03:04:05Z");
        assert_eq!(core["lastTimestamp"], "2024-01-02T03:05:00Z");
        assert_eq!(core["count"], 3);
        assert_eq!(core["series"]["count"], 3);
        assert_eq!(core["action"], "Scale");
        // managedFields entries keep the apiVersion they were written with.
        assert_eq!(
            core["metadata"]["managedFields"][0]["apiVersion"],
            "events.k8s.io/v1"
        );
        assert!(core.get("note").is_none() && core.get("regarding").is_none());
    }

    #[test]
    fn round_trips() {
        let v1 = events_v1();
        assert_eq!(core_event_to_events_v1(&events_v1_to_core_event(&v1)), v1);
        let core = events_v1_to_core_event(&v1);
        assert_eq!(
            events_v1_to_core_event(&core_event_to_events_v1(&core)),
            core
        );
    }

    #[test]
    fn zero_values_as_go_encodes_them() {
        // A core Event with only what a kubelet-style recorder sets.
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e2"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "Started", "message": "", "count": 0,
            "reportingComponent": "", "reportingInstance": ""
        });
        let v1 = core_event_to_events_v1(&core);
        assert_eq!(
            v1,
            json!({
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "e2"},
                "regarding": {"kind": "Pod", "name": "p"},
                "reason": "Started",
                "deprecatedSource": {}
            })
        );
        let back = events_v1_to_core_event(&v1);
        assert_eq!(back["reportingComponent"], "");
        assert_eq!(back["source"], json!({}));
        assert!(back.get("count").is_none() && back.get("message").is_none());
    }
}
