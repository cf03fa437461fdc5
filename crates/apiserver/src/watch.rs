//! Watch: a chunked stream of events from a revision, with selectors, bookmarks,
//! `sendInitialEvents`, Table and protobuf framing, and a bounded queue per watcher.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{header, StatusCode};
use reddwarf_resources::ResourceKind;
use reddwarf_store::{Event, EventType, Revision, WatchRegistration};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::codec::Wanted;
use crate::meta::now_unix;
use crate::registry::{from_storage, parse_stored};
use crate::request::Selectors;
use crate::request::{Scope, WatchFrom, WatchOptions};
use crate::status::{ApiError, ApiResult};
use crate::table;

/// Events a watcher may fall behind by before it is closed (the client then re-watches, or
/// re-lists when the ring no longer reaches back to it). The queue holds pointers to events
/// the ring shares, so a deep one costs little; a shallow one closed the in-process pod
/// cache's watch during rollouts (a second of CPU starvation at ~2 000 pod events/s), and
/// every re-list of 10 000 pods stalled the scheduler and the ReplicaSets behind it.
const QUEUE: usize = 16_384;
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
enum Framing {
    Json,
    Table { v1beta1: bool },
    Protobuf,
    Metadata { v1beta1: bool },
}

struct Stream {
    /// `apiserver_watch_events_total` for this resource.
    sent: prometheus_client::metrics::counter::Counter,
    kind: ResourceKind,
    framing: Framing,
    /// Leave `metadata.managedFields` out (the in-process controllers).
    slim: bool,
    include: String,
    selectors: Selectors,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
}

impl Stream {
    fn frame(&self, event_type: &str, obj: &Value) -> Bytes {
        match self.framing {
            Framing::Protobuf => match reddwarf_kubeproto::encode_watch_frame(event_type, obj) {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    tracing::warn!("protobuf watch frame: {e}");
                    Bytes::new()
                }
            },
            Framing::Json => json_frame(event_type, obj),
            Framing::Metadata { v1beta1 } => {
                if event_type == "ERROR" {
                    return json_frame(event_type, obj);
                }
                json_frame(event_type, &crate::codec::partial_metadata(obj, v1beta1))
            }
            Framing::Table { v1beta1 } => {
                if event_type == "BOOKMARK" || event_type == "ERROR" {
                    return json_frame(event_type, obj);
                }
                let mut t = json!({
                    "kind": "Table",
                    "apiVersion": if v1beta1 { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" },
                    "metadata": {"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))},
                    "columnDefinitions": table::column_definitions(&self.kind),
                    "rows": [table::row(&self.kind, obj, &self.include, now_unix())],
                });
                if t["rows"][0].get("object").is_none() {
                    t["rows"][0]["object"] = json!(null);
                    t["rows"][0].as_object_mut().map(|m| m.remove("object"));
                }
                json_frame(event_type, &t)
            }
        }
    }

    /// Sends a stored object: converted to the watched version first for an aliased kind.
    async fn send_stored(&self, event_type: &str, obj: Value) -> bool {
        let obj = from_storage(&self.kind, obj);
        self.send(event_type, &obj).await
    }

    async fn send(&self, event_type: &str, obj: &Value) -> bool {
        let slimmed;
        let obj = match obj.pointer("/metadata/managedFields") {
            Some(_) if self.slim => {
                let mut o = obj.clone();
                if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("managedFields");
                }
                slimmed = o;
                &slimmed
            }
            _ => obj,
        };
        let f = self.frame(event_type, obj);
        if f.is_empty() {
            return true;
        }
        if event_type != "BOOKMARK" {
            self.sent.inc();
        }
        self.tx.send(Ok(f)).await.is_ok()
    }

    fn passes(&self, obj: &Value) -> bool {
        self.selectors.matches(obj)
    }

    fn bookmark(&self, rev: Revision, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rev.to_string(), "creationTimestamp": null});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": self.kind.kind, "apiVersion": self.kind.api_version(), "metadata": meta})
    }

    /// Sends one committed event after selector filtering; returns false when the client is gone.
    async fn deliver(&self, ev: &Event, last: &mut Revision) -> bool {
        *last = ev.revision;
        let filtering = !self.selectors.is_empty();
        if !filtering && matches!(self.framing, Framing::Json) && !self.kind.converts_on_read() {
            // The stored bytes are the object as served: splice them into the frame instead of
            // parsing and re-encoding them once per watcher.
            let mut f = Vec::with_capacity(ev.object.len() + 32);
            f.extend_from_slice(b"{\"type\":\"");
            f.extend_from_slice(ev.event_type.as_str().as_bytes());
            f.extend_from_slice(b"\",\"object\":");
            if self.slim {
                f.extend_from_slice(&crate::slim::without_managed_fields(&ev.object));
            } else {
                f.extend_from_slice(&ev.object);
            }
            f.extend_from_slice(b"}\n");
            self.sent.inc();
            return self.tx.send(Ok(Bytes::from(f))).await.is_ok();
        }
        let Ok(obj) = parse_stored(&ev.object) else {
            return true;
        };
        // Selectors test the stored form (an aliased kind's selectable fields name it).
        let cur = self.passes(&obj);
        let (ty, body) = match ev.event_type {
            EventType::Modified if filtering => {
                let prev = ev.prev.as_ref().and_then(|p| parse_stored(p).ok());
                let was = prev.as_ref().map(|p| self.passes(p)).unwrap_or(cur);
                match (was, cur) {
                    (false, true) => ("ADDED", obj),
                    (true, false) => {
                        // Left the selection: upstream reports the previous state as deleted.
                        let mut p = prev.unwrap_or(obj);
                        if let Some(m) = p.get_mut("metadata").and_then(Value::as_object_mut) {
                            m.insert("resourceVersion".into(), json!(ev.revision.to_string()));
                        }
                        ("DELETED", p)
                    }
                    (true, true) => ("MODIFIED", obj),
                    (false, false) => return true,
                }
            }
            t => {
                if !cur {
                    return true;
                }
                (t.as_str(), obj)
            }
        };
        self.send_stored(ty, body).await
    }
}

