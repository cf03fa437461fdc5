use serde::{Deserialize, Serialize};

/// Storage failures: I/O or corruption. These are server errors, never the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A redb call failed (I/O, transaction or table error), with its message.
    #[error("storage: {0}")]
    Redb(String),
    /// A stored record could not be decoded.
    #[error("storage: corrupt record: {0}")]
    Corrupt(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Redb(e.to_string()) }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Why one mutation of a batch was refused. Decided deterministically in apply, so every
/// replica refuses the same mutations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MutationError {
    /// A create found the key taken.
    #[error("already exists")]
    AlreadyExists,
    /// An update or delete found no object at the key.
    #[error("not found")]
    NotFound,
    /// The precondition on resourceVersion or uid did not hold.
    #[error("the object has been modified")]
    Conflict,
    /// A create named a namespace that does not exist.
    #[error("namespace {0} not found")]
    NamespaceNotFound(String),
    /// A create named a namespace that is being deleted.
    #[error("namespace {0} is being terminated")]
    NamespaceTerminating(String),
    /// The object (or the stored one it replaces) is not JSON with an object `metadata`.
    #[error("invalid stored object: {0}")]
    Invalid(String),
    /// A unique claim (e.g. an allocated IP) is held by another object.
    #[error("{0} is already allocated")]
    ClaimTaken(String),
}
