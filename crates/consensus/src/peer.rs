//! The serving side of the peer RPCs, membership changes, linearizable reads and the cluster
//! status. Every membership change runs on the leader; other members forward it there.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers, ServerState};
use reddwarf_store::Batch;
use serde::{Deserialize, Serialize};

use crate::proposer::{Reply, READ_TIMEOUT, WRITE_TIMEOUT};
use crate::{Consensus, ProposeError, TypeConfig};

/// A membership question or change, always answered by the leader.
#[derive(Serialize, Deserialize)]
enum Admin {
    /// Hands out an id for a member about to join.
    AllocateId,
    /// Adds a member: learner first, voter once it has caught up.
    Add { id: u64, addr: String },
    /// Removes a member (voter or learner).
    Remove { id: u64 },
    /// The leader's view of the cluster.
    Status,
}

#[derive(Serialize, Deserialize)]
enum AdminAnswer {
    Id(u64),
    Done,
    Status(ClusterStatus),
}

/// One member as the cluster status reports it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Raft id.
    pub id: u64,
    /// Address peers and clients reach it at.
    pub address: String,
    /// `voter` or `learner`.
    pub role: String,
    /// The last log index the leader knows it holds (leader's view only).
    pub matched: Option<u64>,
    /// How many entries it trails the leader's log by (leader's view only).
    pub lag: Option<u64>,
}

/// The cluster as one member (preferably the leader) sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The member that answered.
    pub answered_by: u64,
    /// The leader, if known.
    pub leader: Option<u64>,
    /// The current raft term.
    pub term: u64,
    /// The last log index.
    pub last_log_index: Option<u64>,
    /// The last applied index on the answering member.
    pub applied_index: Option<u64>,
    /// Members, by id.
    pub members: Vec<MemberStatus>,
}

fn codec_err(e: impl std::fmt::Display) -> String {
    format!("malformed peer request: {e}")
}

impl Consensus {
    /// Serves one peer RPC (`rpc` is the path after `/reddwarf/raft/`); the caller has checked
    /// that the client holds a member certificate. Returns the postcard-encoded answer.
    pub async fn serve_peer(&self, rpc: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        let raft = &self.inner.raft;
        let encoded = match rpc {
            "append" => {
                let req = postcard::from_bytes(body).map_err(codec_err)?;
                postcard::to_stdvec(&raft.append_entries(req).await)
            }
            "vote" => {
                let req = postcard::from_bytes(body).map_err(codec_err)?;
                postcard::to_stdvec(&raft.vote(req).await)
            }
            "snapshot" => {
                let req: openraft::raft::InstallSnapshotRequest<TypeConfig> =
                    postcard::from_bytes(body).map_err(codec_err)?;
                postcard::to_stdvec(&raft.install_snapshot(req).await)
            }
            "forward" => {
                let batch: Batch = postcard::from_bytes(body).map_err(codec_err)?;
                let answer: Reply = self.propose_indexed(batch.0, false).await;
                postcard::to_stdvec(&answer)
            }
            "read-index" => {
                let answer = self.read_index_here().await;
                postcard::to_stdvec(&answer)
            }
            // From a joining member, which may reach any member: forwarded to the leader.
            "admin" => {
                let op: Admin = postcard::from_bytes(body).map_err(codec_err)?;
                let answer = self.admin(op).await;
                postcard::to_stdvec(&answer)
            }
            // Forwarded by a member: run here or refuse (no second hop).
            "admin-leader" => {
                let op: Admin = postcard::from_bytes(body).map_err(codec_err)?;
                let answer = self.admin_here(op).await;
                postcard::to_stdvec(&answer)
            }
            other => return Err(format!("unknown peer RPC {other:?}")),
        };
        encoded.map_err(|e| format!("encoding the answer: {e}"))
    }

    /// Runs `op` if this member leads, or forwards it to the leader.
    async fn admin(&self, op: Admin) -> Result<AdminAnswer, ProposeError> {
        let inner = &self.inner;
        match inner.leader() {
            Some((id, _)) if id == inner.id => self.admin_here(op).await,
            Some((_, addr)) => {
                let timeout = match op {
                    // Adding waits for the new member to catch up (a snapshot may be large).
                    Admin::Add { .. } => Duration::from_secs(600),
                    _ => WRITE_TIMEOUT,
                };
                inner
                    .peers
                    .call::<_, Result<AdminAnswer, ProposeError>>(
                        &addr,
                        "admin-leader",
                        &op,
                        timeout,
                    )
                    .await
                    .map_err(|e| ProposeError::Unavailable(format!("reaching the leader: {e}")))?
            }
            None => Err(ProposeError::Unavailable(
                "no control-plane leader is known to this member; retry".into(),
            )),
        }
    }

