//! What exec and attach sessions share: the upgraded WebSocket split into
//! a writer task (every message bounded by the write timeout) and a reader
//! task, and the bridge between channels and the runtime's
//! [`AttachStreams`]: stdin fed from channel 0 (closed by v5's
//! `[255, 0]` or by the client going away), stdout and stderr pumped to
//! channels 1 and 2, terminal sizes from channel 4 handed to a resize
//! callback, and the final status written on channel 3 before the socket
//! closes.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use runtime_api::{AttachStreams, TerminalSize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::channel::{self, Frame, Protocol};

/// An upgraded streaming connection.
pub type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// Resizes the session's terminal; errors are the callback's to log.
pub type Resizer = Box<dyn Fn(TerminalSize) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Bytes buffered between the socket and the runtime in each direction.
const PIPE: usize = 64 << 10;

/// Sends messages to the client from one task; a message the client does
/// not take within the write timeout ends the writer.
#[derive(Debug)]
pub struct Outbound {
    sender: mpsc::Sender<Message>,
    task: JoinHandle<()>,
}

impl Outbound {
    /// Starts the writer on `sink`.
    pub fn start(mut sink: SplitSink<Ws, Message>, write_timeout: Duration) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Message>(16);
        let task = tokio::spawn(async move {
            while let Some(message) = receiver.recv().await {
                let closing = matches!(message, Message::Close(_));
                match tokio::time::timeout(write_timeout, sink.send(message)).await {
                    Ok(Ok(())) if !closing => {}
                    Ok(Ok(())) => break,
                    Ok(Err(e)) => {
                        tracing::debug!("streaming client gone: {e}");
                        break;
                    }
                    Err(_) => {
                        tracing::warn!("streaming client took no message for {write_timeout:?}");
                        break;
                    }
                }
            }
            let _ = tokio::time::timeout(write_timeout, sink.close()).await;
        });
        Self { sender, task }
    }

    /// A handle to queue messages.
    pub fn sender(&self) -> mpsc::Sender<Message> {
        self.sender.clone()
    }

    /// Queues `bytes` on `channel` (dropped when the writer has ended).
    pub async fn send(&self, channel: u8, bytes: &[u8]) {
        let _ = self
            .sender
            .send(Message::Binary(channel::encode(channel, bytes).into()))
            .await;
    }

    /// Writes `status` on the error channel (when given), a close frame,
    /// and waits up to `limit` for the writer to finish.
    pub async fn finish(self, status: Option<Vec<u8>>, limit: Duration) {
        if let Some(status) = status {
            self.send(channel::ERROR, &status).await;
        }
        let _ = self.sender.send(Message::Close(None)).await;
        drop(self.sender);
        let mut task = self.task;
        if tokio::time::timeout(limit, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// A pump copying what the runtime writes into one output pipe to
/// `channel`; it drains the pipe to its end even once the client is gone,
/// so the runtime never blocks on it.
fn pump(mut pipe: DuplexStream, channel: u8, out: mpsc::Sender<Message>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 << 10];
        let mut open = true;
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) if open => {
                    let message = Message::Binary(channel::encode(channel, &buf[..n]).into());
                    open = out.send(message).await.is_ok();
                }
                Ok(_) => {}
            }
        }
    })
}

/// The runtime's ends of a session's streams and the bridge's own.
#[derive(Debug)]
pub struct Bridge {
    stdin: Option<DuplexStream>,
    pumps: Vec<JoinHandle<()>>,
}

impl Bridge {
    /// Pipes for the streams asked for (no stderr with a terminal), their
    /// output pumped through `out`; the [`AttachStreams`] go to the
    /// runtime.
    pub fn new(stdin: bool, stdout: bool, stderr: bool, out: &Outbound) -> (Self, AttachStreams) {
        let mut streams = AttachStreams::default();
        let mut bridge = Self {
            stdin: None,
            pumps: Vec::new(),
        };
        if stdin {
            let (ours, theirs) = tokio::io::duplex(PIPE);
            streams.stdin = Some(Box::pin(theirs));
            bridge.stdin = Some(ours);
        }
        for (wanted, chan) in [(stdout, channel::STDOUT), (stderr, channel::STDERR)] {
            if wanted {
                let (ours, theirs) = tokio::io::duplex(PIPE);
                bridge.pumps.push(pump(ours, chan, out.sender()));
                if chan == channel::STDOUT {
                    streams.stdout = Some(Box::pin(theirs));
                } else {
                    streams.stderr = Some(Box::pin(theirs));
                }
            }
        }
        (bridge, streams)
    }

    /// Starts reading the client: stdin to the runtime, sizes to `resize`.
    /// The task ends when the client closes or goes away; its stdin pipe
    /// closes with it.
    pub fn read_client(
        &mut self,
        mut stream: SplitStream<Ws>,
        protocol: Protocol,
        resize: Resizer,
    ) -> JoinHandle<()> {
        let mut stdin = self.stdin.take();
        tokio::spawn(async move {
            while let Some(message) = stream.next().await {
                let bytes = match message {
                    Ok(Message::Binary(bytes)) => bytes,
                    Ok(Message::Close(_)) | Err(_) => break,
                    // Text (base64 protocols) is not served; pings are
                    // answered by the socket itself.
                    Ok(_) => continue,
                };
                match channel::decode(&bytes, protocol) {
                    Ok(Frame::Data {
                        channel: channel::STDIN,
                        bytes,
                    }) => {
                        if let Some(pipe) = stdin.as_mut() {
                            if pipe.write_all(bytes).await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    Ok(Frame::Data {
                        channel: channel::RESIZE,
                        bytes,
                    }) => match channel::decode_resize(bytes) {
                        Ok(size) => resize(size).await,
                        Err(e) => tracing::debug!("ignoring a resize message: {e}"),
                    },
                    Ok(Frame::Close(channel::STDIN)) => {
                        if let Some(mut pipe) = stdin.take() {
                            let _ = pipe.shutdown().await;
                        }
                    }
                    Ok(other) => tracing::debug!("ignoring a message: {other:?}"),
                    Err(e) => tracing::debug!("ignoring a message: {e}"),
                }
            }
        })
    }

    /// Waits up to `limit` for the output pumps to drain what the runtime
    /// wrote (their pipes end when the runtime drops its ends).
    pub async fn drain(self, limit: Duration) {
        for mut pump in self.pumps {
            if tokio::time::timeout(limit, &mut pump).await.is_err() {
                pump.abort();
            }
        }
    }
}

/// Splits an upgraded socket into its writer and reader.
pub fn split(ws: Ws, write_timeout: Duration) -> (Outbound, SplitStream<Ws>) {
    let (sink, stream) = ws.split();
    (Outbound::start(sink, write_timeout), stream)
}
