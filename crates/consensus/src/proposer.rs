use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config, SnapshotPolicy};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use reddwarf_store::{Batch, Mutation, Outcome, Store};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::log_store::LogStore;
use crate::network::Network;
use crate::state_machine::StateMachine;
use crate::Raft;

/// Settings for starting consensus.
#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    /// This node's raft id.
    pub node_id: u64,
    /// The address peers would use to reach this node (recorded in membership).
    pub advertise: String,
    /// Most mutations in one raft entry.
    pub max_batch: usize,
    /// Raft entries in flight at once; more pipelines, fewer batches more.
    pub max_in_flight: usize,
    /// Where raft snapshots are written.
    pub snapshot_dir: std::path::PathBuf,
    /// Build a snapshot (and purge the log before it) every this many log entries.
    pub snapshot_every: u64,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            node_id: 1,
            advertise: "127.0.0.1:0".into(),
            max_batch: 512,
            max_in_flight: 2,
            snapshot_dir: std::path::PathBuf::from("snapshots"),
            snapshot_every: 20_000,
        }
    }
}

/// Why a proposal got no outcomes.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// The proposer or raft stopped before the batch was committed.
    #[error("consensus is shutting down")]
    ShuttingDown,
    /// Raft refused the write because another node leads.
    #[error("this node is not the leader")]
    NotLeader,
    /// Any other raft failure, with its message.
    #[error("raft: {0}")]
    Raft(String),
}

struct Proposal {
    mutations: Vec<Mutation>,
    reply: oneshot::Sender<Result<Vec<Outcome>, ProposeError>>,
}

/// The running consensus module: proposes mutations and reports their outcomes once they are
/// committed and applied.
#[derive(Clone)]
pub struct Consensus {
    raft: Raft,
    tx: mpsc::Sender<Proposal>,
    store: Store,
    stats: Arc<Stats>,
}

/// Counters that make group commit visible.
pub struct Stats {
    /// Raft entries proposed by the batcher.
    pub entries: Counter,
    /// Mutations carried by those entries.
    pub mutations: Counter,
    /// Durable (fsynced) writes of the raft log and vote.
    pub fsyncs: Counter,
    /// Seconds per raft log append (one redb commit and fsync).
    pub append_seconds: Histogram,
    /// Mutations per raft entry: how many writes shared one append.
    pub batch_mutations: Histogram,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            entries: Counter::default(),
            mutations: Counter::default(),
            fsyncs: Counter::default(),
            append_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            batch_mutations: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
        }
    }
}

impl Consensus {
    /// Starts raft over `store`'s file. On first start the node initializes a one-member
    /// cluster of itself; on later starts it resumes from the log.
    pub async fn start(store: Store, cfg: ConsensusConfig) -> anyhow::Result<Consensus> {
        let raft_cfg = Config {
            cluster_name: "reddwarf".into(),
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every),
            max_in_snapshot_log_to_keep: (cfg.snapshot_every / 20).max(10),
            ..Default::default()
        };
        let raft_cfg = Arc::new(raft_cfg.validate()?);
        let stats = Arc::new(Stats::default());
        let log = LogStore::open(store.database().clone(), stats.clone())?;
        let sm = StateMachine::new(store.clone(), &cfg.snapshot_dir)?;
        let raft = Raft::new(cfg.node_id, raft_cfg, Network, log, sm).await?;
        if !raft.is_initialized().await? {
            let mut members = BTreeMap::new();
            members.insert(
                cfg.node_id,
                BasicNode {
                    addr: cfg.advertise.clone(),
                },
            );
            raft.initialize(members).await?;
        } else {
            // A lone voter need not sit out an election timeout after a restart.
            let _ = raft.trigger().elect().await;
        }
        let mut metrics = raft.metrics();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if metrics.borrow().current_leader == Some(cfg.node_id) {
                break;
            }
            tokio::select! {
                r = metrics.changed() => r?,
                _ = tokio::time::sleep_until(deadline) => anyhow::bail!("raft did not elect a leader within 10s"),
            }
        }
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(batcher(raft.clone(), rx, cfg.clone(), stats.clone()));
        Ok(Consensus {
            raft,
            tx,
            store,
            stats,
        })
    }

    /// Proposes one mutation; returns its outcome once committed and applied.
    pub async fn propose(&self, m: Mutation) -> Result<Outcome, ProposeError> {
        let mut v = self.propose_all(vec![m]).await?;
        v.pop()
            .ok_or_else(|| ProposeError::Raft("empty response".into()))
    }

    /// Proposes mutations that must land in the same raft entry (and so the same apply
    /// transaction), in order.
    pub async fn propose_all(
        &self,
        mutations: Vec<Mutation>,
    ) -> Result<Vec<Outcome>, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Proposal { mutations, reply })
            .await
            .map_err(|_| ProposeError::ShuttingDown)?;
        rx.await.map_err(|_| ProposeError::ShuttingDown)?
    }

    /// The store the committed batches are applied to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The raft instance (membership, metrics, linearizable reads).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Group-commit counters since start.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Stops raft; a failure is only logged, as nothing more can be done at shutdown.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}

/// Collects whatever proposals are waiting into one raft entry. While an entry is being
/// appended (one fsync), new proposals queue up and form the next entry, so the number of
/// fsyncs grows with time, not with the number of writers.
async fn batcher(
    raft: Raft,
    mut rx: mpsc::Receiver<Proposal>,
    cfg: ConsensusConfig,
    stats: Arc<Stats>,
) {
    let in_flight = Arc::new(Semaphore::new(cfg.max_in_flight.max(1)));
    while let Some(first) = rx.recv().await {
        let permit = match in_flight.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return,
        };
        let mut proposals = vec![first];
        let mut count = proposals[0].mutations.len();
        while count < cfg.max_batch {
            match rx.try_recv() {
                Ok(p) => {
                    count += p.mutations.len();
                    proposals.push(p);
                }
                Err(_) => break,
            }
        }
        let mut sizes = Vec::with_capacity(proposals.len());
        let mut mutations = Vec::with_capacity(count);
        let mut replies = Vec::with_capacity(proposals.len());
        for p in proposals {
            sizes.push(p.mutations.len());
            mutations.extend(p.mutations);
            replies.push(p.reply);
        }
        stats.entries.inc();
        stats.mutations.inc_by(count as u64);
        stats.batch_mutations.observe(count as f64);
        let raft = raft.clone();
        tokio::spawn(async move {
            let result = raft.client_write(Batch(mutations)).await;
            drop(permit);
            match result {
                Ok(resp) => {
                    let mut outcomes = resp.data.into_iter();
                    for (reply, n) in replies.into_iter().zip(sizes) {
                        let mine: Vec<Outcome> = outcomes.by_ref().take(n).collect();
                        let _ = reply.send(Ok(mine));
                    }
                }
                Err(e) => {
                    let err = match e {
                        openraft::error::RaftError::APIError(
                            openraft::error::ClientWriteError::ForwardToLeader(_),
                        ) => ProposeError::NotLeader,
                        other => ProposeError::Raft(other.to_string()),
                    };
                    for reply in replies {
                        let _ = reply.send(Err(match &err {
                            ProposeError::NotLeader => ProposeError::NotLeader,
                            ProposeError::ShuttingDown => ProposeError::ShuttingDown,
                            ProposeError::Raft(s) => ProposeError::Raft(s.clone()),
                        }));
                    }
                }
            }
        });
    }
}
