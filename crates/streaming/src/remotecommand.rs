//! exec and attach: the client's stdin/stdout/stderr/error/resize streams, whichever transport
//! carries them, and the end-of-session status.

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

use crate::negotiate::{Kind, Negotiated, Transport};
use crate::options::StreamOptions;
use crate::pipe::{Cmd, StreamReader, StreamWriter};
use crate::spdy::Session;
use crate::status::{report, Outcome};
use crate::websocket::{spdy_tunnel, ChannelSession};

/// How long the client has to open its SPDY streams (the kubelet's default
/// `streamCreationTimeout`).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`RemoteCommand::finish`] waits for the client to read everything and close the
/// connection (the API server's bound for the same wait).
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// WebSocket channel numbers (apimachinery `util/remotecommand`).
const CH_STDIN: u8 = 0;
const CH_STDOUT: u8 = 1;
const CH_STDERR: u8 = 2;
const CH_ERROR: u8 = 3;
const CH_RESIZE: u8 = 4;

/// A terminal size as the client sends it on the resize stream: `{"Width":80,"Height":24}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width", alias = "width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height", alias = "height")]
    pub height: u16,
}

/// An accepted exec/attach session. Copy between the streams and the process, then call
/// [`RemoteCommand::finish`] with the outcome: it reports the status and closes the session
/// the way kubectl expects, so that kubectl exits with the command's exit code.
pub struct RemoteCommand {
    /// The client's stdin; EOF when the client closes it (SPDY FIN, WebSocket v5 CLOSE, or
    /// the connection ending).
    pub stdin: Option<StreamReader>,
    /// The command's stdout (with a tty, the terminal output).
    pub stdout: Option<StreamWriter>,
    /// `None` with a tty: a terminal has one output stream.
    pub stderr: Option<StreamWriter>,
    /// Terminal sizes (with a tty, when the protocol carries them).
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
    /// Whether the client asked for a terminal.
    pub tty: bool,
    end: End,
}

struct End {
    cmd: mpsc::Sender<Cmd>,
    error_id: Option<u32>,
    /// Streams to half-close at the end (SPDY).
    fin: Vec<u32>,
    json: bool,
    command: Vec<String>,
    reader: JoinHandle<()>,
    writer: JoinHandle<io::Result<()>>,
    resize_task: Option<JoinHandle<()>>,
}

impl Drop for End {
    fn drop(&mut self) {
        // A session dropped without `finish` (or after it) takes its connection with it.
        self.reader.abort();
        self.writer.abort();
        if let Some(t) = &self.resize_task {
            t.abort();
        }
    }
}

impl RemoteCommand {
    /// Reports how the command ended and closes the session.
    ///
    /// `Ok(code)`: the process exited with `code` (0 is success; otherwise kubectl exits with
    /// the same code). `Err(message)`: it could not be run (kubectl shows an internal error).
    /// Write everything to stdout/stderr before calling this; anything already written is
    /// delivered before the status.
    pub async fn finish(self, result: Result<i32, String>) -> io::Result<()> {
        let RemoteCommand {
            stdin,
            stdout,
            stderr,
            resize,
            mut end,
            ..
        } = self;
        // Nothing more is read: the connection reader must not wait on these.
        drop((stdin, resize, stdout, stderr));
        let outcome = match &result {
            Ok(code) => Outcome::Exited(*code),
            Err(msg) => Outcome::Failed(msg),
        };
        if let (Some(id), Some(status)) = (end.error_id, report(outcome, &end.command, end.json)) {
            let _ = end.cmd.send(Cmd::Data(id, Bytes::from(status))).await;
        }
        for id in std::mem::take(&mut end.fin) {
            let _ = end.cmd.send(Cmd::Fin(id)).await;
        }
        let _ = end.cmd.send(Cmd::Shutdown).await;
        // The client closes once it has read everything; closing first would let a TCP reset
        // (or spdystream's teardown) discard output still in flight.
        let deadline = Instant::now() + FINISH_TIMEOUT;
        let written = match timeout_at(deadline, &mut end.writer).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(io::Error::other(e)),
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        };
        if written.is_ok() {
            let _ = timeout_at(deadline, &mut end.reader).await;
        }
        written
    }
}

