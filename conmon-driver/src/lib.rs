//! Drives OCI runtimes (runc, runsc, crun...) through `conmon`, as podman's
//! Conmon OCI runtime does, behind the [`runtime_api::OciRuntime`] trait.
//!
//! [`ConmonRuntime`] assembles the workspace's leaf crates: it builds conmon's
//! argv and environment as pure data ([`ConmonArgv`], [`ConmonEnv`]), places
//! the sync and start pipes at their fd numbers (`sync-pipe`), launches conmon
//! in its own process group, waits for its status record with a deadline,
//! and probes state, exit files and pids (`state-probe`). Every call of the
//! runtime's CLI is bounded by a timeout that kills and reaps what it started.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use conmon_driver::{ConmonConfig, ConmonRuntime};
//! use runtime_api::{ContainerDescription, ContainerId, CreateOptions, LogDriver, OciRuntime};
//!
//! # async fn demo() -> runtime_api::Result<()> {
//! let runtime: Arc<dyn OciRuntime> =
//!     Arc::new(ConmonRuntime::new(ConmonConfig::new("runc", "/run/my-engine"))?);
//! let container = ContainerDescription::builder(
//!     ContainerId::new("hello")?,
//!     "/var/lib/my-engine/hello/bundle",
//!     "/run/my-engine/hello",
//! )
//! .log(LogDriver::KubernetesFile, "/run/my-engine/hello/ctr.log")
//! .build()?;
//! runtime.create(&container, CreateOptions::default()).await?;
//! runtime.start(&container).await?;
//! let code = runtime.wait(&container, Duration::from_secs(30)).await?;
//! runtime.delete(&container).await?;
//! println!("exited with {code}");
//! # Ok(())
//! # }
//! ```

mod argv;
mod attach_session;
mod config;
mod conmon_process;
mod container_options;
mod create;
mod env;
mod errors;
mod exec_session;
mod exec_spec;
mod exec_user;
mod files;
mod info;
mod k8s_log;
mod launch_error;
mod launch_options;
mod lifecycle;
mod log_tag;
mod notify;
mod placement;
mod ports;
mod process_group;
mod resolve;
mod runtime;
mod runtime_cli;
mod userns;

pub use argv::{ConmonArgv, ExecArgv};
pub use config::{CgroupManager, ConmonConfig, LogLevel, SelinuxHost, SelinuxPolicy, Timeouts};
pub use container_options::{
    CgroupsMode, ConmonDescription, ConmonDescriptionExt, ConmonOptions, ExitCommand, SdNotifyMode,
};
pub use env::ConmonEnv;
pub use exec_spec::{build_exec_process, write_process_spec, PROCESS_SPEC_FILE};
pub use exec_user::{resolve_exec_user, ExecUser};
pub use k8s_log::{parse_k8s_log_line, read_k8s_log, LogRecord, LogStream};
pub use launch_error::{LaunchError, LaunchStage};
pub use launch_options::{ConmonCreated, MonitorOptions, NamedFd, PortProtocol, PortReservation};
pub use log_tag::{render_log_tag, LogTagData};
pub use resolve::CONMON_CANDIDATES;
pub use runtime::{ConmonRuntime, RuntimeTraits};
pub use runtime_cli::Subcommand;
