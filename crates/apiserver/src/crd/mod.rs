//! Custom resources: the catalogue follows the CustomResourceDefinitions in the store, and the
//! definitions' controller accepts their names, establishes them and removes their objects
//! when they are deleted.
//!
//! The catalogue is updated on the apply path (a store [`Observer`]), on every member, before
//! any watcher or client hears of the definition's change: a client that saw `Established`
//! finds the resource served. Requests read one catalogue snapshot each; a change swaps the
//! whole snapshot, so a request never sees half a definition.

pub mod controller;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use reddwarf_resources::custom::kinds_from_crd;
use reddwarf_resources::{Catalogue, ResourceKind};
use reddwarf_store::{Event, EventType, ObjectKey, Observer, Store};
use serde_json::Value;

/// The group and resource definitions are stored under.
pub const GROUP: &str = "apiextensions.k8s.io";
/// The definitions' resource.
pub const PLURAL: &str = "customresourcedefinitions";

/// The served catalogue, swapped whole when a definition changes.
pub struct CatalogueCell {
    current: RwLock<Arc<Catalogue>>,
    /// Each stored definition's entries, by store key.
    definitions: Mutex<BTreeMap<String, Vec<ResourceKind>>>,
    /// The store's contents were replaced: re-read the definitions before the next use.
    stale: AtomicBool,
}

impl CatalogueCell {
    /// A cell serving `catalogue` (the built-ins) until definitions are read.
    pub fn new(catalogue: Catalogue) -> CatalogueCell {
        CatalogueCell {
            current: RwLock::new(Arc::new(catalogue)),
            definitions: Mutex::new(BTreeMap::new()),
            stale: AtomicBool::new(false),
        }
    }

    /// The catalogue now (one snapshot per request).
    pub fn load(&self) -> Arc<Catalogue> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts following the definitions in `store`: registers on its apply path, then reads
    /// what is there (in that order, so no change falls in between).
    pub fn follow(self: &Arc<Self>, store: &Store) {
        store.observe(
            ObjectKey::resource_prefix(GROUP, PLURAL),
            Arc::new(Follower(Arc::downgrade(self))),
        );
        self.reload(store);
    }

    /// Re-reads every definition if the store was replaced since the last read.
    pub fn refresh_if_stale(&self, store: &Store) {
        if self.stale.swap(false, Ordering::AcqRel) {
            self.reload(store);
        }
    }

    fn reload(&self, store: &Store) {
        let prefix = ObjectKey::resource_prefix(GROUP, PLURAL);
        let items = match store
            .read()
            .and_then(|v| v.list(&prefix, None, 0, false, |_| true))
        {
            Ok(page) => page.items,
            Err(e) => {
                tracing::error!("reading the custom resource definitions: {e}");
                return;
            }
        };
        let mut defs = self.definitions.lock().unwrap_or_else(|e| e.into_inner());
        defs.clear();
        for (key, bytes) in items {
            defs.insert(key, entries(&bytes));
        }
        self.publish(&defs);
    }

    fn changed(&self, events: &[Arc<Event>]) {
        let mut defs = self.definitions.lock().unwrap_or_else(|e| e.into_inner());
        for e in events {
            if e.event_type == EventType::Deleted {
                defs.remove(&e.key);
            } else {
                defs.insert(e.key.clone(), entries(&e.object));
            }
        }
        self.publish(&defs);
    }

    fn publish(&self, defs: &BTreeMap<String, Vec<ResourceKind>>) {
        let next = Catalogue::with_custom(defs.values().flatten().cloned());
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    }
}

/// The catalogue entries of one stored definition.
fn entries(bytes: &[u8]) -> Vec<ResourceKind> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(crd) => kinds_from_crd(&crd),
        Err(_) => Vec::new(),
    }
}

/// The cell's link from the store's apply path (weak: the store must not keep the API
/// server's catalogue alive).
struct Follower(std::sync::Weak<CatalogueCell>);

impl Observer for Follower {
    fn changed(&self, events: &[Arc<Event>]) {
        if let Some(cell) = self.0.upgrade() {
            cell.changed(events);
        }
    }

    fn reset(&self) {
        if let Some(cell) = self.0.upgrade() {
            cell.stale.store(true, Ordering::Release);
        }
    }
}
