//! String formats upstream's default registry validates (kube-openapi strfmt as of 1.33).

use std::net::Ipv6Addr;
use std::sync::OnceLock;

use regex::Regex;

fn re(cell: &'static OnceLock<Regex>, p: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(p).expect("static pattern"))
}

/// Whether `format` (already normalized by the caller's stripping) has a validator.
pub(crate) fn known(format: &str) -> bool {
    // "quantity" is in apiextensions' supported list but not in the registry.
    !format.is_empty() && format.replace('-', "") != "quantity"
}

/// Validates `s` against `format`; unknown formats pass.
pub(crate) fn check(format: &str, s: &str) -> bool {
    match format.replace('-', "").as_str() {
        "bsonobjectid" => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "uri" => is_request_uri(s),
        "email" => is_email(s),
        "hostname" => is_hostname(s),
        "ipv4" => parse_ip_sloppy(s) && s.contains('.'),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok() || (parse_ip_sloppy(s) && s.contains(':')),
        "cidr" => is_cidr(s),
        "mac" => is_mac(s),
        "uuid" => {
            static R: OnceLock<Regex> = OnceLock::new();
            re(
                &R,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
            )
            .is_match(s)
        }
        "uuid3" => {
            static R: OnceLock<Regex> = OnceLock::new();
            re(
                &R,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
            )
            .is_match(s)
        }
        "uuid4" => {
            static R: OnceLock<Regex> = OnceLock::new();
            re(
                &R,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
            )
            .is_match(s)
        }
        "uuid5" => {
            static R: OnceLock<Regex> = OnceLock::new();
            re(
                &R,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
            )
            .is_match(s)
        }
        "isbn" => is_isbn10(s) || is_isbn13(s),
        "isbn10" => is_isbn10(s),
        "isbn13" => is_isbn13(s),
        "creditcard" => is_credit_card(s),
        "ssn" => {
            static R: OnceLock<Regex> = OnceLock::new();
            s.len() == 11 && re(&R, r"^[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}$").is_match(s)
        }
        "hexcolor" => {
            static R: OnceLock<Regex> = OnceLock::new();
            re(&R, r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$").is_match(s)
        }
        "rgbcolor" => {
            static R: OnceLock<Regex> = OnceLock::new();
            let n = r"(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])";
            re(&R, &format!(r"^rgb\(\s*{n}\s*,\s*{n}\s*,\s*{n}\s*\)$")).is_match(s)
        }
        "byte" => {
            static R: OnceLock<Regex> = OnceLock::new();
            re(
                &R,
                r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$",
            )
            .is_match(s)
        }
        "date" => is_date(s),
        "datetime" => is_date_time(s),
        "duration" => is_duration(s),
        _ => true,
    }
}

/// Go's `net.ParseIP` after k8s' sloppy IPv4 (leading zeros allowed).
fn parse_ip_sloppy(s: &str) -> bool {
    if is_ipv4_sloppy(s) {
        return true;
    }
    if let Some(i) = s.rfind(':') {
        // IPv6 with an embedded (possibly sloppy) IPv4 tail.
        let tail = &s[i + 1..];
        if tail.contains('.') && is_ipv4_sloppy(tail) {
            let head = format!("{}0.0.0.0", &s[..i + 1]);
            return head.parse::<Ipv6Addr>().is_ok();
        }
    }
    s.parse::<Ipv6Addr>().is_ok()
}

fn is_ipv4_sloppy(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

fn is_cidr(s: &str) -> bool {
    let Some((addr, bits)) = s.split_once('/') else {
        return false;
    };
    if bits.is_empty() || bits.len() > 3 || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(bits) = bits.parse::<u32>() else {
        return false;
    };
    if is_ipv4_sloppy(addr) {
        bits <= 32
    } else {
        parse_ip_sloppy(addr) && addr.contains(':') && bits <= 128
    }
}

fn is_mac(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    for sep in [':', '-'] {
        let parts: Vec<&str> = s.split(sep).collect();
        if matches!(parts.len(), 6 | 8 | 20) && parts.iter().all(|p| hex(p, 2)) {
            return true;
        }
    }
    let parts: Vec<&str> = s.split('.').collect();
    matches!(parts.len(), 3 | 4 | 10) && parts.iter().all(|p| hex(p, 4))
}

fn is_request_uri(s: &str) -> bool {
    // url.ParseRequestURI: an absolute URI or an absolute path, no control characters.
    if s.is_empty() || s.chars().any(|c| (c as u32) < 0x20 || c as u32 == 0x7f) {
        return false;
    }
    if s.starts_with('/') {
        return true;
    }
    static R: OnceLock<Regex> = OnceLock::new();
    let Some(m) = re(&R, r"^[A-Za-z][A-Za-z0-9+.\-]*:").find(s) else {
        return false;
    };
    let rest = &s[m.end()..];
    if let Some(auth) = rest.strip_prefix("//") {
        let host = auth.split(['/', '?', '#']).next().unwrap_or("");
        return !host.contains(' ');
    }
    !rest.is_empty()
}

fn is_email(s: &str) -> bool {
    // net/mail.ParseAddress accepts "addr" and "Name <addr>".
    let addr = match (s.rfind('<'), s.ends_with('>')) {
        (Some(i), true) => &s[i + 1..s.len() - 1],
        _ => s.trim(),
    };
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let bad = |p: &str| {
        p.is_empty()
            || p.chars()
                .any(|c| c.is_whitespace() || "<>()[],;:\\\"".contains(c))
    };
    !bad(local) && !bad(domain) && !domain.starts_with('.') && !domain.ends_with('.')
}

fn is_hostname(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    let r = re(
        &R,
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9\-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    );
    r.is_match(s) && s.len() <= 255 && s.split('.').all(|p| p.len() <= 63)
}

fn isbn_digits(s: &str) -> String {
    s.chars().filter(|c| *c != ' ' && *c != '-').collect()
}

fn is_isbn10(s: &str) -> bool {
    let d = isbn_digits(s);
    let b = d.as_bytes();
    if b.len() != 10
        || !b[..9].iter().all(u8::is_ascii_digit)
        || !(b[9].is_ascii_digit() || b[9] == b'X')
    {
        return false;
    }
    let mut sum = 0u32;
    for (i, c) in b[..9].iter().enumerate() {
        sum += (i as u32 + 1) * u32::from(c - b'0');
    }
    sum += if b[9] == b'X' {
        100
    } else {
        10 * u32::from(b[9] - b'0')
    };
    sum % 11 == 0
}

fn is_isbn13(s: &str) -> bool {
    let d = isbn_digits(s);
    let b = d.as_bytes();
    if b.len() != 13 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut sum = 0u32;
    for (i, c) in b[..12].iter().enumerate() {
        sum += u32::from(c - b'0') * if i % 2 == 0 { 1 } else { 3 };
    }
    (10 - sum % 10) % 10 == u32::from(b[12] - b'0')
}

fn is_credit_card(s: &str) -> bool {
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    static R: OnceLock<Regex> = OnceLock::new();
    let r = re(
        &R,
        r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|(222[1-9]|22[3-9][0-9]|2[3-6][0-9]{2}|27[01][0-9]|2720)[0-9]{12}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35\d{3})\d{11}|6[27][0-9]{14})$",
    );
    if !r.is_match(&d) {
        return false;
    }
    let mut sum = 0;
    let mut double = false;
    for c in d.bytes().rev() {
        let mut n = u32::from(c - b'0');
        if double {
            n *= 2;
            if n > 9 {
                n -= 9;
            }
        }
        sum += n;
        double = !double;
    }
    sum % 10 == 0
}

