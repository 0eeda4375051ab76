//! Freezing and thawing through `RUNTIME pause` and `resume`.

use runtime_api::{ContainerDescription, Feature, Result, RuntimeError};

use crate::runtime::ConmonRuntime;
use crate::runtime_cli::Subcommand;

impl ConmonRuntime {
    pub(crate) async fn pause_container(&self, c: &ContainerDescription) -> Result<()> {
        if !self.config.cgroups_usable() {
            return Err(RuntimeError::unsupported(Feature::Pause, "pause"));
        }
        match self
            .cli
            .run(Subcommand::Pause(c.id()), self.config.timeouts.signal)
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
        match self
            .cli
            .run(Subcommand::Resume(c.id()), self.config.timeouts.signal)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify_failure(c, e).await),
        }
    }
}
