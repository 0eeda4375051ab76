//! [`MockRuntime`]: an in-memory [`OciRuntime`] for testing an engine
//! without root, conmon or any container binary. It keeps the trait's
//! contract (it passes the same [conformance suite](crate::conformance)
//! the conmon driver passes), runs scripted [`MockProcess`]es instead of
//! real ones, offers a chosen [`FeatureSet`], fails or delays chosen calls,
//! and logs every call.
//!
//! # The model
//!
//! - A bundle is a directory whose `config.json` is an OCI spec; the mock
//!   reads `process.args` and `process.terminal` from it ([`write_bundle`]
//!   writes a minimal one). `args[0]` names a *program* registered with
//!   [`MockRuntime::define_program`], like a binary on `PATH`; an unknown
//!   program fails `create` with [`RuntimeError::OciCommandNotFound`], as
//!   runc does. Exec looks `ExecConfig::args[0]` up in the same table.
//! - Lifecycle: created → running ⇄ paused → exited → deleted, with the
//!   refusals of the trait's contract table (one table, in `lifecycle.rs`).
//!   A signal to a created container kills it before its program runs.
//! - Signals: SIGKILL always kills (exit code 137); any other signal kills
//!   with 128 + n unless the program's script reacts otherwise
//!   ([`MockProcess::on_signal`]).
//! - Streams: output written before anyone attached is dropped, as conmon
//!   does (it only reaches the log, and the mock keeps no log): attach
//!   before `start` to see everything. Detach keys follow podman's grammar
//!   (`ctrl-p,ctrl-q` when unset, `""` never); [`AttachCancel`] and
//!   [`AttachReady`] are honoured. The container's stdin is open only when
//!   the description asks for it, and closes when an attached client's
//!   input ends or it detaches, unless `leave_stdin_open` is set.
//! - Features: [`MockRuntime::new`] offers every optional feature, since
//!   each is modelled: `checkpoint` validates its options and, unless
//!   asked to leave it running, kills the container as CRIU's dump does
//!   (exit code 137); `restore` validates and creates the container afresh
//!   (the program starts from its beginning); `update_resources` accepts
//!   any resources. [`MockRuntime::with_features`] offers a subset: every
//!   method of a feature left out answers [`RuntimeError::Unsupported`]
//!   (and is still logged).
//! - No pids: states and sessions report `pid: None`, so an engine cannot
//!   mistake a mock pid for a host process.
//!
//! # Testing an engine with it
//!
//! An engine that runs a job and always cleans up, tested for the happy
//! path and for a `start` that fails:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use runtime_api::{
//!     ContainerDescription, ContainerId, CreateOptions, LogDriver, OciRuntime, Result, RuntimeError,
//! };
//! use testkit::mock::{write_bundle, MockProcess, MockRuntime, Operation};
//!
//! /// The engine under test: runs a container to completion and deletes it,
//! /// even when starting it fails.
//! async fn run_job(runtime: &dyn OciRuntime, c: &ContainerDescription) -> Result<i32> {
//!     runtime.create(c, CreateOptions::default()).await?;
//!     if let Err(e) = runtime.start(c).await {
//!         runtime.delete(c).await?;
//!         return Err(e);
//!     }
//!     let code = runtime.wait(c, Duration::from_secs(5)).await?;
//!     runtime.delete(c).await?;
//!     Ok(code)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<()> {
//! let mock = Arc::new(MockRuntime::new());
//! mock.define_program("job", MockProcess::new().stdout("ok\n").exit_code(3));
//! let dir = tempfile::tempdir().unwrap();
//! write_bundle(dir.path(), &["job"], false).unwrap();
//! let c = ContainerDescription::builder(ContainerId::new("j1")?, dir.path(), dir.path().join("run"))
//!     .log(LogDriver::None, "/dev/null")
//!     .build()?;
//!
//! // The happy path.
//! assert_eq!(run_job(mock.as_ref(), &c).await?, 3);
//!
//! // The second start fails: the engine must still delete the container.
//! mock.fail_call(Operation::Start, 2, || RuntimeError::InvalidArgument("injected".into()));
//! assert!(run_job(mock.as_ref(), &c).await.is_err());
//! let operations: Vec<Operation> = mock.calls().iter().map(|call| call.operation).collect();
//! assert_eq!(
//!     operations,
//!     [
//!         Operation::Create, Operation::Start, Operation::Wait, Operation::Delete,
//!         Operation::Create, Operation::Start, Operation::Delete,
//!     ]
//! );
//! assert!(matches!(mock.status(&c).await, Err(RuntimeError::NoSuchContainer { .. })));
//! # Ok(())
//! # }
//! ```
//!
//! [`AttachCancel`]: runtime_api::AttachCancel
//! [`AttachReady`]: runtime_api::AttachReady

