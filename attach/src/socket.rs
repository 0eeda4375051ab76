//! The client side of conmon's attach socket: connecting (including paths
//! too long for `sun_path`), receiving output records and sending input.
//!
//! The socket is `AF_UNIX`/`SOCK_SEQPACKET`, close-on-exec and non-blocking,
//! registered with tokio's reactor. [`AttachSocket`] can be used whole (all
//! methods take `&self`) or [`split`](AttachSocket::split) into an
//! [`AttachReader`] and an [`AttachWriter`] that live in different tasks and
//! share the descriptor through an `Arc`.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{
    connect, recv, send, setsockopt, shutdown, socket, sockopt, AddressFamily, MsgFlags, Shutdown,
    SockFlag, SockType, UnixAddr,
};
use nix::sys::time::TimeVal;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncWrite, Interest};

use crate::batch::RecordBatch;
use crate::batch_recv::recv_into_windows;
use crate::record::{AttachRecord, DecodedRecord, RECORD_BUFFER_LEN};
use crate::AttachError;

/// Size of `sockaddr_un.sun_path` on Linux, terminating NUL included. Paths
/// of this length or longer are reached through `/proc/self/fd`.
pub const SUN_PATH_LEN: usize = 108;

/// Largest chunk of input sent in one message.
///
/// Every `send` on a `SOCK_SEQPACKET` socket is one message and conmon reads
/// each with a single `recvfrom` into a fixed buffer (32 KiB - 1 in conmon
/// 2.1); a longer message would lose its tail. 8 KiB stays well below that
/// and below the socket send buffer.
pub const MAX_INPUT_CHUNK: usize = 8192;

/// Shared, reactor-registered socket.
type SharedFd = Arc<AsyncFd<OwnedFd>>;

/// Outcome of one `recv`: a decoded message, end of stream (`None`), or a
/// record too long for the buffer.
type Received = Result<Option<DecodedRecord>, AttachError>;

/// A connected attach socket.
///
/// All methods take `&self`, so one task may read while another writes; to
/// move the halves into separate tasks use [`split`](AttachSocket::split).
#[derive(Debug)]
pub struct AttachSocket {
    reader: AttachReader,
    writer: AttachWriter,
}

/// The receiving half of an attach socket: container output.
#[derive(Debug)]
pub struct AttachReader {
    fd: SharedFd,
    /// Receive buffer, locked only inside a non-blocking `recv` (never
    /// across an `.await`).
    buf: Mutex<Box<[u8]>>,
}

/// The sending half of an attach socket: container input.
///
/// Also implements [`AsyncWrite`] (each `poll_write` sends at most
/// [`MAX_INPUT_CHUNK`] bytes as one message; `poll_shutdown` shuts down the
/// write side), so it can be the output of
/// [`copy_detachable`](crate::copy_detachable).
#[derive(Debug, Clone)]
pub struct AttachWriter {
    fd: SharedFd,
}

impl AttachSocket {
    /// Connects to the attach socket at `path`, waiting at most `limit`.
    ///
    /// Paths of [`SUN_PATH_LEN`] bytes or more do not fit a `sockaddr_un`;
    /// for those the parent directory is opened with `O_PATH` and the
    /// socket is reached as `/proc/self/fd/<dirfd>/<file name>`.
    ///
    /// The `connect` itself runs on tokio's blocking pool with
    /// `SO_SNDTIMEO` set to `limit` (a Unix socket whose listener backlog
    /// is full makes `connect` wait, and a non-blocking `connect` would
    /// offer no readiness event to wait for), and the whole call is also
    /// wrapped in a `limit` timeout. Must be called within a tokio runtime
    /// with I/O and time enabled.
    ///
    /// # Errors
    ///
    /// - [`AttachError::SocketUnavailable`]: the socket or its directory
    ///   does not exist, or nobody listens (`ENOENT`, `ECONNREFUSED`);
    /// - [`AttachError::InvalidSocketPath`]: the path has no file name, has
    ///   a NUL byte, or is still too long;
    /// - [`AttachError::Timeout`]: not connected within `limit`;
    /// - [`AttachError::Connect`]: any other `connect`/`open` failure;
    /// - [`AttachError::Io`]: socket creation or registration failed.
    pub async fn connect(path: &Path, limit: Duration) -> Result<AttachSocket, AttachError> {
        let owned = path.to_path_buf();
        let task = tokio::task::spawn_blocking(move || connect_blocking(&owned, limit));
        let fd = match tokio::time::timeout(limit, task).await {
            Ok(Ok(connected)) => connected?,
            Ok(Err(join)) => {
                return Err(AttachError::io(
                    format!("connect task for {} failed", path.display()),
                    io::Error::other(join),
                ))
            }
            // The blocking task ends by itself within `limit` (SO_SNDTIMEO)
            // and closes its socket.
            Err(_elapsed) => return Err(connect_timeout(path, limit)),
        };
        AttachSocket::from_fd(fd)
    }

