//! Creating a container: the checks before anything is touched (handed
//! fds are counted and made close-on-exec, reserved ports are bound; when
//! something of the id is on disk, an id the runtime already knows is
//! refused, and so is one it cannot answer for), the container's files made
//! fresh, then conmon's launch (`launch/sequence.rs`) with the container's
//! argv, env and fds, one start byte and the pid on the sync pipe. With
//! nothing of the id on disk the runtime is not asked first: its own create
//! refuses an id it knows, and the failed launch then names the holder.
//!
//! The id is reserved (`reservation.rs`) from before the check until the
//! create succeeded or its undo finished, so concurrent creates of one id
//! run one after the other and the second finds the first's container.
//!
//! Any failure after the spawn kills conmon and its monitor, deletes the
//! container from the runtime once it may exist and is this launch's (the
//! runtime reports this launch's bundle), and removes the files the launch
//! created; the error carries conmon's stderr and the runtime's error log
//! message. A launch whose future is dropped half-way is undone the same
//! way, in the background, still holding the reservation.

use std::os::fd::OwnedFd;

use runtime_api::{
    ContainerDescription, CreateOptions, CreatedContainer, LogDriver, RestoreOptions, RuntimeError,
};
use sync_pipe::PipeNumbers;
use tracing::{debug, warn};

use crate::files::{create_dir_with_mode, remove_file_if_present};
use crate::launch::argv::ConmonArgv;
use crate::launch::env::ConmonEnv;
use crate::launch::sequence::{ConmonLaunch, LaunchPlan};
use crate::layout::ContainerLayout;
use crate::lifecycle::reservation::Reservation;
use crate::runtime::ConmonRuntime;
use crate::runtime_cli::{RuntimeCli, Subcommand};
use crate::{ConmonCreated, MonitorOptions, NamedFd, PassthroughStdio};
use tracing::{info_span, Instrument};

impl ConmonRuntime {
    /// Creates the container as [`OciRuntime::create`] does, with the
    /// conmon-only inputs (reserved ports, named fds) and outputs (conmon's
    /// pid, where each named fd sits, conmon's placement).
    ///
    /// [`OciRuntime::create`]: runtime_api::OciRuntime::create
    pub async fn create_with(
        &self,
        container: &ContainerDescription,
        options: CreateOptions,
        monitor: MonitorOptions,
    ) -> Result<ConmonCreated, RuntimeError> {
        crate::lifecycle::create::create(self, container, options, monitor, None)
            .instrument(info_span!("create", container = %container.id()))
            .await
    }
}

/// What a failed launch must undo.
struct Launch<'a> {
    rt: &'a ConmonRuntime,
    container: &'a ContainerDescription,
    layout: ContainerLayout,
    created_run_dir: bool,
    launch: Option<ConmonLaunch<'a>>,
    /// The start byte went out: the runtime may have created the container.
    started: bool,
    /// Set once the launch succeeded or was undone.
    settled: bool,
    /// The id's reservation, handed to the undo when there is one.
    reservation: Option<Reservation>,
}

