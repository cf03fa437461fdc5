//! The pods of this node: a watch on pods bound to it (field selector `spec.nodeName`), one
//! [`worker::Worker`] per pod, and the pod-facing node API (logs, exec, attach, port-forward,
//! proxy).

pub mod api;
pub mod net;
pub mod spec;
pub mod stats;
pub mod status;
pub mod volumes;
pub mod worker;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use kube::ResourceExt;
use reddwarf_images::{ImageStore, PullOptions, Reference};
use reddwarf_runtime::Runtime;
use serde_json::json;
use tokio::sync::watch;

/// The node's pod network, as the agent uses it (implemented over `reddwarf-netcfg`).
pub trait PodNetworking: Send + Sync {
    /// The pod's netns file and IP; idempotent.
    fn setup<'a>(&'a self, pod_uid: &'a str) -> BoxFuture<'a, anyhow::Result<(PathBuf, Ipv4Addr)>>;
    /// Idempotent.
    fn teardown<'a>(&'a self, pod_uid: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Sets the pod's hostPorts: (host port, container port, protocol "TCP"/"UDP", host IP).
    fn host_ports<'a>(
        &'a self,
        pod_uid: &'a str,
        ports: Vec<(u16, u16, String, Option<Ipv4Addr>)>,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Where a container's stdin FIFO is, by container id (for attach).
pub type StdinPath = Box<dyn Fn(&str) -> PathBuf + Send + Sync>;

/// What every worker shares.
pub struct Shared {
    /// The node's name.
    pub node: String,
    /// API client with the node's credentials.
    pub client: kube::Client,
    /// Runs the containers.
    pub runtime: Arc<dyn Runtime>,
    /// Where images are pulled to and unpacked from.
    pub images: ImageStore,
    /// Gives pods their network namespaces and hostPorts.
    pub net: Arc<dyn PodNetworking>,
    /// How images are pulled (insecure registries, platform).
    pub pull: PullOptions,
    /// Pods, logs and container directories live here.
    pub root: PathBuf,
    /// The node's address (`status.hostIP` of its pods).
    pub host_ip: String,
    /// Containers of running pods, by (namespace, pod) → (uid, container name → id), for the
    /// node API.
    pub index: Mutex<HashMap<(String, String), PodEntry>>,
    /// The stdin FIFO of a container that keeps stdin open (runtime-specific).
    pub stdin_path: Option<StdinPath>,
    /// Container log rotation: (max bytes, max files).
    pub log_max: (u64, usize),
    /// Projected service-account tokens by (pod uid, audience, expiration): the token and
    /// when to ask for a new one.
    pub tokens: Mutex<HashMap<TokenKey, (Vec<u8>, std::time::Instant)>>,
}

/// A projected token's identity: (pod uid, audience, expiration seconds).
pub type TokenKey = (String, String, i64);

/// A running pod as the node API finds it.
#[derive(Clone, Debug, Default)]
pub struct PodEntry {
    /// The pod's uid.
    pub uid: String,
    /// The pod's IP, once it has one.
    pub ip: Option<String>,
    /// Whether the pod uses the host's network namespace.
    pub host_network: bool,
}

/// `<root>/logs/<ns>_<name>_<uid>`, the kubelet's `/var/log/pods` layout.
pub fn log_dir(root: &Path, pod: &Pod) -> PathBuf {
    root.join("logs").join(format!(
        "{}_{}_{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    ))
}

/// ConfigMaps and Secrets of a pod's namespace, read once per sync.
pub struct Fetched {
    cms: HashMap<String, BTreeMap<String, String>>,
    secrets: HashMap<String, BTreeMap<String, Vec<u8>>>,
    /// Service-account tokens by (audience, expiration); `Err` says why there is none.
    tokens: HashMap<(String, i64), Result<Vec<u8>, String>>,
}

impl spec::Sources for Fetched {
    fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.cms.get(name).cloned()
    }
    fn secret(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        self.secrets.get(name).cloned()
    }
    fn token(&self, audience: &str, expiration: i64) -> Result<Vec<u8>, String> {
        self.tokens
            .get(&(audience.to_string(), expiration))
            .cloned()
            .unwrap_or_else(|| Err("no token was requested".into()))
    }
}

/// The cgroup every pod of this node lives under.
pub fn cgroup_root(node: &str) -> String {
    let node: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("/reddwarf/{node}")
}

impl Shared {
    /// The cgroup of pod `uid`: `<cgroup root>/pod<uid>`.
    pub fn cgroup_parent(&self, uid: &str) -> String {
        format!("{}/pod{uid}", cgroup_root(&self.node))
    }

    /// The ConfigMaps and Secrets `pod` refers to (missing ones are left out).
    pub async fn sources(&self, pod: &Pod) -> Fetched {
        let ns = pod.namespace().unwrap_or_default();
        let (cm_names, secret_names) = volumes::referenced(pod);
        let cms_api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
        let sec_api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        let mut cms = HashMap::new();
        for n in cm_names {
            if let Ok(Some(cm)) = cms_api.get_opt(&n).await {
                let mut data: BTreeMap<String, String> = cm.data.unwrap_or_default();
                for (k, v) in cm.binary_data.unwrap_or_default() {
                    data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                }
                cms.insert(n, data);
            }
        }
        let mut secrets = HashMap::new();
        for n in secret_names {
            if let Ok(Some(s)) = sec_api.get_opt(&n).await {
                let data = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                secrets.insert(n, data);
            }
        }
        let tokens = self.projected_tokens(pod).await;
        Fetched {
            cms,
            secrets,
            tokens,
        }
    }

    /// The service-account tokens `pod`'s projected volumes ask for, bound to the pod, as
    /// the kubelet's token manager: reused until 80% of their lifetime has passed.
    async fn projected_tokens(&self, pod: &Pod) -> HashMap<(String, i64), Result<Vec<u8>, String>> {
        let mut out = HashMap::new();
        let Some(spec) = pod.spec.as_ref() else {
            return out;
        };
        let wanted: Vec<(String, i64)> = spec
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.projected.as_ref())
            .flat_map(|p| p.sources.iter().flatten())
            .filter_map(|s| s.service_account_token.as_ref())
            .map(|t| {
                (
                    t.audience.clone().unwrap_or_default(),
                    t.expiration_seconds.unwrap_or(3600),
                )
            })
            .collect();
        let uid = pod.uid().unwrap_or_default();
        let ns = pod.namespace().unwrap_or_default();
        let account = spec
            .service_account_name
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into());
        for (audience, expiration) in wanted {
            let key = (uid.clone(), audience.clone(), expiration);
            let cached = self
                .tokens
                .lock()
                .ok()
                .and_then(|t| t.get(&key).cloned())
                .filter(|(_, renew)| std::time::Instant::now() < *renew);
            if let Some((token, _)) = cached {
                out.insert((audience, expiration), Ok(token));
                continue;
            }
            let mut body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration,
                         "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                             "name": pod.name_any(), "uid": uid}}});
            if !audience.is_empty() {
                body["spec"]["audiences"] = json!([audience]);
            }
            let path = format!("/api/v1/namespaces/{ns}/serviceaccounts/{account}/token");
            let result = async {
                let req = http::Request::post(path)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(&body).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
                let resp: serde_json::Value =
                    self.client.request(req).await.map_err(|e| e.to_string())?;
                resp["status"]["token"]
                    .as_str()
                    .map(|t| t.as_bytes().to_vec())
                    .ok_or_else(|| "the token request returned no token".to_string())
            }
            .await;
            if let Ok(token) = &result {
                let renew = std::time::Instant::now()
                    + std::time::Duration::from_secs((expiration.max(600) as u64) * 4 / 5);
                if let Ok(mut t) = self.tokens.lock() {
                    t.insert(key, (token.clone(), renew));
                }
            }
            out.insert((audience, expiration), result);
        }
        out
    }

