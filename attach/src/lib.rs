//! Attaching to a container run under conmon: the attach socket client,
//! record prefix decoding, Docker-compatible multiplexed framing, detach
//! keys, and terminal resize through the bundle's `ctl` FIFO.
//!
//! This is a leaf crate: it depends on no other crate of the workspace, so
//! an engine can take only the attach plumbing.
//!
//! - [`AttachSocket`] connects to `<bundle>/attach` (`SOCK_SEQPACKET`, long
//!   paths through `/proc/self/fd`), yields [`AttachRecord`]s of stdout and
//!   stderr, and sends raw input; [`AttachSocket::split`] gives a reader and
//!   a writer for separate tasks. [`AttachReader::read_batch`] takes every
//!   ready record at once into a reusable [`RecordBatch`], for sessions that
//!   move a lot of output.
//! - [`MuxFrame`], [`encode_header`] and [`MuxDecoder`] speak the 8-byte
//!   header framing of Docker's HTTP attach without a terminal.
//! - [`DetachKeys`] parses `ctrl-p,ctrl-q`-style specifications;
//!   [`copy_detachable`] copies input until end of file or detach, using
//!   the pure [`DetachMatcher`].
//! - [`WriterThread`] writes a session's output to the local stdout or
//!   stderr from a thread of its own, in large blocking writes.
//! - [`resize`] writes `"1 rows cols\n"` to the ctl FIFO for a
//!   [`TerminalSize`] (any `u16` dimensions, as podman forwards them).
//!
//! # Example
//!
//! Attach to a container without a terminal: copy its output as
//! multiplexed frames to `client_out`, and the client's input to its stdin
//! until the client detaches or closes its input.
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::Duration;
//!
//! use attach::{copy_detachable, AttachError, AttachSocket, CopyOutcome, DetachKeys, MuxFrame};
//! use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
//!
//! async fn attach_session(
//!     bundle: &Path,
//!     client_in: impl AsyncRead + Unpin,
//!     mut client_out: impl AsyncWrite + Unpin + Send + 'static,
//! ) -> Result<CopyOutcome, AttachError> {
//!     let keys = DetachKeys::parse("ctrl-p,ctrl-q")?;
//!     let socket = AttachSocket::connect(&bundle.join("attach"), Duration::from_secs(5)).await?;
//!     let (reader, writer) = socket.split();
//!
//!     let output = tokio::spawn(async move {
//!         while let Some(record) = reader.read_record().await? {
//!             let frame = MuxFrame::from(record);
//!             if client_out.write_all(&frame.encode()).await.is_err() {
//!                 break; // the client went away
//!             }
//!         }
//!         Ok::<(), AttachError>(())
//!     });
//!
//!     let outcome = copy_detachable(client_in, &writer, &keys).await?;
//!     if outcome == CopyOutcome::InputClosed {
//!         writer.shutdown_write()?; // the container sees EOF on stdin
//!     } else {
//!         output.abort(); // detached: stop forwarding output
//!     }
//!     Ok(outcome)
//! }
//! ```

mod batch;
mod batch_recv;
mod copy;
mod detach;
mod error;
mod mux;
mod record;
mod resize;
mod socket;
mod writer;

pub use batch::{RecordBatch, Runs, BATCH_BUFFER_LEN, MAX_BATCH_RECORD};
pub use copy::{copy_detachable, CopyOutcome};
pub use detach::{DetachKeys, DetachMatcher, DEFAULT_DETACH_KEYS};
pub use error::AttachError;
pub use mux::{
    encode_frames, encode_header, parse_header, MuxDecoder, MuxFrame, MuxStream, MAX_FRAME_PAYLOAD,
    MUX_HEADER_LEN,
};
pub use record::{
    AttachRecord, AttachStream, DecodedRecord, MAX_RECORD_PAYLOAD, RECORD_BUFFER_LEN,
    STDERR_PREFIX, STDOUT_PREFIX,
};
pub use resize::{reopen_log, reopen_log_line, resize, TerminalSize, REOPEN_LOG_LINE};
pub use socket::{AttachReader, AttachSocket, AttachWriter, MAX_INPUT_CHUNK, SUN_PATH_LEN};
pub use writer::{WriterThread, WRITER_THREAD_BUFFER};
