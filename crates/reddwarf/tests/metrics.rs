//! `/metrics`: upstream metric names are present and counters move with traffic.

mod common;

use common::Server;

fn scrape(s: &Server) -> String {
    let (code, body) = s.curl("GET", "/metrics", None, None);
    assert_eq!(code, 200);
    body
}

/// The value of the first sample line starting with `prefix` (name plus labels).
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn metrics_have_upstream_names_and_counters_move() {
    let s = Server::start();
    s.kubectl_ok("1.33", &["create", "configmap", "m1"]);
    let before = scrape(&s);
    // Sample names as Prometheus stores them (upstream's names where upstream has the metric).
    for name in [
        "apiserver_request_total{",
        "apiserver_request_duration_seconds_bucket{",
        "apiserver_storage_objects{",
        "apiserver_registered_watchers{",
        "reddwarf_storage_request_duration_seconds_bucket{",
        "reddwarf_raft_log_fsyncs_total ",
        "reddwarf_raft_log_append_duration_seconds_bucket{",
        "reddwarf_raft_batch_mutations_bucket{",
        "reddwarf_raft_term ",
        "reddwarf_raft_is_leader 1",
        "process_resident_memory_bytes ",
        "reddwarf_watch_cache_whole_bytes ",
        "reddwarf_watch_cache_compressed_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
    ] {
        assert!(
            before.lines().any(|l| l.starts_with(name)),
            "missing {name:?} in:\n{before}"
        );
    }
    assert!(before.contains("# TYPE apiserver_request counter"));
    assert!(before.contains("# TYPE apiserver_request_duration_seconds histogram"));
    let posts = r#"apiserver_request_total{verb="POST",group="",version="v1",resource="configmaps",subresource="",scope="namespace",component="apiserver",code="201"}"#;
    let created = sample(&before, posts);
    assert!(created >= 1.0, "{before}");
    let objects = r#"apiserver_storage_objects{resource="configmaps"}"#;
    // Ours, plus kube-root-ca.crt in the four bootstrap namespaces.
    assert_eq!(sample(&before, objects), 5.0);
    let fsyncs = sample(&before, "reddwarf_raft_log_fsyncs_total ");
    s.kubectl_ok("1.33", &["create", "configmap", "m2"]);
    s.kubectl_ok("1.33", &["get", "configmap", "m2"]);
    // Object counts are reused for up to 100 times what counting took, so a scrape right
    // after may still show the old one: poll.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let after = loop {
        let after = scrape(&s);
        if sample(&after, objects) == 6.0 || std::time::Instant::now() > deadline {
            break after;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(sample(&after, posts), created + 1.0);
    assert_eq!(sample(&after, objects), 6.0);
    assert!(sample(&after, "reddwarf_raft_log_fsyncs_total ") > fsyncs);
    assert!(
        sample(
            &after,
            r#"apiserver_request_total{verb="GET",group="",version="v1",resource="configmaps""#
        ) >= 1.0
    );
    assert!(sample(&after, "process_resident_memory_bytes ") > 1_000_000.0);
    // The watch cache holds the ConfigMaps just written, whole (far from its bound).
    assert!(
        sample(&after, "reddwarf_watch_cache_whole_bytes ")
            > sample(&before, "reddwarf_watch_cache_whole_bytes ")
    );
    assert_eq!(
        sample(&after, "reddwarf_watch_cache_compressed_bytes "),
        0.0
    );
}
