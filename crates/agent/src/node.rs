//! The Node object: registration, the Lease heartbeat (every 10 s) and the status (patched when
//! it differs from the server's copy, and at least every 5 minutes), as the kubelet does.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::AgentConfig;

/// The namespace of the node heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
const LEASE_SECONDS: i32 = 40;
const RENEW: Duration = Duration::from_secs(10);
const REPORT_EVERY: Duration = Duration::from_secs(300);

/// What the host offers, measured once at start.
#[derive(Clone, Debug)]
pub struct HostInfo {
    /// CPUs available to this process.
    pub cpus: usize,
    /// Memory (MemTotal), in KiB.
    pub memory_kib: u64,
    /// Size of the file system holding the data dir.
    pub ephemeral_bytes: u64,
    /// Kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
    /// `PRETTY_NAME` of `/etc/os-release` (`Linux` without one).
    pub os_image: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// The kernel's boot id.
    pub boot_id: String,
    /// The DMI product UUID ("" when unreadable).
    pub system_uuid: String,
}

fn read_trim(p: &str) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// This machine's architecture in Go's GOARCH words (`amd64`, `arm64`).
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

impl HostInfo {
    /// MemTotal of /proc/meminfo, in bytes.
    pub fn memory_bytes() -> u64 {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| {
                        l.split_whitespace()
                            .nth(1)
                            .and_then(|v| v.parse::<u64>().ok())
                    })
            })
            .unwrap_or(0)
            * 1024
    }

    /// Measures the host; `data_dir`'s file system is the ephemeral storage.
    pub fn probe(data_dir: &Path) -> HostInfo {
        let memory_kib = Self::memory_bytes() / 1024;
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".into());
        HostInfo {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_kib,
            ephemeral_bytes: disk_bytes(data_dir),
            kernel: read_trim("/proc/sys/kernel/osrelease"),
            os_image,
            machine_id: read_trim("/etc/machine-id"),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            system_uuid: read_trim("/sys/class/dmi/id/product_uuid"),
        }
    }
}

fn disk_bytes(dir: &Path) -> u64 {
    disk_total_free(dir).0
}

/// (total, available) bytes of the file system holding `dir`.
pub fn disk_total_free(dir: &Path) -> (u64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return (0, 0);
    };
    // SAFETY: an all-zero statvfs is a valid value for statvfs(3) to fill.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a pointer to a struct statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return (0, 0);
    }
    (
        s.f_blocks as u64 * s.f_frsize as u64,
        s.f_bavail as u64 * s.f_frsize as u64,
    )
}

/// The kubelet version a node reports: the server's version, as reddwarf builds both.
pub fn kubelet_version() -> String {
    format!("v1.33.0-reddwarf.{}", env!("CARGO_PKG_VERSION"))
}

/// Registers the Node and keeps it fresh: status reports and Lease heartbeats.
pub struct NodeReporter {
    /// Nodes, through the node's credentials.
    pub api: Api<Node>,
    /// Leases in `kube-node-lease`.
    pub leases: Api<Lease>,
    /// The agent's settings (name, labels, taints, capacity).
    pub cfg: Arc<AgentConfig>,
    /// What the host offers, reported as capacity and nodeInfo.
    pub host: HostInfo,
    /// The address the node reaches the server from (its InternalIP).
    pub address: String,
    /// `containerRuntimeVersion` of nodeInfo (`<runtime>://<version>`).
    pub runtime_version: String,
}

fn now() -> String {
    Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap_or(Timestamp::now())
        .to_string()
}

