//! How a [`ConmonRuntime`](crate::ConmonRuntime) is set up: which runtime and
//! conmon to use, the runtime's global flags, the cgroup manager, where the
//! exit files, sockets and persist directories live, and how long each
//! operation may take. Everything is plain data with podman's defaults.

mod builder;
pub(crate) mod container;
pub(crate) mod rootless;
mod validate;

pub use builder::ConmonConfigBuilder;
pub use validate::ConfigError;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use runtime_api::RuntimeError;

/// Whether conmon's SELinux label follows the host (podman's behaviour:
/// the engine's context at level `s0`) or is never set. The
/// `selinux-launch` crate's policy, re-exported.
pub use selinux_launch::LaunchPolicy as SelinuxPolicy;

/// Which cgroup manager the runtime and conmon use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupManager {
    /// Plain cgroup filesystem paths.
    #[default]
    Cgroupfs,
    /// systemd units (conmon gets `-s`).
    Systemd,
}

impl FromStr for CgroupManager {
    type Err = RuntimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cgroupfs" => Ok(Self::Cgroupfs),
            "systemd" => Ok(Self::Systemd),
            other => Err(RuntimeError::InvalidArgument(format!(
                "unknown cgroup manager {other:?}: expected \"cgroupfs\" or \"systemd\""
            ))),
        }
    }
}

/// The verbosity conmon is started with (`--log-level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings (podman's default).
    #[default]
    Warning,
    /// Informational messages.
    Info,
    /// Debug output; runtimes then print their errors unformatted, so no
    /// JSON error log is requested.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The word conmon and logrus use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }

    /// The level matching the `tracing` subscriber's current maximum;
    /// podman's default, [`LogLevel::Warning`], when no subscriber listens.
    pub fn from_tracing() -> Self {
        Self::from_filter(tracing::level_filters::LevelFilter::current())
    }

    /// The level matching a `tracing` level filter. `OFF` is what `tracing`
    /// reports when no subscriber is installed: conmon then gets podman's
    /// default, [`LogLevel::Warning`], rather than losing its warnings.
    ///
    /// ```
    /// use conmon_driver::LogLevel;
    /// use tracing::level_filters::LevelFilter;
    /// assert_eq!(LogLevel::from_filter(LevelFilter::OFF), LogLevel::Warning);
    /// assert_eq!(LogLevel::from_filter(LevelFilter::ERROR), LogLevel::Error);
    /// ```
    pub fn from_filter(filter: tracing::level_filters::LevelFilter) -> Self {
        use tracing::level_filters::LevelFilter;
        match filter {
            LevelFilter::TRACE => Self::Trace,
            LevelFilter::DEBUG => Self::Debug,
            LevelFilter::INFO => Self::Info,
            LevelFilter::ERROR => Self::Error,
            _ => Self::Warning,
        }
    }
}

/// Per-operation limits. A limit that passes kills what the operation
/// started and returns [`RuntimeError::Timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// conmon's launch up to the sync record (podman: 240 s).
    pub create: Duration,
    /// `RUNTIME start`.
    pub start: Duration,
    /// `RUNTIME state`.
    pub state: Duration,
    /// `RUNTIME kill`, `pause`, `resume`.
    pub signal: Duration,
    /// `RUNTIME delete --force`, and the wait for conmon to leave after it.
    pub delete: Duration,
    /// How long `stop` waits for the process after SIGKILL (podman: 5 s).
    pub kill_wait: Duration,
    /// Probes: `--version`, `checkpoint --help`, package queries.
    pub probe: Duration,
    /// `RUNTIME checkpoint` and `RUNTIME update`.
    pub checkpoint: Duration,
    /// Sending an sd-notify datagram.
    pub notify: Duration,
    /// Connecting to the attach socket, and writing a resize to `ctl`.
    pub attach: Duration,
    /// An exec session's launch, up to the process's pid.
    pub exec: Duration,
    /// How long an attached exec session's completion waits for the exit
    /// code once its streams have ended.
    pub exec_completion: Duration,
    /// Placing conmon in its cgroup: for a systemd scope, connecting to
    /// the bus, `StartTransientUnit` and the wait for `JobRemoved`
    /// together.
    pub placement: Duration,
}

