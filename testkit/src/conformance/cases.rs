//! The cases, one function each, over the runtime a [`Target`] gives. Names
//! are behaviour sentences; each case cleans up what it created through
//! its [`Context`], even when it fails.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use runtime_api::{
    AttachOptions, AttachOutcome, AttachReady, AttachStreams, CheckpointOptions,
    ContainerDescription, ContainerId, ContainerStatus, CreateOptions, ExecSession, ExecSessionId,
    Feature, Framing, LinuxResources, LogDriver, OciRuntime, RestoreOptions, RuntimeError, Signal,
    TerminalSize,
};

use super::target::{ContainerSpec, Prepared, Target, Workload};

/// A case's body.
pub type CaseFn =
    for<'a> fn(&'a Context<'a>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// One conformance case.
pub struct Case {
    /// A sentence saying what the runtime must do.
    pub name: &'static str,
    /// Its area.
    pub area: &'static str,
    /// The optional feature it needs; `None` for the core.
    pub feature: Option<Feature>,
    /// Its body.
    pub run: CaseFn,
}

/// What a case works with: the target, and the containers it created
/// (stopped and deleted after the case).
pub struct Context<'a> {
    target: &'a dyn Target,
    runtime: Arc<dyn OciRuntime>,
    created: Mutex<Vec<Prepared>>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_id(prefix: &str) -> ContainerId {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    ContainerId::new(format!("cf-{prefix}-{}-{n}", std::process::id()))
        .expect("conformance ids are valid")
}

impl<'a> Context<'a> {
    pub(crate) fn new(target: &'a dyn Target) -> Self {
        Self {
            target,
            runtime: target.runtime(),
            created: Mutex::new(Vec::new()),
        }
    }

    /// The runtime under test.
    pub fn runtime(&self) -> &dyn OciRuntime {
        self.runtime.as_ref()
    }

    /// Prepares (does not create) a container running `spec`.
    pub async fn prepare(&self, spec: ContainerSpec) -> Result<ContainerDescription, String> {
        let prepared = self
            .target
            .prepare(unique_id("c"), &spec)
            .await
            .map_err(|e| format!("preparing a container: {e}"))?;
        let description = prepared.description.clone();
        self.created
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(prepared);
        Ok(description)
    }

    /// Prepares and creates a container running `workload`.
    pub async fn created(&self, workload: Workload) -> Result<ContainerDescription, String> {
        let c = self.prepare(ContainerSpec::new(workload)).await?;
        self.runtime
            .create(&c, CreateOptions::default())
            .await
            .map_err(|e| unexpected("create", &e))?;
        Ok(c)
    }

    /// Prepares, creates and starts a container running `workload`.
    pub async fn started(&self, workload: Workload) -> Result<ContainerDescription, String> {
        let c = self.created(workload).await?;
        self.runtime
            .start(&c)
            .await
            .map_err(|e| unexpected("start", &e))?;
        Ok(c)
    }

    /// Stops and deletes every container of the case.
    pub(crate) async fn cleanup(&self) {
        let all: Vec<Prepared> =
            std::mem::take(&mut *self.created.lock().unwrap_or_else(PoisonError::into_inner));
        for prepared in &all {
            let c = &prepared.description;
            let _ = self.runtime.stop(c, Duration::ZERO, true).await;
            let _ = self.runtime.delete(c).await;
        }
    }
}

/// Describes an unexpected error for a failure message.
fn unexpected(what: &str, err: &RuntimeError) -> String {
    format!("{what}: unexpected error {err:?}")
}

fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(message())
    }
}

async fn wait_code(ctx: &Context<'_>, c: &ContainerDescription) -> Result<i32, String> {
    ctx.runtime()
        .wait(c, Duration::from_secs(30))
        .await
        .map_err(|e| unexpected("wait", &e))
}

async fn status_of(ctx: &Context<'_>, c: &ContainerDescription) -> Result<ContainerStatus, String> {
    ctx.runtime()
        .status(c)
        .await
        .map(|s| s.status)
        .map_err(|e| unexpected("status", &e))
}

