//! The session over a real WebSocket on loopback TCP: streams both ways, and the peer's close
//! ends every stream with a clear error.

use std::time::Duration;

use reddwarf_tunnel::{websocket, Config, Role, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_tungstenite::WebSocketStream;

async fn t<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("timed out")
}

/// A connected pair of WebSockets over TCP (the HTTP handshake is the server's business and is
/// tested there; framing starts after it).
async fn ws_pair() -> (WebSocketStream<TcpStream>, WebSocketStream<TcpStream>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
    let client = WebSocketStream::from_raw_socket(c.unwrap(), WsRole::Client, None).await;
    let server = WebSocketStream::from_raw_socket(s.unwrap().0, WsRole::Server, None).await;
    (client, server)
}

#[tokio::test]
async fn streams_both_ways_over_a_websocket() {
    let (c, s) = ws_pair().await;
    let (agent, mut agent_in) = Session::new(websocket(c), Role::Dialer, Config::default());
    let (server, mut server_in) = Session::new(websocket(s), Role::Listener, Config::default());

    // Server → agent (the usual direction: logs, exec), with more data than one window.
    let echo = tokio::spawn(async move {
        let (header, stream) = agent_in.accept().await.unwrap();
        assert_eq!(&header[..], b"echo");
        let (mut r, mut w) = tokio::io::split(stream);
        tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let stream = t(server.open(bytes::Bytes::from_static(b"echo")))
        .await
        .unwrap();
    let (mut r, mut w) = tokio::io::split(stream);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    t(r.read_to_end(&mut back)).await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed bytes differ");
    t(writer).await.unwrap();
    t(echo).await.unwrap();

    // Agent → server works on the same tunnel.
    let mut up = t(agent.open(bytes::Bytes::from_static(b"up")))
        .await
        .unwrap();
    let (header, mut down) = t(server_in.accept()).await.unwrap();
    assert_eq!(&header[..], b"up");
    up.write_all(b"hello").await.unwrap();
    up.shutdown().await.unwrap();
    let mut got = String::new();
    t(down.read_to_string(&mut got)).await.unwrap();
    assert_eq!(got, "hello");
}

#[tokio::test]
async fn closing_one_side_fails_the_other_sides_streams() {
    let (c, s) = ws_pair().await;
    let (agent, mut agent_in) = Session::new(websocket(c), Role::Dialer, Config::default());
    let (server, _server_in) = Session::new(websocket(s), Role::Listener, Config::default());
    let mut stream = t(server.open(bytes::Bytes::from_static(b"x")))
        .await
        .unwrap();
    let (_h, _agent_side) = t(agent_in.accept()).await.unwrap();
    agent.close();
    drop(agent_in);
    let mut buf = [0u8; 8];
    let err = t(stream.read(&mut buf)).await.unwrap_err();
    assert!(
        err.to_string().contains("tunnel closed"),
        "unexpected error: {err}"
    );
    assert!(
        t(async {
            while !server.is_closed() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            true
        })
        .await
    );
}
