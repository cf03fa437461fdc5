//! The default profile's filters and scores, with upstream's semantics and failure reasons
//! (pkg/scheduler/framework/plugins/*).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{
    NodeSelectorTerm, Pod, PodAffinityTerm, Taint, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::cache::{Cache, NodeInfo, PodInfo, Resources};
use crate::label_selector::selector_matches;

pub const ERR_NODE_NAME: &str = "node(s) didn't match the requested node name";
pub const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const ERR_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const ERR_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_SPREAD_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// Whether a failure could be fixed by preempting pods (only resource shortage and
/// affinity to be satisfied by removal can).
pub fn preemption_could_help(reason: &str) -> bool {
    reason.starts_with("Insufficient")
        || reason == "Too many pods"
        || reason == ERR_ANTI_AFFINITY
        || reason == ERR_EXISTING_ANTI_AFFINITY
        || reason == ERR_PORTS
}

fn labels_of(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.labels.clone().unwrap_or_default()
}

// ---- tolerations -------------------------------------------------------------------------

pub use crate::taints::tolerates;

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

fn pod_tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

// ---- node affinity -----------------------------------------------------------------------

pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    crate::node_affinity::node_selector_term_matches(term, &node.node)
}

/// nodeSelector and required node affinity (upstream `GetRequiredNodeAffinity().Match`).
pub fn node_affinity_matches(pod: &Pod, node: &NodeInfo) -> bool {
    pod.spec
        .as_ref()
        .is_none_or(|spec| crate::node_affinity::node_fits_pod_selectors(spec, &node.node))
}

// ---- inter-pod affinity ------------------------------------------------------------------

/// Whether `candidate` is selected by `term` of `owner` (namespaces default to the owner's).
fn affinity_term_selects(term: &PodAffinityTerm, owner: &Pod, candidate: &Pod) -> bool {
    let cns = candidate.metadata.namespace.as_deref().unwrap_or("");
    let namespaces = term.namespaces.as_deref().unwrap_or_default();
    let ns_ok = if namespaces.is_empty() && term.namespace_selector.is_none() {
        owner.metadata.namespace.as_deref().unwrap_or("") == cns
    } else {
        namespaces.iter().any(|n| n == cns)
            // A namespace selector would need namespace labels; the empty selector means all.
            || term
                .namespace_selector
                .as_ref()
                .is_some_and(|s| s.match_labels.is_none() && s.match_expressions.is_none())
    };
    if !ns_ok {
        return false;
    }
    let Some(sel) = term.label_selector.as_ref() else {
        return false;
    };
    selector_matches(sel, &labels_of(candidate))
}

fn node_label<'a>(cache: &'a Cache, node: &str, key: &str) -> Option<&'a String> {
    cache.nodes.get(node)?.labels()?.get(key)
}

