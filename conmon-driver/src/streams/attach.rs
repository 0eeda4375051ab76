//! An attach session over conmon's attach socket: output records routed to
//! the caller's sinks (raw, or as Docker multiplexed frames), the caller's
//! stdin copied in with detach-key recognition, and an end that says why
//! it ended: the container's output closed, the client detached, or the
//! session was cancelled. The container keeps running in the last two cases.

use std::io::IoSlice;
use std::path::Path;

use attach::{
    copy_detachable, encode_header, AttachError, AttachSocket, AttachStream, CopyOutcome,
    DetachKeys, MuxStream, RecordBatch, MAX_FRAME_PAYLOAD,
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
    /// The multiplexed frames of one batch, reused from batch to batch,
    /// for a sink without vectored writes.
    frames: Vec<u8>,
    /// The frame headers of one batch, reused, for a sink with vectored
    /// writes (the payloads are written from the batch itself).
    headers: Vec<[u8; 8]>,
}

impl Sinks {
    /// Writes a batch of records: each run of one stream in one write (all
    /// of a batch's frames in one write when multiplexed). Nothing is
    /// flushed here; see [`Sinks::flush`].
    async fn deliver(&mut self, batch: &RecordBatch) -> std::io::Result<()> {
        if self.terminal {
            // With a terminal everything is stdout, and nothing is copied
            // when stdout was not asked for (as podman does).
            for (_, data) in batch.runs() {
                write_to(self.stdout.as_mut(), data).await?;
            }
            return Ok(());
        }
        match self.framing {
            Framing::Raw => {
                for (stream, data) in batch.runs() {
                    let sink = match stream {
                        AttachStream::Stdout => self.stdout.as_mut(),
                        AttachStream::Stderr => self.stderr.as_mut(),
                    };
                    write_to(sink, data).await?;
                }
                Ok(())
            }
            Framing::Multiplexed => {
                // One frame per record, as conmon cut the output.
                let (want_stdout, want_stderr) = (self.stdout.is_some(), self.stderr.is_some());
                let wanted = |stream| match stream {
                    AttachStream::Stdout => want_stdout.then_some(MuxStream::Stdout),
                    AttachStream::Stderr => want_stderr.then_some(MuxStream::Stderr),
                };
                // One connection carries every frame: the stdout sink when
                // there is one.
                let Some(sink) = (match self.stdout.as_mut() {
                    Some(sink) => Some(sink),
                    None => self.stderr.as_mut(),
                }) else {
                    return Ok(());
                };
                if sink.is_write_vectored() {
                    // Headers and payloads side by side in one vectored
                    // write: the payloads are not copied.
                    self.headers.clear();
                    let mut parts: Vec<&[u8]> = Vec::new();
                    for (stream, data) in batch.records() {
                        if let Some(mux) = wanted(stream) {
                            for chunk in data.chunks(MAX_FRAME_PAYLOAD) {
                                let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
                                self.headers.push(encode_header(mux, len));
                            }
                        }
                    }
                    let mut headers = self.headers.iter();
                    for (stream, data) in batch.records() {
                        if wanted(stream).is_some() {
                            for chunk in data.chunks(MAX_FRAME_PAYLOAD) {
                                if let Some(header) = headers.next() {
                                    parts.push(header);
                                    parts.push(chunk);
                                }
                            }
                        }
                    }
                    return write_all_vectored(sink, &parts).await;
                }
                self.frames.clear();
                for (stream, data) in batch.records() {
                    if let Some(mux) = wanted(stream) {
                        push_frames(&mut self.frames, mux, data);
                    }
                }
                write_to(Some(sink), &self.frames).await
            }
            // A framing this driver does not know yet was refused when the
            // session was set up.
            other => Err(std::io::Error::other(format!(
                "framing {other:?} is not supported"
            ))),
        }
    }

    /// Flushes every sink: once the socket has nothing more ready, so that
    /// interactive output shows at once while a stream of output is not
    /// flushed record by record.
    async fn flush(&mut self) -> std::io::Result<()> {
        for sink in [self.stdout.as_mut(), self.stderr.as_mut()]
            .into_iter()
            .flatten()
        {
            sink.flush().await?;
        }
        Ok(())
    }
}

/// Appends `data` as multiplexed frames of `stream`: one frame, unless it
/// is longer than a frame header can describe; none when it is empty (as
/// [`attach::encode_frames`]).
fn push_frames(out: &mut Vec<u8>, stream: MuxStream, data: &[u8]) {
    for chunk in data.chunks(MAX_FRAME_PAYLOAD) {
        // `MAX_FRAME_PAYLOAD` is `u32::MAX`: every chunk length fits.
        let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&encode_header(stream, len));
        out.extend_from_slice(chunk);
    }
}

/// The most slices handed to one vectored write (below every system's
/// `IOV_MAX`).
const MAX_SLICES_PER_WRITE: usize = 512;

