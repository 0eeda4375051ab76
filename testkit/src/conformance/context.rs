//! What a case body works with: the [`Context`] that prepares containers
//! through the target and cleans them up afterwards, and the small helpers
//! every case shares (typed-error checks, a sink that collects output and
//! says when it holds what a case waits for).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use runtime_api::{
    AttachOptions, AttachOutcome, AttachReady, AttachStreams, ContainerDescription, ContainerId,
    ContainerStatus, CreateOptions, OciRuntime, RuntimeError,
};

/// How long a started container may take to announce readiness.
const READY_LIMIT: Duration = Duration::from_secs(30);

use super::target::{ContainerSpec, Prepared, Target, Workload};

/// How long a case waits for one thing a healthy runtime does in well
/// under a second (an exit after a signal, output, an attach ending).
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// How long cleaning up after one case may take.
pub(crate) const CLEANUP_LIMIT: Duration = Duration::from_secs(60);

/// What a case works with: the target, and the containers it prepared
/// (stopped and deleted after the case, whatever its outcome).
pub struct Context<'a> {
    target: &'a dyn Target,
    runtime: Arc<dyn OciRuntime>,
    prepared: Mutex<Vec<Prepared>>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A container id no other case of this process uses.
pub(crate) fn unique_id(prefix: &str) -> ContainerId {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    ContainerId::new(format!("cf-{prefix}-{}-{n}", std::process::id()))
        .expect("conformance ids are valid")
}

impl<'a> Context<'a> {
    pub(crate) fn new(target: &'a dyn Target) -> Self {
        Self {
            target,
            runtime: target.runtime(),
            prepared: Mutex::new(Vec::new()),
        }
    }

    /// The target under test.
    pub fn target(&self) -> &dyn Target {
        self.target
    }

    /// The runtime under test.
    pub fn runtime(&self) -> &dyn OciRuntime {
        self.runtime.as_ref()
    }

    /// The runtime under test, to move into a spawned task.
    pub fn shared_runtime(&self) -> Arc<dyn OciRuntime> {
        Arc::clone(&self.runtime)
    }

    /// Prepares (does not create) a container running `spec`, cleaned up
    /// after the case.
    pub async fn prepare(&self, spec: ContainerSpec) -> Result<ContainerDescription, String> {
        let prepared = self
            .target
            .prepare(unique_id("c"), &spec)
            .await
            .map_err(|e| format!("preparing a container: {e}"))?;
        let description = prepared.description.clone();
        self.prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(prepared);
        Ok(description)
    }

    /// Prepares and creates a container running `spec`.
    pub async fn create(&self, spec: ContainerSpec) -> Result<ContainerDescription, String> {
        let c = self.prepare(spec).await?;
        self.runtime
            .create(&c, CreateOptions::default())
            .await
            .map_err(|e| unexpected("create", &e))?;
        Ok(c)
    }

    /// Prepares and creates a container running `workload`.
    pub async fn created(&self, workload: Workload) -> Result<ContainerDescription, String> {
        self.create(ContainerSpec::new(workload)).await
    }

    /// Prepares, creates and starts a container running `spec`.
    pub async fn start(&self, spec: ContainerSpec) -> Result<ContainerDescription, String> {
        let c = self.create(spec).await?;
        self.runtime
            .start(&c)
            .await
            .map_err(|e| unexpected("start", &e))?;
        self.await_ready(&c).await?;
        Ok(c)
    }

    /// Waits until the started container `c` has announced readiness
    /// through its [`ready_file`](super::Prepared::ready_file), if it has
    /// one.
    pub async fn await_ready(&self, c: &ContainerDescription) -> Result<(), String> {
        let ready_file = self
            .prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|p| p.description.id() == c.id())
            .and_then(|p| p.ready_file.clone());
        let Some(ready_file) = ready_file else {
            return Ok(());
        };
        state_probe::wait_for_exit_file(&ready_file, READY_LIMIT)
            .await
            .map(|_| ())
            .map_err(|e| format!("container {} never announced readiness: {e}", c.id()))
    }

    /// Prepares, creates and starts a container running `workload`.
    pub async fn started(&self, workload: Workload) -> Result<ContainerDescription, String> {
        self.start(ContainerSpec::new(workload)).await
    }

    /// Stops and deletes every container of the case, then drops what
    /// their preparation holds (temporary directories). A container the
    /// case already removed is fine; one that cannot be stopped or deleted
    /// is a leak, and the answer names it.
    pub(crate) async fn cleanup(&self) -> Result<(), String> {
        let all: Vec<Prepared> =
            std::mem::take(&mut *self.prepared.lock().unwrap_or_else(PoisonError::into_inner));
        let mut leaks = Vec::new();
        for prepared in &all {
            let c = &prepared.description;
            if let Err(e) = self.stop_if_live(c).await {
                leaks.push(e);
            }
            match self.runtime.delete(c).await {
                Ok(()) | Err(RuntimeError::NoSuchContainer { .. }) => {}
                Err(e) => leaks.push(format!("delete of {} failed: {e}", c.id())),
            }
        }
        if leaks.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "cleanup left containers behind: {}",
                leaks.join("; ")
            ))
        }
    }

    /// Stops a running or paused container; a created one is left to
    /// `delete` (some runtimes, runsc among them, cannot signal a
    /// container whose process has not started).
    async fn stop_if_live(&self, c: &ContainerDescription) -> Result<(), String> {
        let status = match self.runtime.status(c).await {
            Ok(state) => state.status,
            Err(RuntimeError::NoSuchContainer { .. }) => return Ok(()),
            Err(e) => return Err(format!("status of {} failed: {e}", c.id())),
        };
        if status == ContainerStatus::Paused {
            self.runtime
                .resume(c)
                .await
                .map_err(|e| format!("resume of paused {} failed: {e}", c.id()))?;
        }
        if !matches!(status, ContainerStatus::Running | ContainerStatus::Paused) {
            return Ok(());
        }
        match self.runtime.stop(c, Duration::ZERO, true).await {
            Ok(())
            | Err(RuntimeError::NoSuchContainer { .. })
            | Err(RuntimeError::ContainerNotRunning { .. }) => Ok(()),
            Err(e) => Err(format!("stop of {} failed: {e}", c.id())),
        }
    }
}

