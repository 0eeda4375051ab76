//! Removing a container: refused while it runs (unless forced), `RUNTIME
//! delete --force`, a lingering conmon killed, then its files and cgroup
//! removed (also when stopping conmon failed: that error comes after).

use std::path::Path;

use runtime_api::{ContainerDescription, Result, RuntimeError};
use state_probe::{RuntimeStatus, StateProbe};
use tracing::{debug, info_span, warn, Instrument};

use crate::errors::from_probe;
use crate::launch::process::monitor_pidfd;
use crate::runtime::ConmonRuntime;
use crate::runtime_cli::Subcommand;

impl ConmonRuntime {
    /// Removes the container whatever its state, killing a running one
    /// (`RUNTIME delete --force`), as podman's `rm -f` does after its stop.
    pub async fn delete_force(&self, container: &ContainerDescription) -> Result<(), RuntimeError> {
        self.remove(container, true).await
    }

    /// Removes the container. Unless `force`, a running or paused
    /// container is refused; with `force` the runtime kills it
    /// (`delete --force`). An id the runtime does not know counts as
    /// removed: its leftover files are removed all the same.
    pub(crate) async fn remove(&self, c: &ContainerDescription, force: bool) -> Result<()> {
        let span = info_span!("delete", container = %c.id(), force);
        async {
            // Shared with the runtime's delete, which ends in a task of its
            // own if this call is dropped.
            let held = std::sync::Arc::new(
                self.reservations
                    .reserve(c.id(), "delete", self.config.timeouts.delete)
                    .await?,
            );
            let files = self.layout(c);
            let exited = files.exit_file.exists();
            let known = if exited {
                true
            } else {
                match self.cli.state(c.id(), self.config.timeouts.state).await? {
                    StateProbe::Gone => false,
                    StateProbe::Present(state) => {
                        if !force
                            && matches!(
                                state.status,
                                RuntimeStatus::Running | RuntimeStatus::Paused
                            )
                        {
                            return Err(RuntimeError::ContainerRunning {
                                id: c.id().to_string(),
                            });
                        }
                        true
                    }
                }
            };
            if known {
                match self
                    .cli
                    .run_holding(
                        Subcommand::DeleteForce(c.id()),
                        self.config.timeouts.delete,
                        std::sync::Arc::clone(&held),
                    )
                    .await
                {
                    Ok(_) => {}
                    // Deleted meanwhile (conmon's exit command, another
                    // caller): the state probe is the judge, not the text.
                    Err(e) => {
                        let gone = matches!(
                            self.cli.state(c.id(), self.config.timeouts.state).await,
                            Ok(StateProbe::Gone)
                        );
                        if !gone {
                            return Err(e);
                        }
                        debug!("already gone from the runtime");
                    }
                }
            }
            // The files go whatever happened to the monitor: a pidfd that
            // cannot be awaited must not leave them behind. Its error is
            // reported once they are gone.
            let monitor = self.stop_monitor(c, &files.conmon_pidfile).await;
            let removed = files.remove_all_off_thread().await;
            monitor.and(removed)
        }
        .instrument(span)
        .await
    }

    /// conmon leaves once the container is gone; one that lingers past the
    /// delete limit is killed so no monitor leaks. Only a process that is
    /// this container's conmon: a pidfile outlives its process, and pids
    /// are reused.
    async fn stop_monitor(&self, c: &ContainerDescription, pidfile: &Path) -> Result<()> {
        let Some(pidfd) = monitor_pidfd(pidfile, c.id().as_str()) else {
            return Ok(());
        };
        let operation = format!("waiting for conmon of container {} to exit", c.id());
        if pidfd
            .exited(self.config.timeouts.delete)
            .await
            .map_err(|e| from_probe(&operation, e))?
        {
            return Ok(());
        }
        warn!(
            monitor = pidfd.pid(),
            "conmon lingers after delete; killing it"
        );
        pidfd
            .send_signal(libc::SIGKILL)
            .map_err(|e| from_probe(&operation, e))?;
        pidfd
            .exited(self.config.timeouts.kill_wait)
            .await
            .map_err(|e| from_probe(&operation, e))?;
        Ok(())
    }

    pub(crate) async fn delete_container(&self, c: &ContainerDescription) -> Result<()> {
        self.remove(c, false).await
    }
}
