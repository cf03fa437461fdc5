//! `bench ha`: starts a cluster of members (this same binary, on 127.0.0.1) and measures
//! failover (leader killed with SIGKILL → the first write that succeeds through another
//! member), and a new member joining through a snapshot of many objects (time to voter, peak
//! RSS of the joiner and of the leader).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::report::percentile;
use super::{populate, Common, Report};
use crate::client::Target;

#[derive(clap::Args, Clone, Debug)]
pub struct HaArgs {
    /// Members of the cluster.
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Leader kills to time (0: skip).
    #[arg(long, default_value_t = 20)]
    pub kills: usize,
    /// ConfigMaps (1 KiB) in the cluster before a new member joins through a snapshot (0: skip).
    #[arg(long, default_value_t = 100_000)]
    pub objects: u64,
    /// `text` (a table) or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

struct Member {
    dir: PathBuf,
    listen: String,
    join: Option<(String, String)>,
    child: Option<Child>,
}

impl Member {
    fn spawn(&mut self) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(self.dir.join("admin.kubeconfig"));
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["server", "--disable-agent", "--listen", &self.listen])
            // Snapshots often enough that a joining member needs one.
            .args(["--raft-snapshot-entries", "1000", "--snapshot-schedule", ""])
            .arg("--data-dir")
            .arg(&self.dir);
        if let Some((url, token)) = &self.join {
            cmd.args(["--join", url, "--token", token]);
        }
        self.child = Some(cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?);
        Ok(())
    }

    fn url(&self) -> String {
        format!("https://{}", self.listen)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    async fn ready(&self, within: Duration) -> anyhow::Result<Target> {
        let deadline = Instant::now() + within;
        let kubeconfig = self.dir.join("admin.kubeconfig");
        loop {
            anyhow::ensure!(
                Instant::now() < deadline,
                "member at {} not ready within {within:?}",
                self.listen
            );
            if let Ok(target) = Target::from_kubeconfig(&kubeconfig) {
                if let Ok(mut c) = target.connect().await {
                    if let Ok((200, _)) = c.request("GET", "/readyz", None).await {
                        return Ok(target);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| {
                    v.split_whitespace()
                        .next()
                        .and_then(|n| n.parse::<f64>().ok())
                })
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// The cluster status as `target`'s member reports it.
async fn status(target: &Target) -> Option<serde_json::Value> {
    let mut c = target.connect().await.ok()?;
    match c.request("GET", "/reddwarf/v1/cluster", None).await.ok()? {
        (200, body) => serde_json::from_slice(&body).ok(),
        _ => None,
    }
}

/// Index of the leader among `members`, and whether every member is a voter with no lag.
async fn leader_and_settled(members: &[Member], via: &Target) -> Option<(usize, bool)> {
    let s = status(via).await?;
    let id = s["leader"].as_u64()?;
    let list = s["members"].as_array()?;
    let addr = list.iter().find(|m| m["id"].as_u64() == Some(id))?["address"]
        .as_str()?
        .to_string();
    let settled = list.len() == members.len()
        && list
            .iter()
            .all(|m| m["role"] == "voter" && m["lag"].as_u64() == Some(0));
    Some((members.iter().position(|m| m.listen == addr)?, settled))
}

async fn create(target: &Target, name: &str) -> bool {
    let Ok(mut c) = target.connect().await else {
        return false;
    };
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    matches!(
        c.request(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some(body.to_string().into_bytes()),
        )
        .await,
        Ok((201, _))
    )
}

pub async fn run(a: HaArgs) -> anyhow::Result<Report> {
    let root = tempfile::tempdir()?;
    let mut members: Vec<Member> = Vec::new();
    let mut first = Member {
        dir: root.path().join("m1"),
        listen: format!("127.0.0.1:{}", free_port()?),
        join: None,
        child: None,
    };
    first.spawn()?;
    first.ready(Duration::from_secs(30)).await?;
    let token = std::fs::read_to_string(first.dir.join("server-token"))?
        .trim()
        .to_string();
    let join = (first.url(), token);
    members.push(first);
    for i in 2..=a.members.max(1) {
        let mut m = Member {
            dir: root.path().join(format!("m{i}")),
            listen: format!("127.0.0.1:{}", free_port()?),
            join: Some(join.clone()),
            child: None,
        };
        m.spawn()?;
        m.ready(Duration::from_secs(60)).await?;
        members.push(m);
    }
    let targets: Vec<Target> = members
        .iter()
        .map(|m| Target::from_kubeconfig(&m.dir.join("admin.kubeconfig")))
        .collect::<anyhow::Result<_>>()?;
    settle(&members, &targets[0]).await?;
    let mut r = Report::new("ha", &a.output);

    let mut failovers = Vec::new();
    for k in 0..a.kills {
        let (leader, _) = settle(&members, &targets[0]).await?;
        let other = (leader + 1) % members.len();
        members[leader].kill();
        let killed = Instant::now();
        let mut n = 0;
        loop {
            n += 1;
            if create(&targets[other], &format!("failover-{k}-{n}")).await {
                break;
            }
            anyhow::ensure!(
                killed.elapsed() < Duration::from_secs(60),
                "no write succeeded within 60 s of killing the leader"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        failovers.push(killed.elapsed());
        members[leader].spawn()?;
        members[leader].ready(Duration::from_secs(60)).await?;
    }
    if !failovers.is_empty() {
        failovers.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        r.add(
            "failover_ms",
            json!({"p50": ms(percentile(&failovers, 0.5)), "p99": ms(percentile(&failovers, 0.99)),
                "max": ms(*failovers.last().unwrap_or(&Duration::ZERO)), "kills": failovers.len()}),
            format!(
                "{:.0} ms p50, {:.0} ms p99, {:.0} ms max from SIGKILL of the leader to the first successful write through another member ({} kills, {} members)",
                ms(percentile(&failovers, 0.5)),
                ms(percentile(&failovers, 0.99)),
                ms(*failovers.last().unwrap_or(&Duration::ZERO)),
                failovers.len(),
                members.len()
            ),
        );
    }

    if a.objects > 0 {
        let common = Common {
            kubeconfig: members[0].dir.join("admin.kubeconfig"),
            concurrency: 32,
            size: 1024,
            namespace: "default".into(),
            output: a.output.clone(),
        };
        populate(&targets[0], &common, "snap", a.objects).await?;
        let (leader, _) = settle(&members, &targets[0]).await?;
        let leader_before = peak_rss_mib(members[leader].pid());
        let mut joiner = Member {
            dir: root.path().join("joiner"),
            listen: format!("127.0.0.1:{}", free_port()?),
            join: Some(join.clone()),
            child: None,
        };
        let started = Instant::now();
        joiner.spawn()?;
        joiner.ready(Duration::from_secs(600)).await?;
        let took = started.elapsed();
        let joined_rss = peak_rss_mib(joiner.pid());
        let leader_after = peak_rss_mib(members[leader].pid());
        let installed = std::fs::read_dir(joiner.dir.join("snapshots"))
            .map(|d| d.count())
            .unwrap_or(0);
        r.add(
            "snapshot_join",
            json!({"objects": a.objects, "seconds": took.as_secs_f64(), "joiner_peak_rss_mib": joined_rss,
                "leader_peak_rss_mib_before": leader_before, "leader_peak_rss_mib_after": leader_after,
                "snapshot_files": installed}),
            format!(
                "{:.1} s from start to ready for a member joining a cluster of {} ConfigMaps through a snapshot; peak RSS {joined_rss:.0} MiB (joiner), leader {leader_before:.0} → {leader_after:.0} MiB",
                took.as_secs_f64(),
                a.objects
            ),
        );
        drop(joiner);
    }
    Ok(r)
}

/// Waits until some member reports a leader and every member a voter with no lag.
async fn settle(members: &[Member], via: &Target) -> anyhow::Result<(usize, bool)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((l, true)) = leader_and_settled(members, via).await {
            return Ok((l, true));
        }
        anyhow::ensure!(Instant::now() < deadline, "the cluster did not settle");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
