//! Signals through `RUNTIME kill`, and the mapping of a failed runtime call
//! on a container to the contract's typed errors, judged by the runtime's
//! state rather than its message text.

use runtime_api::{ContainerDescription, Result, RuntimeError, Signal};
use state_probe::{RuntimeStatus, StateProbe};
use tracing::{info_span, Instrument};

use crate::runtime::ConmonRuntime;
use crate::runtime_cli::Subcommand;

impl ConmonRuntime {
    pub(crate) async fn kill_container(
        &self,
        c: &ContainerDescription,
        signal: Signal,
        all: bool,
    ) -> Result<()> {
        let sent = self
            .cli
            .run(
                Subcommand::Kill {
                    id: c.id(),
                    signal,
                    all,
                },
                self.config.timeouts.signal,
            )
            .instrument(info_span!("kill", container = %c.id(), signal = signal.number()))
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify_failure(c, e).await),
        }
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
