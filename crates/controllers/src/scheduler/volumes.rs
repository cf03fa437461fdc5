//! Upstream's VolumeBinding plugin: a pod's claims must be bound before it is scheduled,
//! unless their class waits for the first consumer; those are matched to a volume whose
//! node affinity admits the chosen node (or left for a provisioner, the node named in
//! `volume.kubernetes.io/selected-node`) and bound before the pod is.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

use crate::volume::*;

pub const ERR_BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
pub const ERR_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
pub const ERR_PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
pub const ERR_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
/// Upstream's default `bindTimeoutSeconds`.
const BIND_TIMEOUT: Duration = Duration::from_secs(600);

/// Claims, volumes and classes as the watches last showed them, with the scheduler's own
/// assumptions (volumes it chose, claims it sent to provisioning) laid over them until the
/// watch brings the real change, as upstream's assume cache does.
#[derive(Default)]
pub struct VolumeCache {
    pub claims: HashMap<(String, String), Arc<PersistentVolumeClaim>>,
    pub volumes: HashMap<String, Arc<PersistentVolume>>,
    pub classes: HashMap<String, Arc<StorageClass>>,
}

fn rv(meta: &kube::api::ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl VolumeCache {
    pub fn set_claim(&mut self, c: PersistentVolumeClaim) {
        let k = (c.namespace().unwrap_or_default(), c.name_any());
        // An assumed copy carries the resourceVersion it was made from; the watch's next
        // copy of the object replaces it.
        if self
            .claims
            .get(&k)
            .is_none_or(|o| o.uid() != c.uid() || rv(&o.metadata) <= rv(&c.metadata))
        {
            self.claims.insert(k, Arc::new(c));
        }
    }

    pub fn set_volume(&mut self, v: PersistentVolume) {
        let k = v.name_any();
        if self
            .volumes
            .get(&k)
            .is_none_or(|o| o.uid() != v.uid() || rv(&o.metadata) <= rv(&v.metadata))
        {
            self.volumes.insert(k, Arc::new(v));
        }
    }
}

/// What PreFilter found out about a pod's claims.
pub struct PodVolumes {
    /// Bound claims' volumes (None: the volume does not exist).
    bound: Vec<Option<Arc<PersistentVolume>>>,
    /// Claims to bind once a node is chosen.
    delayed: Vec<Arc<PersistentVolumeClaim>>,
    volumes: Vec<Arc<PersistentVolume>>,
    classes: HashMap<String, Arc<StorageClass>>,
}

/// For the chosen node: volumes to bind to claims, claims to provision there.
#[derive(Default)]
pub struct Decision {
    pub bind: Vec<(Arc<PersistentVolume>, Arc<PersistentVolumeClaim>)>,
    pub provision: Vec<Arc<PersistentVolumeClaim>>,
}

impl Decision {
    pub fn is_empty(&self) -> bool {
        self.bind.is_empty() && self.provision.is_empty()
    }
}

/// PreFilter: `Ok(None)` when the pod has no claims; `Err` with upstream's message when it
/// cannot be scheduled anywhere until its claims change.
pub fn prefilter(pod: &Pod, cache: &VolumeCache) -> Result<Option<PodVolumes>, String> {
    let names = pod_claim_names(pod);
    if names.is_empty() {
        return Ok(None);
    }
    let ns = pod.namespace().unwrap_or_default();
    let mut out = PodVolumes {
        bound: Vec::new(),
        delayed: Vec::new(),
        volumes: cache.volumes.values().cloned().collect(),
        classes: cache.classes.clone(),
    };
    let mut immediate = false;
    for (name, ephemeral) in names {
        let Some(c) = cache.claims.get(&(ns.clone(), name.clone())) else {
            return Err(if ephemeral {
                format!("waiting for ephemeral volume controller to create the persistentvolumeclaim {name:?}")
            } else {
                format!("persistentvolumeclaim {name:?} not found")
            });
        };
        if claim_phase(c) == "Lost" {
            return Err(format!(
                "persistentvolumeclaim {name:?} bound to non-existent persistentvolume {:?}",
                claim_volume_name(c)
            ));
        }
        if c.metadata.deletion_timestamp.is_some() {
            return Err(format!("persistentvolumeclaim {name:?} is being deleted"));
        }
        if is_fully_bound(c) {
            out.bound
                .push(cache.volumes.get(claim_volume_name(c)).cloned());
        } else if is_delay_binding(c, |n| cache.classes.get(n).map(|c| (**c).clone()))
            && claim_volume_name(c).is_empty()
        {
            out.delayed.push(c.clone());
        } else {
            immediate = true;
        }
    }
    if immediate {
        return Err(ERR_UNBOUND_IMMEDIATE.into());
    }
    Ok(Some(out))
}

/// Filter: the reasons the node cannot take the pod's volumes (none: it can), and what
/// binding there would take.
pub fn filter(st: &PodVolumes, node: &Node) -> (Vec<&'static str>, Decision) {
    let mut reasons = Vec::new();
    let mut decision = Decision::default();
    if st.bound.iter().any(Option::is_none) {
        reasons.push(ERR_PV_NOT_EXIST);
    } else if st
        .bound
        .iter()
        .flatten()
        .any(|pv| !node_affinity_fits(pv, node))
    {
        reasons.push(ERR_NODE_CONFLICT);
    }
    // Smallest requests first, so a big volume is not spent on a small claim.
    let mut claims = st.delayed.clone();
    claims.sort_by(|a, b| requested_storage(a).cmp_value(&requested_storage(b)));
    let mut chosen = HashSet::new();
    let mut provisionable = true;
    for c in claims {
        if let Some(pv) = find_matching_volume(
            &c,
            st.volumes.iter().map(|v| &**v),
            Some(node),
            &chosen,
            true,
        ) {
            chosen.insert(pv.name_any());
            let pv = st
                .volumes
                .iter()
                .find(|v| v.name_any() == pv.name_any())
                .cloned()
                .expect("chosen from the list");
            decision.bind.push((pv, c));
            continue;
        }
        // Upstream `checkVolumeProvisions`: a class with a real provisioner whose allowed
        // topologies admit the node (storage capacity is not tracked here).
        let class = st.classes.get(claim_class(&c));
        let ok = class.is_some_and(|sc| {
            !sc.provisioner.is_empty()
                && sc.provisioner != NO_PROVISIONER
                && sc.allowed_topologies.as_ref().is_none_or(|terms| {
                    terms.is_empty()
                        || terms.iter().any(|t| {
                            t.match_label_expressions.iter().flatten().all(|e| {
                                node.metadata
                                    .labels
                                    .as_ref()
                                    .and_then(|l| l.get(&e.key))
                                    .is_some_and(|v| e.values.contains(v))
                            })
                        })
                })
        });
        if ok {
            decision.provision.push(c);
        } else {
            provisionable = false;
        }
    }
    if !provisionable {
        reasons.push(ERR_BIND_CONFLICT);
    }
    (reasons, decision)
}

/// Reserve: the decision is laid over the cache, so the next pods see the volumes taken.
pub fn assume(cache: &mut VolumeCache, d: &Decision, node: &str) {
    for (pv, c) in &d.bind {
        let mut v = (**pv).clone();
        v.spec.get_or_insert_with(Default::default).claim_ref = Some(claim_reference(c));
        cache.volumes.insert(v.name_any(), Arc::new(v));
    }
    for c in &d.provision {
        let mut c = (**c).clone();
        c.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ANN_SELECTED_NODE.into(), node.to_string());
        cache.claims.insert(
            (c.namespace().unwrap_or_default(), c.name_any()),
            Arc::new(c),
        );
    }
}

