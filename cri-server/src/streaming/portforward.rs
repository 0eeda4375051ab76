//! Port forwarding over a WebSocket, as the kubelet's WebSocket
//! port-forward does: ports come from the stored `PortForwardRequest` (or,
//! when it names none, from the URL's `port=` parameters); port `i` gets a
//! data channel `2i` and an error channel `2i+1`, and the first message on
//! each carries the port as two little-endian bytes. Each port is one TCP
//! connection to `127.0.0.1:<port>` inside the pod's network namespace:
//! a dedicated thread enters `/proc/<infra pid>/ns/net` with `setns`,
//! connects with the configured timeout, hands the socket back and exits
//! (a thread that changed namespace is never reused). A failure is written
//! as text on the port's error channel. The socket closes when every
//! port's connection has ended, or when the client goes away.
//!
//! Pods of an [`Isolated`](crate::PodNamespaceJoin::Isolated) handler are
//! refused: there each container is a sandbox of its own, and with runsc
//! the network stack runs inside the sandbox, so `/proc/<pid>/ns/net` of
//! its processes is a host namespace whose loopback is down (connecting
//! there is "Network is unreachable") and never reaches the sandbox's.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_cri::v1 as cri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::channel::{self, Frame, Protocol};
use super::session::{self, Outbound, Ws};
use crate::engine::Engine;
use crate::error::{CriError, Result};

/// The most ports of one request (two channels each, in one byte).
pub const MAX_PORTS: usize = 64;

/// The error of a port-forward to a pod whose handler runs isolated.
pub fn isolated_error(pod: &str, handler: &str) -> CriError {
    CriError::Unimplemented(format!(
        "port forwarding to pod sandbox {pod} is not supported: handler {handler:?} runs \
         each container as a sandbox of its own (isolated); with runsc the pod's network \
         stack is inside the sandbox and its loopback cannot be reached from the host's \
         view of the sandbox's network namespace"
    ))
}

/// The ports of a request: its own, or else the `port=` query parameters
/// (comma-separated lists allowed).
pub fn ports(request: &cri::PortForwardRequest, query: Option<&str>) -> Result<Vec<u16>> {
    let invalid = |m: String| Err(CriError::InvalidArgument(m));
    let mut ports = Vec::new();
    for p in &request.port {
        match u16::try_from(*p) {
            Ok(port) if port > 0 => ports.push(port),
            _ => return invalid(format!("{p} is not a port")),
        }
    }
    let query = if ports.is_empty() { query } else { None };
    for pair in query.unwrap_or_default().split('&') {
        let Some(value) = pair.strip_prefix("port=") else {
            continue;
        };
        for p in value.split(',') {
            match p.parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                _ => return invalid(format!("{p:?} is not a port")),
            }
        }
    }
    if ports.is_empty() {
        return invalid("no port to forward: the query parameter \"port\" is required".into());
    }
    if ports.len() > MAX_PORTS {
        return invalid(format!(
            "{} ports in one request; at most {MAX_PORTS}",
            ports.len()
        ));
    }
    Ok(ports)
}

/// Connects to `127.0.0.1:port` in the network namespace of `pid`.
pub async fn connect_in_netns(pid: i32, port: u16, timeout: Duration) -> Result<TcpStream> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("netns-connect-{port}"))
        .spawn(move || {
            let _ = sender.send(connect_in_thread(pid, port, timeout));
        })
        .map_err(CriError::io("starting a thread to enter a pod's netns"))?;
    let stream = tokio::time::timeout(timeout + Duration::from_secs(1), receiver)
        .await
        .map_err(|_| {
            CriError::DeadlineExceeded(format!("connecting to port {port} took over {timeout:?}"))
        })?
        .map_err(|_| CriError::FailedPrecondition("the connecting thread ended early".into()))??;
    TcpStream::from_std(stream).map_err(CriError::io("registering a forwarded connection"))
}

/// Runs on a thread of its own, which ends right after: the namespace it
/// entered stays with it.
fn connect_in_thread(pid: i32, port: u16, timeout: Duration) -> Result<std::net::TcpStream> {
    let path = format!("/proc/{pid}/ns/net");
    let ns = std::fs::File::open(&path).map_err(CriError::io(format!("opening {path}")))?;
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| CriError::io(format!("entering {path}"))(e.into()))?;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = std::net::TcpStream::connect_timeout(&address, timeout)
        .map_err(CriError::io(format!("connecting to {address} in {path}")))?;
    stream
        .set_nonblocking(true)
        .map_err(CriError::io("making a forwarded connection non-blocking"))?;
    Ok(stream)
}

