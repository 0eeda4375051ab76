//! The driver's end of conmon's start pipe: conmon blocks until it reads a
//! byte (or EOF) here, which gives the driver time to put conmon into its
//! cgroup first. Writing never raises `SIGPIPE`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{send, MsgFlags};

use crate::SyncPipeError;

/// The driver end of the start pipe (a socket, normally from
/// [`seqpacket_pair`](crate::seqpacket_pair)).
#[derive(Debug)]
pub struct StartSignal {
    fd: OwnedFd,
}

impl StartSignal {
    /// Wraps the driver end of the start socketpair.
    pub fn new(fd: OwnedFd) -> Self {
        StartSignal { fd }
    }

    /// Writes one `\0` byte with `MSG_NOSIGNAL` (no `SIGPIPE`), then closes
    /// the fd.
    ///
    /// # Errors
    ///
    /// [`SyncPipeError::PeerGone`] when the other end is closed;
    /// [`SyncPipeError::Io`] for other failures (e.g. the fd is not a
    /// socket).
    pub fn send(self) -> Result<(), SyncPipeError> {
        self.send_byte()
    }

    /// Same as [`StartSignal::send`], but keeps the fd: exec sessions send a
    /// second start byte later.
    ///
    /// # Errors
    ///
    /// As for [`StartSignal::send`].
    pub fn send_byte(&self) -> Result<(), SyncPipeError> {
        loop {
            match send(self.fd.as_raw_fd(), &[0], MsgFlags::MSG_NOSIGNAL) {
                Ok(1) => return Ok(()),
                Ok(_) => {
                    return Err(SyncPipeError::io(
                        "writing the start byte",
                        std::io::ErrorKind::WriteZero,
                    ))
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EPIPE | Errno::ECONNRESET | Errno::ECONNREFUSED | Errno::ENOTCONN) => {
                    return Err(SyncPipeError::PeerGone)
                }
                Err(errno) => return Err(SyncPipeError::io("writing the start byte", errno)),
            }
        }
    }

    /// Gives the fd back without writing anything.
    pub fn into_inner(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for StartSignal {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
