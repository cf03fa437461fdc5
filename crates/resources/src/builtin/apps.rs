//! apps/v1.

use serde_json::{json, Value};

use super::strategies::*;
use super::BASE;
use crate::columns::{
    age, age_col, col, container_cells, container_cols, int, name, name_col, wide, Column, TableRow,
};
use crate::defaults;
use crate::jsonpath::{i, s};
use crate::labels::{format_label_selector, format_labels, label_selector_parts};
use crate::validation;
use crate::Basic;
use crate::StrategyRef;
use crate::{int_field, NameRule, ResourceKind};

const APPS: ResourceKind = ResourceKind {
    group: "apps",
    ..BASE
};

/// A workload: all, status, generation tracked on spec.
const WORKLOAD: ResourceKind = ResourceKind {
    categories: &["all"],
    status: true,
    generation: true,
    ..APPS
};

pub(super) fn kinds() -> Vec<ResourceKind> {
    vec![
        ResourceKind {
            kind: "ControllerRevision",
            always_emitted: r#"{"data":null,"revision":0}"#,
            plural: "controllerrevisions",
            singular: "controllerrevision",
            columns: || {
                vec![
                    name_col(),
                    col("Controller", "string", "Controller of the object"),
                    col(
                        "Revision",
                        "string",
                        "Revision indicates the revision of the state represented by Data.",
                    ),
                    age_col(),
                ]
            },
            row: controller_revision_row,
            strategy: StrategyRef::Static(
                const { &Basic::validated(validation::controller_revision) },
            ),
            ..APPS
        },
        ResourceKind {
            kind: "DaemonSet",
            always_emitted: r#"{"status":{"currentNumberScheduled":0,"numberMisscheduled":0,"desiredNumberScheduled":0,"numberReady":0}}"#,
            plural: "daemonsets",
            singular: "daemonset",
            short_names: &["ds"],
            columns: || {
                let mut c = vec![
                    name_col(),
                    col("Desired", "integer", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
                    col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
                    col("Ready", "integer", "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
                    col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
                    col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
                    col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."),
                    age_col(),
                ];
                c.extend(container_cols());
                c.push(selector_col());
                c
            },
            row: |o, now| {
                let (names, images) = container_cells(o, "/spec/template/spec/containers");
                vec![
                    name(o),
                    int(o, "/status/desiredNumberScheduled"),
                    int(o, "/status/currentNumberScheduled"),
                    int(o, "/status/numberReady"),
                    int(o, "/status/updatedNumberScheduled"),
                    int(o, "/status/numberAvailable"),
                    json!(format_labels(o.pointer("/spec/template/spec/nodeSelector"))),
                    age(o, now),
                    names,
                    images,
                    json!(format_label_selector(o.pointer("/spec/selector"))),
                ]
            },
            strategy: StrategyRef::Static(&DaemonSetStrategy),
            ..WORKLOAD
        },
        ResourceKind {
            kind: "Deployment",
            always_emitted: r#"{"status":{}}"#,
            plural: "deployments",
            singular: "deployment",
            short_names: &["deploy"],
            scale: true,
            columns: || {
                let mut c = vec![
                    name_col(),
                    col("Ready", "string", "Number of the pod with ready state"),
                    col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
                    col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
                    age_col(),
                ];
                c.extend(container_cols());
                c.push(selector_col());
                c
            },
            row: deployment_row,
            strategy: StrategyRef::Static(&DeploymentStrategy),
            // Upstream bumps the generation on annotation changes too: they are copied to
            // the ReplicaSets.
            generation_fields: &["/spec", "/metadata/annotations"],
            ..WORKLOAD
        },
        ResourceKind {
            kind: "ReplicaSet",
            always_emitted: r#"{"status":{"replicas":0}}"#,
            plural: "replicasets",
            singular: "replicaset",
            short_names: &["rs"],
            scale: true,
            selectable_fields: const { &[int_field("status.replicas", "status.replicas")] },
            columns: || {
                let mut c = vec![
                    name_col(),
                    col(
                        "Desired",
                        "integer",
                        "Replicas is the number of desired replicas.",
                    ),
                    col(
                        "Current",
                        "integer",
                        "Replicas is the most recently observed number of replicas.",
                    ),
                    col(
                        "Ready",
                        "integer",
                        "The number of ready replicas for this replica set.",
                    ),
                    age_col(),
                ];
                c.extend(container_cols());
                c.push(selector_col());
                c
            },
            row: |o, now| {
                let (names, images) = container_cells(o, "/spec/template/spec/containers");
                vec![
                    name(o),
                    int(o, "/spec/replicas"),
                    int(o, "/status/replicas"),
                    int(o, "/status/readyReplicas"),
                    age(o, now),
                    names,
                    images,
                    json!(format_label_selector(o.pointer("/spec/selector"))),
                ]
            },
            strategy: StrategyRef::Static(
                const {
                    &Basic {
                        defaults: defaults::replica_set,
                        validate: validation::replica_set,
                    }
                },
            ),
            ..WORKLOAD
        },
        ResourceKind {
            kind: "StatefulSet",
            name_rule: NameRule::Label,
            always_emitted: r#"{"status":{"replicas":0,"availableReplicas":0}}"#,
            plural: "statefulsets",
            singular: "statefulset",
            short_names: &["sts"],
            scale: true,
            columns: || {
                let mut c = vec![
                    name_col(),
                    col("Ready", "string", "Number of the pod with ready state"),
                    age_col(),
                ];
                c.extend(container_cols());
                c
            },
            row: |o, now| {
                let (names, images) = container_cells(o, "/spec/template/spec/containers");
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        i(o, "/status/readyReplicas"),
                        i(o, "/spec/replicas")
                    )),
                    age(o, now),
                    names,
                    images,
                ]
            },
            strategy: StrategyRef::Static(
                const {
                    &Basic {
                        defaults: defaults::stateful_set,
                        validate: validation::stateful_set,
                    }
                },
            ),
            ..WORKLOAD
        },
    ]
}

fn selector_col() -> Column {
    wide(
        "Selector",
        "string",
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
    )
}

fn deployment_row(o: &Value, now: i64) -> TableRow {
    let (names, images) = container_cells(o, "/spec/template/spec/containers");
    let selector = match o.pointer("/spec/selector") {
        Some(sel) => label_selector_parts(sel).unwrap_or_else(|| "<invalid>".into()),
        None => String::new(),
    };
    vec![
        name(o),
        json!(format!(
            "{}/{}",
            i(o, "/status/readyReplicas"),
            i(o, "/spec/replicas")
        )),
        int(o, "/status/updatedReplicas"),
        int(o, "/status/availableReplicas"),
        age(o, now),
        names,
        images,
        json!(selector),
    ]
}

/// `printControllerRevision`: the controlling owner as `kind.group/name`.
fn controller_revision_row(o: &Value, now: i64) -> TableRow {
    let owner = o
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.get("controller") == Some(&Value::Bool(true)))
        });
    let controller = match owner {
        None => "<none>".to_string(),
        Some(r) => {
            let api_version = s(r, "/apiVersion");
            let group = match api_version.split_once('/') {
                Some((g, _)) => g,
                None => "",
            };
            let kind = s(r, "/kind");
            let gk = if group.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}.{group}")
            };
            if gk.is_empty() {
                s(r, "/name").to_string()
            } else {
                format!("{}/{}", gk.to_lowercase(), s(r, "/name"))
            }
        }
    };
    vec![name(o), json!(controller), int(o, "/revision"), age(o, now)]
}
