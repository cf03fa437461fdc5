//! `reddwarf`: a Kubernetes control plane in one binary. Subcommands are thin; each role
//! lives in its own crate.

mod agent;
mod bench;
mod certificate;
mod client;
mod cluster;
mod heap;
mod history;
mod history_recorder;
mod in_process;
mod member;
mod pki;
mod server;
mod simnodes;
mod snapshot;
mod tls;
mod token_auth;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "reddwarf",
    version,
    about = "A Kubernetes control plane in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the control plane: API server, storage and consensus.
    Server(ServerArgs),
    /// Drive a running server over HTTPS and report throughput and latency.
    Bench(bench::BenchArgs),
    /// Simulated nodes: register Nodes, renew their Leases, and run pods bound to them
    /// (kwok-style, for tests and benchmarks).
    SimNodes(simnodes::SimNodesArgs),
    /// A worker node: registers with the server, keeps the tunnel to it, runs its pods.
    Agent(agent::AgentArgs),
    /// Rotate or revoke client certificates the cluster CA issued.
    #[command(subcommand)]
    Certificate(certificate::CertificateCommand),
    /// Online backups of a running cluster.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Control-plane members: status, removal.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// The change history: log, show, diff, restore, get at a revision, status.
    #[command(subcommand)]
    History(history::HistoryCommand),
}

#[derive(clap::Args, Clone, Debug)]
pub(crate) struct ServerArgs {
    /// Where state, certificates and the admin kubeconfig live.
    #[arg(long, env = "REDDWARF_DATA_DIR", default_value = "./reddwarf-data")]
    pub data_dir: PathBuf,
    /// Address to serve HTTPS on (port 0 picks a free port; the kubeconfig names the real one).
    #[arg(long, env = "REDDWARF_LISTEN", default_value = "0.0.0.0:6443")]
    pub listen: String,
    /// Join the cluster of the member at this URL (`https://HOST:PORT`) as a new member; needs
    /// `--token`. Only on first start: a member restarts from its data dir alone.
    #[arg(long, env = "REDDWARF_JOIN")]
    pub join: Option<String>,
    /// The server token of the cluster to join (`DIR/server-token` of any member).
    #[arg(long, env = "REDDWARF_TOKEN")]
    pub token: Option<String>,
    /// The address other members and clients reach this member at (default: the listen
    /// address, or 127.0.0.1 when listening on every address).
    #[arg(long)]
    pub advertise_address: Option<String>,
    /// Extra subject alternative names for the serving certificate (repeatable).
    #[arg(long = "tls-san")]
    pub tls_san: Vec<String>,
    /// Run no node agent in this process (a pure control plane). By default the server also
    /// runs pods on its own host, as `reddwarf agent` does (that needs root).
    #[arg(long)]
    pub disable_agent: bool,
    /// The embedded agent's node (as `reddwarf agent`'s flags).
    #[command(flatten)]
    pub node: agent::NodeArgs,
    /// Where pod IPs come from: each node gets a slice of it as its podCIDR.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// Prefix length of each node's podCIDR.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// Where Service cluster IPs come from.
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    /// The `iss` of service-account tokens, and the audience the API accepts them for.
    #[arg(long, default_value = reddwarf_apiserver::sa_token::DEFAULT_ISSUER)]
    pub service_account_issuer: String,
    /// Static bearer tokens, one per line: `token,user,uid,"group1,group2"`.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Start a new one-member cluster from a snapshot (`reddwarf snapshot save`): same objects
    /// and resourceVersions, new identity. The data dir must not hold a cluster yet.
    #[arg(long)]
    pub restore: Option<PathBuf>,
    /// Disaster recovery: start a new one-member cluster from this member's data when a
    /// majority of its cluster is lost for good (join the others anew afterwards).
    #[arg(long)]
    pub force_new_cluster: bool,
    /// When to save a snapshot into DIR/backups (cron syntax, `@every 6h` too; empty: never),
    /// as k3s's etcd snapshots.
    #[arg(long, default_value = "0 */12 * * *")]
    pub snapshot_schedule: String,
    /// Scheduled snapshots kept in DIR/backups (the oldest go first).
    #[arg(long, default_value_t = 5)]
    pub snapshot_retention: usize,
    /// Raft log entries between snapshots (each snapshot lets the log before it be purged).
    #[arg(long, default_value_t = 20_000)]
    pub raft_snapshot_entries: u64,
    /// Ports NodePort Services may use.
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// How long a node's Lease may go unrenewed before it is marked Ready=Unknown.
    #[arg(long, default_value = "40s")]
    pub node_monitor_grace_period: GoDuration,
    /// Terminated pods kept before the pod garbage collector deletes the oldest (0: never).
    #[arg(long, default_value_t = 12_500)]
    pub terminated_pod_gc_threshold: usize,
    /// tolerationSeconds given to pods for the `node.kubernetes.io/not-ready` taint.
    #[arg(long, default_value_t = 300)]
    pub default_not_ready_toleration_seconds: i64,
    /// tolerationSeconds given to pods for the `node.kubernetes.io/unreachable` taint.
    #[arg(long, default_value_t = 300)]
    pub default_unreachable_toleration_seconds: i64,
    /// Where the local-path provisioner puts volume directories on a node (k3s's
    /// `--default-local-storage-path`).
    #[arg(
        long,
        alias = "default-local-storage-path",
        default_value = "/var/lib/reddwarf/storage"
    )]
    pub local_storage_path: PathBuf,
    /// Controllers to run, as kube-controller-manager's flag: `*` all, `name` one, `-name`
    /// not that one (serviceaccount, root-ca-cert-publisher, garbagecollector, job, cronjob,
    /// podgc, nodelifecycle, nodeipam, csrsigning, scheduler, replicaset, replicationcontroller, deployment,
    /// daemonset, statefulset, endpoint+endpointslice, persistentvolume-binder,
    /// persistentvolumeclaim-protection, persistentvolume-protection,
    /// local-path-provisioner, apiservice-availability).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// Record every change (who, when, what) and mirror it as jj operations in
    /// DIR/history; `--history=false` turns it off (and forgets what was recorded).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub history: bool,
    /// MiB of stored pages the storage engine keeps in memory (the kernel's page cache holds
    /// the file besides): more saves reads of a large store, less saves memory. Reads of
    /// 20 000 objects measured within noise of 32 MiB; the 24 MiB saved is a third of a
    /// 1 000-node cluster's heap.
    #[arg(long, default_value_t = 8)]
    pub storage_cache_mib: usize,
    /// How much history to keep: a duration (`720h`) or a number of revisions (`1000000`);
    /// `0` keeps everything.
    #[arg(long, default_value = "720h")]
    pub history_retention: history_recorder::Retention,
}

