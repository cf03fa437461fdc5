use std::io::Cursor;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StoredMembership,
};
use redb::{ReadableDatabase, TableDefinition};
use reddwarf_store::{Batch, Outcome, Store};
use serde::{Deserialize, Serialize};

use crate::{storage_err, TypeConfig};

/// The last snapshot built or installed: postcard(SnapshotRecord).
const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_snapshot");

type Membership = StoredMembership<u64, openraft::BasicNode>;

/// What raft needs to know about the state machine, written by the store in the same
/// transaction as the objects it describes.
#[derive(Default, Serialize, Deserialize)]
struct AppliedState {
    last_applied: Option<LogId<u64>>,
    membership: Membership,
}

#[derive(Serialize, Deserialize)]
struct SnapshotRecord {
    meta: SnapshotMeta<u64, openraft::BasicNode>,
    data: Vec<u8>,
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError<u64> {
    storage_err(verb, ErrorSubject::StateMachine, e)
}

/// The raft state machine: committed batches are applied to the store.
pub struct StateMachine {
    store: Store,
}

impl StateMachine {
    pub fn new(store: Store) -> Result<StateMachine, StorageError<u64>> {
        let txn = store
            .database()
            .begin_write()
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        txn.open_table(SNAPSHOT)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        txn.commit().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        Ok(StateMachine { store })
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
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let st = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let state = postcard::to_stdvec(&st).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        self.store
            .restore(&data, &state)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        save_snapshot(
            &self.store,
            &SnapshotRecord {
                meta: meta.clone(),
                data,
            },
        )
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let txn = self
            .store
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
            Some(g) => {
                let rec: SnapshotRecord =
                    postcard::from_bytes(g.value()).map_err(|e| sm_err(ErrorVerb::Read, e))?;
                Ok(Some(Snapshot {
                    meta: rec.meta,
                    snapshot: Box::new(Cursor::new(rec.data)),
                }))
            }
        }
    }
}

fn save_snapshot(store: &Store, rec: &SnapshotRecord) -> Result<(), StorageError<u64>> {
    let bytes = postcard::to_stdvec(rec).map_err(|e| sm_err(ErrorVerb::Write, e))?;
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
    txn.commit().map_err(|e| sm_err(ErrorVerb::Write, e))
}

/// Builds a snapshot from one consistent read view of the store.
pub struct SnapshotBuilder {
    store: Store,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let (state, data) = self.store.dump().map_err(|e| sm_err(ErrorVerb::Read, e))?;
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
        let rec = SnapshotRecord { meta, data };
        save_snapshot(&self.store, &rec)?;
        Ok(Snapshot {
            meta: rec.meta,
            snapshot: Box::new(Cursor::new(rec.data)),
        })
    }
}
