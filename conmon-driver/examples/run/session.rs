//! One container's session once it is created: attach first (so that no
//! output is lost), then start it and follow it until it exits, the client
//! detaches or a signal arrives, which stops it.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use conmon_driver::ConmonRuntime;
use runtime_api::{
    AttachOptions, AttachOutcome, AttachReady, AttachStreams, ContainerDescription, Framing,
    InputStream, OciRuntime, RuntimeError,
};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::options::Options;
use crate::terminal::{forward_resizes, local_output, local_terminal_size, RawTerminal};
use crate::{phase, Outcome};

/// "No limit in practice" for the wait.
const FOREVER: Duration = Duration::from_secs(24 * 60 * 60);
/// How long the stop signal gets before SIGKILL after an interruption.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the attach session may take, after the container was stopped,
/// to hand over the container's last output.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Aborts a task when dropped, so that no path leaves one behind.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why the attach session task ended without an outcome.
fn session_failed(
    joined: Result<runtime_api::Result<AttachOutcome>, tokio::task::JoinError>,
) -> RuntimeError {
    match joined {
        Ok(Err(e)) => e,
        Ok(Ok(outcome)) => RuntimeError::io(
            "attaching to the container",
            std::io::Error::other(format!("the session ended before connecting ({outcome:?})")),
        ),
        Err(e) => RuntimeError::io("attaching to the container", std::io::Error::other(e)),
    }
}

/// Attaches to the created container, starts it and follows it until it
/// exits, the client detaches or a signal arrives (which stops it).
pub(crate) async fn run_created(
    runtime: &Arc<ConmonRuntime>,
    container: &ContainerDescription,
    options: &Options,
    mut interrupted: watch::Receiver<bool>,
) -> Result<Outcome, RuntimeError> {
    if *interrupted.borrow() {
        return stop(runtime, container).await;
    }
    let stdin: Option<InputStream> = if options.interactive {
        Some(Box::pin(tokio::io::stdin()))
    } else {
        None
    };
    let streams = AttachStreams {
        stdin,
        stdout: Some(local_output("stdout-writer", std::io::stdout().as_fd())?),
        stderr: Some(local_output("stderr-writer", std::io::stderr().as_fd())?),
    };
    let ready = AttachReady::new();
    let mut attach_options = AttachOptions::default()
        .with_framing(Framing::Raw)
        .with_ready(ready.clone());
    attach_options.detach_keys = options.detach_keys.clone();
    let mut session = AbortOnDrop(tokio::spawn({
        let runtime = Arc::clone(runtime);
        let container = container.clone();
        async move { runtime.attach(&container, streams, attach_options).await }
    }));
    // Attach before the start, so that no output is missed.
    tokio::select! {
        () = ready.wait() => {}
        joined = &mut session.0 => return Err(session_failed(joined)),
        _ = interrupted.wait_for(|on| *on) => return stop(runtime, container).await,
    }
    phase("attached");

    // Dropped (restoring the terminal) on every way out of this function.
    let _raw = if container.terminal() && options.interactive && std::io::stdin().is_terminal() {
        Some(RawTerminal::enter()?)
    } else {
        None
    };
    let mut _resizes = None;
    if container.terminal() {
        if let Some(size) = local_terminal_size() {
            // Listen before reading the size, so no change is missed.
            let winch = signal(SignalKind::window_change())
                .map_err(|e| RuntimeError::io("installing the SIGWINCH handler", e))?;
            // Before the start, so the process sees the right size at once.
            runtime.resize_terminal(container, size).await?;
            _resizes = Some(AbortOnDrop(tokio::spawn(forward_resizes(
                Arc::clone(runtime),
                container.clone(),
                winch,
            ))));
        }
    }

    runtime.start(container).await?;
    phase("started");
    let ended = tokio::select! {
        joined = &mut session.0 => joined,
        _ = interrupted.wait_for(|on| *on) => {
            let stopped = stop(runtime, container).await;
            // Let the session hand over the container's last words.
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, &mut session.0).await;
            return stopped;
        }
    };
    match ended {
        Ok(Ok(AttachOutcome::Detached)) => Ok(Outcome::Detached),
        Ok(Ok(AttachOutcome::StreamsEnded | AttachOutcome::Cancelled)) => {
            phase("output");
            // The output is complete; the exit code follows.
            tokio::select! {
                code = runtime.wait(container, FOREVER) => {
                    let code = code?;
                    phase("exited");
                    Ok(Outcome::Exited(code))
                }
                _ = interrupted.wait_for(|on| *on) => stop(runtime, container).await,
            }
        }
        failed => Err(session_failed(failed)),
    }
}

/// Stops the container after an interruption.
async fn stop(
    runtime: &ConmonRuntime,
    container: &ContainerDescription,
) -> Result<Outcome, RuntimeError> {
    runtime.stop(container, STOP_TIMEOUT, false).await?;
    Ok(Outcome::Interrupted)
}