/// Undoes [`assume`] where the cache still holds the assumed copies.
pub fn forget(cache: &mut VolumeCache, d: &Decision) {
    for (pv, _) in &d.bind {
        if cache
            .volumes
            .get(&pv.name_any())
            .is_some_and(|v| rv(&v.metadata) == rv(&pv.metadata))
        {
            cache.volumes.insert(pv.name_any(), pv.clone());
        }
    }
    for c in &d.provision {
        let k = (c.namespace().unwrap_or_default(), c.name_any());
        if cache
            .claims
            .get(&k)
            .is_some_and(|x| rv(&x.metadata) == rv(&c.metadata))
        {
            cache.claims.insert(k, c.clone());
        }
    }
}

/// PreBind: writes the volumes' claimRefs (the PV controller then completes the binding)
/// and the claims' selected node, then waits until every claim is bound, as upstream's
/// `BindPodVolumes` does. The error is upstream's wording after `running PreBind plugin`.
pub async fn bind_pod_volumes(client: &Client, d: &Decision, node: &str) -> Result<(), String> {
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    for (pv, c) in &d.bind {
        let mut v = (**pv).clone();
        v.spec.get_or_insert_with(Default::default).claim_ref = Some(claim_reference(c));
        v.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .entry(ANN_BOUND_BY_CONTROLLER.into())
            .or_insert_with(|| "yes".into());
        pvs.replace(&v.name_any(), &PostParams::default(), &v)
            .await
            .map_err(|e| format!("binding volumes: {}", crate::api_errors::error_message(&e)))?;
    }
    for c in &d.provision {
        let api: Api<PersistentVolumeClaim> =
            Api::namespaced(client.clone(), &c.namespace().unwrap_or_default());
        let mut c = (**c).clone();
        c.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ANN_SELECTED_NODE.into(), node.to_string());
        api.replace(&c.name_any(), &PostParams::default(), &c)
            .await
            .map_err(|e| format!("binding volumes: {}", crate::api_errors::error_message(&e)))?;
    }
    let claims: Vec<&Arc<PersistentVolumeClaim>> = d
        .bind
        .iter()
        .map(|(_, c)| c)
        .chain(d.provision.iter())
        .collect();
    let deadline = tokio::time::Instant::now() + BIND_TIMEOUT;
    loop {
        let mut done = true;
        for c in &claims {
            let api: Api<PersistentVolumeClaim> =
                Api::namespaced(client.clone(), &c.namespace().unwrap_or_default());
            let fresh = api
                .get_opt(&c.name_any())
                .await
                .map_err(|e| format!("binding volumes: {e}"))?
                .filter(|f| f.uid() == c.uid())
                .ok_or_else(|| {
                    format!(
                        "binding volumes: pvc {}/{} was deleted",
                        c.namespace().unwrap_or_default(),
                        c.name_any()
                    )
                })?;
            if is_fully_bound(&fresh) {
                continue;
            }
            if d.provision.iter().any(|p| p.uid() == c.uid())
                && !has_annotation(&fresh.metadata, ANN_SELECTED_NODE)
            {
                return Err(format!(
                    "binding volumes: selectedNode annotation reset for PVC {:?}",
                    c.name_any()
                ));
            }
            done = false;
        }
        if done {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err("binding volumes: context deadline exceeded".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
