//! The scheduler (upstream's default profile, `default-scheduler`): a queue of pending pods
//! ordered by priority, a cache of nodes and assigned pods fed by watches, filters and scores
//! per pod, and binding through `pods/binding`. Pods that fit nowhere get
//! `PodScheduled=False/Unschedulable` and a FailedScheduling event with upstream's
//! "0/N nodes are available: …" message, and are retried when the cluster changes.

pub(crate) mod cache;
mod plugins;
mod volumes;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{
    Binding, Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::Client;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, Semaphore};

use crate::events::{self, Recorder};
use crate::pod_cache::{CachedPod, PodCache, PodEvent};
use cache::{uid, Cache};
pub use plugins::{tolerated, tolerates};

/// The profile name: pods whose `spec.schedulerName` is this (or unset) are scheduled here,
/// and events and metrics are reported under it.
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// Bindings in flight at once (each is one raft write; the proposer batches them).
const MAX_BINDS_IN_FLIGHT: usize = 64;
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried at least this often even if nothing seems to change
/// (upstream: 5 minutes).
const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    result: &'static str,
    profile: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: &'static str,
}

/// Upstream's scheduler metric names.
#[derive(Clone)]
pub struct Metrics {
    attempts: Family<AttemptLabels, Counter>,
    pending: Family<QueueLabels, Gauge>,
    attempt_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            attempts: Family::default(),
            pending: Family::default(),
            attempt_seconds: Histogram::new([
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
            ]),
        }
    }
}

impl Metrics {
    /// Adds the scheduler's metrics to `r` (served on `/metrics`).
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "scheduler_schedule_attempts",
            "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
            self.attempts.clone(),
        );
        r.register(
            "scheduler_pending_pods",
            "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods.",
            self.pending.clone(),
        );
        r.register(
            "scheduler_scheduling_algorithm_duration_seconds",
            "Scheduling algorithm latency in seconds",
            self.attempt_seconds.clone(),
        );
    }

    fn attempt(&self, result: &'static str) {
        self.attempts
            .get_or_create(&AttemptLabels {
                result,
                profile: SCHEDULER_NAME,
            })
            .inc();
    }
}

// Each event is handled as soon as it arrives; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Ev {
    Pod(PodEvent),
    Node(watcher::Event<Node>),
    Claim(watcher::Event<PersistentVolumeClaim>),
    Volume(watcher::Event<PersistentVolume>),
    Class(watcher::Event<StorageClass>),
}

enum BindResult {
    Bound,
    /// The pod is gone or already assigned: nothing to retry.
    Gone,
    Failed(String),
}

#[derive(Clone, Copy, PartialEq)]
enum Where {
    Active,
    Backoff(Instant),
    Unschedulable(Instant),
    /// Being bound.
    InFlight,
}

struct Entry {
    pod: Arc<CachedPod>,
    seq: u64,
    priority: i32,
    attempts: u32,
    at: Where,
}

type ActiveKey = (Reverse<i32>, u64, String);

/// The scheduling queue (upstream: activeQ, backoffQ, unschedulablePods).
#[derive(Default)]
struct Queue {
    entries: HashMap<String, Entry>,
    active: BTreeSet<ActiveKey>,
    seq: u64,
}

fn wants_us(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let name = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or(SCHEDULER_NAME);
    let unassigned = spec
        .and_then(|s| s.node_name.as_deref())
        .is_none_or(str::is_empty);
    let gated = spec
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    name == SCHEDULER_NAME
        && unassigned
        && !gated
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// What, if changed, may make an unschedulable pod schedulable (not its status).
fn scheduling_inputs(pod: &Pod) -> (Option<String>, Option<String>) {
    (
        serde_json::to_string(&pod.spec).ok(),
        serde_json::to_string(&pod.metadata.labels).ok(),
    )
}

fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(8);
    (INITIAL_BACKOFF * 2u32.pow(exp)).min(MAX_BACKOFF)
}

impl Queue {
    fn key(e: &Entry, uid: &str) -> ActiveKey {
        (Reverse(e.priority), e.seq, uid.to_string())
    }

