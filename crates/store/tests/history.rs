//! The change history kept with the objects: who changed what, objects at past revisions,
//! whole namespaces at past revisions, secrets kept as hashes, pruning that keeps answers
//! right after the new start, and history that starts on a store that already had objects.

use reddwarf_store::{
    AtRevision, Attribution, Batch, ChangeKind, LogFilter, Mutation, ObjectKey, Outcome, Store,
    StoreOptions,
};
use serde_json::{json, Value};

fn key(resource: &str, ns: &str, name: &str) -> String {
    ObjectKey::new("", resource, ns, name).as_str().to_string()
}

fn by(user: &str, verb: &str, time_ms: i64) -> Attribution {
    Attribution {
        verb: verb.into(),
        user: user.into(),
        user_agent: "test/1".into(),
        time_ms,
    }
}

fn open(dir: &std::path::Path, history: bool) -> Store {
    Store::open_with(
        &dir.join("s.redb"),
        StoreOptions {
            history,
            ..Default::default()
        },
    )
    .unwrap()
}

fn apply(s: &Store, ms: Vec<Mutation>) -> Vec<u64> {
    let out = s.apply(&[&Batch(ms)], b"x").unwrap().outcomes.remove(0);
    out.iter()
        .map(|o| match o {
            Outcome::Applied { revision, .. } => *revision,
            Outcome::Refused(e) => panic!("refused: {e}"),
        })
        .collect()
}

fn cm(name: &str, data: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"}, "data": data}))
    .unwrap()
}

fn data_of(bytes: &[u8]) -> Value {
    serde_json::from_slice::<Value>(bytes).unwrap()["data"].clone()
}

fn setup(s: &Store) -> (u64, u64, u64, u64) {
    let ns = Mutation::Create {
        key: key("namespaces", "", "default"),
        object: serde_json::to_vec(&json!({"metadata": {"name": "default"}})).unwrap(),
        namespace: None,
    };
    apply(s, vec![ns]);
    let k = key("configmaps", "default", "x");
    let r1 = apply(
        s,
        vec![Mutation::Create {
            key: k.clone(),
            object: cm("x", json!({"a": "1"})),
            namespace: Some("default".into()),
        }
        .attributed(by("alice", "create", 1000))],
    )[0];
    let r2 = apply(
        s,
        vec![Mutation::Update {
            key: k.clone(),
            object: cm("x", json!({"a": "2"})),
            expect_revision: None,
            expect_uid: None,
        }
        .attributed(by("bob", "patch", 900))],
    )[0];
    let r3 = apply(
        s,
        vec![Mutation::Update {
            key: k.clone(),
            object: cm("x", json!({"a": "2", "b": "3"})),
            expect_revision: None,
            expect_uid: None,
        }
        .attributed(by("bob", "apply", 3000))],
    )[0];
    let r4 = apply(
        s,
        vec![Mutation::Delete {
            key: k,
            expect_revision: None,
            expect_uid: None,
        }
        .attributed(by("carol", "delete", 4000))],
    )[0];
    (r1, r2, r3, r4)
}

