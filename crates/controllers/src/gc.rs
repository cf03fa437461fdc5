//! The garbage collector (upstream pkg/controller/garbagecollector): objects whose owners are
//! all gone are deleted, owners deleted with `propagationPolicy=Foreground` wait for their
//! blocking dependents, and owners deleted with `Orphan` first have their references removed
//! from their dependents.
//!
//! It watches every listable, deletable resource found by discovery (re-run periodically, so
//! custom resources are covered) and keeps a graph of uids and owner references. Decisions
//! about an owner are always made on a live GET of it, as upstream's `isDangling` does, and
//! deletes carry a uid precondition, so a recreated object of the same name is never touched.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, PartialObjectMeta, Patch, PatchParams,
    Preconditions, PropagationPolicy,
};
use kube::discovery::{verbs, Discovery, Scope};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

use crate::events::Recorder;

/// The finalizer the API server adds for `propagationPolicy=Foreground`.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer the API server adds for `propagationPolicy=Orphan`.
pub const ORPHAN: &str = "orphan";

/// How often discovery is re-run to pick up new resources (CRDs).
const REDISCOVER: Duration = Duration::from_secs(30);
/// Items processed at once (upstream runs 20 attemptToDelete workers).
const WORKERS: usize = 8;
/// How long the workers wait for the first lists before acting on what they have.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// A resource the collector knows how to address.
#[derive(Debug)]
struct Kind {
    ar: ApiResource,
    namespaced: bool,
}

/// What the graph keeps of one object.
#[derive(Clone, Debug)]
struct Node {
    kind: Arc<Kind>,
    namespace: Option<String>,
    name: String,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

impl Node {
    fn deleting_dependents(&self) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == FOREGROUND)
    }
    fn orphaning(&self) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == ORPHAN)
    }
}

#[derive(Default)]
struct Graph {
    nodes: HashMap<String, Node>,
    /// owner uid -> uids of objects naming it in ownerReferences (the owner may be unseen).
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    fn unlink(&mut self, uid: &str, owners: &[OwnerReference]) {
        for o in owners {
            if let Some(set) = self.dependents.get_mut(&o.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&o.uid);
                }
            }
        }
    }
    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// A deduplicating work queue of uids; an item enqueued while it is being processed runs
/// again afterwards.
#[derive(Default)]
struct Queue {
    items: VecDeque<String>,
    queued: HashSet<String>,
    active: HashSet<String>,
    dirty: HashSet<String>,
    failures: HashMap<String, u32>,
}

struct Gc {
    client: Client,
    recorder: Recorder,
    graph: Mutex<Graph>,
    queue: Mutex<Queue>,
    wake: Notify,
    /// (apiVersion, kind) -> how to address it, over every served version.
    kinds: Mutex<HashMap<(String, String), Arc<Kind>>>,
    /// Watches of the first discovery that have not listed yet, plus one until that
    /// discovery is done: nothing is decided before the graph holds every object (upstream
    /// waits for its monitors to sync too), or an orphaning owner would miss dependents.
    unsynced: AtomicUsize,
    synced: Notify,
}

