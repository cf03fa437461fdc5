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

/// Where scheduled snapshots go, in the data dir.
pub const BACKUPS: &str = "backups";

/// Saves a snapshot of `store` into `dir/backups` on `schedule` (cron syntax, UTC), keeping the
/// newest `retention`; runs until the process ends. An unparsable schedule is an error at start.
pub fn schedule(
    store: reddwarf_store::Store,
    data_dir: &std::path::Path,
    schedule: &str,
    retention: usize,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if schedule.trim().is_empty() || retention == 0 {
        return Ok(None);
    }
    let parsed = reddwarf_resources::validation::cron::parse(schedule)
        .map_err(|e| anyhow::anyhow!("--snapshot-schedule {schedule:?}: {e}"))?;
    let dir = data_dir.join(BACKUPS);
    Ok(Some(tokio::spawn(async move {
        loop {
            let now = jiff::Timestamp::now();
            let Some(next) =
                reddwarf_controllers::next_after(&parsed, &jiff::tz::TimeZone::UTC, now)
            else {
                tracing::warn!("the snapshot schedule never fires again");
                return;
            };
            let wait = (next.as_millisecond() - now.as_millisecond()).max(0) as u64;
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            let (store, dir) = (store.clone(), dir.clone());
            let name = format!("reddwarf-snapshot-{}.snap", next.as_second());
            let saved =
                tokio::task::spawn_blocking(move || save_local(&store, &dir, &name, retention))
                    .await;
            match saved {
                Ok(Ok(path)) => tracing::info!("saved scheduled snapshot {}", path.display()),
                Ok(Err(e)) => tracing::warn!("scheduled snapshot: {e:#}"),
                Err(e) => tracing::warn!("scheduled snapshot: {e}"),
            }
        }
    })))
}

/// Writes one snapshot file (whole or not at all) and removes the oldest beyond `retention`.
fn save_local(
    store: &reddwarf_store::Store,
    dir: &std::path::Path,
    name: &str,
    retention: usize,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(name);
    let tmp = path.with_extension("partial");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    let written = store
        .dump_to(&mut out)
        .map_err(anyhow::Error::from)
        .and_then(|_| Ok(out.into_inner().map_err(|e| e.into_error())?.sync_all()?));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &path)?;
    // Names carry the scheduled second: name order is age order.
    let mut saved: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("reddwarf-snapshot-") && n.ends_with(".snap"))
        })
        .collect();
    saved.sort();
    let excess = saved.len().saturating_sub(retention);
    for old in &saved[..excess] {
        let _ = std::fs::remove_file(old);
    }
    Ok(path)
}
