//! The launch of conmon for a new container, in podman's order: socketpairs,
//! the user-namespace preparations (`userns.rs`), spawn (own process group,
//! cwd = bundle, explicit env, stdin and stdout on /dev/null, stderr
//! captured in an unnamed file so no pipe can hang us, SELinux exec label
//! and private mount namespace applied in the child only), placement of
//! conmon in its cgroup (`placement.rs`), start byte, reap of conmon's
//! parent, sync record within the deadline, conmon's pidfile.
//!
//! An id the runtime already knows is refused before anything is touched.
//! Any failure after the spawn kills conmon and its monitor
//! (`conmon_process.rs`), deletes the container from the runtime once it
//! may exist, and removes the files the launch created; the error carries
//! conmon's stderr and the runtime's error log message. A launch whose
//! future is dropped half-way is undone the same way, in the background.

use std::os::fd::{AsRawFd, OwnedFd};

use runtime_api::{
    ContainerDescription, CreateOptions, CreatedContainer, RestoreOptions, RuntimeError,
};
use sync_pipe::{seqpacket_pair, FdPlan, PipeNumbers, StartSignal, SyncPipeError, SyncReader};
use tokio::time::Instant;
use tracing::{debug, warn};

use selinux_launch::{ExecLabel, SecurityLabel};

use crate::argv::ConmonArgv;
use crate::config::{ConmonConfig, SelinuxPolicy};
use crate::conmon_process::ConmonProcess;
use crate::env::ConmonEnv;
use crate::files::{create_dir_with_mode, read_pidfile, remove_file_if_present, ContainerFiles};
use crate::runtime::ConmonRuntime;
use crate::runtime_cli::{RuntimeCli, Subcommand};
use crate::{ConmonCreated, LaunchStage, MonitorOptions, NamedFd};

/// What a failed launch must undo.
struct Launch<'a> {
    rt: &'a ConmonRuntime,
    container: &'a ContainerDescription,
    files: ContainerFiles,
    created_run_dir: bool,
    conmon: Option<ConmonProcess>,
    /// The start byte went out: the runtime may have created the container.
    started: bool,
    /// Set once the launch succeeded or was undone.
    settled: bool,
}

