//! Waiting for files in some directories to change, without polling: one
//! inotify instance watches each directory for writes, creations, renames
//! and removals of the files in it, and its descriptor is awaited through
//! tokio's reactor. A log follower uses it to learn that its log grew or
//! was rotated, or that the container's exit file appeared.

use std::io;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;

use crate::error::ProbeError;
use crate::exit_watch::{register_inotify, InotifyFd};

/// Changes to the files of a few directories.
pub struct DirChanges {
    fd: AsyncFd<InotifyFd>,
    dirs: String,
}

impl std::fmt::Debug for DirChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirChanges")
            .field("dirs", &self.dirs)
            .finish_non_exhaustive()
    }
}

impl DirChanges {
    /// Watches `dirs` (each must exist). Changes made after this call are
    /// reported by [`changed`](Self::changed); a caller checks the files
    /// after creating the watch, so nothing between is missed.
    ///
    /// # Errors
    ///
    /// [`ProbeError::Io`] when inotify cannot be set up or a directory
    /// cannot be watched.
    pub fn new(dirs: &[&Path]) -> Result<Self, ProbeError> {
        let names = dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let context = || format!("watching {names}");
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| ProbeError::io(context(), e))?;
        for dir in dirs {
            inotify
                .add_watch(
                    *dir,
                    AddWatchFlags::IN_MODIFY
                        | AddWatchFlags::IN_CLOSE_WRITE
                        | AddWatchFlags::IN_CREATE
                        | AddWatchFlags::IN_MOVED_TO
                        | AddWatchFlags::IN_MOVED_FROM
                        | AddWatchFlags::IN_DELETE,
                )
                .map_err(|e| ProbeError::io(format!("watching {}", dir.display()), e))?;
        }
        let fd = register_inotify(InotifyFd(inotify)).map_err(|e| ProbeError::io(context(), e))?;
        Ok(Self { fd, dirs: names })
    }

    /// Waits until something changed in a watched directory since the
    /// last call (or since [`new`](Self::new)), consuming every queued
    /// event. Cancel-safe.
    ///
    /// # Errors
    ///
    /// [`ProbeError::Io`] when the inotify descriptor fails, or a watched
    /// directory was removed.
    pub async fn changed(&self) -> Result<(), ProbeError> {
        let context = || format!("watching {}", self.dirs);
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| ProbeError::io(context(), e))?;
            match guard.get_inner().0.read_events() {
                Ok(events) if events.is_empty() => guard.clear_ready(),
                Ok(events) => {
                    if events
                        .iter()
                        .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED))
                    {
                        return Err(ProbeError::io(
                            format!("a directory of {} was removed", self.dirs),
                            io::Error::from(io::ErrorKind::NotFound),
                        ));
                    }
                    return Ok(());
                }
                Err(Errno::EAGAIN) => guard.clear_ready(),
                Err(e) => return Err(ProbeError::io(context(), e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_write_in_a_watched_directory_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let changes = DirChanges::new(&[dir.path(), other.path()]).unwrap();
        std::fs::write(other.path().join("f"), "x").unwrap();
        tokio::time::timeout(Duration::from_secs(5), changes.changed())
            .await
            .expect("the write is reported")
            .unwrap();
    }
}
