//! HTTPS for non-loopback registries, plain HTTP only for loopback and configured ones.
//! Needs a non-loopback address on this machine; skipped (with a note) without one.

mod common;

use reddwarf_images::testsupport::{
    non_loopback_ipv4, push_oci_layout, LocalRegistry, RegistryOptions,
};
use reddwarf_images::{ImageStore, PullError, PullOptions, Reference};

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_only_for_insecure_registries() {
    let Some(ip) = non_loopback_ipv4() else {
        eprintln!("skipped: no non-loopback IPv4 address");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::start_with(
        tmp.path(),
        &RegistryOptions {
            ip: Some(ip),
            ..Default::default()
        },
    )
    .unwrap();
    let (layout, img) = common::busybox_layout(tmp.path());
    let name = format!("{}/test/busybox:v1", reg.host());
    push_oci_layout(&layout, "v1", &name).unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();

    // Not loopback and not listed: HTTPS, which a plain-HTTP registry cannot answer.
    match store
        .pull(
            &Reference::parse(&name).unwrap(),
            None,
            &PullOptions::default(),
        )
        .await
    {
        Err(PullError::Network(m)) => {
            eprintln!("{m}");
            assert!(m.contains(&format!("https://{}/v2/", reg.host())), "{m}")
        }
        other => panic!("want Network, got {other:?}"),
    }
    let opts = PullOptions {
        insecure_registries: vec![reg.host()],
        ..Default::default()
    };
    let image = store
        .pull(&Reference::parse(&name).unwrap(), None, &opts)
        .await
        .unwrap();
    assert_eq!(image.id, img.image_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn https_registry_with_an_untrusted_certificate_is_refused() {
    let Some(ip) = non_loopback_ipv4() else {
        eprintln!("skipped: no non-loopback IPv4 address");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec![ip.to_string()]).unwrap();
    let opts = RegistryOptions {
        ip: Some(ip),
        tls_pem: Some((ck.cert.pem(), ck.signing_key.serialize_pem())),
        ..Default::default()
    };
    let reg = LocalRegistry::start_with(tmp.path(), &opts).unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let name = format!("{}/test/busybox:v1", reg.host());
    match store
        .pull(
            &Reference::parse(&name).unwrap(),
            None,
            &PullOptions::default(),
        )
        .await
    {
        Err(PullError::Network(m)) => {
            eprintln!("{m}");
            assert!(m.contains("certificate") && m.contains(&name), "{m}")
        }
        other => panic!("want Network, got {other:?}"),
    }
}