fn expect_kind(
    what: &str,
    result: Result<impl std::fmt::Debug, RuntimeError>,
    kind: fn(&RuntimeError) -> bool,
    expected: &str,
) -> Result<(), String> {
    match result {
        Err(e) if kind(&e) => Ok(()),
        other => Err(format!("{what}: expected {expected}, got {other:?}")),
    }
}

fn no_such(e: &RuntimeError) -> bool {
    matches!(e, RuntimeError::NoSuchContainer { .. })
}

fn not_running(e: &RuntimeError) -> bool {
    matches!(e, RuntimeError::ContainerNotRunning { .. })
}

/// An `AsyncWrite` that collects what is written and tells waiters each
/// time it grows.
#[derive(Clone, Default)]
struct Collector(Arc<(Mutex<Vec<u8>>, tokio::sync::Notify)>);

impl Collector {
    fn bytes(&self) -> Vec<u8> {
        self.0
             .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
    fn sink(&self) -> runtime_api::OutputStream {
        Box::pin(self.clone())
    }

    /// Waits up to `limit` until the collected text contains `needle`.
    async fn wait_for_text(&self, needle: &str, limit: Duration) -> bool {
        let seen = async {
            loop {
                // Registered before the check, so a write in between wakes it.
                let grew = self.0 .1.notified();
                if String::from_utf8_lossy(&self.bytes()).contains(needle) {
                    return;
                }
                grew.await;
            }
        };
        tokio::time::timeout(limit, seen).await.is_ok()
    }
}

impl tokio::io::AsyncWrite for Collector {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0
             .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        self.0 .1.notify_waiters();
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Attaches to the created container `c` in the background, starts it once
/// the attach is connected, and returns the attach's outcome.
async fn attach_then_start(
    ctx: &Context<'_>,
    c: &ContainerDescription,
    streams: AttachStreams,
    options: AttachOptions,
) -> Result<AttachOutcome, String> {
    let ready = AttachReady::new();
    let options = options.with_ready(ready.clone());
    let runtime = Arc::clone(&ctx.runtime);
    let container = c.clone();
    let mut session =
        tokio::spawn(async move { runtime.attach(&container, streams, options).await });
    // Either the attach connects, or it ends first (and says why).
    tokio::select! {
        () = ready.wait() => {}
        ended = &mut session => {
            return Err(format!("attach ended before it was connected: {ended:?}"));
        }
    }
    ctx.runtime()
        .start(c)
        .await
        .map_err(|e| unexpected("start", &e))?;
    tokio::time::timeout(Duration::from_secs(30), session)
        .await
        .map_err(|_| "attach did not end after the container exited".to_string())?
        .map_err(|e| e.to_string())?
        .map_err(|e| unexpected("attach", &e))
}

macro_rules! case {
    ($name:expr, $area:expr, $feature:expr, $body:ident) => {
        Case {
            name: $name,
            area: $area,
            feature: $feature,
            run: |ctx| Box::pin($body(ctx)),
        }
    };
}

/// Every case, in the order they run.
pub fn cases() -> Vec<Case> {
    let pause = Some(Feature::Pause);
    let attach = Some(Feature::Attach);
    let exec = Some(Feature::Exec);
    vec![
        case!(
            "create leaves the container created",
            "lifecycle",
            None,
            create_leaves_created
        ),
        case!(
            "start runs the process and status says running",
            "lifecycle",
            None,
            start_runs
        ),
        case!(
            "wait returns the exit code of a process that exits",
            "lifecycle",
            None,
            wait_returns_code
        ),
        case!(
            "wait on an exited container returns its code again",
            "lifecycle",
            None,
            wait_twice
        ),
        case!(
            "status of an exited container carries its exit code",
            "lifecycle",
            None,
            status_after_exit
        ),
        case!(
            "kill with SIGKILL by number ends the process with 137",
            "signals",
            None,
            kill_by_number
        ),
        case!(
            "kill with a signal parsed by name reaches the process",
            "signals",
            None,
            kill_by_name
        ),
        case!(
            "kill of an exited container is ContainerNotRunning",
            "signals",
            None,
            kill_exited
        ),
        case!(
            "stop of a TERM-honouring process returns promptly",
            "stop",
            None,
            stop_prompt
        ),
        case!(
            "stop of a TERM-ignoring process escalates to SIGKILL within the timeout",
            "stop",
            None,
            stop_escalates
        ),
        case!(
            "stop with a zero timeout kills at once",
            "stop",
            None,
            stop_zero
        ),
        case!(
            "stop of an exited container succeeds",
            "stop",
            None,
            stop_exited
        ),
        case!(
            "wait past its timeout on a running container is Timeout within the bound",
            "wait",
            None,
            wait_timeout
        ),
        case!(
            "two concurrent waits both get the exit code",
            "wait",
            None,
            concurrent_waits
        ),
        case!(
            "delete of a running container is refused and leaves it running",
            "delete",
            None,
            delete_running
        ),
        case!(
            "delete of an exited container forgets it",
            "delete",
            None,
            delete_exited
        ),
        case!(
            "delete of a created container that never started succeeds",
            "delete",
            None,
            delete_created
        ),
        case!("delete twice succeeds", "idempotence", None, delete_twice),
        case!(
            "status of an unknown id is NoSuchContainer",
            "errors",
            None,
            status_unknown
        ),
        case!(
            "start of an unknown id is NoSuchContainer",
            "errors",
            None,
            start_unknown
        ),
        case!(
            "kill of an unknown id is NoSuchContainer",
            "errors",
            None,
            kill_unknown
        ),
        case!(
            "wait on an unknown id is NoSuchContainer",
            "errors",
            None,
            wait_unknown
        ),
        case!(
            "a second create of a live id is AlreadyExists and leaves the first running",
            "errors",
            None,
            already_exists
        ),
        case!(
            "invalid ids are refused before any runtime call",
            "errors",
            None,
            invalid_ids
        ),
        case!(
            "eight containers in parallel each get their own exit code",
            "concurrency",
            None,
            parallel
        ),
        case!(
            "pause and resume move the container between paused and running",
            "pause",
            pause,
            pause_resume
        ),
        case!(
            "attach delivers stdout and stderr separately",
            "attach",
            attach,
            attach_streams
        ),
        case!(
            "attach with multiplexed framing carries each stream in its frames",
            "attach",
            attach,
            attach_multiplexed
        ),
        case!(
            "attach feeds stdin and its end finishes a cat container with 0",
            "attach",
            attach,
            attach_stdin
        ),
        case!(
            "a terminal resize is seen inside the container",
            "terminal",
            Some(Feature::ResizeTerminal),
            resize
        ),
        case!(
            "exec returns the output and exit code of the process",
            "exec",
            exec,
            exec_output
        ),
        case!(
            "exec_detached then exec_wait gives the exit code",
            "exec",
            exec,
            exec_detached
        ),
        case!(
            "exec into an exited container is ContainerNotRunning",
            "exec",
            exec,
            exec_exited
        ),
        case!(
            "update_resources on a running container succeeds",
            "update",
            Some(Feature::UpdateResources),
            update
        ),
        case!(
            "checkpoint with a relative image path is an invalid argument",
            "checkpoint",
            Some(Feature::Checkpoint),
            checkpoint_relative
        ),
        case!(
            "restore with a relative image path is an invalid argument",
            "checkpoint",
            Some(Feature::Restore),
            restore_relative
        ),
        case!(
            "info names the runtime and its version",
            "info",
            Some(Feature::Info),
            info
        ),
    ]
}

async fn create_leaves_created(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.created(Workload::Exit(0)).await?;
    let status = status_of(ctx, &c).await?;
    check(status == ContainerStatus::Created, || {
        format!("status {status}")
    })
}

async fn start_runs(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let status = status_of(ctx, &c).await?;
    check(status == ContainerStatus::Running, || {
        format!("status {status}")
    })
}

async fn wait_returns_code(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::Exit(3)).await?;
    let code = wait_code(ctx, &c).await?;
    check(code == 3, || format!("exit code {code}"))
}

async fn wait_twice(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::Exit(4)).await?;
    let first = wait_code(ctx, &c).await?;
    let second = wait_code(ctx, &c).await?;
    check(first == 4 && second == 4, || {
        format!("codes {first} then {second}")
    })
}

