//! The Job controller (upstream pkg/controller/job) and its TTL-after-finished sibling
//! (pkg/controller/ttlafterfinished): pods run to completion, failures count against
//! `backoffLimit`, `activeDeadlineSeconds` bounds the run, Indexed jobs give each pod its
//! completion index, and a finished job with `ttlSecondsAfterFinished` is deleted.
//!
//! Pods are counted exactly once through the `batch.kubernetes.io/job-tracking` finalizer and
//! `status.uncountedTerminatedPods`, as upstream: a finished pod's uid is first recorded as
//! uncounted, then its finalizer is removed, then it moves into `succeeded`/`failed`.
//! As upstream 1.33 does, a job that meets its success or failure criteria first gets the
//! interim `SuccessCriteriaMet`/`FailureTarget` condition and the terminal
//! `Complete`/`Failed` once no pod of it is left running.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::events::{self, Recorder};
use crate::finalizers::remove_finalizer;
use crate::label_selector::selector_string;
use crate::ownership::{controller_of, controller_ref, is_controlled_by};
use crate::pod_state::{is_pod_active, is_pod_ready, is_pod_terminal, pod_phase};
use crate::pod_template::pod_from_template;
use crate::MergeStatus;
use crate::{error_action, Error};

/// Keeps a finished pod around until the job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Annotation and label carrying an Indexed job pod's completion index.
pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// The only `spec.managedBy` this controller acts on (unset means the same).
const MANAGED_BY: &str = "kubernetes.io/job-controller";
/// Upstream DefaultJobPodFailureBackOff and MaxJobPodFailureBackOff.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(600);

const MSG_BACKOFF: &str = "Job has reached the specified backoff limit";
const MSG_DEADLINE: &str = "Job was active longer than specified deadline";
const MSG_COMPLETIONS: &str = "Reached expected number of succeeded pods";

struct JobController {
    client: Client,
    /// Acts as the ttl-after-finished controller.
    ttl_client: Client,
    recorder: Recorder,
    /// job uid -> consecutive pod failures since the last success and when the last was seen
    /// (upstream's backoff records, which are in memory too).
    backoff: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Runs the job controller; `ttl_client` deletes finished jobs whose TTL ran out (upstream's
/// ttl-after-finished controller, with its own identity: the job controller may not delete
/// jobs).
pub async fn run(client: Client, ttl_client: Client) {
    let jobs: Api<Job> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    tokio::spawn(release_orphan_pods(client.clone()));
    let ctx = Arc::new(JobController {
        recorder: Recorder::new(client.clone(), "job-controller"),
        client,
        ttl_client,
        backoff: Mutex::new(HashMap::new()),
    });
    Controller::new(jobs, watcher::Config::default())
        .owns(pods, watcher::Config::default())
        .run(reconcile, |_, e, _| error_action("job controller", e), ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("job controller: {e}");
            }
        })
        .await;
}

fn has_tracking_finalizer(p: &Pod) -> bool {
    p.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

fn condition_true<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Complete or Failed.
pub fn is_finished(status: &JobStatus) -> bool {
    condition_true(status, "Complete").is_some() || condition_true(status, "Failed").is_some()
}

/// Sets a condition (upstream `ensureJobConditionStatus`): a new one, or an existing one whose
/// status changes (its transition time moves); unchanged ones are left alone.
fn set_condition(
    conds: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status == status && c.reason.as_deref() == Some(reason) {
            return false;
        }
        c.status = status.into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
        c.last_probe_time = Some(Time(now));
        c.last_transition_time = Some(Time(now));
        return true;
    }
    conds.push(JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
    true
}

/// A pod's completion index from its annotation.
fn pod_index(p: &Pod) -> Option<i32> {
    p.annotations()
        .get(INDEX_KEY)
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|i| *i >= 0)
}

/// `"1,3-5,7"` as a set.
pub fn parse_indexes(s: Option<&str>) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.unwrap_or("").split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(i) = part.parse() {
                    out.insert(i);
                }
            }
        }
    }
    out
}

