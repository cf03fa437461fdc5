//! `reddwarf cluster status|remove`: the control-plane members of a running cluster, through
//! any member's API (`/reddwarf/v1/cluster`, cluster admins only).

use std::path::PathBuf;

use anyhow::{bail, Context};
use reddwarf_consensus::ClusterStatus;

use crate::client::Target;

/// `reddwarf cluster` subcommands.
#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// Members (id, address, voter or learner, lag), the leader, term, commit and applied index.
    Status {
        /// Kubeconfig of a cluster admin (any member's admin.kubeconfig).
        #[arg(
            long,
            env = "KUBECONFIG",
            default_value = "./reddwarf-data/admin.kubeconfig"
        )]
        kubeconfig: PathBuf,
        /// `table` or `json`.
        #[arg(short = 'o', long, default_value = "table")]
        output: String,
    },
    /// Removes a member (by id) from the cluster; stop its process afterwards.
    Remove {
        /// The member's id (see `reddwarf cluster status`).
        member: u64,
        /// Kubeconfig of a cluster admin (any member's admin.kubeconfig).
        #[arg(
            long,
            env = "KUBECONFIG",
            default_value = "./reddwarf-data/admin.kubeconfig"
        )]
        kubeconfig: PathBuf,
    },
}

/// Runs a `reddwarf cluster` subcommand.
pub async fn run(cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Status { kubeconfig, output } => {
            let mut conn = Target::from_kubeconfig(&kubeconfig)?.connect().await?;
            let (code, body) = conn.request("GET", "/reddwarf/v1/cluster", None).await?;
            if code != 200 {
                bail!(
                    "cluster status answered {code}: {}",
                    String::from_utf8_lossy(&body).trim()
                );
            }
            if output == "json" {
                println!("{}", String::from_utf8_lossy(&body));
                return Ok(());
            }
            let s: ClusterStatus =
                serde_json::from_slice(&body).context("the cluster status is not JSON")?;
            print!("{}", render(&s));
            Ok(())
        }
        ClusterCommand::Remove { member, kubeconfig } => {
            let mut conn = Target::from_kubeconfig(&kubeconfig)?.connect().await?;
            let (code, body) = conn
                .request(
                    "DELETE",
                    &format!("/reddwarf/v1/cluster/members/{member}"),
                    None,
                )
                .await?;
            if code != 200 {
                bail!(
                    "removing member {member} answered {code}: {}",
                    String::from_utf8_lossy(&body).trim()
                );
            }
            println!("member {member} removed");
            Ok(())
        }
    }
}

fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn render(s: &ClusterStatus) -> String {
    let mut out = format!(
        "leader: {}  term: {}  last log index: {}  applied (member {}): {}\n",
        opt(s.leader),
        s.term,
        opt(s.last_log_index),
        s.answered_by,
        opt(s.applied_index)
    );
    out.push_str(&format!(
        "{:<4} {:<28} {:<8} {:<8} {:>10} {:>8}\n",
        "ID", "ADDRESS", "ROLE", "LEADER", "MATCHED", "LAG"
    ));
    for m in &s.members {
        out.push_str(&format!(
            "{:<4} {:<28} {:<8} {:<8} {:>10} {:>8}\n",
            m.id,
            m.address,
            m.role,
            if s.leader == Some(m.id) { "*" } else { "" },
            opt(m.matched),
            opt(m.lag)
        ));
    }
    out
}