    fn add_or_update(&mut self, pod: Arc<CachedPod>) {
        let id = uid(&pod);
        if let Some(e) = self.entries.get_mut(&id) {
            let changed = scheduling_inputs(&e.pod) != scheduling_inputs(&pod);
            e.pod = pod;
            if changed {
                if let Where::Unschedulable(_) = e.at {
                    e.at = Where::Active;
                    let k = Self::key(e, &id);
                    self.active.insert(k);
                }
            }
            return;
        }
        self.seq += 1;
        let e = Entry {
            priority: pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
            pod,
            seq: self.seq,
            attempts: 0,
            at: Where::Active,
        };
        self.active.insert(Self::key(&e, &id));
        self.entries.insert(id, e);
    }

    fn remove(&mut self, id: &str) {
        if let Some(e) = self.entries.remove(id) {
            self.active.remove(&Self::key(&e, id));
        }
    }

    /// A cluster change: unschedulable pods get another try (after their backoff).
    fn move_all(&mut self, now: Instant) {
        for (id, e) in self.entries.iter_mut() {
            if let Where::Unschedulable(since) = e.at {
                let ready = since + backoff(e.attempts);
                if ready <= now {
                    e.at = Where::Active;
                    self.active.insert(Self::key(e, id));
                } else {
                    e.at = Where::Backoff(ready);
                }
            }
        }
    }

    /// Moves pods whose backoff ended (and long-unschedulable ones) to active; returns when
    /// the next backoff ends.
    fn tick(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for (id, e) in self.entries.iter_mut() {
            match e.at {
                Where::Backoff(t) if t <= now => {
                    e.at = Where::Active;
                    self.active.insert(Self::key(e, id));
                }
                Where::Backoff(t) => next = Some(next.map_or(t, |n| n.min(t))),
                Where::Unschedulable(since) if now.duration_since(since) >= UNSCHEDULABLE_FLUSH => {
                    e.at = Where::Active;
                    self.active.insert(Self::key(e, id));
                }
                Where::Unschedulable(since) => {
                    let t = since + UNSCHEDULABLE_FLUSH;
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
                _ => {}
            }
        }
        next
    }

    fn pop(&mut self) -> Option<(String, Arc<CachedPod>)> {
        let k = self.active.pop_first()?;
        let e = self.entries.get_mut(&k.2)?;
        e.at = Where::InFlight;
        e.attempts += 1;
        Some((k.2, e.pod.clone()))
    }

    fn failed(&mut self, id: &str, now: Instant, unschedulable: bool) {
        if let Some(e) = self.entries.get_mut(id) {
            e.at = if unschedulable {
                Where::Unschedulable(now)
            } else {
                Where::Backoff(now + backoff(e.attempts))
            };
        }
    }

    fn counts(&self) -> (i64, i64, i64) {
        let (mut a, mut b, mut u) = (0, 0, 0);
        for e in self.entries.values() {
            match e.at {
                Where::Active | Where::InFlight => a += 1,
                Where::Backoff(_) => b += 1,
                Where::Unschedulable(_) => u += 1,
            }
        }
        (a, b, u)
    }
}

struct Scheduler {
    client: Client,
    cache: Cache,
    queue: Queue,
    recorder: Recorder,
    binds: Arc<Semaphore>,
    results: mpsc::UnboundedSender<(String, BindResult)>,
    metrics: Metrics,
    next_start: usize,
    tie_breaker: usize,
    seen_nodes: Option<HashSet<String>>,
    volumes: volumes::VolumeCache,
    /// Volume decisions of pods being bound, undone if the binding fails.
    volume_decisions: HashMap<String, Arc<volumes::Decision>>,
}

/// Runs the scheduler until the process ends, recording into `metrics`. Pods come from the
/// shared cache (the same objects as the controllers'), not a watch of its own.
pub async fn run(client: Client, metrics: Metrics, pods: PodCache) {
    let pods = pods.follow().map(|e| Ok(Ev::Pod(e)));
    let nodes = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .map(|e| e.map(|e| Ev::Node(e.modify(|n| *n = crate::node_slim::slim(std::mem::take(n))))));
    let claims = watcher(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    )
    .map(|e| e.map(Ev::Claim));
    let pvs = watcher(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
    )
    .map(|e| e.map(Ev::Volume));
    let classes = watcher(
        Api::<StorageClass>::all(client.clone()),
        watcher::Config::default(),
    )
    .map(|e| e.map(Ev::Class));
    let storage = futures::stream::select(claims, futures::stream::select(pvs, classes));
    let mut events = futures::stream::select(futures::stream::select(pods, nodes), storage).boxed();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut s = Scheduler {
        recorder: Recorder::new(client.clone(), SCHEDULER_NAME),
        client,
        cache: Cache::default(),
        queue: Queue::default(),
        binds: Arc::new(Semaphore::new(MAX_BINDS_IN_FLIGHT)),
        results: tx,
        metrics,
        next_start: 0,
        tie_breaker: 0,
        seen_nodes: None,
        volumes: volumes::VolumeCache::default(),
        volume_decisions: HashMap::new(),
    };
    loop {
        // Take in everything the watches have before deciding: a fresher cache decides better.
        while let Some(Some(ev)) = events.next().now_or_never() {
            s.handle(ev);
        }
        while let Ok((id, r)) = rx.try_recv() {
            s.bound(&id, r);
        }
        let now = Instant::now();
        let next = s.queue.tick(now);
        s.publish_queue();
        if s.queue.active.is_empty() {
            let wait = next
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(UNSCHEDULABLE_FLUSH);
            tokio::select! {
                ev = events.next() => match ev {
                    Some(ev) => s.handle(ev),
                    None => return,
                },
                r = rx.recv() => if let Some((id, r)) = r { s.bound(&id, r) },
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        // Never bind more than the semaphore allows: wait for a permit first.
        let permit = match s.binds.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tokio::select! {
                    r = rx.recv() => if let Some((id, r)) = r { s.bound(&id, r) },
                    ev = events.next() => if let Some(ev) = ev { s.handle(ev) },
                }
                continue;
            }
        };
        if let Some((id, pod)) = s.queue.pop() {
            s.schedule_one(id, pod, permit);
        }
    }
}

impl Scheduler {
    fn publish_queue(&self) {
        let (a, b, u) = self.queue.counts();
        for (q, v) in [("active", a), ("backoff", b), ("unschedulable", u)] {
            self.metrics
                .pending
                .get_or_create(&QueueLabels { queue: q })
                .set(v);
        }
    }

