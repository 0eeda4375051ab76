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

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use attach::AttachSocket;
use runtime_api::{
    AttachOptions, AttachOutcome, AttachStreams, ContainerDescription, ExecCompletion, ExecConfig,
    ExecHandle, ExecSession, ExecSessionId, RuntimeError, Signal,
};
use state_probe::{read_exit_file, PidFd, RuntimeStatus, StateProbe};
use sync_pipe::{PipeNumbers, SyncPipeError, SyncReader};
use tracing::{debug, warn, Instrument};

use crate::errors::from_probe;
use crate::exec::registry::{ExecRegistry, SandboxProcess, SessionState};
use crate::exec::spec::{build_exec_process_as, write_process_spec, ExecCaller};
use crate::files::create_dir_with_mode;
use crate::files::read_pidfile;
use crate::launch::argv::ExecArgv;
use crate::launch::env::ConmonEnv;
use crate::launch::process::monitor_pidfd;
use crate::launch::process_group::{kill_group, leads_own_group};
use crate::launch::sequence::{ConmonLaunch, LaunchPlan};
use crate::layout::{ContainerLayout, SessionLayout};
use crate::runtime::ConmonRuntime;
use crate::runtime_cli::{RuntimeCli, Subcommand};
use crate::streams::attach::{from_attach, prepare, pump};
use crate::LaunchStage;

/// A fresh random session id (128 bits, hex).
fn new_session_id() -> Result<ExecSessionId, RuntimeError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| RuntimeError::io("reading /dev/urandom for an exec session id", e))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    ExecSessionId::new(hex)
}

/// What a successful launch hands to the attach phase.
struct Launched {
    session: ExecSession,
    files: SessionLayout,
    socket: Option<AttachSocket>,
}

/// Refuses a container that is not running, without creating anything.
async fn require_running(rt: &ConmonRuntime, c: &ContainerDescription) -> Result<(), RuntimeError> {
    let not_running = || RuntimeError::ContainerNotRunning {
        id: c.id().to_string(),
    };
    if rt.config.exits_dir().join(c.id().as_str()).exists() {
        return Err(not_running());
    }
    // Started through the driver and still running (status.rs's rule): no
    // need to ask the runtime.
    if rt.running_from_records(c, &rt.layout(c)).is_some() {
        return Ok(());
    }
    match rt.cli.state(c.id(), rt.config.timeouts.state).await? {
        StateProbe::Gone => Err(RuntimeError::NoSuchContainer {
            id: c.id().to_string(),
        }),
        StateProbe::Present(state) if state.status == RuntimeStatus::Running => Ok(()),
        StateProbe::Present(_) => Err(not_running()),
    }
}

async fn launch(
    rt: &ConmonRuntime,
    c: &ContainerDescription,
    config: &ExecConfig,
    attach: bool,
    preserved: Option<Vec<OwnedFd>>,
) -> Result<Launched, RuntimeError> {
    config.validate()?;
    if config.terminal {
        rt.require_exec_terminal("exec with a terminal").await?;
    }
    let preserved = match preserved {
        Some(fds) if fds.len() == config.preserve_fds as usize => fds,
        Some(fds) => {
            return Err(RuntimeError::InvalidArgument(format!(
                "the exec preserves {} fds but {} were handed over",
                config.preserve_fds,
                fds.len()
            )))
        }
        None => crate::exec::preserved::callers_fds(config.preserve_fds)?,
    };
    require_running(rt, c).await?;
    let id = new_session_id()?;
    let container = ContainerLayout::new(&rt.config, c);
    let files = container.session(&id);
    create_dir_with_mode(&files.dir, 0o700)?;
    let mut run = ExecLaunch {
        rt,
        c,
        container,
        layout: files.clone(),
        launch: None,
        process: None,
        sandbox: None,
        sandboxed: false,
        settled: false,
    };
    match run.run(config, &id, attach, preserved).await {
        Ok(started) => {
            run.settled = true;
            let Started { pid, socket, sync } = started;
            let state = rt.exec_sessions.insert(
                id.clone(),
                SessionState::new(sync, run.process.take(), run.sandbox.take()),
            );
            if let Some(limit) = config.timeout {
                enforce_timeout(rt, state, &id, limit);
            }
            Ok(Launched {
                session: {
                    let mut session = ExecSession::new(id, Some(pid));
                    session.timeout = config.timeout;
                    session
                },
                files,
                socket,
            })
        }
        Err(err) => {
            run.undo().await;
            Err(err)
        }
    }
}

/// What a launch that got the process running hands back.
struct Started {
    /// The exec'd process's (host) pid.
    pid: i32,
    /// The attach socket, for an attached session.
    socket: Option<AttachSocket>,
    /// conmon's sync pipe, where the exit status comes.
    sync: SyncReader,
}

