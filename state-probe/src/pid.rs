//! Watching processes this program did not necessarily spawn.
//!
//! conmon and the container's init are not children of the driver, so they
//! cannot be `wait()`ed. A pidfd (`pidfd_open(2)`) becomes readable when its
//! process exits, which tokio's reactor can await without polling; it also
//! lets a caller signal the process without racing against pid reuse. Only
//! on kernels without `pidfd_open` (before Linux 5.3) does
//! [`wait_for_exit`] fall back to checking the pid at growing intervals.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::Instant;

use crate::error::ProbeError;

/// True when a process with this pid exists, including one we may not
/// signal (`kill(pid, 0)` succeeds or fails with `EPERM`). A zombie still
/// counts as alive. `pid <= 0` names no single process: false.
pub fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// podman's liveness check of a monitor pid (`CheckConmonRunning`): a pid
/// of 0 or less names no monitor (not running); otherwise `kill(pid, 0)`
/// decides: success or `EPERM` (the process exists but belongs to someone
/// else) is running, `ESRCH` is not.
///
/// # Errors
///
/// [`ProbeError::Io`] for any other answer of `kill`.
pub fn signal_zero(pid: i32) -> Result<bool, ProbeError> {
    if pid <= 0 {
        return Ok(false);
    }
    liveness_from_signal_zero(pid, kill(Pid::from_raw(pid), None))
}

/// The verdict of [`signal_zero`] for `kill(pid, 0)`'s `answer`.
///
/// ```
/// use nix::errno::Errno;
/// use state_probe::pid::liveness_from_signal_zero;
/// assert!(liveness_from_signal_zero(42, Ok(())).unwrap());
/// assert!(liveness_from_signal_zero(42, Err(Errno::EPERM)).unwrap());
/// assert!(!liveness_from_signal_zero(42, Err(Errno::ESRCH)).unwrap());
/// assert!(liveness_from_signal_zero(42, Err(Errno::EINVAL)).is_err());
/// ```
///
/// # Errors
///
/// [`ProbeError::Io`] when `answer` is neither success, `EPERM` nor
/// `ESRCH`.
pub fn liveness_from_signal_zero(pid: i32, answer: Result<(), Errno>) -> Result<bool, ProbeError> {
    match answer {
        Ok(()) | Err(Errno::EPERM) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(e) => Err(ProbeError::io(
            format!("pinging pid {pid} with signal 0"),
            e,
        )),
    }
}

/// Waits until `pid` has exited, at most `limit`.
///
/// Returns `Ok(true)` when the process exited (or was already gone, or
/// `pid <= 0`, which names no single process) and `Ok(false)` when `limit`
/// passed first. A zombie counts as exited: its pidfd is readable as soon
/// as it dies, before anybody reaps it.
///
/// This waits on a [`PidFd`]. Only when `pidfd_open` is unavailable
/// (`ENOSYS` on kernels before 5.3, or `EPERM` from a seccomp filter that
/// does not know the call) does it poll instead: it checks the pid at
/// intervals growing from 1 ms to 100 ms, since without a pidfd there is no
/// descriptor that reports the exit of a process that is not our child.
///
/// # Errors
///
/// [`ProbeError::Io`] when the pidfd cannot be opened or awaited for any
/// other reason (e.g. out of file descriptors).
pub async fn wait_for_exit(pid: i32, limit: Duration) -> Result<bool, ProbeError> {
    if pid <= 0 {
        return Ok(true);
    }
    match pidfd_open(pid) {
        Ok(fd) => PidFd { fd, pid }.exited(limit).await,
        Err(Errno::ESRCH) => Ok(true),
        Err(Errno::ENOSYS | Errno::EPERM) => Ok(poll_until_gone(pid, limit).await),
        Err(e) => Err(ProbeError::io(format!("pidfd_open({pid})"), e)),
    }
}

/// The fallback of [`wait_for_exit`] for kernels without `pidfd_open`:
/// checks the pid at growing intervals until it is gone, a zombie, or
/// `limit` has passed.
async fn poll_until_gone(pid: i32, limit: Duration) -> bool {
    let deadline = deadline_after(limit);
    let mut interval = Duration::from_millis(1);
    loop {
        if !alive(pid) || is_zombie(pid) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(Duration::from_millis(100));
    }
}

/// True when `/proc/<pid>/stat` says the process is a zombie (state `Z`).
fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name in parentheses may contain anything, so the state
    // is found after the last ')'. That byte is ASCII, so `end + 1` is a
    // character boundary and the slice cannot panic.
    stat.rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next())
        == Some("Z")
}

/// An owned pidfd: a descriptor naming one process for as long as it is
/// open, immune to pid reuse. Closed on drop.
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    pid: i32,
}

impl PidFd {
    /// Opens a pidfd for `pid`. Returns `Ok(None)` when no such process
    /// exists (or `pid <= 0`, which names no single process).
    ///
    /// # Errors
    ///
    /// [`ProbeError::Io`] when `pidfd_open` fails otherwise, including
    /// `ENOSYS` on kernels before 5.3.
    pub fn open(pid: i32) -> Result<Option<PidFd>, ProbeError> {
        if pid <= 0 {
            return Ok(None);
        }
        match pidfd_open(pid) {
            Ok(fd) => Ok(Some(PidFd { fd, pid })),
            Err(Errno::ESRCH) => Ok(None),
            Err(e) => Err(ProbeError::io(format!("pidfd_open({pid})"), e)),
        }
    }

