//! A busybox root filesystem prepared once and shared, read-only, by many
//! bundles, the way an engine shares an image: each bundle mounts an overlay
//! whose lower layer is the shared tree and whose upper layer is its own.
//!
//! [`BusyboxImage::prepare`] keeps the tree in a cache directory, under a
//! name derived from the busybox binary's identity (device, inode, size,
//! modification and change times) and from the layout version of the tree,
//! so that a replaced or modified busybox gets a tree of its own instead of
//! a stale one. The tree is built in a temporary sibling and renamed into
//! place: a reader sees either no tree or a complete one, and when two
//! processes build at once the one whose rename loses discards its copy.
//!
//! [`BundleBuilder::over_image`](crate::BundleBuilder::over_image) builds a
//! bundle whose `rootfs/` is an overlay over the tree; the container's
//! writes land in the bundle's `upper/` and never reach the cache. The
//! [`Bundle`](crate::Bundle) unmounts the overlay before removing its
//! directory.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount, umount2, MntFlags, MsFlags};

use crate::error::TestkitError;
use crate::rootfs::{find_busybox, populate_rootfs, set_mode, DEFAULT_HOSTNAME};

/// The layout of the prepared tree; bumped whenever what
/// `populate_rootfs` writes changes, so that older trees are not reused.
const LAYOUT_VERSION: u32 = 1;

/// Prefix of the temporary siblings in which trees are built.
const BUILDING_PREFIX: &str = ".building-";

/// A read-only busybox root filesystem in a cache directory.
///
/// The tree holds what every [`BundleBuilder`](crate::BundleBuilder) root
/// filesystem holds (busybox, its applet links, the top-level directories,
/// `/etc/passwd`, `/etc/group`, `/home/tester`), with
/// [`DEFAULT_HOSTNAME`] in `/etc/hostname`.
#[derive(Debug, Clone)]
pub struct BusyboxImage {
    rootfs: PathBuf,
    built: bool,
}

impl BusyboxImage {
    /// Returns the tree for the system's static busybox in `cache`, building
    /// it first when `cache` holds none for this busybox. `cache` is created
    /// when missing.
    ///
    /// # Errors
    ///
    /// [`TestkitError::MissingBinary`] when no static busybox is installed,
    /// [`TestkitError::Io`] when the tree cannot be built or moved into
    /// place.
    pub fn prepare(cache: &Path) -> Result<Self, TestkitError> {
        Self::prepare_from(cache, &find_busybox()?)
    }

    /// Like [`BusyboxImage::prepare`], with the busybox binary at `busybox`.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Io`] when `busybox` cannot be examined or run, or the
    /// tree cannot be built or moved into place.
    pub fn prepare_from(cache: &Path, busybox: &Path) -> Result<Self, TestkitError> {
        let rootfs = cache.join(cache_key(busybox)?);
        if rootfs.is_dir() {
            return Ok(Self {
                rootfs,
                built: false,
            });
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(cache)
            .map_err(TestkitError::io(format!(
                "creating the image cache {}",
                cache.display()
            )))?;
        let building = tempfile::Builder::new()
            .prefix(BUILDING_PREFIX)
            .tempdir_in(cache)
            .map_err(TestkitError::io(format!(
                "creating a build directory in {}",
                cache.display()
            )))?;
        set_mode(building.path(), 0o755)?;
        populate_rootfs(building.path(), busybox, DEFAULT_HOSTNAME)?;
        // Once renamed, the tree is what every later run trusts: its data
        // must be on disk before its name is.
        let handle = fs::File::open(building.path()).map_err(TestkitError::io(format!(
            "opening {}",
            building.path().display()
        )))?;
        nix::unistd::syncfs(handle.as_raw_fd()).map_err(|errno| TestkitError::Io {
            context: format!("syncing {}", building.path().display()),
            source: errno.into(),
        })?;
        match fs::rename(building.path(), &rootfs) {
            Ok(()) => {
                let _moved = building.keep();
                Ok(Self {
                    rootfs,
                    built: true,
                })
            }
            // Another process renamed its tree into place first: ours goes
            // when `building` is dropped.
            Err(e) if lost_the_race(&e) && rootfs.is_dir() => Ok(Self {
                rootfs,
                built: false,
            }),
            Err(e) => Err(TestkitError::Io {
                context: format!(
                    "moving {} to {}",
                    building.path().display(),
                    rootfs.display()
                ),
                source: e,
            }),
        }
    }

    /// The tree's directory, the overlay's lower layer.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// Whether this [`BusyboxImage::prepare`] built the tree (rather than
    /// finding it in the cache).
    pub fn was_built(&self) -> bool {
        self.built
    }
}

/// Whether a failed rename of a directory onto `rootfs` failed because the
/// target exists and is not empty.
fn lost_the_race(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ENOTEMPTY | Errno::EEXIST)
    )
}

