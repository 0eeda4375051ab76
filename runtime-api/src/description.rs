//! What a caller tells a runtime driver about one container: where its
//! bundle and run files are, how its streams and logs are handled, what runs
//! when it exits, and how it is placed in cgroups. Built with
//! [`ContainerDescription::builder`], validated by
//! [`ContainerDescriptionBuilder::build`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{ContainerId, RuntimeError, Signal};

/// How conmon records the container's output (`-l DRIVER:PATH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
pub struct LogConfig {
    /// The driver.
    pub driver: LogDriver,
    /// The log file for file drivers.
    pub path: Option<PathBuf>,
    /// The largest log size in bytes before conmon truncates; `None` or a
    /// value <= 0 means the driver's default.
    pub size_max: Option<i64>,
    /// A tag for the journald driver (already rendered).
    pub tag: Option<String>,
}

/// Whether and how the container is placed in cgroups (podman's
/// `--cgroups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupsMode {
    /// Container and conmon get cgroups.
    #[default]
    Enabled,
    /// No cgroups for the container (runtime must support it).
    Disabled,
    /// The container gets cgroups, conmon does not.
    NoConmon,
    /// The container goes into a sub-cgroup of the caller's cgroup.
    Split,
}

/// Who tells systemd that the container is ready (podman's `--sdnotify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SdNotifyMode {
    /// The driver sends `MAINPID` and `READY=1` once conmon is up.
    #[default]
    Conmon,
    /// The container sends `READY=1` itself through the socket conmon proxies.
    Container,
    /// Nobody sends anything; conmon gets no `NOTIFY_SOCKET`.
    Ignore,
}

/// A command conmon runs after the container exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitCommand {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// How long conmon waits before running it.
    pub delay: Option<Duration>,
}

/// Everything a driver needs to know about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDescription {
    id: ContainerId,
    name: String,
    bundle: PathBuf,
    run_dir: PathBuf,
    conmon_pidfile: PathBuf,
    terminal: bool,
    stdin: bool,
    leave_stdin_open: bool,
    log: LogConfig,
    exit_command: Option<ExitCommand>,
    preserved_fds: u32,
    stop_signal: Signal,
    cgroup_parent: Option<String>,
    cgroups_mode: CgroupsMode,
    no_cgroups: bool,
    sd_notify: SdNotifyMode,
    privileged: bool,
    static_dir: Option<PathBuf>,
    mount_point: Option<PathBuf>,
    volume_path: Option<PathBuf>,
}

