//! The one error type of the runtime contract. Each variant carries what a
//! caller needs to act on it (the command line, its status, the runtime's
//! stderr, the feature it lacks) and maps to the exit code podman's CLI
//! would use. Failures particular to one driver (a monitor process, a
//! placement backend) travel as [`RuntimeError::Driver`] with the driver's
//! own typed error as their [`source`](std::error::Error::source), so a
//! caller can downcast to it with [`RuntimeError::driver_error`].

use std::time::Duration;

use crate::Feature;

/// Result alias for [`RuntimeError`].
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

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

    /// An exec session's process ran past its own limit
    /// ([`ExecConfig::timeout`](crate::ExecConfig::timeout)) and was
    /// killed: the session is over and has no exit code. Unlike
    /// [`RuntimeError::Timeout`], which says a call gave up waiting while
    /// the process may still run, nothing is left to stop.
    #[error("exec session {session} ran past its timeout of {limit:?} and was killed")]
    ExecTimedOut {
        /// The session.
        session: String,
        /// The session's limit.
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

    /// The operation needs a container that is not running (created or
    /// exited) and this one runs or is paused: stop it first.
    #[error("container {id} is running; stop it first")]
    ContainerRunning {
        /// The container.
        id: String,
    },

    /// The runtime does not offer this optional feature. The operation was
    /// not attempted; [`OciRuntime::features`](crate::OciRuntime::features)
    /// tells up front which features a runtime has.
    #[error("{operation} is not supported by this runtime (feature {feature})")]
    Unsupported {
        /// The feature the operation belongs to.
        feature: Feature,
        /// The trait method that was called (`pause`, `exec_wait`...).
        operation: &'static str,
    },

    /// A failure particular to one driver, such as its monitor process
    /// dying before it reported. The driver's typed error is the
    /// [`source`](std::error::Error::source); reach it with
    /// [`RuntimeError::driver_error`].
    #[error("{context}: {source}")]
    Driver {
        /// What was being done.
        context: String,
        /// The driver's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
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

    /// The [`RuntimeError::Unsupported`] answer for `operation` of `feature`:
    /// what the trait's default bodies return.
    ///
    /// ```
    /// use runtime_api::{Feature, RuntimeError};
    /// let e = RuntimeError::unsupported(Feature::Pause, "pause");
    /// assert!(e.is_unsupported());
    /// assert_eq!(e.to_string(), "pause is not supported by this runtime (feature pause)");
    /// ```
    pub fn unsupported(feature: Feature, operation: &'static str) -> Self {
        Self::Unsupported { feature, operation }
    }

    /// Whether this is [`RuntimeError::Unsupported`].
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Self::Unsupported { .. })
    }

    /// Wraps a driver's own error, keeping it as the source.
    pub fn driver(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Driver {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// The driver's typed error behind a [`RuntimeError::Driver`], when it
    /// is a `T`.
    ///
    /// ```
    /// use runtime_api::RuntimeError;
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("monitor died")]
    /// struct MonitorDied;
    /// let e = RuntimeError::driver("creating c1", MonitorDied);
    /// assert!(e.driver_error::<MonitorDied>().is_some());
    /// assert!(e.driver_error::<std::io::Error>().is_none());
    /// ```
    pub fn driver_error<T: std::error::Error + 'static>(&self) -> Option<&T> {
        match self {
            Self::Driver { source, .. } => source.downcast_ref::<T>(),
            _ => None,
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
            (
                RuntimeError::ExecTimedOut {
                    session: "s".into(),
                    limit: Duration::from_secs(1),
                },
                125,
            ),
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
        let e = RuntimeError::driver("creating c1", std::io::Error::other("closed"));
        assert_eq!(e.to_string(), "creating c1: closed");
        assert!(std::error::Error::source(&e).is_some());
        let e = RuntimeError::unsupported(Feature::Checkpoint, "checkpoint");
        assert_eq!(e.exit_code(), 125);
    }
}
