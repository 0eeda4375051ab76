//! conmon's exit files.
//!
//! When a container exits, conmon writes `<exit-dir>/<container id>`: the
//! decimal exit status (signal deaths are 128 + signal number), no newline,
//! written atomically. The file's ctime is the moment the container
//! finished. This module reads such a file; `exit_watch.rs` waits for one.

use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::ProbeError;

/// The most bytes of an exit file that are read; a longer file is not an
/// exit file, and its start is quoted in the error.
const MAX_EXIT_FILE: u64 = 64;

/// How a container exited, as recorded by conmon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitRecord {
    /// The exit status; 128 + signal number for a death by signal.
    pub code: i32,
    /// When the container finished: the exit file's ctime.
    pub finished: SystemTime,
}

/// Reads an exit file written by conmon.
///
/// Trailing (and leading) whitespace around the number is tolerated.
/// Returns `Ok(None)` when the file does not exist.
///
/// # Errors
///
/// - [`ProbeError::InvalidExitFile`] when the content is not a decimal
///   integer. An empty file is invalid too: conmon writes the file
///   atomically, so an empty one is corrupt rather than half written.
/// - [`ProbeError::Io`] when the file exists but cannot be read.
pub fn read_exit_file(path: &Path) -> Result<Option<ExitRecord>, ProbeError> {
    let file = match crate::untrusted::open_untrusted_file(path) {
        Ok(Some(file)) => file,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(ProbeError::io(
                format!("opening exit file {}", path.display()),
                e,
            ))
        }
    };
    let context = || format!("reading exit file {}", path.display());
    let metadata = file.metadata().map_err(|e| ProbeError::io(context(), e))?;
    let mut bytes = Vec::new();
    file.take(MAX_EXIT_FILE)
        .read_to_end(&mut bytes)
        .map_err(|e| ProbeError::io(context(), e))?;
    let content = String::from_utf8_lossy(&bytes);
    let code = content
        .trim()
        .parse::<i32>()
        .map_err(|_| ProbeError::InvalidExitFile {
            path: path.to_path_buf(),
            content: content.clone().into_owned(),
        })?;
    Ok(Some(ExitRecord {
        code,
        finished: ctime(&metadata),
    }))
}

/// The inode change time of a file as a [`SystemTime`].
pub(crate) fn ctime(metadata: &Metadata) -> SystemTime {
    // The kernel keeps nanoseconds below 10^9, so Duration::new cannot carry
    // into (and overflow) the seconds, which are at most i64::MAX.
    let nanos = u32::try_from(metadata.ctime_nsec()).unwrap_or(0);
    let secs = metadata.ctime();
    let time = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(secs.unsigned_abs(), nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))
            .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
    };
    // Only a ctime beyond what SystemTime can hold falls back to the epoch.
    time.unwrap_or(UNIX_EPOCH)
}
