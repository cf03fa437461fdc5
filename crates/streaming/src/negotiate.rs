//! Answering the client's upgrade request: which transport, which subprotocol, and the 101
//! (or the error) to send back — as the kubelet (SPDY, legacy WebSocket) and the API server
//! (WebSocket v5, SPDY tunnelled in WebSocket) answer.

use http::header::{HeaderMap, HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use http::{Response, StatusCode};

use crate::options::ports_from_query;

/// SPDY's upgrade token and Kubernetes' protocol negotiation headers.
pub const SPDY_31: &str = "SPDY/3.1";
/// The header a SPDY client offers its remotecommand versions in, and the server answers the chosen one.
pub const HEADER_PROTOCOL_VERSION: &str = "X-Stream-Protocol-Version";
/// The header listing the server's versions when none of the client's is acceptable.
pub const HEADER_ACCEPTED_PROTOCOL_VERSIONS: &str = "X-Accepted-Stream-Protocol-Versions";

/// remotecommand protocol names (apimachinery `util/remotecommand`).
pub const STREAM_PROTOCOL_V1: &str = "channel.k8s.io";
/// remotecommand v2: stdin, stdout and stderr as separate streams.
pub const STREAM_PROTOCOL_V2: &str = "v2.channel.k8s.io";
/// remotecommand v3: v2 plus the resize stream.
pub const STREAM_PROTOCOL_V3: &str = "v3.channel.k8s.io";
/// remotecommand v4: v3 plus the exit status on the error stream as a `Status`.
pub const STREAM_PROTOCOL_V4: &str = "v4.channel.k8s.io";
/// remotecommand v5 (WebSocket only): v4 plus the CLOSE signal for half-closing a channel.
pub const STREAM_PROTOCOL_V5: &str = "v5.channel.k8s.io";
/// The base64 WebSocket variants.
pub const BASE64_V1: &str = "base64.channel.k8s.io";
pub const BASE64_V4: &str = "v4.base64.channel.k8s.io";
/// port-forward over SPDY, and tunnelled through WebSocket (kubectl 1.31+).
pub const PORT_FORWARD_V1: &str = "portforward.k8s.io";
/// The prefix of WebSocket subprotocols that carry SPDY (`SPDY/3.1+portforward.k8s.io`).
pub const SPDY_TUNNEL_PREFIX: &str = "SPDY/3.1+";

/// SPDY remotecommand versions we accept, most preferred last: the client's order decides.
/// v5 is not offered over SPDY: it only adds the WebSocket CLOSE signal, which SPDY has
/// natively (FIN), and kubelets of 1.27–1.33 answer v4 to a client offering both.
const SPDY_REMOTECOMMAND: [&str; 4] = [
    STREAM_PROTOCOL_V4,
    STREAM_PROTOCOL_V3,
    STREAM_PROTOCOL_V2,
    STREAM_PROTOCOL_V1,
];
/// WebSocket remotecommand subprotocols (the kubelet's wsstream set plus the API server's v5;
/// v2/v3 behave as the pre-v4 binary protocol).
const WS_REMOTECOMMAND: [&str; 7] = [
    STREAM_PROTOCOL_V5,
    STREAM_PROTOCOL_V4,
    BASE64_V4,
    STREAM_PROTOCOL_V3,
    STREAM_PROTOCOL_V2,
    STREAM_PROTOCOL_V1,
    BASE64_V1,
];
const WS_PORTFORWARD: [&str; 2] = [STREAM_PROTOCOL_V4, BASE64_V4];

/// Which kind of streaming request was negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// exec and attach.
    RemoteCommand,
    /// port-forward.
    PortForward,
}

/// How the upgraded connection carries the streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `Upgrade: SPDY/3.1`.
    Spdy,
    /// WebSocket with a `*.channel.k8s.io` subprotocol (or none).
    WebSocket {
        /// Frames are base64 text (the `base64.channel.k8s.io` variants).
        base64: bool,
        /// v5: the client half-closes a channel with `[255, channel]`.
        close_signal: bool,
    },
    /// WebSocket carrying SPDY (`SPDY/3.1+portforward.k8s.io`).
    SpdyOverWebSocket,
}

