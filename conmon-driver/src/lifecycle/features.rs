//! Which optional features the configured runtime offers, probed once per
//! subcommand and cached.

use runtime_api::{Feature, FeatureSet, Result, RuntimeError};

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
        *self
            .exec_terminal_support
            .get_or_init(|| async {
                match self
                    .cli
                    .run(Subcommand::ExecHelp, self.config.timeouts.probe)
                    .await
                {
                    Ok(out) => mentions_tty_flag(&out.stdout) || mentions_tty_flag(&out.stderr),
                    Err(_) => false,
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

/// Whether a help text lists a `--tty` flag (`--tty`, `-tty` or `--tty=`).
fn mentions_tty_flag(help: &[u8]) -> bool {
    String::from_utf8_lossy(help)
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=')
        .any(|word| word == "--tty" || word == "-tty")
}

#[cfg(test)]
mod tests {
    use super::mentions_tty_flag;

    #[test]
    fn tty_flag_is_found_in_runc_and_crun_help_but_not_in_runsc_help() {
        let runc = b"   --tty, -t                          allocate a pseudo-TTY";
        let crun = b"  -t, --tty[=TTY]            allocate a pseudo-TTY";
        let runsc = b"  -internal-pid-file string\n    \tfilename ... of the tty\n";
        assert!(mentions_tty_flag(runc));
        assert!(mentions_tty_flag(crun));
        assert!(!mentions_tty_flag(runsc));
        assert!(!mentions_tty_flag(b"--ttyfoo"));
    }
}
