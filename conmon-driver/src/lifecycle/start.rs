//! Starting a created container: the start time is recorded first, then
//! `RUNTIME start`; systemd is told once the container runs.

use runtime_api::{ContainerDescription, Result};
use tracing::{info_span, warn, Instrument};

use crate::files::read_pidfile;
use crate::runtime::ConmonRuntime;
use crate::runtime_cli::Subcommand;
use crate::ConmonDescription;

impl ConmonRuntime {
    pub(crate) async fn start_container(&self, c: &ContainerDescription) -> Result<()> {
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
            .run(Subcommand::Start(c.id()), self.config.timeouts.start)
            .instrument(info_span!("start", container = %c.id()))
            .await
        {
            if wrote_marker {
                let _ = std::fs::remove_file(&marker);
            }
            return Err(self.classify_failure(c, e).await);
        }
        self.notify_systemd(c).await;
        Ok(())
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
