//! Running an external command bounded by a time limit.
//!
//! [`run_bounded`] is how this crate (and its callers) run short runtime
//! commands such as `runc state ID`: stdin is `/dev/null`, stdout and stderr
//! are read concurrently (reading one to its end first can deadlock a child
//! that fills the other pipe), each captured stream is capped, and when the
//! limit passes the child is killed and reaped before the error is returned.

use std::ffi::OsStr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::error::ProbeError;

/// The most bytes kept from each of stdout and stderr. Output past this is
/// read and discarded, so the child never blocks on a full pipe.
pub const OUTPUT_CAP: usize = 16 * 1024 * 1024;

/// What a finished command produced.
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    /// How the command ended.
    pub status: ExitStatus,
    /// Its standard output, at most [`OUTPUT_CAP`] bytes.
    pub stdout: Vec<u8>,
    /// Its standard error, at most [`OUTPUT_CAP`] bytes.
    pub stderr: Vec<u8>,
}

impl CapturedOutput {
    /// Standard error as text: invalid UTF-8 replaced, surrounding
    /// whitespace trimmed.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_owned()
    }

    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// Runs `cmd` to completion, waiting at most `limit`.
///
/// The child gets stdin from `/dev/null` and piped stdout and stderr
/// (overriding whatever `cmd` had set), and is killed if the returned future
/// is dropped. Both pipes are read concurrently with waiting for the child.
///
/// # Errors
///
/// - [`ProbeError::Spawn`] when the program cannot be started.
/// - [`ProbeError::Timeout`] when `limit` passes first; the child has then
///   been sent `SIGKILL` and reaped (or, stuck in the kernel, left to tokio
///   to reap after a bounded wait).
/// - [`ProbeError::Io`] when reading a pipe or waiting for the child fails.
///
/// Once the child exited, its pipes are read for at most half a second
/// more: a grandchild that inherited them (a daemon it started) cannot turn
/// a finished command into a timeout, and the output read so far is kept.
///
/// A non-zero exit status is not an error here: look at
/// [`CapturedOutput::status`].
pub async fn run_bounded(mut cmd: Command, limit: Duration) -> Result<CapturedOutput, ProbeError> {
    let command = render_command(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| ProbeError::Spawn {
        command: command.clone(),
        source,
    })?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let deadline = crate::pid::deadline_after(limit);
    let (mut out, mut err) = (Vec::new(), Vec::new());

    let ended = {
        let reads = std::pin::pin!(async {
            tokio::join!(
                read_capped(stdout, &mut out, OUTPUT_CAP),
                read_capped(stderr, &mut err, OUTPUT_CAP),
            )
        });
        wait_and_drain(&mut child, reads, deadline).await
    };

    match ended {
        Some((status, reads)) => {
            let status =
                status.map_err(|e| ProbeError::io(format!("waiting for `{command}`"), e))?;
            if let Some((read_out, read_err)) = reads {
                read_out
                    .map_err(|e| ProbeError::io(format!("reading stdout of `{command}`"), e))?;
                read_err
                    .map_err(|e| ProbeError::io(format!("reading stderr of `{command}`"), e))?;
            }
            Ok(CapturedOutput {
                status,
                stdout: out,
                stderr: err,
            })
        }
        None => {
            // `start_kill` fails only when the child was already reaped, in
            // which case there is nothing left to kill. Reaping is bounded
            // too: a child stuck in the kernel must not hang the caller
            // (tokio reaps it later).
            let _ = child.start_kill();
            let _ = tokio::time::timeout(REAP_AFTER_KILL, child.wait()).await;
            Err(ProbeError::Timeout { command, limit })
        }
    }
}

/// How long a killed child is awaited after a timeout.
const REAP_AFTER_KILL: Duration = Duration::from_secs(5);

/// How long the output pipes are still read once the child exited. A
/// grandchild that inherited them (a daemon the command started) may hold
/// them open indefinitely; the command's own output is in them by then.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

type Reads = (std::io::Result<()>, std::io::Result<()>);