mod lifecycle;
mod oci;
mod process;
mod streams;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use runtime_api::{
    AttachOptions, AttachOutcome, AttachStreams, CheckpointOptions, ComponentInfo,
    ContainerDescription, ContainerId, ContainerState, CreateOptions, CreatedContainer,
    ExecCompletion, ExecConfig, ExecHandle, ExecSession, ExecSessionId, Feature, FeatureSet,
    LinuxResources, OciRuntime, RestoreOptions, Result, RuntimeError, RuntimeInfo, Signal,
    TerminalSize, KILL_WAIT,
};

use lifecycle::{Event, Phase};
use process::Process;
pub use process::{MockProcess, SignalReaction};
use streams::Ends;

/// A call the mock received, for [`MockRuntime::calls`] and fault
/// injection. Each names the trait method of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum Operation {
    Create,
    Start,
    Status,
    Kill,
    Wait,
    Delete,
    Stop,
    Features,
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
    ReopenLog,
}

/// One logged call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Call {
    /// What was called.
    pub operation: Operation,
    /// The container it was about; `None` for `features` and `info`.
    pub container: Option<ContainerId>,
}

type ErrorFactory = Arc<dyn Fn() -> RuntimeError + Send + Sync>;

enum Fault {
    Fail(ErrorFactory),
    Delay(Duration),
}

struct Container {
    phase: Phase,
    terminal: bool,
    leave_stdin_open: bool,
    process: Arc<Process>,
    started_at: Option<SystemTime>,
    finished_at: Option<SystemTime>,
    sessions: HashMap<ExecSessionId, Arc<Process>>,
}

impl Container {
    /// Moves a running or paused container whose process exited to
    /// exited: the process runs on its own, so every look at the container
    /// first catches up with it.
    fn observe_exit(&mut self) {
        if self.process.exit_code().is_some() && self.phase != Phase::Exited {
            if let Ok(phase) = lifecycle::next(self.phase, Event::Exit) {
                self.phase = phase;
                self.finished_at.get_or_insert_with(SystemTime::now);
            }
        }
    }
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
    inner: Arc<Mutex<Inner>>,
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

/// Writes a minimal bundle into `dir` (created if missing): a
/// `config.json` whose process runs `args`, with a terminal when
/// `terminal`.
pub fn write_bundle(dir: &Path, args: &[&str], terminal: bool) -> std::io::Result<()> {
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": { "args": args, "terminal": terminal, "cwd": "/" },
        "root": { "path": "rootfs" },
    });
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("config.json"), config.to_string())
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A test that panicked while holding the lock must not hide the
    // mock's state from the rest of the test.
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

fn no_such(c: &ContainerDescription) -> RuntimeError {
    RuntimeError::NoSuchContainer {
        id: c.id().to_string(),
    }
}

fn timeout(operation: String, limit: Duration) -> RuntimeError {
    RuntimeError::Timeout { operation, limit }
}

fn exec_timed_out(session: &ExecSessionId, limit: Option<Duration>) -> RuntimeError {
    RuntimeError::ExecTimedOut {
        session: session.to_string(),
        limit: limit.unwrap_or_default(),
    }
}

