//! port-forward: over SPDY (directly or tunnelled in WebSocket) the client opens an `error`
//! and a `data` stream per connection, paired by `requestID`; over the legacy WebSocket
//! protocol every port of the query gets a data and an error channel.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use crate::negotiate::{Kind, Negotiated, Transport};
use crate::pipe::{Cmd, StreamReader, StreamWriter};
use crate::remotecommand::STREAM_CREATION_TIMEOUT;
use crate::spdy::frame::RST_PROTOCOL_ERROR;
use crate::spdy::{ServerStream, Session};
use crate::websocket::{spdy_tunnel, ChannelSession};

/// How long a WebSocket session waits for the client's close reply once every port is done.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves port-forward on an upgraded connection until the client goes away (SPDY) or every
/// port is done (legacy WebSocket). Each forwarded connection dials `dial(port)`; a dial
/// failure is reported to the client on that connection's error stream, as the kubelet does.
pub async fn serve_portforward<IO, F, Fut, S>(io: IO, n: Negotiated, dial: F) -> io::Result<()>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    F: Fn(u16) -> Fut,
    Fut: Future<Output = io::Result<S>>,
    S: AsyncRead + AsyncWrite + Unpin,
{
    if n.kind != Kind::PortForward {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "negotiated for exec/attach, not port-forward",
        ));
    }
    match n.transport {
        Transport::Spdy => serve_spdy(io, dial).await,
        Transport::SpdyOverWebSocket => serve_spdy(spdy_tunnel(io).await, dial).await,
        Transport::WebSocket { base64, .. } => serve_websocket(io, base64, &n.ports, dial).await,
    }
}

/// The streams of one forwarded connection, as they arrive.
struct Pair {
    port: u16,
    error: Option<ServerStream>,
    data: Option<ServerStream>,
    deadline: Instant,
}

async fn serve_spdy<IO, F, Fut, S>(io: IO, dial: F) -> io::Result<()>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    F: Fn(u16) -> Fut,
    Fut: Future<Output = io::Result<S>>,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Session {
        mut streams,
        cmd,
        reader,
        writer,
    } = Session::start(io);
    let _tasks = AbortOnDrop(vec![reader.abort_handle(), writer.abort_handle()]);
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut forwards = FuturesUnordered::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            stream = streams.recv() => {
                // None: the client closed the connection; in-flight forwards end with it.
                let Some(stream) = stream else { break };
                if let Some((port, error, data)) = add_stream(&mut pairs, stream, &cmd).await {
                    forwards.push(forward_pair(port, error, data, &dial, &cmd));
                }
            }
            Some(()) = forwards.next(), if !forwards.is_empty() => {}
            _ = tick.tick() => expire(&mut pairs, &cmd).await,
        }
    }
    Ok(())
}

/// Files a new stream under its request; returns the pair once both streams are in.
async fn add_stream(
    pairs: &mut HashMap<String, Pair>,
    stream: ServerStream,
    cmd: &mpsc::Sender<Cmd>,
) -> Option<(u16, ServerStream, ServerStream)> {
    let port = match stream.header("port").map(str::parse::<u16>) {
        Some(Ok(p)) if p > 0 => p,
        _ => {
            let _ = cmd.send(Cmd::Reset(stream.id, RST_PROTOCOL_ERROR)).await;
            return None;
        }
    };
    let kind = stream.header("streamtype").unwrap_or("").to_string();
    if kind != "error" && kind != "data" {
        let _ = cmd.send(Cmd::Reset(stream.id, RST_PROTOCOL_ERROR)).await;
        return None;
    }
    // Clients before requestID paired streams by id: error n, data n+2 (the kubelet's guess).
    let request_id = match stream.header("requestid") {
        Some(r) if !r.is_empty() => r.to_string(),
        _ if kind == "error" => stream.id.to_string(),
        _ => stream.id.saturating_sub(2).to_string(),
    };
    let pair = pairs.entry(request_id.clone()).or_insert_with(|| Pair {
        port,
        error: None,
        data: None,
        deadline: Instant::now() + STREAM_CREATION_TIMEOUT,
    });
    let slot = if kind == "error" {
        &mut pair.error
    } else {
        &mut pair.data
    };
    if slot.is_some() {
        let msg = format!(
            "error processing stream for request {request_id}: {kind} stream already assigned"
        );
        if let Some(e) = &pair.error {
            let _ = cmd.send(Cmd::Data(e.id, msg.into_bytes().into())).await;
        }
        let _ = cmd.send(Cmd::Reset(stream.id, RST_PROTOCOL_ERROR)).await;
        return None;
    }
    *slot = Some(stream);
    if pair.error.is_some() && pair.data.is_some() {
        let p = pairs.remove(&request_id)?;
        return Some((p.port, p.error?, p.data?));
    }
    None
}

