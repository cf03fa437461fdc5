//! Tests of the PKI: creation, reuse, re-issue, and the TempDir other tests borrow.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use x509_parser::certificate::X509Certificate;

use super::der::pem_to_der;
use super::san::{cert_sans, host_name, parse_san, San};
use super::verify::check_client_cert;
use super::*;

/// A unique temporary directory removed on drop (no tempfile dependency needed).
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "reddwarf-{tag}-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn parse(pem: &str) -> X509Certificate<'static> {
    let der = pem_to_der(pem).unwrap();
    let der: &'static [u8] = Box::leak(der.as_ref().to_vec().into_boxed_slice());
    x509_parser::parse_x509_certificate(der).unwrap().1
}

fn subject(pem: &str) -> (Option<String>, Vec<String>) {
    let cert = parse(pem);
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .map(|a| a.as_str().unwrap().to_string());
    let orgs = cert
        .subject()
        .iter_organization()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    (cn, orgs)
}

#[test]
fn creates_then_reuses() {
    let dir = TempDir::new("pki");
    let pki_dir = dir.path().join("pki");
    let first = load_or_create(&pki_dir, &[]).unwrap();
    let second = load_or_create(&pki_dir, &[]).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        std::fs::read_to_string(pki_dir.join(CA_CERT)).unwrap(),
        first.ca_cert_pem
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in [CA_KEY, SERVER_KEY, ADMIN_KEY] {
            let mode = std::fs::metadata(pki_dir.join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
    }

    let ca = parse(&first.ca_cert_pem);
    assert_eq!(
        ca.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        CA_COMMON_NAME
    );
    assert!(ca.basic_constraints().unwrap().unwrap().value.ca);
    assert!(ca.key_usage().unwrap().unwrap().value.key_cert_sign());
    let years = (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp())
        / (365 * DAY as i64);
    assert_eq!(years, 10);

    let server = parse(&first.server_cert_pem);
    assert!(
        server
            .extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .server_auth
    );
    let sans = cert_sans(&server).unwrap();
    for want in [
        San::Ip("127.0.0.1".parse().unwrap()),
        San::Ip("::1".parse().unwrap()),
        San::Dns("localhost".into()),
        San::Dns("kubernetes".into()),
        San::Dns("kubernetes.default".into()),
        San::Dns("kubernetes.default.svc".into()),
    ] {
        assert!(sans.contains(&want), "{want} missing from {sans:?}");
    }
    if let Some(host) = host_name() {
        assert!(sans.contains(&San::Dns(host)));
    }

    let admin = parse(&first.admin_cert_pem);
    assert!(
        admin
            .extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .client_auth
    );
    assert_eq!(
        subject(&first.admin_cert_pem),
        (Some("admin".into()), vec!["system:masters".into()])
    );
}

#[test]
fn new_extra_san_reissues_only_the_serving_cert() {
    let dir = TempDir::new("pki-san");
    let first = load_or_create(dir.path(), &[]).unwrap();
    let extra = vec!["10.1.2.3".to_string(), "API.Example.com".to_string()];
    let second = load_or_create(dir.path(), &extra).unwrap();
    assert_eq!(first.ca_cert_pem, second.ca_cert_pem);
    assert_eq!(first.ca_key_pem, second.ca_key_pem);
    assert_eq!(first.admin_cert_pem, second.admin_cert_pem);
    assert_eq!(first.admin_key_pem, second.admin_key_pem);
    assert_ne!(first.server_cert_pem, second.server_cert_pem);
    let sans = cert_sans(&parse(&second.server_cert_pem)).unwrap();
    assert!(sans.contains(&San::Ip("10.1.2.3".parse().unwrap())));
    assert!(sans.contains(&San::Dns("api.example.com".into())));
    assert_eq!(
        std::fs::read_to_string(dir.path().join(SERVER_CERT)).unwrap(),
        second.server_cert_pem
    );

    // Same SANs again (a subset too): nothing changes.
    let third = load_or_create(dir.path(), &extra).unwrap();
    assert_eq!(second, third);
    let fourth = load_or_create(dir.path(), &extra[..1]).unwrap();
    assert_eq!(second, fourth);
}

#[test]
fn missing_leaf_files_are_reissued_and_ca_key_loss_is_an_error() {
    let dir = TempDir::new("pki-missing");
    let first = load_or_create(dir.path(), &[]).unwrap();
    std::fs::remove_file(dir.path().join(ADMIN_KEY)).unwrap();
    let second = load_or_create(dir.path(), &[]).unwrap();
    assert_eq!(first.ca_cert_pem, second.ca_cert_pem);
    assert_eq!(first.server_cert_pem, second.server_cert_pem);
    assert_ne!(first.admin_cert_pem, second.admin_cert_pem);

    std::fs::remove_file(dir.path().join(CA_KEY)).unwrap();
    let err = load_or_create(dir.path(), &[]).unwrap_err();
    assert!(format!("{err:#}").contains("ca.key"), "{err:#}");

    // Without ca.crt a whole new PKI is created.
    std::fs::remove_file(dir.path().join(CA_CERT)).unwrap();
    let third = load_or_create(dir.path(), &[]).unwrap();
    assert_ne!(third.ca_cert_pem, first.ca_cert_pem);
    assert_ne!(third.server_cert_pem, second.server_cert_pem);
    assert_ne!(third.admin_cert_pem, second.admin_cert_pem);
}

#[test]
fn rejects_invalid_extra_san() {
    let dir = TempDir::new("pki-bad-san");
    assert!(load_or_create(dir.path(), &["not a name!".to_string()]).is_err());
    assert_eq!(
        parse_san("[fd00::1]").unwrap(),
        San::Ip("fd00::1".parse().unwrap())
    );
    assert_eq!(
        parse_san("*.Example.org.").unwrap(),
        San::Dns("*.example.org".into())
    );
}

#[test]
fn client_cert_with_several_groups() {
    let dir = TempDir::new("pki-client");
    let pki = load_or_create(dir.path(), &[]).unwrap();
    let groups = vec!["dev".to_string(), "system:authenticated".to_string()];
    let (cert, key) = issue_client_cert(&pki, "jane", &groups).unwrap();
    assert_eq!(subject(&cert), (Some("jane".into()), groups.clone()));
    let ca_der = pem_to_der(&pki.ca_cert_pem).unwrap();
    check_client_cert(&ca_der, &cert, &key, "jane", &groups).unwrap();

    let (cert, key) = issue_client_cert(&pki, "nobody", &[]).unwrap();
    assert_eq!(subject(&cert), (Some("nobody".into()), vec![]));
    check_client_cert(&ca_der, &cert, &key, "nobody", &[]).unwrap();

    // Long subjects need multi-byte DER lengths.
    let many: Vec<String> = (0..40).map(|i| format!("group-number-{i}")).collect();
    let (cert, key) = issue_client_cert(&pki, "many", &many).unwrap();
    assert_eq!(subject(&cert).1, many);
    check_client_cert(&ca_der, &cert, &key, "many", &many).unwrap();

    // A certificate of another CA is not accepted as the admin cert.
    let other = TempDir::new("pki-other");
    let other = load_or_create(other.path(), &[]).unwrap();
    assert!(check_client_cert(
        &ca_der,
        &other.admin_cert_pem,
        &other.admin_key_pem,
        "admin",
        &["system:masters".to_string()]
    )
    .is_err());
}

#[test]
fn kubeconfig() {
    let dir = TempDir::new("pki-kubeconfig");
    let pki = load_or_create(&dir.path().join("pki"), &[]).unwrap();
    let path = dir.path().join("sub").join("admin.kubeconfig");
    let url = "https://127.0.0.1:6443";
    write_admin_kubeconfig(&path, url, &pki).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("server: \"{url}\"")), "{text}");
    assert!(text.contains("current-context: reddwarf"));

    let field = |name: &str| -> String {
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("{name} missing"));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line)
            .unwrap();
        String::from_utf8(bytes).unwrap()
    };
    assert_eq!(field("certificate-authority-data"), pki.ca_cert_pem);
    assert_eq!(field("client-certificate-data"), pki.admin_cert_pem);
    assert_eq!(field("client-key-data"), pki.admin_key_pem);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Overwriting works and leaves no temp file behind.
    write_admin_kubeconfig(&path, "https://[::1]:6443", &pki).unwrap();
    let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
}
