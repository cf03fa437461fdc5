//! `/metrics` in the Prometheus text format, with upstream's metric names where upstream has
//! the metric (`apiserver_request_total`, `apiserver_request_duration_seconds`,
//! `apiserver_storage_objects`, `apiserver_watch_events_total`, `apiserver_registered_watchers`,
//! `process_*`) and `reddwarf_*` names for what is ours (raft, group commit, the store).

use std::sync::Mutex;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use reddwarf_store::ObjectKey;

use crate::ApiServer;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    #[prometheus(flatten)]
    pub request: DurationLabels,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DurationLabels {
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub scope: String,
    pub component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub group: String,
    pub version: String,
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StorageLabels {
    pub operation: String,
    #[prometheus(flatten)]
    pub resource: ResourceLabels,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectsLabels {
    resource: String,
}

/// Upstream's request-duration buckets.
const REQUEST_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

fn storage_histogram() -> Histogram {
    Histogram::new([
        0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

/// Everything `/metrics` reports; recorded by the request path, read at scrape.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub durations: Family<DurationLabels, Histogram, fn() -> Histogram>,
    pub watch_events: Family<ResourceLabels, Counter>,
    pub watchers: Family<ResourceLabels, Gauge>,
    pub storage: Family<StorageLabels, Histogram, fn() -> Histogram>,
    objects: Family<ObjectsLabels, Gauge>,
    /// When the objects were last counted and how long it took: see [`serve`].
    counted: Mutex<Option<(std::time::Instant, std::time::Duration)>>,
    raft_term: Gauge,
    raft_leader: Gauge,
    raft_last_log: Gauge,
    raft_applied: Gauge,
    revision: Gauge,
    watch_cache_whole: Gauge,
    watch_cache_compressed: Gauge,
    rss: Gauge,
    vsize: Gauge,
    cpu: Counter<f64, std::sync::atomic::AtomicU64>,
    start: Gauge<f64, std::sync::atomic::AtomicU64>,
    fds: Gauge,
}

impl Metrics {
    pub fn new(stats: &reddwarf_consensus::Stats) -> Metrics {
        let mut r = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: Family<DurationLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(request_histogram);
        let watch_events = Family::<ResourceLabels, Counter>::default();
        let watchers = Family::<ResourceLabels, Gauge>::default();
        let storage: Family<StorageLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(storage_histogram);
        let objects = Family::<ObjectsLabels, Gauge>::default();
        r.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code",
            requests.clone(),
        );
        r.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, group, version, resource, subresource, scope and component",
            durations.clone(),
        );
        r.register(
            "apiserver_watch_events",
            "Number of events sent in watch clients",
            watch_events.clone(),
        );
        r.register(
            "apiserver_registered_watchers",
            "Number of currently registered watchers for a given resources",
            watchers.clone(),
        );
        r.register(
            "apiserver_storage_objects",
            "Number of stored objects at the time of last check split by kind",
            objects.clone(),
        );
        r.register(
            "reddwarf_storage_request_duration_seconds",
            "Store request latency in seconds by operation and resource (the etcd_request_duration_seconds of this server)",
            storage.clone(),
        );
        let g = Gauge::<i64>::default;
        let (raft_term, raft_leader, raft_last_log, raft_applied) = (g(), g(), g(), g());
        let revision = g();
        r.register("reddwarf_raft_term", "Current raft term", raft_term.clone());
        r.register(
            "reddwarf_raft_is_leader",
            "1 when this node is the raft leader",
            raft_leader.clone(),
        );
        r.register(
            "reddwarf_raft_last_log_index",
            "Index of the last raft log entry",
            raft_last_log.clone(),
        );
        r.register(
            "reddwarf_raft_applied_index",
            "Index of the last raft entry applied to the store",
            raft_applied.clone(),
        );
        r.register(
            "reddwarf_raft_log_fsyncs",
            "Durable writes of the raft log (one fsync each)",
            stats.fsyncs.clone(),
        );
        r.register(
            "reddwarf_raft_proposed_entries",
            "Raft entries proposed; each carries a batch of mutations",
            stats.entries.clone(),
        );
        r.register(
            "reddwarf_raft_proposed_mutations",
            "Mutations proposed through raft",
            stats.mutations.clone(),
        );
        r.register(
            "reddwarf_raft_log_append_duration_seconds",
            "Seconds per raft log append (one redb commit and fsync)",
            stats.append_seconds.clone(),
        );
        r.register(
            "reddwarf_raft_batch_mutations",
            "Mutations per raft entry (group commit batch size)",
            stats.batch_mutations.clone(),
        );
        r.register(
            "reddwarf_store_revision",
            "The store's current revision (latest resourceVersion)",
            revision.clone(),
        );
        let (watch_cache_whole, watch_cache_compressed) = (g(), g());
        r.register(
            "reddwarf_watch_cache_whole_bytes",
            "Bytes of objects the watch cache keeps uncompressed (its newest events)",
            watch_cache_whole.clone(),
        );
        r.register(
            "reddwarf_watch_cache_compressed_bytes",
            "Bytes of objects the watch cache keeps compressed (its older events)",
            watch_cache_compressed.clone(),
        );
        let (rss, vsize, fds) = (g(), g(), g());
        let cpu = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        let start = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        r.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            rss.clone(),
        );
        r.register(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            vsize.clone(),
        );
        r.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            cpu.clone(),
        );
        r.register(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            start.clone(),
        );
        r.register(
            "process_open_fds",
            "Number of open file descriptors",
            fds.clone(),
        );
        Metrics {
            registry: Mutex::new(r),
            requests,
            durations,
            watch_events,
            watchers,
            storage,
            objects,
            counted: Mutex::new(None),
            raft_term,
            raft_leader,
            raft_last_log,
            raft_applied,
            revision,
            watch_cache_whole,
            watch_cache_compressed,
            rss,
            vsize,
            cpu,
            start,
            fds,
        }
    }

    /// Records one finished resource request.
    #[allow(clippy::too_many_arguments)]
    /// Lets other components (the scheduler) publish their metrics on `/metrics`.
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        f(&mut self.registry.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Counts one request (and its latency) under `l`.
    pub fn request(&self, l: DurationLabels, code: u16, took: Duration) {
        // Watches last as long as the client keeps them; upstream leaves them out of latency.
        if l.verb != "WATCH" {
            self.durations.get_or_create(&l).observe(took.as_secs_f64());
        }
        self.requests
            .get_or_create(&RequestLabels {
                request: l,
                code: code.to_string(),
            })
            .inc();
    }

    pub fn storage(
        &self,
        operation: &str,
        kind: &reddwarf_resources::ResourceKind,
        took: Duration,
    ) {
        self.storage
            .get_or_create(&StorageLabels {
                operation: operation.into(),
                resource: ResourceLabels {
                    group: kind.group.into(),
                    version: kind.version.into(),
                    resource: kind.plural.into(),
                },
            })
            .observe(took.as_secs_f64());
    }
}

fn proc_stats(m: &Metrics) {
    // /proc/self/stat: utime and stime are fields 14 and 15 (clock ticks), starttime field 22.
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = 100.0; // USER_HZ on Linux
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            // After the ")", field 3 (state) is index 0, so field N is index N-3.
            let cpu = (num(11) + num(12)) / ticks;
            let seen = m.cpu.get();
            if cpu > seen {
                m.cpu.inc_by(cpu - seen);
            }
            m.vsize.set(num(20) as i64);
            m.rss.set((num(21) * 4096.0) as i64);
            if let Ok(uptime) = std::fs::read_to_string("/proc/uptime") {
                let up: f64 = uptime
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                m.start.set(now - up + num(19) / ticks);
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        m.fds.set(dir.count() as i64);
    }
}

pub fn serve(api: &ApiServer) -> Response {
    let m = &api.metrics;
    m.revision.set(api.store.revision() as i64);
    let (whole, compressed) = api.store.watch_cache_bytes();
    m.watch_cache_whole.set(whole as i64);
    m.watch_cache_compressed.set(compressed as i64);
    if let Some(raft) = api.consensus.raft() {
        let rm = raft.metrics();
        let rm = rm.borrow();
        m.raft_term.set(rm.current_term as i64);
        m.raft_leader.set((rm.current_leader == Some(rm.id)) as i64);
        m.raft_last_log.set(rm.last_log_index.unwrap_or(0) as i64);
        m.raft_applied
            .set(rm.last_applied.map(|l| l.index).unwrap_or(0) as i64);
    }
    // Counting reads every stored object: with 150 000 pods a scrape every 250 ms (the
    // bench's sampler) kept a core busy. So counts are at most 100 times as old as a count
    // takes: always fresh on a small store, refreshed every few seconds on a large one.
    let due = {
        let counted = m.counted.lock().unwrap_or_else(|e| e.into_inner());
        counted.is_none_or(|(at, took)| at.elapsed() >= took * 100)
    };
    let view = due.then(|| api.store.read().ok()).flatten();
    if let Some(view) = view {
        let started = std::time::Instant::now();
        for k in api.catalogue().kinds() {
            if let Ok(n) = view.count(&ObjectKey::resource_prefix(
                k.storage_group(),
                k.storage_plural(),
            )) {
                let resource = if k.group.is_empty() {
                    k.plural.to_string()
                } else {
                    format!("{}.{}", k.plural, k.group)
                };
                m.objects
                    .get_or_create(&ObjectsLabels { resource })
                    .set(n as i64);
            }
        }
        *m.counted.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), started.elapsed()));
    }
    proc_stats(m);
    let mut out = String::new();
    let registry = m.registry.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        return crate::status::ApiError::internal(e).into_response();
    }
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
