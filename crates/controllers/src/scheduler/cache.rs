//! The scheduler's view of the cluster: nodes with what is requested on them, and every pod
//! (assigned ones count against their node; "assumed" ones are bound by us but not yet seen
//! bound through the watch, as upstream's scheduler cache keeps them).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use reddwarf_resources::validation::quantity;

use crate::pod_cache::CachedPod;

/// Amounts of resources: CPU in millicores, everything else in whole units.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub pods: i64,
    /// Extended resources (`nvidia.com/gpu`, `hugepages-2Mi`, …).
    pub scalar: BTreeMap<String, i64>,
}

/// Upstream's defaults for scoring pods that request nothing (so they still spread).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

fn amount(name: &str, q: &Quantity) -> i64 {
    match quantity::parse(&q.0) {
        Ok(q) if name == "cpu" => q.milli_value(),
        Ok(q) => q.value(),
        Err(_) => 0,
    }
}

impl Resources {
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
        let mut r = Resources::default();
        for (k, q) in list.into_iter().flatten() {
            r.set(k, amount(k, q));
        }
        r
    }

    fn set(&mut self, name: &str, v: i64) {
        match name {
            "cpu" => self.milli_cpu = v,
            "memory" => self.memory = v,
            "ephemeral-storage" => self.ephemeral_storage = v,
            "pods" => self.pods = v,
            other => {
                self.scalar.insert(other.to_string(), v);
            }
        }
    }

    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        self.pods += o.pods;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        self.pods -= o.pods;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Per-resource maximum (an init container runs alone).
    fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

fn container_requests(c: &Container) -> Resources {
    Resources::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

/// What a pod requests (upstream `computePodResourceRequest`): its containers and sidecars
/// together, or the largest init container with the sidecars started before it, whichever
/// is more, plus the pod overhead. `pods` is 1.
pub fn pod_requests(pod: &Pod) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(&container_requests(c));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            total.add(&r);
            init_max.max_with(&sidecars);
        } else {
            let mut with = sidecars.clone();
            with.add(&r);
            init_max.max_with(&with);
        }
    }
    total.max_with(&init_max);
    total.add(&Resources::from_list(spec.overhead.as_ref()));
    total.pods = 1;
    total
}

/// CPU and memory used for scoring: requests, or upstream's defaults where a container
/// requests none.
pub fn non_zero_requests(pod: &Pod) -> (i64, i64) {
    let Some(spec) = pod.spec.as_ref() else {
        return (0, 0);
    };
    let (mut cpu, mut mem) = (0, 0);
    for c in &spec.containers {
        let r = container_requests(c);
        cpu += if r.milli_cpu == 0 {
            DEFAULT_MILLI_CPU_REQUEST
        } else {
            r.milli_cpu
        };
        mem += if r.memory == 0 {
            DEFAULT_MEMORY_REQUEST
        } else {
            r.memory
        };
    }
    (cpu, mem)
}

/// A host port a pod uses: (protocol, host IP, port).
pub type HostPort = (String, String, i32);

pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let mut out = Vec::new();
    let Some(spec) = pod.spec.as_ref() else {
        return out;
    };
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for p in c.ports.iter().flatten() {
            if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                out.push((
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    p.host_ip
                        .clone()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "0.0.0.0".into()),
                    hp,
                ));
            }
        }
    }
    out
}

/// One pod as the scheduler keeps it.
#[derive(Clone)]
pub struct PodInfo {
    pub pod: Arc<CachedPod>,
    pub node: String,
    pub requests: Resources,
    pub non_zero: (i64, i64),
    pub ports: Vec<HostPort>,
    /// Has pod (anti-)affinity terms: only such pods matter to others' affinity checks.
    pub has_affinity: bool,
}

/// Whether the pod states any pod affinity or anti-affinity.
pub fn has_pod_affinity(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
}

impl PodInfo {
    pub fn new(pod: Arc<CachedPod>, node: String) -> PodInfo {
        // From the footprint: a bound pod is cached without its containers.
        let f = pod.footprint();
        PodInfo {
            has_affinity: has_pod_affinity(&pod),
            requests: f.requests.clone(),
            non_zero: f.non_zero,
            ports: f.ports.clone(),
            pod,
            node,
        }
    }
}

