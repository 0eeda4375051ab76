//! Asking an OCI runtime and conmon what became of a container.
//!
//! This crate holds the read-only probes a conmon-based container driver
//! needs:
//!
//! - [`run_bounded`]: run a short external command with a time limit,
//!   capturing stdout and stderr concurrently, killing and reaping it on
//!   timeout;
//! - [`parse_state`], [`interpret_state_output`] and [`probe_state`]: the
//!   output of `RUNTIME state ID`, including "the container does not exist";
//! - [`read_exit_file`] and [`wait_for_exit_file`]: the exit file conmon
//!   writes into its exit directory, awaited on inotify;
//! - [`oom_killed`] and [`read_persisted_exit`]: conmon's persist directory;
//! - [`alive`], [`wait_for_exit`] and [`PidFd`]: processes that are not
//!   our children (conmon, the container's init), awaited on a pidfd;
//! - [`ProcessIdentity`] and [`CgroupFreezers`]: whether a process is still
//!   the one seen earlier (pid and start time), and whether its cgroup is
//!   frozen (paused).
//!
//! It depends on no other crate of its workspace; every failure is a
//! [`ProbeError`].
//!
//! # Example
//!
//! ```
//! use state_probe::{parse_state, read_exit_file, RuntimeStatus};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let state = parse_state(
//!     br#"{"ociVersion":"1.0.2","id":"web","pid":4242,"status":"running",
//!          "bundle":"/run/b/web","rootfs":"/run/b/web/rootfs",
//!          "created":"2026-11-28T21:45:04.1Z","owner":""}"#,
//! )?;
//! assert_eq!(state.status, RuntimeStatus::Running);
//! assert_eq!(state.pid, 4242);
//!
//! let exits = tempfile::tempdir()?;
//! let exit_file = exits.path().join("web");
//! assert_eq!(read_exit_file(&exit_file)?, None); // still running
//! std::fs::write(&exit_file, "137")?; // conmon: killed by SIGKILL
//! let record = read_exit_file(&exit_file)?.ok_or("exit file vanished")?;
//! assert_eq!(record.code, 137);
//! # Ok(())
//! # }
//! ```

pub mod command;
pub mod error;
pub mod exit_file;
pub mod exit_watch;
pub mod oom;
pub mod pid;
pub mod process;
pub mod state;
pub mod untrusted;
pub mod watch;

pub use command::{render_command, run_bounded, CapturedOutput, OUTPUT_CAP};
pub use error::ProbeError;
pub use exit_file::{read_exit_file, ExitRecord};
pub use exit_watch::{wait_for_exit_file, ExitWatcher};
pub use oom::{oom_killed, read_persisted_exit};
pub use pid::{alive, deadline_after, signal_zero, wait_for_exit, PidFd};
pub use process::{CgroupFreezers, FreezerState, ProcessIdentity};
pub use state::{
    interpret_state_output, parse_state, probe_state, RuntimeState, RuntimeStatus, StateProbe,
};
pub use untrusted::open_untrusted_file;
pub use watch::DirChanges;
