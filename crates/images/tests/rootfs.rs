//! Layer unpacking, overlay root filesystems, removal and gc (needs root for mounts).

mod common;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::{mounted, MountGuard};
use reddwarf_images::testsupport::{
    build_oci_layout, busybox_layer, oci_layout_to_archive, LayerBuilder,
};
use reddwarf_images::{unmount_rootfs, Error, Image, ImageStore};
use serde_json::json;

/// Import an image with `layers` (uncompressed tars, bottom first) through an OCI archive.
fn import(store: &ImageStore, tmp: &Path, name: &str, layers: &[Vec<u8>]) -> Result<Image, Error> {
    let layout = tmp.join(format!("layout-{name}"));
    build_oci_layout(
        &layout,
        &format!("localhost/{name}:v1"),
        layers,
        json!({"Cmd": ["sh"]}),
    )?;
    let archive = tmp.join(format!("{name}.tar"));
    oci_layout_to_archive(&layout, &archive)?;
    let mut images = store.import_archive(&archive)?;
    assert_eq!(images.len(), 1);
    Ok(images.remove(0))
}

#[test]
fn busybox_rootfs_writes_go_to_upper_and_unmount_is_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let image = import(&store, tmp.path(), "busybox", &[busybox_layer().unwrap()]).unwrap();
    assert_eq!(image.repo_tags, vec!["localhost/busybox:v1"]);

    let dir = tmp.path().join("c1");
    let guard = MountGuard(dir.clone());
    let rootfs = store.prepare_rootfs(&image, &dir).unwrap();
    assert_eq!(rootfs.path, dir.join("rootfs"));
    assert!(mounted(&rootfs.path));
    let bb = fs::metadata(rootfs.path.join("bin/busybox")).unwrap();
    assert!(bb.is_file() && bb.permissions().mode() & 0o111 != 0);
    assert_eq!(
        fs::read_link(rootfs.path.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::metadata(rootfs.path.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );

    // Writes land in the upper dir, the layer stays untouched.
    fs::write(rootfs.path.join("tmp/hello"), b"hi").unwrap();
    fs::remove_file(rootfs.path.join("bin/cat")).unwrap();
    assert_eq!(fs::read(dir.join("upper/tmp/hello")).unwrap(), b"hi");
    let layer = store.root().join("layers").join(&image.layers[0][7..]);
    assert!(!layer.join("tmp/hello").exists());
    assert!(fs::symlink_metadata(layer.join("bin/cat")).is_ok());
    assert!(fs::symlink_metadata(dir.join("upper/bin/cat"))
        .unwrap()
        .file_type()
        .is_char_device());

    // Preparing again (agent restart) keeps the one mount.
    let again = store.prepare_rootfs(&image, &dir).unwrap();
    let count = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(again.path.to_str().unwrap()))
        .count();
    assert_eq!(count, 1);

    rootfs.unmount().unwrap();
    assert!(!mounted(&dir.join("rootfs")));
    unmount_rootfs(&dir).unwrap(); // idempotent
    assert_eq!(
        fs::read(dir.join("upper/tmp/hello")).unwrap(),
        b"hi",
        "upper kept"
    );
    reddwarf_images::remove_rootfs(&dir).unwrap();
    assert!(!dir.exists());
    drop(guard);
}

#[test]
fn whiteouts_in_an_upper_layer_hide_lower_files() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let lower = LayerBuilder::new()
        .dir("etc/", 0o755)
        .file("etc/a", 0o644, b"a")
        .file("etc/b", 0o644, b"b")
        .dir("opq/", 0o755)
        .file("opq/x", 0o644, b"x")
        .finish();
    let upper = LayerBuilder::new()
        .dir("etc/", 0o755)
        .file("etc/.wh.a", 0o644, b"")
        .dir("opq/", 0o755)
        .file("opq/.wh..wh..opq", 0o644, b"")
        .file("opq/y", 0o644, b"y")
        .finish();
    let image = import(&store, tmp.path(), "wh", &[lower, upper]).unwrap();
    let top = store.root().join("layers").join(&image.layers[1][7..]);
    let wh = fs::symlink_metadata(top.join("etc/a")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "0:0 whiteout device"
    );
    assert!(!top.join("etc/.wh.a").exists());

    let dir = tmp.path().join("c");
    let _g = MountGuard(dir.clone());
    let rootfs = store.prepare_rootfs(&image, &dir).unwrap();
    assert!(!rootfs.path.join("etc/a").exists(), "whited out");
    assert_eq!(fs::read(rootfs.path.join("etc/b")).unwrap(), b"b");
    assert!(
        !rootfs.path.join("opq/x").exists(),
        "opaque dir hides lower contents"
    );
    assert_eq!(fs::read(rootfs.path.join("opq/y")).unwrap(), b"y");
    rootfs.unmount().unwrap();
    assert!(!mounted(&dir.join("rootfs")));
}

