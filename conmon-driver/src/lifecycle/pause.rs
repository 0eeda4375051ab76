//! Freezing and thawing through `RUNTIME pause` and `resume`.
//!
//! The persist directory's `paused` marker is made before the runtime is
//! asked to pause and removed only once a resume succeeded: while it
//! exists, status asks the runtime rather than answer "running" from the
//! init process alone (`status.rs`). A pause that failed leaves it: the
//! container may be frozen or not, and the runtime knows which. Where the
//! marker cannot be made, the record of the running init process is
//! removed instead, to the same effect.

use runtime_api::{ContainerDescription, Feature, Result, RuntimeError};

use tracing::debug;

use crate::files::remove_file_if_present;
use crate::runtime::ConmonRuntime;
use crate::runtime_cli::Subcommand;

impl ConmonRuntime {
    pub(crate) async fn pause_container(&self, c: &ContainerDescription) -> Result<()> {
        if !self.config.cgroups_usable() {
            return Err(RuntimeError::unsupported(Feature::Pause, "pause"));
        }
        let held = self
            .reservations
            .reserve(c.id(), "pause", self.config.timeouts.signal)
            .await?;
        let layout = self.layout(c);
        if let Err(e) = std::fs::write(layout.paused_marker(), b"") {
            // Without the marker, the record of the running init process
            // must go: status would otherwise answer "running" from it.
            // (No persist directory: no record either.)
            debug!(container = %c.id(), error = %e, "cannot mark the container paused");
            remove_file_if_present(&layout.running_record())?;
        }
        match self
            .cli
            .run_holding(Subcommand::Pause(c.id()), self.config.timeouts.signal, held)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify_failure(c, e).await),
        }
    }

    pub(crate) async fn resume_container(&self, c: &ContainerDescription) -> Result<()> {
        if !self.config.cgroups_usable() {
            return Err(RuntimeError::unsupported(Feature::Pause, "resume"));
        }
        let held = self
            .reservations
            .reserve(c.id(), "resume", self.config.timeouts.signal)
            .await?;
        match self
            .cli
            .run_holding(
                Subcommand::Resume(c.id()),
                self.config.timeouts.signal,
                held,
            )
            .await
        {
            Ok(_) => {
                // A marker left behind only sends status to the runtime.
                if let Err(e) = remove_file_if_present(&self.layout(c).paused_marker()) {
                    debug!(container = %c.id(), error = %e, "cannot remove the paused marker");
                }
                Ok(())
            }
            Err(e) => Err(self.classify_failure(c, e).await),
        }
    }
}
