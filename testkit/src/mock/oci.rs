//! The mock's [`OciRuntime`] calls: each enters the call log (and its
//! injected fault), is refused as `Unsupported` when its feature is left
//! out, checks the contract table of `lifecycle.rs`, then acts on the
//! in-memory container.

use super::*;

#[async_trait]
impl OciRuntime for MockRuntime {
    fn name(&self) -> &str {
        "mock"
    }

    async fn create(
        &self,
        c: &ContainerDescription,
        options: CreateOptions,
    ) -> Result<CreatedContainer> {
        self.enter(Operation::Create, Some(c), None).await?;
        self.create_container(c, &options)
    }

    async fn start(&self, c: &ContainerDescription) -> Result<()> {
        self.enter(Operation::Start, Some(c), None).await?;
        self.apply(c, Event::Start, |_, container| {
            container.started_at = Some(SystemTime::now());
            container.process.start();
        })
    }

    async fn status(&self, c: &ContainerDescription) -> Result<ContainerState> {
        self.enter(Operation::Status, Some(c), None).await?;
        self.read(c, |container| {
            let mut state = ContainerState::new(container.phase.status());
            state.started_at = container.started_at;
            state.finished_at = container.finished_at;
            if container.phase == Phase::Exited {
                state.exit_code = container.process.exit_code();
            }
            state
        })
    }

    async fn kill(&self, c: &ContainerDescription, signal: Signal, _all: bool) -> Result<()> {
        self.enter(Operation::Kill, Some(c), None).await?;
        self.signal(c, signal)
    }

    async fn wait(&self, c: &ContainerDescription, limit: Duration) -> Result<i32> {
        self.enter(Operation::Wait, Some(c), None).await?;
        let process = self.read(c, |container| Arc::clone(&container.process))?;
        process
            .wait(limit)
            .await
            .ok_or_else(|| timeout(format!("waiting for container {} to exit", c.id()), limit))
    }

    async fn delete(&self, c: &ContainerDescription) -> Result<()> {
        self.enter(Operation::Delete, Some(c), None).await?;
        match self.apply(c, Event::Delete, |_, _| ()) {
            Err(RuntimeError::NoSuchContainer { .. }) => Ok(()),
            other => other,
        }
    }

    /// The provided algorithm (stop signal, wait, SIGKILL, wait), on the
    /// mock's internals so that the call log shows one `Stop`.
    async fn stop(&self, c: &ContainerDescription, limit: Duration, _all: bool) -> Result<()> {
        self.enter(Operation::Stop, Some(c), None).await?;
        let process = self.read(c, |container| {
            (container.phase != Phase::Exited).then(|| Arc::clone(&container.process))
        })?;
        let Some(process) = process else {
            return Ok(());
        };
        let tolerate_gone = |r: Result<()>| match r {
            Ok(()) | Err(RuntimeError::ContainerNotRunning { .. }) => Ok(()),
            Err(e) => Err(e),
        };
        if !limit.is_zero() {
            tolerate_gone(self.signal(c, c.stop_signal()))?;
            if process.wait(limit).await.is_some() {
                return Ok(());
            }
        }
        tolerate_gone(self.signal(c, Signal::KILL))?;
        process
            .wait(KILL_WAIT)
            .await
            .map(drop)
            .ok_or_else(|| timeout(format!("stopping container {}", c.id()), KILL_WAIT))
    }

    async fn features(&self) -> Result<FeatureSet> {
        self.enter(Operation::Features, None, None).await?;
        Ok(self.features)
    }

    async fn pause(&self, c: &ContainerDescription) -> Result<()> {
        self.enter(Operation::Pause, Some(c), Some((Feature::Pause, "pause")))
            .await?;
        self.apply(c, Event::Pause, |_, _| ())
    }

    async fn resume(&self, c: &ContainerDescription) -> Result<()> {
        self.enter(Operation::Resume, Some(c), Some((Feature::Pause, "resume")))
            .await?;
        self.apply(c, Event::Resume, |_, _| ())
    }

    async fn attach(
        &self,
        c: &ContainerDescription,
        streams: AttachStreams,
        options: AttachOptions,
    ) -> Result<AttachOutcome> {
        self.enter(
            Operation::Attach,
            Some(c),
            Some((Feature::Attach, "attach")),
        )
        .await?;
        let keys = streams::validate(&streams, &options)?;
        let (process, ends) = self.apply(c, Event::Streams, |_, container| {
            let ends = Ends {
                terminal: container.terminal,
                leave_stdin_open: container.leave_stdin_open,
            };
            (Arc::clone(&container.process), ends)
        })?;
        let output = process.subscribe();
        streams::pump(process, output, streams, options, keys, ends).await
    }

    async fn resize_terminal(&self, c: &ContainerDescription, size: TerminalSize) -> Result<()> {
        self.enter(
            Operation::ResizeTerminal,
            Some(c),
            Some((Feature::ResizeTerminal, "resize_terminal")),
        )
        .await?;
        // As conmon, a container without a terminal ignores resizes.
        self.apply(c, Event::Streams, |_, container| {
            if container.terminal {
                container.process.resize(size.rows, size.cols);
            }
        })
    }

    async fn reopen_log(&self, c: &ContainerDescription) -> Result<()> {
        self.enter(
            Operation::ReopenLog,
            Some(c),
            Some((Feature::ReopenLog, "reopen_log")),
        )
        .await?;
        // The mock keeps no log: reopening only has to reach a running
        // container.
        self.apply(c, Event::Streams, |_, _| {})
    }

