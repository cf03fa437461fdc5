//! HTTPS to the control plane with rustls (ring): a multiplexed HTTP/2 `kube::Client` for the
//! API, and single HTTP/1.1 connections for the tunnel's WebSocket upgrade.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Where the server is and how to trust it (and, once bootstrapped, who we are).
#[derive(Clone)]
pub struct Endpoint {
    /// The server's host name or address.
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// TLS settings: the pinned cluster CA, and the node's certificate once it has one.
    pub tls: Arc<rustls::ClientConfig>,
    /// Other control-plane members to move to when this one cannot be reached.
    pub alternates: Option<Arc<Servers>>,
}

/// Every control-plane member an agent may use, and the one it uses now: connections go to
/// the current one and move on, in order, when it cannot be reached.
pub struct Servers {
    list: Vec<(String, u16)>,
    current: std::sync::atomic::AtomicUsize,
}

impl Servers {
    /// The members, the first one current.
    pub fn new(list: Vec<(String, u16)>) -> Arc<Servers> {
        Arc::new(Servers {
            list,
            current: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn current(&self) -> usize {
        self.current.load(std::sync::atomic::Ordering::Relaxed) % self.list.len().max(1)
    }
}

/// `https://a:1,https://b:2` (or one URL) → every (host, port).
pub fn parse_server_urls(urls: &str) -> Result<Vec<(String, u16)>> {
    let list: Vec<(String, u16)> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(parse_server_url)
        .collect::<Result<_>>()?;
    if list.is_empty() {
        bail!("no --server given: the control plane's https://HOST:PORT");
    }
    Ok(list)
}

/// rustls' ring crypto provider, the one every TLS config of the agent uses.
pub fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `https://host:port` → (host, port).
pub fn parse_server_url(url: &str) -> Result<(String, u16)> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| anyhow!("--server must be an https:// URL, got {url:?}"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.to_string(),
            p.parse::<u16>()
                .map_err(|_| anyhow!("bad port in --server {url:?}"))?,
        ),
        _ => (rest.to_string(), 6443),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        bail!("no host in --server {url:?}");
    }
    Ok((host, port))
}

/// A client configuration trusting exactly `ca_pem`, presenting `client` if given.
pub fn client_config(
    ca_pem: &str,
    client: Option<(&str, &str)>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.context("parsing the CA certificate")?)
            .context("the CA certificate is not a usable trust anchor")?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => {
            let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .context("parsing the node certificate")?;
            let key =
                PrivateKeyDer::from_pem_slice(key.as_bytes()).context("parsing the node key")?;
            builder.with_client_auth_cert(certs, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

impl Endpoint {
    /// `host:port` for a URL or a `Host` header, with an IPv6 host in brackets: the current
    /// member's when there are several.
    pub fn authority(&self) -> String {
        match &self.alternates {
            Some(s) if !s.list.is_empty() => {
                let (h, p) = &s.list[s.current()];
                authority(h, *p)
            }
            _ => authority(&self.host, self.port),
        }
    }

    /// A TLS connection with `config` (whose ALPN decides HTTP/1.1 or HTTP/2): to the current
    /// member, or the next one that answers when it does not.
    pub async fn connect(
        &self,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<(TlsStream<TcpStream>, std::net::SocketAddr)> {
        let Some(servers) = self.alternates.as_ref().filter(|s| s.list.len() > 1) else {
            return connect_to(&self.host, self.port, config).await;
        };
        let start = servers.current();
        let n = servers.list.len();
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            let (host, port) = &servers.list[i];
            let attempt = tokio::time::timeout(
                std::time::Duration::from_secs(3),
                connect_to(host, *port, config.clone()),
            )
            .await
            .unwrap_or_else(|_| {
                Err(anyhow!(
                    "connecting to {} timed out",
                    authority(host, *port)
                ))
            });
            match attempt {
                Ok(c) => {
                    if k > 0 {
                        tracing::info!("control plane: moved to {}", authority(host, *port));
                        servers
                            .current
                            .store(i, std::sync::atomic::Ordering::Relaxed);
                    }
                    return Ok(c);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no control-plane member to connect to")))
    }

    /// A kube client over one HTTP/2 connection, re-dialled when it drops.
    pub fn kube_client(&self) -> kube::Client {
        let mut tls = (*self.tls).clone();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let shared = Arc::new(H2 {
            ep: self.clone(),
            tls: Arc::new(tls),
            conn: tokio::sync::Mutex::new(None),
        });
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let shared = shared.clone();
            async move { shared.send(req).await }
        });
        kube::Client::new(service, "default")
    }
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn connect_to(
    host: &str,
    port: u16,
    config: Arc<rustls::ClientConfig>,
) -> Result<(TlsStream<TcpStream>, std::net::SocketAddr)> {
    let tcp = TcpStream::connect((host, port))
        .await
        .with_context(|| format!("connecting to {}", authority(host, port)))?;
    tcp.set_nodelay(true)?;
    let local = tcp.local_addr()?;
    let name =
        ServerName::try_from(host.to_string()).map_err(|e| anyhow!("server name {host:?}: {e}"))?;
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS with {}", authority(host, port)))?;
    Ok((tls, local))
}

struct H2 {
    ep: Endpoint,
    tls: Arc<rustls::ClientConfig>,
    conn: tokio::sync::Mutex<Option<SendRequest<kube::client::Body>>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl H2 {
    async fn sender(&self) -> Result<SendRequest<kube::client::Body>, BoxError> {
        let mut conn = self.conn.lock().await;
        if let Some(s) = conn.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let (tls, _) = self
            .ep
            .connect(self.tls.clone())
            .await
            .map_err(|e| -> BoxError { format!("{e:#}").into() })?;
        // Pings notice a member that went silent (not only one that closed the connection),
        // so the next request dials another.
        let (send, c) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(std::time::Duration::from_secs(5))
            .keep_alive_timeout(std::time::Duration::from_secs(5))
            .handshake(TokioIo::new(tls))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = c.await {
                tracing::debug!("API connection ended: {e}");
            }
        });
        *conn = Some(send.clone());
        Ok(send)
    }

    async fn send(
        &self,
        req: http::Request<kube::client::Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, BoxError> {
        let mut send = self.sender().await?;
        send.ready().await?;
        let (mut parts, body) = req.into_parts();
        // HTTP/2 needs the scheme and authority in the URI.
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        parts.uri = format!("https://{}{pq}", self.ep.authority()).parse()?;
        Ok(send
            .send_request(http::Request::from_parts(parts, body))
            .await?)
    }
}