/// What [`negotiate`] agreed with the client; hand it to [`crate::accept_remotecommand`] or
/// [`crate::serve_portforward`] once the 101 is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// exec/attach or port-forward.
    pub kind: Kind,
    /// How the streams travel over the upgraded connection.
    pub transport: Transport,
    /// The protocol version agreed: `v4.channel.k8s.io`, `portforward.k8s.io`, … ("" when a
    /// WebSocket client offered no subprotocol, which means the pre-v4 binary protocol).
    pub protocol: String,
    /// Legacy WebSocket port-forward: the `port` query values, one channel pair each.
    pub ports: Vec<u16>,
}

impl Negotiated {
    /// remotecommand v4 and later end with a JSON `metav1.Status` on the error stream;
    /// earlier versions send only a failure's message, as text.
    pub(crate) fn status_is_json(&self) -> bool {
        matches!(
            self.protocol.as_str(),
            STREAM_PROTOCOL_V4 | STREAM_PROTOCOL_V5 | BASE64_V4
        )
    }

    /// v3 and later carry terminal resizes.
    pub(crate) fn supports_resize(&self) -> bool {
        !matches!(
            self.protocol.as_str(),
            STREAM_PROTOCOL_V2 | STREAM_PROTOCOL_V1 | ""
        )
    }
}

fn error(status: StatusCode, msg: String) -> Response<String> {
    let mut r = Response::new(format!("{msg}\n"));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Comma-separated values of every instance of a header, trimmed, empty ones dropped.
fn list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains(&token.to_ascii_lowercase()))
}

/// Is this an upgrade to WebSocket (as wsstream.IsWebSocketRequest decides)?
pub fn is_websocket(req: &http::request::Parts) -> bool {
    req.headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        && has_token(&req.headers, CONNECTION, "upgrade")
}

/// The first of the client's protocols that the server supports (the client's order wins,
/// as in both upstream negotiators).
fn pick<'a>(client: &'a [String], server: &[&str]) -> Option<&'a String> {
    client.iter().find(|c| server.contains(&c.as_str()))
}

/// Inspects an upgrade request for exec/attach (`Kind::RemoteCommand`) or port-forward.
///
/// `Ok` carries the `101 Switching Protocols` answer (headers set; send it, then hand the
/// upgraded connection and the [`Negotiated`] on). `Err` carries the answer to send instead:
/// `400` for a malformed request, `403` when no protocol is common (with
/// `X-Accepted-Stream-Protocol-Versions` for SPDY), as upstream answers.
#[allow(clippy::result_large_err)]
pub fn negotiate(
    req: &http::request::Parts,
    kind: Kind,
) -> Result<(Response<()>, Negotiated), Response<String>> {
    if is_websocket(req) {
        negotiate_websocket(req, kind)
    } else {
        negotiate_spdy(req, kind)
    }
}

#[allow(clippy::result_large_err)]
fn negotiate_spdy(
    req: &http::request::Parts,
    kind: Kind,
) -> Result<(Response<()>, Negotiated), Response<String>> {
    if !has_token(&req.headers, CONNECTION, "upgrade") || !has_token(&req.headers, UPGRADE, SPDY_31)
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request".into(),
        ));
    }
    let client = list(&req.headers, HEADER_PROTOCOL_VERSION);
    if client.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("unable to upgrade: {HEADER_PROTOCOL_VERSION} is required"),
        ));
    }
    let server: &[&str] = match kind {
        Kind::RemoteCommand => &SPDY_REMOTECOMMAND,
        Kind::PortForward => &[PORT_FORWARD_V1],
    };
    let Some(protocol) = pick(&client, server) else {
        let mut r = error(
            StatusCode::FORBIDDEN,
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
                client.join(" "),
                server.join(" ")
            ),
        );
        for s in server {
            r.headers_mut().append(
                HEADER_ACCEPTED_PROTOCOL_VERSIONS,
                HeaderValue::from_static(s),
            );
        }
        return Err(r);
    };
    let resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, SPDY_31)
        .header(HEADER_PROTOCOL_VERSION, protocol.as_str())
        .body(())
        .expect("static headers are valid");
    Ok((
        resp,
        Negotiated {
            kind,
            transport: Transport::Spdy,
            protocol: protocol.clone(),
            ports: Vec::new(),
        },
    ))
}