    async fn exec(
        &self,
        c: &ContainerDescription,
        config: &ExecConfig,
        streams: AttachStreams,
        options: AttachOptions,
    ) -> Result<ExecHandle> {
        self.enter(Operation::Exec, Some(c), Some((Feature::Exec, "exec")))
            .await?;
        if streams.is_empty() {
            return Err(RuntimeError::InvalidArgument(
                "exec needs at least one of stdin, stdout and stderr; use exec_detached".into(),
            ));
        }
        let keys = streams::validate(&streams, &options)?;
        let (session, process) = self.launch_exec(c, config)?;
        let output = process.subscribe();
        process.start();
        let ends = Ends {
            terminal: config.terminal,
            leave_stdin_open: false,
        };
        let inner = Arc::clone(&self.inner);
        let container = c.id().clone();
        let id = session.id.clone();
        let limit = config.timeout;
        let completion = Box::pin(async move {
            let outcome =
                streams::pump(Arc::clone(&process), output, streams, options, keys, ends).await?;
            let exit_code = match outcome {
                // The output ends when the process exits: the code is there.
                AttachOutcome::StreamsEnded => process.exit_code(),
                AttachOutcome::Detached | AttachOutcome::Cancelled => None,
            };
            if exit_code.is_some() {
                Self::forget_session(&inner, &container, &id);
                if process.timed_out() {
                    return Err(exec_timed_out(&id, limit));
                }
            }
            Ok(ExecCompletion::new(outcome, exit_code))
        });
        Ok(ExecHandle::new(session, completion))
    }

    async fn exec_detached(
        &self,
        c: &ContainerDescription,
        config: &ExecConfig,
    ) -> Result<ExecSession> {
        self.enter(
            Operation::ExecDetached,
            Some(c),
            Some((Feature::Exec, "exec_detached")),
        )
        .await?;
        let (session, process) = self.launch_exec(c, config)?;
        process.start();
        Ok(session)
    }

    async fn exec_wait(
        &self,
        c: &ContainerDescription,
        session: &ExecSession,
        limit: Duration,
    ) -> Result<i32> {
        self.enter(
            Operation::ExecWait,
            Some(c),
            Some((Feature::Exec, "exec_wait")),
        )
        .await?;
        let process = self.session(c, &session.id)?;
        let code = process.wait(limit).await.ok_or_else(|| {
            timeout(
                format!("waiting for exec session {} to exit", session.id),
                limit,
            )
        })?;
        Self::forget_session(&self.inner, c.id(), &session.id);
        if process.timed_out() {
            return Err(exec_timed_out(&session.id, session.timeout));
        }
        Ok(code)
    }

    async fn exec_stop(
        &self,
        c: &ContainerDescription,
        session: &ExecSession,
        limit: Duration,
    ) -> Result<()> {
        self.enter(
            Operation::ExecStop,
            Some(c),
            Some((Feature::Exec, "exec_stop")),
        )
        .await?;
        let process = self.session(c, &session.id)?;
        if !limit.is_zero() {
            process.signal(Signal::TERM.number());
            if process.wait(limit).await.is_some() {
                return Ok(());
            }
        }
        process.signal(Signal::KILL.number());
        process
            .wait(KILL_WAIT)
            .await
            .map(drop)
            .ok_or_else(|| timeout(format!("stopping exec session {}", session.id), KILL_WAIT))
    }

    async fn exec_alive(&self, c: &ContainerDescription, session: &ExecSession) -> Result<bool> {
        self.enter(
            Operation::ExecAlive,
            Some(c),
            Some((Feature::Exec, "exec_alive")),
        )
        .await?;
        Ok(self.session(c, &session.id)?.exit_code().is_none())
    }

    async fn exec_resize_terminal(
        &self,
        c: &ContainerDescription,
        session: &ExecSession,
        size: TerminalSize,
    ) -> Result<()> {
        self.enter(
            Operation::ExecResizeTerminal,
            Some(c),
            Some((Feature::ExecResizeTerminal, "exec_resize_terminal")),
        )
        .await?;
        self.session(c, &session.id)?.resize(size.rows, size.cols);
        Ok(())
    }

    async fn checkpoint(
        &self,
        c: &ContainerDescription,
        options: &CheckpointOptions,
    ) -> Result<Duration> {
        self.enter(
            Operation::Checkpoint,
            Some(c),
            Some((Feature::Checkpoint, "checkpoint")),
        )
        .await?;
        options.validate()?;
        self.apply(c, Event::Checkpoint, |_, container| {
            if !options.leave_running && !options.pre_dump {
                container.process.signal(Signal::KILL.number());
            }
        })?;
        Ok(Duration::ZERO)
    }

    async fn restore(
        &self,
        c: &ContainerDescription,
        restore: &RestoreOptions,
        options: CreateOptions,
    ) -> Result<CreatedContainer> {
        self.enter(
            Operation::Restore,
            Some(c),
            Some((Feature::Restore, "restore")),
        )
        .await?;
        restore.validate()?;
        self.create_container(c, &options)
    }

    async fn update_resources(
        &self,
        c: &ContainerDescription,
        _resources: &LinuxResources,
    ) -> Result<()> {
        self.enter(
            Operation::UpdateResources,
            Some(c),
            Some((Feature::UpdateResources, "update_resources")),
        )
        .await?;
        self.apply(c, Event::Update, |_, _| ())
    }

    async fn info(&self) -> Result<RuntimeInfo> {
        self.enter(Operation::Info, None, Some((Feature::Info, "info")))
            .await?;
        Ok(RuntimeInfo::new(ComponentInfo::new(
            "mock",
            format!("mock {}", env!("CARGO_PKG_VERSION")),
        )))
    }
}
