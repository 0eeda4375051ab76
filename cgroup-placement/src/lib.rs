//! Deciding where conmon goes and putting it there.
//!
//! This crate re-implements the cgroup half of podman's
//! `moveConmonToCgroupAndSignal`: after conmon is spawned (and before it is
//! told to start the container), it is moved either into a cgroupfs cgroup
//! `<parent>/conmon` or into a transient systemd scope
//! `libpod-conmon-<id>.scope`, or left where it is. It has three parts:
//!
//! - [`decision`]: the pure rule set, [`decide`] → [`Placement`];
//! - [`cgroupfs`]: creating the cgroup in every hierarchy of a v1, v2 or
//!   hybrid host and adding the pid, and removing it again;
//! - [`systemd`]: `StartTransientUnit` over D-Bus (zbus) and waiting for
//!   the job;
//!
//! and [`place`], which chains them and, like podman, never fails: what
//! goes wrong becomes a warning in the [`PlacementOutcome`].
//!
//! ```no_run
//! use std::time::Duration;
//! use cgroup_placement::{place, CgroupManager, CgroupsMode, PlacementInputs};
//!
//! # async fn example(conmon_pid: u32) {
//! let inputs = PlacementInputs {
//!     manager: CgroupManager::Systemd,
//!     no_cgroups: false,
//!     mode: CgroupsMode::Enabled,
//!     cgroup_parent: None,
//!     container_id: "0123abcd".to_string(),
//!     running_as_systemd_service: std::env::var_os("INVOCATION_ID").is_some(),
//!     rootless: false,
//!     cgroup_v2: false,
//! };
//! // `None`: connect to the system bus (session bus when rootless).
//! let outcome = place(&inputs, conmon_pid, None, Duration::from_secs(5)).await;
//! for warning in &outcome.warnings {
//!     eprintln!("warning: {warning}");
//! }
//! println!("conmon placed: {:?}", outcome.placed);
//! # }
//! ```

pub mod cgroupfs;
pub mod decision;
pub mod error;
pub mod systemd;

use std::time::Duration;

use tokio::time::Instant;

pub use cgroupfs::{place_in_cgroupfs, remove_cgroupfs, CgroupHandle};
pub use decision::{
    conmon_unit_name, decide, host_is_cgroup_v2, scope_slice, CgroupManager, CgroupsMode,
    Placement, PlacementInputs, CGROUPFS_DEFAULT_PARENT, SYSTEMD_DEFAULT_PARENT,
    SYSTEMD_DEFAULT_ROOTLESS_PARENT,
};
pub use error::PlacementError;
pub use systemd::{connect_address, connect_bus, place_in_systemd_scope, scope_properties};

/// What [`place`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementOutcome {
    /// Where conmon actually is now: the decided placement when it
    /// succeeded, [`Placement::None`] when nothing was to be done or the
    /// move failed.
    pub placed: Placement,
    /// Everything that went wrong, worded like podman's log lines. podman
    /// logs them as warnings (at info level when rootless, where failing
    /// to configure cgroups is expected); the caller chooses.
    pub warnings: Vec<String>,
}

/// Decides where conmon (`pid`) goes and puts it there. Never fails.
///
/// For a systemd scope, `bus` is the connection to the systemd manager;
/// `None` connects with [`connect_bus`] (`inputs.rootless` selects the
/// session bus). Connecting, the D-Bus call and the wait for the job are
/// together bounded by `limit`.
///
/// Any failure leaves conmon where it is and is reported in
/// [`PlacementOutcome::warnings`]; the caller then goes on starting the
/// container, as podman does.
pub async fn place(
    inputs: &PlacementInputs,
    pid: u32,
    bus: Option<&zbus::Connection>,
    limit: Duration,
) -> PlacementOutcome {
    let decided = decide(inputs);
    let result = match &decided {
        Placement::None => Ok(()),
        Placement::Cgroupfs { path } => place_cgroupfs_blocking(path.clone(), pid, limit)
            .await
            .map_err(|err| format!("Failed to add conmon to cgroupfs sandbox cgroup: {err}")),
        Placement::SystemdScope { unit, slice } => {
            place_systemd(inputs, unit, slice, pid, bus, limit)
                .await
                .map_err(|err| format!("Failed to add conmon to systemd sandbox cgroup: {err}"))
        }
    };
    match result {
        Ok(()) => PlacementOutcome {
            placed: decided,
            warnings: Vec::new(),
        },
        Err(warning) => PlacementOutcome {
            placed: Placement::None,
            warnings: vec![warning],
        },
    }
}

/// Runs [`place_in_cgroupfs`] on tokio's blocking pool, waiting at most
/// `limit` for it (a cgroup filesystem call can stall on a busy host; the
/// blocking task then finishes on its own).
async fn place_cgroupfs_blocking(path: String, pid: u32, limit: Duration) -> Result<(), String> {
    let task = tokio::task::spawn_blocking(move || place_in_cgroupfs(&path, pid));
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(Ok(_handle))) => Ok(()),
        Ok(Ok(Err(err))) => Err(err.to_string()),
        Ok(Err(join)) => Err(format!("cgroupfs placement task failed: {join}")),
        Err(_) => Err(format!(
            "cgroupfs placement did not finish within {limit:?}"
        )),
    }
}

/// Connects when needed, then creates the scope, within `limit` overall.
async fn place_systemd(
    inputs: &PlacementInputs,
    unit: &str,
    slice: &str,
    pid: u32,
    bus: Option<&zbus::Connection>,
    limit: Duration,
) -> Result<(), PlacementError> {
    let deadline = deadline_after(limit);
    let owned;
    let conn = match bus {
        Some(conn) => conn,
        None => {
            owned = connect_bus(inputs.rootless, limit).await?;
            &owned
        }
    };
    let remaining = deadline.saturating_duration_since(Instant::now());
    // podman sends no Description; the empty string keeps the call identical.
    place_in_systemd_scope(conn, unit, slice, pid, "", remaining).await
}

/// `limit` from now; a limit too large to represent (`Duration::MAX`)
/// means no deadline in practice rather than a panic.
pub(crate) fn deadline_after(limit: std::time::Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(limit)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(100 * 365 * 24 * 3600))
}
