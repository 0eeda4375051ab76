//! What the engine keeps for the streaming server: the pending one-time
//! tokens and the address the server bound (the URLs carry it).

use std::net::SocketAddr;
use std::sync::Mutex;

use super::config::StreamingConfig;
use super::tokens::TokenCache;

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

    /// The address the server bound, once it runs.
    pub(crate) fn address(&self) -> Option<SocketAddr> {
        *self.lock()
    }
}
