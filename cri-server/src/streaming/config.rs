//! The streaming server's settings: where it listens and its time limits.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{CriError, Result};

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
