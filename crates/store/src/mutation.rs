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
        /// The object key to create.
        key: String,
        /// The object's JSON, stamped with the revision on apply.
        object: Vec<u8>,
        /// The namespace that must exist and not be terminating, for namespaced objects.
        namespace: Option<String>,
    },
    /// Replace `key`; fails if missing or if a precondition does not hold.
    Update {
        /// The object key to replace.
        key: String,
        /// The new JSON, stamped with the revision on apply.
        object: Vec<u8>,
        /// Refuse with Conflict unless the stored object is at this revision.
        expect_revision: Option<Revision>,
        /// Refuse with Conflict unless the stored object has this uid.
        expect_uid: Option<String>,
    },
    /// Remove `key`; fails if missing or if a precondition does not hold.
    Delete {
        /// The object key to remove.
        key: String,
        /// Refuse with Conflict unless the stored object is at this revision.
        expect_revision: Option<Revision>,
        /// Refuse with Conflict unless the stored object has this uid.
        expect_uid: Option<String>,
    },
    /// `inner`, together with unique claims (allocated service IPs, node ports): every claim
    /// must be free or already held by `inner`'s key, and is taken only if `inner` applies;
    /// `releases` are given up (when held by that key) in the same step.
    WithClaims {
        /// The mutation the claims go with.
        inner: Box<Mutation>,
        /// Claim keys to take for `inner`'s object.
        claims: Vec<String>,
        /// Claim keys to give up.
        releases: Vec<String>,
    },
    /// `inner`, with who made the change and how, for the history. Last among the variants
    /// so that raft logs written before it existed still decode.
    Attributed {
        /// The mutation itself.
        inner: Box<Mutation>,
        /// The request that made it.
        by: Attribution,
    },
}

/// Who made a change, as the history records it. The API server fills it in; the time
/// comes from the node that took the request and is made monotonic on apply, so every
/// replica records the same.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// create, update, patch, apply or delete.
    pub verb: String,
    /// The authenticated user name.
    pub user: String,
    /// The client's User-Agent header.
    pub user_agent: String,
    /// Milliseconds since the Unix epoch when the request was taken.
    pub time_ms: i64,
}

impl Mutation {
    /// The object key the mutation writes (for `WithClaims`, its inner mutation's key).
    pub fn key(&self) -> &str {
        match self {
            Mutation::Create { key, .. }
            | Mutation::Update { key, .. }
            | Mutation::Delete { key, .. } => key,
            Mutation::WithClaims { inner, .. } | Mutation::Attributed { inner, .. } => inner.key(),
        }
    }

    /// The mutation without its attribution, and the attribution if it has one.
    pub fn unattributed(&self) -> (&Mutation, Option<&Attribution>) {
        match self {
            Mutation::Attributed { inner, by } => (inner, Some(by)),
            m => (m, None),
        }
    }

    /// Wraps the mutation with who made it.
    pub fn attributed(self, by: Attribution) -> Mutation {
        Mutation::Attributed {
            inner: Box::new(self),
            by,
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
        /// The revision the mutation was committed at.
        revision: Revision,
        /// The stored JSON after the change.
        object: Vec<u8>,
    },
    /// Not applied, and why; the rest of the batch still applies.
    Refused(MutationError),
}
