use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config, SnapshotPolicy};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use reddwarf_store::{Batch, Mutation, Outcome, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::log_store::LogStore;
use crate::network::{Network, Peers};
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
    /// Build one too once the log written since the last outgrows that snapshot and at least
    /// this many bytes.
    pub snapshot_log_bytes: u64,
    /// The member's TLS client identity for peer RPCs; `None` reaches no peer.
    pub peer_tls: Option<Arc<rustls::ClientConfig>>,
    /// This member joins an existing cluster: on first start it waits to be added instead of
    /// founding a one-member cluster of its own.
    pub join: bool,
    /// Carries peer RPCs instead of HTTP/2 (in-process tests); `None` in a server.
    pub transport: Option<crate::network::PeerTransport>,
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
            snapshot_log_bytes: 64 << 20,
            peer_tls: None,
            join: false,
            transport: None,
        }
    }
}

/// Why a proposal got no outcomes.
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum ProposeError {
    /// The proposer or raft stopped before the batch was committed.
    #[error("consensus is shutting down")]
    ShuttingDown,
    /// Raft refused the write because another node leads.
    #[error("this node is not the leader")]
    NotLeader,
    /// No leader with a majority behind it can be reached, or it did not answer in time: the
    /// write may or may not have been committed.
    #[error("{0}")]
    Unavailable(String),
    /// Any other raft failure, with its message.
    #[error("raft: {0}")]
    Raft(String),
}

impl ProposeError {
    fn copy(&self) -> ProposeError {
        match self {
            ProposeError::ShuttingDown => ProposeError::ShuttingDown,
            ProposeError::NotLeader => ProposeError::NotLeader,
            ProposeError::Unavailable(s) => ProposeError::Unavailable(s.clone()),
            ProposeError::Raft(s) => ProposeError::Raft(s.clone()),
        }
    }
}

/// How long a write may wait for its commit before the client hears 503.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a linearizable read may wait for the leader's confirmation.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A leader that has heard from no majority for this long refuses writes at once rather than
/// letting them wait for a commit that cannot come.
const QUORUM_LOST_MS: u64 = 2_000;

pub(crate) type Reply = Result<(Vec<Outcome>, u64), ProposeError>;

struct Proposal {
    mutations: Vec<Mutation>,
    /// Whether a follower may forward this proposal to the leader (not when it came from a
    /// follower already: no forwarding loops during a leader change).
    forward: bool,
    reply: oneshot::Sender<Reply>,
}

/// The running consensus module: proposes mutations and reports their outcomes once they are
/// committed and applied.
#[derive(Clone)]
pub struct Consensus {
    pub(crate) inner: Arc<Inner>,
    tx: mpsc::Sender<Proposal>,
    store: Store,
    stats: Arc<Stats>,
}

pub(crate) struct Inner {
    pub(crate) raft: Raft,
    pub(crate) peers: Arc<Peers>,
    pub(crate) id: u64,
    pub(crate) stats: Arc<Stats>,
    /// The last member id handed out by this member while leading (ids not yet in the
    /// membership must not be handed out twice).
    pub(crate) last_allocated: std::sync::Mutex<u64>,
    /// One membership change at a time: raft refuses a second while one is in progress.
    pub(crate) changing: tokio::sync::Mutex<()>,
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
    /// Proposals this member forwarded to the leader (each one RPC for a whole batch).
    pub forwarded: Counter,
    /// Bytes of raft entries appended to the log.
    pub log_bytes: Counter,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            entries: Counter::default(),
            mutations: Counter::default(),
            fsyncs: Counter::default(),
            append_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            batch_mutations: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            forwarded: Counter::default(),
            log_bytes: Counter::default(),
        }
    }
}

