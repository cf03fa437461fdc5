//! iptables, driven through the system binary (there is no lean pure-Rust nftables library;
//! the `iptables` front end also keeps us on whatever backend — nft or legacy — the rest of the
//! host uses, so our rules and e.g. Docker's see each other). Every rule this crate adds
//! carries an `-m comment` tag, and every chain it creates has the bridge name in it, so
//! removal finds exactly what we made and nothing else.
//!
//! This module is also the seam for Service rules (next step): a `services` module would own
//! its own chains through the same primitives (`ensure_chain`, `ensure_rule`, `delete_tagged`).

use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::{Error, Result};

/// Binaries tried in order: the distribution's choice first, then the explicit backends.
const CANDIDATES: [&str; 3] = ["iptables", "iptables-nft", "iptables-legacy"];

/// The iptables binary in use (the first of `iptables`, `iptables-nft`, `iptables-legacy` that
/// runs) and its `--version` line, e.g. `iptables v1.8.9 (nf_tables)`.
pub fn backend() -> Option<(&'static str, String)> {
    static FOUND: OnceLock<Option<(&'static str, String)>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            CANDIDATES.iter().find_map(|bin| {
                let out = Command::new(bin).arg("--version").output().ok()?;
                out.status.success().then(|| {
                    (
                        *bin,
                        String::from_utf8_lossy(&out.stdout).trim().to_string(),
                    )
                })
            })
        })
        .clone()
}

/// Runs the iptables binary found on this host (see [`backend`]), always with `-w`.
#[derive(Clone, Copy, Debug)]
pub struct Iptables {
    bin: &'static str,
}

fn failure(bin: &str, args: &[&str], out: &Output) -> Error {
    Error::Iptables {
        cmd: format!("{bin} {}", args.join(" ")),
        msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

/// The comment of an `iptables -S` line, unquoted.
pub fn comment_of(line: &str) -> Option<&str> {
    let rest = &line[line.find("--comment ")? + "--comment ".len()..];
    let tok = rest.split_whitespace().next()?;
    Some(tok.trim_matches('"'))
}

impl Iptables {
    /// Finds the first of `iptables`, `iptables-nft`, `iptables-legacy` that runs.
    pub fn detect() -> Result<Self> {
        backend()
            .map(|(bin, _)| Self { bin })
            .ok_or_else(|| Error::Iptables {
                cmd: "iptables --version".into(),
                msg: "none of iptables, iptables-nft, iptables-legacy runs".into(),
            })
    }

    /// The chosen binary's name.
    pub fn binary(&self) -> &'static str {
        self.bin
    }

    /// Runs `iptables -w <args>`, returning stdout; non-zero exit is an error.
    pub async fn run(&self, args: &[&str]) -> Result<String> {
        let out = self.output(args).await?;
        if !out.status.success() {
            return Err(failure(self.bin, args, &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn output(&self, args: &[&str]) -> Result<Output> {
        tokio::process::Command::new(self.bin)
            .arg("-w")
            .args(args)
            .output()
            .await
            .map_err(|e| Error::Io {
                op: format!("run {}", self.bin),
                source: e,
            })
    }

    /// Blocking `-S` listing, for the synchronous [`crate::resources`].
    pub fn list_sync(&self, table: &str) -> Vec<String> {
        Command::new(self.bin)
            .args(["-w", "-t", table, "-S"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `chain` exists in `table`.
    pub async fn chain_exists(&self, table: &str, chain: &str) -> Result<bool> {
        Ok(self
            .output(&["-t", table, "-S", chain])
            .await?
            .status
            .success())
    }

    /// Creates `chain` in `table` unless it exists (a concurrent creator is fine).
    pub async fn ensure_chain(&self, table: &str, chain: &str) -> Result<()> {
        if self.chain_exists(table, chain).await? {
            return Ok(());
        }
        let args = ["-t", table, "-N", chain];
        let out = self.output(&args).await?;
        // Lost a race with another creator: the chain exists, which is all we wanted.
        if out.status.success() || self.chain_exists(table, chain).await? {
            Ok(())
        } else {
            Err(failure(self.bin, &args, &out))
        }
    }

    /// Appends `rule` to `chain` unless an identical rule is there (`-C`).
    pub async fn ensure_rule(&self, table: &str, chain: &str, rule: &[String]) -> Result<()> {
        let mut args: Vec<&str> = vec!["-t", table, "-C", chain];
        args.extend(rule.iter().map(String::as_str));
        if self.output(&args).await?.status.success() {
            return Ok(());
        }
        args[2] = "-A";
        self.run(&args).await.map(drop)
    }

    /// Appends `rule` to `chain` (no duplicate check).
    pub async fn run_rule(&self, table: &str, chain: &str, rule: &[String]) -> Result<()> {
        let mut args: Vec<&str> = vec!["-t", table, "-A", chain];
        args.extend(rule.iter().map(String::as_str));
        self.run(&args).await.map(drop)
    }

    /// Deletes `rule` from `chain` if present.
    pub async fn delete_rule(&self, table: &str, chain: &str, rule: &[String]) -> Result<()> {
        let mut args: Vec<&str> = vec!["-t", table, "-D", chain];
        args.extend(rule.iter().map(String::as_str));
        // Repeat: an interrupted earlier run may have appended a duplicate.
        while self.output(&args).await?.status.success() {}
        Ok(())
    }

    /// Deletes every rule in `table` (optionally only in `chain`) whose comment satisfies
    /// `matches`. Returns how many went.
    pub async fn delete_tagged(
        &self,
        table: &str,
        chain: Option<&str>,
        matches: impl Fn(&str) -> bool,
    ) -> Result<usize> {
        let mut args = vec!["-t", table, "-S"];
        if let Some(c) = chain {
            if !self.chain_exists(table, c).await? {
                return Ok(0);
            }
            args.push(c);
        }
        let listing = self.run(&args).await?;
        let mut n = 0;
        for line in listing.lines() {
            if !line.starts_with("-A ") || !comment_of(line).is_some_and(&matches) {
                continue;
            }
            // `-S` prints rules in the form `-A` takes; quotes only wrap our comment, which
            // has no spaces, so splitting on whitespace is exact for the rules we made.
            let mut del: Vec<String> = vec!["-t".into(), table.into()];
            del.extend(
                line.split_whitespace()
                    .map(|t| t.trim_matches('"').to_string()),
            );
            del[2] = "-D".into();
            let del: Vec<&str> = del.iter().map(String::as_str).collect();
            let out = self.output(&del).await?;
            if out.status.success() {
                n += 1;
            } else {
                tracing::warn!(rule = line, err = %String::from_utf8_lossy(&out.stderr).trim(), "could not delete tagged rule");
            }
        }
        Ok(n)
    }

    /// Flushes and deletes a chain; a missing chain is fine.
    pub async fn delete_chain(&self, table: &str, chain: &str) -> Result<()> {
        if !self.chain_exists(table, chain).await? {
            return Ok(());
        }
        self.run(&["-t", table, "-F", chain]).await?;
        self.run(&["-t", table, "-X", chain]).await.map(drop)
    }
}
