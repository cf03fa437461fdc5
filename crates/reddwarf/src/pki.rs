//! The cluster PKI kept in the data directory.
//!
//! On first start [`load_or_create`] creates a cluster CA, a serving certificate for the API server
//! and a client certificate for the cluster administrator. Later starts reuse the files; a serving
//! certificate that no longer fits (missing SAN, expiring, signed by another CA, key mismatch) is
//! re-issued from the same CA.
//!
//! All keys are ECDSA P-256 (rcgen's default with the ring backend).

use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SigningKey,
};
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, DnsName, ServerName, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

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

/// DNS names every serving certificate carries (besides localhost and the host name).
const SERVICE_NAMES: [&str; 3] = ["kubernetes", "kubernetes.default", "kubernetes.default.svc"];

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

/// Issue a client certificate signed by the cluster CA: CN = `user`, one O attribute per group,
/// client auth, 1 year. Returns (certificate PEM, private key PEM). `user` must not be empty.
#[cfg_attr(not(test), allow(dead_code))] // for tests now; a kubeconfig subcommand later
pub fn issue_client_cert(pki: &Pki, user: &str, groups: &[String]) -> Result<(String, String)> {
    let ca_key = KeyPair::from_pem(&pki.ca_key_pem).context("parsing the CA key")?;
    let issuer =
        Issuer::from_ca_cert_pem(&pki.ca_cert_pem, ca_key).context("parsing the CA cert")?;
    client_cert(&issuer, user, groups)
}

/// Write a kubeconfig for the admin user: cluster "reddwarf" at `server_url` trusting the cluster
/// CA, user "admin" with the admin client certificate, context "reddwarf" (namespace default) as
/// current context. Written atomically with mode 0600; the parent directory is created if needed.
pub fn write_admin_kubeconfig(path: &Path, server_url: &str, pki: &Pki) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating directory {}", parent.display()))?;
    }
    let yaml = admin_kubeconfig_yaml(server_url, pki);
    write_atomic(path, yaml.as_bytes(), 0o600)
}

fn admin_kubeconfig_yaml(server_url: &str, pki: &Pki) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    // A JSON string is a valid YAML double-quoted scalar, whatever the URL contains.
    let server = serde_json::Value::from(server_url).to_string();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: reddwarf
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: reddwarf
  context:
    cluster: reddwarf
    user: admin
    namespace: default
current-context: reddwarf
preferences: {{}}
",
        ca = b64(&pki.ca_cert_pem),
        cert = b64(&pki.admin_cert_pem),
        key = b64(&pki.admin_key_pem),
    )
}

// ---------------------------------------------------------------------------------------------
// Subject alternative names

#[derive(Clone, Debug, PartialEq, Eq)]
enum San {
    Ip(IpAddr),
    /// Lower-cased DNS name.
    Dns(String),
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Ip(ip) => write!(f, "IP {ip}"),
            San::Dns(name) => write!(f, "DNS {name}"),
        }
    }
}

fn parse_san(entry: &str) -> Result<San> {
    let entry = entry.trim();
    // Accept "[::1]" as well as "::1".
    let unbracketed = entry
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(entry);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(San::Ip(ip));
    }
    let name = entry.trim_end_matches('.').to_ascii_lowercase();
    let plain = name.strip_prefix("*.").unwrap_or(&name);
    if DnsName::try_from(plain).is_err() {
        bail!("invalid subject alternative name {entry:?}: neither an IP address nor a DNS name");
    }
    Ok(San::Dns(name))
}

/// Every SAN the serving certificate must carry, without duplicates, in a stable order.
fn server_sans(extra: &[String]) -> Result<Vec<San>> {
    let mut sans = vec![
        San::Ip(IpAddr::from([127, 0, 0, 1])),
        San::Ip(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        San::Dns("localhost".into()),
    ];
    if let Some(host) = host_name() {
        sans.push(San::Dns(host));
    }
    sans.extend(SERVICE_NAMES.iter().map(|n| San::Dns((*n).into())));
    for entry in extra.iter().filter(|e| !e.trim().is_empty()) {
        sans.push(parse_san(entry)?);
    }
    let mut unique: Vec<San> = Vec::with_capacity(sans.len());
    for san in sans {
        if !unique.contains(&san) {
            unique.push(san);
        }
    }
    Ok(unique)
}

/// The machine's host name, if it can be found and is a valid DNS name.
fn host_name() -> Option<String> {
    let from_files = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty());
    let name = from_files.or_else(|| {
        let out = std::process::Command::new("hostname")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !s.is_empty()).then_some(s)
    })?;
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    DnsName::try_from(name.as_str()).is_ok().then_some(name)
}

