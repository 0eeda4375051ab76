//! conmon's exit files.
//!
//! When a container exits, conmon writes `<exit-dir>/<container id>`: the
//! decimal exit status (signal deaths are 128 + signal number), no newline,
//! written atomically. The file's ctime is the moment the container
//! finished. This module reads such a file, and waits for one to appear on
//! an inotify event rather than by polling.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::error::ProbeError;

/// The most bytes of an exit file that are read; a longer file is not an
/// exit file, and its start is quoted in the error.
const MAX_EXIT_FILE: u64 = 64;

/// How a container exited, as recorded by conmon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitRecord {
    /// The exit status; 128 + signal number for a death by signal.
    pub code: i32,
    /// When the container finished: the exit file's ctime.
    pub finished: SystemTime,
}

/// Reads an exit file written by conmon.
///
/// Trailing (and leading) whitespace around the number is tolerated.
/// Returns `Ok(None)` when the file does not exist.
///
/// # Errors
///
/// - [`ProbeError::InvalidExitFile`] when the content is not a decimal
///   integer. An empty file is invalid too: conmon writes the file
///   atomically, so an empty one is corrupt rather than half written.
/// - [`ProbeError::Io`] when the file exists but cannot be read.
pub fn read_exit_file(path: &Path) -> Result<Option<ExitRecord>, ProbeError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ProbeError::io(
                format!("opening exit file {}", path.display()),
                e,
            ))
        }
    };
    let context = || format!("reading exit file {}", path.display());
    let metadata = file.metadata().map_err(|e| ProbeError::io(context(), e))?;
    let mut bytes = Vec::new();
    file.take(MAX_EXIT_FILE)
        .read_to_end(&mut bytes)
        .map_err(|e| ProbeError::io(context(), e))?;
    let content = String::from_utf8_lossy(&bytes);
    let code = content
        .trim()
        .parse::<i32>()
        .map_err(|_| ProbeError::InvalidExitFile {
            path: path.to_path_buf(),
            content: content.clone().into_owned(),
        })?;
    Ok(Some(ExitRecord {
        code,
        finished: ctime(&metadata),
    }))
}

/// The inode change time of a file as a [`SystemTime`].
pub(crate) fn ctime(metadata: &Metadata) -> SystemTime {
    // The kernel keeps nanoseconds below 10^9, so Duration::new cannot carry
    // into (and overflow) the seconds, which are at most i64::MAX.
    let nanos = u32::try_from(metadata.ctime_nsec()).unwrap_or(0);
    let secs = metadata.ctime();
    let time = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(secs.unsigned_abs(), nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))
            .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
    };
    // Only a ctime beyond what SystemTime can hold falls back to the epoch.
    time.unwrap_or(UNIX_EPOCH)
}

/// Waits for the exit file at `path` to appear, then reads it.
///
/// An inotify watch for `IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE` is put
/// on the parent directory *before* checking whether the file already
/// exists, so a file written between the check and the wait is not missed.
/// The inotify descriptor is awaited through tokio's reactor; nothing polls.
///
/// A file that is seen right after `IN_CREATE` but is still empty (created,
/// not yet written) is waited on until it is closed or replaced.
///
/// # Errors
///
/// - [`ProbeError::Timeout`] when `limit` passes first, with the command
///   `waiting for exit file <path>`.
/// - [`ProbeError::InvalidExitFile`] when the finished file does not hold an
///   exit code.
/// - [`ProbeError::Io`] when the parent directory cannot be watched (e.g.
///   it does not exist) or is removed while waiting.
pub async fn wait_for_exit_file(path: &Path, limit: Duration) -> Result<ExitRecord, ProbeError> {
    let waiting = async {
        let watch = DirWatch::new(path)?;
        if let Some(record) = read_exit_file(path)? {
            return Ok(record);
        }
        watch.next_record(path).await
    };
    tokio::time::timeout(limit, waiting)
        .await
        .unwrap_or_else(|_elapsed| {
            Err(ProbeError::Timeout {
                command: format!("waiting for exit file {}", path.display()),
                limit,
            })
        })
}

/// An inotify instance watching the directory an exit file will appear in.
struct DirWatch {
    fd: AsyncFd<InotifyFd>,
    dir: std::path::PathBuf,
}

/// Lets tokio register the inotify descriptor with its reactor.
pub(crate) struct InotifyFd(pub(crate) Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Registers an inotify instance with tokio's reactor for readability.
#[allow(unsafe_code)]
pub(crate) fn register_inotify(fd: InotifyFd) -> io::Result<AsyncFd<InotifyFd>> {
    // SAFETY: the AsyncFd takes ownership of the Inotify, which owns its
    // descriptor (an OwnedFd that is never replaced), so the descriptor stays
    // open and names the same file description until the AsyncFd is dropped,
    // and `as_raw_fd` always returns that same number.
    Ok(unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?)
}

impl DirWatch {
    fn new(path: &Path) -> Result<Self, ProbeError> {
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => Path::new(".").to_path_buf(),
        };
        let context = || {
            format!(
                "watching {} for exit file {}",
                dir.display(),
                path.display()
            )
        };
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| ProbeError::io(context(), e))?;
        inotify
            .add_watch(
                &dir,
                AddWatchFlags::IN_CLOSE_WRITE
                    | AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_CREATE,
            )
            .map_err(|e| ProbeError::io(context(), e))?;
        let fd = register_inotify(InotifyFd(inotify)).map_err(|e| ProbeError::io(context(), e))?;
        Ok(DirWatch { fd, dir })
    }

    /// Waits for events until the exit file at `path` holds a record.
    async fn next_record(&self, path: &Path) -> Result<ExitRecord, ProbeError> {
        let name = path.file_name();
        let context = || {
            format!(
                "watching {} for exit file {}",
                self.dir.display(),
                path.display()
            )
        };
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| ProbeError::io(context(), e))?;
            let events = match guard.get_inner().0.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => {
                    guard.clear_ready();
                    continue;
                }
                Err(e) => return Err(ProbeError::io(context(), e)),
            };
            for event in &events {
                if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                    return Err(ProbeError::io(
                        format!(
                            "{} was removed while waiting for exit file {}",
                            self.dir.display(),
                            path.display()
                        ),
                        io::Error::from(io::ErrorKind::NotFound),
                    ));
                }
                if let Some(record) = check_event(event, name, path)? {
                    return Ok(record);
                }
            }
        }
    }
}

/// Reads the exit file if `event` may have completed it.
///
/// After `IN_CLOSE_WRITE` or `IN_MOVED_TO` (or a queue overflow, which
/// may have hidden either) the file is final and an invalid one is an error.
/// After `IN_CREATE` alone it may still be empty, so an invalid file means
/// "keep waiting".
fn check_event(
    event: &InotifyEvent,
    name: Option<&OsStr>,
    path: &Path,
) -> Result<Option<ExitRecord>, ProbeError> {
    let overflow = event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW);
    if !overflow && event.name.as_deref() != name {
        return Ok(None);
    }
    let final_event = overflow
        || event
            .mask
            .intersects(AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO);
    match read_exit_file(path) {
        Err(ProbeError::InvalidExitFile { .. }) if !final_event => Ok(None),
        other => other,
    }
}
