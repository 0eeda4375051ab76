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
pub mod exec;
pub mod portforward;
pub mod server;
pub mod session;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use k8s_cri::v1 as cri;
use runtime_api::ContainerStatus;

use crate::engine::{bounded, ContainerRecord, Engine};
use crate::error::{CriError, Result};
use crate::PodNamespaceJoin;
use tokens::{StreamRequest, TokenCache};

/// How the streaming server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamingConfig {
    /// The TCP address it listens on; port 0 picks a free port (the URLs
    /// carry the one bound).
    pub address: SocketAddr,
    /// How long a URL's token stays valid before its connection.
    pub token_ttl: Duration,
    /// The limit on connecting to a forwarded port in the pod.
    pub connect_timeout: Duration,
    /// How long the exec'd process of a client that went away may run on
    /// (its stdin closed) before it is stopped.
    pub exec_grace: Duration,
    /// The limit on sending one message to a client that does not read.
    pub write_timeout: Duration,
}

impl Default for StreamingConfig {
    /// `127.0.0.1:0`, tokens valid 1 minute, 10 s to connect a forwarded
    /// port, 10 s of grace for an orphaned exec, 60 s per message.
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            token_ttl: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            exec_grace: Duration::from_secs(10),
            write_timeout: Duration::from_secs(60),
        }
    }
}

impl StreamingConfig {
    /// Checks that no limit is zero.
    pub fn validate(&self) -> Result<()> {
        let limits = [
            self.token_ttl,
            self.connect_timeout,
            self.exec_grace,
            self.write_timeout,
        ];
        if limits.contains(&Duration::ZERO) {
            return Err(CriError::InvalidArgument(
                "streaming time limits must not be zero".into(),
            ));
        }
        Ok(())
    }
}

/// The engine's streaming state: pending tokens and the bound address.
#[derive(Debug)]
pub(crate) struct Streams {
    pub(crate) tokens: TokenCache,
    address: Mutex<Option<SocketAddr>>,
}

impl Streams {
    pub(crate) fn new(config: &StreamingConfig) -> Self {
        Self {
            tokens: TokenCache::new(config.token_ttl),
            address: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<SocketAddr>> {
        self.address.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_address(&self, address: Option<SocketAddr>) {
        *self.lock() = address;
    }
}

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
        *self.streams().lock()
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

    /// A container that exists and runs, for exec and attach.
    pub(crate) async fn running_container(&self, id: &str) -> Result<ContainerRecord> {
        let c = self.container(id)?;
        let runtime = self.runtime(&c.handler)?;
        let state = bounded(
            format!("the state of container {id}"),
            self.config().timeouts.call,
            runtime.status(&c.description),
        )
        .await?;
        if state.status != ContainerStatus::Running {
            return Err(CriError::FailedPrecondition(format!(
                "container {id} is {}, not running",
                state.status
            )));
        }
        Ok(c)
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