#[test]
fn metadata_links_and_modes_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o4755);
    h.set_uid(1000);
    h.set_gid(2000);
    h.set_mtime(1_234_567_890);
    h.set_size(3);
    b.append_data(&mut h, "usr/bin/suid", &b"abc"[..]).unwrap();
    let mut d = tar::Header::new_gnu();
    d.set_entry_type(tar::EntryType::Directory);
    d.set_mode(0o750);
    d.set_mtime(1_111_111_111);
    d.set_size(0);
    b.append_data(&mut d, "data/", std::io::empty()).unwrap();
    let layer = b.into_inner().unwrap();
    let layer = [
        layer[..layer.len() - 1024].to_vec(),
        LayerBuilder::new()
            .hardlink("data/hard", "usr/bin/suid")
            .symlink("data/abs", "/usr/bin/suid")
            .finish(),
    ]
    .concat();
    let image = import(&store, tmp.path(), "meta", &[layer]).unwrap();
    let l = store.root().join("layers").join(&image.layers[0][7..]);
    let m = fs::metadata(l.join("usr/bin/suid")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o4755);
    assert_eq!((m.uid(), m.gid(), m.mtime()), (1000, 2000, 1_234_567_890));
    let dm = fs::metadata(l.join("data")).unwrap();
    assert_eq!(
        (dm.permissions().mode() & 0o7777, dm.mtime()),
        (0o750, 1_111_111_111)
    );
    assert_eq!(fs::metadata(l.join("data/hard")).unwrap().ino(), m.ino());
    // An absolute symlink target is stored as is (it points inside the container).
    assert_eq!(
        fs::read_link(l.join("data/abs")).unwrap(),
        Path::new("/usr/bin/suid")
    );
}

#[test]
fn path_traversal_is_rejected_without_writing_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let victim = tmp.path().join("victim");
    fs::create_dir(&victim).unwrap();
    let layers_dir = store.root().join("layers");
    // Depth from a temp layer dir (store/layers/.tmp-x) up to tmp: 3 levels.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            LayerBuilder::new()
                .raw_file(b"../../../victim/a", b"x")
                .finish(),
            "'..'",
        ),
        (
            "absolute",
            LayerBuilder::new()
                .raw_file(b"/tmp/reddwarf-abs-victim", b"x")
                .finish(),
            "absolute",
        ),
        (
            "symlink",
            LayerBuilder::new()
                .raw_symlink(b"esc", b"../../../victim")
                .raw_file(b"esc/b", b"x")
                .finish(),
            "out of the layer",
        ),
        (
            "symlink-chain",
            LayerBuilder::new()
                .dir("d/", 0o755)
                .raw_symlink(b"d/up", b"..")
                .raw_symlink(b"d/up2", b"up/..")
                .raw_file(b"d/up2/c", b"x")
                .finish(),
            "out of the layer",
        ),
        (
            "hardlink",
            LayerBuilder::new()
                .hardlink("h", "../../../victim/secret")
                .finish(),
            "'..'",
        ),
    ];
    fs::write(victim.join("secret"), b"s").unwrap();
    for (name, layer, want) in cases {
        match import(&store, tmp.path(), name, &[layer]) {
            Err(Error::Invalid(m)) => assert!(m.contains(want), "{name}: {m}"),
            other => panic!("{name}: want Invalid, got {other:?}"),
        }
        let mut left: Vec<_> = fs::read_dir(&victim)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, vec!["secret"], "{name}: nothing written outside");
        assert_eq!(
            fs::read_dir(&layers_dir).unwrap().count(),
            0,
            "{name}: no layer kept"
        );
    }
    assert!(!Path::new("/tmp/reddwarf-abs-victim").exists());
    assert!(store.list().is_empty());

    // A symlink inside the layer is followed within it.
    let ok = LayerBuilder::new()
        .dir("real/", 0o755)
        .symlink("link", "/real")
        .file("link/f", 0o644, b"x")
        .finish();
    let image = import(&store, tmp.path(), "inside", &[ok]).unwrap();
    let l = layers_dir.join(&image.layers[0][7..]);
    assert_eq!(fs::read(l.join("real/f")).unwrap(), b"x");
}

