//! The hashes upstream controllers put in names and labels: FNV-1 / FNV-1a (32-bit) and
//! `rand.SafeEncodeString`.

/// 32-bit FNV-1a, the hash upstream uses for pod template hashes.
pub fn fnv32a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// 32-bit FNV-1, the hash upstream's `HashControllerRevision` uses.
pub fn fnv32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        h.wrapping_mul(0x0100_0193) ^ u32::from(*b)
    })
}

/// Upstream `rand.SafeEncodeString`: maps each character onto consonants and digits that
/// cannot spell words, so a hash is a valid (and inoffensive) label value and name suffix.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(fnv32(b"a"), 0x050c5d7e);
    }

    #[test]
    fn safe_encoding_of_decimal_digits() {
        // '0'..'9' are bytes 48..57, which land on "456789bcdf".
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }
}
