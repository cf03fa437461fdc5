//! The node tunnel: many byte streams multiplexed over one message transport.
//!
//! A node agent keeps one outbound connection (a WebSocket) to the control plane; every
//! server→node stream (logs, exec, port-forward, proxy) rides on it, so nodes never expose a
//! port. This crate is the transport-independent core: framing, streams, flow control.
//!
//! # Protocol
//! Every transport message carries exactly one frame (see [`frame`]):
//! `stream id: u32 BE | type: u8 | payload`. Types: OPEN (payload: an opaque header the
//! opener chooses, e.g. which pod and port), DATA, WINDOW (`u32` credit), FIN (half-close),
//! RESET (`u32` code + UTF-8 message), PING/PONG (stream 0).
//!
//! Ids: the side that dialled ([`Role::Dialer`]) opens odd ids, the other side even ids, so
//! both can open streams without coordinating; ids only increase and are never reused.
//!
//! Flow control: each side of a stream starts with zero credit to send; right after OPEN
//! (opener) or on accepting it (acceptor) each side grants its receive window with a WINDOW
//! frame. A writer never has more than the granted credit in flight; the reader grants credit
//! back as the application consumes data (in chunks of half a window, to keep WINDOW traffic
//! low). A slow reader therefore stalls only its own stream: frames already sent always fit in
//! the receiver's buffer, so the session's reader never blocks on one stream.
//!
//! Defensive decoding: malformed frames, DATA for unknown streams, data after FIN or beyond
//! credit are answered with RESET (best effort: dropped if the outgoing queue is full) or
//! ignored; nothing the peer sends panics or grows memory without bound.
//!
//! Tasks: one reader task decodes and dispatches incoming frames; one writer task owns the
//! transport sink and drains a bounded queue that streams hand their frames to.
//!
//! Ends: [`TunnelStream`]'s `shutdown` sends FIN (reads keep working); dropping a stream sends
//! FIN if the peer already finished, otherwise RESET. Data buffered before a RESET or a tunnel
//! failure is still readable; a stream whose peer sent FIN reads EOF even if it failed later.
//! When the transport ends or fails, every stream fails with `tunnel closed: <reason>` and
//! [`Incoming`] ends. Dropping every handle (sessions, incoming, streams) sends what is queued
//! and then closes the transport. A keepalive (PING every [`Config::keepalive`], default 30 s)
//! closes a tunnel whose peer went silent without closing it.
//!
//! ```no_run
//! # async fn demo(io: tokio::io::DuplexStream) -> std::io::Result<()> {
//! use reddwarf_tunnel::{framed, Config, Role, Session};
//! use tokio::io::AsyncWriteExt;
//! let (session, mut incoming) = Session::new(framed(io), Role::Dialer, Config::default());
//! let mut logs = session.open(bytes::Bytes::from_static(b"logs ns/pod/c")).await?;
//! logs.write_all(b"follow").await?;
//! logs.shutdown().await?; // FIN; the answer can still be read
//! while let Some((header, stream)) = incoming.accept().await { /* peer-opened streams */ }
//! # Ok(()) }
//! ```

pub mod frame;
mod websocket;

pub use websocket::websocket;

use bytes::{Buf, Bytes, BytesMut};
use frame::{code, Frame};
use futures::channel::mpsc;
use futures::{Sink, SinkExt, Stream, StreamExt};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::AbortHandle;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Which end of the transport this session is; decides the parity of the ids it opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Opened the transport; opens odd stream ids.
    Dialer,
    /// Accepted the transport; opens even stream ids.
    Listener,
}

