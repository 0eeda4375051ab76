//! The launch of conmon for a new container, in podman's order: socketpairs,
//! the user-namespace preparations (`userns.rs`), spawn (own process group,
//! cwd = bundle, explicit env, stdin and stdout on /dev/null, stderr
//! captured in an unnamed file so no pipe can hang us, SELinux exec label
//! and private mount namespace applied in the child only), placement of
//! conmon in its cgroup (`placement.rs`), start byte, reap of conmon's
//! parent, sync record within the deadline, conmon's pidfile. Any failure after the spawn deletes the container from
//! the runtime, kills what is left of conmon's process group and removes the
//! files the launch created, then returns an error carrying conmon's stderr
//! and the runtime's error log message.

use std::io::{Read, Seek};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;

use runtime_api::{
    ContainerDescription, CreateOptions, CreatedContainer, MonitorStage, RuntimeError,
};
use sync_pipe::{seqpacket_pair, FdPlan, PipeNumbers, StartSignal, SyncPipeError, SyncReader};
use tokio::time::Instant;
use tracing::{debug, warn};

use selinux_launch::{ExecLabel, SecurityLabel};

use crate::argv::ConmonArgv;
use crate::config::{ConmonConfig, SelinuxPolicy};
use crate::env::ConmonEnv;
use crate::errors::oci_runtime_error;
use crate::files::{create_dir_with_mode, read_pidfile, remove_file_if_present, ContainerFiles};
use crate::process_group::kill_group;
use crate::runtime::ConmonRuntime;
use crate::runtime_cli::Subcommand;

/// The most of conmon's stderr kept for error messages.
const MAX_STDERR: u64 = 64 * 1024;

/// What a failed launch must undo.
struct Launch<'a> {
    rt: &'a ConmonRuntime,
    container: &'a ContainerDescription,
    files: ContainerFiles,
    created_run_dir: bool,
    stderr: std::fs::File,
    conmon: Option<tokio::process::Child>,
    pgid: Option<i32>,
}

pub(crate) async fn create(
    rt: &ConmonRuntime,
    container: &ContainerDescription,
    options: CreateOptions,
) -> Result<CreatedContainer, RuntimeError> {
    let CreateOptions {
        restore,
        preserved_fds,
        listen_fds,
        reserved_ports,
        extra_fds,
    } = options;
    if preserved_fds.len() != container.preserved_fds() as usize {
        return Err(RuntimeError::InvalidArgument(format!(
            "the container preserves {} fds but {} were handed to create",
            container.preserved_fds(),
            preserved_fds.len()
        )));
    }
    if !preserved_fds.is_empty() && !listen_fds.is_empty() {
        return Err(RuntimeError::InvalidArgument(
            "preserved fds and socket-activation fds cannot be combined: both start at fd 3".into(),
        ));
    }
    if !container.bundle().join("config.json").is_file() {
        return Err(RuntimeError::InvalidArgument(format!(
            "bundle {} has no config.json",
            container.bundle().display()
        )));
    }
    let pass_fds: Vec<OwnedFd> = if listen_fds.is_empty() {
        preserved_fds
    } else {
        listen_fds
    };
    let listen_count = if container.preserved_fds() == 0 {
        pass_fds.len() as u32
    } else {
        0
    };

    // Bound before anything is created or spawned: a port in use fails
    // the create with nothing to undo.
    let port_sockets = crate::ports::bind_ports(&reserved_ports)?;

    let files = ContainerFiles::new(&rt.config, container);
    let created_run_dir = !container.run_dir().exists();
    create_dir_with_mode(container.run_dir(), 0o700)?;
    for stale in [
        &files.exit_file,
        &files.oci_log,
        &files.container_pidfile,
        &files.conmon_pidfile,
    ] {
        remove_file_if_present(stale)?;
    }
    let _ = std::fs::remove_dir_all(&files.persist_dir);
    create_dir_with_mode(&files.persist_dir, 0o750)?;

    let stderr = tempfile::tempfile()
        .map_err(|e| RuntimeError::io("creating a file for conmon's stderr", e))?;
    let mut launch = Launch {
        rt,
        container,
        files,
        created_run_dir,
        stderr,
        conmon: None,
        pgid: None,
    };
    let handed = HandedFds {
        pass: pass_fds,
        listen_count,
        ports: port_sockets,
        extra: extra_fds,
    };
    match launch.run(handed, restore.as_ref()).await {
        Ok(mut created) => {
            notify_systemd(rt, container, &mut created);
            Ok(created)
        }
        Err(err) => {
            launch.undo().await;
            Err(err)
        }
    }
}

