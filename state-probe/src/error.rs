//! The one error type of this crate.
//!
//! Every failure a caller can meet while probing a runtime or a container's
//! files is a [`ProbeError`]. Each variant carries what a user needs to act on
//! it: the command line that ran, its exit status and stderr, the path that
//! was read, or the time limit that passed.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// An error from probing a runtime, a container's exit files, or a process.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// An external command could not be started at all.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The rendered command line.
        command: String,
        /// Why the operating system refused to start it.
        #[source]
        source: io::Error,
    },

    /// Something did not finish within its time limit. For commands the
    /// child was killed and reaped before this error was returned.
    #[error("timed out after {limit:?}: {command}")]
    Timeout {
        /// The rendered command line, or a description of what was awaited.
        command: String,
        /// The limit that passed.
        limit: Duration,
    },

    /// An external command ran and failed.
    #[error("`{command}` failed ({}): {}", render_status(*.status), render_stderr(.stderr))]
    CommandFailed {
        /// The rendered command line.
        command: String,
        /// The exit code, or `None` when the command was killed by a signal.
        status: Option<i32>,
        /// The command's standard error, trimmed.
        stderr: String,
    },

    /// The output of `RUNTIME state` is not the JSON object it should be.
    #[error("invalid runtime state output ({reason}); output starts with {first_bytes:?}")]
    InvalidState {
        /// The start of the output, decoded lossily.
        first_bytes: String,
        /// What the JSON parser said.
        reason: String,
    },

    /// The runtime reported a container status this crate does not know.
    #[error("unknown container status {status:?} in runtime state output")]
    UnknownStatus {
        /// The status string as the runtime printed it.
        status: String,
    },

    /// An exit file exists but does not hold a decimal exit code.
    #[error("exit file {} does not hold an exit code: {content:?}", .path.display())]
    InvalidExitFile {
        /// The file that was read.
        path: PathBuf,
        /// Its content (decoded lossily, at most a short prefix).
        content: String,
    },

    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path or pid involved.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl ProbeError {
    /// Builds an [`ProbeError::Io`] from a context message and an error.
    pub(crate) fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        ProbeError::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}

fn render_status(status: Option<i32>) -> String {
    match status {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_owned(),
    }
}

fn render_stderr(stderr: &str) -> &str {
    if stderr.is_empty() {
        "no error output"
    } else {
        stderr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_failed_names_command_status_and_stderr() {
        let e = ProbeError::CommandFailed {
            command: "runc state x".into(),
            status: Some(1),
            stderr: "boom".into(),
        };
        assert_eq!(e.to_string(), "`runc state x` failed (exit status 1): boom");
        let e = ProbeError::CommandFailed {
            command: "runc state x".into(),
            status: None,
            stderr: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "`runc state x` failed (killed by a signal): no error output"
        );
    }

    #[test]
    fn timeout_names_limit() {
        let e = ProbeError::Timeout {
            command: "sleep 1000".into(),
            limit: Duration::from_millis(200),
        };
        assert_eq!(e.to_string(), "timed out after 200ms: sleep 1000");
    }

    #[test]
    fn invalid_exit_file_names_path_and_content() {
        let e = ProbeError::InvalidExitFile {
            path: "/run/exits/abc".into(),
            content: "abc".into(),
        };
        assert_eq!(
            e.to_string(),
            "exit file /run/exits/abc does not hold an exit code: \"abc\""
        );
    }
}
