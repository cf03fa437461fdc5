use serde::{Deserialize, Serialize};

use crate::{MutationError, Revision};

/// One change proposed through consensus. Everything nondeterministic (uid, timestamps,
/// generated names) is already inside `object`; apply only checks preconditions and stamps
/// the revision as `metadata.resourceVersion`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Mutation {
    /// Create `key`; fails if it exists. When `namespace` is set, that namespace must exist and
    /// not be terminating (checked here so a create cannot race a namespace deletion).
    Create {
        key: String,
        object: Vec<u8>,
        namespace: Option<String>,
    },
    /// Replace `key`; fails if missing or if a precondition does not hold.
    Update {
        key: String,
        object: Vec<u8>,
        expect_revision: Option<Revision>,
        expect_uid: Option<String>,
    },
    /// Remove `key`; fails if missing or if a precondition does not hold.
    Delete {
        key: String,
        expect_revision: Option<Revision>,
        expect_uid: Option<String>,
    },
    /// `inner`, together with unique claims (allocated service IPs, node ports): every claim
    /// must be free or already held by `inner`'s key, and is taken only if `inner` applies;
    /// `releases` are given up (when held by that key) in the same step.
    WithClaims {
        inner: Box<Mutation>,
        claims: Vec<String>,
        releases: Vec<String>,
    },
}

impl Mutation {
    pub fn key(&self) -> &str {
        match self {
            Mutation::Create { key, .. }
            | Mutation::Update { key, .. }
            | Mutation::Delete { key, .. } => key,
            Mutation::WithClaims { inner, .. } => inner.key(),
        }
    }
}

/// The unit replicated as one raft entry: mutations from concurrent requests that share
/// one log append (group commit).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch(pub Vec<Mutation>);

/// What happened to one mutation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Written at `revision`; `object` is the stored JSON (for a delete: the last state,
    /// stamped with the deletion revision, as upstream reports it).
    Applied {
        revision: Revision,
        object: Vec<u8>,
    },
    Refused(MutationError),
}