struct ExecLaunch<'a> {
    rt: &'a ConmonRuntime,
    c: &'a ContainerDescription,
    /// The container's paths.
    container: ContainerLayout,
    /// The session's paths.
    layout: SessionLayout,
    launch: Option<ConmonLaunch<'a>>,
    /// The exec'd process once conmon reported it.
    process: Option<PidFd>,
    /// The process inside the runtime's sandbox, once the runtime told.
    sandbox: Option<SandboxProcess>,
    /// Whether the runtime runs the process in a sandbox of its own (and
    /// was asked for its pid there).
    sandboxed: bool,
    /// Set once the launch succeeded or was undone.
    settled: bool,
}

impl Drop for ExecLaunch<'_> {
    /// A launch whose future was dropped. The runtime's `exec` that conmon
    /// started goes on (killing it half-way could leave its process
    /// unattended) and writes into the session's directory; so, in the
    /// background, conmon's next report is awaited within the launch's
    /// deadline, the process it names is killed, then conmon and its
    /// monitor, and only then is the directory removed. In a sandboxing
    /// runtime the process is killed inside the sandbox first. Without a
    /// tokio runtime to run that on, conmon is killed (by `ConmonProcess`'s
    /// own drop) and the directory removed at once.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Some(process) = &self.process {
            let _ = process.send_signal(libc::SIGKILL);
        }
        let dir = self.layout.dir.clone();
        let (Some(launch), Ok(handle)) =
            (self.launch.take(), tokio::runtime::Handle::try_current())
        else {
            remove_session_dir(&dir);
            return;
        };
        let mut abandoned = launch.abandon();
        let exit_file = self.layout.exit_file.clone();
        let kill_wait = self.rt.config.timeouts.kill_wait;
        let in_sandbox = self.sandboxed.then(|| AbandonedInSandbox {
            cli: self.rt.cli.clone(),
            container: self.c.id().clone(),
            known: self.sandbox.take(),
            pidfile: self.layout.sandbox_pidfile.clone(),
            limit: self.rt.config.timeouts.signal,
        });
        handle.spawn(async move {
            let record = abandoned.read_next_record().await;
            if let Some(in_sandbox) = &in_sandbox {
                in_sandbox.kill(&exit_file).await;
            }
            if let Some(pid) = record {
                kill_abandoned_process(pid, &exit_file, kill_wait).await;
            }
            abandoned.kill_all().await;
            remove_session_dir(&dir);
        });
    }
}

/// What an abandoned launch needs to kill its process inside the runtime's
/// sandbox.
struct AbandonedInSandbox {
    cli: RuntimeCli,
    container: runtime_api::ContainerId,
    /// The process, when the launch had read its pid already.
    known: Option<SandboxProcess>,
    /// Where the runtime writes that pid otherwise.
    pidfile: PathBuf,
    limit: Duration,
}

impl AbandonedInSandbox {
    /// SIGKILLs the process inside the sandbox unless its exit file says
    /// it ended.
    async fn kill(&self, exit_file: &Path) {
        if exit_file.exists() {
            return;
        }
        let process = self.known.clone().or_else(|| {
            let pid = read_pidfile(&self.pidfile).ok().flatten()?;
            Some(SandboxProcess {
                container: self.container.clone(),
                pid,
            })
        });
        signal_in_sandbox(&self.cli, process.as_ref(), Signal::KILL, self.limit).await;
    }
}

/// Kills the process of an abandoned exec, named by conmon's record,
/// unless its exit file says it has already ended (its pid may then
/// belong to another process).
async fn kill_abandoned_process(pid: i32, exit_file: &Path, limit: Duration) {
    if pid <= 0 || exit_file.exists() {
        return;
    }
    match PidFd::open(pid) {
        Ok(Some(process)) if !exit_file.exists() => {
            let _ = process.send_signal(libc::SIGKILL);
            let _ = process.exited(limit).await;
        }
        Ok(_) => {}
        Err(e) => debug!(pid, error = %e, "an abandoned exec's process"),
    }
}

