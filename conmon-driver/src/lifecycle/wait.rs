//! Waiting for a container's exit: conmon's exit file watched through the
//! runtime's shared inotify instance (any number of concurrent waits use one)
//! while conmon's pidfd says whether it can still come.

use std::time::Duration;

use runtime_api::{ContainerDescription, Result, RuntimeError};
use state_probe::read_exit_file;
use tracing::{info_span, Instrument};

use crate::errors::from_probe;
use crate::launch::process::monitor_pidfd;
use crate::runtime::ConmonRuntime;

impl ConmonRuntime {
    /// Waits for conmon's exit file, giving up early when conmon itself is
    /// gone without writing it.
    pub(crate) async fn await_exit_file(
        &self,
        c: &ContainerDescription,
        limit: Duration,
    ) -> Result<i32> {
        let files = self.layout(c);
        let operation = format!("waiting for container {} to exit", c.id());
        let monitor = monitor_pidfd(&files.conmon_pidfile, c.id().as_str());
        let exit_file = self.exit_watcher.wait(&files.exit_file, limit);
        let monitor_gone = || crate::MonitorGone::new(c.id().as_str()).into_runtime_error();
        let record = match monitor {
            Some(monitor) => {
                tokio::select! {
                    record = exit_file => record,
                    gone = monitor.exited(limit) => match gone {
                        // conmon writes the exit file before it exits.
                        Ok(true) => match read_exit_file(&files.exit_file) {
                            Ok(Some(record)) => Ok(record),
                            Ok(None) => return Err(monitor_gone()),
                            Err(e) => Err(e),
                        },
                        Ok(false) => return Err(RuntimeError::Timeout { operation, limit }),
                        Err(e) => Err(e),
                    },
                }
            }
            None => match read_exit_file(&files.exit_file) {
                Ok(Some(record)) => Ok(record),
                // A pidfile without a live conmon: it was launched and died
                // (killed?) before writing the exit file; the container
                // itself may still run.
                Ok(None) if files.conmon_pidfile.exists() => return Err(monitor_gone()),
                Ok(None) => {
                    return Err(RuntimeError::NoSuchContainer {
                        id: c.id().to_string(),
                    })
                }
                Err(e) => Err(e),
            },
        };
        record
            .map(|r| r.code)
            .map_err(|e| from_probe(&operation, e))
    }

    pub(crate) async fn wait_container(
        &self,
        c: &ContainerDescription,
        timeout: Duration,
    ) -> Result<i32> {
        self.await_exit_file(c, timeout)
            .instrument(info_span!("wait", container = %c.id()))
            .await
    }
}
