//! An event recorder: controllers report what they did as core/v1 Events, the collection
//! `kubectl describe` and `kubectl get events` read. Repeats of the same event within a short
//! window bump `count` and `lastTimestamp` instead of creating new objects, as upstream's
//! correlator does. Events are queued and written by a task of the recorder's own, so a
//! controller never waits on them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use tokio::sync::mpsc;

/// How long a repeated event is folded into the previous one.
const FOLD_WINDOW: Duration = Duration::from_secs(600);

/// Events waiting to be written, per component (upstream's broadcaster queues 1 000 and
/// drops what does not fit: a controller never waits on its events).
const QUEUE: usize = 1000;

/// Events written at once per component; distinct events (one per pod of a burst) need not
/// wait for each other's round trip.
const IN_FLIGHT: usize = 16;

/// Recent events by what they say: (name, namespace, count, when), with the keys in the
/// order they were last written so expiry looks only at the oldest.
#[derive(Default)]
struct Seen {
    by_key: HashMap<String, (String, String, i32, Instant)>,
    order: VecDeque<(Instant, String)>,
}

impl Seen {
    fn expire(&mut self) {
        while let Some((at, _)) = self.order.front() {
            if at.elapsed() < FOLD_WINDOW {
                break;
            }
            let (at, key) = self.order.pop_front().expect("front");
            if self.by_key.get(&key).is_some_and(|e| e.3 == at) {
                self.by_key.remove(&key);
            }
        }
    }

    fn insert(&mut self, key: String, name: String, ns: String, count: i32) {
        let at = Instant::now();
        self.order.push_back((at, key.clone()));
        self.by_key.insert(key, (name, ns, count, at));
    }
}

struct Pending {
    regarding: ObjectReference,
    type_: &'static str,
    reason: String,
    note: String,
    at: Timestamp,
}

/// Writes Events on behalf of one component; clones share one queue and the memory of
/// recent events, so repeats fold into one object.
#[derive(Clone)]
pub struct Recorder {
    component: &'static str,
    queue: mpsc::Sender<Pending>,
    /// Events dropped for a full queue: a burst drops thousands, and a log line each
    /// cost more than the events.
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

struct Writer {
    client: Client,
    component: &'static str,
    seen: Mutex<Seen>,
}

impl Recorder {
    /// `component` is the reporting controller, e.g. `deployment-controller` or
    /// `default-scheduler`. Starts the component's event writer (needs a Tokio runtime).
    pub fn new(client: Client, component: &'static str) -> Recorder {
        let (queue, mut rx) = mpsc::channel(QUEUE);
        let writer = Arc::new(Writer {
            client,
            component,
            seen: Mutex::new(Seen::default()),
        });
        tokio::spawn(
            futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).for_each_concurrent(
                IN_FLIGHT,
                move |p| {
                    let writer = writer.clone();
                    async move { writer.write(p).await }
                },
            ),
        );
        Recorder {
            component,
            queue,
            dropped: Arc::default(),
        }
    }

    /// Records a `Normal` event about `regarding`.
    pub async fn normal(&self, regarding: &ObjectReference, reason: &str, note: impl Into<String>) {
        self.record(regarding, "Normal", reason, note.into()).await
    }

    /// Records a `Warning` event about `regarding`.
    pub async fn warning(
        &self,
        regarding: &ObjectReference,
        reason: &str,
        note: impl Into<String>,
    ) {
        self.record(regarding, "Warning", reason, note.into()).await
    }

    /// Queues an event; it is written shortly after, or dropped (and logged) when the queue
    /// is full. Events are best effort: failures are logged, never returned.
    pub async fn record(
        &self,
        regarding: &ObjectReference,
        type_: &'static str,
        reason: &str,
        note: String,
    ) {
        let p = Pending {
            regarding: regarding.clone(),
            type_,
            reason: reason.into(),
            note,
            at: Timestamp::now(),
        };
        if let Err(mpsc::error::TrySendError::Full(p)) = self.queue.try_send(p) {
            let n = 1 + self
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    "{}: event queue full, dropping event {} about {} ({n} dropped since start, \
                     logged at powers of two)",
                    self.component,
                    p.reason,
                    p.regarding.name.as_deref().unwrap_or("")
                );
            }
        }
    }
}

impl Writer {
    async fn write(&self, p: Pending) {
        let Pending {
            regarding,
            type_,
            reason,
            note,
            at: now,
        } = p;
        let ns = regarding
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let fold_key = format!(
            "{}/{}/{}/{}/{type_}/{reason}/{note}",
            regarding.kind.as_deref().unwrap_or(""),
            ns,
            regarding.name.as_deref().unwrap_or(""),
            regarding.uid.as_deref().unwrap_or(""),
        );
        let previous = {
            let mut seen = self.seen.lock().unwrap();
            seen.expire();
            seen.by_key.get(&fold_key).cloned()
        };
        if let Some((name, ens, count, _)) = previous {
            let patch = serde_json::json!({
                "count": count + 1,
                "lastTimestamp": Time(now),
            });
            let api: Api<Event> = Api::namespaced(self.client.clone(), &ens);
            if api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                self.seen
                    .lock()
                    .unwrap()
                    .insert(fold_key, name, ens, count + 1);
                return;
            }
        }
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or("unknown"),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: regarding,
            reason: Some(reason.clone()),
            message: Some(note),
            type_: Some(type_.into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            source: Some(EventSource {
                component: Some(self.component.into()),
                host: None,
            }),
            reporting_component: Some(self.component.into()),
            reporting_instance: Some(format!("{}-reddwarf", self.component)),
            action: Some(reason.clone()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => self.seen.lock().unwrap().insert(fold_key, name, ns, 1),
            Err(e) => tracing::debug!("{}: recording event {reason}: {e}", self.component),
        }
    }
}

/// A reference to `obj` for an event's `involvedObject`.
pub fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    obj.object_ref(&())
}
