//! `read_oci_error` against real files.

use std::io::Write;
use std::path::Path;

use sync_pipe::{read_oci_error, OciErrorKind, OciLogEntry, SyncPipeError, MAX_OCI_LOG_READ};

fn log_file(contents: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(contents).unwrap();
    file.flush().unwrap();
    file
}

fn entry(level: &str, msg: &str) -> Option<OciLogEntry> {
    Some(OciLogEntry {
        level: level.to_owned(),
        msg: msg.to_owned(),
    })
}

#[test]
fn last_error_of_several_lines() {
    let file = log_file(
        br#"{"level":"info","msg":"starting","time":"2026-01-01T00:00:00Z"}
{"level":"error","msg":"first failure","time":"2026-01-01T00:00:01Z"}
{"level":"warning","msg":"careful","time":"2026-01-01T00:00:02Z"}
{"level":"error","msg":"exec: \"nope\": executable file not found in $PATH","time":"2026-01-01T00:00:03Z"}
{"level":"info","msg":"done","time":"2026-01-01T00:00:04Z"}
"#,
    );
    let found = read_oci_error(file.path()).unwrap();
    assert_eq!(
        found,
        entry(
            "error",
            "exec: \"nope\": executable file not found in $PATH"
        )
    );
    assert_eq!(found.map(|e| e.kind()), Some(OciErrorKind::CommandNotFound));
}

#[test]
fn non_json_lines_are_skipped() {
    let file = log_file(
        b"runc: plain text noise\n\
          {\"level\":\"fatal\",\"msg\":\"mount: permission denied\"}\n\
          \n\
          {\"level\":\"error\",\"msg\":\n\
          not json at all {\n\
          [1,2,3]\n\
          {\"level\":5,\"msg\":\"bad level\"}\n\
          \xff\xfe\n",
    );
    let found = read_oci_error(file.path()).unwrap();
    assert_eq!(found, entry("fatal", "mount: permission denied"));
    assert_eq!(
        found.map(|e| e.kind()),
        Some(OciErrorKind::PermissionDenied)
    );
}

#[test]
fn levels_are_matched_in_any_case_and_panic_counts() {
    let file =
        log_file(b"{\"level\":\"ERROR\",\"msg\":\"a\"}\n{\"level\":\"panic\",\"msg\":\"b\"}");
    assert_eq!(read_oci_error(file.path()).unwrap(), entry("panic", "b"));
}

#[test]
fn no_error_entries() {
    let file = log_file(
        b"{\"level\":\"info\",\"msg\":\"all good\"}\n{\"level\":\"debug\",\"msg\":\"x\"}\n",
    );
    assert_eq!(read_oci_error(file.path()).unwrap(), None);
    let empty = log_file(b"");
    assert_eq!(read_oci_error(empty.path()).unwrap(), None);
}

#[test]
fn missing_file_is_none() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read_oci_error(&dir.path().join("oci-log")).unwrap(), None);
}

#[test]
fn unreadable_path_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    match read_oci_error(dir.path()) {
        Err(SyncPipeError::OciLog { path, .. }) => assert_eq!(path, dir.path()),
        other => panic!("expected OciLog error, got {other:?}"),
    }
}

/// `len` bytes of info lines.
fn filler(len: usize) -> Vec<u8> {
    let line = b"{\"level\":\"info\",\"msg\":\"filler\"}\n";
    let mut out = Vec::with_capacity(len);
    while out.len() + line.len() <= len {
        out.extend_from_slice(line);
    }
    // Pad the remainder with a non-JSON line of the exact size.
    let rest = len - out.len();
    if rest > 0 {
        out.resize(len - 1, b'#');
        out.push(b'\n');
    }
    assert_eq!(out.len(), len);
    out
}

#[test]
fn only_the_last_mebibyte_is_read() {
    let window = usize::try_from(MAX_OCI_LOG_READ).unwrap();
    let mut contents = b"{\"level\":\"error\",\"msg\":\"too old\"}\n".to_vec();
    contents.extend(filler(window + 100));
    let file = log_file(&contents);
    assert_eq!(read_oci_error(file.path()).unwrap(), None);

    contents.extend_from_slice(b"{\"level\":\"error\",\"msg\":\"recent\"}\n");
    let file = log_file(&contents);
    assert_eq!(
        read_oci_error(file.path()).unwrap(),
        entry("error", "recent")
    );
}

#[test]
fn a_line_starting_at_the_window_edge_is_whole() {
    let window = usize::try_from(MAX_OCI_LOG_READ).unwrap();
    let edge = b"{\"level\":\"error\",\"msg\":\"edge\"}\n";
    let mut contents = filler(5000);
    contents.extend_from_slice(edge);
    contents.extend(filler(window - edge.len()));
    let file = log_file(&contents);
    assert_eq!(read_oci_error(file.path()).unwrap(), entry("error", "edge"));
}

#[test]
fn a_line_cut_by_the_window_is_skipped() {
    let window = usize::try_from(MAX_OCI_LOG_READ).unwrap();
    // The window starts one byte into this line; its tail happens to be
    // valid JSON, which must not be mistaken for an entry.
    let cut = b"x{\"level\":\"error\",\"msg\":\"tail\"}\n";
    let mut contents = filler(5000);
    contents.extend_from_slice(cut);
    contents.extend(filler(window - (cut.len() - 1)));
    let file = log_file(&contents);
    assert_eq!(read_oci_error(Path::new(file.path())).unwrap(), None);
}

#[test]
fn a_log_replaced_by_a_symlink_or_a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::write(&real, "{\"level\":\"error\",\"msg\":\"x\"}\n").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    assert!(matches!(
        read_oci_error(&link),
        Err(SyncPipeError::OciLog { .. })
    ));
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    assert!(matches!(
        read_oci_error(&fifo),
        Err(SyncPipeError::OciLog { .. })
    ));
    assert!(read_oci_error(&real).unwrap().is_some());
}
