//! Small executables that misbehave on purpose, for fault-injection tests.
//!
//! Every fake is a `#!/bin/sh` script written with mode `0755` into a
//! directory the caller owns (usually a [`tempfile::TempDir`]). Strings are
//! embedded in the scripts with single-quote shell quoting, so messages and
//! paths may contain any byte except NUL.
//!
//! - [`fake_runtime`] imitates an OCI runtime (runc-like command line): it
//!   records every invocation's argv in `<dir>/calls.log`, one JSON array per
//!   line, then acts as its [`FakeRuntimeBehaviour`] says. Read the calls back
//!   with [`recorded_calls`].
//! - [`recording_runtime`] records every invocation the same way, then
//!   runs a real runtime with the same arguments: it counts what a driver
//!   asks of runc without changing the answers.
//! - [`fake_conmon`] imitates conmon's launch protocol, or the lack of it, as
//!   its [`FakeConmonBehaviour`] says.
//!
//! The scripts prepend the standard system directories to `PATH` so they
//! work under the empty environment conmon is started with.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::TestkitError;
use crate::executable::{write_executable, Contents};

/// Name of the file, inside the fake runtime's directory, that records calls.
pub const CALLS_LOG: &str = "calls.log";

/// Name of the script written by [`fake_conmon`].
pub const FAKE_CONMON_NAME: &str = "conmon";

/// How long the hanging fakes sleep, in seconds.
const SLEEP_SECONDS: u32 = 100_000;

/// The first line after the shebang of every script.
const PATH_LINE: &[u8] = b"PATH=/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}\n";

/// What a fake runtime does when invoked with any subcommand, after recording
/// its argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeRuntimeBehaviour {
    /// Exit 0 printing nothing, whatever the subcommand.
    Succeed,
    /// Print `message` followed by a newline to stderr and exit `code`.
    Fail {
        /// Text written to stderr.
        message: String,
        /// Exit status (taken modulo 256 by the system).
        code: i32,
    },
    /// Exit `code` with empty stdout and stderr.
    FailSilently {
        /// Exit status (taken modulo 256 by the system).
        code: i32,
    },
    /// Append the JSON line `{"level":"error","msg":MSG,"time":"..."}` to the
    /// file named by the first `--log PATH` or `--log=PATH` argument (runc
    /// style; `-log` is accepted too), then exit 1 with empty stderr. Without
    /// a `--log` argument nothing is written.
    OciLogError {
        /// The error message recorded in the log line.
        msg: String,
    },
    /// Sleep forever (`exec sleep 100000`): the process to kill is the one
    /// that was started.
    Hang,
}

/// What a fake conmon does when started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeConmonBehaviour {
    /// Print `message` followed by a newline to stderr and exit `code`
    /// immediately (conmon rejecting its arguments).
    ExitWith {
        /// Exit status (taken modulo 256 by the system).
        code: i32,
        /// Text written to stderr.
        message: String,
    },
    /// Behave like conmon's parent process: read one byte (or EOF) from the
    /// start pipe (fd in `$_OCI_STARTPIPE`), start a background child that
    /// keeps the inherited sync pipe open (a fork of the script blocked in
    /// the shell, keeping the script's command line as conmon's monitor
    /// keeps conmon's; stdio on `/dev/null`), write the child's pid without
    /// a newline to the path
    /// following `--conmon-pidfile` (or given as `--conmon-pidfile=PATH`),
    /// and exit 0. No sync record is ever written: the driver must time out
    /// and kill the child.
    ///
    /// The pipe fds must be single digits (0 to 9), a limit of `/bin/sh`
    /// (dash); otherwise the script exits 125 with a message on stderr.
    NeverReports,
    /// Like [`FakeConmonBehaviour::NeverReports`], but the background child
    /// first writes `raw` verbatim to the sync pipe (fd in `$_OCI_SYNCPIPE`),
    /// then blocks the same way. Strings up to a few kilobytes go out in a single write,
    /// hence as a single record on a `SOCK_SEQPACKET` pipe.
    WritesRaw {
        /// The bytes written to the sync pipe, e.g. `garbage{`.
        raw: String,
    },
    /// Like [`FakeConmonBehaviour::WritesRaw`], but the pidfile receives
    /// `pidfile` verbatim instead of the background child's pid (junk, or
    /// the pid of a process that is not a monitor at all).
    WritesRawWithPidfile {
        /// The bytes written to the sync pipe.
        raw: String,
        /// The pidfile's content.
        pidfile: String,
    },
    /// Kill itself with `SIGSEGV` at once, as a crashing conmon would.
    Crashes,
}

