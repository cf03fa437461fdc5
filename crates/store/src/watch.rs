use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::{Revision, Store, StoreError};

/// What a committed change did to its key, as a watch event's `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    /// The key did not exist before.
    Added,
    /// The key existed and was replaced.
    Modified,
    /// The key was removed.
    Deleted,
}

impl EventType {
    /// The watch event type as the API spells it (`ADDED`, `MODIFIED`, `DELETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A committed change as watchers see it. `object` is the stored JSON after the change (for
/// a delete, the last state stamped with the deletion revision); `prev` is the state before,
/// when known, so selector-filtered watches can tell an object leaving their selection.
#[derive(Debug)]
pub struct Event {
    /// The revision the change was committed at.
    pub revision: Revision,
    /// Whether the key was added, modified or deleted.
    pub event_type: EventType,
    /// The object key changed.
    pub key: String,
    /// The stored JSON after the change (the last state, for a delete).
    pub object: Arc<[u8]>,
    /// The stored JSON before the change, when known.
    pub prev: Option<Arc<[u8]>>,
}

/// Fans committed events out to watchers through bounded queues, and keeps a ring of recent
/// events so a watch can resume from a recent revision without touching disk.
#[derive(Clone)]
pub struct WatchHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    state: Mutex<HubState>,
    revision: AtomicU64,
    observers: Mutex<Vec<(String, Arc<dyn Observer>)>>,
}

/// Something kept in step with a part of the store on the apply path itself: told of each
/// committed change under its prefix before any watcher or proposer hears of it (the API
/// server's catalogue of custom resources follows their definitions this way on every member).
pub trait Observer: Send + Sync {
    /// Committed changes under the observer's prefix, in revision order.
    fn changed(&self, events: &[Arc<Event>]);
    /// The store's contents were replaced (a snapshot was installed): re-read everything.
    fn reset(&self);
}

struct HubState {
    ring: VecDeque<Kept>,
    ring_capacity: usize,
    /// How many of the ring's oldest events are [`Kept::Packed`].
    packed: usize,
    /// Bytes of the objects of the ring's [`Kept::Live`] events (shared ones counted twice).
    live_bytes: usize,
    /// Bytes of the objects of the ring's [`Kept::Packed`] events.
    packed_bytes: usize,
    /// The newest object bytes of each key with an event in the ring: the next change's
    /// `prev` is the same bytes, so the ring keeps one copy per revision, not old and new.
    latest: std::collections::HashMap<String, Arc<[u8]>>,
    slots: Vec<Slot>,
    next_id: u64,
    revision: Revision,
    /// Revisions at or below this cannot be resumed from the ring or the log.
    floor: Revision,
}

/// Bytes of objects the ring keeps uncompressed, newest first; older events are compressed.
/// Watchers on the live path are handed the events themselves; the ring is read only by a
/// watch that starts from a past revision, mostly a recent one (after a list, or a
/// reconnect). Kept whole, 8 192 events of pods are ~55 MiB: an event holds its object and
/// the previous state (~3.5 KB each), and the previous state outlives the event that brought
/// it. Small objects (most ConfigMaps, Leases) stay under the bound and are never compressed.
const LIVE_BYTES: usize = 8 << 20;

/// An event as the ring keeps it.
#[derive(Clone)]
enum Kept {
    Live(Arc<Event>),
    Packed(Arc<Packed>),
}

/// An event with its objects compressed (see [`crate::history::pack`]).
struct Packed {
    revision: Revision,
    event_type: EventType,
    key: String,
    object: Box<[u8]>,
    prev: Option<Box<[u8]>>,
}

impl Packed {
    fn bytes(&self) -> usize {
        self.object.len() + self.prev.as_ref().map_or(0, |p| p.len())
    }
}

impl Kept {
    fn revision(&self) -> Revision {
        match self {
            Kept::Live(e) => e.revision,
            Kept::Packed(p) => p.revision,
        }
    }

    fn key(&self) -> &str {
        match self {
            Kept::Live(e) => &e.key,
            Kept::Packed(p) => &p.key,
        }
    }

    fn bytes(e: &Event) -> usize {
        e.object.len() + e.prev.as_ref().map_or(0, |p| p.len())
    }

