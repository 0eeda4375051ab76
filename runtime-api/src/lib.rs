//! The contract between a container engine and an OCI runtime driver.
//!
//! This crate holds what every driver shares and nothing that runs a process:
//! the [`OciRuntime`] trait, the [`ContainerDescription`] a caller hands to it,
//! the [`ContainerState`] it reports, validated [`ContainerId`]s, signals,
//! features, runtime information and one error type, [`RuntimeError`], whose
//! [`exit_code`](RuntimeError::exit_code) follows podman's CLI (125, 126, 127).
//!
//! ```
//! use runtime_api::{ContainerDescription, ContainerId, LogDriver};
//!
//! let id = ContainerId::new("web-1")?;
//! let container = ContainerDescription::builder(id, "/srv/bundles/web-1", "/run/web-1")
//!     .name("web")
//!     .log(LogDriver::KubernetesFile, "/var/log/web-1.log")
//!     .build()?;
//! assert_eq!(container.name(), "web");
//! assert!(ContainerId::new("../escape").is_err());
//! # Ok::<(), runtime_api::RuntimeError>(())
//! ```

mod attach;
mod checkpoint;
mod description;
mod error;
mod exec;
mod id;
mod info;
mod options;
mod runtime;
mod signal;
mod state;

pub use attach::{
    AttachCancel, AttachOptions, AttachOutcome, AttachReady, AttachStreams, Framing, InputStream,
    OutputStream, TerminalSize,
};
pub use checkpoint::CheckpointOptions;
pub use description::{
    CgroupsMode, ContainerDescription, ContainerDescriptionBuilder, ExitCommand, LogConfig,
    LogDriver, SdNotifyMode,
};
pub use error::{MonitorStage, Result, RuntimeError};
pub use exec::{ExecCompletion, ExecConfig, ExecFuture, ExecHandle, ExecSession, ExecSessionId};
pub use id::ContainerId;
pub use info::{ComponentInfo, RuntimeFeatures, RuntimeInfo};
pub use oci_spec::runtime::LinuxResources;
pub use options::{
    CreateOptions, CreatedContainer, NamedFd, PortProtocol, PortReservation, RestoreOptions,
};
pub use runtime::OciRuntime;
pub use signal::Signal;
pub use state::{ContainerState, ContainerStatus};
