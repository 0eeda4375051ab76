//! The crate's single error type, [`SyncPipeError`], with messages written for
//! the person who has to act on them: each variant carries the fd, the bytes,
//! the limit or the path that explains what went wrong.

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

use crate::record::MAX_RECORD_LEN;

/// Everything that can go wrong while setting up or talking over conmon's
/// sync and start pipes, or while reading the OCI runtime's error log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncPipeError {
    /// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)` failed (usually
    /// the process ran out of file descriptors).
    #[error("could not create an AF_UNIX SOCK_SEQPACKET socketpair: {0}")]
    Socket(#[source] std::io::Error),

    /// A negative number was given where a file descriptor was expected.
    #[error("{fd} is not a valid file descriptor number (it is negative)")]
    InvalidFd {
        /// The offending number.
        fd: RawFd,
    },

    /// A standard stream (0, 1 or 2) was given as the source of a placement.
    /// The child's standard streams are set up before the placements run,
    /// so such a number would name the child's stream, not the caller's fd.
    #[error(
        "fd {fd} is a standard stream: it cannot be the source of a placement (duplicate it \
         above 2 first)"
    )]
    StdioSource {
        /// The offending number.
        fd: RawFd,
    },

    /// Two placements in one [`FdPlan`](crate::FdPlan) name the same target
    /// number; only one fd can live at a number.
    #[error("fd {target} is already the target of another placement in this plan")]
    DuplicateTarget {
        /// The target number given twice.
        target: RawFd,
    },

    /// The peer closed the sync pipe before writing any record (`recv`
    /// returned 0). conmon 2.1.6 does this when the runtime fails with an
    /// empty stderr: look at the OCI runtime log and conmon's stderr.
    #[error("conmon closed the sync pipe without writing a status record")]
    Eof,

    /// A record that is not a JSON object with an integer `"data"` and an
    /// optional string `"message"`.
    #[error(
        "conmon wrote a sync record that is not JSON of the form \
         {{\"data\": <integer>, \"message\": <string>}}: \"{first_bytes}\""
    )]
    Garbage {
        /// The first 64 bytes of the record, decoded lossily and escaped.
        first_bytes: String,
    },

    /// A record longer than [`MAX_RECORD_LEN`](crate::MAX_RECORD_LEN).
    #[error(
        "conmon wrote a sync record of {len} bytes, more than the limit of {MAX_RECORD_LEN} bytes"
    )]
    Oversized {
        /// The full length of the record as written by the peer.
        len: usize,
    },

    /// No record arrived within the caller's limit.
    #[error("conmon wrote no sync record within {limit:?}")]
    Timeout {
        /// The limit that elapsed.
        limit: Duration,
    },

    /// The start byte could not be delivered because the peer end of the
    /// start pipe is closed (conmon exited or never started).
    #[error("conmon has gone: the other end of the start pipe is closed")]
    PeerGone,

    /// A system call failed; `context` says what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. "reading a record from the sync pipe".
        context: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The OCI runtime's log file exists but could not be read.
    #[error("could not read the OCI runtime log {}: {source}", path.display())]
    OciLog {
        /// The log file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl SyncPipeError {
    /// Builds an [`SyncPipeError::Io`] from a context and an error.
    pub(crate) fn io(context: &'static str, source: impl Into<std::io::Error>) -> Self {
        SyncPipeError::Io {
            context,
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_well() {
        let cases = [
            (
                SyncPipeError::Eof,
                "conmon closed the sync pipe without writing a status record",
            ),
            (
                SyncPipeError::Timeout {
                    limit: Duration::from_secs(240),
                },
                "conmon wrote no sync record within 240s",
            ),
            (
                SyncPipeError::Oversized { len: 70000 },
                "conmon wrote a sync record of 70000 bytes, more than the limit of 65536 bytes",
            ),
            (
                SyncPipeError::PeerGone,
                "conmon has gone: the other end of the start pipe is closed",
            ),
            (
                SyncPipeError::InvalidFd { fd: -1 },
                "-1 is not a valid file descriptor number (it is negative)",
            ),
            (
                SyncPipeError::DuplicateTarget { target: 3 },
                "fd 3 is already the target of another placement in this plan",
            ),
            (
                SyncPipeError::io(
                    "reading a record from the sync pipe",
                    std::io::Error::from_raw_os_error(libc::ECONNRESET),
                ),
                "reading a record from the sync pipe: Connection reset by peer (os error 104)",
            ),
            (
                SyncPipeError::OciLog {
                    path: PathBuf::from("/run/x/oci-log"),
                    source: std::io::Error::from_raw_os_error(libc::EACCES),
                },
                "could not read the OCI runtime log /run/x/oci-log: Permission denied (os error 13)",
            ),
        ];
        for (err, text) in cases {
            assert_eq!(err.to_string(), text);
        }
    }
}
