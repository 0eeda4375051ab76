//! Opening files that a container or a runtime can influence (exit files,
//! pidfiles, logs) without letting them choose what is read: a symlink put
//! in the file's place is refused rather than followed, a FIFO does not
//! block the open, and anything but a regular file is refused. Readers then
//! read at most a bounded number of bytes.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` for reading if it is a regular file, without following a
/// symlink at its last component and without blocking on a FIFO.
/// `Ok(None)` when it does not exist.
///
/// # Errors
///
/// The open's error (a symlink gives `ELOOP`), or `InvalidData` naming
/// the kind of file found when it is not a regular one.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let target = dir.path().join("target");
/// std::fs::write(&target, "42").unwrap();
/// let link = dir.path().join("link");
/// std::os::unix::fs::symlink(&target, &link).unwrap();
/// assert!(state_probe::open_untrusted_file(&target).unwrap().is_some());
/// assert!(state_probe::open_untrusted_file(&link).is_err());
/// assert!(state_probe::open_untrusted_file(&dir.path().join("none")).unwrap().is_none());
/// ```
pub fn open_untrusted_file(path: &Path) -> io::Result<Option<File>> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file ({kind:?})", path.display()),
        ));
    }
    Ok(Some(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = open_untrusted_file(&fifo).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(open_untrusted_file(dir.path()).is_err());
    }
}
