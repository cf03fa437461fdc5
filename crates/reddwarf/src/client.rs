//! A small HTTPS client configured from a kubeconfig (server URL, cluster CA, client
//! certificate): one HTTP/1.1 connection per [`Conn`], for load generation.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::tls;

/// Where and how to reach the API server.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub tls: Arc<rustls::ClientConfig>,
    /// A bearer token, for kubeconfigs whose user has one instead of a client certificate.
    pub token: Option<String>,
}

fn field<'a>(v: &'a serde_yaml::Value, path: &[&str]) -> Option<&'a serde_yaml::Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    Some(cur)
}

fn b64(v: Option<&serde_yaml::Value>, what: &str) -> anyhow::Result<String> {
    let s = v
        .and_then(|v| v.as_str())
        .ok_or_else(|| anyhow!("kubeconfig has no {what}"))?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s.trim())?;
    Ok(String::from_utf8(bytes)?)
}

impl Target {
    /// Reads the current context's cluster and user (inline `*-data` fields) from a kubeconfig.
    pub fn from_kubeconfig(path: &Path) -> anyhow::Result<Target> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let doc: serde_yaml::Value = serde_yaml::from_str(&text)?;
        let ctx_name = doc
            .get("current-context")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let find = |list: &str, name: &str| -> Option<serde_yaml::Value> {
            let items = doc.get(list)?.as_sequence()?;
            items
                .iter()
                .find(|i| name.is_empty() || i.get("name").and_then(|n| n.as_str()) == Some(name))
                .cloned()
        };
        let ctx = find("contexts", ctx_name)
            .ok_or_else(|| anyhow!("kubeconfig: no context {ctx_name:?}"))?;
        let cluster_name = field(&ctx, &["context", "cluster"])
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let user_name = field(&ctx, &["context", "user"])
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let cluster =
            find("clusters", cluster_name).ok_or_else(|| anyhow!("kubeconfig: no cluster"))?;
        let user = find("users", user_name).ok_or_else(|| anyhow!("kubeconfig: no user"))?;
        let server = field(&cluster, &["cluster", "server"])
            .and_then(|v| v.as_str())
            .ok_or_else(|| anyhow!("kubeconfig: cluster has no server"))?;
        let hostport = server
            .strip_prefix("https://")
            .ok_or_else(|| anyhow!("server {server:?} is not https"))?
            .trim_end_matches('/');
        let (host, port) = hostport
            .rsplit_once(':')
            .map(|(h, p)| {
                (
                    h.trim_matches(['[', ']']).to_string(),
                    p.parse().unwrap_or(443),
                )
            })
            .unwrap_or((hostport.to_string(), 443));
        let ca =
            match field(&cluster, &["cluster", "certificate-authority"]).and_then(|v| v.as_str()) {
                Some(file) => std::fs::read_to_string(file).with_context(|| {
                    format!("reading the kubeconfig's certificate-authority {file}")
                })?,
                None => b64(
                    field(&cluster, &["cluster", "certificate-authority-data"]),
                    "certificate-authority-data",
                )?,
            };
        let token = field(&user, &["user", "token"])
            .and_then(|v| v.as_str())
            .map(String::from);
        let tls = if token.is_some() && field(&user, &["user", "client-certificate-data"]).is_none()
        {
            tls::client_config(&ca, None)?
        } else {
            let cert = b64(
                field(&user, &["user", "client-certificate-data"]),
                "client-certificate-data",
            )?;
            let key = b64(
                field(&user, &["user", "client-key-data"]),
                "client-key-data",
            )?;
            tls::client_config(&ca, Some((&cert, &key)))?
        };
        Ok(Target {
            host,
            port,
            tls,
            token,
        })
    }

    pub async fn connect(&self) -> anyhow::Result<Conn> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(self.host.clone())?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            send,
            authority: format!("{}:{}", self.host, self.port),
            token: self.token.clone(),
        })
    }
}

/// One HTTP/1.1 connection.
pub struct Conn {
    send: SendRequest<Full<Bytes>>,
    authority: String,
    token: Option<String>,
}

impl Conn {
    /// Starts a GET and returns the response body as it streams (watches).
    pub async fn stream(&mut self, path: &str) -> anyhow::Result<hyper::body::Incoming> {
        self.stream_as(path, "application/json").await
    }

    /// Starts a GET asking for `accept` and returns the response body as it streams.
    pub async fn stream_as(
        &mut self,
        path: &str,
        accept: &str,
    ) -> anyhow::Result<hyper::body::Incoming> {
        self.send.ready().await?;
        let mut req = http::Request::builder();
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .method("GET")
            .uri(path)
            .header("host", &self.authority)
            .header("accept", accept)
            .body(Full::new(Bytes::new()))?;
        let resp = self.send.send_request(req).await?;
        anyhow::ensure!(
            resp.status() == 200,
            "GET {path} answered {}",
            resp.status()
        );
        Ok(resp.into_body())
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(u16, Bytes)> {
        self.request_typed(method, path, "application/json", body)
            .await
    }

    /// A request whose body has the given content type (e.g. a merge patch).
    pub async fn request_typed(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(u16, Bytes)> {
        self.send.ready().await?;
        let mut req = http::Request::builder();
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .method(method)
            .uri(path)
            .header("host", &self.authority)
            .header(
                "user-agent",
                concat!("reddwarf/", env!("CARGO_PKG_VERSION")),
            )
            .header("content-type", content_type)
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = self.send.send_request(req).await?;
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((code, bytes))
    }
}
