//! Reaping conmon's monitors when they are this process's children.
//!
//! conmon daemonizes: the monitor that outlives a launch is re-parented to
//! the nearest ancestor that is a child subreaper, or to PID 1. When that
//! is an engine built on this driver (it runs as PID 1 of a container, or
//! asked to be a subreaper with [`become_subreaper`] so that its monitors
//! stay in its process tree), nothing else will reap an exited monitor,
//! and each would stay a zombie. A [`ConmonRuntime`](crate::ConmonRuntime)
//! made in such a process therefore watches every monitor it launches
//! through a pidfd and reaps it once it exits (`waitid` on the pidfd: the
//! exact process, never one that reused its pid, and never another child,
//! so it does not take statuses that tokio's process handling waits for).
//! Elsewhere the monitors belong to PID 1 and the driver leaves them be.

use std::time::Duration;

use state_probe::PidFd;
use tracing::debug;

/// Makes this process a child subreaper (`PR_SET_CHILD_SUBREAPER`):
/// orphaned descendants, conmon's monitors among them, become its
/// children instead of PID 1's. Call it once at start-up, before making a
/// [`ConmonRuntime`](crate::ConmonRuntime), which then reaps the monitors
/// it launches.
///
/// ```no_run
/// conmon_driver::become_subreaper().expect("prctl");
/// assert!(conmon_driver::reaps_orphans());
/// ```
///
/// # Errors
///
/// The `prctl` error (it cannot fail on Linux 3.4 and later, short of a
/// seccomp filter refusing it).
pub fn become_subreaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)
}

/// Whether orphaned descendants of this process become its children: it
/// is PID 1 of its namespace, or a child subreaper.
pub fn reaps_orphans() -> bool {
    std::process::id() == 1 || nix::sys::prctl::get_child_subreaper().unwrap_or(false)
}

/// How long one wait of a reaper lasts before it waits again (a monitor
/// lives as long as its container).
const REAPER_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Reaps the monitor named by `pid` once it exits, in a task of the
/// current tokio runtime; nothing happens outside one, or when the pid is
/// already gone.
pub(crate) fn reap_when_exited(pid: i32) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let monitor = match PidFd::open(pid) {
        Ok(Some(monitor)) => monitor,
        Ok(None) => return,
        Err(e) => {
            debug!(pid, error = %e, "cannot watch a monitor to reap it");
            return;
        }
    };
    handle.spawn(async move {
        loop {
            match monitor.exited(REAPER_WAIT).await {
                Ok(true) => break,
                Ok(false) => continue,
                Err(e) => {
                    debug!(pid, error = %e, "cannot wait for a monitor to reap it");
                    return;
                }
            }
        }
        if let Err(e) = monitor.reap_if_child() {
            debug!(pid, error = %e, "reaping a monitor");
        }
    });
}
