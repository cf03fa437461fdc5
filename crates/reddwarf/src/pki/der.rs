//! Minimal DER handling for client certificate subjects, and PEM/DER conversion.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use rcgen::SigningKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Encode one DER TLV.
pub(super) fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
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
pub(super) fn der_tlv_len(buf: &[u8]) -> Result<(usize, usize)> {
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
pub(super) fn subject_der(user: &str, groups: &[String]) -> Vec<u8> {
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
pub(super) fn replace_subject(
    cert_der: &[u8],
    subject: &[u8],
    signer: &impl SigningKey,
) -> Result<Vec<u8>> {
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

pub(super) fn der_to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

pub(super) fn pem_to_der(pem: &str) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow!("no PEM certificate found: {e}"))
}
