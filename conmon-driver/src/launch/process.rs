//! One conmon being launched, shared by container creates and exec
//! sessions: its parent process (the driver's child until reaped), its
//! stderr captured in an unnamed file (a pipe could hang on conmon's
//! monitor, which keeps it), and the means to kill what the launch started
//! when it fails or is abandoned.
//!
//! conmon's monitor calls `setsid()` once forked, so it is not in the
//! parent's process group: it is found through conmon's pidfile, and a pid
//! read there is trusted only after a pidfd pins it and its command line
//! shows this launch's `-u` value (pids are recycled). The runtime processes
//! the monitor starts die with it (conmon sets their parent-death signal).

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use runtime_api::RuntimeError;

use crate::LaunchStage;
use state_probe::PidFd;
use tokio::time::Instant;
use tracing::warn;

use crate::errors::oci_runtime_error;
use crate::files::read_pidfile;
use crate::launch::process_group::kill_group;

/// The most of conmon's stderr kept for error messages.
const MAX_STDERR: u64 = 64 * 1024;

/// Whether `pid` runs a conmon whose argv holds `-u cuuid`.
pub(crate) fn is_monitor_of(pid: i32, cuuid: &str) -> bool {
    monitor_identity(pid, cuuid) == Some(true)
}

/// Whether `pid`'s command line holds `-u cuuid`; `None` when it cannot be
/// read for a reason other than the process being gone (permission, a
/// `hidepid` mount), so the caller decides by other means.
pub(crate) fn monitor_identity(pid: i32, cuuid: &str) -> Option<bool> {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) => {
            let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
            Some(
                args.windows(2)
                    .any(|pair| pair[0] == b"-u" && pair[1] == cuuid.as_bytes()),
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(false),
        // An empty read or ESRCH also means the process is gone.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Some(false),
        Err(_) => None,
    }
}

/// A pidfd on the conmon monitor named by `pidfile`, when that process is
/// alive and is the monitor of `cuuid` (not a process that reused the pid).
pub(crate) fn monitor_pidfd(pidfile: &Path, cuuid: &str) -> Option<PidFd> {
    let pid = read_pidfile(pidfile).ok().flatten()?;
    // Opened first, checked second: the pidfd pins the process the
    // command line belongs to.
    let pidfd = PidFd::open(pid).ok().flatten()?;
    is_monitor_of(pid, cuuid).then_some(pidfd)
}

/// A conmon launch in progress.
pub(crate) struct ConmonProcess {
    parent: Option<tokio::process::Child>,
    pgid: Option<i32>,
    stderr: std::fs::File,
    monitor_pidfile: PathBuf,
    cuuid: String,
    armed: bool,
}

impl ConmonProcess {
    /// Spawns `cmd` (arguments, environment, cwd and pre-exec hooks already
    /// set) in its own process group, killed if this value is dropped
    /// unawaited. Without `passthrough`, stdin and stdout are /dev/null and
    /// stderr is captured; with it, conmon gets those three fds (which it
    /// hands to the container) and its own stderr is not captured.
    pub(crate) fn spawn(
        mut cmd: tokio::process::Command,
        conmon: &Path,
        monitor_pidfile: PathBuf,
        cuuid: &str,
        passthrough: Option<crate::PassthroughStdio>,
    ) -> Result<Self, RuntimeError> {
        let stderr = tempfile::tempfile()
            .map_err(|e| RuntimeError::io("creating a file for conmon's stderr", e))?;
        match passthrough {
            None => {
                let for_child = stderr
                    .try_clone()
                    .map_err(|e| RuntimeError::io("duplicating conmon's stderr file", e))?;
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(for_child);
            }
            Some(stdio) => {
                cmd.stdin(Stdio::from(stdio.stdin))
                    .stdout(Stdio::from(stdio.stdout))
                    .stderr(Stdio::from(stdio.stderr));
            }
        }
        cmd.process_group(0).kill_on_drop(true);
        let parent = cmd.spawn().map_err(|e| {
            crate::LaunchError::new(
                LaunchStage::Spawn,
                format!("cannot execute {}: {e}", conmon.display()),
                String::new(),
            )
            .into_runtime_error(cuuid)
        })?;
        Ok(Self {
            pgid: parent.id().map(|pid| pid as i32),
            parent: Some(parent),
            stderr,
            monitor_pidfile,
            cuuid: cuuid.to_string(),
            armed: true,
        })
    }

    /// Where conmon writes its monitor's pid.
    pub(crate) fn monitor_pidfile(&self) -> &Path {
        &self.monitor_pidfile
    }

