//! Subject alternative names of the serving certificate: parsing `--tls-san`, the names every
//! serving certificate carries, and reading them back from a certificate.

use std::fmt;
use std::net::IpAddr;

use anyhow::{anyhow, bail, Result};
use rustls_pki_types::DnsName;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// DNS names every serving certificate carries (besides localhost and the host name).
const SERVICE_NAMES: [&str; 3] = ["kubernetes", "kubernetes.default", "kubernetes.default.svc"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum San {
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

pub(super) fn parse_san(entry: &str) -> Result<San> {
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
pub(super) fn server_sans(extra: &[String]) -> Result<Vec<San>> {
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
pub(super) fn host_name() -> Option<String> {
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

pub(super) fn cert_sans(cert: &X509Certificate<'_>) -> Result<Vec<San>> {
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
