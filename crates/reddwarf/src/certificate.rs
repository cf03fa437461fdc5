//! `reddwarf certificate`: rotate the admin certificate or revoke any client certificate the
//! cluster CA issued (an agent's, a user's), without a new CA. Works on the data dir, with the
//! server stopped or running: the server re-reads the revoked list on the next connection.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::pki::{self, revocation};

/// `reddwarf certificate` subcommands.
#[derive(clap::Subcommand)]
pub enum CertificateCommand {
    /// Issue a new admin client certificate (and key), revoke the old one and rewrite
    /// DIR/admin.kubeconfig with it.
    Rotate {
        /// Which certificate: `admin` (agents renew their own; revoke an agent's certificate
        /// to make it join again with the node token).
        which: String,
        /// The server's data dir.
        #[arg(long, env = "REDDWARF_DATA_DIR", default_value = "./reddwarf-data")]
        data_dir: PathBuf,
    },
    /// Revoke client certificates: each argument is a PEM certificate file or a serial number
    /// (hex). A revoked certificate authenticates no request (401) from the next connection on.
    Revoke {
        /// Certificate files or serial numbers.
        #[arg(required = true)]
        certificates: Vec<String>,
        /// The server's data dir.
        #[arg(long, env = "REDDWARF_DATA_DIR", default_value = "./reddwarf-data")]
        data_dir: PathBuf,
    },
}

/// Runs a `reddwarf certificate` subcommand.
pub fn run(cmd: CertificateCommand) -> Result<()> {
    match cmd {
        CertificateCommand::Rotate { which, data_dir } => {
            if which != "admin" {
                bail!("only the admin certificate is rotated here; revoke an agent's certificate (`reddwarf certificate revoke FILE`) and it joins again with the node token");
            }
            let dir = data_dir.join("pki");
            let old = std::fs::read_to_string(dir.join("admin.crt"))
                .with_context(|| format!("reading {}", dir.join("admin.crt").display()))?;
            let serial = revocation::serial_of_pem(&old)?;
            let kubeconfig = data_dir.join("admin.kubeconfig");
            let url = std::fs::read_to_string(&kubeconfig)
                .ok()
                .and_then(|k| {
                    k.lines().find_map(|l| {
                        l.trim()
                            .strip_prefix("server: ")
                            .map(|s| s.trim().trim_matches('"').to_string())
                    })
                })
                .unwrap_or_else(|| "https://127.0.0.1:6443".into());
            // The missing pair is issued anew; the CA and serving certificate stay.
            std::fs::remove_file(dir.join("admin.crt"))?;
            std::fs::remove_file(dir.join("admin.key"))?;
            let pki = pki::load_or_create(&dir, &[])?;
            revocation::revoke(
                &dir,
                std::slice::from_ref(&serial),
                "rotated admin certificate",
            )?;
            pki::write_admin_kubeconfig(&kubeconfig, &url, &pki)?;
            println!(
                "admin certificate rotated: {} now holds serial {}; serial {serial} is revoked",
                kubeconfig.display(),
                revocation::serial_of_pem(&pki.admin_cert_pem)?
            );
            Ok(())
        }
        CertificateCommand::Revoke {
            certificates,
            data_dir,
        } => {
            let mut serials = Vec::new();
            for c in &certificates {
                let serial = match std::fs::read_to_string(c) {
                    Ok(pem) => revocation::serial_of_pem(&pem)
                        .with_context(|| format!("{c} is not a PEM certificate"))?,
                    Err(_) => {
                        let s = c.replace(':', "").to_ascii_lowercase();
                        if s.is_empty() || !s.chars().all(|ch| ch.is_ascii_hexdigit()) {
                            bail!("{c} is neither a readable certificate file nor a hex serial number");
                        }
                        s
                    }
                };
                serials.push(serial);
            }
            revocation::revoke(&data_dir.join("pki"), &serials, "revoked")?;
            for s in &serials {
                println!("revoked {s}");
            }
            Ok(())
        }
    }
}
