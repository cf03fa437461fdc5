//! Byte pipes between a connection's reader/writer tasks and the caller: an `AsyncRead` fed by
//! the connection reader, and an `AsyncWrite` that queues chunks, in order, for the single task
//! that owns the connection's write side.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// One write queued for a connection's writer task. `id` is the SPDY stream id or the
/// WebSocket channel number.
#[derive(Debug)]
pub(crate) enum Cmd {
    Data(u32, Bytes),
    /// This side is done writing on `id` (SPDY: DATA with FIN; WebSocket: nothing to send).
    Fin(u32),
    /// SPDY: accept a stream the client opened.
    Reply(u32),
    /// SPDY: answer a client's PING.
    Pong(u32),
    /// SPDY: abandon a stream.
    Reset(u32, u32),
    /// End of session: SPDY GOAWAY; WebSocket close frame (code 1000).
    Shutdown,
}

/// Largest chunk one write turns into: bounds a frame and the memory a queued command holds.
pub(crate) const MAX_CHUNK: usize = 32 * 1024;

/// Depth of every per-stream and per-connection queue.
pub(crate) const QUEUE: usize = 64;

/// The read half of a client's stream: EOF when the client ends it (SPDY FIN or RST,
/// WebSocket v5 CLOSE, or the connection going away).
pub struct StreamReader {
    rx: mpsc::Receiver<Bytes>,
    pending: Bytes,
}

impl StreamReader {
    pub(crate) fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        StreamReader {
            rx,
            pending: Bytes::new(),
        }
    }

    /// A reader that is at EOF at once.
    pub(crate) fn empty() -> Self {
        let (_, rx) = mpsc::channel(1);
        Self::new(rx)
    }
}

impl AsyncRead for StreamReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pending.is_empty() {
            match ready!(self.rx.poll_recv(cx)) {
                Some(b) => self.pending = b,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// The write half of a stream to the client. Writes are queued in order with everything
/// else the session sends; `shutdown` ends the stream (SPDY FIN).
pub struct StreamWriter {
    id: u32,
    tx: PollSender<Cmd>,
    /// Set by the reader when the client resets the stream: writes then fail fast.
    reset: Arc<AtomicBool>,
    shut: bool,
}

impl StreamWriter {
    pub(crate) fn new(id: u32, tx: mpsc::Sender<Cmd>, reset: Arc<AtomicBool>) -> Self {
        StreamWriter {
            id,
            tx: PollSender::new(tx),
            reset,
            shut: false,
        }
    }

    fn broken() -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, "stream closed by the client")
    }
}

impl AsyncWrite for StreamWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.shut || self.reset.load(Ordering::Relaxed) {
            return Poll::Ready(Err(Self::broken()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(self.tx.poll_reserve(cx)).map_err(|_| Self::broken())?;
        let n = buf.len().min(MAX_CHUNK);
        let id = self.id;
        self.tx
            .send_item(Cmd::Data(id, Bytes::copy_from_slice(&buf[..n])))
            .map_err(|_| Self::broken())?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The writer task flushes the connection whenever its queue runs empty.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shut {
            return Poll::Ready(Ok(()));
        }
        if ready!(self.tx.poll_reserve(cx)).is_err() {
            self.shut = true;
            return Poll::Ready(Ok(()));
        }
        let id = self.id;
        let _ = self.tx.send_item(Cmd::Fin(id));
        self.shut = true;
        Poll::Ready(Ok(()))
    }
}
