//! The end of an exec session: its exit status from conmon's sync pipe or
//! exit file, its own timeout enforced by killing the process where it runs
//! (inside runsc's sandbox through `kill --pid`, on the host with the group
//! it leads), and the session's directory removed and its conmon reaped.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use runtime_api::{ExecSession, ExecSessionId, RuntimeError, Signal};
use state_probe::read_exit_file;
use sync_pipe::{SyncPipeError, SyncReader};
use tracing::{debug, warn, Instrument};

use crate::errors::from_probe;
use crate::exec::registry::{ExecRegistry, SandboxProcess, SessionState};
use crate::launch::process::monitor_pidfd;
use crate::launch::process_group::{kill_group, leads_own_group};
use crate::layout::SessionLayout;
use crate::runtime::ConmonRuntime;
use crate::runtime_cli::{RuntimeCli, Subcommand};
use crate::LaunchStage;

pub(crate) fn remove_session_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "cannot remove an exec session's directory")
        }
    }
}

/// The exit status conmon sends on the sync pipe after the exec's pid.
async fn read_exit_status(
    sync: &mut SyncReader,
    files: &SessionLayout,
    limit: Duration,
) -> Result<i32, RuntimeError> {
    let operation = "waiting for an exec session to exit";
    match sync.read_record(limit).await {
        Ok(record) if !record.is_failure() => i32::try_from(record.data).map_err(|_| {
            crate::LaunchError::new(
                LaunchStage::SyncRecord,
                format!("conmon reported an impossible exit status {}", record.data),
                String::new(),
            )
            .into_runtime_error("an exec session")
        }),
        // conmon is never given its own `-T` here, so a failure record is
        // a failure, whatever its words.
        Ok(record) => Err(crate::LaunchError::new(
            LaunchStage::SyncRecord,
            format!(
                "conmon reported failure {}: {}",
                record.data,
                record.message.unwrap_or_default()
            ),
            String::new(),
        )
        .into_runtime_error("an exec session")),
        Err(SyncPipeError::Timeout { .. }) => Err(RuntimeError::Timeout {
            operation: operation.into(),
            limit,
        }),
        Err(SyncPipeError::Eof) => match read_exit_file(&files.exit_file) {
            Ok(Some(record)) => Ok(record.code),
            Ok(None) => Err(crate::LaunchError::new(
                LaunchStage::SyncRecord,
                "the exec session's conmon exited without reporting an exit status",
                String::new(),
            )
            .into_runtime_error("an exec session")),
            Err(e) => Err(from_probe(operation, e)),
        },
        Err(e) => {
            Err(
                crate::LaunchError::new(LaunchStage::SyncRecord, e.to_string(), String::new())
                    .into_runtime_error("an exec session"),
            )
        }
    }
}

/// Reads the exit status from the exit file when no sync pipe is pending
/// (a conmon that writes one, or a session launched by another process).
async fn wait_exit_file(
    watcher: &state_probe::ExitWatcher,
    files: &SessionLayout,
    session: &ExecSessionId,
    limit: Duration,
) -> Result<i32, RuntimeError> {
    let operation = "waiting for an exec session to exit";
    let monitor = monitor_pidfd(&files.conmon_pidfile, session.as_str());
    let no_status = || {
        crate::LaunchError::new(
            LaunchStage::SyncRecord,
            "no exit status is known for this exec session",
            String::new(),
        )
        .into_runtime_error("an exec session")
    };
    match monitor {
        Some(monitor) => tokio::select! {
            record = watcher.wait(&files.exit_file, limit) =>
                record.map(|r| r.code).map_err(|e| from_probe(operation, e)),
            gone = monitor.exited(limit) => match gone {
                Ok(true) => read_exit_file(&files.exit_file)
                    .map_err(|e| from_probe(operation, e))?
                    .map(|r| r.code)
                    .ok_or_else(no_status),
                Ok(false) => Err(RuntimeError::Timeout { operation: operation.into(), limit }),
                Err(e) => Err(from_probe(operation, e)),
            },
        },
        None => read_exit_file(&files.exit_file)
            .map_err(|e| from_probe(operation, e))?
            .map(|r| r.code)
            .ok_or_else(no_status),
    }
}

/// Waits for conmon to leave (killing one that lingers past the exit delay)
/// and removes the session's directory.
async fn finish_session(
    files: &SessionLayout,
    session: &ExecSessionId,
    exit_delay: Duration,
    kill_wait: Duration,
) {
    // Only a process that is this session's conmon: the pid may be reused.
    if let Some(monitor) = monitor_pidfd(&files.conmon_pidfile, session.as_str()) {
        if !matches!(monitor.exited(exit_delay + kill_wait).await, Ok(true)) {
            warn!(monitor = monitor.pid(), "exec conmon lingers; killing it");
            let _ = monitor.send_signal(libc::SIGKILL);
            let _ = monitor.exited(kill_wait).await;
        }
    }
    remove_session_dir(&files.dir);
}