impl MockRuntime {
    /// A mock offering every optional feature.
    pub fn new() -> Self {
        Self::with_features(FeatureSet::all())
    }

    /// A mock offering only `features`; every method of the others answers
    /// [`RuntimeError::Unsupported`].
    pub fn with_features(features: FeatureSet) -> Self {
        Self {
            features,
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    /// Registers `process` as the program `name`, replacing an earlier
    /// one; containers created before keep the script they started with.
    pub fn define_program(&self, name: impl Into<String>, process: MockProcess) {
        lock(&self.inner).programs.insert(name.into(), process);
    }

    /// Makes the `nth` call (1-based, counted per operation) of `operation`
    /// fail with `error()` before it does anything.
    pub fn fail_call(
        &self,
        operation: Operation,
        nth: usize,
        error: impl Fn() -> RuntimeError + Send + Sync + 'static,
    ) {
        lock(&self.inner)
            .faults
            .insert((operation, nth), Fault::Fail(Arc::new(error)));
    }

    /// Delays the `nth` call (1-based, counted per operation) of
    /// `operation` by `delay` before it does anything, as a slow runtime
    /// would.
    pub fn delay_call(&self, operation: Operation, nth: usize, delay: Duration) {
        lock(&self.inner)
            .faults
            .insert((operation, nth), Fault::Delay(delay));
    }

    /// A second instance over the same containers and programs, with the
    /// same features: what an engine gets from a new driver after it
    /// restarted, its containers having run on. Calls through either are
    /// logged in one call log.
    pub fn reopen(&self) -> MockRuntime {
        Self {
            features: self.features,
            inner: Arc::clone(&self.inner),
        }
    }

    /// Every call so far, in order, including calls refused as
    /// `Unsupported` and calls that failed.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.inner).calls.clone()
    }

    /// Logs the call, refuses it when its feature is not offered, and
    /// applies its injected fault, if any.
    async fn enter(
        &self,
        operation: Operation,
        c: Option<&ContainerDescription>,
        feature: Option<(Feature, &'static str)>,
    ) -> Result<()> {
        let fault = {
            let mut inner = lock(&self.inner);
            inner.calls.push(Call {
                operation,
                container: c.map(|c| c.id().clone()),
            });
            let count = inner.counts.entry(operation).or_insert(0);
            *count += 1;
            let n = *count;
            inner.faults.remove(&(operation, n))
        };
        if let Some((feature, name)) = feature {
            if !self.features.contains(feature) {
                return Err(RuntimeError::unsupported(feature, name));
            }
        }
        match fault {
            None => Ok(()),
            Some(Fault::Fail(error)) => Err(error()),
            Some(Fault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
        }
    }

    /// Reads the container after catching up with its process.
    fn read<T>(&self, c: &ContainerDescription, f: impl FnOnce(&Container) -> T) -> Result<T> {
        let mut inner = lock(&self.inner);
        let container = inner.containers.get_mut(c.id()).ok_or_else(|| no_such(c))?;
        container.observe_exit();
        Ok(f(container))
    }

    /// Applies `event` to the container through the lifecycle table, then
    /// `then` with the phase it came from and the container in its new
    /// phase. A container whose new phase is `Gone` is forgotten.
    fn apply<T>(
        &self,
        c: &ContainerDescription,
        event: Event,
        then: impl FnOnce(Phase, &mut Container) -> T,
    ) -> Result<T> {
        let mut inner = lock(&self.inner);
        let container = inner.containers.get_mut(c.id()).ok_or_else(|| no_such(c))?;
        container.observe_exit();
        let from = container.phase;
        let to = lifecycle::next(from, event).map_err(|refusal| refusal.into_error(c.id()))?;
        container.phase = to;
        let out = then(from, container);
        if to == Phase::Gone {
            inner.containers.remove(c.id());
        }
        Ok(out)
    }

    fn program(&self, args: &[String]) -> Result<MockProcess> {
        let name = args.first().map(String::as_str).unwrap_or_default();
        lock(&self.inner)
            .programs
            .get(name)
            .cloned()
            .ok_or_else(|| RuntimeError::OciCommandNotFound {
                message: format!("exec: \"{name}\": executable file not found in $PATH"),
            })
    }

    fn create_container(
        &self,
        c: &ContainerDescription,
        options: &CreateOptions,
    ) -> Result<CreatedContainer> {
        if options.preserved_fds.len() != c.preserved_fds() as usize {
            return Err(RuntimeError::InvalidArgument(format!(
                "{} preserved fds handed over, the description says {}",
                options.preserved_fds.len(),
                c.preserved_fds()
            )));
        }
        let (args, terminal) = read_process(c.bundle())?;
        if terminal != c.terminal() {
            return Err(RuntimeError::InvalidArgument(format!(
                "config.json asks for terminal {terminal}, the description for {}",
                c.terminal()
            )));
        }
        let script = self.program(&args)?;
        let mut inner = lock(&self.inner);
        if inner.containers.contains_key(c.id()) {
            return Err(RuntimeError::AlreadyExists {
                id: c.id().to_string(),
            });
        }
        inner.containers.insert(
            c.id().clone(),
            Container {
                phase: Phase::Created,
                terminal,
                leave_stdin_open: c.leave_stdin_open(),
                process: Process::new(script, c.stdin()),
                started_at: None,
                finished_at: None,
                sessions: HashMap::new(),
            },
        );
        Ok(CreatedContainer::new(None))
    }

    /// Delivers `signal` through the lifecycle table.
    fn signal(&self, c: &ContainerDescription, signal: Signal) -> Result<()> {
        self.apply(c, Event::Signal, |from, container| {
            if from == Phase::Created {
                container.process.kill_unstarted(128 + signal.number());
                container.finished_at = Some(SystemTime::now());
            } else {
                container.process.signal(signal.number());
            }
        })
    }

    /// Creates an exec session's process in the running container and
    /// registers it; the caller starts it.
    fn launch_exec(
        &self,
        c: &ContainerDescription,
        config: &ExecConfig,
    ) -> Result<(ExecSession, Arc<Process>)> {
        config.validate()?;
        // A container that cannot exec answers so before its program is
        // looked up, as runc does.
        self.read(c, |container| lifecycle::next(container.phase, Event::Exec))?
            .map_err(|refusal| refusal.into_error(c.id()))?;
        let script = self.program(&config.args)?;
        let process = Process::new(script, config.stdin);
        let id = {
            let mut inner = lock(&self.inner);
            inner.next_session += 1;
            ExecSessionId::new(format!("exec-{}", inner.next_session))?
        };
        let container_process = self.apply(c, Event::Exec, |_, container| {
            container.sessions.insert(id.clone(), Arc::clone(&process));
            Arc::clone(&container.process)
        })?;
        // An exec'd process dies with its container (the pid namespace
        // goes away), and by its own timeout.
        let session_process = Arc::clone(&process);
        let limit = config.timeout;
        tokio::spawn(async move {
            let expired = async {
                match limit {
                    Some(limit) => tokio::time::sleep(limit).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = container_process.exited() => session_process.signal(9),
                () = expired => session_process.kill_for_timeout(),
                _ = session_process.exited() => {}
            }
        });
        let mut session = ExecSession::new(id, None);
        session.timeout = config.timeout;
        Ok((session, process))
    }

    fn session(&self, c: &ContainerDescription, id: &ExecSessionId) -> Result<Arc<Process>> {
        self.read(c, |container| container.sessions.get(id).cloned())?
            .ok_or_else(|| {
                RuntimeError::InvalidArgument(format!(
                    "no exec session {id} in container {}",
                    c.id()
                ))
            })
    }

    fn forget_session(inner: &Mutex<Inner>, c: &ContainerId, id: &ExecSessionId) {
        if let Some(container) = lock(inner).containers.get_mut(c) {
            container.sessions.remove(id);
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
