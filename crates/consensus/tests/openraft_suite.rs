//! openraft's storage conformance suite, run against our redb log and state machine.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use reddwarf_consensus::{LogStore, StateMachine, Stats, TypeConfig};
use reddwarf_store::Store;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("state.redb")).expect("open store");
        let log = LogStore::open(store.database().clone(), Arc::new(Stats::default()))?;
        let sm = StateMachine::new(store, &dir.path().join("snapshots"))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn storage_passes_the_openraft_suite() {
    Suite::test_all(Builder).expect("openraft storage suite");
}
