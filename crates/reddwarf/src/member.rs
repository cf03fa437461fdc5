//! Control-plane membership on disk and the join handshake.
//!
//! `DIR/member.json` records this member's raft id, the member it joined through and whether
//! the cluster has added it yet. The first member of a cluster is id 1 and writes
//! `DIR/server-token` (`K10<CA hash>::server:<secret>`). A new member started with `--join URL
//! --token T` downloads the CA, checks it against the token's hash, and asks
//! `POST /reddwarf/raft/join` (bearer: the server token) for an id and the cluster's shared
//! secrets: CA key, service-account key, node and server tokens. It then issues its own serving
//! and member certificates, starts raft empty, and asks the leader to add it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use reddwarf_agent::token::{ca_hash, NodeToken};
use serde::{Deserialize, Serialize};

/// `DIR/member.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    /// This member's raft id.
    pub id: u64,
    /// `host:port` of the member it joined through (none for a cluster's first member).
    #[serde(default)]
    pub seed: Option<String>,
    /// Whether the cluster has added this member (it then restarts without `--join`).
    pub joined: bool,
}

/// What a joining member receives.
#[derive(Serialize, Deserialize)]
pub struct JoinBundle {
    /// The id handed out by the leader.
    pub id: u64,
    /// The cluster CA certificate (PEM).
    pub ca_cert: String,
    /// The cluster CA key (PEM): every member issues certificates.
    pub ca_key: String,
    /// The service-account signing key (PEM): tokens from any member verify on every member.
    pub service_account_key: String,
    /// `DIR/node-token`: agents join through any member.
    pub node_token: String,
    /// `DIR/server-token`: members join through any member.
    pub server_token: String,
}

fn path(dir: &Path) -> PathBuf {
    dir.join("member.json")
}

/// Reads `DIR/member.json`; a data dir from before membership existed is member 1.
pub fn load(dir: &Path) -> anyhow::Result<Option<Member>> {
    match std::fs::read(path(dir)) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).with_context(|| {
            format!("{} is not a member record", path(dir).display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path(dir).display())),
    }
}

/// Writes `DIR/member.json` atomically.
pub fn save(dir: &Path, m: &Member) -> anyhow::Result<()> {
    let tmp = dir.join("member.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(m)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path(dir))?;
    Ok(())
}

/// Writes a secret file (mode 0600) atomically.
pub fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{}\n", text.trim()))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// `host` and `port` of an `https://host:port` URL (the port defaults to 6443).
pub fn host_port(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url
        .strip_prefix("https://")
        .with_context(|| format!("--join {url:?}: expected https://HOST:PORT"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
            Ok(p) => (h, p),
            Err(_) => (rest, 6443),
        },
        _ => (rest, 6443),
    };
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// The join handshake: pins the CA with the token's hash, receives an id and the cluster's
/// secrets, and writes them into `dir` (with `member.json` saying the member is not added yet).
pub async fn fetch_bundle(dir: &Path, url: &str, token: &str) -> anyhow::Result<Member> {
    let parsed = NodeToken::parse(token).context("--token")?;
    if parsed.bootstrap {
        bail!("--token: members join with the server token (DIR/server-token of a member), not a bootstrap token");
    }
    let server = host_port(url)?;
    let ca = reddwarf_agent::bootstrap::fetch_ca(&server)
        .await
        .with_context(|| format!("fetching the cluster CA from {url}"))?;
    if ca_hash(&ca) != parsed.ca_hash {
        bail!("the server at {url} does not present the cluster CA the token pins: wrong --join address or --token");
    }
    let tls = reddwarf_agent::https::client_config(&ca, None, &[])?;
    let ep = reddwarf_agent::https::Endpoint {
        host: server.0.clone(),
        port: server.1,
        tls,
        alternates: None,
    };
    let (code, body) = reddwarf_agent::bootstrap::request(
        &ep,
        "POST",
        "/reddwarf/raft/join",
        Some(&parsed.encode()),
        None,
    )
    .await
    .with_context(|| format!("joining through {url}"))?;
    if code != 200 {
        bail!(
            "joining through {url} answered {code}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    let bundle: JoinBundle =
        serde_json::from_slice(&body).context("the join answer is not a join bundle")?;
    if bundle.ca_cert != ca {
        bail!("the join answer carries another CA than the server presents");
    }
    std::fs::create_dir_all(dir)?;
    crate::pki::install_shared(
        &dir.join("pki"),
        &bundle.ca_cert,
        &bundle.ca_key,
        &bundle.service_account_key,
    )?;
    write_secret(&dir.join("node-token"), &bundle.node_token)?;
    write_secret(&dir.join("server-token"), &bundle.server_token)?;
    let m = Member {
        id: bundle.id,
        seed: Some(ep.authority()),
        joined: false,
    };
    save(dir, &m)?;
    Ok(m)
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_urls() {
        assert_eq!(
            host_port("https://127.0.0.1:7443").unwrap(),
            ("127.0.0.1".into(), 7443)
        );
        assert_eq!(
            host_port("https://cp.example/").unwrap(),
            ("cp.example".into(), 6443)
        );
        assert_eq!(
            host_port("https://[::1]:8443").unwrap(),
            ("::1".into(), 8443)
        );
        assert!(host_port("http://127.0.0.1:1").is_err());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
