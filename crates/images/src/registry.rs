//! A registry client (distribution API v2) on hyper: ping, anonymous/Basic/Bearer auth,
//! manifests, and blobs with redirects and digest verification.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::auth::Credentials;
use crate::digest::{sha256_digest, sha256_hex, Hasher};
use crate::error::PullError;
use crate::reference::{registry_host, Reference, DOCKER_HUB};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A transfer that makes no progress for this long is abandoned (the kubelet retries).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_MANIFEST: usize = 8 << 20;
const MAX_REDIRECTS: usize = 10;

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

// --- transport -------------------------------------------------------------------------

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// The system trust store, read once on first HTTPS use.
fn tls_config() -> io::Result<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(format!(
                    "no system CA certificates found (install ca-certificates): {:?}",
                    found.errors
                ));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(cfg))
        })
        .clone()
        .map_err(io::Error::other)
}

async fn connect(uri: Uri) -> io::Result<TokioIo<Stream>> {
    let https = uri.scheme_str() == Some("https");
    let host = uri
        .host()
        .ok_or_else(|| io::Error::other(format!("no host in {uri}")))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("dial tcp {host}:{port}: i/o timeout"),
            )
        })?
        .map_err(|e| io::Error::new(e.kind(), format!("dial tcp {host}:{port}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    if !https {
        return Ok(TokioIo::new(Stream::Plain(tcp)));
    }
    let name = rustls_pki_types::ServerName::try_from(host.clone())
        .map_err(|e| io::Error::other(format!("bad TLS server name {host}: {e}")))?;
    let tls = tokio_rustls::TlsConnector::from(tls_config()?)
        .connect(name, tcp)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("tls: {e}")))?;
    Ok(TokioIo::new(Stream::Tls(Box::new(tls))))
}

type ConnectFn = fn(Uri) -> Pin<Box<dyn Future<Output = io::Result<TokioIo<Stream>>> + Send>>;
type Connector = tower::util::ServiceFn<ConnectFn>;

fn connector() -> Connector {
    fn f(uri: Uri) -> Pin<Box<dyn Future<Output = io::Result<TokioIo<Stream>>> + Send>> {
        Box::pin(connect(uri))
    }
    tower::service_fn(f as ConnectFn)
}

/// A pooled HTTP/1.1 client for plain and TLS registries.
#[derive(Clone)]
pub(crate) struct Client {
    http: HyperClient<Connector, Empty<Bytes>>,
}

impl Client {
    pub(crate) fn new() -> Client {
        Client {
            http: HyperClient::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector()),
        }
    }
}

// --- sessions --------------------------------------------------------------------------

/// Whether `registry` is spoken to in plain HTTP: loopback addresses and configured ones.
pub(crate) fn is_insecure(registry: &str, insecure: &[String]) -> bool {
    let host = registry_host(registry);
    if host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true;
    }
    insecure.iter().any(|i| {
        let i = i.trim_start_matches("http://").trim_end_matches('/');
        i == registry || i == host
    })
}

/// Talking to one repository of one registry for one pull.
#[derive(Clone)]
pub(crate) struct Session {
    client: Client,
    base: String,
    base_authority: String,
    repo: String,
    /// The reference as the user wrote it (normalised), for messages.
    display: String,
    creds: Option<Credentials>,
    auth: Option<HeaderValue>,
}

struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

/// `Bearer realm="...",service="...",scope="a:b:pull,push"` (values may hold commas).
fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(' ' | ',')) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            val = chars.by_ref().take_while(|&c| c != ',').collect();
        }
        params.push((key.trim().to_string(), val));
    }
    Some(Challenge {
        scheme: scheme.to_string(),
        params,
    })
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `CODE: message` of a registry's JSON error body, or the body's start.
fn server_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(errs) = v.get("errors").and_then(|e| e.as_array()) {
            let parts: Vec<String> = errs
                .iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{}: {}", code.to_ascii_lowercase(), msg)
                })
                .collect();
            if !parts.is_empty() {
                return parts.join("; ");
            }
        }
    }
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    s.trim().to_string()
}

