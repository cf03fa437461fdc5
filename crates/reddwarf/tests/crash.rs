//! Durability: acknowledged writes survive SIGKILL, and a clean stop needs no recovery.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{eventually, kill9_during_create_storm, Server};
use serde_json::Value;

const PAYLOAD: usize = 512;

fn configmaps(s: &Server) -> HashMap<String, Value> {
    let (code, body) = s.curl("GET", "/api/v1/namespaces/default/configmaps", None, None);
    assert_eq!(code, 200, "{body}");
    let list: Value = serde_json::from_str(&body).expect("list is JSON");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["metadata"]["name"].as_str().unwrap_or("").to_string(),
                i.clone(),
            )
        })
        .collect()
}

#[test]
fn sigkill_during_concurrent_creates_loses_no_acknowledged_write() {
    let mut s = Server::start();
    let acked = kill9_during_create_storm(&mut s, PAYLOAD, 600);

    s.spawn();
    let present = configmaps(&s);
    let missing: Vec<&String> = acked.iter().filter(|n| !present.contains_key(*n)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged creates lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // No half-written object: every object is whole, with server-set metadata.
    for (name, obj) in &present {
        if !name.starts_with("bench-") {
            continue;
        }
        assert_eq!(
            obj["data"]["payload"].as_str().map(str::len),
            Some(PAYLOAD),
            "{name}"
        );
        assert!(
            obj["metadata"]["resourceVersion"]
                .as_str()
                .is_some_and(|r| r.parse::<u64>().is_ok()),
            "{name}"
        );
        assert!(
            obj["metadata"]["uid"]
                .as_str()
                .is_some_and(|u| u.len() == 36),
            "{name}"
        );
    }
    // The store keeps working after recovery.
    let (code, body) = s.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some("application/json"),
        Some(br#"{"metadata":{"name":"after-crash"}}"#),
    );
    assert_eq!(code, 201, "{body}");
}

#[test]
fn sigterm_stops_cleanly_and_a_restart_keeps_everything() {
    let mut s = Server::start();
    s.kubectl_ok(
        "1.33",
        &["create", "configmap", "kept", "--from-literal=a=b"],
    );
    let rv_before = s.kubectl_ok(
        "1.33",
        &[
            "get",
            "cm",
            "kept",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ],
    );
    let status = s.terminate();
    assert!(status.success(), "exit status {status}");
    s.spawn();
    let out = s.kubectl_ok(
        "1.33",
        &[
            "get",
            "cm",
            "kept",
            "-o",
            "jsonpath={.data.a} {.metadata.resourceVersion}",
        ],
    );
    assert_eq!(out, format!("b {rv_before}"));
    // Revisions continue after the restart rather than starting over.
    s.kubectl_ok("1.33", &["create", "configmap", "next"]);
    let rv_next: u64 = s
        .kubectl_ok(
            "1.33",
            &[
                "get",
                "cm",
                "next",
                "-o",
                "jsonpath={.metadata.resourceVersion}",
            ],
        )
        .parse()
        .expect("numeric resourceVersion");
    assert!(rv_next > rv_before.parse::<u64>().unwrap());
}

#[test]
fn snapshots_are_files_and_a_restart_after_log_purge_keeps_everything() {
    let mut s = Server::start_with(&["--raft-snapshot-entries", "20"]);
    for i in 0..60 {
        let (code, body) = s.curl(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some("application/json"),
            Some(format!(r#"{{"metadata":{{"name":"s{i}"}},"data":{{"i":"{i}"}}}}"#).as_bytes()),
        );
        assert_eq!(code, 201, "{body}");
    }
    let snaps = eventually("a snapshot file", Duration::from_secs(20), || {
        let files: Vec<String> = std::fs::read_dir(s.data_dir().join("snapshots"))
            .ok()?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".snap"))
            .collect();
        // Only the current snapshot is kept: a new one replaces the old (for a moment both
        // files exist, while the old is being removed).
        (files.len() == 1).then_some(files)
    });
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    s.kill9();
    s.spawn();
    let present = configmaps(&s);
    for i in 0..60 {
        assert_eq!(present[&format!("s{i}")]["data"]["i"], i.to_string());
    }
}