impl ContainerDescription {
    /// Starts a builder. `bundle` holds `config.json`; `run_dir` receives the
    /// container pidfile, the runtime's error log and (by default) conmon's
    /// pidfile.
    pub fn builder(
        id: ContainerId,
        bundle: impl Into<PathBuf>,
        run_dir: impl Into<PathBuf>,
    ) -> ContainerDescriptionBuilder {
        let run_dir = run_dir.into();
        ContainerDescriptionBuilder {
            inner: ContainerDescription {
                name: id.to_string(),
                id,
                bundle: bundle.into(),
                conmon_pidfile: run_dir.join("conmon.pid"),
                run_dir,
                terminal: false,
                stdin: false,
                leave_stdin_open: false,
                log: LogConfig::default(),
                exit_command: None,
                preserved_fds: 0,
                stop_signal: Signal::TERM,
                cgroup_parent: None,
                cgroups_mode: CgroupsMode::default(),
                no_cgroups: false,
                sd_notify: SdNotifyMode::default(),
                privileged: false,
                static_dir: None,
                mount_point: None,
                volume_path: None,
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
    /// Where the runtime writes the container's pid.
    pub fn container_pidfile(&self) -> PathBuf {
        self.run_dir.join("pidfile")
    }
    /// Where the runtime writes its JSON error log.
    pub fn oci_log_path(&self) -> PathBuf {
        self.run_dir.join("oci-log")
    }
    /// Where conmon writes its own pid.
    pub fn conmon_pidfile(&self) -> &Path {
        &self.conmon_pidfile
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
    /// The command conmon runs after the container exits.
    pub fn exit_command(&self) -> Option<&ExitCommand> {
        self.exit_command.as_ref()
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
    /// The cgroups mode.
    pub fn cgroups_mode(&self) -> CgroupsMode {
        self.cgroups_mode
    }
    /// Whether the runtime is asked to create no cgroups at all.
    pub fn no_cgroups(&self) -> bool {
        self.no_cgroups
    }
    /// The sd-notify mode.
    pub fn sd_notify(&self) -> SdNotifyMode {
        self.sd_notify
    }
    /// Whether the container is privileged. A user-namespaced container
    /// that is not privileged gets a conmon whose view of `/sys/kernel` is
    /// emptied (podman's `createRootlessContainer`).
    pub fn privileged(&self) -> bool {
        self.privileged
    }
    /// The engine's static directory for this container (podman's
    /// `StaticDir`), made reachable for a user-namespaced container.
    pub fn static_dir(&self) -> Option<&Path> {
        self.static_dir.as_deref()
    }
    /// Where the container's root filesystem is mounted (podman's
    /// `Mountpoint`), made reachable for a user-namespaced container.
    pub fn mount_point(&self) -> Option<&Path> {
        self.mount_point.as_deref()
    }
    /// The engine's volume directory (podman's `VolumePath`), made
    /// reachable for a user-namespaced container.
    pub fn volume_path(&self) -> Option<&Path> {
        self.volume_path.as_deref()
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
    /// Where conmon writes its pid (default `<run dir>/conmon.pid`).
    pub fn conmon_pidfile(mut self, path: impl Into<PathBuf>) -> Self {
        self.inner.conmon_pidfile = path.into();
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
    /// The command conmon runs when the container exits.
    pub fn exit_command(mut self, command: ExitCommand) -> Self {
        self.inner.exit_command = Some(command);
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
    /// The cgroups mode.
    pub fn cgroups_mode(mut self, mode: CgroupsMode) -> Self {
        self.inner.cgroups_mode = mode;
        self
    }
    /// Ask the runtime to create no cgroups.
    pub fn no_cgroups(mut self, on: bool) -> Self {
        self.inner.no_cgroups = on;
        self
    }
    /// The sd-notify mode.
    pub fn sd_notify(mut self, mode: SdNotifyMode) -> Self {
        self.inner.sd_notify = mode;
        self
    }
    /// Mark the container privileged (default: not).
    pub fn privileged(mut self, on: bool) -> Self {
        self.inner.privileged = on;
        self
    }
    /// The engine's static directory for this container.
    pub fn static_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.inner.static_dir = Some(dir.into());
        self
    }
    /// Where the container's root filesystem is mounted.
    pub fn mount_point(mut self, dir: impl Into<PathBuf>) -> Self {
        self.inner.mount_point = Some(dir.into());
        self
    }
    /// The engine's volume directory.
    pub fn volume_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.inner.volume_path = Some(dir.into());
        self
    }

    /// Checks the description and returns it.
    ///
    /// Rejected: relative bundle or run directories, a file log driver
    /// without a path, an exit command without a program, more than 1024
    /// preserved fds.
    pub fn build(self) -> Result<ContainerDescription, RuntimeError> {
        let c = self.inner;
        let invalid = |m: String| Err(RuntimeError::InvalidArgument(m));
        if !c.bundle.is_absolute() {
            return invalid(format!("bundle path {:?} must be absolute", c.bundle));
        }
        if !c.run_dir.is_absolute() {
            return invalid(format!("run directory {:?} must be absolute", c.run_dir));
        }
        if !c.conmon_pidfile.is_absolute() {
            return invalid(format!(
                "conmon pidfile {:?} must be absolute",
                c.conmon_pidfile
            ));
        }
        if matches!(
            c.log.driver,
            LogDriver::KubernetesFile | LogDriver::JsonFile
        ) && c.log.path.is_none()
        {
            return invalid("the k8s-file and json-file log drivers need a log path".into());
        }
        if let Some(cmd) = &c.exit_command {
            if cmd.program.as_os_str().is_empty() {
                return invalid("the exit command has an empty program".into());
            }
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
        assert_eq!(c.conmon_pidfile(), Path::new("/r/conmon.pid"));
        assert_eq!(c.container_pidfile(), Path::new("/r/pidfile"));
        assert_eq!(c.oci_log_path(), Path::new("/r/oci-log"));
        assert_eq!(c.stop_signal(), Signal::TERM);
        assert_eq!(c.sd_notify(), SdNotifyMode::Conmon);
        assert_eq!(c.cgroups_mode(), CgroupsMode::Enabled);
        assert!(!c.privileged());
        assert_eq!(c.static_dir(), None);
        assert_eq!(c.mount_point(), None);
        assert_eq!(c.volume_path(), None);
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
                    .exit_command(ExitCommand {
                        program: PathBuf::new(),
                        args: vec![],
                        delay: None,
                    }),
                "exit command",
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
