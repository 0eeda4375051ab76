//! A container's state, from the driver's own records where they are exact
//! and from `RUNTIME state` otherwise.
//!
//! The rule, in order:
//!
//! 1. conmon's exit file exists: the container exited, with the code it
//!    holds, finished at the file's time, OOM-killed when conmon's persist
//!    directory says so. No process is spawned.
//! 2. The driver's start of the container succeeded (the persist
//!    directory's `running` record names the init process by pid and start
//!    time, [`state_probe::ProcessIdentity`]), no pause by the driver is in
//!    effect (no `paused` marker), that very process still runs (same pid,
//!    same start time, not a zombie: a reused pid is another process), and
//!    its cgroup is thawed in every freezer hierarchy of the host
//!    ([`state_probe::CgroupFreezers`]: a pause made with the runtime's
//!    own CLI, behind the driver's back, freezes it): the container is
//!    running, with that pid. No process is spawned. These are the facts
//!    runc itself checks before it says "running"; runtimes that freeze
//!    containers through the cgroup freezer (runc, crun) cannot answer
//!    otherwise. A runtime that pauses inside its own sandbox (runsc) and
//!    is paused with its own CLI, not through the driver, is the one case
//!    this misses.
//! 3. Otherwise `RUNTIME state` decides: a created container whose start
//!    the driver has not seen succeed (its init process is alive too: only
//!    the runtime can tell created from running), a paused one, a process
//!    that is gone without an exit file yet, a record that cannot be read
//!    or a freezer state that cannot be told. A runtime that says
//!    "stopped" before the exit file exists gets a short event-driven wait
//!    for it.
//!
//! A container this driver created (its persist directory exists) that the
//! runtime says does not exist is exited, as podman records it: exit code
//! -1 and finish time now, unless conmon's exit file (read once more, it
//! may have landed meanwhile) says otherwise. An id the driver never
//! created, or already removed, is `NoSuchContainer`.

use std::time::SystemTime;

use runtime_api::{ContainerDescription, ContainerState, ContainerStatus, Result, RuntimeError};
use state_probe::{read_exit_file, CgroupFreezers, FreezerState, RuntimeStatus, StateProbe};

use crate::errors::from_probe;
use crate::files::read_running_record;
use crate::layout::ContainerLayout;
use crate::runtime::ConmonRuntime;

impl ConmonRuntime {
    pub(crate) async fn container_status(
        &self,
        c: &ContainerDescription,
    ) -> Result<ContainerState> {
        let files = self.layout(c);
        let operation = format!("reading the state of container {}", c.id());
        let exited = |record: state_probe::ExitRecord| {
            let mut state = ContainerState::new(ContainerStatus::Exited);
            state.exit_code = Some(record.code);
            state.started_at = self.started_at(c);
            state.finished_at = Some(record.finished);
            state.oom_killed = state_probe::oom_killed(&files.persist_dir);
            state
        };
        if let Some(record) =
            read_exit_file(&files.exit_file).map_err(|e| from_probe(&operation, e))?
        {
            return Ok(exited(record));
        }
        if let Some(running) = self.running_from_records(c, &files) {
            return Ok(running);
        }
        let state = match self.cli.state(c.id(), self.config.timeouts.state).await? {
            StateProbe::Gone if files.persist_dir.is_dir() => {
                if let Some(record) =
                    read_exit_file(&files.exit_file).map_err(|e| from_probe(&operation, e))?
                {
                    return Ok(exited(record));
                }
                let mut state = ContainerState::new(ContainerStatus::Exited);
                state.exit_code = Some(-1);
                state.started_at = self.started_at(c);
                state.finished_at = Some(SystemTime::now());
                state.oom_killed = state_probe::oom_killed(&files.persist_dir);
                return Ok(state);
            }
            StateProbe::Gone => {
                return Err(RuntimeError::NoSuchContainer {
                    id: c.id().to_string(),
                })
            }
            StateProbe::Present(state) => state,
        };
        let status = match state.status {
            RuntimeStatus::Created => ContainerStatus::Created,
            RuntimeStatus::Running => ContainerStatus::Running,
            RuntimeStatus::Paused => ContainerStatus::Paused,
            RuntimeStatus::Stopped => {
                // conmon writes the exit file right after reaping; a short,
                // event-driven wait turns "stopped" into a known exit code.
                match self
                    .exit_watcher
                    .wait(&files.exit_file, self.config.timeouts.kill_wait)
                    .await
                {
                    Ok(record) => return Ok(exited(record)),
                    Err(_) => ContainerStatus::Stopped,
                }
            }
        };
        let mut current = ContainerState::new(status);
        current.pid = (state.pid > 0).then_some(state.pid);
        current.started_at = self.started_at(c);
        Ok(current)
    }

    /// Step 2 of the module's rule: the running state when the driver's
    /// records and the init process itself settle it, `None` when the
    /// runtime must be asked.
    pub(crate) fn running_from_records(
        &self,
        c: &ContainerDescription,
        files: &ContainerLayout,
    ) -> Option<ContainerState> {
        match std::fs::symlink_metadata(files.paused_marker()) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Paused by the driver, or cannot be told.
            _ => return None,
        }
        let init = read_running_record(&files.running_record())?;
        if !init.is_live().unwrap_or(false) {
            return None;
        }
        let freezers = self.freezers.get_or_init(CgroupFreezers::discover);
        if freezers.state_of(init.pid) != FreezerState::Thawed {
            return None;
        }
        let mut state = ContainerState::new(ContainerStatus::Running);
        state.pid = Some(init.pid);
        state.started_at = self.started_at(c);
        Some(state)
    }

    pub(crate) fn started_at(&self, c: &ContainerDescription) -> Option<SystemTime> {
        std::fs::metadata(self.layout(c).started_marker)
            .and_then(|m| m.modified())
            .ok()
    }
}
