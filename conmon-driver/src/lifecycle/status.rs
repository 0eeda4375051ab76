//! A container's state: conmon's exit file first (code, finish time, OOM),
//! then `RUNTIME state`; a runtime that says "stopped" before the exit file
//! exists gets a short event-driven wait for it.
//!
//! A container this driver created (its persist directory exists) that the
//! runtime says does not exist is exited, as podman records it: exit code
//! -1 and finish time now, unless conmon's exit file (read once more, it
//! may have landed meanwhile) says otherwise. An id the driver never
//! created, or already removed, is `NoSuchContainer`.

use std::time::SystemTime;

use runtime_api::{ContainerDescription, ContainerState, ContainerStatus, Result, RuntimeError};
use state_probe::{read_exit_file, RuntimeStatus, StateProbe};

use crate::errors::from_probe;
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

    pub(crate) fn started_at(&self, c: &ContainerDescription) -> Option<SystemTime> {
        std::fs::metadata(self.layout(c).started_marker)
            .and_then(|m| m.modified())
            .ok()
    }
}
