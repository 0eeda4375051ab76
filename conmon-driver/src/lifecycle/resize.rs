//! Resizing a container's terminal through conmon's control FIFO. Every
//! `u16` size is forwarded as podman forwards it (a zero dimension included:
//! the terminal then reports that dimension as unknown).

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
        attach::resize(&c.bundle().join("ctl"), size, self.config.timeouts.attach)
            .await
            .map_err(|e| match e {
                attach::AttachError::ControlUnavailable { .. } => {
                    RuntimeError::ContainerNotRunning {
                        id: c.id().to_string(),
                    }
                }
                other => crate::streams::attach::from_attach(c, other),
            })
    }
}
