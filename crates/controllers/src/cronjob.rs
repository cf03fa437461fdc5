//! The CronJob controller (upstream pkg/controller/cronjob, the v2 controller): at each
//! scheduled time a Job named `<cronjob>-<minutes since the epoch>` is made from the job
//! template, under the concurrency policy and starting deadline; finished Jobs beyond the
//! history limits are deleted; `status.active`, `lastScheduleTime` and `lastSuccessfulTime`
//! follow the Jobs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use reddwarf_resources::validation::cron::{self, Schedule, ScheduleKind, STAR_BIT};
use serde_json::json;

use crate::events::{self, Recorder};
use crate::job::is_finished;
use crate::ownership::{controller_ref, is_controlled_by};
use crate::MergeStatus;
use crate::{error_action, Error};

/// Annotation with the time a Job was scheduled for, in the CronJob's time zone.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Upstream's limit on missed start times before it warns.
const TOO_MANY_MISSED: u32 = 100;
/// Upstream wakes a little after the scheduled time (nextScheduleDelta).
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

struct CronJobController {
    client: Client,
    recorder: Recorder,
}

pub async fn run(client: Client) {
    let cronjobs: Api<CronJob> = Api::all(client.clone());
    let jobs: Api<Job> = Api::all(client.clone());
    let ctx = Arc::new(CronJobController {
        recorder: Recorder::new(client.clone(), "cronjob-controller"),
        client,
    });
    Controller::new(cronjobs, watcher::Config::default())
        .owns(jobs, watcher::Config::default())
        .run(
            reconcile,
            |_, e, _| error_action("cronjob controller", e),
            ctx,
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("cronjob controller: {e}");
            }
        })
        .await;
}

/// The next time after `after` the schedule fires (robfig/cron `Schedule.Next`), on the
/// wall clock of `tz`; None when nothing matches within five years.
pub fn next_after(schedule: &Schedule, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
    let (minute, hour, dom, month, dow) = match schedule.kind {
        ScheduleKind::Every(secs) => {
            // Whole seconds, then the delay.
            let base = after.as_second();
            return Timestamp::from_second(base + secs as i64).ok();
        }
        ScheduleKind::Spec {
            minute,
            hour,
            dom,
            month,
            dow,
        } => (minute, hour, dom, month, dow),
    };
    let local = after.to_zoned(tz.clone()).datetime();
    // The first whole minute strictly after `after` (the standard parser's seconds are 0).
    let mut t = local
        .with()
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .ok()?
        .checked_add(1.minute())
        .ok()?;
    let limit = t.year() + 5;
    let day_matches = |t: &DateTime| {
        let dom_ok = dom & (1 << t.day()) != 0;
        let dow_ok = dow & (1 << t.weekday().to_sunday_zero_offset()) != 0;
        if dom & STAR_BIT != 0 || dow & STAR_BIT != 0 {
            dom_ok && dow_ok
        } else {
            dom_ok || dow_ok
        }
    };
    loop {
        if t.year() > limit {
            return None;
        }
        if month & (1 << t.month()) == 0 {
            t = t
                .first_of_month()
                .checked_add(1.month())
                .ok()?
                .start_of_day();
            continue;
        }
        if !day_matches(&t) {
            t = t.start_of_day().checked_add(1.day()).ok()?;
            continue;
        }
        if hour & (1 << t.hour()) == 0 {
            t = t
                .with()
                .minute(0)
                .build()
                .ok()?
                .checked_add(1.hour())
                .ok()?;
            continue;
        }
        if minute & (1 << t.minute()) == 0 {
            t = t.checked_add(1.minute()).ok()?;
            continue;
        }
        return tz
            .to_ambiguous_zoned(t)
            .compatible()
            .ok()
            .map(|z| z.timestamp());
    }
}

/// Upstream `mostRecentScheduleTime`: the latest scheduled time in (earliest, now] and how
/// many were missed.
fn most_recent(
    schedule: &Schedule,
    tz: &TimeZone,
    earliest: Timestamp,
    now: Timestamp,
) -> (Option<Timestamp>, u32) {
    let mut latest = None;
    let mut missed = 0u32;
    let mut t = earliest;
    while let Some(n) = next_after(schedule, tz, t) {
        if n > now {
            break;
        }
        latest = Some(n);
        missed = missed.saturating_add(1);
        t = n;
    }
    (latest, missed)
}

