//! sha256 digests: parsing, hex, and a reader/writer that hashes what passes through.

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// `sha256:<hex>` of `data`.
pub(crate) fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

pub(crate) fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The hex part of a `sha256:<hex>` digest; other algorithms are refused because every blob
/// is stored and verified by sha256.
pub(crate) fn sha256_hex(digest: &str) -> Result<&str> {
    match digest.split_once(':') {
        Some(("sha256", h)) if is_hex64(h) => Ok(h),
        Some((alg, _)) if alg != "sha256" => Err(Error::Invalid(format!(
            "unsupported digest algorithm in {digest:?} (only sha256)"
        ))),
        _ => Err(Error::Invalid(format!("invalid digest {digest:?}"))),
    }
}

#[derive(Default, Clone)]
pub(crate) struct Hasher {
    inner: Sha256,
    pub(crate) len: u64,
}

impl Hasher {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.len += data.len() as u64;
    }
    pub(crate) fn digest(self) -> String {
        format!("sha256:{}", hex(&self.inner.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_digest() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(sha256_hex("sha512:00").is_err());
        assert!(sha256_hex("sha256:XYZ").is_err());
    }
}
