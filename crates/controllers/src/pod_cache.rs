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
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::scheduler::cache::{host_ports, non_zero_requests, pod_requests, HostPort, Resources};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use tokio::sync::{mpsc, watch};

type Namespaces = HashMap<String, HashMap<String, Arc<CachedPod>>>;

/// What a pod takes from its node as the scheduler counts it (upstream's `PodInfo`
/// requests, non-zero requests and host ports): worked out while the pod's containers are
/// at hand, since a bound pod is cached without them.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Footprint {
    pub requests: Resources,
    pub non_zero: (i64, i64),
    pub ports: Vec<HostPort>,
}

impl Footprint {
    fn of(pod: &Pod) -> Footprint {
        Footprint {
            requests: pod_requests(pod),
            non_zero: non_zero_requests(pod),
            ports: host_ports(pod),
        }
    }
}

/// A pod as the cache keeps it ([`slim`]), read as a [`Pod`] through `Deref`. Once bound to
/// a node it is kept without its containers: no reader but the scheduler looks at them,
/// and the scheduler needs of a bound pod only its [`Footprint`]. A container is 2 KiB
/// decoded before any of its content, the largest part of a cached pod.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedPod {
    pod: Pod,
    footprint: Footprint,
}

impl CachedPod {
    /// Slims `pod`, and drops its containers if it is bound.
    pub fn new(pod: Pod) -> CachedPod {
        let mut pod = slim(pod);
        let footprint = Footprint::of(&pod);
        let bound = |s: &&mut k8s_openapi::api::core::v1::PodSpec| {
            s.node_name.as_deref().is_some_and(|n| !n.is_empty())
        };
        if let Some(spec) = pod.spec.as_mut().filter(bound) {
            spec.containers = Vec::new();
            spec.init_containers = None;
        }
        CachedPod { pod, footprint }
    }

    pub(crate) fn footprint(&self) -> &Footprint {
        &self.footprint
    }
}

impl std::ops::Deref for CachedPod {
    type Target = Pod;
    fn deref(&self) -> &Pod {
        &self.pod
    }
}

// What a controller needs to be triggered by cached pods (`watches_shared_stream`).
impl k8s_openapi::Resource for CachedPod {
    const API_VERSION: &'static str = Pod::API_VERSION;
    const GROUP: &'static str = Pod::GROUP;
    const KIND: &'static str = Pod::KIND;
    const VERSION: &'static str = Pod::VERSION;
    const URL_PATH_SEGMENT: &'static str = Pod::URL_PATH_SEGMENT;
    type Scope = <Pod as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::Metadata for CachedPod {
    type Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    fn metadata(&self) -> &Self::Ty {
        &self.pod.metadata
    }
    fn metadata_mut(&mut self) -> &mut Self::Ty {
        &mut self.pod.metadata
    }
}

impl<'de> serde::Deserialize<'de> for CachedPod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Pod::deserialize(d).map(CachedPod::new)
    }
}

/// Deletions remembered, so a pod created and deleted before a sync looked still counts as
/// seen.
const RECENT_DELETES: usize = 10_000;

#[derive(Default)]
struct State {
    pods: Namespaces,
    /// The same pods by [`group`]: a set's sync reads its own pods and its namespace's
    /// orphans, not every pod of a namespace that may hold thousands of others'.
    groups: HashMap<String, HashMap<(String, String), Arc<CachedPod>>>,
    deleted: HashSet<(String, String)>,
    deleted_order: std::collections::VecDeque<(String, String)>,
}

/// A pod's group: the uid of its controller, or (no controller) its namespace, marked so it
/// never equals a uid.
fn group(p: &Pod) -> String {
    match crate::ownership::controller_of(&p.metadata) {
        Some(r) => r.uid.clone(),
        None => format!("orphans/{}", p.namespace().unwrap_or_default()),
    }
}

