//! Reading and removing the files the driver and conmon keep per container
//! (their paths come from [`ContainerLayout`]). conmon's cgroupfs cgroup
//! counts among them: it is removed with the files, once conmon is gone,
//! when no other conmon is left in it.

use std::path::Path;

use runtime_api::RuntimeError;

use crate::layout::ContainerLayout;

impl ContainerLayout {
    /// Removes every file of the container the driver or conmon wrote, and
    /// conmon's cgroupfs cgroup when it is empty (a cgroup that cannot be
    /// removed is logged as a warning, not returned: the container is gone
    /// either way).
    pub(crate) fn remove_all(&self) -> Result<(), RuntimeError> {
        if let Some(path) = &self.conmon_cgroup {
            let _ = crate::launch::placement::cleanup_after_delete(&self.id, path);
            if self.default_parent {
                crate::launch::placement::remove_default_parent_if_unused();
            }
        }
        for file in [
            &self.exit_file,
            &self.oci_log,
            &self.container_pidfile,
            &self.conmon_pidfile,
        ] {
            remove_file_if_present(file)?;
        }
        match std::fs::remove_dir_all(&self.persist_dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::io(
                format!("removing {}", self.persist_dir.display()),
                e,
            )),
        }
    }
}

pub(crate) fn remove_file_if_present(path: &Path) -> Result<(), RuntimeError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io(format!("removing {}", path.display()), e)),
    }
}

/// Reads a pidfile: decimal, surrounding whitespace tolerated. `Ok(None)`
/// when the file does not exist.
pub(crate) fn read_pidfile(path: &Path) -> Result<Option<i32>, RuntimeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse::<i32>().map(Some).map_err(|_| {
            RuntimeError::io(
                format!("reading pidfile {}", path.display()),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("not a pid: {:?}", text.chars().take(32).collect::<String>()),
                ),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RuntimeError::io(
            format!("reading pidfile {}", path.display()),
            e,
        )),
    }
}

/// Creates `dir` and its parents with `mode` (applied even under a umask).
pub(crate) fn create_dir_with_mode(dir: &Path, mode: u32) -> Result<(), RuntimeError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)))
        .map_err(|e| RuntimeError::io(format!("creating directory {}", dir.display()), e))
}
