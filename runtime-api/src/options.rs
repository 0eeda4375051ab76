//! Inputs and outputs of `create` that are not part of the container's
//! description: fds handed over for this launch only, restore settings, and
//! what the launch produced.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// Restoring a container from a checkpoint instead of creating it fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    /// The checkpoint image directory (`--restore`).
    pub image_path: PathBuf,
    /// Restore established TCP connections.
    pub tcp_established: bool,
    /// Restore file locks.
    pub file_locks: bool,
}

/// Per-launch inputs of `create`.
#[derive(Debug, Default)]
pub struct CreateOptions {
    /// Restore from a checkpoint instead of creating.
    pub restore: Option<RestoreOptions>,
    /// The fds passed through to the container, placed at 3, 4, ... in
    /// order. Their count must equal the description's `preserved_fds`.
    pub preserved_fds: Vec<OwnedFd>,
    /// Socket-activation fds (`LISTEN_FDS`); they follow the preserved ones.
    pub listen_fds: Vec<OwnedFd>,
}

/// What `create` produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatedContainer {
    /// The container's init pid.
    pub pid: i32,
    /// conmon's pid.
    pub monitor_pid: i32,
}