impl Consensus {
    /// Starts raft over `store`'s file. On first start the node initializes a one-member
    /// cluster of itself (unless it joins one); on later starts it resumes from the log.
    pub async fn start(store: Store, cfg: ConsensusConfig) -> anyhow::Result<Consensus> {
        let raft_cfg = Config {
            cluster_name: "reddwarf".into(),
            heartbeat_interval: 100,
            election_timeout_min: 500,
            election_timeout_max: 1000,
            // Snapshot chunks bound the memory a transfer takes on both sides.
            snapshot_max_chunk_size: 1 << 20,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every),
            max_in_snapshot_log_to_keep: (cfg.snapshot_every / 20).max(10),
            ..Default::default()
        };
        let raft_cfg = Arc::new(raft_cfg.validate()?);
        let stats = Arc::new(Stats::default());
        let log = LogStore::open(store.database().clone(), stats.clone())?;
        let sm = StateMachine::new(store.clone(), &cfg.snapshot_dir)?;
        let peers = Peers::new(cfg.peer_tls.clone(), cfg.transport.clone());
        let network = Network {
            peers: peers.clone(),
        };
        let raft = Raft::new(cfg.node_id, raft_cfg, network, log, sm).await?;
        let mut wait_for_self = false;
        if !raft.is_initialized().await? {
            if !cfg.join {
                let mut members = BTreeMap::new();
                members.insert(
                    cfg.node_id,
                    BasicNode {
                        addr: cfg.advertise.clone(),
                    },
                );
                raft.initialize(members).await?;
                wait_for_self = true;
            }
        } else {
            let voters: Vec<u64> = raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .collect();
            if voters == [cfg.node_id] {
                // A lone voter need not sit out an election timeout after a restart.
                let _ = raft.trigger().elect().await;
                wait_for_self = true;
            }
        }
        if wait_for_self {
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
        }
        let inner = Arc::new(Inner {
            raft,
            peers,
            id: cfg.node_id,
            stats: stats.clone(),
            last_allocated: std::sync::Mutex::new(0),
            changing: tokio::sync::Mutex::new(()),
        });
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(batcher(inner.clone(), rx, cfg.clone(), stats.clone()));
        tokio::spawn(bound_log(
            Arc::downgrade(&inner),
            stats.clone(),
            cfg.snapshot_dir.clone(),
            cfg.snapshot_log_bytes,
        ));
        Ok(Consensus {
            inner,
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
    /// transaction), in order. On a follower the batch is forwarded to the leader and the
    /// answer waits until this member has applied it too (a read here then sees it).
    pub async fn propose_all(
        &self,
        mutations: Vec<Mutation>,
    ) -> Result<Vec<Outcome>, ProposeError> {
        Ok(self.propose_indexed(mutations, true).await?.0)
    }

    pub(crate) async fn propose_indexed(&self, mutations: Vec<Mutation>, forward: bool) -> Reply {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Proposal {
                mutations,
                forward,
                reply,
            })
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
        &self.inner.raft
    }

    /// This member's raft id.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Group-commit counters since start.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Stops raft; a failure is only logged, as nothing more can be done at shutdown.
    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}

impl Inner {
    /// The leader this member knows of, with its address, and whether it is this member.
    pub(crate) fn leader(&self) -> Option<(u64, String)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())?;
        Some((id, addr))
    }

    fn no_leader() -> ProposeError {
        ProposeError::Unavailable(
            "no control-plane leader is reachable from this member (a majority of members may be down); retry".into(),
        )
    }

    /// Commits `batch` through the leader: directly when this member leads, forwarded in one
    /// RPC otherwise.
    pub(crate) async fn write(&self, batch: Batch, forward: bool) -> Reply {
        let (leader, quorum_silent, multi) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let multi = m
                .membership_config
                .membership()
                .voter_ids()
                .nth(1)
                .is_some();
            (
                m.current_leader,
                multi
                    && m.millis_since_quorum_ack
                        .is_some_and(|ms| ms > QUORUM_LOST_MS),
                multi,
            )
        };
        match leader {
            Some(l) if l == self.id => {
                if quorum_silent {
                    return Err(ProposeError::Unavailable(
                        "the leader has lost contact with a majority of control-plane members; retry".into(),
                    ));
                }
                // A copy to forward in case leadership moves meanwhile; a lone voter keeps none.
                let spare = (multi && forward).then(|| batch.clone());
                match tokio::time::timeout(WRITE_TIMEOUT, self.raft.client_write(batch)).await {
                    Err(_) => Err(ProposeError::Unavailable(format!(
                        "the write was not committed within {WRITE_TIMEOUT:?} (a majority of members may be unreachable); it may still be applied"
                    ))),
                    Ok(Ok(resp)) => Ok((resp.data, resp.log_id.index)),
                    Ok(Err(openraft::error::RaftError::APIError(
                        openraft::error::ClientWriteError::ForwardToLeader(f),
                    ))) => match (spare, f.leader_node) {
                        (Some(batch), Some(node)) => self.forward(&node.addr, batch).await,
                        _ => Err(ProposeError::NotLeader),
                    },
                    Ok(Err(e)) => Err(ProposeError::Raft(e.to_string())),
                }
            }
            Some(_) if forward => match self.leader() {
                Some((_, addr)) => self.forward(&addr, batch).await,
                None => Err(Self::no_leader()),
            },
            Some(_) => Err(ProposeError::NotLeader),
            None => Err(Self::no_leader()),
        }
    }

    async fn forward(&self, addr: &str, batch: Batch) -> Reply {
        self.stats.forwarded.inc();
        let answer: Reply = self
            .peers
            .call(addr, "forward", &batch, WRITE_TIMEOUT)
            .await
            .map_err(|e| ProposeError::Unavailable(format!("forwarding to the leader: {e}")))?;
        let (outcomes, index) = answer?;
        self.wait_applied(index, WRITE_TIMEOUT).await?;
        Ok((outcomes, index))
    }

    /// Waits until this member has applied the log up to `index`.
    pub(crate) async fn wait_applied(
        &self,
        index: u64,
        timeout: Duration,
    ) -> Result<(), ProposeError> {
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "catching up with the leader")
            .await
            .map(|_| ())
            .map_err(|e| match e {
                openraft::metrics::WaitError::ShuttingDown => ProposeError::ShuttingDown,
                other => ProposeError::Unavailable(format!(
                    "this member has not applied the leader's log up to {index}: {other}"
                )),
            })
    }
}