    fn pack(e: &Event) -> Packed {
        let pack = |b: &[u8]| crate::history::pack(b).into_owned().into_boxed_slice();
        Packed {
            revision: e.revision,
            event_type: e.event_type,
            key: e.key.clone(),
            object: pack(&e.object),
            prev: e.prev.as_deref().map(pack),
        }
    }

    /// The event again; `None` only if its bytes do not decompress (never written so).
    fn event(&self) -> Option<Arc<Event>> {
        match self {
            Kept::Live(e) => Some(e.clone()),
            Kept::Packed(p) => {
                let unpack = |b: &[u8]| crate::history::unpack(b.to_vec()).ok().map(Arc::from);
                Some(Arc::new(Event {
                    revision: p.revision,
                    event_type: p.event_type,
                    key: p.key.clone(),
                    object: unpack(&p.object)?,
                    prev: match &p.prev {
                        Some(b) => Some(unpack(b)?),
                        None => None,
                    },
                }))
            }
        }
    }
}

struct Slot {
    id: u64,
    prefix: String,
    tx: mpsc::Sender<Arc<Event>>,
}

/// What a registration needs: which keys, from which revision, how deep a queue.
pub struct WatchRegistration {
    /// Only keys starting with this prefix are delivered.
    pub prefix: String,
    /// Deliver events with revision strictly greater than this.
    pub after: Revision,
    /// Capacity of the watcher's queue; a watcher that lets it fill is closed.
    pub queue: usize,
}

/// A registered watcher. Events arrive in revision order; `next` returns `None` when the
/// watcher was closed for falling behind (its queue filled) or the hub was reset.
pub struct Watcher {
    backlog: VecDeque<Arc<Event>>,
    rx: mpsc::Receiver<Arc<Event>>,
    id: u64,
    hub: Arc<HubInner>,
}

impl Watcher {
    /// The next event in revision order, waiting for one; `None` once the watcher was closed.
    pub async fn next(&mut self) -> Option<Arc<Event>> {
        if let Some(e) = self.backlog.pop_front() {
            return Some(e);
        }
        self.rx.recv().await
    }

    /// The next event if one is already queued.
    pub fn try_next(&mut self) -> Option<Arc<Event>> {
        self.backlog.pop_front().or_else(|| self.rx.try_recv().ok())
    }

    /// Whether the hub has closed this watcher (it fell behind, or the hub was reset): events
    /// after those still queued will never come, so no revision past them may be claimed.
    pub fn is_closed(&self) -> bool {
        self.rx.is_closed()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Ok(mut st) = self.hub.state.lock() {
            st.slots.retain(|s| s.id != self.id);
        }
    }
}

/// A watch asked for a revision older than what is kept.
#[derive(Debug, thiserror::Error)]
#[error("too old resource version: {requested} ({oldest})")]
pub struct Gone {
    /// The revision the watch asked to start after.
    pub requested: Revision,
    /// The floor: only watches starting after this revision can be served.
    pub oldest: Revision,
}

