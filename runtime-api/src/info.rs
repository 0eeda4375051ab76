//! What a runtime can do ([`RuntimeFeatures`]) and what it is
//! ([`RuntimeInfo`]: paths, versions and packages of the runtime and its
//! monitor).

use std::path::PathBuf;

/// Optional capabilities of a runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuntimeFeatures {
    /// `checkpoint` works (probed with `RUNTIME checkpoint --help`).
    pub checkpoint: bool,
    /// The runtime writes JSON error logs (`--log-format=json`).
    pub json_errors: bool,
    /// The runtime can run containers without cgroups.
    pub no_cgroups: bool,
    /// The runtime runs containers in virtual machines.
    pub kvm: bool,
}

/// One program the driver uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    /// Its resolved path.
    pub path: PathBuf,
    /// The first line of its version output.
    pub version: String,
    /// The package that installed it, when the package manager knows it.
    pub package: Option<String>,
}

/// Information about the runtime and its monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The OCI runtime (runc, runsc, crun...).
    pub runtime: ComponentInfo,
    /// The monitor (conmon), when the driver uses one.
    pub monitor: Option<ComponentInfo>,
}
