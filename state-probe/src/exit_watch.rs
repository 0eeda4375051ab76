//! Many waits on exit files through one inotify instance.
//!
//! [`wait_for_exit_file`] opens an inotify
//! instance per call; a system allows a user 128 by default, so an engine
//! waiting on more containers than that at once would fail with `EMFILE`.
//! An [`ExitWatcher`] holds one instance for all its waits: one watch per
//! directory, one reader task that turns events into wake-ups of the waits
//! on the file they name. A wait registers for its file *before* checking
//! whether the file is already complete, so a file finished in between is
//! not missed, and nothing polls.
//!
//! The reader task lives on the tokio runtime of the first wait. Should
//! that runtime end, the next wait notices and starts a new instance on its
//! own runtime.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::Notify;

use crate::exit_file::{read_exit_file, ExitRecord};
use crate::ProbeError;

/// Waits for the exit file at `path` to appear, then reads it.
///
/// An inotify watch for `IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE` is put
/// on the parent directory *before* checking whether the file already
/// exists, so a file written between the check and the wait is not missed.
/// The inotify descriptor is awaited through tokio's reactor; nothing polls.
/// This call uses an inotify instance of its own; many concurrent waits
/// should share one through an [`ExitWatcher`].
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
    ExitWatcher::default().wait(path, limit).await
}

/// Waits on exit files through one shared inotify instance. Cheap to
/// share: hold one per engine (behind an `Arc`) and call
/// [`wait`](Self::wait) from as many tasks as needed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// let dir = tempfile::tempdir().unwrap();
/// let exit_file = dir.path().join("ctr");
/// let watcher = state_probe::ExitWatcher::default();
/// let writer = {
///     let exit_file = exit_file.clone();
///     tokio::spawn(async move { std::fs::write(exit_file, "137").unwrap() })
/// };
/// let record = watcher.wait(&exit_file, Duration::from_secs(10)).await.unwrap();
/// assert_eq!(record.code, 137);
/// writer.await.unwrap();
/// # }
/// ```
#[derive(Debug, Default)]
pub struct ExitWatcher {
    current: Mutex<Option<(Arc<Shared>, tokio::task::AbortHandle)>>,
}

impl Drop for ExitWatcher {
    fn drop(&mut self) {
        let current = self
            .current
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, reader)) = current.take() {
            reader.abort();
        }
    }
}

/// One inotify instance, its watches and the waits registered on it.
#[derive(Debug)]
struct Shared {
    fd: AsyncFd<InotifyFd>,
    state: Mutex<WatchState>,
    /// Cleared when the reader task ends (its runtime shut down, or the
    /// instance failed): the next wait starts a new instance.
    reading: AtomicBool,
}

#[derive(Debug, Default)]
struct WatchState {
    /// Which directory each watch is on.
    dirs: HashMap<WatchDescriptor, PathBuf>,
    /// The waits of each file, with how many there are.
    files: HashMap<PathBuf, (Arc<Notify>, usize)>,
}

/// Lets tokio register the inotify descriptor with its reactor.
#[derive(Debug)]
pub(crate) struct InotifyFd(pub(crate) Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Registers an inotify instance with tokio's reactor for readability.
#[allow(unsafe_code)]
pub(crate) fn register_inotify(fd: InotifyFd) -> io::Result<AsyncFd<InotifyFd>> {
    // SAFETY: the AsyncFd owns the Inotify, which owns its descriptor (an
    // OwnedFd never replaced), so the number stays open and names the same
    // file description until the AsyncFd is dropped.
    Ok(unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?)
}

/// A wait's registration; dropping it unregisters.
struct Registration {
    shared: Arc<Shared>,
    path: PathBuf,
    notify: Arc<Notify>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if let Some((_, count)) = state.files.get_mut(&self.path) {
            *count -= 1;
            if *count == 0 {
                state.files.remove(&self.path);
            }
        }
    }
}

/// Clears `reading` however the reader task ends, including being dropped
/// with its runtime.
struct ReadingFlag(Arc<Shared>);

impl Drop for ReadingFlag {
    fn drop(&mut self) {
        self.0.reading.store(false, Ordering::SeqCst);
        // Waits parked on this instance must look again (and time out, or
        // find their file) rather than sleep on a dead reader.
        for (notify, _) in self.0.lock().files.values() {
            notify.notify_waiters();
        }
    }
}

