//! openraft's own storage test suite (`openraft::testing::Suite`) against reddwarf's raft log
//! and state machine over one redb file: membership recovery, vote and log persistence,
//! purge and truncation, apply, and snapshot build/install.

// openraft's storage traits dictate `StorageError` as the error type; it is large by design.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use reddwarf_consensus::{LogStore, StateMachine, Stats, TypeConfig};
use reddwarf_store::Store;

struct Fresh;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Fresh {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("state.redb")).expect("store");
        let log = LogStore::open(store.database().clone(), Arc::new(Stats::default()))?;
        let sm = StateMachine::new(store, &dir.path().join("snapshots"))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() -> Result<(), StorageError<u64>> {
    Suite::test_all(Fresh)
}
