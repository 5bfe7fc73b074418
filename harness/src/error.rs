//! The harness library's one error type. Each variant maps onto a Kubernetes `Status` reason so
//! the API server can answer with the code kubectl expects.

use crate::object::ObjectKey;

/// Everything that can go wrong in the harness library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist (404 NotFound).
    #[error("{0} not found")]
    NotFound(ObjectKey),
    /// An object with that name exists already (409 AlreadyExists).
    #[error("{0} already exists")]
    AlreadyExists(ObjectKey),
    /// The write was based on a stale resourceVersion (409 Conflict).
    #[error(
        "operation cannot be fulfilled on {0}: the object has been modified; please apply your changes to the latest version and try again"
    )]
    Conflict(ObjectKey),
    /// The object breaks a validation rule (422 Invalid); `causes` hold `field: message` pairs.
    #[error("{key} is invalid: {}", causes.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    Invalid {
        key: ObjectKey,
        causes: Vec<(String, String)>,
    },
    /// The request itself is malformed (400 BadRequest).
    #[error("{0}")]
    BadRequest(String),
    /// A manifest could not be loaded; the message names file, document, object and field.
    #[error("{0}")]
    Manifest(String),
    /// A watch asked for history the store no longer keeps (410 Gone).
    #[error("too old resource version: {requested} (oldest kept is {oldest})")]
    Gone { requested: u64, oldest: u64 },
    /// Something about the machine: a taken port, a missing binary, a failed spawn.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The cluster is shutting down.
    #[error("the cluster is shutting down")]
    ShuttingDown,
    /// A wait ran out of time; the message says what was awaited.
    #[error("timed out after {seconds:.1}s waiting for {what}")]
    Timeout { what: String, seconds: f64 },
}

impl Error {
    /// Wraps an I/O error with a sentence saying what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A 422 with one cause.
    pub fn invalid(key: ObjectKey, field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid {
            key,
            causes: vec![(field.into(), message.into())],
        }
    }
}

/// The harness library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
