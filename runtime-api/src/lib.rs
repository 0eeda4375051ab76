//! The contract between a container engine and an OCI runtime driver.
//!
//! This crate holds what every driver shares and nothing that runs a process:
//! the [`OciRuntime`] trait (a required core and optional [`Feature`]s), the
//! [`ContainerDescription`] a caller hands to it, the [`ContainerState`] it
//! reports, validated [`ContainerId`]s, signals, runtime information and one
//! error type, [`RuntimeError`], whose [`exit_code`](RuntimeError::exit_code)
//! follows podman's CLI (125, 126, 127). Nothing here is specific to conmon
//! or any other driver: settings only one driver understands travel as
//! [`Extensions`] on the description, and its own failures as
//! [`RuntimeError::Driver`] with a typed source.
//!
//! The [`runtime`] module documentation shows a complete
//! minimal implementation; `testkit`'s conformance suite proves one.
//!
//! # Dependencies
//!
//! The attach and exec types carry tokio's `AsyncRead`/`AsyncWrite` streams
//! and a `watch` channel for cancellation, so this crate depends on tokio
//! (its `io-util` and `sync` parts; no runtime is started by it).
//! `oci-spec` provides [`LinuxResources`]; `async-trait` makes the trait
//! object safe.
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
mod extensions;
mod feature;
mod id;
mod info;
mod options;
pub mod runtime;
mod signal;
mod state;

pub use attach::{
    AttachCancel, AttachOptions, AttachOutcome, AttachReady, AttachStreams, Framing, InputStream,
    OutputStream, TerminalSize,
};
pub use checkpoint::CheckpointOptions;
pub use description::{ContainerDescription, ContainerDescriptionBuilder, LogConfig, LogDriver};
pub use error::{Result, RuntimeError};
pub use exec::{ExecCompletion, ExecConfig, ExecFuture, ExecHandle, ExecSession, ExecSessionId};
pub use extensions::Extensions;
pub use feature::{Feature, FeatureSet};
pub use id::ContainerId;
pub use info::{ComponentInfo, RuntimeInfo};
pub use oci_spec::runtime::LinuxResources;
pub use options::{CreateOptions, CreatedContainer, RestoreOptions};
pub use runtime::{OciRuntime, KILL_WAIT};
pub use signal::Signal;
pub use state::{ContainerState, ContainerStatus};