async fn status_after_exit(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::Exit(5)).await?;
    wait_code(ctx, &c).await?;
    let state = ctx
        .runtime()
        .status(&c)
        .await
        .map_err(|e| unexpected("status", &e))?;
    check(
        state.status == ContainerStatus::Exited && state.exit_code == Some(5),
        || format!("state {state:?}"),
    )
}

async fn kill_by_number(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::IgnoreTerm).await?;
    let kill = Signal::new(9).map_err(|e| e.to_string())?;
    ctx.runtime()
        .kill(&c, kill, false)
        .await
        .map_err(|e| unexpected("kill", &e))?;
    let code = wait_code(ctx, &c).await?;
    check(code == 137, || format!("exit code {code}"))
}

async fn kill_by_name(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let term: Signal = "SIGTERM".parse().map_err(|e: RuntimeError| e.to_string())?;
    // The trap may not be installed the instant start returns: repeat the
    // signal until the process answers it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        ctx.runtime()
            .kill(&c, term, false)
            .await
            .map_err(|e| unexpected("kill", &e))?;
        match ctx.runtime().wait(&c, Duration::from_millis(500)).await {
            Ok(code) => return check(code == 143, || format!("exit code {code}")),
            Err(RuntimeError::Timeout { .. }) if Instant::now() < deadline => continue,
            Err(e) => return Err(unexpected("wait", &e)),
        }
    }
}

