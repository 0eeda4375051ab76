//! What a caller tells a runtime driver about one container: where its
//! bundle and run files are, how its streams and logs are handled, and its
//! parent cgroup. Built with [`ContainerDescription::builder`], validated by
//! [`ContainerDescriptionBuilder::build`]. Settings only one driver
//! understands (the conmon driver's monitor pidfile, exit command or
//! sd-notify mode) ride along as [`Extensions`].

use std::path::{Path, PathBuf};

use crate::{ContainerId, Extensions, RuntimeError, Signal};

/// How conmon records the container's output (`-l DRIVER:PATH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogDriver {
    /// The Kubernetes CRI log format (`k8s-file`), the default.
    #[default]
    KubernetesFile,
    /// Accepted for Docker compatibility; written as `k8s-file`, as podman does.
    JsonFile,
    /// The systemd journal.
    Journald,
    /// No log at all.
    None,
    /// The container's stdio is conmon's own (no log, no attach).
    Passthrough,
}

impl LogDriver {
    /// Parses the names podman accepts: `k8s-file`, `json-file`, `journald`,
    /// `none`, `passthrough`.
    pub fn parse(name: &str) -> Result<Self, RuntimeError> {
        Ok(match name {
            "k8s-file" => Self::KubernetesFile,
            "json-file" => Self::JsonFile,
            "journald" => Self::Journald,
            "none" => Self::None,
            "passthrough" => Self::Passthrough,
            other => {
                return Err(RuntimeError::InvalidArgument(format!(
                    "unknown log driver {other:?}: expected k8s-file, json-file, journald, none or passthrough"
                )))
            }
        })
    }
}

/// The container's log settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LogConfig {
    /// The driver.
    pub driver: LogDriver,
    /// The log file for file drivers.
    pub path: Option<PathBuf>,
    /// The largest log size in bytes before conmon truncates; `None` or a
    /// value <= 0 means the driver's default.
    pub size_max: Option<i64>,
    /// The log tag. Drivers that follow podman render it as a template
    /// (`{{.ID}}`, `{{.Name}}`, ...) against the container before use.
    pub tag: Option<String>,
}

impl LogConfig {
    /// A configuration for `driver` with no path, size limit or tag.
    ///
    /// ```
    /// use runtime_api::{LogConfig, LogDriver};
    /// let log = LogConfig::new(LogDriver::Journald).with_tag("web").with_size_max(4096);
    /// assert_eq!(log.tag.as_deref(), Some("web"));
    /// ```
    pub fn new(driver: LogDriver) -> Self {
        Self {
            driver,
            ..Self::default()
        }
    }

    /// This configuration writing to `path`.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// This configuration with a size limit in bytes.
    #[must_use]
    pub fn with_size_max(mut self, bytes: i64) -> Self {
        self.size_max = Some(bytes);
        self
    }

    /// This configuration with a tag.
    #[must_use]
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }
}

/// Everything a driver needs to know about one container.
/// Everything a driver needs to know about one container.
///
/// ```
/// use runtime_api::{ContainerDescription, ContainerId, LogDriver, Signal};
/// let c = ContainerDescription::builder(ContainerId::new("db")?, "/b/db", "/run/db")
///     .log(LogDriver::KubernetesFile, "/var/log/db.log")
///     .stop_signal(Signal::INT)
///     .build()?;
/// assert_eq!(c.stop_signal(), Signal::INT);
/// # Ok::<(), runtime_api::RuntimeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ContainerDescription {
    id: ContainerId,
    name: String,
    bundle: PathBuf,
    run_dir: PathBuf,
    terminal: bool,
    stdin: bool,
    leave_stdin_open: bool,
    log: LogConfig,
    preserved_fds: u32,
    stop_signal: Signal,
    cgroup_parent: Option<String>,
    privileged: bool,
    extensions: Extensions,
}