impl ExecLaunch<'_> {
    async fn run(
        &mut self,
        config: &ExecConfig,
        id: &ExecSessionId,
        attach: bool,
        preserved: Vec<OwnedFd>,
    ) -> Result<Started, RuntimeError> {
        let rt = self.rt;
        let c = self.c;
        let layout = self.layout.clone();
        let spec = oci_spec::runtime::Spec::load(&self.container.config_json).map_err(|e| {
            RuntimeError::InvalidArgument(format!(
                "cannot read {}: {e}",
                self.container.config_json.display()
            ))
        })?;
        let root = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_else(|| PathBuf::from("rootfs"));
        let rootfs = if root.is_absolute() {
            root
        } else {
            c.bundle().join(root)
        };
        let caller = if rt.config.rootless_uid.is_some() {
            ExecCaller::Rootless
        } else {
            ExecCaller::Root
        };
        let process = build_exec_process_as(&spec, &rootfs, config, caller)?;
        write_process_spec(&layout.process_spec, &process)?;
        // conmon exits without reporting the status when it cannot write
        // its exit files, so both directories must exist.
        create_dir_with_mode(&layout.exit_dir, 0o700)?;
        create_dir_with_mode(&layout.persist_dir, 0o700)?;

        let pipes = PipeNumbers::new(preserved.len() as u32, true);
        let sandboxed = rt.exec_reports_sandbox_pid().await;
        self.sandboxed = sandboxed;
        let argv = ExecArgv {
            config: &rt.config,
            runtime_path: &rt.runtime_path,
            container: c,
            session: id.as_str(),
            layout: &layout,
            json_errors: rt.listed_in(&rt.config.runtimes_with_json_errors),
            terminal: config.terminal,
            stdin: config.stdin,
            // Enforced by the driver (see the module's documentation).
            timeout_secs: None,
            exit_delay_secs: config.exit_delay.map(|d| d.as_secs()),
            preserve_fds: config.preserve_fds,
            sandbox_pidfile: sandboxed.then_some(layout.sandbox_pidfile.as_path()),
        }
        .build();
        let env: Vec<(String, String)> = ConmonEnv {
            config: &rt.config,
            container: c,
            pipes,
            listen_fds: 0,
        }
        .build()
        .into_iter()
        // Readiness belongs to the container, not to its exec sessions.
        .filter(|(key, _)| key != "NOTIFY_SOCKET")
        .collect();
        let plan = LaunchPlan {
            argv,
            env,
            cwd: &layout.dir,
            pipes,
            pass_fds: preserved,
            trailing_fds: Vec::new(),
            monitor_pidfile: layout.conmon_pidfile.clone(),
            cuuid: id.as_str(),
            oci_log: layout.oci_log.clone(),
            runtime_command: format!("{} exec {}", rt.runtime_path.display(), c.id()),
            limit: rt.config.timeouts.exec,
            passthrough: None,
        };
        let launch = self.launch.insert(ConmonLaunch::spawn(rt, c, plan).await?);
        // The first byte lets conmon fork and make the attach socket; the
        // second, once the driver is connected, runs the process.
        launch.release(false).await?;
        launch.reap_parent().await?;
        launch.read_record("the attach handshake", true).await?;
        let socket = if attach {
            let socket = AttachSocket::connect(&layout.attach_socket, launch.remaining())
                .await
                .map_err(|e| from_attach(c, e))?;
            Some(socket)
        } else {
            None
        };
        launch.release(true).await?;
        let pid = launch.read_record("the exec process's pid", false).await?;
        // Pinned now. A short process may already have exited and its pid
        // been reused. conmon writes the exit file right after reaping it:
        // a pidfd opened when that file exists may pin a stranger and is
        // dropped. (A reuse between the reaping and that write remains
        // possible, and needs the pid to cycle in microseconds.)
        let pinned = PidFd::open(pid).map_err(|e| from_probe("opening the exec's pidfd", e))?;
        self.process = pinned.filter(|_| !layout.exit_file.exists());
        // runsc writes the pid inside its sandbox before the host pid that
        // conmon just reported.
        if sandboxed {
            let pid = read_pidfile(&layout.sandbox_pidfile)?.ok_or_else(|| {
                RuntimeError::io(
                    format!("reading {}", layout.sandbox_pidfile.display()),
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the runtime's exec wrote no --internal-pid-file",
                    ),
                )
            })?;
            self.sandbox = Some(SandboxProcess {
                container: c.id().clone(),
                pid,
            });
        }
        let monitor_pid = launch.monitor_pid()?;
        let sandbox_pid = self.sandbox.as_ref().map(|s| s.pid);
        debug!(container = %c.id(), session = %id, pid, ?sandbox_pid, monitor_pid, "exec session started");
        let Some(sync) = self.launch.take().and_then(ConmonLaunch::finish) else {
            return Err(RuntimeError::io(
                "an exec session's sync pipe",
                std::io::Error::other("the launch kept no sync pipe"),
            ));
        };
        Ok(Started { pid, socket, sync })
    }

    /// Kills the exec'd process if it was started (inside the runtime's
    /// sandbox too, once its pid there is known), conmon and its monitor
    /// (which would otherwise run the process unattended: it takes a
    /// closed start pipe as "go"), and removes the session's directory.
    async fn undo(&mut self) {
        self.settled = true;
        let limit = self.rt.config.timeouts.kill_wait;
        let sandbox = self.sandbox.take();
        signal_in_sandbox(
            &self.rt.cli,
            sandbox.as_ref(),
            Signal::KILL,
            self.rt.config.timeouts.signal,
        )
        .await;
        if let Some(process) = self.process.take() {
            let _ = process.send_signal(libc::SIGKILL);
            let _ = process.exited(limit).await;
        }
        if let Some(launch) = self.launch.as_mut() {
            launch.kill_all().await;
        }
        remove_session_dir(&self.layout.dir);
    }
}

fn remove_session_dir(dir: &Path) {
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
fn enforce_timeout(
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
async fn signal_in_sandbox(
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
    use runtime_api::{ContainerId, LogDriver};

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