    fn handle(&mut self, ev: Result<Ev, watcher::Error>) {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!("scheduler watch: {e}");
                return;
            }
        };
        let now = Instant::now();
        match ev {
            // Any change of claims, volumes or classes may let a waiting pod through.
            Ev::Claim(e) => {
                match e {
                    watcher::Event::Init => self.volumes.claims.clear(),
                    watcher::Event::InitApply(c) | watcher::Event::Apply(c) => {
                        self.volumes.set_claim(c)
                    }
                    watcher::Event::Delete(c) => {
                        self.volumes.claims.remove(&(
                            c.metadata.namespace.clone().unwrap_or_default(),
                            c.metadata.name.clone().unwrap_or_default(),
                        ));
                    }
                    watcher::Event::InitDone => {}
                }
                self.queue.move_all(now);
            }
            Ev::Volume(e) => {
                match e {
                    watcher::Event::Init => self.volumes.volumes.clear(),
                    watcher::Event::InitApply(v) | watcher::Event::Apply(v) => {
                        self.volumes.set_volume(v)
                    }
                    watcher::Event::Delete(v) => {
                        self.volumes
                            .volumes
                            .remove(v.metadata.name.as_deref().unwrap_or(""));
                    }
                    watcher::Event::InitDone => {}
                }
                self.queue.move_all(now);
            }
            Ev::Class(e) => {
                match e {
                    watcher::Event::Init => self.volumes.classes.clear(),
                    watcher::Event::InitApply(c) | watcher::Event::Apply(c) => {
                        self.volumes
                            .classes
                            .insert(c.metadata.name.clone().unwrap_or_default(), Arc::new(c));
                    }
                    watcher::Event::Delete(c) => {
                        self.volumes
                            .classes
                            .remove(c.metadata.name.as_deref().unwrap_or(""));
                    }
                    watcher::Event::InitDone => {}
                }
                self.queue.move_all(now);
            }
            Ev::Node(e) => match e {
                watcher::Event::Init => self.seen_nodes = Some(HashSet::new()),
                watcher::Event::InitApply(n) | watcher::Event::Apply(n) => {
                    if let Some(seen) = self.seen_nodes.as_mut() {
                        seen.insert(n.metadata.name.clone().unwrap_or_default());
                    }
                    self.cache.set_node(Arc::new(n));
                    self.queue.move_all(now);
                }
                watcher::Event::Delete(n) => {
                    self.cache
                        .remove_node(n.metadata.name.as_deref().unwrap_or(""));
                }
                watcher::Event::InitDone => {
                    if let Some(seen) = self.seen_nodes.take() {
                        let gone: Vec<String> = self
                            .cache
                            .nodes
                            .keys()
                            .filter(|n| !seen.contains(*n))
                            .cloned()
                            .collect();
                        for n in gone {
                            self.cache.remove_node(&n);
                        }
                    }
                    self.queue.move_all(now);
                }
            },
            Ev::Pod(PodEvent::Applied(p)) => self.pod_changed(p, now),
            Ev::Pod(PodEvent::Deleted(p)) => {
                let id = uid(&p);
                self.cache.remove_pod(&id);
                self.queue.remove(&id);
                self.queue.move_all(now);
            }
            Ev::Pod(PodEvent::Relisted(all)) => {
                let seen: HashSet<String> = all.iter().map(|p| uid(p)).collect();
                for p in all {
                    self.pod_changed(p, now);
                }
                // What the list lacks is gone (but a pod being bound is ours to track).
                let gone: Vec<String> = self
                    .cache
                    .pods
                    .keys()
                    .chain(self.queue.entries.keys())
                    .filter(|u| !seen.contains(*u) && !self.cache.assumed.contains(*u))
                    .cloned()
                    .collect();
                for id in gone {
                    self.cache.remove_pod(&id);
                    self.queue.remove(&id);
                }
            }
        }
    }

    fn pod_changed(&mut self, pod: Arc<CachedPod>, now: Instant) {
        let id = uid(&pod);
        let assigned = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if assigned {
            let was_occupying = self.cache.pods.contains_key(&id);
            let queued_in_flight = self
                .queue
                .entries
                .get(&id)
                .is_some_and(|e| e.at == Where::InFlight);
            if !queued_in_flight {
                self.queue.remove(&id);
            }
            self.cache.set_pod(pod);
            // A pod that finished frees its node.
            if was_occupying && !self.cache.pods.contains_key(&id) {
                self.queue.move_all(now);
            }
        } else if wants_us(&pod) {
            self.queue.add_or_update(pod);
        } else {
            self.queue.remove(&id);
        }
    }

    fn bound(&mut self, id: &str, r: BindResult) {
        let decision = self.volume_decisions.remove(id);
        if let (BindResult::Failed(_), Some(d)) = (&r, &decision) {
            volumes::forget(&mut self.volumes, d);
        }
        match r {
            BindResult::Bound => {
                self.metrics.attempt("scheduled");
                self.queue.remove(id);
            }
            BindResult::Gone => {
                self.cache.forget(id);
                self.queue.remove(id);
            }
            BindResult::Failed(e) => {
                self.metrics.attempt("error");
                tracing::warn!("scheduler: binding pod {id}: {e}");
                self.cache.forget(id);
                self.queue.failed(id, Instant::now(), false);
            }
        }
    }

    /// Puts a pod that fits nowhere back in the unschedulable set and reports why
    /// (`PodScheduled=False` and a `FailedScheduling` event), after evicting the victims
    /// preemption chose on a node, if any.
    fn report_unschedulable(
        &mut self,
        id: &str,
        pod: Arc<CachedPod>,
        message: String,
        preemption: Option<(String, Vec<Arc<CachedPod>>)>,
    ) {
        self.queue.failed(id, Instant::now(), true);
        let client = self.client.clone();
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            if let Some((node, victims)) = preemption {
                evict_victims(&client, &recorder, &pod, &node, victims).await;
            }
            mark_unschedulable(&client, &pod, "Unschedulable", &message).await;
            recorder
                .warning(
                    &events::reference(pod.as_ref()),
                    "FailedScheduling",
                    message,
                )
                .await;
        });
    }

    /// How many feasible nodes to look for before scoring (upstream's adaptive
    /// percentageOfNodesToScore: 50% minus 1% per 125 nodes, at least 5%, at least 100).
    fn feasible_to_find(n: usize) -> usize {
        if n < 100 {
            return n;
        }
        let pct = (50 - (n as i64) / 125).max(5) as usize;
        (n * pct / 100).max(100)
    }

    fn schedule_one(
        &mut self,
        id: String,
        pod: Arc<CachedPod>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let started = Instant::now();
        let n = self.cache.nodes.len();
        let pod_volumes = match volumes::prefilter(&pod, &self.volumes) {
            Ok(v) => v,
            Err(msg) => {
                // PreFilter rejected the pod for every node at once.
                self.metrics
                    .attempt_seconds
                    .observe(started.elapsed().as_secs_f64());
                drop(permit);
                self.metrics.attempt("unschedulable");
                let message = if n == 0 {
                    fit_error(&pod, 0, &BTreeMap::new(), 0)
                } else {
                    format!(
                        "0/{n} nodes are available: {msg}.{}",
                        preemption_note(&pod, n, 0)
                    )
                };
                self.report_unschedulable(&id, pod, message, None);
                return;
            }
        };
        let st = plugins::PodState::new(&pod, &self.cache);
        let want = Self::feasible_to_find(n);
        let nodes: Vec<&cache::NodeInfo> = self.cache.nodes.values().collect();
        let mut feasible: Vec<&cache::NodeInfo> = Vec::new();
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut helpful = 0usize;
        let mut visited = 0;
        let start = if n == 0 { 0 } else { self.next_start % n };
        for i in 0..n {
            let node = nodes[(start + i) % n];
            visited += 1;
            let mut r = plugins::filter(&st, node);
            if let (true, Some(v)) = (r.is_empty(), pod_volumes.as_ref()) {
                r = volumes::filter(v, &node.node)
                    .0
                    .into_iter()
                    .map(String::from)
                    .collect();
            }
            if r.is_empty() {
                feasible.push(node);
                if feasible.len() >= want {
                    break;
                }
            } else {
                if r.iter().all(|x| plugins::preemption_could_help(x)) {
                    helpful += 1;
                }
                for x in r {
                    *reasons.entry(x).or_default() += 1;
                }
            }
        }
        self.next_start = start + visited;
        let chosen = match feasible.len() {
            0 => None,
            1 => Some(feasible[0].name().to_string()),
            _ => {
                let raw: Vec<plugins::Raw> = feasible
                    .iter()
                    .map(|n| plugins::raw_scores(&st, n))
                    .collect();
                let scores = plugins::total_scores(&raw);
                let best = scores.iter().cloned().fold(f64::MIN, f64::max);
                let ties: Vec<usize> = (0..scores.len())
                    .filter(|i| (scores[*i] - best).abs() < 1e-9)
                    .collect();
                self.tie_breaker = self.tie_breaker.wrapping_add(1);
                let pick = ties[self.tie_breaker % ties.len()];
                Some(feasible[pick].name().to_string())
            }
        };
        self.metrics
            .attempt_seconds
            .observe(started.elapsed().as_secs_f64());
        match chosen {
            Some(node) => {
                self.cache.assume(&pod, &node);
                let decision = match (pod_volumes.as_ref(), self.cache.nodes.get(&node)) {
                    (Some(v), Some(info)) => volumes::filter(v, &info.node).1,
                    _ => volumes::Decision::default(),
                };
                let decision = Arc::new(decision);
                if !decision.is_empty() {
                    volumes::assume(&mut self.volumes, &decision, &node);
                    self.volume_decisions.insert(id.clone(), decision.clone());
                }
                let client = self.client.clone();
                let results = self.results.clone();
                let recorder = self.recorder.clone();
                tokio::spawn(async move {
                    if !decision.is_empty() {
                        // Waiting for the PV controller must not hold a binding slot.
                        drop(permit);
                        if let Err(e) = volumes::bind_pod_volumes(&client, &decision, &node).await {
                            let message = format!("running PreBind plugin \"VolumeBinding\": {e}");
                            mark_unschedulable(&client, &pod, "SchedulerError", &message).await;
                            recorder
                                .warning(
                                    &events::reference(pod.as_ref()),
                                    "FailedScheduling",
                                    message.clone(),
                                )
                                .await;
                            let _ = results.send((id, BindResult::Failed(message)));
                            return;
                        }
                        let r = bind(&client, &pod, &node).await;
                        report_bind(&recorder, &results, id, &pod, &node, r).await;
                        return;
                    }
                    let r = bind(&client, &pod, &node).await;
                    drop(permit);
                    report_bind(&recorder, &results, id, &pod, &node, r).await;
                });
            }
            None => {
                drop(permit);
                self.metrics.attempt("unschedulable");
                let can_preempt = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.preemption_policy.as_deref())
                    != Some("Never");
                if can_preempt && helpful > 0 {
                    if let Some((node, victims)) = self.preempt(&st) {
                        let message = fit_error(&pod, n, &reasons, 0)
                            .split(" preemption:")
                            .next()
                            .unwrap_or_default()
                            .to_string();
                        self.report_unschedulable(&id, pod, message, Some((node, victims)));
                        return;
                    }
                }
                let message = fit_error(&pod, n, &reasons, helpful);
                self.report_unschedulable(&id, pod, message, None);
            }
        }
    }
}

