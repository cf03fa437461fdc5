//! Revoked client certificates: serial numbers in `DIR/pki/revoked-serials`, one per line
//! (lowercase hex, no colons; `#` starts a comment). The server reads the file again whenever
//! it changes, so `reddwarf certificate revoke` and `rotate` take effect on the next
//! connection, without a new CA and without a restart.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context, Result};

/// The file of revoked serial numbers in the PKI directory.
pub const REVOKED: &str = "revoked-serials";

/// A certificate's serial number as the file spells it.
pub fn serial_of_der(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(
        cert.tbs_certificate
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// The serial number of the first certificate in `pem`.
pub fn serial_of_pem(pem: &str) -> Result<String> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .context("not a PEM certificate")?;
    serial_of_der(&der).context("the certificate cannot be parsed")
}

/// Adds `serials` to the revoked list in `pki_dir` (kept once each).
pub fn revoke(pki_dir: &Path, serials: &[String], why: &str) -> Result<()> {
    let path = pki_dir.join(REVOKED);
    let mut text = super::files::read_optional(&path)?.unwrap_or_default();
    let have = parse(&text);
    for s in serials {
        if !have.contains(s) {
            text.push_str(&format!("{s} # {why}\n"));
        }
    }
    super::files::write_atomic(&path, text.as_bytes(), 0o644)
}

fn parse(text: &str) -> HashSet<String> {
    text.lines()
        .map(|l| {
            l.split('#')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// The server's view of the revoked list, re-read when the file's modification time changes.
pub struct Revocations {
    path: PathBuf,
    seen: Mutex<(Option<SystemTime>, HashSet<String>)>,
}

impl Revocations {
    /// The list kept in `pki_dir`.
    pub fn new(pki_dir: &Path) -> Revocations {
        Revocations {
            path: pki_dir.join(REVOKED),
            seen: Mutex::new((None, HashSet::new())),
        }
    }

    /// Whether the certificate `der` is revoked.
    pub fn is_revoked(&self, der: &[u8]) -> bool {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.0 != modified {
            let text = std::fs::read_to_string(&self.path).unwrap_or_default();
            *seen = (modified, parse(&text));
        }
        if seen.1.is_empty() {
            return false;
        }
        serial_of_der(der).is_some_and(|s| seen.1.contains(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_serials_are_read_again_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let pki = super::super::load_or_create(dir.path(), &[]).unwrap();
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(pki.admin_cert_pem.as_bytes())
            .unwrap();
        let r = Revocations::new(dir.path());
        assert!(!r.is_revoked(&der));
        let serial = serial_of_pem(&pki.admin_cert_pem).unwrap();
        revoke(dir.path(), std::slice::from_ref(&serial), "test").unwrap();
        revoke(dir.path(), &[serial], "twice").unwrap();
        assert!(r.is_revoked(&der));
        let text = std::fs::read_to_string(dir.path().join(REVOKED)).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}
