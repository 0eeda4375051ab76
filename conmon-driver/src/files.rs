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
        for file in self.own_files() {
            remove_file_if_present(file)?;
        }
        match std::fs::remove_dir_all(&self.persist_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(RuntimeError::io(
                    format!("removing {}", self.persist_dir.display()),
                    e,
                ))
            }
        }
        // The run directory is the caller's: it goes only when nothing but
        // what was removed above was in it (a caller's own files keep it).
        let _ = std::fs::remove_dir(&self.run_dir);
        Ok(())
    }

    /// [`remove_all`](Self::remove_all) on tokio's blocking pool: removing
    /// a cgroup v1 hierarchy retries with sleeps inside cgroups-rs, and a
    /// directory tree may be large; neither may stall an async worker.
    pub(crate) async fn remove_all_off_thread(&self) -> Result<(), RuntimeError> {
        let layout = self.clone();
        tokio::task::spawn_blocking(move || layout.remove_all())
            .await
            .map_err(|e| {
                RuntimeError::io(
                    format!("removing the files of container {}", self.id),
                    std::io::Error::other(e.to_string()),
                )
            })?
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
    match read_small_untrusted(path) {
        Ok(None) => Ok(None),
        // podman reads a pid of 0 as "no process": nothing to signal.
        Ok(Some(text)) if text.trim() == "0" => Ok(None),
        Ok(Some(text)) => parse_pid(&text).map(Some).ok_or_else(|| {
            RuntimeError::io(
                format!("reading pidfile {}", path.display()),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("not a pid: {:?}", text.chars().take(32).collect::<String>()),
                ),
            )
        }),
        Err(e) => Err(RuntimeError::io(
            format!("reading pidfile {}", path.display()),
            e,
        )),
    }
}

/// The init process recorded once the container's start succeeded
/// ([`ContainerLayout::running_record`]); `None` when there is no record,
/// or one that cannot be read or parsed (status then asks the runtime).
pub(crate) fn read_running_record(path: &Path) -> Option<state_probe::ProcessIdentity> {
    read_small_untrusted(path).ok()??.parse().ok()
}

/// A positive decimal pid: 0 and negative values name no single process
/// (`kill` would signal a process group or every process).
fn parse_pid(text: &str) -> Option<i32> {
    text.trim().parse::<i32>().ok().filter(|pid| *pid > 0)
}

/// The most read of a pidfile: a pid is at most 11 characters; the rest
/// of a larger file is junk and makes the parse fail.
const MAX_PIDFILE: u64 = 64;

/// Reads at most [`MAX_PIDFILE`] bytes of a file a runtime or a container
/// may have replaced (see [`state_probe::open_untrusted_file`]).
fn read_small_untrusted(path: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let Some(file) = state_probe::open_untrusted_file(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(MAX_PIDFILE).read_to_end(&mut bytes)?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Creates `dir` and its parents with `mode` (applied even under a umask).
/// The mode is set through a descriptor of `dir` opened without following
/// a symlink: a link planted at `dir` is refused, never chmod-ed through.
pub(crate) fn create_dir_with_mode(dir: &Path, mode: u32) -> Result<(), RuntimeError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(dir)
        })
        .and_then(|opened| opened.set_permissions(std::fs::Permissions::from_mode(mode)))
        .map_err(|e| RuntimeError::io(format!("creating directory {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_mode_is_never_set_through_a_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create_dir_with_mode(&link, 0o700).is_err());
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755);
        let made = dir.path().join("a/b");
        create_dir_with_mode(&made, 0o711).unwrap();
        let mode = std::fs::metadata(&made).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o711);
    }

    #[test]
    fn a_pidfile_holds_one_positive_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pidfile");
        for (content, expected) in [("42", Some(42)), (" 7\n", Some(7)), ("0", None)] {
            std::fs::write(&path, content).unwrap();
            assert_eq!(read_pidfile(&path).unwrap(), expected, "{content:?}");
        }
        for junk in ["-1", "-42", "abc", "", "99999999999"] {
            std::fs::write(&path, junk).unwrap();
            assert!(read_pidfile(&path).is_err(), "{junk:?}");
        }
        assert_eq!(read_pidfile(&dir.path().join("none")).unwrap(), None);
    }

    #[test]
    fn a_pidfile_replaced_by_a_symlink_or_a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "42").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(read_pidfile(&link).is_err());
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(read_pidfile(&fifo).is_err());
        // A huge file is read only up to the cap, and is not a pid.
        let huge = dir.path().join("huge");
        std::fs::write(&huge, "1".repeat(1 << 20)).unwrap();
        assert!(read_pidfile(&huge).is_err());
    }
}