impl Scheduler {
    /// Upstream DefaultPreemption, simplified: on each node where only resources stand in
    /// the way, remove every lower-priority pod, check the pod fits, then give back victims
    /// from the highest priority down while it still fits. The node whose most important
    /// victim matters least (then fewest victims) wins.
    fn preempt(&self, st: &plugins::PodState) -> Option<(String, Vec<Arc<CachedPod>>)> {
        let prio = cache::priority(st.pod);
        // ((most important victim, victims), node, victims)
        type Choice = ((i32, usize), String, Vec<Arc<CachedPod>>);
        let mut best: Option<Choice> = None;
        for node in self.cache.nodes.values() {
            let r = plugins::filter(st, node);
            if r.is_empty() || !r.iter().all(|x| plugins::preemption_could_help(x)) {
                continue;
            }
            let mut lower: Vec<(&String, &cache::PodInfo)> = node
                .pods
                .iter()
                .filter_map(|u| self.cache.pods.get(u).map(|p| (u, p)))
                .filter(|(_, p)| {
                    cache::priority(&p.pod) < prio && p.pod.metadata.deletion_timestamp.is_none()
                })
                .collect();
            if lower.is_empty() {
                continue;
            }
            let mut sim = node.clone();
            for (u, p) in &lower {
                sim.remove_pod(u, p);
            }
            if !plugins::filter(st, &sim).is_empty() {
                continue;
            }
            // Reprieve the most important first.
            lower.sort_by_key(|(_, p)| Reverse(cache::priority(&p.pod)));
            let mut victims = Vec::new();
            for (u, p) in lower {
                sim.add_pod(u, p);
                if !plugins::filter(st, &sim).is_empty() {
                    sim.remove_pod(u, p);
                    victims.push(p.pod.clone());
                }
            }
            let key = (
                victims
                    .iter()
                    .map(|v| cache::priority(v))
                    .max()
                    .unwrap_or(i32::MIN),
                victims.len(),
            );
            if best.as_ref().is_none_or(|(k, _, _)| key < *k) {
                best = Some((key, node.name().to_string(), victims));
            }
        }
        best.map(|(_, n, v)| (n, v))
    }
}

