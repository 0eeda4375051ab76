//! conmon's command line, built as a pure function of plain data so that it
//! can be compared, option by option, with what podman produces for the
//! same settings.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use runtime_api::{ContainerDescription, LogDriver, RestoreOptions};

use crate::layout::{ContainerLayout, SessionLayout};
use crate::{ConmonDescription, SdNotifyMode};

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
    /// use std::path::{Path, PathBuf};
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
        let layout = ContainerLayout::new(config, c);
        let mut args = shared_args(&Shared {
            config,
            runtime_path: self.runtime_path,
            container: c,
            cuuid: c.id().as_str(),
            bundle: c.bundle(),
            pidfile: layout.container_pidfile,
            exit_dir: layout.exit_dir,
            persist_dir: layout.persist_dir,
            log: LogTarget::Container,
            oci_log: (self.json_errors && config.log_level != LogLevel::Debug)
                .then_some(layout.oci_log),
        });
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
        args.push("--conmon-pidfile").push(&layout.conmon_pidfile);
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

/// Where conmon sends the process's output.
enum LogTarget {
    /// The container's configured log driver.
    Container,
    /// Nowhere (`-l none`): exec sessions are read through attach only.
    None,
}

/// The options podman's `sharedConmonArgs` produces for both a container
/// and an exec session.
struct Shared<'a> {
    config: &'a ConmonConfig,
    runtime_path: &'a Path,
    container: &'a ContainerDescription,
    cuuid: &'a str,
    bundle: &'a Path,
    pidfile: PathBuf,
    exit_dir: PathBuf,
    persist_dir: PathBuf,
    log: LogTarget,
    oci_log: Option<PathBuf>,
}

fn shared_args(s: &Shared<'_>) -> ArgList {
    let config = s.config;
    let c = s.container;
    let mut args = ArgList::default();
    args.push("--api-version").push("1");
    args.push("-c").push(c.id().as_str());
    args.push("-u").push(s.cuuid);
    args.push("-r").push(s.runtime_path);
    args.push("-b").push(s.bundle);
    args.push("-p").push(&s.pidfile);
    args.push("-n").push(c.name());
    args.push("--exit-dir").push(&s.exit_dir);
    args.push("--full-attach");
    args.push("--socket-dir-path").push(config.socket_dir());
    args.push("--persist-dir").push(&s.persist_dir);
    for flag in &config.runtime_flags {
        args.push("--runtime-arg").push(flag);
    }
    if config.cgroup_manager == CgroupManager::Systemd
        && !c.no_cgroups()
        && c.cgroups_mode() != crate::CgroupsMode::Split
    {
        args.push("-s");
    }

    args.push("-l");
    let driver = match s.log {
        LogTarget::Container => c.log().driver,
        LogTarget::None => LogDriver::None,
    };
    match driver {
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
        // `create` refuses drivers it does not know before building argv.
        _ => args.push("none"),
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
    if let Some(oci_log) = &s.oci_log {
        let mut log = OsString::from("--runtime-arg=");
        log.push(oci_log);
        args.push("--runtime-arg").push("--log-format=json");
        args.push("--runtime-arg").push("--log").push(log);
    }
    // The tag is rendered as podman renders it; `create` refused a tag that
    // does not render, so the verbatim fallback serves only callers that
    // build argv for a description `create` never saw.
    match crate::logs::tag::rendered_log_tag(c) {
        Ok(Some(tag)) => {
            args.push("--log-tag").push(tag);
        }
        Ok(None) => {}
        Err(_) => {
            if let Some(tag) = c.log().tag.as_deref() {
                args.push("--log-tag").push(tag);
            }
        }
    }
    if c.no_cgroups() {
        args.push("--runtime-arg").push("--cgroup-manager");
        args.push("--runtime-arg").push("disabled");
    }
    args
}

/// conmon's command line for an exec session (`-e --exec-attach`): the
/// shared options pointed at the session's directory, then the exec ones.
#[derive(Debug, Clone, Copy)]
pub struct ExecArgv<'a> {
    /// The driver's settings.
    pub config: &'a ConmonConfig,
    /// The resolved runtime binary.
    pub runtime_path: &'a Path,
    /// The container the process runs in.
    pub container: &'a ContainerDescription,
    /// The session (conmon's `-u`).
    pub session: &'a str,
    /// The session's paths: conmon's bundle, pidfiles, exit and persist
    /// directories, attach socket and process spec live there.
    pub layout: &'a SessionLayout,
    /// Whether the runtime writes a JSON error log.
    pub json_errors: bool,
    /// Allocate a terminal.
    pub terminal: bool,
    /// Keep stdin open for the attached client.
    pub stdin: bool,
    /// conmon's `-T`: kill the process after this many seconds. The
    /// driver itself leaves it unset and enforces `ExecConfig::timeout` on
    /// its own (conmon SIGKILLs the exec process's whole process group,
    /// which for runsc is conmon's own).
    pub timeout_secs: Option<u64>,
    /// conmon's `--exit-delay`.
    pub exit_delay_secs: Option<u64>,
    /// fds passed to the process (the runtime's `--preserve-fds`).
    pub preserve_fds: u32,
    /// Where the runtime writes the process's pid inside its sandbox (the
    /// runtime's `--internal-pid-file`, for runtimes whose `exec` has it).
    pub sandbox_pidfile: Option<&'a Path>,
}

impl ExecArgv<'_> {
    /// The arguments after conmon's program name.
    pub fn build(&self) -> Vec<OsString> {
        let config = self.config;
        let layout = self.layout;
        let mut args = shared_args(&Shared {
            config,
            runtime_path: self.runtime_path,
            container: self.container,
            cuuid: self.session,
            bundle: &layout.dir,
            pidfile: layout.pidfile.clone(),
            exit_dir: layout.exit_dir.clone(),
            persist_dir: layout.persist_dir.clone(),
            log: LogTarget::None,
            oci_log: (self.json_errors && config.log_level != LogLevel::Debug)
                .then(|| layout.oci_log.clone()),
        });
        if self.preserve_fds > 0 {
            args.push("--runtime-opt").push("--preserve-fds");
            args.push("--runtime-opt")
                .push(self.preserve_fds.to_string());
        }
        if let Some(path) = self.sandbox_pidfile {
            args.push("--runtime-opt").push("--internal-pid-file");
            args.push("--runtime-opt").push(path);
        }
        if self.terminal {
            args.push("-t");
        }
        if self.stdin {
            args.push("-i");
        }
        args.push("--conmon-pidfile").push(&layout.conmon_pidfile);
        args.push("-e");
        args.push("--exec-attach");
        args.push("--exec-process-spec").push(&layout.process_spec);
        if let Some(secs) = self.timeout_secs {
            args.push("-T").push(secs.to_string());
        }
        if let Some(secs) = self.exit_delay_secs {
            args.push("--exit-delay").push(secs.to_string());
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
