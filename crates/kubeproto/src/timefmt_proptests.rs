//! Property tests of the time and duration text of JSON bodies (`metav1.Time`,
//! `metav1.Duration`), which the encoder parses from clients: never a panic, and what is
//! written reads back.

use proptest::prelude::*;

use crate::timefmt::{format_duration, format_rfc3339, parse_duration, parse_rfc3339};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1024),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text shaped like durations and timestamps, with extremes.
fn timeish() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "-",
        "+",
        ".",
        "0",
        "1",
        "9",
        "99999999999999999999",
        "h",
        "m",
        "s",
        "ms",
        "us",
        "µs",
        "ns",
        "T",
        "Z",
        ":",
        "2024-01-02",
        "T03:04:05",
        ".123456789123",
        "+23:59",
        "-00:00",
        "9999-12-31",
        "0000-01-01",
    ]);
    prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,30}", t in timeish()) {
        for x in [&s, &t] {
            let _ = parse_duration(x);
            let _ = parse_rfc3339(x);
        }
    }

    /// Every int64 duration prints as Go does and reads back exactly.
    #[test]
    fn durations_round_trip(d in prop_oneof![any::<i64>(), -10_000_000_000i64..10_000_000_000]) {
        let s = format_duration(d);
        prop_assert_eq!(parse_duration(&s), Some(d), "{}", s);
    }

    /// Every time of years 0000-9999 prints and reads back (microseconds kept for MicroTime).
    #[test]
    fn times_round_trip(secs in -62_167_219_200i64..=253_402_300_799, nanos in 0i64..1_000_000_000, micro: bool) {
        let s = format_rfc3339(secs, nanos, micro).unwrap();
        let want_nanos = if micro { nanos / 1000 * 1000 } else { 0 };
        prop_assert_eq!(parse_rfc3339(&s), Some((secs, want_nanos as i32)), "{}", s);
    }
}
