//! Property tests of image references, which come from pod specs: arbitrary text is a
//! reference or an error, never a panic, and a reference prints to text that parses back to it.
//!
//! Case counts are bounded (PROPTEST_CASES overrides) so a debug `cargo test` stays quick.

use proptest::prelude::*;
use reddwarf_images::Reference;

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

/// Reference-shaped text from the grammar's pieces.
fn referenceish() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "busybox",
        "a",
        "A",
        "team",
        "/",
        "//",
        ":",
        ":5000",
        "@",
        "latest",
        "v1.2",
        "-",
        "_",
        "__",
        ".",
        "..",
        "localhost",
        "docker.io",
        "index.docker.io",
        "registry.example.com",
        "[::1]",
        "sha256:",
        "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ]);
    prop::collection::vec(piece, 1..7).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn references_round_trip(s in prop_oneof![".{0,40}", referenceish()]) {
        if let Ok(r) = Reference::parse(&s) {
            let text = r.to_string();
            let back = Reference::parse(&text).unwrap_or_else(|e| panic!("{s:?} -> {text:?}: {e}"));
            prop_assert_eq!(&back, &r, "{:?} -> {:?}", s, text);
            prop_assert_eq!(back.to_string(), text);
        }
    }
}