/// Describes an unexpected answer for a failure message. An `Unsupported`
/// answer reaching a case means the runtime advertised the feature (cases
/// of features it does not advertise do not run), so it says so.
pub(crate) fn unexpected(what: &str, err: &RuntimeError) -> String {
    match err {
        RuntimeError::Unsupported { feature, .. } => {
            format!("{what} answered Unsupported although the runtime advertises {feature}: {err}")
        }
        _ => format!("{what}: unexpected error {err:?}"),
    }
}

/// `Ok` when `condition` holds, else the failure `message`.
pub(crate) fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(message())
    }
}

/// Requires `result` to be an error of the kind `kind` accepts.
pub(crate) fn expect_kind(
    what: &str,
    result: Result<impl std::fmt::Debug, RuntimeError>,
    kind: fn(&RuntimeError) -> bool,
    expected: &str,
) -> Result<(), String> {
    match result {
        Err(e) if kind(&e) => Ok(()),
        Err(e @ RuntimeError::Unsupported { .. }) => Err(unexpected(what, &e)),
        other => Err(format!("{what}: expected {expected}, got {other:?}")),
    }
}

pub(crate) fn no_such(e: &RuntimeError) -> bool {
    matches!(e, RuntimeError::NoSuchContainer { .. })
}

pub(crate) fn not_running(e: &RuntimeError) -> bool {
    matches!(e, RuntimeError::ContainerNotRunning { .. })
}

pub(crate) fn invalid_argument(e: &RuntimeError) -> bool {
    matches!(e, RuntimeError::InvalidArgument(_))
}

/// The exit code, waiting as long as a case may.
pub(crate) async fn wait_code(ctx: &Context<'_>, c: &ContainerDescription) -> Result<i32, String> {
    ctx.runtime()
        .wait(c, PATIENCE)
        .await
        .map_err(|e| unexpected("wait", &e))
}

/// The status `status` reports.
pub(crate) async fn status_of(
    ctx: &Context<'_>,
    c: &ContainerDescription,
) -> Result<ContainerStatus, String> {
    ctx.runtime()
        .status(c)
        .await
        .map(|s| s.status)
        .map_err(|e| unexpected("status", &e))
}

/// An attach session running in its own task.
pub(crate) struct Attached {
    pub(crate) session: tokio::task::JoinHandle<Result<AttachOutcome, RuntimeError>>,
}

impl Attached {
    /// How the session ended, waiting up to `limit`.
    pub(crate) async fn outcome(mut self, limit: Duration) -> Result<AttachOutcome, String> {
        // Dropping `self` afterwards aborts a session that did not end.
        match tokio::time::timeout(limit, &mut self.session).await {
            Err(_) => Err(format!("the attach session did not end within {limit:?}")),
            Ok(Err(join)) => Err(format!("the attach session panicked: {join}")),
            Ok(Ok(result)) => result.map_err(|e| unexpected("attach", &e)),
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.session.abort();
    }
}

/// Attaches to `c` in a task and returns once the attach is connected.
pub(crate) async fn attach(
    ctx: &Context<'_>,
    c: &ContainerDescription,
    streams: AttachStreams,
    options: AttachOptions,
) -> Result<Attached, String> {
    let ready = AttachReady::new();
    let options = options.with_ready(ready.clone());
    let runtime = ctx.shared_runtime();
    let container = c.clone();
    let mut session =
        tokio::spawn(async move { runtime.attach(&container, streams, options).await });
    // Either the attach connects, or it ends first (and says why).
    tokio::select! {
        () = ready.wait() => Ok(Attached { session }),
        ended = &mut session => Err(match ended {
            Ok(Err(e)) => unexpected("attach", &e),
            other => format!("attach ended before it was connected: {other:?}"),
        }),
        () = tokio::time::sleep(PATIENCE) => {
            session.abort();
            Err(format!("attach did not connect within {PATIENCE:?}"))
        }
    }
}

/// Attaches to the created container `c`, starts it once the attach is
/// connected (so no output is missed), and returns the attach's outcome.
pub(crate) async fn attach_then_start(
    ctx: &Context<'_>,
    c: &ContainerDescription,
    streams: AttachStreams,
    options: AttachOptions,
) -> Result<AttachOutcome, String> {
    let attached = attach(ctx, c, streams, options).await?;
    ctx.runtime()
        .start(c)
        .await
        .map_err(|e| unexpected("start", &e))?;
    attached.outcome(PATIENCE).await
}
