//! The OCI runtime's own error log (`--log-format=json --log <file>`), and
//! podman's classification of a runtime error message into "permission
//! denied", "command not found" or anything else.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;

use crate::SyncPipeError;

/// How much of the end of a log file [`read_oci_error`] reads (1 MiB).
pub const MAX_OCI_LOG_READ: u64 = 1024 * 1024;

/// What kind of failure a runtime error message describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OciErrorKind {
    /// "permission denied" or "operation not permitted".
    PermissionDenied,
    /// "executable file not found in" or "no such file or directory".
    CommandNotFound,
    /// Any other runtime error.
    Other,
}

impl OciErrorKind {
    /// The exit code an engine command line reports for this kind, as
    /// podman does: 126, 127 or 125.
    pub fn exit_code(self) -> i32 {
        match self {
            OciErrorKind::PermissionDenied => 126,
            OciErrorKind::CommandNotFound => 127,
            OciErrorKind::Other => 125,
        }
    }
}

/// Podman's classification (case-insensitive): "permission denied" or
/// "operation not permitted" -> [`OciErrorKind::PermissionDenied`];
/// "executable file not found in" or "no such file or directory" ->
/// [`OciErrorKind::CommandNotFound`]; else [`OciErrorKind::Other`].
/// Permission is checked first.
pub fn classify_oci_message(msg: &str) -> OciErrorKind {
    let msg = msg.to_lowercase();
    if msg.contains("permission denied") || msg.contains("operation not permitted") {
        OciErrorKind::PermissionDenied
    } else if msg.contains("executable file not found in")
        || msg.contains("no such file or directory")
    {
        OciErrorKind::CommandNotFound
    } else {
        OciErrorKind::Other
    }
}

/// One entry of a runtime's JSON log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciLogEntry {
    /// The log level as written (`error`, `fatal`, `panic`, ...).
    pub level: String,
    /// The message text.
    pub msg: String,
}

impl OciLogEntry {
    /// [`classify_oci_message`] applied to the message.
    pub fn kind(&self) -> OciErrorKind {
        classify_oci_message(&self.msg)
    }
}

/// The wire shape of one log line; `time` and unknown keys are ignored.
#[derive(Deserialize)]
struct WireEntry {
    level: String,
    #[serde(default)]
    msg: String,
}

/// Opens the log without following a symlink put in its place and without
/// blocking on a FIFO; anything but a regular file is refused. `Ok(None)`
/// when it does not exist.
fn open_regular_nofollow(path: &Path) -> io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    Ok(Some(file))
}

/// Reads a runtime's `--log-format=json` log (one JSON object per line:
/// `{"level","msg","time"}`) and returns the last entry whose level is
/// `error`, `fatal` or `panic` (any case). Lines that are not such JSON are
/// skipped. Only the last [`MAX_OCI_LOG_READ`] bytes are read; a line cut by
/// that bound is skipped.
///
/// # Errors
///
/// [`SyncPipeError::OciLog`] when the file exists but cannot be read. A
/// missing file gives `Ok(None)`, as does a file without error entries.
pub fn read_oci_error(path: &Path) -> Result<Option<OciLogEntry>, SyncPipeError> {
    let fail = |source: io::Error| SyncPipeError::OciLog {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match open_regular_nofollow(path) {
        Ok(Some(file)) => file,
        Ok(None) => return Ok(None),
        Err(e) => return Err(fail(e)),
    };
    let len = file.metadata().map_err(fail)?.len();
    // Start one byte before the window so a line starting exactly at the
    // window's edge is recognised as whole.
    let start = len.saturating_sub(MAX_OCI_LOG_READ + 1);
    file.seek(SeekFrom::Start(start)).map_err(fail)?;
    let mut bytes = Vec::new();
    file.take(MAX_OCI_LOG_READ + 1)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    let mut text: &[u8] = &bytes;
    if start > 0 {
        // Drop the partial first line (up to and including its newline).
        text = match text.iter().position(|&b| b == b'\n') {
            Some(nl) => &text[nl + 1..],
            None => &[],
        };
    }
    Ok(last_oci_error(text))
}

/// The last entry of a runtime's `--log-format=json` log text whose level
/// is `error`, `fatal` or `panic` (any case): the parsing half of
/// [`read_oci_error`], for a log already in memory. Lines are split at
/// `\n`; a line that is not a JSON object with a string `level` (and, if
/// present, a string `msg`) is skipped, whatever bytes it holds.
///
/// ```
/// use sync_pipe::{last_oci_error, OciErrorKind};
///
/// let log = br#"{"level":"info","msg":"starting","time":"2026-01-02T03:04:05Z"}
/// {"level":"error","msg":"exec: \"nope\": executable file not found in $PATH"}
/// not json at all
/// "#;
/// let entry = last_oci_error(log).expect("an error entry");
/// assert_eq!(entry.level, "error");
/// assert_eq!(entry.kind(), OciErrorKind::CommandNotFound);
/// assert_eq!(last_oci_error(b"{\"level\":\"warning\",\"msg\":\"x\"}"), None);
/// ```
pub fn last_oci_error(log: &[u8]) -> Option<OciLogEntry> {
    log.split(|&b| b == b'\n').rev().find_map(error_entry)
}

/// The entry on `line` if it is a JSON log object with an error level.
fn error_entry(line: &[u8]) -> Option<OciLogEntry> {
    let entry: WireEntry = serde_json::from_slice(line).ok()?;
    let is_error = ["error", "fatal", "panic"]
        .iter()
        .any(|level| entry.level.eq_ignore_ascii_case(level));
    is_error.then_some(OciLogEntry {
        level: entry.level,
        msg: entry.msg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        use OciErrorKind::*;
        let table = [
            ("open /dev/foo: permission denied", PermissionDenied),
            ("Permission Denied", PermissionDenied),
            ("mount: OPERATION NOT PERMITTED", PermissionDenied),
            (
                "exec: \"nope\": executable file not found in $PATH",
                CommandNotFound,
            ),
            ("stat /bin/nope: no such file or directory", CommandNotFound),
            ("No Such File Or Directory", CommandNotFound),
            // Permission wins when both appear.
            (
                "no such file or directory; then permission denied",
                PermissionDenied,
            ),
            ("container with id exists: abc", Other),
            ("", Other),
            ("permission", Other),
        ];
        for (msg, kind) in table {
            assert_eq!(classify_oci_message(msg), kind, "{msg:?}");
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(OciErrorKind::PermissionDenied.exit_code(), 126);
        assert_eq!(OciErrorKind::CommandNotFound.exit_code(), 127);
        assert_eq!(OciErrorKind::Other.exit_code(), 125);
    }
}
