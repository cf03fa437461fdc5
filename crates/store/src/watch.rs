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
    ring: VecDeque<Arc<Event>>,
    ring_capacity: usize,
    /// The newest object bytes of each key with an event in the ring: the next change's
    /// `prev` is the same bytes, so the ring keeps one copy per revision, not old and new.
    latest: std::collections::HashMap<String, Arc<[u8]>>,
    slots: Vec<Slot>,
    next_id: u64,
    revision: Revision,
    /// Revisions at or below this cannot be resumed from the ring or the log.
    floor: Revision,
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
                    st.floor = old.revision;
                    if st
                        .latest
                        .get(&old.key)
                        .is_some_and(|b| Arc::ptr_eq(b, &old.object))
                    {
                        st.latest.remove(&old.key);
                    }
                }
            }
            if ev.event_type == EventType::Deleted {
                st.latest.remove(&ev.key);
            } else {
                st.latest.insert(ev.key.clone(), ev.object.clone());
            }
            st.ring.push_back(ev);
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
        st.latest.clear();
        st.slots.clear();
        st.revision = revision;
        st.floor = revision;
        self.inner.revision.store(revision, Ordering::Release);
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
        let mut backlog = VecDeque::new();
        let id = {
            let mut st = hub.state.lock().expect("watch hub lock");
            if reg.after < st.floor {
                return Ok(Err(Gone {
                    requested: reg.after,
                    oldest: st.floor,
                }));
            }
            // The ring holds every event after `floor`.
            {
                backlog.extend(
                    st.ring
                        .iter()
                        .filter(|e| e.revision > reg.after && e.key.starts_with(&reg.prefix))
                        .cloned(),
                );
            }
            let id = st.next_id;
            st.next_id += 1;
            st.slots.push(Slot {
                id,
                prefix: reg.prefix.clone(),
                tx,
            });
            id
        };
        let watcher = Watcher {
            backlog,
            rx,
            id,
            hub: hub.clone(),
        };
        Ok(Ok(watcher))
    }
}