    /// Forgets the tokens of a pod that is gone.
    pub fn forget_tokens(&self, uid: &str) {
        if let Ok(mut t) = self.tokens.lock() {
            t.retain(|(u, _, _), _| u != uid);
        }
    }

    /// PVC volumes → host paths of their bound PVs (hostPath or local).
    pub async fn claims(&self, pod: &Pod) -> volumes::ClaimPaths {
        let ns = pod.namespace().unwrap_or_default();
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let mut out = HashMap::new();
        for v in pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
        {
            let Some(c) = &v.persistent_volume_claim else {
                continue;
            };
            let r = async {
                let pvc = pvcs
                    .get_opt(&c.claim_name)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("persistentvolumeclaim \"{}\" not found", c.claim_name))?;
                let pv_name = pvc
                    .spec
                    .and_then(|s| s.volume_name)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| format!("persistentvolumeclaim \"{}\" is not bound", c.claim_name))?;
                let pv = pvs
                    .get_opt(&pv_name)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("persistentvolume \"{pv_name}\" not found"))?;
                let spec = pv.spec.unwrap_or_default();
                let path = spec
                    .host_path
                    .map(|h| h.path)
                    .or(spec.local.map(|l| l.path))
                    .ok_or_else(|| {
                        format!("persistentvolume \"{pv_name}\" is neither hostPath nor local: this node cannot mount it")
                    })?;
                std::fs::create_dir_all(&path).map_err(|e| format!("creating {path}: {e}"))?;
                Ok::<PathBuf, String>(PathBuf::from(path))
            }
            .await;
            out.insert(c.claim_name.clone(), r);
        }
        out
    }

    /// The image for a container per its pull policy, pulling (with the pod's pull secrets)
    /// when needed. Err: (waiting reason, message).
    pub async fn ensure_image(
        &self,
        pod: &Pod,
        c: &Container,
    ) -> Result<reddwarf_images::Image, (String, String)> {
        let image = c.image.clone().unwrap_or_default();
        let reference = Reference::parse(&image).map_err(|e| {
            (
                "InvalidImageName".to_string(),
                format!("Failed to apply default image tag {image:?}: {e}"),
            )
        })?;
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
            if reference.digest.is_none() && reference.tag.as_deref().is_none_or(|t| t == "latest")
            {
                "Always".into()
            } else {
                "IfNotPresent".into()
            }
        });
        let present = self.images.get(&reference);
        match (policy.as_str(), present) {
            ("Never", Some(img)) | ("IfNotPresent", Some(img)) => {
                self.event(
                    pod,
                    Some(&c.name),
                    "Normal",
                    "Pulled",
                    &format!("Container image \"{image}\" already present on machine"),
                )
                .await;
                return Ok(img);
            }
            ("Never", None) => {
                let msg =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                self.event(pod, Some(&c.name), "Warning", "ErrImageNeverPull", &msg)
                    .await;
                return Err(("ErrImageNeverPull".into(), msg));
            }
            _ => {}
        }
        self.event(
            pod,
            Some(&c.name),
            "Normal",
            "Pulling",
            &format!("Pulling image \"{image}\""),
        )
        .await;
        let started = std::time::Instant::now();
        let secrets = self.sources(pod).await;
        let creds = pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|r| spec::Sources::secret(&secrets, &r.name))
            .find_map(|d| {
                let json = d.get(".dockerconfigjson").or_else(|| d.get(".dockercfg"))?;
                reddwarf_images::credentials_from_dockerconfigjson(
                    json,
                    &format!("{}/{}", reference.registry, reference.repository),
                )
            });
        match self
            .images
            .pull(&reference, creds.as_ref(), &self.pull)
            .await
        {
            Ok(img) => {
                self.event(
                    pod,
                    Some(&c.name),
                    "Normal",
                    "Pulled",
                    &format!(
                        "Successfully pulled image \"{image}\" in {:.3}s. Image size: {} bytes.",
                        started.elapsed().as_secs_f64(),
                        img.size
                    ),
                )
                .await;
                Ok(img)
            }
            Err(e) => {
                let msg = format!("Failed to pull image \"{image}\": {e}");
                self.event(pod, Some(&c.name), "Warning", "Failed", &msg)
                    .await;
                Err(("ErrImagePull".into(), msg))
            }
        }
    }

    /// `/etc/hosts` and `/etc/resolv.conf` for the pod's containers (destination, host file).
    pub fn etc_files(
        &self,
        pod: &Pod,
        pod_dir: &Path,
        ip: &str,
    ) -> std::io::Result<Vec<(String, PathBuf)>> {
        std::fs::create_dir_all(pod_dir)?;
        let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
        let hosts = pod_dir.join("etc-hosts");
        if host_network {
            std::fs::copy("/etc/hosts", &hosts)
                .or_else(|_| std::fs::write(&hosts, "127.0.0.1\tlocalhost\n").map(|_| 0))?;
        } else {
            let name = spec::hostname(pod);
            let mut text = format!(
                "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n{ip}\t{name}\n"
            );
            for h in pod
                .spec
                .as_ref()
                .and_then(|s| s.host_aliases.clone())
                .unwrap_or_default()
            {
                text.push_str(&format!(
                    "{}\t{}\n",
                    h.ip,
                    h.hostnames.unwrap_or_default().join("\t")
                ));
            }
            std::fs::write(&hosts, text)?;
        }
        // Cluster DNS is not part of the node yet: pods resolve as the host does.
        let resolv = pod_dir.join("resolv.conf");
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        std::fs::write(&resolv, text)?;
        Ok(vec![
            ("/etc/hosts".into(), hosts),
            ("/etc/resolv.conf".into(), resolv),
        ])
    }

    /// A core/v1 Event about the pod (what `kubectl describe` shows).
    pub async fn event(
        &self,
        pod: &Pod,
        container: Option<&str>,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(self.client.clone(), &ns);
        let now = status::rfc3339(chrono::Utc::now());
        let mut involved = json!({
            "apiVersion": "v1", "kind": "Pod", "namespace": ns,
            "name": pod.name_any(), "uid": pod.metadata.uid,
        });
        if let Some(c) = container {
            involved["fieldPath"] = json!(format!("spec.containers{{{c}}}"));
        }
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": format!("{}.", pod.name_any()), "namespace": ns},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": type_,
            "source": {"component": "kubelet", "host": self.node},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": "kubelet", "reportingInstance": self.node,
        });
        if let Ok(ev) = serde_json::from_value(ev) {
            if let Err(e) = api.create(&PostParams::default(), &ev).await {
                tracing::debug!("event {reason}: {e}");
            }
        }
    }
}

