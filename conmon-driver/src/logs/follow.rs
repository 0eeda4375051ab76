//! Reading and following a container's `k8s-file` log, as `podman logs`
//! does: records of the chosen streams, partial records joined into whole
//! lines, `since`/`until` bounds, the last `tail` lines, timestamps on or
//! off, and with `follow` the lines written afterwards until the container
//! has exited and the log is drained.
//!
//! Following waits on inotify (the log's directory and conmon's exit
//! directory), never on a timer. conmon rotates the log at `--log-size-max`
//! by renaming a fresh file over it; the follower reads the file it has
//! open to its end before moving to the new one, so no line is lost. conmon
//! keeps no older file: a follower that falls more than one whole rotation
//! behind (the log replaced twice between two of its reads) cannot see the
//! file in between, as with podman.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use runtime_api::{ContainerDescription, LogDriver, RuntimeError};
use state_probe::DirChanges;

use crate::logs::k8s_file::{parse_k8s_log_line, LogStream};
use crate::runtime::ConmonRuntime;

/// What to read from a container's log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogOptions {
    /// Keep reading the lines written later, until the container exited.
    pub follow: bool,
    /// Only lines written at or after this time.
    pub since: Option<SystemTime>,
    /// Only lines written at or before this time.
    pub until: Option<SystemTime>,
    /// Only the last `n` of the lines already written (then, with
    /// `follow`, every new one).
    pub tail: Option<usize>,
    /// Include the container's stdout.
    pub stdout: bool,
    /// Include the container's stderr.
    pub stderr: bool,
}

impl Default for LogOptions {
    /// Both streams, the whole log, no follow.
    fn default() -> Self {
        Self {
            follow: false,
            since: None,
            until: None,
            tail: None,
            stdout: true,
            stderr: true,
        }
    }
}

impl LogOptions {
    /// These options, following the log.
    #[must_use]
    pub fn follow(mut self) -> Self {
        self.follow = true;
        self
    }

    /// These options, with only the last `n` lines already written.
    #[must_use]
    pub fn tail(mut self, n: usize) -> Self {
        self.tail = Some(n);
        self
    }

    /// These options, with lines written in `since..=until` only.
    #[must_use]
    pub fn between(mut self, since: Option<SystemTime>, until: Option<SystemTime>) -> Self {
        self.since = since;
        self.until = until;
        self
    }

    /// These options, with the chosen streams.
    #[must_use]
    pub fn streams(mut self, stdout: bool, stderr: bool) -> Self {
        self.stdout = stdout;
        self.stderr = stderr;
        self
    }
}

/// One whole line of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When conmon wrote its first record.
    pub time: SystemTime,
    /// That time as conmon wrote it (RFC 3339, nanoseconds).
    pub timestamp: String,
    /// The stream.
    pub stream: LogStream,
    /// The text, without its newline.
    pub text: String,
}

impl LogLine {
    /// The line as `podman logs` prints it: the text and a newline, with
    /// the timestamp and a space in front when `timestamps` is set.
    ///
    /// ```
    /// use conmon_driver::{LogLine, LogStream};
    /// let line = LogLine {
    ///     time: std::time::UNIX_EPOCH,
    ///     timestamp: "1970-01-01T00:00:00.000000000+00:00".into(),
    ///     stream: LogStream::Stdout,
    ///     text: "hello".into(),
    /// };
    /// assert_eq!(line.render(false), "hello\n");
    /// assert_eq!(line.render(true), "1970-01-01T00:00:00.000000000+00:00 hello\n");
    /// ```
    pub fn render(&self, timestamps: bool) -> String {
        if timestamps {
            format!("{} {}\n", self.timestamp, self.text)
        } else {
            format!("{}\n", self.text)
        }
    }
}

/// Reads (and follows) one `k8s-file` log. Get one from
/// [`ConmonRuntime::logs`] or [`LogReader::open`].
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    exit_file: PathBuf,
    options: LogOptions,
    file: File,
    inode: u64,
    /// Bytes after the last newline read: a record conmon is still writing.
    unfinished: Vec<u8>,
    /// The partial records of each stream waiting for their end
    /// (stdout, stderr), with the time of the first.
    partial: [Option<(SystemTime, String, String)>; 2],
    ready: VecDeque<LogLine>,
    changes: Option<DirChanges>,
    done: bool,
}