/// Session tuning: flow-control windows, frame and queue sizes, stream limits, keepalive.
#[derive(Clone, Debug)]
pub struct Config {
    /// Per-stream receive window in bytes: how much the peer may send before we grant more.
    pub window: u32,
    /// Largest DATA payload per frame. With `write_queue` it bounds how much bulk data can sit
    /// ahead of another stream's frame in the writer queue (16 KiB × 32 = 512 KiB by default),
    /// which is the latency an interactive stream sees next to a bulk one.
    pub max_data_frame: usize,
    /// Capacity of the queue from streams to the writer task (frames).
    pub write_queue: usize,
    /// Streams the peer opened that wait in [`Incoming`] before new ones are refused.
    pub accept_backlog: usize,
    /// Open streams at most (both directions); peer OPENs beyond it are refused.
    pub max_streams: usize,
    /// Send a PING this often and close the session when its PONG does not come back within
    /// the same interval (a dead peer behind NAT sends no FIN). `None`: no keepalive.
    pub keepalive: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            window: 256 * 1024,
            max_data_frame: 16 * 1024,
            write_queue: 32,
            accept_backlog: 64,
            max_streams: 4096,
            keepalive: Some(Duration::from_secs(30)),
        }
    }
}

/// Adapts a byte stream to a message transport: each message is a u32 big-endian length then
/// the bytes. Messages over [`frame::MAX_MESSAGE`] are rejected with an `InvalidData` error
/// before anything is allocated for them.
pub fn framed<T>(
    io: T,
) -> impl Stream<Item = io::Result<Bytes>> + Sink<Bytes, Error = io::Error> + Send + Unpin + 'static
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let codec = LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(frame::MAX_MESSAGE)
        .new_codec();
    Framed::new(io, codec).map(|r| r.map(BytesMut::freeze))
}

// ---------------------------------------------------------------------------------------------
// Shared state

struct StreamState {
    recv: VecDeque<Bytes>,
    /// The peer sent FIN.
    recv_fin: bool,
    /// Credit granted to the peer and not yet used by its DATA.
    recv_remaining: u32,
    /// Bytes the application consumed since the last WINDOW we sent.
    recv_consumed: u32,
    read_waker: Option<Waker>,
    /// Credit the peer granted us and we have not used.
    send_credit: u64,
    /// We sent FIN.
    send_fin: bool,
    write_waker: Option<Waker>,
    /// Set once the stream failed (reset either way, or the tunnel closed).
    error: Option<(io::ErrorKind, String)>,
}

impl StreamState {
    fn new() -> Self {
        StreamState {
            recv: VecDeque::new(),
            recv_fin: false,
            recv_remaining: 0,
            recv_consumed: 0,
            read_waker: None,
            send_credit: 0,
            send_fin: false,
            write_waker: None,
            error: None,
        }
    }

    fn fail(&mut self, kind: io::ErrorKind, msg: String) {
        if self.error.is_none() {
            self.error = Some((kind, msg));
        }
        self.wake();
    }

    fn wake(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }
}

type StreamRef = Arc<Mutex<StreamState>>;

struct SessionState {
    streams: HashMap<u32, StreamRef>,
    next_id: u32,
    /// Highest id the peer opened; its ids must increase.
    peer_last_id: u32,
    closed: Option<String>,
    incoming: Option<tokio::sync::mpsc::Sender<(Bytes, TunnelStream)>>,
    reader: Option<AbortHandle>,
    writer: Option<AbortHandle>,
    keepalive: Option<AbortHandle>,
    /// Pings awaiting their PONG, by payload.
    pings: HashMap<u64, tokio::sync::oneshot::Sender<()>>,
    next_ping: u64,
}