#[allow(clippy::result_large_err)]
fn negotiate_websocket(
    req: &http::request::Parts,
    kind: Kind,
) -> Result<(Response<()>, Negotiated), Response<String>> {
    let Some(key) = req.headers.get("Sec-WebSocket-Key") else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "websocket: missing Sec-WebSocket-Key".into(),
        ));
    };
    let version_ok = req
        .headers
        .get("Sec-WebSocket-Version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "13");
    if !version_ok {
        let mut r = error(
            StatusCode::BAD_REQUEST,
            "websocket: unsupported Sec-WebSocket-Version".into(),
        );
        r.headers_mut()
            .insert("Sec-WebSocket-Version", HeaderValue::from_static("13"));
        return Err(r);
    }
    let client = list(&req.headers, "Sec-WebSocket-Protocol");
    let query = req.uri.query().unwrap_or("");

    let (transport, protocol, ports) = match kind {
        Kind::PortForward
            if client
                .iter()
                .any(|p| p.starts_with(SPDY_TUNNEL_PREFIX) && p.ends_with(".k8s.io")) =>
        {
            let inner: Vec<String> = client
                .iter()
                .filter_map(|p| p.strip_prefix(SPDY_TUNNEL_PREFIX))
                .map(str::to_string)
                .collect();
            let Some(p) = pick(&inner, &[PORT_FORWARD_V1]) else {
                return Err(error(
                    StatusCode::FORBIDDEN,
                    format!(
                        "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
                        inner.join(" "),
                        PORT_FORWARD_V1
                    ),
                ));
            };
            (Transport::SpdyOverWebSocket, p.clone(), Vec::new())
        }
        _ => {
            let server: &[&str] = match kind {
                Kind::RemoteCommand => &WS_REMOTECOMMAND,
                Kind::PortForward => &WS_PORTFORWARD,
            };
            let protocol = if client.is_empty() {
                String::new()
            } else {
                match pick(&client, server) {
                    Some(p) => p.clone(),
                    None => {
                        return Err(error(
                            StatusCode::FORBIDDEN,
                            format!(
                                "requested protocol(s) are not supported: [{}]; supports [{}]",
                                client.join(" "),
                                server.join(" ")
                            ),
                        ))
                    }
                }
            };
            let ports = if kind == Kind::PortForward {
                match ports_from_query(query) {
                    Ok(p) if !p.is_empty() => p,
                    Ok(_) => {
                        return Err(error(
                            StatusCode::BAD_REQUEST,
                            "query parameter \"port\" is required".into(),
                        ))
                    }
                    Err(e) => return Err(error(StatusCode::BAD_REQUEST, e)),
                }
            } else {
                Vec::new()
            };
            let transport = Transport::WebSocket {
                base64: protocol.contains("base64"),
                close_signal: protocol == STREAM_PROTOCOL_V5,
            };
            (transport, protocol, ports)
        }
    };

    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "websocket")
        .header("Sec-WebSocket-Accept", accept);
    let answered = match &transport {
        Transport::SpdyOverWebSocket => format!("{SPDY_TUNNEL_PREFIX}{protocol}"),
        _ => protocol.clone(),
    };
    if !answered.is_empty() {
        resp = resp.header("Sec-WebSocket-Protocol", answered);
    }
    let resp = resp.body(()).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("websocket: invalid handshake: {e}"),
        )
    })?;
    Ok((
        resp,
        Negotiated {
            kind,
            transport,
            protocol,
            ports,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn ws(protocols: &str) -> Vec<(&str, &str)> {
        vec![
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Protocol", protocols),
        ]
    }

    #[test]
    fn spdy_picks_the_clients_first_supported_version() {
        let req = parts(
            "/exec",
            &[
                ("Connection", "Upgrade"),
                ("Upgrade", "SPDY/3.1"),
                (HEADER_PROTOCOL_VERSION, "v5.channel.k8s.io"),
                (HEADER_PROTOCOL_VERSION, "v4.channel.k8s.io"),
                (HEADER_PROTOCOL_VERSION, "v3.channel.k8s.io"),
            ],
        );
        let (resp, n) = negotiate(&req, Kind::RemoteCommand).unwrap();
        assert_eq!(resp.status(), 101);
        assert_eq!(resp.headers()[HEADER_PROTOCOL_VERSION], "v4.channel.k8s.io");
        assert_eq!(resp.headers()[UPGRADE], "SPDY/3.1");
        assert_eq!(n.transport, Transport::Spdy);
        assert!(n.status_is_json());
    }

    #[test]
    fn spdy_without_a_common_version_is_forbidden_with_the_accepted_list() {
        let req = parts(
            "/portforward",
            &[
                ("Connection", "Upgrade"),
                ("Upgrade", "SPDY/3.1"),
                (HEADER_PROTOCOL_VERSION, "v4.channel.k8s.io"),
            ],
        );
        let err = negotiate(&req, Kind::PortForward).unwrap_err();
        assert_eq!(err.status(), 403);
        assert_eq!(
            err.headers()[HEADER_ACCEPTED_PROTOCOL_VERSIONS],
            "portforward.k8s.io"
        );
        let missing = parts(
            "/exec",
            &[("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")],
        );
        assert_eq!(
            negotiate(&missing, Kind::RemoteCommand)
                .unwrap_err()
                .status(),
            400
        );
        let plain = parts("/exec", &[]);
        assert!(negotiate(&plain, Kind::RemoteCommand)
            .unwrap_err()
            .body()
            .contains("missing upgrade headers"));
    }

    #[test]
    fn websocket_v5_answers_the_accept_key_and_subprotocol() {
        let req = parts("/exec?command=ls&stdout=true", &ws("v5.channel.k8s.io"));
        let (resp, n) = negotiate(&req, Kind::RemoteCommand).unwrap();
        assert_eq!(
            resp.headers()["Sec-WebSocket-Accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            resp.headers()["Sec-WebSocket-Protocol"],
            "v5.channel.k8s.io"
        );
        assert_eq!(
            n.transport,
            Transport::WebSocket {
                base64: false,
                close_signal: true
            }
        );
        let req = parts("/exec", &ws("v4.base64.channel.k8s.io, foo"));
        let (_, n) = negotiate(&req, Kind::RemoteCommand).unwrap();
        assert_eq!(
            n.transport,
            Transport::WebSocket {
                base64: true,
                close_signal: false
            }
        );
        let req = parts("/exec", &ws("nope"));
        assert_eq!(
            negotiate(&req, Kind::RemoteCommand).unwrap_err().status(),
            403
        );
    }

    #[test]
    fn websocket_port_forward_tunnel_and_channels() {
        let req = parts("/portforward", &ws("SPDY/3.1+portforward.k8s.io"));
        let (resp, n) = negotiate(&req, Kind::PortForward).unwrap();
        assert_eq!(
            resp.headers()["Sec-WebSocket-Protocol"],
            "SPDY/3.1+portforward.k8s.io"
        );
        assert_eq!(n.transport, Transport::SpdyOverWebSocket);
        assert_eq!(n.protocol, "portforward.k8s.io");

        let req = parts(
            "/portforward?port=80&port=443,8080",
            &ws("v4.channel.k8s.io"),
        );
        let (_, n) = negotiate(&req, Kind::PortForward).unwrap();
        assert_eq!(n.ports, vec![80, 443, 8080]);
        let req = parts("/portforward", &ws("v4.channel.k8s.io"));
        assert_eq!(
            negotiate(&req, Kind::PortForward).unwrap_err().status(),
            400
        );
    }
}