/// RFC 3339 as Go formats it: `Z` for UTC, else the offset.
fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn finished_type(job: &Job) -> Option<&'static str> {
    let status = job.status.as_ref()?;
    if !is_finished(status) {
        return None;
    }
    let complete = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Complete" && c.status == "True");
    Some(if complete { "Complete" } else { "Failed" })
}

async fn reconcile(cached: Arc<CronJob>, ctx: Arc<CronJobController>) -> Result<Action, Error> {
    // The live object: the cache may not have our last status write yet.
    let cjs: Api<CronJob> =
        Api::namespaced(ctx.client.clone(), &cached.namespace().unwrap_or_default());
    let cj = match cjs.get_opt(&cached.name_any()).await? {
        Some(c) if c.uid() == cached.uid() => Arc::new(c),
        _ => return Ok(Action::await_change()),
    };
    let Some(spec) = cj.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    let ns = cj.namespace().unwrap_or_default();
    let uid = cj.uid().unwrap_or_default();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let cj_ref = events::reference(cj.as_ref());
    let children: Vec<Job> = jobs_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|j| is_controlled_by(&j.metadata, &uid))
        .collect();
    let old_status = cj.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    let mut active = status.active.clone().unwrap_or_default();
    let in_active =
        |active: &[ObjectReference], uid: &Option<String>| active.iter().any(|r| r.uid == *uid);

    // --- The active list follows the jobs (upstream syncCronJob, first half).
    for j in &children {
        let found = in_active(&active, &j.metadata.uid);
        match finished_type(j) {
            None if !found => {
                ctx.recorder
                    .warning(
                        &cj_ref,
                        "UnexpectedJob",
                        format!(
                            "Saw a job that the controller did not create or forgot: {}",
                            j.name_any()
                        ),
                    )
                    .await;
            }
            Some(cond) if found => {
                active.retain(|r| r.uid != j.metadata.uid);
                ctx.recorder
                    .normal(
                        &cj_ref,
                        "SawCompletedJob",
                        format!("Saw completed job: {}, condition: {cond}", j.name_any()),
                    )
                    .await;
            }
            _ => {}
        }
        if let Some(done) = j.status.as_ref().and_then(|s| s.completion_time.as_ref()) {
            if status
                .last_successful_time
                .as_ref()
                .is_none_or(|t| t.0 < done.0)
            {
                status.last_successful_time = Some(done.clone());
            }
        }
    }
    let child_uids: HashSet<Option<String>> =
        children.iter().map(|j| j.metadata.uid.clone()).collect();
    let mut missing = Vec::new();
    for r in &active {
        if child_uids.contains(&r.uid) {
            continue;
        }
        // Check the live object: a job just created may not be listed by a lagging cache.
        let name = r.name.clone().unwrap_or_default();
        if jobs_api.get_opt(&name).await?.is_none() {
            ctx.recorder
                .normal(
                    &cj_ref,
                    "MissingJob",
                    format!("Active job went missing: {name}"),
                )
                .await;
            missing.push(r.uid.clone());
        }
    }
    active.retain(|r| !missing.contains(&r.uid));

    // --- History limits (upstream cleanupFinishedJobs).
    if cj.metadata.deletion_timestamp.is_none() {
        let limits = [
            ("Complete", spec.successful_jobs_history_limit),
            ("Failed", spec.failed_jobs_history_limit),
        ];
        for (kind, limit) in limits {
            let Some(limit) = limit else { continue };
            let mut done: Vec<&Job> = children
                .iter()
                .filter(|j| finished_type(j) == Some(kind))
                .collect();
            // Oldest first: by start time (jobs never started last), then name.
            done.sort_by(|a, b| {
                let start = |j: &Job| j.status.as_ref().and_then(|s| s.start_time.clone());
                match (start(a), start(b)) {
                    (Some(x), Some(y)) if x.0 != y.0 => x.0.cmp(&y.0),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    _ => a.name_any().cmp(&b.name_any()),
                }
            });
            let excess = done.len().saturating_sub(limit.max(0) as usize);
            for j in done.into_iter().take(excess) {
                delete_job(&ctx, &jobs_api, &cj_ref, j).await?;
                active.retain(|r| r.uid != j.metadata.uid);
            }
        }
    }

    let action = schedule(
        &cj,
        spec,
        &ctx,
        &jobs_api,
        &cj_ref,
        &mut status,
        &mut active,
    )
    .await;
    status.active = (!active.is_empty()).then_some(active);
    write_status(&cjs, &cj, &old_status, &status).await?;
    action
}

