use std::fmt;

/// How the API server should answer an error: upstream answers malformed patch documents with
/// 400 Bad Request and patches that cannot be applied to the object with 422 Unprocessable
/// Entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The patch document itself is malformed (400).
    BadRequest,
    /// The patch is well-formed but cannot be applied to this object (422).
    Unprocessable,
}

/// An error from patching or merging, with the JSON path where it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeError {
    /// Whether the patch is malformed (400) or does not fit the object (422).
    pub kind: ErrorKind,
    /// Dotted path of the field concerned (`spec.template.spec.containers`), empty for the root.
    pub path: String,
    /// What went wrong, as upstream words it.
    pub message: String,
}

impl MergeError {
    pub(crate) fn bad_request(path: &str, message: impl Into<String>) -> MergeError {
        MergeError {
            kind: ErrorKind::BadRequest,
            path: path.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid(path: &str, message: impl Into<String>) -> MergeError {
        MergeError {
            kind: ErrorKind::Unprocessable,
            path: path.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for MergeError {}

/// Appends a field name to a dotted path.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}
