use std::sync::Arc;

use redb::{ReadableTable, WriteTransaction};
use serde_json::Value;

use crate::tables::{u64_from, META, META_APPLIED, META_REVISION, OBJECTS};
use crate::watch::{Event, EventType};
use crate::{Batch, Mutation, MutationError, Outcome, Revision, Store, StoreError};

/// The outcomes of applying several batches, one `Vec<Outcome>` per batch, in order.
pub struct AppliedBatch {
    /// One entry per batch, in the order the batches were given.
    pub outcomes: Vec<Vec<Outcome>>,
}

impl Store {
    /// Applies committed batches in ONE redb write transaction, together with the caller's
    /// opaque `applied_state` (raft's last applied log id), then publishes the resulting events
    /// to watchers. The commit is not fsynced: the raft log, fsynced in the same file, is the
    /// durable record, and a crash replays from the last durable `applied_state`.
    pub fn apply(
        &self,
        batches: &[&Batch],
        applied_state: &[u8],
    ) -> Result<AppliedBatch, StoreError> {
        let mut txn = self.inner.db.begin_write()?;
        txn.set_durability(redb::Durability::None)
            .map_err(|e| StoreError::Redb(e.to_string()))?;
        let mut events = Vec::new();
        let mut outcomes = Vec::with_capacity(batches.len());
        let revision;
        {
            let mut meta = txn.open_table(META)?;
            let mut rev = meta
                .get(META_REVISION)?
                .map(|v| u64_from(v.value()))
                .unwrap_or(0);
            let mut objects = txn.open_table(OBJECTS)?;
            let mut recorder = if self.inner.history {
                let time = meta
                    .get(crate::history::META_TIME)?
                    .map(|v| u64_from(v.value()) as i64)
                    .unwrap_or(0);
                Some(crate::history::Recorder::open(&txn, time)?)
            } else {
                None
            };
            for batch in batches {
                let mut out = Vec::with_capacity(batch.0.len());
                for m in &batch.0 {
                    let (m, by) = m.unattributed();
                    let result = apply_one(&mut objects, m, rev + 1);
                    match result {
                        // The disk failed, not the request: no outcome is decided, the whole
                        // transaction is dropped, and the state machine stops (a replica that
                        // cannot apply must not answer differently from the others).
                        Err(Failure::Storage(e)) => return Err(e),
                        Ok((event_type, object, prev)) => {
                            rev += 1;
                            if let Some(r) = recorder.as_mut() {
                                r.record(rev, m.key(), event_type, by, &object)?;
                            }
                            out.push(Outcome::Applied {
                                revision: rev,
                                object: object.clone(),
                            });
                            events.push(Arc::new(Event {
                                revision: rev,
                                event_type,
                                key: m.key().to_string(),
                                object: object.into(),
                                prev: prev.map(|p| self.inner.hub.share_prev(m.key(), p)),
                            }));
                        }
                        Err(Failure::Refused(e)) => out.push(Outcome::Refused(e)),
                    }
                }
                outcomes.push(out);
            }
            if let Some(time) = recorder.and_then(|r| r.finish()) {
                meta.insert(
                    crate::history::META_TIME,
                    (time as u64).to_be_bytes().as_slice(),
                )?;
            }
            meta.insert(META_REVISION, rev.to_be_bytes().as_slice())?;
            meta.insert(META_APPLIED, applied_state)?;
            revision = rev;
        }
        txn.commit()?;
        self.inner.hub.publish(events, revision);
        Ok(AppliedBatch { outcomes })
    }

    /// The caller's opaque applied state as last written by [`Store::apply`].
    pub fn applied_state(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let view = self.read()?;
        view.meta_blob(META_APPLIED)
    }