impl WatchHub {
    pub(crate) fn new(revision: Revision, floor: Revision, ring_capacity: usize) -> WatchHub {
        WatchHub {
            inner: Arc::new(HubInner {
                state: Mutex::new(HubState {
                    ring: VecDeque::with_capacity(ring_capacity),
                    ring_capacity,
                    packed: 0,
                    live_bytes: 0,
                    packed_bytes: 0,
                    latest: std::collections::HashMap::new(),
                    slots: Vec::new(),
                    next_id: 0,
                    revision,
                    floor,
                }),
                revision: AtomicU64::new(revision),
                observers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The newest revision published to watchers.
    pub fn revision(&self) -> Revision {
        self.inner.revision.load(Ordering::Acquire)
    }

    /// Bytes of objects the watch cache holds: (whole, compressed). Whole bytes count an
    /// object shared by two events twice.
    pub fn cache_bytes(&self) -> (usize, usize) {
        self.inner
            .state
            .lock()
            .map(|s| (s.live_bytes, s.packed_bytes))
            .unwrap_or((0, 0))
    }

    /// How many watchers are registered.
    pub fn watcher_count(&self) -> usize {
        self.inner.state.lock().map(|s| s.slots.len()).unwrap_or(0)
    }

    /// `prev` (a key's state before a change) as shared bytes: the ring's copy of the key's
    /// newest object when it holds the same bytes, else a new allocation.
    pub(crate) fn share_prev(&self, key: &str, prev: Vec<u8>) -> Arc<[u8]> {
        let st = self.inner.state.lock().expect("watch hub lock");
        match st.latest.get(key) {
            Some(b) if **b == *prev => b.clone(),
            _ => prev.into(),
        }
    }

    pub(crate) fn publish(&self, events: Vec<Arc<Event>>, revision: Revision) {
        self.notify(&events);
        let mut st = self.inner.state.lock().expect("watch hub lock");
        for ev in events {
            let mut dead = Vec::new();
            for slot in &st.slots {
                if ev.key.starts_with(&slot.prefix) && slot.tx.try_send(ev.clone()).is_err() {
                    // Full or gone: close it rather than block the writer; the client re-lists.
                    dead.push(slot.id);
                }
            }
            if !dead.is_empty() {
                st.slots.retain(|s| !dead.contains(&s.id));
            }
            if st.ring.len() == st.ring_capacity {
                if let Some(old) = st.ring.pop_front() {
                    // Watches from before the oldest kept event can no longer be served.
                    st.floor = old.revision();
                    match old {
                        Kept::Packed(p) => {
                            st.packed = st.packed.saturating_sub(1);
                            st.packed_bytes -= p.bytes();
                        }
                        Kept::Live(old) => {
                            st.live_bytes -= Kept::bytes(&old);
                            st.forget_latest(&old);
                        }
                    }
                }
            }
            if ev.event_type == EventType::Deleted {
                st.latest.remove(&ev.key);
            } else {
                st.latest.insert(ev.key.clone(), ev.object.clone());
            }
            st.live_bytes += Kept::bytes(&ev);
            st.ring.push_back(Kept::Live(ev));
            st.pack_cold();
        }
        st.revision = revision;
        self.inner.revision.store(revision, Ordering::Release);
    }

    fn notify(&self, events: &[Arc<Event>]) {
        let observers = self.inner.observers.lock().expect("observers lock").clone();
        for (prefix, o) in observers {
            let mine: Vec<Arc<Event>> = events
                .iter()
                .filter(|e| e.key.starts_with(&prefix))
                .cloned()
                .collect();
            if !mine.is_empty() {
                o.changed(&mine);
            }
        }
    }

    pub(crate) fn reset(&self, revision: Revision) {
        let observers = self.inner.observers.lock().expect("observers lock").clone();
        for (_, o) in observers {
            o.reset();
        }
        let mut st = self.inner.state.lock().expect("watch hub lock");
        st.ring.clear();
        st.packed = 0;
        st.live_bytes = 0;
        st.packed_bytes = 0;
        st.latest.clear();
        st.slots.clear();
        st.revision = revision;
        st.floor = revision;
        self.inner.revision.store(revision, Ordering::Release);
    }
}

impl HubState {
    /// `latest` keeps a key's newest bytes only while an uncompressed event holds them.
    fn forget_latest(&mut self, ev: &Event) {
        if self
            .latest
            .get(&ev.key)
            .is_some_and(|b| Arc::ptr_eq(b, &ev.object))
        {
            self.latest.remove(&ev.key);
        }
    }

    /// Compresses the oldest whole events while they hold more than [`LIVE_BYTES`]; the
    /// newest stays whole.
    fn pack_cold(&mut self) {
        while self.live_bytes > LIVE_BYTES && self.packed + 1 < self.ring.len() {
            let i = self.packed;
            if let Kept::Live(ev) = &self.ring[i] {
                let ev = ev.clone();
                self.live_bytes -= Kept::bytes(&ev);
                self.forget_latest(&ev);
                let p = Kept::pack(&ev);
                self.packed_bytes += p.bytes();
                self.ring[i] = Kept::Packed(Arc::new(p));
            }
            self.packed += 1;
        }
    }
}

impl Store {
    /// Keeps `observer` in step with the keys under `prefix` from now on (see [`Observer`]).
    /// The caller reads the current state itself after registering.
    pub fn observe(&self, prefix: String, observer: Arc<dyn Observer>) {
        self.inner
            .hub
            .inner
            .observers
            .lock()
            .expect("observers lock")
            .push((prefix, observer));
    }

    /// Registers a watcher for keys under `reg.prefix`, delivering every event after
    /// `reg.after`: first the backlog from the ring, then live events. A revision older than
    /// the ring answers [`Gone`].
    pub fn watch(&self, reg: WatchRegistration) -> Result<Result<Watcher, Gone>, StoreError> {
        let hub = &self.inner.hub.inner;
        let (tx, rx) = mpsc::channel(reg.queue.max(1));
        let kept: Vec<Kept>;
        let id = {
            let mut st = hub.state.lock().expect("watch hub lock");
            if reg.after < st.floor {
                return Ok(Err(Gone {
                    requested: reg.after,
                    oldest: st.floor,
                }));
            }
            // The ring holds every event after `floor`; compressed ones are opened after the
            // lock is let go.
            kept = st
                .ring
                .iter()
                .filter(|e| e.revision() > reg.after && e.key().starts_with(&reg.prefix))
                .cloned()
                .collect();
            let id = st.next_id;
            st.next_id += 1;
            st.slots.push(Slot {
                id,
                prefix: reg.prefix.clone(),
                tx,
            });
            id
        };
        let mut watcher = Watcher {
            backlog: VecDeque::with_capacity(kept.len()),
            rx,
            id,
            hub: hub.clone(),
        };
        for k in kept {
            // Dropping the watcher on error unregisters it.
            let e = k.event().ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "watch cache: the event at revision {} does not decompress",
                    k.revision()
                ))
            })?;
            watcher.backlog.push_back(e);
        }
        Ok(Ok(watcher))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Batch, Mutation, StoreOptions};