pub(crate) async fn create(
    rt: &ConmonRuntime,
    container: &ContainerDescription,
    options: CreateOptions,
    monitor: MonitorOptions,
    restore: Option<&RestoreOptions>,
) -> Result<ConmonCreated, RuntimeError> {
    crate::config::container::validate(container)?;
    if container.cgroup_parent().is_some() && !rt.config.cgroups_usable() {
        return Err(RuntimeError::InvalidArgument(format!(
            "container {} names cgroup parent {:?}, but a rootless engine on cgroup v1 has no \
             delegated cgroups to create it in",
            container.id(),
            container.cgroup_parent().unwrap_or_default()
        )));
    }
    let CreateOptions {
        preserved_fds,
        listen_fds,
        ..
    } = options;
    let MonitorOptions {
        reserved_ports,
        extra_fds,
        passthrough_stdio,
        ..
    } = monitor;
    let passthrough = passthrough_stdio_for(container, passthrough_stdio)?;
    if preserved_fds.len() != container.preserved_fds() as usize {
        return Err(RuntimeError::InvalidArgument(format!(
            "the container preserves {} fds but {} were handed to create",
            container.preserved_fds(),
            preserved_fds.len()
        )));
    }
    if !preserved_fds.is_empty() && !listen_fds.is_empty() {
        return Err(RuntimeError::InvalidArgument(
            "preserved fds and socket-activation fds cannot be combined: both start at fd 3".into(),
        ));
    }
    if !container.bundle().join("config.json").is_file() {
        return Err(RuntimeError::InvalidArgument(format!(
            "bundle {} has no config.json",
            container.bundle().display()
        )));
    }
    crate::launch::terminal::check_terminal(container, &container.bundle().join("config.json"))?;
    // Handed-over fds may lack close-on-exec (socket activation's never
    // have it): they must not reach the runtime commands run meanwhile.
    for fd in preserved_fds
        .iter()
        .chain(&listen_fds)
        .chain(extra_fds.iter().map(|named| &named.fd))
    {
        sync_pipe::set_cloexec(fd).map_err(|e| {
            RuntimeError::InvalidArgument(format!("a handed-over fd is unusable: {e}"))
        })?;
    }
    let pass_fds: Vec<OwnedFd> = if listen_fds.is_empty() {
        preserved_fds
    } else {
        listen_fds
    };
    let listen_count = if container.preserved_fds() == 0 {
        pass_fds.len() as u32
    } else {
        0
    };

    // Bound before anything is created or spawned: a port in use fails
    // the create with nothing to undo.
    let port_sockets = crate::launch::ports::bind_ports(&reserved_ports)?;

    // Held until this create succeeded or its undo finished: another create
    // of the id cannot pass the check below meanwhile.
    let reservation = rt
        .reservations
        .reserve(
            container.id(),
            "create",
            rt.config
                .timeouts
                .create
                .saturating_add(rt.config.timeouts.delete),
        )
        .await?;

    // Everything below removes or replaces files of this id: a container
    // the runtime still knows must not lose them, and a runtime that cannot
    // say whether it knows it is not taken for a no. With nothing of the id
    // on disk there is nothing to lose, and the runtime's create itself
    // refuses an id it knows: the runtime process is spared, and a failed
    // launch asks afterwards whether another's container holds the id.
    let layout = ContainerLayout::new(&rt.config, container);
    let probed = layout.any_file_present();
    if probed {
        match rt.cli.state(container.id(), rt.config.timeouts.state).await {
            Ok(state_probe::StateProbe::Present(_)) => {
                return Err(RuntimeError::AlreadyExists {
                    id: container.id().to_string(),
                })
            }
            Ok(state_probe::StateProbe::Gone) => {}
            // The runtime's own error (its timeout, its failure) says why;
            // nothing was changed.
            Err(e) => return Err(e),
        }
    }

    let created_run_dir = !container.run_dir().exists();
    // A run dir the caller made keeps the permissions it chose.
    if created_run_dir {
        create_dir_with_mode(container.run_dir(), 0o700)?;
    } else if !container.run_dir().is_dir() {
        return Err(RuntimeError::InvalidArgument(format!(
            "run directory {} is not a directory",
            container.run_dir().display()
        )));
    }
    for stale in [
        &layout.exit_file,
        &layout.oci_log,
        &layout.container_pidfile,
        &layout.conmon_pidfile,
    ] {
        remove_file_if_present(stale)?;
    }
    let _ = std::fs::remove_dir_all(&layout.persist_dir);
    create_dir_with_mode(&layout.persist_dir, 0o750)?;

    let mut launch = Launch {
        rt,
        container,
        layout,
        created_run_dir,
        launch: None,
        started: false,
        settled: false,
        reservation: Some(reservation),
    };
    let handed = HandedFds {
        pass: pass_fds,
        listen_count,
        ports: port_sockets,
        extra: extra_fds,
        passthrough,
    };
    match launch.run(handed, restore).await {
        Ok(created) => {
            launch.settled = true;
            if let Some(conmon) = launch.launch.take() {
                conmon.finish();
            }
            Ok(created)
        }
        Err(err) => match launch.undo().await {
            IdHolder::Another if !probed => Err(RuntimeError::AlreadyExists {
                id: container.id().to_string(),
            }),
            _ => Err(err),
        },
    }
}

