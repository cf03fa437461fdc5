//! Node lifecycle, as upstream's node-lifecycle-controller: a node whose Lease (in
//! `kube-node-lease`) is not renewed for `--node-monitor-grace-period` gets its conditions set
//! to Unknown, its pods marked not ready, and the `node.kubernetes.io/unreachable` taints
//! (NoSchedule and NoExecute); a node reporting Ready=False gets the `not-ready` ones. The
//! NoExecute taints evict pods that do not tolerate them, at once or after their
//! tolerationSeconds (upstream's taint-eviction-controller).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::events::{self, Recorder};
use crate::pod_cache::{CachedPod, PodCache, PodEvent};
use crate::scheduler::tolerates;

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const NOT_READY: &str = "node.kubernetes.io/not-ready";

// Each event is handled as soon as it arrives; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Ev {
    Node(watcher::Event<Node>),
    Lease(watcher::Event<Lease>),
    Pod(PodEvent),
}

struct Probe {
    /// The lease's renewTime as last seen, and when we saw it change.
    renew: Option<String>,
    seen: Instant,
}

struct NodeLifecycleController {
    client: Client,
    grace: Duration,
    known: Known,
    pods: HashMap<String, Arc<CachedPod>>,
    /// Pods already asked to go, so each is evicted once.
    evicted: HashMap<String, Instant>,
    recorder: Recorder,
}

pub async fn run(client: Client, grace: Duration, pods: PodCache) {
    let nodes = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .map(|e| e.map(|e| Ev::Node(e.modify(|n| *n = crate::node_slim::slim(std::mem::take(n))))));
    let leases = watcher(
        Api::<Lease>::namespaced(client.clone(), "kube-node-lease"),
        watcher::Config::default(),
    )
    .map(|e| e.map(Ev::Lease));
    // The shared pod cache's objects: no watch or decoded copy of its own.
    let pods = pods.follow().map(|e| Ok(Ev::Pod(e)));
    let mut events = futures::stream::select(futures::stream::select(nodes, leases), pods).boxed();
    let mut st = NodeLifecycleController {
        recorder: Recorder::new(client.clone(), "node-controller"),
        client,
        grace,
        known: Known::default(),
        pods: HashMap::new(),
        evicted: HashMap::new(),
    };
    // Check often enough that a node is noticed within a fraction of the grace period.
    let period = (grace / 8).clamp(Duration::from_millis(200), Duration::from_secs(5));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(ev)) => st.handle(ev),
                Some(Err(e)) => tracing::debug!("node lifecycle watch: {e}"),
                None => return,
            },
            _ = tick.tick() => st.check().await,
        }
    }
}

fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

fn taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

/// The nodes and when each was last heard of (its lease renewed).
#[derive(Default)]
struct Known {
    nodes: HashMap<String, Arc<Node>>,
    probes: HashMap<String, Probe>,
    /// Nodes seen during a re-list (the watch was closed, e.g. for falling behind): at its
    /// end, whatever else is cached was deleted meanwhile.
    relisting: Option<HashMap<String, Arc<Node>>>,
}

impl Known {
    fn node(&mut self, ev: watcher::Event<Node>, now: Instant) {
        match ev {
            watcher::Event::Init => self.relisting = Some(HashMap::new()),
            watcher::Event::InitDone => {
                // Without this, a node deleted while the watch was down stays cached for
                // good: judged silent, patched and tainted every tick, each a 404.
                if let Some(listed) = self.relisting.take() {
                    self.nodes = listed;
                    let nodes = &self.nodes;
                    self.probes.retain(|name, _| nodes.contains_key(name));
                }
            }
            watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                let name = n.name_any();
                self.probes.entry(name.clone()).or_insert(Probe {
                    renew: None,
                    seen: now,
                });
                let n = Arc::new(n);
                if let Some(listed) = self.relisting.as_mut() {
                    listed.insert(name.clone(), n.clone());
                }
                self.nodes.insert(name, n);
            }
            watcher::Event::Delete(n) => {
                let name = n.name_any();
                self.nodes.remove(&name);
                self.probes.remove(&name);
                if let Some(listed) = self.relisting.as_mut() {
                    listed.remove(&name);
                }
            }
        }
    }

    fn lease(&mut self, ev: watcher::Event<Lease>, now: Instant) {
        let (watcher::Event::Apply(l) | watcher::Event::InitApply(l)) = ev else {
            return;
        };
        let renew = l
            .spec
            .as_ref()
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0.to_string());
        let p = self.probes.entry(l.name_any()).or_insert(Probe {
            renew: None,
            seen: now,
        });
        if p.renew != renew {
            p.renew = renew;
            p.seen = now;
        }
    }
}

impl NodeLifecycleController {
    fn handle(&mut self, ev: Ev) {
        let now = Instant::now();
        match ev {
            Ev::Node(ev) => self.known.node(ev, now),
            Ev::Lease(ev) => self.known.lease(ev, now),
            Ev::Pod(PodEvent::Applied(p)) => {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                self.pods.insert(uid, p);
            }
            Ev::Pod(PodEvent::Deleted(p)) => {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                self.pods.remove(&uid);
                self.evicted.remove(&uid);
            }
            Ev::Pod(PodEvent::Relisted(all)) => {
                self.pods = all
                    .into_iter()
                    .map(|p| (p.metadata.uid.clone().unwrap_or_default(), p))
                    .collect();
                let pods = &self.pods;
                self.evicted.retain(|uid, _| pods.contains_key(uid));
            }
        }
    }

