use std::path::{Path, PathBuf};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StoredMembership,
};
use redb::{ReadableDatabase, TableDefinition};
use reddwarf_store::{Batch, Outcome, Store};
use serde::{Deserialize, Serialize};

use crate::{storage_err, TypeConfig};

/// The meta of the last snapshot built or installed (postcard); its data is a file in the
/// snapshot directory named after the snapshot id.
const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_snapshot");

type Membership = StoredMembership<u64, openraft::BasicNode>;

/// What raft needs to know about the state machine, written by the store in the same
/// transaction as the objects it describes.
#[derive(Default, Serialize, Deserialize)]
struct AppliedState {
    last_applied: Option<LogId<u64>>,
    membership: Membership,
}

type Meta = SnapshotMeta<u64, openraft::BasicNode>;

/// Fills an empty `store` from a dump (`reddwarf snapshot save`) as the start of a new
/// cluster: the objects and their revisions, and no raft history (no applied entry, no
/// membership), so the next start initializes a one-member cluster over them.
pub fn restore_new_cluster(store: &Store, dump: &mut impl std::io::Read) -> anyhow::Result<()> {
    let fresh = postcard::to_allocvec(&AppliedState::default())?;
    store.restore_from(dump, &fresh)?;
    Ok(())
}

/// Applies every entry this member holds in its raft log beyond what it has applied, whether
/// or not it learned of its commit: for `--force-new-cluster`, where the majority that could
/// say is gone. An entry the old leader acknowledged reached a majority, so the survivors that
/// hold it keep it; one that was never acknowledged may take effect, as a timed-out write may.
/// Returns how many entries were applied.
pub fn apply_log_tail(store: &Store) -> anyhow::Result<usize> {
    let mut st: AppliedState = match store.applied_state()? {
        None => AppliedState::default(),
        Some(b) => postcard::from_bytes(&b)?,
    };
    let from = st.last_applied.map(|l| l.index + 1).unwrap_or(0);
    let entries: Vec<Entry<TypeConfig>> = {
        let txn = store.database().begin_read()?;
        let table = match txn.open_table(crate::log_store::LOG) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for item in table.range(from..)? {
            let (_, v) = item?;
            out.push(postcard::from_bytes(v.value())?);
        }
        out
    };
    if entries.is_empty() {
        return Ok(0);
    }
    let mut batches = Vec::new();
    for e in &entries {
        st.last_applied = Some(e.log_id);
        match &e.payload {
            EntryPayload::Normal(b) => batches.push(b),
            EntryPayload::Membership(m) => {
                st.membership = StoredMembership::new(Some(e.log_id), m.clone())
            }
            EntryPayload::Blank => {}
        }
    }
    let state = postcard::to_stdvec(&st)?;
    store.apply(&batches, &state)?;
    Ok(entries.len())
}