/// A pod as the cache keeps it: without what none of the cache's readers (scheduler,
/// ReplicaSet and ReplicationController, node lifecycle, pod GC) look at, since a decoded pod
/// is six times its JSON. Gone: `managedFields` (upstream's controller manager drops them
/// too), every volume but claims and ephemeral claims (a `Volume` alone is 3 KiB decoded, and
/// the service-account volume is on nearly every pod), each container's environment,
/// command, mounts, probes and lifecycle hooks, and the status beyond what
/// [`crate::pod_state`], the scheduler and scale-down ordering read. A reader that needs one
/// of these must read the pod from the API or change this.
fn slim(mut p: Pod) -> Pod {
    p.metadata.managed_fields = None;
    if let Some(spec) = p.spec.as_mut() {
        if let Some(volumes) = spec.volumes.as_mut() {
            volumes.retain(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some());
            volumes.shrink_to_fit();
        }
        let containers = spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten());
        for c in containers {
            c.env = None;
            c.env_from = None;
            c.command = None;
            c.args = None;
            c.volume_mounts = None;
            c.volume_devices = None;
            c.liveness_probe = None;
            c.readiness_probe = None;
            c.startup_probe = None;
            c.lifecycle = None;
        }
        spec.ephemeral_containers = None;
    }
    if let Some(st) = p.status.as_mut() {
        // Readers look at the phase, the Ready condition (and since when), PodScheduled (the
        // scheduler's own), and the most restarts of any container (scale-down order): each
        // condition and container status is hundreds of bytes decoded, most pods have five
        // and one, and a pod that never restarted needs no container status at all.
        if let Some(conditions) = st.conditions.as_mut() {
            conditions.retain(|c| c.type_ == "Ready" || c.type_ == "PodScheduled");
            conditions.shrink_to_fit();
        }
        let restarts = st
            .container_statuses
            .iter()
            .flatten()
            .map(|c| c.restart_count)
            .max()
            .unwrap_or(0);
        st.container_statuses = (restarts > 0).then(|| {
            vec![ContainerStatus {
                restart_count: restarts,
                ..Default::default()
            }]
        });
        st.init_container_statuses = None;
        st.ephemeral_container_statuses = None;
        st.host_ip = None;
        st.host_ips = None;
        st.pod_ip = None;
        st.pod_ips = None;
        st.start_time = None;
        st.qos_class = None;
        st.resource_claim_statuses = None;
    }
    p
}

fn key_of(p: &Pod) -> (String, String) {
    (p.namespace().unwrap_or_default(), p.name_any())
}

impl State {
    fn index(&mut self, p: &Arc<CachedPod>) {
        self.groups
            .entry(group(p))
            .or_default()
            .insert(key_of(p), p.clone());
    }

    fn unindex(&mut self, p: &Pod) {
        let g = group(p);
        if let Some(m) = self.groups.get_mut(&g) {
            m.remove(&key_of(p));
            if m.is_empty() {
                self.groups.remove(&g);
            }
        }
    }

    /// Everything, after a (re-)list.
    fn reset(&mut self, pods: Namespaces) {
        self.groups.clear();
        for p in pods.values().flat_map(|m| m.values()) {
            self.groups
                .entry(group(p))
                .or_default()
                .insert(key_of(p), p.clone());
        }
        self.pods = pods;
    }

    fn put(&mut self, p: Pod) -> Arc<CachedPod> {
        let p = Arc::new(CachedPod::new(p));
        let (ns, name) = key_of(&p);
        if let Some(old) = self.pods.entry(ns).or_default().insert(name, p.clone()) {
            self.unindex(&old);
        }
        self.index(&p);
        p
    }

    fn remove(&mut self, ns: &str, name: &str) {
        let Some(m) = self.pods.get_mut(ns) else {
            return;
        };
        let old = m.remove(name);
        if m.is_empty() {
            self.pods.remove(ns);
        }
        if let Some(old) = old {
            self.unindex(&old);
        }
    }
}

/// Every pod, by namespace and name. Cheap to clone; clones share the one watch.
#[derive(Clone)]
pub struct PodCache {
    state: Arc<RwLock<State>>,
    ready: watch::Receiver<bool>,
    subscribers: Subscribers,
    followers: Followers,
}

type Subscribers = Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<CachedPod>>>>>;

fn publish(subscribers: &Subscribers, pods: &[Arc<CachedPod>]) {
    subscribers
        .lock()
        .unwrap()
        .retain(|tx| pods.iter().all(|p| tx.send(p.clone()).is_ok()));
}

/// A change of the cache, for a component that keeps pods of its own (the scheduler): the
/// same objects as the cache's, so following it costs no second decoded copy of every pod.
#[derive(Clone)]
pub enum PodEvent {
    /// Every pod: the first list, or a re-list after the watch broke (pods missing from it
    /// are gone).
    Relisted(Vec<Arc<CachedPod>>),
    /// A pod was created or changed.
    Applied(Arc<CachedPod>),
    /// A pod was deleted (its last state).
    Deleted(Arc<CachedPod>),
}

type Followers = Arc<Mutex<Vec<mpsc::UnboundedSender<PodEvent>>>>;

