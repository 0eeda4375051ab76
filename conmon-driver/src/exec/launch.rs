//! Launching an exec session: the session's id and directory, its
//! process spec, a second conmon (`-e --exec-attach`) spawned in the
//! session's directory inside the bundle, the two start bytes around the
//! attach socket, and the pid conmon reports. A launch whose caller gave up
//! is handed to a background task that waits for conmon's record, kills
//! the process it names, then conmon, and removes the session's directory.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use attach::AttachSocket;
use runtime_api::{
    ContainerDescription, ExecConfig, ExecSession, ExecSessionId, RuntimeError, Signal,
};
use state_probe::{PidFd, RuntimeStatus, StateProbe};
use sync_pipe::{PipeNumbers, SyncReader};
use tracing::debug;

use crate::errors::from_probe;
use crate::exec::completion::{enforce_timeout, remove_session_dir, signal_in_sandbox};
use crate::exec::registry::{SandboxProcess, SessionState};
use crate::exec::spec::{build_exec_process_as, write_process_spec, ExecCaller};
use crate::files::create_dir_with_mode;
use crate::files::read_pidfile;
use crate::launch::argv::ExecArgv;
use crate::launch::env::ConmonEnv;
use crate::launch::sequence::{ConmonLaunch, LaunchPlan};
use crate::layout::{ContainerLayout, SessionLayout};
use crate::runtime::ConmonRuntime;
use crate::runtime_cli::RuntimeCli;
use crate::streams::attach::from_attach;

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
pub(crate) struct Launched {
    pub(crate) session: ExecSession,
    pub(crate) files: SessionLayout,
    pub(crate) socket: Option<AttachSocket>,
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

pub(crate) async fn launch(
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
