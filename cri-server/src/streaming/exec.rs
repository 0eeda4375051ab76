//! One exec session over a WebSocket: the command of the stored
//! `ExecRequest` started through [`OciRuntime::exec`] with its streams
//! bridged to the channels, terminal sizes through
//! [`OciRuntime::exec_resize_terminal`], and the exit code written on the
//! error channel (a `Success` status for 0, `NonZeroExitCode` with the code
//! otherwise) before the socket closes.
//!
//! A client that goes away mid-exec closes the process's stdin (and stops
//! reading its terminal or output, which is then discarded). The process
//! may run on for [`StreamingConfig::exec_grace`]: a process that ends on
//! stdin EOF (`cat`, a shell) ends by itself; one still running after it
//! is stopped with [`OciRuntime::exec_stop`] (SIGTERM, then SIGKILL after
//! the kill wait), so neither the process nor the runtime's exec session
//! outlives the connection.
//!
//! [`OciRuntime::exec`]: runtime_api::OciRuntime::exec
//! [`OciRuntime::exec_resize_terminal`]: runtime_api::OciRuntime::exec_resize_terminal
//! [`OciRuntime::exec_stop`]: runtime_api::OciRuntime::exec_stop
//! [`StreamingConfig::exec_grace`]: super::StreamingConfig::exec_grace

use std::sync::Arc;

use k8s_cri::v1 as cri;
use runtime_api::{AttachCancel, AttachOptions, ExecConfig, RuntimeError};

use super::channel::{self, Protocol};
use super::session::{self, Bridge, Resizer, Ws};
use crate::engine::{bounded, Engine};
use crate::error::{CriError, Result};

/// Runs `request` on `ws` to its end.
pub async fn run(engine: Arc<Engine>, ws: Ws, protocol: Protocol, request: cri::ExecRequest) {
    let streaming = engine.config().streaming;
    let limits = engine.config().timeouts;
    let (out, client) = session::split(ws, streaming.write_timeout);
    let status = match exec(&engine, &out, client, protocol, request).await {
        Ok(Some(0)) => Some(channel::status_success()),
        Ok(Some(code)) => Some(channel::status_exit_code(code)),
        Ok(None) => None,
        Err(e) => Some(channel::status_internal(&e.to_string())),
    };
    out.finish(status, limits.call).await;
}

/// The exit code, or `None` when the client went away first.
async fn exec(
    engine: &Engine,
    out: &session::Outbound,
    client: futures_util::stream::SplitStream<Ws>,
    protocol: Protocol,
    request: cri::ExecRequest,
) -> Result<Option<i32>> {
    let id = request.container_id.clone();
    let c = engine.running_container(&id).await?;
    let runtime = engine.runtime(&c.handler)?;
    let limits = engine.config().timeouts;
    let grace = engine.config().streaming.exec_grace;

    let mut config = ExecConfig::new(request.cmd);
    config.terminal = request.tty;
    config.stdin = request.stdin;
    let (mut bridge, streams) = Bridge::new(
        request.stdin,
        request.stdout,
        request.stderr && !request.tty,
        out,
    );
    let cancel = AttachCancel::new();
    // CRI streams carry raw bytes: no detach keys.
    let options = AttachOptions::default()
        .with_detach_keys("")
        .with_cancel(cancel.clone());
    let handle = bounded(
        format!("starting exec in container {id}"),
        limits.call,
        runtime.exec(&c.description, &config, streams, options),
    )
    .await?;
    let session = handle.session.clone();

    let resize: Resizer = {
        let (runtime, description, session) =
            (runtime.clone(), c.description.clone(), session.clone());
        Box::new(move |size| {
            let (runtime, description, session) =
                (runtime.clone(), description.clone(), session.clone());
            Box::pin(async move {
                let call = runtime.exec_resize_terminal(&description, &session, size);
                if let Err(e) = bounded("resizing an exec terminal", limits.call, call).await {
                    tracing::warn!("exec {}: {e}", session.id);
                }
            })
        })
    };
    let mut reader = bridge.read_client(client, protocol, resize);
    let mut completion = handle.completion;

    let finished = tokio::select! {
        done = &mut completion => {
            reader.abort();
            Some(done)
        }
        _ = &mut reader => None,
    };
    let client_gone = finished.is_none();
    let completion = match finished {
        Some(done) => done,
        None => {
            // The client went away: its stdin pipe is closed. Stop copying
            // and give the process its grace before stopping it.
            cancel.cancel();
            match tokio::time::timeout(limits.call, completion).await {
                Ok(done) => done,
                Err(_) => Err(RuntimeError::Timeout {
                    operation: format!("ending the streams of exec {}", session.id),
                    limit: limits.call,
                }),
            }
        }
    };
    bridge.drain(limits.call).await;
    let exit_code = match completion {
        Ok(done) => match done.exit_code {
            Some(code) => code,
            None => wait_or_stop(engine, &c, &session, grace).await?,
        },
        Err(RuntimeError::Timeout { .. }) if client_gone => {
            wait_or_stop(engine, &c, &session, grace).await?
        }
        Err(e) => return Err(e.into()),
    };
    Ok((!client_gone).then_some(exit_code))
}

/// The exit code of an exec whose streams were cancelled: waited for up to
/// `grace`, then the process is stopped and its code collected.
async fn wait_or_stop(
    engine: &Engine,
    c: &crate::engine::ContainerRecord,
    session: &runtime_api::ExecSession,
    grace: std::time::Duration,
) -> Result<i32> {
    let runtime = engine.runtime(&c.handler)?;
    let limits = engine.config().timeouts;
    let what = format!("waiting for exec {}", session.id);
    match bounded(
        what.clone(),
        grace + limits.call,
        runtime.exec_wait(&c.description, session, grace),
    )
    .await
    {
        Err(CriError::Runtime(RuntimeError::Timeout { .. }))
        | Err(CriError::DeadlineExceeded(_)) => {
            tracing::info!(
                "exec {} still runs {grace:?} after its client went away: stopping it",
                session.id
            );
            bounded(
                format!("stopping exec {}", session.id),
                limits.call + limits.kill_wait,
                runtime.exec_stop(&c.description, session, limits.kill_wait),
            )
            .await?;
            bounded(
                what,
                limits.call * 2,
                runtime.exec_wait(&c.description, session, limits.call),
            )
            .await
        }
        other => other,
    }
}