/// Writes a recording fake runtime to `<dir>/<name>` and returns its path.
///
/// Every invocation appends one line to `<dir>/calls.log` holding its argv
/// (without argv\[0\]) as a JSON array of strings, then behaves as told.
///
/// # Errors
///
/// [`TestkitError::Io`] when the directory's absolute path cannot be
/// determined or the script cannot be written.
pub fn fake_runtime(
    dir: &Path,
    name: &str,
    behaviour: FakeRuntimeBehaviour,
) -> Result<PathBuf, TestkitError> {
    write_fake_runtime(dir, name, behaviour, false)
}

/// Like [`fake_runtime`], for a runtime that knows no container: `state`
/// answers as runc does for an unknown id (`container does not exist` on
/// stderr, exit 1), so a driver's check before create passes; every other
/// subcommand behaves as `behaviour`.
///
/// # Errors
///
/// As [`fake_runtime`].
pub fn fake_runtime_without_containers(
    dir: &Path,
    name: &str,
    behaviour: FakeRuntimeBehaviour,
) -> Result<PathBuf, TestkitError> {
    write_fake_runtime(dir, name, behaviour, true)
}

fn write_fake_runtime(
    dir: &Path,
    name: &str,
    behaviour: FakeRuntimeBehaviour,
    state_says_gone: bool,
) -> Result<PathBuf, TestkitError> {
    let dir = absolute(dir)?;
    let mut script = header("fake OCI runtime: records its argv, then misbehaves on purpose");
    script.extend_from_slice(&recorder(&dir.join(CALLS_LOG)));
    if state_says_gone {
        script.extend_from_slice(
            b"for arg in \"$@\"; do\n  if [ \"$arg\" = state ]; then echo 'container does not exist' >&2; exit 1; fi\ndone\n",
        );
    }
    match behaviour {
        FakeRuntimeBehaviour::Succeed => script.extend_from_slice(b"exit 0\n"),
        FakeRuntimeBehaviour::Fail { message, code } => {
            script.extend_from_slice(&print_to_stderr(&message));
            script.extend_from_slice(format!("exit {}\n", exit_code(code)).as_bytes());
        }
        FakeRuntimeBehaviour::FailSilently { code } => {
            script.extend_from_slice(format!("exit {}\n", exit_code(code)).as_bytes());
        }
        FakeRuntimeBehaviour::OciLogError { msg } => {
            script.extend_from_slice(&oci_log_writer(&msg));
            script.extend_from_slice(b"exit 1\n");
        }
        FakeRuntimeBehaviour::Hang => {
            script.extend_from_slice(format!("exec sleep {SLEEP_SECONDS}\n").as_bytes());
        }
    }
    write_script(&dir.join(name), &script)
}

/// Writes `<dir>/<name>`, a runtime that records every invocation's argv
/// in `<dir>/calls.log` as [`fake_runtime`] does, then `exec`s `real` with
/// the same arguments (so the caller sees the real runtime's output, exit
/// status and pid). Read the calls back with [`recorded_calls`].
///
/// # Errors
///
/// [`TestkitError::Io`] when a path cannot be made absolute or the script
/// cannot be written.
pub fn recording_runtime(dir: &Path, name: &str, real: &Path) -> Result<PathBuf, TestkitError> {
    let dir = absolute(dir)?;
    let real = absolute(real)?;
    let mut script = header("recording OCI runtime: records its argv, then runs the real one");
    script.extend_from_slice(&recorder(&dir.join(CALLS_LOG)));
    script.extend_from_slice(b"exec ");
    script.extend_from_slice(&shell_quote(real.as_os_str().as_bytes()));
    script.extend_from_slice(b" \"$@\"\n");
    write_script(&dir.join(name), &script)
}

