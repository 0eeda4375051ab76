//! The pipes between a container engine and `conmon`, and the OCI runtime's
//! error log.
//!
//! conmon is launched with two `SOCK_SEQPACKET` socketpairs placed at fixed
//! fd numbers: the *sync* pipe, on which it reports JSON status records
//! (`{"data": pid}` or `{"data": -1, "message": "..."}`), and the *start*
//! pipe, on which it waits for a byte before starting the runtime. This
//! crate provides each piece on its own:
//!
//! - [`seqpacket_pair`]: the close-on-exec socketpairs;
//! - [`PipeNumbers`]: where conmon expects them and the `_OCI_*` env vars;
//! - [`FdPlan`]: placing fds at those numbers in the child, between fork
//!   and exec, without allocating;
//! - [`SyncReader`] and [`parse_sync_record`]: bounded, non-blocking reads
//!   of status records;
//! - [`StartSignal`]: the start byte, without `SIGPIPE`;
//! - [`read_oci_error`] (with [`last_oci_error`] for a log in memory) and
//!   [`classify_oci_message`]: the runtime's own error log and podman's
//!   classification of it.
//!
//! # Example
//!
//! A child stands in for conmon here: it writes a record on the sync pipe
//! once it has read the start byte.
//!
//! ```
//! use std::os::fd::AsRawFd;
//! use std::time::Duration;
//! use sync_pipe::{seqpacket_pair, FdPlan, PipeNumbers, StartSignal, SyncReader};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (sync_parent, sync_child) = seqpacket_pair()?;
//! let (start_parent, start_child) = seqpacket_pair()?;
//! let numbers = PipeNumbers::new(0, false);
//!
//! let mut plan = FdPlan::new();
//! plan.place(sync_child.as_raw_fd(), numbers.sync)?
//!     .place(start_child.as_raw_fd(), numbers.start)?;
//!
//! let mut cmd = tokio::process::Command::new("/bin/sh");
//! cmd.arg("-c")
//!     .arg(r#"head -c 1 <&"$_OCI_STARTPIPE" >/dev/null; printf '{"data": 42}\n' >&"$_OCI_SYNCPIPE""#)
//!     .env_clear()
//!     .env("PATH", "/usr/bin:/bin")
//!     .envs(numbers.env());
//! plan.install_tokio(&mut cmd);
//! let mut child = cmd.spawn()?;
//! // The child has its copies now; ours must go so that EOF can be seen.
//! drop((sync_child, start_child));
//!
//! let mut reader = SyncReader::new(sync_parent)?;
//! StartSignal::new(start_parent).send()?;
//! let record = reader.read_record(Duration::from_secs(10)).await?;
//! assert_eq!(record.data, 42);
//! assert!(child.wait().await?.success());
//! # Ok(())
//! # }
//! ```

mod cloexec;
mod error;
mod fd_plan;
mod numbers;
mod oci_log;
mod reader;
mod record;
mod socketpair;
mod start;

pub use cloexec::set_cloexec;
pub use error::SyncPipeError;
pub use fd_plan::FdPlan;
pub use numbers::PipeNumbers;
pub use oci_log::{
    classify_oci_message, last_oci_error, read_oci_error, OciErrorKind, OciLogEntry,
    MAX_OCI_LOG_READ,
};
pub use reader::SyncReader;
pub use record::{parse_sync_record, SyncRecord, MAX_RECORD_LEN};
pub use socketpair::seqpacket_pair;
pub use start::StartSignal;
