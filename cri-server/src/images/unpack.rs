//! Applying image layers (tar, optionally gzip-compressed) onto a root
//! filesystem directory, with the OCI whiteout rules: `.wh.NAME` deletes
//! `NAME` from the layers below, `.wh..wh..opq` empties its directory of
//! what the layers below put there.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use super::ImageError;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Applies the layer in `blob` onto `root`. The blob may be a plain or a
/// gzip-compressed tar (detected from its first bytes); zstd layers are
/// refused. Entries cannot escape `root` (no `..`, no absolute paths, no
/// writing through a symlink that points outside).
pub fn apply_layer(blob: &Path, root: &Path) -> Result<(), ImageError> {
    let file = fs::File::open(blob)
        .map_err(ImageError::io(format!("opening layer {}", blob.display())))?;
    let mut reader = BufReader::new(file);
    let head = reader
        .fill_buf()
        .map_err(ImageError::io(format!("reading layer {}", blob.display())))?;
    let stream: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(ImageError::Unsupported(format!(
            "layer {} is zstd-compressed; only tar and tar+gzip layers are supported",
            blob.display()
        )));
    } else {
        Box::new(reader)
    };
    apply_tar(stream, root).map_err(|e| match e {
        ImageError::Layer { message, .. } => ImageError::Layer {
            layer: blob.display().to_string(),
            message,
        },
        other => other,
    })
}

/// Applies one uncompressed tar stream onto `root`.
pub fn apply_tar(stream: impl Read, root: &Path) -> Result<(), ImageError> {
    let layer_error = |message: String| ImageError::Layer {
        layer: "<stream>".into(),
        message,
    };
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive.set_unpack_xattrs(false);
    // Paths this layer wrote: an opaque marker empties its directory only
    // of what lower layers left there.
    let mut written: HashSet<PathBuf> = HashSet::new();
    let entries = archive
        .entries()
        .map_err(|e| layer_error(format!("reading the tar stream: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| layer_error(format!("reading a tar entry: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| layer_error(format!("a tar entry has an unusable path: {e}")))?
            .into_owned();
        let Some(relative) = clean_relative(&raw) else {
            return Err(layer_error(format!(
                "tar entry {} leaves the root filesystem",
                raw.display()
            )));
        };
        if relative.as_os_str().is_empty() {
            continue;
        }
        let name = relative
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let parent = relative.parent().unwrap_or(Path::new("")).to_path_buf();
        if name == OPAQUE_MARKER {
            clear_directory(root, &parent, &written)?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            remove_path(&safe_join(root, &parent.join(hidden))?)?;
            continue;
        }
        let target = safe_join(root, &relative)?;
        if let Ok(existing) = fs::symlink_metadata(&target) {
            let both_dirs = existing.is_dir() && entry.header().entry_type().is_dir();
            if !both_dirs {
                remove_path(&target)?;
            }
        }
        let unpacked = entry.unpack_in(root).map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            layer_error(format!("unpacking {}: {e}{cause}", relative.display()))
        })?;
        if !unpacked {
            return Err(layer_error(format!(
                "tar entry {} was refused as leaving the root filesystem",
                relative.display()
            )));
        }
        written.insert(relative);
    }
    Ok(())
}

/// The entry path without `.`, leading `/` or trailing parts; `None` when
/// it climbs with `..`.
fn clean_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// `root/relative`, refused when a directory on the way is a symlink (a
/// later layer must not reach outside through an earlier layer's link).
fn safe_join(root: &Path, relative: &Path) -> Result<PathBuf, ImageError> {
    let mut path = root.to_path_buf();
    let mut components = relative.components().peekable();
    while let Some(component) = components.next() {
        path.push(component);
        if components.peek().is_some() {
            if let Ok(meta) = fs::symlink_metadata(&path) {
                if meta.file_type().is_symlink() {
                    return Err(ImageError::Layer {
                        layer: "<stream>".into(),
                        message: format!(
                            "{} goes through the symbolic link {}",
                            relative.display(),
                            path.display()
                        ),
                    });
                }
            }
        }
    }
    Ok(path)
}

fn remove_path(path: &Path) -> Result<(), ImageError> {
    let result = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    result.map_err(ImageError::io(format!("removing {}", path.display())))
}

fn clear_directory(root: &Path, dir: &Path, written: &HashSet<PathBuf>) -> Result<(), ImageError> {
    let full = safe_join(root, dir)?;
    let children = match fs::read_dir(&full) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(ImageError::io(format!("listing {}", full.display())))?,
    };
    for child in children {
        let child = child.map_err(ImageError::io(format!("listing {}", full.display())))?;
        let relative = dir.join(child.file_name());
        if !written.contains(&relative) {
            remove_path(&child.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, contents) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            match contents {
                Some(data) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(data.len() as u64);
                    header.set_mode(0o644);
                    builder.append_data(&mut header, path, *data).unwrap();
                }
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    header.set_mode(0o755);
                    builder.append_data(&mut header, path, &[][..]).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_delete_and_opaque_markers_empty_lower_layers() {
        let root = tempfile::tempdir().unwrap();
        let lower = layer(&[
            ("etc/", None),
            ("etc/a", Some(b"a")),
            ("etc/b", Some(b"b")),
            ("data/", None),
            ("data/old", Some(b"old")),
        ]);
        apply_tar(&lower[..], root.path()).unwrap();
        let upper = layer(&[
            ("etc/.wh.a", Some(b"")),
            ("etc/b", Some(b"B")),
            ("data/new", Some(b"new")),
            ("data/.wh..wh..opq", Some(b"")),
        ]);
        apply_tar(&upper[..], root.path()).unwrap();
        let r = root.path();
        assert!(!r.join("etc/a").exists());
        assert_eq!(fs::read(r.join("etc/b")).unwrap(), b"B");
        assert!(
            !r.join("data/old").exists(),
            "opaque dir keeps a lower entry"
        );
        assert_eq!(fs::read(r.join("data/new")).unwrap(), b"new");
        assert!(!r.join("etc/.wh.a").exists());
    }

    #[test]
    fn entries_cannot_leave_the_root() {
        let root = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, "escape", "/tmp").unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(1);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, "escape/owned", &b"x"[..])
            .unwrap();
        let bytes = builder.into_inner().unwrap();
        let err = apply_tar(&bytes[..], root.path()).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(!Path::new("/tmp/owned").exists());
        assert_eq!(clean_relative(Path::new("a/../../b")), None);
        assert_eq!(
            clean_relative(Path::new("/./a/b")),
            Some(PathBuf::from("a/b"))
        );
    }
}
