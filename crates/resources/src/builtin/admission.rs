//! The API-extension groups: admissionregistration.k8s.io/v1, apiextensions.k8s.io/v1
//! (CustomResourceDefinitions are stored and listed; their resources are not served yet) and
//! flowcontrol.apiserver.k8s.io/v1 (stored; this server does no priority and fairness).

use serde_json::{json, Value};

use super::BASE;
use crate::columns::{age, age_col, col, len_at, name, name_col, TableRow};
use crate::defaults;
use crate::jsonpath::s;
use crate::labels::label_selector_string;
use crate::validation;
use crate::Basic;
use crate::StrategyRef;
use crate::{NameRule, ResourceKind};

const ADMISSION: ResourceKind = ResourceKind {
    group: "admissionregistration.k8s.io",
    namespaced: false,
    categories: &["api-extensions"],
    ..BASE
};

pub(super) fn admissionregistration() -> Vec<ResourceKind> {
    let webhook_columns = || {
        vec![
            name_col(),
            col(
                "Webhooks",
                "integer",
                "Webhooks indicates the number of webhooks registered in this configuration",
            ),
            age_col(),
        ]
    };
    let webhook_row: fn(&Value, i64) -> TableRow =
        |o, now| vec![name(o), json!(len_at(o, "/webhooks")), age(o, now)];
    vec![
        ResourceKind {
            kind: "MutatingWebhookConfiguration",
            plural: "mutatingwebhookconfigurations",
            singular: "mutatingwebhookconfiguration",
            generation: true,
            generation_fields: &["/webhooks"],
            columns: webhook_columns,
            row: webhook_row,
            strategy: StrategyRef::Static(const { &Basic::defaults(defaults::mutating_webhooks) }),
            ..ADMISSION
        },
        ResourceKind {
            kind: "ValidatingAdmissionPolicy",
            always_emitted: r#"{"status":{}}"#,
            plural: "validatingadmissionpolicies",
            singular: "validatingadmissionpolicy",
            status: true,
            generation: true,
            columns: || {
                vec![
                    name_col(),
                    col("Validations", "integer", "Validations indicates the number of validation rules defined in this configuration"),
                    col("ParamKind", "string", "ParamKind specifies the kind of resources used to parameterize this policy"),
                    age_col(),
                ]
            },
            row: |o, now| {
                let param_kind = match o.pointer("/spec/paramKind") {
                    Some(p) if p.is_object() => {
                        format!("{}/{}", s(p, "/apiVersion"), s(p, "/kind"))
                    }
                    _ => "<unset>".into(),
                };
                vec![
                    name(o),
                    json!(len_at(o, "/spec/validations")),
                    json!(param_kind),
                    age(o, now),
                ]
            },
            strategy: StrategyRef::Static(
                const { &Basic::defaults(defaults::validating_admission_policy) },
            ),
            ..ADMISSION
        },
        ResourceKind {
            kind: "ValidatingAdmissionPolicyBinding",
            plural: "validatingadmissionpolicybindings",
            singular: "validatingadmissionpolicybinding",
            generation: true,
            columns: || {
                vec![
                    name_col(),
                    col("PolicyName", "string", "PolicyName indicates the policy definition which the policy binding binded to"),
                    col("ParamRef", "string", "ParamRef indicates the param resource which sets the configration param"),
                    age_col(),
                ]
            },
            row: |o, now| {
                let param = match o.pointer("/spec/paramRef") {
                    Some(p) if p.is_object() => {
                        let n = s(p, "/name");
                        let ns = s(p, "/namespace");
                        if !n.is_empty() {
                            if ns.is_empty() {
                                format!("*/{n}")
                            } else {
                                format!("{ns}/{n}")
                            }
                        } else if let Some(sel) = p.get("selector").filter(|v| v.is_object()) {
                            label_selector_string(sel)
                        } else {
                            "<unset>".into()
                        }
                    }
                    _ => "<unset>".into(),
                };
                vec![
                    name(o),
                    json!(s(o, "/spec/policyName")),
                    json!(param),
                    age(o, now),
                ]
            },
            strategy: StrategyRef::Static(
                const { &Basic::defaults(defaults::validating_admission_policy_binding) },
            ),
            ..ADMISSION
        },
        ResourceKind {
            kind: "ValidatingWebhookConfiguration",
            plural: "validatingwebhookconfigurations",
            singular: "validatingwebhookconfiguration",
            generation: true,
            generation_fields: &["/webhooks"],
            columns: webhook_columns,
            row: webhook_row,
            strategy: StrategyRef::Static(
                const { &Basic::defaults(defaults::validating_webhooks) },
            ),
            ..ADMISSION
        },
    ]
}