    /// The pid this descriptor was opened for.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends signal `signo` to the process. A process that has already
    /// exited (`ESRCH`) is not an error.
    ///
    /// # Errors
    ///
    /// [`ProbeError::Io`] when the kernel refuses, e.g. `EPERM` or an
    /// invalid signal number (`EINVAL`).
    pub fn send_signal(&self, signo: i32) -> Result<(), ProbeError> {
        match pidfd_send_signal(self.fd.as_fd(), signo) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(ProbeError::io(
                format!("sending signal {signo} to pid {}", self.pid),
                e,
            )),
        }
    }

    /// Waits until the process has exited, at most `limit`: `Ok(true)`
    /// when it exited, `Ok(false)` when `limit` passed first. Must be called
    /// within a tokio runtime. Several calls may wait at once.
    ///
    /// # Errors
    ///
    /// [`ProbeError::Io`] when the descriptor cannot be duplicated or
    /// registered with tokio's reactor.
    pub async fn exited(&self, limit: Duration) -> Result<bool, ProbeError> {
        let context = || format!("waiting for pid {} to exit", self.pid);
        // Each wait registers its own duplicate: epoll refuses to register
        // the same descriptor twice, and concurrent waits are allowed.
        let dup = self
            .fd
            .try_clone()
            .map_err(|e| ProbeError::io(context(), e))?;
        let fd = register_pidfd(dup).map_err(|e| ProbeError::io(context(), e))?;
        match tokio::time::timeout(limit, fd.readable()).await {
            Ok(Ok(_guard)) => Ok(true),
            Ok(Err(e)) => Err(ProbeError::io(context(), e)),
            Err(_elapsed) => Ok(false),
        }
    }
}

impl PidFd {
    /// Reaps the process if it is a child of this process that has exited
    /// (`waitid(P_PIDFD, .., WEXITED | WNOHANG)`): exactly this process,
    /// never another that reused its pid. `Ok(true)` when it was reaped;
    /// `Ok(false)` when it still runs, is not a child of this process, or
    /// was reaped already.
    ///
    /// # Errors
    ///
    /// [`ProbeError::Io`] when `waitid` fails otherwise.
    pub fn reap_if_child(&self) -> Result<bool, ProbeError> {
        use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
        match waitid(
            Id::PIDFd(self.fd.as_fd()),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
        ) {
            Ok(WaitStatus::StillAlive) => Ok(false),
            Ok(_) => Ok(true),
            Err(Errno::ECHILD) => Ok(false),
            Err(e) => Err(ProbeError::io(format!("reaping pid {}", self.pid), e)),
        }
    }
}

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for PidFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Registers an owned pidfd with tokio's reactor for readability (which a
/// pidfd signals when its process exits).
#[allow(unsafe_code)]
fn register_pidfd(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd takes ownership of the OwnedFd, so the descriptor
    // stays open and names the same file description until the AsyncFd is
    // dropped, and OwnedFd::as_raw_fd always returns that same number.
    Ok(unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?)
}

/// `pidfd_open(pid, 0)`; the descriptor is close-on-exec.
fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    let raw = Errno::result(sys_pidfd_open(pid))?;
    let raw = RawFd::try_from(raw).map_err(|_| Errno::EBADF)?;
    Ok(adopt_pidfd(raw))
}

/// The raw `pidfd_open(pid, 0)` system call: a new descriptor, or -1 with
/// errno set.
#[allow(unsafe_code)]
fn sys_pidfd_open(pid: i32) -> libc::c_long {
    // SAFETY: pidfd_open takes a pid and a flags word by value and touches
    // no memory of ours.
    unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) }
}

/// Takes ownership of a descriptor just returned by `pidfd_open`.
#[allow(unsafe_code)]
fn adopt_pidfd(raw: RawFd) -> OwnedFd {
    // SAFETY: only called with the result of a successful pidfd_open, a
    // fresh open descriptor that nothing else owns, so OwnedFd may take
    // ownership and close it on drop.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// `pidfd_send_signal(fd, signo, NULL, 0)`.
#[allow(unsafe_code)]
fn pidfd_send_signal(fd: BorrowedFd<'_>, signo: i32) -> Result<(), Errno> {
    // SAFETY: the descriptor is borrowed and thus open for the call; a null
    // siginfo pointer is allowed and makes the kernel fill in the info as
    // kill(2) would; flags must be 0. No memory of ours is touched.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signo,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// `limit` from now; a limit too large to represent (`Duration::MAX`)
/// means no deadline in practice rather than a panic.
pub fn deadline_after(limit: std::time::Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(limit)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(100 * 365 * 24 * 3600))
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_deadline_past_what_an_instant_can_hold_saturates() {
        let now = Instant::now();
        let far = deadline_after(std::time::Duration::MAX);
        assert!(far > now + std::time::Duration::from_secs(365 * 24 * 3600));
        assert!(deadline_after(std::time::Duration::ZERO) >= now);
    }

    use super::*;

    #[tokio::test]
    async fn poll_fallback_sees_a_zombie_and_times_out_on_a_live_process() -> io::Result<()> {
        let mut child = std::process::Command::new("sleep").arg("1000").spawn()?;
        let pid = i32::try_from(child.id()).map_err(io::Error::other)?;
        assert!(!poll_until_gone(pid, Duration::from_millis(50)).await);
        child.kill()?;
        // Not reaped yet: a zombie, which counts as gone.
        assert!(poll_until_gone(pid, Duration::from_secs(5)).await);
        child.wait()?;
        assert!(poll_until_gone(pid, Duration::from_millis(50)).await);
        Ok(())
    }

    #[test]
    fn zombie_detection() -> io::Result<()> {
        assert!(!is_zombie(std::process::id() as i32));
        assert!(!is_zombie(i32::MAX));
        Ok(())
    }
}
