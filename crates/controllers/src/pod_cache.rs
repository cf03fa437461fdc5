//! One watch of every pod, kept by namespace, for the controllers that read a namespace's
//! pods on each sync (the ReplicaSet and ReplicationController controllers) and for pod GC's
//! sweeps: one decoded copy of each pod instead of one per controller. Listing them from
//! the API at every sync cost a full encode and decode of every pod of the set per pod event
//! — quadratic in a rollout, and the transient buffers dominated the server's memory.
//!
//! A cache lags the store. Upstream keeps "expectations" so a controller does not act twice
//! on a cache that has not yet seen its own writes; [`Expectations`] is that, by pod name.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use tokio::sync::{mpsc, watch};

type Namespaces = HashMap<String, HashMap<String, Arc<Pod>>>;

/// Deletions remembered, so a pod created and deleted before a sync looked still counts as
/// seen.
const RECENT_DELETES: usize = 10_000;

#[derive(Default)]
struct State {
    pods: Namespaces,
    deleted: HashSet<(String, String)>,
    deleted_order: std::collections::VecDeque<(String, String)>,
}

/// Every pod, by namespace and name. Cheap to clone; clones share the one watch.
#[derive(Clone)]
pub struct PodCache {
    state: Arc<RwLock<State>>,
    ready: watch::Receiver<bool>,
    subscribers: Subscribers,
}

type Subscribers = Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<Pod>>>>>;

fn publish(subscribers: &Subscribers, pods: &[Arc<Pod>]) {
    subscribers
        .lock()
        .unwrap()
        .retain(|tx| pods.iter().all(|p| tx.send(p.clone()).is_ok()));
}

impl PodCache {
    /// Starts the watch (a task that runs until the process ends).
    pub fn start(client: Client) -> PodCache {
        let state: Arc<RwLock<State>> = Arc::default();
        let (ready_tx, ready) = watch::channel(false);
        let store = state.clone();
        let subscribers: Subscribers = Arc::default();
        let subs = subscribers.clone();
        tokio::spawn(async move {
            let mut buffer: Option<Namespaces> = None;
            let mut events = watcher(Api::<Pod>::all(client), watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(ev) = events.next().await {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        tracing::debug!("pod cache watch: {e}");
                        continue;
                    }
                };
                match ev {
                    watcher::Event::Init => buffer = Some(Namespaces::new()),
                    watcher::Event::InitApply(p) => {
                        insert(buffer.get_or_insert_with(Namespaces::new), p);
                    }
                    watcher::Event::InitDone => {
                        let pods = buffer.take().unwrap_or_default();
                        // After a re-list every pod counts as changed (as a shared
                        // informer's resync): what happened in the gap is in there.
                        let all: Vec<Arc<Pod>> =
                            pods.values().flat_map(|m| m.values().cloned()).collect();
                        store.write().unwrap().pods = pods;
                        let _ = ready_tx.send(true);
                        publish(&subs, &all);
                    }
                    watcher::Event::Apply(p) => {
                        let p = insert(&mut store.write().unwrap().pods, p);
                        publish(&subs, &[p]);
                    }
                    watcher::Event::Delete(p) => {
                        let key = (p.namespace().unwrap_or_default(), p.name_any());
                        let mut st = store.write().unwrap();
                        if let Some(m) = st.pods.get_mut(&key.0) {
                            m.remove(&key.1);
                            if m.is_empty() {
                                st.pods.remove(&key.0);
                            }
                        }
                        if st.deleted.insert(key.clone()) {
                            st.deleted_order.push_back(key);
                        }
                        if st.deleted_order.len() > RECENT_DELETES {
                            if let Some(old) = st.deleted_order.pop_front() {
                                st.deleted.remove(&old);
                            }
                        }
                        drop(st);
                        publish(&subs, &[Arc::new(p)]);
                    }
                }
            }
        });
        PodCache {
            state,
            ready,
            subscribers,
        }
    }

    /// Every pod change from now on, after the cache has taken it in (a deleted pod comes
    /// as its last state). Unbounded: the objects are shared with the cache.
    pub fn subscribe(&self) -> impl futures::Stream<Item = Arc<Pod>> + Send + 'static {
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.subscribers.lock().unwrap().push(tx);
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    /// Waits until the first list is in.
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|r| *r).await;
    }

    /// The pods of a namespace.
    pub fn namespace(&self, ns: &str) -> Vec<Arc<Pod>> {
        self.state
            .read()
            .unwrap()
            .pods
            .get(ns)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every pod.
    pub fn all(&self) -> Vec<Arc<Pod>> {
        let st = self.state.read().unwrap();
        st.pods.values().flat_map(|m| m.values().cloned()).collect()
    }

    /// One pod.
    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<Pod>> {
        self.state.read().unwrap().pods.get(ns)?.get(name).cloned()
    }

    /// Whether the pod is here or was deleted lately: the watch has shown its creation.
    fn seen(&self, ns: &str, name: &str) -> bool {
        let st = self.state.read().unwrap();
        st.pods.get(ns).is_some_and(|m| m.contains_key(name))
            || st.deleted.contains(&(ns.to_string(), name.to_string()))
    }
}

fn insert(all: &mut Namespaces, p: Pod) -> Arc<Pod> {
    let ns = p.namespace().unwrap_or_default();
    let name = p.name_any();
    let p = Arc::new(p);
    all.entry(ns).or_default().insert(name, p.clone());
    p
}

/// How long an expectation is trusted; upstream's `ExpectationsTimeout`. A write whose
/// watch event never comes (the pod created and deleted at once) holds a set back no longer.
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

/// Pods a controller created or deleted that its cache has not shown yet, per owner uid.
#[derive(Default)]
pub struct Expectations {
    by_owner: Mutex<HashMap<String, Expected>>,
}

struct Expected {
    adds: HashSet<String>,
    deletes: HashSet<String>,
    since: Instant,
}

impl Expectations {
    /// Notes pods `owner` created (`adds`) and deleted (`deletes`), by name.
    pub fn expect(
        &self,
        owner: &str,
        adds: impl IntoIterator<Item = String>,
        deletes: impl IntoIterator<Item = String>,
    ) {
        let mut all = self.by_owner.lock().unwrap();
        // Owners deleted meanwhile are never synced again: their entries go with age.
        all.retain(|_, e| e.since.elapsed() <= EXPECTATIONS_TIMEOUT);
        let e = all.entry(owner.to_string()).or_insert_with(|| Expected {
            adds: HashSet::new(),
            deletes: HashSet::new(),
            since: Instant::now(),
        });
        e.adds.extend(adds);
        e.deletes.extend(deletes);
        e.since = Instant::now();
        if e.adds.is_empty() && e.deletes.is_empty() {
            all.remove(owner);
        }
    }

    /// Whether the cache shows every write `owner` expects (a created pod present, a deleted
    /// one gone or terminating), forgetting those it shows. True when nothing is pending or
    /// the expectations timed out.
    pub fn satisfied(&self, owner: &str, cache: &PodCache, ns: &str) -> bool {
        let mut all = self.by_owner.lock().unwrap();
        let Some(e) = all.get_mut(owner) else {
            return true;
        };
        e.adds.retain(|n| !cache.seen(ns, n));
        e.deletes.retain(|n| {
            cache
                .get(ns, n)
                .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
        });
        if (e.adds.is_empty() && e.deletes.is_empty()) || e.since.elapsed() > EXPECTATIONS_TIMEOUT {
            all.remove(owner);
            return true;
        }
        false
    }
}
