//! Marking an fd close-on-exec. fds a caller hands over for a child (a
//! systemd socket-activation fd, a pipe made without `O_CLOEXEC`) would
//! otherwise reach every other process the caller spawns meanwhile; an
//! [`FdPlan`](crate::FdPlan) clears the flag again on the number it places
//! the fd at.

use std::os::fd::{AsFd, AsRawFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

use crate::SyncPipeError;

/// Sets `FD_CLOEXEC` on `fd`.
///
/// ```
/// use std::os::fd::AsRawFd;
/// let (read, _write) = nix::unistd::pipe().unwrap();
/// sync_pipe::set_cloexec(&read).unwrap();
/// let flags = nix::fcntl::fcntl(read.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
/// assert_ne!(flags & libc::FD_CLOEXEC, 0);
/// ```
///
/// # Errors
///
/// [`SyncPipeError::InvalidFd`] when `fd` is not open.
pub fn set_cloexec(fd: &impl AsFd) -> Result<(), SyncPipeError> {
    let raw = fd.as_fd().as_raw_fd();
    fcntl(raw, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map(drop)
        .map_err(|_| SyncPipeError::InvalidFd { fd: raw })
}
