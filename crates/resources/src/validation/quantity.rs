//! Resource quantities as upstream parses them (apimachinery `api/resource/quantity.go`):
//! `<sign><digits>[.<digits>]<suffix>` with decimal SI (`n u m k M G T P E`), binary SI
//! (`Ki Mi Gi Ti Pi Ei`) or exponent (`e3`, `E-2`) suffixes, rounded up to nano precision,
//! compared exactly and printed in upstream's canonical form.

use std::cmp::Ordering;

/// Upstream's error for a string that is not shaped like a quantity.
pub const FORMAT_WRONG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// Upstream's error for a quantity-shaped string whose suffix is unknown (`1mi`).
pub const SUFFIX_WRONG: &str = "unable to parse quantity's suffix";

/// The suffix family a quantity was written in; [`Quantity::canonical`] prints in the same
/// family where it can (upstream's `Format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Decimal SI suffixes: `n u m k M G T P E`, or none.
    DecimalSI,
    /// Binary SI suffixes: `Ki Mi Gi Ti Pi Ei`.
    BinarySI,
    /// Exponent notation: `e3`, `E-2`.
    DecimalExponent,
}

/// `negative × mantissa × 10^exp`, the mantissa without trailing zeros.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantity {
    negative: bool,
    mantissa: u128,
    /// i64: a client may write any i32 exponent, and arithmetic on it must not overflow.
    exp: i64,
    /// An approximation, used when an exact computation would overflow.
    approx: f64,
    /// The suffix family it was parsed from.
    pub format: Format,
}

struct Parts<'a> {
    positive: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

