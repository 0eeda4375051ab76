//! The SELinux label conmon is launched with, decided once per launch from
//! the configured policy and the host (or its test stand-in), and applied
//! in conmon's child only.

use runtime_api::RuntimeError;
use selinux_launch::{ExecLabel, SecurityLabel};

use crate::config::{ConmonConfig, SelinuxPolicy};

/// The SELinux label conmon is launched with, decided once per launch from
/// the policy and the host (or its test stand-in). An unreadable current
/// label on an SELinux host fails the create, as in podman.
pub(crate) fn exec_label(config: &ConmonConfig) -> Result<Option<ExecLabel>, RuntimeError> {
    let label_error = |e: selinux_launch::SelinuxError| {
        RuntimeError::io(
            "reading the SELinux label for conmon",
            std::io::Error::other(e.to_string()),
        )
    };
    if config.selinux == SelinuxPolicy::Off {
        return Ok(None);
    }
    match &config.selinux_host {
        None => {
            if !selinux_launch::selinux_enabled() {
                return Ok(None);
            }
            let current = selinux_launch::current_label().map_err(label_error)?;
            Ok(
                selinux_launch::exec_label_for(config.selinux, true, current.as_ref())
                    .map(ExecLabel::new),
            )
        }
        Some(host) => {
            let current = host
                .current_label
                .as_deref()
                .map(SecurityLabel::parse)
                .transpose()
                .map_err(label_error)?;
            selinux_launch::exec_label_for(config.selinux, host.enabled, current.as_ref())
                .map(|label| ExecLabel::with_path(label, &host.exec_attr_path))
                .transpose()
                .map_err(label_error)
        }
    }
}
