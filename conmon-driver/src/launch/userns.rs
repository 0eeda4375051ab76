//! The preparations of create for a container whose id mappings do not
//! include the driver's uid (podman's `hasCurrentUserMapped` is false):
//!
//! - [`make_accessible`]: the container's root (a host uid other than ours)
//!   must reach the run dir, the tmp dir, the static dir, the rootfs mount
//!   point and the volume path: every directory on the way that it does not
//!   own gets `--x` for user, group and other (podman's `makeAccessible`);
//! - [`PrivateMountNs`]: unless the container is privileged or the driver
//!   is rootless, conmon (and so the runtime it starts) runs in a mount
//!   namespace of its own in which `/sys` is a slave mount and every mount
//!   under `/sys/kernel` is gone, so a runtime that bind-mounts `/sys` into
//!   the container cannot hand it the host's securityfs, debugfs or
//!   tracefs.
//!
//! podman's `createRootlessContainer` does the namespace work in the
//! engine: it locks an OS thread, `unshare(CLONE_NEWNS)`s it, changes the
//! mounts, starts conmon from that thread and `setns`es back. Here the
//! same steps run in conmon's child between fork and exec, so the driver's
//! own mount namespace is never touched (the design forbids it, and a
//! tokio worker cannot be pinned the way a Go thread is). Everything the
//! child needs, including the list of mounts to remove, is computed before
//! the fork: after `fork` in a multi-threaded process only
//! async-signal-safe calls are allowed, so the child neither reads
//! `/proc/self/mountinfo` nor allocates.

use crate::ConmonDescription;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, Spec};
use runtime_api::{ContainerDescription, RuntimeError};

/// The part of `/sys` whose mounts conmon must not see.
pub(crate) const SYS_KERNEL: &str = "/sys/kernel";

/// The container's id mappings, from its `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IdMappings {
    pub(crate) uids: Vec<(u32, u32, u32)>,
    pub(crate) gids: Vec<(u32, u32, u32)>,
}

fn triples(maps: Option<&Vec<LinuxIdMapping>>) -> Vec<(u32, u32, u32)> {
    maps.map(|m| {
        m.iter()
            .map(|m| (m.container_id(), m.host_id(), m.size()))
            .collect()
    })
    .unwrap_or_default()
}

impl IdMappings {
    /// Reads `linux.uidMappings` and `linux.gidMappings` from the bundle's
    /// `config.json`.
    pub(crate) fn from_bundle(bundle: &Path) -> Result<Self, RuntimeError> {
        let path = bundle.join("config.json");
        let spec = Spec::load(&path).map_err(|e| {
            RuntimeError::InvalidArgument(format!("cannot read {}: {e}", path.display()))
        })?;
        let linux = spec.linux().as_ref();
        Ok(Self {
            uids: triples(linux.and_then(|l| l.uid_mappings().as_ref())),
            gids: triples(linux.and_then(|l| l.gid_mappings().as_ref())),
        })
    }

    /// podman's `hasCurrentUserMapped`: no mappings at all, or a uid
    /// mapping whose host range holds `euid`.
    pub(crate) fn has_user_mapped(&self, euid: u32) -> bool {
        if self.uids.is_empty() && self.gids.is_empty() {
            return true;
        }
        self.uids.iter().any(|&(_, host, size)| {
            euid >= host && u64::from(euid) < u64::from(host) + u64::from(size)
        })
    }

    /// The host uid of the container's root (podman's `RootUID`): a single
    /// mapping of size 1 names it whatever its container id, otherwise the
    /// mapping of container id 0; 0 when there is none.
    pub(crate) fn root_uid(&self) -> u32 {
        root_of(&self.uids)
    }

    /// The host gid of the container's root (podman's `RootGID`).
    pub(crate) fn root_gid(&self) -> u32 {
        root_of(&self.gids)
    }
}

fn root_of(maps: &[(u32, u32, u32)]) -> u32 {
    if let [(_, host, 1)] = maps {
        return *host;
    }
    maps.iter()
        .find(|(container, _, _)| *container == 0)
        .map(|(_, host, _)| *host)
        .unwrap_or(0)
}

/// podman's `makeAccessible`: for `path` and each parent up to (not
/// including) `/`, a directory not owned by `uid:gid` gets `--x` for user,
/// group and other when any is missing. A path that does not exist ends
/// the walk without error.
pub(crate) fn make_accessible(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let mut current = Some(path);
    while let Some(dir) = current {
        if dir == Path::new("/") || dir.as_os_str().is_empty() {
            break;
        }
        // Through a descriptor opened without following a symlink: the
        // mode of whatever a link points at is not this walk's to change
        // (a link is skipped).
        let opened = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(dir)
        {
            Ok(opened) => Some(opened),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => None,
            Err(e) => return Err(e),
        };
        if let Some(opened) = opened {
            let meta = opened.metadata()?;
            if !(meta.uid() == uid && meta.gid() == gid) {
                let mode = meta.permissions().mode();
                if mode & 0o111 != 0o111 {
                    opened.set_permissions(std::fs::Permissions::from_mode(mode | 0o111))?;
                }
            }
        }
        current = dir.parent();
    }
    Ok(())
}