/// Upstream syncCronJob, second half: decide whether a job is due and start it.
async fn schedule(
    cj: &CronJob,
    spec: &k8s_openapi::api::batch::v1::CronJobSpec,
    ctx: &CronJobController,
    jobs_api: &Api<Job>,
    cj_ref: &ObjectReference,
    status: &mut CronJobStatus,
    active: &mut Vec<ObjectReference>,
) -> Result<Action, Error> {
    if cj.metadata.deletion_timestamp.is_some() || spec.suspend == Some(true) {
        return Ok(Action::await_change());
    }
    let sched = match cron::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            ctx.recorder
                .warning(
                    cj_ref,
                    "UnparseableSchedule",
                    format!("unparseable schedule: {:?} : {e}", spec.schedule),
                )
                .await;
            return Ok(Action::await_change());
        }
    };
    let zone_name = spec.time_zone.clone().or_else(|| sched.location.clone());
    let tz = match zone_name.as_deref() {
        None | Some("") | Some("UTC") | Some("Local") => TimeZone::UTC,
        Some(name) => match TimeZone::get(name) {
            Ok(tz) => tz,
            Err(e) => {
                ctx.recorder
                    .warning(
                        cj_ref,
                        "UnknownTimeZone",
                        format!("invalid timeZone: {name:?}: {e}"),
                    )
                    .await;
                return Ok(Action::await_change());
            }
        },
    };
    let now = Timestamp::now();
    let wake_at_next = || -> Action {
        match next_after(&sched, &tz, now) {
            Some(next) => {
                let ms = (next.as_millisecond() - now.as_millisecond()).max(0) as u64;
                Action::requeue(Duration::from_millis(ms) + NEXT_SCHEDULE_DELTA)
            }
            None => Action::await_change(),
        }
    };
    let created = cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let mut earliest = status.last_schedule_time.as_ref().map_or(created, |t| t.0);
    if let Some(sds) = spec.starting_deadline_seconds {
        let deadline = Timestamp::from_second(now.as_second() - sds).unwrap_or(now);
        if deadline > earliest {
            earliest = deadline;
        }
    }
    let (scheduled, missed) = most_recent(&sched, &tz, earliest, now);
    let Some(scheduled) = scheduled else {
        return Ok(wake_at_next());
    };
    if missed > TOO_MANY_MISSED {
        ctx.recorder
            .warning(
                cj_ref,
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
            )
            .await;
    }
    if let Some(sds) = spec.starting_deadline_seconds {
        if scheduled.as_second() + sds < now.as_second() {
            let when = scheduled.strftime("%a, %d %b %Y %H:%M:%S +0000");
            ctx.recorder
                .warning(
                    cj_ref,
                    "MissSchedule",
                    format!("Missed scheduled time to start a job: {when}"),
                )
                .await;
            return Ok(wake_at_next());
        }
    }
    let name = format!("{}-{}", cj.name_any(), scheduled.as_second() / 60);
    if active
        .iter()
        .any(|r| r.name.as_deref() == Some(name.as_str()))
        || status
            .last_schedule_time
            .as_ref()
            .is_some_and(|t| t.0 == scheduled)
    {
        return Ok(wake_at_next());
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            ctx.recorder
                .normal(
                    cj_ref,
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid",
                )
                .await;
            return Ok(wake_at_next());
        }
        Some("Replace") => {
            for r in std::mem::take(active) {
                let jname = r.name.clone().unwrap_or_default();
                if let Some(j) = jobs_api.get_opt(&jname).await? {
                    delete_job(ctx, jobs_api, cj_ref, &j).await?;
                }
            }
        }
        _ => {}
    }

    let template = spec.job_template.clone();
    let tmeta = template.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339(scheduled, &tz));
    let job = Job {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: cj.namespace(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cj)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    };
    let job = match jobs_api.create(&PostParams::default(), &job).await {
        Ok(j) => {
            ctx.recorder
                .normal(cj_ref, "SuccessfulCreate", format!("Created job {name}"))
                .await;
            j
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Made already (the name is the lock): adopt it only if it is ours.
            let Some(j) = jobs_api.get_opt(&name).await? else {
                return Ok(Action::requeue(Duration::from_secs(1)));
            };
            if !is_controlled_by(&j.metadata, &cj.uid().unwrap_or_default())
                || active.iter().any(|r| r.uid == j.metadata.uid)
            {
                return Ok(wake_at_next());
            }
            j
        }
        Err(kube::Error::Api(e)) if e.code == 403 => {
            // The namespace is terminating: nothing can be created.
            return Ok(Action::await_change());
        }
        Err(e) => {
            ctx.recorder
                .warning(cj_ref, "FailedCreate", format!("Error creating job: {e}"))
                .await;
            return Err(e.into());
        }
    };
    active.push(job_ref(&job));
    status.last_schedule_time = Some(Time(scheduled));
    Ok(wake_at_next())
}

