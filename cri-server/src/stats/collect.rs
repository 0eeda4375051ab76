//! The engine's stats calls: for each container, its init pid from the
//! runtime's `status`, that process's cgroup, its writable layer; for a
//! pod, its members' figures summed over their distinct cgroups, the
//! infra process's interfaces and the per-container stats. File reading
//! and the bounded disk walk run on the blocking pool under the call
//! timeout.

use std::collections::HashSet;
use std::path::PathBuf;

use k8s_cri::v1 as cri;
use runtime_api::ContainerStatus;

use super::{cgroup, convert, disk, net, read_location, CgroupLocation, Figures};
use crate::engine::{bounded, labels_match, now_nanos, ContainerRecord, Engine, PodRecord};
use crate::error::{CriError, Result};

/// At most this many entries of a root filesystem are walked per sample.
const DISK_WALK_LIMIT: u64 = 200_000;

/// One container's sample: its message, and its cgroup and figures for
/// the pod's sum.
struct ContainerSample {
    stats: cri::ContainerStats,
    location: Option<CgroupLocation>,
    figures: Figures,
}

/// What the blocking part of a container sample reads.
struct HostReading {
    location: Option<CgroupLocation>,
    figures: Figures,
    disk: Option<disk::DiskUsage>,
}

fn read_host(pid: Option<i32>, rootfs: Option<PathBuf>) -> HostReading {
    let location = pid.and_then(|pid| match cgroup::locate_pid(pid) {
        Ok(location) => Some(location),
        Err(e) => {
            // The process may have exited since its status was taken.
            tracing::debug!(pid, error = %e, "no cgroup for stats");
            None
        }
    });
    let figures = location.as_ref().map(read_location).unwrap_or_default();
    let disk = rootfs.and_then(|root| match disk::usage(&root, DISK_WALK_LIMIT) {
        Ok(usage) => Some(usage),
        Err(e) => {
            tracing::debug!(root = %root.display(), error = %e, "no writable layer usage");
            None
        }
    });
    HostReading {
        location,
        figures,
        disk,
    }
}

