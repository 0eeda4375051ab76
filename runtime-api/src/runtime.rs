//! The [`OciRuntime`] trait: the plugin boundary between an engine and a
//! runtime driver. It is object safe, so engines hold runtimes as
//! `Arc<dyn OciRuntime>` and vendors plug theirs in next to the conmon one.
//!
//! The trait is a thin wrapper around a runtime, as podman's `OCIRuntime`
//! is: it does what it is asked and reports what happened. An engine keeps
//! its own records and decides which transitions it allows; the runtime
//! only refuses what it cannot do (a typed error, never a panic).
//!
//! # What an implementation owes
//!
//! Six required methods, the lifecycle every runtime has: [`create`],
//! [`start`], [`status`], [`kill`], [`delete`] and [`wait`], plus [`name`].
//! [`stop`] is provided on top of `kill` and `wait`. Everything else is an
//! optional [`Feature`]: its methods answer
//! [`RuntimeError::Unsupported`] unless overridden, and [`features`]
//! (empty by default) tells an engine up front what a runtime offers. A
//! runtime that overrides a feature's methods lists it in `features`; the
//! conformance suite in `testkit` checks that the two agree.
//!
//! [`create`]: OciRuntime::create
//! [`start`]: OciRuntime::start
//! [`status`]: OciRuntime::status
//! [`kill`]: OciRuntime::kill
//! [`delete`]: OciRuntime::delete
//! [`wait`]: OciRuntime::wait
//! [`name`]: OciRuntime::name
//! [`stop`]: OciRuntime::stop
//! [`features`]: OciRuntime::features
//!
//! # The contract, call by call
//!
//! | call | on success | typed errors |
//! | --- | --- | --- |
//! | `create` | status `Created` | `AlreadyExists` for a known id |
//! | `start` | status `Running` (or `Exited` soon after) | `NoSuchContainer` |
//! | `status` | the current [`ContainerState`] | `NoSuchContainer` |
//! | `kill` | the signal is delivered | `NoSuchContainer`; `ContainerNotRunning` once exited |
//! | `wait` | the exit code, 128+n for signal n | `NoSuchContainer`; `Timeout` |
//! | `stop` | exited; already exited is success | `NoSuchContainer` |
//! | `delete` | forgotten; an unknown id is success | `ContainerRunning` while running or paused |
//!
//! # A complete minimal runtime
//!
//! A runtime whose containers exit with code 0 as soon as they start, in
//! well under 100 lines; every optional call answers `Unsupported`.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//! use std::time::Duration;
//! use async_trait::async_trait;
//! use runtime_api::*;
//!
//! #[derive(Default)]
//! struct Instant {
//!     containers: Mutex<HashMap<ContainerId, ContainerStatus>>,
//! }
//!
//! impl Instant {
//!     fn status_of(&self, c: &ContainerDescription) -> Result<ContainerStatus> {
//!         self.containers.lock().unwrap().get(c.id()).copied().ok_or_else(|| {
//!             RuntimeError::NoSuchContainer { id: c.id().to_string() }
//!         })
//!     }
//! }
//!
//! #[async_trait]
//! impl OciRuntime for Instant {
//!     fn name(&self) -> &str {
//!         "instant"
//!     }
//!
//!     async fn create(&self, c: &ContainerDescription, _: CreateOptions) -> Result<CreatedContainer> {
//!         let mut all = self.containers.lock().unwrap();
//!         if all.contains_key(c.id()) {
//!             return Err(RuntimeError::AlreadyExists { id: c.id().to_string() });
//!         }
//!         all.insert(c.id().clone(), ContainerStatus::Created);
//!         Ok(CreatedContainer::new(None))
//!     }
//!
//!     async fn start(&self, c: &ContainerDescription) -> Result<()> {
//!         self.status_of(c)?;
//!         self.containers.lock().unwrap().insert(c.id().clone(), ContainerStatus::Exited);
//!         Ok(())
//!     }
//!
//!     async fn status(&self, c: &ContainerDescription) -> Result<ContainerState> {
//!         let status = self.status_of(c)?;
//!         let mut state = ContainerState::new(status);
//!         state.exit_code = (status == ContainerStatus::Exited).then_some(0);
//!         Ok(state)
//!     }
//!
//!     async fn kill(&self, c: &ContainerDescription, _: Signal, _: bool) -> Result<()> {
//!         match self.status_of(c)? {
//!             ContainerStatus::Exited => Err(RuntimeError::ContainerNotRunning { id: c.id().to_string() }),
//!             _ => Ok(()),
//!         }
//!     }
//!
//!     async fn wait(&self, c: &ContainerDescription, limit: Duration) -> Result<i32> {
//!         match self.status_of(c)? {
//!             ContainerStatus::Exited => Ok(0),
//!             _ => Err(RuntimeError::Timeout { operation: format!("waiting for {}", c.id()), limit }),
//!         }
//!     }
//!
//!     async fn delete(&self, c: &ContainerDescription) -> Result<()> {
//!         self.containers.lock().unwrap().remove(c.id());
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<()> {
//! let runtime: std::sync::Arc<dyn OciRuntime> = std::sync::Arc::new(Instant::default());
//! let c = ContainerDescription::builder(ContainerId::new("a")?, "/b", "/r")
//!     .log(LogDriver::None, "/dev/null")
//!     .build()?;
//! runtime.create(&c, CreateOptions::default()).await?;
//! runtime.start(&c).await?;
//! assert_eq!(runtime.wait(&c, Duration::from_secs(1)).await?, 0);
//! assert!(runtime.pause(&c).await.unwrap_err().is_unsupported());
//! assert!(runtime.features().await?.is_empty());
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use async_trait::async_trait;

use crate::{
    AttachOptions, AttachOutcome, AttachStreams, CheckpointOptions, ContainerDescription,
    ContainerState, CreateOptions, CreatedContainer, ExecConfig, ExecHandle, ExecSession, Feature,
    FeatureSet, LinuxResources, RestoreOptions, Result, RuntimeError, RuntimeInfo, Signal,
    TerminalSize,
};

/// How long the provided [`OciRuntime::stop`] waits for a container to die
/// after SIGKILL before it reports a timeout.
pub const KILL_WAIT: Duration = Duration::from_secs(10);

/// Drives one OCI runtime.
///
/// Every method is bounded by the driver's timeouts; a timeout returns
/// [`RuntimeError::Timeout`] after killing what it started. See the
/// [module documentation](crate::runtime) for the contract and a complete minimal
/// implementation.
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

    // ----- the required core -----

    /// Creates the container: its process exists but has not started.
    /// A container id the runtime already knows is refused with
    /// [`RuntimeError::AlreadyExists`], leaving that container untouched.
    async fn create(
        &self,
        container: &ContainerDescription,
        options: CreateOptions,
    ) -> Result<CreatedContainer>;

    /// Starts a created container's process. A container started already
    /// (running or paused) is refused with [`RuntimeError::InvalidArgument`]
    /// and keeps running.
    async fn start(&self, container: &ContainerDescription) -> Result<()>;

    /// Reports the container's current state; an unknown container is
    /// [`RuntimeError::NoSuchContainer`].
    async fn status(&self, container: &ContainerDescription) -> Result<ContainerState>;

    /// Sends `signal` to the container's init process, or to all its
    /// processes when `all` is set. An exited container answers
    /// [`RuntimeError::ContainerNotRunning`].
    async fn kill(&self, container: &ContainerDescription, signal: Signal, all: bool)
        -> Result<()>;

    /// Waits up to `timeout` for the container to exit and returns its
    /// exit code (128 + n for a death by signal n). Waiting on an exited
    /// container returns its code again.
    async fn wait(&self, container: &ContainerDescription, timeout: Duration) -> Result<i32>;

    /// Removes a container that is created or exited. A running or paused
    /// container is refused with [`RuntimeError::ContainerRunning`] (stop
    /// it first); an id the runtime does not know is already deleted, so
    /// that a retried delete succeeds.
    async fn delete(&self, container: &ContainerDescription) -> Result<()>;

    // ----- provided on top of the core -----

    /// Sends the container's stop signal, waits up to `timeout` for the
    /// process to exit, then sends SIGKILL and waits for it (at once when
    /// `timeout` is zero). A container that already exited is stopped
    /// successfully.
    ///
    /// The provided body uses [`kill`](OciRuntime::kill) and
    /// [`wait`](OciRuntime::wait); a runtime that can notice the death
    /// sooner overrides it.
    async fn stop(
        &self,
        container: &ContainerDescription,
        timeout: Duration,
        all: bool,
    ) -> Result<()> {
        use crate::ContainerStatus::{Exited, Stopped};
        if matches!(self.status(container).await?.status, Exited | Stopped) {
            return Ok(());
        }
        let tolerate_gone = |r: Result<()>| match r {
            Ok(()) | Err(RuntimeError::ContainerNotRunning { .. }) => Ok(()),
            Err(e) => Err(e),
        };
        if !timeout.is_zero() {
            tolerate_gone(self.kill(container, container.stop_signal(), all).await)?;
            match self.wait(container, timeout).await {
                Ok(_) => return Ok(()),
                Err(RuntimeError::Timeout { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        tolerate_gone(self.kill(container, Signal::KILL, all).await)?;
        self.wait(container, KILL_WAIT).await.map(drop)
    }

    // ----- optional features -----

    /// The optional features this runtime offers. Methods of a feature not
    /// listed answer [`RuntimeError::Unsupported`].
    async fn features(&self) -> Result<FeatureSet> {
        Ok(FeatureSet::empty())
    }

    /// Freezes the container ([`Feature::Pause`]).
    async fn pause(&self, container: &ContainerDescription) -> Result<()> {
        let _ = container;
        Err(RuntimeError::unsupported(Feature::Pause, "pause"))
    }

    /// Thaws a paused container ([`Feature::Pause`]).
    async fn resume(&self, container: &ContainerDescription) -> Result<()> {
        let _ = container;
        Err(RuntimeError::unsupported(Feature::Pause, "resume"))
    }

    /// Attaches the caller's streams to the container until the container's
    /// output ends, the client detaches, or the session is cancelled
    /// ([`Feature::Attach`]). Attaching before `start` sees all output;
    /// output produced before the attach is only in the log. With no
    /// stream at all this is an invalid argument.
    async fn attach(
        &self,
        container: &ContainerDescription,
        streams: AttachStreams,
        options: AttachOptions,
    ) -> Result<AttachOutcome> {
        let _ = (container, streams, options);
        Err(RuntimeError::unsupported(Feature::Attach, "attach"))
    }

    /// Resizes the container's terminal ([`Feature::ResizeTerminal`]).
    async fn resize_terminal(
        &self,
        container: &ContainerDescription,
        size: TerminalSize,
    ) -> Result<()> {
        let _ = (container, size);
        Err(RuntimeError::unsupported(
            Feature::ResizeTerminal,
            "resize_terminal",
        ))
    }

    /// Runs a process in the running container with its streams attached
    /// ([`Feature::Exec`]). Returns once the process runs; await
    /// [`ExecHandle::completion`] for its streams and exit code. With no
    /// stream at all this is an invalid argument (use
    /// [`exec_detached`](OciRuntime::exec_detached)). A container that is
    /// not running answers [`RuntimeError::ContainerNotRunning`].
    async fn exec(
        &self,
        container: &ContainerDescription,
        config: &ExecConfig,
        streams: AttachStreams,
        options: AttachOptions,
    ) -> Result<ExecHandle> {
        let _ = (container, config, streams, options);
        Err(RuntimeError::unsupported(Feature::Exec, "exec"))
    }

    /// Runs a process in the running container without attaching to it
    /// ([`Feature::Exec`]).
    async fn exec_detached(
        &self,
        container: &ContainerDescription,
        config: &ExecConfig,
    ) -> Result<ExecSession> {
        let _ = (container, config);
        Err(RuntimeError::unsupported(Feature::Exec, "exec_detached"))
    }

    /// Waits up to `timeout` for an exec session's process to exit, returns
    /// its exit code and forgets the session ([`Feature::Exec`]). Past
    /// `timeout` this is [`RuntimeError::Timeout`] and the session stays;
    /// a process its own [`ExecConfig::timeout`] killed is
    /// [`RuntimeError::ExecTimedOut`].
    async fn exec_wait(
        &self,
        container: &ContainerDescription,
        session: &ExecSession,
        timeout: Duration,
    ) -> Result<i32> {
        let _ = (container, session, timeout);
        Err(RuntimeError::unsupported(Feature::Exec, "exec_wait"))
    }

    /// Stops an exec session's process: SIGTERM, then SIGKILL after
    /// `timeout` (at once when `timeout` is zero) ([`Feature::Exec`]). The
    /// signals reach the process itself, also where the runtime runs it in
    /// a sandbox behind a host-side process of its own.
    async fn exec_stop(
        &self,
        container: &ContainerDescription,
        session: &ExecSession,
        timeout: Duration,
    ) -> Result<()> {
        let _ = (container, session, timeout);
        Err(RuntimeError::unsupported(Feature::Exec, "exec_stop"))
    }

    /// Whether an exec session's process still runs ([`Feature::Exec`]).
    async fn exec_alive(
        &self,
        container: &ContainerDescription,
        session: &ExecSession,
    ) -> Result<bool> {
        let _ = (container, session);
        Err(RuntimeError::unsupported(Feature::Exec, "exec_alive"))
    }

    /// Resizes an exec session's terminal
    /// ([`Feature::ExecResizeTerminal`]).
    async fn exec_resize_terminal(
        &self,
        container: &ContainerDescription,
        session: &ExecSession,
        size: TerminalSize,
    ) -> Result<()> {
        let _ = (container, session, size);
        Err(RuntimeError::unsupported(
            Feature::ExecResizeTerminal,
            "exec_resize_terminal",
        ))
    }

    /// Checkpoints the container (CRIU through the runtime) and returns
    /// how long the runtime took ([`Feature::Checkpoint`]).
    async fn checkpoint(
        &self,
        container: &ContainerDescription,
        options: &CheckpointOptions,
    ) -> Result<Duration> {
        let _ = (container, options);
        Err(RuntimeError::unsupported(Feature::Checkpoint, "checkpoint"))
    }

    /// Creates the container from a checkpoint instead of fresh
    /// ([`Feature::Restore`]); start it with [`start`](OciRuntime::start)
    /// as after `create`.
    async fn restore(
        &self,
        container: &ContainerDescription,
        restore: &RestoreOptions,
        options: CreateOptions,
    ) -> Result<CreatedContainer> {
        let _ = (container, restore, options);
        Err(RuntimeError::unsupported(Feature::Restore, "restore"))
    }

    /// Applies new resource limits to a running container
    /// ([`Feature::UpdateResources`]).
    async fn update_resources(
        &self,
        container: &ContainerDescription,
        resources: &LinuxResources,
    ) -> Result<()> {
        let _ = (container, resources);
        Err(RuntimeError::unsupported(
            Feature::UpdateResources,
            "update_resources",
        ))
    }

    /// Makes the container's monitor close and reopen its log file
    /// ([`Feature::ReopenLog`]): after the file was renamed away (log
    /// rotation), later output goes to a new file at the log path. A
    /// container that is not running answers
    /// [`RuntimeError::ContainerNotRunning`].
    async fn reopen_log(&self, container: &ContainerDescription) -> Result<()> {
        let _ = container;
        Err(RuntimeError::unsupported(Feature::ReopenLog, "reopen_log"))
    }

    /// Paths, versions and packages of the runtime and its monitor
    /// ([`Feature::Info`]).
    async fn info(&self) -> Result<RuntimeInfo> {
        Err(RuntimeError::unsupported(Feature::Info, "info"))
    }
}