/// The fds conmon receives besides its pipes.
struct HandedFds {
    /// Preserved or socket-activation fds, at 3, 4, ...
    pass: Vec<OwnedFd>,
    /// How many of `pass` are socket-activation fds.
    listen_count: u32,
    /// Reserved port sockets, after the pipes.
    ports: Vec<OwnedFd>,
    /// Named fds, after the ports.
    extra: Vec<runtime_api::NamedFd>,
}

/// Sends `MAINPID` (and `READY=1` in conmon mode) to the caller's notify
/// socket; a failure is a warning, as it does not stop the container.
fn notify_systemd(rt: &ConmonRuntime, c: &ContainerDescription, created: &mut CreatedContainer) {
    let Some(socket) = &rt.config.notify_socket else {
        return;
    };
    let Some(message) = crate::notify::message(c.sd_notify(), created.monitor_pid) else {
        return;
    };
    if let Err(e) = crate::notify::send(socket, &message, rt.config.timeouts.notify) {
        let warning = format!("cannot notify systemd through {}: {e}", socket.display());
        warn!(container = %c.id(), "{warning}");
        created.warnings.push(warning);
    }
}

impl Launch<'_> {
    async fn run(
        &mut self,
        handed: HandedFds,
        restore: Option<&runtime_api::RestoreOptions>,
    ) -> Result<CreatedContainer, RuntimeError> {
        let HandedFds {
            pass: pass_fds,
            listen_count,
            ports,
            extra,
        } = handed;
        let rt = self.rt;
        let c = self.container;
        let deadline = Instant::now() + rt.config.timeouts.create;
        let limit = rt.config.timeouts.create;
        let sync_err = |e: SyncPipeError| RuntimeError::MonitorFailed {
            stage: MonitorStage::Spawn,
            message: e.to_string(),
            stderr: String::new(),
        };

        let (sync_parent, sync_child) = seqpacket_pair().map_err(sync_err)?;
        let (start_parent, start_child) = seqpacket_pair().map_err(sync_err)?;
        let numbers = PipeNumbers::new(pass_fds.len() as u32, false);
        let mut plan = FdPlan::new();
        for (i, fd) in pass_fds.iter().enumerate() {
            plan.place(fd.as_raw_fd(), 3 + i as i32).map_err(sync_err)?;
        }
        plan.place(sync_child.as_raw_fd(), numbers.sync)
            .map_err(sync_err)?;
        plan.place(start_child.as_raw_fd(), numbers.start)
            .map_err(sync_err)?;
        let mut next = numbers.start + 1;
        for socket in &ports {
            plan.place(socket.as_raw_fd(), next).map_err(sync_err)?;
            next += 1;
        }
        let mut extra_fds = Vec::with_capacity(extra.len());
        for named in &extra {
            plan.place(named.fd.as_raw_fd(), next).map_err(sync_err)?;
            extra_fds.push((named.name.clone(), next));
            next += 1;
        }
        // Only the placed fds may reach conmon, whatever the caller's
        // process left inheritable.
        plan.seal_unplaced();

        let json_errors = rt.listed_in(&rt.config.runtimes_with_json_errors);
        let argv = ConmonArgv {
            config: &rt.config,
            runtime_path: &rt.runtime_path,
            container: c,
            json_errors,
            pass_fds: pass_fds.len() as u32,
            restore,
        }
        .build();
        let env = ConmonEnv {
            config: &rt.config,
            container: c,
            pipes: numbers,
            listen_fds: listen_count,
        }
        .build();
        debug!(container = %c.id(), conmon = %rt.conmon_path.display(), ?argv, "spawning conmon");

        // Decided before the fork: the child may only run prepared,
        // allocation-free hooks.
        let userns = crate::userns::prepare(&rt.config, c)?;
        let exec_label = exec_label(&rt.config)?;

        let stderr_for_child = self
            .stderr
            .try_clone()
            .map_err(|e| RuntimeError::io("duplicating conmon's stderr file", e))?;
        let mut cmd = tokio::process::Command::new(&rt.conmon_path);
        cmd.args(&argv)
            .env_clear()
            .envs(env)
            .current_dir(c.bundle())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr_for_child)
            .process_group(0);
        // Hooks run in this order in the child: fds, mount namespace, label.
        plan.install_tokio(&mut cmd);
        if let Some(ns) = &userns.mount_ns {
            ns.install_tokio(&mut cmd);
        }
        if let Some(label) = &exec_label {
            debug!(container = %c.id(), label = %label.label(), "conmon's exec label");
            label.install_tokio(&mut cmd);
        }
        let child = cmd.spawn().map_err(|e| RuntimeError::MonitorFailed {
            stage: MonitorStage::Spawn,
            message: format!("cannot execute {}: {e}", rt.conmon_path.display()),
            stderr: String::new(),
        })?;
        let conmon_pid = child.id();
        debug!(container = %c.id(), conmon_pid, "conmon spawned");
        self.pgid = conmon_pid.map(|pid| pid as i32);
        self.conmon = Some(child);
        // conmon holds its own copies now; ours must close so that its exit
        // shows as EOF on the sync pipe.
        drop((sync_child, start_child, pass_fds, ports, extra));

        let mut reader = SyncReader::new(sync_parent).map_err(sync_err)?;
        // podman's moveConmonToCgroupAndSignal: conmon waits for the start
        // byte before it forks its monitor, so the monitor and the runtime
        // are born in conmon's new cgroup.
        let placed = crate::placement::place_conmon(&rt.config, c, conmon_pid).await;
        match StartSignal::new(start_parent).send() {
            Ok(()) => {}
            // conmon already exited: its exit status and stderr say why.
            Err(SyncPipeError::PeerGone) => debug!("conmon closed its start pipe early"),
            Err(e) => {
                return Err(RuntimeError::MonitorFailed {
                    stage: MonitorStage::StartSignal,
                    message: e.to_string(),
                    stderr: self.stderr_text(),
                })
            }
        }

        let status = {
            let child = self.conmon.as_mut().ok_or_else(|| {
                RuntimeError::io("conmon child", std::io::Error::other("not spawned"))
            })?;
            match tokio::time::timeout_at(deadline, child.wait()).await {
                Ok(Ok(status)) => status,
                Ok(Err(e)) => return Err(RuntimeError::io("waiting for conmon", e)),
                Err(_) => {
                    return Err(RuntimeError::Timeout {
                        operation: format!("conmon launch of container {}", c.id()),
                        limit,
                    })
                }
            }
        };
        self.conmon = None;
        if !status.success() {
            return Err(RuntimeError::MonitorFailed {
                stage: MonitorStage::ParentExit,
                message: match status.code() {
                    Some(code) => format!("conmon exited with status {code}"),
                    None => format!("conmon was killed ({status})"),
                },
                stderr: self.stderr_text(),
            });
        }

        let remaining = deadline.saturating_duration_since(Instant::now());
        let record = match reader.read_record(remaining).await {
            Ok(record) => record,
            Err(SyncPipeError::Timeout { .. }) => {
                return Err(RuntimeError::Timeout {
                    operation: format!("waiting for conmon's sync record for container {}", c.id()),
                    limit,
                })
            }
            Err(SyncPipeError::Eof) => {
                return Err(self.runtime_failure(
                    None,
                    "conmon closed the sync pipe without writing a status record \
                     (the runtime failed without an error message)",
                ))
            }
            Err(e) => {
                return Err(RuntimeError::MonitorFailed {
                    stage: MonitorStage::SyncRecord,
                    message: e.to_string(),
                    stderr: self.stderr_text(),
                })
            }
        };
        if record.is_failure() {
            return Err(self.runtime_failure(
                record.message.as_deref(),
                &format!("conmon reported failure {} without a message", record.data),
            ));
        }
        let pid = i32::try_from(record.data).map_err(|_| RuntimeError::MonitorFailed {
            stage: MonitorStage::SyncRecord,
            message: format!("conmon reported an impossible pid {}", record.data),
            stderr: self.stderr_text(),
        })?;
        let monitor_pid = read_pidfile(&self.files.conmon_pidfile)?.ok_or_else(|| {
            RuntimeError::MonitorFailed {
                stage: MonitorStage::Pidfile,
                message: format!(
                    "conmon wrote no pidfile at {}",
                    self.files.conmon_pidfile.display()
                ),
                stderr: self.stderr_text(),
            }
        })?;
        debug!(container = %c.id(), pid, monitor_pid, "container created");
        Ok(CreatedContainer {
            pid,
            monitor_pid,
            extra_fds,
            warnings: placed.warnings,
            placement: placed.description,
        })
    }

    /// The error for a runtime that failed to create the container: the
    /// runtime's own error log first (as podman prefers it), then conmon's
    /// message, classified into permission / not found / other.
    fn runtime_failure(&self, conmon_message: Option<&str>, fallback: &str) -> RuntimeError {
        let logged = sync_pipe::read_oci_error(&self.files.oci_log)
            .ok()
            .flatten()
            .map(|entry| entry.msg);
        let message = logged
            .or_else(|| conmon_message.map(str::to_string))
            .filter(|m| !m.trim().is_empty());
        let stderr = self.stderr_text();
        match message {
            Some(message) => match oci_runtime_error(
                &self.rt.config.runtime_name,
                format!(
                    "{} create {}",
                    self.rt.runtime_path.display(),
                    self.container.id()
                ),
                &message,
            ) {
                RuntimeError::RuntimeFailed { stderr: msg, .. } => RuntimeError::MonitorFailed {
                    stage: MonitorStage::SyncRecord,
                    message: format!("{}: {msg}", self.rt.config.runtime_name),
                    stderr,
                },
                classified => classified,
            },
            None => RuntimeError::MonitorFailed {
                stage: MonitorStage::SyncRecord,
                message: fallback.to_string(),
                stderr,
            },
        }
    }

    fn stderr_text(&self) -> String {
        let mut file = &self.stderr;
        let mut text = String::new();
        if file.rewind().is_ok() {
            let _ = file.take(MAX_STDERR).read_to_string(&mut text);
        }
        text.trim().to_string()
    }

    /// Deletes the container from the runtime, kills conmon's process group,
    /// reaps conmon's parent and removes the launch's files.
    async fn undo(&mut self) {
        let rt = self.rt;
        let id = self.container.id();
        if let Err(e) = rt
            .cli
            .run(Subcommand::DeleteForce(id), rt.config.timeouts.delete)
            .await
        {
            debug!(container = %id, error = %e, "delete after failed create");
        }
        if let Some(pgid) = self.pgid {
            let survivors = kill_group(pgid, rt.config.timeouts.kill_wait).await;
            if !survivors.is_empty() {
                warn!(container = %id, ?survivors, "processes of conmon's group survived SIGKILL");
            }
        }
        if let Ok(Some(monitor)) = read_pidfile(&self.files.conmon_pidfile) {
            if let Ok(Some(pidfd)) = state_probe::PidFd::open(monitor) {
                let _ = pidfd.send_signal(libc::SIGKILL);
                let _ = pidfd.exited(rt.config.timeouts.kill_wait).await;
            }
        }
        if let Some(mut child) = self.conmon.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(rt.config.timeouts.kill_wait, child.wait()).await;
        }
        if let Err(e) = self.files.remove_all() {
            warn!(container = %id, error = %e, "removing files after failed create");
        }
        if self.created_run_dir {
            let _ = std::fs::remove_dir_all(self.container.run_dir());
        }
    }
}

