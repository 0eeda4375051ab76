//! [`MockRuntime`]: an in-memory [`OciRuntime`] for testing engines without
//! root, conmon or any container binary. It behaves as the trait's
//! contract says (the same conformance suite the conmon driver passes
//! proves it), runs scripted [`MockProcess`]es instead of real ones,
//! offers a chosen [`FeatureSet`], fails or delays chosen calls, and logs
//! every call.
//!
//! A bundle is a directory whose `config.json` names the program in
//! `process.args[0]`; programs are registered on the mock like binaries on
//! `PATH`. An unknown program fails `create` with
//! [`RuntimeError::OciCommandNotFound`], as runc does.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use runtime_api::{ContainerDescription, ContainerId, CreateOptions, LogDriver, OciRuntime};
//! use testkit::mock::{write_bundle, MockProcess, MockRuntime, Operation};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> runtime_api::Result<()> {
//! let mock = Arc::new(MockRuntime::new());
//! mock.define_program("job", MockProcess::new().stdout("ok\n").exit_code(3));
//! let dir = tempfile::tempdir().unwrap();
//! write_bundle(dir.path(), &["job"], false).unwrap();
//! let c = ContainerDescription::builder(ContainerId::new("j1")?, dir.path(), dir.path().join("run"))
//!     .log(LogDriver::None, "/dev/null")
//!     .build()?;
//!
//! // The engine under test holds it as any runtime.
//! let runtime: Arc<dyn OciRuntime> = mock.clone();
//! runtime.create(&c, CreateOptions::default()).await?;
//! runtime.start(&c).await?;
//! assert_eq!(runtime.wait(&c, Duration::from_secs(5)).await?, 3);
//! runtime.delete(&c).await?;
//! let operations: Vec<Operation> = mock.calls().iter().map(|call| call.operation).collect();
//! assert_eq!(operations, [Operation::Create, Operation::Start, Operation::Wait, Operation::Delete]);
//! # Ok(())
//! # }
//! ```

mod process;
mod streams;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use runtime_api::{
    AttachOptions, AttachOutcome, AttachStreams, CheckpointOptions, ContainerDescription,
    ContainerId, ContainerState, ContainerStatus, CreateOptions, CreatedContainer, ExecConfig,
    ExecHandle, ExecSession, ExecSessionId, Feature, FeatureSet, LinuxResources, OciRuntime,
    RestoreOptions, Result, RuntimeError, RuntimeInfo, Signal, TerminalSize,
};
use tokio::sync::oneshot;

use process::ProcessHandle;
pub use process::{MockProcess, TermReaction};

/// A call the mock received, for [`MockRuntime::calls`] and fault
/// injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // each names the trait method of the same name
pub enum Operation {
    Create,
    Start,
    Status,
    Kill,
    Wait,
    Delete,
    Stop,
    Pause,
    Resume,
    Attach,
    ResizeTerminal,
    Exec,
    ExecDetached,
    ExecWait,
    ExecStop,
    ExecAlive,
    ExecResizeTerminal,
    Checkpoint,
    Restore,
    UpdateResources,
    Info,
}

/// One logged call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// What was called.
    pub operation: Operation,
    /// The container it was about, if any.
    pub container: Option<String>,
}

type ErrorFactory = Arc<dyn Fn() -> RuntimeError + Send + Sync>;

enum Fault {
    Fail(ErrorFactory),
    Delay(Duration),
}

struct Container {
    status: ContainerStatus,
    terminal: bool,
    process: ProcessHandle,
    go: Option<oneshot::Sender<()>>,
    started_at: Option<SystemTime>,
    finished_at: Option<SystemTime>,
    sessions: HashMap<ExecSessionId, ProcessHandle>,
}

#[derive(Default)]
struct Inner {
    programs: HashMap<String, MockProcess>,
    containers: HashMap<ContainerId, Container>,
    calls: Vec<Call>,
    counts: HashMap<Operation, usize>,
    faults: HashMap<(Operation, usize), Fault>,
    next_session: u64,
}

/// An in-memory runtime with scripted processes; see the
/// [module documentation](self).
pub struct MockRuntime {
    features: FeatureSet,
    inner: Mutex<Inner>,
}

