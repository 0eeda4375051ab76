//! Putting conmon in its cgroup between spawn and start byte (podman's
//! `moveConmonToCgroupAndSignal`), and removing the cgroupfs cgroup again
//! after the container is deleted.
//!
//! The decision and the moves live in the `cgroup-placement` crate; this
//! module maps the driver's configuration and the container's description
//! into its [`PlacementInputs`], connects to the configured bus, and turns
//! the outcome into the create result: a description of where conmon went
//! and warnings (logged here, returned to the caller), never an error.

use crate::ConmonDescription;
use std::time::Duration;

use cgroup_placement::{Placement, PlacementInputs};
use runtime_api::ContainerDescription;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::config::{CgroupManager, ConmonConfig};

/// What placing conmon produced for the create result.
#[derive(Debug, Default)]
pub(crate) struct Placed {
    /// Where conmon is now, in words; `None` when it stayed put.
    pub(crate) description: Option<String>,
    /// What went wrong, already logged.
    pub(crate) warnings: Vec<String>,
}

/// The decision's inputs, from plain configuration and description data.
pub(crate) fn inputs(config: &ConmonConfig, c: &ContainerDescription) -> PlacementInputs {
    PlacementInputs {
        manager: match config.cgroup_manager {
            CgroupManager::Cgroupfs => cgroup_placement::CgroupManager::Cgroupfs,
            CgroupManager::Systemd => cgroup_placement::CgroupManager::Systemd,
        },
        no_cgroups: c.no_cgroups(),
        mode: match c.cgroups_mode() {
            crate::CgroupsMode::Enabled => cgroup_placement::CgroupsMode::Enabled,
            crate::CgroupsMode::Disabled => cgroup_placement::CgroupsMode::Disabled,
            crate::CgroupsMode::NoConmon => cgroup_placement::CgroupsMode::NoConmon,
            crate::CgroupsMode::Split => cgroup_placement::CgroupsMode::Split,
        },
        cgroup_parent: c.cgroup_parent().map(str::to_string),
        container_id: c.id().to_string(),
        running_as_systemd_service: config.invocation_id_set,
        rootless: config.rootless_uid.is_some(),
        cgroup_v2: config.cgroup_v2,
    }
}

/// A placement in words, `None` for [`Placement::None`].
pub(crate) fn describe(placement: &Placement) -> Option<String> {
    match placement {
        Placement::None => None,
        Placement::Cgroupfs { path } => Some(format!("cgroupfs:{path}")),
        Placement::SystemdScope { unit, slice } => Some(format!("systemd:{unit} in {slice}")),
    }
}

/// Moves conmon (`pid`, its first process, before the start byte) where
/// the decision says, within `config.timeouts.placement`. Never fails:
/// problems become logged warnings, as in podman.
pub(crate) async fn place_conmon(
    config: &ConmonConfig,
    c: &ContainerDescription,
    pid: Option<u32>,
) -> Placed {
    let inputs = inputs(config, c);
    let decided = cgroup_placement::decide(&inputs);
    if decided == Placement::None {
        debug!(container = %c.id(), "conmon stays in the caller's cgroup");
        return Placed::default();
    }
    let Some(pid) = pid else {
        return warned(
            c,
            "conmon exited before it could be placed in a cgroup".into(),
        );
    };
    let limit = config.timeouts.placement;
    let deadline = state_probe::deadline_after(limit);
    let bus = match (&decided, &config.systemd_bus_address) {
        (Placement::SystemdScope { .. }, Some(address)) => {
            match cgroup_placement::connect_address(address, limit).await {
                Ok(conn) => Some(conn),
                Err(e) => {
                    return warned(
                        c,
                        format!("Failed to add conmon to systemd sandbox cgroup: {e}"),
                    )
                }
            }
        }
        _ => None,
    };
    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let outcome = cgroup_placement::place(&inputs, pid, bus.as_ref(), remaining).await;
    let mut placed = Placed {
        description: describe(&outcome.placed),
        warnings: Vec::new(),
    };
    for warning in outcome.warnings {
        warn!(container = %c.id(), "{warning}");
        placed.warnings.push(warning);
    }
    if let Some(where_) = &placed.description {
        debug!(container = %c.id(), placement = %where_, "conmon placed");
    }
    placed
}

fn warned(c: &ContainerDescription, warning: String) -> Placed {
    warn!(container = %c.id(), "{warning}");
    Placed {
        description: None,
        warnings: vec![warning],
    }
}

