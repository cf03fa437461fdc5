//! TLS for the API server: rustls configurations built from the cluster [`Pki`] and the client
//! identity taken from a verified client certificate.
//!
//! Every rustls builder here gets the ring provider explicitly, so nothing depends on a
//! process-wide default `CryptoProvider`.

use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::pki::Pki;

/// Identity of a client taken from a verified client certificate.
#[derive(Clone, Debug, PartialEq)]
pub struct CertIdentity {
    /// Subject common name.
    pub user: String,
    /// Subject organization entries, in certificate order.
    pub groups: Vec<String>,
}

fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn parse_certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("parsing {what}: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("parsing {what}: no PEM certificate found");
    }
    Ok(certs)
}

fn parse_key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| anyhow!("parsing {what}: {e}"))
}

fn roots(ca_pem: &str) -> Result<Arc<rustls::RootCertStore>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in parse_certs(ca_pem, "the CA certificate")? {
        roots
            .add(cert)
            .context("the CA certificate is not a usable trust anchor")?;
    }
    Ok(Arc::new(roots))
}

/// rustls `ServerConfig` for the API server: the serving certificate and key from `pki`, ALPN
/// `h2` then `http/1.1`, and client certificates requested and verified against the cluster CA
/// but optional: anonymous clients complete the handshake (then [`peer_identity`] is `None`), a
/// client presenting a certificate the CA did not issue fails it.
pub fn server_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>> {
    let provider = ring_provider();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots(&pki.ca_cert_pem)?,
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .context("building the client certificate verifier")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("choosing TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            parse_certs(&pki.server_cert_pem, "the serving certificate")?,
            parse_key(&pki.server_key_pem, "the serving key")?,
        )
        .context("loading the serving certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The identity in the client certificate of a connection, after the handshake: subject CN as
/// user, subject O entries as groups. `None` if the client sent no certificate (or, defensively,
/// if the certificate has no CN or cannot be parsed). rustls only exposes certificates that the
/// verifier accepted, so the identity is trustworthy.
pub fn peer_identity(conn: &rustls::ServerConnection) -> Option<CertIdentity> {
    identity_from_der(conn.peer_certificates()?.first()?)
}

/// CN -> user, O entries -> groups of a DER certificate.
pub fn identity_from_der(der: &[u8]) -> Option<CertIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    if user.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|attr| attr.as_str().ok())
        .map(str::to_string)
        .collect();
    Some(CertIdentity { user, groups })
}