/// Reads back the calls recorded by a [`fake_runtime`] in `dir`: one argv
/// per call, in order, argv\[0\] excluded. No recorded call (or no log file
/// at all) gives an empty vector.
///
/// # Errors
///
/// [`TestkitError::Io`] when the log exists but cannot be read, and
/// [`TestkitError::Json`] when a line is not a JSON array of strings.
pub fn recorded_calls(dir: &Path) -> Result<Vec<Vec<String>>, TestkitError> {
    let path = dir.join(CALLS_LOG);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(TestkitError::Io {
                context: format!("reading {}", path.display()),
                source: err,
            })
        }
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|source| TestkitError::Json {
                context: format!("parsing line {} of {}: {line:?}", index + 1, path.display()),
                source,
            })
        })
        .collect()
}

/// Writes a fake conmon to `<dir>/conmon` and returns its path.
///
/// # Errors
///
/// [`TestkitError::Io`] when the directory's absolute path cannot be
/// determined or the script cannot be written.
pub fn fake_conmon(dir: &Path, behaviour: FakeConmonBehaviour) -> Result<PathBuf, TestkitError> {
    let dir = absolute(dir)?;
    let mut script = header("fake conmon: misbehaves on purpose");
    match behaviour {
        FakeConmonBehaviour::ExitWith { code, message } => {
            script.extend_from_slice(&print_to_stderr(&message));
            script.extend_from_slice(format!("exit {}\n", exit_code(code)).as_bytes());
        }
        FakeConmonBehaviour::NeverReports => {
            script.extend_from_slice(&conmon_parent(None, None));
        }
        FakeConmonBehaviour::WritesRaw { raw } => {
            script.extend_from_slice(&conmon_parent(Some(&raw), None));
        }
        FakeConmonBehaviour::WritesRawWithPidfile { raw, pidfile } => {
            script.extend_from_slice(&conmon_parent(Some(&raw), Some(&pidfile)));
        }
        FakeConmonBehaviour::Crashes => script.extend_from_slice(b"kill -SEGV $$\n"),
    }
    write_script(&dir.join(FAKE_CONMON_NAME), &script)
}

/// Writes `<dir>/<name>`, a `#!/bin/sh` script running `body` with the
/// standard system directories on `PATH`, for a misbehaviour the ready-made
/// fakes do not cover (a wrapper around a real runtime that hangs on one
/// subcommand, say). Use [`shell_quote`] for embedded strings.
///
/// # Errors
///
/// [`TestkitError::Io`] when the directory's absolute path cannot be
/// determined or the script cannot be written.
pub fn fake_script(dir: &Path, name: &str, body: &str) -> Result<PathBuf, TestkitError> {
    let dir = absolute(dir)?;
    let mut script = header("fake program: misbehaves on purpose");
    script.extend_from_slice(body.as_bytes());
    if !body.ends_with('\n') {
        script.push(b'\n');
    }
    write_script(&dir.join(name), &script)
}

/// Quotes `bytes` for the shell: wrapped in single quotes, each embedded
/// single quote written as `'\''`.
pub fn shell_quote(bytes: &[u8]) -> Vec<u8> {
    let mut quoted = Vec::with_capacity(bytes.len() + 2);
    quoted.push(b'\'');
    for &byte in bytes {
        if byte == b'\'' {
            quoted.extend_from_slice(b"'\\''");
        } else {
            quoted.push(byte);
        }
    }
    quoted.push(b'\'');
    quoted
}

fn header(what: &str) -> Vec<u8> {
    let mut script = format!("#!/bin/sh\n# testkit {what}.\n").into_bytes();
    script.extend_from_slice(PATH_LINE);
    script
}

