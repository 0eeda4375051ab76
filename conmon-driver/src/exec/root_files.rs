//! Reading a file of a container's root filesystem from the host without
//! leaving the root: links (absolute, climbing with `..`, or pointing at
//! host paths) are resolved as if the root were `/`, by the kernel
//! (`openat2` with `RESOLVE_IN_ROOT`) where it can and in user space
//! otherwise; only regular files are read, and at most `MAX_FILE_BYTES`.
//! The container may change its files meanwhile: nothing here trusts them.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use runtime_api::RuntimeError;

/// How much of a file is read at most (as moby reads `/etc/passwd`).
const MAX_FILE_BYTES: u64 = 10 << 20;

/// How many symlinks are followed while resolving a path inside the root.
const MAX_SYMLINKS: usize = 255;

/// Reads `<root>/<rel>` with symlinks resolved inside `root`. `Ok(None)`
/// when it does not exist or is not a regular file.
///
/// The kernel resolves the path when it can (`openat2` with
/// `RESOLVE_IN_ROOT`: no `..`, absolute or symlinked path leaves `root`,
/// whatever the container changes meanwhile); on kernels without
/// `openat2` (before 5.6) or under a seccomp filter refusing it, the path
/// is resolved in user space by [`resolve_in_root`] and opened without
/// following a final symlink.
pub(crate) fn read_in_root(root: &Path, rel: &str) -> Result<Option<String>, RuntimeError> {
    let context = || format!("reading {rel} of the container root {}", root.display());
    let file = match open_in_root(root, rel) {
        Some(Ok(file)) => Some(file),
        Some(Err(e)) if is_absent(&e) => return Ok(None),
        Some(Err(e)) => return Err(RuntimeError::io(context(), e)),
        None => None,
    };
    let file = match file {
        Some(file) => file,
        None => match open_resolved_in_user_space(root, rel) {
            Ok(Some(file)) => file,
            Ok(None) => return Ok(None),
            Err(e) => return Err(RuntimeError::io(context(), e)),
        },
    };
    let meta = file
        .metadata()
        .map_err(|e| RuntimeError::io(context(), e))?;
    if !meta.is_file() {
        return Ok(None);
    }
    read_capped(file)
        .map(|bytes| Some(String::from_utf8_lossy(&bytes).into_owned()))
        .map_err(|e| RuntimeError::io(context(), e))
}

/// Opens `<root>/<rel>` read-only and non-blocking with `openat2`
/// resolving inside `root`; `None` when `openat2` is not available.
fn open_in_root(root: &Path, rel: &str) -> Option<io::Result<File>> {
    use nix::errno::Errno;
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use std::os::fd::AsRawFd;
    let root_dir = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root)
    {
        Ok(dir) => dir,
        Err(e) => return Some(Err(e)),
    };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    // EAGAIN: a rename raced with a `..` walk; the kernel asks for a retry.
    for _ in 0..8 {
        match openat2(root_dir.as_raw_fd(), rel, how) {
            Ok(fd) => return Some(Ok(file_from_fd(fd))),
            Err(Errno::EAGAIN) => continue,
            Err(Errno::ENOSYS | Errno::EPERM) => return None,
            Err(e) => return Some(Err(io::Error::from(e))),
        }
    }
    Some(Err(io::Error::from(Errno::EAGAIN)))
}

#[allow(unsafe_code)]
fn file_from_fd(fd: std::os::fd::RawFd) -> File {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was just returned by a successful openat2 and is owned
    // by nothing else.
    unsafe { File::from_raw_fd(fd) }
}

/// The fallback of [`read_in_root`]: `Ok(None)` when the file is absent.
fn open_resolved_in_user_space(root: &Path, rel: &str) -> io::Result<Option<File>> {
    let path = match resolve_in_root(root, Path::new(rel)) {
        Ok(path) => path,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    // O_NOFOLLOW: the last component was checked above; refuse a symlink
    // swapped in since. O_NONBLOCK: a FIFO must not block the open.
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(file) => Ok(Some(file)),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

fn read_capped(file: File) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(io::Error::other(format!(
            "file exceeds {MAX_FILE_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// Joins `rel` to `root`, following symlinks as if `root` were `/`
/// (the `securejoin` rule): absolute targets restart at `root`, `..` never
/// climbs above it, and a missing component ends the symlink walk (the rest
/// is joined as is). Fails with `ELOOP` after [`MAX_SYMLINKS`] links.
fn resolve_in_root(root: &Path, rel: &Path) -> io::Result<PathBuf> {
    let mut pending: VecDeque<OsString> = components(rel).collect();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    // Once a component is missing there is nothing left to follow.
    let mut walk_ended = false;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        if walk_ended {
            resolved.push(part);
            continue;
        }
        let candidate = resolved
            .iter()
            .fold(root.to_path_buf(), |p, c| p.join(c))
            .join(&part);
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = std::fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for c in components(&target).collect::<Vec<_>>().into_iter().rev() {
                    pending.push_front(c);
                }
            }
            Ok(_) => resolved.push(part),
            Err(e) if is_absent(&e) => {
                resolved.push(part);
                walk_ended = true;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(resolved.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

/// The normal and `..` components of `path` (root and `.` dropped).
fn components(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// The kernel's resolution and the user-space fallback agree on every
    /// way a link may try to leave the root.
    #[test]
    fn both_resolutions_keep_links_inside_the_root() {
        use std::os::unix::fs::symlink;
        let host = tempfile::tempdir().unwrap();
        fs::write(host.path().join("secret"), "host\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(root.path().join("etc/inside"), "inside\n").unwrap();
        symlink("/etc/inside", root.path().join("absolute")).unwrap();
        symlink("../../../../../../etc/inside", root.path().join("climbing")).unwrap();
        symlink(host.path().join("secret"), root.path().join("to-host")).unwrap();
        let read =
            |file: Option<File>| file.map(|f| String::from_utf8(read_capped(f).unwrap()).unwrap());
        for (rel, expected) in [
            ("absolute", Some("inside\n")),
            ("climbing", Some("inside\n")),
            ("to-host", None),
            ("etc/../../etc/inside", Some("inside\n")),
        ] {
            let kernel = match open_in_root(root.path(), rel).expect("openat2 on this kernel") {
                Ok(f) => Some(f),
                Err(e) if is_absent(&e) => None,
                Err(e) => panic!("{rel}: {e}"),
            };
            let user_space = open_resolved_in_user_space(root.path(), rel).unwrap();
            assert_eq!(read(kernel).as_deref(), expected, "kernel, {rel}");
            assert_eq!(read(user_space).as_deref(), expected, "user space, {rel}");
        }
    }
}