/// rustls `ClientConfig` trusting only the cluster CA (`ca_pem`) and, if given, presenting the
/// client certificate `(cert PEM, key PEM)`. No ALPN protocols are set; callers that want HTTP/2
/// set `alpn_protocols` on a clone (`(*config).clone()`).
pub fn client_config(
    ca_pem: &str,
    client: Option<(&str, &str)>,
) -> Result<Arc<rustls::ClientConfig>> {
    let builder = rustls::ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .context("choosing TLS protocol versions")?
        .with_root_certificates(roots(ca_pem)?);
    let config = match client {
        Some((cert_pem, key_pem)) => builder
            .with_client_auth_cert(
                parse_certs(cert_pem, "the client certificate")?,
                parse_key(key_pem, "the client key")?,
            )
            .context("loading the client certificate and key")?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{self, tests::TempDir};
    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    struct Outcome {
        /// Server side: handshake result, identity on success.
        server: Result<Option<CertIdentity>, std::io::Error>,
        /// Client side: what the client read after its handshake, or the error.
        client: Result<Vec<u8>, std::io::Error>,
        alpn: Option<Vec<u8>>,
    }

    /// One connection: the server answers with its view of the identity, the client reads it.
    async fn handshake(
        server: Arc<rustls::ServerConfig>,
        client: Arc<rustls::ClientConfig>,
        name: &str,
    ) -> Outcome {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = tokio_rustls::TlsAcceptor::from(server).accept(tcp).await?;
            let identity = peer_identity(tls.get_ref().1);
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            tls.write_all(format!("{identity:?}").as_bytes()).await?;
            tls.shutdown().await?;
            Ok::<_, std::io::Error>((identity, alpn))
        });

        let tcp = TcpStream::connect(addr).await.unwrap();
        let server_name = ServerName::try_from(name.to_string()).unwrap();
        let client_result = async {
            let mut tls = tokio_rustls::TlsConnector::from(client)
                .connect(server_name, tcp)
                .await?;
            let mut buf = Vec::new();
            tls.read_to_end(&mut buf).await?;
            Ok(buf)
        }
        .await;
        let server_result = server_task.await.unwrap();
        let alpn = server_result.as_ref().ok().and_then(|(_, a)| a.clone());
        Outcome {
            server: server_result.map(|(identity, _)| identity),
            client: client_result,
            alpn,
        }
    }

    #[tokio::test]
    async fn admin_anonymous_and_foreign_clients() {
        let dir = TempDir::new("tls");
        let pki = pki::load_or_create(dir.path(), &[]).unwrap();
        let server = server_config(&pki).unwrap();

        // Admin client certificate.
        let client = client_config(
            &pki.ca_cert_pem,
            Some((&pki.admin_cert_pem, &pki.admin_key_pem)),
        )
        .unwrap();
        let out = handshake(server.clone(), client, "localhost").await;
        let admin = CertIdentity {
            user: "admin".into(),
            groups: vec!["system:masters".into()],
        };
        assert_eq!(out.server.unwrap(), Some(admin.clone()));
        assert_eq!(
            out.client.unwrap(),
            format!("{:?}", Some(admin)).into_bytes()
        );

        // Client offering ALPN gets h2; by IP address too.
        let mut h2 = (*client_config(&pki.ca_cert_pem, None).unwrap()).clone();
        h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let out = handshake(server.clone(), Arc::new(h2), "127.0.0.1").await;
        assert_eq!(out.alpn.as_deref(), Some(&b"h2"[..]));

        // Anonymous client: handshake succeeds, no identity.
        let anonymous = client_config(&pki.ca_cert_pem, None).unwrap();
        let out = handshake(server.clone(), anonymous, "localhost").await;
        assert_eq!(out.server.unwrap(), None);
        assert_eq!(out.client.unwrap(), b"None".to_vec());

        // A user certificate issued by the cluster CA, with several groups.
        let groups = vec!["dev".to_string(), "ops".to_string()];
        let (cert, key) = pki::issue_client_cert(&pki, "jane", &groups).unwrap();
        let client = client_config(&pki.ca_cert_pem, Some((&cert, &key))).unwrap();
        let out = handshake(server.clone(), client, "localhost").await;
        assert_eq!(
            out.server.unwrap(),
            Some(CertIdentity {
                user: "jane".into(),
                groups
            })
        );

        // A client certificate from a different CA is rejected by the handshake.
        let other_dir = TempDir::new("tls-other");
        let other = pki::load_or_create(other_dir.path(), &[]).unwrap();
        let foreign = client_config(
            &pki.ca_cert_pem,
            Some((&other.admin_cert_pem, &other.admin_key_pem)),
        )
        .unwrap();
        let out = handshake(server.clone(), foreign, "localhost").await;
        assert!(out.server.is_err(), "server accepted a foreign client cert");
        // TLS 1.3 clients finish their side first; they see the alert when reading.
        assert!(out.client.is_err(), "client got {:?}", out.client);

        // A client that does not trust our CA refuses the server.
        let distrustful = client_config(&other.ca_cert_pem, None).unwrap();
        let out = handshake(server, distrustful, "localhost").await;
        assert!(out.client.is_err());
        assert!(out.server.is_err());
    }

    #[test]
    fn bad_pem_is_an_error() {
        assert!(client_config("not a pem", None).is_err());
        assert!(identity_from_der(b"garbage").is_none());
    }
}
