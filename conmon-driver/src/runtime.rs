//! [`ConmonRuntime`]: the configured driver. Construction resolves the
//! runtime and conmon binaries and creates the tmp directories; the
//! [`OciRuntime`](runtime_api::OciRuntime) implementation lives in
//! `lifecycle.rs` and the launch in `create.rs`.

use std::path::{Path, PathBuf};

use runtime_api::{ContainerDescription, ExecSessionId, RuntimeError};
use tokio::sync::OnceCell;

use crate::config::ConmonConfig;
use crate::files::create_dir_with_mode;
use crate::launch::process::monitor_identity;
use crate::layout::ContainerLayout;
use crate::runtime_cli::RuntimeCli;
use crate::ConmonDescription;
use state_probe::PidFd;

/// What podman's runtime lists in the configuration say about the
/// configured runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RuntimeTraits {
    /// The runtime writes JSON error logs (`--log-format=json`).
    pub json_errors: bool,
    /// The runtime can run containers without cgroups.
    pub no_cgroups: bool,
    /// The runtime runs containers in virtual machines.
    pub kvm: bool,
}

/// An OCI runtime driven through conmon.
///
/// ```no_run
/// use conmon_driver::{ConmonConfig, ConmonRuntime};
/// let mut config = ConmonConfig::new("runsc", "/run/my-engine");
/// config.runtime_flags.push("--network=none".into());
/// let runtime = ConmonRuntime::new(config)?;
/// println!("using {}", runtime.runtime_path().display());
/// # Ok::<(), runtime_api::RuntimeError>(())
/// ```
#[derive(Debug)]
pub struct ConmonRuntime {
    pub(crate) config: ConmonConfig,
    /// The runtime's file name (`runc`), whatever way it was named.
    pub(crate) short_name: String,
    pub(crate) runtime_path: PathBuf,
    pub(crate) conmon_path: PathBuf,
    pub(crate) cli: RuntimeCli,
    pub(crate) checkpoint_support: OnceCell<bool>,
    pub(crate) update_support: OnceCell<bool>,
    pub(crate) exec_flags: OnceCell<crate::exec_flags::ExecFlags>,
    /// One inotify instance for every wait on a container's exit file.
    pub(crate) exit_watcher: state_probe::ExitWatcher,
    /// Whether this process inherits orphans (PID 1 or a subreaper): the
    /// monitors it launches are then reaped by it.
    pub(crate) reaps_orphans: bool,
    /// The host's cgroup freezer hierarchies, found on the first status
    /// that needs them.
    pub(crate) freezers: std::sync::OnceLock<state_probe::CgroupFreezers>,
    pub(crate) reservations: std::sync::Arc<crate::lifecycle::reservation::IdReservations>,
    pub(crate) exec_sessions: std::sync::Arc<crate::exec::registry::ExecRegistry>,
}

impl ConmonRuntime {
    /// Resolves the runtime (candidate paths, then `$PATH`; non-regular files
    /// are skipped) and conmon, and creates `exits/`, `socket/` and
    /// `persist/` under the tmp dir with mode 0750.
    pub fn new(config: ConmonConfig) -> Result<Self, RuntimeError> {
        let resolved = config.resolve()?;
        let (runtime_path, conmon_path, path_var) =
            (resolved.runtime, resolved.conmon, resolved.path_var);
        if let Some(dir) = &config.runtime_dir {
            if let Some(warning) = &dir.warning {
                tracing::warn!("{warning}");
            }
            if dir.source == crate::RuntimeDirSource::Fallback {
                create_dir_with_mode(&dir.path, 0o700)?;
            }
        }
        for dir in [
            config.exits_dir(),
            config.socket_dir(),
            config.persist_root(),
        ] {
            create_dir_with_mode(&dir, 0o750)?;
        }
        let mut env = Vec::new();
        if let Some(dir) = &config.xdg_runtime_dir {
            env.push(("XDG_RUNTIME_DIR".to_string(), dir.display().to_string()));
        }
        if let Some(path) = &path_var {
            env.push(("PATH".to_string(), path.to_string_lossy().into_owned()));
        }
        let cli = RuntimeCli {
            path: runtime_path.clone(),
            flags: config.runtime_flags.clone(),
            env,
        };
        let short_name = config.runtime_short_name().to_string();
        Ok(Self {
            short_name,
            config,
            runtime_path,
            conmon_path,
            cli,
            checkpoint_support: OnceCell::new(),
            update_support: OnceCell::new(),
            exec_flags: OnceCell::new(),
            reservations: Default::default(),
            exit_watcher: Default::default(),
            reaps_orphans: crate::reaper::reaps_orphans(),
            freezers: Default::default(),
            exec_sessions: Default::default(),
        })
    }