struct AffinityTerms<'a> {
    affinity: Vec<&'a PodAffinityTerm>,
    anti: Vec<&'a PodAffinityTerm>,
    preferred_affinity: Vec<(i32, &'a PodAffinityTerm)>,
    preferred_anti: Vec<(i32, &'a PodAffinityTerm)>,
}

fn affinity_terms(pod: &Pod) -> AffinityTerms<'_> {
    let a = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let pa = a.and_then(|a| a.pod_affinity.as_ref());
    let paa = a.and_then(|a| a.pod_anti_affinity.as_ref());
    AffinityTerms {
        affinity: pa
            .and_then(|p| {
                p.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|v| v.iter().collect())
            .unwrap_or_default(),
        anti: paa
            .and_then(|p| {
                p.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|v| v.iter().collect())
            .unwrap_or_default(),
        preferred_affinity: pa
            .and_then(|p| {
                p.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|v| v.iter().map(|w| (w.weight, &w.pod_affinity_term)).collect())
            .unwrap_or_default(),
        preferred_anti: paa
            .and_then(|p| {
                p.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|v| v.iter().map(|w| (w.weight, &w.pod_affinity_term)).collect())
            .unwrap_or_default(),
    }
}

/// Counts per (topologyKey, value) computed once per scheduling attempt (PreFilter).
pub struct AffinityState {
    /// Existing pods' required anti-affinity terms matching the incoming pod.
    existing_anti: HashMap<(String, String), usize>,
    /// Per incoming required affinity term: matching pods per topology value.
    affinity: Vec<HashMap<String, usize>>,
    /// Whether any pod anywhere matches each affinity term.
    affinity_any: bool,
    /// Incoming required anti-affinity: matching pods per (key, value).
    anti: HashMap<(String, String), usize>,
    /// Preferred terms both ways: score per (key, value).
    preferred: HashMap<(String, String), i64>,
    pub has_preferred: bool,
}

pub fn affinity_prefilter(pod: &Pod, cache: &Cache) -> AffinityState {
    let terms = affinity_terms(pod);
    let mut st = AffinityState {
        existing_anti: HashMap::new(),
        affinity: vec![HashMap::new(); terms.affinity.len()],
        affinity_any: false,
        anti: HashMap::new(),
        preferred: HashMap::new(),
        has_preferred: !terms.preferred_affinity.is_empty() || !terms.preferred_anti.is_empty(),
    };
    // Without terms of its own, only pods with terms can matter to this one.
    let own_terms = !terms.affinity.is_empty()
        || !terms.anti.is_empty()
        || !terms.preferred_affinity.is_empty()
        || !terms.preferred_anti.is_empty();
    let relevant: Box<dyn Iterator<Item = &PodInfo>> = if own_terms {
        Box::new(cache.pods.values())
    } else {
        Box::new(cache.with_affinity.iter().filter_map(|u| cache.pods.get(u)))
    };
    for p in relevant {
        let existing = &p.pod;
        let et = affinity_terms(existing);
        let value = |key: &str| node_label(cache, &p.node, key).cloned();
        for t in &et.anti {
            if affinity_term_selects(t, existing, pod) {
                if let Some(v) = value(&t.topology_key) {
                    *st.existing_anti
                        .entry((t.topology_key.clone(), v))
                        .or_default() += 1;
                }
            }
        }
        // Symmetry: existing pods' preferences about the incoming pod count too.
        for (w, t) in &et.preferred_affinity {
            if affinity_term_selects(t, existing, pod) {
                if let Some(v) = value(&t.topology_key) {
                    st.has_preferred = true;
                    *st.preferred.entry((t.topology_key.clone(), v)).or_default() += *w as i64;
                }
            }
        }
        for (w, t) in &et.preferred_anti {
            if affinity_term_selects(t, existing, pod) {
                if let Some(v) = value(&t.topology_key) {
                    st.has_preferred = true;
                    *st.preferred.entry((t.topology_key.clone(), v)).or_default() -= *w as i64;
                }
            }
        }
        for (i, t) in terms.affinity.iter().enumerate() {
            if affinity_term_selects(t, pod, existing) {
                st.affinity_any = true;
                if let Some(v) = value(&t.topology_key) {
                    *st.affinity[i].entry(v).or_default() += 1;
                }
            }
        }
        for t in &terms.anti {
            if affinity_term_selects(t, pod, existing) {
                if let Some(v) = value(&t.topology_key) {
                    *st.anti.entry((t.topology_key.clone(), v)).or_default() += 1;
                }
            }
        }
        for (w, t) in &terms.preferred_affinity {
            if affinity_term_selects(t, pod, existing) {
                if let Some(v) = value(&t.topology_key) {
                    *st.preferred.entry((t.topology_key.clone(), v)).or_default() += *w as i64;
                }
            }
        }
        for (w, t) in &terms.preferred_anti {
            if affinity_term_selects(t, pod, existing) {
                if let Some(v) = value(&t.topology_key) {
                    *st.preferred.entry((t.topology_key.clone(), v)).or_default() -= *w as i64;
                }
            }
        }
    }
    st
}

fn inter_pod_affinity_filter(
    pod: &Pod,
    node: &NodeInfo,
    st: &AffinityState,
) -> Option<&'static str> {
    let labels = node.labels();
    let value = |k: &str| labels.and_then(|l| l.get(k)).cloned();
    for ((k, v), n) in &st.existing_anti {
        if *n > 0 && value(k).as_ref() == Some(v) {
            return Some(ERR_EXISTING_ANTI_AFFINITY);
        }
    }
    let terms = affinity_terms(pod);
    if !terms.affinity.is_empty() {
        let satisfied = terms.affinity.iter().enumerate().all(|(i, t)| {
            value(&t.topology_key).is_some_and(|v| st.affinity[i].get(&v).copied().unwrap_or(0) > 0)
        });
        // Upstream: the first pod of a group that selects itself may go anywhere it could.
        let self_match = !st.affinity_any
            && terms
                .affinity
                .iter()
                .all(|t| affinity_term_selects(t, pod, pod) && value(&t.topology_key).is_some());
        if !satisfied && !self_match {
            return Some(ERR_AFFINITY);
        }
    }
    for t in &terms.anti {
        if let Some(v) = value(&t.topology_key) {
            if st
                .anti
                .get(&(t.topology_key.clone(), v))
                .copied()
                .unwrap_or(0)
                > 0
            {
                return Some(ERR_ANTI_AFFINITY);
            }
        }
    }
    None
}

fn inter_pod_affinity_score(node: &NodeInfo, st: &AffinityState) -> i64 {
    let labels = node.labels();
    st.preferred
        .iter()
        .filter(|((k, v), _)| labels.and_then(|l| l.get(k)) == Some(v))
        .map(|(_, s)| *s)
        .sum()
}

// ---- topology spread ---------------------------------------------------------------------

/// A spreading constraint with its selector resolved.
pub struct Spread {
    pub max_skew: i64,
    pub key: String,
    pub hard: bool,
    pub min_domains: i64,
    /// Matching pods per topology value, over eligible nodes.
    counts: HashMap<String, i64>,
    /// Domains among eligible nodes (a domain with no pods counts 0).
    domains: usize,
    self_match: bool,
}

/// Upstream's system default constraints (hostname maxSkew 3, zone maxSkew 5, both
/// ScheduleAnyway) apply to pods with a controller and no constraints of their own; the
/// selector is "same controller" (upstream derives it from the owning workload's selector).
fn constraints(pod: &Pod) -> Vec<(TopologySpreadConstraint, LabelSelector)> {
    let own = pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default();
    if !own.is_empty() {
        return own
            .iter()
            .map(|c| {
                let mut sel = c.label_selector.clone().unwrap_or_default();
                // matchLabelKeys: the pod's own values for these keys join the selector.
                for k in c.match_label_keys.iter().flatten() {
                    if let Some(v) = pod.metadata.labels.as_ref().and_then(|l| l.get(k)) {
                        sel.match_labels
                            .get_or_insert_with(BTreeMap::new)
                            .insert(k.clone(), v.clone());
                    }
                }
                (c.clone(), sel)
            })
            .collect();
    }
    if crate::ownership::controller_of(&pod.metadata).is_none() {
        return Vec::new();
    }
    let sel = LabelSelector {
        match_labels: pod.metadata.labels.clone().filter(|l| !l.is_empty()),
        match_expressions: None,
    };
    if sel.match_labels.is_none() {
        return Vec::new();
    }
    [
        ("kubernetes.io/hostname", 3),
        ("topology.kubernetes.io/zone", 5),
    ]
    .into_iter()
    .map(|(key, skew)| {
        (
            TopologySpreadConstraint {
                max_skew: skew,
                topology_key: key.into(),
                when_unsatisfiable: "ScheduleAnyway".into(),
                ..Default::default()
            },
            sel.clone(),
        )
    })
    .collect()
}

fn same_owner(a: &Pod, b: &Pod) -> bool {
    match (
        crate::ownership::controller_of(&a.metadata),
        crate::ownership::controller_of(&b.metadata),
    ) {
        (Some(x), Some(y)) => x.uid == y.uid,
        _ => false,
    }
}

pub fn spread_prefilter(pod: &Pod, cache: &Cache) -> Vec<Spread> {
    let system = pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .is_none_or(|c| c.is_empty());
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let mut out = Vec::new();
    for (c, selector) in constraints(pod) {
        let mut counts: HashMap<String, i64> = HashMap::new();
        let honor_affinity = c.node_affinity_policy.as_deref() != Some("Ignore");
        let honor_taints = c.node_taints_policy.as_deref() == Some("Honor");
        for n in cache.nodes.values() {
            let Some(v) = n.labels().and_then(|l| l.get(&c.topology_key)) else {
                continue;
            };
            if honor_affinity && !node_affinity_matches(pod, n) {
                continue;
            }
            if honor_taints
                && n.taints().iter().any(|t| {
                    (t.effect == "NoSchedule" || t.effect == "NoExecute")
                        && !tolerated(pod_tolerations(pod), t)
                })
            {
                continue;
            }
            let entry = counts.entry(v.clone()).or_default();
            for uid in &n.pods {
                let Some(p) = cache.pods.get(uid) else {
                    continue;
                };
                if p.pod.metadata.namespace.as_deref() != Some(ns)
                    || p.pod.metadata.deletion_timestamp.is_some()
                {
                    continue;
                }
                let hit = if system {
                    same_owner(pod, &p.pod)
                } else {
                    selector_matches(&selector, &labels_of(&p.pod))
                };
                if hit {
                    *entry += 1;
                }
            }
        }
        let self_match = if system {
            true
        } else {
            selector_matches(&selector, &labels_of(pod))
        };
        out.push(Spread {
            max_skew: c.max_skew as i64,
            hard: c.when_unsatisfiable == "DoNotSchedule",
            domains: counts.len(),
            key: c.topology_key,
            min_domains: c.min_domains.unwrap_or(1) as i64,
            counts,
            self_match,
        });
    }
    out
}

fn spread_filter(node: &NodeInfo, spreads: &[Spread]) -> Option<&'static str> {
    for s in spreads.iter().filter(|s| s.hard) {
        let Some(v) = node.labels().and_then(|l| l.get(&s.key)) else {
            return Some(ERR_SPREAD_LABEL);
        };
        let mut min = s.counts.values().copied().min().unwrap_or(0);
        if (s.domains as i64) < s.min_domains {
            min = 0;
        }
        let here = s.counts.get(v).copied().unwrap_or(0) + i64::from(s.self_match);
        if here - min > s.max_skew {
            return Some(ERR_SPREAD);
        }
    }
    None
}

fn spread_raw_score(node: &NodeInfo, spreads: &[Spread]) -> f64 {
    let mut score = 0.0;
    for s in spreads.iter().filter(|s| !s.hard) {
        let Some(v) = node.labels().and_then(|l| l.get(&s.key)) else {
            continue;
        };
        let n = s.counts.get(v).copied().unwrap_or(0) as f64;
        // Upstream weights each constraint by log(domains + 2) and adds maxSkew - 1.
        score += (n + (s.max_skew - 1) as f64) * ((s.domains + 2) as f64).ln();
    }
    score
}

// ---- filters -----------------------------------------------------------------------------

/// Everything computed once per pod before filtering nodes.
pub struct PodState<'a> {
    pub pod: &'a Pod,
    pub info: PodInfo,
    pub affinity: AffinityState,
    pub spreads: Vec<Spread>,
    pub node_name: Option<&'a str>,
}

impl<'a> PodState<'a> {
    pub fn new(
        cached: &'a std::sync::Arc<crate::pod_cache::CachedPod>,
        cache: &Cache,
    ) -> PodState<'a> {
        let pod: &'a Pod = cached;
        PodState {
            pod,
            info: PodInfo::new(cached.clone(), String::new()),
            affinity: affinity_prefilter(pod, cache),
            spreads: spread_prefilter(pod, cache),
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .filter(|n| !n.is_empty()),
        }
    }
}

