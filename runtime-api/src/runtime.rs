//! The [`OciRuntime`] trait: the plugin boundary between an engine and a
//! runtime driver. It is object safe, so engines hold runtimes as
//! `Arc<dyn OciRuntime>` and vendors plug theirs in next to the conmon one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    AttachOptions, AttachOutcome, AttachStreams, CheckpointOptions, ContainerDescription,
    ContainerState, CreateOptions, CreatedContainer, ExecConfig, ExecHandle, ExecSession,
    ExecSessionId, LinuxResources, Result, RuntimeFeatures, RuntimeInfo, Signal, TerminalSize,
};

/// Drives one OCI runtime.
///
/// Every method is bounded by the driver's timeouts; a timeout returns
/// [`RuntimeError::Timeout`](crate::RuntimeError::Timeout) after killing
/// what it started.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use runtime_api::{ContainerDescription, CreateOptions, OciRuntime};
///
/// async fn run_to_completion(
///     runtime: Arc<dyn OciRuntime>,
///     container: &ContainerDescription,
/// ) -> runtime_api::Result<i32> {
///     runtime.create(container, CreateOptions::default()).await?;
///     runtime.start(container).await?;
///     let code = runtime.wait(container, Duration::from_secs(60)).await?;
///     runtime.delete(container).await?;
///     Ok(code)
/// }
/// ```
#[async_trait]
pub trait OciRuntime: Send + Sync {
    /// The runtime's short name (e.g. `runc`).
    fn name(&self) -> &str;

    /// The runtime binary.
    fn path(&self) -> &Path;

    /// Creates the container (its process exists but has not started), or
    /// restores it when `options.restore` is set.
    async fn create(
        &self,
        container: &ContainerDescription,
        options: CreateOptions,
    ) -> Result<CreatedContainer>;

    /// Starts a created container's process.
    async fn start(&self, container: &ContainerDescription) -> Result<()>;

    /// Reports the container's current state.
    async fn status(&self, container: &ContainerDescription) -> Result<ContainerState>;

    /// Sends `signal` to the container's init process, or to all its
    /// processes when `all` is set.
    async fn kill(&self, container: &ContainerDescription, signal: Signal, all: bool)
        -> Result<()>;

    /// Sends the container's stop signal, waits up to `timeout` for the
    /// process to exit, then sends SIGKILL and waits for it. A container
    /// that is already gone is stopped successfully.
    async fn stop(
        &self,
        container: &ContainerDescription,
        timeout: Duration,
        all: bool,
    ) -> Result<()>;

    /// Waits up to `timeout` for the container to exit and returns its
    /// exit code.
    async fn wait(&self, container: &ContainerDescription, timeout: Duration) -> Result<i32>;

    /// Removes the container from the runtime (forcefully).
    async fn delete(&self, container: &ContainerDescription) -> Result<()>;

    /// Freezes the container.
    async fn pause(&self, container: &ContainerDescription) -> Result<()>;

    /// Thaws a paused container.
    async fn resume(&self, container: &ContainerDescription) -> Result<()>;

    /// Attaches the caller's streams to the container until the container's
    /// output ends, the client detaches, or the session is cancelled.
    /// Attaching before `start` sees all output; output produced before
    /// the attach is only in the log. With no stream at all this is an
    /// invalid argument.
    async fn attach(
        &self,
        container: &ContainerDescription,
        streams: AttachStreams,
        options: AttachOptions,
    ) -> Result<AttachOutcome>;

    /// Resizes the container's terminal.
    async fn resize_terminal(
        &self,
        container: &ContainerDescription,
        size: TerminalSize,
    ) -> Result<()>;

    /// Runs a process in the running container with its streams attached
    /// (conmon's `--exec-attach`). Returns once the process runs; await
    /// [`ExecHandle::completion`](crate::ExecHandle) for its streams and exit
    /// code. With no stream at all this is an invalid argument (use
    /// [`exec_detached`](OciRuntime::exec_detached)).
    async fn exec(
        &self,
        container: &ContainerDescription,
        config: &ExecConfig,
        streams: AttachStreams,
        options: AttachOptions,
    ) -> Result<ExecHandle>;

    /// Runs a process in the running container without attaching to it.
    async fn exec_detached(
        &self,
        container: &ContainerDescription,
        config: &ExecConfig,
    ) -> Result<ExecSession>;

    /// Waits up to `timeout` for an exec session's process to exit, returns
    /// its exit code and removes the session's files.
    async fn exec_wait(
        &self,
        container: &ContainerDescription,
        session: &ExecSession,
        timeout: Duration,
    ) -> Result<i32>;

    /// Resizes an exec session's terminal.
    async fn exec_resize_terminal(
        &self,
        container: &ContainerDescription,
        session: &ExecSession,
        size: TerminalSize,
    ) -> Result<()>;

    /// Stops an exec session's process: SIGTERM, then SIGKILL after
    /// `timeout` (at once when `timeout` is zero).
    async fn exec_stop(
        &self,
        container: &ContainerDescription,
        session: &ExecSession,
        timeout: Duration,
    ) -> Result<()>;

    /// Whether an exec session's process still runs.
    async fn exec_alive(
        &self,
        container: &ContainerDescription,
        session: &ExecSession,
    ) -> Result<bool>;

    /// The path of an exec session's attach socket.
    fn exec_attach_socket_path(
        &self,
        container: &ContainerDescription,
        session: &ExecSessionId,
    ) -> PathBuf;

    /// Checkpoints the container with CRIU through the runtime and returns
    /// how long the runtime took. Restore goes through
    /// [`create`](OciRuntime::create) with
    /// [`CreateOptions::restore`](crate::CreateOptions::restore).
    async fn checkpoint(
        &self,
        container: &ContainerDescription,
        options: &CheckpointOptions,
    ) -> Result<Duration>;

    /// Applies new resource limits to a running container.
    async fn update_resources(
        &self,
        container: &ContainerDescription,
        resources: &LinuxResources,
    ) -> Result<()>;

    /// Whether the container's monitor process still lives.
    async fn monitor_alive(&self, container: &ContainerDescription) -> Result<bool>;

    /// The runtime's optional capabilities.
    async fn features(&self) -> Result<RuntimeFeatures>;

    /// The path of the container's attach socket.
    fn attach_socket_path(&self, container: &ContainerDescription) -> PathBuf;

    /// The path of the file holding the container's exit code.
    fn exit_file_path(&self, container: &ContainerDescription) -> PathBuf;

    /// Paths, versions and packages of the runtime and its monitor.
    async fn info(&self) -> Result<RuntimeInfo>;
}
