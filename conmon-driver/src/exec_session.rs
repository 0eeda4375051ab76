//! Exec sessions: a second conmon launched with `-e --exec-attach` runs one
//! process in a running container. The launch follows podman: conmon is
//! spawned in the session's own directory inside the bundle, gets a first
//! start byte, forks; its child makes the session's attach socket and says
//! so on the attach pipe (`{"data": 0}`); the driver connects, sends the
//! second start byte, and conmon runs `RUNTIME exec` and reports the pid on
//! the sync pipe. The exit code arrives later in the session's exit file.
//! When a session ends its directory is removed and its conmon reaped.

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attach::AttachSocket;
use runtime_api::{
    AttachOptions, AttachOutcome, AttachStreams, ContainerDescription, ExecCompletion, ExecConfig,
    ExecHandle, ExecSession, ExecSessionId, RuntimeError,
};
use state_probe::{read_exit_file, PidFd, RuntimeStatus, StateProbe};
use sync_pipe::{seqpacket_pair, FdPlan, PipeNumbers, StartSignal, SyncPipeError, SyncReader};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::argv::ExecArgv;
use crate::attach_session::{from_attach, prepare, pump};
use crate::conmon_process::{monitor_pidfd, ConmonProcess};
use crate::env::ConmonEnv;
use crate::errors::from_probe;
use crate::exec_spec::{build_exec_process, write_process_spec};
use crate::files::{create_dir_with_mode, read_pidfile};
use crate::runtime::ConmonRuntime;
use crate::LaunchStage;

/// The files of one session, all under its directory in the bundle.
#[derive(Debug, Clone)]
pub(crate) struct SessionFiles {
    pub(crate) dir: PathBuf,
    pub(crate) exit_file: PathBuf,
    pub(crate) conmon_pidfile: PathBuf,
    pub(crate) oci_log: PathBuf,
}

impl SessionFiles {
    pub(crate) fn new(c: &ContainerDescription, id: &ExecSessionId) -> Self {
        let dir = c.bundle().join(format!("exec-{id}"));
        Self {
            // conmon names exit files after the container (`-c`), which is
            // why every session has an exit directory of its own.
            exit_file: ExecArgv::exit_dir(&dir).join(c.id().as_str()),
            conmon_pidfile: ExecArgv::conmon_pidfile(&dir),
            oci_log: ExecArgv::oci_log(&dir),
            dir,
        }
    }

    pub(crate) fn attach_socket(&self) -> PathBuf {
        self.dir.join("attach")
    }

    pub(crate) fn ctl(&self) -> PathBuf {
        self.dir.join("ctl")
    }
}

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
    files: SessionFiles,
    socket: Option<AttachSocket>,
}

/// What the driver holds of a running exec session until its exit status
/// has been read.
#[derive(Debug)]
pub(crate) struct SessionState {
    /// The sync pipe: conmon 2.1 reports an exec's exit status there (and
    /// in exit files only when it can write them). Behind an async mutex so
    /// that a wait dropped half-way leaves it for the next one.
    sync: tokio::sync::Mutex<SyncReader>,
    /// The exec'd process, pinned while it was known to be alive, so that
    /// stop and liveness never reach a recycled pid.
    process: Option<PidFd>,
}

/// Sessions whose exit status nobody has read yet, by session id.
pub(crate) type PendingExits = Arc<Mutex<HashMap<String, Arc<SessionState>>>>;