/// The SELinux label conmon is launched with, decided once per create from
/// the policy and the host (or its test stand-in). An unreadable current
/// label on an SELinux host fails the create, as in podman.
fn exec_label(config: &ConmonConfig) -> Result<Option<ExecLabel>, RuntimeError> {
    let label_error = |e: selinux_launch::SelinuxError| {
        RuntimeError::io(
            "reading the SELinux label for conmon",
            std::io::Error::other(e.to_string()),
        )
    };
    if config.selinux == SelinuxPolicy::Off {
        return Ok(None);
    }
    match &config.selinux_host {
        None => {
            if !selinux_launch::selinux_enabled() {
                return Ok(None);
            }
            let current = selinux_launch::current_label().map_err(label_error)?;
            Ok(
                selinux_launch::exec_label_for(config.selinux, true, current.as_ref())
                    .map(ExecLabel::new),
            )
        }
        Some(host) => {
            let current = host
                .current_label
                .as_deref()
                .map(SecurityLabel::parse)
                .transpose()
                .map_err(label_error)?;
            selinux_launch::exec_label_for(config.selinux, host.enabled, current.as_ref())
                .map(|label| ExecLabel::with_path(label, &host.exec_attr_path))
                .transpose()
                .map_err(label_error)
        }
    }
}
