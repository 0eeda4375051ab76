//! One attach session over a WebSocket: the container's streams through
//! [`OciRuntime::attach`] bridged to the channels, terminal sizes through
//! [`OciRuntime::resize_terminal`]. The stdin channel reaches the container
//! only when it was created with `stdin` (as CRI-O does); its close (v5's
//! `[255, 0]`) closes the container's stdin. When the container's output
//! ends a `Success` status is written on the error channel and the socket
//! closes; a client that goes away cancels the attach and the container
//! runs on.
//!
//! [`OciRuntime::attach`]: runtime_api::OciRuntime::attach
//! [`OciRuntime::resize_terminal`]: runtime_api::OciRuntime::resize_terminal

use std::sync::Arc;

use k8s_cri::v1 as cri;
use runtime_api::{AttachCancel, AttachOptions};

use super::channel::{self, Protocol};
use super::session::{self, Bridge, Resizer, Ws};
use crate::engine::{bounded, Engine};
use crate::error::Result;

/// Runs `request` on `ws` to its end.
pub async fn run(engine: Arc<Engine>, ws: Ws, protocol: Protocol, request: cri::AttachRequest) {
    let streaming = engine.config().streaming;
    let limits = engine.config().timeouts;
    let (out, client) = session::split(ws, streaming.write_timeout);
    let status = match attach(&engine, &out, client, protocol, request).await {
        Ok(true) => Some(channel::status_success()),
        Ok(false) => None,
        Err(e) => Some(channel::status_internal(&e.to_string())),
    };
    out.finish(status, limits.call).await;
}

/// Whether the session ended with the container's streams (not with the
/// client going away).
async fn attach(
    engine: &Engine,
    out: &session::Outbound,
    client: futures_util::stream::SplitStream<Ws>,
    protocol: Protocol,
    request: cri::AttachRequest,
) -> Result<bool> {
    let id = request.container_id.clone();
    let c = engine.running_container(&id).await?;
    let runtime = engine.runtime(&c.handler)?;
    let limits = engine.config().timeouts;
    let tty = c.config.tty;
    let (mut bridge, streams) = Bridge::new(
        request.stdin && c.config.stdin,
        request.stdout,
        request.stderr && !tty,
        out,
    );
    let cancel = AttachCancel::new();
    let options = AttachOptions::default()
        .with_detach_keys("")
        .with_cancel(cancel.clone());
    let resize: Resizer = {
        let (runtime, description) = (runtime.clone(), c.description.clone());
        Box::new(move |size| {
            let (runtime, description) = (runtime.clone(), description.clone());
            Box::pin(async move {
                let call = runtime.resize_terminal(&description, size);
                if let Err(e) = bounded("resizing a terminal", limits.call, call).await {
                    tracing::warn!("attach to {}: {e}", description.id());
                }
            })
        })
    };
    let mut reader = bridge.read_client(client, protocol, resize);
    let attached = runtime.attach(&c.description, streams, options);
    tokio::pin!(attached);
    let result = tokio::select! {
        done = &mut attached => {
            reader.abort();
            Some(done)
        }
        _ = &mut reader => None,
    };
    let ended = match result {
        Some(done) => {
            done?;
            true
        }
        None => {
            cancel.cancel();
            bounded("ending an attach session", limits.call, attached).await?;
            false
        }
    };
    bridge.drain(limits.call).await;
    Ok(ended)
}
