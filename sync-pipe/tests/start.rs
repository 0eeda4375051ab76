//! `StartSignal` over real sockets: the byte arrives, the fd is closed
//! after `send`, and a vanished peer is an error, never a `SIGPIPE`.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::signal::Signal;
use nix::sys::socket::{recv, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use sync_pipe::{seqpacket_pair, StartSignal, SyncPipeError};

fn stream_pair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap()
}

#[test]
fn peer_reads_one_zero_byte_then_eof() {
    let (driver, conmon) = seqpacket_pair().unwrap();
    StartSignal::new(driver).send().unwrap();
    let mut buf = [0xffu8; 16];
    let n = recv(conmon.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
    assert_eq!(&buf[..n], &[0]);
    // `send` consumed the signal and closed the driver's end.
    assert_eq!(
        recv(conmon.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap(),
        0
    );
}

#[test]
fn send_byte_keeps_the_fd_for_a_second_byte() {
    let (driver, conmon) = seqpacket_pair().unwrap();
    let signal = StartSignal::new(driver);
    signal.send_byte().unwrap();
    signal.send_byte().unwrap();
    let mut buf = [0xffu8; 16];
    for _ in 0..2 {
        let n = recv(conmon.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
        assert_eq!(&buf[..n], &[0]);
    }
    drop(signal);
    assert_eq!(
        recv(conmon.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap(),
        0
    );
}

#[test]
fn peer_gone_on_seqpacket() {
    let (driver, conmon) = seqpacket_pair().unwrap();
    drop(conmon);
    let err = StartSignal::new(driver).send().unwrap_err();
    assert!(matches!(err, SyncPipeError::PeerGone), "{err:?}");
}

#[test]
fn peer_gone_on_stream() {
    let (driver, conmon) = stream_pair();
    drop(conmon);
    let err = StartSignal::new(driver).send().unwrap_err();
    assert!(matches!(err, SyncPipeError::PeerGone), "{err:?}");
}

#[test]
fn not_a_socket_is_an_io_error() {
    let (_r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let err = StartSignal::new(w).send().unwrap_err();
    assert!(matches!(err, SyncPipeError::Io { .. }), "{err:?}");
}

/// Runs `body` in a forked child whose `SIGPIPE` disposition is the default
/// (terminate), and returns how the child ended. `body` must only make
/// async-signal-safe calls; its return value is the exit status.
#[allow(unsafe_code)]
fn in_child_with_default_sigpipe(body: impl FnOnce() -> i32) -> WaitStatus {
    // SAFETY: the child runs only `signal`, the socket calls in `body` and
    // `_exit`, all async-signal-safe; it never returns into the test
    // harness, and no memory is allocated or freed there.
    match unsafe { nix::unistd::fork() }.unwrap() {
        ForkResult::Child => unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::_exit(body())
        },
        ForkResult::Parent { child } => wait_for(child),
    }
}

fn wait_for(child: Pid) -> WaitStatus {
    waitpid(child, None).unwrap()
}

#[test]
fn a_plain_write_would_be_killed_by_sigpipe() {
    // The control for the test below: with the default disposition, writing
    // to a stream socket whose peer is gone kills the writer.
    let (driver, conmon) = stream_pair();
    drop(conmon);
    let fd = driver.as_raw_fd();
    let status = in_child_with_default_sigpipe(|| {
        let _ = nix::unistd::write(unsafe_borrow(fd), &[0]);
        0
    });
    assert!(
        matches!(status, WaitStatus::Signaled(_, Signal::SIGPIPE, _)),
        "{status:?}"
    );
}

#[test]
fn start_signal_never_raises_sigpipe() {
    for (driver, conmon) in [stream_pair(), seqpacket_pair().unwrap()] {
        drop(conmon);
        let signal = StartSignal::new(driver);
        let status = in_child_with_default_sigpipe(|| match signal.send_byte() {
            Err(SyncPipeError::PeerGone) => 0,
            _ => 1,
        });
        assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    }
}

/// Borrows a raw fd that the caller keeps open.
#[allow(unsafe_code)]
fn unsafe_borrow<'a>(fd: std::os::fd::RawFd) -> std::os::fd::BorrowedFd<'a> {
    // SAFETY: only used in a forked child on an fd owned by the parent's
    // still-live `OwnedFd`, which that child never closes.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}
