//! The change history: every applied change (events and internal claims aside) kept with who
//! made it, written in the same redb transaction as the change itself, so it is exact after a
//! crash (a replayed batch rewrites the same records) and costs no second pass.
//!
//! Two tables: `(revision, key) -> record` in apply order, and `(key, revision)` as the index
//! per object. At any revision R at or after the start of kept history, an object's state is
//! its newest record at or before R (none, or a deletion: it did not exist). Pruning keeps
//! that true: it drops records older than the new start unless a record is the newest one of
//! its object before the start (then it stays, as the base of later queries).

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;

use crate::tables::{u64_from, META, OBJECTS};
use crate::watch::EventType;
use crate::{Attribution, Revision, Store, StoreError};

pub(crate) const HISTORY: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("history");
pub(crate) const HISTORY_KEYS: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("history_keys");
/// The first revision whose state history can answer.
pub(crate) const META_START: &str = "history_start";
/// The newest recorded change time: recorded times never go backwards.
pub(crate) const META_TIME: &str = "history_time";

/// What a change did to its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// The object was created.
    Created,
    /// The object was replaced (update, patch, apply, a status write).
    Modified,
    /// The object was removed; the record holds its last state.
    Deleted,
    /// The object as it was when history started (or where pruned history begins).
    Base,
}

/// One recorded change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The revision the change was committed at (the object's resourceVersion).
    pub revision: Revision,
    /// The object's store key.
    pub key: String,
    /// What happened.
    pub kind: ChangeKind,
    /// Who did it and when.
    pub by: Attribution,
    /// The stored JSON after the change (for a deletion, the last state); a Secret's values
    /// are replaced by their SHA-256.
    pub object: Vec<u8>,
}

#[derive(Deserialize)]
struct Record {
    kind: ChangeKind,
    by: Attribution,
    object: Vec<u8>,
}

/// Objects of at least this many bytes are recorded compressed.
const PACK_FROM: usize = 256;

/// An object as recorded: zlib-compressed when large. A recorded change was as large as the
/// object (~4 KB for a pod with its managedFields), so each took a page of its own and history
/// was most of the file (30 000 pods created and deleted: ~1 GB of 2.3 GB); JSON compresses
/// several times over. Stored JSON starts with `{` and zlib's stream with 0x78, so records
/// written before compression read as they are.
pub(crate) fn pack(object: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if object.len() < PACK_FROM {
        return object.into();
    }
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(object.len() / 3),
        flate2::Compression::fast(),
    );
    match z.write_all(object).and_then(|_| z.finish()) {
        Ok(packed) if packed.len() < object.len() => packed.into(),
        _ => object.into(),
    }
}

/// The object of a record as it was given to [`pack`].
pub(crate) fn unpack(object: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    if object.first() != Some(&0x78) {
        return Ok(object);
    }
    use std::io::Read;
    let mut out = Vec::with_capacity(object.len() * 4);
    flate2::read::ZlibDecoder::new(object.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| StoreError::Corrupt(format!("history record: {e}")))?;
    Ok(out)
}

/// What [`Record`] decodes, encoded without copying the object (postcard writes a byte
/// slice and a `Vec<u8>` alike).
#[derive(Serialize)]
struct RecordRef<'a> {
    kind: ChangeKind,
    by: &'a Attribution,
    object: &'a [u8],
}

/// An object at a past revision.
#[derive(Debug)]
pub enum AtRevision {
    /// The revision is before the start of kept history.
    Pruned {
        /// Where kept history starts.
        start: Revision,
    },
    /// The object did not exist then; the newest change before (its deletion), if any.
    Absent(Option<Change>),
    /// The object as it was: its newest change at or before the revision.
    Present(Change),
}

/// Keys whose changes are not recorded: events expire within the hour and would drown the
/// history; claims are internal bookkeeping of allocated IPs and ports.
pub fn recorded(key: &str) -> bool {
    !(key.starts_with(crate::apply::CLAIM_PREFIX)
        || key.starts_with("core/events/")
        || key.starts_with("events.k8s.io/events/"))
}

/// A Secret's `data` and `stringData` values as `sha256:<hex>`: the history tells that a
/// value changed, never the value.
fn redact<'a>(key: &str, object: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    if !key.starts_with("core/secrets/") {
        return object.into();
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(object) else {
        return b"{}".to_vec().into();
    };
    for field in ["data", "stringData"] {
        if let Some(Value::Object(m)) = v.get_mut(field) {
            for (_, val) in m.iter_mut() {
                let raw = match &*val {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let digest = sha2::Sha256::digest(raw.as_bytes());
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                *val = Value::String(format!("sha256:{hex}"));
            }
        }
    }
    serde_json::to_vec(&v).unwrap_or_default().into()
}