async fn delete_job(
    ctx: &CronJobController,
    jobs: &Api<Job>,
    cj_ref: &ObjectReference,
    job: &Job,
) -> Result<(), Error> {
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match jobs.delete(&job.name_any(), &dp).await {
        Ok(_) => {
            ctx.recorder
                .normal(
                    cj_ref,
                    "SuccessfulDelete",
                    format!("Deleted job {}", job.name_any()),
                )
                .await;
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn write_status(
    cjs: &Api<CronJob>,
    cj: &CronJob,
    old: &CronJobStatus,
    new: &CronJobStatus,
) -> Result<(), Error> {
    let mut value = serde_json::to_value(new).unwrap_or_default();
    let before = serde_json::to_value(old).unwrap_or_default();
    if value == before {
        return Ok(());
    }
    // A merge patch keeps what it does not mention: fields now unset are removed explicitly.
    if let (Some(now), Some(was)) = (value.as_object_mut(), before.as_object()) {
        for k in was.keys() {
            now.entry(k.clone()).or_insert(serde_json::Value::Null);
        }
    }
    let patch =
        json!({"metadata": {"resourceVersion": cj.meta().resource_version}, "status": value});
    cjs.merge_status(&cj.name_any(), &patch).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(spec: &str, after: &str) -> String {
        let s = cron::parse(spec).unwrap();
        next_after(&s, &TimeZone::UTC, at(after))
            .unwrap()
            .to_string()
    }

    #[test]
    fn next_times_follow_robfig_cron() {
        assert_eq!(
            next("* * * * *", "2024-01-01T00:00:00Z"),
            "2024-01-01T00:01:00Z"
        );
        assert_eq!(
            next("* * * * *", "2024-01-01T00:00:30Z"),
            "2024-01-01T00:01:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2024-01-01T00:16:00Z"),
            "2024-01-01T00:30:00Z"
        );
        assert_eq!(
            next("0 0 * * *", "2024-01-31T12:00:00Z"),
            "2024-02-01T00:00:00Z"
        );
        assert_eq!(
            next("@yearly", "2024-06-01T00:00:00Z"),
            "2025-01-01T00:00:00Z"
        );
        // Day of month and day of week: either matches when neither is `*`.
        assert_eq!(
            next("0 0 13 * 5", "2024-09-01T00:00:00Z"),
            "2024-09-06T00:00:00Z"
        );
        // Both must match when one is `*` (every Monday).
        assert_eq!(
            next("0 9 * * mon", "2024-09-01T00:00:00Z"),
            "2024-09-02T09:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2024-03-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(
            next("@every 90s", "2024-01-01T00:00:00Z"),
            "2024-01-01T00:01:30Z"
        );
        let s = cron::parse("0 9 * * *").unwrap();
        let tz = TimeZone::get("America/New_York").unwrap();
        assert_eq!(
            next_after(&s, &tz, at("2024-07-01T00:00:00Z"))
                .unwrap()
                .to_string(),
            "2024-07-01T13:00:00Z"
        );
        assert_eq!(
            rfc3339(at("2024-07-01T13:00:00Z"), &tz),
            "2024-07-01T09:00:00-04:00"
        );
        assert_eq!(
            rfc3339(at("2024-07-01T13:00:00Z"), &TimeZone::UTC),
            "2024-07-01T13:00:00Z"
        );
    }

    #[test]
    fn most_recent_counts_missed_times() {
        let s = cron::parse("*/10 * * * *").unwrap();
        let (t, n) = most_recent(
            &s,
            &TimeZone::UTC,
            at("2024-01-01T00:00:00Z"),
            at("2024-01-01T00:35:00Z"),
        );
        assert_eq!(t.unwrap().to_string(), "2024-01-01T00:30:00Z");
        assert_eq!(n, 3);
        let (t, _) = most_recent(
            &s,
            &TimeZone::UTC,
            at("2024-01-01T00:00:00Z"),
            at("2024-01-01T00:05:00Z"),
        );
        assert!(t.is_none());
    }
}
