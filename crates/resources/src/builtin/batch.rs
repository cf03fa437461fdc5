//! batch/v1.

use serde_json::{json, Value};

use super::strategies::*;
use super::BASE;
use crate::columns::{
    age, age_col, bool_ptr, col, container_cells, container_cols, name, name_col, parse_rfc3339,
    since, str_or, wide, Column, TableRow,
};
use crate::defaults;
use crate::duration::human_duration;
use crate::jsonpath::{i, s};
use crate::labels::format_label_selector;
use crate::validation;
use crate::Basic;
use crate::StrategyRef;
use crate::{int_field, ResourceKind};

const BATCH: ResourceKind = ResourceKind {
    group: "batch",
    categories: &["all"],
    status: true,
    generation: true,
    ..BASE
};

fn selector_col() -> Column {
    wide(
        "Selector",
        "string",
        "A label query over pods that should match the pod count.",
    )
}

pub(super) fn kinds() -> Vec<ResourceKind> {
    vec![
        ResourceKind {
            kind: "CronJob",
            always_emitted: r#"{"status":{}}"#,
            plural: "cronjobs",
            singular: "cronjob",
            short_names: &["cj"],
            columns: || {
                let mut c = vec![
                    name_col(),
                    col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
                    col("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
                    col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions."),
                    col("Active", "integer", "A list of pointers to currently running jobs."),
                    col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
                    age_col(),
                ];
                c.extend(container_cols());
                c.push(selector_col());
                c
            },
            row: cron_job_row,
            strategy: StrategyRef::Static(
                const {
                    &Basic {
                        defaults: defaults::cron_job,
                        validate: validation::cron_job,
                    }
                },
            ),
            ..BATCH
        },
        ResourceKind {
            kind: "Job",
            always_emitted: r#"{"status":{}}"#,
            plural: "jobs",
            singular: "job",
            selectable_fields: const { &[int_field("status.successful", "status.succeeded")] },
            columns: || {
                let mut c = vec![
                    name_col(),
                    col("Status", "string", "Status of the job."),
                    col(
                        "Completions",
                        "string",
                        "The number of pods which reached phase Succeeded.",
                    ),
                    col("Duration", "string", "Time required to complete the job."),
                    age_col(),
                ];
                c.extend(container_cols());
                c.push(selector_col());
                c
            },
            row: job_row,
            strategy: StrategyRef::Static(&JobStrategy),
            ..BATCH
        },
    ]
}

fn has_condition(o: &Value, ty: &str) -> bool {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| s(c, "/type") == ty))
        .is_some_and(|c| s(c, "/status") == "True")
}

/// `printJob`.
fn job_row(o: &Value, now: i64) -> TableRow {
    let succeeded = i(o, "/status/succeeded");
    let completions = match o.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match i(o, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = parse_rfc3339(s(o, "/status/startTime"));
    let done = parse_rfc3339(s(o, "/status/completionTime"));
    let duration = match (start, done) {
        (None, _) => String::new(),
        (Some(st), None) => human_duration(now - st),
        (Some(st), Some(c)) => human_duration(c - st),
    };
    let status = if has_condition(o, "Complete") {
        "Complete"
    } else if has_condition(o, "Failed") {
        "Failed"
    } else if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has_condition(o, "Suspended") {
        "Suspended"
    } else if has_condition(o, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = container_cells(o, "/spec/template/spec/containers");
    vec![
        name(o),
        json!(status),
        json!(completions),
        json!(duration),
        age(o, now),
        names,
        images,
        json!(format_label_selector(o.pointer("/spec/selector"))),
    ]
}

/// `printCronJob`.
fn cron_job_row(o: &Value, now: i64) -> TableRow {
    let last = match s(o, "/status/lastScheduleTime") {
        "" => json!("<none>"),
        t => since(t, now),
    };
    let active = o
        .pointer("/status/active")
        .and_then(Value::as_array)
        .map(|a| a.len())
        .unwrap_or(0);
    let (names, images) = container_cells(o, "/spec/jobTemplate/spec/template/spec/containers");
    vec![
        name(o),
        json!(s(o, "/spec/schedule")),
        str_or(o, "/spec/timeZone", "<none>"),
        bool_ptr(o, "/spec/suspend"),
        json!(active),
        last,
        age(o, now),
        names,
        images,
        json!(format_label_selector(
            o.pointer("/spec/jobTemplate/spec/selector")
        )),
    ]
}
