//! Reading conmon's status records from the parent end of the sync
//! socketpair without blocking a tokio worker: the socket is switched to
//! non-blocking mode and registered with tokio's reactor, and every wait is
//! bounded by a caller-chosen limit.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{recv, MsgFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::record::{parse_sync_record, SyncRecord, MAX_RECORD_LEN};
use crate::SyncPipeError;

/// Async reader over the parent end of the sync socketpair (tokio
/// `AsyncFd`, non-blocking). One `recv` = one record (`SOCK_SEQPACKET`).
#[derive(Debug)]
pub struct SyncReader {
    fd: AsyncFd<OwnedFd>,
    buf: Box<[u8]>,
}

impl SyncReader {
    /// Takes the parent end of the sync socketpair, sets `O_NONBLOCK` on it
    /// and registers it with the current tokio runtime.
    ///
    /// The runtime needs its I/O and time drivers enabled
    /// (`Builder::enable_all`, or `#[tokio::main]`/`#[tokio::test]`).
    ///
    /// # Errors
    ///
    /// [`SyncPipeError::Io`] when called outside a tokio runtime, or when
    /// `fcntl` or the registration fails.
    pub fn new(fd: OwnedFd) -> Result<Self, SyncPipeError> {
        if let Err(e) = tokio::runtime::Handle::try_current() {
            return Err(SyncPipeError::io(
                "SyncReader::new must be called inside a tokio runtime",
                io::Error::other(e),
            ));
        }
        set_nonblocking(&fd)?;
        let fd = register_readable(fd)
            .map_err(|e| SyncPipeError::io("registering the sync pipe with tokio", e))?;
        Ok(SyncReader {
            fd,
            buf: vec![0; MAX_RECORD_LEN].into_boxed_slice(),
        })
    }

    /// Waits for the next record at most `limit`.
    ///
    /// Cancel-safe: a record is either received whole or left in the
    /// socket.
    ///
    /// # Errors
    ///
    /// - [`SyncPipeError::Eof`]: the peer closed the pipe with nothing
    ///   written (`recv` returned 0);
    /// - [`SyncPipeError::Garbage`] / [`SyncPipeError::Oversized`]: the
    ///   record could not be parsed (the record is consumed);
    /// - [`SyncPipeError::Timeout`]: nothing arrived within `limit`;
    /// - [`SyncPipeError::Io`]: `recv` failed.
    pub async fn read_record(&mut self, limit: Duration) -> Result<SyncRecord, SyncPipeError> {
        let len = match tokio::time::timeout(limit, self.recv_one()).await {
            Ok(received) => received?,
            Err(_elapsed) => return Err(SyncPipeError::Timeout { limit }),
        };
        if len == 0 {
            return Err(SyncPipeError::Eof);
        }
        if len > self.buf.len() {
            return Err(SyncPipeError::Oversized { len });
        }
        parse_sync_record(&self.buf[..len])
    }

    /// Receives one message into `self.buf`; returns its full length (which
    /// may exceed the buffer: `MSG_TRUNC` reports the real size).
    async fn recv_one(&mut self) -> Result<usize, SyncPipeError> {
        loop {
            let mut guard = self.fd.readable().await.map_err(|e| {
                SyncPipeError::io("waiting for the sync pipe to become readable", e)
            })?;
            let buf = &mut self.buf;
            let attempt = guard.try_io(|fd| loop {
                match recv(fd.get_ref().as_raw_fd(), buf, MsgFlags::MSG_TRUNC) {
                    Ok(n) => return Ok(n),
                    Err(Errno::EINTR) => continue,
                    Err(errno) => return Err(io::Error::from(errno)),
                }
            });
            match attempt {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) => {
                    return Err(SyncPipeError::io("reading a record from the sync pipe", e))
                }
                // Spurious readiness: readiness was cleared, wait again.
                Err(_would_block) => continue,
            }
        }
    }

    /// Gives the socket back (still in non-blocking mode).
    pub fn into_inner(self) -> OwnedFd {
        self.fd.into_inner()
    }
}

impl AsFd for SyncReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}

/// Adds `O_NONBLOCK` to the file status flags of `fd`.
fn set_nonblocking(fd: &OwnedFd) -> Result<(), SyncPipeError> {
    let raw = fd.as_raw_fd();
    let flags = fcntl(raw, FcntlArg::F_GETFL)
        .map_err(|e| SyncPipeError::io("reading the sync pipe's file status flags", e))?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(raw, FcntlArg::F_SETFL(flags))
        .map_err(|e| SyncPipeError::io("making the sync pipe non-blocking", e))?;
    Ok(())
}

/// Registers `fd` with the current tokio reactor for readability.
#[allow(unsafe_code)]
fn register_readable(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `OwnedFd` owns an open descriptor, always returns that same
    // number from `as_raw_fd`, and closes it only when dropped, which the
    // `AsyncFd` does after deregistering. Nothing else closes it meanwhile.
    let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
    registered.map_err(io::Error::from)
}