async fn kill_exited(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::Exit(0)).await?;
    wait_code(ctx, &c).await?;
    expect_kind(
        "kill",
        ctx.runtime().kill(&c, Signal::KILL, false).await,
        not_running,
        "ContainerNotRunning",
    )
}

async fn stop_prompt(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let started = Instant::now();
    ctx.runtime()
        .stop(&c, Duration::from_secs(20), false)
        .await
        .map_err(|e| unexpected("stop", &e))?;
    let took = started.elapsed();
    let code = wait_code(ctx, &c).await?;
    // 143 when the handler ran, 137 when the signal came before it was
    // installed and stop had to escalate: either way not the full timeout.
    check(
        took < Duration::from_secs(15) && (code == 143 || code == 137),
        || format!("stop took {took:?}, exit code {code}"),
    )
}

async fn stop_escalates(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::IgnoreTerm).await?;
    let started = Instant::now();
    ctx.runtime()
        .stop(&c, Duration::from_secs(1), false)
        .await
        .map_err(|e| unexpected("stop", &e))?;
    let took = started.elapsed();
    let code = wait_code(ctx, &c).await?;
    check(
        took >= Duration::from_secs(1) && took < Duration::from_secs(11) && code == 137,
        || format!("stop took {took:?}, exit code {code}"),
    )
}

async fn stop_zero(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::IgnoreTerm).await?;
    let started = Instant::now();
    ctx.runtime()
        .stop(&c, Duration::ZERO, false)
        .await
        .map_err(|e| unexpected("stop", &e))?;
    let took = started.elapsed();
    let code = wait_code(ctx, &c).await?;
    check(took < Duration::from_secs(10) && code == 137, || {
        format!("stop took {took:?}, exit code {code}")
    })
}

async fn stop_exited(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::Exit(2)).await?;
    wait_code(ctx, &c).await?;
    ctx.runtime()
        .stop(&c, Duration::from_secs(1), false)
        .await
        .map_err(|e| unexpected("stop", &e))?;
    let code = wait_code(ctx, &c).await?;
    check(code == 2, || format!("exit code {code} after stop"))
}

async fn wait_timeout(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let started = Instant::now();
    let result = ctx.runtime().wait(&c, Duration::from_millis(300)).await;
    let took = started.elapsed();
    expect_kind(
        "wait",
        result,
        |e| matches!(e, RuntimeError::Timeout { .. }),
        "Timeout",
    )?;
    check(took < Duration::from_secs(5), || {
        format!("wait returned after {took:?}")
    })
}

async fn concurrent_waits(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let runtime = ctx.runtime();
    let first = runtime.wait(&c, Duration::from_secs(30));
    let second = runtime.wait(&c, Duration::from_secs(30));
    let kill = async { runtime.kill(&c, Signal::KILL, false).await };
    let (a, b, k) = tokio::join!(first, second, kill);
    k.map_err(|e| unexpected("kill", &e))?;
    match (a, b) {
        (Ok(137), Ok(137)) => Ok(()),
        other => Err(format!("waits gave {other:?}")),
    }
}

