//! Exec sessions: a second conmon launched with `-e --exec-attach` runs one
//! process in a running container. The launch follows podman: conmon is
//! spawned in the session's own directory inside the bundle, gets a first
//! start byte, forks; its child makes the session's attach socket and says
//! so on the attach pipe (`{"data": 0}`); the driver connects, sends the
//! second start byte, and conmon runs `RUNTIME exec` and reports the pid on
//! the sync pipe. The exit code arrives later in the session's exit file.
//! When a session ends its directory is removed and its conmon reaped.
//!
//! A session's own timeout (`ExecConfig::timeout`) is enforced here, not
//! with conmon's `-T`: conmon SIGKILLs the exec process's whole process
//! group, and runsc's host-side `exec` process is in conmon's own group, so
//! conmon killed itself without reporting while the process went on in the
//! sandbox. Here the process is killed where it runs (inside runsc's
//! sandbox through `kill --pid`, and on the host with the group it leads,
//! as conmon would), conmon reports its end as usual, and the session ends
//! with `RuntimeError::ExecTimedOut`.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use runtime_api::{
    AttachOptions, AttachOutcome, AttachStreams, ContainerDescription, ExecCompletion, ExecConfig,
    ExecHandle, ExecSession, RuntimeError, Signal,
};
use tracing::debug;

use crate::errors::from_probe;
use crate::exec::registry::{ExecRegistry, SessionState};
use crate::layout::{ContainerLayout, SessionLayout};
use crate::runtime::ConmonRuntime;
use crate::streams::attach::{from_attach, prepare, pump};

use crate::exec::completion::{signal_in_sandbox, wait_and_clean};
use crate::exec::launch::{launch, Launched};

pub(crate) async fn exec(
    rt: &ConmonRuntime,
    c: &ContainerDescription,
    config: &ExecConfig,
    streams: AttachStreams,
    options: AttachOptions,
    preserved: Option<Vec<OwnedFd>>,
) -> Result<ExecHandle, RuntimeError> {
    let keys = prepare(c, &streams, &options)?;
    let launched = launch(rt, c, config, true, preserved).await?;
    let Launched {
        session,
        files,
        socket,
    } = launched;
    let Some(socket) = socket else {
        return Err(RuntimeError::io(
            "exec attach",
            std::io::Error::other("the attach socket was not connected"),
        ));
    };
    if let Some(ready) = &options.ready {
        ready.set();
    }
    let c = c.clone();
    let terminal = config.terminal;
    let settle = Settle {
        registry: Arc::clone(&rt.exec_sessions),
        files,
        session: session.clone(),
        exit_delay: config.exit_delay.unwrap_or_default(),
        kill_wait: rt.config.timeouts.kill_wait,
        limit: rt.config.timeouts.exec_completion,
    };
    let completion = Box::pin(async move {
        complete(pump(&c, socket, streams, terminal, keys, options), settle).await
    });
    Ok(ExecHandle::new(session, completion))
}

/// What an attached session's end needs to settle it.
struct Settle {
    registry: Arc<ExecRegistry>,
    files: SessionLayout,
    session: ExecSession,
    exit_delay: Duration,
    kill_wait: Duration,
    limit: Duration,
}

/// Runs an attached session's streams to their end, then settles the
/// session: its exit status when the streams ended with the process; none
/// after a detach or a cancellation (`exec_wait` reads it later). When the
/// streams fail, the process can no longer be attached: it is killed, its
/// status read and its pending entry and files removed, and the streams'
/// error returned.
async fn complete(
    pump: impl std::future::Future<Output = Result<AttachOutcome, RuntimeError>>,
    settle: Settle,
) -> Result<ExecCompletion, RuntimeError> {
    let Settle {
        registry,
        files,
        session,
        exit_delay,
        kill_wait,
        limit,
    } = settle;
    match pump.await {
        Ok(AttachOutcome::StreamsEnded) => {
            let code =
                wait_and_clean(&registry, &files, &session, exit_delay, kill_wait, limit).await?;
            Ok(ExecCompletion::new(AttachOutcome::StreamsEnded, Some(code)))
        }
        Ok(outcome) => Ok(ExecCompletion::new(outcome, None)),
        Err(err) => {
            let pending = registry.get(&session.id);
            if let Some(process) = pending.as_ref().and_then(|s| s.process.as_ref()) {
                if let Err(e) = process.send_signal(libc::SIGKILL) {
                    debug!(session = %session.id, error = %e, "killing an exec whose streams failed");
                }
            }
            drop(pending);
            if let Err(e) = wait_and_clean(
                &registry, &files, &session, exit_delay, kill_wait, kill_wait,
            )
            .await
            {
                debug!(session = %session.id, error = %e, "settling an exec whose streams failed");
            }
            // A status that could not be read in time must not stay
            // pending for a session nobody can wait on.
            registry.remove(&session.id);
            Err(err)
        }
    }
}

pub(crate) async fn exec_detached(
    rt: &ConmonRuntime,
    c: &ContainerDescription,
    config: &ExecConfig,
) -> Result<ExecSession, RuntimeError> {
    Ok(launch(rt, c, config, false, None).await?.session)
}

