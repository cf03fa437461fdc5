//! Consensus for reddwarf: openraft's type configuration, the raft log and state machine
//! over the store's redb file, and the proposer that groups concurrent mutations into one raft
//! entry (group commit: one log fsync and one redb commit for many API writes).
//!
//! Single-node mode is a one-member raft cluster; HA adds members, not code paths.

// openraft's storage traits dictate `StorageError` as the error type; it is large by design.
#![allow(clippy::result_large_err)]

mod direct;
pub mod linearizability;
mod log_store;
mod network;
mod peer;
mod proposer;
mod state_machine;

pub use direct::{DirectProposer, Proposal, Proposer};
pub use log_store::LogStore;
pub use network::{PeerCall, PeerError, PeerTransport, Peers, Transport, PEER_PATH};
pub use peer::{ClusterStatus, MemberStatus};
pub use proposer::{Consensus, ConsensusConfig, ProposeError, Stats};
pub use state_machine::{apply_log_tail, restore_new_cluster, StateMachine};

use reddwarf_store::{Batch, Outcome};

openraft::declare_raft_types!(
    /// reddwarf's raft types: an entry carries a [`Batch`]; its response is one outcome per mutation.
    pub TypeConfig:
        D = Batch,
        R = Vec<Outcome>,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = tokio::fs::File,
);

/// The openraft instance over reddwarf's types (batches in, outcomes out).
pub type Raft = openraft::Raft<TypeConfig>;

fn storage_err(
    verb: openraft::ErrorVerb,
    subject: openraft::ErrorSubject<u64>,
    e: impl std::fmt::Display,
) -> openraft::StorageError<u64> {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())).into()
}
