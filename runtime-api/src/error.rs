//! The one error type of the runtime contract. Each variant carries what a
//! caller needs to act on it (the command line, its status, the runtime's or
//! conmon's stderr) and maps to the exit code podman's CLI would use.

use std::fmt;
use std::time::Duration;

/// Result alias for [`RuntimeError`].
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Where in conmon's launch a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorStage {
    /// Starting the conmon process itself.
    Spawn,
    /// Sending conmon the start signal.
    StartSignal,
    /// Waiting for conmon's parent process to exit after forking.
    ParentExit,
    /// Waiting for conmon's status record on the sync pipe.
    SyncRecord,
    /// Reading conmon's pidfile.
    Pidfile,
}

impl fmt::Display for MonitorStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Spawn => "spawning conmon",
            Self::StartSignal => "signalling conmon to start",
            Self::ParentExit => "waiting for conmon's parent to exit",
            Self::SyncRecord => "reading conmon's sync record",
            Self::Pidfile => "reading conmon's pidfile",
        })
    }
}

/// Everything that can go wrong while driving an OCI runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The caller passed something unusable; the message names it.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The runtime does not know the container.
    #[error("no such container: {id}")]
    NoSuchContainer {
        /// The id that was looked up.
        id: String,
    },

    /// A container with this id already exists in the runtime.
    #[error("container {id} already exists")]
    AlreadyExists {
        /// The id.
        id: String,
    },

    /// The operation needs a running container and this one is not (it
    /// exited, or was never started).
    #[error("container {id} is not running")]
    ContainerNotRunning {
        /// The container.
        id: String,
    },

    /// The runtime reported a permission problem (podman exit code 126).
    #[error("OCI permission denied: {message}")]
    OciPermissionDenied {
        /// The runtime's message.
        message: String,
    },

    /// The container's executable was not found (podman exit code 127).
    #[error("OCI runtime command not found: {message}")]
    OciCommandNotFound {
        /// The runtime's message.
        message: String,
    },

    /// An operation did not finish in time; what it started was killed.
    #[error("{operation} timed out after {limit:?}")]
    Timeout {
        /// What was being done.
        operation: String,
        /// The limit that was exceeded.
        limit: Duration,
    },

    /// A runtime command failed.
    #[error("`{command}` failed ({}){}", status_text(.status), stderr_suffix(.stderr))]
    RuntimeFailed {
        /// The command line that was run.
        command: String,
        /// Its exit code; `None` when it was killed by a signal or never ran.
        status: Option<i32>,
        /// What it wrote on stderr (or the runtime's error log message).
        stderr: String,
    },

    /// conmon failed before reporting the container as created.
    #[error("conmon failed while {stage}: {message}{}", stderr_suffix(.stderr))]
    MonitorFailed {
        /// Where in the launch it failed.
        stage: MonitorStage,
        /// What went wrong, including the runtime's error log message when
        /// there is one.
        message: String,
        /// conmon's own stderr.
        stderr: String,
    },

    /// A local I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path involved.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn status_text(status: &Option<i32>) -> String {
    match status {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_string(),
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl RuntimeError {
    /// The exit code an engine's CLI reports for this error, as podman does:
    /// 126 when the command could not be invoked (permission), 127 when it
    /// was not found, 125 for every other failure of the engine or runtime.
    ///
    /// ```
    /// use runtime_api::RuntimeError;
    /// let e = RuntimeError::OciCommandNotFound { message: "no such file".into() };
    /// assert_eq!(e.exit_code(), 127);
    /// ```
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::OciPermissionDenied { .. } => 126,
            Self::OciCommandNotFound { .. } => 127,
            _ => 125,
        }
    }

    /// Builds an [`RuntimeError::Io`] with a context string.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_podman() {
        let cases = [
            (RuntimeError::InvalidArgument("x".into()), 125),
            (RuntimeError::NoSuchContainer { id: "x".into() }, 125),
            (
                RuntimeError::OciPermissionDenied {
                    message: "m".into(),
                },
                126,
            ),
            (
                RuntimeError::OciCommandNotFound {
                    message: "m".into(),
                },
                127,
            ),
            (
                RuntimeError::Timeout {
                    operation: "create".into(),
                    limit: Duration::from_secs(1),
                },
                125,
            ),
            (RuntimeError::io("x", std::io::Error::other("y")), 125),
        ];
        for (err, code) in cases {
            assert_eq!(err.exit_code(), code, "{err}");
        }
    }

    #[test]
    fn messages_carry_command_status_and_stderr() {
        let e = RuntimeError::RuntimeFailed {
            command: "runc pause x".into(),
            status: Some(1),
            stderr: "container not running\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "`runc pause x` failed (exit status 1): container not running"
        );
        let e = RuntimeError::MonitorFailed {
            stage: MonitorStage::SyncRecord,
            message: "closed without a record".into(),
            stderr: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "conmon failed while reading conmon's sync record: closed without a record"
        );
    }
}
