//! conmon's environment, built as a pure function: conmon starts with an
//! explicit environment (nothing of the driver's own is inherited), so every
//! variable it sees is listed here and tested as an exact vector.

use runtime_api::ContainerDescription;

use crate::{ConmonDescription, SdNotifyMode};
use sync_pipe::PipeNumbers;

use crate::config::ConmonConfig;

/// Everything conmon's environment depends on for one launch.
#[derive(Debug, Clone, Copy)]
pub struct ConmonEnv<'a> {
    /// The driver's settings.
    pub config: &'a ConmonConfig,
    /// The container.
    pub container: &'a ContainerDescription,
    /// The fd numbers of the pipes (shifted by the passed fds).
    pub pipes: PipeNumbers,
    /// How many socket-activation fds are passed (`LISTEN_FDS`).
    pub listen_fds: u32,
}

impl ConmonEnv<'_> {
    /// The variables, in order; a variable the driver sets replaces one of
    /// the same name in the configured conmon environment.
    ///
    /// ```
    /// use conmon_driver::{ConmonConfig, ConmonEnv};
    /// use runtime_api::{ContainerDescription, ContainerId, LogDriver};
    /// use sync_pipe::PipeNumbers;
    ///
    /// let config = ConmonConfig::new("runc", "/run/engine");
    /// let container = ContainerDescription::builder(ContainerId::new("c1")?, "/b", "/r")
    ///     .log(LogDriver::None, "")
    ///     .build()?;
    /// let env = ConmonEnv { config: &config, container: &container, pipes: PipeNumbers::new(0, false), listen_fds: 0 }
    ///     .build();
    /// assert!(env.contains(&("_OCI_SYNCPIPE".into(), "3".into())));
    /// # Ok::<(), runtime_api::RuntimeError>(())
    /// ```
    pub fn build(&self) -> Vec<(String, String)> {
        let config = self.config;
        let mut own: Vec<(String, String)> = self.pipes.env();
        if let Some(dir) = &config.xdg_runtime_dir {
            own.push(("XDG_RUNTIME_DIR".into(), dir.display().to_string()));
        }
        if config.userns_configured {
            own.push(("_CONTAINERS_USERNS_CONFIGURED".into(), "done".into()));
        }
        if let Some(uid) = config.rootless_uid {
            own.push(("_CONTAINERS_ROOTLESS_UID".into(), uid.to_string()));
        }
        if let Some(home) = &config.home {
            own.push(("HOME".into(), home.display().to_string()));
        }
        if self.container.sd_notify() == SdNotifyMode::Container {
            if let Some(socket) = &config.notify_socket {
                own.push(("NOTIFY_SOCKET".into(), socket.display().to_string()));
            }
        }
        if self.listen_fds > 0 {
            own.push(("LISTEN_FDS".into(), self.listen_fds.to_string()));
            own.push(("LISTEN_PID".into(), "1".into()));
        }
        let mut env: Vec<(String, String)> = config
            .conmon_env
            .iter()
            .filter(|(key, _)| {
                key != "NOTIFY_SOCKET" && !own.iter().any(|(own_key, _)| own_key == key)
            })
            .cloned()
            .collect();
        env.extend(own);
        env
    }
}