/// The pidfd taken on the session's process when it started; `None` once
/// its status was read (the session is over) or for an unknown session.
fn session_process(rt: &ConmonRuntime, session: &ExecSession) -> Option<Arc<SessionState>> {
    rt.exec_sessions
        .get(&session.id)
        .filter(|state| state.process.is_some())
}

pub(crate) async fn exec_stop(
    rt: &ConmonRuntime,
    session: &ExecSession,
    timeout: Duration,
) -> Result<(), RuntimeError> {
    let operation = format!("stopping exec session {}", session.id);
    let Some(state) = session_process(rt, session) else {
        return Ok(());
    };
    let Some(pidfd) = state.process.as_ref() else {
        return Ok(());
    };
    let signal_limit = rt.config.timeouts.signal;
    if !timeout.is_zero() {
        if state.sandbox.is_some() {
            // The host-side process would die of SIGTERM without passing
            // it on; it ends when the sandboxed process does.
            signal_in_sandbox(&rt.cli, state.sandbox.as_ref(), Signal::TERM, signal_limit).await;
        } else {
            pidfd
                .send_signal(libc::SIGTERM)
                .map_err(|e| from_probe(&operation, e))?;
        }
        if pidfd
            .exited(timeout)
            .await
            .map_err(|e| from_probe(&operation, e))?
        {
            return Ok(());
        }
    }
    signal_in_sandbox(&rt.cli, state.sandbox.as_ref(), Signal::KILL, signal_limit).await;
    pidfd
        .send_signal(libc::SIGKILL)
        .map_err(|e| from_probe(&operation, e))?;
    let limit = rt.config.timeouts.kill_wait;
    if pidfd
        .exited(limit)
        .await
        .map_err(|e| from_probe(&operation, e))?
    {
        Ok(())
    } else {
        Err(RuntimeError::Timeout {
            operation: format!("{operation} after SIGKILL"),
            limit,
        })
    }
}

/// Whether the session's process still runs (a zombie does not).
pub(crate) async fn exec_alive(
    rt: &ConmonRuntime,
    session: &ExecSession,
) -> Result<bool, RuntimeError> {
    let operation = format!("probing exec session {}", session.id);
    let Some(state) = session_process(rt, session) else {
        return Ok(false);
    };
    match state.process.as_ref() {
        None => Ok(false),
        Some(pidfd) => Ok(!pidfd
            .exited(Duration::ZERO)
            .await
            .map_err(|e| from_probe(&operation, e))?),
    }
}

pub(crate) async fn exec_resize(
    rt: &ConmonRuntime,
    c: &ContainerDescription,
    session: &ExecSession,
    size: runtime_api::TerminalSize,
) -> Result<(), RuntimeError> {
    rt.require_exec_terminal("exec_resize_terminal").await?;
    let files = ContainerLayout::new(&rt.config, c).session(&session.id);
    let size = attach::TerminalSize::new(size.rows, size.cols);
    attach::resize(&files.ctl, size, rt.config.timeouts.attach)
        .await
        .map_err(|e| match e {
            attach::AttachError::ControlUnavailable { .. } => {
                RuntimeError::InvalidArgument(format!("exec session {} is not running", session.id))
            }
            other => from_attach(c, other),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_api::{ContainerId, ExecSessionId, LogDriver};
    use sync_pipe::SyncReader;

    #[tokio::test]
    async fn a_failed_output_pump_leaves_no_pending_exec_entry() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::ConmonConfig::new("runc", dir.path().join("tmp"));
        let c = ContainerDescription::builder(
            ContainerId::new("c1").unwrap(),
            dir.path().join("bundle"),
            dir.path().join("run"),
        )
        .log(LogDriver::None, "/dev/null")
        .build()
        .unwrap();
        let id = ExecSessionId::new("s1").unwrap();
        let files = ContainerLayout::new(&config, &c).session(&id);
        std::fs::create_dir_all(&files.dir).unwrap();

        let registry = Arc::new(ExecRegistry::default());
        // conmon's end of the sync pipe is gone: the status read ends at once.
        let (parent, _) = sync_pipe::seqpacket_pair().unwrap();
        registry.insert(
            id.clone(),
            SessionState::new(SyncReader::new(parent).unwrap(), None, None),
        );
        let settle = Settle {
            registry: Arc::clone(&registry),
            files: files.clone(),
            session: ExecSession::new(id.clone(), None),
            exit_delay: Duration::ZERO,
            kill_wait: Duration::from_secs(5),
            limit: Duration::from_secs(5),
        };
        let failing_pump = async {
            Err(RuntimeError::io(
                "attach to container c1",
                std::io::Error::other("the attach socket broke"),
            ))
        };
        let err = complete(failing_pump, settle).await.unwrap_err();
        assert!(err.to_string().contains("the attach socket broke"), "{err}");
        assert_eq!(registry.len(), 0, "the exec's pending entry leaked");
        assert!(!files.dir.exists(), "the session's directory is left");
    }
}
