//! The error type shared by every fallible function of this crate.
//!
//! Each variant carries enough context (what was being done, which path,
//! which binary) for a failing test to explain itself without a debugger.

use std::io;

/// Errors returned by the bundle builder and the fake-program writers.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A filesystem or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, including the path or command involved.
        context: String,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing an OCI runtime spec (`config.json`) failed.
    #[error("OCI runtime spec: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
    /// Mounting or unmounting a filesystem failed; the errno tells why
    /// (`EPERM` without privileges, `ENODEV` without overlay support, ...).
    #[error("{context}: {source}")]
    Mount {
        /// What was being mounted or unmounted, and where.
        context: String,
        /// The error number the system call returned.
        #[source]
        source: nix::errno::Errno,
    },
    /// A binary the operation needs could not be found.
    #[error("required binary `{name}` not found")]
    MissingBinary {
        /// The name of the missing binary.
        name: String,
    },
    /// A recorded JSON document could not be parsed.
    #[error("{context}: {source}")]
    Json {
        /// What was being parsed, including the file and line involved.
        context: String,
        /// The underlying JSON error.
        #[source]
        source: serde_json::Error,
    },
}

impl TestkitError {
    /// Returns a closure that wraps an [`io::Error`] into
    /// [`TestkitError::Io`] with the given context, for use with `map_err`.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}
