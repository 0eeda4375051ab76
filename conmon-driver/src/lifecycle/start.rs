//! Starting a created container: the start time is recorded first, then
//! `RUNTIME start`; once it succeeded, the container's init process (pid
//! and start time) is recorded for status (`status.rs`), and systemd is
//! told that the container runs.

use runtime_api::{ContainerDescription, Result, RuntimeError};
use state_probe::{RuntimeStatus, StateProbe};
use tracing::{debug, info_span, warn, Instrument};

use crate::files::read_pidfile;
use crate::runtime::ConmonRuntime;
use crate::runtime_cli::Subcommand;
use crate::ConmonDescription;

impl ConmonRuntime {
    pub(crate) async fn start_container(&self, c: &ContainerDescription) -> Result<()> {
        let held = self
            .reservations
            .reserve(c.id(), "start", self.config.timeouts.start)
            .await?;
        // Recorded before the runtime is asked: a process that exits at
        // once must not appear to have finished before it started.
        // A second start must not move or lose the first one's time.
        let marker = self.layout(c).started_marker;
        let wrote_marker = c.run_dir().exists()
            && std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&marker)
                .is_ok();
        if let Err(e) = self
            .cli
            .run_holding(Subcommand::Start(c.id()), self.config.timeouts.start, held)
            .instrument(info_span!("start", container = %c.id()))
            .await
        {
            if wrote_marker {
                let _ = std::fs::remove_file(&marker);
            }
            return Err(self.classify_start_failure(c, e).await);
        }
        self.record_running(c);
        self.notify_systemd(c).await;
        Ok(())
    }

    /// A start refused because the container runs (or is paused) already
    /// is the caller's mistake, told as such; other failures are
    /// classified as for any call.
    async fn classify_start_failure(
        &self,
        c: &ContainerDescription,
        err: RuntimeError,
    ) -> RuntimeError {
        if matches!(err, RuntimeError::RuntimeFailed { .. }) && !self.layout(c).exit_file.exists() {
            if let Ok(StateProbe::Present(state)) =
                self.cli.state(c.id(), self.config.timeouts.state).await
            {
                if matches!(state.status, RuntimeStatus::Running | RuntimeStatus::Paused) {
                    return RuntimeError::InvalidArgument(format!(
                        "container {} was started already (it is {:?})",
                        c.id(),
                        state.status
                    ));
                }
            }
        }
        self.classify_failure(c, err).await
    }

    /// Records the init process of a container whose start succeeded, read
    /// from the runtime's pidfile, into the persist directory (written to
    /// a temporary name, then renamed over). Only a shortcut for status
    /// depends on it, so a record that cannot be made is logged and
    /// skipped: status then asks the runtime. A process already gone gets
    /// no record.
    fn record_running(&self, c: &ContainerDescription) {
        let layout = self.layout(c);
        let record = layout.running_record();
        let written = (|| -> std::io::Result<bool> {
            let pid = match read_pidfile(&layout.container_pidfile) {
                Ok(Some(pid)) => pid,
                Ok(None) => return Ok(false),
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            };
            let identity = match state_probe::ProcessIdentity::of(pid) {
                Ok(Some(identity)) => identity,
                Ok(None) => return Ok(false),
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            };
            let partial = layout.persist_dir.join(".running.tmp");
            std::fs::write(&partial, identity.to_string())?;
            std::fs::rename(&partial, &record)?;
            Ok(true)
        })();
        match written {
            Ok(true) => {}
            Ok(false) => debug!(container = %c.id(), "no running init process to record"),
            Err(e) => {
                debug!(container = %c.id(), error = %e, "cannot record the init process")
            }
        }
    }

    /// Tells systemd, once the container runs (as podman does after
    /// `start`), that conmon is the main process, and in conmon mode that
    /// the container is ready. A failure is logged, not returned: the
    /// container runs either way.
    pub(crate) async fn notify_systemd(&self, c: &ContainerDescription) {
        let Some(socket) = self.config.notify_socket.clone() else {
            return;
        };
        let Ok(Some(monitor_pid)) = read_pidfile(&c.conmon_pidfile()) else {
            warn!(container = %c.id(), "no conmon pid to notify systemd with");
            return;
        };
        let Some(message) = crate::lifecycle::notify::message(c.sd_notify(), monitor_pid) else {
            return;
        };
        let limit = self.config.timeouts.notify;
        let sent = tokio::task::spawn_blocking(move || {
            crate::lifecycle::notify::send(&socket, &message, limit)
        })
        .await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(container = %c.id(), error = %e, "cannot notify systemd"),
            Err(e) => warn!(container = %c.id(), error = %e, "cannot notify systemd"),
        }
    }
}
