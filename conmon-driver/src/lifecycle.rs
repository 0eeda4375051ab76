//! The [`OciRuntime`] implementation of [`ConmonRuntime`]: the lifecycle
//! through the runtime's CLI, state from conmon's exit file first and the
//! runtime's `state` second, and waits on pidfds and inotify rather than
//! polling.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use runtime_api::{
    AttachOptions, AttachOutcome, AttachStreams, CheckpointOptions, ContainerDescription,
    ContainerState, ContainerStatus, CreateOptions, CreatedContainer, ExecConfig, ExecHandle,
    ExecSession, Feature, FeatureSet, LinuxResources, OciRuntime, RestoreOptions, Result,
    RuntimeError, RuntimeInfo, Signal, TerminalSize,
};
use state_probe::{read_exit_file, PidFd, RuntimeStatus, StateProbe};
use tracing::{debug, info_span, warn, Instrument};

use crate::conmon_process::monitor_pidfd;
use crate::errors::from_probe;
use crate::files::{read_pidfile, ContainerFiles};
use crate::runtime::ConmonRuntime;
use crate::runtime_cli::Subcommand;
use crate::{ConmonDescription, MonitorOptions};

impl ConmonRuntime {
    fn files(&self, c: &ContainerDescription) -> ContainerFiles {
        ContainerFiles::new(&self.config, c)
    }

    /// Waits for conmon's exit file, giving up early when conmon itself is
    /// gone without writing it.
    async fn await_exit_file(&self, c: &ContainerDescription, limit: Duration) -> Result<i32> {
        let files = self.files(c);
        let operation = format!("waiting for container {} to exit", c.id());
        let monitor = monitor_pidfd(&files.conmon_pidfile, c.id().as_str());
        let exit_file = state_probe::wait_for_exit_file(&files.exit_file, limit);
        let record = match monitor {
            Some(monitor) => {
                tokio::select! {
                    record = exit_file => record,
                    gone = monitor.exited(limit) => match gone {
                        // conmon writes the exit file before it exits.
                        Ok(true) => match read_exit_file(&files.exit_file) {
                            Ok(Some(record)) => Ok(record),
                            Ok(None) => return Err(crate::LaunchError::new(
                                crate::LaunchStage::SyncRecord,
                                format!(
                                    "conmon of container {} exited without writing an exit file",
                                    c.id()
                                ),
                                String::new(),
                            ).into_runtime_error(c.id().as_str())),
                            Err(e) => Err(e),
                        },
                        Ok(false) => return Err(RuntimeError::Timeout { operation, limit }),
                        Err(e) => Err(e),
                    },
                }
            }
            None => match read_exit_file(&files.exit_file) {
                Ok(Some(record)) => Ok(record),
                Ok(None) => {
                    return Err(RuntimeError::NoSuchContainer {
                        id: c.id().to_string(),
                    })
                }
                Err(e) => Err(e),
            },
        };
        record
            .map(|r| r.code)
            .map_err(|e| from_probe(&operation, e))
    }

