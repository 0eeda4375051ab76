//! Exec sessions: a second conmon launched with `-e --exec-attach` runs one
//! process in a running container. The launch follows podman: conmon is
//! spawned in the session's own directory inside the bundle, gets a first
//! start byte, forks; its child makes the session's attach socket and says
//! so on the attach pipe (`{"data": 0}`); the driver connects, sends the
//! second start byte, and conmon runs `RUNTIME exec` and reports the pid on
//! the sync pipe. The exit code arrives later in the session's exit file.
//! When a session ends its directory is removed and its conmon reaped.

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attach::AttachSocket;
use runtime_api::{
    AttachOptions, AttachOutcome, AttachStreams, ContainerDescription, ExecCompletion, ExecConfig,
    ExecHandle, ExecSession, ExecSessionId, MonitorStage, RuntimeError,
};
use state_probe::{read_exit_file, PidFd, RuntimeStatus, StateProbe};
use sync_pipe::{seqpacket_pair, FdPlan, PipeNumbers, StartSignal, SyncPipeError, SyncReader};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::argv::ExecArgv;
use crate::attach_session::{from_attach, prepare, pump};
use crate::env::ConmonEnv;
use crate::errors::{from_probe, oci_runtime_error};
use crate::exec_spec::{build_exec_process, write_process_spec};
use crate::files::{create_dir_with_mode, read_pidfile};
use crate::process_group::kill_group;
use crate::runtime::ConmonRuntime;

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
            conmon_pidfile: dir.join("conmon.pid"),
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
    sync: SyncReader,
}

/// Sync pipes of exec sessions whose exit status nobody has read yet, by
/// session id: conmon 2.1 reports an exec's exit status on the sync pipe
/// only (newer versions also write the exit file, which is read when no
/// pipe is pending).
pub(crate) type PendingExits = Arc<Mutex<HashMap<String, SyncReader>>>;

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
        stderr: None,
        conmon: None,
        pgid: None,
    };
    match run.run(config, &id, attach).await {
        Ok((pid, monitor_pid, socket, sync)) => Ok(Launched {
            session: ExecSession {
                id,
                pid,
                monitor_pid,
                timeout: config.timeout,
            },
            files,
            socket,
            sync,
        }),
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
    stderr: Option<std::fs::File>,
    conmon: Option<tokio::process::Child>,
    pgid: Option<i32>,
}