impl Timeouts {
    /// Every limit with its name, for validation and messages.
    pub fn named(&self) -> [(&'static str, Duration); 13] {
        [
            ("create", self.create),
            ("start", self.start),
            ("state", self.state),
            ("signal", self.signal),
            ("delete", self.delete),
            ("kill wait", self.kill_wait),
            ("probe", self.probe),
            ("checkpoint", self.checkpoint),
            ("notify", self.notify),
            ("attach", self.attach),
            ("exec", self.exec),
            ("exec completion", self.exec_completion),
            ("placement", self.placement),
        ]
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            create: Duration::from_secs(240),
            start: Duration::from_secs(60),
            state: Duration::from_secs(30),
            signal: Duration::from_secs(30),
            delete: Duration::from_secs(60),
            kill_wait: Duration::from_secs(5),
            probe: Duration::from_secs(10),
            checkpoint: Duration::from_secs(300),
            notify: Duration::from_secs(5),
            attach: Duration::from_secs(10),
            exec: Duration::from_secs(60),
            exec_completion: Duration::from_secs(60),
            placement: Duration::from_secs(30),
        }
    }
}

/// The settings of a [`ConmonRuntime`](crate::ConmonRuntime).
///
/// ```
/// use conmon_driver::{CgroupManager, ConmonConfig};
///
/// let mut config = ConmonConfig::new("runsc", "/run/my-engine");
/// config.runtime_flags = vec!["--network=none".into()];
/// config.cgroup_manager = "cgroupfs".parse::<CgroupManager>()?;
/// assert!("openrc".parse::<CgroupManager>().is_err());
/// # Ok::<(), runtime_api::RuntimeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConmonConfig {
    /// The runtime's name (`runc`), searched for on `$PATH`; a value with
    /// a `/` is that file only, and its file name is the runtime's name.
    pub runtime_name: String,
    /// Candidate paths tried in order before `$PATH`; non-regular files are
    /// skipped.
    pub runtime_paths: Vec<PathBuf>,
    /// conmon's path; `None` searches podman's usual places, then `$PATH`.
    pub conmon_path: Option<PathBuf>,
    /// Global flags put before every runtime subcommand, and passed to
    /// conmon as `--runtime-arg`.
    pub runtime_flags: Vec<String>,
    /// The cgroup manager.
    pub cgroup_manager: CgroupManager,
    /// Holds `exits/`, `socket/` and `persist/` (created 0750).
    pub tmp_dir: PathBuf,
    /// The default largest log size; <= 0 means unlimited.
    pub log_size_max: i64,
    /// Pass `--no-pivot` (for runtimes on ramfs roots).
    pub no_pivot: bool,
    /// Whether a new session keyring is made for each container.
    pub enable_keyring: bool,
    /// Whether conmon also logs to syslog.
    pub syslog: bool,
    /// conmon's verbosity.
    pub log_level: LogLevel,
    /// Variables conmon starts with, before the driver's own.
    pub conmon_env: Vec<(String, String)>,
    /// `XDG_RUNTIME_DIR` for conmon and runtime calls.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `HOME` for conmon, when set.
    pub home: Option<PathBuf>,
    /// The uid the caller runs as when rootless (`_CONTAINERS_ROOTLESS_UID`).
    /// [`ConmonConfig::new`] sets it when the effective uid is not 0.
    pub rootless_uid: Option<u32>,
    /// The rootless runtime directory [`ConmonConfig::new`] chose (also in
    /// [`ConmonConfig::xdg_runtime_dir`]); `None` as root.
    pub runtime_dir: Option<rootless::RuntimeDir>,
    /// The caller already set up its user namespace
    /// (`_CONTAINERS_USERNS_CONFIGURED`).
    pub userns_configured: bool,
    /// Runtimes (by base name) that write JSON error logs.
    pub runtimes_with_json_errors: Vec<String>,
    /// Runtimes that can run without cgroups.
    pub runtimes_without_cgroups: Vec<String>,
    /// Runtimes that run containers in VMs.
    pub runtimes_with_kvm: Vec<String>,
    /// systemd's notify socket (the caller's `NOTIFY_SOCKET`), used by the
    /// sd-notify modes.
    pub notify_socket: Option<PathBuf>,
    /// Per-operation limits.
    pub timeouts: Timeouts,
    /// Whether the engine runs as a systemd service; conmon then stays in
    /// the service's cgroup. [`ConmonConfig::new`] sets it from whether
    /// `INVOCATION_ID` is in the process environment at that moment (the
    /// only place the driver reads it; the placement decision itself reads
    /// no environment).
    pub invocation_id_set: bool,
    /// Whether the host has the unified cgroup v2 hierarchy only;
    /// [`ConmonConfig::new`] reads it from the host (the placement decision
    /// itself reads nothing).
    pub cgroup_v2: bool,
    /// The D-Bus address of the systemd manager used for conmon's scope
    /// (e.g. `unix:path=/run/my/bus`). `None`: the system bus, or the
    /// session bus when [`ConmonConfig::rootless_uid`] is set.
    pub systemd_bus_address: Option<String>,
    /// Which SELinux label conmon is launched with.
    pub selinux: SelinuxPolicy,
    /// Replaces what the driver would read from the host about SELinux
    /// (for tests): whether it is enabled, the current label, and the file
    /// the child writes the exec label to. `None` reads the real host and
    /// writes `/proc/thread-self/attr/exec`.
    pub selinux_host: Option<SelinuxHost>,
}

