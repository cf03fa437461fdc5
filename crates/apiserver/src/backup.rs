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

/// `GET /reddwarf/v1/cluster`: members, leader, term and progress (`reddwarf cluster
/// status`); `DELETE /reddwarf/v1/cluster/members/<id>` removes a member (`reddwarf cluster
/// remove`). Cluster admins only, like the snapshot.
pub async fn cluster(
    api: &Arc<ApiServer>,
    method: &http::Method,
    member: Option<&str>,
) -> Response {
    use crate::status::ApiError;
    match (method.clone(), member) {
        (http::Method::GET, None) => match api.consensus.cluster_status().await {
            Ok(Some(s)) => crate::codec::json_value(
                http::StatusCode::OK,
                &serde_json::to_value(&s).unwrap_or_default(),
            ),
            Ok(None) => {
                ApiError::new(404, "NotFound", "this server is not a raft member").into_response()
            }
            Err(e) => ApiError::unavailable(e.to_string()).into_response(),
        },
        (http::Method::DELETE, Some(id)) => {
            let Ok(id) = id.parse::<u64>() else {
                return ApiError::bad_request(format!("member id {id:?} is not a number"))
                    .into_response();
            };
            match api.consensus.remove_member(id).await {
                Ok(()) => crate::codec::json_value(
                    http::StatusCode::OK,
                    &serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "message": format!("member {id} removed")}),
                ),
                Err(reddwarf_consensus::ProposeError::Unavailable(m)) => {
                    ApiError::unavailable(m).into_response()
                }
                Err(e) => ApiError::bad_request(e.to_string()).into_response(),
            }
        }
        _ => ApiError::method_not_allowed().into_response(),
    }
}