    /// Tells systemd, once the container runs (as podman does after
    /// `start`), that conmon is the main process, and in conmon mode that
    /// the container is ready. A failure is logged, not returned: the
    /// container runs either way.
    async fn notify_systemd(&self, c: &ContainerDescription) {
        let Some(socket) = self.config.notify_socket.clone() else {
            return;
        };
        let Ok(Some(monitor_pid)) = read_pidfile(&c.conmon_pidfile()) else {
            warn!(container = %c.id(), "no conmon pid to notify systemd with");
            return;
        };
        let Some(message) = crate::notify::message(c.sd_notify(), monitor_pid) else {
            return;
        };
        let limit = self.config.timeouts.notify;
        let sent =
            tokio::task::spawn_blocking(move || crate::notify::send(&socket, &message, limit))
                .await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(container = %c.id(), error = %e, "cannot notify systemd"),
            Err(e) => warn!(container = %c.id(), error = %e, "cannot notify systemd"),
        }
    }

    fn started_at(&self, c: &ContainerDescription) -> Option<SystemTime> {
        std::fs::metadata(self.files(c).started_marker)
            .and_then(|m| m.modified())
            .ok()
    }

    /// Removes the container. Unless `force`, a running or paused
    /// container is refused; with `force` the runtime kills it
    /// (`delete --force`). An id the runtime does not know counts as
    /// removed: its leftover files are removed all the same.
    pub(crate) async fn remove(&self, c: &ContainerDescription, force: bool) -> Result<()> {
        let span = info_span!("delete", container = %c.id(), force);
        async {
            let files = self.files(c);
            let exited = files.exit_file.exists();
            let known = if exited {
                true
            } else {
                match self.cli.state(c.id(), self.config.timeouts.state).await? {
                    StateProbe::Gone => false,
                    StateProbe::Present(state) => {
                        if !force
                            && matches!(
                                state.status,
                                RuntimeStatus::Running | RuntimeStatus::Paused
                            )
                        {
                            return Err(RuntimeError::ContainerRunning {
                                id: c.id().to_string(),
                            });
                        }
                        true
                    }
                }
            };
            if known {
                match self
                    .cli
                    .run(Subcommand::DeleteForce(c.id()), self.config.timeouts.delete)
                    .await
                {
                    Ok(_) => {}
                    // Deleted meanwhile (conmon's exit command, another
                    // caller): the state probe is the judge, not the text.
                    Err(e) => {
                        let gone = matches!(
                            self.cli.state(c.id(), self.config.timeouts.state).await,
                            Ok(StateProbe::Gone)
                        );
                        if !gone {
                            return Err(e);
                        }
                        debug!("already gone from the runtime");
                    }
                }
            }
            // conmon leaves once the container is gone; one that lingers
            // past the delete limit is killed so no monitor leaks.
            // Only a process that is this container's conmon: a pidfile
            // outlives its process, and pids are reused.
            if let Some(pidfd) = monitor_pidfd(&files.conmon_pidfile, c.id().as_str()) {
                let operation = format!("waiting for conmon of container {} to exit", c.id());
                if !pidfd
                    .exited(self.config.timeouts.delete)
                    .await
                    .map_err(|e| from_probe(&operation, e))?
                {
                    warn!(
                        monitor = pidfd.pid(),
                        "conmon lingers after delete; killing it"
                    );
                    pidfd
                        .send_signal(libc::SIGKILL)
                        .map_err(|e| from_probe(&operation, e))?;
                    pidfd
                        .exited(self.config.timeouts.kill_wait)
                        .await
                        .map_err(|e| from_probe(&operation, e))?;
                }
            }
            files.remove_all()
        }
        .instrument(span)
        .await
    }

    /// Maps a failed runtime call on `c` to the contract's typed errors:
    /// a container the runtime does not know is `NoSuchContainer`, one that
    /// exited is `ContainerNotRunning`; anything else stays as it was.
    async fn classify_failure(&self, c: &ContainerDescription, err: RuntimeError) -> RuntimeError {
        if !matches!(err, RuntimeError::RuntimeFailed { .. }) {
            return err;
        }
        if self.files(c).exit_file.exists() {
            return RuntimeError::ContainerNotRunning {
                id: c.id().to_string(),
            };
        }
        match self.cli.state(c.id(), self.config.timeouts.state).await {
            Ok(StateProbe::Gone) => RuntimeError::NoSuchContainer {
                id: c.id().to_string(),
            },
            Ok(StateProbe::Present(state)) if state.status == RuntimeStatus::Stopped => {
                RuntimeError::ContainerNotRunning {
                    id: c.id().to_string(),
                }
            }
            _ => err,
        }
    }

    /// Whether the runtime has a `checkpoint` subcommand (probed once with
    /// `RUNTIME checkpoint --help`).
    pub(crate) async fn supports_checkpoint(&self) -> bool {
        self.probe_subcommand(&self.checkpoint_support, Subcommand::CheckpointHelp)
            .await
    }

    /// Whether the runtime has an `update` subcommand (probed once).
    pub(crate) async fn supports_update(&self) -> bool {
        self.probe_subcommand(&self.update_support, Subcommand::UpdateHelp)
            .await
    }

    async fn probe_subcommand(
        &self,
        cache: &tokio::sync::OnceCell<bool>,
        help: Subcommand<'static>,
    ) -> bool {
        *cache
            .get_or_init(|| async { self.cli.run(help, self.config.timeouts.probe).await.is_ok() })
            .await
    }

    /// Sends `signal`; a failure while the process is already gone counts
    /// as delivered.
    async fn signal_unless_gone(
        &self,
        c: &ContainerDescription,
        signal: Signal,
        all: bool,
        pidfd: &PidFd,
    ) -> Result<()> {
        match self.kill(c, signal, all).await {
            Ok(()) => Ok(()),
            Err(e) => match pidfd.exited(Duration::ZERO).await {
                Ok(true) => Ok(()),
                _ => Err(e),
            },
        }
    }
}