impl Default for MockRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MockRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockRuntime")
            .field("features", &self.features)
            .finish_non_exhaustive()
    }
}

/// Writes a minimal bundle into `dir`: a `config.json` whose process runs
/// `args` (with a terminal when `terminal`).
pub fn write_bundle(dir: &Path, args: &[&str], terminal: bool) -> std::io::Result<()> {
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": { "args": args, "terminal": terminal, "cwd": "/" },
        "root": { "path": "rootfs" },
    });
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("config.json"), config.to_string())
}

impl MockRuntime {
    /// A mock offering every optional feature.
    pub fn new() -> Self {
        Self::with_features(FeatureSet::all())
    }

    /// A mock offering only `features`; the others answer `Unsupported`.
    pub fn with_features(features: FeatureSet) -> Self {
        Self {
            features,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Registers `process` as the program `name`.
    pub fn define_program(&self, name: impl Into<String>, process: MockProcess) {
        self.lock().programs.insert(name.into(), process);
    }

    /// Makes the `nth` call (1-based) of `operation` fail with `error()`.
    pub fn fail_call(
        &self,
        operation: Operation,
        nth: usize,
        error: impl Fn() -> RuntimeError + Send + Sync + 'static,
    ) {
        self.lock()
            .faults
            .insert((operation, nth), Fault::Fail(Arc::new(error)));
    }

    /// Delays the `nth` call (1-based) of `operation` by `delay` before it
    /// does anything.
    pub fn delay_call(&self, operation: Operation, nth: usize, delay: Duration) {
        self.lock()
            .faults
            .insert((operation, nth), Fault::Delay(delay));
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Logs the call and applies its injected fault, if any.
    async fn enter(&self, operation: Operation, c: Option<&ContainerDescription>) -> Result<()> {
        let fault = {
            let mut inner = self.lock();
            inner.calls.push(Call {
                operation,
                container: c.map(|c| c.id().to_string()),
            });
            let count = inner.counts.entry(operation).or_insert(0);
            *count += 1;
            let n = *count;
            inner.faults.remove(&(operation, n))
        };
        match fault {
            None => Ok(()),
            Some(Fault::Fail(error)) => Err(error()),
            Some(Fault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
        }
    }

    async fn enter_feature(
        &self,
        feature: Feature,
        operation: Operation,
        name: &'static str,
        c: Option<&ContainerDescription>,
    ) -> Result<()> {
        if !self.features.contains(feature) {
            return Err(RuntimeError::unsupported(feature, name));
        }
        self.enter(operation, c).await
    }

    /// Runs `f` on the container, refreshing its status from its process.
    fn with_container<T>(
        &self,
        c: &ContainerDescription,
        f: impl FnOnce(&mut Container) -> Result<T>,
    ) -> Result<T> {
        let mut inner = self.lock();
        let container = inner.containers.get_mut(c.id()).ok_or_else(|| no_such(c))?;
        refresh(container);
        f(container)
    }

    fn process_of(&self, c: &ContainerDescription) -> Result<ProcessHandle> {
        self.with_container(c, |container| Ok(container.process.clone()))
    }

    fn program(&self, args: &[String]) -> Result<MockProcess> {
        let name = args.first().map(String::as_str).unwrap_or_default();
        self.lock()
            .programs
            .get(name)
            .cloned()
            .ok_or_else(|| RuntimeError::OciCommandNotFound {
                message: format!("mock: exec: \"{name}\": executable file not found in $PATH"),
            })
    }

    fn session(&self, c: &ContainerDescription, id: &ExecSessionId) -> Result<ProcessHandle> {
        self.with_container(c, |container| {
            container.sessions.get(id).cloned().ok_or_else(|| {
                RuntimeError::InvalidArgument(format!("no exec session {id} in {}", c.id()))
            })
        })
    }

    fn launch_exec(
        &self,
        c: &ContainerDescription,
        config: &ExecConfig,
    ) -> Result<(ExecSession, ProcessHandle, oneshot::Sender<()>)> {
        config.validate()?;
        let script = self.program(&config.args)?;
        let (handle, go) = process::prepare(script);
        let mut inner = self.lock();
        inner.next_session += 1;
        let id = ExecSessionId::new(format!("exec-{}", inner.next_session))?;
        let container = inner.containers.get_mut(c.id()).ok_or_else(|| no_such(c))?;
        refresh(container);
        if container.status != ContainerStatus::Running {
            return Err(not_running(c));
        }
        container.sessions.insert(id.clone(), handle.clone());
        let mut session = ExecSession::new(id, None);
        session.timeout = config.timeout;
        Ok((session, handle, go))
    }
}

fn no_such(c: &ContainerDescription) -> RuntimeError {
    RuntimeError::NoSuchContainer {
        id: c.id().to_string(),
    }
}

fn not_running(c: &ContainerDescription) -> RuntimeError {
    RuntimeError::ContainerNotRunning {
        id: c.id().to_string(),
    }
}

/// The one place a container's status follows its process: a process that
/// exited makes a running or paused container exited.
fn refresh(container: &mut Container) {
    if let Some(_code) = container.process.exit_code() {
        if matches!(
            container.status,
            ContainerStatus::Running | ContainerStatus::Paused
        ) {
            container.status = ContainerStatus::Exited;
            container.finished_at = Some(SystemTime::now());
        }
    }
}

fn read_process(bundle: &Path) -> Result<(Vec<String>, bool)> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| RuntimeError::io(format!("reading {}", path.display()), e))?;
    let spec: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        RuntimeError::InvalidArgument(format!("{} is not JSON: {e}", path.display()))
    })?;
    let args = spec["process"]["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let terminal = spec["process"]["terminal"].as_bool().unwrap_or(false);
    Ok((args, terminal))
}

#[async_trait]
impl OciRuntime for MockRuntime {
    fn name(&self) -> &str {
        "mock"
    }