fn json_frame(event_type: &str, obj: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": event_type, "object": obj})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

pub async fn serve(scope: &Scope<'_>) -> ApiResult<Response> {
    let opts = WatchOptions::parse(scope.query, scope.kind)?;
    let prefix = scope.prefix(scope.rp.namespace.is_empty());
    let (after, initial) = match opts.from {
        WatchFrom::InitialState => {
            let view = scope.api.store.read().map_err(ApiError::internal)?;
            let page = view
                .list(&prefix, None, 0, false, |_| true)
                .map_err(ApiError::internal)?;
            (
                view.revision(),
                page.items.into_iter().map(|(_, b)| b).collect::<Vec<_>>(),
            )
        }
        WatchFrom::Now => (scope.api.store.revision(), Vec::new()),
        WatchFrom::After(rev) => (rev, Vec::new()),
    };
    let (send_initial, timeout, bookmarks) = (
        opts.send_initial_events,
        opts.timeout_seconds,
        opts.bookmarks,
    );
    let framing = match scope.wanted {
        Wanted::Table { v1beta1 } => Framing::Table { v1beta1 },
        Wanted::Metadata { v1beta1 } => Framing::Metadata { v1beta1 },
        Wanted::Protobuf
            if reddwarf_kubeproto::knows_kind(&scope.kind.api_version(), scope.kind.kind) =>
        {
            Framing::Protobuf
        }
        _ => Framing::Json,
    };
    let registration = scope
        .api
        .store
        .watch(WatchRegistration {
            prefix,
            after,
            queue: QUEUE,
        })
        .map_err(ApiError::internal)?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let resource_labels = crate::metrics::ResourceLabels {
        group: scope.kind.group.into(),
        version: scope.kind.version.into(),
        resource: scope.kind.plural.into(),
    };
    let registered = scope
        .api
        .metrics
        .watchers
        .get_or_create(&resource_labels)
        .clone();
    let stream = Stream {
        sent: scope
            .api
            .metrics
            .watch_events
            .get_or_create(&resource_labels)
            .clone(),
        kind: scope.kind.clone(),
        framing,
        slim: scope.slim,
        include: opts.include,
        selectors: opts.selectors,
        tx,
    };
    let api = scope.api.clone();
    tokio::spawn(async move {
        registered.inc();
        // Counts this watcher down however the task ends.
        struct Registered(prometheus_client::metrics::gauge::Gauge);
        impl Drop for Registered {
            fn drop(&mut self) {
                self.0.dec();
            }
        }
        let _registered = Registered(registered);
        let mut watcher = match registration {
            Ok(w) => w,
            Err(gone) => {
                let status = ApiError::expired(format!(
                    "too old resource version: {} ({})",
                    gone.requested, gone.oldest
                ))
                .to_status();
                stream.send("ERROR", &status).await;
                return;
            }
        };
        for b in initial {
            if let Ok(obj) = parse_stored(&b) {
                if stream.passes(&obj) && !stream.send_stored("ADDED", obj).await {
                    return;
                }
            }
        }
        if send_initial == Some(true)
            && !stream.send("BOOKMARK", &stream.bookmark(after, true)).await
        {
            return;
        }
        let mut last = after;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
        loop {
            tokio::select! {
                ev = watcher.next() => match ev {
                    Some(ev) => if !stream.deliver(&ev, &mut last).await { return },
                    None => return,
                },
                _ = tick.tick(), if bookmarks => {
                    // Every event up to the hub's revision is already queued for this watcher:
                    // drain the queue, then the bookmark may claim that revision.
                    let hub_rev = api.store.revision();
                    while let Some(ev) = watcher.try_next() {
                        if !stream.deliver(&ev, &mut last).await { return }
                    }
                    // A watcher closed for falling behind missed events up to the hub's
                    // revision: a bookmark claiming it would make the client resume past them.
                    if watcher.is_closed() {
                        return;
                    }
                    let rev = hub_rev.max(last);
                    if !stream.send("BOOKMARK", &stream.bookmark(rev, false)).await { return }
                },
                _ = tokio::time::sleep_until(deadline) => return,
                _ = stream.tx.closed() => return,
            }
        }
    });
    let content_type = match framing {
        Framing::Protobuf => "application/vnd.kubernetes.protobuf;stream=watch",
        _ => "application/json",
    };
    let body = Body::from_stream(tokio_stream_from(rx));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .map_err(ApiError::internal)
}

fn tokio_stream_from(
    rx: mpsc::Receiver<Result<Bytes, Infallible>>,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

#[allow(dead_code)]
fn _assert_send(s: Arc<Stream>) -> impl Send {
    s
}