    #[test]
    fn the_ring_keeps_only_its_newest_bytes_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(
            &dir.path().join("s.redb"),
            StoreOptions {
                watch_ring: 4000,
                ..Default::default()
            },
        )
        .unwrap();
        // ~4 KB an update (object and previous state): 3 000 of them are ~12 MiB.
        let big = |i: usize| format!(r#"{{"data":"{}","i":{i}}}"#, "x".repeat(2000)).into_bytes();
        let key = |i: usize| format!("/registry/things/t{}", i % 50);
        for i in 0..3000 {
            let m = if i < 50 {
                Mutation::Create {
                    key: key(i),
                    object: big(i),
                    namespace: None,
                }
            } else {
                Mutation::Update {
                    key: key(i),
                    object: big(i),
                    expect_revision: None,
                    expect_uid: None,
                }
            };
            store.apply(&[&Batch(vec![m])], b"").unwrap();
        }
        let st = store.inner.hub.inner.state.lock().unwrap();
        assert_eq!(st.ring.len(), 3000);
        assert!(st.packed > 500, "{} packed", st.packed);
        let live: usize = st
            .ring
            .iter()
            .map(|k| match k {
                Kept::Live(e) => Kept::bytes(e),
                Kept::Packed(_) => 0,
            })
            .sum();
        assert_eq!(live, st.live_bytes);
        let packed: usize = st
            .ring
            .iter()
            .map(|k| match k {
                Kept::Packed(p) => p.bytes(),
                Kept::Live(_) => 0,
            })
            .sum();
        assert_eq!(packed, st.packed_bytes);
        assert!(
            live <= LIVE_BYTES && live > LIVE_BYTES - 8192,
            "{live} bytes whole"
        );
        for (i, k) in st.ring.iter().enumerate() {
            match k {
                Kept::Packed(p) => {
                    assert!(i < st.packed);
                    assert!(p.object.len() < 500, "{} bytes packed", p.object.len());
                    // The first 50 are creates, with no previous state.
                    assert_eq!(p.prev.is_some(), i >= 50);
                    assert!(p.prev.as_ref().is_none_or(|b| b.len() < 500));
                }
                Kept::Live(_) => assert!(i >= st.packed),
            }
        }
        // A key's newest bytes are shared only with whole events.
        for (k, b) in &st.latest {
            assert!(st.ring.iter().any(|e| matches!(e,
                Kept::Live(e) if &e.key == k && Arc::ptr_eq(&e.object, b))));
        }
        drop(st);
        assert_eq!(store.inner.hub.cache_bytes(), (live, packed));
    }
}