    async fn create(&self, c: &ContainerDescription, _: CreateOptions) -> Result<CreatedContainer> {
        self.enter(Operation::Create, Some(c)).await?;
        let (args, terminal) = read_process(c.bundle())?;
        let script = self.program(&args)?;
        let mut inner = self.lock();
        if inner.containers.contains_key(c.id()) {
            return Err(RuntimeError::AlreadyExists {
                id: c.id().to_string(),
            });
        }
        let (process, go) = process::prepare(script);
        inner.containers.insert(
            c.id().clone(),
            Container {
                status: ContainerStatus::Created,
                terminal,
                process,
                go: Some(go),
                started_at: None,
                finished_at: None,
                sessions: HashMap::new(),
            },
        );
        Ok(CreatedContainer::new(None))
    }

    async fn start(&self, c: &ContainerDescription) -> Result<()> {
        self.enter(Operation::Start, Some(c)).await?;
        self.with_container(c, |container| match container.status {
            ContainerStatus::Created => {
                container.status = ContainerStatus::Running;
                container.started_at = Some(SystemTime::now());
                if let Some(go) = container.go.take() {
                    let _ = go.send(());
                }
                Ok(())
            }
            ContainerStatus::Exited | ContainerStatus::Stopped => Err(not_running(c)),
            ContainerStatus::Running | ContainerStatus::Paused => Err(
                RuntimeError::InvalidArgument(format!("container {} was started already", c.id())),
            ),
        })
    }

    async fn status(&self, c: &ContainerDescription) -> Result<ContainerState> {
        self.enter(Operation::Status, Some(c)).await?;
        self.with_container(c, |container| {
            let mut state = ContainerState::new(container.status);
            state.started_at = container.started_at;
            state.finished_at = container.finished_at;
            if container.status == ContainerStatus::Exited {
                state.exit_code = container.process.exit_code();
            }
            Ok(state)
        })
    }

    async fn kill(&self, c: &ContainerDescription, signal: Signal, _all: bool) -> Result<()> {
        self.enter(Operation::Kill, Some(c)).await?;
        self.with_container(c, |container| match container.status {
            ContainerStatus::Exited | ContainerStatus::Stopped => Err(not_running(c)),
            ContainerStatus::Created => {
                // A created container's process dies without ever running.
                container.status = ContainerStatus::Running;
                let _ = container.process.signals.send(signal.number());
                if let Some(go) = container.go.take() {
                    let _ = go.send(());
                }
                Ok(())
            }
            _ => {
                let _ = container.process.signals.send(signal.number());
                Ok(())
            }
        })
    }

