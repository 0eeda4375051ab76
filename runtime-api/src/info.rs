//! What a runtime is ([`RuntimeInfo`]: paths, versions and packages of the
//! runtime and of the monitor process a driver may put around it, and the
//! host's capability bounding set).

use std::path::PathBuf;

/// One program the driver uses.
///
/// ```
/// let mut runc = runtime_api::ComponentInfo::new("/usr/bin/runc", "runc version 1.1.5");
/// runc.package = Some("runc_1.1.5+ds1-1+deb12u1_amd64".into());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ComponentInfo {
    /// Its resolved path.
    pub path: PathBuf,
    /// The first line of its version output.
    pub version: String,
    /// The package that installed it, when the package manager knows it.
    pub package: Option<String>,
}

impl ComponentInfo {
    /// A component at `path` reporting `version`, package unknown.
    pub fn new(path: impl Into<PathBuf>, version: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            version: version.into(),
            package: None,
        }
    }
}

/// Information about the runtime and its monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeInfo {
    /// The OCI runtime (runc, runsc, crun...).
    pub runtime: ComponentInfo,
    /// The monitor (conmon), when the driver uses one.
    pub monitor: Option<ComponentInfo>,
    /// The capability bounding set of the host as the driver sees it
    /// (`CAP_CHOWN`, ...): the most a privileged process can be given.
    /// Empty when the driver does not know it.
    pub capabilities: Vec<String>,
}

impl RuntimeInfo {
    /// Information about `runtime`, without a monitor.
    pub fn new(runtime: ComponentInfo) -> Self {
        Self {
            runtime,
            monitor: None,
            capabilities: Vec::new(),
        }
    }
}