/// Records changes inside one apply transaction.
pub(crate) struct Recorder<'t> {
    history: redb::Table<'t, (u64, &'static str), &'static [u8]>,
    keys: redb::Table<'t, (&'static str, u64), ()>,
    time_ms: i64,
    changed_time: bool,
}

impl<'t> Recorder<'t> {
    /// `time_ms`: the newest recorded change time so far (META_TIME).
    pub(crate) fn open(
        txn: &'t WriteTransaction,
        time_ms: i64,
    ) -> Result<Recorder<'t>, StoreError> {
        Ok(Recorder {
            history: txn.open_table(HISTORY)?,
            keys: txn.open_table(HISTORY_KEYS)?,
            time_ms,
            changed_time: false,
        })
    }

    pub(crate) fn record(
        &mut self,
        revision: Revision,
        key: &str,
        event: EventType,
        by: Option<&crate::Attribution>,
        object: &[u8],
    ) -> Result<(), StoreError> {
        if !recorded(key) {
            return Ok(());
        }
        let kind = match event {
            EventType::Added => ChangeKind::Created,
            EventType::Modified => ChangeKind::Modified,
            EventType::Deleted => ChangeKind::Deleted,
        };
        let mut by = by.cloned().unwrap_or_else(|| Attribution {
            verb: match kind {
                ChangeKind::Created => "create",
                ChangeKind::Deleted => "delete",
                _ => "update",
            }
            .into(),
            ..Default::default()
        });
        // Monotonic, and the same on every replica: a function of the log alone.
        if by.time_ms < self.time_ms {
            by.time_ms = self.time_ms;
        } else {
            self.time_ms = by.time_ms;
            self.changed_time = true;
        }
        let redacted = redact(key, object);
        let rec = RecordRef {
            kind,
            by: &by,
            object: &pack(&redacted),
        };
        let bytes = postcard::to_stdvec(&rec).map_err(|e| StoreError::Redb(e.to_string()))?;
        self.history.insert((revision, key), bytes.as_slice())?;
        self.keys.insert((key, revision), ())?;
        Ok(())
    }

    /// The newest change time, when it moved (to write to META_TIME).
    pub(crate) fn finish(self) -> Option<i64> {
        self.changed_time.then_some(self.time_ms)
    }
}

fn decode(revision: Revision, key: &str, bytes: &[u8]) -> Result<Change, StoreError> {
    let rec: Record = postcard::from_bytes(bytes)
        .map_err(|e| StoreError::Corrupt(format!("history record {revision} {key}: {e}")))?;
    Ok(Change {
        revision,
        key: key.to_string(),
        kind: rec.kind,
        by: rec.by,
        object: unpack(rec.object)?,
    })
}

/// Starts history afresh at the current revision: every stored object becomes a base record
/// at its own revision. Used when history is turned on for a store that has objects, and
/// when a raft snapshot replaces the objects (history before it is not in the snapshot).
pub(crate) fn rebase(txn: &WriteTransaction, revision: Revision) -> Result<(), StoreError> {
    txn.delete_table(HISTORY)?;
    txn.delete_table(HISTORY_KEYS)?;
    let mut history = txn.open_table(HISTORY)?;
    let mut keys = txn.open_table(HISTORY_KEYS)?;
    let objects = txn.open_table(OBJECTS)?;
    for row in objects.iter()? {
        let (k, v) = row?;
        let key = k.value();
        if !recorded(key) {
            continue;
        }
        let (rev, obj) = v.value();
        let redacted = redact(key, obj);
        let rec = RecordRef {
            kind: ChangeKind::Base,
            by: &Attribution::default(),
            object: &pack(&redacted),
        };
        let bytes = postcard::to_stdvec(&rec).map_err(|e| StoreError::Redb(e.to_string()))?;
        history.insert((rev, key), bytes.as_slice())?;
        keys.insert((key, rev), ())?;
    }
    let mut meta = txn.open_table(META)?;
    meta.insert(META_START, revision.to_be_bytes().as_slice())?;
    Ok(())
}

/// What `history_log` lists.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    /// One object's key.
    pub key: Option<String>,
    /// Keys starting with this (a resource, or a resource in a namespace).
    pub prefix: Option<String>,
    /// Only objects in this namespace (with `prefix` unset: of any resource).
    pub namespace: Option<String>,
    /// Only changes at or before this revision (paging backwards).
    pub before: Option<Revision>,
    /// At most this many changes.
    pub limit: usize,
}

