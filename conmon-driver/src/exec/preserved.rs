//! The fds an exec session passes to its process (podman's
//! `exec --preserve-fds N`): conmon places them at 3..3+N and tells the
//! runtime `--preserve-fds N`.
//!
//! podman, a CLI, passes the fds it inherited at 3..3+N. The trait's `exec`
//! does the same with the caller's fds 3..3+N, duplicated at the call (a
//! missing one is an error naming it); an engine that keeps other files at
//! those numbers hands the fds explicitly through
//! [`ConmonRuntime::exec_preserving`](crate::ConmonRuntime::exec_preserving).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use runtime_api::RuntimeError;

/// Duplicates (close-on-exec) the caller's fds `3..3 + count`.
pub(crate) fn callers_fds(count: u32) -> Result<Vec<OwnedFd>, RuntimeError> {
    (0..count as RawFd)
        .map(|i| {
            let fd = 3 + i;
            dup_cloexec(fd).map_err(|e| {
                RuntimeError::InvalidArgument(format!(
                    "exec preserves {count} fds, but fd {fd} of the caller is unusable: {e}"
                ))
            })
        })
        .collect()
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, 0)`: a new descriptor for `fd`'s open file,
/// owned by the caller; `EBADF` when `fd` is not open.
#[allow(unsafe_code)]
fn dup_cloexec(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: fcntl with F_DUPFD_CLOEXEC reads no memory; on a descriptor
    // that is not open it fails with EBADF and creates nothing.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` was just returned by fcntl as a fresh descriptor that
    // nothing else in this process owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn a_duplicate_reaches_the_same_file_and_a_closed_fd_is_named() {
        let mut file = tempfile::tempfile().unwrap();
        let dup = dup_cloexec(file.as_raw_fd()).unwrap();
        std::fs::File::from(dup).write_all(b"same file").unwrap();
        let mut text = String::new();
        use std::io::Seek;
        file.rewind().unwrap();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "same file");
        assert_eq!(
            dup_cloexec(-1).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
        assert_eq!(callers_fds(0).unwrap().len(), 0);
        let err = callers_fds(100_000).unwrap_err().to_string();
        assert!(err.contains("fd "), "{err}");
    }
}
