//! Tests of parsing and interpreting `RUNTIME state ID`.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;

use proptest::prelude::*;
use state_probe::{
    interpret_state_output, parse_state, CapturedOutput, ProbeError, RuntimeState, RuntimeStatus,
    StateProbe,
};

fn runc_output(status: &str, pid: i32) -> String {
    format!(
        r#"{{
  "ociVersion": "1.0.2-dev",
  "id": "abc",
  "pid": {pid},
  "status": "{status}",
  "bundle": "/run/containers/abc/userdata",
  "rootfs": "/var/lib/containers/abc/merged",
  "created": "2026-11-28T21:45:04.104931170Z",
  "annotations": {{"io.podman.annotations.autoremove": "FALSE"}},
  "owner": ""
}}"#
    )
}

#[test]
fn runc_output_for_each_status() {
    let table = [
        ("created", 4242, RuntimeStatus::Created),
        ("running", 4242, RuntimeStatus::Running),
        ("paused", 4242, RuntimeStatus::Paused),
        ("stopped", 0, RuntimeStatus::Stopped),
    ];
    for (word, pid, status) in table {
        let state = parse_state(runc_output(word, pid).as_bytes()).expect(word);
        assert_eq!(
            state,
            RuntimeState {
                id: "abc".into(),
                pid,
                status,
                bundle: Some(PathBuf::from("/run/containers/abc/userdata")),
            }
        );
    }
}

#[test]
fn an_unknown_status_is_named() {
    match parse_state(runc_output("weird", 1).as_bytes()) {
        Err(ProbeError::UnknownStatus { status }) => assert_eq!(status, "weird"),
        other => panic!("expected UnknownStatus, got {other:?}"),
    }
}

#[test]
fn garbage_is_invalid_state_quoting_the_start() {
    for garbage in [
        &b"container abc is running"[..],
        b"",
        b"[1,2,3]",
        b"{\"id\":\"abc\",\"status\":\"running\"",
        b"\xff\xfe",
        b"null",
    ] {
        match parse_state(garbage) {
            Err(ProbeError::InvalidState {
                first_bytes,
                reason,
            }) => {
                assert_eq!(first_bytes, String::from_utf8_lossy(garbage));
                assert!(!reason.is_empty());
            }
            other => panic!("expected InvalidState for {garbage:?}, got {other:?}"),
        }
    }
}

