//! The server's one error type, [`CriError`], and how each kind reaches the
//! kubelet as a gRPC status code.

use runtime_api::RuntimeError;
use tonic::{Code, Status};

use crate::images::ImageError;

/// Result alias for [`CriError`].
pub type Result<T, E = CriError> = std::result::Result<T, E>;

/// Everything a CRI call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CriError {
    /// The request is malformed; the message names the field.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A pod sandbox, container or image the request names does not exist.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// What was looked up (`pod sandbox`, `container`, `image`).
        kind: &'static str,
        /// The id or name asked for.
        id: String,
    },

    /// A name (pod or container metadata) is already taken.
    #[error("name {name:?} is already reserved for {kind} {id}")]
    NameReserved {
        /// The reserved name.
        name: String,
        /// What holds it.
        kind: &'static str,
        /// The id holding it.
        id: String,
    },

    /// The call is valid but the object is not in a state that allows it.
    #[error("{0}")]
    FailedPrecondition(String),

    /// The call, or the part of it asked for, is not implemented by this
    /// server or not offered by the pod's runtime.
    #[error("{0}")]
    Unimplemented(String),

    /// A bounded call ran out of time.
    #[error("{0}")]
    DeadlineExceeded(String),

    /// The runtime cannot checkpoint on this host (CRIU is missing or
    /// cannot run); the container is untouched.
    #[error("container {id} cannot be checkpointed on this host: {detail}")]
    CheckpointUnavailable {
        /// The container.
        id: String,
        /// The runtime's command and what it said.
        detail: String,
    },

    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),

    /// The image store failed.
    #[error(transparent)]
    Image(#[from] ImageError),

    /// The gRPC transport failed.
    #[error("serving gRPC: {0}")]
    Transport(#[source] tonic::transport::Error),

    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl CriError {
    /// A closure wrapping an I/O error with `context`, for `map_err`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    /// The gRPC code this error is answered with.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::NameReserved { .. } => Code::AlreadyExists,
            Self::FailedPrecondition(_) | Self::CheckpointUnavailable { .. } => {
                Code::FailedPrecondition
            }
            Self::Unimplemented(_) => Code::Unimplemented,
            Self::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Self::Runtime(e) => runtime_code(e),
            Self::Image(e) => e.code(),
            Self::Io { .. } | Self::Transport(_) => Code::Internal,
        }
    }
}

/// An OCI spec that could not be built, as the request's fault.
pub(crate) fn spec_error(e: oci_spec::OciSpecError) -> CriError {
    CriError::InvalidArgument(format!("building the OCI spec: {e}"))
}

/// The gRPC code of a runtime error: its kind, never its wording.
pub fn runtime_code(error: &RuntimeError) -> Code {
    match error {
        RuntimeError::InvalidArgument(_) => Code::InvalidArgument,
        RuntimeError::NoSuchContainer { .. } => Code::NotFound,
        RuntimeError::AlreadyExists { .. } => Code::AlreadyExists,
        RuntimeError::ContainerNotRunning { .. } | RuntimeError::ContainerRunning { .. } => {
            Code::FailedPrecondition
        }
        RuntimeError::Unsupported { .. } => Code::Unimplemented,
        // A call that ran out of time, and an exec its own timeout killed
        // (the kubelet reads DeadlineExceeded from ExecSync as a timed-out
        // probe).
        RuntimeError::Timeout { .. } | RuntimeError::ExecTimedOut { .. } => Code::DeadlineExceeded,
        _ => Code::Internal,
    }
}

impl From<CriError> for Status {
    fn from(error: CriError) -> Self {
        // The whole chain, so the kubelet's event shows the cause.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        Status::new(error.code(), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_api::Feature;

    #[test]
    fn kinds_map_to_grpc_codes() {
        let cases: Vec<(CriError, Code)> = vec![
            (CriError::InvalidArgument("x".into()), Code::InvalidArgument),
            (
                CriError::NotFound {
                    kind: "container",
                    id: "c".into(),
                },
                Code::NotFound,
            ),
            (
                CriError::NameReserved {
                    name: "n".into(),
                    kind: "pod sandbox",
                    id: "p".into(),
                },
                Code::AlreadyExists,
            ),
            (
                RuntimeError::unsupported(Feature::Exec, "exec").into(),
                Code::Unimplemented,
            ),
            (
                RuntimeError::NoSuchContainer { id: "c".into() }.into(),
                Code::NotFound,
            ),
            (
                RuntimeError::ContainerRunning { id: "c".into() }.into(),
                Code::FailedPrecondition,
            ),
            (
                RuntimeError::Timeout {
                    operation: "o".into(),
                    limit: std::time::Duration::from_secs(1),
                }
                .into(),
                Code::DeadlineExceeded,
            ),
            (
                RuntimeError::ExecTimedOut {
                    session: "s".into(),
                    limit: std::time::Duration::from_secs(1),
                }
                .into(),
                Code::DeadlineExceeded,
            ),
        ];
        for (error, code) in cases {
            let text = error.to_string();
            let status = Status::from(error);
            assert_eq!(status.code(), code, "{text}");
            assert!(status.message().contains(&text), "{}", status.message());
        }
    }
}