/// upstream's `parseQuantityString`.
fn split(s: &str) -> Result<Parts<'_>, &'static str> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    if pos < end {
        match b[0] {
            b'-' => {
                positive = false;
                pos += 1
            }
            b'+' => pos += 1,
            _ => {}
        }
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(Parts {
            positive,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let mut num = &s[start..pos];
    if num.is_empty() {
        num = "0";
    }
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let d = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[d..pos];
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(FORMAT_WRONG);
    }
    Ok(Parts {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

/// (base, exponent, format) of a suffix (upstream's `suffixer.interpret`).
fn interpret(suffix: &str) -> Option<(u32, i32, Format)> {
    let dec = match suffix {
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "" => Some(0),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(e) = dec {
        return Some((10, e, Format::DecimalSI));
    }
    let bin = match suffix {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(e) = bin {
        return Some((2, e, Format::BinarySI));
    }
    if suffix.len() > 1 && (suffix.starts_with('e') || suffix.starts_with('E')) {
        let e: i32 = suffix[1..].parse().ok()?;
        return Some((10, e, Format::DecimalExponent));
    }
    None
}

fn pow10(e: u32) -> Option<u128> {
    10u128.checked_pow(e)
}

/// Parses a quantity; the error is upstream's message.
pub fn parse(s: &str) -> Result<Quantity, &'static str> {
    if s.is_empty() {
        return Err(FORMAT_WRONG);
    }
    let p = split(s)?;
    let (base, exponent, format) = interpret(p.suffix).ok_or(SUFFIX_WRONG)?;
    // trailing zeros of the fraction carry no value; kept, they could push an exact mantissa
    // (times 2^n for binary suffixes) past u128 and leave only the approximation
    let denom = p.denom.trim_end_matches('0');
    let digits = format!("{}{}", p.num, denom);
    let approx_digits: f64 = format!(
        "{}.{}",
        p.num,
        if p.denom.is_empty() { "0" } else { p.denom }
    )
    .parse()
    .unwrap_or(0.0);
    let mut exp = -(denom.len() as i64);
    // likewise trailing zeros of the whole digit string: they move into the exponent
    let mut digits = digits.trim_start_matches('0');
    let value_digits = digits.trim_end_matches('0');
    exp += (digits.len() - value_digits.len()) as i64;
    digits = value_digits;
    let mut round_up = false;
    if base == 10 {
        exp += i64::from(exponent);
        // Round up to nano precision on the digits, before they must fit a u128: a long
        // mantissa with a very negative exponent is still a small exact value.
        if exp < -9 {
            let drop = usize::try_from(-9 - exp).unwrap_or(usize::MAX);
            let keep = digits.len().saturating_sub(drop);
            round_up = digits[keep..].bytes().any(|d| d != b'0');
            digits = &digits[..keep];
            exp = -9;
        }
    }
    let mut mantissa: Option<u128> = if digits.is_empty() {
        Some(0)
    } else {
        digits.parse::<u128>().ok()
    };
    mantissa = mantissa.and_then(|m| m.checked_add(u128::from(round_up)));
    let approx_mult = if base == 10 {
        10f64.powi(exponent)
    } else {
        mantissa = mantissa.and_then(|m| m.checked_mul(1u128 << exponent));
        2f64.powi(exponent)
    };
    let mut approx = approx_digits * approx_mult;
    // Round up (away from zero) to nano precision, as upstream does (binary suffixes with a
    // long fraction; decimal ones were rounded above).
    if let Some(m) = mantissa {
        if exp < -9 {
            let drop = u32::try_from(-9 - exp).unwrap_or(u32::MAX);
            mantissa = match pow10(drop) {
                Some(d) => Some(m / d + u128::from(m % d != 0)),
                None => Some(u128::from(m != 0)),
            };
            exp = -9;
        }
    }
    if !p.positive {
        approx = -approx;
    }
    let mut q = Quantity {
        negative: !p.positive,
        mantissa: mantissa.unwrap_or(0),
        exp,
        approx,
        format,
    };
    if mantissa.is_none() {
        // Too large for an exact value: keep the approximation only.
        q.mantissa = u128::MAX;
    }
    q.normalize();
    Ok(q)
}

impl Quantity {
    fn exact(&self) -> bool {
        self.mantissa != u128::MAX
    }

    fn normalize(&mut self) {
        if !self.exact() {
            return;
        }
        if self.mantissa == 0 {
            self.exp = 0;
            self.negative = false;
            return;
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.exp += 1;
        }
    }

    /// Whether the value is exactly zero (never true of an approximation).
    pub fn is_zero(&self) -> bool {
        self.exact() && self.mantissa == 0
    }

    /// Whether the value is below zero (`-0` is not).
    pub fn is_negative(&self) -> bool {
        self.negative && !self.is_zero()
    }

    /// Whether the value is a whole number (upstream: `MilliValue() % 1000 == 0`).
    pub fn is_integer(&self) -> bool {
        if self.exact() {
            self.exp >= 0
        } else {
            self.approx.fract() == 0.0
        }
    }

    /// Upstream's `Cmp`.
    pub fn cmp_value(&self, other: &Quantity) -> Ordering {
        let sign = |q: &Quantity| {
            if q.is_zero() {
                0
            } else if q.negative {
                -1
            } else {
                1
            }
        };
        let (sa, sb) = (sign(self), sign(other));
        if sa != sb || sa == 0 {
            return sa.cmp(&sb);
        }
        let abs = if self.exact() && other.exact() {
            let (a, b) = (self, other);
            let min = a.exp.min(b.exp);
            let scale = |q: &Quantity| {
                let p = u32::try_from(q.exp - min).ok().and_then(pow10)?;
                q.mantissa.checked_mul(p)
            };
            match (scale(a), scale(b)) {
                (Some(x), Some(y)) => Some(x.cmp(&y)),
                _ => None,
            }
        } else {
            None
        };
        let abs = abs.unwrap_or_else(|| {
            self.approx
                .abs()
                .partial_cmp(&other.approx.abs())
                .unwrap_or(Ordering::Equal)
        });
        if sa < 0 {
            abs.reverse()
        } else {
            abs
        }
    }

    /// The value in thousandths, rounded up (upstream's `MilliValue`), saturating.
    pub fn milli_value(&self) -> i64 {
        let v: i128 = if self.exact() {
            let e = self.exp + 3;
            // in u128: a mantissa above i128::MAX must not turn negative
            let m = self.mantissa;
            let v = if e >= 0 {
                u32::try_from(e)
                    .ok()
                    .and_then(pow10)
                    .and_then(|p| m.checked_mul(p))
                    .unwrap_or(u128::MAX)
            } else {
                match u32::try_from(-e).ok().and_then(pow10) {
                    Some(d) => m / d + u128::from(m % d != 0),
                    None => u128::from(m != 0),
                }
            };
            v.min(i64::MAX as u128) as i128
        } else {
            (self.approx.abs() * 1000.0).ceil().min(i64::MAX as f64) as i128
        };
        let v = v.min(i64::MAX as i128) as i64;
        if self.is_negative() {
            -v
        } else {
            v
        }
    }

    /// The value rounded up to a whole number (upstream's `Value`), saturating.
    pub fn value(&self) -> i64 {
        let m = self.milli_value();
        if m >= 0 {
            m / 1000 + i64::from(m % 1000 != 0)
        } else {
            m / 1000
        }
    }

    /// Upstream's canonical `String()`.
    pub fn canonical(&self) -> String {
        if self.is_zero() {
            return "0".into();
        }
        if !self.exact() {
            return format!("{}", self.approx);
        }
        let sign = if self.negative { "-" } else { "" };
        let mut format = self.format;
        if format == Format::BinarySI {
            let small = self
                .integer_value()
                .map(|v| v < 1024)
                .unwrap_or(self.exp < 0 && self.approx.abs() < 1024.0);
            if small || self.exp < 0 {
                format = Format::DecimalSI;
            }
        }
        if format == Format::BinarySI {
            if let Some(mut v) = self.integer_value() {
                let mut e = 0;
                while v % 1024 == 0 && e < 6 {
                    v /= 1024;
                    e += 1;
                }
                let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][e];
                return format!("{sign}{v}{suffix}");
            }
            format = Format::DecimalSI;
        }
        // The exponent goes down to a multiple of 3 by writing zeros after the digits: as text,
        // so a mantissa near u128::MAX stays exact (times 100 it would not fit).
        let r = self.exp.rem_euclid(3);
        let e = self.exp - r;
        let m = format!("{}{}", self.mantissa, "0".repeat(r as usize));
        let suffix = match (format, e) {
            (Format::DecimalExponent, 0) => String::new(),
            (Format::DecimalExponent, e) => format!("e{e}"),
            (_, -9) => "n".into(),
            (_, -6) => "u".into(),
            (_, -3) => "m".into(),
            (_, 0) => String::new(),
            (_, 3) => "k".into(),
            (_, 6) => "M".into(),
            (_, 9) => "G".into(),
            (_, 12) => "T".into(),
            (_, 15) => "P".into(),
            (_, 18) => "E".into(),
            (_, e) => format!("e{e}"),
        };
        format!("{sign}{m}{suffix}")
    }

    fn integer_value(&self) -> Option<u128> {
        if !self.exact() || self.exp < 0 {
            return None;
        }
        let p = u32::try_from(self.exp).ok().and_then(pow10)?;
        self.mantissa.checked_mul(p)
    }
}

/// A quantity from JSON: strings as written, numbers by their decimal text.
pub fn parse_json(v: &serde_json::Value) -> Result<Quantity, &'static str> {
    match v {
        serde_json::Value::String(s) => parse(s),
        serde_json::Value::Number(n) => parse(&number_text(n)),
        _ => Err(FORMAT_WRONG),
    }
}

fn number_text(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    let s = format!("{f}");
    if s.contains('e') || s.contains("inf") || s.contains("NaN") {
        format!("{f:.9}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let cases = [
            ("1", "1"),
            ("1000m", "1"),
            ("500m", "500m"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("1Gi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("1024Ki", "1Mi"),
            ("512Ki", "512Ki"),
            ("0.5Ki", "512"),
            ("1e3", "1e3"),
            ("12e2", "1200"),
            ("1E", "1E"),
            ("0", "0"),
            ("-1", "-1"),
            ("+2k", "2k"),
            ("0.0000000001", "1n"),
            ("100M", "100M"),
            ("1.", "1"),
            (".5", "500m"),
            ("1m", "1m"),
            // Exact even where the mantissa times 100 would pass u128.
            (
                "300000000000000000.1Ei",
                "345876451382054092915292150460684697600m",
            ),
        ];
        for (input, want) in cases {
            let q = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(q.canonical(), want, "{input}");
        }
    }

    #[test]
    fn errors() {
        let cases = [
            ("", FORMAT_WRONG),
            ("abc", FORMAT_WRONG),
            ("1x", FORMAT_WRONG),
            ("1Gb", FORMAT_WRONG),
            ("1.5.5", FORMAT_WRONG),
            ("1mi", SUFFIX_WRONG),
            ("1KiB", FORMAT_WRONG),
            ("1ee", SUFFIX_WRONG),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).err(), Some(want), "{input}");
        }
    }

    #[test]
    fn comparison() {
        let c = |a: &str, b: &str| parse(a).unwrap().cmp_value(&parse(b).unwrap());
        assert_eq!(c("1", "1000m"), Ordering::Equal);
        assert_eq!(c("2", "1"), Ordering::Greater);
        assert_eq!(c("1Gi", "1G"), Ordering::Greater);
        assert_eq!(c("-1", "0"), Ordering::Less);
        assert_eq!(c("-2", "-1"), Ordering::Less);
        assert_eq!(c("129M", "128Mi"), Ordering::Less);
        assert!(!parse("1.5").unwrap().is_integer());
        assert!(parse("2k").unwrap().is_integer());
        assert!(parse("-1").unwrap().is_negative());
        assert_eq!(
            parse_json(&serde_json::json!(0.5)).unwrap().canonical(),
            "500m"
        );
        assert_eq!(parse_json(&serde_json::json!(2)).unwrap().canonical(), "2");
    }

    #[test]
    fn milli_and_whole_values_round_up() {
        let m = |s: &str| parse(s).unwrap().milli_value();
        assert_eq!(m("100m"), 100);
        assert_eq!(m("1"), 1000);
        assert_eq!(m("1.5"), 1500);
        assert_eq!(m("0.1m"), 1);
        assert_eq!(m("-2"), -2000);
        assert_eq!(parse("1Gi").unwrap().value(), 1 << 30);
        assert_eq!(parse("200Mi").unwrap().value(), 200 << 20);
        assert_eq!(parse("1500m").unwrap().value(), 2);
        assert_eq!(parse("1e3").unwrap().value(), 1000);
    }
}
