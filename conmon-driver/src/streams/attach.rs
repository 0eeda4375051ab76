//! An attach session over conmon's attach socket: output records routed to
//! the caller's sinks (raw, or as Docker multiplexed frames), the caller's
//! stdin copied in with detach-key recognition, and an end that says why
//! it ended: the container's output closed, the client detached, or the
//! session was cancelled. The container keeps running in the last two cases.

use std::path::Path;

use attach::{
    copy_detachable, encode_frames, AttachError, AttachSocket, AttachStream, CopyOutcome,
    DetachKeys, MuxStream,
};
use runtime_api::{
    AttachOptions, AttachOutcome, AttachStreams, ContainerDescription, Framing, OutputStream,
    RuntimeError,
};
use tokio::io::AsyncWriteExt;
use tracing::debug;

use crate::runtime::ConmonRuntime;

/// Maps an attach-crate error for `container`.
pub(crate) fn from_attach(c: &ContainerDescription, err: AttachError) -> RuntimeError {
    match err {
        AttachError::SocketUnavailable { .. } => RuntimeError::ContainerNotRunning {
            id: c.id().to_string(),
        },
        AttachError::InvalidDetachKey { .. } => RuntimeError::InvalidArgument(err.to_string()),
        AttachError::Timeout { limit, what } => RuntimeError::Timeout {
            operation: format!("{what} for container {}", c.id()),
            limit,
        },
        other => RuntimeError::io(
            format!("attach to container {}", c.id()),
            std::io::Error::other(other.to_string()),
        ),
    }
}

/// Where each output record goes.
struct Sinks {
    terminal: bool,
    framing: Framing,
    stdout: Option<OutputStream>,
    stderr: Option<OutputStream>,
}

impl Sinks {
    async fn deliver(&mut self, stream: AttachStream, data: &[u8]) -> std::io::Result<()> {
        if self.terminal {
            // With a terminal everything is stdout, and nothing is copied
            // when stdout was not asked for (as podman does).
            return write_to(self.stdout.as_mut(), data).await;
        }
        match self.framing {
            Framing::Raw => match stream {
                AttachStream::Stdout => write_to(self.stdout.as_mut(), data).await,
                AttachStream::Stderr => write_to(self.stderr.as_mut(), data).await,
            },
            Framing::Multiplexed => {
                let (wanted, mux) = match stream {
                    AttachStream::Stdout => (self.stdout.is_some(), MuxStream::Stdout),
                    AttachStream::Stderr => (self.stderr.is_some(), MuxStream::Stderr),
                };
                if !wanted {
                    return Ok(());
                }
                // One connection carries every frame: the stdout sink when
                // there is one.
                let sink = match self.stdout.as_mut() {
                    Some(sink) => Some(sink),
                    None => self.stderr.as_mut(),
                };
                let mut bytes = Vec::with_capacity(data.len() + 8);
                for frame in encode_frames(mux, data) {
                    bytes.extend_from_slice(&frame.encode());
                }
                write_to(sink, &bytes).await
            }
            // A framing this driver does not know yet was refused when the
            // session was set up.
            other => Err(std::io::Error::other(format!(
                "framing {other:?} is not supported"
            ))),
        }
    }

    async fn flush(&mut self) {
        for sink in [self.stdout.as_mut(), self.stderr.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = sink.flush().await;
        }
    }
}

async fn write_to(sink: Option<&mut OutputStream>, data: &[u8]) -> std::io::Result<()> {
    match sink {
        Some(sink) => {
            sink.write_all(data).await?;
            sink.flush().await
        }
        None => Ok(()),
    }
}

/// Checks the streams and parses the detach keys of an attach request.
pub(crate) fn prepare(
    c: &ContainerDescription,
    streams: &AttachStreams,
    options: &AttachOptions,
) -> Result<DetachKeys, RuntimeError> {
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
        Some(spec) => DetachKeys::parse(spec).map_err(|e| from_attach(c, e)),
    }
}

pub(crate) async fn attach(
    rt: &ConmonRuntime,
    c: &ContainerDescription,
    streams: AttachStreams,
    options: AttachOptions,
) -> Result<AttachOutcome, RuntimeError> {
    let keys = prepare(c, &streams, &options)?;
    let exit_file = rt.config.exits_dir().join(c.id().as_str());
    if exit_file.exists() {
        return Err(RuntimeError::ContainerNotRunning {
            id: c.id().to_string(),
        });
    }
    let socket_path = c.bundle().join("attach");
    if !socket_path.exists() && !c.bundle().exists() {
        return Err(RuntimeError::NoSuchContainer {
            id: c.id().to_string(),
        });
    }
    let socket = AttachSocket::connect(Path::new(&socket_path), rt.config.timeouts.attach)
        .await
        .map_err(|e| from_attach(c, e))?;
    if let Some(ready) = &options.ready {
        ready.set();
    }
    pump(c, socket, streams, c.terminal(), keys, options).await
}

/// Copies between a connected attach socket and the caller's streams until
/// the output ends, the client detaches or the session is cancelled.
pub(crate) async fn pump(
    c: &ContainerDescription,
    socket: AttachSocket,
    streams: AttachStreams,
    terminal: bool,
    keys: DetachKeys,
    options: AttachOptions,
) -> Result<AttachOutcome, RuntimeError> {
    let (reader, mut writer) = socket.split();
    let AttachStreams {
        stdin,
        stdout,
        stderr,
    } = streams;
    let mut sinks = Sinks {
        terminal,
        framing: options.framing,
        stdout,
        stderr,
    };

    let output = async {
        loop {
            match reader.read_record().await {
                Ok(Some(record)) => {
                    if let Err(e) = sinks.deliver(record.stream, &record.data).await {
                        // The caller's side is gone: for the container that
                        // is a detach, not the end of its output.
                        debug!(container = %c.id(), error = %e, "attach sink closed");
                        return Ok(true);
                    }
                }
                Ok(None) => return Ok(false),
                Err(e) => return Err(from_attach(c, e)),
            }
        }
    };
    let input = async {
        match stdin {
            Some(stdin) => {
                match copy_detachable(stdin, &mut writer, &keys).await {
                    Ok(CopyOutcome::Detached) => return Ok(true),
                    Ok(CopyOutcome::InputClosed) => {
                        // The container sees EOF on its stdin.
                        let _ = writer.shutdown_write();
                    }
                    Err(e) => debug!(container = %c.id(), error = %e, "attach input ended"),
                }
                std::future::pending::<Result<bool, RuntimeError>>().await
            }
            None => std::future::pending().await,
        }
    };
    let cancelled = async {
        match &options.cancel {
            Some(cancel) => cancel.cancelled().await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        ended = output => match ended? {
            true => AttachOutcome::Detached,
            false => AttachOutcome::StreamsEnded,
        },
        detached = input => match detached? {
            true => AttachOutcome::Detached,
            false => AttachOutcome::StreamsEnded,
        },
        () = cancelled => AttachOutcome::Cancelled,
    };
    sinks.flush().await;
    debug!(container = %c.id(), ?outcome, "attach session ended");
    Ok(outcome)
}
