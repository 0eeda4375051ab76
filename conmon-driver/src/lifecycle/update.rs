//! Applying new resource limits through `RUNTIME update`, offered when the
//! runtime has that subcommand (runsc has not).

use runtime_api::{ContainerDescription, Feature, LinuxResources, Result, RuntimeError};
use tracing::{info_span, Instrument};

use crate::runtime::ConmonRuntime;
use crate::runtime_cli::Subcommand;

impl ConmonRuntime {
    pub(crate) async fn update_container_resources(
        &self,
        c: &ContainerDescription,
        resources: &LinuxResources,
    ) -> Result<()> {
        if !self.config.cgroups_usable() || !self.supports_update().await {
            return Err(RuntimeError::unsupported(
                Feature::UpdateResources,
                "update_resources",
            ));
        }
        let json = serde_json::to_vec(resources).map_err(|e| {
            RuntimeError::InvalidArgument(format!("resources cannot be serialized: {e}"))
        })?;
        let held = self
            .reservations
            .reserve(c.id(), "update_resources", self.config.timeouts.checkpoint)
            .await?;
        // Removed when dropped, whatever the runtime answers: after the
        // command ended, also when the caller gave up before.
        let mut file = tempfile::Builder::new()
            .prefix("resources-")
            .suffix(".json")
            .tempfile_in(&self.config.tmp_dir)
            .map_err(|e| RuntimeError::io("creating the resources file", e))?;
        std::io::Write::write_all(&mut file, &json)
            .map_err(|e| RuntimeError::io("writing the resources file", e))?;
        let resources = file.path().to_path_buf();
        self.cli
            .run_holding(
                Subcommand::Update {
                    id: c.id(),
                    resources: &resources,
                },
                self.config.timeouts.checkpoint,
                (held, file),
            )
            .instrument(info_span!("update", container = %c.id()))
            .await
            .map(drop)
    }

    /// Whether the runtime has an `update` subcommand (probed once).
    pub(crate) async fn supports_update(&self) -> bool {
        self.probe_subcommand(&self.update_support, Subcommand::UpdateHelp)
            .await
    }
}