    /// Wraps an already connected `SOCK_SEQPACKET` socket (for example one
    /// end of a `socketpair`): makes it non-blocking and registers it with
    /// the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`AttachError::Io`] when `fcntl` fails or no tokio runtime with I/O
    /// enabled is current.
    pub fn from_fd(fd: OwnedFd) -> Result<AttachSocket, AttachError> {
        if let Err(e) = tokio::runtime::Handle::try_current() {
            return Err(AttachError::io(
                "AttachSocket must be created inside a tokio runtime",
                io::Error::other(e),
            ));
        }
        set_nonblocking(&fd)
            .map_err(|e| AttachError::io("making the attach socket non-blocking", e))?;
        let fd = register_read_write(fd)
            .map_err(|e| AttachError::io("registering the attach socket with tokio", e))?;
        let fd = Arc::new(fd);
        Ok(AttachSocket {
            reader: AttachReader {
                fd: Arc::clone(&fd),
                buf: Mutex::new(vec![0; RECORD_BUFFER_LEN].into_boxed_slice()),
            },
            writer: AttachWriter { fd },
        })
    }

    /// Receives the next output record; `None` once conmon closed the
    /// socket. See [`AttachReader::read_record`].
    ///
    /// # Errors
    ///
    /// As [`AttachReader::read_record`].
    pub async fn read_record(&self) -> Result<Option<AttachRecord>, AttachError> {
        self.reader.read_record().await
    }

    /// Receives every record that is ready, at least one. See
    /// [`AttachReader::read_batch`].
    ///
    /// # Errors
    ///
    /// As [`AttachReader::read_batch`].
    pub async fn read_batch(&self, batch: &mut RecordBatch) -> Result<usize, AttachError> {
        self.reader.read_batch(batch).await
    }

    /// Sends `data` to the container's stdin. See
    /// [`AttachWriter::write_all`].
    ///
    /// # Errors
    ///
    /// As [`AttachWriter::write_all`].
    pub async fn write_all(&self, data: &[u8]) -> Result<(), AttachError> {
        self.writer.write_all(data).await
    }

    /// Shuts down the sending side. See [`AttachWriter::shutdown_write`].
    ///
    /// # Errors
    ///
    /// As [`AttachWriter::shutdown_write`].
    pub fn shutdown_write(&self) -> Result<(), AttachError> {
        self.writer.shutdown_write()
    }

    /// Splits the socket into halves that can move to different tasks.
    /// The descriptor is closed when both are dropped.
    pub fn split(self) -> (AttachReader, AttachWriter) {
        (self.reader, self.writer)
    }
}

impl AsFd for AttachSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.reader.fd.get_ref().as_fd()
    }
}

impl AttachReader {
    /// Receives the next output record.
    ///
    /// Returns `Ok(None)` at end of stream (`recv` returned 0: conmon
    /// closed the connection, usually because the container exited).
    /// Records with a prefix other than 2 (stdout) or 3 (stderr) are
    /// dropped with a `tracing` warning and reading continues.
    ///
    /// Waits as long as the container is silent: bound it with
    /// `tokio::time::timeout` if needed. Cancel-safe: a record is either
    /// received whole or left in the socket.
    ///
    /// # Errors
    ///
    /// - [`AttachError::Io`]: `recv` failed.
    pub async fn read_record(&self) -> Result<Option<AttachRecord>, AttachError> {
        loop {
            let decoded = self.recv_message().await?;
            let Some(decoded) = decoded else {
                return Ok(None);
            };
            match decoded {
                DecodedRecord::Output(record) => return Ok(Some(record)),
                DecodedRecord::UnknownPrefix { prefix, len } => {
                    tracing::warn!(
                        prefix,
                        len,
                        "dropping attach record with unknown stream prefix"
                    );
                }
                // `recv_message` maps a zero-length message to `None`.
                DecodedRecord::Empty => return Ok(None),
            }
        }
    }