/// A set of indexes in upstream's compressed form: ranges of 3 or more as `a-b`, pairs as
/// `a,b`.
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().unwrap_or(end);
        }
        match end - start {
            0 => parts.push(start.to_string()),
            1 => parts.push(format!("{start},{end}")),
            _ => parts.push(format!("{start}-{end}")),
        }
    }
    parts.join(",")
}

async fn reconcile(cached: Arc<Job>, ctx: Arc<JobController>) -> Result<Action, Error> {
    // Decisions are made on the live object: the cache may not have our last status write
    // yet, and counts read from it would create pods twice (upstream needs expectations
    // for the same reason).
    let jobs: Api<Job> =
        Api::namespaced(ctx.client.clone(), &cached.namespace().unwrap_or_default());
    let job = match jobs.get_opt(&cached.name_any()).await? {
        Some(j) if j.uid() == cached.uid() => Arc::new(j),
        _ => return Ok(Action::await_change()),
    };
    let Some(spec) = job.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if spec.managed_by.as_deref().is_some_and(|m| m != MANAGED_BY) {
        return Ok(Action::await_change());
    }
    let ns = job.namespace().unwrap_or_default();
    let uid = job.uid().unwrap_or_default();
    let name = job.name_any();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = spec
        .selector
        .as_ref()
        .map(selector_string)
        .unwrap_or_default();
    let pods: Vec<Pod> = pods_api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|p| is_controlled_by(&p.metadata, &uid))
        .collect();
    let old_status = job.status.clone().unwrap_or_default();

    if is_finished(&old_status) || job.metadata.deletion_timestamp.is_some() {
        // Nothing will count these pods any more.
        for p in pods.iter().filter(|p| has_tracking_finalizer(p)) {
            remove_finalizer(&pods_api, p, TRACKING_FINALIZER).await?;
        }
        ctx.backoff.lock().unwrap().remove(&uid);
        if job.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        let expiring: Api<Job> = Api::namespaced(ctx.ttl_client.clone(), &ns);
        return ttl_after_finished(&job, &expiring, &old_status).await;
    }

    let now = Timestamp::now();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let mut status = old_status.clone();
    let mut rv = job.resource_version();

    // --- Counting finished pods (upstream trackJobStatusAndRemoveFinalizers).
    let unc = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut unc_s: BTreeSet<String> = unc.succeeded.unwrap_or_default().into_iter().collect();
    let mut unc_f: BTreeSet<String> = unc.failed.unwrap_or_default().into_iter().collect();
    let mut succeeded = status.succeeded.unwrap_or(0);
    let mut failed = status.failed.unwrap_or(0);
    let mut done_ix = parse_indexes(status.completed_indexes.as_deref());
    let holding: BTreeSet<String> = pods
        .iter()
        .filter(|p| has_tracking_finalizer(p))
        .filter_map(|p| p.uid())
        .collect();
    // Recorded in an earlier round and released since (or gone): count them now.
    let before = (unc_s.len(), unc_f.len());
    unc_s.retain(|u| holding.contains(u));
    unc_f.retain(|u| holding.contains(u));
    succeeded += (before.0 - unc_s.len()) as i32;
    failed += (before.1 - unc_f.len()) as i32;

    let mut release: Vec<&Pod> = Vec::new();
    let mut new_failures = 0u32;
    let mut new_success = false;
    for p in pods.iter().filter(|p| has_tracking_finalizer(p)) {
        let puid = p.uid().unwrap_or_default();
        if unc_s.contains(&puid) || unc_f.contains(&puid) {
            release.push(p);
            continue;
        }
        let phase = pod_phase(p);
        if phase == "Succeeded" {
            if indexed {
                // The index is enough not to count a pod twice.
                if let Some(ix) = pod_index(p).filter(|i| *i < spec.completions.unwrap_or(0)) {
                    new_success |= done_ix.insert(ix);
                }
            } else {
                unc_s.insert(puid);
                new_success = true;
            }
            release.push(p);
        } else if phase == "Failed" || p.metadata.deletion_timestamp.is_some() {
            // A pod deleted before it finished counts as failed (upstream isPodFailed).
            unc_f.insert(puid);
            new_failures += 1;
            release.push(p);
        }
    }
    if indexed {
        succeeded = done_ix.len() as i32;
    }
    {
        let mut b = ctx.backoff.lock().unwrap();
        if new_success {
            b.remove(&uid);
        }
        if new_failures > 0 {
            let e = b.entry(uid.clone()).or_insert((0, Instant::now()));
            e.0 += new_failures;
            e.1 = Instant::now();
        }
    }
    if !release.is_empty() {
        // Record first, then release: a crash in between never loses or doubles a count.
        status.uncounted_terminated_pods = Some(uncounted(&unc_s, &unc_f));
        if indexed {
            status.completed_indexes = Some(format_indexes(&done_ix));
            status.succeeded = (succeeded != 0).then_some(succeeded);
        }
        rv = write_status(&jobs, &name, &rv, &old_status, &status).await?;
        for p in &release {
            remove_finalizer(&pods_api, p, TRACKING_FINALIZER).await?;
        }
        succeeded += if indexed { 0 } else { unc_s.len() as i32 };
        failed += unc_f.len() as i32;
        unc_s.clear();
        unc_f.clear();
    }
    let released: BTreeSet<String> = release.iter().filter_map(|p| p.uid()).collect();

    // --- Deciding what the job needs.
    let mut active: Vec<&Pod> = pods.iter().filter(|p| is_pod_active(p)).collect();
    let mut terminating = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_some()
                && !is_pod_terminal(p)
                && !p.uid().is_some_and(|u| released.contains(&u))
        })
        .count() as i32;
    let suspended = spec.suspend == Some(true);
    let mut conds = status.conditions.clone().unwrap_or_default();
    let mut requeue: Option<Duration> = None;
    let job_ref = events::reference(job.as_ref());

    let mut target = ["FailureTarget", "SuccessCriteriaMet"]
        .iter()
        .find_map(|t| condition_true(&status, t))
        .map(|c| {
            (
                c.type_.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        });
    if target.is_none() {
        let deadline_passed = |start: &Time| {
            spec.active_deadline_seconds
                .is_some_and(|ads| now.as_second() - start.0.as_second() >= ads)
        };
        let complete = if indexed {
            done_ix.len() as i32 >= spec.completions.unwrap_or(0)
        } else {
            match spec.completions {
                None => succeeded > 0 && active.is_empty(),
                Some(c) => succeeded >= c && active.is_empty(),
            }
        };
        target = if failed > backoff_limit {
            Some((
                "FailureTarget".into(),
                "BackoffLimitExceeded".into(),
                MSG_BACKOFF.into(),
            ))
        } else if !suspended && status.start_time.as_ref().is_some_and(deadline_passed) {
            Some((
                "FailureTarget".into(),
                "DeadlineExceeded".into(),
                MSG_DEADLINE.into(),
            ))
        } else if complete {
            Some((
                "SuccessCriteriaMet".into(),
                "CompletionsReached".into(),
                MSG_COMPLETIONS.into(),
            ))
        } else {
            None
        };
    }

    let mut deleted_now = 0;
    let mut created_now = 0;
    if let Some((type_, reason, message)) = &target {
        set_condition(&mut conds, type_, "True", reason, message, now);
        for p in std::mem::take(&mut active) {
            if delete_pod(&ctx, &pods_api, &job_ref, p).await? {
                deleted_now += 1;
            }
        }
        terminating += deleted_now;
        if deleted_now == 0 && terminating == 0 {
            let final_type = if type_ == "FailureTarget" {
                "Failed"
            } else {
                "Complete"
            };
            set_condition(&mut conds, final_type, "True", reason, message, now);
            if final_type == "Complete" {
                status.completion_time = Some(Time(now));
                ctx.recorder
                    .normal(&job_ref, "Completed", "Job completed")
                    .await;
            } else {
                ctx.recorder
                    .warning(&job_ref, reason, message.clone())
                    .await;
            }
        } else {
            // Back once the pods are gone; their events wake the job too.
            requeue = Some(Duration::from_secs(1));
        }
    } else if suspended {
        for p in std::mem::take(&mut active) {
            if delete_pod(&ctx, &pods_api, &job_ref, p).await? {
                terminating += 1;
            }
        }
        if set_condition(
            &mut conds,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        ) {
            ctx.recorder
                .normal(&job_ref, "Suspended", "Job suspended")
                .await;
        }
    } else {
        if condition_true(&status, "Suspended").is_some() {
            set_condition(
                &mut conds,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
                now,
            );
            // The deadline counts from the resumption.
            status.start_time = Some(Time(now));
            ctx.recorder
                .normal(&job_ref, "Resumed", "Job resumed")
                .await;
        }
        if status.start_time.is_none() {
            status.start_time = Some(Time(now));
        }
        let backoff_left = {
            let b = ctx.backoff.lock().unwrap();
            b.get(&uid).and_then(|(n, at)| {
                let delay = BACKOFF_BASE
                    .saturating_mul(2u32.saturating_pow(n.saturating_sub(1)))
                    .min(BACKOFF_MAX);
                delay.checked_sub(at.elapsed()).filter(|d| !d.is_zero())
            })
        };
        let (create, remove) = if indexed {
            plan_indexed(
                &active,
                &done_ix,
                spec.completions.unwrap_or(0),
                parallelism,
            )
        } else {
            let want = match spec.completions {
                None if succeeded > 0 => active.len() as i32,
                None => parallelism,
                Some(c) => parallelism.min((c - succeeded).max(0)),
            };
            plan_non_indexed(&active, want)
        };
        for p in &remove {
            if delete_pod(&ctx, &pods_api, &job_ref, p).await? {
                terminating += 1;
            }
        }
        active.retain(|p| !remove.iter().any(|r| r.uid() == p.uid()));
        if !create.is_empty() {
            if let Some(left) = backoff_left {
                requeue = Some(left);
            } else {
                for ix in create {
                    let pod = new_pod(&job, ix);
                    match pods_api.create(&PostParams::default(), &pod).await {
                        Ok(created) => {
                            ctx.recorder
                                .normal(
                                    &job_ref,
                                    "SuccessfulCreate",
                                    format!("Created pod: {}", created.name_any()),
                                )
                                .await;
                            created_now += 1;
                        }
                        Err(kube::Error::Api(e)) if e.code == 403 || e.code == 409 => {
                            // The namespace is terminating, or a stale view: retry later.
                            requeue = Some(Duration::from_secs(1));
                        }
                        Err(e) => {
                            ctx.recorder
                                .warning(&job_ref, "FailedCreate", format!("Error creating: {e}"))
                                .await;
                            return Err(e.into());
                        }
                    }
                }
            }
        }
        if let (Some(ads), Some(start)) = (spec.active_deadline_seconds, &status.start_time) {
            let left = (start.0.as_second() + ads - now.as_second()).max(0) as u64;
            let left = Duration::from_secs(left) + Duration::from_millis(100);
            requeue = Some(requeue.map_or(left, |r| r.min(left)));
        }
    }

    // `active`, `succeeded` and `failed` are omitted when zero upstream (omitempty);
    // `ready` and `terminating` are pointers and always shown.
    let nonzero = |n: i32| (n != 0).then_some(n);
    status.active = nonzero(active.len() as i32 + created_now);
    status.ready = Some(active.iter().filter(|p| is_pod_ready(p)).count() as i32);
    status.terminating = Some(terminating);
    status.succeeded = nonzero(succeeded);
    status.failed = nonzero(failed);
    status.uncounted_terminated_pods = Some(uncounted(&unc_s, &unc_f));
    if indexed {
        status.completed_indexes = Some(format_indexes(&done_ix));
    }
    status.conditions = (!conds.is_empty()).then_some(conds);
    write_status(&jobs, &name, &rv, &old_status, &status).await?;
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

fn uncounted(
    s: &BTreeSet<String>,
    f: &BTreeSet<String>,
) -> k8s_openapi::api::batch::v1::UncountedTerminatedPods {
    k8s_openapi::api::batch::v1::UncountedTerminatedPods {
        succeeded: (!s.is_empty()).then(|| s.iter().cloned().collect()),
        failed: (!f.is_empty()).then(|| f.iter().cloned().collect()),
    }
}

/// Writes the status if it changed, guarded by the resourceVersion the decisions were made
/// on; returns the new resourceVersion.
async fn write_status(
    jobs: &Api<Job>,
    name: &str,
    rv: &Option<String>,
    old: &JobStatus,
    new: &JobStatus,
) -> Result<Option<String>, Error> {
    let mut value = serde_json::to_value(new).unwrap_or_default();
    let before = serde_json::to_value(old).unwrap_or_default();
    if value == before {
        return Ok(rv.clone());
    }
    // A merge patch keeps what it does not mention: fields now unset are removed explicitly.
    if let (Some(now), Some(was)) = (value.as_object_mut(), before.as_object()) {
        for k in was.keys() {
            now.entry(k.clone()).or_insert(serde_json::Value::Null);
        }
    }
    let unc = &mut value["uncountedTerminatedPods"];
    for k in ["succeeded", "failed"] {
        if unc.get(k).is_none() {
            unc[k] = serde_json::Value::Null;
        }
    }
    let patch = json!({"metadata": {"resourceVersion": rv}, "status": value});
    let updated = jobs.merge_status(name, &patch).await?;
    Ok(updated.resource_version())
}

/// Deletes an active pod of the job; Ok(false) when it was already gone.
async fn delete_pod(
    ctx: &JobController,
    pods: &Api<Pod>,
    job_ref: &k8s_openapi::api::core::v1::ObjectReference,
    p: &Pod,
) -> Result<bool, Error> {
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: p.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match pods.delete(&p.name_any(), &dp).await {
        Ok(_) => {
            ctx.recorder
                .normal(
                    job_ref,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", p.name_any()),
                )
                .await;
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Pods to create (no index) and active pods to delete for a NonIndexed job wanting `want`
/// active pods. The ones deleted first are those least far along (upstream
/// `ActivePodsWithRanks`): unscheduled, then pending, then not ready.
fn plan_non_indexed<'a>(active: &[&'a Pod], want: i32) -> (Vec<Option<i32>>, Vec<&'a Pod>) {
    let have = active.len() as i32;
    if have < want {
        return (vec![None; (want - have) as usize], Vec::new());
    }
    let mut ranked: Vec<&Pod> = active.to_vec();
    ranked.sort_by_key(|p| {
        let scheduled = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        (scheduled, pod_phase(p) == "Running", is_pod_ready(p))
    });
    ranked.truncate((have - want).max(0) as usize);
    (Vec::new(), ranked)
}

/// Indexes to create and active pods to delete for an Indexed job: each pending index gets
/// one pod, lowest first; pods of finished or out-of-range indexes and duplicates go.
fn plan_indexed<'a>(
    active: &[&'a Pod],
    done: &BTreeSet<i32>,
    completions: i32,
    parallelism: i32,
) -> (Vec<Option<i32>>, Vec<&'a Pod>) {
    let mut remove: Vec<&Pod> = Vec::new();
    let mut by_index: BTreeMap<i32, &Pod> = BTreeMap::new();
    for p in active {
        match pod_index(p) {
            Some(ix) if ix < completions && !done.contains(&ix) && !by_index.contains_key(&ix) => {
                by_index.insert(ix, p);
            }
            _ => remove.push(p),
        }
    }
    let want = parallelism.min(completions - done.len() as i32).max(0) as usize;
    while by_index.len() > want {
        if let Some((_, p)) = by_index.pop_last() {
            remove.push(p);
        }
    }
    let create = (0..completions)
        .filter(|ix| !done.contains(ix) && !by_index.contains_key(ix))
        .take(want - by_index.len())
        .map(Some)
        .collect();
    (create, remove)
}

/// A pod for the job (upstream `GetPodFromTemplate` plus the job's additions).
fn new_pod(job: &Job, index: Option<i32>) -> Pod {
    let name = job.name_any();
    let prefix = match index {
        Some(ix) => format!("{name}-{ix}"),
        None => name.clone(),
    };
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut pod = pod_from_template(
        &template,
        controller_ref(job),
        &job.namespace().unwrap_or_default(),
        None,
        &prefix,
    );
    pod.metadata
        .finalizers
        .get_or_insert_with(Vec::new)
        .push(TRACKING_FINALIZER.into());
    if let Some(ix) = index {
        pod.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(INDEX_KEY.into(), ix.to_string());
        pod.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(INDEX_KEY.into(), ix.to_string());
        if let Some(ps) = pod.spec.as_mut() {
            if ps.hostname.as_deref().is_none_or(str::is_empty) {
                ps.hostname = Some(format!("{name}-{ix}"));
            }
            let env = EnvVar {
                name: INDEX_ENV.into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.annotations['{INDEX_KEY}']"),
                    }),
                    ..Default::default()
                }),
            };
            let containers = ps
                .containers
                .iter_mut()
                .chain(ps.init_containers.iter_mut().flatten());
            for c in containers {
                let vars = c.env.get_or_insert_with(Vec::new);
                if !vars.iter().any(|v| v.name == INDEX_ENV) {
                    vars.push(env.clone());
                }
            }
        }
    }
    pod
}