impl Store {
    /// Whether changes are being recorded.
    pub fn history_enabled(&self) -> bool {
        self.inner.history
    }

    /// The first revision history answers for, when history is on.
    pub fn history_start(&self) -> Result<Option<Revision>, StoreError> {
        if !self.inner.history {
            return Ok(None);
        }
        let txn = self.inner.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(META_START)?.map(|v| u64_from(v.value())))
    }

    /// Recorded changes, newest first.
    pub fn history_log(&self, filter: &LogFilter) -> Result<Vec<Change>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let history = txn.open_table(HISTORY)?;
        let before = filter.before.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        if let Some(key) = &filter.key {
            let keys = txn.open_table(HISTORY_KEYS)?;
            for row in keys
                .range((key.as_str(), 0)..=(key.as_str(), before))?
                .rev()
            {
                if out.len() >= filter.limit {
                    break;
                }
                let (k, _) = row?;
                let (_, rev) = k.value();
                if let Some(v) = history.get((rev, key.as_str()))? {
                    out.push(decode(rev, key, v.value())?);
                }
            }
            return Ok(out);
        }
        for row in history.range((0, "")..=(before, "\u{10ffff}"))?.rev() {
            if out.len() >= filter.limit {
                break;
            }
            let (k, v) = row?;
            let (rev, key) = k.value();
            if let Some(p) = &filter.prefix {
                if !key.starts_with(p.as_str()) {
                    continue;
                }
            }
            if let Some(ns) = &filter.namespace {
                if crate::ObjectKey::from_string(key.to_string()).namespace() != ns {
                    continue;
                }
            }
            out.push(decode(rev, key, v.value())?);
        }
        Ok(out)
    }

    /// Recorded changes after `after`, oldest first, at most `max` (the history mirror's
    /// feed; base records included, so the mirror's tree holds the objects that were there
    /// when history started).
    pub fn history_since(&self, after: Revision, max: usize) -> Result<Vec<Change>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let history = txn.open_table(HISTORY)?;
        let mut out = Vec::new();
        for row in history.range((after + 1, "")..)? {
            if out.len() >= max {
                break;
            }
            let (k, v) = row?;
            let (rev, key) = k.value();
            out.push(decode(rev, key, v.value())?);
        }
        Ok(out)
    }

    /// Recorded changes after `after`, oldest first, as long as `take` accepts each (at most
    /// `max`), and whether any change follows them. The history mirror reads one window
    /// at a time this way: reading `max` changes to use the first few held tens of MiB
    /// decoded while it caught up.
    pub fn history_while(
        &self,
        after: Revision,
        max: usize,
        mut take: impl FnMut(&Change) -> bool,
    ) -> Result<(Vec<Change>, bool), StoreError> {
        let txn = self.inner.db.begin_read()?;
        let history = txn.open_table(HISTORY)?;
        let mut out = Vec::new();
        for row in history.range((after + 1, "")..)? {
            if out.len() >= max {
                return Ok((out, true));
            }
            let (k, v) = row?;
            let (rev, key) = k.value();
            let change = decode(rev, key, v.value())?;
            if !take(&change) {
                return Ok((out, true));
            }
            out.push(change);
        }
        Ok((out, false))
    }

    /// Object `key` as it was at `revision`.
    pub fn history_at(&self, key: &str, revision: Revision) -> Result<AtRevision, StoreError> {
        let start = self.history_start()?.unwrap_or(u64::MAX);
        if revision < start {
            return Ok(AtRevision::Pruned { start });
        }
        let txn = self.inner.db.begin_read()?;
        let keys = txn.open_table(HISTORY_KEYS)?;
        let history = txn.open_table(HISTORY)?;
        let newest = keys.range((key, 0)..=(key, revision))?.next_back();
        let Some(row) = newest else {
            return Ok(AtRevision::Absent(None));
        };
        let (_, rev) = row?.0.value();
        let Some(v) = history.get((rev, key))? else {
            return Ok(AtRevision::Absent(None));
        };
        let c = decode(rev, key, v.value())?;
        Ok(if c.kind == ChangeKind::Deleted {
            AtRevision::Absent(Some(c))
        } else {
            AtRevision::Present(c)
        })
    }

    /// Every object under `prefix` as it was at `revision` (None: before kept history).
    pub fn history_list_at(
        &self,
        prefix: &str,
        revision: Revision,
    ) -> Result<Option<Vec<Change>>, StoreError> {
        let start = self.history_start()?.unwrap_or(u64::MAX);
        if revision < start {
            return Ok(None);
        }
        let txn = self.inner.db.begin_read()?;
        let keys = txn.open_table(HISTORY_KEYS)?;
        let history = txn.open_table(HISTORY)?;
        let mut out = Vec::new();
        let mut newest: Option<(String, u64)> = None;
        let mut flush = |newest: Option<(String, u64)>| -> Result<(), StoreError> {
            if let Some((key, rev)) = newest {
                if let Some(v) = history.get((rev, key.as_str()))? {
                    let c = decode(rev, &key, v.value())?;
                    if c.kind != ChangeKind::Deleted {
                        out.push(c);
                    }
                }
            }
            Ok(())
        };
        for row in keys.range((prefix, 0)..)? {
            let (k, _) = row?;
            let (key, rev) = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            if rev > revision {
                continue;
            }
            match &mut newest {
                Some((k, r)) if k == key => *r = rev,
                _ => {
                    flush(newest.take())?;
                    newest = Some((key.to_string(), rev));
                }
            }
        }
        flush(newest)?;
        Ok(Some(out))
    }

    /// The first recorded revision whose change time is at or after `time_ms`.
    pub fn history_revision_at_time(&self, time_ms: i64) -> Result<Option<Revision>, StoreError> {
        let start = self.history_start()?.unwrap_or(0);
        let txn = self.inner.db.begin_read()?;
        let history = txn.open_table(HISTORY)?;
        for row in history.range((start, "")..)? {
            let (k, v) = row?;
            let (rev, key) = k.value();
            let c = decode(rev, key, v.value())?;
            if c.by.time_ms >= time_ms {
                return Ok(Some(rev));
            }
        }
        Ok(None)
    }

    /// Moves the start of kept history forward to `new_start` (never past the current
    /// revision) in one transaction; returns how many records were dropped. The newest record
    /// of each object before the new start stays as its base (unless it is a deletion).
    /// Callers advance in steps so that one transaction stays short.
    pub fn prune_history(&self, new_start: Revision) -> Result<usize, StoreError> {
        let Some(start) = self.history_start()? else {
            return Ok(0);
        };
        let new_start = new_start.min(self.revision());
        if new_start <= start {
            return Ok(0);
        }
        let txn = self.inner.db.begin_write()?;
        let dropped;
        {
            let mut history = txn.open_table(HISTORY)?;
            let mut keys = txn.open_table(HISTORY_KEYS)?;
            let mut doomed = Vec::new();
            for row in history.range((0, "")..(new_start, ""))? {
                let (k, v) = row?;
                let (rev, key) = k.value();
                let later = keys
                    .range((key, rev + 1)..(key, new_start))?
                    .next()
                    .is_some();
                if later || decode(rev, key, v.value())?.kind == ChangeKind::Deleted {
                    doomed.push((rev, key.to_string()));
                }
            }
            for (rev, key) in &doomed {
                history.remove((*rev, key.as_str()))?;
                keys.remove((key.as_str(), *rev))?;
            }
            dropped = doomed.len();
            let mut meta = txn.open_table(META)?;
            meta.insert(META_START, new_start.to_be_bytes().as_slice())?;
        }
        txn.commit()?;
        Ok(dropped)
    }

    /// Bytes the history tables take on disk, approximately (stored record bytes).
    pub fn history_records(&self) -> Result<u64, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let history = txn.open_table(HISTORY)?;
        Ok(redb::ReadableTableMetadata::len(&history)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_objects_are_recorded_compressed_and_read_back_exactly() {
        let pod = serde_json::to_vec(&serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"},
                "managedFields": (0..12).map(|i| serde_json::json!({
                    "manager": format!("m{i}"), "operation": "Update",
                    "fieldsV1": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}}}}}}))
                    .collect::<Vec<_>>()},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
        }))
        .unwrap();
        assert!(pod.len() > 1024);
        let packed = pack(&pod);
        assert!(
            packed.len() * 3 < pod.len(),
            "{} of {}",
            packed.len(),
            pod.len()
        );
        assert_eq!(unpack(packed.into_owned()).unwrap(), pod);
        // Small objects, and records written before compression, are stored as they are.
        let small = br#"{"kind":"ConfigMap","metadata":{"name":"x"}}"#.to_vec();
        assert_eq!(&*pack(&small), small.as_slice());
        assert_eq!(unpack(pod.clone()).unwrap(), pod);
        assert_eq!(unpack(Vec::new()).unwrap(), Vec::<u8>::new());
        // A cut compressed record is an error, not a wrong object.
        let mut cut = pack(&pod).into_owned();
        cut.truncate(cut.len() / 2);
        assert!(unpack(cut).is_err());
    }
}
