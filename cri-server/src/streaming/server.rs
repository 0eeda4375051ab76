//! The HTTP side of the streaming server: a TCP listener, one hyper
//! HTTP/1 connection per client (headers bounded in time), and the routing
//! of `/exec/<token>`, `/attach/<token>` and `/portforward/<token>`. A
//! request must be a WebSocket upgrade offering a served subprotocol
//! (400 otherwise, the token kept); then its token is taken: unknown or
//! already used is 404, expired is 410, a token of another kind is 404.
//! Only then is the connection upgraded and the session started, so a bad
//! token never reaches the runtime.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use super::channel;
use super::tokens::{StreamRequest, TokenError};
use super::{attach, exec, portforward};
use crate::engine::Engine;
use crate::error::{CriError, Result};

/// The longest client message accepted (stdin chunks, port data).
pub const MAX_MESSAGE: usize = 1 << 20;

/// A running streaming server; dropping it stops it.
#[derive(Debug)]
pub struct StreamingServer {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl StreamingServer {
    /// Binds the engine's configured address, records the bound one in
    /// the engine (the URLs carry it) and serves until stopped.
    pub async fn start(engine: Arc<Engine>) -> Result<Self> {
        let config = engine.config().streaming;
        let listener = TcpListener::bind(config.address)
            .await
            .map_err(CriError::io(format!(
                "binding the streaming server to {}",
                config.address
            )))?;
        let address = listener
            .local_addr()
            .map_err(CriError::io("reading the streaming server's address"))?;
        engine.streams().set_address(Some(address));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(accept(engine, listener, stopped));
        tracing::info!("streaming server on http://{address}");
        Ok(Self {
            address,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting and waits for the accepting task; sessions already
    /// upgraded run to their own end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for StreamingServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept(
    engine: Arc<Engine>,
    listener: TcpListener,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let engine = engine.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            route(engine.clone(), request)
                        });
                        let served = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(Duration::from_secs(30))
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades()
                            .await;
                        if let Err(e) = served {
                            tracing::debug!("streaming connection from {peer}: {e}");
                        }
                    });
                }
                Err(e) => tracing::warn!("accepting a streaming connection: {e}"),
            },
        }
    }
    engine.streams().set_address(None);
    connections.abort_all();
}

fn reply(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    let mut text = message.into();
    text.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn header_has(request: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    request.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

async fn route(
    engine: Arc<Engine>,
    mut request: Request<Incoming>,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (Some(kind), Some(token)) = (parts.next(), parts.next()) else {
        return Ok(reply(StatusCode::NOT_FOUND, "not found"));
    };
    if !["exec", "attach", "portforward"].contains(&kind) || token.contains('/') {
        return Ok(reply(StatusCode::NOT_FOUND, "not found"));
    }
    if request.method() != Method::GET {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "streaming connections are WebSocket upgrades (GET)",
        ));
    }
    let key = request.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let upgrade = header_has(&request, header::CONNECTION, "upgrade")
        && header_has(&request, header::UPGRADE, "websocket")
        && request
            .headers()
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let Some(key) = key.filter(|_| upgrade) else {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            "only WebSocket streaming (v4/v5.channel.k8s.io) is served; SPDY is not",
        ));
    };
    let offered: Vec<String> = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let Some((chosen, protocol)) =
        channel::negotiate(offered.iter().map(String::as_str), kind == "portforward")
    else {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            format!(
                "none of the subprotocols {offered:?} is served; use {} or {}",
                channel::V5,
                channel::V4
            ),
        ));
    };
    let stored = match engine.streams().tokens.consume(token) {
        Ok(stored) if stored.kind() == kind => stored,
        Ok(_) | Err(TokenError::Unknown) => {
            return Ok(reply(
                StatusCode::NOT_FOUND,
                TokenError::Unknown.to_string(),
            ))
        }
        Err(TokenError::Expired) => {
            return Ok(reply(StatusCode::GONE, TokenError::Expired.to_string()))
        }
    };
    let ports = match &stored {
        StreamRequest::PortForward(pf) => match portforward::ports(pf, request.uri().query()) {
            Ok(ports) => ports,
            Err(e) => return Ok(reply(StatusCode::BAD_REQUEST, e.to_string())),
        },
        _ => Vec::new(),
    };

    let span = match &stored {
        StreamRequest::Exec(r) => tracing::info_span!("exec", container = %r.container_id),
        StreamRequest::Attach(r) => tracing::info_span!("attach", container = %r.container_id),
        StreamRequest::PortForward(r) => {
            tracing::info_span!("portforward", pod = %r.pod_sandbox_id)
        }
    };
    let upgrading = hyper::upgrade::on(&mut request);
    let session = async move {
        let upgraded = match upgrading.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!("streaming upgrade failed: {e}");
                return;
            }
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        match stored {
            StreamRequest::Exec(r) => exec::run(engine, ws, protocol, r).await,
            StreamRequest::Attach(r) => attach::run(engine, ws, protocol, r).await,
            StreamRequest::PortForward(r) => portforward::run(engine, ws, r, ports).await,
        }
    };
    tokio::spawn(session.instrument(span));

    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(chosen) = chosen {
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(chosen),
        );
    }
    Ok(response)
}
