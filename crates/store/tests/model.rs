//! A model test of the store: random batches of mutations (creates, updates and deletes with
//! and without preconditions, namespace checks, unique claims, invalid objects) are applied to
//! a real [`Store`] and to a plain `BTreeMap` model of its semantics; outcomes, contents,
//! revisions and watch events must agree after every apply, and a snapshot dump restored into
//! a fresh store must hold the same state and carry on identically.
//!
//! Case counts are bounded (PROPTEST_CASES overrides) so a debug `cargo test` stays quick.

use std::collections::BTreeMap;

use proptest::prelude::*;
use reddwarf_store::{
    Batch, EventType, Mutation, MutationError, ObjectKey, Outcome, Store, WatchRegistration,
    Watcher,
};
use serde_json::{json, Value};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ------------------------------------------------------------------ the universe of keys

const NAMESPACES: [&str; 2] = ["a", "b"];
const NAMES: [&str; 2] = ["x", "y"];
const CLAIMS: [&str; 3] = ["ip/10.0.0.1", "ip/10.0.0.2", "port/30000"];
const CLAIM_PREFIX: &str = "~claims/";

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

/// (key, namespace the key lives in).
fn key() -> impl Strategy<Value = (String, Option<&'static str>)> {
    prop_oneof![
        prop::sample::select(&NAMESPACES[..]).prop_map(|ns| (ns_key(ns), None)),
        (
            prop::sample::select(&NAMESPACES[..]),
            prop::sample::select(&NAMES[..])
        )
            .prop_map(|(ns, n)| (cm_key(ns, n), Some(ns))),
    ]
}

/// Object bodies: valid objects with one of two uids, namespaces that are or are not
/// terminating (deletionTimestamp absent, null or set), and bodies apply must refuse.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let uid = prop::sample::select(vec!["u1", "u2"]);
    let deletion = prop::sample::select(vec![
        None,
        Some(Value::Null),
        Some(json!("2024-01-01T00:00:00Z")),
    ]);
    prop_oneof![
        8 => (uid, deletion, any::<bool>(), any::<u8>()).prop_map(|(uid, del, rv, n)| {
            let mut meta = serde_json::Map::new();
            meta.insert("name".into(), json!("n"));
            meta.insert("uid".into(), json!(uid));
            if rv {
                // a stale resourceVersion the store overwrites
                meta.insert("resourceVersion".into(), json!("999"));
            }
            if let Some(d) = del {
                meta.insert("deletionTimestamp".into(), d);
            }
            serde_json::to_vec(&json!({"kind": "Thing", "metadata": meta, "data": {"n": n}})).unwrap()
        }),
        1 => Just(b"[1,2]".to_vec()),
        1 => Just(b"{\"metadata\": 5}".to_vec()),
        1 => Just(b"not json".to_vec()),
        1 => Just(b"{}".to_vec()),
    ]
}

fn precondition_rev() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![2 => Just(None), 1 => (0u64..40).prop_map(Some)]
}

fn precondition_uid() -> impl Strategy<Value = Option<String>> {
    prop_oneof![2 => Just(None), 1 => prop::sample::select(vec!["u1", "u2"]).prop_map(|u| Some(u.to_string()))]
}

fn plain_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (
            key(),
            body(),
            prop::option::of(prop::sample::select(&NAMESPACES[..])),
            0u8..4
        )
            .prop_map(|((key, ns), object, other, pick)| Mutation::Create {
                key,
                object,
                // mostly the key's own namespace; sometimes none, sometimes another
                namespace: match pick {
                    0 => None,
                    1 => other.map(String::from),
                    _ => ns.map(String::from),
                },
            }),
        (key(), body(), precondition_rev(), precondition_uid()).prop_map(
            |((key, _), object, expect_revision, expect_uid)| Mutation::Update {
                key,
                object,
                expect_revision,
                expect_uid,
            }
        ),
        (key(), precondition_rev(), precondition_uid()).prop_map(
            |((key, _), expect_revision, expect_uid)| Mutation::Delete {
                key,
                expect_revision,
                expect_uid,
            }
        ),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let claims = prop::collection::vec(prop::sample::select(&CLAIMS[..]), 0..3)
        .prop_map(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
    prop_oneof![
        3 => plain_mutation(),
        1 => (plain_mutation(), claims.clone(), claims).prop_map(|(inner, claims, releases)| {
            Mutation::WithClaims { inner: Box::new(inner), claims, releases }
        }),
    ]
}

