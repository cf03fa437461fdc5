//! Pulls from a local docker-registry (Debian's /usr/bin/docker-registry) fed by skopeo.

mod common;

use std::time::Instant;

use reddwarf_images::testsupport::{
    build_multiplatform_oci_layout, push_oci_layout, push_oci_layout_all, push_oci_layout_creds,
    LocalRegistry,
};
use reddwarf_images::{Credentials, ImageStore, Platform, PullError, PullOptions, Reference};

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_by_tag_then_digest_and_warm_pull_downloads_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::start(tmp.path()).unwrap();
    let (layout, img) = common::busybox_layout(tmp.path());
    let name = format!("{}/test/busybox", reg.host());
    push_oci_layout(&layout, "v1", &format!("{name}:v1")).unwrap();

    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let opts = PullOptions::default();
    let t = Instant::now();
    let image = store
        .pull(&r(&format!("{name}:v1")), None, &opts)
        .await
        .unwrap();
    let cold = t.elapsed();
    assert_eq!(image.id, img.image_id);
    assert_eq!(image.layers, img.diff_ids);
    assert_eq!(image.repo_tags, vec![format!("{name}:v1")]);
    assert_eq!(image.config.cmd, vec!["sh".to_string()]);
    assert!(image.config.env.iter().any(|e| e.starts_with("PATH=")));
    assert_eq!(image.repo_digests.len(), 1);
    assert!(image.size > 500_000, "size {}", image.size);
    let (blobs_cold, bytes_cold) = store.fetch_stats();
    assert_eq!(blobs_cold, 2, "config and one layer");

    let t = Instant::now();
    let again = store
        .pull(&r(&format!("{name}:v1")), None, &opts)
        .await
        .unwrap();
    let warm = t.elapsed();
    assert_eq!(again, image);
    assert_eq!(
        store.fetch_stats(),
        (blobs_cold, bytes_cold),
        "a warm pull downloads no blob"
    );
    eprintln!(
        "busybox pull ({} bytes compressed): cold {cold:?}, warm {warm:?}",
        bytes_cold
    );

    // By digest, into a fresh store too.
    let by_digest = r(&image.repo_digests[0]);
    assert!(by_digest.digest.is_some() && by_digest.tag.is_none());
    assert_eq!(
        store.pull(&by_digest, None, &opts).await.unwrap().id,
        image.id
    );
    let fresh = ImageStore::open(&tmp.path().join("store2")).unwrap();
    let d = fresh.pull(&by_digest, None, &opts).await.unwrap();
    assert_eq!(d.id, image.id);
    assert!(d.repo_tags.is_empty());

    // Lookups by tag, digest and id.
    assert_eq!(store.get(&r(&format!("{name}:v1"))).unwrap().id, image.id);
    assert_eq!(store.get(&by_digest).unwrap().id, image.id);
    assert_eq!(store.get_by_id(&image.id).unwrap().id, image.id);
    assert_eq!(store.resolve(&image.id[7..19]).unwrap().id, image.id);
    assert!(store.get(&r(&format!("{name}:v2"))).is_none());
    assert_eq!(store.list().len(), 1);

    // The record survives a reopen.
    drop(store);
    let reopened = ImageStore::open(&tmp.path().join("store")).unwrap();
    assert_eq!(reopened.list(), vec![again]);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_pulls_of_one_image_download_once() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::start(tmp.path()).unwrap();
    let (layout, img) = common::busybox_layout(tmp.path());
    let name = format!("{}/test/busybox:v1", reg.host());
    push_oci_layout(&layout, "v1", &name).unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let opts = PullOptions::default();
    let (a, b) = (r(&name), r(&name));
    let (x, y) = tokio::join!(store.pull(&a, None, &opts), store.pull(&b, None, &opts));
    assert_eq!(x.unwrap().id, img.image_id);
    assert_eq!(y.unwrap().id, img.image_id);
    assert_eq!(
        store.fetch_stats().0,
        2,
        "config and layer fetched once each"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_list_picks_the_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::start(tmp.path()).unwrap();
    let layout = tmp.path().join("layout");
    let mp = build_multiplatform_oci_layout(&layout, "multi").unwrap();
    let name = format!("{}/test/multi:v1", reg.host());
    push_oci_layout_all(&layout, "multi", &name).unwrap();

    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let host = store
        .pull(&r(&name), None, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(host.id, mp.host.image_id, "host platform chosen");
    // The repo digest names the index, as containerd records it.
    assert_eq!(
        host.repo_digests,
        vec![format!("{}/test/multi@{}", reg.host(), mp.index_digest)]
    );

    let other_opts = PullOptions {
        platform: mp.other_platform.clone(),
        ..Default::default()
    };
    let other = store.pull(&r(&name), None, &other_opts).await.unwrap();
    assert_eq!(other.id, mp.other.image_id);
    assert_eq!(other.config.cmd, vec!["cat", "/platform.txt"]);
    // The tag moved to the image pulled last.
    assert!(store.get_by_id(&host.id).unwrap().repo_tags.is_empty());

    let none = PullOptions {
        platform: Platform {
            os: "linux".into(),
            architecture: "s390x".into(),
            variant: None,
        },
        ..Default::default()
    };
    match store.pull(&r(&name), None, &none).await {
        Err(PullError::NotFound(m)) => {
            assert!(m.contains("no match for platform linux/s390x"), "{m}")
        }
        other => panic!("want NotFound, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_tags_digests_and_repositories_are_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::start(tmp.path()).unwrap();
    let (layout, _) = common::busybox_layout(tmp.path());
    push_oci_layout(&layout, "v1", &format!("{}/test/busybox:v1", reg.host())).unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let opts = PullOptions::default();

    let tag = format!("{}/test/busybox:nope", reg.host());
    match store.pull(&r(&tag), None, &opts).await {
        Err(PullError::NotFound(m)) => {
            assert_eq!(
                m,
                format!("failed to resolve reference \"{tag}\": {tag}: not found")
            )
        }
        other => panic!("want NotFound, got {other:?}"),
    }
    let dig = format!("{}/test/busybox@sha256:{}", reg.host(), "0".repeat(64));
    match store.pull(&r(&dig), None, &opts).await {
        Err(PullError::NotFound(m)) => assert!(
            m.contains("not found") && m.contains(&"0".repeat(64)),
            "{m}"
        ),
        other => panic!("want NotFound, got {other:?}"),
    }
    let repo = format!("{}/no/such:v1", reg.host());
    match store.pull(&r(&repo), None, &opts).await {
        Err(PullError::NotFound(m)) => {
            assert!(m.contains("no/such:v1") && m.ends_with("not found"), "{m}")
        }
        other => panic!("want NotFound, got {other:?}"),
    }
    assert!(store.list().is_empty());

    // Nothing listening: a network error naming the address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    match store
        .pull(&r(&format!("127.0.0.1:{port}/a:b")), None, &opts)
        .await
    {
        Err(PullError::Network(m)) => assert!(
            m.contains(&format!("127.0.0.1:{port}")) && m.contains("refused"),
            "{m}"
        ),
        other => panic!("want Network, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_blob_fails_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::start(tmp.path()).unwrap();
    let (layout, img) = common::busybox_layout(tmp.path());
    let name = format!("{}/test/busybox:v1", reg.host());
    push_oci_layout(&layout, "v1", &name).unwrap();
    // Overwrite the layer blob's bytes in the registry's storage (same length, one bit flipped).
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&img.manifest_digest[7..])).unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap()[7..].to_string();
    let data = reg.data_dir().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{layer}/data",
        &layer[..2]
    ));
    let mut bytes = std::fs::read(&data).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(&data, bytes).unwrap();

    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    match store.pull(&r(&name), None, &PullOptions::default()).await {
        Err(PullError::Invalid(m)) => assert!(
            m.contains("failed verification") && m.contains(&layer),
            "{m}"
        ),
        other => panic!("want Invalid, got {other:?}"),
    }
    assert!(store.list().is_empty());
    assert_eq!(
        std::fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0,
        "temp file removed"
    );
    assert_eq!(
        std::fs::read_dir(store.root().join("layers"))
            .unwrap()
            .count(),
        0
    );
}

/// `s3cret` hashed with bcrypt (cost 5), made once with `crypt(3)`; avoids a bcrypt dependency.
const HTPASSWD: &str = "tester:$2b$05$abcdefghijklmnopqrstuuLK7U1u6pVRmL7L1BBM2aS35PSZnDXlK\n";

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::start_with_htpasswd(tmp.path(), HTPASSWD).unwrap();
    let (layout, img) = common::busybox_layout(tmp.path());
    let name = format!("{}/private/busybox:v1", reg.host());
    push_oci_layout_creds(&layout, "v1", &name, "tester:s3cret").unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let opts = PullOptions::default();

    match store.pull(&r(&name), None, &opts).await {
        Err(PullError::Unauthorized(m)) => {
            assert!(m.contains("pull access denied") && m.contains(&name), "{m}")
        }
        other => panic!("want Unauthorized, got {other:?}"),
    }
    let wrong = Credentials {
        username: "tester".into(),
        password: "wrong".into(),
    };
    match store.pull(&r(&name), Some(&wrong), &opts).await {
        Err(PullError::Unauthorized(m)) => assert!(
            m.contains("authorization failed for user \"tester\""),
            "{m}"
        ),
        other => panic!("want Unauthorized, got {other:?}"),
    }
    // Credentials as an image pull secret would carry them.
    let secret = format!(
        r#"{{"auths":{{"http://{}":{{"username":"tester","password":"s3cret"}}}}}}"#,
        reg.host()
    );
    let creds =
        reddwarf_images::credentials_from_dockerconfigjson(secret.as_bytes(), &reg.host()).unwrap();
    let image = store.pull(&r(&name), Some(&creds), &opts).await.unwrap();
    assert_eq!(image.id, img.image_id);
}
