//! The node side of Kubernetes' streaming protocols — `kubectl exec`, `attach` and
//! `port-forward` — on a connection whose HTTP upgrade the caller answers.
//!
//! Every variant kubectl 1.27–1.33 speaks is served directly:
//! - exec/attach over WebSocket (`v5.channel.k8s.io` with its stdin CLOSE signal,
//!   `v4.channel.k8s.io`, the pre-v4 `channel.k8s.io` family and the base64 variants) and over
//!   SPDY/3.1 (`X-Stream-Protocol-Version` v4/v3/v2/v1);
//! - port-forward over SPDY/3.1 (`portforward.k8s.io`), over WebSocket tunnelling SPDY
//!   (`SPDY/3.1+portforward.k8s.io`, kubectl 1.31+), and the legacy WebSocket channel pairs.
//!
//! The flow: [`negotiate`] the request head, send the 101 it returns, then hand the upgraded
//! connection to [`accept_remotecommand`] or [`serve_portforward`].
//!
//! ```no_run
//! # async fn example(req: http::request::Parts, io: tokio::io::DuplexStream) -> std::io::Result<()> {
//! use reddwarf_streaming::{accept_remotecommand, negotiate, Kind, StreamOptions};
//! let (response, negotiated) = match negotiate(&req, Kind::RemoteCommand) {
//!     Ok(ok) => ok,
//!     Err(_refusal) => return Ok(()), // send the refusal instead
//! };
//! // ... send `response` (101) and obtain the upgraded `io` ...
//! # let _ = response;
//! let opts = StreamOptions::from_query(req.uri.query().unwrap_or(""));
//! let mut session = accept_remotecommand(io, negotiated, opts).await?;
//! if let Some(out) = session.stdout.as_mut() {
//!     tokio::io::AsyncWriteExt::write_all(out, b"hello\n").await?;
//! }
//! session.finish(Ok(0)).await
//! # }
//! ```

mod negotiate;
mod options;
mod pipe;
mod portforward;
mod remotecommand;
mod spdy;
mod status;
mod websocket;

pub use negotiate::{
    is_websocket, negotiate, Kind, Negotiated, Transport, HEADER_ACCEPTED_PROTOCOL_VERSIONS,
    HEADER_PROTOCOL_VERSION, PORT_FORWARD_V1, SPDY_31, SPDY_TUNNEL_PREFIX, STREAM_PROTOCOL_V1,
    STREAM_PROTOCOL_V2, STREAM_PROTOCOL_V3, STREAM_PROTOCOL_V4, STREAM_PROTOCOL_V5,
};
pub use options::{commands_from_query, container_from_query, ports_from_query, StreamOptions};
pub use pipe::{StreamReader, StreamWriter};
pub use portforward::serve_portforward;
pub use remotecommand::{
    accept_remotecommand, RemoteCommand, TerminalSize, FINISH_TIMEOUT, STREAM_CREATION_TIMEOUT,
};

#[cfg(test)]
mod tests;
