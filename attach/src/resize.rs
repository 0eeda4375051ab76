//! Terminal resize (and log reopen) requests through conmon's control FIFO,
//! `<bundle>/ctl`.
//!
//! A control message is one line of three integers, `"TYPE H W\n"`: type 1
//! resizes the container's terminal to H rows and W columns, type 2 asks
//! conmon to reopen its log file. The FIFO is opened write-only and
//! non-blocking; until conmon has it open for reading, `open` fails with
//! `ENXIO`, and a FIFO offers no event for "a reader appeared", so the open
//! is retried with a short backoff until the caller's deadline. That retry
//! is the only polling loop in this crate. The line (far below `PIPE_BUF`)
//! is then written with a single atomic `write`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::Instant;

use crate::AttachError;

/// Control message type: resize the terminal.
const RESIZE_EVENT: u8 = 1;

/// Control line asking conmon to reopen its log file (type 2).
pub const REOPEN_LOG_LINE: &str = "2 0 0\n";

/// First delay between attempts to open the FIFO.
const FIRST_BACKOFF: Duration = Duration::from_millis(1);
/// Longest delay between attempts to open the FIFO.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// A terminal size in rows and columns, forwarded as podman forwards it:
/// any `u16` for either dimension. A zero dimension is passed on as is;
/// the terminal then reports it as unknown (`0` in `struct winsize`), which
/// programs read as "keep your default".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TerminalSize {
    rows: u16,
    cols: u16,
}

impl TerminalSize {
    /// A size of `rows` by `cols` character cells.
    ///
    /// ```
    /// use attach::TerminalSize;
    /// assert_eq!(TerminalSize::new(u16::MAX, 0).ctl_line(), "1 65535 0\n");
    /// ```
    pub fn new(rows: u16, cols: u16) -> TerminalSize {
        TerminalSize { rows, cols }
    }

    /// Number of rows (height).
    pub fn rows(self) -> u16 {
        self.rows
    }

    /// Number of columns (width).
    pub fn cols(self) -> u16 {
        self.cols
    }

    /// The control line for this size: `"1 {rows} {cols}\n"`.
    pub fn ctl_line(self) -> String {
        format!("{RESIZE_EVENT} {} {}\n", self.rows, self.cols)
    }
}

/// The control line asking conmon to reopen its log file: `"2 0 0\n"`.
pub fn reopen_log_line() -> &'static str {
    REOPEN_LOG_LINE
}

/// Asks conmon to resize the container's terminal by writing
/// `"1 {rows} {cols}\n"` to the control FIFO `ctl_path`
/// (`<bundle>/ctl`), waiting at most `limit` for conmon to have it open.
///
/// Relies on `SIGPIPE` being ignored (the Rust runtime does so for Rust
/// binaries) in the rare case conmon closes the FIFO between the open and
/// the write; that case is then reported as an `EPIPE` error.
///
/// # Errors
///
/// - [`AttachError::ControlUnavailable`]: `ctl_path` does not exist;
/// - [`AttachError::NotAFifo`]: it exists but is not a FIFO;
/// - [`AttachError::Timeout`]: no reader appeared, or the FIFO stayed full,
///   within `limit`;
/// - [`AttachError::Io`] / [`AttachError::ShortWrite`]: `open` or `write`
///   failed otherwise.
pub async fn resize(
    ctl_path: &Path,
    size: TerminalSize,
    limit: Duration,
) -> Result<(), AttachError> {
    write_ctl_line(ctl_path, &size.ctl_line(), limit).await
}

/// Asks conmon to reopen its log file by writing [`REOPEN_LOG_LINE`] to the
/// control FIFO, with the same waiting and errors as [`resize`].
///
/// # Errors
///
/// As [`resize`].
pub async fn reopen_log(ctl_path: &Path, limit: Duration) -> Result<(), AttachError> {
    write_ctl_line(ctl_path, REOPEN_LOG_LINE, limit).await
}

