//! A Kubernetes CRI v1 server (`RuntimeService` and `ImageService` over
//! gRPC on a Unix socket) built only on `Arc<dyn OciRuntime>`: any runtime
//! that passes the conformance suite can run a kubelet's pods. The conmon
//! driver is chosen only in the binary.
//!
//! - [`ServerConfig`] names the directories, the runtime handlers (`runc`,
//!   `runsc`; one `Arc<dyn OciRuntime>` each), the pause image and the
//!   call limits.
//! - [`Engine`] keeps the pods and containers (the runtime keeps no list),
//!   in memory and as one crash-safe record each on disk, so that a
//!   restarted server takes them back ([`Recovery`]), and runs the CRI
//!   operations: an infra container per pod owning new
//!   network (loopback only), IPC and UTS namespaces, containers joining
//!   them through `/proc/<infra pid>/ns/...` paths.
//! - [`images::ImageStore`] is a local store without a registry client:
//!   images arrive by [`images::ImageStore::import_layout`] (the binary's
//!   `import` subcommand); layers are unpacked, whiteouts applied, into a
//!   root filesystem per container.
//! - [`spec`] turns CRI configurations into OCI specs.
//! - [`stats`] reads container and pod figures from the host's cgroups
//!   (v1 or v2, found from each init pid), the writable layers and the
//!   pod's loopback counters, for the stats calls.
//! - [`events`] streams the lifecycle events of `GetContainerEvents`, fed
//!   by the engine's operations and by one exit watcher per started
//!   container ([`Engine::watch_exit`]).
//! - `CheckpointContainer` goes through the runtime's checkpoint feature,
//!   the container left running ([`Engine::checkpoint_container`]).
//! - [`serve`](serve()) serves both services on a socket from [`bind`],
//!   and the [`streaming`] server beside them: `Exec`, `Attach` and
//!   `PortForward` answer one-time URLs that open WebSocket sessions
//!   (Kubernetes' `v4`/`v5.channel.k8s.io` and port-forward channels),
//!   configured by [`StreamingConfig`].
//!
//! `docs/cri.md` lists every CRI call as supported, partial or not yet.
//!
//! ```no_run
//! use std::sync::Arc;
//! use cri_server::{bind, serve, Engine, RuntimeHandler, ServerConfig};
//!
//! # async fn demo(runtime: Arc<dyn runtime_api::OciRuntime>) -> cri_server::Result<()> {
//! let config = ServerConfig::new("/var/lib/cri-server", "/run/cri-server", RuntimeHandler::new("runc", runtime));
//! let engine = Arc::new(Engine::new(config)?);
//! let listener = bind("/run/cri-server/cri.sock".as_ref())?;
//! serve(engine, listener, std::future::pending()).await
//! # }
//! ```

mod checkpoint;
mod config;
mod durable;
mod engine;
mod error;
pub mod events;
mod ids;
pub mod images;
mod serve;
mod service;
pub mod spec;
pub mod stats;
pub mod streaming;

pub use config::{
    CallTimeouts, CgroupDriver, DescriptionHook, PodNamespaceJoin, RuntimeHandler, ServerConfig,
};
pub use engine::{ContainerRecord, Engine, ExecOutput, PodRecord, Recovery};
pub use error::{runtime_code, CriError, Result};
pub use events::{EventStream, EventsLagged};
pub use k8s_cri;
pub use serve::{bind, serve, MAX_MESSAGE};
pub use service::{CriService, CRI_API_VERSION, RUNTIME_NAME};
pub use streaming::StreamingConfig;
