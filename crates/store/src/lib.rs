//! reddwarf's storage core: redb tables for objects and the event log, the deterministic
//! apply step that turns a committed batch of [`Mutation`]s into one write transaction, and
//! the in-memory [`WatchHub`] that fans committed events out to watchers.
//!
//! This crate knows nothing of HTTP or raft: the consensus crate keeps its own tables in the
//! same redb file (via [`Store::database`]) and calls [`Store::apply`] for committed entries.

mod apply;
mod error;
mod history;
mod key;
mod mutation;
mod read;
mod tables;
mod watch;

pub use apply::AppliedBatch;
pub use error::{MutationError, StoreError};
pub use history::{recorded, AtRevision, Change, ChangeKind, LogFilter};
pub use key::ObjectKey;
pub use mutation::{Attribution, Batch, Mutation, Outcome};
pub use read::{ListPage, ReadView};
pub use watch::{Event, EventType, Gone, Observer, WatchHub, WatchRegistration, Watcher};

use std::path::Path;
use std::sync::Arc;

/// A store revision: the global, strictly increasing counter that is every object's
/// `resourceVersion`.
pub type Revision = u64;

/// How much watch history is kept, and how much of the file in memory.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Recent events kept in memory (the watch cache); a watch from an older revision answers
    /// 410 Gone and its client re-lists, as with upstream's watch cache.
    pub watch_ring: usize,
    /// Record every change with who made it (the history).
    pub history: bool,
    /// redb's page cache. Its default is sized for databases far larger than a small
    /// cluster's, and would dominate the process's memory.
    pub cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            watch_ring: 8192,
            history: false,
            cache_bytes: 32 << 20,
        }
    }
}

/// The redb-backed store plus its watch hub. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<redb::Database>,
    hub: WatchHub,
    history: bool,
}

impl Store {
    /// Opens (or creates) the store file at `path` with default options.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, StoreOptions::default())
    }

    /// Opens (or creates) the store file at `path`.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let db = redb::Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(path)?;
        Store::from_database(db, options)
    }

    /// Opens (or creates) a store on a redb storage backend of the caller's, with no page
    /// cache: fault-injection tests use it to make reads and writes fail.
    pub fn open_on_backend(
        backend: impl redb::StorageBackend,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let db = redb::Database::builder()
            .set_cache_size(0)
            .create_with_backend(backend)?;
        Store::from_database(db, options)
    }

    fn from_database(db: redb::Database, options: StoreOptions) -> Result<Store, StoreError> {
        let db = Arc::new(db);
        tables::ensure(&db)?;
        let revision = read::current_revision(&db)?;
        history_start(&db, options.history, revision)?;
        // History starts now: the ring is empty after a start.
        let hub = WatchHub::new(revision, revision, options.watch_ring);
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                hub,
                history: options.history,
            }),
        })
    }

    /// The underlying database, for crates that keep their own tables in the same file
    /// (the raft log) so that one fsync covers both.
    pub fn database(&self) -> &Arc<redb::Database> {
        &self.inner.db
    }

    /// The watch hub that apply publishes committed events to.
    pub fn hub(&self) -> &WatchHub {
        &self.inner.hub
    }

    /// A consistent read view at the current revision.
    pub fn read(&self) -> Result<ReadView, StoreError> {
        ReadView::new(&self.inner.db)
    }

    /// The latest applied revision.
    pub fn revision(&self) -> Revision {
        self.inner.hub.revision()
    }

    /// Bytes of objects the watch cache holds: (whole, compressed).
    pub fn watch_cache_bytes(&self) -> (usize, usize) {
        self.inner.hub.cache_bytes()
    }
}

/// History turned on for a store without it starts at the current revision (the objects
/// there become its base); turned off, its start is forgotten, so that turning it on again
/// does not leave a gap that time travel would read through.
fn history_start(db: &redb::Database, on: bool, revision: Revision) -> Result<(), StoreError> {
    use redb::ReadableTable;
    let txn = db.begin_write()?;
    let started = txn
        .open_table(tables::META)?
        .get(history::META_START)?
        .is_some();
    match (on, started) {
        (true, false) => history::rebase(&txn, revision)?,
        (false, true) => {
            txn.open_table(tables::META)?.remove(history::META_START)?;
            txn.delete_table(history::HISTORY)?;
            txn.delete_table(history::HISTORY_KEYS)?;
        }
        _ => {}
    }
    txn.commit()?;
    Ok(())
}