fn fit(req: &Resources, node: &NodeInfo, reasons: &mut Vec<String>) {
    let alloc = &node.allocatable;
    let used = &node.requested;
    if used.pods + 1 > alloc.pods {
        reasons.push("Too many pods".into());
    }
    if req.milli_cpu > 0 && used.milli_cpu + req.milli_cpu > alloc.milli_cpu {
        reasons.push("Insufficient cpu".into());
    }
    if req.memory > 0 && used.memory + req.memory > alloc.memory {
        reasons.push("Insufficient memory".into());
    }
    if req.ephemeral_storage > 0
        && used.ephemeral_storage + req.ephemeral_storage > alloc.ephemeral_storage
    {
        reasons.push("Insufficient ephemeral-storage".into());
    }
    for (k, v) in &req.scalar {
        if *v > 0
            && used.scalar.get(k).copied().unwrap_or(0) + v
                > alloc.scalar.get(k).copied().unwrap_or(0)
        {
            reasons.push(format!("Insufficient {k}"));
        }
    }
}

fn ports_conflict(a: &(String, String, i32), b: &(String, String, i32)) -> bool {
    a.0 == b.0 && a.2 == b.2 && (a.1 == b.1 || a.1 == "0.0.0.0" || b.1 == "0.0.0.0")
}

