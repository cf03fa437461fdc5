//! `reddwarf`: a Kubernetes control plane in one binary. Subcommands are thin; each role
//! lives in its own crate.

mod bench;
mod client;
mod in_process;
mod pki;
mod server;
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

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: API server, storage and consensus.
    Server(ServerArgs),
    /// Drive a running server over HTTPS and report throughput and latency.
    Bench(bench::BenchArgs),
}

#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    /// Where state, certificates and the admin kubeconfig live.
    #[arg(long, env = "REDDWARF_DATA_DIR", default_value = "./reddwarf-data")]
    pub data_dir: PathBuf,
    /// Address to serve HTTPS on (port 0 picks a free port; the kubeconfig names the real one).
    #[arg(long, env = "REDDWARF_LISTEN", default_value = "0.0.0.0:6443")]
    pub listen: String,
    /// Extra subject alternative names for the serving certificate (repeatable).
    #[arg(long = "tls-san")]
    pub tls_san: Vec<String>,
    /// Where Service cluster IPs come from.
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    /// Static bearer tokens, one per line: `token,user,uid,"group1,group2"`.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Raft log entries between snapshots (each snapshot lets the log before it be purged).
    #[arg(long, default_value_t = 20_000)]
    pub raft_snapshot_entries: u64,
    /// Ports NodePort Services may use.
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: String,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REDDWARF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
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
    }
}
