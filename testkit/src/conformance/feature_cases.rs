//! The cases of optional features, and the probe that checks a feature a
//! runtime does not advertise: every one of its calls must answer
//! `Unsupported` naming it. A case here only runs when its feature is
//! advertised, so an `Unsupported` answer inside one is a failure.

use std::time::{Duration, Instant};

use runtime_api::{
    AttachCancel, AttachOptions, AttachOutcome, AttachStreams, CheckpointOptions,
    ContainerDescription, ContainerStatus, CreateOptions, ExecConfig, ExecSession, ExecSessionId,
    Feature, Framing, InputStream, LinuxResources, LogDriver, OciRuntime, RestoreOptions,
    RuntimeError, TerminalSize,
};
use tokio::io::AsyncWriteExt;

use super::context::{
    attach, attach_then_start, check, expect_kind, invalid_argument, no_such, not_running,
    status_of, unexpected, unique_id, wait_code, Context, PATIENCE,
};
use super::target::{ContainerSpec, Workload};
use crate::Collector;

/// The default detach keys, ctrl-p then ctrl-q.
const DETACH: [u8; 2] = [0x10, 0x11];

fn print(stdout: &str, stderr: &str, code: i32) -> Workload {
    Workload::Print {
        stdout: stdout.into(),
        stderr: stderr.into(),
        code,
    }
}

fn with_stdin(workload: Workload) -> ContainerSpec {
    let mut spec = ContainerSpec::new(workload);
    spec.stdin = true;
    spec
}

pub(crate) async fn pause_resume(ctx: &Context<'_>) -> Result<(), String> {
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

pub(crate) async fn pause_exited(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::Exit(0)).await?;
    wait_code(ctx, &c).await?;
    expect_kind(
        "pause",
        ctx.runtime().pause(&c).await,
        not_running,
        "ContainerNotRunning",
    )
}

pub(crate) async fn attach_streams(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.created(print("to-stdout\n", "to-stderr\n", 0)).await?;
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
                out.text(),
                err.text()
            )
        },
    )
}

pub(crate) async fn attach_multiplexed(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.created(print("out\n", "err\n", 0)).await?;
    let (all, unused) = (Collector::default(), Collector::default());
    let streams = AttachStreams::new(None, Some(all.sink()), Some(unused.sink()));
    let options = AttachOptions::default().with_framing(Framing::Multiplexed);
    attach_then_start(ctx, &c, streams, options).await?;
    let bytes = all.bytes();
    let (mut stdout, mut stderr, mut rest) = (Vec::new(), Vec::new(), &bytes[..]);
    while !rest.is_empty() {
        let Some(header) = rest.get(..8) else {
            return Err(format!("a frame header is cut short in {bytes:?}"));
        };
        if header[1..4] != [0, 0, 0] {
            return Err(format!("frame header {header:?} has non-zero padding"));
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let Some(payload) = rest.get(8..8 + len) else {
            return Err(format!("a frame is cut short in {bytes:?}"));
        };
        match header[0] {
            1 => stdout.extend_from_slice(payload),
            2 => stderr.extend_from_slice(payload),
            other => return Err(format!("a frame on stream {other} in {bytes:?}")),
        }
        rest = &rest[8 + len..];
    }
    check(
        stdout == b"out\n" && stderr == b"err\n" && unused.bytes().is_empty(),
        || format!("frames {bytes:?}; the stderr sink got {:?}", unused.text()),
    )
}

pub(crate) async fn attach_stdin(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.create(with_stdin(Workload::Cat)).await?;
    let out = Collector::default();
    let input: InputStream = Box::pin(std::io::Cursor::new(b"hello through stdin\n".to_vec()));
    let streams = AttachStreams::new(Some(input), Some(out.sink()), None);
    let outcome = attach_then_start(ctx, &c, streams, AttachOptions::default()).await?;
    let code = wait_code(ctx, &c).await?;
    check(
        outcome == AttachOutcome::StreamsEnded
            && code == 0
            && out.bytes() == b"hello through stdin\n",
        || format!("{outcome:?}, exit code {code}, output {:?}", out.text()),
    )
}

pub(crate) async fn attach_detach(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.start(with_stdin(Workload::UntilSignalled)).await?;
    // The client's input stays open: only the keys can end the session.
    let (mut client, input) = tokio::io::duplex(64);
    let streams = AttachStreams::new(
        Some(Box::pin(input)),
        Some(Collector::default().sink()),
        None,
    );
    let attached = attach(ctx, &c, streams, AttachOptions::default()).await?;
    client
        .write_all(&DETACH)
        .await
        .map_err(|e| format!("writing the detach keys: {e}"))?;
    let outcome = attached.outcome(PATIENCE).await?;
    let status = status_of(ctx, &c).await?;
    drop(client);
    check(
        outcome == AttachOutcome::Detached && status == ContainerStatus::Running,
        || format!("{outcome:?}, then the container is {status}"),
    )
}

pub(crate) async fn attach_cancel(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let cancel = AttachCancel::new();
    let streams = AttachStreams::new(None, Some(Collector::default().sink()), None);
    let options = AttachOptions::default().with_cancel(cancel.clone());
    let attached = attach(ctx, &c, streams, options).await?;
    cancel.cancel();
    let outcome = attached.outcome(PATIENCE).await?;
    let status = status_of(ctx, &c).await?;
    check(
        outcome == AttachOutcome::Cancelled && status == ContainerStatus::Running,
        || format!("{outcome:?}, then the container is {status}"),
    )
}

pub(crate) async fn attach_exited(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::Exit(0)).await?;
    wait_code(ctx, &c).await?;
    let streams = AttachStreams::new(None, Some(Collector::default().sink()), None);
    let result = tokio::time::timeout(
        PATIENCE,
        ctx.runtime().attach(&c, streams, AttachOptions::default()),
    )
    .await
    .map_err(|_| format!("attach to an exited container did not answer within {PATIENCE:?}"))?;
    expect_kind("attach", result, not_running, "ContainerNotRunning")
}