/// The fds conmon receives besides its pipes.
struct HandedFds {
    /// Preserved or socket-activation fds, at 3, 4, ...
    pass: Vec<OwnedFd>,
    /// How many of `pass` are socket-activation fds.
    listen_count: u32,
    /// Reserved port sockets, after the pipes.
    ports: Vec<OwnedFd>,
    /// Named fds, after the ports.
    extra: Vec<NamedFd>,
    /// conmon's stdio under the passthrough log driver.
    passthrough: Option<PassthroughStdio>,
}

/// The stdio conmon hands to a container with the passthrough log driver:
/// the caller's choice, else the caller's own stdin, stdout and stderr (as
/// podman's `--log-driver passthrough`); `None` for every other driver,
/// which refuses a stdio choice.
fn passthrough_stdio_for(
    c: &ContainerDescription,
    given: Option<PassthroughStdio>,
) -> Result<Option<PassthroughStdio>, RuntimeError> {
    match (c.log().driver, given) {
        (LogDriver::Passthrough, Some(stdio)) => Ok(Some(stdio)),
        (LogDriver::Passthrough, None) => PassthroughStdio::inherited()
            .map(Some)
            .map_err(|e| RuntimeError::io("duplicating the caller's stdio for conmon", e)),
        (_, None) => Ok(None),
        (driver, Some(_)) => Err(RuntimeError::InvalidArgument(format!(
            "container {} has passthrough stdio but logs with {driver:?}, not passthrough",
            c.id()
        ))),
    }
}

impl Launch<'_> {
    async fn run(
        &mut self,
        handed: HandedFds,
        restore: Option<&RestoreOptions>,
    ) -> Result<ConmonCreated, RuntimeError> {
        let HandedFds {
            pass: pass_fds,
            listen_count,
            ports,
            extra,
            passthrough,
        } = handed;
        let rt = self.rt;
        let c = self.container;
        let pipes = PipeNumbers::new(pass_fds.len() as u32, false);
        // Named fds follow the pipes and the ports, in order.
        let first_extra = pipes.start + 1 + ports.len() as i32;
        let extra_fds: Vec<(String, i32)> = extra
            .iter()
            .enumerate()
            .map(|(i, named)| (named.name.clone(), first_extra + i as i32))
            .collect();
        let argv = ConmonArgv {
            config: &rt.config,
            runtime_path: &rt.runtime_path,
            container: c,
            json_errors: rt.listed_in(&rt.config.runtimes_with_json_errors),
            pass_fds: pass_fds.len() as u32,
            restore,
        }
        .build();
        let env = ConmonEnv {
            config: &rt.config,
            container: c,
            pipes,
            listen_fds: listen_count,
        }
        .build();
        let trailing_fds = ports
            .into_iter()
            .chain(extra.into_iter().map(|named| named.fd))
            .collect();
        let plan = LaunchPlan {
            argv,
            env,
            cwd: c.bundle(),
            pipes,
            pass_fds,
            trailing_fds,
            monitor_pidfile: self.layout.conmon_pidfile.clone(),
            cuuid: c.id().as_str(),
            oci_log: self.layout.oci_log.clone(),
            runtime_command: format!("{} create {}", rt.runtime_path.display(), c.id()),
            limit: rt.config.timeouts.create,
            passthrough,
        };
        let launch = self.launch.insert(ConmonLaunch::spawn(rt, c, plan).await?);
        self.started = true;
        launch.release(true).await?;
        launch.reap_parent().await?;
        let pid = launch.read_record("conmon's sync record", false).await?;
        let monitor_pid = launch.monitor_pid()?;
        debug!(container = %c.id(), pid, monitor_pid, "container created");
        let mut container = CreatedContainer::new(Some(pid));
        container.warnings = launch.placed.warnings.clone();
        Ok(ConmonCreated {
            container,
            monitor_pid,
            extra_fds,
            placement: launch.placed.description.clone(),
        })
    }

    /// Kills conmon and its monitor, deletes the container from the runtime
    /// (once the start byte may have let conmon create it) and removes the
    /// launch's files.
    /// Returns who holds the id in the runtime once the undo is done.
    async fn undo(&mut self) -> IdHolder {
        self.settled = true;
        if let Some(launch) = self.launch.as_mut() {
            launch.kill_all().await;
        }
        let undo = Undo::of(self);
        undo.run().await
    }
}