async fn delete_running(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    expect_kind(
        "delete",
        ctx.runtime().delete(&c).await,
        |e| matches!(e, RuntimeError::ContainerRunning { .. }),
        "ContainerRunning",
    )?;
    let status = status_of(ctx, &c).await?;
    check(status == ContainerStatus::Running, || {
        format!("status {status} after the refused delete")
    })
}

/// Deletes `c` and checks that the runtime no longer knows it.
async fn delete_then_gone(ctx: &Context<'_>, c: &ContainerDescription) -> Result<(), String> {
    ctx.runtime()
        .delete(c)
        .await
        .map_err(|e| unexpected("delete", &e))?;
    expect_kind(
        "status",
        ctx.runtime().status(c).await,
        no_such,
        "NoSuchContainer",
    )
}

async fn delete_exited(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::Exit(0)).await?;
    wait_code(ctx, &c).await?;
    delete_then_gone(ctx, &c).await
}

async fn delete_created(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.created(Workload::Exit(0)).await?;
    delete_then_gone(ctx, &c).await
}

async fn delete_twice(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::Exit(0)).await?;
    wait_code(ctx, &c).await?;
    ctx.runtime()
        .delete(&c)
        .await
        .map_err(|e| unexpected("first delete", &e))?;
    ctx.runtime()
        .delete(&c)
        .await
        .map_err(|e| unexpected("second delete", &e))
}

async fn status_unknown(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.prepare(ContainerSpec::new(Workload::Exit(0))).await?;
    expect_kind(
        "status",
        ctx.runtime().status(&c).await,
        no_such,
        "NoSuchContainer",
    )
}

async fn start_unknown(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.prepare(ContainerSpec::new(Workload::Exit(0))).await?;
    expect_kind(
        "start",
        ctx.runtime().start(&c).await,
        no_such,
        "NoSuchContainer",
    )
}

async fn kill_unknown(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.prepare(ContainerSpec::new(Workload::Exit(0))).await?;
    expect_kind(
        "kill",
        ctx.runtime().kill(&c, Signal::KILL, false).await,
        no_such,
        "NoSuchContainer",
    )
}

async fn wait_unknown(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.prepare(ContainerSpec::new(Workload::Exit(0))).await?;
    expect_kind(
        "wait",
        ctx.runtime().wait(&c, Duration::from_secs(5)).await,
        no_such,
        "NoSuchContainer",
    )
}

async fn already_exists(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    expect_kind(
        "second create",
        ctx.runtime().create(&c, CreateOptions::default()).await,
        |e| matches!(e, RuntimeError::AlreadyExists { .. }),
        "AlreadyExists",
    )?;
    let status = status_of(ctx, &c).await?;
    check(status == ContainerStatus::Running, || {
        format!("the first container is {status}")
    })
}

async fn invalid_ids(_ctx: &Context<'_>) -> Result<(), String> {
    for bad in ["", "../x", "a/b", "-rf", ".hidden", "a b"] {
        if ContainerId::new(bad).is_ok() {
            return Err(format!("id {bad:?} was accepted"));
        }
    }
    Ok(())
}

async fn parallel(ctx: &Context<'_>) -> Result<(), String> {
    let mut containers = Vec::new();
    for code in 0..8 {
        containers.push((
            code,
            ctx.prepare(ContainerSpec::new(Workload::Exit(code)))
                .await?,
        ));
    }
    let runs = containers.iter().map(|(code, c)| async move {
        let runtime = ctx.runtime();
        runtime
            .create(c, CreateOptions::default())
            .await
            .map_err(|e| unexpected("create", &e))?;
        runtime
            .start(c)
            .await
            .map_err(|e| unexpected("start", &e))?;
        let got = runtime
            .wait(c, Duration::from_secs(60))
            .await
            .map_err(|e| unexpected("wait", &e))?;
        runtime
            .delete(c)
            .await
            .map_err(|e| unexpected("delete", &e))?;
        check(got == *code, || {
            format!("container expecting {code} got {got}")
        })
    });
    for result in futures_join_all(runs).await {
        result?;
    }
    Ok(())
}

