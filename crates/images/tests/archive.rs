//! Importing archives written by skopeo: `oci-archive:` and `docker-archive:`.

mod common;

use std::fs;

use common::MountGuard;
use reddwarf_images::testsupport::{build_multiplatform_oci_layout, skopeo};
use reddwarf_images::{ImageStore, Reference};

#[test]
fn oci_archive_from_skopeo() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, img) = common::busybox_layout(tmp.path());
    let archive = tmp.path().join("bb-oci.tar");
    let src = format!("oci:{}:v1", layout.display());
    let dst = format!("oci-archive:{}:localhost/busybox:1.0", archive.display());
    skopeo(&["copy", "--insecure-policy", &src, &dst]).unwrap();

    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let images = store.import_archive(&archive).unwrap();
    assert_eq!(images.len(), 1);
    let image = &images[0];
    assert_eq!(image.id, img.image_id);
    assert_eq!(image.repo_tags, vec!["localhost/busybox:1.0"]);
    assert_eq!(image.repo_digests.len(), 1);
    assert!(image.repo_digests[0].starts_with("localhost/busybox@sha256:"));
    assert_eq!(
        store
            .get(&Reference::parse("localhost/busybox:1.0").unwrap())
            .unwrap()
            .id,
        img.image_id
    );

    // Usable as a root filesystem.
    let dir = tmp.path().join("c");
    let _g = MountGuard(dir.clone());
    let rootfs = store.prepare_rootfs(image, &dir).unwrap();
    assert!(rootfs.path.join("bin/busybox").is_file());
    rootfs.unmount().unwrap();

    // A second import is a no-op that keeps the name.
    let again = store.import_archive(&archive).unwrap();
    assert_eq!(&again[0], image);
}

#[test]
fn docker_archive_from_skopeo() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, img) = common::busybox_layout(tmp.path());
    let archive = tmp.path().join("bb-docker.tar");
    let src = format!("oci:{}:v1", layout.display());
    let dst = format!("docker-archive:{}:busybox:v1", archive.display());
    skopeo(&["copy", "--insecure-policy", &src, &dst]).unwrap();

    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let images = store.import_archive(&archive).unwrap();
    assert_eq!(images.len(), 1);
    let image = &images[0];
    // skopeo rewrites the config for the docker format; the layers are the same content.
    assert_eq!(image.layers, img.diff_ids);
    assert_eq!(image.repo_tags, vec!["docker.io/library/busybox:v1"]);
    assert_eq!(image.config.cmd, vec!["sh"]);
    assert!(image.repo_digests.is_empty());
    assert_eq!(
        store
            .get(&Reference::parse("busybox:v1").unwrap())
            .unwrap()
            .id,
        image.id
    );
    let layer = store.root().join("layers").join(&image.layers[0][7..]);
    assert!(layer.join("bin/busybox").is_file());

    // `docker save | gzip` archives import too.
    let gz = tmp.path().join("bb-docker.tar.gz");
    let mut enc =
        flate2::write::GzEncoder::new(fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    std::io::copy(&mut fs::File::open(&archive).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap();
    let store2 = ImageStore::open(&tmp.path().join("store2")).unwrap();
    assert_eq!(store2.import_archive(&gz).unwrap()[0].id, image.id);
    assert_eq!(fs::read_dir(store2.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn multi_platform_oci_archive_imports_the_host_image() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let mp = build_multiplatform_oci_layout(&layout, "multi").unwrap();
    let archive = tmp.path().join("multi.tar");
    let src = format!("oci:{}:multi", layout.display());
    let dst = format!("oci-archive:{}:localhost/multi:v1", archive.display());
    skopeo(&["copy", "--insecure-policy", "--all", &src, &dst]).unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let images = store.import_archive(&archive).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].id, mp.host.image_id);
    assert_eq!(images[0].repo_tags, vec!["localhost/multi:v1"]);
}

#[test]
fn not_an_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("x.tar");
    let mut b = tar::Builder::new(fs::File::create(&f).unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    b.append_data(&mut h, "hello", &b"x"[..]).unwrap();
    b.finish().unwrap();
    drop(b);
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let err = store.import_archive(&f).unwrap_err().to_string();
    assert!(err.contains("neither an OCI archive"), "{err}");
}
