//! The store through its public API: batches, revisions and preconditions, watches (a slow
//! watcher is closed, a too-old revision is gone), dump and restore, and unique claims.

use reddwarf_store::{
    Batch, EventType, Mutation, MutationError, ObjectKey, Outcome, Store, StoreOptions,
    WatchRegistration,
};

fn obj(name: &str, ns: &str) -> Vec<u8> {
    serde_json::to_vec(
        &serde_json::json!({"kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}}),
    )
    .unwrap()
}

fn ns_key(ns: &str) -> String {
    ObjectKey::new("", "namespaces", "", ns)
        .as_str()
        .to_string()
}

fn cm_key(ns: &str, name: &str) -> String {
    ObjectKey::new("", "configmaps", ns, name)
        .as_str()
        .to_string()
}

fn create(key: String, object: Vec<u8>, namespace: Option<&str>) -> Mutation {
    Mutation::Create {
        key,
        object,
        namespace: namespace.map(String::from),
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    (dir, store)
}

/// A watcher of `prefix` from just after revision `after`, which the ring still holds.
fn watch_after(s: &Store, prefix: &str, after: u64, queue: usize) -> reddwarf_store::Watcher {
    s.watch(WatchRegistration {
        prefix: prefix.to_string(),
        after,
        queue,
    })
    .unwrap()
    .expect("within the ring")
}

fn revision(o: &Outcome) -> u64 {
    match o {
        Outcome::Applied { revision, .. } => *revision,
        Outcome::Refused(e) => panic!("refused: {e}"),
    }
}

#[test]
fn one_batch_assigns_consecutive_revisions_and_checks_preconditions() {
    let (_d, s) = open();
    let batch = Batch(vec![
        create(ns_key("default"), obj("default", ""), None),
        create(cm_key("default", "a"), obj("a", "default"), Some("default")),
        create(cm_key("default", "a"), obj("a", "default"), Some("default")),
        create(cm_key("missing", "b"), obj("b", "missing"), Some("missing")),
    ]);
    let out = s.apply(&[&batch], b"state-1").unwrap().outcomes.remove(0);
    assert_eq!(revision(&out[0]), 1);
    assert_eq!(revision(&out[1]), 2);
    assert_eq!(out[2], Outcome::Refused(MutationError::AlreadyExists));
    assert_eq!(
        out[3],
        Outcome::Refused(MutationError::NamespaceNotFound("missing".into()))
    );
    assert_eq!(s.revision(), 2);
    assert_eq!(s.applied_state().unwrap().as_deref(), Some(&b"state-1"[..]));

    // The stored bytes carry the revision as resourceVersion.
    let (rev, bytes) = s
        .read()
        .unwrap()
        .get(&cm_key("default", "a"))
        .unwrap()
        .unwrap();
    assert_eq!(rev, 2);
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["metadata"]["resourceVersion"], "2");

    // Stale precondition: conflict, nothing written.
    let stale = Batch(vec![Mutation::Update {
        key: cm_key("default", "a"),
        object: obj("a", "default"),
        expect_revision: Some(1),
        expect_uid: None,
    }]);
    let out = s.apply(&[&stale], b"state-2").unwrap().outcomes.remove(0);
    assert_eq!(out[0], Outcome::Refused(MutationError::Conflict));
    assert_eq!(s.revision(), 2);
    let del = Batch(vec![Mutation::Delete {
        key: cm_key("default", "a"),
        expect_revision: Some(2),
        expect_uid: None,
    }]);
    let out = s.apply(&[&del], b"state-3").unwrap().outcomes.remove(0);
    assert_eq!(revision(&out[0]), 3);
    assert!(s
        .read()
        .unwrap()
        .get(&cm_key("default", "a"))
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn watch_resumes_from_the_ring_and_reports_gone_after_a_restart() {
    let (dir, s) = open();
    let b = Batch(vec![create(ns_key("default"), obj("default", ""), None)]);
    s.apply(&[&b], b"").unwrap();
    for i in 0..5 {
        let b = Batch(vec![create(
            cm_key("default", &format!("c{i}")),
            obj(&format!("c{i}"), "default"),
            Some("default"),
        )]);
        s.apply(&[&b], b"").unwrap();
    }
    let prefix = ObjectKey::resource_prefix("", "configmaps");
    let mut w = s
        .watch(WatchRegistration {
            prefix: prefix.clone(),
            after: 3,
            queue: 16,
        })
        .unwrap()
        .unwrap();
    let revs: Vec<u64> = (0..3).map(|_| w.try_next().unwrap().revision).collect();
    assert_eq!(revs, vec![4, 5, 6]);
    assert!(w.try_next().is_none());
    let b = Batch(vec![Mutation::Delete {
        key: cm_key("default", "c0"),
        expect_revision: None,
        expect_uid: None,
    }]);
    s.apply(&[&b], b"").unwrap();
    let ev = w.next().await.unwrap();
    assert_eq!((ev.revision, ev.event_type), (7, EventType::Deleted));
    drop(w);

    // After a restart history starts at the current revision, as an upstream watch cache
    // does: older revisions are gone, the current one can be watched from.
    drop(s);
    let s = Store::open(&dir.path().join("s.redb")).unwrap();
    let gone = s
        .watch(WatchRegistration {
            prefix: prefix.clone(),
            after: 5,
            queue: 16,
        })
        .unwrap();
    assert_eq!(gone.err().map(|g| (g.requested, g.oldest)), Some((5, 7)));
    assert!(s
        .watch(WatchRegistration {
            prefix,
            after: 7,
            queue: 16
        })
        .unwrap()
        .is_ok());
}

#[test]
fn slow_watcher_is_closed_instead_of_blocking_writers() {
    let (_d, s) = open();
    let b = Batch(vec![create(ns_key("default"), obj("default", ""), None)]);
    s.apply(&[&b], b"").unwrap();
    let mut w = s
        .watch(WatchRegistration {
            prefix: ObjectKey::resource_prefix("", "configmaps"),
            after: 1,
            queue: 2,
        })
        .unwrap()
        .unwrap();
    assert!(!w.is_closed());
    for i in 0..10 {
        let b = Batch(vec![create(
            cm_key("default", &format!("c{i}")),
            obj(&format!("c{i}"), "default"),
            Some("default"),
        )]);
        s.apply(&[&b], b"").unwrap();
    }
    assert_eq!(s.revision(), 11, "writers were not held up");
    assert_eq!(
        s.hub().watcher_count(),
        0,
        "the lagging watcher was dropped"
    );
    // Closed: the API server must not claim the hub's revision in a bookmark for it.
    assert!(w.is_closed());
    // What it had queued is still readable, then the stream ends.
    assert!(w.try_next().is_some());
    assert!(w.try_next().is_some());
    assert!(w.try_next().is_none());
}

#[test]
fn dump_and_restore_round_trip() {
    let (_d, s) = open();
    let b = Batch(vec![create(ns_key("default"), obj("default", ""), None)]);
    s.apply(&[&b], b"applied-x").unwrap();
    let (state, dump) = s.dump().unwrap();
    assert_eq!(state.as_deref(), Some(&b"applied-x"[..]));
    let (_d2, other) = open();
    other.restore(&dump, b"applied-x").unwrap();
    assert_eq!(other.revision(), 1);
    assert!(other
        .read()
        .unwrap()
        .get(&ns_key("default"))
        .unwrap()
        .is_some());
    assert!(
        other.restore(&dump[..dump.len() - 3], b"").is_err(),
        "a truncated dump is refused"
    );
}

#[test]
fn watch_older_than_the_ring_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_with(
        &dir.path().join("s.redb"),
        StoreOptions {
            watch_ring: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let b = Batch(vec![create(ns_key("default"), obj("default", ""), None)]);
    s.apply(&[&b], b"").unwrap();
    for i in 0..10 {
        let b = Batch(vec![create(
            cm_key("default", &format!("c{i}")),
            obj(&format!("c{i}"), "default"),
            Some("default"),
        )]);
        s.apply(&[&b], b"").unwrap();
    }
    let prefix = ObjectKey::resource_prefix("", "configmaps");
    let gone = s
        .watch(WatchRegistration {
            prefix: prefix.clone(),
            after: 2,
            queue: 16,
        })
        .unwrap();
    let g = gone.err().expect("revision 2 left the ring");
    assert_eq!((g.requested, g.oldest), (2, 9));
    let mut w = s
        .watch(WatchRegistration {
            prefix,
            after: 9,
            queue: 16,
        })
        .unwrap()
        .unwrap();
    let revs: Vec<u64> = std::iter::from_fn(|| w.try_next().map(|e| e.revision)).collect();
    assert_eq!(revs, vec![10, 11]);
}

#[test]
fn claims_are_unique_and_taken_only_with_their_object() {
    let (_d, s) = open();
    let b = Batch(vec![create(ns_key("default"), obj("default", ""), None)]);
    s.apply(&[&b], b"").unwrap();
    let with = |claims: &[&str], inner: Mutation| Mutation::WithClaims {
        inner: Box::new(inner),
        claims: claims.iter().map(|c| c.to_string()).collect(),
        releases: vec![],
    };
    let a = with(
        &["ip/10.0.0.5"],
        create(cm_key("default", "a"), obj("a", "default"), Some("default")),
    );
    let b2 = with(
        &["ip/10.0.0.5"],
        create(cm_key("default", "b"), obj("b", "default"), Some("default")),
    );
    let dup = with(
        &["ip/10.0.0.6"],
        create(cm_key("default", "a"), obj("a", "default"), Some("default")),
    );
    let out = s
        .apply(&[&Batch(vec![a, b2, dup])], b"")
        .unwrap()
        .outcomes
        .remove(0);
    assert!(matches!(out[0], Outcome::Applied { .. }));
    assert_eq!(
        out[1],
        Outcome::Refused(MutationError::ClaimTaken("ip/10.0.0.5".into()))
    );
    assert_eq!(out[2], Outcome::Refused(MutationError::AlreadyExists));
    let view = s.read().unwrap();
    let held = view.claims("ip/").unwrap();
    assert_eq!(
        held,
        vec![("ip/10.0.0.5".to_string(), cm_key("default", "a"))],
        "a failed create claims nothing"
    );
    drop(view);
    // Deleting with a release frees the claim for someone else.
    let del = Mutation::WithClaims {
        inner: Box::new(Mutation::Delete {
            key: cm_key("default", "a"),
            expect_revision: None,
            expect_uid: None,
        }),
        claims: vec![],
        releases: vec!["ip/10.0.0.5".into()],
    };
    s.apply(&[&Batch(vec![del])], b"").unwrap();
    assert!(s.read().unwrap().claims("ip/").unwrap().is_empty());
    // Claims never show up in resource listings.
    assert_eq!(
        s.read()
            .unwrap()
            .count(&ObjectKey::resource_prefix("", "configmaps"))
            .unwrap(),
        0
    );
}

/// The ring keeps one copy of each revision's bytes: a change's `prev` is the previous
/// event's `object` itself (shared), and still the right bytes.
#[test]
fn a_change_shares_its_previous_state_with_the_event_before_it() {
    let (_d, s) = open();
    let b = Batch(vec![create(ns_key("default"), obj("default", ""), None)]);
    s.apply(&[&b], b"").unwrap();
    let key = cm_key("default", "a");
    let b = Batch(vec![create(
        key.clone(),
        obj("a", "default"),
        Some("default"),
    )]);
    s.apply(&[&b], b"").unwrap();
    let mut w = s
        .watch(WatchRegistration {
            prefix: ObjectKey::resource_prefix("", "configmaps"),
            after: 1,
            queue: 16,
        })
        .unwrap()
        .unwrap();
    let created = w.try_next().unwrap();
    for i in 0..2 {
        let mut v: serde_json::Value = serde_json::from_slice(&obj("a", "default")).unwrap();
        v["data"] = serde_json::json!({"i": i.to_string()});
        let b = Batch(vec![Mutation::Update {
            key: key.clone(),
            object: serde_json::to_vec(&v).unwrap(),
            expect_revision: None,
            expect_uid: None,
        }]);
        s.apply(&[&b], b"").unwrap();
    }
    let first = w.try_next().unwrap();
    let second = w.try_next().unwrap();
    assert!(std::sync::Arc::ptr_eq(
        first.prev.as_ref().unwrap(),
        &created.object
    ));
    assert!(std::sync::Arc::ptr_eq(
        second.prev.as_ref().unwrap(),
        &first.object
    ));
    let p: serde_json::Value = serde_json::from_slice(second.prev.as_ref().unwrap()).unwrap();
    assert_eq!(p["data"]["i"], "0");
    assert_eq!(p["metadata"]["resourceVersion"], first.revision.to_string());
}

/// The ring keeps its older events compressed (3 000 events of ~9 KB are past its bound for
/// whole ones): a watch from far back gets them as they were
/// published (type, key, object and previous state), in order, with the newer ones after.
#[test]
fn a_watch_from_far_back_gets_every_event_as_published() {
    let (_d, s) = open();
    s.apply(
        &[&Batch(vec![create(
            ns_key("default"),
            obj("default", ""),
            None,
        )])],
        b"",
    )
    .unwrap();
    let prefix = ObjectKey::resource_prefix("", "configmaps");
    let mut live = watch_after(&s, &prefix, 1, 10_000);
    let data = |i: usize| {
        serde_json::to_vec(&serde_json::json!({"kind": "ConfigMap",
            "metadata": {"name": format!("c{}", i % 97), "namespace": "default"},
            "data": {"v": format!("{i}-{}", "abc".repeat(1500))}}))
        .unwrap()
    };
    let mut present = std::collections::HashSet::new();
    for i in 0..3000 {
        let key = cm_key("default", &format!("c{}", i % 97));
        let m = match i {
            _ if present.insert(key.clone()) => create(key, data(i), Some("default")),
            i if i % 31 == 0 => {
                present.remove(&key);
                Mutation::Delete {
                    key,
                    expect_revision: None,
                    expect_uid: None,
                }
            }
            i => Mutation::Update {
                key,
                object: data(i),
                expect_revision: None,
                expect_uid: None,
            },
        };
        s.apply(&[&Batch(vec![m])], b"").unwrap();
    }
    let published: Vec<_> = std::iter::from_fn(|| live.try_next()).collect();
    assert_eq!(published.len(), 3000);
    let mut late = watch_after(&s, &prefix, 1, 16);
    let replayed: Vec<_> = std::iter::from_fn(|| late.try_next()).collect();
    assert_eq!(replayed.len(), published.len());
    for (a, b) in published.iter().zip(&replayed) {
        assert_eq!(a.revision, b.revision);
        assert_eq!(a.event_type, b.event_type);
        assert_eq!(a.key, b.key);
        assert_eq!(a.object, b.object, "object at revision {}", a.revision);
        assert_eq!(a.prev, b.prev, "previous state at revision {}", a.revision);
    }
    assert!(replayed.iter().any(|e| e.event_type == EventType::Deleted));
    assert!(replayed.iter().filter(|e| e.prev.is_some()).count() > 2500);
}
