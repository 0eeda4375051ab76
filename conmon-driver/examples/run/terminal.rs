//! The local terminal's side of a session: raw mode for `-it` (restored
//! when the guard is dropped, on every way out), the window size and its
//! changes, and the writers that carry the container's output to the local
//! stdout and stderr.

use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use attach::WriterThread;
use conmon_driver::ConmonRuntime;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use runtime_api::{ContainerDescription, OciRuntime, OutputStream, RuntimeError, TerminalSize};

/// The local terminal in raw mode; dropping it restores the saved settings.
pub(crate) struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    /// Saves the settings of the terminal on stdin and makes it raw.
    pub(crate) fn enter() -> Result<Self, RuntimeError> {
        let io = |e: nix::Error| RuntimeError::io("putting the terminal in raw mode", e.into());
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).map_err(io)?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).map_err(io)?;
        Ok(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Err(e) = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved) {
            tracing::warn!(error = %e, "restoring the terminal settings");
        }
    }
}

/// The size of the local terminal: the one on stdin, else the one on
/// stdout; `None` without a terminal or with an unusable size (0x0).
pub(crate) fn local_terminal_size() -> Option<TerminalSize> {
    let size = if std::io::stdin().is_terminal() {
        rustix::termios::tcgetwinsize(std::io::stdin())
    } else if std::io::stdout().is_terminal() {
        rustix::termios::tcgetwinsize(std::io::stdout())
    } else {
        return None;
    };
    let size = size.ok()?;
    TerminalSize::new(size.ws_row, size.ws_col).ok()
}

/// A sink writing to the local stdout or stderr (`fd`) from a thread of its
/// own, in large blocking writes: tokio's `Stdout` would hand every write
/// to the blocking pool and wait for it, a round trip between threads per
/// chunk of output, and a non-blocking descriptor would change the flags
/// of a file description the shell shares.
pub(crate) fn local_output(name: &str, fd: BorrowedFd<'_>) -> Result<OutputStream, RuntimeError> {
    let io = |e| RuntimeError::io(format!("setting up the {name}"), e);
    let file = std::fs::File::from(fd.try_clone_to_owned().map_err(io)?);
    Ok(Box::pin(WriterThread::spawn(name, file).map_err(io)?))
}

/// Resizes the container's terminal to the local one's at each SIGWINCH.
pub(crate) async fn forward_resizes(
    runtime: Arc<ConmonRuntime>,
    container: ContainerDescription,
    mut winch: tokio::signal::unix::Signal,
) {
    while winch.recv().await.is_some() {
        let Some(size) = local_terminal_size() else {
            continue;
        };
        // The container may be gone already; the session's end reports it.
        if let Err(e) = runtime.resize_terminal(&container, size).await {
            tracing::debug!(error = %e, "forwarding a terminal resize");
        }
    }
}