/// Deletes the victims of a preemption (gracefully, with upstream's event) and nominates
/// the node for the preemptor.
async fn evict_victims(
    client: &Client,
    recorder: &Recorder,
    preemptor: &Pod,
    node: &str,
    victims: Vec<Arc<CachedPod>>,
) {
    let ns = preemptor.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let patch = serde_json::json!({"status": {"nominatedNodeName": node}});
    let _ = api
        .patch_status(
            preemptor.metadata.name.as_deref().unwrap_or(""),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await;
    for v in victims {
        let vapi: Api<Pod> = Api::namespaced(
            client.clone(),
            v.metadata.namespace.as_deref().unwrap_or(""),
        );
        let name = v.metadata.name.clone().unwrap_or_default();
        let dp = kube::api::DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: v.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        if vapi.delete(&name, &dp).await.is_ok() {
            recorder
                .normal(
                    &events::reference(v.as_ref()),
                    "Preempted",
                    format!(
                        "Preempted by pod {} on node {node}",
                        preemptor.metadata.uid.as_deref().unwrap_or("")
                    ),
                )
                .await;
        }
    }
}

/// Upstream's FitError message, with the preemption summary it appends.
fn fit_error(pod: &Pod, n: usize, reasons: &BTreeMap<String, usize>, helpful: usize) -> String {
    if n == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut parts: Vec<String> = reasons.iter().map(|(r, c)| format!("{c} {r}")).collect();
    parts.sort();
    format!(
        "0/{n} nodes are available: {}.{}",
        parts.join(", "),
        preemption_note(pod, n, helpful)
    )
}

/// What upstream's PostFilter (DefaultPreemption) adds to a FitError when it found nothing.
fn preemption_note(pod: &Pod, n: usize, helpful: usize) -> String {
    let mut msg = String::new();
    let never = pod
        .spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref())
        == Some("Never");
    if never {
        msg.push_str(" preemption: not eligible due to preemptionPolicy=Never.");
    } else {
        let mut p = Vec::new();
        if helpful > 0 {
            p.push(format!(
                "{helpful} No preemption victims found for incoming pod"
            ));
        }
        if n > helpful {
            p.push(format!(
                "{} Preemption is not helpful for scheduling",
                n - helpful
            ));
        }
        p.sort();
        msg.push_str(&format!(
            " preemption: 0/{n} nodes are available: {}.",
            p.join(", ")
        ));
    }
    msg
}