/// A duration written the way Kubernetes flags write them: `40s`, `1m30s`, `500ms`, `2h`.
#[derive(Clone, Copy, Debug)]
pub struct GoDuration(pub std::time::Duration);

impl From<GoDuration> for std::time::Duration {
    fn from(d: GoDuration) -> Self {
        d.0
    }
}

impl std::str::FromStr for GoDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid duration {s:?} (examples: 40s, 1m30s, 500ms)");
        if s == "0" {
            return Ok(GoDuration(std::time::Duration::ZERO));
        }
        let mut rest = s;
        let mut total = 0f64;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
            rest = &rest[num_end..];
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let scale = match &rest[..unit_end] {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 1e-3,
                "us" | "µs" => 1e-6,
                "ns" => 1e-9,
                _ => return Err(bad()),
            };
            total += n * scale;
            rest = &rest[unit_end..];
        }
        Ok(GoDuration(std::time::Duration::from_secs_f64(total)))
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    server::shutdown_signal().await
}

#[global_allocator]
static ALLOC: heap::Counted = heap::Counted;

fn main() -> anyhow::Result<()> {
    // A container shim is this binary re-executed; it must run before any thread starts.
    reddwarf_runtime::shim::run_if_invoked();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REDDWARF_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,openraft=warn,jj_lib=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Server(args) => rt.block_on(server::run(args)),
        Command::Bench(args) => rt.block_on(bench::run(args)),
        Command::SimNodes(args) => rt.block_on(simnodes::run(args)),
        Command::Agent(args) => rt.block_on(agent::run(args)),
        Command::Certificate(cmd) => certificate::run(cmd),
        Command::Snapshot(cmd) => rt.block_on(snapshot::run(cmd)),
        Command::Cluster(cmd) => rt.block_on(cluster::run(cmd)),
        Command::History(cmd) => rt.block_on(history::run(cmd)),
    }
}
