//! An [`AsyncWrite`] whose bytes a thread of its own writes with blocking
//! calls: for a process's stdout and stderr in an attach client.
//!
//! Why a thread and not tokio's `Stdout` or an `AsyncFd`: tokio's `Stdout`
//! hands every `write` to the blocking pool and waits for it before taking
//! the next, a round trip between threads per record of output. An
//! `AsyncFd` needs `O_NONBLOCK`, a flag of the open file description that
//! the shell and every other process holding the same terminal or pipe
//! would then see too (their blocking reads and writes start failing with
//! `EAGAIN`), and `epoll` refuses regular files, where stdout is often
//! redirected. One thread per output, writing whatever piled up while it
//! was busy in one call, has neither problem: the async side only copies
//! into a buffer and at most wakes the thread.

use std::io::{self, Write};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread;

use tokio::io::AsyncWrite;

/// Bytes [`WriterThread`] accepts before `poll_write` waits for the thread.
pub const WRITER_THREAD_BUFFER: usize = 1024 * 1024;

#[derive(Debug, Default)]
struct State {
    /// Accepted, not yet taken by the thread.
    pending: Vec<u8>,
    /// The thread is writing bytes it took.
    busy: bool,
    /// The thread waits for bytes.
    idle: bool,
    /// The first write error; every later call reports it.
    error: Option<(io::ErrorKind, String)>,
    /// No more bytes will come: the thread ends once `pending` is written.
    closing: bool,
    /// The thread has ended.
    finished: bool,
    /// The task waiting for room, a flush or the end.
    waker: Option<Waker>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    work: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes to a blocking [`Write`] (typically a duplicate of the stdout or
/// stderr descriptor as a `File`) from a dedicated thread.
///
/// `poll_write` copies into a buffer of up to [`WRITER_THREAD_BUFFER`]
/// bytes and returns at once (it waits only when the buffer is full); the
/// thread takes everything buffered at each turn and writes it with one
/// `write_all`. `poll_flush` waits until the thread has written everything
/// accepted so far; `poll_shutdown` does the same and ends the thread.
/// Dropping the writer lets the thread write what it still holds and end.
///
/// A write error (for example `EPIPE` once the reader of a pipe is gone)
/// is reported by the next call, and by every call after it.
///
/// ```no_run
/// use std::os::fd::AsFd;
///
/// use attach::WriterThread;
/// use tokio::io::AsyncWriteExt;
///
/// # async fn demo() -> std::io::Result<()> {
/// let stdout = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
/// let mut out = WriterThread::spawn("stdout-writer", stdout)?;
/// out.write_all(b"hello\n").await?;
/// out.flush().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct WriterThread {
    shared: Arc<Shared>,
}

impl WriterThread {
    /// Starts a thread named `name` that writes to `inner`.
    ///
    /// # Errors
    ///
    /// The error of [`std::thread::Builder::spawn`].
    pub fn spawn<W: Write + Send + 'static>(name: &str, inner: W) -> io::Result<WriterThread> {
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || write_loop(&theirs, inner))?;
        Ok(WriterThread { shared })
    }
}

/// The thread: take whatever is pending, write it, repeat; wake the task
/// after each write (it may wait for room or a flush).
fn write_loop<W: Write>(shared: &Shared, mut inner: W) {
    let mut taken = Vec::new();
    let mut state = shared.lock();
    loop {
        if state.pending.is_empty() {
            if state.closing || state.error.is_some() {
                break;
            }
            state.idle = true;
            state = shared
                .work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.idle = false;
            continue;
        }
        std::mem::swap(&mut taken, &mut state.pending);
        state.busy = true;
        drop(state);
        let written = inner.write_all(&taken).and_then(|()| inner.flush());
        taken.clear();
        state = shared.lock();
        state.busy = false;
        if let Err(e) = written {
            state.error = Some((e.kind(), e.to_string()));
            state.pending.clear();
        }
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }
    state.finished = true;
    if let Some(waker) = state.waker.take() {
        waker.wake();
    }
}

fn error_of(state: &State) -> Option<io::Error> {
    state
        .error
        .as_ref()
        .map(|(kind, message)| io::Error::new(*kind, message.clone()))
}

impl WriterThread {
    /// Ready once nothing accepted is left unwritten (and, with `end`, the
    /// thread has ended).
    fn poll_written(&self, cx: &mut Context<'_>, end: bool) -> Poll<io::Result<()>> {
        let mut state = self.shared.lock();
        if let Some(e) = error_of(&state) {
            return Poll::Ready(Err(e));
        }
        if end && !state.closing {
            state.closing = true;
            self.shared.work.notify_one();
        }
        let done = if end {
            state.finished
        } else {
            state.pending.is_empty() && !state.busy
        };
        if done {
            Poll::Ready(Ok(()))
        } else {
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

impl AsyncWrite for WriterThread {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut state = self.shared.lock();
        if let Some(e) = error_of(&state) {
            return Poll::Ready(Err(e));
        }
        if state.closing {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "writer thread already shut down",
            )));
        }
        let room = WRITER_THREAD_BUFFER.saturating_sub(state.pending.len());
        if room == 0 && !buf.is_empty() {
            state.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(room);
        state.pending.extend_from_slice(&buf[..n]);
        // A busy thread looks for more when its write returns.
        if state.idle && n > 0 {
            self.shared.work.notify_one();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_written(cx, false)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_written(cx, true)
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closing = true;
        state.waker = None;
        self.shared.work.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// Collects writes; fails with `BrokenPipe` once `fail_after` bytes
    /// were written, when set.
    #[derive(Clone, Default)]
    struct Recorder {
        bytes: Arc<Mutex<Vec<u8>>>,
        fail_after: Option<usize>,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut bytes = self.bytes.lock().unwrap();
            if self.fail_after.is_some_and(|limit| bytes.len() >= limit) {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn everything_arrives_in_order_and_flush_waits_for_it() {
        let recorder = Recorder::default();
        let mut writer = WriterThread::spawn("test-writer", recorder.clone()).unwrap();
        let data: Vec<u8> = (0..3 * WRITER_THREAD_BUFFER as u32)
            .map(|i| (i % 253) as u8)
            .collect();
        for chunk in data.chunks(8191) {
            writer.write_all(chunk).await.unwrap();
        }
        writer.flush().await.unwrap();
        assert!(*recorder.bytes.lock().unwrap() == data);
        writer.write_all(b"tail").await.unwrap();
        writer.shutdown().await.unwrap();
        assert!(recorder.bytes.lock().unwrap().ends_with(b"tail"));
        assert!(writer.write_all(b"late").await.is_err());
    }

    #[tokio::test]
    async fn write_errors_are_reported_and_sticky() {
        let recorder = Recorder {
            fail_after: Some(0),
            ..Recorder::default()
        };
        let mut writer = WriterThread::spawn("test-writer", recorder).unwrap();
        writer.write_all(b"x").await.unwrap();
        let err = writer.flush().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(
            writer.write_all(b"y").await.unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }

    #[tokio::test]
    async fn dropping_writes_what_was_accepted() {
        let (read, write) = nix::unistd::pipe().unwrap();
        let mut writer = WriterThread::spawn("test-writer", std::fs::File::from(write)).unwrap();
        writer.write_all(b"kept").await.unwrap();
        drop(writer);
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(read), &mut got).unwrap();
        assert_eq!(got, b"kept");
    }
}
