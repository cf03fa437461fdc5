//! Online backup: `GET /reddwarf/v1/snapshot` streams a consistent dump of the store (one
//! redb read view, the same dump a raft snapshot is made of) while the cluster keeps serving.
//! Only callers allowed `get` on the path (cluster admins) reach it. `reddwarf snapshot save`
//! writes it to a file; `reddwarf server --restore FILE` starts a new cluster from it.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::ApiServer;

/// Chunks the dump into the response as it is written; a client that goes away ends it.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 1 << 20;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

pub fn serve(api: &Arc<ApiServer>) -> Response {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = api.store.clone();
    // Reading the whole store is blocking work; memory stays at a few chunks whatever its size.
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = store
            .dump_to(&mut w)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|_| w.flush());
        if let Err(e) = result {
            tracing::warn!("snapshot stream: {e}");
            // An error mid-stream cuts the body short; the dump's end marker is then missing and
            // a restore refuses it.
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (
        [(http::header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}