/// Waits for the child's exit and its pipes' end until `deadline`. `None`
/// when the deadline passed before the child exited. When the child exited
/// but its pipes stay open past [`DRAIN_AFTER_EXIT`], the reads are given
/// up (`Some((status, None))`) and what they read so far is kept.
async fn wait_and_drain(
    child: &mut tokio::process::Child,
    mut reads: std::pin::Pin<&mut impl std::future::Future<Output = Reads>>,
    deadline: tokio::time::Instant,
) -> Option<(std::io::Result<std::process::ExitStatus>, Option<Reads>)> {
    let mut finished_reads = None;
    let status = loop {
        tokio::select! {
            done = reads.as_mut(), if finished_reads.is_none() => finished_reads = Some(done),
            status = child.wait() => break status,
            () = tokio::time::sleep_until(deadline) => return None,
        }
    };
    if finished_reads.is_none() {
        let drain = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(DRAIN_AFTER_EXIT);
        finished_reads = tokio::time::timeout(drain, reads.as_mut()).await.ok();
    }
    Some((status, finished_reads))
}

/// Reads `reader` to its end into `kept`, keeping at most `cap` bytes and
/// discarding the rest. A missing reader reads nothing.
///
/// The kept bytes go straight into `kept`, which grows with what arrives:
/// runtime commands print a few hundred bytes, and many of them run at
/// once, so no fixed read buffer is allocated per stream. Only output past
/// the cap goes through a scratch buffer, to be dropped.
async fn read_capped<R: AsyncRead + Unpin>(
    reader: Option<R>,
    kept: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<()> {
    let Some(mut reader) = reader else {
        return Ok(());
    };
    let cap = u64::try_from(cap).unwrap_or(u64::MAX);
    (&mut reader).take(cap).read_to_end(kept).await?;
    tokio::io::copy(&mut reader, &mut tokio::io::sink()).await?;
    Ok(())
}

/// Renders a command line for messages: the program, then each argument,
/// single-quoted for a POSIX shell where needed.
///
/// ```
/// let mut cmd = tokio::process::Command::new("runc");
/// cmd.args(["--root", "/run/my runc", "state", "abc"]);
/// assert_eq!(
///     state_probe::render_command(&cmd),
///     "runc --root '/run/my runc' state abc"
/// );
/// ```
pub fn render_command(cmd: &Command) -> String {
    let std_cmd = cmd.as_std();
    std::iter::once(std_cmd.get_program())
        .chain(std_cmd.get_args())
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes one word for a POSIX shell, leaving words made only of safe
/// characters as they are.
fn shell_quote(word: &OsStr) -> String {
    let text = word.to_string_lossy();
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote(OsStr::new("abc-1.2/x")), "abc-1.2/x");
        assert_eq!(shell_quote(OsStr::new("")), "''");
        assert_eq!(shell_quote(OsStr::new("a b")), "'a b'");
        assert_eq!(shell_quote(OsStr::new("it's")), r"'it'\''s'");
        assert_eq!(shell_quote(OsStr::new("$HOME")), "'$HOME'");
    }

    #[test]
    fn render_program_and_args() {
        let mut cmd = Command::new("/usr/sbin/runc");
        cmd.args(["--log-format=json", "state", "a;b"]);
        assert_eq!(
            render_command(&cmd),
            "/usr/sbin/runc --log-format=json state 'a;b'"
        );
    }

    #[test]
    fn stderr_text_is_lossy_and_trimmed() {
        use std::os::unix::process::ExitStatusExt;
        let out = CapturedOutput {
            status: ExitStatus::from_raw(0),
            stdout: Vec::new(),
            stderr: b"  bad \xff byte\n".to_vec(),
        };
        assert_eq!(out.stderr_text(), "bad \u{fffd} byte");
        assert!(out.success());
    }

    #[tokio::test]
    async fn read_capped_discards_past_cap() -> std::io::Result<()> {
        let data: &[u8] = &[7u8; 1000];
        let mut kept = Vec::new();
        read_capped(Some(data), &mut kept, 100).await?;
        assert_eq!(kept, vec![7u8; 100]);
        let mut none = Vec::new();
        read_capped(None::<&[u8]>, &mut none, 100).await?;
        assert!(none.is_empty());
        Ok(())
    }
}
