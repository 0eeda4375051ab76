//! The system calls that fill a [`RecordBatch`](crate::RecordBatch): one
//! non-blocking receive into one window, or one `recvmmsg` into two, each
//! reporting the messages' full lengths (`MSG_TRUNC`) so that a record
//! longer than its window is seen, not silently cut.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{recv, MsgFlags};

use crate::batch::WindowLengths;

/// Receives into `first`, and into `second` when given, the messages ready
/// on `fd`, without waiting: `WouldBlock` when none was.
pub(crate) fn recv_into_windows(
    fd: &impl AsFd,
    first: &mut [u8],
    second: Option<&mut [u8]>,
) -> io::Result<WindowLengths> {
    match second {
        Some(second) => recv_two(fd, first, second),
        None => recv_one(fd, first).map(|first| WindowLengths {
            first,
            second: None,
        }),
    }
}

/// One non-blocking `recv` of a whole message into `buf`; returns its full
/// length (`MSG_TRUNC`), which exceeds `buf.len()` when its tail was lost.
fn recv_one(fd: &impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    recv(fd.as_fd().as_raw_fd(), buf, MsgFlags::MSG_TRUNC).map_err(io::Error::from)
}

/// Receives up to two ready messages, one into each window, in one
/// `recvmmsg` that does not wait; returns their full lengths (`MSG_TRUNC`),
/// `WouldBlock` when none was ready.
#[allow(unsafe_code)]
fn recv_two(fd: &impl AsFd, first: &mut [u8], second: &mut [u8]) -> io::Result<WindowLengths> {
    let mut iovecs = [first, second].map(|window| libc::iovec {
        iov_base: window.as_mut_ptr().cast(),
        iov_len: window.len(),
    });
    let mut headers: [libc::mmsghdr; 2] = [0, 1].map(|i| {
        // SAFETY: `msghdr` and `mmsghdr` are plain C structs for which all
        // zero bytes (null pointers, zero lengths) are a valid value.
        let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
        header.msg_hdr.msg_iov = &mut iovecs[i];
        header.msg_hdr.msg_iovlen = 1;
        header
    });
    // SAFETY: each header points at one iovec that describes one of the two
    // windows, both exclusively borrowed for this call; no address or
    // control buffer is given; the timeout is null.
    let received = unsafe {
        libc::recvmmsg(
            fd.as_fd().as_raw_fd(),
            headers.as_mut_ptr(),
            2,
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            std::ptr::null_mut(),
        )
    };
    match received {
        -1 => Err(io::Error::last_os_error()),
        1 => Ok(WindowLengths {
            first: headers[0].msg_len as usize,
            second: None,
        }),
        _ => Ok(WindowLengths {
            first: headers[0].msg_len as usize,
            second: Some(headers[1].msg_len as usize),
        }),
    }
}
