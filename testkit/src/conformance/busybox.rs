//! [`BusyboxTarget`]: runs the suite's workloads as `sh -c` scripts in
//! busybox bundles, for any runtime that runs real OCI bundles (the conmon
//! driver with runc, runsc, crun...). The container's init is PID 1 of its
//! pid namespace, which the kernel shields from signals it has no handler
//! for: scripts that must die of SIGTERM install a trap.

use std::sync::Arc;

use async_trait::async_trait;
use runtime_api::{ContainerDescription, ContainerId, ExecConfig, LogDriver, OciRuntime};

use super::target::{ContainerSpec, Prepared, Target, Workload};
use crate::BundleBuilder;

/// Busybox bundles for a runtime that runs real containers.
pub struct BusyboxTarget {
    runtime: Arc<dyn OciRuntime>,
    rootless: Option<crate::RootlessMapping>,
    customize: Arc<
        dyn Fn(runtime_api::ContainerDescriptionBuilder) -> runtime_api::ContainerDescriptionBuilder
            + Send
            + Sync,
    >,
    reopen: Option<Arc<dyn Fn() -> Arc<dyn OciRuntime> + Send + Sync>>,
}

impl BusyboxTarget {
    /// Busybox bundles for `runtime`.
    pub fn new(runtime: Arc<dyn OciRuntime>) -> Self {
        Self {
            runtime,
            rootless: None,
            customize: Arc::new(|b| b),
            reopen: None,
        }
    }

    /// Makes [`Target::reopened`] answer `reopen()`: a new instance of the
    /// runtime over the same state.
    pub fn reopen_with(
        mut self,
        reopen: impl Fn() -> Arc<dyn OciRuntime> + Send + Sync + 'static,
    ) -> Self {
        self.reopen = Some(Arc::new(reopen));
        self
    }

    /// Builds rootless bundles with `mapping` (for a runtime driven by an
    /// unprivileged user).
    pub fn rootless(mut self, mapping: crate::RootlessMapping) -> Self {
        self.rootless = Some(mapping);
        self
    }

    /// Applies `f` to every description before it is built (a driver's own
    /// settings, for instance).
    pub fn customize(
        mut self,
        f: impl Fn(runtime_api::ContainerDescriptionBuilder) -> runtime_api::ContainerDescriptionBuilder
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.customize = Arc::new(f);
        self
    }
}

/// Where the host directory holding the readiness file is mounted in
/// every container the target prepares.
pub const READY_DIR: &str = "/.conformance-ready";

/// The readiness file's name in that directory.
const READY_NAME: &str = "ready";

/// Shell text that announces the installed handler: the readiness file is
/// written and renamed into place (an exec, whose container may lack the
/// directory, goes on silently).
const ANNOUNCE_READY: &str = "{ echo 0 > /.conformance-ready/ready.tmp && mv /.conformance-ready/ready.tmp /.conformance-ready/ready; } 2>/dev/null";

/// The shell script that runs `workload` in busybox.
pub fn shell_script(workload: &Workload) -> String {
    // A loop of short sleeps, not one long sleep: the trap runs only
    // between commands.
    const IDLE: &str = "while :; do sleep 0.05; done";
    match workload {
        Workload::Exit(code) => format!("exit {code}"),
        Workload::Print {
            stdout,
            stderr,
            code,
        } => format!(
            "printf %s {} ; printf %s {} >&2; exit {code}",
            quote(stdout),
            quote(stderr)
        ),
        Workload::UntilSignalled => format!("trap 'exit 143' TERM; {ANNOUNCE_READY}; {IDLE}"),
        Workload::IgnoreTerm => format!("trap '' TERM; {ANNOUNCE_READY}; {IDLE}"),
        Workload::Cat => "exec cat".into(),
        Workload::ReportSize { rows, cols } => {
            format!("while [ \"$(stty size)\" != '{rows} {cols}' ]; do sleep 0.05; done; stty size")
        }
    }
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[async_trait]
impl Target for BusyboxTarget {
    fn runtime(&self) -> Arc<dyn OciRuntime> {
        Arc::clone(&self.runtime)
    }

    fn reopened(&self) -> Option<Arc<dyn OciRuntime>> {
        self.reopen.as_ref().map(|reopen| reopen())
    }

    async fn prepare(&self, id: ContainerId, spec: &ContainerSpec) -> Result<Prepared, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // The readiness file comes through a bind mount of a host
        // directory: a write to the root filesystem may stay inside a
        // sandbox (runsc keeps one), a write to a bind mount reaches the
        // host.
        let ready_dir = dir.path().join("ready");
        std::fs::create_dir(&ready_dir).map_err(|e| e.to_string())?;
        let mount = oci_spec::runtime::MountBuilder::default()
            .destination(READY_DIR)
            .typ("bind")
            .source(&ready_dir)
            .options(vec!["rbind".to_string(), "rw".to_string()])
            .build()
            .map_err(|e| e.to_string())?;
        let mut builder = BundleBuilder::new()
            .in_dir(dir.path())
            .args(["sh", "-c", &shell_script(&spec.workload)])
            .terminal(spec.terminal)
            .customize(move |spec| {
                let mut mounts = spec.mounts().clone().unwrap_or_default();
                mounts.push(mount);
                spec.set_mounts(Some(mounts));
            });
        if let Some(mapping) = &self.rootless {
            builder = builder.rootless(mapping.clone());
        }
        let bundle = builder.build().map_err(|e| e.to_string())?;
        let builder = ContainerDescription::builder(id, bundle.path(), dir.path().join("run"))
            .terminal(spec.terminal)
            .stdin(spec.stdin)
            .log(LogDriver::KubernetesFile, dir.path().join("ctr.log"));
        let description = (self.customize)(builder)
            .build()
            .map_err(|e| e.to_string())?;
        let prepared = Prepared::new(description, Box::new((bundle, dir)));
        Ok(match spec.workload {
            Workload::UntilSignalled | Workload::IgnoreTerm => {
                prepared.with_ready_file(ready_dir.join(READY_NAME))
            }
            _ => prepared,
        })
    }

    fn exec_config(&self, workload: &Workload) -> ExecConfig {
        let mut config = ExecConfig::new(["sh", "-c", &shell_script(workload)]);
        config.stdin = matches!(workload, Workload::Cat);
        config.terminal = matches!(workload, Workload::ReportSize { .. });
        config
    }
}