/// The mount points at or below `prefix` in `mountinfo` (the text of
/// `/proc/self/mountinfo`), in the order they must be unmounted: deepest
/// first, and among mounts on the same depth the later (upper) one first.
/// A mount stacked several times appears as often as it is mounted.
pub(crate) fn mounts_under(mountinfo: &str, prefix: &str) -> Vec<PathBuf> {
    let prefix = Path::new(prefix);
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split_ascii_whitespace().nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .filter(|point| point.starts_with(prefix))
        .collect();
    found.reverse();
    // Stable: keeps the later-first order within one depth.
    found.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    found
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match octal {
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
    std::ffi::OsString::from_vec(out)
}

/// What create does for one container, decided before conmon's spawn.
#[derive(Debug, Default)]
pub(crate) struct UsernsPlan {
    /// The private mount namespace conmon starts in, if any.
    pub(crate) mount_ns: Option<PrivateMountNs>,
}

/// For a container whose mappings leave the driver's uid out: makes its
/// directories reachable and, unless privileged or rootless, prepares
/// conmon's private mount namespace. Nothing for other containers.
pub(crate) fn prepare(
    config: &crate::ConmonConfig,
    c: &ContainerDescription,
) -> Result<UsernsPlan, RuntimeError> {
    let mappings = IdMappings::from_bundle(c.bundle())?;
    let euid = effective_uid();
    if mappings.has_user_mapped(euid) {
        return Ok(UsernsPlan::default());
    }
    let (uid, gid) = (mappings.root_uid(), mappings.root_gid());
    let dirs = [
        Some(c.run_dir()),
        Some(config.tmp_dir.as_path()),
        c.static_dir(),
        c.mount_point(),
        c.volume_path(),
    ];
    for dir in dirs.into_iter().flatten() {
        make_accessible(dir, uid, gid).map_err(|e| {
            RuntimeError::io(
                format!("making {} reachable for uid {uid}", dir.display()),
                e,
            )
        })?;
    }
    if c.privileged() || config.rootless_uid.is_some() {
        return Ok(UsernsPlan::default());
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| RuntimeError::io("reading /proc/self/mountinfo", e))?;
    let unmount = mounts_under(&mountinfo, SYS_KERNEL);
    Ok(UsernsPlan {
        mount_ns: Some(PrivateMountNs::new(&unmount)?),
    })
}

/// `geteuid()`.
#[allow(unsafe_code)]
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// conmon's private mount namespace, set up in the child between fork and
/// exec: `unshare(CLONE_NEWNS)`, `/sys` made a recursive slave (so nothing
/// done below it propagates back to the host, while the host's changes
/// still arrive), then every precomputed mount under `/sys/kernel`
/// detached, deepest first.
#[derive(Debug, Clone)]
pub(crate) struct PrivateMountNs {
    unmount: Vec<CString>,
}

impl PrivateMountNs {
    /// Prepares the child's work: `unmount` in the order given.
    pub(crate) fn new(unmount: &[PathBuf]) -> Result<Self, RuntimeError> {
        let unmount = unmount
            .iter()
            .map(|p| {
                CString::new(p.as_os_str().as_bytes()).map_err(|_| {
                    RuntimeError::InvalidArgument(format!("mount point {p:?} holds a NUL byte"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { unmount })
    }

    /// The mount points the child detaches.
    #[cfg(test)]
    pub(crate) fn unmounts(&self) -> &[CString] {
        &self.unmount
    }

    /// Runs the namespace work in `cmd`'s child before exec.
    #[allow(unsafe_code)]
    pub(crate) fn install_tokio(&self, cmd: &mut tokio::process::Command) {
        let unmount = self.unmount.clone();
        // SAFETY: the hook runs in the child between fork and exec. It only
        // reads the CStrings built before the fork (never allocating or
        // freeing in the child) and calls unshare, mount and umount2, which
        // are async-signal-safe system calls; errors are plain errno values.
        unsafe {
            cmd.pre_exec(move || enter_private_mount_ns(&unmount));
        }
    }
}

/// The child's side of [`PrivateMountNs`]. Allocation-free.
fn enter_private_mount_ns(unmount: &[CString]) -> io::Result<()> {
    if unshare_mount_ns() < 0 {
        return Err(io::Error::last_os_error());
    }
    if make_sys_rslave() < 0 {
        return Err(io::Error::last_os_error());
    }
    for point in unmount {
        if detach(point) < 0 {
            let err = io::Error::last_os_error();
            // Gone already (taken along by a detached parent, or removed
            // on the host since the list was read): nothing to hide.
            match err.raw_os_error() {
                Some(libc::EINVAL) | Some(libc::ENOENT) => {}
                _ => return Err(err),
            }
        }
    }
    Ok(())
}

/// `unshare(CLONE_NEWNS)`: 0, or -1 with errno set.
#[allow(unsafe_code)]
fn unshare_mount_ns() -> libc::c_int {
    // SAFETY: a plain system call with an integer flag.
    unsafe { libc::unshare(libc::CLONE_NEWNS) }
}

/// `mount("/sys", "/sys", "none", MS_REC|MS_SLAVE)` as podman does: 0, or
/// -1 with errno set.
#[allow(unsafe_code)]
fn make_sys_rslave() -> libc::c_int {
    // SAFETY: static NUL-terminated strings; a null data pointer is
    // allowed for a propagation change.
    unsafe {
        libc::mount(
            c"/sys".as_ptr(),
            c"/sys".as_ptr(),
            c"none".as_ptr(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        )
    }
}

/// `umount2(point, MNT_DETACH)`: 0, or -1 with errno set.
#[allow(unsafe_code)]
fn detach(point: &CString) -> libc::c_int {
    // SAFETY: `point` is a valid NUL-terminated string living across the call.
    unsafe { libc::umount2(point.as_ptr(), libc::MNT_DETACH) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_user_mapping_rule() {
        let none = IdMappings::default();
        assert!(none.has_user_mapped(0));
        let userns = IdMappings {
            uids: vec![(0, 100000, 65536)],
            gids: vec![(0, 100000, 65536)],
        };
        assert!(!userns.has_user_mapped(0));
        assert!(userns.has_user_mapped(100000));
        assert!(userns.has_user_mapped(165535));
        assert!(!userns.has_user_mapped(165536));
        let with_root = IdMappings {
            uids: vec![(0, 0, 1), (1, 100000, 65536)],
            gids: vec![],
        };
        assert!(with_root.has_user_mapped(0));
        assert_eq!(userns.root_uid(), 100000);
        assert_eq!(
            IdMappings {
                uids: vec![(1000, 4242, 1)],
                gids: vec![(5, 7, 10)]
            }
            .root_uid(),
            4242
        );
        assert_eq!(
            IdMappings {
                uids: vec![(1000, 4242, 1)],
                gids: vec![(5, 7, 10)]
            }
            .root_gid(),
            0
        );
    }

    #[test]
    fn sys_kernel_mounts_deepest_and_latest_first() {
        let mountinfo = "\
23 27 0:22 / /sys rw,relatime shared:2 - sysfs sysfs rw
30 23 0:7 / /sys/kernel/security rw shared:3 - securityfs securityfs rw
31 23 0:12 / /sys/kernel/debug rw shared:4 - debugfs debugfs rw
32 31 0:13 / /sys/kernel/debug/tracing rw shared:5 - tracefs tracefs rw
33 23 0:14 / /sys/kernel/tracing rw shared:6 - tracefs tracefs rw
34 23 0:15 / /sys/kernelx rw - tmpfs tmpfs rw
35 23 0:16 / /sys/kernel/my\\040dir rw - tmpfs tmpfs rw
36 30 0:17 / /sys/kernel/security rw - tmpfs tmpfs rw
";
        let got = mounts_under(mountinfo, SYS_KERNEL);
        let want: Vec<PathBuf> = [
            "/sys/kernel/debug/tracing",
            "/sys/kernel/security",
            "/sys/kernel/my dir",
            "/sys/kernel/tracing",
            "/sys/kernel/debug",
            "/sys/kernel/security",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(got, want);
        assert!(mounts_under("garbage\n", SYS_KERNEL).is_empty());
        let ns = PrivateMountNs::new(&got).unwrap();
        assert_eq!(ns.unmounts()[0].as_bytes(), b"/sys/kernel/debug/tracing");
    }

    #[test]
    fn make_accessible_adds_search_bits_up_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = a.join("b");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o750)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let (uid, gid) = {
            let m = std::fs::metadata(&b).unwrap();
            (m.uid(), m.gid())
        };
        // Owned by the given ids: left alone.
        make_accessible(&b, uid, gid).unwrap();
        assert_eq!(mode(&b), 0o750);
        assert_eq!(mode(&a), 0o700);
        // Owned by someone else: --x everywhere on the way.
        make_accessible(&b, uid + 100000, gid + 100000).unwrap();
        assert_eq!(mode(&b), 0o751);
        assert_eq!(mode(&a), 0o711);
        assert_eq!(mode(dir.path()), 0o711);
        // A missing path is no error.
        make_accessible(&b.join("missing"), 1, 1).unwrap();
    }
}
