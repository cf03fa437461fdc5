//! Property tests of the parsers of client text in validation: resource quantities and
//! CronJob schedules. Arbitrary strings must give a value or an error, never a panic (in a
//! debug build arithmetic overflow panics too); what parses must print and re-parse to the
//! same value.
//!
//! Case counts are bounded (PROPTEST_CASES overrides) so a debug `cargo test` stays quick.

use std::cmp::Ordering;

use proptest::prelude::*;
use reddwarf_resources::validation::{cron, quantity};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text shaped like a quantity: sign, digits, fraction, a suffix or an exponent (often an
/// extreme one), sometimes a stray character.
fn quantity_text() -> impl Strategy<Value = String> {
    let sign = prop::sample::select(vec!["", "", "-", "+"]);
    let digits = prop_oneof!["[0-9]{0,3}", "[0-9]{15,45}", Just("0".to_string())];
    let frac = prop::option::of(prop_oneof!["[0-9]{0,3}", "[0-9]{10,40}"]);
    let suffix = prop_oneof![
        prop::sample::select(vec![
            "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
            "i", "KM", "e", "E+", "e-",
        ])
        .prop_map(String::from),
        (
            prop::sample::select(vec!["e", "E"]),
            prop_oneof![
                -40i64..40,
                Just(i64::from(i32::MAX)),
                Just(i64::from(i32::MIN)),
                Just(i64::from(i32::MAX) - 1),
                Just(i64::from(i32::MIN) + 1),
                (i64::from(i32::MIN)..=i64::from(i32::MAX)),
                Just(1i64 << 40),
            ]
        )
            .prop_map(|(e, n)| format!("{e}{n}")),
    ];
    let junk = prop::option::of(prop::sample::select(vec!["x", " ", ".", "-", "µ"]));
    (sign, digits, frac, suffix, junk).prop_map(|(s, d, f, suf, j)| {
        let mut out = format!("{s}{d}");
        if let Some(f) = f {
            out.push('.');
            out.push_str(&f);
        }
        out.push_str(&suf);
        if let Some(j) = j {
            out.push_str(j);
        }
        out
    })
}

/// Every accessor of a parsed quantity, so that any overflow inside them shows.
fn exercise(q: &quantity::Quantity) {
    let _ = (q.is_zero(), q.is_negative(), q.is_integer());
    let _ = q.canonical();
    assert_eq!(q.cmp_value(q), Ordering::Equal);
    // the rounded values keep the sign
    let (milli, value) = (q.milli_value(), q.value());
    if q.is_zero() {
        assert_eq!((milli, value), (0, 0));
    } else if q.is_negative() {
        assert!(milli <= 0 && value <= 0, "{q:?}: {milli} {value}");
    } else {
        assert!(milli > 0 && value > 0, "{q:?}: {milli} {value}");
    }
}

/// A cron field with its meaning computed independently: (text, matching values, star bit).
fn cron_field(min: u32, max: u32) -> impl Strategy<Value = (String, u64)> {
    let single = (min..=max).prop_map(move |a| (a.to_string(), 1u64 << a));
    let range = (min..=max, min..=max, 1u32..8).prop_map(move |(a, b, s)| {
        let (a, b) = (a.min(b), a.max(b));
        let mut bits = 0u64;
        let mut i = a;
        while i <= b {
            bits |= 1 << i;
            i += s;
        }
        (format!("{a}-{b}/{s}"), bits)
    });
    // `*` carries the star bit only when its step is 1
    let star = (1u32..5).prop_map(move |s| {
        let mut bits = if s == 1 { cron::STAR_BIT } else { 0 };
        let mut i = min;
        while i <= max {
            bits |= 1 << i;
            i += s;
        }
        (
            if s == 1 {
                "*".to_string()
            } else {
                format!("*/{s}")
            },
            bits,
        )
    });
    let one = prop_oneof![single, range, star];
    prop::collection::vec(one, 1..3).prop_map(|parts| {
        let text: Vec<String> = parts.iter().map(|p| p.0.clone()).collect();
        (text.join(","), parts.iter().fold(0, |b, p| b | p.1))
    })
}

/// Text shaped like a schedule: fields from the grammar's pieces, descriptors, durations.
fn cron_text() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "*",
        "?",
        "/",
        "-",
        ",",
        "0",
        "1",
        "5",
        "59",
        "60",
        "99999999999999999999",
        "-1",
        "jan",
        "MON",
        "sun",
        "x",
        " ",
        "\t",
        "@",
        "@every ",
        "@daily",
        "TZ=",
        "CRON_TZ=UTC ",
        "1h",
        "1.5s",
        ".",
        "µs",
        "-2m",
        "9223372036854775807ns",
        "18446744073709551616",
    ]);
    prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary text: a quantity or upstream's error.
    #[test]
    fn quantity_arbitrary_text(s in ".{0,24}") {
        if let Ok(q) = quantity::parse(&s) {
            exercise(&q);
        }
    }

    /// Quantity-shaped text: the canonical form re-parses to the same value and is a fixed
    /// point; comparison is antisymmetric.
    #[test]
    fn quantity_canonical_round_trip(s in quantity_text(), t in quantity_text()) {
        let Ok(q) = quantity::parse(&s) else { return Ok(()) };
        exercise(&q);
        // Beyond u128 (mantissa times 10^(exp mod 3) or 2^n for binary suffixes) the value is
        // kept and printed as an f64 approximation (even `inf`): canonical() only words error
        // messages, so the exact round trip is promised for up to 20 significant digits,
        // far more than any real quantity has.
        let exact = q.cmp_value(&quantity::parse("1e38").unwrap()) == Ordering::Less
            && q.cmp_value(&quantity::parse("-1e38").unwrap()) == Ordering::Greater;
        let significant = s
            .trim_start_matches(['-', '+'])
            .split(|c: char| !c.is_ascii_digit() && c != '.')
            .next()
            .unwrap_or("")
            .replace('.', "")
            .trim_matches('0')
            .len();
        let c = q.canonical();
        if exact {
            prop_assert!(quantity::parse(&c).is_ok(), "{:?} -> {:?}", s, c);
        }
        if exact && significant <= 20 {
            let back = quantity::parse(&c).unwrap();
            prop_assert_eq!(back.cmp_value(&q), Ordering::Equal, "{:?} -> {:?}", s, c);
            prop_assert_eq!(back.canonical(), c.clone());
            prop_assert_eq!(back.milli_value(), q.milli_value());
        }
        if let Ok(r) = quantity::parse(&t) {
            exercise(&r);
            prop_assert_eq!(q.cmp_value(&r), r.cmp_value(&q).reverse(), "{:?} vs {:?}", s, t);
        }
    }

    /// Arbitrary and schedule-shaped text: a schedule or the library's error.
    #[test]
    fn cron_arbitrary_text(s in ".{0,40}", t in cron_text()) {
        let _ = cron::parse(&s);
        let _ = cron::parse(&t);
        let _ = cron::parse_duration(&s);
        let _ = cron::parse_duration(&t);
    }

    /// Generated five-field schedules parse to the bit sets computed here.
    #[test]
    fn cron_fields_match_model(
        minute in cron_field(0, 59),
        hour in cron_field(0, 23),
        dom in cron_field(1, 31),
        month in cron_field(1, 12),
        dow in cron_field(0, 6),
    ) {
        let spec = format!("{} {} {} {} {}", minute.0, hour.0, dom.0, month.0, dow.0);
        let got = cron::parse(&spec).unwrap_or_else(|e| panic!("{spec:?}: {e}"));
        prop_assert_eq!(got.location, None);
        prop_assert_eq!(got.kind, cron::ScheduleKind::Spec {
            minute: minute.1,
            hour: hour.1,
            dom: dom.1,
            month: month.1,
            dow: dow.1,
        }, "{}", spec);
    }

    /// Go durations: h/m/s/ms/us/ns parts add up; `@every` rounds down to whole seconds.
    #[test]
    fn durations_add_up(h in 0i128..1000, m in 0i128..100, s in 0i128..100, ms in 0i128..1000, neg: bool) {
        let text = format!("{}{h}h{m}m{s}s{ms}ms", if neg { "-" } else { "" });
        let want = ((h * 3600 + m * 60 + s) * 1000 + ms) * 1_000_000;
        prop_assert_eq!(cron::parse_duration(&text), Ok(if neg { -want } else { want }));
        let every = cron::parse(&format!("@every {text}")).unwrap();
        let secs = if neg { 1 } else { (want / 1_000_000_000).max(1) };
        prop_assert_eq!(every.kind, cron::ScheduleKind::Every(secs as u64));
    }
}

