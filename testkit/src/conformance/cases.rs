//! The cases: every one a behaviour sentence, an area, the core or the
//! [`Feature`] it needs, and a body over the runtime a [`Target`] gives.
//! This file holds the list and the core cases; `feature_cases.rs` the
//! cases of optional features. Bodies create containers through their
//! [`Context`], which cleans them up whatever the outcome.
//!
//! [`Target`]: super::Target

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use runtime_api::{
    ContainerDescription, ContainerId, ContainerStatus, CreateOptions, Feature, RuntimeError,
    Signal,
};

use super::context::{
    check, expect_kind, invalid_argument, no_such, not_running, status_of, unexpected, wait_code,
    Context, PATIENCE,
};
use super::feature_cases::{self as features, probe_unsupported};
use super::target::{ContainerSpec, Workload};

/// A case's body: checks one behaviour, `Err` with what went wrong.
pub type CaseFn =
    for<'a> fn(&'a Context<'a>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// One conformance case.
#[non_exhaustive]
pub struct Case {
    /// A sentence saying what the runtime must do.
    pub name: &'static str,
    /// Its area (lifecycle, signals, stop, attach...).
    pub area: &'static str,
    /// The optional feature it needs; `None` for the core, which never
    /// skips.
    pub feature: Option<Feature>,
    /// Whether it needs [`Target::reopened`](super::Target::reopened); it
    /// is skipped for a target that cannot reopen its runtime.
    pub reopens: bool,
    /// Its body.
    pub run: CaseFn,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .field("area", &self.area)
            .field("feature", &self.feature)
            .field("reopens", &self.reopens)
            .finish_non_exhaustive()
    }
}

macro_rules! case {
    ($name:expr, $area:expr, $feature:expr, $body:path) => {
        Case {
            name: $name,
            area: $area,
            feature: $feature,
            reopens: false,
            run: |ctx| Box::pin($body(ctx)),
        }
    };
}

/// A core case that needs a reopened runtime.
macro_rules! reopen_case {
    ($name:expr, $area:expr, $body:path) => {
        Case {
            reopens: true,
            ..case!($name, $area, None, $body)
        }
    };
}