/// Writes all of `parts`, in order, in vectored writes of at most
/// [`MAX_SLICES_PER_WRITE`] slices (a write may take any prefix).
async fn write_all_vectored(sink: &mut OutputStream, parts: &[&[u8]]) -> std::io::Result<()> {
    // The first part not written whole, and how much of it was.
    let (mut next, mut skip) = (0, 0);
    let mut window = Vec::with_capacity(MAX_SLICES_PER_WRITE);
    loop {
        while next < parts.len() && parts[next].len() == skip {
            (next, skip) = (next + 1, 0);
        }
        if next == parts.len() {
            return Ok(());
        }
        window.clear();
        window.push(IoSlice::new(&parts[next][skip..]));
        window.extend(
            parts[next + 1..]
                .iter()
                .take(MAX_SLICES_PER_WRITE - 1)
                .map(|part| IoSlice::new(part)),
        );
        let mut written = sink.write_vectored(&window).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let left = parts[next].len() - skip;
            if written < left {
                skip += written;
                break;
            }
            written -= left;
            (next, skip) = (next + 1, 0);
        }
    }
}

async fn write_to(sink: Option<&mut OutputStream>, data: &[u8]) -> std::io::Result<()> {
    match sink {
        Some(sink) if !data.is_empty() => sink.write_all(data).await,
        _ => Ok(()),
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
        frames: Vec::new(),
        headers: Vec::new(),
    };

    let output = async {
        let mut batch = RecordBatch::new();
        // Output delivered since the sinks were last flushed. The flush runs
        // while the next record is awaited, not before: a sink whose flush
        // waits for a slow consumer (a writer thread, a client's
        // connection) then overlaps with conmon sending the next record,
        // and a record that arrives first is received at once; the flush
        // is taken up again once the socket is drained anew (and the
        // session's end flushes whatever is left).
        let mut unflushed = false;
        loop {
            let received = if unflushed {
                tokio::select! {
                    biased;
                    flushed = sinks.flush() => {
                        unflushed = false;
                        if let Err(e) = flushed {
                            debug!(container = %c.id(), error = %e, "attach sink closed");
                            return Ok(true);
                        }
                        continue;
                    }
                    received = reader.read_batch(&mut batch) => received,
                }
            } else {
                reader.read_batch(&mut batch).await
            };
            match received {
                Ok(0) => return Ok(false),
                Ok(_) => {
                    if let Err(e) = sinks.deliver(&batch).await {
                        // The caller's side is gone: for the container that
                        // is a detach, not the end of its output.
                        debug!(container = %c.id(), error = %e, "attach sink closed");
                        return Ok(true);
                    }
                    unflushed |= batch.is_drained();
                }
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
    let _ = sinks.flush().await;
    debug!(container = %c.id(), ?outcome, "attach session ended");
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use attach::{encode_frames, MuxDecoder};

    use super::*;

    #[test]
    fn batched_frames_match_the_frame_encoder() {
        for data in [&b""[..], b"x", &[7u8; 8192]] {
            for mux in [MuxStream::Stdout, MuxStream::Stderr] {
                let mut pushed = Vec::new();
                push_frames(&mut pushed, mux, data);
                let encoded: Vec<u8> = encode_frames(mux, data)
                    .iter()
                    .flat_map(|f| f.encode())
                    .collect();
                assert_eq!(pushed, encoded, "{mux:?}, {} bytes", data.len());
                let mut decoder = MuxDecoder::new();
                decoder.push(&pushed);
                let mut payload = Vec::new();
                while let Some(frame) = decoder.next_frame().expect("valid frames") {
                    assert_eq!(frame.stream, mux);
                    payload.extend(frame.payload);
                }
                assert_eq!(payload, data);
            }
        }
    }

    /// A vectored sink taking at most `limit` bytes per write, over a
    /// shared buffer.
    struct Trickle {
        limit: usize,
        got: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl tokio::io::AsyncWrite for Trickle {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            assert!(bufs.len() <= MAX_SLICES_PER_WRITE);
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut got = self.got.lock().expect("not poisoned");
            let mut left = self.limit;
            for buf in bufs {
                let n = buf.len().min(left);
                got.extend_from_slice(&buf[..n]);
                left -= n;
                if left == 0 {
                    break;
                }
            }
            std::task::Poll::Ready(Ok(self.limit - left))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn vectored_writes_deliver_every_byte_in_order_across_partial_writes() {
        let parts: Vec<Vec<u8>> = (0..1500u32)
            .map(|i| vec![(i % 251) as u8; (i % 13) as usize])
            .collect();
        let expected: Vec<u8> = parts.concat();
        for limit in [1, 7, 4096, usize::MAX / 2] {
            let got = std::sync::Arc::default();
            let writes = std::sync::Arc::default();
            let mut sink: OutputStream = Box::pin(Trickle {
                limit,
                got: std::sync::Arc::clone(&got),
                writes: std::sync::Arc::clone(&writes),
            });
            let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime")
                .block_on(write_all_vectored(&mut sink, &parts))
                .expect("written");
            assert_eq!(
                *got.lock().expect("not poisoned"),
                expected,
                "limit {limit}"
            );
            if limit > expected.len() {
                // 1500 slices (some empty): three writes of at most 512.
                assert!(writes.load(std::sync::atomic::Ordering::Relaxed) <= 3);
            }
        }
    }
}
