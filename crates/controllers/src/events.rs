//! An event recorder: controllers report what they did as core/v1 Events, the collection
//! `kubectl describe` and `kubectl get events` read. Repeats of the same event within a short
//! window bump `count` and `lastTimestamp` instead of creating new objects, as upstream's
//! correlator does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource};

/// How long a repeated event is folded into the previous one.
const FOLD_WINDOW: Duration = Duration::from_secs(600);

/// Recent events by what they say: (name, namespace, count, when).
type Seen = HashMap<String, (String, String, i32, Instant)>;

/// Writes Events on behalf of one component; clones share the memory of recent events, so
/// repeats fold into one object.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: &'static str,
    seen: Arc<Mutex<Seen>>,
}

impl Recorder {
    /// `component` is the reporting controller, e.g. `deployment-controller` or
    /// `default-scheduler`.
    pub fn new(client: Client, component: &'static str) -> Recorder {
        Recorder {
            client,
            component,
            seen: Arc::new(Mutex::new(HashMap::new())),
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

    /// Records an event; failures are logged, never returned (events are best effort).
    pub async fn record(
        &self,
        regarding: &ObjectReference,
        type_: &str,
        reason: &str,
        note: String,
    ) {
        let ns = regarding
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let now = Timestamp::now();
        let fold_key = format!(
            "{}/{}/{}/{}/{type_}/{reason}/{note}",
            regarding.kind.as_deref().unwrap_or(""),
            ns,
            regarding.name.as_deref().unwrap_or(""),
            regarding.uid.as_deref().unwrap_or(""),
        );
        let previous = {
            let mut seen = self.seen.lock().unwrap();
            seen.retain(|_, (_, _, _, at)| at.elapsed() < FOLD_WINDOW);
            seen.get(&fold_key).cloned()
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
                    .insert(fold_key, (name, ens, count + 1, Instant::now()));
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
            involved_object: regarding.clone(),
            reason: Some(reason.into()),
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
            action: Some(reason.into()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                self.seen
                    .lock()
                    .unwrap()
                    .insert(fold_key, (name, ns, 1, Instant::now()));
            }
            Err(e) => tracing::debug!("{}: recording event {reason}: {e}", self.component),
        }
    }
}

/// A reference to `obj` for an event's `involvedObject`.
pub fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    obj.object_ref(&())
}
