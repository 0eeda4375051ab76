//! Stopping: the stop signal, a pidfd wait up to the timeout, then SIGKILL.
//! The pidfd is opened before anything is sent, so a recycled pid is never
//! signalled.

use std::time::Duration;

use runtime_api::{ContainerDescription, Result, RuntimeError, Signal};
use state_probe::PidFd;
use tracing::{debug, info_span, warn, Instrument};

use crate::errors::from_probe;
use crate::files::read_pidfile;
use crate::runtime::ConmonRuntime;

impl ConmonRuntime {
    pub(crate) async fn stop_container(
        &self,
        c: &ContainerDescription,
        timeout: Duration,
        all: bool,
    ) -> Result<()> {
        let span = info_span!("stop", container = %c.id());
        async {
            let files = self.layout(c);
            let operation = format!("stopping container {}", c.id());
            let Some(pid) = read_pidfile(&files.container_pidfile)? else {
                return Err(RuntimeError::NoSuchContainer {
                    id: c.id().to_string(),
                });
            };
            // Opened before the exit-file check so that a reused pid cannot
            // be signalled.
            let Some(pidfd) = PidFd::open(pid).map_err(|e| from_probe(&operation, e))? else {
                return Ok(());
            };
            if files.exit_file.exists() {
                return Ok(());
            }
            if !timeout.is_zero() {
                self.signal_unless_gone(c, c.stop_signal(), all, &pidfd)
                    .await?;
                if pidfd
                    .exited(timeout)
                    .await
                    .map_err(|e| from_probe(&operation, e))?
                {
                    debug!("stopped by the stop signal");
                    let _ = self
                        .await_exit_file(c, self.config.timeouts.kill_wait)
                        .await;
                    return Ok(());
                }
                warn!(
                    signal = c.stop_signal().number(),
                    ?timeout,
                    "stop signal did not stop the container; sending SIGKILL"
                );
            }
            self.signal_unless_gone(c, Signal::KILL, all, &pidfd)
                .await?;
            let limit = self.config.timeouts.kill_wait;
            if !pidfd
                .exited(limit)
                .await
                .map_err(|e| from_probe(&operation, e))?
            {
                return Err(RuntimeError::Timeout {
                    operation: format!("{operation} after SIGKILL"),
                    limit,
                });
            }
            let _ = self.await_exit_file(c, limit).await;
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Sends `signal`; a failure while the process is already gone counts
    /// as delivered.
    pub(crate) async fn signal_unless_gone(
        &self,
        c: &ContainerDescription,
        signal: Signal,
        all: bool,
        pidfd: &PidFd,
    ) -> Result<()> {
        match self.kill_container(c, signal, all).await {
            Ok(()) => Ok(()),
            Err(e) => match pidfd.exited(Duration::ZERO).await {
                Ok(true) => Ok(()),
                _ => Err(e),
            },
        }
    }
}