/// The cgroupfs cgroup conmon is placed in for this container, if the
/// decision is cgroupfs (`<parent>/conmon`).
pub(crate) fn conmon_cgroupfs_path(
    config: &ConmonConfig,
    c: &ContainerDescription,
) -> Option<String> {
    match cgroup_placement::decide(&inputs(config, c)) {
        Placement::Cgroupfs { path } => Some(path),
        _ => None,
    }
}

/// After the container is deleted (conmon gone): removes the cgroupfs
/// cgroup `path` (from [`conmon_cgroupfs_path`]) when no process is left
/// in it. The cgroup is shared by every container with the same parent, so
/// one still holding another container's conmon stays (podman never
/// removes it at all). A systemd scope needs nothing: systemd collects it
/// once conmon has exited. Called from `ContainerLayout::remove_all`, which
/// `delete` and a failed create's undo run once conmon is gone.
///
/// Returns the warning it logged, if any; never fails the delete.
pub(crate) fn cleanup_after_delete(container: &str, path: &str) -> Option<String> {
    match cgroup_placement::remove_cgroupfs(path) {
        Ok(()) => {
            debug!(container, cgroup = %path, "conmon cgroup removed (or absent)");
            None
        }
        Err(cgroup_placement::PlacementError::CgroupBusy { directory }) => {
            debug!(
                container,
                directory = %directory.display(),
                "conmon cgroup still used by other containers; kept"
            );
            None
        }
        Err(e) => {
            let warning = format!("cannot remove conmon's cgroup {path}: {e}");
            warn!(container, "{warning}");
            Some(warning)
        }
    }
}

/// Removes the default cgroupfs parent (`/libpod_parent`) from every
/// hierarchy where nothing uses it any more: the driver made it, so the
/// driver leaves no empty cgroup behind. A parent still holding another
/// container's `conmon` cgroup refuses the `rmdir` and stays.
pub(crate) fn remove_default_parent_if_unused() {
    let Ok(handle) =
        cgroup_placement::CgroupHandle::open(cgroup_placement::CGROUPFS_DEFAULT_PARENT)
    else {
        return;
    };
    for directory in handle.directories() {
        if let Err(e) = std::fs::remove_dir(&directory) {
            debug!(directory = %directory.display(), error = %e, "default cgroup parent kept");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CgroupsMode, ConmonDescriptionExt};
    use runtime_api::{ContainerId, LogDriver};

    fn container(parent: Option<&str>, mode: CgroupsMode) -> ContainerDescription {
        let mut b = ContainerDescription::builder(ContainerId::new("c1").unwrap(), "/b", "/r")
            .log(LogDriver::None, "/r/log")
            .cgroups_mode(mode);
        if let Some(parent) = parent {
            b = b.cgroup_parent(parent);
        }
        b.build().unwrap()
    }

    #[test]
    fn inputs_follow_config_and_description() {
        let mut config = ConmonConfig::new("runc", "/t");
        config.cgroup_manager = CgroupManager::Systemd;
        config.rootless_uid = Some(1000);
        config.invocation_id_set = true;
        let got = inputs(&config, &container(Some("a.slice"), CgroupsMode::NoConmon));
        assert_eq!(
            got,
            PlacementInputs {
                manager: cgroup_placement::CgroupManager::Systemd,
                no_cgroups: false,
                mode: cgroup_placement::CgroupsMode::NoConmon,
                cgroup_parent: Some("a.slice".into()),
                container_id: "c1".into(),
                running_as_systemd_service: true,
                rootless: true,
                cgroup_v2: false,
            }
        );
    }

    #[test]
    fn descriptions() {
        let mut config = ConmonConfig::new("runc", "/t");
        config.invocation_id_set = false;
        let fs = cgroup_placement::decide(&inputs(&config, &container(None, CgroupsMode::Enabled)));
        assert_eq!(
            describe(&fs).as_deref(),
            Some("cgroupfs:/libpod_parent/conmon")
        );
        config.cgroup_manager = CgroupManager::Systemd;
        let scope = cgroup_placement::decide(&inputs(
            &config,
            &container(Some("machine.slice"), CgroupsMode::Enabled),
        ));
        assert_eq!(
            describe(&scope).as_deref(),
            Some("systemd:libpod-conmon-c1.scope in machine.slice")
        );
        assert_eq!(describe(&Placement::None), None);
    }
}
