//! First contact: pin the cluster CA with the token's hash, then obtain the node's client
//! certificate through a CertificateSigningRequest (approved by the server for a valid token).
//! Kept in `<data-dir>/pki/`, so a restart needs no token.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{json, Value};

use crate::https::{client_config, ring_provider, Endpoint};
use crate::token::{ca_hash, NodeToken};

/// The node's credentials on disk.
pub struct Credentials {
    /// The cluster CA certificate (PEM).
    pub ca_pem: String,
    /// The node's client certificate (PEM), signed by the cluster CA.
    pub cert_pem: String,
    /// The node's private key (PEM).
    pub key_pem: String,
}

fn paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let pki = dir.join("pki");
    (
        pki.join("ca.crt"),
        pki.join("node.crt"),
        pki.join("node.key"),
    )
}

/// Seconds of validity left, and the whole lifetime, of a PEM certificate.
fn validity(cert_pem: &str) -> Option<(i64, i64)> {
    use rustls_pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let v = cert.validity();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    let (start, end) = (v.not_before.timestamp(), v.not_after.timestamp());
    Some((end - now, end - start))
}

/// Loads the node's credentials, bootstrapping (or renewing) them when needed.
pub async fn credentials(
    server: &(String, u16),
    token: Option<&str>,
    data_dir: &Path,
    node: &str,
) -> Result<Credentials> {
    let (ca_p, cert_p, key_p) = paths(data_dir);
    let stored = match (
        std::fs::read_to_string(&ca_p),
        std::fs::read_to_string(&cert_p),
        std::fs::read_to_string(&key_p),
    ) {
        (Ok(ca_pem), Ok(cert_pem), Ok(key_pem)) => Some(Credentials {
            ca_pem,
            cert_pem,
            key_pem,
        }),
        _ => None,
    };
    if let Some(c) = stored {
        match validity(&c.cert_pem) {
            // Renew in the last fifth of the lifetime, as the kubelet's certificate manager
            // does (it picks a point between 70 and 90%).
            Some((left, life)) if left > life / 5 => {
                if !refused(server, &c).await {
                    return Ok(c);
                }
                // Revoked by the cluster's administrator (`reddwarf certificate revoke`):
                // join again with the token, if there is one.
                tracing::warn!("the server refuses the node certificate: bootstrapping again");
            }
            Some((left, _)) if left > 60 => {
                tracing::info!("node certificate expires in {left}s: renewing");
                let ep = Endpoint {
                    host: server.0.clone(),
                    port: server.1,
                    tls: client_config(&c.ca_pem, Some((&c.cert_pem, &c.key_pem)), &[])?,
                    alternates: None,
                };
                match request_certificate(&ep, None, node).await {
                    Ok((cert_pem, key_pem)) => {
                        let c = Credentials {
                            ca_pem: c.ca_pem,
                            cert_pem,
                            key_pem,
                        };
                        store(data_dir, &c)?;
                        return Ok(c);
                    }
                    Err(e) => {
                        tracing::warn!("renewing the node certificate: {e:#}; using the old one");
                        return Ok(c);
                    }
                }
            }
            _ => tracing::info!("the stored node certificate has expired: bootstrapping again"),
        }
    }
    let token = token.ok_or_else(|| {
        anyhow!(
            "no node certificate in {} and no --token: give the token from the server's DIR/node-token",
            data_dir.join("pki").display()
        )
    })?;
    let parsed = NodeToken::parse(token)?;
    let ca_pem = fetch_ca(server).await?;
    let got = ca_hash(&ca_pem);
    if got != parsed.ca_hash {
        bail!(
            "the server at {}:{} presents a cluster CA whose hash {got} does not match the token's {}: wrong server or wrong token",
            server.0, server.1, parsed.ca_hash
        );
    }
    let ep = Endpoint {
        host: server.0.clone(),
        port: server.1,
        tls: client_config(&ca_pem, None, &[])?,
        alternates: None,
    };
    let (cert_pem, key_pem) = request_certificate(&ep, Some(&parsed.bearer()), node).await?;
    let c = Credentials {
        ca_pem,
        cert_pem,
        key_pem,
    };
    store(data_dir, &c)?;
    tracing::info!("node {node}: obtained a client certificate from the cluster CA");
    Ok(c)
}

