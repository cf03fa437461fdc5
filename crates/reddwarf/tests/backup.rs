//! Online backup and restore: `reddwarf snapshot save` during a write storm, then
//! `reddwarf server --restore` into a new data dir holds exactly what was acknowledged up to
//! the snapshot's revision, with the same resourceVersions.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::Server;
use serde_json::json;

/// The ConfigMaps of `ns` by name, with their resourceVersions.
fn config_maps(s: &Server, ns: &str) -> BTreeMap<String, u64> {
    let list = s.api_get(&format!("/api/v1/namespaces/{ns}/configmaps"));
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["metadata"]["name"] != "kube-root-ca.crt")
        .map(|c| {
            (
                c["metadata"]["name"].as_str().unwrap().to_string(),
                c["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_snapshot_taken_during_writes_restores_exactly_what_was_acknowledged() {
    let s = Server::start();
    s.kubectl_ok("1.33", &["create", "namespace", "b"]);
    for i in 0..200 {
        s.create(
            "/api/v1/namespaces/b/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("before-{i}")},
                "data": {"v": "x".repeat(512)}}),
        );
    }
    // Writers keep going while the snapshot streams; each acknowledged create is recorded.
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let url = s.url.clone();
        let pki = s.data_dir().join("pki");
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("during-{i}")}})
                .to_string();
                let out = Command::new("curl")
                    .args([
                        "-s",
                        "-X",
                        "POST",
                        "-H",
                        "content-type: application/json",
                        "--cacert",
                    ])
                    .arg(pki.join("ca.crt"))
                    .arg("--cert")
                    .arg(pki.join("admin.crt"))
                    .arg("--key")
                    .arg(pki.join("admin.key"))
                    .args(["--data-binary", &body])
                    .arg(format!("{url}/api/v1/namespaces/b/configmaps"))
                    .output()
                    .expect("curl");
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                    if let Some(rv) = v["metadata"]["resourceVersion"].as_str() {
                        acked
                            .lock()
                            .unwrap()
                            .insert(format!("during-{i}"), rv.parse::<u64>().unwrap());
                    }
                }
                i += 1;
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Only cluster admins may read the whole store.
    let anon = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(s.data_dir().join("pki/ca.crt"))
        .arg(format!("{}/reddwarf/v1/snapshot", s.url))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&anon.stdout), "403");
    let file = s.data_dir().join("backup.snap");
    let out = Command::new(env!("CARGO_BIN_EXE_reddwarf"))
        .args(["snapshot", "save"])
        .arg(&file)
        .arg("--kubeconfig")
        .arg(s.kubeconfig())
        .output()
        .expect("reddwarf snapshot save");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two more acknowledgements: at least one write began after the snapshot's read view.
    let after_save = acked.lock().unwrap().len();
    common::eventually(
        "writes after the snapshot",
        std::time::Duration::from_secs(30),
        || (acked.lock().unwrap().len() >= after_save + 2).then_some(()),
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let original = config_maps(&s, "b");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 2, "the writer made progress: {}", acked.len());

    let restored = Server::start_with(&["--restore", file.to_str().unwrap()]);
    let got = config_maps(&restored, "b");
    // The snapshot's revision: the newest object it holds.
    let cut = *got.values().max().unwrap();
    let want: BTreeMap<String, u64> = original
        .iter()
        .filter(|(_, rv)| **rv <= cut)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(
        got, want,
        "the restored cluster holds exactly the objects up to {cut}"
    );
    assert!(got.keys().filter(|k| k.starts_with("before-")).count() == 200);
    assert!(
        acked.values().any(|rv| *rv > cut),
        "some writes came after the snapshot"
    );
    // Same objects, same bytes where nothing changed since.
    let a = s.api_get("/api/v1/namespaces/b/configmaps/before-7");
    let b = restored.api_get("/api/v1/namespaces/b/configmaps/before-7");
    assert_eq!(a["metadata"], b["metadata"]);
    assert_eq!(a["data"], b["data"]);
    // The new cluster writes on from there.
    let made = restored.create(
        "/api/v1/namespaces/b/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}}),
    );
    let rv: u64 = made["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv > cut);

    // A data dir that holds a cluster is not overwritten.
    let out = Command::new(env!("CARGO_BIN_EXE_reddwarf"))
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--disable-agent",
            "--restore",
        ])
        .arg(&file)
        .arg("--data-dir")
        .arg(restored.data_dir())
        .output()
        .expect("reddwarf server --restore");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already holds a cluster"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A truncated snapshot is refused and leaves nothing behind.
    let bytes = std::fs::read(&file).unwrap();
    let cut_file = s.data_dir().join("truncated.snap");
    std::fs::write(&cut_file, &bytes[..bytes.len() / 2]).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_reddwarf"))
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--disable-agent",
            "--restore",
        ])
        .arg(&cut_file)
        .arg("--data-dir")
        .arg(fresh.path())
        .output()
        .expect("reddwarf server --restore");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("truncated"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!fresh.path().join("state.redb").exists());
}

#[test]
fn scheduled_snapshots_keep_the_newest_and_restore() {
    let s = Server::start_with(&[
        "--snapshot-schedule",
        "@every 1s",
        "--snapshot-retention",
        "2",
    ]);
    s.kubectl_ok(
        "1.33",
        &["create", "configmap", "kept", "--from-literal=k=v"],
    );
    let backups = s.data_dir().join("backups");
    let snapshots = || -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(&backups)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == "snap"));
        v.sort();
        v
    };
    // Several rounds pass; only the newest two stay.
    let first = common::eventually(
        "a scheduled snapshot",
        std::time::Duration::from_secs(20),
        || snapshots().first().cloned(),
    );
    common::eventually(
        "older snapshots pruned",
        std::time::Duration::from_secs(20),
        || {
            let now = snapshots();
            (!now.contains(&first) && now.len() == 2).then_some(())
        },
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(snapshots().len() <= 2, "{:?}", snapshots());
    let newest = snapshots().pop().unwrap();
    let restored = Server::start_with(&["--restore", newest.to_str().unwrap()]);
    let cm = restored.api_get("/api/v1/namespaces/default/configmaps/kept");
    assert_eq!(cm["data"]["k"], "v");
    // A schedule that does not parse stops the server at start with the reason.
    let out = Command::new(env!("CARGO_BIN_EXE_reddwarf"))
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--disable-agent",
            "--snapshot-schedule",
            "every day",
        ])
        .arg("--data-dir")
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .expect("reddwarf server");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--snapshot-schedule"));
}
