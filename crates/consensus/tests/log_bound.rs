//! The raft log is bounded by bytes as well as entries: a member whose log outgrows the floor
//! (and its last snapshot) takes a snapshot and purges the log before it, long before
//! `snapshot_every` entries.

use std::time::{Duration, Instant};

use reddwarf_consensus::{Consensus, ConsensusConfig};
use reddwarf_store::{Mutation, Outcome, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_outgrows_its_bytes_is_snapshotted_and_purged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("m.redb")).unwrap();
    let c = Consensus::start(
        store,
        ConsensusConfig {
            snapshot_dir: dir.path().join("snapshots"),
            // Not by entry count in this test (400 entries); the log kept after a snapshot is a
            // twentieth of this, 100 entries.
            snapshot_every: 2_000,
            snapshot_log_bytes: 256 << 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // ~3.2 MB of entries: many times the floor, 400 entries.
    let filler = "x".repeat(8 << 10);
    for i in 0..400 {
        let object = serde_json::to_vec(&serde_json::json!({
            "kind": "ConfigMap",
            "metadata": {"name": format!("c{i}"), "namespace": "default", "uid": format!("u{i}")},
            "data": {"filler": filler},
        }))
        .unwrap();
        let out = c
            .propose(Mutation::Create {
                key: format!("/registry/configmaps/default/c{i}"),
                object,
                namespace: None,
            })
            .await
            .unwrap();
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
    }
    let mut metrics = c.raft().metrics();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (snapshot, purged) = {
            let m = metrics.borrow();
            (m.snapshot, m.purged)
        };
        if snapshot.is_some() && purged.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot or purge: snapshot {snapshot:?}, purged {purged:?}"
        );
        let _ = tokio::time::timeout(Duration::from_millis(500), metrics.changed()).await;
    }
    assert!(
        std::fs::read_dir(dir.path().join("snapshots"))
            .unwrap()
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "snap")),
        "a snapshot file is written"
    );
    c.shutdown().await;
}
