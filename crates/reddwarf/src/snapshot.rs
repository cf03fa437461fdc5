//! `reddwarf snapshot save FILE`: an online backup of a running cluster, streamed from
//! `/reddwarf/v1/snapshot` (one consistent read view; the cluster keeps serving) into FILE.
//! `reddwarf server --restore FILE --data-dir NEW` starts a new cluster from it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use http_body_util::BodyExt;

use crate::client::Target;

/// `reddwarf snapshot` subcommands.
#[derive(clap::Subcommand)]
pub enum SnapshotCommand {
    /// Stream a consistent snapshot of the cluster into FILE (written whole or not at all).
    Save {
        /// Where to write it.
        file: PathBuf,
        /// Kubeconfig of a cluster admin (the server's admin.kubeconfig).
        #[arg(
            long,
            env = "KUBECONFIG",
            default_value = "./reddwarf-data/admin.kubeconfig"
        )]
        kubeconfig: PathBuf,
    },
}

/// Runs a `reddwarf snapshot` subcommand.
pub async fn run(cmd: SnapshotCommand) -> anyhow::Result<()> {
    let SnapshotCommand::Save { file, kubeconfig } = cmd;
    let target = Target::from_kubeconfig(&kubeconfig)?;
    let mut conn = target.connect().await?;
    let mut body = conn.stream("/reddwarf/v1/snapshot").await?;
    let tmp = file.with_extension("partial");
    let written = async {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        let mut bytes = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.context("the snapshot stream broke off")?;
            if let Some(data) = frame.data_ref() {
                out.write_all(data)?;
                bytes += data.len() as u64;
            }
        }
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        anyhow::Ok(bytes)
    }
    .await;
    let bytes = match written {
        Ok(b) => b,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &file)?;
    println!("saved {} ({bytes} bytes)", file.display());
    Ok(())
}
