//! Crash-safe file replacement for the server's records: a reader after a
//! crash (or a power cut) sees either the old file or the new one whole,
//! never a torn write. The bytes go to a temporary file beside the target,
//! are synced, renamed over the target, and the directory is synced so the
//! rename itself survives.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The suffix of a replacement still being written; a file with it found
/// at start-up is the remains of an interrupted write.
pub(crate) const PARTIAL_SUFFIX: &str = ".partial";

/// Replaces `path` with `bytes` atomically and durably.
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a path with no directory"))?;
    let mut partial = path.as_os_str().to_owned();
    partial.push(PARTIAL_SUFFIX);
    let partial = Path::new(&partial);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(partial)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(partial, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(partial);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_leaves_only_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        replace_file(&path, b"old").unwrap();
        replace_file(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("record.json")]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        replace_file(&path, b"old").unwrap();
        // A directory where the partial file would go makes the write fail.
        fs::create_dir(dir.path().join(format!("record.json{PARTIAL_SUFFIX}"))).unwrap();
        assert!(replace_file(&path, b"new").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
    }
}
