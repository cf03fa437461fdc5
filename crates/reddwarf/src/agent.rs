//! `reddwarf agent`: the command line of a worker node; the agent itself is `reddwarf-agent`.

use std::path::PathBuf;
use std::sync::Arc;

use reddwarf_agent::AgentConfig;

#[derive(clap::Args, Clone, Debug)]
pub struct AgentArgs {
    /// The server, `https://HOST:PORT`; several control-plane members as a comma-separated
    /// list (or repeated): the agent moves to the next when its member is lost.
    #[arg(long, env = "REDDWARF_SERVER", value_delimiter = ',')]
    pub server: Vec<String>,
    /// The server's node token (its DIR/node-token). Needed until the agent holds a certificate.
    #[arg(long, env = "REDDWARF_TOKEN")]
    pub token: Option<String>,
    /// Where the agent keeps its certificate, images and pod state.
    #[arg(long, default_value = "./reddwarf-agent")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub node: NodeArgs,
    /// Remove every container, mount, pod network and cgroup this agent made, then exit
    /// (uninstalling a node).
    #[arg(long)]
    pub cleanup: bool,
}

/// What a node is and how it runs pods: `reddwarf agent`'s flags, and the embedded agent's in
/// `reddwarf server`.
#[derive(clap::Args, Clone, Debug)]
pub struct NodeArgs {
    /// Node name (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Labels to register the node with, `k=v,k2=v2`.
    #[arg(long, default_value = "")]
    pub node_labels: String,
    /// Taints to register the node with, `k=v:Effect,k:Effect`.
    #[arg(long, default_value = "")]
    pub node_taints: String,
    /// Image tarballs (OCI or docker archives) imported at start and when added.
    #[arg(long)]
    pub images_dir: Option<PathBuf>,
    /// Registries spoken to over plain HTTP (repeatable; loopback registries always are).
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Pods this node accepts.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// Container logs rotate when they reach this size (as the kubelet's flag: `10Mi`).
    #[arg(long, default_value = "10Mi")]
    pub container_log_max_size: String,
    /// Log files kept per container, the current one included.
    #[arg(long, default_value_t = 5)]
    pub container_log_max_files: usize,
    /// The Linux bridge pods attach to.
    #[arg(long, default_value = "rdw0")]
    pub bridge: String,
}

impl NodeArgs {
    /// The agent's configuration for dialling `server` with `token`, state in `data_dir`.
    pub fn config(
        &self,
        server: String,
        token: Option<String>,
        data_dir: PathBuf,
    ) -> anyhow::Result<AgentConfig> {
        Ok(AgentConfig {
            server,
            token,
            node_name: self.node_name.clone().unwrap_or_else(host_name),
            data_dir,
            labels: reddwarf_agent::parse_labels(&self.node_labels)?,
            taints: reddwarf_agent::parse_taints(&self.node_taints)?,
            images_dir: self.images_dir.clone(),
            insecure_registries: self.insecure_registries.clone(),
            max_pods: self.max_pods,
            container_log_max_bytes: parse_size(&self.container_log_max_size)?,
            container_log_max_files: self.container_log_max_files,
        })
    }
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_lowercase())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}

/// `10Mi`, `512Ki`, `1G`, `4096`: a size in bytes, as Kubernetes quantities spell them.
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size {s:?} (examples: 10Mi, 512Ki, 4096)"))?;
    let mult: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" | "K" => 1000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => anyhow::bail!("invalid size {s:?}: unit {unit:?} (use Ki, Mi, Gi)"),
    };
    Ok(n * mult)
}

pub fn runtime(
    data_dir: &std::path::Path,
) -> anyhow::Result<Arc<reddwarf_runtime::LibcontainerRuntime>> {
    Ok(Arc::new(reddwarf_runtime::LibcontainerRuntime::new(
        &data_dir.join("runtime"),
    )?))
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let cfg = args.node.config(
        args.server.join(","),
        args.token.clone(),
        args.data_dir.clone(),
    )?;
    std::fs::create_dir_all(&cfg.data_dir)?;
    let rt = runtime(&cfg.data_dir)?;
    if args.cleanup {
        return reddwarf_agent::cleanup(
            rt.as_ref(),
            &cfg.data_dir,
            &cfg.node_name,
            &args.node.bridge,
        )
        .await;
    }
    let stdin_rt = rt.clone();
    let stdin_path: Box<dyn Fn(&str) -> std::path::PathBuf + Send + Sync> =
        Box::new(move |id: &str| stdin_rt.stdin_path(id));
    reddwarf_agent::run(
        cfg,
        rt,
        args.node.bridge.clone(),
        Some(stdin_path),
        crate::shutdown_signal(),
    )
    .await
}
