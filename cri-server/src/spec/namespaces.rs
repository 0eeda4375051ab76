//! Which namespaces a pod's infra container creates and how each
//! container of the pod joins them (a new one, the host's, or the infra
//! process's through `/proc/<pid>/ns/...`).

use std::path::PathBuf;

use k8s_cri::v1 as cri;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

/// How a container gets one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Join {
    /// A new namespace of its own.
    New,
    /// The host's (no namespace entry).
    Host,
    /// The namespace at this path (`/proc/<infra pid>/ns/net`).
    Path(PathBuf),
}

/// The pod-level namespaces a container is placed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNamespaces {
    /// Network.
    pub network: Join,
    /// IPC.
    pub ipc: Join,
    /// UTS (hostname).
    pub uts: Join,
    /// PID.
    pub pid: Join,
}

impl PodNamespaces {
    /// The namespaces the infra container of a pod with `options` creates.
    pub fn for_infra(options: Option<&cri::NamespaceOption>) -> Self {
        let mode = |m: i32| cri::NamespaceMode::try_from(m).unwrap_or(cri::NamespaceMode::Pod);
        let host_or_new = |m: i32| match mode(m) {
            cri::NamespaceMode::Node => Join::Host,
            _ => Join::New,
        };
        let o = options.cloned().unwrap_or_default();
        Self {
            network: host_or_new(o.network),
            ipc: host_or_new(o.ipc),
            // A pod on the host's network uses the host's hostname, as the
            // kubelet expects.
            uts: host_or_new(o.network),
            pid: host_or_new(o.pid),
        }
    }

    /// The namespaces a container of this pod (whose infra process is
    /// `infra_pid`) joins, its own pid mode being `pid_mode`.
    pub fn for_container(&self, infra_pid: i32, pid_mode: cri::NamespaceMode) -> Self {
        let join = |own: &Join, kind: &str| match own {
            Join::Host => Join::Host,
            _ => Join::Path(PathBuf::from(format!("/proc/{infra_pid}/ns/{kind}"))),
        };
        Self {
            network: join(&self.network, "net"),
            ipc: join(&self.ipc, "ipc"),
            uts: join(&self.uts, "uts"),
            pid: match pid_mode {
                cri::NamespaceMode::Node => Join::Host,
                cri::NamespaceMode::Pod => join(&self.pid, "pid"),
                _ => Join::New,
            },
        }
    }

    pub(crate) fn entries(&self) -> Vec<LinuxNamespace> {
        let mut out = Vec::new();
        for (join, typ) in [
            (&self.pid, LinuxNamespaceType::Pid),
            (&self.network, LinuxNamespaceType::Network),
            (&self.ipc, LinuxNamespaceType::Ipc),
            (&self.uts, LinuxNamespaceType::Uts),
        ] {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(typ);
            match join {
                Join::Host => continue,
                Join::New => {}
                Join::Path(path) => {
                    ns.set_path(Some(path.clone()));
                }
            }
            out.push(ns);
        }
        for typ in [LinuxNamespaceType::Mount, LinuxNamespaceType::Cgroup] {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(typ);
            out.push(ns);
        }
        out
    }
}