/// The tree's name for the busybox at `busybox`. Device and inode tell a
/// replaced binary (package upgrades install a new file); size and the
/// modification and change times tell one rewritten in place (the change
/// time cannot be set back by hand).
fn cache_key(busybox: &Path) -> Result<String, TestkitError> {
    let meta = fs::metadata(busybox)
        .map_err(TestkitError::io(format!("examining {}", busybox.display())))?;
    Ok(format!(
        "busybox-v{LAYOUT_VERSION}-{dev:x}-{ino}-{size}-{mtime}.{mtime_ns:09}-{ctime}.{ctime_ns:09}",
        dev = meta.dev(),
        ino = meta.ino(),
        size = meta.size(),
        mtime = meta.mtime(),
        mtime_ns = meta.mtime_nsec(),
        ctime = meta.ctime(),
        ctime_ns = meta.ctime_nsec(),
    ))
}

/// An overlay mounted on a bundle's `rootfs/`; unmounted when dropped.
#[derive(Debug)]
pub(crate) struct OverlayMount {
    target: PathBuf,
    mounted: bool,
}

impl OverlayMount {
    /// Mounts an overlay of `upper` (with `work` as its work directory) over
    /// `lower` on `target`.
    pub(crate) fn mount(
        lower: &Path,
        upper: &Path,
        work: &Path,
        target: &Path,
    ) -> Result<Self, TestkitError> {
        let context = || {
            format!(
                "mounting an overlay of {} on {}",
                lower.display(),
                target.display()
            )
        };
        let mut data = String::new();
        for (key, dir) in [("lowerdir", lower), ("upperdir", upper), ("workdir", work)] {
            // The option string has no quoting: these would split it.
            let text = dir.to_str().filter(|t| !t.contains([',', ':', '\\']));
            let Some(text) = text else {
                return Err(TestkitError::Mount {
                    context: format!(
                        "{}: {} cannot be named in the options",
                        context(),
                        dir.display()
                    ),
                    source: Errno::EINVAL,
                });
            };
            if !data.is_empty() {
                data.push(',');
            }
            data.push_str(&format!("{key}={text}"));
        }
        let mount_with = |data: &str| {
            mount(
                Some("overlay"),
                target,
                Some("overlay"),
                MsFlags::empty(),
                Some(data),
            )
        };
        // The upper layer is thrown away with the bundle, so nothing in it
        // needs to survive a crash: `volatile` spares the unmount a sync of
        // the whole upper filesystem, which is slow when the disk is busy.
        // Kernels before 5.10 refuse the option.
        let mounted = match mount_with(&format!("{data},volatile")) {
            Err(Errno::EINVAL) => mount_with(&data),
            other => other,
        };
        mounted.map_err(|source| TestkitError::Mount {
            context: context(),
            source,
        })?;
        Ok(Self {
            target: target.to_path_buf(),
            mounted: true,
        })
    }

    /// Unmounts the overlay; when something still uses it, detaches it
    /// instead, so that it goes once the last user does.
    pub(crate) fn unmount(&mut self) -> Result<(), TestkitError> {
        if !self.mounted {
            return Ok(());
        }
        let unmounted = match umount(&self.target) {
            Err(Errno::EBUSY) => umount2(&self.target, MntFlags::MNT_DETACH),
            other => other,
        };
        unmounted.map_err(|source| TestkitError::Mount {
            context: format!("unmounting {}", self.target.display()),
            source,
        })?;
        self.mounted = false;
        Ok(())
    }