    async fn check(&mut self) {
        let now = Instant::now();
        let names: Vec<String> = self.known.nodes.keys().cloned().collect();
        for name in names {
            let Some(node) = self.known.nodes.get(&name).cloned() else {
                continue;
            };
            let silent = self
                .known
                .probes
                .get(&name)
                .is_some_and(|p| now.duration_since(p.seen) > self.grace);
            // A node that has not posted a Ready condition yet is only judged once it has been
            // silent for the grace period (upstream's startup grace): a kubelet registers the
            // Node before its first status, and tainting it in between sends pods elsewhere.
            let Some(ready) = ready_status(&node).or(silent.then_some("Unknown")) else {
                continue;
            };
            let mut ready = ready.to_string();
            if silent && ready != "Unknown" {
                self.mark_unknown(&node).await;
                ready = "Unknown".into();
            }
            self.set_taints(&node, &ready).await;
            self.evict(&node).await;
        }
    }

    async fn mark_unknown(&self, node: &Node) {
        let name = node.name_any();
        let now = Time(Timestamp::now());
        let mut conds = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        if conds.is_empty() {
            conds.push(k8s_openapi::api::core::v1::NodeCondition {
                type_: "Ready".into(),
                ..Default::default()
            });
        }
        for c in conds.iter_mut() {
            c.status = "Unknown".into();
            c.reason = Some("NodeStatusUnknown".into());
            c.message = Some("Kubelet stopped posting node status.".into());
            c.last_transition_time = Some(now.clone());
        }
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"status": {"conditions": conds}});
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!("node lifecycle: marking {name} Unknown: {e}");
            return;
        }
        self.recorder
            .normal(
                &events::reference(node),
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            )
            .await;
        // Upstream MarkPodsNotReady: endpoints stop sending traffic to them.
        for p in self.pods.values() {
            if p.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(name.as_str()) {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(
                self.client.clone(),
                p.metadata.namespace.as_deref().unwrap_or("default"),
            );
            let patch = json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "False", "lastTransitionTime": now},
            ]}});
            let _ = api
                .patch_status(
                    &p.name_any(),
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                )
                .await;
        }
    }

    /// Keeps the condition taints equal to what the Ready condition says.
    async fn set_taints(&self, node: &Node, ready: &str) {
        let current = taints(node);
        let wanted_key = match ready {
            "True" => None,
            "False" => Some(NOT_READY),
            _ => Some(UNREACHABLE),
        };
        let mut next: Vec<Taint> = current
            .iter()
            .filter(|t| {
                let ours = t.key == UNREACHABLE || t.key == NOT_READY;
                !ours || Some(t.key.as_str()) == wanted_key
            })
            .cloned()
            .collect();
        if let Some(key) = wanted_key {
            for effect in ["NoSchedule", "NoExecute"] {
                if !next.iter().any(|t| t.key == key && t.effect == effect) {
                    next.push(Taint {
                        key: key.into(),
                        effect: effect.into(),
                        time_added: (effect == "NoExecute").then(|| Time(Timestamp::now())),
                        value: None,
                    });
                }
            }
        }
        if next == current {
            return;
        }
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"spec": {"taints": next}});
        if let Err(e) = api
            .patch(
                &node.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::warn!("node lifecycle: tainting {}: {e}", node.name_any());
        }
    }

    /// Evicts pods on `node` that do not tolerate its NoExecute taints (now, or once their
    /// tolerationSeconds have passed since the taint was added).
    async fn evict(&mut self, node: &Node) {
        let no_execute: Vec<Taint> = taints(node)
            .into_iter()
            .filter(|t| t.effect == "NoExecute")
            .collect();
        if no_execute.is_empty() {
            return;
        }
        let name = node.name_any();
        let now = Timestamp::now();
        let due: Vec<Arc<CachedPod>> = self
            .pods
            .values()
            .filter(|p| {
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
                    && p.metadata.deletion_timestamp.is_none()
                    && !self
                        .evicted
                        .contains_key(p.metadata.uid.as_deref().unwrap_or(""))
            })
            .filter(|p| {
                let tolerations = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.tolerations.as_deref())
                    .unwrap_or_default();
                no_execute.iter().any(|taint| {
                    let matching: Vec<_> =
                        tolerations.iter().filter(|t| tolerates(t, taint)).collect();
                    if matching.is_empty() {
                        return true;
                    }
                    // The shortest tolerationSeconds wins; none means forever.
                    let Some(secs) = matching.iter().filter_map(|t| t.toleration_seconds).min()
                    else {
                        return false;
                    };
                    let added = taint.time_added.as_ref().map(|t| t.0).unwrap_or(now);
                    now.as_second() >= added.as_second() + secs.max(0)
                })
            })
            .cloned()
            .collect();
        for p in due {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            self.evicted.insert(uid.clone(), Instant::now());
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&p.name_any(), &dp).await {
                Ok(_) => {
                    self.recorder
                        .normal(
                            &events::reference(p.as_ref()),
                            "TaintManagerEviction",
                            format!("Marking for deletion Pod {ns}/{}", p.name_any()),
                        )
                        .await
                }
                Err(e) => tracing::debug!("node lifecycle: evicting {ns}/{}: {e}", p.name_any()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n
    }

    #[test]
    fn a_relist_forgets_nodes_deleted_while_the_watch_was_down() {
        let now = Instant::now();
        let mut k = Known::default();
        k.node(watcher::Event::Apply(node("a")), now);
        k.node(watcher::Event::Apply(node("b")), now);
        k.node(watcher::Event::Init, now);
        k.node(watcher::Event::InitApply(node("a")), now);
        k.node(watcher::Event::InitApply(node("c")), now);
        // Until the list ends, what was known still counts.
        assert!(k.nodes.contains_key("b"));
        k.node(watcher::Event::InitDone, now);
        let mut names: Vec<_> = k.nodes.keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["a", "c"]);
        assert!(!k.probes.contains_key("b"));
        assert!(k.probes.contains_key("c"));
    }
}
