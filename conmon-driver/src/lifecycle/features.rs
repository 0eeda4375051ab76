//! Which optional features the configured runtime offers, probed once per
//! subcommand and cached.

use runtime_api::{Feature, FeatureSet, Result, RuntimeError};

use crate::exec_flags::ExecFlags;
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
        if !self.supports_exec_terminal().await {
            features.remove(Feature::ExecResizeTerminal);
        }
        if !self.config.cgroups_usable() {
            features.remove(Feature::Pause);
            features.remove(Feature::UpdateResources);
        }
        Ok(features)
    }

    /// Whether the runtime's `exec` takes `--tty`, which conmon passes for
    /// an exec with a terminal. runsc's `exec` has no such flag.
    pub(crate) async fn supports_exec_terminal(&self) -> bool {
        self.exec_flags().await.tty
    }

    /// Whether the runtime's `exec` runs its process inside a sandbox of
    /// its own behind a host-side process, telling the process's pid there
    /// through `--internal-pid-file` (runsc). Signals for such a process
    /// go through `kill --pid`: the host-side process does not pass them on.
    pub(crate) async fn exec_reports_sandbox_pid(&self) -> bool {
        self.exec_flags().await.internal_pid_file
    }

    /// The flags of the runtime's `exec`, probed once from its help.
    async fn exec_flags(&self) -> ExecFlags {
        *self
            .exec_flags
            .get_or_init(|| async {
                // The help is read whatever the exit status: runsc prints
                // it on stderr and exits non-zero.
                match self
                    .cli
                    .output(Subcommand::ExecHelp, self.config.timeouts.probe)
                    .await
                {
                    Ok(out) => {
                        ExecFlags::from_help(&out.stdout).or(ExecFlags::from_help(&out.stderr))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the runtime's exec help");
                        ExecFlags::default()
                    }
                }
            })
            .await
    }

    /// Refuses an exec with a terminal on a runtime whose `exec` cannot
    /// allocate one, before anything is launched.
    pub(crate) async fn require_exec_terminal(&self, operation: &'static str) -> Result<()> {
        if self.supports_exec_terminal().await {
            Ok(())
        } else {
            Err(RuntimeError::unsupported(
                Feature::ExecResizeTerminal,
                operation,
            ))
        }
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
