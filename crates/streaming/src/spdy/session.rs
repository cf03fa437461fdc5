//! The server end of a SPDY/3.1 connection as Kubernetes clients use it: the client opens every
//! stream, the server accepts each at once with a SYN_REPLY, and both sides half-close with
//! FIN. Flow control is not used: Go's spdystream never sends WINDOW_UPDATE or SETTINGS and
//! ignores them (its frame handler drops unknown types), so neither do we; backpressure is
//! TCP's, through bounded queues, as in spdystream's blocking per-stream channels.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::frame::{
    read_frame, Frame, HeaderDecoder, HeaderEncoder, Headers, FLAG_FIN, RST_PROTOCOL_ERROR,
};
use crate::pipe::{Cmd, StreamReader, StreamWriter, QUEUE};

/// A stream the client opened.
pub(crate) struct ServerStream {
    pub id: u32,
    pub headers: Headers,
    pub reader: StreamReader,
    reset: Arc<AtomicBool>,
}

impl ServerStream {
    pub fn header(&self, name: &str) -> Option<&str> {
        super::frame::header(&self.headers, name)
    }

    pub fn writer(&self, cmd: &mpsc::Sender<Cmd>) -> StreamWriter {
        StreamWriter::new(self.id, cmd.clone(), self.reset.clone())
    }
}

pub(crate) struct Session {
    /// Streams as the client opens them; each has been answered with SYN_REPLY already.
    pub streams: mpsc::Receiver<ServerStream>,
    pub cmd: mpsc::Sender<Cmd>,
    /// Ends when the client closes the connection (or it breaks).
    pub reader: JoinHandle<()>,
    pub writer: JoinHandle<io::Result<()>>,
}

impl Session {
    pub fn start<IO>(io: IO) -> Session
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (r, w) = tokio::io::split(io);
        let (cmd_tx, cmd_rx) = mpsc::channel(QUEUE);
        let (new_tx, new_rx) = mpsc::channel(QUEUE);
        let reader = tokio::spawn(read_loop(BufReader::new(r), cmd_tx.clone(), new_tx));
        let writer = tokio::spawn(write_loop(w, cmd_rx));
        Session {
            streams: new_rx,
            cmd: cmd_tx,
            reader,
            writer,
        }
    }
}

struct Inbound {
    tx: Option<mpsc::Sender<Bytes>>,
    reset: Arc<AtomicBool>,
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut r: R,
    cmd: mpsc::Sender<Cmd>,
    new_streams: mpsc::Sender<ServerStream>,
) {
    let mut dec = HeaderDecoder::new();
    let mut streams: HashMap<u32, Inbound> = HashMap::new();
    loop {
        let frame = match read_frame(&mut r, &mut dec).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "spdy connection read ended");
                break;
            }
        };
        match frame {
            Frame::SynStream {
                stream_id,
                flags,
                headers,
                ..
            } => {
                // Clients open odd ids; anything else, or a reused id, is refused as
                // spdystream refuses it.
                if stream_id % 2 == 0 || streams.contains_key(&stream_id) {
                    let _ = cmd.send(Cmd::Reset(stream_id, RST_PROTOCOL_ERROR)).await;
                    continue;
                }
                let (tx, rx) = mpsc::channel(QUEUE);
                let reset = Arc::new(AtomicBool::new(false));
                if cmd.send(Cmd::Reply(stream_id)).await.is_err() {
                    break;
                }
                streams.insert(
                    stream_id,
                    Inbound {
                        tx: (flags & FLAG_FIN == 0).then_some(tx),
                        reset: reset.clone(),
                    },
                );
                // Nobody accepting any more (e.g. exec after its streams arrived): the stream
                // stays answered and is simply never read.
                let _ = new_streams
                    .send(ServerStream {
                        id: stream_id,
                        headers,
                        reader: StreamReader::new(rx),
                        reset,
                    })
                    .await;
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if let Some(s) = streams.get_mut(&stream_id) {
                    if !data.is_empty() {
                        if let Some(tx) = &s.tx {
                            if tx.send(data).await.is_err() {
                                s.tx = None;
                            }
                        }
                    }
                    if flags & FLAG_FIN != 0 {
                        s.tx = None;
                    }
                }
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(s) = streams.remove(&stream_id) {
                    s.reset.store(true, Ordering::Relaxed);
                }
            }
            Frame::Headers {
                stream_id, flags, ..
            } if flags & FLAG_FIN != 0 => {
                if let Some(s) = streams.get_mut(&stream_id) {
                    s.tx = None;
                }
            }
            // Client pings carry odd ids; echo them as spdystream does.
            Frame::Ping(id) if id % 2 == 1 => {
                let _ = cmd.send(Cmd::Pong(id)).await;
            }
            // GOAWAY: the client opens no more streams; the connection ends when it closes.
            _ => {}
        }
    }
    // Dropping `streams` ends every reader with EOF.
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::Receiver<Cmd>,
) -> io::Result<()> {
    let mut enc = HeaderEncoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut done: HashSet<u32> = HashSet::new();
    let mut shutdown = false;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Cmd::Data(id, data) => {
                    if !done.contains(&id) {
                        enc.encode(
                            &Frame::Data {
                                stream_id: id,
                                flags: 0,
                                data,
                            },
                            &mut buf,
                        )?;
                    }
                }
                Cmd::Fin(id) => {
                    if done.insert(id) {
                        enc.encode(
                            &Frame::Data {
                                stream_id: id,
                                flags: FLAG_FIN,
                                data: Bytes::new(),
                            },
                            &mut buf,
                        )?;
                    }
                }
                Cmd::Reply(id) => enc.encode(
                    &Frame::SynReply {
                        stream_id: id,
                        flags: 0,
                        headers: Vec::new(),
                    },
                    &mut buf,
                )?,
                Cmd::Pong(id) => enc.encode(&Frame::Ping(id), &mut buf)?,
                Cmd::Reset(id, status) => {
                    done.insert(id);
                    enc.encode(
                        &Frame::RstStream {
                            stream_id: id,
                            status,
                        },
                        &mut buf,
                    )?
                }
                // No GOAWAY and no close here: Go's spdystream drops frames still queued in
                // its workers once the connection reads EOF, so the server leaves closing to
                // the client, which closes after it has read everything.
                Cmd::Shutdown => shutdown = true,
            }
            if buf.len() < 256 * 1024 && !shutdown {
                next = rx.try_recv().ok();
            }
        }
        if !buf.is_empty() {
            w.write_all(&buf).await?;
            buf.clear();
        }
        w.flush().await?;
        if shutdown {
            break;
        }
    }
    Ok(())
}