/// Go's `time.Parse("2006-01-02", s)`.
pub(crate) fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let p = &s[r];
        p.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| p.parse().ok())
            .flatten()
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || !is_date(parts[0]) {
        return false;
    }
    static R: OnceLock<Regex> = OnceLock::new();
    let r = re(
        &R,
        r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$",
    );
    match r.captures(parts[1]) {
        Some(c) => &c[1] <= "23" && &c[2] <= "59" && &c[3] <= "59",
        None => false,
    }
}

/// Go's `time.ParseDuration`, then strfmt's lenient "<n> <unit>" fallback.
fn is_duration(s: &str) -> bool {
    if go_parse_duration(s) {
        return true;
    }
    static R: OnceLock<Regex> = OnceLock::new();
    let units: &[&[&str]] = &[
        &["ns", "nano"],
        &["us", "µs", "micro"],
        &["ms", "milli"],
        &["s", "sec"],
        &["m", "min"],
        &["h", "hr", "hour"],
        &["d", "day"],
        &["w", "wk", "week"],
    ];
    for c in re(&R, r"(([0-9]+)\s*([A-Za-zµ]+))").captures_iter(s) {
        if c[2].parse::<i64>().is_err() {
            return false;
        }
        let unit = c[3].trim().to_lowercase();
        for variants in units {
            let last = variants.len() - 1;
            for (i, v) in variants.iter().enumerate() {
                if (i == last && unit.starts_with(v)) || v.eq_ignore_ascii_case(&unit) {
                    return true;
                }
            }
        }
    }
    false
}

fn go_parse_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    if s.is_empty() {
        return false;
    }
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_end];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        if !matches!(
            &rest[..unit_end],
            "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h"
        ) {
            return false;
        }
        rest = &rest[unit_end..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn formats() {
        assert!(check("date", "2024-02-29"));
        assert!(!check("date", "2023-02-29"));
        assert!(check("date-time", "2024-01-02T03:04:05Z"));
        assert!(check("date-time", "2024-01-02t03:04:05.123+01:00"));
        assert!(!check("date-time", "2024-01-02 03:04:05Z"));
        assert!(check("duration", "1h30m"));
        assert!(check("duration", "5 minutes"));
        assert!(!check("duration", "soon"));
        assert!(check("ipv4", "010.1.1.1"));
        assert!(!check("ipv4", "::1"));
        assert!(check("ipv6", "::1"));
        assert!(check("cidr", "10.0.0.0/8"));
        assert!(!check("cidr", "10.0.0.0/33"));
        assert!(check("mac", "00:1a:2b:3c:4d:5e"));
        assert!(check("uuid", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(check("hostname", "example.com"));
        assert!(!check("hostname", "-bad-"));
        assert!(check("byte", "aGVsbG8="));
        assert!(!check("byte", "not base64!"));
        assert!(check("email", "a@b.c"));
        assert!(!check("email", "nope"));
        assert!(check("uri", "https://example.com/x"));
        assert!(!check("uri", "relative/path"));
        assert!(check("bsonobjectid", "507f1f77bcf86cd799439011"));
        assert!(check("isbn10", "0321751043"));
        assert!(check("isbn13", "978-0321751041"));
        assert!(check("password", "anything"));
    }
}
