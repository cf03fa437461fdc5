//! `reddwarf agent`: a worker node. It bootstraps its client certificate with the node token,
//! registers its Node, heartbeats (Lease every 10 s, status on change), keeps the tunnel to the
//! server up, and runs the pods bound to it (DESIGN.md §8).

pub mod bootstrap;
pub mod https;
pub mod local_volumes;
pub mod node;
pub mod nodeapi;
pub mod pods;
pub mod token;
pub mod tunnel;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;

/// Everything `reddwarf agent` takes.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// `https://host:port` of the server.
    pub server: String,
    /// The node token (`K10<CA hash>::server:<secret>`); needed only until the node has a certificate.
    pub token: Option<String>,
    /// The Node object's name.
    pub node_name: String,
    /// Certificates, images, pod state and logs live here.
    pub data_dir: PathBuf,
    /// Labels the Node registers with.
    pub labels: Vec<(String, String)>,
    /// key, value (may be empty), effect.
    pub taints: Vec<(String, String, String)>,
    /// Image tarballs (OCI or docker archives) imported at start and when added.
    pub images_dir: Option<PathBuf>,
    /// Registries spoken to over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Pods this node accepts (`status.capacity.pods`).
    pub max_pods: u32,
    /// Container logs rotate at this size (bytes; 0: never) and keep this many files.
    pub container_log_max_bytes: u64,
    /// Rotated container log files kept (the current one included).
    pub container_log_max_files: usize,
}

/// `k=v,k2=v2`.
pub fn parse_labels(s: &str) -> Result<Vec<(String, String)>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.trim().split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("--node-labels: {p:?} is not key=value"),
        })
        .collect()
}

/// `k=v:Effect,k:Effect`.
pub fn parse_taints(s: &str) -> Result<Vec<(String, String, String)>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let p = p.trim();
            let Some((kv, effect)) = p.rsplit_once(':') else {
                bail!("--node-taints: {p:?} is not key=value:Effect");
            };
            if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
                bail!("--node-taints: effect {effect:?} of {p:?} is not NoSchedule, PreferNoSchedule or NoExecute");
            }
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            if k.is_empty() {
                bail!("--node-taints: {p:?} has no key");
            }
            Ok((k.to_string(), v.to_string(), effect.to_string()))
        })
        .collect()
}

/// Runs the agent until `shutdown` resolves. Stopping leaves pods running (they are adopted
/// again on the next start).
pub async fn run(
    cfg: AgentConfig,
    runtime: Arc<dyn reddwarf_runtime::Runtime>,
    bridge: String,
    stdin_path: Option<pods::StdinPath>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let (rt_name, rt_version) = runtime.name_version();
    let runtime_version = format!("{rt_name}://{rt_version}");
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    // Several members (`--server a,b,c`): bootstrap through the first that answers; the API
    // client moves between them; every member gets a tunnel, so any member reaches the node.
    let servers = https::parse_server_urls(&cfg.server)?;
    let mut creds = None;
    let mut last_err = None;
    for server in &servers {
        match bootstrap::credentials(server, cfg.token.as_deref(), &cfg.data_dir, &cfg.node_name)
            .await
        {
            Ok(c) => {
                creds = Some(c);
                break;
            }
            Err(e) => {
                tracing::warn!("{}:{}: {e:#}", server.0, server.1);
                last_err = Some(e);
            }
        }
    }
    let creds = match creds {
        Some(c) => c,
        None => return Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no --server"))),
    };
    let tls = https::client_config(&creds.ca_pem, Some((&creds.cert_pem, &creds.key_pem)), &[])?;
    let ep = https::Endpoint {
        host: servers[0].0.clone(),
        port: servers[0].1,
        tls: tls.clone(),
        alternates: Some(https::Servers::new(servers.clone())),
    };
    // The node's address is the one it reaches the server from.
    let (_, local) = ep.connect(ep.tls.clone()).await?;
    let client = ep.kube_client();
    let cfg = Arc::new(cfg);
    let reporter = Arc::new(node::NodeReporter {
        api: Api::<Node>::all(client.clone()),
        leases: Api::<Lease>::namespaced(client.clone(), node::LEASE_NAMESPACE),
        cfg: cfg.clone(),
        host: node::HostInfo::probe(&cfg.data_dir),
        address: local.ip().to_string(),
        runtime_version,
    });
    reporter.register().await?;
    let heartbeat = tokio::spawn(reporter.clone().heartbeat());
    let images = reddwarf_images::ImageStore::open(&cfg.data_dir.join("images"))
        .context("opening the image store")?;
    let mut imported = std::collections::HashMap::new();
    if let Some(dir) = &cfg.images_dir {
        import_images(&images, dir, &mut imported);
    }
    let net = Arc::new(pods::net::NodeNetwork::new(
        client.clone(),
        cfg.node_name.clone(),
        bridge,
        cfg.data_dir.clone(),
    ));
    let shared = Arc::new(pods::Shared {
        node: cfg.node_name.clone(),
        client: client.clone(),
        runtime,
        images: images.clone(),
        net,
        pull: reddwarf_images::PullOptions {
            insecure_registries: cfg.insecure_registries.clone(),
            platform: reddwarf_images::Platform::host(),
        },
        root: cfg.data_dir.clone(),
        host_ip: local.ip().to_string(),
        index: Default::default(),
        stdin_path,
        log_max: (cfg.container_log_max_bytes, cfg.container_log_max_files),
        tokens: Default::default(),
    });
    let pod_workers = tokio::spawn(pods::run(shared.clone()));
    // The node's hostname label is its name (node.rs), which the volumes' affinity names.
    let local_volumes = tokio::spawn(local_volumes::run(client.clone(), cfg.node_name.clone()));
    let image_gc = tokio::spawn(image_gc(shared.clone()));
    let importer = cfg.images_dir.clone().map(|dir| {
        let images = images.clone();
        tokio::spawn(async move {
            // New tarballs dropped into --images-dir are imported as they appear.
            let mut seen = imported;
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                let images = images.clone();
                let dir = dir.clone();
                seen = tokio::task::spawn_blocking(move || {
                    import_images(&images, &dir, &mut seen);
                    seen
                })
                .await
                .unwrap_or_default();
            }
        })
    });
    let api = Arc::new(nodeapi::NodeApi {
        node_name: cfg.node_name.clone(),
        pods: Arc::new(pods::api::PodsApi { shared }),
    });
    let tunnels: Vec<_> = servers
        .iter()
        .map(|(host, port)| {
            let ep = https::Endpoint {
                host: host.clone(),
                port: *port,
                tls: tls.clone(),
                alternates: None,
            };
            tokio::spawn(tunnel::run(ep, api.clone()))
        })
        .collect();
    tracing::info!("agent for node {} running", cfg.node_name);
    shutdown.await;
    tracing::info!("agent stopping (pods keep running)");
    heartbeat.abort();
    for t in tunnels {
        t.abort();
    }
    pod_workers.abort();
    local_volumes.abort();
    image_gc.abort();
    if let Some(i) = importer {
        i.abort();
    }
    Ok(())
}