    async fn admin_here(&self, op: Admin) -> Result<AdminAnswer, ProposeError> {
        let raft = &self.inner.raft;
        let _one_at_a_time = match op {
            Admin::Add { .. } | Admin::Remove { .. } => Some(self.inner.changing.lock().await),
            _ => None,
        };
        let (leader, membership) = {
            let m = raft.metrics();
            let m = m.borrow();
            (m.current_leader, m.membership_config.clone())
        };
        if leader != Some(self.inner.id) {
            return Err(ProposeError::NotLeader);
        }
        let raft_err = |e: openraft::error::RaftError<u64, _>| match e {
            openraft::error::RaftError::APIError(
                openraft::error::ClientWriteError::ForwardToLeader(_),
            ) => ProposeError::NotLeader,
            other => ProposeError::Raft(other.to_string()),
        };
        match op {
            Admin::AllocateId => {
                let highest = membership
                    .membership()
                    .nodes()
                    .map(|(id, _)| *id)
                    .max()
                    .unwrap_or(0);
                let mut last = self.inner.last_allocated.lock().expect("id lock");
                *last = (*last).max(highest) + 1;
                Ok(AdminAnswer::Id(*last))
            }
            Admin::Add { id, addr } => {
                let is_voter = membership.membership().voter_ids().any(|v| v == id);
                let known = membership
                    .membership()
                    .get_node(&id)
                    .map(|n| n.addr.clone());
                match known {
                    // A member back at another address: the same member, so replacing its
                    // address is safe (SetNodes), and it keeps its role.
                    Some(old) if old != addr => {
                        raft.change_membership(
                            ChangeMembers::SetNodes(BTreeMap::from([(
                                id,
                                BasicNode { addr: addr.clone() },
                            )])),
                            true,
                        )
                        .await
                        .map_err(raft_err)?;
                        tracing::info!("member {id} moved from {old} to {addr}");
                    }
                    Some(_) => {}
                    None => {
                        // Blocking: returns once the learner has caught up with the log.
                        raft.add_learner(id, BasicNode { addr: addr.clone() }, true)
                            .await
                            .map_err(raft_err)?;
                    }
                }
                if !is_voter {
                    raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                        .await
                        .map_err(raft_err)?;
                    tracing::info!("member {id} at {addr} is a voter");
                }
                Ok(AdminAnswer::Done)
            }
            Admin::Remove { id } => {
                let m = membership.membership();
                if m.get_node(&id).is_none() {
                    return Err(ProposeError::Raft(format!("no member {id}")));
                }
                let voters: BTreeSet<u64> = m.voter_ids().collect();
                if voters.contains(&id) {
                    if voters.len() == 1 {
                        return Err(ProposeError::Raft(
                            "cannot remove the last voting member".into(),
                        ));
                    }
                    raft.change_membership(
                        ChangeMembers::RemoveVoters(BTreeSet::from([id])),
                        false,
                    )
                    .await
                    .map_err(raft_err)?;
                } else {
                    raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                        .await
                        .map_err(raft_err)?;
                }
                tracing::info!("member {id} removed");
                Ok(AdminAnswer::Done)
            }
            Admin::Status => Ok(AdminAnswer::Status(self.local_status())),
        }
    }

    /// An id for a member about to join (handed out by the leader).
    pub async fn allocate_member_id(&self) -> Result<u64, ProposeError> {
        match self.admin(Admin::AllocateId).await? {
            AdminAnswer::Id(id) => Ok(id),
            _ => Err(ProposeError::Raft("unexpected answer".into())),
        }
    }

    /// Adds member `id` at `addr` as a voter once it has caught up.
    pub async fn add_member(&self, id: u64, addr: &str) -> Result<(), ProposeError> {
        self.admin(Admin::Add {
            id,
            addr: addr.to_string(),
        })
        .await
        .map(|_| ())
    }

    /// Asks the member at `seed` (any member) to add this member to the cluster.
    pub async fn join_via(&self, seed: &str, addr: &str) -> Result<(), ProposeError> {
        let op = Admin::Add {
            id: self.inner.id,
            addr: addr.to_string(),
        };
        let answer: Result<AdminAnswer, ProposeError> = self
            .inner
            .peers
            .call(seed, "admin", &op, Duration::from_secs(600))
            .await
            .map_err(|e| ProposeError::Unavailable(e.to_string()))?;
        answer.map(|_| ())
    }

