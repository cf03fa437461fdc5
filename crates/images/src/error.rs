use std::io;

/// Errors of the store's local operations (import, rootfs, removal).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such image, layer or blob in the store; the message says which.
    #[error("{0}")]
    NotFound(String),
    /// Unusable input (reference, archive, manifest or config); the message says why.
    #[error("{0}")]
    Invalid(String),
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `create <dir>`.
        context: String,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
}

/// Results of the store's local operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Why a pull failed. Messages name the reference and what the registry said, as containerd's do,
/// so they can go straight into a pod's `ErrImagePull` message.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The registry has no such repository, tag or digest.
    #[error("{0}")]
    NotFound(String),
    /// The registry refused the credentials (or wants some).
    #[error("{0}")]
    Unauthorized(String),
    /// Connection, TLS or transfer failure; worth retrying.
    #[error("{0}")]
    Network(String),
    /// The registry sent something unusable (bad digest, unsupported manifest, no matching platform).
    #[error("{0}")]
    Invalid(String),
    /// The local store failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `create <dir>`.
        context: String,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
}

impl From<Error> for PullError {
    fn from(e: Error) -> PullError {
        match e {
            Error::NotFound(m) => PullError::NotFound(m),
            Error::Invalid(m) => PullError::Invalid(m),
            Error::Io { context, source } => PullError::Io { context, source },
        }
    }
}