#[test]
fn gc_removes_unused_images_and_keeps_used_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    let shared = LayerBuilder::new()
        .file("shared", 0o644, &[7u8; 100_000])
        .finish();
    let a = import(
        &store,
        tmp.path(),
        "a",
        &[
            shared.clone(),
            LayerBuilder::new()
                .file("a", 0o644, &[1u8; 50_000])
                .finish(),
        ],
    )
    .unwrap();
    let b = import(
        &store,
        tmp.path(),
        "b",
        &[
            shared,
            LayerBuilder::new()
                .file("b", 0o644, &[2u8; 300_000])
                .finish(),
        ],
    )
    .unwrap();
    let c = import(&store, tmp.path(), "c", &[busybox_layer().unwrap()]).unwrap();
    let before = store.disk_usage();
    assert!(before > 450_000, "{before}");

    // Nothing to do when under the target.
    assert_eq!(store.gc(&HashSet::new(), u64::MAX).unwrap(), 0);
    assert_eq!(store.list().len(), 3);

    // Keep a (by id) and c (by tag); b goes, its shared layer stays for a.
    let in_use: HashSet<String> = [a.id.clone(), "localhost/c:v1".to_string()].into();
    let freed = store.gc(&in_use, 0).unwrap();
    assert!(freed >= 300_000, "freed {freed}");
    assert_eq!(store.disk_usage(), before - freed);
    let ids: HashSet<String> = store.list().into_iter().map(|i| i.id).collect();
    assert_eq!(ids, [a.id.clone(), c.id.clone()].into());
    let layers = root.join("layers");
    assert!(layers.join(&b.layers[0][7..]).is_dir(), "shared layer kept");
    assert!(
        !layers.join(&b.layers[1][7..]).exists(),
        "b's own layer removed"
    );

    // Remove; unknown ids are NotFound; state survives a reopen.
    store.remove(&a.id).unwrap();
    assert!(!layers.join(&a.layers[0][7..]).exists(), "last user gone");
    assert!(matches!(store.remove(&a.id), Err(Error::NotFound(_))));
    let reopened = ImageStore::open(&root).unwrap();
    assert_eq!(reopened.list().len(), 1);
    assert_eq!(reopened.disk_usage(), store.disk_usage());
}

#[test]
fn many_layers_overflowing_mount_options_still_mount() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    // 60 layer paths of ~100 bytes each exceed the one page of mount data.
    let layers: Vec<Vec<u8>> = (0..60)
        .map(|i| {
            LayerBuilder::new()
                .file(&format!("f{i}"), 0o644, format!("{i}").as_bytes())
                .file("top", 0o644, format!("{i}").as_bytes())
                .finish()
        })
        .collect();
    let image = import(&store, tmp.path(), "many", &layers).unwrap();
    let dir = tmp.path().join("c");
    let _g = MountGuard(dir.clone());
    let rootfs = store.prepare_rootfs(&image, &dir).unwrap();
    assert_eq!(fs::read(rootfs.path.join("f0")).unwrap(), b"0");
    assert_eq!(fs::read(rootfs.path.join("f59")).unwrap(), b"59");
    assert_eq!(
        fs::read(rootfs.path.join("top")).unwrap(),
        b"59",
        "topmost layer wins"
    );
    rootfs.unmount().unwrap();
    assert!(!mounted(&dir.join("rootfs")));
}