#[async_trait]
impl OciRuntime for ConmonRuntime {
    fn name(&self) -> &str {
        &self.config.runtime_name
    }

    async fn create(
        &self,
        container: &ContainerDescription,
        options: CreateOptions,
    ) -> Result<CreatedContainer> {
        self.create_with(container, options, MonitorOptions::default())
            .await
            .map(|created| created.container)
    }

    async fn restore(
        &self,
        container: &ContainerDescription,
        restore: &RestoreOptions,
        options: CreateOptions,
    ) -> Result<CreatedContainer> {
        restore.validate()?;
        if !self.supports_checkpoint().await {
            return Err(RuntimeError::unsupported(Feature::Restore, "restore"));
        }
        crate::create::create(
            self,
            container,
            options,
            MonitorOptions::default(),
            Some(restore),
        )
        .instrument(info_span!("restore", container = %container.id()))
        .await
        .map(|created| created.container)
    }

    async fn start(&self, c: &ContainerDescription) -> Result<()> {
        // Recorded before the runtime is asked: a process that exits at
        // once must not appear to have finished before it started.
        // A second start must not move or lose the first one's time.
        let marker = self.files(c).started_marker;
        let wrote_marker = c.run_dir().exists()
            && std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&marker)
                .is_ok();
        if let Err(e) = self
            .cli
            .run(Subcommand::Start(c.id()), self.config.timeouts.start)
            .instrument(info_span!("start", container = %c.id()))
            .await
        {
            if wrote_marker {
                let _ = std::fs::remove_file(&marker);
            }
            return Err(self.classify_failure(c, e).await);
        }
        self.notify_systemd(c).await;
        Ok(())
    }

    async fn status(&self, c: &ContainerDescription) -> Result<ContainerState> {
        let files = self.files(c);
        let operation = format!("reading the state of container {}", c.id());
        let exited = |record: state_probe::ExitRecord| {
            let mut state = ContainerState::new(ContainerStatus::Exited);
            state.exit_code = Some(record.code);
            state.started_at = self.started_at(c);
            state.finished_at = Some(record.finished);
            state.oom_killed = state_probe::oom_killed(&files.persist_dir);
            state
        };
        if let Some(record) =
            read_exit_file(&files.exit_file).map_err(|e| from_probe(&operation, e))?
        {
            return Ok(exited(record));
        }
        let state = match self.cli.state(c.id(), self.config.timeouts.state).await? {
            StateProbe::Gone => {
                return Err(RuntimeError::NoSuchContainer {
                    id: c.id().to_string(),
                })
            }
            StateProbe::Present(state) => state,
        };
        let status = match state.status {
            RuntimeStatus::Created => ContainerStatus::Created,
            RuntimeStatus::Running => ContainerStatus::Running,
            RuntimeStatus::Paused => ContainerStatus::Paused,
            RuntimeStatus::Stopped => {
                // conmon writes the exit file right after reaping; a short,
                // event-driven wait turns "stopped" into a known exit code.
                match state_probe::wait_for_exit_file(
                    &files.exit_file,
                    self.config.timeouts.kill_wait,
                )
                .await
                {
                    Ok(record) => return Ok(exited(record)),
                    Err(_) => ContainerStatus::Stopped,
                }
            }
        };
        let mut current = ContainerState::new(status);
        current.pid = (state.pid > 0).then_some(state.pid);
        current.started_at = self.started_at(c);
        Ok(current)
    }

    async fn kill(&self, c: &ContainerDescription, signal: Signal, all: bool) -> Result<()> {
        let sent = self
            .cli
            .run(
                Subcommand::Kill {
                    id: c.id(),
                    signal,
                    all,
                },
                self.config.timeouts.signal,
            )
            .instrument(info_span!("kill", container = %c.id(), signal = signal.number()))
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify_failure(c, e).await),
        }
    }

    async fn stop(&self, c: &ContainerDescription, timeout: Duration, all: bool) -> Result<()> {
        let span = info_span!("stop", container = %c.id());
        async {
            let files = self.files(c);
            let operation = format!("stopping container {}", c.id());
            let Some(pid) = read_pidfile(&files.container_pidfile)? else {
                return Err(RuntimeError::NoSuchContainer {
                    id: c.id().to_string(),
                });
            };
            // Opened before the exit-file check so that a reused pid cannot
            // be signalled.
            let Some(pidfd) = PidFd::open(pid).map_err(|e| from_probe(&operation, e))? else {
                return Ok(());
            };
            if files.exit_file.exists() {
                return Ok(());
            }
            if !timeout.is_zero() {
                self.signal_unless_gone(c, c.stop_signal(), all, &pidfd)
                    .await?;
                if pidfd
                    .exited(timeout)
                    .await
                    .map_err(|e| from_probe(&operation, e))?
                {
                    debug!("stopped by the stop signal");
                    let _ = self
                        .await_exit_file(c, self.config.timeouts.kill_wait)
                        .await;
                    return Ok(());
                }
                warn!(
                    signal = c.stop_signal().number(),
                    ?timeout,
                    "stop signal did not stop the container; sending SIGKILL"
                );
            }
            self.signal_unless_gone(c, Signal::KILL, all, &pidfd)
                .await?;
            let limit = self.config.timeouts.kill_wait;
            if !pidfd
                .exited(limit)
                .await
                .map_err(|e| from_probe(&operation, e))?
            {
                return Err(RuntimeError::Timeout {
                    operation: format!("{operation} after SIGKILL"),
                    limit,
                });
            }
            let _ = self.await_exit_file(c, limit).await;
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn wait(&self, c: &ContainerDescription, timeout: Duration) -> Result<i32> {
        self.await_exit_file(c, timeout)
            .instrument(info_span!("wait", container = %c.id()))
            .await
    }

    async fn delete(&self, c: &ContainerDescription) -> Result<()> {
        self.remove(c, false).await
    }

    async fn pause(&self, c: &ContainerDescription) -> Result<()> {
        match self
            .cli
            .run(Subcommand::Pause(c.id()), self.config.timeouts.signal)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify_failure(c, e).await),
        }
    }
    async fn resume(&self, c: &ContainerDescription) -> Result<()> {
        match self
            .cli
            .run(Subcommand::Resume(c.id()), self.config.timeouts.signal)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify_failure(c, e).await),
        }
    }

    async fn attach(
        &self,
        c: &ContainerDescription,
        streams: AttachStreams,
        options: AttachOptions,
    ) -> Result<AttachOutcome> {
        crate::attach_session::attach(self, c, streams, options)
            .instrument(info_span!("attach", container = %c.id()))
            .await
    }

    async fn resize_terminal(&self, c: &ContainerDescription, size: TerminalSize) -> Result<()> {
        let files = self.files(c);
        if files.exit_file.exists() {
            return Err(RuntimeError::ContainerNotRunning {
                id: c.id().to_string(),
            });
        }
        let size = attach::TerminalSize::new(size.rows, size.cols)
            .map_err(|e| crate::attach_session::from_attach(c, e))?;
        attach::resize(&c.bundle().join("ctl"), size, self.config.timeouts.attach)
            .await
            .map_err(|e| match e {
                attach::AttachError::ControlUnavailable { .. } => {
                    RuntimeError::ContainerNotRunning {
                        id: c.id().to_string(),
                    }
                }
                other => crate::attach_session::from_attach(c, other),
            })
    }

    async fn exec(
        &self,
        c: &ContainerDescription,
        config: &ExecConfig,
        streams: AttachStreams,
        options: AttachOptions,
    ) -> Result<ExecHandle> {
        crate::exec_session::exec(self, c, config, streams, options)
            .instrument(info_span!("exec", container = %c.id()))
            .await
    }

    async fn exec_detached(
        &self,
        c: &ContainerDescription,
        config: &ExecConfig,
    ) -> Result<ExecSession> {
        crate::exec_session::exec_detached(self, c, config)
            .instrument(info_span!("exec", container = %c.id()))
            .await
    }

    async fn exec_wait(
        &self,
        c: &ContainerDescription,
        session: &ExecSession,
        timeout: Duration,
    ) -> Result<i32> {
        let files = crate::exec_session::SessionFiles::new(c, &session.id);
        crate::exec_session::wait_and_clean(
            &self.pending_exits,
            &files,
            session,
            Duration::ZERO,
            self.config.timeouts.kill_wait,
            timeout,
        )
        .instrument(info_span!("exec_wait", container = %c.id(), session = %session.id))
        .await
    }

    async fn exec_resize_terminal(
        &self,
        c: &ContainerDescription,
        session: &ExecSession,
        size: TerminalSize,
    ) -> Result<()> {
        crate::exec_session::exec_resize(self, c, session, size).await
    }

    async fn exec_stop(
        &self,
        _c: &ContainerDescription,
        session: &ExecSession,
        timeout: Duration,
    ) -> Result<()> {
        crate::exec_session::exec_stop(self, session, timeout).await
    }

    async fn exec_alive(&self, _c: &ContainerDescription, session: &ExecSession) -> Result<bool> {
        crate::exec_session::exec_alive(self, session).await
    }

    async fn checkpoint(
        &self,
        c: &ContainerDescription,
        options: &CheckpointOptions,
    ) -> Result<Duration> {
        options.validate()?;
        if !self.supports_checkpoint().await {
            return Err(RuntimeError::unsupported(Feature::Checkpoint, "checkpoint"));
        }
        let started = std::time::Instant::now();
        self.cli
            .run(
                Subcommand::Checkpoint {
                    id: c.id(),
                    options,
                },
                self.config.timeouts.checkpoint,
            )
            .instrument(info_span!("checkpoint", container = %c.id()))
            .await?;
        Ok(started.elapsed())
    }

    async fn update_resources(
        &self,
        c: &ContainerDescription,
        resources: &LinuxResources,
    ) -> Result<()> {
        if !self.supports_update().await {
            return Err(RuntimeError::unsupported(
                Feature::UpdateResources,
                "update_resources",
            ));
        }
        let json = serde_json::to_vec(resources).map_err(|e| {
            RuntimeError::InvalidArgument(format!("resources cannot be serialized: {e}"))
        })?;
        // Removed when dropped, whatever the runtime answers.
        let mut file = tempfile::Builder::new()
            .prefix("resources-")
            .suffix(".json")
            .tempfile_in(&self.config.tmp_dir)
            .map_err(|e| RuntimeError::io("creating the resources file", e))?;
        std::io::Write::write_all(&mut file, &json)
            .map_err(|e| RuntimeError::io("writing the resources file", e))?;
        self.cli
            .run(
                Subcommand::Update {
                    id: c.id(),
                    resources: file.path(),
                },
                self.config.timeouts.checkpoint,
            )
            .instrument(info_span!("update", container = %c.id()))
            .await
            .map(drop)
    }

    async fn features(&self) -> Result<FeatureSet> {
        let mut features = FeatureSet::all();
        if !self.supports_checkpoint().await {
            features.remove(Feature::Checkpoint);
            features.remove(Feature::Restore);
        }
        if !self.supports_update().await {
            features.remove(Feature::UpdateResources);
        }
        Ok(features)
    }

    async fn info(&self) -> Result<RuntimeInfo> {
        crate::info::runtime_info(self).await
    }
}