    /// The address the cluster has recorded for this member, if it is in the membership.
    pub fn recorded_address(&self) -> Option<String> {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .get_node(&self.inner.id)
            .map(|n| n.addr.clone())
    }

    /// Whether this member is a voter of its cluster (founded, or added and promoted).
    pub fn is_member(&self) -> bool {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .voter_ids()
            .any(|v| v == self.inner.id)
    }

    /// Removes member `id`.
    pub async fn remove_member(&self, id: u64) -> Result<(), ProposeError> {
        self.admin(Admin::Remove { id }).await.map(|_| ())
    }

    /// The cluster status from the leader (with every member's lag), or this member's own
    /// view when no leader answers.
    pub async fn cluster_status(&self) -> ClusterStatus {
        match self.admin(Admin::Status).await {
            Ok(AdminAnswer::Status(s)) => s,
            _ => self.local_status(),
        }
    }

    fn local_status(&self) -> ClusterStatus {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let matched: BTreeMap<u64, Option<u64>> = m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
            .unwrap_or_default();
        let last = m.last_log_index;
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let matched = if *id == m.id && m.state == ServerState::Leader {
                    last
                } else {
                    matched.get(id).copied().flatten()
                };
                MemberStatus {
                    id: *id,
                    address: node.addr.clone(),
                    role: if voters.contains(id) {
                        "voter"
                    } else {
                        "learner"
                    }
                    .into(),
                    matched,
                    lag: match (m.state == ServerState::Leader, last, matched) {
                        (true, Some(l), Some(x)) => Some(l.saturating_sub(x)),
                        (true, Some(l), None) => Some(l),
                        _ => None,
                    },
                }
            })
            .collect();
        ClusterStatus {
            answered_by: m.id,
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            members,
        }
    }

    /// Waits until a read from this member's store is linearizable: the leader confirms it
    /// still leads (a heartbeat round to a majority) and names its commit index, and this
    /// member has applied up to it. A lone voter's store is always current.
    pub async fn linearize(&self) -> Result<(), ProposeError> {
        let inner = &self.inner;
        let (leader, alone) = {
            let m = inner.raft.metrics();
            let m = m.borrow();
            let ms = m.membership_config.membership();
            let alone = ms.voter_ids().eq([inner.id]) && ms.learner_ids().next().is_none();
            (m.current_leader, alone)
        };
        if alone {
            return Ok(());
        }
        let index = match inner.leader() {
            Some((id, _)) if id == inner.id && leader == Some(id) => self.read_index_here().await?,
            Some((_, addr)) => {
                let answer: Result<u64, ProposeError> = inner
                    .peers
                    .call(&addr, "read-index", &(), READ_TIMEOUT)
                    .await
                    .map_err(|e| {
                        ProposeError::Unavailable(format!("asking the leader for its read index: {e}"))
                    })?;
                answer?
            }
            None => {
                return Err(ProposeError::Unavailable(
                    "no control-plane leader is known to this member; a consistent read is not possible (resourceVersion=0 reads this member's state)".into(),
                ))
            }
        };
        inner.wait_applied(index, READ_TIMEOUT).await
    }

    async fn read_index_here(&self) -> Result<u64, ProposeError> {
        let raft = &self.inner.raft;
        match tokio::time::timeout(READ_TIMEOUT, raft.get_read_log_id()).await {
            Err(_) => Err(ProposeError::Unavailable(
                "the leader could not confirm its leadership with a majority in time".into(),
            )),
            Ok(Ok((read, _))) => Ok(read.map(|l| l.index).unwrap_or(0)),
            Ok(Err(openraft::error::RaftError::APIError(
                openraft::error::CheckIsLeaderError::ForwardToLeader(_),
            ))) => Err(ProposeError::NotLeader),
            Ok(Err(e)) => Err(ProposeError::Unavailable(e.to_string())),
        }
    }

    /// Whether this member is ready to serve: it knows a leader and has applied what it holds
    /// of the log (a member still catching up on a long log, or installing a snapshot, is
    /// not ready).
    pub fn raft_ready(&self) -> bool {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        let behind = m
            .last_log_index
            .unwrap_or(0)
            .saturating_sub(m.last_applied.map(|l| l.index).unwrap_or(0));
        m.current_leader.is_some() && m.running_state.is_ok() && behind <= READY_LAG
    }
}

/// Log entries a member may hold unapplied and still call itself ready (entries in flight
/// between append and apply).
const READY_LAG: u64 = 1_000;
