//! Placing a process into a cgroupfs cgroup, on cgroup v1, v2 and hybrid hosts.
//!
//! The cgroup is created with cgroups-rs in the hierarchy
//! `cgroups_rs::fs::hierarchies::auto()` picks: every mounted v1 controller
//! (including the named `name=systemd` hierarchy) on a v1 or hybrid host, or
//! the unified hierarchy on a pure v2 host. On a hybrid host the v2 hierarchy
//! mounted next to the v1 controllers (usually `/sys/fs/cgroup/unified`) is
//! not known to cgroups-rs, so it is handled here with plain filesystem
//! calls. The pid is written to `cgroup.procs` everywhere, which moves the
//! whole process (all its threads).
//!
//! These functions do blocking filesystem I/O; they are quick, but async
//! callers may prefer to run them on a blocking thread (as
//! [`place`](crate::place) does).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use cgroups_rs::fs::hierarchies;
use cgroups_rs::fs::Cgroup;
use cgroups_rs::CgroupPid;

use crate::error::PlacementError;

/// A cgroup created (or opened) in every hierarchy of the host.
#[derive(Debug)]
pub struct CgroupHandle {
    /// The cgroup path relative to each hierarchy root, without a leading
    /// slash (`"libpod_parent/conmon"`).
    relative: String,
    /// The cgroups-rs handle: all v1 controllers, or the v2 unified tree.
    cgroup: Cgroup,
    /// On a hybrid host: the directory of this cgroup in the v2 hierarchy
    /// mounted beside the v1 controllers.
    hybrid_unified: Option<PathBuf>,
}

/// Creates the cgroup `path` in every cgroup hierarchy of the host and moves
/// process `pid` into it (podman: `cgroups.New(path)` then `AddPid(pid)`).
///
/// `path` is relative to each hierarchy root; a leading `/` is allowed and
/// ignored. Missing parent cgroups are created. On failure, directories
/// created by this call that are still empty are removed again.
///
/// ```no_run
/// let handle = cgroup_placement::place_in_cgroupfs("/libpod_parent/conmon", 4242)?;
/// // ... later, once conmon has exited:
/// handle.remove_if_empty()?;
/// # Ok::<(), cgroup_placement::PlacementError>(())
/// ```
pub fn place_in_cgroupfs(path: &str, pid: u32) -> Result<CgroupHandle, PlacementError> {
    let handle = CgroupHandle::open(path)?;
    if let Err(err) = handle.create_and_add(pid) {
        // Best effort: whatever is still empty goes away again; directories
        // that already hold the pid stay, as the process lives there now.
        let _ = handle.remove_if_empty();
        return Err(err);
    }
    Ok(handle)
}

/// Deletes the cgroup `path` from every hierarchy of the host, provided no
/// process is left in it. Directories that do not exist are skipped, so
/// removing twice is not an error. Parent cgroups are left alone.
pub fn remove_cgroupfs(path: &str) -> Result<(), PlacementError> {
    let handle = CgroupHandle::open(path)?;
    match handle.remove_when_empty()? {
        None => Ok(()),
        Some(directory) => Err(PlacementError::CgroupBusy { directory }),
    }
}

impl CgroupHandle {
    /// Opens a handle on the cgroup `path` in every hierarchy of the host,
    /// without creating anything.
    pub fn open(path: &str) -> Result<CgroupHandle, PlacementError> {
        let relative = normalize(path)?;
        let hierarchy = hierarchies::auto();
        let v2 = hierarchy.v2();
        let cgroup = Cgroup::load(hierarchy, relative.as_str());
        let hybrid_unified = if v2 {
            None
        } else {
            hybrid_unified_root().map(|root| root.join(&relative))
        };
        if cgroup.subsystems().is_empty() && hybrid_unified.is_none() {
            return Err(PlacementError::NoHierarchy);
        }
        Ok(CgroupHandle {
            relative,
            cgroup,
            hybrid_unified,
        })
    }

    /// The cgroup path relative to each hierarchy root, with a leading `/`.
    pub fn path(&self) -> String {
        format!("/{}", self.relative)
    }

    /// The directory of this cgroup in every hierarchy, one entry per
    /// mounted hierarchy (co-mounted v1 controllers share one).
    pub fn directories(&self) -> Vec<PathBuf> {
        let mut directories: Vec<PathBuf> = Vec::new();
        for subsystem in self.cgroup.subsystems() {
            let directory = subsystem.to_controller().path().to_path_buf();
            if !directories.contains(&directory) {
                directories.push(directory);
            }
        }
        if let Some(directory) = &self.hybrid_unified {
            directories.push(directory.clone());
        }
        directories
    }

    /// Deletes the cgroup's directories when no process is left in any of
    /// them. Returns `true` when the cgroup is gone (also when it did not
    /// exist), `false` when some hierarchy still has a process in it; in
    /// that case nothing is deleted.
    pub fn remove_if_empty(&self) -> Result<bool, PlacementError> {
        Ok(self.remove_when_empty()?.is_none())
    }