    async fn wait(&self, c: &ContainerDescription, timeout: Duration) -> Result<i32> {
        self.enter(Operation::Wait, Some(c)).await?;
        let process = self.process_of(c)?;
        match process.wait(timeout).await {
            Some(code) => {
                self.with_container(c, |container| {
                    refresh(container);
                    Ok(())
                })?;
                Ok(code)
            }
            None => Err(RuntimeError::Timeout {
                operation: format!("waiting for container {} to exit", c.id()),
                limit: timeout,
            }),
        }
    }

    async fn delete(&self, c: &ContainerDescription) -> Result<()> {
        self.enter(Operation::Delete, Some(c)).await?;
        let mut inner = self.lock();
        let Some(container) = inner.containers.get_mut(c.id()) else {
            return Ok(());
        };
        refresh(container);
        if matches!(
            container.status,
            ContainerStatus::Running | ContainerStatus::Paused
        ) {
            return Err(RuntimeError::ContainerRunning {
                id: c.id().to_string(),
            });
        }
        inner.containers.remove(c.id());
        Ok(())
    }

    async fn features(&self) -> Result<FeatureSet> {
        Ok(self.features)
    }

    async fn pause(&self, c: &ContainerDescription) -> Result<()> {
        self.enter_feature(Feature::Pause, Operation::Pause, "pause", Some(c))
            .await?;
        self.with_container(c, |container| match container.status {
            ContainerStatus::Running => {
                container.status = ContainerStatus::Paused;
                Ok(())
            }
            _ => Err(not_running(c)),
        })
    }

    async fn resume(&self, c: &ContainerDescription) -> Result<()> {
        self.enter_feature(Feature::Pause, Operation::Resume, "resume", Some(c))
            .await?;
        self.with_container(c, |container| match container.status {
            ContainerStatus::Paused => {
                container.status = ContainerStatus::Running;
                Ok(())
            }
            _ => Err(not_running(c)),
        })
    }

    async fn attach(
        &self,
        c: &ContainerDescription,
        streams: AttachStreams,
        options: AttachOptions,
    ) -> Result<AttachOutcome> {
        self.enter_feature(Feature::Attach, Operation::Attach, "attach", Some(c))
            .await?;
        if streams.is_empty() {
            return Err(RuntimeError::InvalidArgument(
                "attach needs at least one of stdin, stdout and stderr".into(),
            ));
        }
        let (process, terminal) = self.with_container(c, |container| {
            if container.status == ContainerStatus::Exited {
                return Err(not_running(c));
            }
            Ok((container.process.clone(), container.terminal))
        })?;
        let output = process.output.subscribe();
        streams::pump(&process, output, streams, options, terminal).await
    }

    async fn resize_terminal(&self, c: &ContainerDescription, size: TerminalSize) -> Result<()> {
        self.enter_feature(
            Feature::ResizeTerminal,
            Operation::ResizeTerminal,
            "resize_terminal",
            Some(c),
        )
        .await?;
        self.with_container(c, |container| {
            if container.status == ContainerStatus::Exited {
                return Err(not_running(c));
            }
            let _ = container.process.resizes.send((size.rows, size.cols));
            Ok(())
        })
    }

    async fn exec(
        &self,
        c: &ContainerDescription,
        config: &ExecConfig,
        streams: AttachStreams,
        options: AttachOptions,
    ) -> Result<ExecHandle> {
        self.enter_feature(Feature::Exec, Operation::Exec, "exec", Some(c))
            .await?;
        if streams.is_empty() {
            return Err(RuntimeError::InvalidArgument(
                "exec needs at least one of stdin, stdout and stderr; use exec_detached".into(),
            ));
        }
        let (session, process, go) = self.launch_exec(c, config)?;
        let output = process.output.subscribe();
        let _ = go.send(());
        let terminal = config.terminal;
        let completion = Box::pin(async move {
            let outcome = streams::pump(&process, output, streams, options, terminal).await?;
            let exit_code = match outcome {
                AttachOutcome::StreamsEnded => process.wait(Duration::from_secs(60)).await,
                _ => None,
            };
            Ok(runtime_api::ExecCompletion::new(outcome, exit_code))
        });
        Ok(ExecHandle::new(session, completion))
    }