/// Takes over an upgraded connection for exec or attach and waits for the client's streams.
///
/// `opts` comes from the request's query ([`StreamOptions::from_query`]). Over SPDY the client
/// must open its streams within [`STREAM_CREATION_TIMEOUT`].
pub async fn accept_remotecommand<IO>(
    io: IO,
    n: Negotiated,
    opts: StreamOptions,
) -> io::Result<RemoteCommand>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    if n.kind != Kind::RemoteCommand {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "negotiated for port-forward, not exec/attach",
        ));
    }
    match n.transport {
        Transport::Spdy => accept_spdy(io, &n, opts).await,
        Transport::SpdyOverWebSocket => accept_spdy(spdy_tunnel(io).await, &n, opts).await,
        Transport::WebSocket {
            base64,
            close_signal,
        } => Ok(accept_websocket(io, &n, opts, base64, close_signal).await),
    }
}

async fn accept_spdy<IO>(io: IO, n: &Negotiated, opts: StreamOptions) -> io::Result<RemoteCommand>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let Session {
        mut streams,
        cmd,
        reader,
        writer,
    } = Session::start(io);
    let mut end = End {
        cmd: cmd.clone(),
        error_id: None,
        fin: Vec::new(),
        json: n.status_is_json(),
        command: opts.command.clone(),
        reader,
        writer,
        resize_task: None,
    };
    // One error stream, one per requested stdio stream, one for resizes with a tty (v3+).
    let expected = 1
        + usize::from(opts.stdin)
        + usize::from(opts.stdout)
        + usize::from(opts.stderr)
        + usize::from(opts.tty && n.supports_resize());
    let deadline = Instant::now() + STREAM_CREATION_TIMEOUT;
    let (mut stdin, mut stdout, mut stderr, mut resize) = (None, None, None, None);
    let mut received = 0;
    while received < expected {
        let stream = match timeout_at(deadline, streams.recv()).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the client created its streams",
                ))
            }
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "timed out waiting for client to create streams",
                ))
            }
        };
        match stream.header("streamtype").unwrap_or("") {
            "error" => {
                end.error_id = Some(stream.id);
                end.fin.push(stream.id);
            }
            "stdin" => stdin = Some(stream.reader),
            "stdout" => {
                end.fin.push(stream.id);
                stdout = Some(stream.writer(&cmd));
            }
            "stderr" => {
                end.fin.push(stream.id);
                stderr = Some(stream.writer(&cmd));
            }
            "resize" => resize = Some(stream.reader),
            other => {
                tracing::debug!(stream_type = other, "unexpected stream type");
                continue;
            }
        }
        received += 1;
    }
    // Streams opened after these are answered and ignored, as the kubelet does.
    drop(streams);
    let resize = resize.map(|r| {
        let (rx, task) = spawn_resize(r);
        end.resize_task = Some(task);
        rx
    });
    Ok(RemoteCommand {
        stdin,
        stdout,
        stderr,
        resize,
        tty: opts.tty,
        end,
    })
}