    /// Writes every object and the revision to `out` (a raft snapshot), streaming, and returns
    /// the caller's applied state read from the same consistent view. The dump ends with a
    /// marker and the object count, so that one cut anywhere is refused by restore.
    pub fn dump_to(&self, out: &mut impl std::io::Write) -> Result<Option<Vec<u8>>, StoreError> {
        let io = |e: std::io::Error| StoreError::Redb(format!("writing snapshot: {e}"));
        let view = self.read()?;
        let state = view.meta_blob(META_APPLIED)?;
        out.write_all(&DUMP_MAGIC).map_err(io)?;
        out.write_all(&END.to_be_bytes()).map_err(io)?;
        out.write_all(&view.revision().to_be_bytes()).map_err(io)?;
        let mut err = None;
        let mut count = 0u64;
        view.for_each_raw(|key, rev, obj| {
            if err.is_some() {
                return;
            }
            count += 1;
            let r = write_chunk(out, key.as_bytes())
                .and_then(|_| out.write_all(&rev.to_be_bytes()))
                .and_then(|_| write_chunk(out, obj));
            if let Err(e) = r {
                err = Some(e);
            }
        })?;
        if let Some(e) = err {
            return Err(io(e));
        }
        out.write_all(&END.to_be_bytes()).map_err(io)?;
        out.write_all(&count.to_be_bytes()).map_err(io)?;
        Ok(state)
    }

    /// [`Store::dump_to`] into memory.
    pub fn dump(&self) -> Result<(Option<Vec<u8>>, Vec<u8>), StoreError> {
        let mut out = Vec::new();
        let state = self.dump_to(&mut out)?;
        Ok((state, out))
    }

    /// Replaces all objects with a dump made by [`Store::dump_to`] (installing a raft
    /// snapshot), streaming. Watchers cannot follow such a jump: watch history restarts at the
    /// dump's revision. A truncated dump changes nothing.
    pub fn restore_from(
        &self,
        input: &mut impl std::io::Read,
        applied_state: &[u8],
    ) -> Result<(), StoreError> {
        let mut txn = self.inner.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| StoreError::Redb(e.to_string()))?;
        let mut head = [0u8; 8];
        read_exact(input, &mut head)?.ok_or_else(truncated)?;
        // A dump without the magic is one made before the end marker existed: it starts with
        // the revision, and only its clean end tells it is complete.
        let framed = head == DUMP_MAGIC;
        if framed {
            read_exact(input, &mut head)?.ok_or_else(truncated)?;
            if u64::from_be_bytes(head) != END {
                return Err(StoreError::Corrupt("snapshot dump header".into()));
            }
            read_exact(input, &mut head)?.ok_or_else(truncated)?;
        }
        let revision = u64::from_be_bytes(head);
        {
            txn.delete_table(OBJECTS)?;
            let mut objects = txn.open_table(OBJECTS)?;
            let mut count = 0u64;
            let mut ended = false;
            while let Some(key) = read_chunk(input, framed)? {
                let Chunk::Data(key) = key else {
                    let mut cb = [0u8; 8];
                    read_exact(input, &mut cb)?.ok_or_else(truncated)?;
                    if u64::from_be_bytes(cb) != count {
                        return Err(StoreError::Corrupt(format!(
                            "snapshot dump ends after {count} of {} objects",
                            u64::from_be_bytes(cb)
                        )));
                    }
                    ended = true;
                    break;
                };
                let key = String::from_utf8(key).map_err(|_| truncated())?;
                let mut rb = [0u8; 8];
                read_exact(input, &mut rb)?.ok_or_else(truncated)?;
                let Some(Chunk::Data(obj)) = read_chunk(input, false)? else {
                    return Err(truncated());
                };
                objects.insert(key.as_str(), (u64::from_be_bytes(rb), obj.as_slice()))?;
                count += 1;
            }
            // a dump cut right after an object ends cleanly too: only the marker tells
            if framed && !ended {
                return Err(truncated());
            }
            let mut extra = [0u8; 1];
            if ended && read_exact(input, &mut extra)?.is_some() {
                return Err(StoreError::Corrupt(
                    "bytes after the end of the snapshot dump".into(),
                ));
            }
            let mut meta = txn.open_table(META)?;
            meta.insert(META_REVISION, revision.to_be_bytes().as_slice())?;
            meta.insert(META_APPLIED, applied_state)?;
        }
        if self.inner.history {
            // history before the snapshot is not in it: it starts again here
            crate::history::rebase(&txn, revision)?;
        }
        txn.commit()?;
        self.inner.hub.reset(revision);
        Ok(())
    }

    /// [`Store::restore_from`] from memory.
    pub fn restore(&self, dump: &[u8], applied_state: &[u8]) -> Result<(), StoreError> {
        self.restore_from(&mut std::io::Cursor::new(dump), applied_state)
    }
}

