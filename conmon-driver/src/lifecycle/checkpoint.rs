//! Checkpoint and restore through the runtime (CRIU), offered when the
//! runtime has a `checkpoint` subcommand.

use std::time::Duration;

use runtime_api::{
    CheckpointOptions, ContainerDescription, CreateOptions, CreatedContainer, Feature,
    RestoreOptions, Result, RuntimeError,
};
use tracing::{info_span, Instrument};

use crate::runtime::ConmonRuntime;
use crate::runtime_cli::Subcommand;
use crate::MonitorOptions;

impl ConmonRuntime {
    pub(crate) async fn checkpoint_container(
        &self,
        c: &ContainerDescription,
        options: &CheckpointOptions,
    ) -> Result<Duration> {
        options.validate()?;
        if !self.supports_checkpoint().await {
            return Err(RuntimeError::unsupported(Feature::Checkpoint, "checkpoint"));
        }
        let held = self
            .reservations
            .reserve(c.id(), "checkpoint", self.config.timeouts.checkpoint)
            .await?;
        let started = std::time::Instant::now();
        self.cli
            .run_holding(
                Subcommand::Checkpoint {
                    id: c.id(),
                    options,
                },
                self.config.timeouts.checkpoint,
                held,
            )
            .instrument(info_span!("checkpoint", container = %c.id()))
            .await?;
        Ok(started.elapsed())
    }

    pub(crate) async fn restore_container(
        &self,
        container: &ContainerDescription,
        restore: &RestoreOptions,
        options: CreateOptions,
    ) -> Result<CreatedContainer> {
        restore.validate()?;
        if !self.supports_checkpoint().await {
            return Err(RuntimeError::unsupported(Feature::Restore, "restore"));
        }
        crate::lifecycle::create::create(
            self,
            container,
            options,
            MonitorOptions::default(),
            Some(restore),
        )
        .instrument(info_span!("restore", container = %container.id()))
        .await
        .map(|created| created.container)
    }

    /// Whether the runtime has a `checkpoint` subcommand (probed once with
    /// `RUNTIME checkpoint --help`).
    pub(crate) async fn supports_checkpoint(&self) -> bool {
        self.probe_subcommand(&self.checkpoint_support, Subcommand::CheckpointHelp)
            .await
    }
}
