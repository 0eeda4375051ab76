//! One-time tokens for streaming URLs. `Exec`, `Attach` and `PortForward`
//! store their checked request under a random token (32 bytes from
//! `/dev/urandom`, hex) and answer a URL holding it; the streaming server
//! takes the request out once, on the first connection. A token is
//! forgotten once used and refused once its time to live has passed, so a
//! reused, expired or unknown token never reaches the runtime.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;

use crate::error::{CriError, Result};
use crate::ids::new_id;

/// The most requests waiting for their connection at once (the kubelet's
/// own limit).
pub const MAX_PENDING: usize = 1000;

/// A checked request waiting for its connection.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamRequest {
    /// An `ExecRequest`.
    Exec(cri::ExecRequest),
    /// An `AttachRequest`.
    Attach(cri::AttachRequest),
    /// A `PortForwardRequest`.
    PortForward(cri::PortForwardRequest),
}

impl StreamRequest {
    /// The URL path segment of this kind of request.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Exec(_) => "exec",
            Self::Attach(_) => "attach",
            Self::PortForward(_) => "portforward",
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Never issued, or already used.
    #[error("unknown or already used streaming token")]
    Unknown,
    /// Issued, but its time to live has passed.
    #[error("the streaming token has expired")]
    Expired,
}

#[derive(Debug)]
struct Entry {
    request: StreamRequest,
    expires: Instant,
}

/// The pending requests by token.
#[derive(Debug)]
pub struct TokenCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl TokenCache {
    /// An empty cache whose tokens live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Each change is a single insert, remove or retain.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `request` under a new token and returns the token. Expired
    /// entries are dropped first; past [`MAX_PENDING`] waiting requests the
    /// call is refused.
    pub fn insert(&self, request: StreamRequest) -> Result<String> {
        let token = new_id()?;
        let now = Instant::now();
        let mut entries = self.entries();
        entries.retain(|_, e| e.expires > now);
        if entries.len() >= MAX_PENDING {
            return Err(CriError::FailedPrecondition(format!(
                "{MAX_PENDING} streaming requests are already waiting for their connection"
            )));
        }
        entries.insert(
            token.clone(),
            Entry {
                request,
                expires: now + self.ttl,
            },
        );
        Ok(token)
    }

    /// Takes the request of `token` out: a token works once.
    pub fn consume(&self, token: &str) -> Result<StreamRequest, TokenError> {
        let entry = self.entries().remove(token).ok_or(TokenError::Unknown)?;
        if entry.expires <= Instant::now() {
            return Err(TokenError::Expired);
        }
        Ok(entry.request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> StreamRequest {
        StreamRequest::Exec(cri::ExecRequest {
            container_id: "c".into(),
            cmd: vec!["true".into()],
            ..Default::default()
        })
    }

    #[test]
    fn a_token_works_once() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let token = cache.insert(exec()).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(cache.consume(&token), Ok(exec()));
        assert_eq!(cache.consume(&token), Err(TokenError::Unknown));
        assert_eq!(cache.consume("nope"), Err(TokenError::Unknown));
    }

    #[test]
    fn tokens_differ_and_expire() {
        let cache = TokenCache::new(Duration::ZERO);
        let a = cache.insert(exec()).unwrap();
        let b = cache.insert(exec()).unwrap();
        assert_ne!(a, b);
        assert_eq!(cache.consume(&b), Err(TokenError::Expired));
    }

    #[test]
    fn pending_requests_are_bounded() {
        let cache = TokenCache::new(Duration::from_secs(60));
        for _ in 0..MAX_PENDING {
            cache.insert(exec()).unwrap();
        }
        assert!(matches!(
            cache.insert(exec()),
            Err(CriError::FailedPrecondition(_))
        ));
    }
}