struct Shared {
    role: Role,
    config: Config,
    state: Mutex<SessionState>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn closed_error(&self) -> io::Error {
        let reason = lock(&self.state)
            .closed
            .clone()
            .unwrap_or_else(|| "session writer stopped".into());
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("tunnel closed: {reason}"),
        )
    }

    /// Ends the session: fails every open stream, ends `Incoming`, stops the reader task.
    /// With `abort_writer` the writer stops at once; without, it sends what is queued, then
    /// closes the transport once the last frame sender is gone.
    fn close(&self, reason: String, abort_writer: bool) {
        let (streams, tasks) = {
            let mut st = lock(&self.state);
            if st.closed.is_some() {
                return;
            }
            tracing::debug!(%reason, "tunnel closed");
            st.closed = Some(reason.clone());
            st.incoming = None;
            st.pings.clear();
            let mut tasks = vec![st.reader.take(), st.keepalive.take()];
            if abort_writer {
                tasks.push(st.writer.take());
            }
            (std::mem::take(&mut st.streams), tasks)
        };
        for s in streams.values() {
            lock(s).fail(
                io::ErrorKind::ConnectionAborted,
                format!("tunnel closed: {reason}"),
            );
        }
        for t in tasks.into_iter().flatten() {
            t.abort();
        }
    }

    fn ours(&self, id: u32) -> bool {
        (id % 2 == 1) == (self.role == Role::Dialer)
    }

    /// Whether `id` was ever opened (by either side) in this session.
    fn was_opened(&self, id: u32) -> bool {
        let st = lock(&self.state);
        id != 0
            && if self.ours(id) {
                id < st.next_id
            } else {
                id <= st.peer_last_id
            }
    }

    fn stream(&self, id: u32) -> Option<StreamRef> {
        lock(&self.state).streams.get(&id).cloned()
    }
}

// ---------------------------------------------------------------------------------------------
// Session

/// One end of a tunnel. Cheap to clone; all clones share the session.
///
/// The tunnel lives while any `Session` clone, the [`Incoming`] or any [`TunnelStream`] does;
/// when the last of them is dropped, queued frames are still sent, then the transport is
/// closed. [`Session::close`] closes it at once.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Frame>,
    _alive: Arc<Alive>,
}

/// Counts the handles the application holds (the tasks hold `Shared`, not this).
struct Alive(Arc<Shared>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.close("session dropped".into(), false);
    }
}

/// Streams the peer opened, with the header it sent. Ends when the session closes.
pub struct Incoming {
    rx: tokio::sync::mpsc::Receiver<(Bytes, TunnelStream)>,
    _alive: Arc<Alive>,
}

impl Incoming {
    /// The next stream the peer opened, with the header it sent; `None` once the session closed.
    pub async fn accept(&mut self) -> Option<(Bytes, TunnelStream)> {
        self.rx.recv().await
    }
}

