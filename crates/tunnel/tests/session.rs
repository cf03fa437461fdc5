//! Session behaviour over `tokio::io::duplex`. Every wait is bounded by a timeout so a bug
//! fails the test instead of hanging it; nothing sleeps.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use reddwarf_tunnel::frame::{self, Frame};
use reddwarf_tunnel::{framed, Config, Incoming, Role, Session, TunnelStream};
use std::future::Future;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn t<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("timed out")
}

fn pair(config: Config) -> ((Session, Incoming), (Session, Incoming)) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    (
        Session::new(framed(a), Role::Dialer, config.clone()),
        Session::new(framed(b), Role::Listener, config),
    )
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add((i >> 9) as u8) ^ seed)
        .collect()
}

/// Echo server: answers every accepted stream with its header, then echoes until EOF.
fn serve_echo(mut incoming: Incoming) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some((header, s)) = incoming.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(s);
                w.write_all(&header).await.unwrap();
                tokio::io::copy(&mut r, &mut w).await.unwrap();
                w.shutdown().await.unwrap();
            });
        }
    })
}

/// Writes `data` and half-closes while reading everything back concurrently.
async fn round_trip(s: TunnelStream, data: Vec<u8>) -> Vec<u8> {
    let (mut r, mut w) = tokio::io::split(s);
    let writer = tokio::spawn(async move {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
        w
    });
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.unwrap();
    writer.await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_many_streams_both_directions() {
    let config = Config {
        window: 8 * 1024,
        ..Config::default()
    };
    let ((dialer, d_in), (listener, l_in)) = pair(config);
    serve_echo(d_in);
    serve_echo(l_in);
    let mut tasks = Vec::new();
    for i in 0..40u8 {
        for session in [dialer.clone(), listener.clone()] {
            tasks.push(tokio::spawn(async move {
                let header = format!("stream-{i}");
                let data = pattern(20_000 + i as usize * 997, i);
                let s = session.open(Bytes::from(header.clone())).await.unwrap();
                let out = round_trip(s, data.clone()).await;
                let mut expect = header.into_bytes();
                expect.extend_from_slice(&data);
                assert_eq!(out.len(), expect.len());
                assert!(out == expect, "stream {i} corrupted");
            }));
        }
    }
    for task in tasks {
        t(task).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_transfer_with_small_window() {
    let config = Config {
        window: 16 * 1024,
        max_data_frame: 4 * 1024,
        ..Config::default()
    };
    let ((dialer, _d_in), (_listener, mut l_in)) = pair(config);
    let data = pattern(16 << 20, 7);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        let mut s = dialer.open(Bytes::from_static(b"bulk")).await.unwrap();
        s.write_all(&sent).await.unwrap();
        s.shutdown().await.unwrap();
        s
    });
    let (header, mut s) = t(l_in.accept()).await.unwrap();
    assert_eq!(&header[..], b"bulk");
    let mut out = Vec::with_capacity(data.len());
    t(s.read_to_end(&mut out)).await.unwrap();
    assert_eq!(out.len(), data.len());
    assert!(out == data, "16 MiB transfer corrupted");
    t(writer).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_reader_does_not_block_other_streams() {
    let window = 64 * 1024;
    let config = Config {
        window,
        ..Config::default()
    };
    let ((dialer, _d_in), (_listener, mut l_in)) = pair(config);
    let big = pattern(1 << 20, 3);
    let sent = big.clone();
    let d = dialer.clone();
    let stalled_writer = tokio::spawn(async move {
        let mut s = d.open(Bytes::from_static(b"stalled")).await.unwrap();
        s.write_all(&sent).await.unwrap();
        s.shutdown().await.unwrap();
        s
    });
    // Accept the stalled stream but do not read it yet.
    let (header, mut stalled) = t(l_in.accept()).await.unwrap();
    assert_eq!(&header[..], b"stalled");
    serve_echo(l_in);

    // Another stream carries far more than the stalled stream's window, back and forth.
    for round in 0..3u8 {
        let s = t(dialer.open(Bytes::from_static(b"live"))).await.unwrap();
        let data = pattern(4 * window as usize, round);
        let out = t(round_trip(s, data.clone())).await;
        assert_eq!(&out[..4], b"live");
        assert!(out[4..] == data[..]);
    }
    // The stalled writer cannot have finished: it has 1 MiB to send and 64 KiB of credit.
    assert!(!stalled_writer.is_finished());

    let mut out = Vec::new();
    t(stalled.read_to_end(&mut out)).await.unwrap();
    assert!(out == big);
    t(stalled_writer).await.unwrap();
}

#[tokio::test]
async fn fin_half_close_keeps_the_other_direction() {
    let ((dialer, _d_in), (_listener, mut l_in)) = pair(Config::default());
    let mut c = t(dialer.open(Bytes::from_static(b"h"))).await.unwrap();
    c.write_all(b"request").await.unwrap();
    c.shutdown().await.unwrap();
    let err = c.write_all(b"more").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);

    let (_, mut s) = t(l_in.accept()).await.unwrap();
    let mut req = Vec::new();
    t(s.read_to_end(&mut req)).await.unwrap();
    assert_eq!(req, b"request");
    // Our read side saw EOF; our write side still works.
    s.write_all(b"response").await.unwrap();
    s.shutdown().await.unwrap();

    let mut resp = Vec::new();
    t(c.read_to_end(&mut resp)).await.unwrap();
    assert_eq!(resp, b"response");
}

#[tokio::test]
async fn reset_propagates_with_message() {
    let ((dialer, _d_in), (_listener, mut l_in)) = pair(Config::default());
    let mut c = t(dialer.open(Bytes::from_static(b"pod/nope")))
        .await
        .unwrap();
    let (_, s) = t(l_in.accept()).await.unwrap();
    s.reset(0x100, "container not found");

    let mut buf = [0u8; 16];
    let err = t(c.read(&mut buf)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert!(err.to_string().contains("container not found"), "{err}");
    assert!(err.to_string().contains("256"), "{err}");
    let err = c.write_all(b"x").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    // The resetting side fails too.
    let mut s = s;
    assert!(s.read(&mut buf).await.is_err());
}

#[tokio::test]
async fn dropping_a_stream_resets_the_peer() {
    let ((dialer, _d_in), (_listener, mut l_in)) = pair(Config::default());
    let mut c = t(dialer.open(Bytes::new())).await.unwrap();
    let (_, s) = t(l_in.accept()).await.unwrap();
    drop(s);
    let mut buf = [0u8; 4];
    let err = t(c.read(&mut buf)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn transport_drop_fails_streams_and_ends_incoming() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (dialer, mut d_in) = Session::new(framed(a), Role::Dialer, Config::default());
    let mut peer = framed(b);
    let mut c = t(dialer.open(Bytes::from_static(b"x"))).await.unwrap();
    // The peer sees OPEN then WINDOW, then goes away.
    let open = Frame::decode(t(peer.next()).await.unwrap().unwrap()).unwrap();
    assert!(matches!(open, Frame::Open { id: 1, .. }), "{open:?}");
    drop(peer);

    let mut buf = [0u8; 4];
    let err = t(c.read(&mut buf)).await.unwrap_err();
    assert!(err.to_string().starts_with("tunnel closed: "), "{err}");
    assert!(t(d_in.accept()).await.is_none());
    assert!(dialer.is_closed());
    let err = dialer.open(Bytes::new()).await.unwrap_err();
    assert!(err.to_string().starts_with("tunnel closed: "), "{err}");
}

#[tokio::test]
async fn local_close_fails_both_ends() {
    let ((dialer, _d_in), (listener, mut l_in)) = pair(Config::default());
    let mut c = t(dialer.open(Bytes::new())).await.unwrap();
    let (_, mut s) = t(l_in.accept()).await.unwrap();
    listener.close();
    let mut buf = [0u8; 4];
    let e1 = t(c.read(&mut buf)).await.unwrap_err();
    let e2 = t(s.read(&mut buf)).await.unwrap_err();
    assert!(e1.to_string().contains("tunnel closed"), "{e1}");
    assert!(e2.to_string().contains("closed locally"), "{e2}");
    assert!(t(l_in.accept()).await.is_none());
}

#[tokio::test]
async fn oversized_message_is_rejected() {
    let (a, mut b) = tokio::io::duplex(1024);
    let (dialer, _d_in) = Session::new(framed(a), Role::Dialer, Config::default());
    let mut c = t(dialer.open(Bytes::new())).await.unwrap();
    // A length prefix far over the limit: must error, not allocate 4 GiB.
    b.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let mut buf = [0u8; 4];
    let err = t(c.read(&mut buf)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("tunnel closed: transport read error"),
        "{err}"
    );
    drop(b);
}

/// xorshift64*: deterministic pseudo-random input without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A peer sending random (mostly almost-valid) frames neither panics nor closes the session,
/// and the session still answers afterwards.
#[tokio::test]
async fn session_survives_random_frames() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (_dialer, incoming) = Session::new(framed(a), Role::Dialer, Config::default());
    // Whatever the peer opens is accepted and read until it fails.
    tokio::spawn(async move {
        let mut incoming = incoming;
        while let Some((_, mut s)) = incoming.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    let (mut tx, mut rx) = framed(b).split();
    let (pong_tx, pong_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut pong_tx = Some(pong_tx);
        while let Some(Ok(msg)) = rx.next().await {
            if let Ok(Frame::Pong { payload }) = Frame::decode(msg) {
                if &payload[..] == b"alive" {
                    if let Some(p) = pong_tx.take() {
                        let _ = p.send(());
                    }
                }
            }
        }
    });
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let len = (rng.next() % 24) as usize;
        let mut msg: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if msg.len() >= frame::HEADER_LEN {
            // Small ids and mostly valid types so the frames reach the stream logic.
            msg[..4].copy_from_slice(&((rng.next() % 16) as u32).to_be_bytes());
            msg[4] = (rng.next() % 9) as u8;
        }
        t(tx.send(Bytes::from(msg))).await.unwrap();
    }
    let ping = Frame::Ping {
        payload: Bytes::from_static(b"alive"),
    };
    t(tx.send(ping.encode())).await.unwrap();
    t(pong_rx).await.unwrap();
}

#[tokio::test]
async fn ping_round_trips() {
    let ((dialer, _d_in), (listener, _l_in)) = pair(Config::default());
    t(dialer.ping()).await.unwrap();
    t(listener.ping()).await.unwrap();
    listener.close();
    assert!(t(dialer.ping()).await.is_err());
}

#[tokio::test]
async fn dropping_every_handle_flushes_then_closes() {
    let ((dialer, d_in), (_listener, mut l_in)) = pair(Config::default());
    let mut c = t(dialer.open(Bytes::from_static(b"last"))).await.unwrap();
    c.write_all(b"bye").await.unwrap();
    c.shutdown().await.unwrap();
    drop((c, dialer, d_in));
    // Frames queued before the drop still arrive, then the tunnel ends.
    let (_, mut s) = t(l_in.accept()).await.unwrap();
    let mut out = Vec::new();
    t(s.read_to_end(&mut out)).await.unwrap();
    assert_eq!(out, b"bye");
    assert!(t(l_in.accept()).await.is_none());
}

#[tokio::test]
async fn oversized_header_is_refused_locally() {
    let ((dialer, _d_in), (_listener, _l_in)) = pair(Config::default());
    let err = dialer
        .open(Bytes::from(vec![0u8; frame::MAX_MESSAGE]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    // The session is unharmed.
    t(dialer.ping()).await.unwrap();
}

/// A raw peer that breaks the rules gets RESETs back, per stream.
#[tokio::test]
async fn protocol_violations_are_answered_with_reset() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let config = Config {
        window: 16,
        ..Config::default()
    };
    let (_listener, mut incoming) = Session::new(framed(a), Role::Listener, config);
    let mut peer = framed(b);
    let peer_send = vec![
        // DATA on a stream nobody opened.
        Frame::Data {
            id: 5,
            data: Bytes::from_static(b"x"),
        },
        // OPEN with the listener's own (even) parity.
        Frame::Open {
            id: 2,
            header: Bytes::new(),
        },
        // A proper OPEN, then more DATA than the 16-byte window allows.
        Frame::Open {
            id: 1,
            header: Bytes::from_static(b"ok"),
        },
        Frame::Data {
            id: 1,
            data: Bytes::from(vec![1u8; 17]),
        },
    ];
    for f in peer_send {
        t(peer.send(f.encode())).await.unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(Frame::decode(t(peer.next()).await.unwrap().unwrap()).unwrap());
    }
    let resets: Vec<(u32, u32)> = seen
        .iter()
        .filter_map(|f| match f {
            Frame::Reset { id, code, .. } => Some((*id, *code)),
            _ => None,
        })
        .collect();
    assert_eq!(
        resets,
        vec![
            (5, frame::code::PROTOCOL),
            (2, frame::code::PROTOCOL),
            (1, frame::code::FLOW_CONTROL)
        ],
        "{seen:?}"
    );
    assert!(seen.contains(&Frame::Window { id: 1, credit: 16 }));
    let (header, mut s) = t(incoming.accept()).await.unwrap();
    assert_eq!(&header[..], b"ok");
    let mut buf = [0u8; 32];
    let err = t(s.read(&mut buf)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    drop(s);
    // Late DATA for a stream that already ended is dropped quietly; a ping proves nothing
    // else (no RESET) was sent before its PONG.
    t(peer.send(
        Frame::Data {
            id: 1,
            data: Bytes::from_static(b"late"),
        }
        .encode(),
    ))
    .await
    .unwrap();
    t(peer.send(
        Frame::Ping {
            payload: Bytes::from_static(b"p"),
        }
        .encode(),
    ))
    .await
    .unwrap();
    let next = Frame::decode(t(peer.next()).await.unwrap().unwrap()).unwrap();
    assert_eq!(
        next,
        Frame::Pong {
            payload: Bytes::from_static(b"p")
        }
    );
}

/// A peer that stops answering (no FIN, as behind a dead NAT) is detected by the keepalive.
#[tokio::test(start_paused = true)]
async fn keepalive_closes_a_silent_tunnel() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let config = Config {
        keepalive: Some(Duration::from_secs(10)),
        ..Config::default()
    };
    let (dialer, _incoming) = Session::new(framed(a), Role::Dialer, config);
    let mut c = t(dialer.open(Bytes::new())).await.unwrap();
    // The peer reads (so writes never block) but never answers.
    let mut peer = framed(b);
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = peer.next().await {} });
    let mut buf = [0u8; 4];
    let err = t(c.read(&mut buf)).await.unwrap_err();
    assert!(err.to_string().contains("keepalive"), "{err}");
    drain.abort();
}

/// A peer that answers keeps the tunnel up across many keepalive periods.
#[tokio::test(start_paused = true)]
async fn keepalive_keeps_a_live_tunnel() {
    let config = Config {
        keepalive: Some(Duration::from_secs(10)),
        ..Config::default()
    };
    let ((dialer, _d_in), (_listener, _l_in)) = pair(config);
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert!(!dialer.is_closed());
    t(dialer.ping()).await.unwrap();
}
