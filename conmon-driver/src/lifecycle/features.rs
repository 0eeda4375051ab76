//! Which optional features the configured runtime offers, probed once per
//! subcommand and cached.

use runtime_api::{Feature, FeatureSet, Result};

use crate::runtime::ConmonRuntime;
use crate::runtime_cli::Subcommand;

impl ConmonRuntime {
    pub(crate) async fn probe_features(&self) -> Result<FeatureSet> {
        let mut features = FeatureSet::all();
        if !self.supports_checkpoint().await {
            features.remove(Feature::Checkpoint);
            features.remove(Feature::Restore);
        }
        if !self.supports_update().await {
            features.remove(Feature::UpdateResources);
        }
        if !self.config.cgroups_usable() {
            features.remove(Feature::Pause);
            features.remove(Feature::UpdateResources);
        }
        Ok(features)
    }

    pub(crate) async fn probe_subcommand(
        &self,
        cache: &tokio::sync::OnceCell<bool>,
        help: Subcommand<'static>,
    ) -> bool {
        *cache
            .get_or_init(|| async { self.cli.run(help, self.config.timeouts.probe).await.is_ok() })
            .await
    }
}