/// Runs the filters in upstream's order; the reasons of the first that fails, or none.
pub fn filter(st: &PodState, node: &NodeInfo) -> Vec<String> {
    let pod = st.pod;
    let tolerations = pod_tolerations(pod);
    if node.unschedulable() {
        let t = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if !tolerated(tolerations, &t) {
            return vec![ERR_UNSCHEDULABLE.into()];
        }
    }
    if let Some(n) = st.node_name {
        if n != node.name() {
            return vec![ERR_NODE_NAME.into()];
        }
    }
    if let Some(t) = node.taints().iter().find(|t| {
        (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(tolerations, t)
    }) {
        return vec![format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key,
            t.value.as_deref().unwrap_or("")
        )];
    }
    if !node_affinity_matches(pod, node) {
        return vec![ERR_NODE_AFFINITY.into()];
    }
    if st
        .info
        .ports
        .iter()
        .any(|p| node.ports.iter().any(|q| ports_conflict(p, q)))
    {
        return vec![ERR_PORTS.into()];
    }
    let mut reasons = Vec::new();
    fit(&st.info.requests, node, &mut reasons);
    if !reasons.is_empty() {
        return reasons;
    }
    if let Some(r) = spread_filter(node, &st.spreads) {
        return vec![r.into()];
    }
    if let Some(r) = inter_pod_affinity_filter(pod, node, &st.affinity) {
        return vec![r.into()];
    }
    Vec::new()
}

