//! `interpret_state_output`: what a runtime's `state` command printed.
//!
//! Input: one status byte (0: exited 0; 1..=127: that exit code; 128 and
//! up: killed by signal `byte - 128`), then `id\0stdout\0stderr`.
//! Properties: no panic; success is `Present` or a typed parse error
//! (`InvalidState` for anything that is not JSON, quoting at most its first
//! 128 bytes), never `Gone`; failure is `Gone` or `CommandFailed`, never
//! `Present`, and `Gone` only when stderr says something does not exist;
//! `CommandFailed` carries the command, the code and the trimmed stderr; a
//! state re-serialised parses back to itself.

#![no_main]

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use libfuzzer_sys::fuzz_target;
use state_probe::{interpret_state_output, parse_state, CapturedOutput, ProbeError, StateProbe};

const COMMAND: &str = "runc --root /run/runc state";

fuzz_target!(|input: &[u8]| {
    let Some((&status, rest)) = input.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == 0);
    let id = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let stdout = parts.next().unwrap_or_default().to_vec();
    let stderr = parts.next().unwrap_or_default().to_vec();
    let raw = if status < 128 {
        i32::from(status) << 8
    } else {
        i32::from(status - 128).max(1)
    };
    let out = CapturedOutput {
        status: ExitStatus::from_raw(raw),
        stdout,
        stderr,
    };

    let answer = interpret_state_output(&id, COMMAND, &out);
    let stderr_text = out.stderr_text();
    if out.success() {
        match &answer {
            Ok(StateProbe::Present(state)) => {
                // Re-serialised, the state parses back to itself.
                let mut json = serde_json::json!({
                    "id": state.id,
                    "pid": state.pid,
                    "status": state.status.as_str(),
                });
                if let Some(bundle) = &state.bundle {
                    let bundle = bundle.to_str().expect("parsed from JSON text");
                    json["bundle"] = serde_json::Value::from(bundle);
                }
                let again = parse_state(json.to_string().as_bytes()).expect("re-parse");
                assert_eq!(&again, state);
            }
            Ok(StateProbe::Gone) => panic!("a successful state call read as gone"),
            Err(ProbeError::InvalidState {
                first_bytes,
                reason,
            }) => {
                assert!(!reason.is_empty());
                let quoted = &out.stdout[..out.stdout.len().min(128)];
                assert_eq!(first_bytes, &String::from_utf8_lossy(quoted));
            }
            Err(ProbeError::UnknownStatus { status }) => {
                assert!(!["created", "running", "paused", "stopped"].contains(&status.as_str()));
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
        // Output that is not JSON even with invalid UTF-8 replaced is
        // refused as such. (Invalid UTF-8 inside a string the parser skips,
        // an annotation say, is tolerated.)
        let lossy = String::from_utf8_lossy(&out.stdout);
        if serde_json::from_str::<serde_json::Value>(&lossy).is_err() {
            assert!(matches!(answer, Err(ProbeError::InvalidState { .. })));
        }
    } else {
        match &answer {
            Ok(StateProbe::Gone) => assert!(
                stderr_text.contains("does not exist") || stderr_text.contains("No such file"),
                "gone on {stderr_text:?}"
            ),
            Ok(StateProbe::Present(_)) => panic!("a failed state call read as present"),
            Err(ProbeError::CommandFailed {
                command,
                status,
                stderr,
            }) => {
                assert_eq!(command, COMMAND);
                assert_eq!(*status, out.status.code());
                assert_eq!(stderr, &stderr_text);
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
        // What stdout holds does not matter once the command failed.
        let other_stdout = CapturedOutput {
            stdout: br#"{"id":"x","status":"running"}"#.to_vec(),
            ..out.clone()
        };
        let again = interpret_state_output(&id, COMMAND, &other_stdout);
        assert_eq!(format!("{again:?}"), format!("{answer:?}"));
    }
});
