//! The [`OciRuntime`] implementation of [`ConmonRuntime`]: the lifecycle
//! through the runtime's CLI, state from conmon's exit file and the
//! driver's record of the started init process first and the runtime's
//! `state` second (`status.rs`), and waits on pidfds and inotify rather
//! than polling.

pub(crate) mod checkpoint;
pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod features;
pub(crate) mod kill;
pub(crate) mod notify;
pub(crate) mod pause;
pub(crate) mod reservation;
pub(crate) mod resize;
pub(crate) mod start;
pub(crate) mod status;
pub(crate) mod stop;
pub(crate) mod update;
pub(crate) mod wait;

use std::time::Duration;

use async_trait::async_trait;
use runtime_api::{
    AttachOptions, AttachOutcome, AttachStreams, CheckpointOptions, ContainerDescription,
    ContainerState, CreateOptions, CreatedContainer, ExecConfig, ExecHandle, ExecSession,
    FeatureSet, LinuxResources, OciRuntime, RestoreOptions, Result, RuntimeInfo, Signal,
    TerminalSize,
};
use tracing::{info_span, Instrument};

use crate::layout::ContainerLayout;
use crate::runtime::ConmonRuntime;
use crate::MonitorOptions;

impl ConmonRuntime {
    /// Runs an attached exec session as
    /// [`OciRuntime::exec`](runtime_api::OciRuntime::exec) does, passing
    /// `fds` to the process at 3, 4, ... instead of the caller's own fds
    /// there. Their number must be [`ExecConfig::preserve_fds`].
    pub async fn exec_preserving(
        &self,
        c: &ContainerDescription,
        config: &ExecConfig,
        fds: Vec<std::os::fd::OwnedFd>,
        streams: AttachStreams,
        options: AttachOptions,
    ) -> Result<ExecHandle> {
        crate::exec::session::exec(self, c, config, streams, options, Some(fds))
            .instrument(info_span!("exec", container = %c.id()))
            .await
    }

    pub(crate) fn layout(&self, c: &ContainerDescription) -> ContainerLayout {
        ContainerLayout::new(&self.config, c)
    }
}

#[async_trait]
impl OciRuntime for ConmonRuntime {
    fn name(&self) -> &str {
        &self.short_name
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
        self.restore_container(container, restore, options).await
    }

    async fn start(&self, c: &ContainerDescription) -> Result<()> {
        self.start_container(c).await
    }

    async fn status(&self, c: &ContainerDescription) -> Result<ContainerState> {
        self.container_status(c).await
    }

    async fn kill(&self, c: &ContainerDescription, signal: Signal, all: bool) -> Result<()> {
        self.kill_container(c, signal, all).await
    }

    async fn stop(&self, c: &ContainerDescription, timeout: Duration, all: bool) -> Result<()> {
        self.stop_container(c, timeout, all).await
    }

    async fn wait(&self, c: &ContainerDescription, timeout: Duration) -> Result<i32> {
        self.wait_container(c, timeout).await
    }

    async fn delete(&self, c: &ContainerDescription) -> Result<()> {
        self.delete_container(c).await
    }

    async fn pause(&self, c: &ContainerDescription) -> Result<()> {
        self.pause_container(c).await
    }
    async fn resume(&self, c: &ContainerDescription) -> Result<()> {
        self.resume_container(c).await
    }

    async fn attach(
        &self,
        c: &ContainerDescription,
        streams: AttachStreams,
        options: AttachOptions,
    ) -> Result<AttachOutcome> {
        crate::streams::attach::attach(self, c, streams, options)
            .instrument(info_span!("attach", container = %c.id()))
            .await
    }

    async fn resize_terminal(&self, c: &ContainerDescription, size: TerminalSize) -> Result<()> {
        self.resize_container_terminal(c, size).await
    }

    async fn reopen_log(&self, c: &ContainerDescription) -> Result<()> {
        self.reopen_container_log(c)
            .instrument(info_span!("reopen_log", container = %c.id()))
            .await
    }

    async fn exec(
        &self,
        c: &ContainerDescription,
        config: &ExecConfig,
        streams: AttachStreams,
        options: AttachOptions,
    ) -> Result<ExecHandle> {
        crate::exec::session::exec(self, c, config, streams, options, None)
            .instrument(info_span!("exec", container = %c.id()))
            .await
    }

    async fn exec_detached(
        &self,
        c: &ContainerDescription,
        config: &ExecConfig,
    ) -> Result<ExecSession> {
        crate::exec::session::exec_detached(self, c, config)
            .instrument(info_span!("exec", container = %c.id()))
            .await
    }

    async fn exec_wait(
        &self,
        c: &ContainerDescription,
        session: &ExecSession,
        timeout: Duration,
    ) -> Result<i32> {
        let files = ContainerLayout::new(&self.config, c).session(&session.id);
        crate::exec::completion::wait_and_clean(
            &self.exec_sessions,
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
        crate::exec::session::exec_resize(self, c, session, size).await
    }

    async fn exec_stop(
        &self,
        _c: &ContainerDescription,
        session: &ExecSession,
        timeout: Duration,
    ) -> Result<()> {
        crate::exec::session::exec_stop(self, session, timeout).await
    }

    async fn exec_alive(&self, _c: &ContainerDescription, session: &ExecSession) -> Result<bool> {
        crate::exec::session::exec_alive(self, session).await
    }

    async fn checkpoint(
        &self,
        c: &ContainerDescription,
        options: &CheckpointOptions,
    ) -> Result<Duration> {
        self.checkpoint_container(c, options).await
    }

    async fn update_resources(
        &self,
        c: &ContainerDescription,
        resources: &LinuxResources,
    ) -> Result<()> {
        self.update_container_resources(c, resources).await
    }

    async fn features(&self) -> Result<FeatureSet> {
        self.probe_features().await
    }

    async fn info(&self) -> Result<RuntimeInfo> {
        crate::info::runtime_info(self).await
    }
}
