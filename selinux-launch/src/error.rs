//! The crate's single error type, [`SelinuxError`].
//!
//! Each variant carries what the person reading it needs to act: the text
//! that failed to parse and why, or the file that could not be read.

use std::path::PathBuf;

/// Everything that can go wrong while parsing SELinux labels or reading the
/// host's SELinux state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelinuxError {
    /// A string is not an SELinux context of the form
    /// `user:role:type[:level]`.
    #[error("invalid SELinux label {input:?}: {reason}")]
    InvalidLabel {
        /// The text that was parsed, as given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A file holding SELinux state (a `/proc/.../attr/...` file or
    /// `/proc/self/mountinfo`) could not be read.
    #[error("could not read {path}: {source}")]
    Read {
        /// The file that was read.
        path: PathBuf,
        /// The error from the kernel.
        #[source]
        source: std::io::Error,
    },

    /// A path given for the exec-label file contains a NUL byte and cannot
    /// be passed to `open(2)`.
    #[error("path {path:?} contains a NUL byte")]
    NulInPath {
        /// The offending path.
        path: PathBuf,
    },
}