/// Found by `quantity_canonical_round_trip`: exponents near the ends of i32 overflowed the
/// exponent arithmetic (a panic in debug builds, a wrong value in release).
#[test]
fn extreme_exponents_do_not_overflow() {
    for s in [
        "1e2147483646",
        "1e2147483647",
        "10e2147483647",
        "1.5e-2147483648",
        "-7e2147483647",
        "1e-2147483648",
    ] {
        let q = quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        exercise(&q);
    }
    let huge = quantity::parse("1e2147483647").unwrap();
    let big = quantity::parse("1e100").unwrap();
    assert_eq!(huge.cmp_value(&big), Ordering::Greater);
    assert_eq!(big.cmp_value(&huge), Ordering::Less);
    assert_eq!(huge.milli_value(), i64::MAX);
    // rounded up to one nano, as upstream does
    assert_eq!(
        quantity::parse("1e-2147483648").unwrap().canonical(),
        "1e-9"
    );
}

/// A 39-digit mantissa above i128::MAX made milli_value negative for a positive quantity.
#[test]
fn mantissa_above_i128_max_stays_positive() {
    let q = quantity::parse("300000000000000000000000000000000000001u").unwrap();
    assert!(!q.is_negative());
    assert_eq!(q.milli_value(), i64::MAX);
    assert_eq!(q.value(), i64::MAX / 1000 + 1);
}