fn snapshot_file(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.snap"))
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError<u64> {
    storage_err(verb, ErrorSubject::StateMachine, e)
}

/// The raft state machine: committed batches are applied to the store. Snapshots are streamed
/// to files in `dir`, so building one costs disk, not memory.
pub struct StateMachine {
    store: Store,
    dir: PathBuf,
}

impl StateMachine {
    /// A state machine applying to `store`, writing snapshots under `dir` (created if missing).
    pub fn new(store: Store, dir: &Path) -> Result<StateMachine, StorageError<u64>> {
        std::fs::create_dir_all(dir).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let txn = store
            .database()
            .begin_write()
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        txn.open_table(SNAPSHOT)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        txn.commit().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        Ok(StateMachine {
            store,
            dir: dir.to_path_buf(),
        })
    }

    fn applied(&self) -> Result<AppliedState, StorageError<u64>> {
        match self
            .store
            .applied_state()
            .map_err(|e| sm_err(ErrorVerb::Read, e))?
        {
            None => Ok(AppliedState::default()),
            Some(bytes) => postcard::from_bytes(&bytes).map_err(|e| sm_err(ErrorVerb::Read, e)),
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, Membership), StorageError<u64>> {
        let st = self.applied()?;
        Ok((st.last_applied, st.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Outcome>>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut st = self.applied()?;
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let mut batches: Vec<&Batch> = Vec::new();
        // Which entries carry a batch; the others (blank, membership) answer with no outcomes.
        let mut carries = Vec::with_capacity(entries.len());
        for e in &entries {
            st.last_applied = Some(e.log_id);
            match &e.payload {
                EntryPayload::Normal(b) => {
                    batches.push(b);
                    carries.push(true);
                }
                EntryPayload::Membership(m) => {
                    st.membership = StoredMembership::new(Some(e.log_id), m.clone());
                    carries.push(false);
                }
                EntryPayload::Blank => carries.push(false),
            }
        }
        let state = postcard::to_stdvec(&st).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let applied = self
            .store
            .apply(&batches, &state)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let mut outcomes = applied.outcomes.into_iter();
        Ok(carries
            .into_iter()
            .map(|c| {
                if c {
                    outcomes.next().unwrap_or_default()
                } else {
                    Vec::new()
                }
            })
            .collect())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
            dir: self.dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<tokio::fs::File>, StorageError<u64>> {
        let path = self
            .dir
            .join(format!("receiving-{}.snap", std::process::id()));
        let f = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        Ok(Box::new(f))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<u64>> {
        use tokio::io::AsyncSeekExt;
        let mut file = *snapshot;
        file.seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let file = file.into_std().await;
        let st = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let state = postcard::to_stdvec(&st).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let store = self.store.clone();
        let copy = file.try_clone().map_err(|e| sm_err(ErrorVerb::Read, e))?;
        tokio::task::spawn_blocking(move || {
            let mut r = std::io::BufReader::new(copy);
            store.restore_from(&mut r, &state)
        })
        .await
        .map_err(|e| sm_err(ErrorVerb::Write, e))?
        .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        // Keep the installed data as this node's current snapshot.
        let path = snapshot_file(&self.dir, &meta.snapshot_id);
        let mut src = file;
        let mut dst = std::fs::File::create(&path).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        std::io::Seek::seek(&mut src, std::io::SeekFrom::Start(0))
            .map_err(|e| sm_err(ErrorVerb::Read, e))?;
        std::io::copy(&mut src, &mut dst).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        dst.sync_all().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        tracing::info!(
            "installed a snapshot up to log index {} (revision {})",
            meta.last_log_id.map(|l| l.index).unwrap_or(0),
            self.store.revision()
        );
        save_meta(&self.store, &self.dir, meta)
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let Some(meta) = load_meta(&self.store)? else {
            return Ok(None);
        };
        // Opening the file is cheap: openraft reads the data only to send it to a follower.
        match tokio::fs::File::open(snapshot_file(&self.dir, &meta.snapshot_id)).await {
            Ok(f) => Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(f),
            })),
            // The file is gone (data dir copied without it): openraft rebuilds one.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(sm_err(ErrorVerb::Read, e)),
        }
    }
}

fn load_meta(store: &Store) -> Result<Option<Meta>, StorageError<u64>> {
    let txn = store
        .database()
        .begin_read()
        .map_err(|e| sm_err(ErrorVerb::Read, e))?;
    let table = txn
        .open_table(SNAPSHOT)
        .map_err(|e| sm_err(ErrorVerb::Read, e))?;
    let rec = table
        .get("current")
        .map_err(|e| sm_err(ErrorVerb::Read, e))?;
    match rec {
        None => Ok(None),
        Some(g) => postcard::from_bytes(g.value())
            .map(Some)
            .map_err(|e| sm_err(ErrorVerb::Read, e)),
    }
}

/// Records `meta` as the current snapshot and removes older snapshot files.
fn save_meta(store: &Store, dir: &Path, meta: &Meta) -> Result<(), StorageError<u64>> {
    let bytes = postcard::to_stdvec(meta).map_err(|e| sm_err(ErrorVerb::Write, e))?;
    let txn = store
        .database()
        .begin_write()
        .map_err(|e| sm_err(ErrorVerb::Write, e))?;
    {
        let mut table = txn
            .open_table(SNAPSHOT)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        table
            .insert("current", bytes.as_slice())
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
    }
    txn.commit().map_err(|e| sm_err(ErrorVerb::Write, e))?;
    let keep = format!("{}.snap", meta.snapshot_id);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".snap") && name != keep && !name.starts_with("receiving-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// Builds a snapshot from one consistent read view of the store, streamed to a file.
pub struct SnapshotBuilder {
    store: Store,
    dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let store = self.store.clone();
        let tmp = self
            .dir
            .join(format!("building-{}.tmp", std::process::id()));
        let tmp2 = tmp.clone();
        // Reading the whole store is blocking work: keep it off the async workers.
        let state =
            tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>, StorageError<u64>> {
                let f = std::fs::File::create(&tmp2).map_err(|e| sm_err(ErrorVerb::Write, e))?;
                let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
                let state = store
                    .dump_to(&mut w)
                    .map_err(|e| sm_err(ErrorVerb::Read, e))?;
                let f = w
                    .into_inner()
                    .map_err(|e| sm_err(ErrorVerb::Write, e.error().to_string()))?;
                f.sync_all().map_err(|e| sm_err(ErrorVerb::Write, e))?;
                Ok(state)
            })
            .await
            .map_err(|e| sm_err(ErrorVerb::Write, e))??;
        let st: AppliedState = match state {
            None => AppliedState::default(),
            Some(b) => postcard::from_bytes(&b).map_err(|e| sm_err(ErrorVerb::Read, e))?,
        };
        let snapshot_id = match st.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: st.last_applied,
            last_membership: st.membership,
            snapshot_id,
        };
        let path = snapshot_file(&self.dir, &meta.snapshot_id);
        std::fs::rename(&tmp, &path).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        save_meta(&self.store, &self.dir, &meta)?;
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| sm_err(ErrorVerb::Read, e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(f),
        })
    }
}