impl ContainerDescription {
    /// Starts a builder. `bundle` holds `config.json`; `run_dir` receives the
    /// driver's per-container run files (pidfiles, the runtime's error log).
    pub fn builder(
        id: ContainerId,
        bundle: impl Into<PathBuf>,
        run_dir: impl Into<PathBuf>,
    ) -> ContainerDescriptionBuilder {
        ContainerDescriptionBuilder {
            inner: ContainerDescription {
                name: id.to_string(),
                id,
                bundle: bundle.into(),
                run_dir: run_dir.into(),
                terminal: false,
                stdin: false,
                leave_stdin_open: false,
                log: LogConfig::default(),
                preserved_fds: 0,
                stop_signal: Signal::TERM,
                cgroup_parent: None,
                privileged: false,
                extensions: Extensions::default(),
            },
        }
    }

    /// The container id.
    pub fn id(&self) -> &ContainerId {
        &self.id
    }

    /// The human name (defaults to the id).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OCI bundle directory.
    pub fn bundle(&self) -> &Path {
        &self.bundle
    }

    /// The directory for the container's run files.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Whether the container gets a terminal.
    pub fn terminal(&self) -> bool {
        self.terminal
    }

    /// Whether the container's stdin is kept open for attach.
    pub fn stdin(&self) -> bool {
        self.stdin
    }

    /// Whether the container's stdin stays open when an attached client
    /// disconnects (so a client can detach and attach again).
    pub fn leave_stdin_open(&self) -> bool {
        self.leave_stdin_open
    }

    /// The log settings.
    pub fn log(&self) -> &LogConfig {
        &self.log
    }

    /// How many fds are passed through to the container (placed at 3..3+N).
    pub fn preserved_fds(&self) -> u32 {
        self.preserved_fds
    }

    /// The signal `stop` sends first.
    pub fn stop_signal(&self) -> Signal {
        self.stop_signal
    }

    /// The parent cgroup (a path for cgroupfs, a slice for systemd).
    pub fn cgroup_parent(&self) -> Option<&str> {
        self.cgroup_parent.as_deref()
    }

    /// Whether the container is privileged.
    pub fn privileged(&self) -> bool {
        self.privileged
    }

    /// Driver-specific settings.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }
}

/// Builder for [`ContainerDescription`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ContainerDescriptionBuilder {
    inner: ContainerDescription,
}