// ---- scores ------------------------------------------------------------------------------

const MAX: f64 = 100.0;

/// Raw per-plugin scores of one node, normalised across nodes by [`total_scores`].
pub struct Raw {
    least: f64,
    balanced: f64,
    taints: f64,
    node_affinity: f64,
    spread: f64,
    inter_pod: f64,
}

pub fn raw_scores(st: &PodState, node: &NodeInfo) -> Raw {
    let (cpu, mem) = st.info.non_zero;
    let alloc = &node.allocatable;
    let frac = |used: i64, cap: i64| {
        if cap <= 0 {
            1.0
        } else {
            (used as f64 / cap as f64).min(1.0)
        }
    };
    let fc = frac(node.non_zero.0 + cpu, alloc.milli_cpu);
    let fm = frac(node.non_zero.1 + mem, alloc.memory);
    let least = ((1.0 - fc) * MAX + (1.0 - fm) * MAX) / 2.0;
    // Two resources: the standard deviation is half their difference.
    let balanced = (1.0 - (fc - fm).abs() / 2.0) * MAX;
    let tolerations: Vec<&Toleration> = pod_tolerations(st.pod)
        .iter()
        .filter(|t| {
            t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
        })
        .collect();
    let taints = node
        .taints()
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerations.iter().any(|x| tolerates(x, t)))
        .count() as f64;
    let node_affinity = st
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|terms| {
            terms
                .iter()
                .filter(|t| term_matches(&t.preference, node))
                .map(|t| t.weight as f64)
                .sum()
        })
        .unwrap_or(0.0);
    Raw {
        least,
        balanced,
        taints,
        node_affinity,
        spread: spread_raw_score(node, &st.spreads),
        inter_pod: if st.affinity.has_preferred {
            inter_pod_affinity_score(node, &st.affinity) as f64
        } else {
            0.0
        },
    }
}

/// Normalises and weighs (upstream default weights: TaintToleration 3, NodeAffinity 2,
/// PodTopologySpread 2, InterPodAffinity 2, NodeResourcesFit 1, BalancedAllocation 1).
pub fn total_scores(raw: &[Raw]) -> Vec<f64> {
    let max_by = |f: &dyn Fn(&Raw) -> f64| raw.iter().map(f).fold(f64::MIN, f64::max);
    let min_by = |f: &dyn Fn(&Raw) -> f64| raw.iter().map(f).fold(f64::MAX, f64::min);
    let max_taints = max_by(&|r| r.taints);
    let max_na = max_by(&|r| r.node_affinity);
    let (max_sp, min_sp) = (max_by(&|r| r.spread), min_by(&|r| r.spread));
    let (max_ip, min_ip) = (max_by(&|r| r.inter_pod), min_by(&|r| r.inter_pod));
    raw.iter()
        .map(|r| {
            let taints = if max_taints > 0.0 {
                MAX - r.taints * MAX / max_taints
            } else {
                MAX
            };
            let na = if max_na > 0.0 {
                r.node_affinity * MAX / max_na
            } else {
                0.0
            };
            let spread = if max_sp > 0.0 {
                MAX * (max_sp + min_sp - r.spread) / max_sp
            } else {
                MAX
            };
            let ip = if max_ip > min_ip {
                MAX * (r.inter_pod - min_ip) / (max_ip - min_ip)
            } else {
                0.0
            };
            3.0 * taints + 2.0 * na + 2.0 * spread + 2.0 * ip + r.least + r.balanced
        })
        .collect()
}
