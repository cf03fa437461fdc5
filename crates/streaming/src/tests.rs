//! Protocol tests against clients written here: a SPDY client over our framing (speaking as
//! client-go does: error stream first, half-close with FIN, RST at the end) and WebSocket
//! clients over tungstenite, for every transport and protocol version.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, WriteHalf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::spdy::frame::{read_frame, Frame, HeaderDecoder, HeaderEncoder, FLAG_FIN, RST_CANCEL};
use crate::*;

const DEADLINE: Duration = Duration::from_secs(20);

fn parts(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder().uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn spdy_request(uri: &str, versions: &[&str]) -> http::request::Parts {
    let mut h = vec![("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")];
    for v in versions {
        h.push((HEADER_PROTOCOL_VERSION, v));
    }
    parts(uri, &h)
}

fn ws_request(uri: &str, protocol: &str) -> http::request::Parts {
    let mut h = vec![
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    if !protocol.is_empty() {
        h.push(("Sec-WebSocket-Protocol", protocol));
    }
    parts(uri, &h)
}

/// Aborts spawned helpers when a test ends, passed or failed.
struct Tasks(Vec<JoinHandle<()>>);
impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The fake process behind exec: prints to stdout and stderr, echoes stdin to stdout until
/// EOF, reports the first resize, and exits with `code`.
async fn fake_exec(mut rc: RemoteCommand, code: i32) -> std::io::Result<()> {
    if let Some(out) = rc.stdout.as_mut() {
        out.write_all(b"out\n").await?;
    }
    if let Some(err) = rc.stderr.as_mut() {
        err.write_all(b"err\n").await?;
    }
    if let Some(resize) = rc.resize.as_mut() {
        let size = resize.recv().await.expect("a resize");
        let msg = format!("size {}x{}\n", size.width, size.height);
        rc.stdout
            .as_mut()
            .unwrap()
            .write_all(msg.as_bytes())
            .await?;
    }
    if let Some(mut stdin) = rc.stdin.take() {
        tokio::io::copy(&mut stdin, rc.stdout.as_mut().unwrap()).await?;
    }
    rc.finish(Ok(code)).await
}

// ---------------------------------------------------------------------------------------
// SPDY client

#[derive(Default, Debug)]
struct StreamState {
    replied: bool,
    data: Vec<u8>,
    fin: bool,
    reset: bool,
}

struct SpdyClient {
    w: WriteHalf<DuplexStream>,
    enc: HeaderEncoder,
    next_id: u32,
    frames: mpsc::UnboundedReceiver<Frame>,
    streams: HashMap<u32, StreamState>,
    pongs: Vec<u32>,
    eof: bool,
    reader: JoinHandle<()>,
}

impl Drop for SpdyClient {
    fn drop(&mut self) {
        // Both halves must go for the server to see the connection close.
        self.reader.abort();
    }
}

impl SpdyClient {
    fn new(io: DuplexStream) -> Self {
        let (mut r, w) = tokio::io::split(io);
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut dec = HeaderDecoder::new();
            while let Ok(Some(f)) = read_frame(&mut r, &mut dec).await {
                if tx.send(f).is_err() {
                    break;
                }
            }
        });
        SpdyClient {
            w,
            enc: HeaderEncoder::new(),
            next_id: 1,
            frames: rx,
            streams: HashMap::new(),
            pongs: Vec::new(),
            eof: false,
            reader,
        }
    }

    async fn write(&mut self, f: Frame) {
        let mut buf = BytesMut::new();
        self.enc.encode(&f, &mut buf).unwrap();
        self.w.write_all(&buf).await.unwrap();
    }

    async fn open(&mut self, headers: &[(&str, &str)]) -> u32 {
        let id = self.next_id;
        self.next_id += 2;
        self.write(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
        .await;
        id
    }

    async fn send(&mut self, id: u32, data: &[u8], fin: bool) {
        for chunk in data.chunks(16 * 1024) {
            self.write(Frame::Data {
                stream_id: id,
                flags: 0,
                data: Bytes::copy_from_slice(chunk),
            })
            .await;
        }
        if fin {
            self.write(Frame::Data {
                stream_id: id,
                flags: FLAG_FIN,
                data: Bytes::new(),
            })
            .await;
        }
    }

    /// Reads frames until `done` holds (or the deadline passes: a test failure).
    async fn until(&mut self, done: impl Fn(&SpdyClient) -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !done(self) {
            match tokio::time::timeout_at(deadline, self.frames.recv()).await {
                Err(_) => panic!("timed out; streams: {:?}", self.streams),
                Ok(None) => {
                    self.eof = true;
                    assert!(done(self), "connection ended early: {:?}", self.streams);
                    return;
                }
                Ok(Some(f)) => match f {
                    Frame::SynReply { stream_id, .. } => {
                        self.streams.entry(stream_id).or_default().replied = true
                    }
                    Frame::Data {
                        stream_id,
                        flags,
                        data,
                    } => {
                        let s = self.streams.entry(stream_id).or_default();
                        assert!(!s.fin, "data after FIN on {stream_id}");
                        s.data.extend_from_slice(&data);
                        s.fin |= flags & FLAG_FIN != 0;
                    }
                    Frame::RstStream { stream_id, .. } => {
                        self.streams.entry(stream_id).or_default().reset = true
                    }
                    Frame::Ping(id) => self.pongs.push(id),
                    other => panic!("unexpected frame {other:?}"),
                },
            }
        }
    }

    fn s(&self, id: u32) -> &StreamState {
        static EMPTY: StreamState = StreamState {
            replied: false,
            data: Vec::new(),
            fin: false,
            reset: false,
        };
        self.streams.get(&id).unwrap_or(&EMPTY)
    }
}

async fn spdy_exec(
    versions: &[&str],
    query: &str,
    code: i32,
) -> (
    SpdyClient,
    Tasks,
    JoinHandle<std::io::Result<()>>,
    Negotiated,
) {
    let req = spdy_request(&format!("/exec?{query}"), versions);
    let (resp, n) = negotiate(&req, Kind::RemoteCommand).unwrap();
    assert_eq!(resp.status(), 101);
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let opts = StreamOptions::from_query(query);
    let nn = n.clone();
    let server = tokio::spawn(async move {
        let rc = accept_remotecommand(server_io, nn, opts).await?;
        fake_exec(rc, code).await
    });
    let tasks = Tasks(Vec::new());
    let client = SpdyClient::new(client_io);
    (client, tasks, server, n)
}

#[tokio::test]
async fn spdy_v4_exec_round_trip_with_stdin_eof_and_exit_code() {
    for code in [0, 3] {
        let q = "command=sh&command=-c&command=exit+3&stdin=true&stdout=true&stderr=true";
        let (mut c, _tasks, server, n) =
            spdy_exec(&["v5.channel.k8s.io", "v4.channel.k8s.io"], q, code).await;
        assert_eq!(n.protocol, "v4.channel.k8s.io");
        // client-go's order: error, stdin, stdout, stderr.
        let error = c.open(&[("streamType", "error")]).await;
        let stdin = c.open(&[("streamType", "stdin")]).await;
        let stdout = c.open(&[("streamType", "stdout")]).await;
        let stderr = c.open(&[("streamType", "stderr")]).await;
        c.until(|c| {
            [error, stdin, stdout, stderr]
                .iter()
                .all(|id| c.s(*id).replied)
        })
        .await;
        c.send(stdin, b"hi\n", true).await;
        c.until(|c| c.s(stdout).fin && c.s(stderr).fin && c.s(error).fin)
            .await;
        assert_eq!(c.s(stdout).data, b"out\nhi\n");
        assert_eq!(c.s(stderr).data, b"err\n");
        let status: serde_json::Value = serde_json::from_slice(&c.s(error).data).unwrap();
        if code == 0 {
            assert_eq!(
                status,
                serde_json::json!({"metadata": {}, "status": "Success"})
            );
        } else {
            assert_eq!(status["reason"], "NonZeroExitCode");
            assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
            assert_eq!(status["details"]["causes"][0]["message"], "3");
            assert_eq!(
                status["message"],
                "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
            );
        }
        // The server waits for the client to close, as kubectl does once it has everything.
        assert!(!server.is_finished());
        drop(c);
        tokio::time::timeout(DEADLINE, server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn spdy_v2_reports_failures_as_text_and_success_as_nothing() {
    for (code, want) in [
        (0, String::new()),
        (
            3,
            "command terminated with non-zero exit code: error executing command [], exit code 3"
                .to_string(),
        ),
    ] {
        let (mut c, _tasks, server, n) = spdy_exec(&["v2.channel.k8s.io"], "stdout=1", code).await;
        assert_eq!(n.protocol, "v2.channel.k8s.io");
        let error = c.open(&[("streamtype", "error")]).await;
        let stdout = c.open(&[("streamtype", "stdout")]).await;
        c.until(|c| c.s(stdout).fin && c.s(error).fin).await;
        assert_eq!(c.s(stdout).data, b"out\n");
        assert_eq!(String::from_utf8_lossy(&c.s(error).data), want);
        drop(c);
        tokio::time::timeout(DEADLINE, server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn spdy_tty_carries_resizes_and_answers_pings() {
    let (mut c, _tasks, server, _) = spdy_exec(
        &["v4.channel.k8s.io"],
        "stdin=true&stdout=true&stderr=true&tty=true",
        0,
    )
    .await;
    c.write(Frame::Ping(1)).await;
    let error = c.open(&[("streamtype", "error")]).await;
    let stdin = c.open(&[("streamtype", "stdin")]).await;
    let stdout = c.open(&[("streamtype", "stdout")]).await;
    // No stderr with a tty; a resize stream instead.
    let resize = c.open(&[("streamtype", "resize")]).await;
    c.send(resize, b"{\"Width\":120,\"Height\":40}\n", false)
        .await;
    c.send(stdin, b"typed", true).await;
    c.until(|c| c.s(error).fin && c.s(stdout).fin).await;
    assert_eq!(c.s(stdout).data, b"out\nsize 120x40\ntyped");
    assert_eq!(c.pongs, vec![1]);
    drop(c);
    tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn spdy_streams_not_created_in_time_fail_the_accept() {
    tokio::time::pause();
    let req = spdy_request("/exec?stdout=true", &["v4.channel.k8s.io"]);
    let (_, n) = negotiate(&req, Kind::RemoteCommand).unwrap();
    let (server_io, _client_io) = tokio::io::duplex(1024);
    let opts = StreamOptions::from_query("stdout=true");
    let err = accept_remotecommand(server_io, n, opts)
        .await
        .err()
        .expect("no streams were opened");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}

// ---------------------------------------------------------------------------------------
// WebSocket exec

async fn ws_exec(
    protocol: &str,
    query: &str,
    code: i32,
) -> (
    WebSocketStream<DuplexStream>,
    JoinHandle<std::io::Result<()>>,
    Negotiated,
) {
    let req = ws_request(&format!("/exec?{query}"), protocol);
    let (resp, n) = negotiate(&req, Kind::RemoteCommand).unwrap();
    assert_eq!(resp.status(), 101);
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let opts = StreamOptions::from_query(query);
    let nn = n.clone();
    let server = tokio::spawn(async move {
        let rc = accept_remotecommand(server_io, nn, opts).await?;
        fake_exec(rc, code).await
    });
    let ws = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    (ws, server, n)
}

/// Reads until the server's close frame; returns the data per channel and the order of
/// channels seen.
async fn ws_collect(
    ws: &mut WebSocketStream<DuplexStream>,
    base64: bool,
) -> (HashMap<u8, Vec<u8>>, Vec<u8>) {
    let mut chans: HashMap<u8, Vec<u8>> = HashMap::new();
    let mut order = Vec::new();
    loop {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("server answered in time");
        let data: Vec<u8> = match msg {
            Some(Ok(Message::Binary(b))) => {
                assert!(!base64);
                b.to_vec()
            }
            Some(Ok(Message::Text(t))) => {
                assert!(base64);
                let t = t.as_bytes();
                let mut v = vec![t[0] - b'0'];
                use base64::Engine;
                v.extend(
                    base64::engine::general_purpose::STANDARD
                        .decode(&t[1..])
                        .unwrap(),
                );
                v
            }
            Some(Ok(Message::Close(frame))) => {
                assert_eq!(frame.unwrap().code, 1000.into());
                return (chans, order);
            }
            other => panic!("unexpected {other:?}"),
        };
        order.push(data[0]);
        chans
            .entry(data[0])
            .or_default()
            .extend_from_slice(&data[1..]);
    }
}

#[tokio::test]
async fn websocket_v5_exec_closes_stdin_with_the_close_signal() {
    for code in [0, 3] {
        let q = "command=cat&stdin=true&stdout=true&stderr=true";
        let (mut ws, server, n) = ws_exec("v5.channel.k8s.io", q, code).await;
        assert_eq!(n.protocol, "v5.channel.k8s.io");
        ws.send(Message::binary(b"\x00hello ".to_vec()))
            .await
            .unwrap();
        ws.send(Message::binary(b"\x00world".to_vec()))
            .await
            .unwrap();
        ws.send(Message::binary(vec![255u8, 0])).await.unwrap();
        let (chans, order) = ws_collect(&mut ws, false).await;
        assert_eq!(order[0], 1, "the empty hello comes on stdout first");
        assert_eq!(chans[&1], b"out\nhello world");
        assert_eq!(chans[&2], b"err\n");
        let status: serde_json::Value = serde_json::from_slice(&chans[&3]).unwrap();
        assert_eq!(
            status["status"],
            if code == 0 { "Success" } else { "Failure" }
        );
        // Reading on sends tungstenite's close reply, which lets the server finish.
        while ws.next().await.is_some() {}
        tokio::time::timeout(DEADLINE, server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn websocket_v4_base64_and_protocolless_exec() {
    // v4 base64: text messages, JSON status; stdin only ends with the connection, so no stdin.
    let (mut ws, server, _) =
        ws_exec("v4.base64.channel.k8s.io", "stdout=true&stderr=true", 3).await;
    let (chans, _) = ws_collect(&mut ws, true).await;
    assert_eq!(chans[&1], b"out\n");
    assert_eq!(chans[&2], b"err\n");
    let status: serde_json::Value = serde_json::from_slice(&chans[&3]).unwrap();
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    drop(ws);
    tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    // No subprotocol: binary channels, pre-v4 text error.
    let (mut ws, server, n) = ws_exec("", "stderr=true", 3).await;
    assert_eq!(n.protocol, "");
    let (chans, order) = ws_collect(&mut ws, false).await;
    assert_eq!(
        order[0], 2,
        "the empty hello comes on stderr without stdout"
    );
    assert_eq!(chans[&2], b"err\n");
    assert!(String::from_utf8_lossy(&chans[&3]).starts_with("command terminated"));
    drop(ws);
    tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn websocket_tty_resize_channel() {
    let (mut ws, server, _) =
        ws_exec("v5.channel.k8s.io", "stdin=true&stdout=true&tty=true", 0).await;
    ws.send(Message::binary(b"\x04{\"Width\":10,\"Height\":5}".to_vec()))
        .await
        .unwrap();
    ws.send(Message::binary(vec![255u8, 0])).await.unwrap();
    let (chans, _) = ws_collect(&mut ws, false).await;
    assert_eq!(chans[&1], b"out\nsize 10x5\n");
    assert!(!chans.contains_key(&2));
    drop(ws);
    tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// port-forward

/// TCP echo servers on 127.0.0.1; their tasks end with the test.
async fn echo_server(tasks: &mut Tasks) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tasks.0.push(tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    }));
    port
}

async fn dial(port: u16) -> std::io::Result<tokio::net::TcpStream> {
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await
}

/// A port that refuses connections: bound, then released.
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

fn payload(seed: u8) -> Vec<u8> {
    (0..1024 * 1024u32)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Drives two concurrent 1 MiB echo forwards and a refused one over a SPDY client.
async fn spdy_port_forward_checks(mut c: SpdyClient, p1: u16, p2: u16, refused: u16) {
    let mut ids = Vec::new();
    for (req, port) in [("0", p1), ("1", p2)] {
        let port = port.to_string();
        let e = c
            .open(&[("streamType", "error"), ("port", &port), ("requestID", req)])
            .await;
        // client-go half-closes the error stream at once: it only reads it.
        c.send(e, b"", true).await;
        let d = c
            .open(&[("streamType", "data"), ("port", &port), ("requestID", req)])
            .await;
        ids.push((e, d));
    }
    let (a, b) = (payload(1), payload(2));
    // Interleave the two uploads so both forwards run at once.
    for (ca, cb) in a.chunks(64 * 1024).zip(b.chunks(64 * 1024)) {
        c.send(ids[0].1, ca, false).await;
        c.send(ids[1].1, cb, false).await;
    }
    c.send(ids[0].1, b"", true).await;
    c.send(ids[1].1, b"", true).await;
    c.until(|c| ids.iter().all(|(e, d)| c.s(*e).fin && c.s(*d).fin))
        .await;
    assert!(c.s(ids[0].1).data == a, "port 1 echo differs");
    assert!(c.s(ids[1].1).data == b, "port 2 echo differs");
    assert!(c.s(ids[0].0).data.is_empty() && c.s(ids[1].0).data.is_empty());

    // A port nothing listens on: the error stream says so; the data stream just ends.
    let port = refused.to_string();
    let e = c
        .open(&[("streamType", "error"), ("port", &port), ("requestID", "2")])
        .await;
    let d = c
        .open(&[("streamType", "data"), ("port", &port), ("requestID", "2")])
        .await;
    c.until(|c| c.s(e).fin && c.s(d).fin).await;
    let msg = String::from_utf8_lossy(&c.s(e).data).to_string();
    assert!(
        msg.starts_with(&format!("error forwarding port {refused}: ")),
        "{msg}"
    );
    assert!(c.s(d).data.is_empty());
    // client-go resets the data stream when done; the session carries on.
    c.write(Frame::RstStream {
        stream_id: d,
        status: RST_CANCEL,
    })
    .await;
    c.write(Frame::Ping(9)).await;
    c.until(|c| c.pongs.contains(&9)).await;
}

#[tokio::test]
async fn spdy_port_forward_two_ports_and_a_dial_failure() {
    let mut tasks = Tasks(Vec::new());
    let (p1, p2, refused) = (
        echo_server(&mut tasks).await,
        echo_server(&mut tasks).await,
        closed_port().await,
    );
    let req = spdy_request("/portforward", &["portforward.k8s.io"]);
    let (_, n) = negotiate(&req, Kind::PortForward).unwrap();
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(serve_portforward(server_io, n, dial));
    let c = SpdyClient::new(client_io);
    spdy_port_forward_checks(c, p1, p2, refused).await;
    // The client going away ends the session.
    tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn spdy_tunnelled_in_websocket_port_forward() {
    let mut tasks = Tasks(Vec::new());
    let (p1, p2, refused) = (
        echo_server(&mut tasks).await,
        echo_server(&mut tasks).await,
        closed_port().await,
    );
    let req = ws_request("/portforward", "SPDY/3.1+portforward.k8s.io");
    let (resp, n) = negotiate(&req, Kind::PortForward).unwrap();
    assert_eq!(
        resp.headers()["Sec-WebSocket-Protocol"],
        "SPDY/3.1+portforward.k8s.io"
    );
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(serve_portforward(server_io, n, dial));
    // The client's side of the tunnel: SPDY bytes in binary messages, as client-go's
    // TunnelingConnection writes them.
    let ws = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    let (spdy_side, bridge_side) = tokio::io::duplex(64 * 1024);
    tasks.0.push(tokio::spawn(async move {
        let (mut sink, mut stream) = ws.split();
        let (mut r, mut w) = tokio::io::split(bridge_side);
        let up = async move {
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0 || sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        };
        let down = async move {
            while let Some(Ok(Message::Binary(b))) = stream.next().await {
                if w.write_all(&b).await.is_err() {
                    break;
                }
            }
        };
        tokio::join!(up, down);
    }));
    let c = SpdyClient::new(spdy_side);
    spdy_port_forward_checks(c, p1, p2, refused).await;
    tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn websocket_channel_port_forward() {
    let mut tasks = Tasks(Vec::new());
    let (p1, refused) = (echo_server(&mut tasks).await, closed_port().await);
    let req = ws_request(
        &format!("/portforward?port={p1}&port={refused}"),
        "v4.channel.k8s.io",
    );
    let (_, n) = negotiate(&req, Kind::PortForward).unwrap();
    assert_eq!(n.ports, vec![p1, refused]);
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(serve_portforward(server_io, n, dial));
    let mut ws = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    let data = payload(3);
    for chunk in data.chunks(32 * 1024) {
        let mut m = vec![0u8];
        m.extend_from_slice(chunk);
        ws.send(Message::binary(m)).await.unwrap();
    }
    let mut chans: HashMap<u8, Vec<u8>> = HashMap::new();
    while chans.get(&0).map_or(0, Vec::len) < 2 + data.len()
        || chans.get(&3).is_none_or(|e| e.len() <= 2)
    {
        match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => {
                chans.entry(b[0]).or_default().extend_from_slice(&b[1..])
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Every channel starts with its port, little-endian.
    assert_eq!(&chans[&0][..2], &p1.to_le_bytes());
    assert!(chans[&0][2..] == data[..]);
    assert_eq!(&chans[&1][..2], &p1.to_le_bytes());
    assert_eq!(&chans[&2][..2], &refused.to_le_bytes());
    assert_eq!(&chans[&3][..2], &refused.to_le_bytes());
    let msg = String::from_utf8_lossy(&chans[&3][2..]).to_string();
    assert!(
        msg.contains(&format!("error forwarding port {refused}")),
        "{msg}"
    );
    // Closing the WebSocket ends the session.
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