/// A pod worker: where its pod's updates go, and its task.
type WorkerHandle = (watch::Sender<Option<Arc<Pod>>>, tokio::task::JoinHandle<()>);

/// Runs the pod workers until aborted.
pub async fn run(shared: Arc<Shared>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", shared.node));
    let mut workers: HashMap<String, WorkerHandle> = HashMap::new();
    let mut seen_in_init: std::collections::HashSet<String> = Default::default();
    let mut stream = watcher(api, cfg).boxed();
    let update = |shared: &Arc<Shared>, workers: &mut HashMap<String, WorkerHandle>, pod: Pod| {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        shared
            .index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (pod.namespace().unwrap_or_default(), pod.name_any()),
                PodEntry {
                    uid: uid.clone(),
                    ip: pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
                    host_network: pod.spec.as_ref().and_then(|s| s.host_network) == Some(true),
                },
            );
        // A finished worker stays finished (the pod is being removed).
        if let Some((tx, handle)) = workers.get(&uid) {
            if !handle.is_finished() {
                let _ = tx.send(Some(Arc::new(pod)));
            }
            return;
        }
        let (tx, rx) = watch::channel(Some(Arc::new(pod)));
        let w = worker::Worker::new(shared.clone(), uid.clone(), rx);
        workers.insert(uid, (tx, tokio::spawn(w.run())));
    };
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::Apply(p)) => update(&shared, &mut workers, p),
            Ok(watcher::Event::InitApply(p)) => {
                seen_in_init.extend(p.metadata.uid.clone());
                update(&shared, &mut workers, p);
            }
            Ok(watcher::Event::Init) => seen_in_init.clear(),
            Ok(watcher::Event::InitDone) => {
                // Pods that vanished while we were not watching, and containers of pods this
                // agent no longer knows: stop them.
                for (uid, (tx, _)) in workers.iter() {
                    if !seen_in_init.contains(uid) {
                        let _ = tx.send(None);
                    }
                }
                orphans(&shared, &seen_in_init).await;
            }
            Ok(watcher::Event::Delete(p)) => {
                if let Some(uid) = p.metadata.uid.as_ref() {
                    if let Some((tx, _)) = workers.get(uid) {
                        let _ = tx.send(None);
                    }
                }
                shared
                    .index
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&(p.namespace().unwrap_or_default(), p.name_any()));
            }
            Err(e) => tracing::warn!("watching this node's pods: {e}"),
        }
        workers.retain(|_, (_, h)| !h.is_finished());
    }
}

/// Containers whose pod is not bound here any more (deleted while the agent was down).
async fn orphans(shared: &Arc<Shared>, known: &std::collections::HashSet<String>) {
    let Ok(records) = shared.runtime.list().await else {
        return;
    };
    let mut gone = std::collections::BTreeSet::new();
    for r in records {
        if let Some(uid) = r.labels.get(worker::LABEL_POD_UID) {
            if !known.contains(uid) {
                gone.insert(uid.clone());
            }
        }
    }
    for uid in gone {
        tracing::info!("pod {uid} is gone from the API: removing its containers");
        let (tx, rx) = watch::channel(None);
        drop(tx);
        let w = worker::Worker::new(shared.clone(), uid, rx);
        tokio::spawn(w.run());
    }
}