impl Stream for Incoming {
    type Item = (Bytes, TunnelStream);
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Session {
    /// Starts the session's reader and writer tasks on the current tokio runtime.
    pub fn new<S>(transport: S, role: Role, mut config: Config) -> (Session, Incoming)
    where
        S: Stream<Item = io::Result<Bytes>>
            + Sink<Bytes, Error = io::Error>
            + Send
            + Unpin
            + 'static,
    {
        // A zero window would stall every stream; a DATA frame must fit in one message.
        config.window = config.window.max(1);
        config.max_data_frame = config
            .max_data_frame
            .clamp(1, frame::MAX_MESSAGE - frame::HEADER_LEN);
        let (in_tx, in_rx) = tokio::sync::mpsc::channel(config.accept_backlog.max(1));
        let (tx, rx) = mpsc::channel(config.write_queue.max(1));
        let shared = Arc::new(Shared {
            role,
            config,
            state: Mutex::new(SessionState {
                streams: HashMap::new(),
                next_id: if role == Role::Dialer { 1 } else { 2 },
                peer_last_id: 0,
                closed: None,
                incoming: Some(in_tx),
                reader: None,
                writer: None,
                keepalive: None,
                pings: HashMap::new(),
                next_ping: 0,
            }),
        });
        let alive = Arc::new(Alive(shared.clone()));
        let (sink, stream) = transport.split();
        let w = tokio::spawn(write_loop(shared.clone(), sink, rx));
        let r = tokio::spawn(read_loop(
            shared.clone(),
            Arc::downgrade(&alive),
            stream,
            tx.clone(),
        ));
        {
            let mut st = lock(&shared.state);
            if st.closed.is_some() {
                w.abort();
                r.abort();
            } else {
                st.writer = Some(w.abort_handle());
                if let Some(every) = shared.config.keepalive {
                    let k = tokio::spawn(keepalive_loop(shared.clone(), tx.clone(), every));
                    st.keepalive = Some(k.abort_handle());
                }
                st.reader = Some(r.abort_handle());
            }
        }
        (
            Session {
                shared,
                tx,
                _alive: alive.clone(),
            },
            Incoming {
                rx: in_rx,
                _alive: alive,
            },
        )
    }

    /// Opens a stream; `header` reaches the peer's [`Incoming`] as is.
    pub async fn open(&self, header: Bytes) -> io::Result<TunnelStream> {
        if header.len() > frame::MAX_MESSAGE - frame::HEADER_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "tunnel: stream header too large",
            ));
        }
        let mut tx = self.tx.clone();
        futures::future::poll_fn(|cx| tx.poll_ready(cx))
            .await
            .map_err(|_| self.shared.closed_error())?;
        let window = self.shared.config.window;
        let state = Arc::new(Mutex::new(StreamState::new()));
        lock(&state).recv_remaining = window;
        let id = {
            let mut st = lock(&self.shared.state);
            let refuse = if st.closed.is_some() || tx.is_closed() {
                Some(None)
            } else if st.streams.len() >= self.shared.config.max_streams {
                Some(Some("tunnel: too many open streams"))
            } else if st.next_id.checked_add(2).is_none() {
                Some(Some("tunnel: stream ids exhausted"))
            } else {
                None
            };
            if let Some(msg) = refuse {
                drop(st);
                return Err(match msg {
                    Some(m) => io::Error::other(m),
                    None => self.shared.closed_error(),
                });
            }
            let id = st.next_id;
            st.next_id += 2;
            // Queue OPEN under the lock (the slot was reserved above): the peer requires ids
            // to arrive in increasing order, and concurrent opens must not reorder them.
            let _ = tx.start_send(Frame::Open { id, header });
            st.streams.insert(id, state.clone());
            id
        };
        // From here on a cancelled open cleans up through the stream's Drop.
        let mut stream = TunnelStream::new(id, state, self.shared.clone(), tx, self._alive.clone());
        stream
            .tx
            .send(Frame::Window { id, credit: window })
            .await
            .map_err(|_| self.shared.closed_error())?;
        Ok(stream)
    }

    /// Closes the tunnel: every stream fails, `Incoming` ends, the transport is dropped.
    pub fn close(&self) {
        self.shared.close("closed locally".into(), true);
    }

    /// Sends a PING and waits for its PONG; returns the round-trip time. The caller bounds
    /// the wait (a keepalive closes the session when a ping times out).
    pub async fn ping(&self) -> io::Result<Duration> {
        ping(&self.shared, &self.tx).await
    }

    /// Whether the session has closed (by either side, a transport error or a missed keepalive).
    pub fn is_closed(&self) -> bool {
        lock(&self.shared.state).closed.is_some()
    }
}

async fn ping(shared: &Shared, tx: &mpsc::Sender<Frame>) -> io::Result<Duration> {
    let (done, rx) = tokio::sync::oneshot::channel();
    let n = {
        let mut st = lock(&shared.state);
        if st.closed.is_some() {
            drop(st);
            return Err(shared.closed_error());
        }
        st.next_ping += 1;
        let n = st.next_ping;
        st.pings.insert(n, done);
        n
    };
    // Forget the ping if the caller gives up on it.
    struct Forget<'a>(&'a Shared, u64);
    impl Drop for Forget<'_> {
        fn drop(&mut self) {
            lock(&self.0.state).pings.remove(&self.1);
        }
    }
    let _forget = Forget(shared, n);
    let start = Instant::now();
    let payload = Bytes::copy_from_slice(&n.to_be_bytes());
    tx.clone()
        .send(Frame::Ping { payload })
        .await
        .map_err(|_| shared.closed_error())?;
    rx.await.map_err(|_| shared.closed_error())?;
    Ok(start.elapsed())
}

