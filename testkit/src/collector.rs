//! An output sink for tests: it collects what a session writes, and a test
//! can wait (on the write itself, not by polling) until some text arrived.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use tokio::io::AsyncWriteExt;
//! let collector = testkit::Collector::default();
//! let mut sink = collector.sink();
//! sink.write_all(b"hello\n").await.unwrap();
//! collector.wait_for("hello", Duration::from_secs(1)).await.unwrap();
//! assert_eq!(collector.text(), "hello\n");
//! # }
//! ```

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use runtime_api::OutputStream;
use tokio::sync::watch;

/// An output sink that collects what is written and wakes whoever waits
/// for some text in it.
#[derive(Clone)]
pub struct Collector(Arc<watch::Sender<Vec<u8>>>);

impl Default for Collector {
    fn default() -> Self {
        Self(Arc::new(watch::channel(Vec::new()).0))
    }
}

impl Collector {
    /// Everything written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.borrow().clone()
    }

    /// Everything written so far, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// A stream writing into this collector.
    pub fn sink(&self) -> OutputStream {
        Box::pin(self.clone())
    }

    /// Waits up to `limit` until the collected bytes contain `needle`.
    ///
    /// # Errors
    ///
    /// A message quoting the output so far when `needle` did not appear.
    pub async fn wait_for(&self, needle: &str, limit: Duration) -> Result<(), String> {
        let mut receiver = self.0.subscribe();
        let wanted = needle.as_bytes();
        let seen = receiver.wait_for(|bytes| {
            bytes
                .windows(wanted.len().max(1))
                .any(|window| window == wanted)
        });
        let found = tokio::time::timeout(limit, seen)
            .await
            .map(|seen| seen.is_ok())
            .unwrap_or(false);
        if found {
            Ok(())
        } else {
            Err(format!(
                "{needle:?} did not appear within {limit:?}; output so far {:?}",
                self.text()
            ))
        }
    }
}

impl tokio::io::AsyncWrite for Collector {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.send_modify(|bytes| bytes.extend_from_slice(buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