/// Collects whatever proposals are waiting into one raft entry. While an entry is being
/// appended (one fsync), new proposals queue up and form the next entry, so the number of
/// fsyncs grows with time, not with the number of writers.
async fn batcher(
    inner: Arc<Inner>,
    mut rx: mpsc::Receiver<Proposal>,
    cfg: ConsensusConfig,
    stats: Arc<Stats>,
) {
    let in_flight = Arc::new(Semaphore::new(cfg.max_in_flight.max(1)));
    while let Some(first) = rx.recv().await {
        // Wait for a slot before draining the queue: what arrives meanwhile joins this entry.
        let mut permit = match in_flight.clone().acquire_owned().await {
            Ok(p) => Some(p),
            Err(_) => return,
        };
        let forward = first.forward;
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
        // A forwarded proposal joins this batch only if it may be forwarded again: mixing
        // would let it loop, so proposals that must not be forwarded are committed here or
        // refused as a whole batch of their own kind.
        let (proposals, other): (Vec<Proposal>, Vec<Proposal>) =
            proposals.into_iter().partition(|p| p.forward == forward);
        for group in [proposals, other] {
            if group.is_empty() {
                continue;
            }
            let permit = match permit.take() {
                Some(p) => p,
                None => match in_flight.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let forward = group[0].forward;
            let count: usize = group.iter().map(|p| p.mutations.len()).sum();
            let mut sizes = Vec::with_capacity(group.len());
            let mut mutations = Vec::with_capacity(count);
            let mut replies = Vec::with_capacity(group.len());
            for p in group {
                sizes.push(p.mutations.len());
                mutations.extend(p.mutations);
                replies.push(p.reply);
            }
            stats.entries.inc();
            stats.mutations.inc_by(count as u64);
            stats.batch_mutations.observe(count as f64);
            let inner = inner.clone();
            tokio::spawn(async move {
                let result = inner.write(Batch(mutations), forward).await;
                drop(permit);
                match result {
                    Ok((outcomes, index)) => {
                        let mut outcomes = outcomes.into_iter();
                        for (reply, n) in replies.into_iter().zip(sizes) {
                            let mine: Vec<Outcome> = outcomes.by_ref().take(n).collect();
                            let _ = reply.send(Ok((mine, index)));
                        }
                    }
                    Err(err) => {
                        for reply in replies {
                            let _ = reply.send(Err(err.copy()));
                        }
                    }
                }
            });
        }
    }
}

/// Takes a snapshot (which lets the log before it be purged) once the log written since the
/// last one outgrows that snapshot, and at least `floor` bytes. A snapshot every
/// `snapshot_every` entries alone let the log hold 20 000 entries: creating 30 000 pods
/// (entries of ~80 KB) kept 430 MB of log in the file, deleting them gigabytes more. Bounded
/// by the snapshot's own size, the log stays under the size of the state, and each byte is
/// written at most about twice more (once in a snapshot).
async fn bound_log(
    inner: std::sync::Weak<Inner>,
    stats: Arc<Stats>,
    dir: std::path::PathBuf,
    floor: u64,
) {
    let metrics = match inner.upgrade() {
        Some(i) => i.raft.metrics(),
        None => return,
    };
    let mut last_snapshot = metrics.borrow().snapshot;
    let mut since = stats.log_bytes.get();
    let mut bound = floor.max(newest_snapshot_bytes(&dir));
    let mut asked = false;
    loop {
        // Metrics change on every commit: a look each second is enough.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let snapshot = metrics.borrow().snapshot;
        if snapshot != last_snapshot {
            last_snapshot = snapshot;
            since = stats.log_bytes.get();
            bound = floor.max(newest_snapshot_bytes(&dir));
            asked = false;
        }
        if !asked && stats.log_bytes.get().saturating_sub(since) > bound {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            // Asked once per snapshot: building one takes a while on a large store.
            asked = inner.raft.trigger().snapshot().await.is_ok();
        }
    }
}

/// The size of the newest snapshot file in `dir` (0 without one).
fn newest_snapshot_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "snap"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .max()
        .map_or(0, |(_, len)| len)
}