/// Upstream ttlafterfinished: a finished job whose TTL has run out is deleted with its pods
/// (Background propagation), checked against the live object first.
async fn ttl_after_finished(
    job: &Job,
    jobs: &Api<Job>,
    status: &JobStatus,
) -> Result<Action, Error> {
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return Ok(Action::await_change());
    };
    let finished_at = ["Complete", "Failed"]
        .iter()
        .find_map(|t| condition_true(status, t))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0.as_millisecond())
        .unwrap_or_else(|| Timestamp::now().as_millisecond());
    let left = finished_at + i64::from(ttl) * 1000 - Timestamp::now().as_millisecond();
    if left > 0 {
        return Ok(Action::requeue(Duration::from_millis(left as u64 + 50)));
    }
    let Some(live) = jobs.get_opt(&job.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if live.uid() != job.uid() || live.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: live.uid(),
            resource_version: live.resource_version(),
        }),
        ..Default::default()
    };
    match jobs.delete(&job.name_any(), &dp).await {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// Pods still holding the tracking finalizer whose job is gone (deleted, or orphaned them)
/// would stay forever: release them (upstream `syncOrphanPod`).
async fn release_orphan_pods(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut stream = watcher(pods, watcher::Config::default()).boxed();
    while let Some(ev) = stream.next().await {
        let pod = match ev {
            Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => p,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!("job controller: watching pods: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if !has_tracking_finalizer(&pod) {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let owner = controller_of(&pod.metadata)
            .filter(|r| r.kind == "Job" && r.api_version == "batch/v1")
            .cloned();
        let orphan = match &owner {
            None => true,
            Some(r) => {
                // Only a pod on its way out can have lost its job; anything else is the
                // job's own business.
                if pod.metadata.deletion_timestamp.is_none() && !is_pod_terminal(&pod) {
                    continue;
                }
                let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
                match jobs.get_opt(&r.name).await {
                    Ok(Some(j)) => {
                        j.uid().as_deref() != Some(r.uid.as_str())
                            || j.status.as_ref().is_some_and(is_finished)
                    }
                    Ok(None) => true,
                    Err(_) => continue,
                }
            }
        };
        if orphan {
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            if let Err(e) = remove_finalizer(&api, &pod, TRACKING_FINALIZER).await {
                tracing::debug!(
                    "job controller: releasing orphan pod {}: {e}",
                    pod.name_any()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_round_trip_in_upstream_form() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format_indexes(&set), "0-2,4,6,7");
        assert_eq!(parse_indexes(Some("0-2,4,6,7")), set);
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }
}
