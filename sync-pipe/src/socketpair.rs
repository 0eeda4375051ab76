//! Creation of the `AF_UNIX` `SOCK_SEQPACKET` socketpairs used for conmon's
//! sync, start and attach pipes. Both ends are close-on-exec, so neither
//! leaks into any child unless it is placed there on purpose with an
//! [`FdPlan`](crate::FdPlan).

use std::os::fd::OwnedFd;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use crate::SyncPipeError;

/// A `SOCK_SEQPACKET | SOCK_CLOEXEC` `AF_UNIX` socketpair: (parent end, child end).
///
/// The two ends are symmetric; the names only say which one the driver keeps
/// and which one it places in conmon. Both are blocking.
///
/// # Errors
///
/// [`SyncPipeError::Socket`] when the kernel refuses (e.g. `EMFILE`).
pub fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), SyncPipeError> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|errno| SyncPipeError::Socket(errno.into()))
}
