//! Whether the host runs SELinux, and the label this process runs with.
//!
//! The rules follow go-selinux (`GetEnabled`, `CurrentLabel`), which podman
//! uses: SELinux counts as enabled when a *read-write* `selinuxfs` is mounted
//! and the process's current context is not the bare `kernel` context (what
//! a process reports when no policy is loaded). The pure functions taking
//! text or a path ([`selinux_enabled_at`], [`current_label_at`]) are the
//! testable core; [`selinux_enabled`] and [`current_label`] read the real
//! `/proc` files.

use std::io;
use std::path::Path;

use crate::context::SecurityLabel;
use crate::error::SelinuxError;

/// Where the kernel lists this process's mounts.
pub const MOUNTINFO_PATH: &str = "/proc/self/mountinfo";

/// The calling thread's current SELinux context.
pub const CURRENT_ATTR_PATH: &str = "/proc/thread-self/attr/current";

/// The context reported when SELinux has no policy loaded.
const KERNEL_CONTEXT: &str = "kernel";

/// Whether `mountinfo` (the text of `/proc/self/mountinfo`) lists a
/// read-write `selinuxfs` mount.
///
/// Each line is `id parent major:minor root mountpoint options [optional
/// fields...] - fstype source super-options`; the filesystem type is the
/// first field after the lone `-`, and the per-mount options (field 6) say
/// `ro` or `rw`. go-selinux rejects a read-only selinuxfs (the usual sight
/// inside a container), and so does this function.
///
/// ```
/// let line = "30 23 0:27 / /sys/fs/selinux rw,nosuid,noexec,relatime shared:8 - selinuxfs selinuxfs rw\n";
/// assert!(selinux_launch::selinux_enabled_at(line));
/// assert!(!selinux_launch::selinux_enabled_at(&line.replace("selinuxfs", "sysfs")));
/// ```
pub fn selinux_enabled_at(mountinfo: &str) -> bool {
    mountinfo.lines().any(is_rw_selinuxfs_line)
}

fn is_rw_selinuxfs_line(line: &str) -> bool {
    let mut fields = line.split_ascii_whitespace();
    // id, parent, major:minor, root, mount point
    let Some(options) = fields.nth(5) else {
        return false;
    };
    let Some(fstype) = fields.skip_while(|f| *f != "-").nth(1) else {
        return false;
    };
    fstype == "selinuxfs" && options.split(',').any(|o| o == "rw")
}

/// Whether SELinux is enabled on this host, for this process: a read-write
/// selinuxfs is mounted (from [`MOUNTINFO_PATH`]) and the current context is
/// not `kernel`. Unreadable files count as "not enabled".
pub fn selinux_enabled() -> bool {
    let Ok(mountinfo) = std::fs::read_to_string(MOUNTINFO_PATH) else {
        return false;
    };
    if !selinux_enabled_at(&mountinfo) {
        return false;
    }
    // go-selinux: an unreadable current label does not disable SELinux;
    // only the literal `kernel` context does.
    match read_attr(Path::new(CURRENT_ATTR_PATH)) {
        Ok(Some(raw)) => raw != KERNEL_CONTEXT,
        Ok(None) | Err(_) => true,
    }
}