/// Trailing zeros of the fraction made `0.4…0Ti` (28 digits) overflow the exact mantissa; it
/// was printed from the f64 approximation instead of upstream's canonical form.
#[test]
fn trailing_fraction_zeros_keep_the_value_exact() {
    let q = quantity::parse(".400000000000000000000000000Ti").unwrap();
    assert_eq!(q.canonical(), "439804651110400m");
    assert_eq!(
        q.cmp_value(&quantity::parse("0.4Ti").unwrap()),
        Ordering::Equal
    );
    assert_eq!(
        quantity::parse("1.500000000000000000000000000000000000000000")
            .unwrap()
            .canonical(),
        "1500m"
    );
}

/// A mantissa too long for u128 with a very negative exponent was kept as an f64 that
/// underflowed to 0, so a positive quantity had milli_value 0; upstream rounds it up to 1n.
#[test]
fn long_tiny_quantities_round_up_to_a_nano() {
    let q = quantity::parse("1234567890123456789012345678901234567890e-1168526348").unwrap();
    assert_eq!(q.canonical(), "1e-9");
    assert_eq!((q.milli_value(), q.value()), (1, 1));
    let q = quantity::parse("0.0000000001234567890123456789012345678901234567890").unwrap();
    assert_eq!(q.canonical(), "1n");
    let q = quantity::parse("1.0000000001234567890123456789012345678901234567890").unwrap();
    assert_eq!(q.canonical(), "1000000001n");
}

/// Trailing zeros of the integer part pushed `4` followed by 38 zeros past u128, so
/// `400000000000000000000000000000000000000n` (4e29) was printed from an f64.
#[test]
fn trailing_integer_zeros_keep_the_value_exact() {
    let q = quantity::parse("400000000000000000000000000000000000000n").unwrap();
    assert_eq!(q.canonical(), "400e27");
    assert_eq!(
        quantity::parse("400e27").unwrap().cmp_value(&q),
        Ordering::Equal
    );
    assert_eq!(q.milli_value(), i64::MAX);
}