    /// Leaves the overlay mounted for good: dropping no longer unmounts it.
    pub(crate) fn keep(&mut self) {
        self.mounted = false;
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        // `Bundle::remove` reports failures; a drop has no one to tell.
        let _ = self.unmount();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;
    use crate::executable::{write_executable, Contents};
    use crate::guard::{require, Need};
    use crate::BundleBuilder;

    fn have_busybox() -> bool {
        require(&[Need::Binary("busybox")])
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("the cache is readable")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    fn is_mount_point(path: &Path) -> bool {
        let table = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo is readable");
        let needle = format!(" {} ", path.display());
        table.lines().any(|line| line.contains(&needle))
    }

    #[test]
    fn the_tree_is_built_once_then_reused() {
        if !have_busybox() {
            return;
        }
        let cache = tempfile::tempdir().expect("temporary directory");
        let first = BusyboxImage::prepare(cache.path()).expect("the tree is built");
        assert!(first.was_built());
        let rootfs = first.rootfs();
        assert!(rootfs.join("bin/busybox").is_file());
        assert!(rootfs.join("bin/sh").is_file());
        assert_eq!(
            fs::read_to_string(rootfs.join("etc/hostname")).expect("hostname"),
            format!("{DEFAULT_HOSTNAME}\n")
        );
        assert_eq!(
            fs::metadata(rootfs).expect("the tree").mode() & 0o7777,
            0o755
        );

        let second = BusyboxImage::prepare(cache.path()).expect("the tree is found");
        assert!(!second.was_built());
        assert_eq!(second.rootfs(), first.rootfs());
        assert_eq!(entries(cache.path()).len(), 1, "no build directory is left");
    }

    #[test]
    fn a_changed_busybox_gets_a_new_tree() {
        if !have_busybox() {
            return;
        }
        let scratch = tempfile::tempdir().expect("temporary directory");
        let cache = scratch.path().join("cache");
        let busybox = scratch.path().join("busybox");
        let system = find_busybox().expect("busybox is installed");
        write_executable(&busybox, Contents::CopyOf(&system), 0o755).expect("copied");
        let old = BusyboxImage::prepare_from(&cache, &busybox).expect("the tree is built");

        // A new file in its place, as a package upgrade installs it.
        write_executable(&busybox, Contents::CopyOf(&system), 0o755).expect("replaced");
        let new = BusyboxImage::prepare_from(&cache, &busybox).expect("a tree is built");
        assert!(new.was_built(), "the stale tree is not reused");
        assert_ne!(new.rootfs(), old.rootfs());
        assert!(new.rootfs().join("bin/busybox").is_file());
    }

    #[test]
    fn concurrent_preparations_end_with_one_tree() {
        if !have_busybox() {
            return;
        }
        let cache = tempfile::tempdir().expect("temporary directory");
        let threads = 4;
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let start = Arc::clone(&start);
                let cache = cache.path().to_path_buf();
                std::thread::spawn(move || {
                    start.wait();
                    BusyboxImage::prepare(&cache)
                })
            })
            .collect();
        let images: Vec<BusyboxImage> = handles
            .into_iter()
            .map(|h| h.join().expect("no panic").expect("prepared"))
            .collect();
        assert_eq!(images.iter().filter(|i| i.was_built()).count(), 1);
        assert!(images.iter().all(|i| i.rootfs() == images[0].rootfs()));
        assert_eq!(
            entries(cache.path()).len(),
            1,
            "the losers' copies are gone"
        );
        let rootfs = images[0].rootfs();
        assert!(rootfs.join("bin/busybox").is_file());
        assert!(rootfs.join("etc/passwd").is_file());
    }