/// Runs `futures` concurrently and returns their outputs in order.
async fn futures_join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out = Vec::with_capacity(set.len());
    let results = std::sync::Mutex::new(Vec::new());
    let all = set.into_iter().enumerate().map(|(i, f)| {
        let results = &results;
        async move {
            let r = f.await;
            results
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((i, r));
        }
    });
    join_vec(all.collect()).await;
    let mut results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    results.sort_by_key(|(i, _)| *i);
    out.extend(results.into_iter().map(|(_, r)| r));
    out
}

/// Polls every future until all are done.
async fn join_vec<F: Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(move |cx| {
        futures.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futures.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

async fn pause_resume(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    ctx.runtime()
        .pause(&c)
        .await
        .map_err(|e| unexpected("pause", &e))?;
    let paused = status_of(ctx, &c).await?;
    ctx.runtime()
        .resume(&c)
        .await
        .map_err(|e| unexpected("resume", &e))?;
    let resumed = status_of(ctx, &c).await?;
    check(
        paused == ContainerStatus::Paused && resumed == ContainerStatus::Running,
        || format!("paused: {paused}, resumed: {resumed}"),
    )
}

async fn attach_streams(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx
        .prepare(ContainerSpec::new(Workload::Print {
            stdout: "to-stdout\n".into(),
            stderr: "to-stderr\n".into(),
            code: 0,
        }))
        .await?;
    ctx.runtime()
        .create(&c, CreateOptions::default())
        .await
        .map_err(|e| unexpected("create", &e))?;
    let (out, err) = (Collector::default(), Collector::default());
    let streams = AttachStreams::new(None, Some(out.sink()), Some(err.sink()));
    let outcome = attach_then_start(ctx, &c, streams, AttachOptions::default()).await?;
    check(
        outcome == AttachOutcome::StreamsEnded
            && out.bytes() == b"to-stdout\n"
            && err.bytes() == b"to-stderr\n",
        || {
            format!(
                "{outcome:?}, stdout {:?}, stderr {:?}",
                String::from_utf8_lossy(&out.bytes()),
                String::from_utf8_lossy(&err.bytes())
            )
        },
    )
}

async fn attach_multiplexed(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx
        .prepare(ContainerSpec::new(Workload::Print {
            stdout: "out\n".into(),
            stderr: "err\n".into(),
            code: 0,
        }))
        .await?;
    ctx.runtime()
        .create(&c, CreateOptions::default())
        .await
        .map_err(|e| unexpected("create", &e))?;
    let all = Collector::default();
    let streams = AttachStreams::new(None, Some(all.sink()), Some(Collector::default().sink()));
    let options = AttachOptions::default().with_framing(Framing::Multiplexed);
    attach_then_start(ctx, &c, streams, options).await?;
    let bytes = all.bytes();
    let (mut stdout, mut stderr, mut rest) = (Vec::new(), Vec::new(), &bytes[..]);
    while rest.len() >= 8 {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let Some(payload) = rest.get(8..8 + len) else {
            return Err(format!("a frame is cut short in {bytes:?}"));
        };
        match rest[0] {
            1 => stdout.extend_from_slice(payload),
            2 => stderr.extend_from_slice(payload),
            other => return Err(format!("frame on stream {other}")),
        }
        rest = &rest[8 + len..];
    }
    check(
        rest.is_empty() && stdout == b"out\n" && stderr == b"err\n",
        || format!("frames {bytes:?}"),
    )
}

async fn attach_stdin(ctx: &Context<'_>) -> Result<(), String> {
    let mut spec = ContainerSpec::new(Workload::Cat);
    spec.stdin = true;
    let c = ctx.prepare(spec).await?;
    ctx.runtime()
        .create(&c, CreateOptions::default())
        .await
        .map_err(|e| unexpected("create", &e))?;
    let out = Collector::default();
    let input: runtime_api::InputStream =
        Box::pin(std::io::Cursor::new(b"hello through stdin\n".to_vec()));
    let streams = AttachStreams::new(Some(input), Some(out.sink()), None);
    let outcome = attach_then_start(ctx, &c, streams, AttachOptions::default()).await?;
    let code = wait_code(ctx, &c).await?;
    check(
        outcome == AttachOutcome::StreamsEnded
            && code == 0
            && out.bytes() == b"hello through stdin\n",
        || {
            format!(
                "{outcome:?}, exit code {code}, output {:?}",
                String::from_utf8_lossy(&out.bytes())
            )
        },
    )
}

async fn resize(ctx: &Context<'_>) -> Result<(), String> {
    let mut spec = ContainerSpec::new(Workload::ReportSize {
        rows: 40,
        cols: 120,
    });
    spec.terminal = true;
    let c = ctx.prepare(spec).await?;
    ctx.runtime()
        .create(&c, CreateOptions::default())
        .await
        .map_err(|e| unexpected("create", &e))?;
    let out = Collector::default();
    let ready = AttachReady::new();
    let runtime = Arc::clone(&ctx.runtime);
    let container = c.clone();
    let streams = AttachStreams::new(None, Some(out.sink()), None);
    let options = AttachOptions::default().with_ready(ready.clone());
    let session = tokio::spawn(async move { runtime.attach(&container, streams, options).await });
    tokio::time::timeout(Duration::from_secs(30), ready.wait())
        .await
        .map_err(|_| "attach never connected".to_string())?;
    ctx.runtime()
        .start(&c)
        .await
        .map_err(|e| unexpected("start", &e))?;
    let size = TerminalSize::new(40, 120).map_err(|e| e.to_string())?;
    ctx.runtime()
        .resize_terminal(&c, size)
        .await
        .map_err(|e| unexpected("resize_terminal", &e))?;
    let seen = out.wait_for_text("40 120", Duration::from_secs(30)).await;
    session.abort();
    check(seen, || {
        format!("output {:?}", String::from_utf8_lossy(&out.bytes()))
    })
}

async fn exec_output(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let config = ctx.target.exec_config(&Workload::Print {
        stdout: "hi\n".into(),
        stderr: String::new(),
        code: 5,
    });
    let out = Collector::default();
    let streams = AttachStreams::new(None, Some(out.sink()), Some(Collector::default().sink()));
    let handle = ctx
        .runtime()
        .exec(&c, &config, streams, AttachOptions::default())
        .await
        .map_err(|e| unexpected("exec", &e))?;
    let done = tokio::time::timeout(Duration::from_secs(30), handle.completion)
        .await
        .map_err(|_| "exec did not finish".to_string())?
        .map_err(|e| unexpected("exec completion", &e))?;
    check(done.exit_code == Some(5) && out.bytes() == b"hi\n", || {
        format!(
            "{done:?}, output {:?}",
            String::from_utf8_lossy(&out.bytes())
        )
    })
}

async fn exec_detached(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let config = ctx.target.exec_config(&Workload::Exit(7));
    let session = ctx
        .runtime()
        .exec_detached(&c, &config)
        .await
        .map_err(|e| unexpected("exec_detached", &e))?;
    let code = ctx
        .runtime()
        .exec_wait(&c, &session, Duration::from_secs(30))
        .await
        .map_err(|e| unexpected("exec_wait", &e))?;
    check(code == 7, || format!("exec exit code {code}"))
}

async fn exec_exited(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::Exit(0)).await?;
    wait_code(ctx, &c).await?;
    let config = ctx.target.exec_config(&Workload::Exit(0));
    expect_kind(
        "exec_detached",
        ctx.runtime().exec_detached(&c, &config).await,
        not_running,
        "ContainerNotRunning",
    )
}

async fn update(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let mut resources = LinuxResources::default();
    resources.set_pids(Some(
        oci_spec::runtime::LinuxPidsBuilder::default()
            .limit(64)
            .build()
            .map_err(|e| e.to_string())?,
    ));
    ctx.runtime()
        .update_resources(&c, &resources)
        .await
        .map_err(|e| unexpected("update_resources", &e))?;
    let status = status_of(ctx, &c).await?;
    check(status == ContainerStatus::Running, || {
        format!("status {status} after the update")
    })
}

async fn checkpoint_relative(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let options = CheckpointOptions::new("relative/image", "/tmp/work");
    expect_kind(
        "checkpoint",
        ctx.runtime().checkpoint(&c, &options).await,
        |e| matches!(e, RuntimeError::InvalidArgument(_)),
        "InvalidArgument",
    )
}

async fn restore_relative(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.prepare(ContainerSpec::new(Workload::Exit(0))).await?;
    let restore = RestoreOptions::new("relative/image");
    expect_kind(
        "restore",
        ctx.runtime()
            .restore(&c, &restore, CreateOptions::default())
            .await,
        |e| matches!(e, RuntimeError::InvalidArgument(_)),
        "InvalidArgument",
    )?;
    expect_kind(
        "status after the refused restore",
        ctx.runtime().status(&c).await,
        no_such,
        "NoSuchContainer",
    )
}

async fn info(ctx: &Context<'_>) -> Result<(), String> {
    let info = ctx
        .runtime()
        .info()
        .await
        .map_err(|e| unexpected("info", &e))?;
    check(!info.runtime.version.trim().is_empty(), || {
        format!("{info:?}")
    })
}

/// Checks that every call of `feature` answers `Unsupported` naming it.
pub(crate) async fn probe_unsupported(
    runtime: &dyn OciRuntime,
    feature: Feature,
) -> Result<(), String> {
    let c = ContainerDescription::builder(
        unique_id("probe"),
        "/nonexistent/bundle",
        "/nonexistent/run",
    )
    .log(LogDriver::None, "/dev/null")
    .build()
    .map_err(|e| e.to_string())?;
    let session = ExecSession::new(
        ExecSessionId::new("probe").map_err(|e| e.to_string())?,
        None,
    );
    let size = TerminalSize::new(24, 80).map_err(|e| e.to_string())?;
    let out = || AttachStreams::new(None, Some(Collector::default().sink()), None);
    let config = runtime_api::ExecConfig::new(["true"]);
    let results: Vec<(&str, Result<(), RuntimeError>)> = match feature {
        Feature::Pause => vec![
            ("pause", runtime.pause(&c).await),
            ("resume", runtime.resume(&c).await),
        ],
        Feature::Attach => vec![(
            "attach",
            runtime
                .attach(&c, out(), AttachOptions::default())
                .await
                .map(drop),
        )],
        Feature::ResizeTerminal => {
            vec![("resize_terminal", runtime.resize_terminal(&c, size).await)]
        }
        Feature::Exec => vec![
            (
                "exec",
                runtime
                    .exec(&c, &config, out(), AttachOptions::default())
                    .await
                    .map(drop),
            ),
            (
                "exec_detached",
                runtime.exec_detached(&c, &config).await.map(drop),
            ),
            (
                "exec_wait",
                runtime
                    .exec_wait(&c, &session, Duration::from_secs(1))
                    .await
                    .map(drop),
            ),
            (
                "exec_stop",
                runtime.exec_stop(&c, &session, Duration::ZERO).await,
            ),
            (
                "exec_alive",
                runtime.exec_alive(&c, &session).await.map(drop),
            ),
        ],
        Feature::ExecResizeTerminal => vec![(
            "exec_resize_terminal",
            runtime.exec_resize_terminal(&c, &session, size).await,
        )],
        Feature::Checkpoint => vec![(
            "checkpoint",
            runtime
                .checkpoint(&c, &CheckpointOptions::new("/i", "/w"))
                .await
                .map(drop),
        )],
        Feature::Restore => vec![(
            "restore",
            runtime
                .restore(&c, &RestoreOptions::new("/i"), CreateOptions::default())
                .await
                .map(drop),
        )],
        Feature::UpdateResources => vec![(
            "update_resources",
            runtime
                .update_resources(&c, &LinuxResources::default())
                .await,
        )],
        Feature::Info => vec![("info", runtime.info().await.map(drop))],
        other => return Err(format!("the suite does not know feature {other}")),
    };
    for (operation, result) in results {
        match result {
            Err(RuntimeError::Unsupported { feature: f, .. }) if f == feature => {}
            other => {
                return Err(format!(
                    "{feature} is not advertised, but {operation} answered {other:?} instead of Unsupported"
                ))
            }
        }
    }
    Ok(())
}