fn store(dir: &Path, c: &Credentials) -> Result<()> {
    let (ca_p, cert_p, key_p) = paths(dir);
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).with_context(|| format!("creating {}", pki.display()))?;
    for (p, data, mode) in [
        (&ca_p, &c.ca_pem, 0o644),
        (&cert_p, &c.cert_pem, 0o644),
        (&key_p, &c.key_pem, 0o600),
    ] {
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, p)?;
    }
    Ok(())
}

/// Accepts any server certificate: used only to download `/cacerts`, whose content is then
/// checked against the token's hash before anything is trusted.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Downloads the cluster CA from `/cacerts` without trusting it yet: the caller checks it
/// against a token's hash.
pub async fn fetch_ca(server: &(String, u16)) -> Result<String> {
    let provider = ring_provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let ep = Endpoint {
        host: server.0.clone(),
        port: server.1,
        tls: Arc::new(config),
        alternates: None,
    };
    let (code, body) = request(&ep, "GET", "/cacerts", None, None).await?;
    if code != 200 {
        bail!(
            "GET /cacerts answered {code}: is {}:{} a reddwarf server?",
            server.0,
            server.1
        );
    }
    String::from_utf8(body.to_vec()).context("/cacerts is not text")
}

/// Whether the server answers a request made with the stored certificate with 401 (a
/// revoked certificate); an unreachable server is not a refusal.
async fn refused(server: &(String, u16), c: &Credentials) -> bool {
    let Ok(tls) = client_config(&c.ca_pem, Some((&c.cert_pem, &c.key_pem)), &[]) else {
        return false;
    };
    let ep = Endpoint {
        host: server.0.clone(),
        port: server.1,
        tls,
        alternates: None,
    };
    matches!(request(&ep, "GET", "/api", None, None).await, Ok((401, _)))
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn request(
    ep: &Endpoint,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Bytes)> {
    let (tls, _) = ep.connect(ep.tls.clone()).await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, ep.authority())
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "reddwarf-agent");
    if let Some(t) = bearer {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let resp = send
        .send_request(req.body(Full::new(Bytes::from(body)))?)
        .await?;
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((code, bytes))
}

/// Creates a kubelet-client CSR for `node` and waits for its certificate. `bearer`: the node
/// token on first contact; `None` when the endpoint presents the current node certificate.
async fn request_certificate(
    ep: &Endpoint,
    bearer: Option<&str>,
    node: &str,
) -> Result<(String, String)> {
    let key = KeyPair::generate().context("generating the node key")?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "system:nodes");
    dn.push(DnType::CommonName, format!("system:node:{node}"));
    params.distinguished_name = dn;
    let csr_pem = params.serialize_request(&key)?.pem()?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let csr = json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": format!("node-csr-{node}-")},
        "spec": {
            "request": b64.encode(csr_pem.as_bytes()),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
        }
    });
    let path = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    let (code, body) = request(ep, "POST", path, bearer, Some(csr)).await?;
    if code != 201 {
        bail!(
            "creating the node's certificate signing request answered {code}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let created: Value = serde_json::from_slice(&body)?;
    let name = created["metadata"]["name"]
        .as_str()
        .ok_or_else(|| anyhow!("the created CSR has no name"))?
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (code, body) = request(ep, "GET", &format!("{path}/{name}"), bearer, None).await?;
        if code == 200 {
            let csr: Value = serde_json::from_slice(&body)?;
            for c in csr["status"]["conditions"].as_array().into_iter().flatten() {
                if matches!(c["type"].as_str(), Some("Denied" | "Failed")) && c["status"] == "True"
                {
                    bail!(
                        "certificate signing request {name} was {}: {}",
                        c["type"].as_str().unwrap_or_default().to_lowercase(),
                        c["message"].as_str().unwrap_or("")
                    );
                }
            }
            if let Some(cert) = csr["status"]["certificate"]
                .as_str()
                .filter(|c| !c.is_empty())
            {
                let pem = String::from_utf8(b64.decode(cert)?)?;
                return Ok((pem, key.serialize_pem()));
            }
        }
        if Instant::now() > deadline {
            bail!("certificate signing request {name} was not signed within 2 minutes (is the server's csrsigning controller running?)");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