fn cert_sans(cert: &X509Certificate<'_>) -> Result<Vec<San>> {
    let mut out = Vec::new();
    if let Some(ext) = cert
        .subject_alternative_name()
        .map_err(|e| anyhow!("bad subjectAltName extension: {e}"))?
    {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(dns) => out.push(San::Dns(dns.to_ascii_lowercase())),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => out.push(San::Ip(IpAddr::from(<[u8; 4]>::try_from(*bytes)?))),
                    16 => out.push(San::Ip(IpAddr::from(<[u8; 16]>::try_from(*bytes)?))),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Issuing

fn load_or_create_ca(dir: &Path) -> Result<(String, String)> {
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

fn issue_server(
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

fn issue_admin(
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

// ---------------------------------------------------------------------------------------------
// Checking existing files

fn check_ca(cert_pem: &str, key_pem: &str) -> Result<()> {
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

fn check_server_cert(
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

fn check_client_cert(
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

// ---------------------------------------------------------------------------------------------
// Minimal DER handling for client certificate subjects

/// Encode one DER TLV.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Length of the TLV starting at `buf[0]`: (header length, total length).
fn der_tlv_len(buf: &[u8]) -> Result<(usize, usize)> {
    let first = *buf.get(1).ok_or_else(|| anyhow!("truncated DER"))?;
    let (header, content) = if first < 0x80 {
        (2, first as usize)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            bail!("unsupported DER length encoding");
        }
        let bytes = buf.get(2..2 + n).ok_or_else(|| anyhow!("truncated DER"))?;
        (
            2 + n,
            bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize),
        )
    };
    if header + content > buf.len() {
        bail!("truncated DER");
    }
    Ok((header, header + content))
}

/// Subject `O=group1, O=group2, ..., CN=user`: one RDN per attribute, UTF8String values.
fn subject_der(user: &str, groups: &[String]) -> Vec<u8> {
    const OID_CN: [u8; 3] = [0x55, 0x04, 0x03];
    const OID_O: [u8; 3] = [0x55, 0x04, 0x0a];
    let rdn = |oid: &[u8], value: &str| {
        let attr = [der_tlv(0x06, oid), der_tlv(0x0c, value.as_bytes())].concat();
        der_tlv(0x31, &der_tlv(0x30, &attr))
    };
    let mut rdns: Vec<u8> = groups.iter().flat_map(|g| rdn(&OID_O, g)).collect();
    rdns.extend(rdn(&OID_CN, user));
    der_tlv(0x30, &rdns)
}

/// Replace the subject of a certificate and re-sign its TBS part with `signer`.
fn replace_subject(cert_der: &[u8], subject: &[u8], signer: &impl SigningKey) -> Result<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| anyhow!("cannot parse the certificate: {e}"))?;
    let tbs: &[u8] = cert.tbs_certificate.as_ref();
    let old_subject = cert.tbs_certificate.subject.as_raw();
    let offset_in = |outer: &[u8], inner: &[u8]| -> Result<usize> {
        let off = (inner.as_ptr() as usize).wrapping_sub(outer.as_ptr() as usize);
        if off
            .checked_add(inner.len())
            .is_some_and(|end| end <= outer.len())
        {
            Ok(off)
        } else {
            bail!("unexpected certificate layout")
        }
    };
    let tbs_off = offset_in(cert_der, tbs)?;
    let subj_off = offset_in(tbs, old_subject)?;
    let (tbs_header, _) = der_tlv_len(tbs)?;

    let mut tbs_content = tbs[tbs_header..subj_off].to_vec();
    tbs_content.extend_from_slice(subject);
    tbs_content.extend_from_slice(&tbs[subj_off + old_subject.len()..]);
    let new_tbs = der_tlv(0x30, &tbs_content);

    // The signature algorithm identifier follows the TBS certificate unchanged.
    let rest = &cert_der[tbs_off + tbs.len()..];
    let (_, alg_len) = der_tlv_len(rest)?;
    let signature = signer
        .sign(&new_tbs)
        .context("re-signing the certificate")?;
    let bit_string = der_tlv(0x03, &[&[0u8][..], &signature].concat());
    Ok(der_tlv(
        0x30,
        &[new_tbs.as_slice(), &rest[..alg_len], &bit_string].concat(),
    ))
}

fn der_to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_to_der(pem: &str) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow!("no PEM certificate found: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Files

fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting permissions of {}", dir.display()))?;
    }
    Ok(())
}

/// Make sure an existing key file is private (best effort).
fn restrict_key_mode(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Both files of a certificate/key pair, or None if either is missing.
fn read_pair(dir: &Path, cert: &str, key: &str) -> Result<Option<(String, String)>> {
    let key_path = dir.join(key);
    let pair = read_optional(&dir.join(cert))?.zip(read_optional(&key_path)?);
    if pair.is_some() {
        restrict_key_mode(&key_path);
    }
    Ok(pair)
}

/// Write `bytes` to `path` atomically: a temp file in the same directory (created with `mode`),
/// fsync, rename over `path`, fsync the directory.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
    let tmp: PathBuf = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| -> std::io::Result<()> {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A unique temporary directory removed on drop (no tempfile dependency needed).
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "reddwarf-{tag}-{}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn parse(pem: &str) -> X509Certificate<'static> {
        let der = pem_to_der(pem).unwrap();
        let der: &'static [u8] = Box::leak(der.as_ref().to_vec().into_boxed_slice());
        x509_parser::parse_x509_certificate(der).unwrap().1
    }

    fn subject(pem: &str) -> (Option<String>, Vec<String>) {
        let cert = parse(pem);
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .map(|a| a.as_str().unwrap().to_string());
        let orgs = cert
            .subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        (cn, orgs)
    }

    #[test]
    fn creates_then_reuses() {
        let dir = TempDir::new("pki");
        let pki_dir = dir.path().join("pki");
        let first = load_or_create(&pki_dir, &[]).unwrap();
        let second = load_or_create(&pki_dir, &[]).unwrap();
        assert_eq!(first, second);
        assert_eq!(
            std::fs::read_to_string(pki_dir.join(CA_CERT)).unwrap(),
            first.ca_cert_pem
        );

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in [CA_KEY, SERVER_KEY, ADMIN_KEY] {
                let mode = std::fs::metadata(pki_dir.join(key))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{key}");
            }
        }

        let ca = parse(&first.ca_cert_pem);
        assert_eq!(
            ca.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            CA_COMMON_NAME
        );
        assert!(ca.basic_constraints().unwrap().unwrap().value.ca);
        assert!(ca.key_usage().unwrap().unwrap().value.key_cert_sign());
        let years = (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp())
            / (365 * DAY as i64);
        assert_eq!(years, 10);

        let server = parse(&first.server_cert_pem);
        assert!(
            server
                .extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .server_auth
        );
        let sans = cert_sans(&server).unwrap();
        for want in [
            San::Ip("127.0.0.1".parse().unwrap()),
            San::Ip("::1".parse().unwrap()),
            San::Dns("localhost".into()),
            San::Dns("kubernetes".into()),
            San::Dns("kubernetes.default".into()),
            San::Dns("kubernetes.default.svc".into()),
        ] {
            assert!(sans.contains(&want), "{want} missing from {sans:?}");
        }
        if let Some(host) = host_name() {
            assert!(sans.contains(&San::Dns(host)));
        }

        let admin = parse(&first.admin_cert_pem);
        assert!(
            admin
                .extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .client_auth
        );
        assert_eq!(
            subject(&first.admin_cert_pem),
            (Some("admin".into()), vec!["system:masters".into()])
        );
    }

    #[test]
    fn new_extra_san_reissues_only_the_serving_cert() {
        let dir = TempDir::new("pki-san");
        let first = load_or_create(dir.path(), &[]).unwrap();
        let extra = vec!["10.1.2.3".to_string(), "API.Example.com".to_string()];
        let second = load_or_create(dir.path(), &extra).unwrap();
        assert_eq!(first.ca_cert_pem, second.ca_cert_pem);
        assert_eq!(first.ca_key_pem, second.ca_key_pem);
        assert_eq!(first.admin_cert_pem, second.admin_cert_pem);
        assert_eq!(first.admin_key_pem, second.admin_key_pem);
        assert_ne!(first.server_cert_pem, second.server_cert_pem);
        let sans = cert_sans(&parse(&second.server_cert_pem)).unwrap();
        assert!(sans.contains(&San::Ip("10.1.2.3".parse().unwrap())));
        assert!(sans.contains(&San::Dns("api.example.com".into())));
        assert_eq!(
            std::fs::read_to_string(dir.path().join(SERVER_CERT)).unwrap(),
            second.server_cert_pem
        );

        // Same SANs again (a subset too): nothing changes.
        let third = load_or_create(dir.path(), &extra).unwrap();
        assert_eq!(second, third);
        let fourth = load_or_create(dir.path(), &extra[..1]).unwrap();
        assert_eq!(second, fourth);
    }

    #[test]
    fn missing_leaf_files_are_reissued_and_ca_key_loss_is_an_error() {
        let dir = TempDir::new("pki-missing");
        let first = load_or_create(dir.path(), &[]).unwrap();
        std::fs::remove_file(dir.path().join(ADMIN_KEY)).unwrap();
        let second = load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(first.ca_cert_pem, second.ca_cert_pem);
        assert_eq!(first.server_cert_pem, second.server_cert_pem);
        assert_ne!(first.admin_cert_pem, second.admin_cert_pem);

        std::fs::remove_file(dir.path().join(CA_KEY)).unwrap();
        let err = load_or_create(dir.path(), &[]).unwrap_err();
        assert!(format!("{err:#}").contains("ca.key"), "{err:#}");

        // Without ca.crt a whole new PKI is created.
        std::fs::remove_file(dir.path().join(CA_CERT)).unwrap();
        let third = load_or_create(dir.path(), &[]).unwrap();
        assert_ne!(third.ca_cert_pem, first.ca_cert_pem);
        assert_ne!(third.server_cert_pem, second.server_cert_pem);
        assert_ne!(third.admin_cert_pem, second.admin_cert_pem);
    }

    #[test]
    fn rejects_invalid_extra_san() {
        let dir = TempDir::new("pki-bad-san");
        assert!(load_or_create(dir.path(), &["not a name!".to_string()]).is_err());
        assert_eq!(
            parse_san("[fd00::1]").unwrap(),
            San::Ip("fd00::1".parse().unwrap())
        );
        assert_eq!(
            parse_san("*.Example.org.").unwrap(),
            San::Dns("*.example.org".into())
        );
    }

    #[test]
    fn client_cert_with_several_groups() {
        let dir = TempDir::new("pki-client");
        let pki = load_or_create(dir.path(), &[]).unwrap();
        let groups = vec!["dev".to_string(), "system:authenticated".to_string()];
        let (cert, key) = issue_client_cert(&pki, "jane", &groups).unwrap();
        assert_eq!(subject(&cert), (Some("jane".into()), groups.clone()));
        let ca_der = pem_to_der(&pki.ca_cert_pem).unwrap();
        check_client_cert(&ca_der, &cert, &key, "jane", &groups).unwrap();

        let (cert, key) = issue_client_cert(&pki, "nobody", &[]).unwrap();
        assert_eq!(subject(&cert), (Some("nobody".into()), vec![]));
        check_client_cert(&ca_der, &cert, &key, "nobody", &[]).unwrap();

        // Long subjects need multi-byte DER lengths.
        let many: Vec<String> = (0..40).map(|i| format!("group-number-{i}")).collect();
        let (cert, key) = issue_client_cert(&pki, "many", &many).unwrap();
        assert_eq!(subject(&cert).1, many);
        check_client_cert(&ca_der, &cert, &key, "many", &many).unwrap();

        // A certificate of another CA is not accepted as the admin cert.
        let other = TempDir::new("pki-other");
        let other = load_or_create(other.path(), &[]).unwrap();
        assert!(check_client_cert(
            &ca_der,
            &other.admin_cert_pem,
            &other.admin_key_pem,
            "admin",
            &["system:masters".to_string()]
        )
        .is_err());
    }

    #[test]
    fn kubeconfig() {
        let dir = TempDir::new("pki-kubeconfig");
        let pki = load_or_create(&dir.path().join("pki"), &[]).unwrap();
        let path = dir.path().join("sub").join("admin.kubeconfig");
        let url = "https://127.0.0.1:6443";
        write_admin_kubeconfig(&path, url, &pki).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("server: \"{url}\"")), "{text}");
        assert!(text.contains("current-context: reddwarf"));

        let field = |name: &str| -> String {
            let line = text
                .lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("{name} missing"));
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(line)
                .unwrap();
            String::from_utf8(bytes).unwrap()
        };
        assert_eq!(field("certificate-authority-data"), pki.ca_cert_pem);
        assert_eq!(field("client-certificate-data"), pki.admin_cert_pem);
        assert_eq!(field("client-key-data"), pki.admin_key_pem);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Overwriting works and leaves no temp file behind.
        write_admin_kubeconfig(&path, "https://[::1]:6443", &pki).unwrap();
        let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
    }
}