impl ExitWatcher {
    /// Waits up to `limit` for the exit file at `path` to hold a record,
    /// and returns it.
    ///
    /// # Errors
    ///
    /// - [`ProbeError::Timeout`] when `limit` passes first.
    /// - [`ProbeError::InvalidExitFile`] when the finished file does not
    ///   hold an exit code.
    /// - [`ProbeError::Io`] when the directory cannot be watched (it does
    ///   not exist) or is removed while waiting, or inotify fails.
    pub async fn wait(&self, path: &Path, limit: Duration) -> Result<ExitRecord, ProbeError> {
        let waiting = async {
            let registration = self.register(path)?;
            loop {
                let notified = registration.notify.notified();
                tokio::pin!(notified);
                // Enabled before the check: an event in between wakes it.
                notified.as_mut().enable();
                if let Some(record) = read_complete(path)? {
                    return Ok(record);
                }
                let dir = parent_of(path);
                if !dir.is_dir() {
                    return Err(ProbeError::io(
                        format!(
                            "{} was removed while waiting for exit file {}",
                            dir.display(),
                            path.display()
                        ),
                        io::Error::from(io::ErrorKind::NotFound),
                    ));
                }
                if !registration.shared.reading.load(Ordering::SeqCst) {
                    return Err(ProbeError::io(
                        format!("watching for exit file {}", path.display()),
                        io::Error::other("the inotify reader stopped"),
                    ));
                }
                notified.await;
            }
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

    /// How many files have waits registered (for tests and metrics).
    pub fn waited_files(&self) -> usize {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |(shared, _)| shared.lock().files.len())
    }

    fn register(&self, path: &Path) -> Result<Registration, ProbeError> {
        let dir = parent_of(path);
        let context = || {
            format!(
                "watching {} for exit file {}",
                dir.display(),
                path.display()
            )
        };
        let shared = self.shared().map_err(|e| ProbeError::io(context(), e))?;
        let wd = shared
            .fd
            .get_ref()
            .0
            .add_watch(
                &dir,
                AddWatchFlags::IN_CLOSE_WRITE
                    | AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_CREATE,
            )
            .map_err(|e| ProbeError::io(context(), e))?;
        let notify = {
            let mut state = shared.lock();
            state.dirs.insert(wd, dir.clone());
            let entry = state
                .files
                .entry(path.to_path_buf())
                .or_insert_with(|| (Arc::new(Notify::new()), 0));
            entry.1 += 1;
            Arc::clone(&entry.0)
        };
        Ok(Registration {
            shared,
            path: path.to_path_buf(),
            notify,
        })
    }

    /// The live instance, or a new one with its reader on this runtime.
    fn shared(&self) -> io::Result<Arc<Shared>> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((shared, _)) = current.as_ref() {
            if shared.reading.load(Ordering::SeqCst) {
                return Ok(Arc::clone(shared));
            }
        }
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let shared = Arc::new(Shared {
            fd: register_inotify(InotifyFd(inotify))?,
            state: Mutex::new(WatchState::default()),
            reading: AtomicBool::new(true),
        });
        // The flag goes in as an argument: it is dropped with the task even
        // if the task never ran (its runtime ended first).
        let flag = ReadingFlag(Arc::clone(&shared));
        let reader = tokio::spawn(read_events(Arc::clone(&shared), flag)).abort_handle();
        *current = Some((Arc::clone(&shared), reader));
        Ok(shared)
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        // Each critical section is a lookup or a small update.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the waits that `events` may concern.
    fn dispatch(&self, events: &[nix::sys::inotify::InotifyEvent]) {
        let mut state = self.lock();
        for event in events {
            if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                // Events were lost: every wait looks again.
                for (notify, _) in state.files.values() {
                    notify.notify_waiters();
                }
                continue;
            }
            let Some(dir) = state.dirs.get(&event.wd).cloned() else {
                continue;
            };
            if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                // The directory went away (or its watch did): its waits
                // look again and report it.
                state.dirs.remove(&event.wd);
                for (path, (notify, _)) in &state.files {
                    if path.parent() == Some(dir.as_path()) {
                        notify.notify_waiters();
                    }
                }
                continue;
            }
            if let Some(name) = &event.name {
                if let Some((notify, _)) = state.files.get(&dir.join(name)) {
                    notify.notify_waiters();
                }
            }
        }
    }
}

/// The reader task: reads events until aborted (its watcher dropped) or
/// its runtime ends.
async fn read_events(shared: Arc<Shared>, _flag: ReadingFlag) {
    loop {
        let mut guard = match shared.fd.readable().await {
            Ok(guard) => guard,
            Err(_) => return,
        };
        match guard.get_inner().0.read_events() {
            Ok(events) => shared.dispatch(&events),
            Err(Errno::EAGAIN) => guard.clear_ready(),
            Err(_) => return,
        }
    }
}

/// The exit file's record once it is complete: a file that exists but
/// does not parse yet (created, not written) counts as not there.
///
/// The decision rests on the content that was read, not on a second look
/// at the file: the writer may finish in between, and the empty read must
/// then still count as "not yet", with the next event reading the record.
fn read_complete(path: &Path) -> Result<Option<ExitRecord>, ProbeError> {
    match read_exit_file(path) {
        Err(ProbeError::InvalidExitFile { content, .. }) if content.trim().is_empty() => Ok(None),
        other => other,
    }
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