/// A stand-in for the host's SELinux state, see
/// [`ConmonConfig::selinux_host`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelinuxHost {
    /// Whether SELinux counts as enabled.
    pub enabled: bool,
    /// The engine's current label (`user:role:type[:level]`), if any.
    pub current_label: Option<String>,
    /// The file conmon's child writes its exec label to, between fork and
    /// exec. Must exist (it is opened for writing, not created). A relative
    /// path resolves in the child's working directory, the bundle.
    pub exec_attr_path: PathBuf,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl ConmonConfig {
    /// podman's defaults for runtime `runtime_name` with files under
    /// `tmp_dir`.
    pub fn new(runtime_name: impl Into<String>, tmp_dir: impl Into<PathBuf>) -> Self {
        let config = Self {
            runtime_name: runtime_name.into(),
            runtime_paths: Vec::new(),
            conmon_path: None,
            runtime_flags: Vec::new(),
            cgroup_manager: CgroupManager::Cgroupfs,
            tmp_dir: tmp_dir.into(),
            log_size_max: -1,
            no_pivot: false,
            enable_keyring: true,
            syslog: true,
            log_level: LogLevel::from_tracing(),
            conmon_env: vec![(
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            )],
            xdg_runtime_dir: Some(PathBuf::from("/run")),
            home: None,
            rootless_uid: None,
            runtime_dir: None,
            userns_configured: false,
            runtimes_with_json_errors: strings(&[
                "crun", "crun-vm", "runc", "kata", "runsc", "youki", "krun",
            ]),
            runtimes_without_cgroups: strings(&["crun", "crun-vm", "krun"]),
            runtimes_with_kvm: strings(&["kata", "kata-runtime", "kata-qemu", "kata-fc", "krun"]),
            notify_socket: None,
            timeouts: Timeouts::default(),
            invocation_id_set: std::env::var_os("INVOCATION_ID").is_some(),
            cgroup_v2: cgroup_placement::host_is_cgroup_v2(),
            systemd_bus_address: None,
            selinux: SelinuxPolicy::FollowHost,
            selinux_host: None,
        };
        match crate::launch::userns::effective_uid() {
            0 => config,
            uid => config.rootless_for(uid, rootless::RuntimeDirFacts::read(uid)),
        }
    }

    /// These settings for an unprivileged caller `uid` (podman's rootless
    /// mode): conmon is told the uid, the runtime directory is chosen from
    /// `facts` and given to every runtime and conmon call as
    /// `XDG_RUNTIME_DIR`, and the runtime keeps its state in
    /// `<runtime dir>/<runtime name>` (`--root`).
    pub fn rootless_for(mut self, uid: u32, facts: rootless::RuntimeDirFacts) -> Self {
        let dir = rootless::choose_runtime_dir(&facts);
        let root = dir.path.join(self.runtime_short_name());
        self.runtime_flags
            .push(format!("--root={}", root.display()));
        self.rootless_uid = Some(uid);
        self.xdg_runtime_dir = Some(dir.path.clone());
        self.runtime_dir = Some(dir);
        self
    }

    /// The runtime's file name (`runc`), however it was named (a name or a
    /// path).
    pub fn runtime_short_name(&self) -> &str {
        std::path::Path::new(&self.runtime_name)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }

    /// Whether the runtime can use cgroups for containers: as root, or
    /// rootless with cgroup v2 (delegation). Rootless on cgroup v1 it
    /// cannot pause, update resources or take a cgroup parent.
    pub fn cgroups_usable(&self) -> bool {
        self.rootless_uid.is_none() || self.cgroup_v2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::level_filters::LevelFilter;

    #[test]
    fn log_level_defaults_to_warning_without_a_subscriber() {
        // No unit test of this crate installs a subscriber.
        assert_eq!(LevelFilter::current(), LevelFilter::OFF);
        assert_eq!(LogLevel::from_tracing(), LogLevel::Warning);
        assert_eq!(
            ConmonConfig::new("runc", "/run/x").log_level,
            LogLevel::Warning
        );
    }

    #[test]
    fn log_level_follows_each_tracing_level() {
        for (filter, level) in [
            (LevelFilter::OFF, LogLevel::Warning),
            (LevelFilter::ERROR, LogLevel::Error),
            (LevelFilter::WARN, LogLevel::Warning),
            (LevelFilter::INFO, LogLevel::Info),
            (LevelFilter::DEBUG, LogLevel::Debug),
            (LevelFilter::TRACE, LogLevel::Trace),
        ] {
            assert_eq!(LogLevel::from_filter(filter), level, "{filter}");
        }
    }
}
