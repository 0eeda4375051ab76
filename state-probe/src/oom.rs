//! conmon's persist directory.
//!
//! Started with `--persist-dir D`, conmon writes `D/exit` (the exit status,
//! like the exit file in the exit directory) and, when the kernel's OOM
//! killer hit the container, an empty `D/oom`.

use std::path::Path;

use crate::error::ProbeError;
use crate::exit_file::{read_exit_file, ExitRecord};

/// True when `<persist_dir>/oom` exists: conmon writes it when the OOM
/// killer hit the container. A file that cannot be looked at (e.g. the
/// directory is not searchable) counts as absent.
pub fn oom_killed(persist_dir: &Path) -> bool {
    persist_dir.join("oom").symlink_metadata().is_ok()
}

/// Reads `<persist_dir>/exit` the same way as [`read_exit_file`].
///
/// # Errors
///
/// Those of [`read_exit_file`].
pub fn read_persisted_exit(persist_dir: &Path) -> Result<Option<ExitRecord>, ProbeError> {
    read_exit_file(&persist_dir.join("exit"))
}