/// Hands the binding's outcome to the scheduling loop, and records `Scheduled` on success.
async fn report_bind(
    recorder: &Recorder,
    results: &mpsc::UnboundedSender<(String, BindResult)>,
    id: String,
    pod: &Pod,
    node: &str,
    r: BindResult,
) {
    let bound = matches!(r, BindResult::Bound);
    let _ = results.send((id, r));
    if bound {
        let note = format!(
            "Successfully assigned {}/{} to {node}",
            pod.metadata.namespace.as_deref().unwrap_or(""),
            pod.metadata.name.as_deref().unwrap_or("")
        );
        recorder
            .normal(&events::reference(pod), "Scheduled", note)
            .await;
    }
}

async fn bind(client: &Client, pod: &Pod, node: &str) -> BindResult {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.to_string()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            api_version: Some("v1".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    match api
        .create_subresource::<_, serde_json::Value>(
            "binding",
            &name,
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => BindResult::Bound,
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => BindResult::Gone,
        Err(e) => BindResult::Failed(e.to_string()),
    }
}

async fn mark_unschedulable(client: &Client, pod: &Pod, reason: &str, message: &str) {
    let current = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
    if current.is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(message)) {
        return;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let now = k8s_openapi::jiff::Timestamp::now();
    let patch = serde_json::json!({"status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": reason,
        "message": message, "lastProbeTime": null,
        "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
    }]}});
    if let Err(e) = api
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
    {
        tracing::debug!("scheduler: marking {ns}/{name} unschedulable: {e}");
    }
}
