use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, Vote,
};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::{storage_err, TypeConfig};

/// index -> postcard-encoded `Entry<TypeConfig>`.
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// vote, committed, last purged log id.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

/// The raft log, kept in the same redb file as the objects so that the fsync of a log append
/// also makes every earlier (unsynced) state-machine commit durable.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<redb::Database>,
    stats: Arc<crate::Stats>,
    recent: Arc<std::sync::Mutex<Recent>>,
}

/// The newest appended entries, decoded: the state machine and every follower's replication
/// stream read an entry right after it is appended, and serving them from here saves a redb
/// read and a decode of the whole batch each time.
#[derive(Default)]
struct Recent {
    entries: std::collections::BTreeMap<u64, Entry<TypeConfig>>,
    bytes: usize,
}

/// Bounds of [`Recent`]: enough for followers a few batches behind (a batch is at most a few
/// MiB); one further behind reads from redb. Every byte here is resident, so the bound counts
/// against a small cluster's memory.
const RECENT_ENTRIES: usize = 1024;
const RECENT_BYTES: usize = 8 << 20;

impl Recent {
    fn insert(&mut self, e: Entry<TypeConfig>) {
        self.bytes += entry_size(&e);
        if let Some(old) = self.entries.insert(e.log_id.index, e) {
            self.bytes = self.bytes.saturating_sub(entry_size(&old));
        }
        while self.entries.len() > RECENT_ENTRIES || self.bytes > RECENT_BYTES {
            match self.entries.pop_first() {
                Some((_, old)) => self.bytes = self.bytes.saturating_sub(entry_size(&old)),
                None => break,
            }
        }
    }

    fn remove(&mut self, range: impl RangeBounds<u64>) {
        let doomed: Vec<u64> = self.entries.range(range).map(|(i, _)| *i).collect();
        for i in doomed {
            if let Some(old) = self.entries.remove(&i) {
                self.bytes = self.bytes.saturating_sub(entry_size(&old));
            }
        }
    }

    /// Every entry of `[start, end)` if all are here.
    fn get(&self, start: u64, end: u64) -> Option<Vec<Entry<TypeConfig>>> {
        if start >= end {
            return Some(Vec::new());
        }
        let out: Vec<Entry<TypeConfig>> = self
            .entries
            .range(start..end)
            .map(|(_, e)| e.clone())
            .collect();
        (out.len() as u64 == end - start).then_some(out)
    }
}

/// Bytes an entry's objects take (what the cache bound counts): their capacity, not their
/// length, since an encoder's buffer can hold up to twice what it wrote.
fn entry_size(e: &Entry<TypeConfig>) -> usize {
    match &e.payload {
        openraft::EntryPayload::Normal(b) => {
            b.0.iter()
                .map(|m| match m.unattributed().0 {
                    reddwarf_store::Mutation::Create { object, .. }
                    | reddwarf_store::Mutation::Update { object, .. } => object.capacity() + 64,
                    _ => 128,
                })
                .sum()
        }
        _ => 64,
    }
}

fn read_err(e: impl std::fmt::Display) -> StorageError<u64> {
    storage_err(ErrorVerb::Read, ErrorSubject::Logs, e)
}
fn write_err(e: impl std::fmt::Display) -> StorageError<u64> {
    storage_err(ErrorVerb::Write, ErrorSubject::Logs, e)
}

impl LogStore {
    /// Uses `db` (the store's database) for the log, creating its tables if missing; `stats` counts the appends.
    pub fn open(
        db: Arc<redb::Database>,
        stats: Arc<crate::Stats>,
    ) -> Result<LogStore, StorageError<u64>> {
        let txn = db.begin_write().map_err(write_err)?;
        txn.open_table(LOG).map_err(write_err)?;
        txn.open_table(META).map_err(write_err)?;
        txn.commit().map_err(write_err)?;
        Ok(LogStore {
            db,
            stats,
            recent: Default::default(),
        })
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StorageError<u64>> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(META).map_err(read_err)?;
        let v = table.get(name).map_err(read_err)?;
        match v {
            None => Ok(None),
            Some(g) => postcard::from_bytes(g.value()).map(Some).map_err(read_err),
        }
    }