/// The undo of a launch as owned data, so that it can also run from a
/// background task when the launch's future was dropped.
struct Undo {
    cli: RuntimeCli,
    state_limit: std::time::Duration,
    delete_limit: std::time::Duration,
    id: runtime_api::ContainerId,
    bundle: std::path::PathBuf,
    started: bool,
    files: ContainerLayout,
    run_dir: Option<std::path::PathBuf>,
    /// Released when the undo is done, not before.
    _reservation: Option<Reservation>,
}

impl Undo {
    fn of(launch: &mut Launch<'_>) -> Self {
        Self {
            cli: launch.rt.cli.clone(),
            state_limit: launch.rt.config.timeouts.state,
            delete_limit: launch.rt.config.timeouts.delete,
            id: launch.container.id().clone(),
            bundle: launch.container.bundle().to_path_buf(),
            started: launch.started,
            files: launch.layout.clone(),
            run_dir: launch
                .created_run_dir
                .then(|| launch.container.run_dir().to_path_buf()),
            _reservation: launch.reservation.take(),
        }
    }

    /// Who holds the id in the runtime: a container made from this
    /// launch's bundle (or naming no bundle) is this launch's; one made from
    /// another bundle, by another engine sharing the runtime's state root,
    /// is left alone.
    async fn id_holder(&self) -> IdHolder {
        match self.cli.state(&self.id, self.state_limit).await {
            Ok(state_probe::StateProbe::Gone) => IdHolder::Nobody,
            Ok(state_probe::StateProbe::Present(state)) => match state.bundle {
                Some(bundle) if !same_path(&bundle, &self.bundle) => IdHolder::Another,
                _ => IdHolder::ThisLaunch,
            },
            // Unknown: the id was free when this create checked (or nothing
            // of it was on disk), and this driver lets no other create of it
            // run meanwhile.
            Err(e) => {
                debug!(container = %self.id, error = %e, "state probe in the undo of a create");
                IdHolder::ThisLaunch
            }
        }
    }

    async fn run(self) -> IdHolder {
        let holder = if self.started {
            self.id_holder().await
        } else {
            // The runtime was never asked to create anything.
            IdHolder::Nobody
        };
        if holder == IdHolder::ThisLaunch {
            if let Err(e) = self
                .cli
                .run(Subcommand::DeleteForce(&self.id), self.delete_limit)
                .await
            {
                debug!(container = %self.id, error = %e, "delete after failed create");
            }
        }
        if let Err(e) = self.files.remove_all_off_thread().await {
            warn!(container = %self.id, error = %e, "removing files after failed create");
        }
        if let Some(dir) = self.run_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        holder
    }
}

/// Who holds a container id in the runtime after a failed launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdHolder {
    /// The runtime does not know the id.
    Nobody,
    /// The container may be this launch's (its bundle, or no bundle said).
    ThisLaunch,
    /// A container made from another bundle: not this launch's.
    Another,
}

fn same_path(a: &std::path::Path, b: &std::path::Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(a), Ok(b)) if a == b
        )
}

impl Drop for Launch<'_> {
    /// A create whose future was dropped. Before the start byte, conmon is
    /// killed by its own drop (it would otherwise treat the closed start
    /// pipe as "go"). After it, the runtime's create is let finish, then
    /// conmon is killed. The undo runs in the background when a tokio
    /// runtime is there, holding the id's reservation until it is done.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let undo = Undo::of(self);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            // Before the start byte conmon has run nothing: dropping the
            // launch kills it. After, the runtime's create may be under way.
            let abandoned = self
                .launch
                .take()
                .filter(|_| self.started)
                .map(ConmonLaunch::abandon);
            handle.spawn(async move {
                if let Some(launch) = abandoned {
                    launch.end().await;
                }
                undo.run().await;
            });
        } else {
            warn!(container = %undo.id, "an abandoned create could not be undone: no runtime");
        }
    }
}
