//! Writing executable files that can be run the moment they are written.
//!
//! Writing a program through a file descriptor of this process and executing
//! it right away races with other threads that spawn processes: a child
//! forked at the wrong moment briefly holds a copy of the writable
//! descriptor, and `execve` of the new file then fails with `ETXTBSY` ("Text
//! file busy"). Test harnesses run tests on many threads, so the race is
//! real. The files are therefore written by a short-lived `cat` child: the
//! writable descriptor never exists in this process, so no other thread can
//! leak it.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::TestkitError;

/// The program used to write files out of process.
const SHELL: &str = "/bin/sh";

/// Where the data written by [`write_executable`] comes from.
pub(crate) enum Contents<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// A copy of this file.
    CopyOf(&'a Path),
}

/// Creates (or replaces) `path` with `contents` and mode `mode`, without ever
/// holding a writable descriptor to it in this process.
pub(crate) fn write_executable(
    path: &Path,
    contents: Contents<'_>,
    mode: u32,
) -> Result<(), TestkitError> {
    let context = format!("writing executable {}", path.display());
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(TestkitError::Io {
                context,
                source: err,
            })
        }
    }
    let stdin = match contents {
        Contents::Bytes(_) => Stdio::piped(),
        Contents::CopyOf(source) => File::open(source)
            .map_err(TestkitError::io(format!("opening {}", source.display())))?
            .into(),
    };
    let mut child = Command::new(SHELL)
        .args(["-c", "cat > \"$1\"", "sh"])
        .arg(path)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(TestkitError::io(format!("{context}: starting {SHELL}")))?;
    if let (Contents::Bytes(bytes), Some(mut pipe)) = (contents, child.stdin.take()) {
        // A write error surfaces below as cat's failure; waiting comes first
        // so that the child is always reaped.
        let written = pipe.write_all(bytes);
        drop(pipe);
        let output = child
            .wait_with_output()
            .map_err(TestkitError::io(context.clone()))?;
        check(&context, &output)?;
        written.map_err(TestkitError::io(context.clone()))?;
    } else {
        let output = child
            .wait_with_output()
            .map_err(TestkitError::io(context.clone()))?;
        check(&context, &output)?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(TestkitError::io(context))
}

fn check(context: &str, output: &std::process::Output) -> Result<(), TestkitError> {
    if output.status.success() {
        return Ok(());
    }
    Err(TestkitError::Io {
        context: context.to_string(),
        source: std::io::Error::other(format!(
            "cat exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_bytes_and_copies_files_with_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        write_executable(&first, Contents::Bytes(b"#!/bin/sh\nexit 0\n"), 0o755).unwrap();
        assert_eq!(fs::read(&first).unwrap(), b"#!/bin/sh\nexit 0\n");
        let mode = fs::metadata(&first).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755);

        let second = dir.path().join("second");
        write_executable(&second, Contents::CopyOf(&first), 0o700).unwrap();
        assert_eq!(fs::read(&second).unwrap(), b"#!/bin/sh\nexit 0\n");

        write_executable(&second, Contents::Bytes(b"new"), 0o755).unwrap();
        assert_eq!(fs::read(&second).unwrap(), b"new");
    }

    #[test]
    fn reports_an_unwritable_destination() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir/file");
        let err = write_executable(&path, Contents::Bytes(b"x"), 0o755).unwrap_err();
        assert!(err.to_string().contains("missing-dir"), "{err}");
    }
}