/// Keeps the exit status in the range the shell's `exit` accepts.
fn exit_code(code: i32) -> i32 {
    code.rem_euclid(256)
}

fn print_to_stderr(message: &str) -> Vec<u8> {
    let mut line = b"printf '%s\\n' ".to_vec();
    line.extend_from_slice(&shell_quote(message.as_bytes()));
    line.extend_from_slice(b" >&2\n");
    line
}

/// The script part that appends argv as one JSON array line to `calls_log`.
///
/// Each argument goes through `sed`, which escapes backslashes, double
/// quotes and control characters and joins its lines with `\n`.
fn recorder(calls_log: &Path) -> Vec<u8> {
    let mut sed = b"sed -e 's/\\\\/\\\\\\\\/g' -e 's/\"/\\\\\"/g'".to_vec();
    for byte in (1u8..0x20).filter(|&b| b != b'\n') {
        let replacement = match byte {
            b'\t' => "\\\\t".to_string(),
            b'\r' => "\\\\r".to_string(),
            other => format!("\\\\u{other:04x}"),
        };
        sed.extend_from_slice(b" -e 's/");
        sed.push(byte);
        sed.extend_from_slice(format!("/{replacement}/g'").as_bytes());
    }
    sed.extend_from_slice(b" -e '$!s/$/\\\\n/'");

    let mut part = b"calls_log=".to_vec();
    part.extend_from_slice(&shell_quote(calls_log.as_os_str().as_bytes()));
    part.extend_from_slice(b"\njson_escape() {\n\tprintf '%s\\n' \"$1\" | ");
    part.extend_from_slice(&sed);
    part.extend_from_slice(
        b" | tr -d '\\n'\n}\n\
line='['\n\
sep=''\n\
for arg in \"$@\"; do\n\
\tline=\"$line$sep\\\"$(json_escape \"$arg\")\\\"\"\n\
\tsep=','\n\
done\n\
printf '%s]\\n' \"$line\" >> \"$calls_log\"\n",
    );
    part
}

/// The script part that appends a runc-style JSON error line to the file
/// named by `--log`.
fn oci_log_writer(msg: &str) -> Vec<u8> {
    let json_msg = serde_json::Value::String(msg.to_string()).to_string();
    let mut part = b"log_path=''\n\
prev=''\n\
for arg in \"$@\"; do\n\
\tif [ -z \"$log_path\" ]; then\n\
\t\tcase \"$prev\" in\n\
\t\t--log|-log) log_path=$arg ;;\n\
\t\t*) case \"$arg\" in --log=*|-log=*) log_path=${arg#*=} ;; esac ;;\n\
\t\tesac\n\
\tfi\n\
\tprev=$arg\n\
done\n\
if [ -n \"$log_path\" ]; then\n\
\tprintf '{\"level\":\"error\",\"msg\":%s,\"time\":\"%s\"}\\n' "
        .to_vec();
    part.extend_from_slice(&shell_quote(json_msg.as_bytes()));
    part.extend_from_slice(
        b" \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" >> \"$log_path\"\n\
fi\n",
    );
    part
}

/// What the fake's background child does, like conmon's monitor: stays a
/// fork of the script (so its command line is the fake conmon's, `-u`
/// value included, which is how drivers recognise a monitor) and blocks in
/// the shell itself, opening a FIFO nobody writes (in the fake's own
/// directory, removed with it), while it holds the inherited sync pipe.
const BLOCK_FOREVER: &str = "block=\"$(dirname \"$0\")/block-$$-$(date +%s%N)\" && mkfifo \"$block\" && read -r _ < \"$block\"";

