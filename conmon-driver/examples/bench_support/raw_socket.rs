//! The floor the attach benchmarks compare with: a minimal blocking client
//! of conmon's attach socket (`SOCK_SEQPACKET`; every record conmon sends
//! opens with one byte naming the stream), written against the socket
//! itself rather than the attach crate. Every call is bounded by the
//! socket's receive and send timeouts, so a stalled conmon fails the
//! benchmark instead of hanging it.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    connect, recv, send, setsockopt, shutdown, socket, sockopt, AddressFamily, MsgFlags, Shutdown,
    SockFlag, SockType, UnixAddr,
};
use nix::sys::time::TimeVal;

use super::usage::Usage;
use super::BoxError;

/// How long one `send` or `recv` may block.
pub const IO_LIMIT: Duration = Duration::from_secs(60);

/// The largest record of input conmon takes whole (the attach crate's
/// `AttachWriter` sends no larger ones either).
pub const INPUT_CHUNK: usize = attach::MAX_INPUT_CHUNK;

/// A blocking socket connected to the attach socket at `path`, its calls
/// bounded by [`IO_LIMIT`].
pub fn socket_connected(path: &Path) -> Result<OwnedFd, BoxError> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let limit = TimeVal::new(IO_LIMIT.as_secs() as _, 0);
    setsockopt(&fd, sockopt::ReceiveTimeout, &limit)?;
    setsockopt(&fd, sockopt::SendTimeout, &limit)?;
    connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(fd)
}

/// One `recv` into `buf`: the record's length with its prefix byte, 0 at
/// the end of the stream.
pub fn recv_record(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize, BoxError> {
    loop {
        match recv(fd.as_raw_fd(), buf, MsgFlags::empty()) {
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {
                return Err(format!("no record from conmon within {IO_LIMIT:?}").into())
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sends `data` in records of at most [`INPUT_CHUNK`] bytes.
pub fn send_chunked(fd: &OwnedFd, data: &[u8]) -> Result<(), BoxError> {
    for chunk in data.chunks(INPUT_CHUNK) {
        let mut sent = 0;
        while sent < chunk.len() {
            match send(fd.as_raw_fd(), &chunk[sent..], MsgFlags::empty()) {
                Ok(n) => sent += n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {
                    return Err(format!("conmon took no input within {IO_LIMIT:?}").into())
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Ends the input: conmon then closes the container's stdin.
pub fn close_input(fd: &OwnedFd) -> Result<(), BoxError> {
    shutdown(fd.as_raw_fd(), Shutdown::Write)?;
    Ok(())
}

/// Reads records into a 16 KiB buffer until the end of the stream;
/// returns the payload bytes (prefix bytes not counted) and the reading
/// thread's usage.
pub fn read_to_end(fd: OwnedFd) -> Result<(u64, Usage), BoxError> {
    let before = Usage::this_thread()?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = recv_record(&fd, &mut buf)?;
        if n == 0 {
            return Ok((total, Usage::this_thread()?.since(before)));
        }
        total += n as u64 - 1;
    }
}

/// Reads as [`read_to_end`] does and writes each payload into a pipe that
/// another thread drains: the floor plus the hop every client that prints
/// the output pays (the demo, podman).
pub fn read_into_pipe(fd: OwnedFd) -> Result<(u64, Usage), BoxError> {
    let before = Usage::this_thread()?;
    let (pipe_read, pipe_write) = nix::unistd::pipe()?;
    let drain = std::thread::spawn(move || -> Result<(u64, Usage), BoxError> {
        let before = Usage::this_thread()?;
        let mut pipe = std::fs::File::from(pipe_read);
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            match pipe.read(&mut buf)? {
                0 => return Ok((total, Usage::this_thread()?.since(before))),
                n => total += n as u64,
            }
        }
    });
    let mut pipe = std::fs::File::from(pipe_write);
    let mut buf = vec![0u8; 16 * 1024];
    let copied = loop {
        let n = match recv_record(&fd, &mut buf) {
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        if n == 0 {
            break Ok(());
        }
        if let Err(e) = pipe.write_all(&buf[1..n]) {
            break Err(e.into());
        }
    };
    // The drain ends once the write end is gone, error or not.
    drop(pipe);
    let usage = Usage::this_thread()?.since(before);
    let drained = drain.join().map_err(|_| "pipe drain panicked")?;
    copied?;
    let (total, drained) = drained?;
    Ok((total, usage.plus(drained)))
}
