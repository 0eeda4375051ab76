//! Reading the container log conmon writes with the `k8s-file` driver:
//! one line per record, `TIMESTAMP STREAM TAG TEXT`, where the tag is `F`
//! for a full line and `P` for a partial one that the next record continues.

use std::path::Path;

use runtime_api::RuntimeError;

/// Which stream a log record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// The container's stdout.
    Stdout,
    /// The container's stderr.
    Stderr,
}

/// One record of a `k8s-file` log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The RFC 3339 timestamp as written.
    pub timestamp: String,
    /// The stream.
    pub stream: LogStream,
    /// Whether the record ends a line (`F`) rather than continuing (`P`).
    pub full_line: bool,
    /// The text, without the line terminator.
    pub text: String,
}

/// Parses one log line; `None` for a line that is not a log record.
///
/// ```
/// use conmon_driver::{parse_k8s_log_line, LogStream};
/// let r = parse_k8s_log_line("2026-11-28T21:45:04.104931170+00:00 stderr F oops").unwrap();
/// assert_eq!((r.stream, r.full_line, r.text.as_str()), (LogStream::Stderr, true, "oops"));
/// ```
pub fn parse_k8s_log_line(line: &str) -> Option<LogRecord> {
    let mut parts = line.splitn(4, ' ');
    let timestamp = parts.next()?.to_string();
    let stream = match parts.next()? {
        "stdout" => LogStream::Stdout,
        "stderr" => LogStream::Stderr,
        _ => return None,
    };
    let full_line = match parts.next()? {
        "F" => true,
        "P" => false,
        _ => return None,
    };
    let text = parts.next().unwrap_or("").to_string();
    Some(LogRecord {
        timestamp,
        stream,
        full_line,
        text,
    })
}

/// Opens a k8s-file log as an untrusted file: not through a symlink, not
/// blocking on a FIFO, a regular file only; a missing log is an error.
pub(crate) fn open_log_file(path: &Path) -> Result<std::fs::File, RuntimeError> {
    let context = || format!("opening log {}", path.display());
    state_probe::open_untrusted_file(path)
        .map_err(|e| RuntimeError::io(context(), e))?
        .ok_or_else(|| {
            RuntimeError::io(
                context(),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        })
}

/// Reads a whole `k8s-file` log and returns each stream's bytes, with full
/// lines ended by `\n` and partial records joined.
pub fn read_k8s_log(path: &Path) -> Result<(Vec<u8>, Vec<u8>), RuntimeError> {
    use std::io::Read;
    let context = || format!("reading log {}", path.display());
    let mut file = open_log_file(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| RuntimeError::io(context(), e))?;
    // A line cut in the middle of a character must not lose the log.
    let text = String::from_utf8_lossy(&bytes);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for record in text.lines().filter_map(parse_k8s_log_line) {
        let sink = match record.stream {
            LogStream::Stdout => &mut stdout,
            LogStream::Stderr => &mut stderr,
        };
        sink.extend_from_slice(record.text.as_bytes());
        if record.full_line {
            sink.push(b'\n');
        }
    }
    Ok((stdout, stderr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_partial_and_rejects_junk() {
        let p = parse_k8s_log_line("t stdout P abc").unwrap();
        assert!(!p.full_line);
        assert_eq!(p.text, "abc");
        let empty = parse_k8s_log_line("t stdout F").unwrap();
        assert_eq!(empty.text, "");
        assert!(parse_k8s_log_line("t stdin F x").is_none());
        assert!(parse_k8s_log_line("t stdout X x").is_none());
        assert!(parse_k8s_log_line("").is_none());
    }

    #[test]
    fn joins_partials_per_stream() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(
            &log,
            "t stdout P he\nt stderr F err\nt stdout F llo\nt stdout F  two  spaces\n",
        )
        .unwrap();
        let (out, err) = read_k8s_log(&log).unwrap();
        assert_eq!(out, b"hello\n two  spaces\n");
        assert_eq!(err, b"err\n");
    }
}
