//! The cluster PKI kept in the data directory.
//!
//! On first start [`load_or_create`] creates a cluster CA, a serving certificate for the API server
//! and a client certificate for the cluster administrator. Later starts reuse the files; a serving
//! certificate that no longer fits (missing SAN, expiring, signed by another CA, key mismatch) is
//! re-issued from the same CA.
//!
//! All keys are ECDSA P-256 (rcgen's default with the ring backend).

mod der;
#[cfg(test)]
mod der_proptests;
mod files;
mod issuance;
mod kubeconfig;
pub mod revocation;
mod san;
#[cfg(test)]
pub(crate) mod tests;
mod verify;

// Used by tests only for now (see issue_client_cert).
#[cfg_attr(not(test), allow(unused_imports))]
pub use issuance::issue_client_cert;
pub use kubeconfig::write_admin_kubeconfig;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use rcgen::{Issuer, KeyPair};

use der::pem_to_der;
use files::{create_private_dir, read_pair};
use issuance::{issue_admin, issue_server, load_or_create_ca};
use san::server_sans;
use verify::{check_client_cert, check_server_cert};

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.crt";
const SERVER_KEY: &str = "server.key";
const ADMIN_CERT: &str = "admin.crt";
const ADMIN_KEY: &str = "admin.key";

const CA_COMMON_NAME: &str = "reddwarf-ca";
const SERVER_COMMON_NAME: &str = "kube-apiserver";
const ADMIN_USER: &str = "admin";
const ADMIN_GROUP: &str = "system:masters";

const DAY: u64 = 24 * 60 * 60;
const CA_VALIDITY_DAYS: u64 = 3650;
const LEAF_VALIDITY_DAYS: u64 = 365;
/// Leaf certificates closer than this to their end of validity are re-issued on start.
const RENEW_BEFORE_DAYS: u64 = 30;
/// notBefore is backdated by this much to tolerate clock skew between machines.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// The cluster PKI: CA, API server serving certificate and admin client certificate, all PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Pki {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
}

impl fmt::Debug for Pki {
    // Never print private keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("ca_key_pem", &"<redacted>")
            .field("server_cert_pem", &self.server_cert_pem)
            .field("server_key_pem", &"<redacted>")
            .field("admin_cert_pem", &self.admin_cert_pem)
            .field("admin_key_pem", &"<redacted>")
            .finish()
    }
}

/// Load the PKI from `dir` (e.g. `<data-dir>/pki/`), creating whatever is missing.
///
/// * `ca.crt`/`ca.key`: cluster CA, CN "reddwarf-ca", 10 years. If `ca.crt` is missing a new CA is
///   created (and every leaf re-issued); if `ca.crt` exists but `ca.key` is missing or does not
///   match, this fails rather than replacing the CA.
/// * `server.crt`/`server.key`: serving certificate (server auth, 1 year) for 127.0.0.1, ::1,
///   localhost, the host name, kubernetes, kubernetes.default, kubernetes.default.svc and every entry
///   of `extra_sans` (IP SAN if it parses as an IP address, DNS SAN otherwise). Re-issued when a
///   requested SAN is missing, when it does not chain to the CA, does not match its key or expires
///   within 30 days.
/// * `admin.crt`/`admin.key`: client certificate CN "admin", O "system:masters" (1 year), re-issued
///   under the same conditions.
///
/// Key files are written with mode 0600, all files atomically (temp file + rename).
pub fn load_or_create(dir: &Path, extra_sans: &[String]) -> Result<Pki> {
    create_private_dir(dir)?;
    let sans = server_sans(extra_sans)?;

    let (ca_cert_pem, ca_key_pem) = load_or_create_ca(dir)?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).context("parsing the CA key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key).context("parsing the CA cert")?;
    let ca_der = pem_to_der(&ca_cert_pem)?;

    // Serving certificate.
    let (server_cert_pem, server_key_pem) = match read_pair(dir, SERVER_CERT, SERVER_KEY)? {
        Some((cert, key)) => match check_server_cert(&ca_der, &cert, &key, &sans) {
            Ok(()) => (cert, key),
            Err(reason) => {
                tracing::info!("re-issuing the API server serving certificate: {reason:#}");
                issue_server(dir, &issuer, &sans)?
            }
        },
        None => issue_server(dir, &issuer, &sans)?,
    };

    // Admin client certificate.
    let groups = [ADMIN_GROUP.to_string()];
    let (admin_cert_pem, admin_key_pem) = match read_pair(dir, ADMIN_CERT, ADMIN_KEY)? {
        Some((cert, key)) => match check_client_cert(&ca_der, &cert, &key, ADMIN_USER, &groups) {
            Ok(()) => (cert, key),
            Err(reason) => {
                tracing::info!("re-issuing the admin client certificate: {reason:#}");
                issue_admin(dir, &issuer, &groups)?
            }
        },
        None => issue_admin(dir, &issuer, &groups)?,
    };

    Ok(Pki {
        ca_cert_pem,
        ca_key_pem,
        server_cert_pem,
        server_key_pem,
        admin_cert_pem,
        admin_key_pem,
    })
}

