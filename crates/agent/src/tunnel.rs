//! The agent's end of the tunnel: one outbound WebSocket to `/reddwarf/v1/tunnel`,
//! authenticated by the node certificate; every stream the server opens on it carries one
//! HTTP/1.1 exchange with the node API. Reconnects with jittered exponential back-off; the
//! streams of a dropped tunnel fail (the server sees `tunnel closed`), the node stays.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use reddwarf_tunnel::{Config, Role, Session};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_tungstenite::WebSocketStream;

use crate::https::Endpoint;
use crate::nodeapi::NodeApi;

/// The server path the agent dials to open its tunnel.
pub const TUNNEL_PATH: &str = "/reddwarf/v1/tunnel";

/// Dials the tunnel and serves it until it ends.
async fn connect_once(ep: &Endpoint, api: &Arc<NodeApi>) -> Result<()> {
    let mut tls = (*ep.tls).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (stream, _) = ep.connect(Arc::new(tls)).await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let req = http::Request::builder()
        .method("GET")
        .uri(TUNNEL_PATH)
        .header(http::header::HOST, ep.authority())
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_VERSION, "13")
        .header(http::header::SEC_WEBSOCKET_KEY, &key)
        .header(http::header::USER_AGENT, "reddwarf-agent")
        .body(Empty::<bytes::Bytes>::new())?;
    let mut resp = send.send_request(req).await?;
    if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        use http_body_util::BodyExt;
        let code = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        bail!(
            "the server refused the tunnel ({code}): {}",
            String::from_utf8_lossy(&body)
        );
    }
    let accept = resp
        .headers()
        .get(http::header::SEC_WEBSOCKET_ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept != derive_accept_key(key.as_bytes()) {
        bail!("the server's WebSocket accept key is wrong");
    }
    let upgraded = hyper::upgrade::on(&mut resp)
        .await
        .context("upgrading to the tunnel")?;
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), WsRole::Client, None).await;
    let (session, mut incoming) = Session::new(
        reddwarf_tunnel::websocket(ws),
        Role::Dialer,
        Config::default(),
    );
    tracing::info!("tunnel to {} up", ep.authority());
    while let Some((header, stream)) = incoming.accept().await {
        if &header[..] != b"http/1.1" {
            stream.reset(1, "unknown stream type");
            continue;
        }
        let api = api.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let api = api.clone();
                async move { Ok::<_, std::convert::Infallible>(api.serve(req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await
            {
                tracing::debug!("node API stream: {e}");
            }
        });
    }
    drop(session);
    Ok(())
}

/// Keeps the tunnel up for as long as the task runs.
pub async fn run(ep: Endpoint, api: Arc<NodeApi>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let started = std::time::Instant::now();
        match connect_once(&ep, &api).await {
            Ok(()) => tracing::warn!("tunnel to {} closed; reconnecting", ep.authority()),
            Err(e) => tracing::warn!("tunnel to {}: {e:#}; retrying", ep.authority()),
        }
        // A tunnel that lived a while starts the back-off over.
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_millis(500);
        }
        let jitter = rand::random::<f64>() * 0.5 + 0.75;
        tokio::time::sleep(backoff.mul_f64(jitter)).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
