//! Checking certificates found on disk: chained to the CA, matching their key, carrying the
//! wanted names or identity, not about to expire.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use rcgen::{KeyPair, PublicKeyData};
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::der::pem_to_der;
use super::san::{cert_sans, San};
use super::{DAY, RENEW_BEFORE_DAYS};

pub(super) fn check_ca(cert_pem: &str, key_pem: &str) -> Result<()> {
    let der = pem_to_der(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| anyhow!("cannot parse the CA certificate: {e}"))?;
    let key = KeyPair::from_pem(key_pem).context("cannot parse the CA key")?;
    if key.subject_public_key_info() != cert.public_key().raw {
        bail!("the CA key does not match the CA certificate");
    }
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {}
        _ => bail!("the CA certificate is not a CA (basicConstraints)"),
    }
    if !cert.validity().is_valid() {
        bail!("the CA certificate is expired or not yet valid");
    }
    Ok(())
}

/// Common checks for a leaf: parses, matches its key, is not about to expire. Returns the DER.
fn check_leaf(cert_pem: &str, key_pem: &str) -> Result<CertificateDer<'static>> {
    let der = pem_to_der(cert_pem)?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow!("cannot parse: {e}"))?;
    let key = KeyPair::from_pem(key_pem).context("cannot parse the key")?;
    if key.subject_public_key_info() != cert.public_key().raw {
        bail!("the key does not match the certificate");
    }
    let renew_at = cert.validity().not_after.timestamp() - (RENEW_BEFORE_DAYS * DAY) as i64;
    if x509_parser::time::ASN1Time::now().timestamp() >= renew_at {
        bail!("the certificate expires on {}", cert.validity().not_after);
    }
    Ok(der)
}

pub(super) fn check_server_cert(
    ca_der: &CertificateDer<'_>,
    cert_pem: &str,
    key_pem: &str,
    sans: &[San],
) -> Result<()> {
    let der = check_leaf(cert_pem, key_pem)?;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        ca_roots(ca_der)?,
        ring_provider(),
    )
    .build()?;
    verifier
        .verify_server_cert(
            &der,
            &[],
            &ServerName::try_from("localhost")?,
            &[],
            UnixTime::now(),
        )
        .map_err(|e| anyhow!("not a valid serving certificate of the cluster CA: {e}"))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow!("cannot parse: {e}"))?;
    let have = cert_sans(&cert)?;
    let missing: Vec<String> = sans
        .iter()
        .filter(|san| !have.contains(san))
        .map(San::to_string)
        .collect();
    if !missing.is_empty() {
        bail!("missing subject alternative names: {}", missing.join(", "));
    }
    Ok(())
}

pub(super) fn check_client_cert(
    ca_der: &CertificateDer<'_>,
    cert_pem: &str,
    key_pem: &str,
    user: &str,
    groups: &[String],
) -> Result<()> {
    let der = check_leaf(cert_pem, key_pem)?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        ca_roots(ca_der)?,
        ring_provider(),
    )
    .build()?;
    verifier
        .verify_client_cert(&der, &[], UnixTime::now())
        .map_err(|e| anyhow!("not a valid client certificate of the cluster CA: {e}"))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow!("cannot parse: {e}"))?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok());
    let orgs: Vec<&str> = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .collect();
    if cn != Some(user) || groups.iter().any(|g| !orgs.contains(&g.as_str())) {
        bail!("the subject is not CN={user}, O={}", groups.join(", O="));
    }
    Ok(())
}

fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn ca_roots(ca_der: &CertificateDer<'_>) -> Result<Arc<rustls::RootCertStore>> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca_der.clone().into_owned())
        .context("the CA certificate is not a usable trust anchor")?;
    Ok(Arc::new(roots))
}