    fn put_meta<T: serde::Serialize>(
        &self,
        name: &str,
        value: &T,
        durable: bool,
    ) -> Result<(), StorageError<u64>> {
        let bytes = postcard::to_stdvec(value).map_err(write_err)?;
        let mut txn = self.db.begin_write().map_err(write_err)?;
        if !durable {
            txn.set_durability(redb::Durability::None)
                .map_err(write_err)?;
        }
        {
            let mut table = txn.open_table(META).map_err(write_err)?;
            table.insert(name, bytes.as_slice()).map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let first = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Some(i.saturating_add(1)),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        if let Some(end) = end {
            if let Some(hit) = self.recent.lock().expect("log cache").get(first, end) {
                return Ok(hit);
            }
        }
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(LOG).map_err(read_err)?;
        let start = match range.start_bound() {
            Bound::Included(i) => Bound::Included(*i),
            Bound::Excluded(i) => Bound::Excluded(*i),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(*i),
            Bound::Excluded(i) => Bound::Excluded(*i),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for item in table.range::<u64>((start, end)).map_err(read_err)? {
            let (_, v) = item.map_err(read_err)?;
            out.push(postcard::from_bytes(v.value()).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let last_purged: Option<LogId<u64>> = self.get_meta("purged")?;
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(LOG).map_err(read_err)?;
        let last = match table.last().map_err(read_err)? {
            Some((_, v)) => {
                let e: Entry<TypeConfig> = postcard::from_bytes(v.value()).map_err(read_err)?;
                Some(e.log_id)
            }
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.put_meta("vote", vote, true)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        self.get_meta("vote")
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        // A hint only (raft re-derives it), so it rides along with the next durable commit.
        self.put_meta("committed", &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.get_meta::<Option<LogId<u64>>>("committed")?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let started = std::time::Instant::now();
        let txn = self.db.begin_write().map_err(write_err)?;
        let mut appended = Vec::new();
        {
            let mut table = txn.open_table(LOG).map_err(write_err)?;
            for entry in entries {
                let bytes = postcard::to_stdvec(&entry).map_err(write_err)?;
                self.stats.log_bytes.inc_by(bytes.len() as u64);
                table
                    .insert(entry.log_id.index, bytes.as_slice())
                    .map_err(write_err)?;
                appended.push(entry);
            }
        }
        // Durability::Immediate (the default): this fsync is the write's durability point.
        self.stats.fsyncs.inc();
        let res = txn
            .commit()
            .map_err(|e| std::io::Error::other(e.to_string()));
        self.stats
            .append_seconds
            .observe(started.elapsed().as_secs_f64());
        let failed = res.as_ref().err().map(|e| e.to_string());
        if failed.is_none() {
            // Cached before the callback: whoever reads the entries next finds them here.
            let mut recent = self.recent.lock().expect("log cache");
            for e in appended {
                recent.insert(e);
            }
        }
        callback.log_io_completed(res);
        match failed {
            Some(e) => Err(write_err(e)),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.recent
            .lock()
            .expect("log cache")
            .remove(log_id.index..);
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(LOG).map_err(write_err)?;
            table
                .retain_in(log_id.index.., |_, _| false)
                .map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.recent
            .lock()
            .expect("log cache")
            .remove(..=log_id.index);
        let bytes = postcard::to_stdvec(&log_id).map_err(write_err)?;
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut meta = txn.open_table(META).map_err(write_err)?;
            meta.insert("purged", bytes.as_slice()).map_err(write_err)?;
            let mut table = txn.open_table(LOG).map_err(write_err)?;
            table
                .retain_in(..=log_id.index, |_, _| false)
                .map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reddwarf_store::{Batch, Mutation};

    fn entry(index: u64, object: Vec<u8>) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: openraft::EntryPayload::Normal(Batch(vec![Mutation::Create {
                key: format!("/k/{index}"),
                object,
                namespace: None,
            }])),
        }
    }

    #[test]
    fn the_recent_cache_bounds_what_its_buffers_hold_not_what_they_wrote() {
        let mut recent = Recent::default();
        // 1 KiB written into 64 KiB buffers: counted by length, 1 024 of them would fit.
        for i in 0..1024 {
            let mut object = Vec::with_capacity(64 << 10);
            object.extend_from_slice(&[b'x'; 1024]);
            recent.insert(entry(i, object));
        }
        let held: usize = recent.entries.values().map(entry_size).sum();
        assert_eq!(held, recent.bytes);
        assert!(recent.bytes <= RECENT_BYTES, "{} bytes held", recent.bytes);
        assert!(
            recent.entries.len() < 1024 / 4,
            "{} entries",
            recent.entries.len()
        );
        // The newest are the ones kept.
        assert_eq!(recent.entries.keys().next_back(), Some(&1023));
        assert!(recent.get(1000, 1024).is_some());
        assert!(recent.get(0, 10).is_none());
    }
}