/// Removes everything an agent with this data dir made on the host: its containers (and
/// their shims), root filesystem mounts, pod network (bridge, veths, netns, rules) and
/// cgroups. For uninstalling a node and for tests.
pub async fn cleanup(
    runtime: &dyn reddwarf_runtime::Runtime,
    data_dir: &std::path::Path,
    node: &str,
    bridge: &str,
) -> Result<()> {
    for r in runtime.list().await.unwrap_or_default() {
        if let Err(e) = runtime.remove(&r.id).await {
            tracing::warn!("removing container {}: {e}", r.id);
        }
    }
    if let Ok(pods) = std::fs::read_dir(data_dir.join("pods")) {
        for p in pods.flatten() {
            if let Ok(cs) = std::fs::read_dir(p.path().join("containers")) {
                for c in cs.flatten() {
                    let _ = reddwarf_images::remove_rootfs(&c.path());
                }
            }
            let _ = std::fs::remove_dir_all(p.path());
        }
    }
    // The pod CIDR does not matter for purging: rules and links are found by the bridge.
    let cfg = pods::net::NodeNetwork::config(bridge, data_dir, "10.255.255.0/24");
    if let Err(e) = reddwarf_netcfg::purge(&cfg).await {
        tracing::warn!("purging the pod network: {e}");
    }
    let parent = pods::cgroup_root(node);
    // Processes whose shim state is gone (a crash mid-create) still sit in the node's cgroups.
    for dir in reddwarf_runtime::cgroup::existing_dirs(&parent) {
        kill_tree(&dir);
    }
    if let Err(e) = reddwarf_runtime::remove_cgroup_parent(&parent) {
        tracing::warn!("removing cgroup {parent}: {e}");
    }
    Ok(())
}

/// SIGKILL to every process in a cgroup directory tree.
fn kill_tree(dir: &std::path::Path) {
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: kill(2) with a pid read from the cgroup; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                kill_tree(&e.path());
            }
        }
    }
}

/// The kubelet's image garbage collection: above 85% disk use on the image store's file
/// system, images no container uses go (least recently used first) until use is below 80%.
async fn image_gc(shared: Arc<pods::Shared>) {
    const HIGH: f64 = 0.85;
    const LOW: f64 = 0.80;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let (total, free) = node::disk_total_free(shared.images.root());
        if total == 0 {
            continue;
        }
        let used = total.saturating_sub(free);
        if (used as f64) < HIGH * total as f64 {
            continue;
        }
        let in_use: std::collections::HashSet<String> = shared
            .runtime
            .list()
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r.labels.get(pods::worker::LABEL_IMAGE).cloned())
            .collect();
        let want_free = used.saturating_sub((LOW * total as f64) as u64);
        let target = shared.images.disk_usage().saturating_sub(want_free);
        match shared.images.gc(&in_use, target) {
            Ok(freed) => tracing::info!("image garbage collection freed {freed} bytes"),
            Err(e) => tracing::warn!("image garbage collection: {e}"),
        }
    }
}

/// Imports image tarballs from `dir` not imported yet (by name, size and mtime).
fn import_images(
    images: &reddwarf_images::ImageStore,
    dir: &std::path::Path,
    seen: &mut std::collections::HashMap<PathBuf, (u64, std::time::SystemTime)>,
) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let path = e.path();
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let key = (meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH));
        if seen.get(&path) == Some(&key) {
            continue;
        }
        seen.insert(path.clone(), key);
        match images.import_archive(&path) {
            Ok(imgs) => {
                for i in imgs {
                    tracing::info!("imported {} ({})", i.repo_tags.join(", "), i.id);
                }
            }
            Err(e) => tracing::warn!("importing {}: {e}", path.display()),
        }
    }
}