    /// Receives the records that are ready, waiting for the first one, into
    /// `batch` (replacing what it held); returns how many there are, 0 at
    /// end of stream.
    ///
    /// The records' payloads lie back to back in the batch's buffer, so a
    /// sink can take a whole run of one stream in one write
    /// ([`RecordBatch::runs`]); nothing is allocated. Each system call
    /// receives up to two records, and one that brings a single record
    /// shows the socket empty: while the container writes slower than
    /// this reads, every record costs one receive and no receive that would
    /// block. The batch stops when
    /// the socket has nothing more ready ([`RecordBatch::is_drained`]),
    /// at the end of the stream, or when its buffer is full. Records with
    /// a prefix other than 2 or 3 are dropped with a `tracing` warning.
    ///
    /// Waits as long as the container is silent. Cancel-safe: records are
    /// only taken from the socket when they are returned.
    ///
    /// # Errors
    ///
    /// - [`AttachError::Io`]: `recv` failed.
    /// - [`AttachError::RecordTooLong`]: a message was longer than
    ///   [`MAX_BATCH_RECORD`](crate::MAX_BATCH_RECORD) (conmon's records
    ///   are at most 8193 bytes); its tail is lost, and the next call
    ///   reads on.
    ///
    /// An error met after some records were received is returned by the
    /// next call, so those records are not lost (nor the one received in
    /// the same system call as a record too long).
    pub async fn read_batch(&self, batch: &mut RecordBatch) -> Result<usize, AttachError> {
        batch.clear();
        if let Some(e) = batch.take_deferred() {
            return Err(e);
        }
        loop {
            if batch.is_ended() {
                return Ok(0);
            }
            let mut guard = self.fd.readable().await.map_err(|e| {
                AttachError::io("waiting for the attach socket to become readable", e)
            })?;
            // `Err` means the last `recv` would block: readiness is cleared.
            let _ = guard.try_io(|fd| {
                batch.fill(|first, second| recv_into_windows(fd.get_ref(), first, second))
            });
            if !batch.is_empty() {
                return Ok(batch.len());
            }
            if let Some(e) = batch.take_deferred() {
                return Err(e);
            }
        }
    }

    /// Receives one message; `None` at end of stream.
    async fn recv_message(&self) -> Result<Option<DecodedRecord>, AttachError> {
        loop {
            let mut guard = self.fd.readable().await.map_err(|e| {
                AttachError::io("waiting for the attach socket to become readable", e)
            })?;
            let attempt = guard.try_io(|fd| self.recv_into_buffer(fd.get_ref().as_fd()));
            match attempt {
                Ok(Ok(received)) => return received,
                Ok(Err(e)) => {
                    return Err(AttachError::io("receiving from the attach socket", e));
                }
                // Spurious readiness: it was cleared, wait again.
                Err(_would_block) => continue,
            }
        }
    }

    /// One non-blocking `recv` into the shared buffer. The message is
    /// first peeked with `MSG_TRUNC`, which reports its full length, so that
    /// a record longer than the buffer grows the buffer and is received
    /// whole instead of losing its tail. The outer `Result` is for `try_io`
    /// (`WouldBlock` clears readiness).
    fn recv_into_buffer(&self, fd: BorrowedFd<'_>) -> io::Result<Received> {
        let mut buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        let peeked = recv_retrying(fd, &mut buf, MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC)?;
        if peeked > buf.len() {
            let mut bigger = vec![0; peeked].into_boxed_slice();
            std::mem::swap(&mut *buf, &mut bigger);
        }
        let len = recv_retrying(fd, &mut buf, MsgFlags::MSG_TRUNC)?;
        if len == 0 {
            return Ok(Ok(None));
        }
        // The peeked message is the one received: this reader is the only
        // one of the socket, and it holds the buffer's lock.
        let len = len.min(buf.len());
        Ok(Ok(Some(AttachRecord::decode(&buf[..len]))))
    }
}

/// `recv` on `fd`, retried on `EINTR`.
fn recv_retrying(fd: BorrowedFd<'_>, buf: &mut [u8], flags: MsgFlags) -> io::Result<usize> {
    loop {
        match recv(fd.as_raw_fd(), buf, flags) {
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(io::Error::from(errno)),
        }
    }
}

impl AsFd for AttachReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}

