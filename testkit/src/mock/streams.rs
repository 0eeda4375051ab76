//! Copying a scripted process's output to an attach session's sinks (raw
//! or in Docker's multiplexed frames) and the caller's stdin to it, until
//! the output ends or the session is cancelled.

use runtime_api::{AttachOptions, AttachOutcome, AttachStreams, Framing, Result, RuntimeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

use super::process::{Output, ProcessHandle};

/// Runs one attach session over `process`, whose output was subscribed to
/// as `output` before anything could be missed.
pub(crate) async fn pump(
    process: &ProcessHandle,
    mut output: broadcast::Receiver<Output>,
    streams: AttachStreams,
    options: AttachOptions,
    terminal: bool,
) -> Result<AttachOutcome> {
    let AttachStreams {
        stdin,
        mut stdout,
        mut stderr,
        ..
    } = streams;
    let io_error = |e: std::io::Error| RuntimeError::io("writing attach output", e);
    let stdin_task = stdin.map(|mut reader| {
        let sender = process.stdin.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = sender.send(None);
                        return;
                    }
                    Ok(n) => {
                        if sender.send(Some(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        })
    });
    let cancel = options.cancel.clone();
    if let Some(ready) = &options.ready {
        ready.set();
    }
    let outcome = loop {
        let chunk = tokio::select! {
            chunk = output.recv() => chunk,
            () = async {
                match &cancel {
                    Some(c) => c.cancelled().await,
                    None => std::future::pending().await,
                }
            } => break AttachOutcome::Cancelled,
        };
        let (stream, bytes) = match chunk {
            Ok(Output::Stdout(b)) => (1u8, b),
            Ok(Output::Stderr(b)) => (2u8, b),
            Ok(Output::End) | Err(broadcast::error::RecvError::Closed) => {
                break AttachOutcome::StreamsEnded
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                return Err(RuntimeError::io(
                    "reading the mock process's output",
                    std::io::Error::other(format!("{n} chunks were lost")),
                ))
            }
        };
        let multiplexed = options.framing == Framing::Multiplexed && !terminal;
        let sink = if multiplexed || terminal || stream == 1 {
            stdout.as_mut()
        } else {
            stderr.as_mut()
        };
        let Some(sink) = sink else { continue };
        if multiplexed {
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes();
            let header = [stream, 0, 0, 0, len[0], len[1], len[2], len[3]];
            sink.write_all(&header).await.map_err(io_error)?;
        }
        sink.write_all(&bytes).await.map_err(io_error)?;
        sink.flush().await.map_err(io_error)?;
    };
    if let Some(task) = stdin_task {
        task.abort();
    }
    for sink in [stdout.as_mut(), stderr.as_mut()].into_iter().flatten() {
        let _ = sink.flush().await;
    }
    Ok(outcome)
}