/// The session's exit code (from its sync pipe when one is pending, else
/// its exit file), then the session's cleanup.
pub(crate) async fn wait_and_clean(
    registry: &ExecRegistry,
    files: &SessionLayout,
    session: &ExecSession,
    exit_delay: Duration,
    kill_wait: Duration,
    limit: Duration,
) -> Result<i32, RuntimeError> {
    let state = registry.get(&session.id);
    let report = match &state {
        Some(state) => {
            // The reader stays in the state until a result is definitive,
            // so a wait dropped (or timed out) here leaves it for the next.
            // Concurrent waits take turns within their own limits.
            let deadline = state_probe::deadline_after(limit);
            let Ok(mut sync) = tokio::time::timeout_at(deadline, state.sync.lock()).await else {
                return Err(RuntimeError::Timeout {
                    operation: format!(
                        "waiting for exec session {} while another wait reads its status",
                        session.id
                    ),
                    limit,
                });
            };
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match read_exit_status(&mut sync, files, remaining).await {
                Err(RuntimeError::Timeout { operation, limit }) => {
                    return Err(RuntimeError::Timeout { operation, limit });
                }
                other => {
                    registry.remove(&session.id);
                    other
                }
            }
        }
        None => wait_exit_file(registry.exit_watcher(), files, &session.id, limit).await,
    };
    // Whatever the outcome, the process is over: the session is done.
    finish_session(files, &session.id, exit_delay, kill_wait).await;
    let timed_out = state
        .as_ref()
        .is_some_and(|state| state.timed_out.load(Ordering::SeqCst));
    if timed_out {
        // The code is that of the kill; how it was reported matters no more.
        if let Err(e) = &report {
            debug!(session = %session.id, error = %e, "the status of a timed-out exec");
        }
        return Err(RuntimeError::ExecTimedOut {
            session: session.id.to_string(),
            limit: session.timeout.unwrap_or_default(),
        });
    }
    report
}

/// Kills the session's process once it runs past `limit`, unless it ended
/// before: a task of its own, so that the limit holds whether or not
/// anyone waits on the session. It ends with the process.
pub(crate) fn enforce_timeout(
    rt: &ConmonRuntime,
    state: Arc<SessionState>,
    session: &ExecSessionId,
    limit: Duration,
) {
    if state.process.is_none() {
        // Already over when it was to be pinned.
        return;
    }
    let cli = rt.cli.clone();
    let signal_limit = rt.config.timeouts.signal;
    let kill_wait = rt.config.timeouts.kill_wait;
    let span = tracing::info_span!("exec_timeout", session = %session);
    tokio::spawn(
        async move {
            let Some(process) = state.process.as_ref() else {
                return;
            };
            match process.exited(limit).await {
                Ok(true) => {}
                Ok(false) => {
                    // Recorded first: whoever reads the end must see why.
                    state.timed_out.store(true, Ordering::SeqCst);
                    debug!(?limit, "exec ran past its timeout; killing it");
                    kill_session_process(&cli, &state, signal_limit, kill_wait).await;
                }
                Err(e) => warn!(error = %e, "cannot watch an exec for its timeout"),
            }
        }
        .instrument(span),
    );
}

/// SIGKILLs a session's process where it runs: inside the runtime's
/// sandbox through `kill --pid`, and on the host with the process group
/// it leads (as conmon's `-T` does), or alone when it leads none (runsc's
/// host-side `exec` is in conmon's group).
async fn kill_session_process(
    cli: &RuntimeCli,
    state: &SessionState,
    signal_limit: Duration,
    kill_wait: Duration,
) {
    signal_in_sandbox(cli, state.sandbox.as_ref(), Signal::KILL, signal_limit).await;
    let Some(process) = state.process.as_ref() else {
        return;
    };
    if leads_own_group(process) {
        let survivors = kill_group(process.pid(), kill_wait).await;
        if !survivors.is_empty() {
            warn!(?survivors, "processes of a timed-out exec survived SIGKILL");
        }
    } else if let Err(e) = process.send_signal(libc::SIGKILL) {
        debug!(error = %e, "killing a timed-out exec's process");
    }
}

/// Sends `signal` to an exec'd process inside the runtime's sandbox, when
/// the runtime runs it there; a failure is logged (the process may have
/// ended already).
pub(crate) async fn signal_in_sandbox(
    cli: &RuntimeCli,
    sandbox: Option<&SandboxProcess>,
    signal: Signal,
    limit: Duration,
) {
    let Some(sandbox) = sandbox else {
        return;
    };
    let sub = Subcommand::KillProcess {
        id: &sandbox.container,
        pid: sandbox.pid,
        signal,
    };
    if let Err(e) = cli.run(sub, limit).await {
        debug!(pid = sandbox.pid, %signal, error = %e, "signalling an exec inside the sandbox");
    }
}