impl NodeReporter {
    fn labels(&self) -> BTreeMap<String, String> {
        let mut l = BTreeMap::from([
            (
                "kubernetes.io/hostname".to_string(),
                self.cfg.node_name.clone(),
            ),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), arch().to_string()),
            ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
            ("beta.kubernetes.io/arch".to_string(), arch().to_string()),
        ]);
        l.extend(self.cfg.labels.iter().cloned());
        l
    }

    fn capacity(&self) -> Value {
        json!({
            "cpu": self.host.cpus.to_string(),
            "memory": format!("{}Ki", self.host.memory_kib),
            "ephemeral-storage": format!("{}", self.host.ephemeral_bytes),
            "pods": self.cfg.max_pods.to_string(),
        })
    }

    /// The status the node should have now (conditions keep their transition times when the
    /// server's copy has the same status).
    fn status(&self, current: Option<&Value>) -> Value {
        let hb = now();
        let cond = |t: &str, status: &str, reason: &str, message: &str| {
            let prev = current
                .and_then(|s| s["conditions"].as_array())
                .and_then(|cs| cs.iter().find(|c| c["type"] == t));
            let transition = match prev {
                Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
                _ => json!(hb),
            };
            json!({"type": t, "status": status, "lastHeartbeatTime": hb,
                   "lastTransitionTime": transition, "reason": reason, "message": message})
        };
        json!({
            "capacity": self.capacity(),
            "allocatable": self.capacity(),
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": self.address},
                {"type": "Hostname", "address": self.cfg.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": self.host.machine_id,
                "systemUUID": self.host.system_uuid,
                "bootID": self.host.boot_id,
                "kernelVersion": self.host.kernel,
                "osImage": self.host.os_image,
                "containerRuntimeVersion": self.runtime_version,
                "kubeletVersion": kubelet_version(),
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch(),
            },
        })
    }

    /// Creates the Node, or brings an existing one's labels up to date (taints are only set
    /// at registration, as the kubelet's `--register-with-taints`).
    pub async fn register(&self) -> Result<()> {
        let name = &self.cfg.node_name;
        let taints: Vec<Value> = self
            .cfg
            .taints
            .iter()
            .map(|(k, v, e)| {
                let mut t = json!({"key": k, "effect": e});
                if !v.is_empty() {
                    t["value"] = json!(v);
                }
                t
            })
            .collect();
        let mut node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": self.labels()},
            "spec": {},
        });
        if !taints.is_empty() {
            node["spec"]["taints"] = json!(taints);
        }
        let node: Node = serde_json::from_value(node)?;
        match self.api.create(&PostParams::default(), &node).await {
            Ok(_) => tracing::info!("node {name}: registered"),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let patch = json!({"metadata": {"labels": self.labels()}});
                self.api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .context("updating the node's labels")?;
                tracing::info!("node {name}: already registered; labels brought up to date");
            }
            Err(e) => return Err(e).context("registering the node"),
        }
        self.report_status(true).await.map(|_| ())
    }

    /// Patches the status if it differs from the server's copy (`force`: always).
    async fn report_status(&self, force: bool) -> Result<bool> {
        let name = &self.cfg.node_name;
        // The Node itself, not nodes/status: the node role may get nodes and only write status.
        let current = self.api.get(name).await.context("reading the node")?;
        let current = serde_json::to_value(&current)?;
        let status = self.status(current.get("status"));
        let differs = {
            let strip = |v: &Value| {
                let mut v = v.clone();
                for c in v["conditions"].as_array_mut().into_iter().flatten() {
                    if let Some(m) = c.as_object_mut() {
                        m.remove("lastHeartbeatTime");
                    }
                }
                v
            };
            let have = current.get("status").cloned().unwrap_or(json!({}));
            [
                "capacity",
                "allocatable",
                "conditions",
                "addresses",
                "nodeInfo",
            ]
            .iter()
            .any(|k| strip(&have)[*k] != strip(&status)[*k])
        };
        if !(force || differs) {
            return Ok(false);
        }
        self.api
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
            .context("updating the node status")?;
        Ok(true)
    }

    async fn renew_lease(&self, node_uid: Option<String>) -> Result<()> {
        let name = &self.cfg.node_name;
        let spec = json!({
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": Timestamp::now().to_string(),
        });
        match self.leases.get_opt(name).await? {
            Some(mut l) => {
                let mut v = serde_json::to_value(&l)?;
                v["spec"] = spec;
                l = serde_json::from_value(v)?;
                self.leases
                    .replace(name, &PostParams::default(), &l)
                    .await?;
            }
            None => {
                let mut v = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": LEASE_NAMESPACE}, "spec": spec});
                if let Some(uid) = node_uid {
                    v["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node",
                        "name": name, "uid": uid}]);
                }
                self.leases
                    .create(&PostParams::default(), &serde_json::from_value(v)?)
                    .await?;
            }
        }
        Ok(())
    }

    /// Heartbeats until the task is aborted: Lease every 10 s, status on change or every 5 min.
    pub async fn heartbeat(self: Arc<Self>) {
        let mut last_report = Instant::now();
        let mut tick = tokio::time::interval(RENEW);
        loop {
            tick.tick().await;
            let uid = match self.api.get_opt(&self.cfg.node_name).await {
                Ok(Some(n)) => n.metadata.uid,
                Ok(None) => {
                    // Someone deleted our Node: register again, as the kubelet does.
                    if let Err(e) = self.register().await {
                        tracing::warn!("re-registering: {e:#}");
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!("heartbeat: {e}");
                    continue;
                }
            };
            if let Err(e) = self.renew_lease(uid).await {
                tracing::warn!("renewing the node lease: {e:#}");
            }
            let due = last_report.elapsed() >= REPORT_EVERY;
            match self.report_status(due).await {
                Ok(true) => last_report = Instant::now(),
                Ok(false) => {}
                Err(e) => tracing::warn!("{e:#}"),
            }
        }
    }
}