async fn keepalive_loop(shared: Arc<Shared>, tx: mpsc::Sender<Frame>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match tokio::time::timeout(every, ping(&shared, &tx)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return, // closed already
            Err(_) => {
                shared.close(format!("keepalive: no PONG within {every:?}"), true);
                return;
            }
        }
    }
}

async fn write_loop<W>(shared: Arc<Shared>, mut sink: W, mut rx: mpsc::Receiver<Frame>)
where
    W: Sink<Bytes, Error = io::Error> + Unpin,
{
    let res: io::Result<()> = async {
        while let Some(f) = rx.next().await {
            sink.feed(f.encode()).await?;
            // Batch whatever else is queued into one flush.
            while let Ok(f) = rx.try_recv() {
                sink.feed(f.encode()).await?;
            }
            sink.flush().await?;
        }
        sink.close().await
    }
    .await;
    let reason = match res {
        Ok(()) => "session dropped".to_string(),
        Err(e) => format!("transport write error: {e}"),
    };
    shared.close(reason, true);
}

async fn read_loop<R>(
    shared: Arc<Shared>,
    alive: Weak<Alive>,
    mut transport: R,
    mut tx: mpsc::Sender<Frame>,
) where
    R: Stream<Item = io::Result<Bytes>> + Unpin,
{
    let reason = loop {
        match transport.next().await {
            None => break "transport ended".to_string(),
            Some(Err(e)) => break format!("transport read error: {e}"),
            Some(Ok(msg)) => match Frame::decode(msg) {
                Ok(f) => handle(&shared, &alive, &mut tx, f),
                Err(e) => {
                    tracing::debug!(error = %e, "tunnel: bad frame");
                    if let Some(id) = e.stream_id() {
                        reply(&mut tx, reset(id, code::PROTOCOL, &e.to_string()));
                        if let Some(s) = shared.stream(id) {
                            lock(&s).fail(
                                io::ErrorKind::InvalidData,
                                format!("tunnel protocol error: {e}"),
                            );
                        }
                    }
                }
            },
        }
    };
    shared.close(reason, true);
}

/// RESET messages are for humans; cap them so one can never exceed a transport message.
const MAX_RESET_MESSAGE: usize = 1024;

