//! Container and pod statistics read from the host, for `ContainerStats`,
//! `ListContainerStats`, `PodSandboxStats` and `ListPodSandboxStats`. The
//! `OciRuntime` trait has no stats call, so the server reads the cgroup of
//! each container's init process (found through `/proc/<pid>/cgroup`,
//! which also holds under runsc, where that process is the sandbox and
//! the figures are the sandbox's), and walks each container's root
//! filesystem for the writable layer.
//!
//! - [`cgroup`] finds the cgroup directories (v1 or v2);
//! - [`v1`] and [`v2`] read them into [`Figures`];
//! - [`disk`] measures a writable layer; [`net`] reads a pod's interfaces;
//! - [`sampler`] turns two CPU samples into nanocores;
//! - [`convert`] maps all of it onto the CRI messages, [`metrics`] onto
//!   the named metrics of `ListPodSandboxMetrics`;
//! - `collect` runs them for the engine's containers and pods.

pub mod cgroup;
mod collect;
pub mod convert;
pub mod disk;
pub mod metrics;
pub mod net;
pub mod parse;
pub mod sampler;
pub mod v1;
pub mod v2;

use std::path::PathBuf;

use crate::error::CriError;

pub use cgroup::CgroupLocation;
pub use sampler::Sampler;

/// Why figures could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    /// A file or directory could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// What was read.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// No mounted cgroup hierarchy holds the process.
    #[error("process {pid} is in no mounted cgroup hierarchy this server can read")]
    NoCgroup {
        /// The process.
        pid: i32,
    },
}

impl From<StatsError> for CriError {
    fn from(error: StatsError) -> Self {
        match error {
            StatsError::Io { path, source } => CriError::Io {
                context: format!("reading {}", path.display()),
                source,
            },
            other @ StatsError::NoCgroup { .. } => CriError::FailedPrecondition(other.to_string()),
        }
    }
}

/// What a cgroup tells, each figure `None` when its file is missing or
/// unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Figures {
    /// Cumulative CPU time, nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// Memory in use, bytes (page cache included).
    pub memory_usage: Option<u64>,
    /// The memory limit; `None` when there is none.
    pub memory_limit: Option<u64>,
    /// Inactive file-backed memory, bytes.
    pub inactive_file: Option<u64>,
    /// Anonymous memory (v1 `rss`, v2 `anon`), bytes.
    pub rss: Option<u64>,
    /// Page faults.
    pub page_faults: Option<u64>,
    /// Major page faults.
    pub major_page_faults: Option<u64>,
    /// Processes (or tasks, for the pids controller) in the cgroup.
    pub processes: Option<u64>,
}

fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    }
}

impl Figures {
    /// The working set: usage less inactive file pages (what the kubelet
    /// evicts on).
    pub fn working_set(&self) -> Option<u64> {
        self.memory_usage
            .map(|u| u.saturating_sub(self.inactive_file.unwrap_or(0)))
    }

    /// Memory left under the limit, when there is a limit.
    pub fn available(&self) -> Option<u64> {
        let limit = self.memory_limit?;
        Some(limit.saturating_sub(self.working_set().unwrap_or(0)))
    }

    /// The sum of two cgroups' figures (a pod's from its members'); a
    /// limit is summed only when both have one.
    pub fn sum(&self, other: &Figures) -> Figures {
        Figures {
            cpu_usage_ns: add(self.cpu_usage_ns, other.cpu_usage_ns),
            memory_usage: add(self.memory_usage, other.memory_usage),
            memory_limit: self
                .memory_limit
                .zip(other.memory_limit)
                .map(|(a, b)| a.saturating_add(b)),
            inactive_file: add(self.inactive_file, other.inactive_file),
            rss: add(self.rss, other.rss),
            page_faults: add(self.page_faults, other.page_faults),
            major_page_faults: add(self.major_page_faults, other.major_page_faults),
            processes: add(self.processes, other.processes),
        }
    }
}

/// Reads the figures at `location`.
pub fn read_location(location: &CgroupLocation) -> Figures {
    match location {
        CgroupLocation::V1 {
            cpuacct,
            memory,
            pids,
        } => v1::read_figures(cpuacct.as_deref(), memory.as_deref(), pids.as_deref()),
        CgroupLocation::V2(dir) => v2::read_figures(dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_keep_what_is_known() {
        let a = Figures {
            cpu_usage_ns: Some(1),
            memory_usage: Some(10),
            memory_limit: Some(100),
            processes: Some(1),
            ..Figures::default()
        };
        let b = Figures {
            cpu_usage_ns: Some(2),
            memory_usage: None,
            memory_limit: None,
            processes: Some(u64::MAX),
            ..Figures::default()
        };
        let s = a.sum(&b);
        assert_eq!(s.cpu_usage_ns, Some(3));
        assert_eq!(s.memory_usage, Some(10));
        assert_eq!(
            s.memory_limit, None,
            "one member without a limit: no pod limit"
        );
        assert_eq!(s.processes, Some(u64::MAX));
        assert_eq!(Figures::default().available(), None);
    }
}
