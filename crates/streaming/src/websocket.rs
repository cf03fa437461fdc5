//! WebSocket transports: the channel protocols (`*.channel.k8s.io`: every message starts with
//! its channel number; base64 variants send text messages `'0'+channel` then base64), and the
//! SPDY tunnel (`SPDY/3.1+portforward.k8s.io`: the SPDY byte stream cut into binary messages).

use std::collections::HashMap;
use std::io;

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::pipe::{Cmd, StreamReader, QUEUE};

/// The v5 remotecommand signal: `[255, channel]` half-closes the client's side of `channel`.
pub(crate) const STREAM_CLOSE: u8 = 255;

pub(crate) struct ChannelSession {
    pub cmd: mpsc::Sender<Cmd>,
    /// The readable channels asked for at start.
    pub readers: HashMap<u8, StreamReader>,
    /// Ends when the client closes the WebSocket (or it breaks).
    pub reader: JoinHandle<()>,
    pub writer: JoinHandle<io::Result<()>>,
}

impl ChannelSession {
    /// Runs the channel protocol over an upgraded connection. `readable` lists the channels
    /// whose client data is delivered; data for others is dropped, as upstream's wsstream does.
    pub async fn start<IO>(io: IO, base64: bool, close_signal: bool, readable: &[u8]) -> Self
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        let (sink, stream) = ws.split();
        let (cmd_tx, cmd_rx) = mpsc::channel(QUEUE);
        let mut senders = HashMap::new();
        let mut readers = HashMap::new();
        for &ch in readable {
            let (tx, rx) = mpsc::channel(QUEUE);
            senders.insert(ch, tx);
            readers.insert(ch, StreamReader::new(rx));
        }
        let reader = tokio::spawn(read_loop(stream, senders, base64, close_signal));
        let writer = tokio::spawn(write_loop(sink, cmd_rx, base64));
        ChannelSession {
            cmd: cmd_tx,
            readers,
            reader,
            writer,
        }
    }
}

async fn read_loop<S>(
    mut stream: S,
    mut senders: HashMap<u8, mpsc::Sender<Bytes>>,
    base64: bool,
    close_signal: bool,
) where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    // Reading on after a close frame lets tungstenite finish the closing handshake.
    while let Some(Ok(msg)) = stream.next().await {
        let data: Bytes = match msg {
            Message::Binary(b) => b,
            Message::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
            _ => continue,
        };
        if data.is_empty() {
            continue;
        }
        if close_signal && data[0] == STREAM_CLOSE {
            if data.len() == 2 {
                senders.remove(&data[1]);
            } else {
                tracing::debug!("malformed stream close signal of {} bytes", data.len());
            }
            continue;
        }
        let (channel, payload) = if base64 {
            let Some(ch) = data[0].checked_sub(b'0') else {
                continue;
            };
            match base64::engine::general_purpose::STANDARD.decode(&data[1..]) {
                Ok(p) => (ch, Bytes::from(p)),
                Err(_) => continue,
            }
        } else {
            (data[0], data.slice(1..))
        };
        if let Some(tx) = senders.get(&channel) {
            if !payload.is_empty() && tx.send(payload).await.is_err() {
                senders.remove(&channel);
            }
        }
    }
    // Dropping the senders ends every reader with EOF.
}

async fn write_loop<S>(mut sink: S, mut rx: mpsc::Receiver<Cmd>, base64: bool) -> io::Result<()>
where
    S: futures::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    while let Some(cmd) = rx.recv().await {
        let msg = match cmd {
            Cmd::Data(ch, data) => channel_message(ch as u8, &data, base64),
            Cmd::Shutdown => {
                let close = CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                };
                sink.send(Message::Close(Some(close)))
                    .await
                    .map_err(io::Error::other)?;
                break;
            }
            // Half-closing a channel has no message from the server's side.
            Cmd::Fin(_) | Cmd::Reply(_) | Cmd::Pong(_) | Cmd::Reset(..) => continue,
        };
        sink.feed(msg).await.map_err(io::Error::other)?;
        if rx.is_empty() {
            sink.flush().await.map_err(io::Error::other)?;
        }
    }
    Ok(())
}

pub(crate) fn channel_message(ch: u8, data: &[u8], base64: bool) -> Message {
    if base64 {
        let mut s = String::with_capacity(1 + data.len() * 4 / 3 + 4);
        s.push((b'0' + ch) as char);
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
        Message::text(s)
    } else {
        let mut b = BytesMut::with_capacity(1 + data.len());
        b.put_u8(ch);
        b.extend_from_slice(data);
        Message::Binary(b.freeze())
    }
}

/// Unwraps the SPDY byte stream tunnelled in binary WebSocket messages (client-go's
/// `TunnelingConnection`: no channel byte, message boundaries carry no meaning).
pub(crate) async fn spdy_tunnel<IO>(io: IO) -> DuplexStream
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    tokio::spawn(async move {
        let (mut sink, mut stream) = ws.split();
        let (mut from_spdy, mut to_spdy) = tokio::io::split(theirs);
        let inbound = async move {
            while let Some(Ok(msg)) = stream.next().await {
                let res = match msg {
                    Message::Binary(b) => to_spdy.write_all(&b).await,
                    Message::Text(t) => to_spdy.write_all(t.as_bytes()).await,
                    _ => Ok(()),
                };
                if res.is_err() {
                    break;
                }
            }
            let _ = to_spdy.shutdown().await;
        };
        let outbound = async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match from_spdy.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let close = CloseFrame {
                            code: CloseCode::Normal,
                            reason: "".into(),
                        };
                        let _ = sink.send(Message::Close(Some(close))).await;
                        break;
                    }
                    Ok(n) => {
                        let msg = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                        if sink.send(msg).await.is_err() {
                            break;
                        }
                    }
                }
            }
        };
        tokio::join!(inbound, outbound);
    });
    ours
}
