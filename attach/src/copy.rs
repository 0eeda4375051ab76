//! Copying a client's input to the container until it ends or the user
//! types the detach sequence.
//!
//! [`copy_detachable`] is a thin async loop around the pure
//! [`DetachMatcher`]: read a chunk, let the matcher decide what to forward,
//! write and flush that, stop on detach or end of input. The output is any
//! [`AsyncWrite`], usually an [`AttachWriter`](crate::AttachWriter).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::detach::{DetachKeys, DetachMatcher};
use crate::AttachError;

/// Read size of [`copy_detachable`]: several messages' worth
/// ([`MAX_INPUT_CHUNK`](crate::MAX_INPUT_CHUNK) each) when input comes fast.
const COPY_BUFFER_LEN: usize = 64 * 1024;

/// Why [`copy_detachable`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyOutcome {
    /// The detach sequence was read; it was not forwarded, and input after
    /// it in the same read was discarded.
    Detached,
    /// The input reached end of file; everything read was forwarded.
    InputClosed,
}

/// Copies `input` to `output` until the input ends or the detach sequence
/// `keys` appears.
///
/// The sequence is recognised whether it arrives in one read or spread over
/// several; it is never forwarded. Bytes that only looked like its start
/// are forwarded once the next byte rules it out (or when the input ends).
/// The output is flushed after every write so interactive input is not
/// delayed. The output is **not** shut down at the end: call
/// [`AttachWriter::shutdown_write`](crate::AttachWriter::shutdown_write) on
/// [`CopyOutcome::InputClosed`] if the container should see end of file.
///
/// # Errors
///
/// [`AttachError::Io`] when reading the input or writing the output fails.
pub async fn copy_detachable<R, W>(
    mut input: R,
    mut output: W,
    keys: &DetachKeys,
) -> Result<CopyOutcome, AttachError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut matcher = DetachMatcher::new(keys);
    let mut buf = vec![0u8; COPY_BUFFER_LEN];
    let mut bytes = Vec::with_capacity(COPY_BUFFER_LEN);
    loop {
        let n = match input.read(&mut buf).await {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(AttachError::io("reading attach input", e)),
        };
        if n == 0 {
            forward(&mut output, &matcher.finish()).await?;
            return Ok(CopyOutcome::InputClosed);
        }
        bytes.clear();
        let detached = matcher.feed_into(&buf[..n], &mut bytes);
        forward(&mut output, &bytes).await?;
        if detached {
            return Ok(CopyOutcome::Detached);
        }
    }
}

/// Writes and flushes `bytes` (nothing to do when empty).
async fn forward<W: AsyncWrite + Unpin>(output: &mut W, bytes: &[u8]) -> Result<(), AttachError> {
    if bytes.is_empty() {
        return Ok(());
    }
    output
        .write_all(bytes)
        .await
        .map_err(|e| AttachError::io("forwarding attach input", e))?;
    output
        .flush()
        .await
        .map_err(|e| AttachError::io("flushing attach input", e))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;

    use super::*;

    const P: u8 = 16;
    const Q: u8 = 17;

    /// Returns one chunk per read, then end of file.
    struct Chunks(VecDeque<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(chunk) = self.0.pop_front() {
                assert!(chunk.len() <= buf.remaining(), "test chunk too big");
                buf.put_slice(&chunk);
            }
            Poll::Ready(Ok(()))
        }
    }

    fn chunks(parts: &[&[u8]]) -> Chunks {
        Chunks(parts.iter().map(|p| p.to_vec()).collect())
    }

    #[tokio::test]
    async fn input_closed_forwards_everything() {
        let mut out = Vec::new();
        let outcome = copy_detachable(chunks(&[b"abc", b"def"]), &mut out, &DetachKeys::default())
            .await
            .expect("copy");
        assert_eq!(outcome, CopyOutcome::InputClosed);
        assert_eq!(out, b"abcdef");
    }

    #[tokio::test]
    async fn detach_in_one_read() {
        let mut out = Vec::new();
        let input = chunks(&[b"ls\n", &[b'x', P, Q, b'y'], b"never read"]);
        let outcome = copy_detachable(input, &mut out, &DetachKeys::default())
            .await
            .expect("copy");
        assert_eq!(outcome, CopyOutcome::Detached);
        assert_eq!(out, b"ls\nx");
    }

    #[tokio::test]
    async fn detach_split_across_reads() {
        let mut out = Vec::new();
        let input = chunks(&[&[b'a', P], &[Q]]);
        let outcome = copy_detachable(input, &mut out, &DetachKeys::default())
            .await
            .expect("copy");
        assert_eq!(outcome, CopyOutcome::Detached);
        assert_eq!(out, b"a");
    }

    #[tokio::test]
    async fn false_start_is_forwarded() {
        let mut out = Vec::new();
        let input = chunks(&[&[P], b"x"]);
        let outcome = copy_detachable(input, &mut out, &DetachKeys::default())
            .await
            .expect("copy");
        assert_eq!(outcome, CopyOutcome::InputClosed);
        assert_eq!(out, [P, b'x']);
    }

    #[tokio::test]
    async fn repeated_start_then_detach() {
        let mut out = Vec::new();
        let input = chunks(&[&[P], &[P], &[Q]]);
        let outcome = copy_detachable(input, &mut out, &DetachKeys::default())
            .await
            .expect("copy");
        assert_eq!(outcome, CopyOutcome::Detached);
        assert_eq!(out, [P]);
    }

    #[tokio::test]
    async fn pending_bytes_flushed_at_eof() {
        let mut out = Vec::new();
        let input = chunks(&[b"z", &[P]]);
        let outcome = copy_detachable(input, &mut out, &DetachKeys::default())
            .await
            .expect("copy");
        assert_eq!(outcome, CopyOutcome::InputClosed);
        assert_eq!(out, [b'z', P]);
    }

    #[tokio::test]
    async fn never_keys_forward_everything() {
        let mut out = Vec::new();
        let input = chunks(&[&[P, Q], b"end"]);
        let outcome = copy_detachable(input, &mut out, &DetachKeys::never())
            .await
            .expect("copy");
        assert_eq!(outcome, CopyOutcome::InputClosed);
        assert_eq!(out, [P, Q, b'e', b'n', b'd']);
    }

    #[tokio::test]
    async fn works_through_a_duplex_pipe() {
        let (mut client, server) = tokio::io::duplex(64);
        let (mut sink_read, sink_write) = tokio::io::duplex(64);
        let copier = tokio::spawn(async move {
            copy_detachable(server, sink_write, &DetachKeys::default()).await
        });
        client.write_all(b"hi").await.expect("write");
        let mut got = [0u8; 2];
        sink_read.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"hi");
        client.write_all(&[P, Q]).await.expect("write");
        let outcome = copier.await.expect("join").expect("copy");
        assert_eq!(outcome, CopyOutcome::Detached);
    }

    /// A writer that always fails.
    struct Broken;

    impl AsyncWrite for Broken {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn write_errors_are_reported() {
        let err = copy_detachable(chunks(&[b"x"]), Broken, &DetachKeys::default())
            .await
            .expect_err("broken output");
        assert!(err.to_string().contains("forwarding attach input"), "{err}");
    }
}