    async fn exec_detached(
        &self,
        c: &ContainerDescription,
        config: &ExecConfig,
    ) -> Result<ExecSession> {
        self.enter_feature(
            Feature::Exec,
            Operation::ExecDetached,
            "exec_detached",
            Some(c),
        )
        .await?;
        let (session, _process, go) = self.launch_exec(c, config)?;
        let _ = go.send(());
        Ok(session)
    }

    async fn exec_wait(
        &self,
        c: &ContainerDescription,
        session: &ExecSession,
        timeout: Duration,
    ) -> Result<i32> {
        self.enter_feature(Feature::Exec, Operation::ExecWait, "exec_wait", Some(c))
            .await?;
        let process = self.session(c, &session.id)?;
        match process.wait(timeout).await {
            Some(code) => {
                self.with_container(c, |container| {
                    container.sessions.remove(&session.id);
                    Ok(())
                })?;
                Ok(code)
            }
            None => Err(RuntimeError::Timeout {
                operation: format!("waiting for exec session {}", session.id),
                limit: timeout,
            }),
        }
    }

    async fn exec_stop(
        &self,
        c: &ContainerDescription,
        session: &ExecSession,
        timeout: Duration,
    ) -> Result<()> {
        self.enter_feature(Feature::Exec, Operation::ExecStop, "exec_stop", Some(c))
            .await?;
        let process = self.session(c, &session.id)?;
        if !timeout.is_zero() {
            let _ = process.signals.send(15);
            if process.wait(timeout).await.is_some() {
                return Ok(());
            }
        }
        let _ = process.signals.send(9);
        process.wait(runtime_api::KILL_WAIT).await;
        Ok(())
    }

    async fn exec_alive(&self, c: &ContainerDescription, session: &ExecSession) -> Result<bool> {
        self.enter_feature(Feature::Exec, Operation::ExecAlive, "exec_alive", Some(c))
            .await?;
        Ok(self.session(c, &session.id)?.exit_code().is_none())
    }

    async fn exec_resize_terminal(
        &self,
        c: &ContainerDescription,
        session: &ExecSession,
        size: TerminalSize,
    ) -> Result<()> {
        self.enter_feature(
            Feature::ExecResizeTerminal,
            Operation::ExecResizeTerminal,
            "exec_resize_terminal",
            Some(c),
        )
        .await?;
        let _ = self
            .session(c, &session.id)?
            .resizes
            .send((size.rows, size.cols));
        Ok(())
    }

    async fn checkpoint(
        &self,
        c: &ContainerDescription,
        options: &CheckpointOptions,
    ) -> Result<Duration> {
        self.enter_feature(
            Feature::Checkpoint,
            Operation::Checkpoint,
            "checkpoint",
            Some(c),
        )
        .await?;
        options.validate()?;
        self.with_container(c, |container| match container.status {
            ContainerStatus::Running => Ok(Duration::ZERO),
            _ => Err(not_running(c)),
        })
    }

    async fn restore(
        &self,
        c: &ContainerDescription,
        restore: &RestoreOptions,
        options: CreateOptions,
    ) -> Result<CreatedContainer> {
        self.enter_feature(Feature::Restore, Operation::Restore, "restore", Some(c))
            .await?;
        restore.validate()?;
        self.create(c, options).await
    }

    async fn update_resources(
        &self,
        c: &ContainerDescription,
        _resources: &LinuxResources,
    ) -> Result<()> {
        self.enter_feature(
            Feature::UpdateResources,
            Operation::UpdateResources,
            "update_resources",
            Some(c),
        )
        .await?;
        self.with_container(c, |container| match container.status {
            ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Created => Ok(()),
            _ => Err(not_running(c)),
        })
    }

    async fn info(&self) -> Result<RuntimeInfo> {
        self.enter_feature(Feature::Info, Operation::Info, "info", None)
            .await?;
        Ok(RuntimeInfo::new(runtime_api::ComponentInfo::new(
            "/dev/null",
            format!("mock {}", env!("CARGO_PKG_VERSION")),
        )))
    }
}
