//! Property tests of layer unpacking: a layer comes from a registry, so whatever its entries
//! say (`..`, absolute names, symlinks out of the layer, hard links, whiteouts of odd names),
//! nothing outside the layer directory may be written or removed.
//!
//! Case counts are bounded (PROPTEST_CASES overrides) so a debug `cargo test` stays quick.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use proptest::prelude::*;

use super::unpack::unpack_layer;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[derive(Clone, Debug)]
enum Kind {
    File,
    Dir,
    Symlink(String),
    Link(String),
    Fifo,
}

/// Path pieces an attacker would try, and ordinary ones.
fn name() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "a",
        "b",
        "..",
        ".",
        "",
        ".wh.a",
        ".wh..",
        ".wh...",
        ".wh..wh..opq",
        ".wh.",
        "/",
        "outside",
        "sentinel",
    ]);
    prop::collection::vec(piece, 1..4).prop_map(|p| p.join("/"))
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::File),
        2 => Just(Kind::Dir),
        2 => prop_oneof![name(), name().prop_map(|n| format!("/{n}")), Just("../../outside".to_string())]
            .prop_map(Kind::Symlink),
        1 => name().prop_map(Kind::Link),
        1 => Just(Kind::Fifo),
    ]
}

/// A tar with the names written raw (the tar crate's path setters refuse `..`, which is what
/// a hostile layer holds).
fn layer(entries: &[(String, Kind)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind) in entries {
        let mut h = tar::Header::new_ustar();
        let n = name.as_bytes();
        let len = n.len().min(99);
        h.as_old_mut().name[..len].copy_from_slice(&n[..len]);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        let data: &[u8] = match kind {
            Kind::File => b"data",
            _ => b"",
        };
        h.set_size(data.len() as u64);
        let (ty, link) = match kind {
            Kind::File => (tar::EntryType::Regular, None),
            Kind::Dir => (tar::EntryType::Directory, None),
            Kind::Symlink(t) => (tar::EntryType::Symlink, Some(t)),
            Kind::Link(t) => (tar::EntryType::Link, Some(t)),
            Kind::Fifo => (tar::EntryType::Fifo, None),
        };
        h.set_entry_type(ty);
        if let Some(t) = link {
            let t = t.as_bytes();
            let len = t.len().min(99);
            h.as_old_mut().linkname[..len].copy_from_slice(&t[..len]);
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Every path below `dir` (symlinks not followed), relative to it.
fn tree(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, p: &Path, out: &mut BTreeSet<String>) {
        let Ok(rd) = fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let path = e.path();
            out.insert(path.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// Unpacks `entries` into `<sandbox>/layer` beside `<sandbox>/outside/sentinel`; returns
/// whether unpacking succeeded and the sandbox outside the layer afterwards.
fn unpack_in_sandbox(entries: &[(String, Kind)]) -> (bool, BTreeSet<String>, String) {
    let sandbox = tempfile::tempdir().unwrap();
    let dest = sandbox.path().join("layer");
    fs::create_dir(&dest).unwrap();
    fs::create_dir(sandbox.path().join("outside")).unwrap();
    fs::write(sandbox.path().join("outside/sentinel"), b"keep").unwrap();
    let ok = unpack_layer(&layer(entries)[..], &dest).is_ok();
    let outside: BTreeSet<String> = tree(sandbox.path())
        .into_iter()
        .filter(|p| !p.starts_with("layer/"))
        .collect();
    let sentinel = fs::read_to_string(sandbox.path().join("outside/sentinel")).unwrap_or_default();
    (ok, outside, sentinel)
}

fn untouched() -> BTreeSet<String> {
    ["layer", "outside", "outside/sentinel"]
        .into_iter()
        .map(String::from)
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// Whatever the entries, the layer succeeds or is refused, and everything outside the
    /// layer directory stays as it was.
    #[test]
    fn nothing_escapes_the_layer(entries in prop::collection::vec((name(), kind()), 1..8)) {
        let (_, outside, sentinel) = unpack_in_sandbox(&entries);
        prop_assert_eq!(outside, untouched());
        prop_assert_eq!(sentinel, "keep");
    }
}

/// A whiteout of `..` (`.wh...`) or `.` (`.wh..`) named the layer's parent or the layer
/// itself, which unpacking then removed recursively: a layer could delete the directory its
/// unpack directory lives in. Such layers are now refused.
#[test]
fn whiteouts_of_dot_and_dot_dot_are_refused() {
    for name in [".wh...", "a/.wh...", ".wh..", "a/.wh.."] {
        let mut entries = vec![("a".to_string(), Kind::Dir)];
        entries.push((name.to_string(), Kind::File));
        let (ok, outside, sentinel) = unpack_in_sandbox(&entries);
        assert!(!ok, "{name} unpacked");
        assert_eq!(outside, untouched(), "{name}");
        assert_eq!(sentinel, "keep", "{name}");
    }
}
