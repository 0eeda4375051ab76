//! What a server is built from: its directories, its runtime handlers
//! (each an `Arc<dyn OciRuntime>`), the pause image and the time limits.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use runtime_api::{ContainerDescriptionBuilder, OciRuntime};

use crate::error::{CriError, Result};
use crate::streaming::config::StreamingConfig;

/// Adds runtime-specific settings (driver [`Extensions`](runtime_api::Extensions))
/// to every container description a handler's runtime receives.
pub type DescriptionHook =
    Arc<dyn Fn(ContainerDescriptionBuilder) -> ContainerDescriptionBuilder + Send + Sync>;

/// How a handler's containers share the pod's namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PodNamespaceJoin {
    /// Containers join the infra container's namespaces through
    /// `/proc/<infra pid>/ns/...` paths in their OCI spec (runc, crun).
    #[default]
    Paths,
    /// Each container is a sandbox of its own (no namespace paths): for
    /// runtimes that cannot join another sandbox's namespaces, such as
    /// runsc without its multi-container mode. Containers of one pod then
    /// share neither network, IPC nor hostname.
    Isolated,
}

/// One runtime handler (`RunPodSandboxRequest.runtime_handler`).
#[derive(Clone)]
pub struct RuntimeHandler {
    /// The name the kubelet asks for (`runc`, `runsc`).
    pub name: String,
    /// The runtime running this handler's pods.
    pub runtime: Arc<dyn OciRuntime>,
    /// Settings added to every description the runtime receives.
    pub describe: Option<DescriptionHook>,
    /// How containers reach the pod's namespaces.
    pub join: PodNamespaceJoin,
}

impl RuntimeHandler {
    /// A handler `name` running on `runtime`, joining namespaces by path.
    pub fn new(name: impl Into<String>, runtime: Arc<dyn OciRuntime>) -> Self {
        Self {
            name: name.into(),
            runtime,
            describe: None,
            join: PodNamespaceJoin::Paths,
        }
    }

    /// This handler with `hook` applied to every description.
    #[must_use]
    pub fn with_description_hook(mut self, hook: DescriptionHook) -> Self {
        self.describe = Some(hook);
        self
    }

    /// This handler with namespace joining `join`.
    #[must_use]
    pub fn with_join(mut self, join: PodNamespaceJoin) -> Self {
        self.join = join;
        self
    }
}

impl fmt::Debug for RuntimeHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeHandler")
            .field("name", &self.name)
            .field("runtime", &self.runtime.name())
            .field("describe", &self.describe.is_some())
            .field("join", &self.join)
            .finish()
    }
}

/// Limits of the server's calls into a runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTimeouts {
    /// `create` (the conmon driver's own launch limit is 240 s).
    pub create: Duration,
    /// `start`, `status`, `kill`, `delete`, `update_resources`, `features`.
    pub call: Duration,
    /// How long a stop waits after SIGKILL.
    pub kill_wait: Duration,
    /// The longest an `ExecSync` without a timeout of its own may run.
    pub exec_sync_max: Duration,
}

impl Default for CallTimeouts {
    fn default() -> Self {
        Self {
            create: Duration::from_secs(300),
            call: Duration::from_secs(60),
            kill_wait: Duration::from_secs(10),
            exec_sync_max: Duration::from_secs(3600),
        }
    }
}

/// The cgroup driver reported by `RuntimeConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CgroupDriver {
    /// cgroupfs paths.
    #[default]
    Cgroupfs,
    /// systemd slices.
    Systemd,
}

/// A server's configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Persistent state: the image store (`images/`), pod and container
    /// bundles (`pods/`, `containers/`).
    pub state_dir: PathBuf,
    /// Run files handed to the runtime (one directory per container).
    pub run_dir: PathBuf,
    /// The runtime handlers; at least one.
    pub handlers: Vec<RuntimeHandler>,
    /// The handler of a pod that names none.
    pub default_handler: String,
    /// The image the infra containers run (it must be in the store).
    pub pause_image: String,
    /// The infra container's command; empty takes the pause image's own
    /// entrypoint and cmd.
    pub pause_command: Vec<String>,
    /// Call limits.
    pub timeouts: CallTimeouts,
    /// The most bytes of stdout (and of stderr) an `ExecSync` returns;
    /// output beyond is dropped.
    pub exec_sync_output_limit: usize,
    /// The cgroup driver reported to the kubelet.
    pub cgroup_driver: CgroupDriver,
    /// The streaming server behind `Exec`, `Attach` and `PortForward`.
    pub streaming: StreamingConfig,
}

impl ServerConfig {
    /// A configuration with one handler, `handler`, as the default, and
    /// the defaults for everything else: pause image
    /// `registry.k8s.io/pause:3.10` with its own command, 16 MiB of exec
    /// output, cgroupfs, the streaming server's defaults.
    pub fn new(
        state_dir: impl Into<PathBuf>,
        run_dir: impl Into<PathBuf>,
        handler: RuntimeHandler,
    ) -> Self {
        Self {
            state_dir: state_dir.into(),
            run_dir: run_dir.into(),
            default_handler: handler.name.clone(),
            handlers: vec![handler],
            pause_image: "registry.k8s.io/pause:3.10".into(),
            pause_command: Vec::new(),
            timeouts: CallTimeouts::default(),
            exec_sync_output_limit: 16 << 20,
            cgroup_driver: CgroupDriver::Cgroupfs,
            streaming: StreamingConfig::default(),
        }
    }

    /// Checks absolute directories, unique handler names, a default handler
    /// that exists and non-zero limits.
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(CriError::InvalidArgument(m));
        for (what, dir) in [("state", &self.state_dir), ("run", &self.run_dir)] {
            if !dir.is_absolute() {
                return invalid(format!(
                    "the {what} directory {} is not absolute",
                    dir.display()
                ));
            }
        }
        if self.handlers.is_empty() {
            return invalid("no runtime handler is configured".into());
        }
        for (i, h) in self.handlers.iter().enumerate() {
            if h.name.is_empty() {
                return invalid("a runtime handler has an empty name".into());
            }
            if self.handlers[..i].iter().any(|o| o.name == h.name) {
                return invalid(format!("runtime handler {:?} is configured twice", h.name));
            }
        }
        if !self.handlers.iter().any(|h| h.name == self.default_handler) {
            return invalid(format!(
                "the default runtime handler {:?} is not configured",
                self.default_handler
            ));
        }
        let t = &self.timeouts;
        if [t.create, t.call, t.kill_wait, t.exec_sync_max].contains(&Duration::ZERO) {
            return invalid("call timeouts must not be zero".into());
        }
        if self.exec_sync_output_limit == 0 {
            return invalid("the exec output limit must not be zero".into());
        }
        self.streaming.validate()
    }
}
