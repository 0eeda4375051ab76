//! Tests of conmon's persist directory files.

use state_probe::{oom_killed, read_persisted_exit, ProbeError};

#[test]
fn oom_file_present_or_absent() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(!oom_killed(dir.path()));
    std::fs::write(dir.path().join("oom"), "").expect("write oom");
    assert!(oom_killed(dir.path()));
    assert!(!oom_killed(&dir.path().join("missing")));
}

#[test]
fn persisted_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(read_persisted_exit(dir.path()).expect("absent"), None);
    std::fs::write(dir.path().join("exit"), "137").expect("write exit");
    let record = read_persisted_exit(dir.path())
        .expect("valid")
        .expect("present");
    assert_eq!(record.code, 137);
    std::fs::write(dir.path().join("exit"), "x").expect("write exit");
    assert!(matches!(
        read_persisted_exit(dir.path()),
        Err(ProbeError::InvalidExitFile { .. })
    ));
}