impl ConmonRuntime {
    /// Reads container `c`'s `k8s-file` log (also `json-file`, which
    /// conmon writes in the same format) with `options`.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::InvalidArgument`] for another log driver; an I/O
    /// error when the log cannot be opened or watched.
    pub fn logs(
        &self,
        c: &ContainerDescription,
        options: LogOptions,
    ) -> Result<LogReader, RuntimeError> {
        let path = match (c.log().driver, &c.log().path) {
            (LogDriver::KubernetesFile | LogDriver::JsonFile, Some(path)) => path.clone(),
            (driver, _) => {
                return Err(RuntimeError::InvalidArgument(format!(
                    "container {} logs with {driver:?}, which has no file to read",
                    c.id()
                )))
            }
        };
        LogReader::open(&path, &self.layout(c).exit_file, options)
    }
}

impl LogReader {
    /// Opens the log at `path`; with [`LogOptions::follow`] it is followed
    /// until `exit_file` (conmon's exit file for the container) exists and
    /// the log is drained.
    ///
    /// # Errors
    ///
    /// I/O errors opening the log or watching its directories.
    pub fn open(path: &Path, exit_file: &Path, options: LogOptions) -> Result<Self, RuntimeError> {
        // Watched before the first read: nothing written in between is
        // missed.
        let changes = if options.follow {
            let dirs: Vec<&Path> = [path.parent(), exit_file.parent()]
                .into_iter()
                .flatten()
                .filter(|d| !d.as_os_str().is_empty())
                .collect();
            Some(
                DirChanges::new(&dirs)
                    .map_err(|e| crate::errors::from_probe("following a log", e))?,
            )
        } else {
            None
        };
        let (file, inode) = open_log(path)?;
        let mut reader = Self {
            path: path.to_path_buf(),
            exit_file: exit_file.to_path_buf(),
            options,
            file,
            inode,
            unfinished: Vec::new(),
            partial: [None, None],
            ready: VecDeque::new(),
            changes,
            done: false,
        };
        reader.drain()?;
        if let Some(n) = reader.options.tail {
            let skip = reader.ready.len().saturating_sub(n);
            reader.ready.drain(..skip);
        }
        Ok(reader)
    }