/// One apply call: several batches (group commit), each of several mutations.
fn apply_call() -> impl Strategy<Value = Vec<Batch>> {
    prop::collection::vec(
        prop::collection::vec(mutation(), 0..5).prop_map(Batch),
        1..3,
    )
}

// ------------------------------------------------------------------ the model

#[derive(Clone, Debug, PartialEq)]
enum Stored {
    Object(Value),
    /// A claim: the key of the object holding it.
    Owner(String),
}

#[derive(Clone, Debug, Default)]
struct Model {
    revision: u64,
    entries: BTreeMap<String, (u64, Stored)>,
}

#[derive(Debug, PartialEq)]
struct ModelEvent {
    revision: u64,
    event_type: EventType,
    key: String,
    object: Value,
    prev: Option<Value>,
}

/// What the model expects of a mutation: the stored object, or the refusal.
type Expected = Result<(u64, Value), MutationError>;

fn stamp(bytes: &[u8], rev: u64) -> Result<Value, MutationError> {
    let mut v: Value =
        serde_json::from_slice(bytes).map_err(|e| MutationError::Invalid(e.to_string()))?;
    let o = v
        .as_object_mut()
        .ok_or_else(|| MutationError::Invalid("not an object".into()))?;
    let meta = o.entry("metadata").or_insert_with(|| json!({}));
    meta.as_object_mut()
        .ok_or_else(|| MutationError::Invalid("metadata is not an object".into()))?
        .insert("resourceVersion".into(), json!(rev.to_string()));
    Ok(v)
}

impl Model {
    fn object(&self, key: &str) -> Option<(u64, &Value)> {
        match self.entries.get(key) {
            Some((rev, Stored::Object(v))) => Some((*rev, v)),
            _ => None,
        }
    }

    fn check(
        &self,
        key: &str,
        rev: Option<u64>,
        uid: Option<&str>,
    ) -> Result<(u64, Value), MutationError> {
        let (cur, old) = self.object(key).ok_or(MutationError::NotFound)?;
        if rev.is_some_and(|r| r != cur) {
            return Err(MutationError::Conflict);
        }
        if uid.is_some() && old.pointer("/metadata/uid").and_then(Value::as_str) != uid {
            return Err(MutationError::Conflict);
        }
        Ok((cur, old.clone()))
    }

