//! The streaming server behind `Exec`, `Attach` and `PortForward`.
//!
//! Those CRI calls do not stream over gRPC: they check the request, store
//! it under a one-time token ([`tokens`]) and answer a URL,
//! `http://<address>/{exec,attach,portforward}/<token>`, which the kubelet
//! (or its API server proxy) then opens as a WebSocket. [`server`] serves
//! those URLs over HTTP on a TCP address ([`StreamingConfig::address`]);
//! [`channel`] is Kubernetes' channel protocol (`v4.channel.k8s.io`,
//! `v5.channel.k8s.io`, port-forward channels); [`session`] bridges the
//! channels to the runtime's attach streams; [`exec`], [`attach`] and
//! [`portforward`] run one session of each kind. SPDY is not served.

pub mod attach;
pub mod channel;
pub mod config;
pub mod exec;
pub mod portforward;
pub mod server;
pub mod session;
pub mod state;
pub mod tokens;

use std::net::SocketAddr;

use k8s_cri::v1 as cri;

use crate::engine::Engine;
use crate::error::{CriError, Result};
use crate::PodNamespaceJoin;
use tokens::StreamRequest;

pub use config::StreamingConfig;

fn check_streams(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> Result<()> {
    if tty && stderr {
        return Err(CriError::InvalidArgument(
            "tty and stderr cannot both be true: a terminal merges stderr into stdout".into(),
        ));
    }
    if !(stdin || stdout || stderr) {
        return Err(CriError::InvalidArgument(
            "one of stdin, stdout or stderr must be set".into(),
        ));
    }
    Ok(())
}

impl Engine {
    /// The streaming server's address while [`serve`](crate::serve())
    /// runs it.
    pub fn streaming_address(&self) -> Option<SocketAddr> {
        self.streams().address()
    }

    fn stream_url(&self, request: StreamRequest) -> Result<String> {
        let address = self.streaming_address().ok_or_else(|| {
            CriError::FailedPrecondition(
                "the streaming server is not running (serve starts it)".into(),
            )
        })?;
        let kind = request.kind();
        let token = self.streams().tokens.insert(request)?;
        Ok(format!("http://{address}/{kind}/{token}"))
    }

    /// `Exec`: checks the request (a command, a valid choice of streams, a
    /// running container) and answers its streaming URL.
    pub async fn exec_url(&self, request: cri::ExecRequest) -> Result<String> {
        if request.cmd.is_empty() {
            return Err(CriError::InvalidArgument("exec needs a command".into()));
        }
        check_streams(request.tty, request.stdin, request.stdout, request.stderr)?;
        self.running_container(&request.container_id).await?;
        self.stream_url(StreamRequest::Exec(request))
    }

    /// `Attach`: checks the request (a valid choice of streams, a running
    /// container) and answers its streaming URL.
    pub async fn attach_url(&self, request: cri::AttachRequest) -> Result<String> {
        check_streams(request.tty, request.stdin, request.stdout, request.stderr)?;
        self.running_container(&request.container_id).await?;
        self.stream_url(StreamRequest::Attach(request))
    }

    /// `PortForward`: checks that the pod exists and is ready and that its
    /// network namespace can be entered from the host, and answers its
    /// streaming URL.
    pub async fn port_forward_url(&self, request: cri::PortForwardRequest) -> Result<String> {
        if let Some(port) = request.port.iter().find(|p| !(1..=65535).contains(*p)) {
            return Err(CriError::InvalidArgument(format!(
                "port {port} is not in 1..=65535"
            )));
        }
        let pod = self.ready_pod(&request.pod_sandbox_id).await?;
        if self.handler(&pod.handler)?.join == PodNamespaceJoin::Isolated {
            return Err(portforward::isolated_error(&pod.id, &pod.handler));
        }
        self.stream_url(StreamRequest::PortForward(request))
    }
}