async fn accept_websocket<IO>(
    io: IO,
    n: &Negotiated,
    opts: StreamOptions,
    base64: bool,
    close_signal: bool,
) -> RemoteCommand
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut readable = vec![CH_RESIZE];
    if opts.stdin {
        readable.push(CH_STDIN);
    }
    let mut ws = ChannelSession::start(io, base64, close_signal, &readable).await;
    // An empty message on the lowest writable channel tells the client the session is up.
    let first = if opts.stdout {
        CH_STDOUT
    } else if opts.stderr {
        CH_STDERR
    } else {
        CH_ERROR
    };
    let _ = ws.cmd.send(Cmd::Data(first.into(), Bytes::new())).await;
    let writer =
        |ch: u8| StreamWriter::new(ch.into(), ws.cmd.clone(), Arc::new(AtomicBool::new(false)));
    let stdout = opts.stdout.then(|| writer(CH_STDOUT));
    let stderr = opts.stderr.then(|| writer(CH_STDERR));
    let stdin = ws.readers.remove(&CH_STDIN);
    let mut resize_task = None;
    let resize = match ws.readers.remove(&CH_RESIZE) {
        Some(r) if opts.tty => {
            let (rx, task) = spawn_resize(r);
            resize_task = Some(task);
            Some(rx)
        }
        _ => None,
    };
    RemoteCommand {
        stdin,
        stdout,
        stderr,
        resize,
        tty: opts.tty,
        end: End {
            cmd: ws.cmd.clone(),
            error_id: Some(CH_ERROR.into()),
            fin: Vec::new(),
            json: n.status_is_json(),
            command: opts.command,
            reader: ws.reader,
            writer: ws.writer,
            resize_task,
        },
    }
}

/// Decodes the resize stream: a sequence of JSON objects (Go's `json.Encoder` output).
fn spawn_resize(r: StreamReader) -> (mpsc::Receiver<TerminalSize>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(16);
    (rx, tokio::spawn(parse_resizes(r, tx)))
}

/// The most a resize value may take: a TerminalSize is a few dozen bytes; more means a
/// client that never ends its value, which would otherwise grow the buffer without bound
/// and be re-parsed on every chunk.
const MAX_PENDING_RESIZE: usize = 4096;

async fn parse_resizes<R: AsyncRead + Unpin>(mut r: R, tx: mpsc::Sender<TerminalSize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut sizes = Vec::new();
        let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<TerminalSize>();
        let consumed = loop {
            let before = it.byte_offset();
            match it.next() {
                Some(Ok(s)) => sizes.push(s),
                Some(Err(e)) if e.is_eof() => break before,
                // Upstream stops reading resizes at the first bad value.
                Some(Err(_)) => return,
                None => break it.byte_offset(),
            }
        };
        buf.drain(..consumed);
        if buf.len() > MAX_PENDING_RESIZE {
            // As a bad value: upstream stops reading resizes.
            return;
        }
        for s in sizes {
            if tx.send(s).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resizes_are_decoded_across_chunk_boundaries() {
        let (mut w, r) = tokio::io::duplex(64);
        let (tx, mut rx) = mpsc::channel(16);
        let task = tokio::spawn(parse_resizes(r, tx));
        use tokio::io::AsyncWriteExt;
        w.write_all(b"{\"Width\":80,\"Hei").await.unwrap();
        w.write_all(b"ght\":24}\n{\"width\":100,\"height\":50}\n")
            .await
            .unwrap();
        drop(w);
        assert_eq!(
            rx.recv().await,
            Some(TerminalSize {
                width: 80,
                height: 24
            })
        );
        assert_eq!(
            rx.recv().await,
            Some(TerminalSize {
                width: 100,
                height: 50
            })
        );
        assert_eq!(rx.recv().await, None);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn an_endless_resize_value_stops_the_resize_stream() {
        let (mut w, r) = tokio::io::duplex(64 * 1024);
        let (tx, mut rx) = mpsc::channel(16);
        let task = tokio::spawn(parse_resizes(r, tx));
        use tokio::io::AsyncWriteExt;
        w.write_all(b"{\"Width\":80,\"Height\":24}\n")
            .await
            .unwrap();
        // A value that never ends; the writer stays open, so only the cap ends the task.
        let mut endless = b"{\"Width\":".to_vec();
        endless.extend(std::iter::repeat_n(b' ', 8 * 1024));
        w.write_all(&endless).await.unwrap();
        assert_eq!(rx.recv().await.map(|s| s.width), Some(80));
        let end = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await;
        assert_eq!(end, Ok(None), "the resize stream kept buffering");
        task.await.unwrap();
        drop(w);
    }
}
