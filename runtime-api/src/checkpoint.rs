//! Checkpointing a running container with CRIU through the runtime, and the
//! options podman passes for it.

use std::path::PathBuf;

use crate::RuntimeError;

/// What `checkpoint` asks of the runtime
/// (`RUNTIME checkpoint --image-path P --work-path W [...] ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointOptions {
    /// Where CRIU writes the checkpoint images.
    pub image_path: PathBuf,
    /// Where CRIU writes its logs and statistics.
    pub work_path: PathBuf,
    /// Keep the container running after the checkpoint.
    pub leave_running: bool,
    /// Checkpoint established TCP connections.
    pub tcp_established: bool,
    /// Checkpoint file locks.
    pub file_locks: bool,
    /// Only pre-dump memory (an incremental checkpoint's first step).
    pub pre_dump: bool,
    /// The directory name, beside `image_path`, of a previous pre-dump this
    /// checkpoint builds on (`--parent-path ../NAME`). Ignored with
    /// `pre_dump`.
    pub parent: Option<String>,
}

impl CheckpointOptions {
    /// Options with every flag off.
    pub fn new(image_path: impl Into<PathBuf>, work_path: impl Into<PathBuf>) -> Self {
        Self {
            image_path: image_path.into(),
            work_path: work_path.into(),
            leave_running: false,
            tcp_established: false,
            file_locks: false,
            pre_dump: false,
            parent: None,
        }
    }

    /// Rejects relative paths and a parent that is not a plain directory
    /// name.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        for (what, path) in [
            ("image path", &self.image_path),
            ("work path", &self.work_path),
        ] {
            if !path.is_absolute() {
                return Err(RuntimeError::InvalidArgument(format!(
                    "checkpoint {what} {path:?} must be absolute"
                )));
            }
        }
        if let Some(parent) = &self.parent {
            if parent.is_empty() || parent.contains('/') || parent == "." || parent == ".." {
                return Err(RuntimeError::InvalidArgument(format!(
                    "checkpoint parent {parent:?} must be a directory name beside the image path"
                )));
            }
        }
        Ok(())
    }
}