    /// The pid conmon wrote for the container, when its pidfile exists.
    pub fn monitor_pid(
        &self,
        container: &ContainerDescription,
    ) -> Result<Option<i32>, RuntimeError> {
        crate::files::read_pidfile(&container.conmon_pidfile())
    }

    /// Whether the container's conmon still lives, as podman's
    /// `CheckConmonRunning` decides it, without trusting a recycled pid:
    ///
    /// - no pidfile, or a conmon pid of 0: not running;
    /// - a pidfd pins the pid; a process whose command line is readable and
    ///   is not this container's conmon is another process (not running); a
    ///   zombie nobody reaped counts as gone;
    /// - where the kernel gives no pidfd, or the command line cannot be read
    ///   (another user's process under `hidepid`), signal 0 decides, with
    ///   `EPERM` counting as running.
    pub async fn monitor_alive(
        &self,
        container: &ContainerDescription,
    ) -> Result<bool, RuntimeError> {
        let probe = |e| crate::errors::from_probe("probing conmon", e);
        let Some(pid) = crate::files::read_pidfile(&container.conmon_pidfile())? else {
            return Ok(false);
        };
        if pid <= 0 {
            return Ok(false);
        }
        let pidfd = match PidFd::open(pid) {
            Ok(Some(pidfd)) => pidfd,
            Ok(None) => return Ok(false),
            Err(_) => return state_probe::signal_zero(pid).map_err(probe),
        };
        match monitor_identity(pid, container.id().as_str()) {
            Some(false) => Ok(false),
            Some(true) => Ok(!pidfd
                .exited(std::time::Duration::ZERO)
                .await
                .map_err(probe)?),
            None => state_probe::signal_zero(pid).map_err(probe),
        }
    }

    /// The path of the container's attach socket.
    pub fn attach_socket_path(&self, container: &ContainerDescription) -> PathBuf {
        ContainerLayout::new(&self.config, container).attach_socket
    }

    /// The path of the file conmon writes the container's exit code to.
    pub fn exit_file_path(&self, container: &ContainerDescription) -> PathBuf {
        ContainerLayout::new(&self.config, container).exit_file
    }

    /// The path of an exec session's attach socket.
    pub fn exec_attach_socket_path(
        &self,
        container: &ContainerDescription,
        session: &ExecSessionId,
    ) -> PathBuf {
        ContainerLayout::new(&self.config, container)
            .session(session)
            .attach_socket
    }

    /// The pid of the conmon monitoring an exec session, while its pidfile
    /// exists.
    pub fn exec_monitor_pid(
        &self,
        container: &ContainerDescription,
        session: &ExecSessionId,
    ) -> Result<Option<i32>, RuntimeError> {
        crate::files::read_pidfile(
            &ContainerLayout::new(&self.config, container)
                .session(session)
                .conmon_pidfile,
        )
    }

    /// How podman's runtime lists classify the configured runtime.
    pub fn runtime_traits(&self) -> RuntimeTraits {
        RuntimeTraits {
            json_errors: self.listed_in(&self.config.runtimes_with_json_errors),
            no_cgroups: self.listed_in(&self.config.runtimes_without_cgroups),
            kvm: self.listed_in(&self.config.runtimes_with_kvm),
        }
    }

    /// How many exit files (of containers and of exec sessions) waits are
    /// registered on right now, for metrics and tests. All of them share
    /// two inotify instances, whatever their number.
    pub fn waited_exit_files(&self) -> usize {
        self.exit_watcher.waited_files() + self.exec_sessions.exit_watcher().waited_files()
    }

    /// The settings.
    pub fn config(&self) -> &ConmonConfig {
        &self.config
    }

    /// The resolved runtime binary.
    pub fn runtime_path(&self) -> &Path {
        &self.runtime_path
    }

    /// The resolved conmon binary.
    pub fn conmon_path(&self) -> &Path {
        &self.conmon_path
    }

    pub(crate) fn listed_in(&self, list: &[String]) -> bool {
        list.contains(&self.short_name)
    }
}