impl Session {
    pub(crate) fn new(
        client: Client,
        reference: &Reference,
        creds: Option<&Credentials>,
        insecure: &[String],
    ) -> Session {
        let endpoint = if reference.registry == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            reference.registry.as_str()
        };
        let scheme = if is_insecure(&reference.registry, insecure) {
            "http"
        } else {
            "https"
        };
        Session {
            client,
            base: format!("{scheme}://{endpoint}"),
            base_authority: endpoint.to_string(),
            repo: reference.repository.clone(),
            display: reference.to_string(),
            creds: creds.cloned(),
            auth: None,
        }
    }

    fn resolve_failed(&self, why: impl std::fmt::Display) -> String {
        format!("failed to resolve reference {:?}: {why}", self.display)
    }

    async fn send(
        &self,
        url: &str,
        accept: Option<&str>,
        auth: Option<&HeaderValue>,
    ) -> Result<Response<Incoming>, PullError> {
        let mut req = Request::builder().method(Method::GET).uri(url);
        if let Some(a) = accept {
            req = req.header(header::ACCEPT, a);
        }
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a.clone());
        }
        req = req.header(header::USER_AGENT, "reddwarf/0.1");
        let req = req
            .body(Empty::new())
            .map_err(|e| PullError::Invalid(format!("bad request URL {url:?}: {e}")))?;
        let fut = self.client.http.request(req);
        match tokio::time::timeout(IDLE_TIMEOUT + CONNECT_TIMEOUT, fut).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                let mut msg = e.to_string();
                let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg = format!("{msg}: {s}");
                    src = s.source();
                }
                Err(PullError::Network(format!(
                    "failed to do request: GET {url:?}: {msg}"
                )))
            }
            Err(_) => Err(PullError::Network(format!(
                "failed to do request: GET {url:?}: timed out waiting for response headers"
            ))),
        }
    }

    /// GET following redirects; credentials go only to the registry itself, never to the
    /// storage a blob redirect points at (S3/GCS reject or would leak them).
    async fn get(
        &self,
        url: &str,
        accept: Option<&str>,
    ) -> Result<(String, Response<Incoming>), PullError> {
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let uri: Uri = url
                .parse()
                .map_err(|e| PullError::Invalid(format!("bad URL {url:?}: {e}")))?;
            let same_host =
                uri.authority().map(|a| a.as_str()) == Some(self.base_authority.as_str());
            let auth = if same_host { self.auth.as_ref() } else { None };
            let resp = self.send(&url, accept, auth).await?;
            if resp.status().is_redirection() {
                let loc = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| {
                        PullError::Invalid(format!("redirect without Location from {url}"))
                    })?;
                url = if loc.starts_with("http://") || loc.starts_with("https://") {
                    loc.to_string()
                } else if loc.starts_with('/') {
                    format!(
                        "{}://{}{}",
                        uri.scheme_str().unwrap_or("https"),
                        uri.authority().map(|a| a.as_str()).unwrap_or(""),
                        loc
                    )
                } else {
                    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url);
                    format!("{base}/{loc}")
                };
                continue;
            }
            return Ok((url, resp));
        }
        Err(PullError::Network(format!(
            "too many redirects fetching {url}"
        )))
    }

    /// Probe `/v2/` and obtain whatever authorization the registry asks for.
    pub(crate) async fn authenticate(&mut self) -> Result<(), PullError> {
        let url = format!("{}/v2/", self.base);
        let resp = self.send(&url, None, None).await.map_err(|e| match e {
            PullError::Network(m) => PullError::Network(self.resolve_failed(m)),
            e => e,
        })?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(());
        }
        let challenge = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .and_then(parse_challenge);
        let _ = resp.into_body().collect().await;
        let Some(ch) = challenge else {
            return Ok(()); // no challenge to answer: try anonymously and report what happens
        };
        if ch.scheme.eq_ignore_ascii_case("basic") {
            if let Some(c) = &self.creds {
                self.auth = Some(header_value(&c.basic_header())?);
            }
            return Ok(());
        }
        if ch.scheme.eq_ignore_ascii_case("bearer") {
            let realm = ch.param("realm").ok_or_else(|| {
                PullError::Invalid(self.resolve_failed("Bearer challenge without realm"))
            })?;
            let mut token_url = format!("{realm}{}", if realm.contains('?') { '&' } else { '?' });
            if let Some(service) = ch.param("service") {
                token_url.push_str(&format!("service={}&", percent_encode(service)));
            }
            token_url.push_str(&format!(
                "scope={}",
                percent_encode(&format!("repository:{}:pull", self.repo))
            ));
            let basic = match &self.creds {
                Some(c) => Some(header_value(&c.basic_header())?),
                None => None,
            };
            let resp = self
                .send(&token_url, None, basic.as_ref())
                .await
                .map_err(|e| match e {
                    PullError::Network(m) => PullError::Network(
                        self.resolve_failed(format!("failed to fetch token: {m}")),
                    ),
                    e => e,
                })?;
            let status = resp.status();
            let body = read_body(resp, MAX_MANIFEST)
                .await
                .map_err(PullError::Network)?;
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(PullError::Unauthorized(self.resolve_failed(format!(
                    "failed to authorize: failed to fetch {} token: unexpected status: {status}: {}",
                    if self.creds.is_some() { "oauth" } else { "anonymous" },
                    server_message(&body)
                ))));
            }
            if !status.is_success() {
                return Err(PullError::Network(self.resolve_failed(format!(
                    "failed to fetch token from {realm}: unexpected status: {status}"
                ))));
            }
            let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                PullError::Invalid(self.resolve_failed(format!("bad token response: {e}")))
            })?;
            let token = v
                .get("token")
                .or_else(|| v.get("access_token"))
                .and_then(|t| t.as_str())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    PullError::Invalid(self.resolve_failed("token response without a token"))
                })?;
            self.auth = Some(header_value(&format!("Bearer {token}"))?);
        }
        Ok(())
    }

    fn status_error(&self, what: &str, status: StatusCode, body: &[u8]) -> PullError {
        let msg = server_message(body);
        match status {
            StatusCode::NOT_FOUND => {
                PullError::NotFound(self.resolve_failed(format!("{what}: not found")))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let why = match (&self.creds, self.auth.is_some()) {
                    (None, _) => format!(
                        "pull access denied, repository does not exist or may require authorization: server message: {msg}"
                    ),
                    (Some(c), _) => format!("authorization failed for user {:?}: {status}: {msg}", c.username),
                };
                PullError::Unauthorized(self.resolve_failed(why))
            }
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                PullError::Network(self.resolve_failed(format!(
                    "unexpected status from GET request for {what}: {s}: {msg}"
                )))
            }
            s => PullError::Invalid(self.resolve_failed(format!(
                "unexpected status from GET request for {what}: {s}: {msg}"
            ))),
        }
    }

    /// A manifest or index by tag or digest: (content type, bytes, digest). A digest asked
    /// for is verified against the bytes.
    pub(crate) async fn manifest(
        &self,
        object: &str,
    ) -> Result<(String, Bytes, String), PullError> {
        let url = format!("{}/v2/{}/manifests/{}", self.base, self.repo, object);
        let (_, resp) = self
            .get(&url, Some(MANIFEST_ACCEPT))
            .await
            .map_err(|e| match e {
                PullError::Network(m) => PullError::Network(self.resolve_failed(m)),
                e => e,
            })?;
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = read_body(resp, MAX_MANIFEST)
            .await
            .map_err(|m| PullError::Network(self.resolve_failed(m)))?;
        if !status.is_success() {
            let what = if object.contains(':') && object.starts_with("sha256") {
                format!("{}/{}@{}", self.base_authority, self.repo, object)
            } else {
                self.display.clone()
            };
            return Err(self.status_error(&what, status, &body));
        }
        let digest = sha256_digest(&body);
        if object.starts_with("sha256:") && digest != object {
            return Err(PullError::Invalid(format!(
                "manifest {object} of {:?} failed verification: the registry sent content with digest {digest}",
                self.display
            )));
        }
        Ok((ct, body, digest))
    }

    /// A small blob (config) into memory, verified.
    pub(crate) async fn blob_bytes(&self, digest: &str) -> Result<Bytes, PullError> {
        let resp = self.blob_response(digest).await?;
        let body = read_body(resp, 64 << 20)
            .await
            .map_err(|m| PullError::Network(format!("failed to pull {:?}: {m}", self.display)))?;
        let got = sha256_digest(&body);
        if got != digest {
            return Err(self.digest_mismatch(digest, &got));
        }
        Ok(body)
    }

    fn digest_mismatch(&self, want: &str, got: &str) -> PullError {
        PullError::Invalid(format!(
            "failed to pull {:?}: blob {want} failed verification: got content with digest {got}",
            self.display
        ))
    }

    async fn blob_response(&self, digest: &str) -> Result<Response<Incoming>, PullError> {
        let url = format!("{}/v2/{}/blobs/{}", self.base, self.repo, digest);
        let (final_url, resp) = self.get(&url, None).await.map_err(|e| match e {
            PullError::Network(m) => {
                PullError::Network(format!("failed to pull {:?}: {m}", self.display))
            }
            e => e,
        })?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = read_body(resp, 64 << 10).await.unwrap_or_default();
            if status == StatusCode::NOT_FOUND {
                return Err(PullError::NotFound(format!(
                    "failed to pull {:?}: blob {digest} not found at {final_url}",
                    self.display
                )));
            }
            return Err(self.status_error(&format!("blob {digest}"), status, &body));
        }
        Ok(resp)
    }

    /// Stream a blob to `tmp`, checking its digest and size; returns the bytes written.
    /// The caller renames `tmp` into place only on success.
    pub(crate) async fn blob_to_file(
        &self,
        digest: &str,
        size: u64,
        tmp: &Path,
    ) -> Result<u64, PullError> {
        let resp = self.blob_response(digest).await?;
        let mut file = tokio::fs::File::create(tmp)
            .await
            .map_err(|e| PullError::Io {
                context: format!("create {}", tmp.display()),
                source: e,
            })?;
        let mut hasher = Hasher::default();
        let mut body = resp.into_body();
        loop {
            let frame = match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
                Err(_) => {
                    return Err(PullError::Network(format!(
                        "failed to pull {:?}: blob {digest}: no data for {}s",
                        self.display,
                        IDLE_TIMEOUT.as_secs()
                    )))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(PullError::Network(format!(
                        "failed to pull {:?}: reading blob {digest}: {e}",
                        self.display
                    )))
                }
                Ok(Some(Ok(f))) => f,
            };
            if let Ok(data) = frame.into_data() {
                hasher.update(&data);
                if size > 0 && hasher.len > size {
                    return Err(PullError::Invalid(format!(
                        "failed to pull {:?}: blob {digest} is larger than the {size} bytes its manifest says",
                        self.display
                    )));
                }
                file.write_all(&data).await.map_err(|e| PullError::Io {
                    context: format!("write {}", tmp.display()),
                    source: e,
                })?;
            }
        }
        file.sync_all().await.map_err(|e| PullError::Io {
            context: format!("sync {}", tmp.display()),
            source: e,
        })?;
        let len = hasher.len;
        let got = hasher.digest();
        if got != digest {
            return Err(self.digest_mismatch(digest, &got));
        }
        Ok(len)
    }
}