pub(crate) async fn resize(ctx: &Context<'_>) -> Result<(), String> {
    let mut spec = ContainerSpec::new(Workload::ReportSize {
        rows: 40,
        cols: 120,
    });
    spec.terminal = true;
    let c = ctx.create(spec).await?;
    let out = Collector::default();
    let streams = AttachStreams::new(None, Some(out.sink()), None);
    let _attached = attach(ctx, &c, streams, AttachOptions::default()).await?;
    ctx.runtime()
        .start(&c)
        .await
        .map_err(|e| unexpected("start", &e))?;
    let size = TerminalSize::new(40, 120).map_err(|e| e.to_string())?;
    ctx.runtime()
        .resize_terminal(&c, size)
        .await
        .map_err(|e| unexpected("resize_terminal", &e))?;
    out.wait_for("40 120", PATIENCE).await
}

pub(crate) async fn reopen_log(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    ctx.runtime()
        .reopen_log(&c)
        .await
        .map_err(|e| unexpected("reopen_log of a running container", &e))?;
    let status = status_of(ctx, &c).await?;
    check(status == ContainerStatus::Running, || {
        format!("the container is {status} after reopen_log")
    })?;
    ctx.runtime()
        .kill(&c, runtime_api::Signal::KILL, false)
        .await
        .map_err(|e| unexpected("kill", &e))?;
    wait_code(ctx, &c).await?;
    let result = tokio::time::timeout(PATIENCE, ctx.runtime().reopen_log(&c))
        .await
        .map_err(|_| {
            format!("reopen_log of an exited container did not answer within {PATIENCE:?}")
        })?;
    expect_kind("reopen_log", result, not_running, "ContainerNotRunning")
}

