//! Linux capabilities of a container: the default set, every name the
//! kernel knows, the kubelet's spellings (`NET_RAW`, `CAP_NET_RAW`, any
//! case) and the sets a security context's add and drop lists make.

use std::collections::BTreeSet;

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::error::{CriError, Result};

/// The capabilities a container gets unless its security context says
/// otherwise (containerd's and Docker's default set).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability `ALL` stands for.
pub(crate) const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Parses capability names as the kubelet sends them (`NET_RAW`,
/// `CAP_NET_RAW`, any case) into their `CAP_` form.
pub(crate) fn capability_name(name: &str) -> Result<String> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPABILITIES.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(CriError::InvalidArgument(format!(
            "unknown capability {name:?}"
        )))
    }
}

/// The capability set after the request's additions and drops: `ALL` in
/// `add` starts from every capability, `ALL` in `drop` from none, then the
/// named additions and drops apply.
pub fn capability_names(add: &[String], drop: &[String]) -> Result<BTreeSet<String>> {
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    let mut set: BTreeSet<String> = if add.iter().any(is_all) {
        ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    };
    if drop.iter().any(is_all) {
        set.clear();
    }
    for name in add.iter().filter(|c| !is_all(c)) {
        set.insert(capability_name(name)?);
    }
    for name in drop.iter().filter(|c| !is_all(c)) {
        set.remove(&capability_name(name)?);
    }
    Ok(set)
}

pub(crate) fn to_capabilities(names: &BTreeSet<String>) -> Result<Capabilities> {
    names
        .iter()
        .map(|name| {
            serde_json::from_value::<Capability>(serde_json::Value::String(name.clone())).map_err(
                |_| {
                    CriError::InvalidArgument(format!(
                        "capability {name} is not known to the OCI spec library"
                    ))
                },
            )
        })
        .collect()
}

pub(crate) fn capability_sets(add: &[String], drop: &[String]) -> Result<LinuxCapabilities> {
    let names = capability_names(add, drop)?;
    let set = to_capabilities(&names)?;
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set));
    caps.set_inheritable(None);
    caps.set_ambient(None);
    Ok(caps)
}