/// Gives up on requests whose second stream never came.
async fn expire(pairs: &mut HashMap<String, Pair>, cmd: &mpsc::Sender<Cmd>) {
    let now = Instant::now();
    let expired: Vec<String> = pairs
        .iter()
        .filter(|(_, p)| p.deadline <= now)
        .map(|(k, _)| k.clone())
        .collect();
    for id in expired {
        let Some(p) = pairs.remove(&id) else { continue };
        if let Some(e) = &p.error {
            let msg = format!("(request={id}) timed out waiting for streams");
            let _ = cmd.send(Cmd::Data(e.id, msg.into_bytes().into())).await;
            let _ = cmd.send(Cmd::Fin(e.id)).await;
        }
        if let Some(d) = &p.data {
            let _ = cmd.send(Cmd::Fin(d.id)).await;
        }
    }
}

async fn forward_pair<F, Fut, S>(
    port: u16,
    error: ServerStream,
    data: ServerStream,
    dial: &F,
    cmd: &mpsc::Sender<Cmd>,
) where
    F: Fn(u16) -> Fut,
    Fut: Future<Output = io::Result<S>>,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut error_w = error.writer(cmd);
    let data_w = data.writer(cmd);
    forward(port, data.reader, data_w, &mut error_w, dial).await;
    let _ = error_w.shutdown().await;
}

/// Dials `port` and copies both ways until the target is done sending; reports failures on
/// the error stream. Ends the data stream either way.
async fn forward<F, Fut, S>(
    port: u16,
    from_client: StreamReader,
    mut to_client: StreamWriter,
    error: &mut StreamWriter,
    dial: &F,
) where
    F: Fn(u16) -> Fut,
    Fut: Future<Output = io::Result<S>>,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let result = match dial(port).await {
        Ok(target) => pump(target, from_client, &mut to_client).await,
        Err(e) => Err(e),
    };
    let _ = to_client.shutdown().await;
    match result {
        Ok(()) => {}
        // The kubelet keeps serving after these: the target went away mid-stream.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) => {}
        Err(e) => {
            let msg = format!("error forwarding port {port}: {e}");
            tracing::debug!("{msg}");
            let _ = error.write_all(msg.as_bytes()).await;
        }
    }
}

/// Copies until the target has sent everything. The client's end of its data (SPDY FIN)
/// half-closes the target and the copy goes on; the target's end finishes the forward, as
/// upstream's runtimes return on the first direction done from the target.
async fn pump<S>(
    target: S,
    mut from_client: StreamReader,
    to_client: &mut StreamWriter,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut tr, mut tw) = tokio::io::split(target);
    let up = async {
        let _ = tokio::io::copy(&mut from_client, &mut tw).await;
        let _ = tw.shutdown().await;
        std::future::pending::<()>().await;
    };
    let down = async { tokio::io::copy(&mut tr, to_client).await.map(|_| ()) };
    tokio::select! {
        r = down => r,
        () = up => Ok(()),
    }
}

async fn serve_websocket<IO, F, Fut, S>(
    io: IO,
    base64: bool,
    ports: &[u16],
    dial: F,
) -> io::Result<()>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    F: Fn(u16) -> Fut,
    Fut: Future<Output = io::Result<S>>,
    S: AsyncRead + AsyncWrite + Unpin,
{
    if ports.len() > 127 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "at most 127 ports fit the channel numbers",
        ));
    }
    let data_channels: Vec<u8> = (0..ports.len()).map(|i| (2 * i) as u8).collect();
    let mut ws = ChannelSession::start(io, base64, false, &data_channels).await;
    // Each channel of a pair first carries its port, little-endian.
    for (i, port) in ports.iter().enumerate() {
        for ch in [2 * i, 2 * i + 1] {
            let _ = ws
                .cmd
                .send(Cmd::Data(ch as u32, port.to_le_bytes().to_vec().into()))
                .await;
        }
    }
    let writer =
        |ch: usize| StreamWriter::new(ch as u32, ws.cmd.clone(), Arc::new(AtomicBool::new(false)));
    let forwards: FuturesUnordered<_> = ports
        .iter()
        .enumerate()
        .map(|(i, &port)| {
            let from_client = ws
                .readers
                .remove(&((2 * i) as u8))
                .unwrap_or_else(StreamReader::empty);
            let to_client = writer(2 * i);
            let mut error = writer(2 * i + 1);
            let dial = &dial;
            async move { forward(port, from_client, to_client, &mut error, dial).await }
        })
        .collect();
    let all_done = forwards.collect::<Vec<()>>();
    let client_gone = tokio::select! {
        _ = all_done => false,
        _ = &mut ws.reader => true,
    };
    let _ = ws.cmd.send(Cmd::Shutdown).await;
    let _ = timeout(CLOSE_TIMEOUT, &mut ws.writer).await;
    if !client_gone {
        let _ = timeout(CLOSE_TIMEOUT, &mut ws.reader).await;
    }
    ws.reader.abort();
    ws.writer.abort();
    Ok(())
}

struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