/// Opens the FIFO (retrying until a reader exists) and writes `line` once.
async fn write_ctl_line(ctl_path: &Path, line: &str, limit: Duration) -> Result<(), AttachError> {
    let deadline = deadline_after(limit);
    let file = open_when_read(ctl_path, deadline, limit).await?;
    let meta = file.metadata().map_err(|e| {
        AttachError::io(format!("inspecting control FIFO {}", ctl_path.display()), e)
    })?;
    if !meta.file_type().is_fifo() {
        return Err(AttachError::NotAFifo {
            path: ctl_path.to_path_buf(),
        });
    }
    let fd = register_writable(OwnedFd::from(file)).map_err(|e| {
        AttachError::io(
            format!("registering control FIFO {} with tokio", ctl_path.display()),
            e,
        )
    })?;
    let written = tokio::time::timeout_at(deadline, write_once(&fd, line.as_bytes()))
        .await
        .map_err(|_elapsed| AttachError::Timeout {
            what: format!("writing to control FIFO {}", ctl_path.display()),
            limit,
        })?
        .map_err(|e| {
            AttachError::io(format!("writing to control FIFO {}", ctl_path.display()), e)
        })?;
    if written != line.len() {
        return Err(AttachError::ShortWrite {
            path: ctl_path.to_path_buf(),
            written,
            len: line.len(),
        });
    }
    Ok(())
}

/// Opens `path` write-only and non-blocking, retrying while nobody has it
/// open for reading (`ENXIO`, or `EAGAIN`) until `deadline`.
///
/// This is a deliberate polling loop: a FIFO without a reader cannot be
/// watched for a reader appearing (no poll/inotify event for it), so the
/// open is retried with an exponential backoff from 1 ms up to 50 ms,
/// never sleeping past the deadline.
async fn open_when_read(
    path: &Path,
    deadline: Instant,
    limit: Duration,
) -> Result<File, AttachError> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path);
        let error = match attempt {
            Ok(file) => return Ok(file),
            Err(e) => e,
        };
        match error.raw_os_error() {
            Some(libc::ENXIO | libc::EAGAIN | libc::EINTR) => {}
            Some(libc::ENOENT) => {
                return Err(AttachError::ControlUnavailable {
                    path: path.to_path_buf(),
                    source: error,
                })
            }
            _ => {
                return Err(AttachError::io(
                    format!("opening control FIFO {}", path.display()),
                    error,
                ))
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(AttachError::Timeout {
                what: format!(
                    "waiting for conmon to open control FIFO {} for reading",
                    path.display()
                ),
                limit,
            });
        }
        tokio::time::sleep(backoff.min(deadline - now)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Writes `bytes` with one `write` once the FIFO has room.
async fn write_once(fd: &AsyncFd<OwnedFd>, bytes: &[u8]) -> io::Result<usize> {
    loop {
        let mut guard = fd.writable().await?;
        let attempt = guard.try_io(|fd| loop {
            match nix::unistd::write(fd.get_ref(), bytes) {
                Ok(n) => return Ok(n),
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(io::Error::from(errno)),
            }
        });
        match attempt {
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

/// Registers `fd` with the current tokio reactor for writability.
#[allow(unsafe_code)]
fn register_writable(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `OwnedFd` owns an open descriptor, always returns that same
    // number from `as_raw_fd`, and closes it only when dropped, which the
    // `AsyncFd` does after deregistering. Nothing else closes it meanwhile.
    let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::WRITABLE) };
    registered.map_err(io::Error::from)
}

/// `limit` from now; a limit too large to represent (`Duration::MAX`)
/// means no deadline in practice rather than a panic.
fn deadline_after(limit: std::time::Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(limit)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(100 * 365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_u16_size_is_forwarded() {
        for (rows, cols) in [
            (0, 0),
            (0, 80),
            (24, 0),
            (1, 1),
            (40, 120),
            (1001, 80),
            (24, u16::MAX),
        ] {
            let size = TerminalSize::new(rows, cols);
            assert_eq!((size.rows(), size.cols()), (rows, cols));
            assert_eq!(size.ctl_line(), format!("1 {rows} {cols}\n"));
        }
        assert_eq!(reopen_log_line(), "2 0 0\n");
    }
}