/// apiregistration.k8s.io/v1: APIServices are stored and validated, and their `Available`
/// condition is kept by the apiservice status controller; requests are not proxied to the
/// services they name yet.
pub(super) fn apiregistration() -> Vec<ResourceKind> {
    vec![ResourceKind {
        group: "apiregistration.k8s.io",
        kind: "APIService",
        plural: "apiservices",
        singular: "apiservice",
        namespaced: false,
        categories: &["api-extensions"],
        status: true,
        name_rule: NameRule::PathSegment,
        columns: || {
            vec![
                name_col(),
                col(
                    "Service",
                    "string",
                    "The reference to the service that hosts this API endpoint.",
                ),
                col("Available", "string", "Whether this service is available."),
                age_col(),
            ]
        },
        row: |o, now| {
            let service = match o.pointer("/spec/service") {
                Some(svc) if svc.is_object() => {
                    format!("{}/{}", s(svc, "/namespace"), s(svc, "/name"))
                }
                _ => "Local".into(),
            };
            let available = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Available"))
                .map(|c| match (s(c, "/status"), s(c, "/reason")) {
                    ("True", _) => "True".to_string(),
                    (st, "") => st.to_string(),
                    (st, r) => format!("{st} ({r})"),
                })
                .unwrap_or_else(|| "Unknown".into());
            vec![name(o), json!(service), json!(available), age(o, now)]
        },
        strategy: StrategyRef::Static(
            const {
                &Basic {
                    defaults: defaults::api_service,
                    validate: validation::api_service,
                }
            },
        ),
        ..BASE
    }]
}

pub(super) fn apiextensions() -> Vec<ResourceKind> {
    vec![ResourceKind {
        group: "apiextensions.k8s.io",
        kind: "CustomResourceDefinition",
        plural: "customresourcedefinitions",
        singular: "customresourcedefinition",
        namespaced: false,
        short_names: &["crd", "crds"],
        categories: &["api-extensions"],
        status: true,
        generation: true,
        strategy: StrategyRef::Static(&crate::custom::DefinitionStrategy),
        ..BASE
    }]
}

const FLOWCONTROL: ResourceKind = ResourceKind {
    group: "flowcontrol.apiserver.k8s.io",
    namespaced: false,
    status: true,
    generation: true,
    ..BASE
};

pub(super) fn flowcontrol() -> Vec<ResourceKind> {
    vec![
        ResourceKind {
            kind: "FlowSchema",
            always_emitted: r#"{"status":{}}"#,
            plural: "flowschemas",
            singular: "flowschema",
            columns: || {
                vec![
                    name_col(),
                    col("PriorityLevel", "string", "`name` is the name of the priority level configuration being referenced Required."),
                    col("MatchingPrecedence", "string", "`matchingPrecedence` is used to choose among the FlowSchemas that match a given request."),
                    col("DistinguisherMethod", "string", "`distinguisherMethod` defines how to compute the flow distinguisher for requests that match this schema."),
                    age_col(),
                    col("MissingPL", "string", "references a broken or non-existent PriorityLevelConfiguration"),
                ]
            },
            row: |o, now| {
                let method = match s(o, "/spec/distinguisherMethod/type") {
                    "" => "<none>",
                    m => m,
                };
                let missing = o
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.iter().find(|c| s(c, "/type") == "Dangling"))
                    .map(|c| s(c, "/status"))
                    .unwrap_or("?");
                vec![
                    name(o),
                    json!(s(o, "/spec/priorityLevelConfiguration/name")),
                    json!(o
                        .pointer("/spec/matchingPrecedence")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)),
                    json!(method),
                    age(o, now),
                    json!(missing),
                ]
            },
            strategy: StrategyRef::Static(const { &Basic::defaults(defaults::flow_schema) }),
            ..FLOWCONTROL
        },
        ResourceKind {
            kind: "PriorityLevelConfiguration",
            always_emitted: r#"{"status":{}}"#,
            plural: "prioritylevelconfigurations",
            singular: "prioritylevelconfiguration",
            columns: || {
                vec![
                    name_col(),
                    col("Type", "string", "`type` indicates whether this priority level is subject to limitation on request execution."),
                    col("NominalConcurrencyShares", "string", "`nominalConcurrencyShares` (NCS) contributes to the computation of the NominalConcurrencyLimit (NominalCL) of this level."),
                    col("Queues", "string", "`queues` is the number of queues for this priority level."),
                    col("HandSize", "string", "`handSize` is a small positive number that configures the shuffle sharding of requests into queues."),
                    col("QueueLengthLimit", "string", "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a given queue of this priority level at a time; excess requests are rejected."),
                    age_col(),
                ]
            },
            row: |o, now| {
                let none = || json!("<none>");
                let limited = o.pointer("/spec/limited").filter(|v| v.is_object());
                let ncs = limited
                    .and_then(|l| l.get("nominalConcurrencyShares").cloned())
                    .unwrap_or_else(none);
                let queuing = limited
                    .and_then(|l| l.pointer("/limitResponse/queuing"))
                    .filter(|v| v.is_object());
                let q = |k: &str| queuing.and_then(|q| q.get(k).cloned()).unwrap_or_else(none);
                vec![
                    name(o),
                    json!(s(o, "/spec/type")),
                    ncs,
                    q("queues"),
                    q("handSize"),
                    q("queueLengthLimit"),
                    age(o, now),
                ]
            },
            strategy: StrategyRef::Static(
                const { &Basic::defaults(defaults::priority_level_configuration) },
            ),
            ..FLOWCONTROL
        },
    ]
}