/// Reads an SELinux context from an `attr` file such as
/// `/proc/thread-self/attr/current`.
///
/// Trailing NUL bytes and newlines are removed. An empty file, the bare
/// `kernel` context (no policy loaded), a missing file (`ENOENT`) and a
/// kernel whose LSMs offer no such attribute (`EINVAL`) all give `Ok(None)`.
///
/// # Errors
///
/// [`SelinuxError::Read`] for other read failures, and
/// [`SelinuxError::InvalidLabel`] when the content is not a context (for
/// example an AppArmor profile name on an AppArmor host).
pub fn current_label_at(path: &Path) -> Result<Option<SecurityLabel>, SelinuxError> {
    match read_attr(path) {
        Ok(Some(raw)) if raw != KERNEL_CONTEXT => SecurityLabel::parse(&raw).map(Some),
        Ok(_) => Ok(None),
        Err(source) => Err(SelinuxError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The calling thread's current context, read from [`CURRENT_ATTR_PATH`];
/// see [`current_label_at`] for the rules and errors.
///
/// # Errors
///
/// As for [`current_label_at`].
pub fn current_label() -> Result<Option<SecurityLabel>, SelinuxError> {
    current_label_at(Path::new(CURRENT_ATTR_PATH))
}

/// The trimmed content of an attr file; `None` when empty or when the
/// kernel offers no such attribute.
fn read_attr(path: &Path) -> io::Result<Option<String>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&bytes);
    let trimmed = text.trim_end_matches(['\0', '\n']);
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEDORA: &str = "\
22 1 253:0 / / rw,relatime shared:1 - xfs /dev/mapper/root rw,seclabel
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw,seclabel
30 23 0:27 / /sys/fs/selinux rw,nosuid,noexec,relatime shared:8 - selinuxfs selinuxfs rw
";
    const DEBIAN: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
24 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
";
    const IN_CONTAINER: &str = "\
500 400 0:50 / / rw,relatime - overlay overlay rw
510 500 0:27 / /sys/fs/selinux ro,nosuid,nodev,noexec,relatime - selinuxfs selinuxfs rw
";
    // No optional fields between the options and the separator.
    const NO_OPTIONAL_FIELDS: &str = "30 23 0:27 / /selinux rw,relatime - selinuxfs none rw\n";
    // A mount point named like the filesystem must not fool the parser.
    const DECOY_PATH: &str = "40 22 0:40 / /mnt/selinuxfs rw,relatime shared:9 - tmpfs tmpfs rw\n";

    #[test]
    fn detects_read_write_selinuxfs_only() {
        let table = [
            (FEDORA, true),
            (DEBIAN, false),
            (IN_CONTAINER, false),
            (NO_OPTIONAL_FIELDS, true),
            (DECOY_PATH, false),
            ("", false),
            ("garbage line\n", false),
        ];
        for (text, expected) in table {
            assert_eq!(selinux_enabled_at(text), expected, "{text}");
        }
    }

    fn attr_file(content: &[u8]) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        file.write_all(content).unwrap_or_else(|e| panic!("{e}"));
        file
    }

    #[test]
    fn reads_and_trims_current_labels() -> Result<(), SelinuxError> {
        let table: &[(&[u8], Option<&str>)] = &[
            (
                b"system_u:system_r:container_runtime_t:s0\0",
                Some("system_u:system_r:container_runtime_t:s0"),
            ),
            (
                b"unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023\n",
                Some("unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023"),
            ),
            (b"u:r:t\n\0", Some("u:r:t")),
            (b"", None),
            (b"\0", None),
            (b"kernel\0", None),
        ];
        for &(content, expected) in table {
            let file = attr_file(content);
            let got = current_label_at(file.path())?;
            assert_eq!(
                got.map(|l| l.to_string()).as_deref(),
                expected,
                "{content:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_missing_attr_file_means_no_label() -> Result<(), SelinuxError> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(current_label_at(&dir.path().join("current"))?, None);
        Ok(())
    }

    #[test]
    fn a_non_selinux_context_is_an_error() {
        let file = attr_file(b"unconfined\n");
        assert!(matches!(
            current_label_at(file.path()),
            Err(SelinuxError::InvalidLabel { .. })
        ));
    }

    #[test]
    fn the_real_host_answers_without_panicking() {
        // Whatever the host, these must not fail loudly: a host without an
        // LSM reports no label, an SELinux host reports a parseable one.
        let enabled = selinux_enabled();
        let label = current_label();
        if enabled {
            assert!(matches!(label, Ok(Some(_))), "{label:?}");
        }
    }
}