/// The script body of a fake conmon parent that never reports; with `raw`,
/// its background child writes those bytes to the sync pipe first; with
/// `pidfile`, that text goes to the pidfile instead of the child's pid.
fn conmon_parent(raw: Option<&str>, pidfile: Option<&str>) -> Vec<u8> {
    let mut part = b"check_fd() {\n\
\tcase \"$2\" in\n\
\t''|[0-9]) ;;\n\
\t*) printf '%s\\n' \"fake conmon: $1=$2 is not a single-digit fd\" >&2; exit 125 ;;\n\
\tesac\n\
}\n\
check_fd _OCI_STARTPIPE \"${_OCI_STARTPIPE-}\"\n\
check_fd _OCI_SYNCPIPE \"${_OCI_SYNCPIPE-}\"\n\
pidfile=''\n\
prev=''\n\
for arg in \"$@\"; do\n\
\tcase \"$prev\" in\n\
\t--conmon-pidfile) pidfile=$arg ;;\n\
\t*) case \"$arg\" in --conmon-pidfile=*) pidfile=${arg#*=} ;; esac ;;\n\
\tesac\n\
\tprev=$arg\n\
done\n\
if [ -n \"${_OCI_STARTPIPE-}\" ]; then\n\
\tdd bs=1 count=1 <&\"$_OCI_STARTPIPE\" >/dev/null 2>&1\n\
fi\n"
        .to_vec();
    match raw {
        None => part.extend_from_slice(
            format!(
                "(\n\
\t{BLOCK_FOREVER}\n\
) </dev/null >/dev/null 2>&1 &\n"
            )
            .as_bytes(),
        ),
        Some(raw) => {
            part.extend_from_slice(b"raw=");
            part.extend_from_slice(&shell_quote(raw.as_bytes()));
            part.extend_from_slice(
                format!(
                    "\n(\n\
\tif [ -n \"${{_OCI_SYNCPIPE-}}\" ]; then\n\
\t\tprintf '%s' \"$raw\" >&\"$_OCI_SYNCPIPE\"\n\
\tfi\n\
\t{BLOCK_FOREVER}\n\
) </dev/null >/dev/null 2>&1 &\n"
                )
                .as_bytes(),
            );
        }
    }
    part.extend_from_slice(b"child=$!\n");
    if let Some(content) = pidfile {
        part.extend_from_slice(b"child=");
        part.extend_from_slice(&shell_quote(content.as_bytes()));
        part.push(b'\n');
    }
    part.extend_from_slice(
        b"if [ -n \"$pidfile\" ]; then\n\
\tprintf '%s' \"$child\" > \"$pidfile\"\n\
fi\n\
exit 0\n",
    );
    part
}

fn absolute(dir: &Path) -> Result<PathBuf, TestkitError> {
    std::path::absolute(dir).map_err(TestkitError::io(format!(
        "making {} absolute",
        dir.display()
    )))
}

/// Writes `script` to `path` (replacing any previous file) with mode 0755.
fn write_script(path: &Path, script: &[u8]) -> Result<PathBuf, TestkitError> {
    write_executable(path, Contents::Bytes(script), 0o755)?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_escapes_single_quotes() {
        assert_eq!(shell_quote(b"abc"), b"'abc'");
        assert_eq!(shell_quote(b"it's"), b"'it'\\''s'");
        assert_eq!(shell_quote(b""), b"''");
    }

    #[test]
    fn exit_codes_wrap_like_the_kernel() {
        assert_eq!(exit_code(3), 3);
        assert_eq!(exit_code(256), 0);
        assert_eq!(exit_code(-1), 255);
    }

    #[test]
    fn recorder_quotes_the_log_path() {
        let part = recorder(Path::new("/tmp/it's here/calls.log"));
        let text = String::from_utf8_lossy(&part);
        assert!(text.starts_with("calls_log='/tmp/it'\\''s here/calls.log'\n"));
    }

    #[test]
    fn never_reports_script_reads_start_pipe_and_writes_pidfile() {
        let text = String::from_utf8(conmon_parent(None, None)).expect("script is text");
        assert!(text.contains("dd bs=1 count=1 <&\"$_OCI_STARTPIPE\""));
        assert!(text.contains("--conmon-pidfile) pidfile=$arg"));
        assert!(text.contains("printf '%s' \"$child\" > \"$pidfile\""));
        assert!(!text.contains("_OCI_SYNCPIPE\"\n\t\tprintf"));
    }
}
