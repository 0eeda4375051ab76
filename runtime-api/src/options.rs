//! Inputs and outputs of `create` that are not part of the container's
//! description: fds handed over for this launch only, restore settings, and
//! what the launch produced.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// Restoring a container from a checkpoint instead of creating it fresh.
///
/// ```
/// let mut restore = runtime_api::RestoreOptions::new("/var/lib/ckpt/web-1");
/// restore.tcp_established = true;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// The checkpoint image directory (`--restore`).
    pub image_path: PathBuf,
    /// Restore established TCP connections.
    pub tcp_established: bool,
    /// Restore file locks.
    pub file_locks: bool,
}

impl RestoreOptions {
    /// Rejects a relative image path.
    pub fn validate(&self) -> Result<(), crate::RuntimeError> {
        if !self.image_path.is_absolute() {
            return Err(crate::RuntimeError::InvalidArgument(format!(
                "restore image path {:?} must be absolute",
                self.image_path
            )));
        }
        Ok(())
    }

    /// Restores from `image_path` with every flag off.
    pub fn new(image_path: impl Into<PathBuf>) -> Self {
        Self {
            image_path: image_path.into(),
            tcp_established: false,
            file_locks: false,
        }
    }
}

/// Per-launch inputs of `create`.
///
/// ```
/// use std::os::fd::OwnedFd;
/// let (keep, _other) = std::os::unix::net::UnixStream::pair()?;
/// let mut options = runtime_api::CreateOptions::default();
/// options.preserved_fds.push(OwnedFd::from(keep));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct CreateOptions {
    /// The fds passed through to the container, placed at 3, 4, ... in
    /// order. Their count must equal the description's `preserved_fds`.
    pub preserved_fds: Vec<OwnedFd>,
    /// Socket-activation fds (`LISTEN_FDS`), placed at 3, 4, ... like
    /// preserved fds (the two cannot be combined).
    pub listen_fds: Vec<OwnedFd>,
}

impl CreateOptions {
    /// Options handing `fds` through to the container at 3, 4, ...
    pub fn with_preserved_fds(fds: Vec<OwnedFd>) -> Self {
        Self {
            preserved_fds: fds,
            ..Self::default()
        }
    }

    /// Options handing socket-activation `fds` to the container.
    pub fn with_listen_fds(fds: Vec<OwnedFd>) -> Self {
        Self {
            listen_fds: fds,
            ..Self::default()
        }
    }
}

/// What `create` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreatedContainer {
    /// The container's init pid (host pid namespace), when the runtime has
    /// one to report.
    pub pid: Option<i32>,
    /// Problems that did not stop the container (a cgroup placement or a
    /// notification that failed), as an engine would log them.
    pub warnings: Vec<String>,
}

impl CreatedContainer {
    /// A created container with init pid `pid` and no warnings.
    pub fn new(pid: Option<i32>) -> Self {
        Self {
            pid,
            warnings: Vec::new(),
        }
    }
}
