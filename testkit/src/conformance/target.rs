//! What an implementation hands the suite: its runtime, and a way to turn
//! an abstract [`Workload`] into a container description (and an exec
//! config) that runs it on that runtime.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use runtime_api::{ContainerDescription, ContainerId, ExecConfig, OciRuntime};

/// What a container's (or an exec's) process does, independent of how a
/// runtime runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Workload {
    /// Exits with the code at once.
    Exit(i32),
    /// Writes to stdout and stderr, then exits with the code.
    Print {
        /// Written to stdout.
        stdout: String,
        /// Written to stderr.
        stderr: String,
        /// The exit code.
        code: i32,
    },
    /// Runs until signalled; SIGTERM makes it exit with 143 through a
    /// handler.
    UntilSignalled,
    /// Runs until SIGKILL: SIGTERM is ignored.
    IgnoreTerm,
    /// Copies stdin to stdout and exits 0 at stdin's end.
    Cat,
    /// With a terminal: prints `"ROWS COLS"` once resized to that size,
    /// then exits 0.
    ReportSize {
        /// Rows to wait for.
        rows: u16,
        /// Columns to wait for.
        cols: u16,
    },
}

/// A container the suite asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// What it runs.
    pub workload: Workload,
    /// Whether it gets a terminal.
    pub terminal: bool,
    /// Whether its stdin stays open for attach.
    pub stdin: bool,
}

impl ContainerSpec {
    /// `workload` without terminal or stdin.
    pub fn new(workload: Workload) -> Self {
        Self {
            workload,
            terminal: false,
            stdin: false,
        }
    }
}

/// A prepared container: its description, and whatever must live as long
/// as it (temporary directories), dropped after the case.
pub struct Prepared {
    /// The container to create.
    pub description: ContainerDescription,
    /// Kept alive until the case ends.
    pub guard: Box<dyn Any + Send + Sync>,
}

/// An implementation under test.
#[async_trait]
pub trait Target: Send + Sync {
    /// The runtime under test.
    fn runtime(&self) -> Arc<dyn OciRuntime>;

    /// Prepares a container with id `id` running `spec`.
    async fn prepare(&self, id: ContainerId, spec: &ContainerSpec) -> Result<Prepared, String>;

    /// An exec configuration running `workload`.
    fn exec_config(&self, workload: &Workload) -> ExecConfig;
}