#[derive(Clone)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub allocatable: Resources,
    pub requested: Resources,
    pub non_zero: (i64, i64),
    pub pods: HashSet<String>,
    pub ports: Vec<HostPort>,
}

impl NodeInfo {
    fn new(node: Arc<Node>) -> NodeInfo {
        NodeInfo {
            allocatable: Resources::from_list(
                node.status.as_ref().and_then(|s| s.allocatable.as_ref()),
            ),
            node,
            requested: Resources::default(),
            non_zero: (0, 0),
            pods: HashSet::new(),
            ports: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or("")
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.node.metadata.labels.as_ref()
    }

    pub fn taints(&self) -> &[Taint] {
        self.node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default()
    }

    pub fn unschedulable(&self) -> bool {
        self.node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false)
    }

    pub fn add_pod(&mut self, uid: &str, p: &PodInfo) {
        if self.pods.insert(uid.to_string()) {
            self.requested.add(&p.requests);
            self.non_zero.0 += p.non_zero.0;
            self.non_zero.1 += p.non_zero.1;
            self.ports.extend(p.ports.iter().cloned());
        }
    }

    pub fn remove_pod(&mut self, uid: &str, p: &PodInfo) {
        if self.pods.remove(uid) {
            self.requested.sub(&p.requests);
            self.non_zero.0 -= p.non_zero.0;
            self.non_zero.1 -= p.non_zero.1;
            for port in &p.ports {
                if let Some(i) = self.ports.iter().position(|x| x == port) {
                    self.ports.swap_remove(i);
                }
            }
        }
    }
}

pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// Whether a pod occupies its node: assigned and not finished.
pub fn occupies(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed"))
}

#[derive(Default)]
pub struct Cache {
    pub nodes: BTreeMap<String, NodeInfo>,
    /// Assigned (or assumed) pods by uid.
    pub pods: HashMap<String, PodInfo>,
    /// Pods bound by us whose binding the watch has not shown yet.
    pub assumed: HashSet<String>,
    /// Assigned pods with pod (anti-)affinity terms.
    pub with_affinity: HashSet<String>,
}

pub fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

impl Cache {
    pub fn set_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        match self.nodes.get_mut(&name) {
            Some(n) => {
                n.allocatable =
                    Resources::from_list(node.status.as_ref().and_then(|s| s.allocatable.as_ref()));
                n.node = node;
            }
            None => {
                let mut info = NodeInfo::new(node);
                // Pods seen before their node count against it now.
                for (uid, p) in &self.pods {
                    if p.node == name {
                        info.add_pod(uid, p);
                    }
                }
                self.nodes.insert(name, info);
            }
        }
    }

    pub fn remove_node(&mut self, name: &str) {
        self.nodes.remove(name);
    }

    /// Records an assigned pod (from the watch, or assumed by us); a finished or deleted one
    /// is removed.
    pub fn set_pod(&mut self, pod: Arc<CachedPod>) {
        let uid = uid(&pod);
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        self.remove_pod(&uid);
        if node.is_empty() || !occupies(&pod) {
            return;
        }
        self.assumed.remove(&uid);
        let info = PodInfo::new(pod, node.clone());
        if let Some(n) = self.nodes.get_mut(&node) {
            n.add_pod(&uid, &info);
        }
        if info.has_affinity {
            self.with_affinity.insert(uid.clone());
        }
        self.pods.insert(uid, info);
    }

    /// Counts a pod against `node` before the binding is visible (upstream "assume").
    pub fn assume(&mut self, pod: &Pod, node: &str) {
        let mut p = pod.clone();
        if let Some(s) = p.spec.as_mut() {
            s.node_name = Some(node.to_string());
        }
        let uid = uid(pod);
        self.set_pod(Arc::new(CachedPod::new(p)));
        self.assumed.insert(uid);
    }

    pub fn forget(&mut self, uid: &str) {
        if self.assumed.remove(uid) {
            self.remove_pod(uid);
        }
    }

    pub fn remove_pod(&mut self, uid: &str) {
        if let Some(old) = self.pods.remove(uid) {
            self.with_affinity.remove(uid);
            if let Some(n) = self.nodes.get_mut(&old.node) {
                n.remove_pod(uid, &old);
            }
        }
    }
}
