//! Capability sets of an exec process, computed with the `caps` crate.
//!
//! podman's `setProcessCapabilitiesExec` gives a privileged exec the
//! capability bounding set of the engine itself; this driver gives it every
//! capability the running kernel knows (`/proc/sys/kernel/cap_last_cap`),
//! bounded by what the caller holds in its own bounding set, since no
//! process can hand on a capability it cannot have. Capability names in
//! exec options are normalised (`net_admin`, `NET_ADMIN` and
//! `CAP_NET_ADMIN` are one capability) and validated against the names the
//! `caps` crate knows; an unknown name is a [`CapabilityError`] naming it.

use std::collections::BTreeSet;
use std::str::FromStr;

use caps::{CapSet, Capability};
use oci_spec::runtime::Capabilities;

/// Why the capabilities of an exec could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilityError {
    /// A capability name no kernel knows.
    #[error("unknown capability {name:?} in {option}")]
    Unknown {
        /// The option that named it (`cap_add`, `cap_drop`).
        option: &'static str,
        /// The name as given.
        name: String,
    },
    /// The kernel's or the caller's capability sets could not be read.
    #[error("cannot read {what}: {message}")]
    Unreadable {
        /// Which set.
        what: &'static str,
        /// The underlying error.
        message: String,
    },
    /// The caller holds none of the capabilities the kernel knows in its
    /// bounding set, so a privileged exec would get nothing.
    #[error("a privileged exec needs capabilities in the caller's bounding set, which is empty")]
    NothingHeld,
}

/// `name` in its canonical form (`CAP_NET_ADMIN`) when it is a capability.
///
/// ```
/// use conmon_driver::normalize_capability;
/// assert_eq!(normalize_capability("net_admin", "cap_add")?, "CAP_NET_ADMIN");
/// assert_eq!(normalize_capability("CAP_SYS_PTRACE", "cap_add")?, "CAP_SYS_PTRACE");
/// assert!(normalize_capability("NET_WIZARD", "cap_add").is_err());
/// # Ok::<(), conmon_driver::CapabilityError>(())
/// ```
///
/// # Errors
///
/// [`CapabilityError::Unknown`] naming `name` and `option`.
pub fn normalize_capability(name: &str, option: &'static str) -> Result<String, CapabilityError> {
    let canonical = caps::to_canonical(name.trim());
    Capability::from_str(&canonical)
        .map(|cap| cap.to_string())
        .map_err(|_| CapabilityError::Unknown {
            option,
            name: name.to_string(),
        })
}

/// The capabilities a privileged exec gets: those the running kernel knows
/// that the caller holds in its bounding set, in kernel order.
///
/// # Errors
///
/// [`CapabilityError::Unreadable`] when the kernel's list or the caller's
/// bounding set cannot be read, [`CapabilityError::NothingHeld`] when the
/// caller's bounding set is empty.
pub fn privileged_capabilities() -> Result<Vec<String>, CapabilityError> {
    let known =
        caps::runtime::procfs_all_supported(None).map_err(|e| CapabilityError::Unreadable {
            what: "the capabilities of the running kernel",
            message: e.to_string(),
        })?;
    let held = caps::read(None, CapSet::Bounding).map_err(|e| CapabilityError::Unreadable {
        what: "the caller's capability bounding set",
        message: e.to_string(),
    })?;
    let mut granted: Vec<Capability> = known.intersection(&held).copied().collect();
    if granted.is_empty() {
        return Err(CapabilityError::NothingHeld);
    }
    granted.sort_by_key(Capability::index);
    Ok(granted.iter().map(ToString::to_string).collect())
}

/// The caller's capability bounding set, by name in kernel order (what
/// runtime info reports).
///
/// # Errors
///
/// [`CapabilityError::Unreadable`] when it cannot be read.
pub fn host_bounding_set() -> Result<Vec<String>, CapabilityError> {
    let held = caps::read(None, CapSet::Bounding).map_err(|e| CapabilityError::Unreadable {
        what: "the caller's capability bounding set",
        message: e.to_string(),
    })?;
    let mut held: Vec<Capability> = held.into_iter().collect();
    held.sort_by_key(Capability::index);
    Ok(held.iter().map(ToString::to_string).collect())
}

/// Converts canonical names into the runtime spec's capability set.
pub(crate) fn to_spec_set<'a>(names: impl IntoIterator<Item = &'a String>) -> Capabilities {
    names
        .into_iter()
        .filter_map(|name| serde_json::from_value(serde_json::Value::String(name.clone())).ok())
        .collect()
}

/// The canonical names of `cap_add` and `cap_drop`, validated.
pub(crate) fn normalized_options(
    cap_add: &[String],
    cap_drop: &[String],
) -> Result<(BTreeSet<String>, BTreeSet<String>), CapabilityError> {
    let add = cap_add
        .iter()
        .map(|name| normalize_capability(name, "cap_add"))
        .collect::<Result<_, _>>()?;
    let drop = cap_drop
        .iter()
        .map(|name| normalize_capability(name, "cap_drop"))
        .collect::<Result<_, _>>()?;
    Ok((add, drop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_unknown_ones_named() {
        for spelling in [
            "net_admin",
            "NET_ADMIN",
            "CAP_NET_ADMIN",
            "cap_net_admin",
            " Net_Admin ",
        ] {
            assert_eq!(
                normalize_capability(spelling, "cap_add").unwrap(),
                "CAP_NET_ADMIN"
            );
        }
        assert_eq!(
            normalize_capability("NET_WIZARD", "cap_drop"),
            Err(CapabilityError::Unknown {
                option: "cap_drop",
                name: "NET_WIZARD".into()
            })
        );
        let err = normalized_options(&["chown".into()], &["bogus".into()]).unwrap_err();
        assert!(err.to_string().contains("\"bogus\" in cap_drop"), "{err}");
    }

    #[test]
    fn a_privileged_set_is_what_the_kernel_knows_and_the_caller_holds() {
        let granted = privileged_capabilities().unwrap();
        let held = host_bounding_set().unwrap();
        let last: usize = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(granted.len() <= last + 1);
        assert!(granted.iter().all(|cap| held.contains(cap)));
        let spec = to_spec_set(&granted);
        assert_eq!(spec.len(), granted.len(), "every name converts");
    }
}
