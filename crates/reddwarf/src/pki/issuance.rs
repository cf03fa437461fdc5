//! Issuing certificates from the cluster CA: the CA itself, the API server's serving
//! certificate, client certificates (the admin's, and any user's on request).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use super::der::{der_to_pem, replace_subject, subject_der};
use super::files::{read_optional, restrict_key_mode, write_atomic};
use super::san::San;
use super::verify::check_ca;
use super::{
    Pki, ADMIN_CERT, ADMIN_KEY, ADMIN_USER, BACKDATE, CA_CERT, CA_COMMON_NAME, CA_KEY,
    CA_VALIDITY_DAYS, DAY, LEAF_VALIDITY_DAYS, SERVER_CERT, SERVER_COMMON_NAME, SERVER_KEY,
};

/// Issue a client certificate signed by the cluster CA: CN = `user`, one O attribute per group,
/// client auth, 1 year. Returns (certificate PEM, private key PEM). `user` must not be empty.
pub fn issue_client_cert(pki: &Pki, user: &str, groups: &[String]) -> Result<(String, String)> {
    let ca_key = KeyPair::from_pem(&pki.ca_key_pem).context("parsing the CA key")?;
    let issuer =
        Issuer::from_ca_cert_pem(&pki.ca_cert_pem, ca_key).context("parsing the CA cert")?;
    client_cert(&issuer, user, groups)
}

pub(super) fn load_or_create_ca(dir: &Path) -> Result<(String, String)> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    match read_optional(&cert_path)? {
        Some(cert) => {
            let key = read_optional(&key_path)?.ok_or_else(|| {
                anyhow!(
                    "{} exists but {} is missing; restore the CA key or remove {} to create a new \
                     cluster CA",
                    cert_path.display(),
                    key_path.display(),
                    cert_path.display()
                )
            })?;
            check_ca(&cert, &key).with_context(|| {
                format!(
                    "the cluster CA in {} is unusable; fix it or remove {} to create a new one",
                    dir.display(),
                    cert_path.display()
                )
            })?;
            restrict_key_mode(&key_path);
            Ok((cert, key))
        }
        None => {
            if key_path.exists() {
                tracing::warn!(
                    "{} has no certificate next to it; creating a new cluster CA",
                    key_path.display()
                );
            }
            let (cert, key) = generate_ca()?;
            // Key first: a crash in between leaves "no ca.crt", which is recovered from.
            write_atomic(&key_path, key.as_bytes(), 0o600)?;
            write_atomic(&cert_path, cert.as_bytes(), 0o644)?;
            tracing::info!("created the cluster CA in {}", dir.display());
            Ok((cert, key))
        }
    }
}

fn generate_ca() -> Result<(String, String)> {
    let key = KeyPair::generate().context("generating the CA key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_VALIDITY_DAYS)?;
    let cert = params.self_signed(&key).context("self-signing the CA")?;
    Ok((cert.pem(), key.serialize_pem()))
}

pub(super) fn issue_server(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    sans: &[San],
) -> Result<(String, String)> {
    let (cert, key) = server_cert(issuer, sans)?;
    write_atomic(&dir.join(SERVER_KEY), key.as_bytes(), 0o600)?;
    write_atomic(&dir.join(SERVER_CERT), cert.as_bytes(), 0o644)?;
    let list: Vec<String> = sans.iter().map(San::to_string).collect();
    tracing::info!(
        "issued the API server serving certificate for {}",
        list.join(", ")
    );
    Ok((cert, key))
}

pub(super) fn issue_admin(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    groups: &[String],
) -> Result<(String, String)> {
    let (cert, key) = client_cert(issuer, ADMIN_USER, groups)?;
    write_atomic(&dir.join(ADMIN_KEY), key.as_bytes(), 0o600)?;
    write_atomic(&dir.join(ADMIN_CERT), cert.as_bytes(), 0o644)?;
    tracing::info!("issued the admin client certificate");
    Ok((cert, key))
}

fn server_cert(issuer: &Issuer<'_, KeyPair>, sans: &[San]) -> Result<(String, String)> {
    // A fresh key per certificate also gives every certificate a fresh serial number (rcgen
    // derives it from the public key).
    let key = KeyPair::generate().context("generating the serving key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, SERVER_COMMON_NAME);
    params.subject_alt_names = sans
        .iter()
        .map(|san| {
            Ok(match san {
                San::Ip(ip) => SanType::IpAddress(*ip),
                San::Dns(name) => SanType::DnsName(name.clone().try_into()?),
            })
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_VALIDITY_DAYS)?;
    let cert = params
        .signed_by(&key, issuer)
        .context("signing the serving certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn client_cert(
    issuer: &Issuer<'_, KeyPair>,
    user: &str,
    groups: &[String],
) -> Result<(String, String)> {
    if user.is_empty() {
        bail!("a client certificate needs a non-empty user name");
    }
    let key = KeyPair::generate().context("generating the client key")?;
    let mut params = CertificateParams::default();
    // rcgen keeps one value per attribute type, but Kubernetes needs one O attribute per group:
    // sign with CN only, then swap in the full subject and re-sign (see `replace_subject`).
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, user);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_VALIDITY_DAYS)?;
    let cert = params
        .signed_by(&key, issuer)
        .with_context(|| format!("signing the client certificate for {user:?}"))?;
    let der = replace_subject(cert.der(), &subject_der(user, groups), issuer.key())?;
    Ok((der_to_pem("CERTIFICATE", &der), key.serialize_pem()))
}

/// Make `params` valid from now (backdated for clock skew) for `days`.
fn set_validity(params: &mut CertificateParams, days: u64) -> Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?;
    // rcgen takes `time::OffsetDateTime`; x509-parser converts from a Unix timestamp, which
    // saves a direct dependency on the `time` crate.
    let at = |d: Duration| -> Result<_> {
        let secs = i64::try_from(d.as_secs())?;
        Ok(x509_parser::time::ASN1Time::from_timestamp(secs)?.to_datetime())
    };
    params.not_before = at(now.saturating_sub(BACKDATE))?;
    params.not_after = at(now + Duration::from_secs(days * DAY))?;
    Ok(())
}
