//! [`ConmonConfigBuilder`]: the driver's settings grouped by concern
//! (programs, conmon's behaviour, placement, identity, limits), starting
//! from podman's defaults and validated once in
//! [`build`](ConmonConfigBuilder::build). Engines and the examples share
//! it, including the "runtime by name or by path" rule.

use std::path::{Path, PathBuf};

use crate::config::{
    CgroupManager, ConfigError, ConmonConfig, LogLevel, SelinuxHost, SelinuxPolicy, Timeouts,
};

/// Builds a [`ConmonConfig`].
///
/// ```
/// use std::time::Duration;
/// use conmon_driver::{CgroupManager, ConfigError, ConmonConfig};
///
/// // A name is looked up on PATH; a value with a slash is that file.
/// let built = ConmonConfig::builder("runc", "/run/my-engine")
///     .runtime_flag("--root=/run/my-engine/runc")
///     .cgroup_manager(CgroupManager::Cgroupfs)
///     .create_timeout(Duration::from_secs(30))
///     .build();
/// # let _ = built;
/// let refused = ConmonConfig::builder("runc", "relative/dir").build();
/// assert!(matches!(refused, Err(ConfigError::RelativePath { what: "tmp dir", .. })));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ConmonConfigBuilder {
    config: ConmonConfig,
}

impl ConmonConfig {
    /// A builder for `runtime` (a name looked up on `PATH`, or a path when
    /// it holds a `/`) with files under `tmp_dir`, starting from podman's
    /// defaults.
    pub fn builder(runtime: &str, tmp_dir: impl Into<PathBuf>) -> ConmonConfigBuilder {
        let tmp_dir = tmp_dir.into();
        // A name with a slash is resolved as exactly that file, never
        // through PATH; the runtime's short name is its file name. A
        // relative path is taken from the current directory now, as a
        // command line means it.
        let runtime = if runtime.contains('/') {
            std::path::absolute(runtime)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| runtime.to_string())
        } else {
            runtime.to_string()
        };
        ConmonConfigBuilder {
            config: ConmonConfig::new(runtime, tmp_dir),
        }
    }
}

impl ConmonConfigBuilder {
    // ----- programs -----

    /// A candidate path tried for the runtime before `PATH`.
    pub fn runtime_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.runtime_paths.push(path.into());
        self
    }

    /// conmon's path (default: podman's usual places, then `PATH`).
    pub fn conmon(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.conmon_path = Some(path.into());
        self
    }

    /// A global flag put before every runtime subcommand and passed to
    /// conmon as `--runtime-arg`.
    pub fn runtime_flag(mut self, flag: impl Into<String>) -> Self {
        self.config.runtime_flags.push(flag.into());
        self
    }

    // ----- conmon's behaviour -----

    /// conmon's `--log-level`.
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.config.log_level = level;
        self
    }

    /// The default container log size limit in bytes (-1: none).
    pub fn log_size_max(mut self, bytes: i64) -> Self {
        self.config.log_size_max = bytes;
        self
    }

    /// Whether conmon logs to syslog too.
    pub fn syslog(mut self, on: bool) -> Self {
        self.config.syslog = on;
        self
    }

    /// conmon's `--no-pivot` (for runtimes on ramdisks).
    pub fn no_pivot(mut self, on: bool) -> Self {
        self.config.no_pivot = on;
        self
    }

    /// Whether containers get a new session keyring.
    pub fn keyring(mut self, on: bool) -> Self {
        self.config.enable_keyring = on;
        self
    }

    /// A variable of conmon's environment (replacing one of that name).
    pub fn conmon_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.config.conmon_env.retain(|(k, _)| *k != name);
        self.config.conmon_env.push((name, value.into()));
        self
    }

    /// The systemd notify socket conmon proxies or the driver notifies.
    pub fn notify_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.notify_socket = Some(path.into());
        self
    }

    // ----- placement -----

    /// The cgroup manager.
    pub fn cgroup_manager(mut self, manager: CgroupManager) -> Self {
        self.config.cgroup_manager = manager;
        self
    }

    /// The D-Bus address of the systemd manager for conmon's scope (needs
    /// the systemd cgroup manager).
    pub fn systemd_bus(mut self, address: impl Into<String>) -> Self {
        self.config.systemd_bus_address = Some(address.into());
        self
    }

    /// Whether the engine runs as a systemd service (conmon then stays in
    /// the service's cgroup).
    pub fn in_systemd_service(mut self, on: bool) -> Self {
        self.config.invocation_id_set = on;
        self
    }

    // ----- identity -----

    /// Which SELinux label conmon is launched with.
    pub fn selinux(mut self, policy: SelinuxPolicy) -> Self {
        self.config.selinux = policy;
        self
    }

    /// A stand-in for the host's SELinux state (tests).
    pub fn selinux_host(mut self, host: SelinuxHost) -> Self {
        self.config.selinux_host = Some(host);
        self
    }

    /// Runs rootless as `uid` (conmon gets `_CONTAINERS_ROOTLESS_UID`).
    pub fn rootless(mut self, uid: u32) -> Self {
        self.config.rootless_uid = Some(uid);
        self
    }

    /// `XDG_RUNTIME_DIR` for the runtime and conmon (`None`: unset).
    pub fn xdg_runtime_dir(mut self, dir: Option<&Path>) -> Self {
        self.config.xdg_runtime_dir = dir.map(Path::to_path_buf);
        self
    }

    /// `HOME` for conmon.
    pub fn home(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.home = Some(dir.into());
        self
    }

    // ----- limits -----

    /// Every limit at once.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.config.timeouts = timeouts;
        self
    }

    /// conmon's launch up to the sync record.
    pub fn create_timeout(mut self, limit: std::time::Duration) -> Self {
        self.config.timeouts.create = limit;
        self
    }

    /// The runtime's file name (`runc`), however it was named.
    pub fn runtime_short_name(&self) -> &str {
        self.config.runtime_short_name()
    }

    /// Validates and returns the configuration (see [`ConfigError`]).
    pub fn build(self) -> Result<ConmonConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }

    /// The configuration as it stands, unvalidated.
    pub fn peek(&self) -> &ConmonConfig {
        &self.config
    }
}
