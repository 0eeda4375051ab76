//! The conmon driver's own failure: conmon died or misbehaved before it
//! reported the container (or exec session) as created. It reaches callers
//! as [`RuntimeError::Driver`] with a [`LaunchError`] as its source:
//!
//! ```
//! use conmon_driver::{LaunchError, LaunchStage};
//! use runtime_api::RuntimeError;
//!
//! fn stage_of(err: &RuntimeError) -> Option<LaunchStage> {
//!     err.driver_error::<LaunchError>().map(|e| e.stage)
//! }
//! let err = LaunchError::new(LaunchStage::SyncRecord, "closed", "").into_runtime_error("c1");
//! assert_eq!(stage_of(&err), Some(LaunchStage::SyncRecord));
//! ```

use std::fmt;

use runtime_api::RuntimeError;

/// Where in conmon's launch a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LaunchStage {
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

impl fmt::Display for LaunchStage {
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

/// conmon failed before reporting the container as created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conmon failed while {stage}: {message}{}", stderr_suffix(.stderr))]
#[non_exhaustive]
pub struct LaunchError {
    /// Where in the launch it failed.
    pub stage: LaunchStage,
    /// What went wrong, including the runtime's error log message when
    /// there is one.
    pub message: String,
    /// conmon's own stderr.
    pub stderr: String,
}

fn stderr_suffix(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl LaunchError {
    /// A failure at `stage`.
    pub fn new(stage: LaunchStage, message: impl Into<String>, stderr: impl Into<String>) -> Self {
        Self {
            stage,
            message: message.into(),
            stderr: stderr.into(),
        }
    }

    /// The [`RuntimeError::Driver`] carrying this failure of the launch for
    /// container `id`.
    pub fn into_runtime_error(self, id: &str) -> RuntimeError {
        RuntimeError::driver(format!("conmon of {id}"), self)
    }
}