/// The file holding the service-account token key.
pub const SERVICE_ACCOUNT_KEY: &str = "service-account.key";

/// The cluster's service-account signing key (PKCS#8 DER of a P-256 key), created once in
/// `dir` (PEM, mode 0600) and read back on every start: tokens outlive restarts.
pub fn service_account_key(dir: &Path) -> Result<Vec<u8>> {
    use base64::Engine;
    let path = dir.join(SERVICE_ACCOUNT_KEY);
    if let Some(pem) = files::read_optional(&path)? {
        files::restrict_key_mode(&path);
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        return base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .with_context(|| format!("{} is not a PEM private key", path.display()));
    }
    let der = reddwarf_apiserver::sa_token::Signer::generate_pkcs8();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    files::write_atomic(&path, pem.as_bytes(), 0o600)?;
    Ok(der)
}

/// The group every control-plane member's certificate carries; only it may call the peer
/// RPCs under `/reddwarf/raft/`.
pub const MEMBERS_GROUP: &str = "reddwarf:members";

/// This member's peer certificate (`member.crt`/`member.key`: CN
/// `system:reddwarf:member:<id>`, O `reddwarf:members`), issued from the cluster CA when missing,
/// for another id, or expiring.
pub fn member_cert(dir: &Path, pki: &Pki, id: u64) -> Result<(String, String)> {
    let user = format!("system:reddwarf:member:{id}");
    let groups = [MEMBERS_GROUP.to_string()];
    let ca_der = der::pem_to_der(&pki.ca_cert_pem)?;
    if let Some((cert, key)) = files::read_pair(dir, "member.crt", "member.key")? {
        if verify::check_client_cert(&ca_der, &cert, &key, &user, &groups).is_ok() {
            return Ok((cert, key));
        }
    }
    let (cert, key) = issuance::issue_client_cert(pki, &user, &groups)?;
    files::write_atomic(&dir.join("member.key"), key.as_bytes(), 0o600)?;
    files::write_atomic(&dir.join("member.crt"), cert.as_bytes(), 0o644)?;
    Ok((cert, key))
}

/// Writes the cluster secrets a joining member receives (CA certificate and key,
/// service-account key) into `dir` before [`load_or_create`] reads them.
pub fn install_shared(dir: &Path, ca_cert: &str, ca_key: &str, sa_key: &str) -> Result<()> {
    create_private_dir(dir)?;
    files::write_atomic(&dir.join(CA_KEY), ca_key.as_bytes(), 0o600)?;
    files::write_atomic(&dir.join(CA_CERT), ca_cert.as_bytes(), 0o644)?;
    files::write_atomic(&dir.join(SERVICE_ACCOUNT_KEY), sa_key.as_bytes(), 0o600)?;
    Ok(())
}
