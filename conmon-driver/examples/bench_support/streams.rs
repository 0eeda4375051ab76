//! What the attach benchmarks share around their contenders: an output
//! sink that counts (and tells when a count was reached), the exact byte
//! count check, ending or discarding a container, and child processes
//! whose pipes are read within a time limit.

use std::io::Read;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use conmon_driver::ConmonRuntime;
use runtime_api::{ContainerDescription, OciRuntime};
use tokio::io::AsyncWrite;

use super::usage::Usage;
use super::BoxError;

/// How long a container or a child process of a benchmark may take to
/// finish its part.
pub const WAIT_LIMIT: Duration = Duration::from_secs(120);

/// What a [`CountingSink`] has seen: the byte count, when it first reached
/// a target, and a wake-up for whoever waits on the count.
#[derive(Default)]
pub struct Count {
    bytes: AtomicU64,
    target: AtomicU64,
    reached: Mutex<Option<Instant>>,
    changed: tokio::sync::Notify,
}

impl Count {
    /// A count that notes the moment it reaches `target` bytes.
    pub fn with_target(target: u64) -> Arc<Count> {
        let count = Count::default();
        count.target.store(target, Ordering::Relaxed);
        Arc::new(count)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    /// When the count reached its target, if it did.
    pub fn reached(&self) -> Option<Instant> {
        *self.reached.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until at least `bytes` were counted, at most `limit`.
    pub async fn wait_for(&self, bytes: u64, limit: Duration) -> Result<(), BoxError> {
        let deadline = tokio::time::Instant::now() + limit;
        while self.bytes() < bytes {
            // A permit stored by a write before this wait makes it return
            // at once: no wake-up is lost between the check and the wait.
            tokio::time::timeout_at(deadline, self.changed.notified())
                .await
                .map_err(|_| format!("{} of {bytes} bytes after {limit:?}", self.bytes()))?;
        }
        Ok(())
    }

    fn add(&self, n: u64) {
        let now = self.bytes.fetch_add(n, Ordering::AcqRel) + n;
        let target = self.target.load(Ordering::Relaxed);
        if target > 0 && now >= target && now - n < target {
            *self.reached.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
        self.changed.notify_one();
    }
}

/// An output sink that only counts what it is given.
pub struct CountingSink(pub Arc<Count>);

impl AsyncWrite for CountingSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.add(buf.len() as u64);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

pub fn check_bytes(who: &str, got: u64, expected: u64) -> Result<(), BoxError> {
    if got != expected {
        return Err(format!("{who}: received {got} bytes, expected {expected}").into());
    }
    Ok(())
}

/// Waits for the container, deletes it and removes its log (hundreds of
/// MiB of it per round would pile up).
pub async fn finish(runtime: &ConmonRuntime, c: &ContainerDescription) -> Result<(), BoxError> {
    runtime.wait(c, WAIT_LIMIT).await?;
    runtime.delete(c).await?;
    remove_log(c);
    Ok(())
}

/// After a failed contender: kills and deletes the container, whatever
/// state it is in, so that a failed run leaves nothing behind.
pub async fn discard(runtime: &ConmonRuntime, c: &ContainerDescription) {
    let _ = runtime.kill(c, runtime_api::Signal::KILL, true).await;
    let _ = runtime.wait(c, Duration::from_secs(10)).await;
    let _ = runtime.delete(c).await;
    remove_log(c);
}

fn remove_log(c: &ContainerDescription) {
    if let Some(log) = &c.log().path {
        let _ = std::fs::remove_file(log);
    }
}

/// Sends SIGTERM to a child process that is still running after a limit
/// (runc, the demo and podman pass it on to the container), so that a
/// stalled contender's pipes end and the benchmark fails instead of
/// hanging. Disarmed when dropped.
pub struct Watchdog {
    disarm: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    fired: Arc<AtomicBool>,
}

impl Watchdog {
    pub fn new(child: &Child, limit: Duration) -> Result<Watchdog, BoxError> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        let (disarm, disarmed) = std::sync::mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let fired = Arc::clone(&fired);
            move || {
                if disarmed.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                    fired.store(true, Ordering::Release);
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                }
            }
        });
        Ok(Watchdog {
            disarm: Some(disarm),
            thread: Some(thread),
            fired,
        })
    }

    /// An error naming `what` when the limit passed.
    pub fn check(&self, what: &str) -> Result<(), BoxError> {
        if self.fired.load(Ordering::Acquire) {
            return Err(format!("{what}: still running after {WAIT_LIMIT:?}, terminated").into());
        }
        Ok(())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.disarm.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads `from` to its end into a 64 KiB buffer: the bytes read, when
/// `expected` of them had arrived, and the reading thread's usage.
pub fn count_to_end(
    mut from: impl Read,
    expected: u64,
) -> Result<(u64, Option<Instant>, Usage), BoxError> {
    let before = Usage::this_thread()?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let mut reached = None;
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok((total, reached, Usage::this_thread()?.since(before))),
            Ok(n) => {
                total += n as u64;
                if reached.is_none() && total >= expected {
                    reached = Some(Instant::now());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs `command` with stdout into a pipe read here, bounded by
/// [`WAIT_LIMIT`]; returns the wall time of the whole process and the
/// bytes read.
pub fn run_into_pipe(command: &mut Command) -> Result<(Duration, u64), BoxError> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let watchdog = Watchdog::new(&child, WAIT_LIMIT)?;
    let out = child.stdout.take().ok_or("no stdout pipe")?;
    let counted = count_to_end(out, u64::MAX);
    let status = child.wait()?;
    let took = started.elapsed();
    watchdog.check(&format!("{command:?}"))?;
    let (total, _, _) = counted?;
    if !status.success() {
        return Err(format!("{command:?} exited with {status}").into());
    }
    Ok((took, total))
}