impl ContainerDescriptionBuilder {
    /// The human name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.inner.name = name.into();
        self
    }

    /// Give the container a terminal.
    pub fn terminal(mut self, on: bool) -> Self {
        self.inner.terminal = on;
        self
    }

    /// Keep the container's stdin open for attach.
    pub fn stdin(mut self, on: bool) -> Self {
        self.inner.stdin = on;
        self
    }

    /// Keep the container's stdin open when an attached client disconnects:
    /// without it, the first client's end of input (or detach) closes the
    /// container's stdin.
    pub fn leave_stdin_open(mut self, on: bool) -> Self {
        self.inner.leave_stdin_open = on;
        self
    }

    /// Log driver and path.
    pub fn log(mut self, driver: LogDriver, path: impl Into<PathBuf>) -> Self {
        self.inner.log.driver = driver;
        self.inner.log.path = Some(path.into());
        self
    }

    /// The whole log configuration.
    pub fn log_config(mut self, log: LogConfig) -> Self {
        self.inner.log = log;
        self
    }

    /// Pass `count` fds through to the container (the caller hands them to
    /// `create`).
    pub fn preserved_fds(mut self, count: u32) -> Self {
        self.inner.preserved_fds = count;
        self
    }

    /// The first signal `stop` sends.
    pub fn stop_signal(mut self, signal: Signal) -> Self {
        self.inner.stop_signal = signal;
        self
    }

    /// The parent cgroup.
    pub fn cgroup_parent(mut self, parent: impl Into<String>) -> Self {
        self.inner.cgroup_parent = Some(parent.into());
        self
    }

    /// Mark the container privileged.
    pub fn privileged(mut self, on: bool) -> Self {
        self.inner.privileged = on;
        self
    }

    /// Stores a driver-specific setting (one value per type).
    pub fn extension<T>(mut self, value: T) -> Self
    where
        T: std::any::Any + Send + Sync + Clone,
    {
        self.inner.extensions.insert(value);
        self
    }

    /// The driver-specific settings, to change in place (extension traits
    /// of drivers build their setters on this).
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.inner.extensions
    }

    /// Validates and returns the description: absolute bundle and run
    /// directory, a log path for the file drivers, at most 1024 preserved
    /// fds, a non-empty name.
    pub fn build(self) -> Result<ContainerDescription, RuntimeError> {
        let c = self.inner;
        let invalid = |m: String| Err(RuntimeError::InvalidArgument(m));
        if !c.bundle.is_absolute() {
            return invalid(format!("bundle path {:?} must be absolute", c.bundle));
        }
        if !c.run_dir.is_absolute() {
            return invalid(format!("run directory {:?} must be absolute", c.run_dir));
        }
        if matches!(
            c.log.driver,
            LogDriver::KubernetesFile | LogDriver::JsonFile
        ) && c.log.path.is_none()
        {
            return invalid("the k8s-file and json-file log drivers need a log path".into());
        }
        if c.preserved_fds > 1024 {
            return invalid(format!(
                "{} preserved fds requested; at most 1024 are supported",
                c.preserved_fds
            ));
        }
        if c.name.is_empty() {
            return invalid("the container name is empty".into());
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ContainerId {
        ContainerId::new("c1").unwrap()
    }

    #[test]
    fn defaults_follow_podman() {
        let c = ContainerDescription::builder(id(), "/b", "/r")
            .log(LogDriver::KubernetesFile, "/r/log")
            .build()
            .unwrap();
        assert_eq!(c.name(), "c1");
        assert_eq!(c.stop_signal(), Signal::TERM);
        assert!(!c.privileged());
        assert!(!c.terminal() && !c.stdin() && !c.leave_stdin_open());
        assert_eq!(c.cgroup_parent(), None);
        assert!(c.extensions().is_empty());
    }

    #[test]
    fn extensions_travel_with_the_description() {
        #[derive(Clone, Debug, PartialEq)]
        struct Monitor(&'static str);
        let c = ContainerDescription::builder(id(), "/b", "/r")
            .log(LogDriver::None, "/dev/null")
            .extension(Monitor("m"))
            .build()
            .unwrap();
        assert_eq!(c.clone().extensions().get::<Monitor>(), Some(&Monitor("m")));
    }

    #[test]
    fn build_rejects_unusable_descriptions_by_name() {
        let cases: Vec<(ContainerDescriptionBuilder, &str)> = vec![
            (
                ContainerDescription::builder(id(), "b", "/r"),
                "bundle path",
            ),
            (
                ContainerDescription::builder(id(), "/b", "r"),
                "run directory",
            ),
            (
                ContainerDescription::builder(id(), "/b", "/r"),
                "need a log path",
            ),
            (
                ContainerDescription::builder(id(), "/b", "/r")
                    .log_config(LogConfig {
                        driver: LogDriver::None,
                        ..LogConfig::default()
                    })
                    .preserved_fds(5000),
                "preserved fds",
            ),
            (
                ContainerDescription::builder(id(), "/b", "/r")
                    .log(LogDriver::Journald, "")
                    .name(""),
                "name is empty",
            ),
        ];
        for (builder, needle) in cases {
            let err = builder.build().unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn log_driver_names() {
        assert_eq!(LogDriver::parse("json-file").unwrap(), LogDriver::JsonFile);
        assert_eq!(
            LogDriver::parse("passthrough").unwrap(),
            LogDriver::Passthrough
        );
        assert!(LogDriver::parse("syslog")
            .unwrap_err()
            .to_string()
            .contains("\"syslog\""));
    }
}