#[test]
fn missing_fields() {
    // id and status are required.
    for json in [
        r#"{"pid": 1, "status": "running"}"#,
        r#"{"id": "abc", "pid": 1}"#,
        r#"{"id": "abc", "pid": "1", "status": "running"}"#,
        r#"{"id": "abc", "pid": 4294967296, "status": "running"}"#,
    ] {
        assert!(
            matches!(
                parse_state(json.as_bytes()),
                Err(ProbeError::InvalidState { .. })
            ),
            "{json}"
        );
    }
    // pid defaults to 0, bundle to none; an empty bundle is none.
    let minimal = parse_state(br#"{"id": "abc", "status": "stopped"}"#).expect("minimal");
    assert_eq!(
        minimal,
        RuntimeState {
            id: "abc".into(),
            pid: 0,
            status: RuntimeStatus::Stopped,
            bundle: None,
        }
    );
    let empty_bundle =
        parse_state(br#"{"id": "abc", "pid": 7, "status": "running", "bundle": ""}"#)
            .expect("empty bundle");
    assert_eq!(empty_bundle.bundle, None);
}

fn captured(code: i32, stdout: &str, stderr: &str) -> CapturedOutput {
    CapturedOutput {
        status: ExitStatus::from_raw(code << 8),
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
    }
}

#[test]
fn interpret_success_parses_stdout() {
    let out = captured(0, &runc_output("running", 99), "");
    match interpret_state_output("abc", "runc state abc", &out) {
        Ok(StateProbe::Present(state)) => {
            assert_eq!(state.pid, 99);
            assert_eq!(state.status, RuntimeStatus::Running);
        }
        other => panic!("expected Present, got {other:?}"),
    }
}

#[test]
fn interpret_does_not_exist_as_gone() {
    for stderr in [
        "container \"abc\" does not exist\n",
        "time=\"2026-11-28T22:00:55Z\" level=error msg=\"container does not exist\"\n",
        "open /run/runc/abc/state.json: No such file or directory",
        "loading container: file does not exist",
        "error opening file `/run/crun/abc/status`: No such file or directory",
    ] {
        let out = captured(1, "", stderr);
        assert_eq!(
            interpret_state_output("abc", "runc state abc", &out).expect(stderr),
            StateProbe::Gone
        );
    }
}

#[test]
fn a_missing_file_that_is_not_the_container_is_an_error() {
    for stderr in [
        // The runtime itself cannot start.
        "runc: error while loading shared libraries: libseccomp.so.2: cannot open shared object file: No such file or directory",
        // Another container's files.
        "open /run/runc/abcd/state.json: No such file or directory",
        "open /run/runc/xabc/state.json: No such file or directory",
        // Something else that does not exist.
        "the state directory /run/runc does not exist",
    ] {
        let out = captured(1, "", stderr);
        assert!(
            matches!(
                interpret_state_output("abc", "runc state abc", &out),
                Err(ProbeError::CommandFailed { .. })
            ),
            "{stderr}"
        );
    }
}

#[test]
fn interpret_other_failures_as_command_failed() {
    let out = captured(2, "", "  permission denied\n");
    match interpret_state_output("abc", "runc state abc", &out) {
        Err(ProbeError::CommandFailed {
            command,
            status,
            stderr,
        }) => {
            assert_eq!(command, "runc state abc");
            assert_eq!(status, Some(2));
            assert_eq!(stderr, "permission denied");
        }
        other => panic!("expected CommandFailed, got {other:?}"),
    }
    let killed = CapturedOutput {
        status: ExitStatus::from_raw(9),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    assert!(matches!(
        interpret_state_output("abc", "runc state abc", &killed),
        Err(ProbeError::CommandFailed { status: None, .. })
    ));
}

#[test]
fn interpret_success_with_garbage_is_invalid_state() {
    let out = captured(0, "not json", "");
    assert!(matches!(
        interpret_state_output("abc", "runc state abc", &out),
        Err(ProbeError::InvalidState { .. })
    ));
}

proptest! {
    #[test]
    fn parse_state_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_state(&bytes);
    }

    #[test]
    fn parse_state_accepts_any_id_pid_and_known_status(
        id in ".*",
        pid in any::<i32>(),
        status in "created|running|paused|stopped|[a-z]{0,8}",
    ) {
        let json = serde_json::json!({"id": id, "pid": pid, "status": status}).to_string();
        match parse_state(json.as_bytes()) {
            Ok(state) => {
                prop_assert_eq!(state.id, id);
                prop_assert_eq!(state.pid, pid);
                prop_assert_eq!(state.status.as_str(), status.as_str());
            }
            Err(ProbeError::UnknownStatus { status: s }) => {
                prop_assert_eq!(s, status.clone());
                prop_assert!(!["created", "running", "paused", "stopped"].contains(&status.as_str()));
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}

proptest! {
    #[test]
    fn interpret_never_panics_and_failures_without_a_missing_word_are_errors(
        code in 1i32..255,
        stdout in proptest::collection::vec(any::<u8>(), 0..256),
        stderr in ".{0,200}",
        id in "[a-z0-9][a-z0-9_.-]{0,20}",
    ) {
        let out = CapturedOutput {
            status: ExitStatus::from_raw(code << 8),
            stdout,
            stderr: stderr.as_bytes().to_vec(),
        };
        let answer = interpret_state_output(&id, "rt state", &out);
        if !stderr.contains("does not exist") && !stderr.contains("No such file") {
            prop_assert!(matches!(answer, Err(ProbeError::CommandFailed { .. })), "{answer:?}");
        }
    }

    #[test]
    fn a_missing_file_is_gone_only_when_it_names_the_container(
        id in "[a-z0-9]{3,12}",
        other in "[a-z0-9]{3,12}",
    ) {
        prop_assume!(!other.contains(&id));
        let about = |name: &str| CapturedOutput {
            status: ExitStatus::from_raw(1 << 8),
            stdout: Vec::new(),
            stderr: format!("open /run/rt/{name}/state.json: No such file or directory").into_bytes(),
        };
        prop_assert_eq!(
            interpret_state_output(&id, "rt state", &about(&id)).ok(),
            Some(StateProbe::Gone)
        );
        let answer = interpret_state_output(&id, "rt state", &about(&other));
        prop_assert!(matches!(answer, Err(ProbeError::CommandFailed { .. })), "{:?}", answer);
    }
}