#[test]
fn records_who_changed_what_and_answers_past_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), true);
    let (r1, r2, r3, r4) = setup(&s);
    let k = key("configmaps", "default", "x");
    let log = s
        .history_log(&LogFilter {
            key: Some(k.clone()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    let seen: Vec<_> = log
        .iter()
        .map(|c| (c.revision, c.by.verb.as_str(), c.by.user.as_str(), c.kind))
        .collect();
    assert_eq!(
        seen,
        vec![
            (r4, "delete", "carol", ChangeKind::Deleted),
            (r3, "apply", "bob", ChangeKind::Modified),
            (r2, "patch", "bob", ChangeKind::Modified),
            (r1, "create", "alice", ChangeKind::Created),
        ]
    );
    // times never go backwards: bob's clock was behind alice's
    assert_eq!(log[2].by.time_ms, 1000);
    match s.history_at(&k, r1).unwrap() {
        AtRevision::Present(c) => assert_eq!(data_of(&c.object), json!({"a": "1"})),
        other => panic!("{other:?}"),
    }
    match s.history_at(&k, r3).unwrap() {
        AtRevision::Present(c) => assert_eq!(data_of(&c.object), json!({"a": "2", "b": "3"})),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.history_at(&k, r4).unwrap(),
        AtRevision::Absent(Some(_))
    ));
    assert!(matches!(
        s.history_at(&k, r1 - 1).unwrap(),
        AtRevision::Absent(None)
    ));
    let at = s
        .history_list_at("core/configmaps/default/", r2)
        .unwrap()
        .unwrap();
    assert_eq!(at.len(), 1);
    assert_eq!(data_of(&at[0].object), json!({"a": "2"}));
    assert!(s
        .history_list_at("core/configmaps/default/", r4)
        .unwrap()
        .unwrap()
        .is_empty());
    // the feed for the mirror, oldest first
    let feed = s.history_since(r1, 10).unwrap();
    assert_eq!(
        feed.iter().map(|c| c.revision).collect::<Vec<_>>(),
        vec![r2, r3, r4]
    );
    // read while a condition holds, and told whether more follows
    let (some, more) = s.history_while(r1, 10, |c| c.revision <= r3).unwrap();
    assert_eq!(
        some.iter().map(|c| c.revision).collect::<Vec<_>>(),
        vec![r2, r3]
    );
    assert!(more);
    let (capped, more) = s.history_while(r1, 1, |_| true).unwrap();
    assert_eq!(capped.len(), 1);
    assert!(more);
    let (all, more) = s.history_while(r1, 10, |_| true).unwrap();
    assert_eq!(all.len(), 3);
    assert!(!more);
}

#[test]
fn pruning_keeps_each_objects_newest_state_before_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), true);
    let (r1, r2, r3, r4) = setup(&s);
    let k = key("configmaps", "default", "x");
    let keep = key("configmaps", "default", "keep");
    let rk = apply(
        &s,
        vec![Mutation::Create {
            key: keep.clone(),
            object: cm("keep", json!({"k": "v"})),
            namespace: Some("default".into()),
        }],
    )[0];
    assert_eq!(s.prune_history(r3).unwrap(), 1);
    assert_eq!(s.history_start().unwrap(), Some(r3));
    assert!(matches!(
        s.history_at(&k, r2).unwrap(),
        AtRevision::Pruned { start } if start == r3
    ));
    match s.history_at(&k, r3).unwrap() {
        AtRevision::Present(c) => assert_eq!(data_of(&c.object), json!({"a": "2", "b": "3"})),
        other => panic!("{other:?}"),
    }
    // everything before the new start that is not some object's base is gone
    assert!(s.history_at(&k, r1).is_ok());
    s.prune_history(rk + 1).unwrap();
    assert!(matches!(
        s.history_at(&k, r4 + 1).unwrap(),
        AtRevision::Absent(_)
    ));
    match s.history_at(&keep, rk + 1).unwrap() {
        AtRevision::Present(c) => assert_eq!(c.revision, rk),
        other => panic!("{other:?}"),
    }
}

#[test]
fn secrets_are_recorded_as_hashes_and_events_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), true);
    setup(&s);
    let sk = key("secrets", "default", "s");
    let ek = key("events", "default", "e");
    let rs = apply(
        &s,
        vec![
            Mutation::Create {
                key: sk.clone(),
                object: serde_json::to_vec(&json!({"metadata": {"name": "s"},
                    "data": {"password": "aHVudGVyMg=="}}))
                .unwrap(),
                namespace: Some("default".into()),
            },
            Mutation::Create {
                key: ek.clone(),
                object: serde_json::to_vec(&json!({"metadata": {"name": "e"}})).unwrap(),
                namespace: Some("default".into()),
            },
        ],
    );
    let AtRevision::Present(c) = s.history_at(&sk, rs[0]).unwrap() else {
        panic!("secret not recorded");
    };
    let text = String::from_utf8(c.object).unwrap();
    assert!(!text.contains("aHVudGVyMg=="), "{text}");
    assert!(text.contains("sha256:"), "{text}");
    assert!(matches!(
        s.history_at(&ek, rs[1]).unwrap(),
        AtRevision::Absent(None)
    ));
}

#[test]
fn history_turned_on_later_starts_from_the_objects_there() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2) = {
        let s = open(dir.path(), false);
        let (r1, r2, _, _) = setup(&s);
        assert_eq!(s.history_start().unwrap(), None);
        (r1, r2)
    };
    let s = open(dir.path(), true);
    let start = s.history_start().unwrap().unwrap();
    assert!(start > r2);
    assert!(matches!(
        s.history_at(&key("configmaps", "default", "x"), r1)
            .unwrap(),
        AtRevision::Pruned { .. }
    ));
    match s
        .history_at(&key("namespaces", "", "default"), start)
        .unwrap()
    {
        AtRevision::Present(c) => assert_eq!(c.kind, ChangeKind::Base),
        other => panic!("{other:?}"),
    }
}

#[test]
fn large_objects_come_back_from_history_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), true);
    apply(
        &s,
        vec![Mutation::Create {
            key: key("namespaces", "", "default"),
            object: serde_json::to_vec(&json!({"metadata": {"name": "default"}})).unwrap(),
            namespace: None,
        }],
    );
    let k = key("configmaps", "default", "big");
    let first = cm("big", json!({"a": "x".repeat(6000)}));
    let second = cm("big", json!({"a": "y".repeat(6000), "b": "z"}));
    apply(
        &s,
        vec![Mutation::Create {
            key: k.clone(),
            object: first.clone(),
            namespace: None,
        }],
    );
    apply(
        &s,
        vec![Mutation::Update {
            key: k.clone(),
            object: second.clone(),
            expect_revision: None,
            expect_uid: None,
        }],
    );
    let log = s
        .history_log(&LogFilter {
            key: Some(k),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let data: Vec<Value> = log.iter().map(|c| data_of(&c.object)).collect();
    assert_eq!(data, vec![data_of(&second), data_of(&first)]);
}