fn tell(followers: &Followers, ev: PodEvent) {
    followers
        .lock()
        .unwrap()
        .retain(|tx| tx.send(ev.clone()).is_ok());
}

impl PodCache {
    /// Starts the watch (a task that runs until the process ends).
    pub fn start(client: Client) -> PodCache {
        let state: Arc<RwLock<State>> = Arc::default();
        let (ready_tx, ready) = watch::channel(false);
        let store = state.clone();
        let subscribers: Subscribers = Arc::default();
        let subs = subscribers.clone();
        let followers: Followers = Arc::default();
        let follow = followers.clone();
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
                        let all: Vec<Arc<CachedPod>> =
                            pods.values().flat_map(|m| m.values().cloned()).collect();
                        store.write().unwrap().reset(pods);
                        let _ = ready_tx.send(true);
                        publish(&subs, &all);
                        tell(&follow, PodEvent::Relisted(all));
                    }
                    watcher::Event::Apply(p) => {
                        let p = store.write().unwrap().put(p);
                        publish(&subs, std::slice::from_ref(&p));
                        tell(&follow, PodEvent::Applied(p));
                    }
                    watcher::Event::Delete(p) => {
                        let key = (p.namespace().unwrap_or_default(), p.name_any());
                        let mut st = store.write().unwrap();
                        st.remove(&key.0, &key.1);
                        if st.deleted.insert(key.clone()) {
                            st.deleted_order.push_back(key);
                        }
                        if st.deleted_order.len() > RECENT_DELETES {
                            if let Some(old) = st.deleted_order.pop_front() {
                                st.deleted.remove(&old);
                            }
                        }
                        drop(st);
                        let p = Arc::new(CachedPod::new(p));
                        publish(&subs, std::slice::from_ref(&p));
                        tell(&follow, PodEvent::Deleted(p));
                    }
                }
            }
        });
        PodCache {
            state,
            ready,
            subscribers,
            followers,
        }
    }

    /// The cache's changes from now on, starting with every pod it holds when it has listed
    /// them already ([`PodEvent::Relisted`]). A change racing the subscription may come twice
    /// (in the first list and again after it); never not at all.
    pub fn follow(&self) -> impl futures::Stream<Item = PodEvent> + Send + 'static {
        let (tx, mut rx) = mpsc::unbounded_channel();
        {
            // Held while the snapshot is taken, so no change is told in between and missed.
            let mut followers = self.followers.lock().unwrap();
            if *self.ready.borrow() {
                let _ = tx.send(PodEvent::Relisted(self.all()));
            }
            followers.push(tx);
        }
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    /// Every pod change from now on, after the cache has taken it in (a deleted pod comes
    /// as its last state). Unbounded: the objects are shared with the cache.
    pub fn subscribe(&self) -> impl futures::Stream<Item = Arc<CachedPod>> + Send + 'static {
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
    pub fn namespace(&self, ns: &str) -> Vec<Arc<CachedPod>> {
        self.state
            .read()
            .unwrap()
            .pods
            .get(ns)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The pods of namespace `ns` that the object with uid `controller` controls, and those
    /// no one controls: all a ReplicaSet's sync may keep, adopt or release.
    pub fn controlled_or_orphans(&self, ns: &str, controller: &str) -> Vec<Arc<CachedPod>> {
        let st = self.state.read().unwrap();
        let orphans = format!("orphans/{ns}");
        [controller, orphans.as_str()]
            .into_iter()
            .filter_map(|g| st.groups.get(g))
            .flat_map(|m| m.iter())
            .filter(|((pod_ns, _), _)| pod_ns == ns)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Every pod.
    pub fn all(&self) -> Vec<Arc<CachedPod>> {
        let st = self.state.read().unwrap();
        st.pods.values().flat_map(|m| m.values().cloned()).collect()
    }

    /// One pod.
    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<CachedPod>> {
        self.state.read().unwrap().pods.get(ns)?.get(name).cloned()
    }

    /// Whether the pod is here or was deleted lately: the watch has shown its creation.
    fn seen(&self, ns: &str, name: &str) -> bool {
        let st = self.state.read().unwrap();
        st.pods.get(ns).is_some_and(|m| m.contains_key(name))
            || st.deleted.contains(&(ns.to_string(), name.to_string()))
    }
}

fn insert(all: &mut Namespaces, p: Pod) -> Arc<CachedPod> {
    let ns = p.namespace().unwrap_or_default();
    let name = p.name_any();
    let p = Arc::new(CachedPod::new(p));
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn pod(ns: &str, name: &str, controller: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.namespace = Some(ns.into());
        p.metadata.name = Some(name.into());
        p.metadata.owner_references = controller.map(|uid| {
            vec![OwnerReference {
                uid: uid.into(),
                controller: Some(true),
                kind: "ReplicaSet".into(),
                name: "rs".into(),
                api_version: "apps/v1".into(),
                ..Default::default()
            }]
        });
        p
    }

    fn names(st: &State, ns: &str, controller: &str) -> Vec<String> {
        let cache = PodCache {
            state: Arc::new(RwLock::new(State {
                pods: st.pods.clone(),
                groups: st.groups.clone(),
                ..Default::default()
            })),
            ready: watch::channel(true).1,
            subscribers: Arc::default(),
            followers: Arc::default(),
        };
        let mut v: Vec<String> = cache
            .controlled_or_orphans(ns, controller)
            .iter()
            .map(|p| p.name_any())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_sets_pods_are_its_own_and_its_namespaces_orphans() {
        let mut st = State::default();
        st.put(pod("a", "mine-1", Some("u1")));
        st.put(pod("a", "mine-2", Some("u1")));
        st.put(pod("a", "theirs", Some("u2")));
        st.put(pod("a", "orphan", None));
        st.put(pod("b", "orphan-elsewhere", None));
        assert_eq!(names(&st, "a", "u1"), ["mine-1", "mine-2", "orphan"]);
        assert_eq!(names(&st, "a", "u2"), ["orphan", "theirs"]);
        assert_eq!(names(&st, "b", "u1"), ["orphan-elsewhere"]);

        // Adopted: the orphan moves to its new controller; released: back to orphans.
        st.put(pod("a", "orphan", Some("u1")));
        st.put(pod("a", "mine-2", None));
        assert_eq!(names(&st, "a", "u1"), ["mine-1", "mine-2", "orphan"]);
        assert_eq!(names(&st, "a", "u2"), ["mine-2", "theirs"]);

        st.remove("a", "mine-1");
        st.remove("a", "nothing");
        assert_eq!(names(&st, "a", "u1"), ["mine-2", "orphan"]);

        // A re-list replaces both views.
        let mut fresh = Namespaces::new();
        insert(&mut fresh, pod("a", "new", Some("u2")));
        st.reset(fresh);
        assert_eq!(names(&st, "a", "u1"), Vec::<String>::new());
        assert_eq!(names(&st, "a", "u2"), ["new"]);
        assert_eq!(st.groups.len(), 1);
    }

    #[test]
    fn cached_pods_keep_what_their_readers_use() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
        let mut p = pod("a", "p", Some("u1"));
        p.metadata.labels = Some([("app".to_string(), "x".to_string())].into());
        p.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("kubectl".into()),
            ..Default::default()
        }]);
        p.spec = Some(serde_json::from_value(serde_json::json!({
            "containers": [{"name": "c", "image": "i", "command": ["sh"], "env": [{"name": "A"}],
                "ports": [{"containerPort": 80}],
                "resources": {"requests": {"cpu": "1"}},
                "volumeMounts": [{"name": "token", "mountPath": "/t"}],
                "readinessProbe": {"exec": {"command": ["true"]}}}],
            "initContainers": [{"name": "i", "image": "i", "args": ["x"],
                "resources": {"requests": {"memory": "1Mi"}}}],
            "nodeSelector": {"zone": "a"},
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "volumes": [
                {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                {"name": "cm", "configMap": {"name": "cm"}}
            ]
        }))
        .unwrap());
        // What the readers use stays: scheduling constraints, resources, ports, images, claims.
        let want: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "a", "name": "p", "labels": {"app": "x"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                    "uid": "u1", "controller": true}]},
            "spec": {
                "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}],
                    "resources": {"requests": {"cpu": "1"}}}],
                "initContainers": [{"name": "i", "image": "i",
                    "resources": {"requests": {"memory": "1Mi"}}}],
                "nodeSelector": {"zone": "a"},
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}
                ]
            }
        }))
        .unwrap();

        let mut st = State::default();
        assert_eq!(**st.put(p.clone()), want);
        let mut fresh = Namespaces::new();
        assert_eq!(**insert(&mut fresh, p), want);
    }

    #[test]
    fn a_bound_pod_is_cached_without_containers_but_with_what_they_take() {
        let spec = |node: Option<&str>| {
            serde_json::from_value(serde_json::json!({
                "nodeName": node,
                "containers": [
                    {"name": "a", "image": "i", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}},
                        "ports": [{"containerPort": 80, "hostPort": 8080}]},
                    {"name": "b", "image": "i"}
                ],
                "initContainers": [{"name": "init", "image": "i",
                    "resources": {"requests": {"cpu": "2"}}}],
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "priority": 7
            }))
            .unwrap()
        };
        let mut pending = pod("a", "p", Some("u1"));
        pending.spec = Some(spec(None));
        let mut bound = pending.clone();
        bound.spec = Some(spec(Some("n1")));

        // Pending: the scheduler reads its containers, so they stay.
        let p = CachedPod::new(pending.clone());
        assert_eq!(p.spec.as_ref().unwrap().containers.len(), 2);
        assert!(p.spec.as_ref().unwrap().init_containers.is_some());

        let b = CachedPod::new(bound.clone());
        let s = b.spec.as_ref().unwrap();
        assert!(s.containers.is_empty());
        assert!(s.init_containers.is_none());
        // What other readers look at stays.
        assert_eq!(s.node_name.as_deref(), Some("n1"));
        assert_eq!(s.priority, Some(7));
        assert_eq!(s.tolerations.as_ref().map(Vec::len), Some(1));
        // The footprint is what the containers took: the init container's 2 CPUs win, the
        // memory is the containers' sum, the second container counts upstream's defaults
        // for scoring, and the host port is kept.
        let f = b.footprint();
        assert_eq!(f.requests.milli_cpu, 2000);
        assert_eq!(f.requests.memory, 64 << 20);
        assert_eq!(f.requests.pods, 1);
        assert_eq!(
            f.non_zero,
            (
                250 + crate::scheduler::cache::DEFAULT_MILLI_CPU_REQUEST,
                (64 << 20) + crate::scheduler::cache::DEFAULT_MEMORY_REQUEST
            )
        );
        assert_eq!(
            f.ports,
            vec![("TCP".to_string(), "0.0.0.0".to_string(), 8080)]
        );
        assert_eq!(f, p.footprint());
        assert_eq!(*f, Footprint::of(&bound));

        // Through the cache, the same.
        let mut st = State::default();
        let cached = st.put(bound);
        assert!(cached.spec.as_ref().unwrap().containers.is_empty());
        assert_eq!(cached.footprint(), f);
    }

    #[test]
    fn cached_status_keeps_phase_readiness_scheduling_and_restarts() {
        let status = |restarts: i32| {
            serde_json::json!({
                "phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.42.0.5",
                "podIPs": [{"ip": "10.42.0.5"}], "startTime": "2026-01-01T00:00:00Z",
                "qosClass": "Burstable",
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:01Z"},
                    {"type": "ContainersReady", "status": "True"},
                    {"type": "PodScheduled", "status": "True"}
                ],
                "containerStatuses": [
                    {"name": "a", "image": "i", "imageID": "x", "ready": true, "restartCount": restarts,
                        "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}},
                    {"name": "b", "image": "i", "imageID": "x", "ready": true, "restartCount": 1}
                ]
            })
        };
        let mut p = pod("a", "p", Some("u1"));
        p.status = Some(serde_json::from_value(status(0)).unwrap());
        let before = p.clone();
        let cached = State::default().put(p);
        let st = cached.status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some("Running"));
        let types: Vec<&str> = st
            .conditions
            .iter()
            .flatten()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(types, ["Ready", "PodScheduled"]);
        assert_eq!(
            crate::pod_state::pod_ready_since(&cached),
            crate::pod_state::pod_ready_since(&before)
        );
        assert!(crate::pod_state::is_pod_ready(&cached));
        let restarts = |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
                .unwrap_or(0)
        };
        assert_eq!(restarts(&cached), 1);
        assert!(st.pod_ip.is_none() && st.host_ip.is_none() && st.start_time.is_none());

        // The most restarts of any container is what scale-down ordering compares.
        let mut p = pod("a", "q", Some("u1"));
        p.status = Some(serde_json::from_value(status(4)).unwrap());
        assert_eq!(restarts(&State::default().put(p)), 4);
        // None restarted: no container status is kept.
        let mut p = pod("a", "r", Some("u1"));
        let mut s = status(0);
        s["containerStatuses"][1]["restartCount"] = serde_json::json!(0);
        p.status = Some(serde_json::from_value(s).unwrap());
        let cached = State::default().put(p);
        assert!(cached.status.as_ref().unwrap().container_statuses.is_none());
        assert_eq!(restarts(&cached), 0);
    }
}