fn truncated() -> StoreError {
    StoreError::Corrupt("snapshot dump truncated".into())
}

fn write_chunk(out: &mut impl std::io::Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(&(bytes.len() as u64).to_be_bytes())?;
    out.write_all(bytes)
}

/// Fills `buf`; Ok(None) at a clean end of input before any byte.
fn read_exact(input: &mut impl std::io::Read, buf: &mut [u8]) -> Result<Option<()>, StoreError> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(truncated()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StoreError::Redb(format!("reading snapshot: {e}"))),
        }
    }
    Ok(Some(()))
}

/// Starts a dump made with an end marker (the format before had none): chosen so that a
/// reader of that older format refuses such a dump (the `END` after it reads as a chunk too
/// long) instead of restoring garbage.
const DUMP_MAGIC: [u8; 8] = *b"rdwdump1";

/// Where a chunk length would be: the end of the objects (then their count follows), or,
/// after the magic, the header's second word.
const END: u64 = u64::MAX;

enum Chunk {
    Data(Vec<u8>),
    End,
}

/// One length-prefixed chunk, or the end marker when `end_allowed`; Ok(None) at a clean end
/// of input.
fn read_chunk(
    input: &mut impl std::io::Read,
    end_allowed: bool,
) -> Result<Option<Chunk>, StoreError> {
    let mut lb = [0u8; 8];
    if read_exact(input, &mut lb)?.is_none() {
        return Ok(None);
    }
    let len = u64::from_be_bytes(lb);
    if end_allowed && len == END {
        return Ok(Some(Chunk::End));
    }
    // A corrupt length must not allocate unbounded memory: objects are at most a few MiB.
    if len > 64 << 20 {
        return Err(StoreError::Corrupt(format!(
            "snapshot chunk of {len} bytes"
        )));
    }
    let mut buf = vec![0u8; len as usize];
    read_exact(input, &mut buf)?.ok_or_else(truncated)?;
    Ok(Some(Chunk::Data(buf)))
}

type Applied = (EventType, Vec<u8>, Option<Vec<u8>>);

/// Why a mutation was not applied: refused (the same on every replica, answered to the
/// client) or a storage failure of this replica (never a client's answer).
enum Failure {
    Refused(MutationError),
    Storage(StoreError),
}

impl From<MutationError> for Failure {
    fn from(e: MutationError) -> Self {
        Failure::Refused(e)
    }
}

fn storage(e: impl std::fmt::Display) -> Failure {
    Failure::Storage(StoreError::Redb(e.to_string()))
}

fn apply_one(
    objects: &mut redb::Table<&str, (u64, &[u8])>,
    m: &Mutation,
    next: Revision,
) -> Result<Applied, Failure> {
    let current = |objects: &redb::Table<&str, (u64, &[u8])>,
                   key: &str|
     -> Result<Option<(u64, Vec<u8>)>, Failure> {
        objects
            .get(key)
            .map_err(storage)
            .map(|o| o.map(|g| (g.value().0, g.value().1.to_vec())))
    };
    match m {
        Mutation::Attributed { inner, .. } => apply_one(objects, inner, next),
        Mutation::WithClaims {
            inner,
            claims,
            releases,
        } => {
            let owner = inner.key().to_string();
            for c in claims {
                if let Some((_, holder)) = current(objects, &claim_key(c))? {
                    if holder != owner.as_bytes() {
                        return Err(MutationError::ClaimTaken(c.clone()).into());
                    }
                }
            }
            let applied = apply_one(objects, inner, next)?;
            for r in releases {
                let k = claim_key(r);
                if current(objects, &k)?.is_some_and(|(_, holder)| holder == owner.as_bytes()) {
                    objects.remove(k.as_str()).map_err(storage)?;
                }
            }
            for c in claims {
                insert(objects, &claim_key(c), next, owner.as_bytes())?;
            }
            Ok(applied)
        }
        Mutation::Create {
            key,
            object,
            namespace,
        } => {
            if let Some(ns) = namespace {
                let ns_key = crate::ObjectKey::new("", "namespaces", "", ns);
                match current(objects, ns_key.as_str())? {
                    None => return Err(MutationError::NamespaceNotFound(ns.clone()).into()),
                    Some((_, bytes)) => {
                        if is_terminating(&bytes) {
                            return Err(MutationError::NamespaceTerminating(ns.clone()).into());
                        }
                    }
                }
            }
            if current(objects, key)?.is_some() {
                return Err(MutationError::AlreadyExists.into());
            }
            let stamped = stamp(object, next)?;
            insert(objects, key, next, &stamped)?;
            Ok((EventType::Added, stamped, None))
        }
        Mutation::Update {
            key,
            object,
            expect_revision,
            expect_uid,
        } => {
            let (rev, old) =
                current(objects, key)?.ok_or(Failure::Refused(MutationError::NotFound))?;
            check_preconditions(rev, &old, *expect_revision, expect_uid.as_deref())?;
            let stamped = stamp(object, next)?;
            insert(objects, key, next, &stamped)?;
            Ok((EventType::Modified, stamped, Some(old)))
        }
        Mutation::Delete {
            key,
            expect_revision,
            expect_uid,
        } => {
            let (rev, old) =
                current(objects, key)?.ok_or(Failure::Refused(MutationError::NotFound))?;
            check_preconditions(rev, &old, *expect_revision, expect_uid.as_deref())?;
            objects.remove(key.as_str()).map_err(storage)?;
            // Upstream reports a deleted object with the deletion's resourceVersion.
            let stamped = stamp(&old, next)?;
            Ok((EventType::Deleted, stamped, Some(old)))
        }
    }
}