impl AttachWriter {
    /// Sends all of `data` to the container's stdin, as raw bytes (no
    /// prefix), in messages of at most [`MAX_INPUT_CHUNK`] bytes, waiting
    /// whenever the socket is full.
    ///
    /// Waits as long as conmon does not drain the socket: bound it with
    /// `tokio::time::timeout` if needed. Not cancel-safe: if cancelled, a
    /// prefix of `data` may have been sent.
    ///
    /// # Errors
    ///
    /// [`AttachError::Io`] when `send` fails; `EPIPE` (kind `BrokenPipe`)
    /// means conmon closed the connection. `MSG_NOSIGNAL` is used, so no
    /// `SIGPIPE` is raised.
    pub async fn write_all(&self, data: &[u8]) -> Result<(), AttachError> {
        let mut rest = data;
        while !rest.is_empty() {
            let sent = self.send_some(rest).await?;
            rest = &rest[sent..];
        }
        Ok(())
    }

    /// Sends one message of up to [`MAX_INPUT_CHUNK`] bytes of `data`.
    async fn send_some(&self, data: &[u8]) -> Result<usize, AttachError> {
        loop {
            let mut guard = self.fd.writable().await.map_err(|e| {
                AttachError::io("waiting for the attach socket to become writable", e)
            })?;
            match guard.try_io(|fd| send_chunk(fd.get_ref().as_fd(), data)) {
                Ok(Ok(sent)) => return Ok(sent),
                Ok(Err(e)) => return Err(AttachError::io("writing to the attach socket", e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Shuts down the sending side (`shutdown(SHUT_WR)`): the container
    /// sees end of file on stdin (unless conmon runs with
    /// `--leave-stdin-open`). Output can still be read.
    ///
    /// # Errors
    ///
    /// [`AttachError::Io`] when `shutdown` fails (e.g. `ENOTCONN` after the
    /// peer went away).
    pub fn shutdown_write(&self) -> Result<(), AttachError> {
        shutdown(self.fd.get_ref().as_raw_fd(), Shutdown::Write)
            .map_err(|e| AttachError::io("shutting down the attach socket's write side", e))
    }
}

impl AsFd for AttachWriter {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}

impl AttachWriter {
    /// Shared body of the two `AsyncWrite::poll_write` implementations.
    fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| send_chunk(fd.get_ref().as_fd(), buf)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    /// Shared body of the two `AsyncWrite::poll_shutdown` implementations.
    fn poll_shutdown_write(&self) -> Poll<io::Result<()>> {
        let result = shutdown(self.fd.get_ref().as_raw_fd(), Shutdown::Write);
        Poll::Ready(result.map_err(io::Error::from))
    }
}

impl AsyncWrite for AttachWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Every message is handed to the kernel by `poll_write`.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_shutdown_write()
    }
}

/// Writing through a shared reference, so a writer can be lent to
/// [`copy_detachable`](crate::copy_detachable) and used afterwards.
impl AsyncWrite for &AttachWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_shutdown_write()
    }
}

/// One non-blocking `send` of at most [`MAX_INPUT_CHUNK`] bytes.
fn send_chunk(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    let chunk = &data[..data.len().min(MAX_INPUT_CHUNK)];
    loop {
        match send(fd.as_raw_fd(), chunk, MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(io::Error::from(errno)),
        }
    }
}

/// Where to connect: the path itself, or `/proc/self/fd/<dirfd>/<name>`
/// with the directory kept open until `connect` returns.
struct Target {
    addr: UnixAddr,
    _dir: Option<std::fs::File>,
}

/// Builds the address for `path`, detouring through `/proc/self/fd` when
/// the path does not fit `sun_path`.
fn socket_target(path: &Path) -> Result<Target, AttachError> {
    let invalid = |reason: String| AttachError::InvalidSocketPath {
        path: path.to_path_buf(),
        reason,
    };
    if path.as_os_str().len() < SUN_PATH_LEN {
        let addr = UnixAddr::new(path).map_err(|e| invalid(e.desc().to_owned()))?;
        return Ok(Target { addr, _dir: None });
    }
    let name = path
        .file_name()
        .ok_or_else(|| invalid("a path longer than sun_path must end in a file name".into()))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(parent)
        .map_err(|e| classify_connect_error(path, e))?;
    let mut proc_path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    proc_path.push(name);
    let addr = UnixAddr::new(&proc_path)
        .map_err(|e| invalid(format!("{} (even as {})", e.desc(), proc_path.display())))?;
    Ok(Target {
        addr,
        _dir: Some(dir),
    })
}

/// Creates the socket and connects it, blocking at most about `limit`.
fn connect_blocking(path: &Path, limit: Duration) -> Result<OwnedFd, AttachError> {
    let target = socket_target(path)?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| AttachError::io("creating the attach socket", e))?;
    setsockopt(&fd, sockopt::SendTimeout, &send_timeout(limit))
        .map_err(|e| AttachError::io("setting SO_SNDTIMEO on the attach socket", e))?;
    let mut interrupted = false;
    loop {
        match connect(fd.as_raw_fd(), &target.addr) {
            Ok(()) => break,
            Err(Errno::EINTR) => interrupted = true,
            // A connect interrupted after it completed reports EISCONN on
            // the retry.
            Err(Errno::EISCONN) if interrupted => break,
            // SO_SNDTIMEO elapsed while the listener's backlog was full.
            Err(Errno::EAGAIN | Errno::EINPROGRESS) => return Err(connect_timeout(path, limit)),
            Err(errno) => return Err(classify_connect_error(path, io::Error::from(errno))),
        }
    }
    // Restore the default (no send timeout); sends are non-blocking anyway.
    setsockopt(&fd, sockopt::SendTimeout, &TimeVal::new(0, 0))
        .map_err(|e| AttachError::io("clearing SO_SNDTIMEO on the attach socket", e))?;
    Ok(fd)
}