pub(crate) async fn exec_output(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let config = ctx.target().exec_config(&print("hi\n", "", 5));
    let out = Collector::default();
    let streams = AttachStreams::new(None, Some(out.sink()), Some(Collector::default().sink()));
    let handle = ctx
        .runtime()
        .exec(&c, &config, streams, AttachOptions::default())
        .await
        .map_err(|e| unexpected("exec", &e))?;
    let done = tokio::time::timeout(PATIENCE, handle.completion)
        .await
        .map_err(|_| format!("exec did not finish within {PATIENCE:?}"))?
        .map_err(|e| unexpected("exec completion", &e))?;
    check(
        done.outcome == AttachOutcome::StreamsEnded
            && done.exit_code == Some(5)
            && out.bytes() == b"hi\n",
        || format!("{done:?}, output {:?}", out.text()),
    )
}

pub(crate) async fn exec_detached(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let config = ctx.target().exec_config(&Workload::Exit(7));
    let session = ctx
        .runtime()
        .exec_detached(&c, &config)
        .await
        .map_err(|e| unexpected("exec_detached", &e))?;
    let code = ctx
        .runtime()
        .exec_wait(&c, &session, PATIENCE)
        .await
        .map_err(|e| unexpected("exec_wait", &e))?;
    check(code == 7, || format!("exec exit code {code}"))
}

pub(crate) async fn exec_stop(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let config = ctx.target().exec_config(&Workload::UntilSignalled);
    let runtime = ctx.runtime();
    let session = runtime
        .exec_detached(&c, &config)
        .await
        .map_err(|e| unexpected("exec_detached", &e))?;
    let alive = runtime
        .exec_alive(&c, &session)
        .await
        .map_err(|e| unexpected("exec_alive", &e))?;
    check(alive, || "exec_alive is false for a running exec".into())?;
    let started = Instant::now();
    runtime
        .exec_stop(&c, &session, Duration::from_secs(5))
        .await
        .map_err(|e| unexpected("exec_stop", &e))?;
    let took = started.elapsed();
    check(took < Duration::from_secs(5) + PATIENCE, || {
        format!("exec_stop took {took:?}")
    })?;
    // Once stopped, a session is either reported dead or already
    // forgotten (an error); it must not be alive.
    match runtime.exec_alive(&c, &session).await {
        Ok(true) => Err("exec_alive is still true after exec_stop".into()),
        Err(e @ RuntimeError::Unsupported { .. }) => Err(unexpected("exec_alive", &e)),
        _ => Ok(()),
    }
}

pub(crate) async fn exec_timeout(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let limit = Duration::from_secs(1);
    let mut config = ctx.target().exec_config(&Workload::IgnoreTerm);
    config.timeout = Some(limit);
    let streams = AttachStreams::new(None, Some(Collector::default().sink()), None);
    let began = Instant::now();
    let handle = ctx
        .runtime()
        .exec(&c, &config, streams, AttachOptions::default())
        .await
        .map_err(|e| unexpected("exec", &e))?;
    let session = handle.session.clone();
    let ended = tokio::time::timeout(limit + PATIENCE, handle.completion)
        .await
        .map_err(|_| format!("the exec was not ended within {PATIENCE:?} of its timeout"))?;
    let took = began.elapsed();
    match ended {
        Err(RuntimeError::ExecTimedOut { .. }) => {}
        Err(e) => return Err(unexpected("exec completion", &e)),
        Ok(done) => {
            return Err(format!(
                "a process past its timeout ended as {done:?}, not ExecTimedOut"
            ))
        }
    }
    check(took >= limit, || {
        format!("ExecTimedOut after {took:?}, before the {limit:?} limit")
    })?;
    match ctx.runtime().exec_alive(&c, &session).await {
        Ok(true) => Err("exec_alive is still true after ExecTimedOut".into()),
        Err(e @ RuntimeError::Unsupported { .. }) => Err(unexpected("exec_alive", &e)),
        _ => Ok(()),
    }
}

pub(crate) async fn exec_exited(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::Exit(0)).await?;
    wait_code(ctx, &c).await?;
    let config = ctx.target().exec_config(&Workload::Exit(0));
    expect_kind(
        "exec_detached",
        ctx.runtime().exec_detached(&c, &config).await,
        not_running,
        "ContainerNotRunning",
    )
}