impl ExecLaunch<'_> {
    async fn run(
        &mut self,
        config: &ExecConfig,
        id: &ExecSessionId,
        attach: bool,
    ) -> Result<(i32, i32, Option<AttachSocket>, SyncReader), RuntimeError> {
        let rt = self.rt;
        let c = self.c;
        let limit = rt.config.timeouts.exec;
        let deadline = Instant::now() + limit;
        let timed_out = |what: &str| RuntimeError::Timeout {
            operation: format!("{what} of an exec session in container {}", c.id()),
            limit,
        };
        let spawn_err = |e: SyncPipeError| RuntimeError::MonitorFailed {
            stage: MonitorStage::Spawn,
            message: e.to_string(),
            stderr: String::new(),
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
        let mut argv = ExecArgv {
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
        argv.push("--conmon-pidfile".into());
        argv.push(self.files.conmon_pidfile.clone().into());
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

        let stderr = tempfile::tempfile()
            .map_err(|e| RuntimeError::io("creating a file for conmon's stderr", e))?;
        let stderr_for_child = stderr
            .try_clone()
            .map_err(|e| RuntimeError::io("duplicating conmon's stderr file", e))?;
        self.stderr = Some(stderr);
        let mut cmd = tokio::process::Command::new(&rt.conmon_path);
        cmd.args(&argv)
            .env_clear()
            .envs(env)
            .current_dir(&self.files.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr_for_child)
            .process_group(0);
        plan.install_tokio(&mut cmd);
        debug!(container = %c.id(), session = %id, ?argv, "spawning exec conmon");
        let child = cmd.spawn().map_err(|e| RuntimeError::MonitorFailed {
            stage: MonitorStage::Spawn,
            message: format!("cannot execute {}: {e}", rt.conmon_path.display()),
            stderr: String::new(),
        })?;
        self.pgid = child.id().map(|pid| pid as i32);
        self.conmon = Some(child);
        drop((sync_child, start_child, attach_child));

        let mut sync = SyncReader::new(sync_parent).map_err(spawn_err)?;
        let mut attach_pipe = SyncReader::new(attach_parent).map_err(spawn_err)?;
        // Like the container's conmon (podman does the same for exec):
        // placed before the start byte; problems are logged warnings.
        let _ = crate::placement::place_conmon(&rt.config, c, self.pgid.map(|p| p as u32)).await;
        let start = StartSignal::new(start_parent);
        if let Err(e) = start.send_byte() {
            if !matches!(e, SyncPipeError::PeerGone) {
                return Err(self.monitor_failed(MonitorStage::StartSignal, e.to_string()));
            }
        }
        let status = {
            let Some(child) = self.conmon.as_mut() else {
                return Err(self.monitor_failed(MonitorStage::ParentExit, "not spawned".into()));
            };
            match tokio::time::timeout_at(deadline, child.wait()).await {
                Ok(Ok(status)) => status,
                Ok(Err(e)) => return Err(RuntimeError::io("waiting for conmon", e)),
                Err(_) => return Err(timed_out("conmon launch")),
            }
        };
        self.conmon = None;
        if !status.success() {
            return Err(self.monitor_failed(
                MonitorStage::ParentExit,
                format!("conmon exited with {status}"),
            ));
        }

        let remaining = || deadline.saturating_duration_since(Instant::now());
        match attach_pipe.read_record(remaining()).await {
            Ok(record) if !record.is_failure() => {}
            Ok(record) => return Err(self.runtime_failure(record.message.as_deref())),
            Err(SyncPipeError::Timeout { .. }) => return Err(timed_out("the attach handshake")),
            Err(SyncPipeError::Eof) => return Err(self.runtime_failure(None)),
            Err(e) => return Err(self.monitor_failed(MonitorStage::SyncRecord, e.to_string())),
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
            return Err(self.monitor_failed(MonitorStage::StartSignal, e.to_string()));
        }
        let pid = match sync.read_record(remaining()).await {
            Ok(record) if !record.is_failure() => i32::try_from(record.data).map_err(|_| {
                self.monitor_failed(
                    MonitorStage::SyncRecord,
                    format!("conmon reported an impossible pid {}", record.data),
                )
            })?,
            Ok(record) => return Err(self.runtime_failure(record.message.as_deref())),
            Err(SyncPipeError::Timeout { .. }) => return Err(timed_out("the start")),
            Err(SyncPipeError::Eof) => return Err(self.runtime_failure(None)),
            Err(e) => return Err(self.monitor_failed(MonitorStage::SyncRecord, e.to_string())),
        };
        let monitor_pid = read_pidfile(&self.files.conmon_pidfile)?.ok_or_else(|| {
            self.monitor_failed(MonitorStage::Pidfile, "conmon wrote no pidfile".into())
        })?;
        debug!(container = %c.id(), session = %id, pid, monitor_pid, "exec session started");
        Ok((pid, monitor_pid, socket, sync))
    }

    fn stderr_text(&self) -> String {
        let mut text = String::new();
        if let Some(mut file) = self.stderr.as_ref() {
            if file.rewind().is_ok() {
                let _ = file.take(64 * 1024).read_to_string(&mut text);
            }
        }
        text.trim().to_string()
    }

    fn monitor_failed(&self, stage: MonitorStage, message: String) -> RuntimeError {
        RuntimeError::MonitorFailed {
            stage,
            message,
            stderr: self.stderr_text(),
        }
    }

    /// The runtime's error log first, then conmon's message, classified as
    /// podman does (126 permission denied, 127 not found).
    fn runtime_failure(&self, conmon_message: Option<&str>) -> RuntimeError {
        let message = sync_pipe::read_oci_error(&self.files.oci_log)
            .ok()
            .flatten()
            .map(|entry| entry.msg)
            .or_else(|| conmon_message.map(str::to_string))
            .filter(|m| !m.trim().is_empty());
        match message {
            Some(message) => match oci_runtime_error(
                &self.rt.config.runtime_name,
                format!("{} exec {}", self.rt.runtime_path.display(), self.c.id()),
                &message,
            ) {
                RuntimeError::RuntimeFailed { stderr: msg, .. } => self.monitor_failed(
                    MonitorStage::SyncRecord,
                    format!("{}: {msg}", self.rt.config.runtime_name),
                ),
                classified => classified,
            },
            None => self.monitor_failed(
                MonitorStage::SyncRecord,
                "conmon closed the sync pipe without reporting the exec process".into(),
            ),
        }
    }

    async fn undo(&mut self) {
        let limit = self.rt.config.timeouts.kill_wait;
        if let Some(pgid) = self.pgid {
            let survivors = kill_group(pgid, limit).await;
            if !survivors.is_empty() {
                warn!(?survivors, "processes of an exec conmon survived SIGKILL");
            }
        }
        if let Some(mut child) = self.conmon.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(limit, child.wait()).await;
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
            .map_err(|_| RuntimeError::MonitorFailed {
                stage: MonitorStage::SyncRecord,
                message: format!("conmon reported an impossible exit status {}", record.data),
                stderr: String::new(),
            }),
        Ok(record) => {
            let message = record.message.unwrap_or_default();
            if message.contains("timed out") {
                Ok(ExitReport::KilledAfterTimeout)
            } else {
                Err(RuntimeError::MonitorFailed {
                    stage: MonitorStage::SyncRecord,
                    message: format!("conmon reported failure {}: {message}", record.data),
                    stderr: String::new(),
                })
            }
        }
        Err(SyncPipeError::Timeout { .. }) => Err(RuntimeError::Timeout {
            operation: operation.into(),
            limit,
        }),
        Err(SyncPipeError::Eof) => match read_exit_file(&files.exit_file) {
            Ok(Some(record)) => Ok(ExitReport::Code(record.code)),
            Ok(None) => Err(RuntimeError::MonitorFailed {
                stage: MonitorStage::SyncRecord,
                message: "the exec session's conmon exited without reporting an exit status".into(),
                stderr: String::new(),
            }),
            Err(e) => Err(from_probe(operation, e)),
        },
        Err(e) => Err(RuntimeError::MonitorFailed {
            stage: MonitorStage::SyncRecord,
            message: e.to_string(),
            stderr: String::new(),
        }),
    }
}

/// Reads the exit status from the exit file when no sync pipe is pending
/// (a conmon that writes one, or a session launched by another process).
async fn wait_exit_file(files: &SessionFiles, limit: Duration) -> Result<i32, RuntimeError> {
    let operation = "waiting for an exec session to exit";
    let monitor = match read_pidfile(&files.conmon_pidfile)? {
        Some(pid) => PidFd::open(pid).map_err(|e| from_probe(operation, e))?,
        None => None,
    };
    let no_status = || RuntimeError::MonitorFailed {
        stage: MonitorStage::SyncRecord,
        message: "no exit status is known for this exec session".into(),
        stderr: String::new(),
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
async fn finish_session(files: &SessionFiles, exit_delay: Duration, kill_wait: Duration) {
    if let Ok(Some(pid)) = read_pidfile(&files.conmon_pidfile) {
        if let Ok(Some(monitor)) = PidFd::open(pid) {
            if !matches!(monitor.exited(exit_delay + kill_wait).await, Ok(true)) {
                warn!(monitor = pid, "exec conmon lingers; killing it");
                let _ = monitor.send_signal(libc::SIGKILL);
                let _ = monitor.exited(kill_wait).await;
            }
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
    let reader = lock(pending).remove(session.id.as_str());
    let report = match reader {
        Some(mut sync) => match read_exit_status(&mut sync, files, limit).await {
            Err(RuntimeError::Timeout { operation, limit }) => {
                // Still running: a later wait may read it.
                lock(pending).insert(session.id.to_string(), sync);
                return Err(RuntimeError::Timeout { operation, limit });
            }
            other => other,
        },
        None => wait_exit_file(files, limit).await.map(ExitReport::Code),
    };
    // Whatever the outcome, the process is over: the session is done.
    finish_session(files, exit_delay, kill_wait).await;
    match report? {
        ExitReport::Code(code) => Ok(code),
        ExitReport::KilledAfterTimeout => Err(RuntimeError::Timeout {
            operation: format!("exec session {} (conmon killed its process)", session.id),
            limit: session.timeout.unwrap_or_default(),
        }),
    }
}

fn lock(pending: &PendingExits) -> std::sync::MutexGuard<'_, HashMap<String, SyncReader>> {
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
        sync,
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
    lock(&pending).insert(session.id.to_string(), sync);
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
        Ok(ExecCompletion { outcome, exit_code })
    });
    Ok(ExecHandle {
        session,
        completion,
    })
}

pub(crate) async fn exec_detached(
    rt: &ConmonRuntime,
    c: &ContainerDescription,
    config: &ExecConfig,
) -> Result<ExecSession, RuntimeError> {
    let launched = launch(rt, c, config, false).await?;
    lock(&rt.pending_exits).insert(launched.session.id.to_string(), launched.sync);
    Ok(launched.session)
}

pub(crate) async fn exec_stop(
    rt: &ConmonRuntime,
    session: &ExecSession,
    timeout: Duration,
) -> Result<(), RuntimeError> {
    let operation = format!("stopping exec session {}", session.id);
    let Some(pidfd) = PidFd::open(session.pid).map_err(|e| from_probe(&operation, e))? else {
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
pub(crate) async fn exec_alive(session: &ExecSession) -> Result<bool, RuntimeError> {
    let operation = format!("probing exec session {}", session.id);
    match PidFd::open(session.pid).map_err(|e| from_probe(&operation, e))? {
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