    /// Creates the directories and writes `pid` to every `cgroup.procs`.
    fn create_and_add(&self, pid: u32) -> Result<(), PlacementError> {
        let cgroup_error = |operation| {
            let path = self.path();
            move |source| PlacementError::Cgroup {
                operation,
                path,
                source,
            }
        };
        self.cgroup
            .create()
            .map_err(cgroup_error("creating the cgroup"))?;
        self.cgroup
            .add_task_by_tgid(CgroupPid::from(u64::from(pid)))
            .map_err(cgroup_error("adding the pid to cgroup.procs"))?;
        if let Some(directory) = &self.hybrid_unified {
            fs::create_dir_all(directory).map_err(io_error("creating", directory))?;
            let procs = directory.join("cgroup.procs");
            fs::write(&procs, pid.to_string()).map_err(io_error("writing", &procs))?;
        }
        Ok(())
    }

    /// Removes every directory if all are empty; returns the first directory
    /// that still has a process otherwise.
    fn remove_when_empty(&self) -> Result<Option<PathBuf>, PlacementError> {
        for directory in self.directories() {
            if has_processes(&directory)? {
                return Ok(Some(directory));
            }
        }
        if let Some(directory) = &self.hybrid_unified {
            remove_dir_if_present(directory)?;
        }
        // cgroups-rs' v2 delete fails on a missing directory; v1 skips them.
        let managed_exists = self
            .cgroup
            .subsystems()
            .iter()
            .any(|subsystem| subsystem.to_controller().path().exists());
        if managed_exists {
            self.cgroup
                .delete()
                .map_err(|source| PlacementError::Cgroup {
                    operation: "removing the cgroup",
                    path: self.path(),
                    source,
                })?;
        }
        Ok(None)
    }
}

/// Validates `path` and returns it relative (no leading or trailing slash,
/// no empty elements). `.` and `..` are refused: they would let a cgroup
/// parent escape the hierarchy or alias another cgroup.
fn normalize(path: &str) -> Result<String, PlacementError> {
    let invalid = |reason| PlacementError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    if path.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    let mut elements = Vec::new();
    for element in path.split('/').filter(|element| !element.is_empty()) {
        if element == "." || element == ".." {
            return Err(invalid("`.` and `..` elements are not allowed"));
        }
        elements.push(element);
    }
    if elements.is_empty() {
        return Err(invalid("names the root of the hierarchy"));
    }
    Ok(elements.join("/"))
}

/// The mount point of a cgroup v2 hierarchy mounted beside v1 controllers
/// (hybrid mode), if there is one. cgroups-rs' own mountinfo reader keeps
/// only v1 mounts, so `/proc/self/mountinfo` is read here.
fn hybrid_unified_root() -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(cgroup2_mount_point)
}

/// The mount point of a mountinfo line if it is a `cgroup2` mount.
/// Format (proc(5)): `id parent major:minor root mount-point options
/// [optional fields] - fstype source super-options`.
fn cgroup2_mount_point(line: &str) -> Option<PathBuf> {
    let (before, after) = line.split_once(" - ")?;
    if after.split_whitespace().next()? != "cgroup2" {
        return None;
    }
    let mount_point = before.split_whitespace().nth(4)?;
    Some(PathBuf::from(unescape_mountinfo(mount_point)))
}

/// Undoes mountinfo's octal escapes (`\040` for a space, …).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)))
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the cgroup at `directory` lists any process in `cgroup.procs`.
/// A directory that does not exist has none.
fn has_processes(directory: &Path) -> Result<bool, PlacementError> {
    let procs = directory.join("cgroup.procs");
    match fs::read_to_string(&procs) {
        Ok(content) => Ok(content.split_whitespace().next().is_some()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(io_error("reading", &procs)(err)),
    }
}

/// `rmdir`, treating an already missing directory as success.
fn remove_dir_if_present(directory: &Path) -> Result<(), PlacementError> {
    match fs::remove_dir(directory) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io_error("removing", directory)(err)),
    }
}

/// Wraps an [`io::Error`] with the operation and path involved.
fn io_error(operation: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PlacementError {
    let directory = path.to_path_buf();
    move |source| PlacementError::Io {
        operation,
        directory,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_mounts_in_mountinfo_lines() {
        let v2 = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw";
        let v1 = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu";
        let spaced = "41 31 0:38 / /mnt/my\\040cg rw - cgroup2 none rw";
        assert_eq!(
            cgroup2_mount_point(v2),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount_point(v1), None);
        assert_eq!(
            cgroup2_mount_point(spaced),
            Some(PathBuf::from("/mnt/my cg"))
        );
        assert_eq!(cgroup2_mount_point("garbage"), None);
    }

    #[test]
    fn normalize_strips_slashes_and_refuses_escapes() {
        assert_eq!(
            normalize("/libpod_parent/conmon").ok().as_deref(),
            Some("libpod_parent/conmon")
        );
        assert_eq!(normalize("a//b/").ok().as_deref(), Some("a/b"));
        for bad in ["", "/", "//", "/a/../b", "./a", "a/.", "a\0b"] {
            assert!(
                matches!(normalize(bad), Err(PlacementError::InvalidPath { .. })),
                "{bad:?} accepted"
            );
        }
    }
}