pub(crate) async fn exec_resize(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let mut config = ctx.target().exec_config(&Workload::ReportSize {
        rows: 30,
        cols: 100,
    });
    config.terminal = true;
    let out = Collector::default();
    let streams = AttachStreams::new(None, Some(out.sink()), None);
    let handle = ctx
        .runtime()
        .exec(&c, &config, streams, AttachOptions::default())
        .await
        .map_err(|e| unexpected("exec", &e))?;
    // The streams flow only while the completion is polled.
    let completion = tokio::spawn(handle.completion);
    let size = TerminalSize::new(30, 100).map_err(|e| e.to_string())?;
    let resized = ctx
        .runtime()
        .exec_resize_terminal(&c, &handle.session, size)
        .await
        .map_err(|e| unexpected("exec_resize_terminal", &e));
    let seen = match resized {
        Ok(()) => out.wait_for("30 100", PATIENCE).await,
        Err(e) => Err(e),
    };
    completion.abort();
    seen
}

pub(crate) async fn update(ctx: &Context<'_>) -> Result<(), String> {
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

pub(crate) async fn checkpoint_relative(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.started(Workload::UntilSignalled).await?;
    let options = CheckpointOptions::new("relative/image", "/tmp/work");
    expect_kind(
        "checkpoint",
        ctx.runtime().checkpoint(&c, &options).await,
        invalid_argument,
        "InvalidArgument",
    )?;
    let status = status_of(ctx, &c).await?;
    check(status == ContainerStatus::Running, || {
        format!("status {status} after the refused checkpoint")
    })
}

pub(crate) async fn restore_relative(ctx: &Context<'_>) -> Result<(), String> {
    let c = ctx.prepare(ContainerSpec::new(Workload::Exit(0))).await?;
    let restore = RestoreOptions::new("relative/image");
    expect_kind(
        "restore",
        ctx.runtime()
            .restore(&c, &restore, CreateOptions::default())
            .await,
        invalid_argument,
        "InvalidArgument",
    )?;
    expect_kind(
        "status after the refused restore",
        ctx.runtime().status(&c).await,
        no_such,
        "NoSuchContainer",
    )
}

pub(crate) async fn info(ctx: &Context<'_>) -> Result<(), String> {
    let info = ctx
        .runtime()
        .info()
        .await
        .map_err(|e| unexpected("info", &e))?;
    check(!info.runtime.version.trim().is_empty(), || {
        format!("{info:?} has no version")
    })
}

/// Checks that every call of `feature` answers `Unsupported` naming it.
/// The calls name a container the runtime does not know, in a bundle
/// directory that holds nothing, so that a runtime answering anything but
/// `Unsupported` cannot harm anything.
pub(crate) async fn probe_unsupported(
    runtime: &dyn OciRuntime,
    feature: Feature,
) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("creating a probe directory: {e}"))?;
    let c = ContainerDescription::builder(
        unique_id("probe"),
        dir.path().join("bundle"),
        dir.path().join("run"),
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
    let config = ExecConfig::new(["true"]);
    let image = dir.path().join("image");
    let work = dir.path().join("work");
    let probes = async {
        let answers: Vec<(&str, Result<(), RuntimeError>)> = match feature {
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
                    .checkpoint(&c, &CheckpointOptions::new(&image, &work))
                    .await
                    .map(drop),
            )],
            Feature::Restore => vec![(
                "restore",
                runtime
                    .restore(&c, &RestoreOptions::new(&image), CreateOptions::default())
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
            Feature::ReopenLog => vec![("reopen_log", runtime.reopen_log(&c).await)],
            other => vec![("?", Err(RuntimeError::unsupported(other, "?")))],
        };
        answers
    };
    let answers = tokio::time::timeout(PATIENCE, probes)
        .await
        .map_err(|_| format!("the calls of {feature} did not answer within {PATIENCE:?}"))?;
    for (operation, answer) in answers {
        match answer {
            Err(RuntimeError::Unsupported { feature: named, .. }) if named == feature => {}
            other => {
                return Err(format!(
                    "{feature} is not advertised, but {operation} answered {other:?} instead of Unsupported {{ feature: {feature} }}"
                ))
            }
        }
    }
    Ok(())
}
