//! The busybox root filesystem every bundle and the shared image hold:
//! the static busybox, a hard link per applet, the standard directories and
//! the files under `/etc` (root, `nobody`, the unprivileged `tester` and
//! the group `extra`). [`BundleBuilder`](crate::BundleBuilder) writes it
//! into a bundle of its own; [`BusyboxImage`](crate::BusyboxImage) once
//! into a cache that overlays then share.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::TestkitError;
use crate::executable::{write_executable, Contents};
use crate::guard::is_root;

/// Places where the static busybox is looked for, in order.
const BUSYBOX_CANDIDATES: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];

/// Hostname given to the container by default.
pub const DEFAULT_HOSTNAME: &str = "testkit";

/// Uid and gid of the unprivileged `tester` user present in every bundle.
pub const TESTER_ID: u32 = 1234;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
tester:x:1234:1234:tester:/home/tester:/bin/sh\n";

const GROUP: &str = "root:x:0:\n\
nobody:x:65534:\n\
tester:x:1234:\n\
extra:x:2000:tester\n";

/// Finds the static busybox binary on this machine.
pub(crate) fn find_busybox() -> Result<PathBuf, TestkitError> {
    BUSYBOX_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .ok_or_else(|| TestkitError::MissingBinary {
            name: "busybox".to_string(),
        })
}

/// Fills `rootfs` with busybox, its applet links, the standard directories
/// and the files under `/etc`.
pub(crate) fn populate_rootfs(
    rootfs: &Path,
    busybox: &Path,
    hostname: &str,
) -> Result<(), TestkitError> {
    for dir in [
        "bin", "proc", "sys", "dev", "tmp", "etc", "root", "var", "run",
    ] {
        create_dir(&rootfs.join(dir))?;
    }
    set_mode(&rootfs.join("tmp"), 0o1777)?;
    set_mode(&rootfs.join("root"), 0o700)?;

    let target = rootfs.join("bin/busybox");
    write_executable(&target, Contents::CopyOf(busybox), 0o755)?;
    link_applets(rootfs, &target)?;

    write_file(&rootfs.join("etc/passwd"), PASSWD)?;
    write_file(&rootfs.join("etc/group"), GROUP)?;
    write_file(&rootfs.join("etc/hostname"), &format!("{hostname}\n"))?;

    let home = rootfs.join("home/tester");
    create_dir(&home)?;
    if is_root() {
        std::os::unix::fs::chown(&home, Some(TESTER_ID), Some(TESTER_ID)).map_err(
            TestkitError::io(format!("changing the owner of {}", home.display())),
        )?;
    }
    Ok(())
}

/// Creates a hard link `<rootfs>/<applet path>` to `bin/busybox` for every
/// applet listed by `busybox --list-full` (busybox picks the applet by the
/// name it was run as). Hard links rather than symlinks: a link is one
/// directory entry, while every symlink is an inode of its own to allocate
/// and later free, about 270 of them per bundle.
fn link_applets(rootfs: &Path, busybox: &Path) -> Result<(), TestkitError> {
    let context = format!("running {} --list-full", busybox.display());
    let output = Command::new(busybox)
        .arg("--list-full")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(TestkitError::io(context.clone()))?;
    if !output.status.success() {
        return Err(TestkitError::Io {
            context,
            source: std::io::Error::other(format!("exited with {}", output.status)),
        });
    }
    let listing = String::from_utf8_lossy(&output.stdout);
    for applet in listing.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !is_applet_link(applet) {
            continue;
        }
        let link = rootfs.join(applet);
        if fs::symlink_metadata(&link).is_ok() {
            continue;
        }
        if let Some(dir) = link.parent() {
            create_dir(dir)?;
        }
        fs::hard_link(busybox, &link).map_err(TestkitError::io(format!(
            "linking {} to {}",
            link.display(),
            busybox.display()
        )))?;
    }
    Ok(())
}

/// Whether an applet path such as `usr/bin/env` gets a link: a plain
/// relative path other than `bin/busybox` itself.
fn is_applet_link(applet: &str) -> bool {
    let path = Path::new(applet);
    path != Path::new("bin/busybox")
        && path.components().next().is_some()
        && path.components().all(|c| matches!(c, Component::Normal(_)))
}

pub(crate) fn create_dir(path: &Path) -> Result<(), TestkitError> {
    fs::create_dir_all(path).map_err(TestkitError::io(format!(
        "creating directory {}",
        path.display()
    )))
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), TestkitError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(TestkitError::io(format!(
        "setting mode {mode:o} on {}",
        path.display()
    )))
}

pub(crate) fn write_file(path: &Path, contents: &str) -> Result<(), TestkitError> {
    fs::write(path, contents).map_err(TestkitError::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applet_links_are_plain_relative_paths() {
        for applet in ["usr/bin/env", "bin/sh", "linuxrc"] {
            assert!(is_applet_link(applet), "{applet}");
        }
        for applet in ["bin/busybox", "/bin/sh", "../escape", ""] {
            assert!(!is_applet_link(applet), "{applet:?}");
        }
    }
}