    /// conmon's first pid (its parent), while it has not been reaped.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.parent.as_ref().and_then(|p| p.id())
    }

    /// Waits until `deadline` for conmon's parent to exit after forking its
    /// monitor, and reaps it. `Ok(None)` when the deadline passed.
    pub(crate) async fn wait_parent(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<ExitStatus>, RuntimeError> {
        let Some(parent) = self.parent.as_mut() else {
            return Err(
                self.monitor_failed(LaunchStage::ParentExit, "conmon was not running".into())
            );
        };
        match tokio::time::timeout_at(deadline, parent.wait()).await {
            Ok(Ok(status)) => {
                self.parent = None;
                Ok(Some(status))
            }
            Ok(Err(e)) => Err(RuntimeError::io("waiting for conmon", e)),
            Err(_) => Ok(None),
        }
    }

    /// conmon's stderr so far, trimmed.
    pub(crate) fn stderr_text(&self) -> String {
        let mut file = &self.stderr;
        let mut text = String::new();
        if file.rewind().is_ok() {
            let _ = file.take(MAX_STDERR).read_to_string(&mut text);
        }
        text.trim().to_string()
    }

    /// A failure of the launch at `stage`, with conmon's stderr.
    pub(crate) fn monitor_failed(&self, stage: LaunchStage, message: String) -> RuntimeError {
        crate::LaunchError::new(stage, message, self.stderr_text()).into_runtime_error(&self.cuuid)
    }

    /// The error for a runtime that failed under conmon: the runtime's own
    /// error log first (as podman prefers it), then conmon's message,
    /// classified into permission denied (126), not found (127) or other.
    pub(crate) fn runtime_failure(
        &self,
        runtime_name: &str,
        command: String,
        oci_log: &Path,
        conmon_message: Option<&str>,
        fallback: &str,
    ) -> RuntimeError {
        let message = sync_pipe::read_oci_error(oci_log)
            .ok()
            .flatten()
            .map(|entry| entry.msg)
            .or_else(|| conmon_message.map(str::to_string))
            .filter(|m| !m.trim().is_empty())
            .map(bounded_message);
        match message {
            Some(message) => match oci_runtime_error(runtime_name, command, &message) {
                RuntimeError::RuntimeFailed { stderr: msg, .. } => {
                    self.monitor_failed(LaunchStage::SyncRecord, format!("{runtime_name}: {msg}"))
                }
                classified => classified,
            },
            None => self.monitor_failed(LaunchStage::SyncRecord, fallback.to_string()),
        }
    }

    /// The launch succeeded: dropping this value no longer kills anything.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    /// Kills and awaits what the launch started: conmon's process group
    /// while its parent is unreaped (the group id cannot be reused until
    /// then), the parent, and the monitor named by the pidfile.
    pub(crate) async fn kill_all(&mut self, limit: Duration) {
        if let (Some(pgid), Some(_)) = (self.pgid, self.parent.as_ref()) {
            let survivors = kill_group(pgid, limit).await;
            if !survivors.is_empty() {
                warn!(?survivors, "processes of conmon's group survived SIGKILL");
            }
        }
        if let Some(mut parent) = self.parent.take() {
            let _ = parent.start_kill();
            let _ = tokio::time::timeout(limit, parent.wait()).await;
        }
        if let Some(monitor) = monitor_pidfd(&self.monitor_pidfile, &self.cuuid) {
            let _ = monitor.send_signal(libc::SIGKILL);
            if !matches!(monitor.exited(limit).await, Ok(true)) {
                warn!(pid = monitor.pid(), "conmon's monitor survived SIGKILL");
            }
        }
        // The parent is gone: a monitor it forked before writing the
        // pidfile is found by its command line.
        for monitor in launch_processes(&self.cuuid) {
            let _ = monitor.send_signal(libc::SIGKILL);
            if !matches!(monitor.exited(limit).await, Ok(true)) {
                warn!(pid = monitor.pid(), "conmon's monitor survived SIGKILL");
            }
        }
        self.armed = false;
    }
}

/// Every live process whose command line holds `-u cuuid` (conmon's
/// parent and its monitor carry the same argv), pinned by a pidfd. Used
/// once conmon's parent is gone, when no new monitor can appear, to find a
/// monitor forked before its pidfile was written.
fn launch_processes(cuuid: &str) -> Vec<PidFd> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            // Opened first, checked second: the pidfd pins the process the
            // command line belongs to.
            let pidfd = PidFd::open(pid).ok().flatten()?;
            is_monitor_of(pid, cuuid).then_some(pidfd)
        })
        .collect()
}

/// SIGKILLs every process of `cuuid`'s launch (see [`launch_processes`]).
fn kill_launch_processes(cuuid: &str) {
    for process in launch_processes(cuuid) {
        let _ = process.send_signal(libc::SIGKILL);
    }
}

impl Drop for ConmonProcess {
    /// An abandoned launch (its future dropped) must not leave conmon to
    /// carry on: conmon treats a closed start pipe as "go".
    ///
    /// The parent may have forked the monitor without having written the
    /// pidfile yet: once the parent is reaped (it can fork no more), the
    /// monitor is found by its command line and killed, in the background
    /// when a tokio runtime is there, at once otherwise.
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut parent = self.parent.take();
        if let Some(parent) = parent.as_mut() {
            let _ = parent.start_kill();
        }
        if let Some(monitor) = monitor_pidfd(&self.monitor_pidfile, &self.cuuid) {
            let _ = monitor.send_signal(libc::SIGKILL);
        }
        let cuuid = std::mem::take(&mut self.cuuid);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Some(mut parent) = parent {
                        let _ = parent.wait().await;
                    }
                    kill_launch_processes(&cuuid);
                });
            }
            Err(_) => kill_launch_processes(&cuuid),
        }
    }
}

/// The longest runtime message an error carries: a monitor or runtime
/// may report megabytes, an error is read by people and logs.
const MAX_MESSAGE: usize = 4096;

/// `message` cut to [`MAX_MESSAGE`] bytes (on a character boundary), saying
/// how long it was.
fn bounded_message(message: String) -> String {
    if message.len() <= MAX_MESSAGE {
        return message;
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &message[..end], message.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary_and_say_their_length() {
        assert_eq!(bounded_message("short".into()), "short");
        let long = "é".repeat(5000);
        let cut = bounded_message(long);
        assert!(
            cut.ends_with("... (10000 bytes in all)"),
            "{}",
            &cut[cut.len() - 40..]
        );
        assert!(cut.len() < MAX_MESSAGE + 40);
    }
}
