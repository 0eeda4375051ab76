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

mod config;
mod errors;
mod exec;
mod exec_flags;
mod files;
mod info;
mod launch;
mod layout;
mod lifecycle;
mod logs;
mod reaper;
mod resolve;
mod runtime;
mod runtime_cli;
mod streams;

pub use config::container::{
    CgroupsMode, ConmonDescription, ConmonDescriptionExt, ConmonOptions, ExitCommand, SdNotifyMode,
};
pub use config::rootless::{
    choose_runtime_dir, run_user_dir, RuntimeDir, RuntimeDirFacts, RuntimeDirSource,
};
pub use config::{
    CgroupManager, ConfigError, ConmonConfig, ConmonConfigBuilder, LogLevel, SelinuxHost,
    SelinuxPolicy, Timeouts,
};
pub use errors::MonitorGone;
pub use exec::capabilities::{
    host_bounding_set, normalize_capability, privileged_capabilities, CapabilityError,
};
pub use exec::spec::{build_exec_process, build_exec_process_as, write_process_spec, ExecCaller};
pub use exec::user::{resolve_exec_user, resolve_exec_user_from_text, ExecUser};
pub use launch::argv::{ConmonArgv, ExecArgv};
pub use launch::env::ConmonEnv;
pub use launch::error::{LaunchError, LaunchStage};
pub use launch::options::{
    ConmonCreated, MonitorOptions, NamedFd, PassthroughStdio, PortProtocol, PortReservation,
};
pub use launch::terminal::TerminalMismatch;
pub use layout::{ContainerLayout, SessionLayout, PROCESS_SPEC_FILE};
pub use logs::follow::{parse_rfc3339, LogLine, LogOptions, LogReader, MAX_LOG_LINE};
pub use logs::k8s_file::{parse_k8s_log_line, read_k8s_log, LogRecord, LogStream};
pub use logs::tag::{render_log_tag, LogTagData, LogTagError};
pub use reaper::{become_subreaper, reaps_orphans};
pub use resolve::CONMON_CANDIDATES;
pub use runtime::{ConmonRuntime, RuntimeTraits};
pub use runtime_cli::{Subcommand, RUNNING_THE_RUNTIME};