/// `limit` as a `SO_SNDTIMEO` value; zero would mean "forever", so the
/// smallest positive value is used instead.
fn send_timeout(limit: Duration) -> TimeVal {
    let secs = i64::try_from(limit.as_secs()).unwrap_or(i64::MAX);
    let micros = i64::from(limit.subsec_micros());
    if secs == 0 && micros == 0 {
        TimeVal::new(0, 1)
    } else {
        TimeVal::new(secs, micros)
    }
}

/// `ENOENT`/`ECONNREFUSED` mean nobody is there; anything else is reported
/// as is.
fn classify_connect_error(path: &Path, source: io::Error) -> AttachError {
    match source.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            AttachError::SocketUnavailable {
                path: path.to_path_buf(),
                source,
            }
        }
        _ => AttachError::Connect {
            path: path.to_path_buf(),
            source,
        },
    }
}

fn connect_timeout(path: &Path, limit: Duration) -> AttachError {
    AttachError::Timeout {
        what: format!("connecting to attach socket {}", path.display()),
        limit,
    }
}

/// Adds `O_NONBLOCK` to the file status flags of `fd`.
fn set_nonblocking(fd: &OwnedFd) -> nix::Result<()> {
    let raw = fd.as_raw_fd();
    let flags = OFlag::from_bits_retain(fcntl(raw, FcntlArg::F_GETFL)?);
    fcntl(raw, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Registers `fd` with the current tokio reactor for reading and writing.
#[allow(unsafe_code)]
fn register_read_write(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `OwnedFd` owns an open descriptor, always returns that same
    // number from `as_raw_fd`, and closes it only when dropped, which the
    // `AsyncFd` does after deregistering. Nothing else closes it meanwhile.
    let registered =
        unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE | Interest::WRITABLE) };
    registered.map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limit_still_times_out() {
        assert_eq!(send_timeout(Duration::ZERO), TimeVal::new(0, 1));
        assert_eq!(
            send_timeout(Duration::from_millis(1500)),
            TimeVal::new(1, 500_000)
        );
    }

    #[test]
    fn short_paths_are_used_directly() {
        let target = socket_target(Path::new("/run/x/attach")).expect("fits");
        assert_eq!(target.addr.path(), Some(Path::new("/run/x/attach")));
        assert!(target._dir.is_none());
    }

    #[test]
    fn long_path_without_file_name_is_rejected() {
        let long = format!("/{}/..", "d".repeat(120));
        match socket_target(Path::new(&long)) {
            Err(AttachError::InvalidSocketPath { reason, .. }) => {
                assert!(reason.contains("file name"), "{reason}");
            }
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => panic!("accepted {long}"),
        }
    }

    #[test]
    fn long_path_with_missing_directory_is_unavailable() {
        let long = format!("/nonexistent-{}/attach", "d".repeat(120));
        match socket_target(Path::new(&long)) {
            Err(AttachError::SocketUnavailable { path, .. }) => {
                assert_eq!(path, Path::new(&long));
            }
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => panic!("accepted {long}"),
        }
    }
}