    /// Applies one mutation at revision `next` (not yet taken); events go to `events`.
    fn apply_one(
        &mut self,
        m: &Mutation,
        next: u64,
        events: &mut Vec<ModelEvent>,
    ) -> Result<Value, MutationError> {
        match m {
            Mutation::Attributed { inner, .. } => self.apply_one(inner, next, events),
            Mutation::WithClaims {
                inner,
                claims,
                releases,
            } => {
                let owner = inner.key().to_string();
                for c in claims {
                    if let Some((_, Stored::Owner(holder))) =
                        self.entries.get(&format!("{CLAIM_PREFIX}{c}"))
                    {
                        if *holder != owner {
                            return Err(MutationError::ClaimTaken(c.clone()));
                        }
                    }
                }
                let v = self.apply_one(inner, next, events)?;
                for r in releases {
                    let k = format!("{CLAIM_PREFIX}{r}");
                    if matches!(self.entries.get(&k), Some((_, Stored::Owner(h))) if *h == owner) {
                        self.entries.remove(&k);
                    }
                }
                for c in claims {
                    self.entries.insert(
                        format!("{CLAIM_PREFIX}{c}"),
                        (next, Stored::Owner(owner.clone())),
                    );
                }
                Ok(v)
            }
            Mutation::Create {
                key,
                object,
                namespace,
            } => {
                if let Some(ns) = namespace {
                    match self.object(&ns_key(ns)) {
                        None => return Err(MutationError::NamespaceNotFound(ns.clone())),
                        // a null deletionTimestamp is an unset one
                        Some((_, v))
                            if !v
                                .pointer("/metadata/deletionTimestamp")
                                .unwrap_or(&Value::Null)
                                .is_null() =>
                        {
                            return Err(MutationError::NamespaceTerminating(ns.clone()))
                        }
                        Some(_) => {}
                    }
                }
                if self.entries.contains_key(key) {
                    return Err(MutationError::AlreadyExists);
                }
                let v = stamp(object, next)?;
                self.entries
                    .insert(key.clone(), (next, Stored::Object(v.clone())));
                events.push(ModelEvent {
                    revision: next,
                    event_type: EventType::Added,
                    key: key.clone(),
                    object: v.clone(),
                    prev: None,
                });
                Ok(v)
            }
            Mutation::Update {
                key,
                object,
                expect_revision,
                expect_uid,
            } => {
                let (_, old) = self.check(key, *expect_revision, expect_uid.as_deref())?;
                let v = stamp(object, next)?;
                self.entries
                    .insert(key.clone(), (next, Stored::Object(v.clone())));
                events.push(ModelEvent {
                    revision: next,
                    event_type: EventType::Modified,
                    key: key.clone(),
                    object: v.clone(),
                    prev: Some(old),
                });
                Ok(v)
            }
            Mutation::Delete {
                key,
                expect_revision,
                expect_uid,
            } => {
                let (_, old) = self.check(key, *expect_revision, expect_uid.as_deref())?;
                self.entries.remove(key);
                let mut v = old.clone();
                v["metadata"]["resourceVersion"] = json!(next.to_string());
                events.push(ModelEvent {
                    revision: next,
                    event_type: EventType::Deleted,
                    key: key.clone(),
                    object: v.clone(),
                    prev: Some(old),
                });
                Ok(v)
            }
        }
    }

    fn apply(&mut self, batches: &[Batch], events: &mut Vec<ModelEvent>) -> Vec<Vec<Expected>> {
        batches
            .iter()
            .map(|b| {
                b.0.iter()
                    .map(|m| {
                        let next = self.revision + 1;
                        let r = self.apply_one(m, next, events);
                        if r.is_ok() {
                            self.revision = next;
                        }
                        r.map(|v| (next, v))
                    })
                    .collect()
            })
            .collect()
    }
}

// ------------------------------------------------------------------ comparing

fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b).expect("stored objects are JSON")
}

fn same_outcome(got: &Outcome, want: &Expected) -> bool {
    match (got, want) {
        (Outcome::Applied { revision, object }, Ok((r, v))) => revision == r && parse(object) == *v,
        // the message is serde_json's; the variant is what clients see
        (Outcome::Refused(MutationError::Invalid(_)), Err(MutationError::Invalid(_))) => true,
        (Outcome::Refused(e), Err(w)) => e == w,
        _ => false,
    }
}

