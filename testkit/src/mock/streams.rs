//! One attach session of the mock: the process's output copied to the
//! caller's sinks (raw, or in Docker's multiplexed frames), the caller's
//! stdin copied to the process with the detach keys recognised as conmon's
//! attach does, until the output ends, the client detaches or the session
//! is cancelled. Container attach and attached exec share it.

use std::sync::Arc;

use attach::{encode_header, DetachKeys, DetachMatcher, MuxStream};
use runtime_api::{AttachOptions, AttachOutcome, AttachStreams, Framing, Result, RuntimeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, oneshot};

use super::process::{Output, Process};

/// How the session's ends behave, from the container or exec it serves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ends {
    /// Everything goes to the stdout sink, never framed.
    pub(crate) terminal: bool,
    /// The process's stdin stays open when the client's input ends or it
    /// detaches.
    pub(crate) leave_stdin_open: bool,
}

/// Checks what an attach request can be checked for before anything runs:
/// at least one stream, a known framing, parseable detach keys.
pub(crate) fn validate(streams: &AttachStreams, options: &AttachOptions) -> Result<DetachKeys> {
    if streams.is_empty() {
        return Err(RuntimeError::InvalidArgument(
            "attach needs at least one of stdin, stdout and stderr".into(),
        ));
    }
    if !matches!(options.framing, Framing::Raw | Framing::Multiplexed) {
        return Err(RuntimeError::InvalidArgument(format!(
            "attach framing {:?} is not supported",
            options.framing
        )));
    }
    match options.detach_keys.as_deref() {
        None => Ok(DetachKeys::default()),
        Some(spec) => DetachKeys::parse(spec)
            .map_err(|e| RuntimeError::InvalidArgument(format!("detach keys: {e}"))),
    }
}

/// Runs one session over `process`, whose output was subscribed to as
/// `output` before the process could write anything the caller expects.
pub(crate) async fn pump(
    process: Arc<Process>,
    mut output: broadcast::Receiver<Output>,
    streams: AttachStreams,
    options: AttachOptions,
    keys: DetachKeys,
    ends: Ends,
) -> Result<AttachOutcome> {
    let AttachStreams {
        stdin,
        mut stdout,
        mut stderr,
    } = streams;
    let (detached_tx, mut detached) = oneshot::channel::<()>();
    let stdin_task = stdin.map(|reader| {
        tokio::spawn(copy_input(
            reader,
            Arc::clone(&process),
            keys,
            ends,
            detached_tx,
        ))
    });
    if let Some(ready) = &options.ready {
        ready.set();
    }
    let multiplexed = options.framing == Framing::Multiplexed && !ends.terminal;
    // Set once the process exited: what is left in `output` is drained
    // without waiting. The exit may come before the subscription saw the
    // end of the output, when the process exited while the attach was
    // being set up.
    let mut exited = false;
    let mut input_ended = false;
    let outcome = loop {
        let chunk = if exited {
            match output.try_recv() {
                Ok(chunk) => Ok(chunk),
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Empty | TryRecvError::Closed) => {
                    break AttachOutcome::StreamsEnded
                }
            }
        } else {
            tokio::select! {
                biased;
                () = cancelled(&options) => break AttachOutcome::Cancelled,
                keys = &mut detached, if !input_ended => match keys {
                    Ok(()) => break AttachOutcome::Detached,
                    // The input ended without the keys: nothing more to
                    // wait for on this side.
                    Err(_) => {
                        input_ended = true;
                        continue;
                    }
                },
                chunk = output.recv() => chunk,
                _ = process.exited() => {
                    exited = true;
                    continue;
                }
            }
        };
        let (stream, bytes) = match chunk {
            Ok(Output::Stdout(b)) => (MuxStream::Stdout, b),
            Ok(Output::Stderr(b)) => (MuxStream::Stderr, b),
            Ok(Output::End) | Err(RecvError::Closed) => break AttachOutcome::StreamsEnded,
            Err(RecvError::Lagged(n)) => {
                return Err(RuntimeError::io(
                    "reading the mock process's output",
                    std::io::Error::other(format!("the attach client fell {n} chunks behind")),
                ))
            }
        };
        let sink = if multiplexed || ends.terminal || stream == MuxStream::Stdout {
            stdout.as_mut()
        } else {
            stderr.as_mut()
        };
        let Some(sink) = sink else { continue };
        let mut data = Vec::with_capacity(bytes.len() + 8);
        if multiplexed {
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            data.extend_from_slice(&encode_header(stream, len));
        }
        data.extend_from_slice(&bytes);
        let written = async {
            sink.write_all(&data).await?;
            sink.flush().await
        };
        if written.await.is_err() {
            // The caller's side is gone: for the container that is a
            // detach, not the end of its output (as the conmon driver
            // reports it).
            break AttachOutcome::Detached;
        }
    };
    if let Some(task) = stdin_task {
        task.abort();
    }
    for sink in [stdout.as_mut(), stderr.as_mut()].into_iter().flatten() {
        let _ = sink.flush().await;
    }
    Ok(outcome)
}

async fn cancelled(options: &AttachOptions) {
    match &options.cancel {
        Some(cancel) => cancel.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Copies the client's input to the process until its end or the detach
/// keys; either closes the process's stdin unless it is left open.
async fn copy_input(
    mut reader: runtime_api::InputStream,
    process: Arc<Process>,
    keys: DetachKeys,
    ends: Ends,
    detached: oneshot::Sender<()>,
) {
    let mut matcher = DetachMatcher::new(&keys);
    let mut buf = vec![0u8; 8192];
    let close = |process: &Process| {
        if !ends.leave_stdin_open {
            process.input(None);
        }
    };
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let held_back = matcher.finish();
                if !held_back.is_empty() {
                    process.input(Some(held_back));
                }
                close(&process);
                return;
            }
            Ok(n) => {
                let (forward, detach) = matcher.feed(&buf[..n]);
                if !forward.is_empty() {
                    process.input(Some(forward));
                }
                if detach {
                    close(&process);
                    let _ = detached.send(());
                    return;
                }
            }
        }
    }
}
