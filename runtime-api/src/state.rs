//! What a driver reports about a container: its [`ContainerStatus`] and the
//! details in [`ContainerState`] (pids, exit code, times, OOM).

use std::fmt;
use std::time::SystemTime;

/// The lifecycle phase of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerStatus {
    /// Created by the runtime, its process not yet started.
    Created,
    /// Its process runs.
    Running,
    /// Frozen.
    Paused,
    /// The runtime says stopped, but no exit code was recorded yet.
    Stopped,
    /// Its process exited and the exit code is known.
    Exited,
}

impl fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::Exited => "exited",
        })
    }
}

/// A snapshot of a container's state.
///
/// ```
/// use runtime_api::{ContainerState, ContainerStatus};
/// let mut state = ContainerState::new(ContainerStatus::Exited);
/// state.exit_code = Some(3);
/// assert_eq!(state.to_string(), "exited (3)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContainerState {
    /// The lifecycle phase.
    pub status: ContainerStatus,
    /// The container's init pid, while it has one.
    pub pid: Option<i32>,
    /// The exit code once exited (128 + signal for signal deaths).
    pub exit_code: Option<i32>,
    /// When the container was started.
    pub started_at: Option<SystemTime>,
    /// When the container exited.
    pub finished_at: Option<SystemTime>,
    /// Whether the OOM killer hit the container.
    pub oom_killed: bool,
}

impl ContainerState {
    /// A state in phase `status` with nothing else known.
    pub fn new(status: ContainerStatus) -> Self {
        Self {
            status,
            pid: None,
            exit_code: None,
            started_at: None,
            finished_at: None,
            oom_killed: false,
        }
    }

    /// Whether the container's process runs (running or paused).
    pub fn is_running(&self) -> bool {
        matches!(
            self.status,
            ContainerStatus::Running | ContainerStatus::Paused
        )
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.exit_code {
            Some(code) => write!(f, "{} ({code})", self.status),
            None => write!(f, "{}", self.status),
        }
    }
}
