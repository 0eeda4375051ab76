//! Signals through `RUNTIME kill`, and the mapping of a failed runtime call
//! on a container to the contract's typed errors, judged by the runtime's
//! state rather than its message text.

use runtime_api::{ContainerDescription, Result, RuntimeError, Signal};
use state_probe::{RuntimeStatus, StateProbe};
use tracing::{info_span, warn, Instrument};

use crate::runtime::ConmonRuntime;
use crate::runtime_cli::Subcommand;

impl ConmonRuntime {
    pub(crate) async fn kill_container(
        &self,
        c: &ContainerDescription,
        signal: Signal,
        all: bool,
    ) -> Result<()> {
        let span = info_span!("kill", container = %c.id(), signal = signal.number());
        async {
            // Known in advance: without usable cgroups (rootless on cgroup
            // v1) `kill --all` fails, so the init process is signalled
            // directly.
            let all = all && self.config.cgroups_usable();
            let Err(e) = self.send_kill(c, signal, all).await else {
                return Ok(());
            };
            match self.classify_failure(c, e).await {
                // `kill --all` needs the container's cgroup, which a
                // runtime may lack (cgroups disabled, or not delegated).
                // The init process is still reachable, and in a container
                // with its own PID namespace its death ends every other
                // process.
                err @ RuntimeError::RuntimeFailed { .. } if all => {
                    warn!(error = %err, "signalling every process failed; signalling the init process");
                    match self.send_kill(c, signal, false).await {
                        Ok(()) => Ok(()),
                        Err(e) => Err(self.classify_failure(c, e).await),
                    }
                }
                err => Err(err),
            }
        }
        .instrument(span)
        .await
    }

    async fn send_kill(&self, c: &ContainerDescription, signal: Signal, all: bool) -> Result<()> {
        let kill = Subcommand::Kill {
            id: c.id(),
            signal,
            all,
        };
        self.cli
            .run(kill, self.config.timeouts.signal)
            .await
            .map(drop)
    }

    /// Maps a failed runtime call on `c` to the contract's typed errors:
    /// a container the runtime does not know is `NoSuchContainer`, one that
    /// exited is `ContainerNotRunning`; anything else stays as it was.
    pub(crate) async fn classify_failure(
        &self,
        c: &ContainerDescription,
        err: RuntimeError,
    ) -> RuntimeError {
        if !matches!(err, RuntimeError::RuntimeFailed { .. }) {
            return err;
        }
        if self.layout(c).exit_file.exists() {
            return RuntimeError::ContainerNotRunning {
                id: c.id().to_string(),
            };
        }
        match self.cli.state(c.id(), self.config.timeouts.state).await {
            Ok(StateProbe::Gone) => RuntimeError::NoSuchContainer {
                id: c.id().to_string(),
            },
            Ok(StateProbe::Present(state)) if state.status == RuntimeStatus::Stopped => {
                RuntimeError::ContainerNotRunning {
                    id: c.id().to_string(),
                }
            }
            _ => err,
        }
    }
}