fn assert_same_state(store: &Store, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(store.revision(), model.revision);
    let view = store.read().unwrap();
    prop_assert_eq!(view.revision(), model.revision);
    let page = view.list("", None, 0, false, |_| true).unwrap();
    let keys: Vec<&str> = page.items.iter().map(|(k, _)| k.as_str()).collect();
    let want: Vec<&str> = model.entries.keys().map(String::as_str).collect();
    prop_assert_eq!(keys, want);
    for (key, (rev, stored)) in &model.entries {
        let (got_rev, bytes) = view.get(key).unwrap().unwrap();
        prop_assert_eq!(got_rev, *rev, "revision of {}", key);
        match stored {
            Stored::Object(v) => prop_assert_eq!(&parse(&bytes), v, "{}", key),
            Stored::Owner(o) => prop_assert_eq!(&bytes, o.as_bytes(), "{}", key),
        }
    }
    let claims = view.claims("").unwrap();
    let want: Vec<(String, String)> = model
        .entries
        .iter()
        .filter_map(|(k, (_, s))| match s {
            Stored::Owner(o) => Some((k[CLAIM_PREFIX.len()..].to_string(), o.clone())),
            Stored::Object(_) => None,
        })
        .collect();
    prop_assert_eq!(claims, want);
    Ok(())
}

fn drain(w: &mut Watcher) -> Vec<ModelEvent> {
    std::iter::from_fn(|| w.try_next())
        .map(|e| ModelEvent {
            revision: e.revision,
            event_type: e.event_type,
            key: e.key.clone(),
            object: parse(&e.object),
            prev: e.prev.as_deref().map(parse),
        })
        .collect()
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    (dir, store)
}

