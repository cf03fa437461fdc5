//! `/metrics` in the Prometheus text format. A first set: group commit, store revision and
//! watchers; the full upstream set arrives with the metrics work.

use std::sync::atomic::Ordering;

use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};

use crate::ApiServer;

pub fn serve(api: &ApiServer) -> Response {
    let s = api.consensus.stats();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    metric(
        "reddwarf_raft_log_fsyncs_total",
        "counter",
        "Durable writes of the raft log (one fsync each).",
        s.fsyncs.load(Ordering::Relaxed),
    );
    metric(
        "reddwarf_raft_proposed_entries_total",
        "counter",
        "Raft entries proposed; each carries a batch of mutations.",
        s.entries.load(Ordering::Relaxed),
    );
    metric(
        "reddwarf_raft_proposed_mutations_total",
        "counter",
        "Mutations proposed through raft.",
        s.mutations.load(Ordering::Relaxed),
    );
    metric(
        "reddwarf_store_revision",
        "gauge",
        "The store's current revision (latest resourceVersion).",
        api.store.revision(),
    );
    metric(
        "apiserver_registered_watchers",
        "gauge",
        "Watchers currently registered.",
        api.store.hub().watcher_count() as u64,
    );
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
