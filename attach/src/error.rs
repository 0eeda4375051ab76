//! The crate's single error type, [`AttachError`].
//!
//! Every variant carries what a caller needs to act on it: the path that
//! could not be reached, the bad detach key, the offending header bytes, the
//! limit that ran out. Callers that map these into a wider error type (the
//! conmon driver does) can match on the variant; in particular
//! [`AttachError::SocketUnavailable`] means "the container is not running"
//! (or was never attachable).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while attaching to a container through
/// conmon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// The attach socket (or its directory) does not exist, or nobody
    /// listens on it (`ENOENT` / `ECONNREFUSED`): the container's conmon is
    /// not running.
    #[error("attach socket {} is not available (is the container running?): {source}", path.display())]
    SocketUnavailable {
        /// The socket path the caller asked for.
        path: PathBuf,
        /// The underlying `connect`/`open` error.
        source: io::Error,
    },

    /// Connecting to the attach socket failed for another reason
    /// (permissions, not a socket, ...).
    #[error("connecting to attach socket {}: {source}", path.display())]
    Connect {
        /// The socket path the caller asked for.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// The socket path cannot be turned into a `sockaddr_un` (no file name,
    /// an interior NUL byte, or still too long after the `/proc/self/fd`
    /// detour).
    #[error("invalid attach socket path {}: {reason}", path.display())]
    InvalidSocketPath {
        /// The path the caller asked for.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },

    /// A bounded operation did not finish in time.
    #[error("timed out after {limit:?} {what}")]
    Timeout {
        /// What was being waited for, e.g. `connecting to /run/x/attach`.
        what: String,
        /// The limit the caller set.
        limit: Duration,
    },

    /// A system call on an already open socket or FIFO failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `writing to the attach socket`.
        context: String,
        /// The underlying error.
        source: io::Error,
    },

    /// conmon sent a record longer than a batch receive window
    /// ([`MAX_BATCH_RECORD`](crate::MAX_BATCH_RECORD)); the record was
    /// consumed but its tail is lost. Records that come before it are
    /// delivered first, and reading can go on after it.
    #[error("attach record of {len} bytes exceeds the {limit}-byte batch receive window")]
    RecordTooLong {
        /// The full length of the record as reported by the kernel.
        len: usize,
        /// The receive window's length.
        limit: usize,
    },

    /// An item of a detach key specification is not one ASCII character nor
    /// one of the `ctrl-` names.
    #[error(
        "invalid detach key {key:?}: expected one ASCII character or one of \
         ctrl-a..ctrl-z, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_"
    )]
    InvalidDetachKey {
        /// The offending comma-separated item, verbatim (may be empty).
        key: String,
    },

    /// An 8-byte Docker multiplexed-stream header is malformed.
    #[error("invalid multiplexed frame header {header:02x?}: {reason}")]
    InvalidMuxHeader {
        /// The eight header bytes as received.
        header: [u8; 8],
        /// What is wrong with them.
        reason: &'static str,
    },

    /// The multiplexed stream ended in the middle of a frame.
    #[error(
        "multiplexed stream ended inside a frame: {buffered} bytes buffered, {expected} needed"
    )]
    TruncatedMuxFrame {
        /// Bytes left over.
        buffered: usize,
        /// Bytes the incomplete frame (header included) would need.
        expected: usize,
    },

    /// The control FIFO (`<bundle>/ctl`) does not exist: the container's
    /// conmon is gone or the bundle path is wrong.
    #[error("control FIFO {} is not available (is the container running?): {source}", path.display())]
    ControlUnavailable {
        /// The ctl path the caller gave.
        path: PathBuf,
        /// The underlying `open` error.
        source: io::Error,
    },

    /// The control path exists but is not a FIFO; nothing was written.
    #[error("{} is not a FIFO; refusing to write a control message into it", path.display())]
    NotAFifo {
        /// The ctl path the caller gave.
        path: PathBuf,
    },

    /// A control message was only partly written to the FIFO.
    #[error("short write to control FIFO {}: {written} of {len} bytes", path.display())]
    ShortWrite {
        /// The ctl path the caller gave.
        path: PathBuf,
        /// Bytes written.
        written: usize,
        /// Bytes that should have been written.
        len: usize,
    },
}

impl AttachError {
    /// Builds an [`AttachError::Io`].
    pub(crate) fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        AttachError::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}