fn header_value(s: &str) -> Result<HeaderValue, PullError> {
    HeaderValue::from_str(s).map_err(|_| {
        PullError::Invalid("credentials contain characters not allowed in a header".into())
    })
}

async fn read_body(resp: Response<Incoming>, limit: usize) -> Result<Bytes, String> {
    let mut body = resp.into_body();
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
            Err(_) => return Err("timed out reading response body".into()),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(format!("reading response body: {e}")),
            Ok(Some(Ok(f))) => {
                if let Ok(d) = f.into_data() {
                    if out.len() + d.len() > limit {
                        return Err(format!("response body larger than {limit} bytes"));
                    }
                    out.extend_from_slice(&d);
                }
            }
        }
    }
    Ok(Bytes::from(out))
}

/// Reject digests this store cannot key by before anything is fetched.
pub(crate) fn check_digest(d: &str) -> Result<&str, PullError> {
    sha256_hex(d).map_err(|e| PullError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        let b = parse_challenge(r#"Basic realm="basic-realm""#).unwrap();
        assert_eq!(b.scheme, "Basic");
        assert_eq!(b.param("realm"), Some("basic-realm"));
    }

    #[test]
    fn insecure_hosts() {
        assert!(is_insecure("127.0.0.1:5000", &[]));
        assert!(is_insecure("localhost:5000", &[]));
        assert!(is_insecure("[::1]:5000", &[]));
        assert!(!is_insecure("10.0.0.1:5000", &[]));
        assert!(is_insecure("10.0.0.1:5000", &["10.0.0.1:5000".into()]));
        assert!(is_insecure("reg.lan", &["reg.lan".into()]));
        assert!(!is_insecure("docker.io", &[]));
    }
}
