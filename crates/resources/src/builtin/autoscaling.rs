//! autoscaling/v2 (preferred) and autoscaling/v1.

use serde_json::{json, Value};

use super::BASE;
use crate::columns::{age, age_col, col, name, name_col, scalar_text, Column, TableRow};
use crate::defaults;
use crate::jsonpath::{i, s};
use crate::Basic;
use crate::ResourceKind;
use crate::StrategyRef;

const HPA: ResourceKind = ResourceKind {
    group: "autoscaling",
    version: "v2",
    kind: "HorizontalPodAutoscaler",
    plural: "horizontalpodautoscalers",
    singular: "horizontalpodautoscaler",
    short_names: &["hpa"],
    categories: &["all"],
    status: true,
    generation: true,
    columns: hpa_columns,
    row: hpa_row,
    strategy: StrategyRef::Static(const { &Basic::defaults(defaults::hpa_v2) }),
    // v2's currentReplicas is omitempty, currentMetrics is not.
    always_emitted: r#"{"status":{"desiredReplicas":0,"currentMetrics":null}}"#,
    ..BASE
};

pub(super) fn kinds() -> Vec<ResourceKind> {
    vec![
        HPA,
        ResourceKind {
            version: "v1",
            row: hpa_v1_row,
            strategy: StrategyRef::Static(const { &Basic::defaults(defaults::hpa_v1) }),
            always_emitted: r#"{"status":{"currentReplicas":0,"desiredReplicas":0}}"#,
            ..HPA
        },
    ]
}

fn hpa_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Reference", "string", "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count."),
        col("Targets", "string", "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used)."),
        col("MinPods", "string", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
        col("MaxPods", "string", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up."),
        col("Replicas", "string", "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler."),
        age_col(),
    ]
}

fn q(v: Option<&Value>) -> String {
    scalar_text(v).unwrap_or_else(|| "0".into())
}

/// `formatHPAMetrics`: `current/target` per metric, at most two, then `+ N more...`.
fn format_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".into();
    }
    let mut list: Vec<String> = Vec::new();
    for (idx, spec) in specs.iter().enumerate() {
        let st = statuses.get(idx);
        let status_of = |k: &str| st.and_then(|st| st.get(k)).filter(|v| v.is_object());
        let item = match s(spec, "/type") {
            "External" | "Object" => {
                let key = if s(spec, "/type") == "External" {
                    "external"
                } else {
                    "object"
                };
                let target = spec.pointer(&format!("/{key}/target"));
                if let Some(avg) = target.and_then(|t| t.get("averageValue")) {
                    let current = status_of(key)
                        .and_then(|x| x.pointer("/current/averageValue"))
                        .map(|v| q(Some(v)))
                        .unwrap_or_else(|| "<unknown>".into());
                    format!("{current}/{} (avg)", q(Some(avg)))
                } else {
                    let current = status_of(key)
                        .map(|x| q(x.pointer("/current/value")))
                        .unwrap_or_else(|| "<unknown>".into());
                    format!("{current}/{}", q(target.and_then(|t| t.get("value"))))
                }
            }
            "Pods" => {
                let current = status_of("pods")
                    .map(|x| q(x.pointer("/current/averageValue")))
                    .unwrap_or_else(|| "<unknown>".into());
                format!("{current}/{}", q(spec.pointer("/pods/target/averageValue")))
            }
            t @ ("Resource" | "ContainerResource") => {
                let key = if t == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let res = s(spec, &format!("/{key}/name"));
                let target = spec.pointer(&format!("/{key}/target"));
                if let Some(avg) = target.and_then(|t| t.get("averageValue")) {
                    let current = status_of(key)
                        .map(|x| q(x.pointer("/current/averageValue")))
                        .unwrap_or_else(|| "<unknown>".into());
                    format!("{res}: {current}/{}", q(Some(avg)))
                } else {
                    let current = status_of(key)
                        .and_then(|x| x.pointer("/current/averageUtilization"))
                        .and_then(Value::as_i64)
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<unknown>".into());
                    let target = target
                        .and_then(|t| t.get("averageUtilization"))
                        .and_then(Value::as_i64)
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<auto>".into());
                    format!("{res}: {current}/{target}")
                }
            }
            _ => "<unknown type>".into(),
        };
        list.push(item);
    }
    let max = 2;
    let count = list.len();
    if count > max {
        list.truncate(max);
        format!("{} + {} more...", list.join(", "), count - max)
    } else {
        list.join(", ")
    }
}

fn hpa_cells(o: &Value, metrics: String, now: i64) -> TableRow {
    let reference = format!(
        "{}/{}",
        s(o, "/spec/scaleTargetRef/kind"),
        s(o, "/spec/scaleTargetRef/name")
    );
    let min = match o.pointer("/spec/minReplicas").and_then(Value::as_i64) {
        Some(n) => n.to_string(),
        None => "<unset>".into(),
    };
    vec![
        name(o),
        json!(reference),
        json!(metrics),
        json!(min),
        json!(i(o, "/spec/maxReplicas")),
        json!(i(o, "/status/currentReplicas")),
        age(o, now),
    ]
}

fn hpa_row(o: &Value, now: i64) -> TableRow {
    let arr = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let metrics = format_metrics(&arr("/spec/metrics"), &arr("/status/currentMetrics"));
    hpa_cells(o, metrics, now)
}

/// v1 carries one CPU target; upstream prints it through the v2 form.
fn hpa_v1_row(o: &Value, now: i64) -> TableRow {
    let (specs, statuses) = match o
        .pointer("/spec/targetCPUUtilizationPercentage")
        .and_then(Value::as_i64)
    {
        Some(t) => {
            let spec = json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": t}}});
            let status = match o
                .pointer("/status/currentCPUUtilizationPercentage")
                .and_then(Value::as_i64)
            {
                Some(c) => vec![
                    json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": c}}}),
                ],
                None => vec![],
            };
            (vec![spec], status)
        }
        None => (vec![], vec![]),
    };
    hpa_cells(o, format_metrics(&specs, &statuses), now)
}
