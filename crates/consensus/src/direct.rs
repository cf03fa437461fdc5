//! The [`Proposer`] seam: what the API server needs from the write path. [`Consensus`] is
//! the real one (raft, group commit, the fsynced log); [`DirectProposer`] applies each
//! proposal straight to the store, for tests of the layers above that want the store's
//! semantics without raft (one suite runs over both).

use std::future::Future;
use std::pin::Pin;

use reddwarf_store::{Batch, Mutation, Outcome, Store};

use crate::{Consensus, ProposeError, Raft, Stats};

/// A boxed future of a proposal's outcomes.
pub type Proposal<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProposeError>> + Send + 'a>>;

/// Orders writes and applies them to the store.
pub trait Proposer: Send + Sync + 'static {
    /// Proposes mutations that must be applied together, in order; returns their outcomes
    /// once applied.
    fn propose_all(&self, mutations: Vec<Mutation>) -> Proposal<'_, Vec<Outcome>>;

    /// Proposes one mutation.
    fn propose(&self, m: Mutation) -> Proposal<'_, Outcome> {
        Box::pin(async move {
            let mut v = self.propose_all(vec![m]).await?;
            v.pop()
                .ok_or_else(|| ProposeError::Raft("empty response".into()))
        })
    }

    /// The store the proposals are applied to.
    fn store(&self) -> &Store;

    /// Group-commit counters.
    fn stats(&self) -> &Stats;

    /// The raft member behind the proposer, if there is one (for its metrics).
    fn raft(&self) -> Option<&Raft> {
        None
    }

    /// Waits until a read of the store is linearizable (see [`Consensus::linearize`]).
    fn linearize(&self) -> Proposal<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    /// Whether this member knows a leader (the `/readyz` raft check).
    fn raft_ready(&self) -> bool {
        true
    }

    /// The cluster's members and progress, if this proposer is a raft member.
    fn cluster_status(&self) -> Proposal<'_, Option<crate::ClusterStatus>> {
        Box::pin(async { Ok(None) })
    }

    /// Removes a member from the cluster.
    fn remove_member(&self, _id: u64) -> Proposal<'_, ()> {
        Box::pin(async {
            Err(ProposeError::Raft(
                "this server is not a raft member".into(),
            ))
        })
    }
}

impl Proposer for Consensus {
    fn propose_all(&self, mutations: Vec<Mutation>) -> Proposal<'_, Vec<Outcome>> {
        Box::pin(Consensus::propose_all(self, mutations))
    }

    fn store(&self) -> &Store {
        Consensus::store(self)
    }

    fn stats(&self) -> &Stats {
        Consensus::stats(self)
    }

    fn raft(&self) -> Option<&Raft> {
        Some(Consensus::raft(self))
    }

    fn linearize(&self) -> Proposal<'_, ()> {
        Box::pin(Consensus::linearize(self))
    }

    fn raft_ready(&self) -> bool {
        Consensus::raft_ready(self)
    }

    fn cluster_status(&self) -> Proposal<'_, Option<crate::ClusterStatus>> {
        Box::pin(async { Ok(Some(Consensus::cluster_status(self).await)) })
    }

    fn remove_member(&self, id: u64) -> Proposal<'_, ()> {
        Box::pin(Consensus::remove_member(self, id))
    }
}

/// Applies every proposal at once to the store, one batch per proposal, in the order
/// proposals arrive. No log, no durability beyond the store's own commit.
pub struct DirectProposer {
    store: Store,
    stats: Stats,
    /// One apply at a time, as the raft state machine applies entries in order.
    order: std::sync::Mutex<()>,
}

impl DirectProposer {
    /// A proposer applying to `store`.
    pub fn new(store: Store) -> DirectProposer {
        DirectProposer {
            store,
            stats: Stats::default(),
            order: std::sync::Mutex::new(()),
        }
    }
}

impl Proposer for DirectProposer {
    fn propose_all(&self, mutations: Vec<Mutation>) -> Proposal<'_, Vec<Outcome>> {
        let result = (|| {
            let _ordered = self.order.lock().unwrap_or_else(|e| e.into_inner());
            self.stats.entries.inc();
            self.stats.mutations.inc_by(mutations.len() as u64);
            let batch = Batch(mutations);
            let mut applied = self
                .store
                .apply(&[&batch], b"")
                .map_err(|e| ProposeError::Raft(format!("apply: {e}")))?;
            applied
                .outcomes
                .pop()
                .ok_or_else(|| ProposeError::Raft("empty response".into()))
        })();
        Box::pin(async move { result })
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }
}
