//! Mapping the leaf crates' errors into [`RuntimeError`], and turning a
//! runtime's error message into the typed error podman would report.

use runtime_api::RuntimeError;
use state_probe::ProbeError;
use sync_pipe::{classify_oci_message, OciErrorKind};

/// The container's conmon is gone without having written the exit file:
/// whatever the container does from now on, nobody records it. The
/// container itself may still run (unmonitored); `kill` and `delete` still
/// reach it through the runtime. Reached through
/// [`RuntimeError::driver_error`].
///
/// ```
/// use conmon_driver::MonitorGone;
/// use runtime_api::RuntimeError;
///
/// let err = MonitorGone::new("web").into_runtime_error();
/// let gone = err.driver_error::<MonitorGone>().unwrap();
/// assert_eq!(gone.container, "web");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conmon of container {container} exited without writing an exit file; the container's exit can no longer be known")]
#[non_exhaustive]
pub struct MonitorGone {
    /// The container.
    pub container: String,
}

impl MonitorGone {
    /// The error for container `container`.
    pub fn new(container: impl Into<String>) -> Self {
        Self {
            container: container.into(),
        }
    }

    /// As a [`RuntimeError::Driver`].
    pub fn into_runtime_error(self) -> RuntimeError {
        RuntimeError::driver(format!("waiting for container {}", self.container), self)
    }
}

/// Converts a probe error, naming the operation for timeouts.
pub(crate) fn from_probe(operation: &str, err: ProbeError) -> RuntimeError {
    match err {
        ProbeError::Timeout { limit, .. } => RuntimeError::Timeout {
            operation: operation.to_string(),
            limit,
        },
        ProbeError::CommandFailed {
            command,
            status,
            stderr,
        } => RuntimeError::RuntimeFailed {
            command,
            status,
            stderr,
        },
        ProbeError::Spawn { command, source } => {
            RuntimeError::io(format!("starting `{command}`"), source)
        }
        ProbeError::Io { context, source } => RuntimeError::io(context, source),
        other => RuntimeError::RuntimeFailed {
            command: operation.to_string(),
            status: None,
            stderr: other.to_string(),
        },
    }
}

/// podman's `getOCIRuntimeError`: permission problems and missing
/// executables get their own variants (exit codes 126 and 127); anything else
/// is a failure of the runtime named `runtime`.
pub(crate) fn oci_runtime_error(runtime: &str, command: String, message: &str) -> RuntimeError {
    let message = message.trim_matches('\n').to_string();
    match classify_oci_message(&message) {
        OciErrorKind::PermissionDenied => RuntimeError::OciPermissionDenied {
            message: format!("{runtime}: {message}"),
        },
        OciErrorKind::CommandNotFound => RuntimeError::OciCommandNotFound {
            message: format!("{runtime}: {message}"),
        },
        OciErrorKind::Other => RuntimeError::RuntimeFailed {
            command,
            status: None,
            stderr: message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_messages_map_to_exit_codes() {
        let cases = [
            ("exec: \"nope\": executable file not found in $PATH", 127),
            ("open /x: no such file or directory", 127),
            ("exec /etc/passwd: permission denied", 126),
            ("operation not permitted", 126),
            ("something else broke", 125),
        ];
        for (message, code) in cases {
            let err = oci_runtime_error("runc", "runc create".into(), message);
            assert_eq!(err.exit_code(), code, "{message}: {err}");
            assert!(err.to_string().contains(message.trim()), "{err}");
        }
    }

    #[test]
    fn probe_timeouts_name_the_operation() {
        let err = from_probe(
            "runc state",
            ProbeError::Timeout {
                command: "x".into(),
                limit: std::time::Duration::from_secs(2),
            },
        );
        assert!(
            matches!(err, RuntimeError::Timeout { ref operation, .. } if operation == "runc state")
        );
    }
}