#[derive(Debug, thiserror::Error)]
enum GcError {
    #[error("kube: {0}")]
    Kube(#[from] kube::Error),
    #[error("conflicts updating {0}")]
    Conflicts(String),
    #[error("unknown owner kind {0} {1}")]
    UnknownKind(String, String),
}

pub async fn run(client: Client) {
    let gc = Arc::new(Gc {
        recorder: Recorder::new(client.clone(), "garbage-collector-controller"),
        client,
        graph: Mutex::new(Graph::default()),
        queue: Mutex::new(Queue::default()),
        wake: Notify::new(),
        kinds: Mutex::new(HashMap::new()),
        unsynced: AtomicUsize::new(1),
        synced: Notify::new(),
    });
    for _ in 0..WORKERS {
        let gc = gc.clone();
        tokio::spawn(async move { gc.work().await });
    }
    let mut watched: HashSet<(String, String)> = HashSet::new();
    loop {
        // Aggregated discovery: two requests, and an aggregated group whose server does not
        // answer is listed stale with no resources instead of failing the whole discovery
        // (upstream's collector goes on with the groups that answered).
        match Discovery::new(gc.client.clone()).run_aggregated().await {
            Ok(d) => gc.adopt_discovery(&d, &mut watched),
            Err(e) => tracing::warn!("garbage collector: discovery: {e}"),
        }
        tokio::time::sleep(REDISCOVER).await;
    }
}

impl Gc {
    /// Records every served (apiVersion, kind) and starts watching resources not yet watched.
    fn adopt_discovery(self: &Arc<Self>, d: &Discovery, watched: &mut HashSet<(String, String)>) {
        let first = watched.is_empty();
        let mut kinds = self.kinds.lock().unwrap();
        for group in d.groups() {
            for v in group.versions() {
                for (ar, caps) in group.versioned_resources(v) {
                    let key = (ar.api_version.clone(), ar.kind.clone());
                    kinds.entry(key).or_insert_with(|| {
                        Arc::new(Kind {
                            ar: ar.clone(),
                            namespaced: caps.scope == Scope::Namespaced,
                        })
                    });
                }
            }
            for (ar, caps) in group.recommended_resources() {
                // Upstream ignores events: they churn and are never owners.
                if ar.plural == "events" {
                    continue;
                }
                let usable = [verbs::LIST, verbs::WATCH, verbs::DELETE, verbs::PATCH]
                    .iter()
                    .all(|v| caps.supports_operation(v));
                if !usable || !watched.insert((ar.group.clone(), ar.plural.clone())) {
                    continue;
                }
                let kind = kinds
                    .get(&(ar.api_version.clone(), ar.kind.clone()))
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(Kind {
                            ar: ar.clone(),
                            namespaced: caps.scope == Scope::Namespaced,
                        })
                    });
                let gc = self.clone();
                if first {
                    self.unsynced.fetch_add(1, Ordering::SeqCst);
                }
                tokio::spawn(async move { gc.watch(kind, first).await });
            }
        }
        drop(kinds);
        if first {
            // The first discovery is done: only its watches' lists are awaited now.
            self.synced_one();
        }
    }

    fn synced_one(&self) {
        if self.unsynced.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.synced.notify_waiters();
        }
    }

    /// Feeds one resource's objects into the graph.
    async fn watch(self: Arc<Self>, kind: Arc<Kind>, mut counted_in_sync: bool) {
        // Metadata only (PartialObjectMetadata), as upstream's metadata informers.
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.client.clone(), &kind.ar);
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        // uids listed during a re-list: whatever the graph has of this kind beyond them is gone.
        let mut relisted: Option<HashSet<String>> = None;
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(o)) => self.observe(&kind, &o),
                Ok(watcher::Event::Delete(o)) => {
                    if let Some(uid) = o.uid() {
                        self.forget(&uid);
                    }
                }
                Ok(watcher::Event::Init) => relisted = Some(HashSet::new()),
                Ok(watcher::Event::InitApply(o)) => {
                    if let (Some(set), Some(uid)) = (relisted.as_mut(), o.uid()) {
                        set.insert(uid);
                    }
                    self.observe(&kind, &o);
                }
                Ok(watcher::Event::InitDone) => {
                    if counted_in_sync {
                        counted_in_sync = false;
                        self.synced_one();
                    }
                    let Some(seen) = relisted.take() else {
                        continue;
                    };
                    let gone: Vec<String> = {
                        let g = self.graph.lock().unwrap();
                        g.nodes
                            .iter()
                            .filter(|(uid, n)| Arc::ptr_eq(&n.kind, &kind) && !seen.contains(*uid))
                            .map(|(uid, _)| uid.clone())
                            .collect()
                    };
                    for uid in gone {
                        self.forget(&uid);
                    }
                }
                Err(e) => {
                    tracing::debug!("garbage collector: watching {}: {e}", kind.ar.plural);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// An object was added or changed.
    fn observe(&self, kind: &Arc<Kind>, o: &PartialObjectMeta<DynamicObject>) {
        let Some(uid) = o.uid() else { return };
        let node = Node {
            kind: kind.clone(),
            namespace: o.namespace(),
            name: o.name_any(),
            owners: o.metadata.owner_references.clone().unwrap_or_default(),
            deleting: o.metadata.deletion_timestamp.is_some(),
            finalizers: o.finalizers().to_vec(),
        };
        let mut wake = Vec::new();
        {
            let mut g = self.graph.lock().unwrap();
            let old = g.nodes.insert(uid.clone(), node.clone());
            if let Some(old) = &old {
                g.unlink(&uid, &old.owners);
            }
            for r in &node.owners {
                g.dependents
                    .entry(r.uid.clone())
                    .or_default()
                    .insert(uid.clone());
            }
            let owners_changed = old.as_ref().is_none_or(|o| o.owners != node.owners);
            // A new or re-parented dependent may be garbage already: an owner never seen, or
            // one being deleted.
            if owners_changed
                && node.owners.iter().any(|r| {
                    g.nodes
                        .get(&r.uid)
                        .is_none_or(|owner| owner.deleting_dependents() || owner.orphaning())
                })
            {
                wake.push(uid.clone());
            }
            // References dropped or unblocked: an owner waiting on this one may be free.
            if let Some(old) = &old {
                if owners_changed {
                    for r in &old.owners {
                        if g.nodes.get(&r.uid).is_some_and(Node::deleting_dependents) {
                            wake.push(r.uid.clone());
                        }
                    }
                }
            }
            // Deletion started (or its finalizers changed) with a policy the collector acts on.
            let transition = old
                .as_ref()
                .is_none_or(|o| o.deleting != node.deleting || o.finalizers != node.finalizers);
            if transition && (node.deleting_dependents() || node.orphaning()) {
                wake.push(uid.clone());
                // Foreground: every dependent is considered at once (upstream's graph builder
                // queues them all when an owner starts waiting for dependents).
                if node.deleting_dependents() {
                    wake.extend(g.dependents_of(&uid));
                }
            }
        }
        for u in wake {
            self.enqueue(u);
        }
    }

    /// An object is gone: its dependents may be garbage, a foreground owner may be free.
    fn forget(&self, uid: &str) {
        let mut wake = Vec::new();
        {
            let mut g = self.graph.lock().unwrap();
            let Some(old) = g.nodes.remove(uid) else {
                return;
            };
            g.unlink(uid, &old.owners);
            wake.extend(g.dependents_of(uid));
            for r in &old.owners {
                if g.nodes.get(&r.uid).is_some_and(Node::deleting_dependents) {
                    wake.push(r.uid.clone());
                }
            }
        }
        for u in wake {
            self.enqueue(u);
        }
    }

    fn enqueue(&self, uid: String) {
        let mut q = self.queue.lock().unwrap();
        if q.active.contains(&uid) {
            q.dirty.insert(uid);
            return;
        }
        if q.queued.insert(uid.clone()) {
            q.items.push_back(uid);
            drop(q);
            self.wake.notify_one();
        }
    }

    async fn work(self: Arc<Self>) {
        // A resource that never lists must not stop collection for good.
        let _ = tokio::time::timeout(SYNC_TIMEOUT, async {
            loop {
                let synced = self.synced.notified();
                if self.unsynced.load(Ordering::SeqCst) == 0 {
                    break;
                }
                synced.await;
            }
        })
        .await;
        loop {
            let next = {
                let mut q = self.queue.lock().unwrap();
                let next = q.items.pop_front();
                if let Some(uid) = &next {
                    q.queued.remove(uid);
                    q.active.insert(uid.clone());
                }
                next
            };
            let Some(uid) = next else {
                self.wake.notified().await;
                continue;
            };
            let result = self.process(&uid).await;
            let mut q = self.queue.lock().unwrap();
            q.active.remove(&uid);
            let again = q.dirty.remove(&uid);
            match result {
                Ok(()) => {
                    q.failures.remove(&uid);
                    drop(q);
                    if again {
                        self.enqueue(uid);
                    }
                }
                Err(e) => {
                    let n = q.failures.entry(uid.clone()).or_insert(0);
                    *n += 1;
                    let delay = Duration::from_millis(500 * 2u64.pow((*n).min(7)));
                    drop(q);
                    tracing::debug!("garbage collector: {uid}: {e}; retrying in {delay:?}");
                    let gc = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        gc.enqueue(uid);
                    });
                }
            }
        }
    }

    async fn process(&self, uid: &str) -> Result<(), GcError> {
        let Some(node) = self.graph.lock().unwrap().nodes.get(uid).cloned() else {
            return Ok(());
        };
        if node.orphaning() {
            return self.orphan_dependents(uid, &node).await;
        }
        if node.deleting_dependents() {
            return self.process_deleting_dependents(uid, &node).await;
        }
        if node.deleting || node.owners.is_empty() {
            // Already going, or owned by nobody: nothing for the collector to decide.
            return Ok(());
        }
        self.attempt_to_delete(uid, &node).await
    }

    fn api_for(&self, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        match (kind.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &kind.ar),
            _ => Api::all_with(self.client.clone(), &kind.ar),
        }
    }

    fn kind_of(&self, api_version: &str, kind: &str) -> Result<Arc<Kind>, GcError> {
        self.kinds
            .lock()
            .unwrap()
            .get(&(api_version.to_string(), kind.to_string()))
            .cloned()
            .ok_or_else(|| GcError::UnknownKind(api_version.into(), kind.into()))
    }

    /// Upstream `attemptToDeleteItem`: classify the owners (solid, dangling, waiting for
    /// their dependents' deletion) by live GETs and act.
    async fn attempt_to_delete(&self, uid: &str, node: &Node) -> Result<(), GcError> {
        let mut solid = 0;
        let mut dangling: Vec<String> = Vec::new();
        let mut waiting: Vec<String> = Vec::new();
        for r in &node.owners {
            let kind = self.kind_of(&r.api_version, &r.kind)?;
            // A namespaced dependent's owners live in its namespace; a cluster-scoped
            // dependent can only have cluster-scoped owners.
            let ns = if kind.namespaced {
                match node.namespace.as_deref() {
                    Some(ns) => Some(ns),
                    None => {
                        // Unresolvable: upstream (1.20+) reports it and never collects the
                        // object on its account.
                        let regarding = ObjectReference {
                            api_version: Some(node.kind.ar.api_version.clone()),
                            kind: Some(node.kind.ar.kind.clone()),
                            name: Some(node.name.clone()),
                            uid: Some(uid.to_string()),
                            ..Default::default()
                        };
                        self.recorder
                            .warning(
                                &regarding,
                                "OwnerRefInvalidNamespace",
                                format!(
                                    "ownerRef [{}, namespace: , name: {}, uid: {}] does not exist in namespace \"\"",
                                    r.api_version.clone() + "/" + &r.kind,
                                    r.name,
                                    r.uid
                                ),
                            )
                            .await;
                        solid += 1;
                        continue;
                    }
                }
            } else {
                None
            };
            match self.api_for(&kind, ns).get_opt(&r.name).await? {
                None => dangling.push(r.uid.clone()),
                Some(o) if o.uid().as_deref() != Some(r.uid.as_str()) => {
                    dangling.push(r.uid.clone())
                }
                Some(o)
                    if o.metadata.deletion_timestamp.is_some()
                        && o.finalizers().iter().any(|f| f == FOREGROUND) =>
                {
                    waiting.push(r.uid.clone())
                }
                Some(_) => solid += 1,
            }
        }
        if solid > 0 {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(());
            }
            // Still owned: only the references to owners that are gone (or going in the
            // foreground) are dropped, which also unblocks those owners.
            let drop: HashSet<&String> = dangling.iter().chain(&waiting).collect();
            return self
                .edit_owner_refs(node, uid, |refs| refs.retain(|r| !drop.contains(&r.uid)))
                .await;
        }
        let has_dependents = self
            .graph
            .lock()
            .unwrap()
            .dependents
            .get(uid)
            .is_some_and(|s| !s.is_empty());
        let policy = if !waiting.is_empty() && has_dependents {
            // Its own dependents must go before it, so that its owner waits for them too.
            PropagationPolicy::Foreground
        } else if node.finalizers.iter().any(|f| f == ORPHAN) {
            PropagationPolicy::Orphan
        } else if node.finalizers.iter().any(|f| f == FOREGROUND) {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        tracing::debug!(
            "garbage collector: deleting {} {}/{} ({policy:?})",
            node.kind.ar.kind,
            node.namespace.as_deref().unwrap_or(""),
            node.name
        );
        self.delete(node, uid, policy).await
    }

    /// Upstream `processDeletingDependentsItem`: once no dependent blocks, the owner's
    /// `foregroundDeletion` finalizer goes (and with it the owner).
    async fn process_deleting_dependents(&self, uid: &str, node: &Node) -> Result<(), GcError> {
        let (blocking, pending): (Vec<String>, Vec<String>) = {
            let g = self.graph.lock().unwrap();
            let deps = g.dependents_of(uid);
            let blocking = deps
                .iter()
                .filter(|d| {
                    g.nodes.get(*d).is_some_and(|n| {
                        n.owners
                            .iter()
                            .any(|r| r.uid == uid && r.block_owner_deletion == Some(true))
                    })
                })
                .cloned()
                .collect();
            let pending = deps
                .into_iter()
                .filter(|d| g.nodes.get(d).is_some_and(|n| !n.deleting))
                .collect();
            (blocking, pending)
        };
        for d in pending {
            self.enqueue(d);
        }
        if !blocking.is_empty() {
            // Their deletion events bring the owner back here.
            return Ok(());
        }
        self.remove_finalizer(node, uid, FOREGROUND).await
    }

    /// Upstream `orphanDependents` then the removal of the `orphan` finalizer.
    async fn orphan_dependents(&self, uid: &str, node: &Node) -> Result<(), GcError> {
        let deps: Vec<(String, Node)> = {
            let g = self.graph.lock().unwrap();
            g.dependents_of(uid)
                .into_iter()
                .filter_map(|d| g.nodes.get(&d).cloned().map(|n| (d, n)))
                .collect()
        };
        for (duid, dep) in deps {
            self.edit_owner_refs(&dep, &duid, |refs| refs.retain(|r| r.uid != uid))
                .await?;
        }
        self.remove_finalizer(node, uid, ORPHAN).await
    }

    async fn delete(
        &self,
        node: &Node,
        uid: &str,
        policy: PropagationPolicy,
    ) -> Result<(), GcError> {
        let dp = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self
            .api_for(&node.kind, node.namespace.as_deref())
            .delete(&node.name, &dp)
            .await
        {
            Ok(_) => Ok(()),
            // Gone already, or replaced by a new object of the same name.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Rewrites an object's ownerReferences from its live state, guarded by its
    /// resourceVersion (a JSON merge patch replaces the whole list).
    async fn edit_owner_refs(
        &self,
        node: &Node,
        uid: &str,
        edit: impl Fn(&mut Vec<OwnerReference>),
    ) -> Result<(), GcError> {
        self.rewrite(node, uid, |o| {
            let mut refs = o.metadata.owner_references.clone().unwrap_or_default();
            let before = refs.len();
            edit(&mut refs);
            (refs.len() != before)
                .then(|| json!({"ownerReferences": (!refs.is_empty()).then_some(refs)}))
        })
        .await
    }

    async fn remove_finalizer(
        &self,
        node: &Node,
        uid: &str,
        finalizer: &str,
    ) -> Result<(), GcError> {
        self.rewrite(node, uid, |o| {
            let fins = o.finalizers();
            fins.iter().any(|f| f == finalizer).then(|| {
                let rest: Vec<&String> = fins.iter().filter(|f| *f != finalizer).collect();
                // Go omits an empty list: the field goes rather than becoming `[]`.
                json!({ "finalizers": (!rest.is_empty()).then_some(rest) })
            })
        })
        .await
    }

    /// GET, compute a metadata change, merge-patch it with the resourceVersion read; retried
    /// on conflicts. `change` answers None when nothing is to be done.
    async fn rewrite(
        &self,
        node: &Node,
        uid: &str,
        change: impl Fn(&DynamicObject) -> Option<serde_json::Value>,
    ) -> Result<(), GcError> {
        let api = self.api_for(&node.kind, node.namespace.as_deref());
        for _ in 0..5 {
            let Some(live) = api.get_opt(&node.name).await? else {
                return Ok(());
            };
            if live.uid().as_deref() != Some(uid) {
                return Ok(());
            }
            let Some(mut meta) = change(&live) else {
                return Ok(());
            };
            meta["resourceVersion"] = json!(live.resource_version());
            let patch = json!({ "metadata": meta });
            match api
                .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        Err(GcError::Conflicts(node.name.clone()))
    }
}