/// Claims live in the objects table under a prefix no resource uses; the value is the owner's key.
pub(crate) const CLAIM_PREFIX: &str = "~claims/";

fn claim_key(claim: &str) -> String {
    format!("{CLAIM_PREFIX}{claim}")
}

fn insert(
    objects: &mut redb::Table<&str, (u64, &[u8])>,
    key: &str,
    rev: Revision,
    bytes: &[u8],
) -> Result<(), Failure> {
    objects.insert(key, (rev, bytes)).map_err(storage)?;
    Ok(())
}

fn check_preconditions(
    rev: Revision,
    old: &[u8],
    expect_revision: Option<Revision>,
    expect_uid: Option<&str>,
) -> Result<(), MutationError> {
    if let Some(want) = expect_revision {
        if want != rev {
            return Err(MutationError::Conflict);
        }
    }
    if let Some(uid) = expect_uid {
        let v: Value =
            serde_json::from_slice(old).map_err(|e| MutationError::Invalid(e.to_string()))?;
        if v.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
            return Err(MutationError::Conflict);
        }
    }
    Ok(())
}

fn is_terminating(ns_json: &[u8]) -> bool {
    serde_json::from_slice::<Value>(ns_json)
        .ok()
        // JSON null is Go's nil *Time: not being deleted
        .map(|v| {
            v.pointer("/metadata/deletionTimestamp")
                .is_some_and(|d| !d.is_null())
        })
        .unwrap_or(false)
}

/// Writes `metadata.resourceVersion` into the object. Deterministic: the same input bytes and
/// revision give the same output on every replica.
fn stamp(object: &[u8], rev: Revision) -> Result<Vec<u8>, MutationError> {
    let mut v: Value =
        serde_json::from_slice(object).map_err(|e| MutationError::Invalid(e.to_string()))?;
    let meta = v
        .as_object_mut()
        .ok_or_else(|| MutationError::Invalid("object is not a JSON object".into()))?
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let meta = meta
        .as_object_mut()
        .ok_or_else(|| MutationError::Invalid("metadata is not an object".into()))?;
    let rv = Value::String(rev.to_string());
    if meta.contains_key("resourceVersion") {
        meta.insert("resourceVersion".into(), rv);
    } else {
        // Where upstream's ObjectMeta has it: after the fields that precede it in Go's
        // struct, so canonically ordered objects stay so.
        let at = meta
            .keys()
            .rposition(|k| {
                matches!(
                    k.as_str(),
                    "name" | "generateName" | "namespace" | "selfLink" | "uid"
                )
            })
            .map_or(0, |i| i + 1);
        meta.shift_insert(at, "resourceVersion".into(), rv);
    }
    serde_json::to_vec(&v).map_err(|e| MutationError::Invalid(e.to_string()))
}

#[allow(dead_code)]
fn _assert_txn_send(_: &WriteTransaction) {}