/// Runs the forwarding of `ports` into pod `request.pod_sandbox_id` on
/// `ws` to its end.
pub async fn run(engine: Arc<Engine>, ws: Ws, request: cri::PortForwardRequest, ports: Vec<u16>) {
    let streaming = engine.config().streaming;
    let limits = engine.config().timeouts;
    let (out, mut client) = session::split(ws, streaming.write_timeout);
    let pod = match engine.ready_pod(&request.pod_sandbox_id).await {
        Ok(pod) => pod,
        Err(e) => {
            for (i, port) in ports.iter().enumerate() {
                let chan = error_channel(i);
                out.send(chan, &port.to_le_bytes()).await;
                out.send(chan, e.to_string().as_bytes()).await;
            }
            out.finish(None, limits.call).await;
            return;
        }
    };
    let mut writers: Vec<Option<OwnedWriteHalf>> = Vec::new();
    let mut readers = JoinSet::new();
    for (i, &port) in ports.iter().enumerate() {
        out.send(data_channel(i), &port.to_le_bytes()).await;
        out.send(error_channel(i), &port.to_le_bytes()).await;
        match connect_in_netns(pod.infra_pid, port, streaming.connect_timeout).await {
            Ok(stream) => {
                let (read, write) = stream.into_split();
                writers.push(Some(write));
                readers.spawn(copy_to_client(read, data_channel(i), out.sender()));
            }
            Err(e) => {
                let message = format!("error forwarding port {port} to pod {}: {e}", pod.id);
                out.send(error_channel(i), message.as_bytes()).await;
                writers.push(None);
            }
        }
    }
    loop {
        if readers.is_empty() {
            break;
        }
        tokio::select! {
            _ = readers.join_next() => {}
            message = client.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    to_port(&out, &mut writers, &bytes, streaming.write_timeout).await;
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    readers.abort_all();
    drop(writers);
    out.finish(None, limits.call).await;
}

fn data_channel(i: usize) -> u8 {
    (2 * i) as u8
}

fn error_channel(i: usize) -> u8 {
    (2 * i + 1) as u8
}

/// Hands a client message to its port's connection.
async fn to_port(
    out: &Outbound,
    writers: &mut [Option<OwnedWriteHalf>],
    message: &[u8],
    limit: Duration,
) {
    let (channel, bytes, close) = match channel::decode(message, Protocol::PortForward) {
        Ok(Frame::Data { channel, bytes }) => (channel, bytes, false),
        Ok(Frame::Close(channel)) => (channel, &[][..], true),
        Err(e) => {
            tracing::debug!("ignoring a port-forward message: {e}");
            return;
        }
    };
    let index = usize::from(channel / 2);
    if channel % 2 != 0 {
        return;
    }
    let Some(slot) = writers.get_mut(index) else {
        return;
    };
    let Some(writer) = slot.as_mut() else {
        return;
    };
    if close {
        let _ = tokio::time::timeout(limit, writer.shutdown()).await;
        *slot = None;
        return;
    }
    match tokio::time::timeout(limit, writer.write_all(bytes)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            out.send(channel + 1, format!("writing to the port: {e}").as_bytes())
                .await;
            *slot = None;
        }
        Err(_) => {
            out.send(
                channel + 1,
                format!("the port took no data for {limit:?}").as_bytes(),
            )
            .await;
            *slot = None;
        }
    }
}

async fn copy_to_client(
    mut read: tokio::net::tcp::OwnedReadHalf,
    channel: u8,
    out: tokio::sync::mpsc::Sender<Message>,
) {
    let mut buf = vec![0u8; 32 << 10];
    loop {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let message = Message::Binary(channel::encode(channel, &buf[..n]).into());
                if out.send(message).await.is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_from_request_or_query() {
        let mut request = cri::PortForwardRequest::default();
        assert_eq!(
            ports(&request, Some("port=80&port=81,82")).unwrap(),
            [80, 81, 82]
        );
        assert!(ports(&request, Some("port=0")).is_err());
        assert!(ports(&request, Some("port=x")).is_err());
        assert!(ports(&request, Some("port=70000")).is_err());
        assert!(ports(&request, None).is_err());
        request.port = vec![8080];
        assert_eq!(ports(&request, Some("port=1")).unwrap(), [8080]);
        request.port = vec![-1];
        assert!(ports(&request, None).is_err());
    }
}