/// Every case, in the order they run.
pub fn cases() -> Vec<Case> {
    let core = None;
    let pause = Some(Feature::Pause);
    let attach = Some(Feature::Attach);
    let exec = Some(Feature::Exec);
    vec![
        case!(
            "create leaves the container created",
            "lifecycle",
            core,
            create_leaves_created
        ),
        case!(
            "start runs the process and status says running",
            "lifecycle",
            core,
            start_runs
        ),
        case!(
            "wait returns the exit code of a process that exits",
            "lifecycle",
            core,
            wait_returns_code
        ),
        case!(
            "wait on an exited container returns its code again",
            "lifecycle",
            core,
            wait_twice
        ),
        case!(
            "status of an exited container carries its exit code",
            "lifecycle",
            core,
            status_after_exit
        ),
        case!(
            "kill with SIGKILL by number ends the process with 137",
            "signals",
            core,
            kill_by_number
        ),
        case!(
            "kill with a signal parsed by name reaches the process",
            "signals",
            core,
            kill_by_name
        ),
        case!(
            "kill of an exited container is ContainerNotRunning",
            "signals",
            core,
            kill_exited
        ),
        case!(
            "stop of a TERM-honouring process returns promptly",
            "stop",
            core,
            stop_prompt
        ),
        case!(
            "stop of a TERM-ignoring process escalates to SIGKILL within the timeout",
            "stop",
            core,
            stop_escalates
        ),
        case!(
            "stop with a zero timeout kills at once",
            "stop",
            core,
            stop_zero
        ),
        case!(
            "stop of an exited container succeeds",
            "stop",
            core,
            stop_exited
        ),
        case!(
            "wait past its timeout on a running container is Timeout within the bound",
            "wait",
            core,
            wait_timeout
        ),
        case!(
            "two concurrent waits both get the exit code",
            "wait",
            core,
            concurrent_waits
        ),
        case!(
            "delete of a running container is refused and leaves it running",
            "delete",
            core,
            delete_running
        ),
        case!(
            "delete of an exited container forgets it",
            "delete",
            core,
            delete_exited
        ),
        case!(
            "delete of a created container that never started succeeds",
            "delete",
            core,
            delete_created
        ),
        case!("delete twice succeeds", "delete", core, delete_twice),
        case!(
            "status of an unknown id is NoSuchContainer",
            "errors",
            core,
            status_unknown
        ),
        case!(
            "start of an unknown id is NoSuchContainer",
            "errors",
            core,
            start_unknown
        ),
        case!(
            "kill of an unknown id is NoSuchContainer",
            "errors",
            core,
            kill_unknown
        ),
        case!(
            "wait on an unknown id is NoSuchContainer",
            "errors",
            core,
            wait_unknown
        ),
        case!(
            "a second create of a live id is AlreadyExists and leaves the first running",
            "errors",
            core,
            already_exists
        ),
        case!(
            "invalid ids are refused before any runtime call",
            "errors",
            core,
            invalid_ids
        ),
        case!(
            "eight containers in parallel each get their own exit code",
            "concurrency",
            core,
            parallel
        ),
        case!(
            "start of a running container is an invalid argument and it keeps running",
            "lifecycle",
            core,
            start_running
        ),
        reopen_case!(
            "a reopened runtime drives the containers of the first: status, exit codes, kill, wait, delete",
            "restart",
            reopened_runtime_drives_containers
        ),
        case!(
            "every feature left out of features() answers Unsupported from each of its calls",
            "features",
            core,
            features_consistent
        ),
        case!(
            "pause and resume move the container between paused and running",
            "pause",
            pause,
            features::pause_resume
        ),
        case!(
            "pause of an exited container is ContainerNotRunning",
            "pause",
            pause,
            features::pause_exited
        ),
        case!(
            "attach delivers stdout and stderr separately",
            "attach",
            attach,
            features::attach_streams
        ),
        case!(
            "attach with multiplexed framing carries each stream in its frames",
            "attach",
            attach,
            features::attach_multiplexed
        ),
        case!(
            "attach feeds stdin and its end finishes a cat container with 0",
            "attach",
            attach,
            features::attach_stdin
        ),
        case!(
            "the default detach keys end an attach as Detached and the container keeps running",
            "attach",
            attach,
            features::attach_detach
        ),
        case!(
            "a cancelled attach ends as Cancelled and the container keeps running",
            "attach",
            attach,
            features::attach_cancel
        ),
        case!(
            "attach to an exited container is ContainerNotRunning",
            "attach",
            attach,
            features::attach_exited
        ),
        case!(
            "a terminal resize is seen inside the container",
            "terminal",
            Some(Feature::ResizeTerminal),
            features::resize
        ),
        case!(
            "exec returns the output and exit code of the process",
            "exec",
            exec,
            features::exec_output
        ),
        case!(
            "exec_detached then exec_wait gives the exit code",
            "exec",
            exec,
            features::exec_detached
        ),
        case!(
            "exec_alive is true while an exec runs and exec_stop ends it",
            "exec",
            exec,
            features::exec_stop
        ),
        case!(
            "an exec past its own timeout is killed and answers ExecTimedOut",
            "exec",
            exec,
            features::exec_timeout
        ),
        case!(
            "exec into an exited container is ContainerNotRunning",
            "exec",
            exec,
            features::exec_exited
        ),
        case!(
            "an exec session's terminal resize is seen by its process",
            "exec",
            Some(Feature::ExecResizeTerminal),
            features::exec_resize
        ),
        case!(
            "update_resources with a pids limit on a running container succeeds",
            "update",
            Some(Feature::UpdateResources),
            features::update
        ),
        case!(
            "checkpoint with a relative image path is an invalid argument",
            "checkpoint",
            Some(Feature::Checkpoint),
            features::checkpoint_relative
        ),
        case!(
            "restore with a relative image path is an invalid argument",
            "checkpoint",
            Some(Feature::Restore),
            features::restore_relative
        ),
        case!(
            "info names the runtime and its version",
            "info",
            Some(Feature::Info),
            features::info
        ),
        case!(
            "reopen_log reaches a running container and answers ContainerNotRunning once it exited",
            "log",
            Some(Feature::ReopenLog),
            features::reopen_log
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

async fn start_running(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    expect_kind(
        "a second start",
        ctx.runtime().start(&c).await,
        invalid_argument,
        "InvalidArgument",
    )?;
    let status = status_of(ctx, &c).await?;
    check(status == ContainerStatus::Running, || {
        format!("status {status} after a second start")
    })
}

async fn reopened_runtime_drives_containers(ctx: &Context<'_>) -> Result<(), String> {
    let running = ctx.started(Workload::UntilSignalled).await?;
    let exiting = ctx.started(Workload::Exit(7)).await?;
    let created = ctx.created(Workload::Exit(0)).await?;
    let second = ctx
        .target()
        .reopened()
        .ok_or("the target offers no reopened runtime")?;
    // The exit of `exiting` may come before or after the reopening: both
    // are what an engine restarting meets.
    let code = second
        .wait(&exiting, PATIENCE)
        .await
        .map_err(|e| unexpected("wait through the reopened runtime", &e))?;
    check(code == 7, || {
        format!("exit code {code} through the reopened runtime")
    })?;
    let state = second
        .status(&exiting)
        .await
        .map_err(|e| unexpected("status through the reopened runtime", &e))?;
    check(
        state.status == ContainerStatus::Exited && state.exit_code == Some(7),
        || format!("{state:?} for an exited container through the reopened runtime"),
    )?;
    for (c, expected) in [
        (&running, ContainerStatus::Running),
        (&created, ContainerStatus::Created),
    ] {
        let status = second
            .status(c)
            .await
            .map_err(|e| unexpected("status through the reopened runtime", &e))?
            .status;
        check(status == expected, || {
            format!("status {status} through the reopened runtime, expected {expected}")
        })?;
    }
    expect_kind(
        "create of a running container's id through the reopened runtime",
        second.create(&running, CreateOptions::default()).await,
        |e| matches!(e, RuntimeError::AlreadyExists { .. }),
        "AlreadyExists",
    )?;
    second
        .kill(&running, Signal::TERM, false)
        .await
        .map_err(|e| unexpected("kill through the reopened runtime", &e))?;
    let code = second
        .wait(&running, PATIENCE)
        .await
        .map_err(|e| unexpected("wait through the reopened runtime", &e))?;
    check(code == 143, || format!("exit code {code} after SIGTERM"))?;
    for c in [&running, &exiting, &created] {
        second
            .delete(c)
            .await
            .map_err(|e| unexpected("delete through the reopened runtime", &e))?;
    }
    expect_kind(
        "status of a container the reopened runtime deleted, through the first",
        ctx.runtime().status(&running).await,
        no_such,
        "NoSuchContainer",
    )
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
            .wait(c, PATIENCE)
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
    for result in join_all(runs).await {
        result?;
    }
    Ok(())
}

/// Runs `futures` concurrently on this task and returns their outputs in
/// order.
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

async fn features_consistent(ctx: &Context<'_>) -> Result<(), String> {
    let runtime = ctx.runtime();
    let first = runtime
        .features()
        .await
        .map_err(|e| unexpected("features", &e))?;
    let second = runtime
        .features()
        .await
        .map_err(|e| unexpected("features", &e))?;
    check(first == second, || {
        format!("features() answered {first} and then {second}")
    })?;
    // Advertised features are held to their word by their own cases.
    for feature in Feature::ALL {
        if !first.contains(feature) {
            probe_unsupported(runtime, feature).await?;
        }
    }
    Ok(())
}