/// Refuses a container that is not running, without creating anything.
async fn require_running(rt: &ConmonRuntime, c: &ContainerDescription) -> Result<(), RuntimeError> {
    let not_running = || RuntimeError::ContainerNotRunning {
        id: c.id().to_string(),
    };
    if rt.config.exits_dir().join(c.id().as_str()).exists() {
        return Err(not_running());
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
) -> Result<Launched, RuntimeError> {
    config.validate()?;
    require_running(rt, c).await?;
    let id = new_session_id()?;
    let files = SessionFiles::new(c, &id);
    create_dir_with_mode(&files.dir, 0o700)?;
    let mut run = ExecLaunch {
        rt,
        c,
        files: files.clone(),
        conmon: None,
        process: None,
        settled: false,
    };
    match run.run(config, &id, attach).await {
        Ok((pid, socket, sync)) => {
            run.settled = true;
            if let Some(conmon) = run.conmon.as_mut() {
                conmon.disarm();
            }
            let state = Arc::new(SessionState {
                sync: tokio::sync::Mutex::new(sync),
                process: run.process.take(),
            });
            lock(&rt.pending_exits).insert(id.to_string(), state);
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

struct ExecLaunch<'a> {
    rt: &'a ConmonRuntime,
    c: &'a ContainerDescription,
    files: SessionFiles,
    conmon: Option<ConmonProcess>,
    /// The exec'd process once conmon reported it.
    process: Option<PidFd>,
    /// Set once the launch succeeded or was undone.
    settled: bool,
}

impl Drop for ExecLaunch<'_> {
    /// A launch whose future was dropped: conmon and its monitor are
    /// killed by `ConmonProcess`'s own drop; the process and the session's
    /// files go here.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Some(process) = &self.process {
            let _ = process.send_signal(libc::SIGKILL);
        }
        remove_session_dir(&self.files.dir);
    }
}

