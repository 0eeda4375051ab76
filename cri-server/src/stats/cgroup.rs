//! Finding a process's cgroup directories from `/proc/<pid>/cgroup` and the
//! cgroup mounts of `/proc/self/mountinfo`: cgroup v1 (one hierarchy per
//! controller set, as on hybrid hosts) or the v2 unified hierarchy. The
//! pid is the container's init process as the runtime reports it; under
//! runsc that is the sandbox, so its cgroup is the sandbox's.

use std::path::{Path, PathBuf};

use super::StatsError;

/// Where a process's figures are read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CgroupLocation {
    /// Per-controller directories of cgroup v1 (each `None` when the
    /// controller is not mounted).
    V1 {
        /// The `cpuacct` directory (`cpuacct.usage`).
        cpuacct: Option<PathBuf>,
        /// The `memory` directory (`memory.usage_in_bytes`, `memory.stat`).
        memory: Option<PathBuf>,
        /// The `pids` directory (`pids.current`).
        pids: Option<PathBuf>,
    },
    /// The cgroup v2 directory.
    V2(PathBuf),
}

/// One cgroup mount: its hierarchy root, where it is mounted, and its
/// controllers (empty for v2).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    root: String,
    point: PathBuf,
    v2: bool,
    controllers: Vec<String>,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u16, |acc, d| acc * 8 + u16::from(d - b'0'));
                if let Ok(v) = u8::try_from(value) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let (root, point) = (left.get(3)?, left.get(4)?);
            let fstype = *right.first()?;
            let v2 = match fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            let controllers = if v2 {
                Vec::new()
            } else {
                right
                    .get(2)?
                    .split(',')
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            };
            Some(Mount {
                root: unescape(root),
                point: PathBuf::from(unescape(point)),
                v2,
                controllers,
            })
        })
        .collect()
}

/// `mount.point` + `path` relative to the mount's root; `None` when the
/// path lies outside what is mounted.
fn under(mount: &Mount, path: &str) -> Option<PathBuf> {
    let rest = Path::new(path).strip_prefix(&mount.root).ok()?;
    if rest
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return None;
    }
    Some(mount.point.join(rest))
}

/// The location for a process whose `/proc/<pid>/cgroup` reads
/// `proc_cgroup`, given the mount table `mountinfo`. cgroup v1 wins when
/// the memory or cpuacct controller is on a v1 hierarchy (hybrid hosts
/// keep the controllers there); otherwise the unified hierarchy.
pub fn locate(proc_cgroup: &str, mountinfo: &str) -> Option<CgroupLocation> {
    let mounts = mounts(mountinfo);
    let mut cpuacct = None;
    let mut memory = None;
    let mut pids = None;
    let mut unified = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            unified = mounts
                .iter()
                .filter(|m| m.v2)
                .find_map(|m| under(m, path))
                .or(unified);
            continue;
        }
        for controller in controllers.split(',') {
            let slot = match controller {
                "cpuacct" => &mut cpuacct,
                "memory" => &mut memory,
                "pids" => &mut pids,
                _ => continue,
            };
            *slot = mounts
                .iter()
                .filter(|m| !m.v2 && m.controllers.iter().any(|c| c == controller))
                .find_map(|m| under(m, path));
        }
    }
    if memory.is_some() || cpuacct.is_some() {
        Some(CgroupLocation::V1 {
            cpuacct,
            memory,
            pids,
        })
    } else {
        unified.map(CgroupLocation::V2)
    }
}

/// The location of process `pid`'s cgroup on this host.
pub fn locate_pid(pid: i32) -> Result<CgroupLocation, StatsError> {
    let path = format!("/proc/{pid}/cgroup");
    let proc_cgroup = std::fs::read_to_string(&path).map_err(|source| StatsError::Io {
        path: path.clone().into(),
        source,
    })?;
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| StatsError::Io {
            path: "/proc/self/mountinfo".into(),
            source,
        })?;
    locate(&proc_cgroup, &mountinfo).ok_or(StatsError::NoCgroup { pid })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_hosts_read_v1_controllers() {
        let proc_cgroup =
            "9:name=systemd:/\n8:pids:/pod/c1\n4:memory:/pod/c1\n2:cpu,cpuacct:/pod/c1\n0::/\n";
        assert_eq!(
            locate(proc_cgroup, HYBRID),
            Some(CgroupLocation::V1 {
                cpuacct: Some("/sys/fs/cgroup/cpu,cpuacct/pod/c1".into()),
                memory: Some("/sys/fs/cgroup/memory/pod/c1".into()),
                pids: Some("/sys/fs/cgroup/pids/pod/c1".into()),
            })
        );
    }

    #[test]
    fn unified_hosts_read_v2() {
        let mountinfo = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            locate("0::/kubepods/pod1/c1\n", mountinfo),
            Some(CgroupLocation::V2("/sys/fs/cgroup/kubepods/pod1/c1".into()))
        );
    }

    #[test]
    fn namespaced_roots_and_escapes() {
        // A cgroup namespace mounts a sub-tree: paths are taken relative
        // to the mount's root; a path outside it is not guessed at.
        let mountinfo = "30 23 0:26 /ns /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            locate("0::/ns/c1\n", mountinfo),
            Some(CgroupLocation::V2("/sys/fs/cgroup x/c1".into()))
        );
        assert_eq!(locate("0::/other/c1\n", mountinfo), None);
        assert_eq!(locate("0::/ns/../etc\n", mountinfo), None);
    }

    #[test]
    fn garbage_finds_nothing() {
        assert_eq!(locate("", HYBRID), None);
        assert_eq!(locate("garbage\n::\n1:memory\n", HYBRID), None);
        assert_eq!(locate("4:memory:/c1\n", "junk - \n - cgroup\n"), None);
    }
}
