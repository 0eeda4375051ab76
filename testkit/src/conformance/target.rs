//! What an implementation hands the suite: its runtime, and a way to turn
//! an abstract [`Workload`] into a container description (and an exec
//! config) that runs it on that runtime.

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use runtime_api::{ContainerDescription, ContainerId, ExecConfig, OciRuntime};

/// What a container's (or an exec's) process does, independent of how a
/// runtime runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Workload {
    /// Exits with the code at once.
    Exit(i32),
    /// Writes to stdout and stderr, then exits with the code.
    Print {
        /// Written to stdout.
        stdout: String,
        /// Written to stderr.
        stderr: String,
        /// The exit code.
        code: i32,
    },
    /// Runs until signalled; SIGTERM makes it exit with 143 through a
    /// handler.
    UntilSignalled,
    /// Runs until SIGKILL: SIGTERM is ignored.
    IgnoreTerm,
    /// Copies stdin to stdout and exits 0 at stdin's end.
    Cat,
    /// With a terminal: prints `"ROWS COLS"` once its terminal has that
    /// size (it may then exit 0 or keep running until signalled).
    ReportSize {
        /// Rows to wait for.
        rows: u16,
        /// Columns to wait for.
        cols: u16,
    },
}

/// A container the suite asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// What it runs.
    pub workload: Workload,
    /// Whether it gets a terminal.
    pub terminal: bool,
    /// Whether its stdin stays open for attach.
    pub stdin: bool,
}

impl ContainerSpec {
    /// `workload` without terminal or stdin.
    pub fn new(workload: Workload) -> Self {
        Self {
            workload,
            terminal: false,
            stdin: false,
        }
    }
}

/// A prepared container: its description, and whatever must live as long
/// as it (temporary directories), dropped after the case.
pub struct Prepared {
    /// The container to create.
    pub description: ContainerDescription,
    /// Kept alive until the case ends.
    pub guard: Box<dyn Any + Send + Sync>,
    /// A host file the workload writes (an integer, renamed into place)
    /// once its signal handler is installed, for the workloads that
    /// install one ([`Workload::UntilSignalled`], [`Workload::IgnoreTerm`]).
    /// The suite waits for it after `start`, before it signals: a process
    /// that is PID 1 of its namespace ignores a signal it has no handler
    /// for yet, so a TERM sent too early would be lost. `None` when the
    /// workload is ready as soon as it is started.
    pub ready_file: Option<PathBuf>,
}

impl Prepared {
    /// A prepared container without a readiness file.
    pub fn new(description: ContainerDescription, guard: Box<dyn Any + Send + Sync>) -> Self {
        Self {
            description,
            guard,
            ready_file: None,
        }
    }

    /// Sets [`ready_file`](Prepared::ready_file).
    pub fn with_ready_file(mut self, path: PathBuf) -> Self {
        self.ready_file = Some(path);
        self
    }
}

/// An implementation under test: its runtime, and how to run the suite's
/// workloads on it.
///
/// ```
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use runtime_api::{ContainerDescription, ContainerId, ExecConfig, LogDriver, OciRuntime};
/// use testkit::conformance::{ContainerSpec, MockTarget, Prepared, Target, Workload};
/// use testkit::mock::{write_bundle, MockRuntime};
///
/// /// A target for a runtime whose bundles name a mock program per workload.
/// struct MyTarget(Arc<MockRuntime>);
///
/// #[async_trait]
/// impl Target for MyTarget {
///     fn runtime(&self) -> Arc<dyn OciRuntime> {
///         self.0.clone()
///     }
///
///     async fn prepare(&self, id: ContainerId, spec: &ContainerSpec) -> Result<Prepared, String> {
///         let program = format!("{id}-program");
///         self.0.define_program(&program, MockTarget::script(&spec.workload));
///         let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
///         write_bundle(dir.path(), &[&program], spec.terminal).map_err(|e| e.to_string())?;
///         let description = ContainerDescription::builder(id, dir.path(), dir.path().join("run"))
///             .terminal(spec.terminal)
///             .stdin(spec.stdin)
///             .log(LogDriver::None, "/dev/null")
///             .build()
///             .map_err(|e| e.to_string())?;
///         Ok(Prepared::new(description, Box::new(dir)))
///     }
///
///     fn exec_config(&self, workload: &Workload) -> ExecConfig {
///         let program = format!("exec-{}", rand_name());
///         self.0.define_program(&program, MockTarget::script(workload));
///         let mut config = ExecConfig::new([program]);
///         config.stdin = matches!(workload, Workload::Cat);
///         config.terminal = matches!(workload, Workload::ReportSize { .. });
///         config
///     }
/// }
/// # fn rand_name() -> String {
/// #     use std::sync::atomic::{AtomicU32, Ordering};
/// #     static N: AtomicU32 = AtomicU32::new(0);
/// #     N.fetch_add(1, Ordering::Relaxed).to_string()
/// # }
/// # #[tokio::main]
/// # async fn main() {
/// let target = MyTarget(Arc::new(MockRuntime::new()));
/// let options = testkit::conformance::Options::default().with_filter("exit code");
/// testkit::conformance::run(&target, &options).await.assert_all_passed();
/// # }
/// ```
#[async_trait]
pub trait Target: Send + Sync {
    /// The runtime under test.
    fn runtime(&self) -> Arc<dyn OciRuntime>;

    /// Prepares (does not create) a container with id `id` running
    /// `spec.workload`, with a terminal and an open stdin as `spec` says,
    /// and whatever must live as long as it (bundle and run directories)
    /// in the guard. The error says what could not be prepared; the case
    /// fails with it.
    async fn prepare(&self, id: ContainerId, spec: &ContainerSpec) -> Result<Prepared, String>;

    /// An exec configuration running `workload` in any container the
    /// target prepared: with stdin for [`Workload::Cat`], a terminal for
    /// [`Workload::ReportSize`].
    fn exec_config(&self, workload: &Workload) -> ExecConfig;

    /// A second instance of the runtime over the same containers, as an
    /// engine gets one after it restarted while its containers ran on (a
    /// new driver over the same state directories). `None` (the default)
    /// skips the cases that need it; a runtime an engine must survive the
    /// restart of (a CRI server's) should offer it.
    fn reopened(&self) -> Option<Arc<dyn OciRuntime>> {
        None
    }
}