/// Runs the calls against store and model, comparing after each; returns the model.
fn run(
    store: &Store,
    model: &mut Model,
    calls: &[Vec<Batch>],
    tag: &str,
) -> Result<(), TestCaseError> {
    let mut watcher = store
        .watch(WatchRegistration {
            prefix: String::new(),
            after: store.revision(),
            queue: 1 << 16,
        })
        .unwrap()
        .unwrap();
    for (i, call) in calls.iter().enumerate() {
        let refs: Vec<&Batch> = call.iter().collect();
        let state = format!("{tag}-{i}");
        let got = store.apply(&refs, state.as_bytes()).unwrap().outcomes;
        let mut events = Vec::new();
        let want = model.apply(call, &mut events);
        prop_assert_eq!(got.len(), want.len());
        for (b, (g, w)) in got.iter().zip(&want).enumerate() {
            prop_assert_eq!(g.len(), w.len());
            for (j, (g, w)) in g.iter().zip(w).enumerate() {
                prop_assert!(
                    same_outcome(g, w),
                    "call {} batch {} mutation {:?}: store {:?}, model {:?}",
                    i,
                    b,
                    call[b].0[j],
                    g,
                    w
                );
            }
        }
        assert_same_state(store, model)?;
        prop_assert_eq!(drain(&mut watcher), events);
        prop_assert_eq!(store.applied_state().unwrap(), Some(state.into_bytes()));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Store and model agree on every outcome, the contents, revisions and watch events; a
    /// dump restored into a fresh store holds the same state and goes on identically.
    #[test]
    fn store_matches_model(
        calls in prop::collection::vec(apply_call(), 1..8),
        later in prop::collection::vec(apply_call(), 0..4),
    ) {
        let (_d, store) = open();
        let mut model = Model::default();
        run(&store, &mut model, &calls, "first")?;

        let (state, dump) = store.dump().unwrap();
        prop_assert_eq!(state, store.applied_state().unwrap());
        let (_d2, fresh) = open();
        fresh.restore(&dump, b"restored").unwrap();
        assert_same_state(&fresh, &model)?;
        prop_assert_eq!(fresh.applied_state().unwrap(), Some(b"restored".to_vec()));
        // the restored store and the original go on in step with the model
        let mut twin = model.clone();
        run(&fresh, &mut twin, &later, "later")?;
        run(&store, &mut model, &later, "later")?;
    }

}

proptest! {
    // each case writes three stores: half as many keep it as quick as the model test
    #![proptest_config(ProptestConfig { cases: config().cases / 2, ..config() })]

    /// A damaged dump (truncated, or bytes flipped) is refused or restores something, never
    /// panics; a refused restore leaves the store as it was.
    #[test]
    fn damaged_dump_restore(calls in prop::collection::vec(apply_call(), 1..4), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (_d, store) = open();
        let mut model = Model::default();
        run(&store, &mut model, &calls, "s")?;
        let (_, dump) = store.dump().unwrap();
        let (_d2, other) = open();
        let mut flipped = dump.clone();
        let i = flip.index(flipped.len());
        flipped[i] ^= 1 << bit;
        for (truncated, damaged) in [(true, &dump[..cut.index(dump.len())]), (false, &flipped[..])] {
            // the target holds the model's state; a refused restore must leave it
            other.restore(&dump, b"s").unwrap();
            let r = other.restore(damaged, b"damaged");
            // "a truncated dump changes nothing" (restore_from's promise)
            prop_assert!(!truncated || r.is_err(), "a dump cut at {} of {} bytes restored", damaged.len(), dump.len());
            if r.is_err() {
                assert_same_state(&other, &model)?;
                prop_assert_eq!(other.applied_state().unwrap(), Some(b"s".to_vec()));
            }
        }
    }
}

/// restore_from promises that a truncated dump changes nothing; a dump cut right after an
/// entry (or after the revision) ends cleanly and was restored as a smaller state.
#[test]
fn dump_cut_between_entries_is_refused() {
    let (_d, store) = open();
    let batch = Batch(vec![
        Mutation::Create {
            key: ns_key("a"),
            object: b"{}".to_vec(),
            namespace: None,
        },
        Mutation::Create {
            key: cm_key("a", "x"),
            object: b"{}".to_vec(),
            namespace: Some("a".into()),
        },
    ]);
    store.apply(&[&batch], b"s").unwrap();
    let (_, dump) = store.dump().unwrap();
    let (_d2, other) = open();
    other.restore(&dump, b"s").unwrap();
    let first_entry = {
        // magic, header word, revision, then the first entry
        let key_len = u64::from_be_bytes(dump[24..32].try_into().unwrap()) as usize;
        let obj_at = 32 + key_len + 8;
        let obj_len = u64::from_be_bytes(dump[obj_at..obj_at + 8].try_into().unwrap()) as usize;
        obj_at + 8 + obj_len
    };
    for cut in [24, first_entry, dump.len() - 8, dump.len() - 1] {
        assert!(
            other.restore(&dump[..cut], b"cut").is_err(),
            "cut at {cut} of {}",
            dump.len()
        );
        assert_eq!(other.read().unwrap().count("").unwrap(), 2, "cut at {cut}");
        assert_eq!(other.applied_state().unwrap(), Some(b"s".to_vec()));
    }
}

/// Dumps written before the end marker existed (revision first, entries to the end of input)
/// still restore, so snapshot files kept from an older build stay usable.
#[test]
fn legacy_dump_restores() {
    let mut dump = 7u64.to_be_bytes().to_vec();
    for (key, rev, obj) in [
        (ns_key("a"), 3u64, &b"{}"[..]),
        (cm_key("a", "x"), 7, b"{\"k\":1}"),
    ] {
        dump.extend((key.len() as u64).to_be_bytes());
        dump.extend(key.as_bytes());
        dump.extend(rev.to_be_bytes());
        dump.extend((obj.len() as u64).to_be_bytes());
        dump.extend(obj);
    }
    let (_d, store) = open();
    store.restore(&dump, b"old").unwrap();
    assert_eq!(store.revision(), 7);
    let view = store.read().unwrap();
    assert_eq!(
        view.get(&cm_key("a", "x")).unwrap(),
        Some((7, b"{\"k\":1}".to_vec()))
    );
    assert_eq!(view.get(&ns_key("a")).unwrap(), Some((3, b"{}".to_vec())));
    // and what it dumps now is the framed format, which restores the same
    let (_, framed) = store.dump().unwrap();
    assert!(framed.starts_with(b"rdwdump1"));
    let (_d2, other) = open();
    other.restore(&framed, b"new").unwrap();
    assert_eq!(other.revision(), 7);
    assert_eq!(other.read().unwrap().count("").unwrap(), 2);
}