pub(crate) async fn create(
    rt: &ConmonRuntime,
    container: &ContainerDescription,
    options: CreateOptions,
    monitor: MonitorOptions,
    restore: Option<&RestoreOptions>,
) -> Result<ConmonCreated, RuntimeError> {
    crate::container_options::validate(container)?;
    let CreateOptions {
        preserved_fds,
        listen_fds,
        ..
    } = options;
    let MonitorOptions {
        reserved_ports,
        extra_fds,
        ..
    } = monitor;
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
    // Handed-over fds may lack close-on-exec (socket activation's never
    // have it): they must not reach the runtime commands run meanwhile.
    for fd in preserved_fds
        .iter()
        .chain(&listen_fds)
        .chain(extra_fds.iter().map(|named| &named.fd))
    {
        sync_pipe::set_cloexec(fd).map_err(|e| {
            RuntimeError::InvalidArgument(format!("a handed-over fd is unusable: {e}"))
        })?;
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

    // Everything below removes or replaces files of this id: a container
    // the runtime still knows must not lose them.
    match rt.cli.state(container.id(), rt.config.timeouts.state).await {
        Ok(state_probe::StateProbe::Present(_)) => {
            return Err(RuntimeError::AlreadyExists {
                id: container.id().to_string(),
            })
        }
        Ok(state_probe::StateProbe::Gone) => {}
        // A runtime that cannot answer gets to refuse the id itself.
        Err(e) => debug!(container = %container.id(), error = %e, "state probe before create"),
    }

    let files = ContainerFiles::new(&rt.config, container);
    let created_run_dir = !container.run_dir().exists();
    // A run dir the caller made keeps the permissions it chose.
    if created_run_dir {
        create_dir_with_mode(container.run_dir(), 0o700)?;
    } else if !container.run_dir().is_dir() {
        return Err(RuntimeError::InvalidArgument(format!(
            "run directory {} is not a directory",
            container.run_dir().display()
        )));
    }
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

    let mut launch = Launch {
        rt,
        container,
        files,
        created_run_dir,
        conmon: None,
        started: false,
        settled: false,
    };
    let handed = HandedFds {
        pass: pass_fds,
        listen_count,
        ports: port_sockets,
        extra: extra_fds,
    };
    match launch.run(handed, restore).await {
        Ok(created) => {
            launch.settled = true;
            if let Some(conmon) = launch.conmon.as_mut() {
                conmon.disarm();
            }
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
    extra: Vec<NamedFd>,
}

impl Launch<'_> {
    async fn run(
        &mut self,
        handed: HandedFds,
        restore: Option<&RestoreOptions>,
    ) -> Result<ConmonCreated, RuntimeError> {
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
        let sync_err = |e: SyncPipeError| {
            crate::LaunchError::new(LaunchStage::Spawn, e.to_string(), String::new())
                .into_runtime_error(c.id().as_str())
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

        let mut cmd = tokio::process::Command::new(&rt.conmon_path);
        cmd.args(&argv)
            .env_clear()
            .envs(env)
            .current_dir(c.bundle());
        // Hooks run in this order in the child: fds, mount namespace, label.
        plan.install_tokio(&mut cmd);
        if let Some(ns) = &userns.mount_ns {
            ns.install_tokio(&mut cmd);
        }
        if let Some(label) = &exec_label {
            debug!(container = %c.id(), label = %label.label(), "conmon's exec label");
            label.install_tokio(&mut cmd);
        }
        let conmon = self.conmon.insert(ConmonProcess::spawn(
            cmd,
            &rt.conmon_path,
            self.files.conmon_pidfile.clone(),
            c.id().as_str(),
        )?);
        let conmon_pid = conmon.pid();
        debug!(container = %c.id(), conmon_pid, "conmon spawned");
        // conmon holds its own copies now; ours must close so that its exit
        // shows as EOF on the sync pipe.
        drop((sync_child, start_child, pass_fds, ports, extra));

        let mut reader = SyncReader::new(sync_parent).map_err(sync_err)?;
        // podman's moveConmonToCgroupAndSignal: conmon waits for the start
        // byte before it forks its monitor, so the monitor and the runtime
        // are born in conmon's new cgroup.
        let placed = crate::placement::place_conmon(&rt.config, c, conmon_pid).await;
        self.started = true;
        match StartSignal::new(start_parent).send() {
            Ok(()) => {}
            // conmon already exited: its exit status and stderr say why.
            Err(SyncPipeError::PeerGone) => debug!("conmon closed its start pipe early"),
            Err(e) => return Err(self.failed(LaunchStage::StartSignal, e.to_string())),
        }

        let Some(conmon) = self.conmon.as_mut() else {
            return Err(RuntimeError::io(
                "conmon",
                std::io::Error::other("not spawned"),
            ));
        };
        let Some(status) = conmon.wait_parent(deadline).await? else {
            return Err(RuntimeError::Timeout {
                operation: format!("conmon launch of container {}", c.id()),
                limit,
            });
        };
        if !status.success() {
            let message = match status.code() {
                Some(code) => format!("conmon exited with status {code}"),
                None => format!("conmon was killed ({status})"),
            };
            return Err(self.failed(LaunchStage::ParentExit, message));
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
            Err(e) => return Err(self.failed(LaunchStage::SyncRecord, e.to_string())),
        };
        if record.is_failure() {
            return Err(self.runtime_failure(
                record.message.as_deref(),
                &format!("conmon reported failure {} without a message", record.data),
            ));
        }
        let pid = i32::try_from(record.data).map_err(|_| {
            self.failed(
                LaunchStage::SyncRecord,
                format!("conmon reported an impossible pid {}", record.data),
            )
        })?;
        let monitor_pid = read_pidfile(&self.files.conmon_pidfile)?.ok_or_else(|| {
            self.failed(
                LaunchStage::Pidfile,
                format!(
                    "conmon wrote no pidfile at {}",
                    self.files.conmon_pidfile.display()
                ),
            )
        })?;
        debug!(container = %c.id(), pid, monitor_pid, "container created");
        let mut container = CreatedContainer::new(Some(pid));
        container.warnings = placed.warnings;
        Ok(ConmonCreated {
            container,
            monitor_pid,
            extra_fds,
            placement: placed.description,
        })
    }

    /// A failure at `stage`, with conmon's stderr.
    fn failed(&self, stage: LaunchStage, message: String) -> RuntimeError {
        match &self.conmon {
            Some(conmon) => conmon.monitor_failed(stage, message),
            None => crate::LaunchError::new(stage, message, String::new())
                .into_runtime_error(self.container.id().as_str()),
        }
    }

    /// The error for a runtime that failed to create the container.
    fn runtime_failure(&self, conmon_message: Option<&str>, fallback: &str) -> RuntimeError {
        let rt = self.rt;
        let command = format!(
            "{} create {}",
            rt.runtime_path.display(),
            self.container.id()
        );
        match &self.conmon {
            Some(conmon) => conmon.runtime_failure(
                &rt.config.runtime_name,
                command,
                &self.files.oci_log,
                conmon_message,
                fallback,
            ),
            None => self.failed(LaunchStage::SyncRecord, fallback.to_string()),
        }
    }

    /// Kills conmon and its monitor, deletes the container from the runtime
    /// (once the start byte may have let conmon create it) and removes the
    /// launch's files.
    async fn undo(&mut self) {
        self.settled = true;
        if let Some(conmon) = self.conmon.as_mut() {
            conmon.kill_all(self.rt.config.timeouts.kill_wait).await;
        }
        let undo = Undo::of(self);
        undo.run().await;
    }
}

/// The undo of a launch as owned data, so that it can also run from a
/// background task when the launch's future was dropped.
struct Undo {
    cli: RuntimeCli,
    delete_limit: std::time::Duration,
    id: runtime_api::ContainerId,
    started: bool,
    files: ContainerFiles,
    run_dir: Option<std::path::PathBuf>,
}

impl Undo {
    fn of(launch: &Launch<'_>) -> Self {
        Self {
            cli: launch.rt.cli.clone(),
            delete_limit: launch.rt.config.timeouts.delete,
            id: launch.container.id().clone(),
            started: launch.started,
            files: launch.files.clone(),
            run_dir: launch
                .created_run_dir
                .then(|| launch.container.run_dir().to_path_buf()),
        }
    }

    async fn run(self) {
        if self.started {
            if let Err(e) = self
                .cli
                .run(Subcommand::DeleteForce(&self.id), self.delete_limit)
                .await
            {
                debug!(container = %self.id, error = %e, "delete after failed create");
            }
        }
        if let Err(e) = self.files.remove_all() {
            warn!(container = %self.id, error = %e, "removing files after failed create");
        }
        if let Some(dir) = self.run_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Launch<'_> {
    /// A create whose future was dropped: conmon is killed by its own drop
    /// (it would otherwise treat the closed start pipe as "go"); the rest of
    /// the undo runs in the background when a tokio runtime is there.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let undo = Undo::of(self);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(undo.run());
        } else {
            warn!(container = %undo.id, "an abandoned create could not be undone: no runtime");
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