    #[test]
    fn writes_through_the_overlay_stay_out_of_the_cache() {
        if !require(&[Need::Root, Need::Binary("busybox")]) {
            return;
        }
        let cache = tempfile::tempdir().expect("temporary directory");
        let image = BusyboxImage::prepare(cache.path()).expect("the tree is built");
        let passwd = fs::read_to_string(image.rootfs().join("etc/passwd")).expect("passwd");
        let bundle = BundleBuilder::new()
            .hostname("box")
            .over_image(&image)
            .build()
            .expect("the bundle is mounted");
        assert!(bundle.is_overlay());
        let rootfs = bundle.rootfs();
        assert!(rootfs.join("bin/busybox").is_file());
        assert_eq!(
            fs::read_to_string(rootfs.join("etc/hostname")).expect("hostname"),
            "box\n"
        );
        fs::write(rootfs.join("tmp/written"), "x").expect("written");
        fs::write(rootfs.join("etc/passwd"), "changed\n").expect("rewritten");
        fs::remove_file(rootfs.join("bin/sh")).expect("removed");

        assert!(bundle.path().join("upper/tmp/written").is_file());
        assert!(!image.rootfs().join("tmp/written").exists());
        assert!(image.rootfs().join("bin/sh").is_file());
        assert_eq!(
            fs::read_to_string(image.rootfs().join("etc/passwd")).expect("passwd"),
            passwd
        );
        assert_eq!(
            fs::read_to_string(image.rootfs().join("etc/hostname")).expect("hostname"),
            format!("{DEFAULT_HOSTNAME}\n")
        );
    }

    #[test]
    fn a_bundle_leaves_no_mount_and_no_directory() {
        if !require(&[Need::Root, Need::Binary("busybox")]) {
            return;
        }
        let cache = tempfile::tempdir().expect("temporary directory");
        let image = BusyboxImage::prepare(cache.path()).expect("the tree is built");

        let dropped = BundleBuilder::new()
            .over_image(&image)
            .build()
            .expect("mounted");
        let (dir, rootfs) = (dropped.path().to_path_buf(), dropped.rootfs());
        assert!(is_mount_point(&rootfs));
        drop(dropped);
        assert!(!is_mount_point(&rootfs));
        assert!(!dir.exists());

        let removed = BundleBuilder::new()
            .over_image(&image)
            .build()
            .expect("mounted");
        let (dir, rootfs) = (removed.path().to_path_buf(), removed.rootfs());
        removed.remove().expect("unmounted and removed");
        assert!(!is_mount_point(&rootfs));
        assert!(!dir.exists());

        // A busy overlay is detached rather than left behind.
        let busy = BundleBuilder::new()
            .over_image(&image)
            .build()
            .expect("mounted");
        let (dir, rootfs) = (busy.path().to_path_buf(), busy.rootfs());
        let open = fs::File::open(rootfs.join("bin/busybox")).expect("opened");
        busy.remove().expect("detached and removed");
        assert!(!is_mount_point(&rootfs));
        assert!(!dir.exists());
        drop(open);

        assert!(image.rootfs().join("bin/busybox").is_file());
    }

    #[test]
    fn a_kept_bundle_stays_mounted() {
        if !require(&[Need::Root, Need::Binary("busybox")]) {
            return;
        }
        let cache = tempfile::tempdir().expect("temporary directory");
        let image = BusyboxImage::prepare(cache.path()).expect("the tree is built");
        let bundle = BundleBuilder::new()
            .over_image(&image)
            .build()
            .expect("mounted");
        let rootfs = bundle.rootfs();
        let dir = bundle.keep();
        assert!(is_mount_point(&rootfs));
        umount(&rootfs).expect("unmounted by hand");
        fs::remove_dir_all(&dir).expect("removed by hand");
    }

    #[test]
    fn unnameable_layers_are_refused_before_mounting() {
        let scratch = tempfile::tempdir().expect("temporary directory");
        let odd = scratch.path().join("a,b");
        let err = OverlayMount::mount(&odd, &odd, &odd, scratch.path())
            .expect_err("a comma cannot be named");
        assert!(
            matches!(
                err,
                TestkitError::Mount {
                    source: Errno::EINVAL,
                    ..
                }
            ),
            "{err}"
        );
    }
}