fn reset(id: u32, code: u32, message: &str) -> Frame {
    let mut end = message.len().min(MAX_RESET_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    Frame::Reset {
        id,
        code,
        message: message[..end].into(),
    }
}

/// Best-effort reply from the reader task: dropped when the queue is full, so a peer that
/// floods us with garbage while not reading cannot grow our memory.
fn reply(tx: &mut mpsc::Sender<Frame>, f: Frame) {
    if tx.try_send(f).is_err() {
        tracing::debug!("tunnel: write queue full, dropping control reply");
    }
}

/// A frame that must be queued from a non-async context (Drop, poll_read). A fresh clone of
/// a bounded futures sender always has one slot, so this never fails while the session lives;
/// every caller is itself bounded (one per stream end, or one per half window consumed).
fn send_now(tx: &mpsc::Sender<Frame>, f: Frame) {
    let _ = tx.clone().try_send(f);
}

fn handle(shared: &Arc<Shared>, alive: &Weak<Alive>, tx: &mut mpsc::Sender<Frame>, f: Frame) {
    match f {
        Frame::Open { id, header } => {
            let mut st = lock(&shared.state);
            if st.closed.is_some() {
                return;
            }
            if id == 0 || shared.ours(id) || id <= st.peer_last_id {
                drop(st);
                reply(tx, reset(id, code::PROTOCOL, "bad stream id in OPEN"));
                return;
            }
            st.peer_last_id = id;
            if st.streams.len() >= shared.config.max_streams {
                drop(st);
                reply(tx, reset(id, code::REFUSED, "too many streams"));
                return;
            }
            let (Some(incoming), Some(alive)) = (st.incoming.clone(), alive.upgrade()) else {
                return;
            };
            let state = Arc::new(Mutex::new(StreamState::new()));
            lock(&state).recv_remaining = shared.config.window;
            st.streams.insert(id, state.clone());
            drop(st);
            let stream = TunnelStream::new(id, state.clone(), shared.clone(), tx.clone(), alive);
            match incoming.try_send((header, stream)) {
                Ok(()) => send_now(
                    tx,
                    Frame::Window {
                        id,
                        credit: shared.config.window,
                    },
                ),
                Err(e) => {
                    // Mark failed first so the stream's Drop sends nothing itself.
                    lock(&state).fail(io::ErrorKind::ConnectionRefused, "refused".into());
                    drop(e);
                    reply(tx, reset(id, code::REFUSED, "not accepting streams"));
                }
            }
        }
        Frame::Data { id, data } => {
            let Some(s) = shared.stream(id) else {
                // DATA still in flight for a stream that ended here is expected: drop it.
                // Only a stream that was never opened earns a RESET.
                if !shared.was_opened(id) {
                    reply(tx, reset(id, code::PROTOCOL, "DATA for unknown stream"));
                }
                return;
            };
            let mut st = lock(&s);
            if st.error.is_some() || data.is_empty() {
                return;
            }
            let violation = if st.recv_fin {
                Some((code::PROTOCOL, "DATA after FIN"))
            } else if data.len() > st.recv_remaining as usize {
                Some((code::FLOW_CONTROL, "DATA beyond granted window"))
            } else {
                None
            };
            if let Some((c, v)) = violation {
                st.fail(
                    io::ErrorKind::InvalidData,
                    format!("tunnel protocol error: {v}"),
                );
                drop(st);
                reply(tx, reset(id, c, v));
                return;
            }
            st.recv_remaining -= data.len() as u32;
            st.recv.push_back(data);
            if let Some(w) = st.read_waker.take() {
                w.wake();
            }
        }
        Frame::Window { id, credit } => {
            if let Some(s) = shared.stream(id) {
                let mut st = lock(&s);
                st.send_credit = st.send_credit.saturating_add(credit as u64);
                if let Some(w) = st.write_waker.take() {
                    w.wake();
                }
            }
        }
        Frame::Fin { id } => {
            if let Some(s) = shared.stream(id) {
                let mut st = lock(&s);
                st.recv_fin = true;
                if let Some(w) = st.read_waker.take() {
                    w.wake();
                }
            }
        }
        Frame::Reset { id, code, message } => {
            let s = lock(&shared.state).streams.remove(&id);
            if let Some(s) = s {
                lock(&s).fail(
                    io::ErrorKind::ConnectionReset,
                    format!("stream reset by peer (code {code}): {message}"),
                );
            }
        }
        Frame::Ping { payload } => reply(tx, Frame::Pong { payload }),
        Frame::Pong { payload } => {
            let Ok(n) = <[u8; 8]>::try_from(&payload[..]) else {
                return;
            };
            let done = lock(&shared.state).pings.remove(&u64::from_be_bytes(n));
            if let Some(done) = done {
                let _ = done.send(());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Streams

/// One multiplexed byte stream. `shutdown` sends FIN (the read side keeps working); split it
/// with [`tokio::io::split`]. Dropping it sends FIN if the peer already finished and we have
/// not, otherwise RESET (code [`code::CANCEL`]) so the peer stops sending into the void.
pub struct TunnelStream {
    id: u32,
    state: StreamRef,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Frame>,
    _alive: Arc<Alive>,
}

impl std::fmt::Debug for TunnelStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelStream")
            .field("id", &self.id)
            .finish()
    }
}

impl TunnelStream {
    fn new(
        id: u32,
        state: StreamRef,
        shared: Arc<Shared>,
        tx: mpsc::Sender<Frame>,
        alive: Arc<Alive>,
    ) -> Self {
        TunnelStream {
            id,
            state,
            shared,
            tx,
            _alive: alive,
        }
    }

    /// The stream's id within the session.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Aborts the stream on both ends; the peer's reads and writes fail with `message`.
    pub fn reset(&self, code: u32, message: &str) {
        {
            let mut st = lock(&self.state);
            if st.error.is_some() {
                return;
            }
            st.recv.clear();
            // A stream we reset reads as failed, never as finished.
            st.recv_fin = false;
            st.fail(
                io::ErrorKind::ConnectionReset,
                format!("stream reset locally (code {code}): {message}"),
            );
        }
        send_now(&self.tx, reset(self.id, code, message));
    }

    fn error(&self, st: &StreamState) -> Option<io::Error> {
        st.error
            .as_ref()
            .map(|(k, m)| io::Error::new(*k, m.clone()))
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut st = lock(&this.state);
        if let Some(chunk) = st.recv.front_mut() {
            // Buffered data is delivered even after a peer RESET, then the error.
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            chunk.advance(n);
            if chunk.is_empty() {
                st.recv.pop_front();
            }
            st.recv_consumed += n as u32;
            let threshold = (this.shared.config.window / 2).max(1);
            if st.recv_consumed >= threshold && !st.recv_fin && st.error.is_none() {
                let credit = std::mem::take(&mut st.recv_consumed);
                st.recv_remaining += credit;
                drop(st);
                send_now(
                    &this.tx,
                    Frame::Window {
                        id: this.id,
                        credit,
                    },
                );
            }
            return Poll::Ready(Ok(()));
        }
        // A peer that finished before the stream failed sent everything: that is EOF.
        if st.recv_fin {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = this.error(&st) {
            return Poll::Ready(Err(e));
        }
        st.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        {
            let mut st = lock(&this.state);
            if let Some(e) = this.error(&st) {
                return Poll::Ready(Err(e));
            }
            if st.send_fin {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "tunnel stream: write after shutdown",
                )));
            }
            if st.send_credit == 0 {
                st.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        if ready!(this.tx.poll_ready(cx)).is_err() {
            return Poll::Ready(Err(this.shared.closed_error()));
        }
        let n = {
            let mut st = lock(&this.state);
            if let Some(e) = this.error(&st) {
                return Poll::Ready(Err(e));
            }
            // Credit only grows while we were away, so it is still non-zero.
            let n = (buf.len() as u64)
                .min(st.send_credit)
                .min(this.shared.config.max_data_frame.max(1) as u64) as usize;
            st.send_credit -= n as u64;
            n
        };
        let f = Frame::Data {
            id: this.id,
            data: Bytes::copy_from_slice(&buf[..n]),
        };
        if this.tx.start_send(f).is_err() {
            return Poll::Ready(Err(this.shared.closed_error()));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Frames go out as soon as the writer task gets to them; nothing is held here.
        let st = lock(&self.state);
        match self.error(&st) {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        {
            let st = lock(&this.state);
            if let Some(e) = this.error(&st) {
                return Poll::Ready(Err(e));
            }
            if st.send_fin {
                return Poll::Ready(Ok(()));
            }
        }
        if ready!(this.tx.poll_ready(cx)).is_err() {
            return Poll::Ready(Err(this.shared.closed_error()));
        }
        if this.tx.start_send(Frame::Fin { id: this.id }).is_err() {
            return Poll::Ready(Err(this.shared.closed_error()));
        }
        lock(&this.state).send_fin = true;
        Poll::Ready(Ok(()))
    }
}

impl Drop for TunnelStream {
    fn drop(&mut self) {
        let frame = {
            let st = lock(&self.state);
            if st.error.is_some() {
                None
            } else if st.recv_fin {
                (!st.send_fin).then_some(Frame::Fin { id: self.id })
            } else {
                Some(reset(self.id, code::CANCEL, "stream dropped"))
            }
        };
        lock(&self.shared.state).streams.remove(&self.id);
        if let Some(f) = frame {
            send_now(&self.tx, f);
        }
    }
}
