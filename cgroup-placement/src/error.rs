//! The single error type of this crate, [`PlacementError`].
//!
//! Each variant names what was being done (the cgroup path and hierarchy
//! directory, the D-Bus method and unit, the systemd job and its result) so
//! that the message alone tells an operator what to look at.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while putting conmon into a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// The cgroup path given to the cgroupfs functions is not usable.
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given by the caller.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The host has no cgroup hierarchy mounted at all.
    #[error("no cgroup hierarchy is mounted on this host")]
    NoHierarchy,

    /// A cgroups-rs operation (create, add the pid, delete) failed.
    #[error("cgroupfs: {operation} for cgroup {path}: {source}")]
    Cgroup {
        /// What was being done, e.g. `"creating the cgroup"`.
        operation: &'static str,
        /// The cgroup path (relative to each hierarchy root).
        path: String,
        /// The error reported by cgroups-rs.
        #[source]
        source: cgroups_rs::fs::error::Error,
    },

    /// A direct filesystem operation on a cgroup directory failed.
    #[error("cgroupfs: {operation} {}: {source}", directory.display())]
    Io {
        /// What was being done, e.g. `"writing cgroup.procs in"`.
        operation: &'static str,
        /// The directory (or file) involved.
        directory: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// [`remove_cgroupfs`](crate::remove_cgroupfs) found processes still in
    /// the cgroup.
    #[error("cgroupfs: cgroup {} still has processes, not removing it", directory.display())]
    CgroupBusy {
        /// The first directory found non-empty.
        directory: PathBuf,
    },

    /// Connecting to the bus or talking to the systemd manager failed.
    #[error("D-Bus: {operation}: {source}")]
    Bus {
        /// What was being done, including the method and unit involved.
        operation: String,
        /// The error reported by zbus (a D-Bus error reply carries its name
        /// and message); boxed to keep the enum small.
        #[source]
        source: Box<zbus::Error>,
    },

    /// A D-Bus call or the wait for a systemd job did not finish in time.
    #[error("D-Bus: {operation}: timed out after {limit:?}")]
    Timeout {
        /// What was being waited for.
        operation: String,
        /// The limit the caller set.
        limit: Duration,
    },

    /// systemd finished the job that starts the scope with a result other
    /// than `done`.
    #[error("systemd job {job} for unit {unit} finished with result {result:?}")]
    JobFailed {
        /// The transient unit name.
        unit: String,
        /// The job object path returned by `StartTransientUnit`.
        job: String,
        /// The job result (`failed`, `canceled`, `timeout`, `dependency`, …).
        result: String,
    },

    /// The bus connection stopped delivering `JobRemoved` signals before the
    /// job finished (the connection was closed).
    #[error("D-Bus: signal stream ended while waiting for job {job} of unit {unit}")]
    SignalStreamEnded {
        /// The transient unit name.
        unit: String,
        /// The job object path being waited for.
        job: String,
    },
}