impl Engine {
    /// Runs `work` on the blocking pool for at most the call timeout.
    async fn off_thread<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let limit = self.config().timeouts.call;
        match tokio::time::timeout(limit, tokio::task::spawn_blocking(work)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(CriError::Io {
                context: format!("{what} failed"),
                source: std::io::Error::other(e.to_string()),
            }),
            Err(_) => Err(CriError::DeadlineExceeded(format!(
                "{what} did not finish within {limit:?}"
            ))),
        }
    }

    /// The init pid of a running or paused container; `None` otherwise.
    async fn live_pid(&self, handler: &str, c: &runtime_api::ContainerDescription) -> Option<i32> {
        let runtime = self.runtime(handler).ok()?;
        let state = bounded(
            "container state",
            self.config().timeouts.call,
            runtime.status(c),
        )
        .await
        .ok()?;
        matches!(
            state.status,
            ContainerStatus::Running | ContainerStatus::Paused
        )
        .then_some(state.pid)
        .flatten()
        .filter(|pid| *pid > 0)
    }

    async fn sample_container(&self, c: &ContainerRecord) -> Result<ContainerSample> {
        let pid = self.live_pid(&c.handler, &c.description).await;
        let rootfs = c.description.bundle().join("rootfs");
        let reading = {
            let rootfs = rootfs.clone();
            self.off_thread("reading container stats", move || {
                read_host(pid, Some(rootfs))
            })
            .await?
        };
        let at = now_nanos();
        let nano_cores = reading
            .figures
            .cpu_usage_ns
            .and_then(|usage| self.sampler().nano_cores(&c.id, at, usage));
        let stats = cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: c.id.clone(),
                metadata: c.config.metadata.clone(),
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
            }),
            cpu: convert::cpu(at, &reading.figures, nano_cores),
            memory: convert::memory(at, &reading.figures),
            writable_layer: reading
                .disk
                .map(|d| convert::writable_layer(at, &rootfs, &d)),
            swap: None,
        };
        Ok(ContainerSample {
            stats,
            location: reading.location,
            figures: reading.figures,
        })
    }

    /// `ContainerStats`: the container's cgroup figures (none for a
    /// container not running) and its writable layer.
    pub async fn container_stats(&self, id: &str) -> Result<cri::ContainerStats> {
        let c = self.container(id)?;
        Ok(self.sample_container(&c).await?.stats)
    }

    /// `ListContainerStats`, filtered by id, pod and labels.
    pub async fn list_container_stats(
        &self,
        filter: Option<cri::ContainerStatsFilter>,
    ) -> Result<Vec<cri::ContainerStats>> {
        let filter = filter.unwrap_or_default();
        let mut out = Vec::new();
        for c in self.container_records() {
            if (!filter.id.is_empty() && c.id != filter.id)
                || (!filter.pod_sandbox_id.is_empty() && c.pod_id != filter.pod_sandbox_id)
                || !labels_match(&filter.label_selector, &c.config.labels)
            {
                continue;
            }
            out.push(self.sample_container(&c).await?.stats);
        }
        Ok(out)
    }

    async fn sample_pod(&self, pod: &PodRecord) -> Result<cri::PodSandboxStats> {
        let infra_pid = if pod.stopped {
            None
        } else {
            self.live_pid(&pod.handler, &pod.infra)
                .await
                .filter(|pid| *pid == pod.infra_pid)
        };
        let mut members = Vec::new();
        for c in self.containers_of(&pod.id) {
            members.push(self.sample_container(&c).await?);
        }
        let infra = self
            .off_thread("reading pod stats", move || {
                let reading = read_host(infra_pid, None);
                let interfaces = infra_pid.map(net::interfaces_of).unwrap_or_default();
                (reading, interfaces)
            })
            .await?;
        let (infra_reading, interfaces) = infra;
        // Members sharing a cgroup (runsc's sandbox) count once.
        let mut seen = HashSet::new();
        let mut figures = Figures::default();
        let mut any = false;
        let parts = std::iter::once((&infra_reading.location, &infra_reading.figures))
            .chain(members.iter().map(|m| (&m.location, &m.figures)));
        for (location, part) in parts {
            if let Some(location) = location {
                if seen.insert(location.clone()) {
                    figures = figures.sum(part);
                    any = true;
                }
            }
        }
        let at = now_nanos();
        let nano_cores = figures
            .cpu_usage_ns
            .filter(|_| any)
            .and_then(|usage| self.sampler().nano_cores(&pod.id, at, usage));
        Ok(cri::PodSandboxStats {
            attributes: Some(cri::PodSandboxAttributes {
                id: pod.id.clone(),
                metadata: pod.config.metadata.clone(),
                labels: pod.config.labels.clone(),
                annotations: pod.config.annotations.clone(),
            }),
            linux: Some(cri::LinuxPodSandboxStats {
                cpu: convert::cpu(at, &figures, nano_cores),
                memory: convert::memory(at, &figures),
                network: convert::network(at, &interfaces),
                process: convert::process(at, &figures),
                containers: members.into_iter().map(|m| m.stats).collect(),
            }),
            windows: None,
        })
    }

    /// `PodSandboxStats`: the sum of the pod's cgroups (infra container
    /// and containers), its loopback counters and each container's stats.
    pub async fn pod_stats(&self, id: &str) -> Result<cri::PodSandboxStats> {
        let pod = self.pod(id)?;
        self.sample_pod(&pod).await
    }

    /// `ListPodSandboxStats`, filtered by id and labels.
    pub async fn list_pod_stats(
        &self,
        filter: Option<cri::PodSandboxStatsFilter>,
    ) -> Result<Vec<cri::PodSandboxStats>> {
        let filter = filter.unwrap_or_default();
        let mut out = Vec::new();
        for pod in self.pod_records() {
            if (!filter.id.is_empty() && pod.id != filter.id)
                || !labels_match(&filter.label_selector, &pod.config.labels)
            {
                continue;
            }
            out.push(self.sample_pod(&pod).await?);
        }
        Ok(out)
    }
}
