//! conmon's command line, built as a pure function of plain data so that it
//! can be compared, option by option, with what podman produces for the
//! same settings.

use std::ffi::OsString;
use std::path::Path;

use runtime_api::{ContainerDescription, LogDriver, RestoreOptions, SdNotifyMode};

use crate::config::{CgroupManager, ConmonConfig, LogLevel};

/// Everything conmon's argv depends on for one container launch.
#[derive(Debug, Clone, Copy)]
pub struct ConmonArgv<'a> {
    /// The driver's settings.
    pub config: &'a ConmonConfig,
    /// The resolved runtime binary.
    pub runtime_path: &'a Path,
    /// The container.
    pub container: &'a ContainerDescription,
    /// Whether the runtime writes a JSON error log (asked for only below
    /// debug level, as podman does).
    pub json_errors: bool,
    /// The fds passed through to the container (preserved or socket
    /// activation).
    pub pass_fds: u32,
    /// Restore instead of create.
    pub restore: Option<&'a RestoreOptions>,
}

impl ConmonArgv<'_> {
    /// The arguments after conmon's program name.
    ///
    /// ```
    /// use conmon_driver::{ConmonArgv, ConmonConfig};
    /// use runtime_api::{ContainerDescription, ContainerId, LogDriver};
    /// use std::path::Path;
    ///
    /// let config = ConmonConfig::new("runc", "/run/engine");
    /// let container = ContainerDescription::builder(ContainerId::new("c1")?, "/b", "/r")
    ///     .log(LogDriver::KubernetesFile, "/r/ctr.log")
    ///     .build()?;
    /// let argv = ConmonArgv {
    ///     config: &config,
    ///     runtime_path: Path::new("/usr/bin/runc"),
    ///     container: &container,
    ///     json_errors: true,
    ///     pass_fds: 0,
    ///     restore: None,
    /// }
    /// .build();
    /// assert_eq!(argv[0], "--api-version");
    /// assert!(argv.contains(&"k8s-file:/r/ctr.log".into()));
    /// # Ok::<(), runtime_api::RuntimeError>(())
    /// ```
    pub fn build(&self) -> Vec<OsString> {
        let config = self.config;
        let c = self.container;
        let id = c.id().as_str();
        let mut args = ArgList::default();

        args.push("--api-version").push("1");
        args.push("-c").push(id);
        args.push("-u").push(id);
        args.push("-r").push(self.runtime_path);
        args.push("-b").push(c.bundle());
        args.push("-p").push(c.container_pidfile());
        args.push("-n").push(c.name());
        args.push("--exit-dir").push(config.exits_dir());
        args.push("--full-attach");
        args.push("--socket-dir-path").push(config.socket_dir());
        args.push("--persist-dir")
            .push(config.persist_root().join(id));
        for flag in &config.runtime_flags {
            args.push("--runtime-arg").push(flag);
        }
        if config.cgroup_manager == CgroupManager::Systemd
            && !c.no_cgroups()
            && c.cgroups_mode() != runtime_api::CgroupsMode::Split
        {
            args.push("-s");
        }

        args.push("-l");
        match c.log().driver {
            LogDriver::Journald => args.push("journald"),
            LogDriver::None => args.push("none"),
            LogDriver::Passthrough => args.push("passthrough"),
            LogDriver::KubernetesFile | LogDriver::JsonFile => {
                let mut value = OsString::from("k8s-file:");
                if let Some(path) = &c.log().path {
                    value.push(path);
                }
                args.push(value)
            }
        };
        args.push("--log-level").push(config.log_level.as_str());
        if config.syslog {
            args.push("--syslog");
        }
        let size = match c.log().size_max {
            Some(size) if size > 0 => size,
            _ => config.log_size_max,
        };
        if size > 0 {
            args.push("--log-size-max").push(size.to_string());
        }
        if self.json_errors && config.log_level != LogLevel::Debug {
            let mut log = OsString::from("--runtime-arg=");
            log.push(c.oci_log_path());
            args.push("--runtime-arg").push("--log-format=json");
            args.push("--runtime-arg").push("--log").push(log);
        }
        if let Some(tag) = c.log().tag.as_deref().filter(|t| !t.is_empty()) {
            args.push("--log-tag").push(tag);
        }
        if c.no_cgroups() {
            args.push("--runtime-arg").push("--cgroup-manager");
            args.push("--runtime-arg").push("disabled");
        }
        if c.sd_notify() == SdNotifyMode::Container {
            if let Some(socket) = &config.notify_socket {
                let mut value = OsString::from("--sdnotify-socket=");
                value.push(socket);
                args.push(value);
            }
        }
        if c.terminal() {
            args.push("-t");
        } else if c.stdin() {
            args.push("-i");
        }
        if c.leave_stdin_open() {
            args.push("--leave-stdin-open");
        }
        if !config.enable_keyring {
            args.push("--no-new-keyring");
        }
        args.push("--conmon-pidfile").push(c.conmon_pidfile());
        if config.no_pivot {
            args.push("--no-pivot");
        }
        if let Some(exit) = c.exit_command() {
            args.push("--exit-command").push(&exit.program);
            for arg in &exit.args {
                args.push("--exit-command-arg").push(arg);
            }
            if let Some(delay) = exit.delay {
                args.push("--exit-delay").push(delay.as_secs().to_string());
            }
        }
        if self.pass_fds > 0 {
            args.push("--runtime-opt").push("--preserve-fds");
            args.push("--runtime-opt").push(self.pass_fds.to_string());
        }
        if let Some(restore) = self.restore {
            args.push("--restore").push(&restore.image_path);
            if restore.tcp_established {
                args.push("--runtime-opt").push("--tcp-established");
            }
            if restore.file_locks {
                args.push("--runtime-opt").push("--file-locks");
            }
        }
        args.0
    }
}

#[derive(Default)]
struct ArgList(Vec<OsString>);

impl ArgList {
    fn push(&mut self, arg: impl AsRef<std::ffi::OsStr>) -> &mut Self {
        self.0.push(arg.as_ref().to_os_string());
        self
    }
}