impl ExecLaunch<'_> {
    async fn run(
        &mut self,
        config: &ExecConfig,
        id: &ExecSessionId,
        attach: bool,
    ) -> Result<(i32, Option<AttachSocket>, SyncReader), RuntimeError> {
        let rt = self.rt;
        let c = self.c;
        let limit = rt.config.timeouts.exec;
        let deadline = Instant::now() + limit;
        let timed_out = |what: &str| RuntimeError::Timeout {
            operation: format!("{what} of an exec session in container {}", c.id()),
            limit,
        };
        let spawn_err = |e: SyncPipeError| {
            crate::LaunchError::new(LaunchStage::Spawn, e.to_string(), String::new())
                .into_runtime_error("an exec session")
        };

        let spec = oci_spec::runtime::Spec::load(c.bundle().join("config.json")).map_err(|e| {
            RuntimeError::InvalidArgument(format!(
                "cannot read {}: {e}",
                c.bundle().join("config.json").display()
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
        let process = build_exec_process(&spec, &rootfs, config)?;
        let process_spec = write_process_spec(&self.files.dir, &process)?;
        // conmon exits without reporting the status when it cannot write
        // its exit files, so both directories must exist.
        create_dir_with_mode(&ExecArgv::exit_dir(&self.files.dir), 0o700)?;
        create_dir_with_mode(&ExecArgv::persist_dir(&self.files.dir), 0o700)?;

        let (sync_parent, sync_child) = seqpacket_pair().map_err(spawn_err)?;
        let (start_parent, start_child) = seqpacket_pair().map_err(spawn_err)?;
        let (attach_parent, attach_child) = seqpacket_pair().map_err(spawn_err)?;
        let numbers = PipeNumbers::new(0, true);
        let mut plan = FdPlan::new();
        plan.place(sync_child.as_raw_fd(), numbers.sync)
            .map_err(spawn_err)?;
        plan.place(start_child.as_raw_fd(), numbers.start)
            .map_err(spawn_err)?;
        if let Some(attach_number) = numbers.attach {
            plan.place(attach_child.as_raw_fd(), attach_number)
                .map_err(spawn_err)?;
        }
        plan.seal_unplaced();

        let json_errors = rt.listed_in(&rt.config.runtimes_with_json_errors);
        let argv = ExecArgv {
            config: &rt.config,
            runtime_path: &rt.runtime_path,
            container: c,
            session: id.as_str(),
            session_dir: &self.files.dir,
            process_spec: &process_spec,
            json_errors,
            terminal: config.terminal,
            stdin: config.stdin,
            timeout_secs: config.timeout.map(|t| t.as_secs().max(1)),
            exit_delay_secs: config.exit_delay.map(|d| d.as_secs()),
        }
        .build();
        let env: Vec<(String, String)> = ConmonEnv {
            config: &rt.config,
            container: c,
            pipes: numbers,
            listen_fds: 0,
        }
        .build()
        .into_iter()
        // Readiness belongs to the container, not to its exec sessions.
        .filter(|(key, _)| key != "NOTIFY_SOCKET")
        .collect();

        let mut cmd = tokio::process::Command::new(&rt.conmon_path);
        cmd.args(&argv)
            .env_clear()
            .envs(env)
            .current_dir(&self.files.dir);
        plan.install_tokio(&mut cmd);
        debug!(container = %c.id(), session = %id, ?argv, "spawning exec conmon");
        let conmon = self.conmon.insert(ConmonProcess::spawn(
            cmd,
            &rt.conmon_path,
            self.files.conmon_pidfile.clone(),
            id.as_str(),
        )?);
        let conmon_pid = conmon.pid();
        drop((sync_child, start_child, attach_child));

        let mut sync = SyncReader::new(sync_parent).map_err(spawn_err)?;
        let mut attach_pipe = SyncReader::new(attach_parent).map_err(spawn_err)?;
        // Like the container's conmon (podman does the same for exec):
        // placed before the start byte; problems are logged warnings.
        let _ = crate::placement::place_conmon(&rt.config, c, conmon_pid).await;
        let start = StartSignal::new(start_parent);
        if let Err(e) = start.send_byte() {
            if !matches!(e, SyncPipeError::PeerGone) {
                return Err(self.monitor_failed(LaunchStage::StartSignal, e.to_string()));
            }
        }
        let Some(conmon) = self.conmon.as_mut() else {
            return Err(self.monitor_failed(LaunchStage::ParentExit, "not spawned".into()));
        };
        let Some(status) = conmon.wait_parent(deadline).await? else {
            return Err(timed_out("conmon launch"));
        };
        if !status.success() {
            return Err(self.monitor_failed(
                LaunchStage::ParentExit,
                format!("conmon exited with {status}"),
            ));
        }

        let remaining = || deadline.saturating_duration_since(Instant::now());
        match attach_pipe.read_record(remaining()).await {
            Ok(record) if !record.is_failure() => {}
            Ok(record) => return Err(self.runtime_failure(record.message.as_deref())),
            Err(SyncPipeError::Timeout { .. }) => return Err(timed_out("the attach handshake")),
            Err(SyncPipeError::Eof) => return Err(self.runtime_failure(None)),
            Err(e) => return Err(self.monitor_failed(LaunchStage::SyncRecord, e.to_string())),
        }
        let socket = if attach {
            let socket = AttachSocket::connect(&self.files.attach_socket(), remaining())
                .await
                .map_err(|e| from_attach(c, e))?;
            Some(socket)
        } else {
            None
        };
        if let Err(e) = start.send() {
            return Err(self.monitor_failed(LaunchStage::StartSignal, e.to_string()));
        }
        let pid = match sync.read_record(remaining()).await {
            Ok(record) if !record.is_failure() => i32::try_from(record.data).map_err(|_| {
                self.monitor_failed(
                    LaunchStage::SyncRecord,
                    format!("conmon reported an impossible pid {}", record.data),
                )
            })?,
            Ok(record) => return Err(self.runtime_failure(record.message.as_deref())),
            Err(SyncPipeError::Timeout { .. }) => return Err(timed_out("the start")),
            Err(SyncPipeError::Eof) => return Err(self.runtime_failure(None)),
            Err(e) => return Err(self.monitor_failed(LaunchStage::SyncRecord, e.to_string())),
        };
        // Pinned now, while the process is known to run.
        self.process = PidFd::open(pid).map_err(|e| from_probe("opening the exec's pidfd", e))?;
        let monitor_pid = read_pidfile(&self.files.conmon_pidfile)?.ok_or_else(|| {
            self.monitor_failed(LaunchStage::Pidfile, "conmon wrote no pidfile".into())
        })?;
        debug!(container = %c.id(), session = %id, pid, monitor_pid, "exec session started");
        Ok((pid, socket, sync))
    }

    fn monitor_failed(&self, stage: LaunchStage, message: String) -> RuntimeError {
        match &self.conmon {
            Some(conmon) => conmon.monitor_failed(stage, message),
            None => crate::LaunchError::new(stage, message, String::new())
                .into_runtime_error("an exec session"),
        }
    }

    /// The runtime's error log first, then conmon's message, classified as
    /// podman does (126 permission denied, 127 not found).
    fn runtime_failure(&self, conmon_message: Option<&str>) -> RuntimeError {
        let fallback = "conmon closed the sync pipe without reporting the exec process";
        match &self.conmon {
            Some(conmon) => conmon.runtime_failure(
                &self.rt.config.runtime_name,
                format!("{} exec {}", self.rt.runtime_path.display(), self.c.id()),
                &self.files.oci_log,
                conmon_message,
                fallback,
            ),
            None => self.monitor_failed(LaunchStage::SyncRecord, fallback.into()),
        }
    }

    /// Kills the exec'd process if it was started, conmon and its monitor
    /// (which would otherwise run the process unattended: it takes a
    /// closed start pipe as "go"), and removes the session's directory.
    async fn undo(&mut self) {
        self.settled = true;
        let limit = self.rt.config.timeouts.kill_wait;
        if let Some(process) = self.process.take() {
            let _ = process.send_signal(libc::SIGKILL);
            let _ = process.exited(limit).await;
        }
        if let Some(conmon) = self.conmon.as_mut() {
            conmon.kill_all(limit).await;
        }
        remove_session_dir(&self.files.dir);
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

/// How an exec session ended, as conmon reported it.
enum ExitReport {
    /// The process exited with this code.
    Code(i32),
    /// conmon killed the process when its `-T` limit passed.
    KilledAfterTimeout,
}

/// The exit status conmon sends on the sync pipe after the exec's pid.
async fn read_exit_status(
    sync: &mut SyncReader,
    files: &SessionFiles,
    limit: Duration,
) -> Result<ExitReport, RuntimeError> {
    let operation = "waiting for an exec session to exit";
    match sync.read_record(limit).await {
        Ok(record) if !record.is_failure() => i32::try_from(record.data)
            .map(ExitReport::Code)
            .map_err(|_| {
                crate::LaunchError::new(
                    LaunchStage::SyncRecord,
                    format!("conmon reported an impossible exit status {}", record.data),
                    String::new(),
                )
                .into_runtime_error("an exec session")
            }),
        Ok(record) => {
            let message = record.message.unwrap_or_default();
            if message.contains("timed out") {
                Ok(ExitReport::KilledAfterTimeout)
            } else {
                Err(crate::LaunchError::new(
                    LaunchStage::SyncRecord,
                    format!("conmon reported failure {}: {message}", record.data),
                    String::new(),
                )
                .into_runtime_error("an exec session"))
            }
        }
        Err(SyncPipeError::Timeout { .. }) => Err(RuntimeError::Timeout {
            operation: operation.into(),
            limit,
        }),
        Err(SyncPipeError::Eof) => match read_exit_file(&files.exit_file) {
            Ok(Some(record)) => Ok(ExitReport::Code(record.code)),
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
    files: &SessionFiles,
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
            record = state_probe::wait_for_exit_file(&files.exit_file, limit) =>
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
    files: &SessionFiles,
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
    pending: &PendingExits,
    files: &SessionFiles,
    session: &ExecSession,
    exit_delay: Duration,
    kill_wait: Duration,
    limit: Duration,
) -> Result<i32, RuntimeError> {
    let state = lock(pending).get(session.id.as_str()).cloned();
    let report = match state {
        Some(state) => {
            // The reader stays in the state until a result is definitive,
            // so a wait dropped (or timed out) here leaves it for the next.
            let mut sync = state.sync.lock().await;
            match read_exit_status(&mut sync, files, limit).await {
                Err(RuntimeError::Timeout { operation, limit }) => {
                    return Err(RuntimeError::Timeout { operation, limit });
                }
                other => {
                    lock(pending).remove(session.id.as_str());
                    other
                }
            }
        }
        None => wait_exit_file(files, &session.id, limit)
            .await
            .map(ExitReport::Code),
    };
    // Whatever the outcome, the process is over: the session is done.
    finish_session(files, &session.id, exit_delay, kill_wait).await;
    match report? {
        // conmon writes -1 to the exit files of an exec it killed at its
        // timeout (the sync pipe says so in words).
        ExitReport::Code(-1) if session.timeout.is_some() => Err(RuntimeError::Timeout {
            operation: format!("exec session {} (conmon killed its process)", session.id),
            limit: session.timeout.unwrap_or_default(),
        }),
        ExitReport::Code(code) => Ok(code),
        ExitReport::KilledAfterTimeout => Err(RuntimeError::Timeout {
            operation: format!("exec session {} (conmon killed its process)", session.id),
            limit: session.timeout.unwrap_or_default(),
        }),
    }
}

fn lock(pending: &PendingExits) -> std::sync::MutexGuard<'_, HashMap<String, Arc<SessionState>>> {
    // A panic while holding the lock cannot leave the map inconsistent:
    // every critical section is a single insert or remove.
    pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) async fn exec(
    rt: &ConmonRuntime,
    c: &ContainerDescription,
    config: &ExecConfig,
    streams: AttachStreams,
    options: AttachOptions,
) -> Result<ExecHandle, RuntimeError> {
    let keys = prepare(c, &streams, &options)?;
    let launched = launch(rt, c, config, true).await?;
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
    let exit_delay = config.exit_delay.unwrap_or_default();
    let kill_wait = rt.config.timeouts.kill_wait;
    let completion_limit = rt.config.timeouts.exec_completion;
    let pending = Arc::clone(&rt.pending_exits);
    let session_for_wait = session.clone();
    let completion = Box::pin(async move {
        let outcome = pump(&c, socket, streams, terminal, keys, options).await?;
        let exit_code = match outcome {
            AttachOutcome::StreamsEnded => Some(
                wait_and_clean(
                    &pending,
                    &files,
                    &session_for_wait,
                    exit_delay,
                    kill_wait,
                    completion_limit,
                )
                .await?,
            ),
            // The process goes on; `exec_wait` reads its status later.
            AttachOutcome::Detached | AttachOutcome::Cancelled => None,
        };
        Ok(ExecCompletion::new(outcome, exit_code))
    });
    Ok(ExecHandle::new(session, completion))
}

pub(crate) async fn exec_detached(
    rt: &ConmonRuntime,
    c: &ContainerDescription,
    config: &ExecConfig,
) -> Result<ExecSession, RuntimeError> {
    Ok(launch(rt, c, config, false).await?.session)
}

/// The pidfd taken on the session's process when it started; `None` once
/// its status was read (the session is over) or for an unknown session.
fn session_process(rt: &ConmonRuntime, session: &ExecSession) -> Option<Arc<SessionState>> {
    lock(&rt.pending_exits)
        .get(session.id.as_str())
        .cloned()
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
    if !timeout.is_zero() {
        pidfd
            .send_signal(libc::SIGTERM)
            .map_err(|e| from_probe(&operation, e))?;
        if pidfd
            .exited(timeout)
            .await
            .map_err(|e| from_probe(&operation, e))?
        {
            return Ok(());
        }
    }
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
    let files = SessionFiles::new(c, &session.id);
    let size = attach::TerminalSize::new(size.rows, size.cols).map_err(|e| from_attach(c, e))?;
    attach::resize(&files.ctl(), size, rt.config.timeouts.attach)
        .await
        .map_err(|e| match e {
            attach::AttachError::ControlUnavailable { .. } => {
                RuntimeError::InvalidArgument(format!("exec session {} is not running", session.id))
            }
            other => from_attach(c, other),
        })
}
