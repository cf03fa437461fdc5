//! The PersistentVolume controller (`persistentvolume-binder`, upstream
//! `pkg/controller/volume/persistentvolume`): binds claims to volumes both ways
//! (`pv.spec.claimRef` first, then `pvc.spec.volumeName`), keeps both phases, and reclaims
//! volumes whose claim is gone.
//!
//! As upstream, one worker handles claims and volumes one at a time from its own caches,
//! which its own writes update at once: binding writes four objects, and a cache that only
//! the watch fed would show the older copies in between. A copy older than the cached one
//! (by resourceVersion) is ignored.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};

use super::*;
use crate::api_errors::is_not_found;
use crate::events::{self, Recorder};

/// Upstream's periodic resync of every claim and volume.
const RESYNC: Duration = Duration::from_secs(15);

#[allow(clippy::large_enum_variant)]
enum Ev {
    Claim(watcher::Event<PersistentVolumeClaim>),
    Volume(watcher::Event<PersistentVolume>),
    Class(watcher::Event<StorageClass>),
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Key {
    Claim(String, String),
    Volume(String),
}

struct Binder {
    client: Client,
    recorder: Recorder,
    claims: HashMap<(String, String), PersistentVolumeClaim>,
    volumes: HashMap<String, PersistentVolume>,
    classes: HashMap<String, StorageClass>,
    dirty: BTreeSet<Key>,
    retry: Vec<(Instant, Key)>,
}

fn rv(meta: &kube::api::ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn claim_key(pvc: &PersistentVolumeClaim) -> (String, String) {
    (pvc.namespace().unwrap_or_default(), pvc.name_any())
}

/// Runs the PersistentVolume controller until the process ends.
pub async fn run(client: Client) {
    let cfg = watcher::Config::default;
    let claims = watcher(Api::<PersistentVolumeClaim>::all(client.clone()), cfg())
        .default_backoff()
        .map(|e| e.map(Ev::Claim));
    let volumes = watcher(Api::<PersistentVolume>::all(client.clone()), cfg())
        .default_backoff()
        .map(|e| e.map(Ev::Volume));
    let classes = watcher(Api::<StorageClass>::all(client.clone()), cfg())
        .default_backoff()
        .map(|e| e.map(Ev::Class));
    let mut events =
        futures::stream::select(claims, futures::stream::select(volumes, classes)).boxed();
    let mut b = Binder {
        recorder: Recorder::new(client.clone(), "persistentvolume-controller"),
        client,
        claims: HashMap::new(),
        volumes: HashMap::new(),
        classes: HashMap::new(),
        dirty: BTreeSet::new(),
        retry: Vec::new(),
    };
    // Act only once all three caches are filled, as upstream waits for its informers.
    let mut synced = [false; 3];
    let mut next_resync = Instant::now() + RESYNC;
    loop {
        while let Some(Some(ev)) = events.next().now_or_never() {
            b.handle(ev, &mut synced);
        }
        let now = Instant::now();
        if now >= next_resync {
            next_resync = now + RESYNC;
            b.mark_all();
        }
        let due: Vec<Key> = b
            .retry
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, k)| k.clone())
            .collect();
        b.retry.retain(|(t, _)| *t > now);
        b.dirty.extend(due);
        if synced.iter().all(|s| *s) {
            if let Some(k) = b.dirty.pop_first() {
                if let Err(e) = b.sync(&k).await {
                    let conflict = crate::api_errors::is_conflict(&e);
                    if !conflict {
                        tracing::debug!("persistentvolume-binder: {k:?}: {e}");
                    }
                    let delay = if conflict { 200 } else { 2000 };
                    b.retry
                        .push((Instant::now() + Duration::from_millis(delay), k));
                }
                continue;
            }
        }
        let wake = b
            .retry
            .iter()
            .map(|(t, _)| *t)
            .min()
            .unwrap_or(next_resync)
            .min(next_resync);
        tokio::select! {
            ev = events.next() => match ev {
                Some(ev) => b.handle(ev, &mut synced),
                None => return,
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

impl Binder {
    fn mark_all(&mut self) {
        self.dirty.extend(
            self.claims
                .keys()
                .map(|(n, c)| Key::Claim(n.clone(), c.clone())),
        );
        self.dirty
            .extend(self.volumes.keys().map(|v| Key::Volume(v.clone())));
    }

    fn mark_pending_claims(&mut self) {
        let pending = self
            .claims
            .iter()
            .filter(|(_, c)| !has_annotation(&c.metadata, ANN_BIND_COMPLETED))
            .map(|((n, c), _)| Key::Claim(n.clone(), c.clone()));
        self.dirty.extend(pending.collect::<Vec<_>>());
    }

    fn handle(&mut self, ev: Result<Ev, watcher::Error>, synced: &mut [bool; 3]) {
        let Ok(ev) = ev else { return };
        match ev {
            Ev::Claim(e) => match e {
                watcher::Event::Init => self.claims.clear(),
                watcher::Event::InitDone => synced[0] = true,
                watcher::Event::InitApply(c) | watcher::Event::Apply(c) => {
                    let k = claim_key(&c);
                    if let Some(v) = self.volume_of_claim(&c) {
                        self.dirty.insert(Key::Volume(v));
                    }
                    self.dirty.insert(Key::Claim(k.0.clone(), k.1.clone()));
                    self.store_claim(c);
                }
                watcher::Event::Delete(c) => {
                    let k = claim_key(&c);
                    self.claims.remove(&k);
                    if let Some(v) = self.volume_of_claim(&c) {
                        self.dirty.insert(Key::Volume(v));
                    }
                }
            },
            Ev::Volume(e) => match e {
                watcher::Event::Init => self.volumes.clear(),
                watcher::Event::InitDone => synced[1] = true,
                watcher::Event::InitApply(v) | watcher::Event::Apply(v) => {
                    self.dirty.insert(Key::Volume(v.name_any()));
                    match claim_ref_of(&v) {
                        Some(r) => {
                            self.dirty.insert(Key::Claim(
                                r.namespace.clone().unwrap_or_default(),
                                r.name.clone().unwrap_or_default(),
                            ));
                        }
                        // A free volume may be what a pending claim waits for.
                        None => self.mark_pending_claims(),
                    }
                    self.store_volume(v);
                }
                watcher::Event::Delete(v) => {
                    self.volumes.remove(&v.name_any());
                    if let Some(r) = claim_ref_of(&v) {
                        self.dirty.insert(Key::Claim(
                            r.namespace.clone().unwrap_or_default(),
                            r.name.clone().unwrap_or_default(),
                        ));
                    }
                }
            },
            Ev::Class(e) => match e {
                watcher::Event::Init => self.classes.clear(),
                watcher::Event::InitDone => synced[2] = true,
                watcher::Event::InitApply(c) | watcher::Event::Apply(c) => {
                    self.classes.insert(c.name_any(), c);
                    self.mark_pending_claims();
                }
                watcher::Event::Delete(c) => {
                    self.classes.remove(&c.name_any());
                }
            },
        }
    }

    /// The volume a claim names, or whose claimRef names it.
    fn volume_of_claim(&self, c: &PersistentVolumeClaim) -> Option<String> {
        let named = claim_volume_name(c);
        if !named.is_empty() {
            return Some(named.to_string());
        }
        self.volumes
            .values()
            .find(|v| {
                claim_ref_of(v).is_some_and(|r| {
                    r.name.as_deref() == c.metadata.name.as_deref()
                        && r.namespace.as_deref() == c.metadata.namespace.as_deref()
                })
            })
            .map(|v| v.name_any())
    }

    fn store_claim(&mut self, c: PersistentVolumeClaim) {
        let k = claim_key(&c);
        if self
            .claims
            .get(&k)
            .is_none_or(|old| old.uid() != c.uid() || rv(&old.metadata) <= rv(&c.metadata))
        {
            self.claims.insert(k, c);
        }
    }

    fn store_volume(&mut self, v: PersistentVolume) {
        let k = v.name_any();
        if self
            .volumes
            .get(&k)
            .is_none_or(|old| old.uid() != v.uid() || rv(&old.metadata) <= rv(&v.metadata))
        {
            self.volumes.insert(k, v);
        }
    }

    fn class(&self, name: &str) -> Option<StorageClass> {
        self.classes.get(name).cloned()
    }

    async fn sync(&mut self, k: &Key) -> kube::Result<()> {
        match k {
            Key::Claim(ns, name) => {
                let Some(c) = self.claims.get(&(ns.clone(), name.clone())).cloned() else {
                    return Ok(());
                };
                if has_annotation(&c.metadata, ANN_BIND_COMPLETED) {
                    self.sync_bound_claim(c).await
                } else {
                    self.sync_unbound_claim(c).await
                }
            }
            Key::Volume(name) => {
                let Some(v) = self.volumes.get(name).cloned() else {
                    return Ok(());
                };
                self.sync_volume(v).await
            }
        }
    }

    async fn sync_unbound_claim(&mut self, claim: PersistentVolumeClaim) -> kube::Result<()> {
        let wanted = claim_volume_name(&claim).to_string();
        if wanted.is_empty() {
            let delay = is_delay_binding(&claim, |n| self.class(n));
            let volumes: Vec<&PersistentVolume> = self.volumes.values().collect();
            let found = find_best_match_for_claim(&claim, &volumes, delay).cloned();
            if let Some(v) = found {
                return self.bind(v, claim).await;
            }
            let class = claim_class(&claim).to_string();
            let reference = events::reference(&claim);
            if delay && !has_annotation(&claim.metadata, ANN_SELECTED_NODE) {
                self.recorder
                    .normal(
                        &reference,
                        "WaitForFirstConsumer",
                        "waiting for first consumer to be created before binding",
                    )
                    .await;
            } else if !class.is_empty() {
                self.provision_claim(&claim, &class).await?;
            } else {
                self.recorder
                    .normal(
                        &reference,
                        "FailedBinding",
                        "no persistent volumes available for this claim and no storage class is set",
                    )
                    .await;
            }
            return self.update_claim_status(&claim, "Pending", None).await;
        }
        let Some(v) = self.volumes.get(&wanted).cloned() else {
            // The volume asked for does not exist (yet): try again later.
            return self.update_claim_status(&claim, "Pending", None).await;
        };
        if claim_ref_of(&v).is_none() {
            if let Err(why) = volume_satisfies_claim(&v, &claim) {
                self.recorder
                    .warning(
                        &events::reference(&claim),
                        "VolumeMismatch",
                        format!("Cannot bind to requested volume {wanted:?}: {why}"),
                    )
                    .await;
                return self.update_claim_status(&claim, "Pending", None).await;
            }
            return self.bind(v, claim).await;
        }
        if is_bound_to_claim(&v, &claim) {
            return self.bind(v, claim).await;
        }
        // Pre-bound by the user to a volume someone else holds: wait.
        self.update_claim_status(&claim, "Pending", None).await
    }

    /// No volume matches a claim with a class: a provisioner must make one. Provisioning is
    /// not done here; as upstream does for a provisioner it has no plugin for, the claim is
    /// annotated with the provisioner to wait for.
    async fn provision_claim(
        &mut self,
        claim: &PersistentVolumeClaim,
        class: &str,
    ) -> kube::Result<()> {
        let reference = events::reference(claim);
        let Some(sc) = self.class(class) else {
            self.recorder
                .warning(
                    &reference,
                    "ProvisioningFailed",
                    format!("storageclass.storage.k8s.io {class:?} not found"),
                )
                .await;
            return Ok(());
        };
        if sc.provisioner.starts_with("kubernetes.io/") {
            // An in-tree name with no plugin behind it (no-provisioner among them).
            self.recorder
                .warning(
                    &reference,
                    "ProvisioningFailed",
                    format!("no volume plugin matched name: {}", sc.provisioner),
                )
                .await;
            return Ok(());
        }
        let anns = claim.metadata.annotations.clone().unwrap_or_default();
        if anns.get(ANN_STORAGE_PROVISIONER) != Some(&sc.provisioner)
            || anns.get(ANN_BETA_STORAGE_PROVISIONER) != Some(&sc.provisioner)
        {
            let mut c = claim.clone();
            let a = c.metadata.annotations.get_or_insert_with(Default::default);
            a.insert(ANN_STORAGE_PROVISIONER.into(), sc.provisioner.clone());
            a.insert(ANN_BETA_STORAGE_PROVISIONER.into(), sc.provisioner.clone());
            self.put_claim(c).await?;
        }
        self.recorder
            .normal(
                &reference,
                "ExternalProvisioning",
                format!(
                    "Waiting for a volume to be created either by the external provisioner '{}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.",
                    sc.provisioner
                ),
            )
            .await;
        Ok(())
    }

    async fn sync_bound_claim(&mut self, claim: PersistentVolumeClaim) -> kube::Result<()> {
        let name = claim_volume_name(&claim).to_string();
        if name.is_empty() {
            return self
                .claim_lost(&claim, "ClaimLost", "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!")
                .await;
        }
        let Some(v) = self.volumes.get(&name).cloned() else {
            return self
                .claim_lost(
                    &claim,
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                )
                .await;
        };
        if claim_ref_of(&v).is_none() || is_bound_to_claim(&v, &claim) {
            return self.bind(v, claim).await;
        }
        self.claim_lost(
            &claim,
            "ClaimMisbound",
            "Two claims are bound to the same volume, this one is bound incorrectly",
        )
        .await
    }

    async fn claim_lost(
        &mut self,
        claim: &PersistentVolumeClaim,
        reason: &str,
        message: &str,
    ) -> kube::Result<()> {
        if claim_phase(claim) != "Lost" {
            self.recorder
                .warning(&events::reference(claim), reason, message)
                .await;
        }
        self.update_claim_status(claim, "Lost", None).await
    }

    async fn sync_volume(&mut self, v: PersistentVolume) -> kube::Result<()> {
        let Some(r) = claim_ref_of(&v).cloned() else {
            return self.update_volume_phase(&v, "Available", "").await;
        };
        if r.uid.as_deref().unwrap_or("").is_empty() {
            // Pre-bound to a claim by name: available to that claim only.
            return self.update_volume_phase(&v, "Available", "").await;
        }
        let ns = r.namespace.clone().unwrap_or_default();
        let cname = r.name.clone().unwrap_or_default();
        let mut claim = self.claims.get(&(ns.clone(), cname.clone())).cloned();
        if claim.is_none() && !matches!(volume_phase(&v), "Released" | "Failed") {
            // Never release a volume on a cache miss: ask the API.
            let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
            claim = api.get_opt(&cname).await?;
        }
        let claim = claim.filter(|c| c.uid() == r.uid);
        let Some(claim) = claim else {
            let v = if matches!(volume_phase(&v), "Released" | "Failed") {
                v
            } else {
                self.set_volume_phase(&v, "Released", "").await?
            };
            return self.reclaim(v).await;
        };
        let bound_to = claim_volume_name(&claim);
        if bound_to.is_empty() {
            if volume_mode_mismatch(&claim, &v) {
                self.recorder
                    .warning(
                        &events::reference(&v),
                        "VolumeMismatch",
                        "Cannot bind PersistentVolume to requested PersistentVolumeClaim due to incompatible volumeMode.",
                    )
                    .await;
                return Ok(());
            }
            // Half-bound (the claim's side is next): the claim's sync finishes it.
            let (n, c) = claim_key(&claim);
            self.dirty.insert(Key::Claim(n, c));
            return Ok(());
        }
        if bound_to == v.name_any() {
            return self.update_volume_phase(&v, "Bound", "").await;
        }
        // The claim is bound to another volume.
        let provisioned = has_annotation(&v.metadata, ANN_DYNAMICALLY_PROVISIONED);
        if has_annotation(&v.metadata, ANN_BOUND_BY_CONTROLLER)
            && provisioned
            && reclaim_policy(&v) == "Delete"
        {
            let v = if matches!(volume_phase(&v), "Released" | "Failed") {
                v
            } else {
                self.set_volume_phase(&v, "Released", "").await?
            };
            return self.reclaim(v).await;
        }
        self.unbind_volume(v).await
    }

    async fn unbind_volume(&mut self, v: PersistentVolume) -> kube::Result<()> {
        let mut nv = v.clone();
        if has_annotation(&v.metadata, ANN_BOUND_BY_CONTROLLER) {
            if let Some(s) = nv.spec.as_mut() {
                s.claim_ref = None;
            }
            if let Some(a) = nv.metadata.annotations.as_mut() {
                a.remove(ANN_BOUND_BY_CONTROLLER);
                if a.is_empty() {
                    nv.metadata.annotations = None;
                }
            }
        } else if let Some(r) = nv.spec.as_mut().and_then(|s| s.claim_ref.as_mut()) {
            // Pre-bound by the user: keep the name, forget the claim that went.
            r.uid = None;
        }
        let nv = self.put_volume(nv).await?;
        self.update_volume_phase(&nv, "Available", "").await
    }

    /// Upstream `reclaimVolume` for a released volume, with no volume plugins: Retain keeps
    /// it; Recycle and Delete fail as upstream does when no plugin handles the volume, except
    /// that a volume an external provisioner made is left for that provisioner to delete.
    async fn reclaim(&mut self, v: PersistentVolume) -> kube::Result<()> {
        let reference = events::reference(&v);
        match reclaim_policy(&v) {
            "Recycle" => {
                let msg = "No recycler plugin found for the volume!";
                if volume_phase(&v) != "Failed" {
                    self.recorder
                        .warning(&reference, "VolumeFailedRecycle", msg)
                        .await;
                }
                self.update_volume_phase(&v, "Failed", msg).await
            }
            "Delete" => {
                let external = v
                    .annotations()
                    .get(ANN_DYNAMICALLY_PROVISIONED)
                    .is_some_and(|p| !p.is_empty() && !p.starts_with("kubernetes.io/"));
                if external {
                    return Ok(());
                }
                let msg = format!(
                    "error getting deleter volume plugin for volume {:?}: no deletable volume plugin matched",
                    v.name_any()
                );
                if volume_phase(&v) != "Failed" {
                    self.recorder
                        .warning(&reference, "VolumeFailedDelete", msg.clone())
                        .await;
                }
                self.update_volume_phase(&v, "Failed", &msg).await
            }
            _ => Ok(()),
        }
    }

    /// Upstream `bind`: volume's claimRef, volume phase, claim's volumeName and
    /// annotations, claim status — each written only if it differs.
    async fn bind(
        &mut self,
        v: PersistentVolume,
        claim: PersistentVolumeClaim,
    ) -> kube::Result<()> {
        // Volume side.
        let ref_matches = claim_ref_of(&v).is_some_and(|r| {
            r.name.as_deref() == claim.metadata.name.as_deref()
                && r.namespace.as_deref() == claim.metadata.namespace.as_deref()
                && r.uid.as_deref() == claim.metadata.uid.as_deref()
        });
        let mut nv = v.clone();
        let mut dirty = false;
        if !ref_matches {
            nv.spec.get_or_insert_with(Default::default).claim_ref = Some(claim_reference(&claim));
            dirty = true;
        }
        if !is_bound_to_claim(&v, &claim) && !has_annotation(&v.metadata, ANN_BOUND_BY_CONTROLLER) {
            nv.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
            dirty = true;
        }
        let nv = if dirty {
            self.put_volume(nv).await?
        } else {
            nv
        };
        self.update_volume_phase(&nv, "Bound", "").await?;
        // Claim side.
        let mut nc = claim.clone();
        let mut dirty = false;
        if claim_volume_name(&claim) != nv.name_any() {
            nc.spec.get_or_insert_with(Default::default).volume_name = Some(nv.name_any());
            let a = nc.metadata.annotations.get_or_insert_with(Default::default);
            a.entry(ANN_BOUND_BY_CONTROLLER.into())
                .or_insert_with(|| "yes".into());
            dirty = true;
        }
        if !has_annotation(&nc.metadata, ANN_BIND_COMPLETED) {
            nc.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(ANN_BIND_COMPLETED.into(), "yes".into());
            dirty = true;
        }
        let nc = if dirty { self.put_claim(nc).await? } else { nc };
        self.update_claim_status(&nc, "Bound", Some(&nv)).await
    }

    async fn put_volume(&mut self, v: PersistentVolume) -> kube::Result<PersistentVolume> {
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let nv = api
            .replace(&v.name_any(), &PostParams::default(), &v)
            .await?;
        self.store_volume(nv.clone());
        Ok(nv)
    }

    async fn put_claim(&mut self, c: PersistentVolumeClaim) -> kube::Result<PersistentVolumeClaim> {
        let api: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &c.namespace().unwrap_or_default());
        let nc = api
            .replace(&c.name_any(), &PostParams::default(), &c)
            .await?;
        self.store_claim(nc.clone());
        Ok(nc)
    }

    async fn update_volume_phase(
        &mut self,
        v: &PersistentVolume,
        phase: &str,
        message: &str,
    ) -> kube::Result<()> {
        self.set_volume_phase(v, phase, message).await.map(|_| ())
    }

    async fn set_volume_phase(
        &mut self,
        v: &PersistentVolume,
        phase: &str,
        message: &str,
    ) -> kube::Result<PersistentVolume> {
        let st = v.status.clone().unwrap_or_default();
        if st.phase.as_deref() == Some(phase) && st.message.as_deref().unwrap_or("") == message {
            return Ok(v.clone());
        }
        let mut nv = v.clone();
        let s = nv.status.get_or_insert_with(Default::default);
        if s.phase.as_deref() != Some(phase) {
            s.last_phase_transition_time = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        }
        s.phase = Some(phase.into());
        s.message = (!message.is_empty()).then(|| message.to_string());
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        match api
            .replace_status(&v.name_any(), &PostParams::default(), &nv)
            .await
        {
            Ok(nv) => {
                self.store_volume(nv.clone());
                Ok(nv)
            }
            Err(e) if is_not_found(&e) => Ok(nv),
            Err(e) => Err(e),
        }
    }

    /// Upstream `updateClaimStatus`: the phase, and the volume's access modes and (when the
    /// claim becomes Bound) capacity; both cleared without a volume.
    async fn update_claim_status(
        &mut self,
        c: &PersistentVolumeClaim,
        phase: &str,
        v: Option<&PersistentVolume>,
    ) -> kube::Result<()> {
        let mut nc = c.clone();
        let old = c.status.clone().unwrap_or_default();
        let s = nc.status.get_or_insert_with(Default::default);
        s.phase = Some(phase.into());
        match v {
            None => {
                s.access_modes = None;
                s.capacity = None;
            }
            Some(v) => {
                let spec = v.spec.clone().unwrap_or_default();
                s.access_modes = spec.access_modes.clone();
                if old.phase.as_deref() != Some(phase) {
                    let cap = spec.capacity.clone().unwrap_or_default();
                    if old
                        .capacity
                        .as_ref()
                        .and_then(|c| c.get("storage"))
                        .is_none_or(|q| Some(q) != cap.get("storage"))
                    {
                        s.capacity = Some(cap);
                    }
                }
            }
        }
        if nc.status == c.status {
            return Ok(());
        }
        let api: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &c.namespace().unwrap_or_default());
        match api
            .replace_status(&c.name_any(), &PostParams::default(), &nc)
            .await
        {
            Ok(nc) => {
                self.store_claim(nc);
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn reclaim_policy(v: &PersistentVolume) -> &str {
    v.spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain")
}

/// Upstream `checkVolumeSatisfyClaim`, for a claim that names its volume.
fn volume_satisfies_claim(v: &PersistentVolume, c: &PersistentVolumeClaim) -> Result<(), String> {
    if v.metadata.deletion_timestamp.is_some() {
        return Err(format!(
            "the volume is marked for deletion {:?}",
            v.name_any()
        ));
    }
    if volume_storage(v).cmp_value(&requested_storage(c)) == std::cmp::Ordering::Less {
        return Err("requested PV is too small".into());
    }
    if volume_class(v) != claim_class(c) {
        return Err("storageClassName does not match".into());
    }
    if volume_mode_mismatch(c, v) {
        return Err("incompatible volumeMode".into());
    }
    if !access_modes_fit(c, v) {
        return Err("incompatible accessMode".into());
    }
    Ok(())
}
