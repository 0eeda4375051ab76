//! Attaching to a container's streams: what the caller hands over (optional
//! stdin, stdout and stderr), how output is framed (raw, or Docker's
//! multiplexed frames), the detach keys, a cancellation handle, and how an
//! attach session ended.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::RuntimeError;

/// A reader the container's stdin is fed from.
pub type InputStream = Pin<Box<dyn AsyncRead + Send>>;
/// A sink one of the container's output streams is written to.
pub type OutputStream = Pin<Box<dyn AsyncWrite + Send>>;

/// The caller's ends of an attach session. At least one must be set.
#[derive(Default)]
pub struct AttachStreams {
    /// Fed to the container's stdin; its EOF closes the container's stdin.
    pub stdin: Option<InputStream>,
    /// Receives the container's stdout (and, with a terminal, everything).
    pub stdout: Option<OutputStream>,
    /// Receives the container's stderr (never used with a terminal).
    pub stderr: Option<OutputStream>,
}

impl fmt::Debug for AttachStreams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachStreams")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .finish()
    }
}

impl AttachStreams {
    /// Streams of the given ends; pass `None` for an end not wanted.
    pub fn new(
        stdin: Option<InputStream>,
        stdout: Option<OutputStream>,
        stderr: Option<OutputStream>,
    ) -> Self {
        Self {
            stdin,
            stdout,
            stderr,
        }
    }

    /// Whether no stream at all was given.
    pub fn is_empty(&self) -> bool {
        self.stdin.is_none() && self.stdout.is_none() && self.stderr.is_none()
    }
}

/// How output reaches the caller's sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Framing {
    /// Bytes as the container wrote them.
    #[default]
    Raw,
    /// Docker's multiplexed frames (8-byte header: stream, three zero bytes,
    /// big-endian length), all written to the stdout sink; without a
    /// terminal only.
    Multiplexed,
}

/// Cancels an attach session from elsewhere; clones share the signal.
///
/// ```
/// use runtime_api::AttachCancel;
/// let cancel = AttachCancel::new();
/// let handle = cancel.clone();
/// handle.cancel();
/// assert!(cancel.is_cancelled());
/// ```
#[derive(Debug, Clone)]
pub struct AttachCancel {
    sender: Arc<watch::Sender<bool>>,
}

impl Default for AttachCancel {
    fn default() -> Self {
        Self::new()
    }
}

impl AttachCancel {
    /// A handle not yet cancelled.
    pub fn new() -> Self {
        Self {
            sender: Arc::new(watch::channel(false).0),
        }
    }

    /// Ends the session promptly; the container keeps running.
    pub fn cancel(&self) {
        self.sender.send_replace(true);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        *self.sender.borrow()
    }

    /// Completes once cancelled.
    pub async fn cancelled(&self) {
        let mut receiver = self.sender.subscribe();
        // An error means the sender is gone, which cannot happen while
        // `self` holds it.
        let _ = receiver.wait_for(|cancelled| *cancelled).await;
    }
}

/// Tells the caller that the attach socket is connected, so that output
/// from a container started afterwards is not missed; clones share it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use runtime_api::AttachReady;
/// let ready = AttachReady::new();
/// let waiter = ready.clone();
/// ready.set();
/// waiter.wait().await; // returns at once: already connected
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AttachReady {
    sender: Arc<watch::Sender<bool>>,
}

impl Default for AttachReady {
    fn default() -> Self {
        Self::new()
    }
}

impl AttachReady {
    /// A handle not yet set.
    pub fn new() -> Self {
        Self {
            sender: Arc::new(watch::channel(false).0),
        }
    }

    /// Marks the session connected (done by the runtime).
    pub fn set(&self) {
        self.sender.send_replace(true);
    }

    /// Whether the session is connected.
    pub fn is_set(&self) -> bool {
        *self.sender.borrow()
    }

    /// Completes once the session is connected.
    pub async fn wait(&self) {
        let mut receiver = self.sender.subscribe();
        // The sender lives in `self`: the wait cannot fail.
        let _ = receiver.wait_for(|ready| *ready).await;
    }
}

/// How an attach behaves.
///
/// ```
/// use runtime_api::{AttachOptions, Framing};
/// let mut options = AttachOptions::default();
/// options.framing = Framing::Multiplexed;
/// options.detach_keys = Some("ctrl-a,d".into());
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AttachOptions {
    /// Output framing.
    pub framing: Framing,
    /// Detach keys in podman's grammar (`ctrl-p,ctrl-q` when `None`; an empty
    /// string never detaches).
    pub detach_keys: Option<String>,
    /// Cancels the session.
    pub cancel: Option<AttachCancel>,
    /// Set once the socket is connected.
    pub ready: Option<AttachReady>,
}

impl AttachOptions {
    /// These options with `framing`.
    #[must_use]
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// These options with detach keys in podman's grammar.
    #[must_use]
    pub fn with_detach_keys(mut self, keys: impl Into<String>) -> Self {
        self.detach_keys = Some(keys.into());
        self
    }

    /// These options with a cancellation handle.
    #[must_use]
    pub fn with_cancel(mut self, cancel: AttachCancel) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// These options with a readiness handle.
    #[must_use]
    pub fn with_ready(mut self, ready: AttachReady) -> Self {
        self.ready = Some(ready);
        self
    }
}

/// How an attach session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachOutcome {
    /// The client typed the detach keys; the container keeps running.
    Detached,
    /// The container's output ended (it exited or closed its streams).
    StreamsEnded,
    /// The session was cancelled through [`AttachCancel`].
    Cancelled,
}

/// A terminal size in character cells. Every `u16` is accepted, as podman
/// forwards whatever size its client reports; a zero dimension means "not
/// known" (the terminal keeps reporting 0 for it and programs use their
/// default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    /// Rows (height).
    pub rows: u16,
    /// Columns (width).
    pub cols: u16,
}

impl TerminalSize {
    /// A size of `rows` by `cols`. It never fails: it returns a `Result`
    /// so that callers written when sizes were range-checked keep working.
    ///
    /// ```
    /// use runtime_api::TerminalSize;
    /// assert_eq!(TerminalSize::new(40, 120)?.rows, 40);
    /// assert_eq!(TerminalSize::new(0, u16::MAX)?.cols, u16::MAX);
    /// # Ok::<(), runtime_api::RuntimeError>(())
    /// ```
    pub fn new(rows: u16, cols: u16) -> Result<Self, RuntimeError> {
        Ok(Self { rows, cols })
    }
}
