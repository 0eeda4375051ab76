//! Resizing a container's terminal and reopening its log through conmon's
//! control FIFO. Every `u16` size is forwarded as podman forwards it (a
//! zero dimension included: the terminal then reports that dimension as
//! unknown).

use runtime_api::{ContainerDescription, Result, RuntimeError, TerminalSize};

use crate::runtime::ConmonRuntime;

impl ConmonRuntime {
    pub(crate) async fn resize_container_terminal(
        &self,
        c: &ContainerDescription,
        size: TerminalSize,
    ) -> Result<()> {
        let files = self.layout(c);
        if files.exit_file.exists() {
            return Err(RuntimeError::ContainerNotRunning {
                id: c.id().to_string(),
            });
        }
        let size = attach::TerminalSize::new(size.rows, size.cols);
        let sent = attach::resize(&c.bundle().join("ctl"), size, self.config.timeouts.attach).await;
        self.control_answer(c, sent)
    }

    /// Asks conmon to reopen the log file (podman's `ReopenContainerLog`,
    /// CRI-O's log rotation). conmon answers nothing; the reopen is done
    /// once conmon has read the line, before it handles the container's
    /// next output.
    pub(crate) async fn reopen_container_log(&self, c: &ContainerDescription) -> Result<()> {
        let files = self.layout(c);
        if files.exit_file.exists() {
            return Err(RuntimeError::ContainerNotRunning {
                id: c.id().to_string(),
            });
        }
        let sent = attach::reopen_log(&c.bundle().join("ctl"), self.config.timeouts.attach).await;
        self.control_answer(c, sent)
    }

    /// A control FIFO with no conmon behind it means the container is gone.
    fn control_answer(
        &self,
        c: &ContainerDescription,
        sent: std::result::Result<(), attach::AttachError>,
    ) -> Result<()> {
        sent.map_err(|e| match e {
            attach::AttachError::ControlUnavailable { .. } => RuntimeError::ContainerNotRunning {
                id: c.id().to_string(),
            },
            other => crate::streams::attach::from_attach(c, other),
        })
    }
}