    /// The next line, or `None` at the end: the end of the file without
    /// `follow`; with it, once the container has exited and every line
    /// was read.
    ///
    /// # Errors
    ///
    /// I/O errors reading the log or waiting for changes.
    pub async fn next_line(&mut self) -> Result<Option<LogLine>, RuntimeError> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Ok(Some(line));
            }
            if self.done {
                return Ok(None);
            }
            // The exit file is looked at before the last read: whatever
            // conmon logged before writing it is read below.
            let exited = self.exit_file.exists();
            self.drain()?;
            if self.follow_rotation()? {
                continue;
            }
            if !self.ready.is_empty() {
                continue;
            }
            let Some(changes) = &self.changes else {
                self.done = true;
                continue;
            };
            if exited {
                self.done = true;
                continue;
            }
            changes
                .changed()
                .await
                .map_err(|e| crate::errors::from_probe("following a log", e))?;
        }
    }

    /// Reads the open file to its end, turning whole records into lines.
    /// Reads what the log holds beyond the last read, a chunk at a time,
    /// and parses its complete lines. A line longer than
    /// [`MAX_LOG_LINE`] without its end (conmon never writes one: it
    /// splits long lines into partial records) is dropped with a warning,
    /// so that a hostile file cannot grow the reader without bound.
    fn drain(&mut self) -> Result<(), RuntimeError> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match self.file.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(RuntimeError::io(
                        format!("reading log {}", self.path.display()),
                        e,
                    ))
                }
            };
            self.unfinished.extend_from_slice(&chunk[..n]);
            if let Some(end) = self.unfinished.iter().rposition(|b| *b == b'\n') {
                let complete: Vec<u8> = self.unfinished.drain(..=end).collect();
                for line in String::from_utf8_lossy(&complete).lines() {
                    self.push_record(line);
                }
            }
            if self.unfinished.len() > MAX_LOG_LINE {
                tracing::warn!(
                    log = %self.path.display(),
                    bytes = self.unfinished.len(),
                    "dropping a log line longer than the limit"
                );
                self.unfinished.clear();
            }
        }
    }

    /// When conmon replaced the log (rotation), the old file was read to
    /// its end by the last `drain`: the new one is opened from its start.
    fn follow_rotation(&mut self) -> Result<bool, RuntimeError> {
        if self.changes.is_none() {
            return Ok(false);
        }
        match std::fs::metadata(&self.path) {
            Ok(meta) if meta.ino() != self.inode => {
                let (file, inode) = open_log(&self.path)?;
                self.file = file;
                self.inode = inode;
                self.unfinished.clear();
                self.drain()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn push_record(&mut self, line: &str) {
        let Some(record) = parse_k8s_log_line(line) else {
            return;
        };
        let slot = match record.stream {
            LogStream::Stdout => 0,
            LogStream::Stderr => 1,
        };
        let time = parse_rfc3339(&record.timestamp).unwrap_or(UNIX_EPOCH);
        let (time, timestamp, mut text) =
            self.partial[slot]
                .take()
                .unwrap_or((time, record.timestamp.clone(), String::new()));
        text.push_str(&record.text);
        if !record.full_line {
            self.partial[slot] = Some((time, timestamp, text));
            return;
        }
        let wanted = match record.stream {
            LogStream::Stdout => self.options.stdout,
            LogStream::Stderr => self.options.stderr,
        };
        let after_since = !matches!(self.options.since, Some(since) if time < since);
        let before_until = !matches!(self.options.until, Some(until) if time > until);
        if wanted && after_since && before_until {
            self.ready.push_back(LogLine {
                time,
                timestamp,
                stream: record.stream,
                text,
            });
        }
    }
}

/// The longest log line kept while its end is awaited.
pub const MAX_LOG_LINE: usize = 1024 * 1024;

/// Opens the log without following a symlink and without blocking on a
/// FIFO; anything but a regular file is refused.
fn open_log(path: &Path) -> Result<(File, u64), RuntimeError> {
    let context = || format!("opening log {}", path.display());
    let mut file = crate::logs::k8s_file::open_log_file(path)?;
    let inode = file
        .metadata()
        .map_err(|e| RuntimeError::io(context(), e))?
        .ino();
    file.seek(SeekFrom::Start(0))
        .map_err(|e| RuntimeError::io(context(), e))?;
    Ok((file, inode))
}

/// Parses conmon's RFC 3339 timestamps (`2026-11-28T21:45:04.104931170+00:00`,
/// also `Z` and fewer fraction digits).
///
/// ```
/// use conmon_driver::parse_rfc3339;
/// use std::time::{Duration, UNIX_EPOCH};
/// assert_eq!(
///     parse_rfc3339("1970-01-02T01:00:00.5+01:00"),
///     Some(UNIX_EPOCH + Duration::from_millis(86_400_000 + 500))
/// );
/// assert_eq!(parse_rfc3339("yesterday"), None);
/// ```
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let (date, rest) = text.split_once('T')?;
    let mut ymd = date.splitn(3, '-');
    let year: i64 = ymd.next()?.parse().ok()?;
    let month: u32 = ymd.next()?.parse().ok()?;
    let day: u32 = ymd.next()?.parse().ok()?;
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = rest.split_at(zone_at);
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, fraction)) => (hms, fraction),
        None => (clock, ""),
    };
    let mut parts = hms.splitn(3, ':');
    let hour: i64 = parts.next()?.parse().ok()?;
    let minute: i64 = parts.next()?.parse().ok()?;
    let second: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = format!("{fraction:0<9}").parse().ok()?;
    let offset_secs: i64 = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':')?;
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::k8s_file::read_k8s_log;

    fn write(path: &Path, text: &str) {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    fn record(second: u32, stream: &str, tag: &str, text: &str) -> String {
        format!("2026-11-28T21:45:{second:02}.000000000+00:00 {stream} {tag} {text}\n")
    }

    async fn all(reader: &mut LogReader) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().await.unwrap() {
            lines.push(line.text);
        }
        lines
    }

    #[tokio::test]
    async fn symlinks_and_fifos_are_refused_and_an_endless_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let exit = dir.path().join("exit");
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        assert!(LogReader::open(&link, &exit, LogOptions::default()).is_err());
        assert!(read_k8s_log(&link).is_err());
        let fifo = dir.path().join("fifo.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(LogReader::open(&fifo, &exit, LogOptions::default()).is_err());
        assert!(read_k8s_log(&fifo).is_err());

        let log = dir.path().join("ctr.log");
        write(&log, &record(1, "stdout", "F", "before"));
        write(&log, &"x".repeat(MAX_LOG_LINE + 10));
        write(&log, "\n");
        write(&log, &record(2, "stdout", "F", "after"));
        let mut reader = LogReader::open(&log, &exit, LogOptions::default()).unwrap();
        let lines = all(&mut reader).await;
        assert_eq!(lines.first().map(String::as_str), Some("before"));
        assert_eq!(lines.last().map(String::as_str), Some("after"));
        assert!(
            lines.iter().all(|l| l.len() < MAX_LOG_LINE),
            "the endless line was kept"
        );
    }

    #[tokio::test]
    async fn tail_three_of_ten_lines_gives_the_last_three() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ctr.log");
        for i in 0..10 {
            write(&log, &record(i, "stdout", "F", &format!("line {i}")));
        }
        let options = LogOptions::default().tail(3);
        let mut reader = LogReader::open(&log, &dir.path().join("exit"), options).unwrap();
        assert_eq!(all(&mut reader).await, ["line 7", "line 8", "line 9"]);
    }

    #[tokio::test]
    async fn streams_since_until_and_partials() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ctr.log");
        write(&log, &record(1, "stdout", "P", "hel"));
        write(&log, &record(2, "stderr", "F", "oops"));
        write(&log, &record(3, "stdout", "F", "lo"));
        write(&log, &record(5, "stdout", "F", "late"));
        let exit = dir.path().join("exit");
        let mut reader = LogReader::open(&log, &exit, LogOptions::default()).unwrap();
        let first = reader.next_line().await.unwrap().unwrap();
        assert_eq!(
            (first.stream, first.text.as_str()),
            (LogStream::Stderr, "oops")
        );
        let joined = reader.next_line().await.unwrap().unwrap();
        assert_eq!(joined.text, "hello");
        assert_eq!(joined.time, parse_rfc3339("2026-11-28T21:45:01Z").unwrap());
        assert_eq!(
            joined.render(true),
            "2026-11-28T21:45:01.000000000+00:00 hello\n"
        );

        let options = LogOptions::default().streams(true, false).between(
            parse_rfc3339("2026-11-28T21:45:02Z"),
            parse_rfc3339("2026-11-28T21:45:04Z"),
        );
        let mut reader = LogReader::open(&log, &exit, options).unwrap();
        // "hello" began at second 1, before `since`.
        assert_eq!(all(&mut reader).await, Vec::<String>::new());
        let options = LogOptions::default()
            .streams(true, false)
            .between(None, parse_rfc3339("2026-11-28T21:45:04Z"));
        let mut reader = LogReader::open(&log, &exit, options).unwrap();
        assert_eq!(all(&mut reader).await, ["hello"]);
    }

    #[tokio::test]
    async fn follow_sees_later_lines_and_a_rotation_and_ends_after_exit() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ctr.log");
        let exits = dir.path().join("exits");
        std::fs::create_dir(&exits).unwrap();
        let exit = exits.join("c1");
        write(&log, &record(0, "stdout", "F", "before"));
        let options = LogOptions::default().follow();
        let mut reader = LogReader::open(&log, &exit, options).unwrap();
        assert_eq!(reader.next_line().await.unwrap().unwrap().text, "before");

        let writer = {
            let log = log.clone();
            let exit = exit.clone();
            async move {
                write(&log, &record(1, "stdout", "F", "after"));
                // Rotation as conmon does it: a fresh file renamed over.
                write(&log, &record(2, "stdout", "F", "last of the old file"));
                let fresh = log.with_extension("tmp");
                write(&fresh, &record(3, "stdout", "F", "first of the new file"));
                std::fs::rename(&fresh, &log).unwrap();
                std::fs::write(&exit, "0").unwrap();
            }
        };
        let (lines, ()) = tokio::join!(all(&mut reader), writer);
        assert_eq!(
            lines,
            ["after", "last of the old file", "first of the new file"]
        );
    }

    #[test]
    fn timestamps_parse() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert_eq!(
            parse_rfc3339("2026-11-28T21:45:04.104931170+00:00"),
            Some(UNIX_EPOCH + Duration::new(1_795_902_304, 104_931_170))
        );
        assert_eq!(
            parse_rfc3339("2000-03-01T00:00:00-02:00"),
            Some(UNIX_EPOCH + Duration::from_secs(951_868_800 + 7200))
        );
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
    }
}
