//! The upgraded HTTP connection as the attach session's stdin reader and
//! output writer, available once hyper finishes the upgrade.

use super::*;

// ---------------------------------------------------------------------------
// The upgraded connection as attach streams

pub(crate) type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// A value that arrives once the connection is upgraded: the session is
/// set up (and connected to conmon) before the 101 is sent.
pub(crate) enum Pending<T> {
    Waiting(oneshot::Receiver<T>),
    Ready(T),
    Gone,
}

impl<T> Pending<T> {
    pub(crate) fn poll_get(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<&mut T>> {
        if let Self::Waiting(rx) = self {
            *self = match ready!(Pin::new(rx).poll(cx)) {
                Ok(value) => Self::Ready(value),
                Err(_) => Self::Gone,
            };
        }
        match self {
            Self::Ready(value) => Poll::Ready(Ok(value)),
            _ => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the client's connection was not upgraded",
            ))),
        }
    }
}

/// The client's side as the container's stdin.
pub(crate) struct ClientReader(pub(crate) Pending<ReadHalf<Upgraded>>);

impl AsyncRead for ClientReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let reader = ready!(self.0.poll_get(cx))?;
        Pin::new(reader).poll_read(cx, buf)
    }
}

/// The client's side as the output sink(s), shared so that the session's
/// end can still write an error and shut the connection down.
#[derive(Clone)]
pub(crate) struct ClientWriter(pub(crate) Arc<Mutex<Pending<WriteHalf<Upgraded>>>>);

impl ClientWriter {
    pub(crate) fn poll_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut WriteHalf<Upgraded>>, &mut Context<'_>) -> Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        let mut pending = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let writer = ready!(pending.poll_get(cx))?;
        op(Pin::new(writer), cx)
    }

    pub(crate) fn sink(&self) -> OutputStream {
        Box::pin(self.clone())
    }
}

impl AsyncWrite for ClientWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_with(cx, |w, cx| w.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_with(cx, |w, cx| w.poll_write_vectored(cx, bufs))
    }

    /// As the upgraded connection's, once there is one (the session then
    /// writes a batch's frame headers and payloads in one vectored write,
    /// without copying the payloads).
    fn is_write_vectored(&self) -> bool {
        match &*self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            Pending::Ready(writer) => writer.is_write_vectored(),
            _ => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_with(cx, |w, cx| w.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_with(cx, |w, cx| w.poll_shutdown(cx))
    }
}
