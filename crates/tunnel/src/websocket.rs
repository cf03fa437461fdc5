//! The tunnel's production transport: one WebSocket, one binary message per frame.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

/// Adapts a WebSocket (after its handshake, either side) to the message transport
/// [`crate::Session`] takes. Binary messages are frames; pings are answered by tungstenite;
/// a close message ends the stream; text messages are a protocol error.
pub fn websocket<S>(
    ws: WebSocketStream<S>,
) -> impl Stream<Item = io::Result<Bytes>> + Sink<Bytes, Error = io::Error> + Send + Unpin + 'static
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    WsTransport { ws }
}

struct WsTransport<S> {
    ws: WebSocketStream<S>,
}

fn to_io(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "websocket closed")
        }
        e => io::Error::new(io::ErrorKind::InvalidData, format!("websocket: {e}")),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WsTransport<S> {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let msg = match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                None => return Poll::Ready(None),
                Some(Err(tungstenite::Error::ConnectionClosed)) => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(to_io(e)))),
                Some(Ok(m)) => m,
            };
            match msg {
                Message::Binary(b) => return Poll::Ready(Some(Ok(b))),
                Message::Close(_) => return Poll::Ready(None),
                // tungstenite queues the pong itself; it goes out with the next write or flush.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                Message::Text(_) => {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "tunnel: unexpected text message",
                    ))))
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Bytes> for WsTransport<S> {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_ready(cx).map_err(to_io)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> io::Result<()> {
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(item))
            .map_err(to_io)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(to_io)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_close(cx).map_err(to_io)
    }
}
