//! The writable layer's usage: bytes (allocated blocks) and inodes under a
//! container's root filesystem directory, which this server unpacks as a
//! copy per container (`<state>/containers/<id>/bundle/rootfs`), so the
//! whole tree is the container's writable layer. The walk stays on one
//! file system, never follows symbolic links, counts a hard-linked inode
//! once, and stops after a bounded number of entries.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::StatsError;

/// What a walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskUsage {
    /// Allocated bytes (512-byte blocks, as `du` counts).
    pub bytes: u64,
    /// Inodes.
    pub inodes: u64,
    /// Whether the walk saw the whole tree (false: it hit the bound, and
    /// the figures are a lower bound).
    pub complete: bool,
}

/// Walks `root`, looking at no more than `max_entries` entries.
pub fn usage(root: &Path, max_entries: u64) -> Result<DiskUsage, StatsError> {
    let top = std::fs::symlink_metadata(root).map_err(|source| StatsError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let device = top.dev();
    let mut seen_links = HashSet::new();
    let mut out = DiskUsage {
        complete: true,
        ..DiskUsage::default()
    };
    let mut pending: Vec<(PathBuf, std::fs::Metadata)> = vec![(root.to_path_buf(), top)];
    while let Some((path, meta)) = pending.pop() {
        if out.inodes >= max_entries {
            out.complete = false;
            break;
        }
        if meta.nlink() > 1 && !meta.is_dir() && !seen_links.insert((meta.dev(), meta.ino())) {
            continue;
        }
        out.inodes += 1;
        out.bytes = out.bytes.saturating_add(meta.blocks().saturating_mul(512));
        if !meta.is_dir() || meta.dev() != device {
            continue;
        }
        // A directory removed under the walk, or unreadable, is skipped.
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(meta) = entry.metadata() {
                if meta.dev() == device {
                    pending.push((entry.path(), meta));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn counts_files_directories_and_links_once() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rootfs");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/file"), vec![7u8; 64 * 1024]).unwrap();
        fs::hard_link(root.join("a/b/file"), root.join("a/hard")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        let u = usage(&root, 1000).unwrap();
        // rootfs, a, a/b, file (once), link.
        assert_eq!(u.inodes, 5);
        assert!(u.bytes >= 64 * 1024, "{u:?}");
        assert!(u.complete);

        let bounded = usage(&root, 2).unwrap();
        assert_eq!(bounded.inodes, 2);
        assert!(!bounded.complete);
    }

    #[test]
    fn a_missing_root_is_an_error() {
        assert!(usage(Path::new("/nonexistent/rootfs"), 10).is_err());
    }
}
