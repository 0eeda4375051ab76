//! Properties of `interpret_state_output`, run by `cargo test` on stable;
//! the fuzz target `state_output` (`fuzz/`) checks the same invariants on
//! inputs libFuzzer finds. (`tests/state.rs` holds the table tests and the
//! properties about which failures read as "gone".)

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use proptest::prelude::*;
use state_probe::{interpret_state_output, parse_state, CapturedOutput, ProbeError, StateProbe};

const COMMAND: &str = "runc --root /run/runc state";

/// Output a runtime might print: state objects, near misses and junk.
fn stdout() -> impl Strategy<Value = Vec<u8>> {
    let state = (
        "[a-z0-9]{0,8}",
        any::<i32>(),
        "created|running|paused|stopped|creating|",
        proptest::option::of("(/[a-z]{1,4}){0,3}"),
    )
        .prop_map(|(id, pid, status, bundle)| {
            let mut json =
                serde_json::json!({"ociVersion": "1.0.2", "id": id, "pid": pid, "status": status});
            if let Some(bundle) = bundle {
                json["bundle"] = serde_json::Value::from(bundle);
            }
            json.to_string().into_bytes()
        });
    prop_oneof![
        3 => state,
        1 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => "[{}\\[\\]\":, 0-9a-z]{0,40}".prop_map(String::into_bytes),
    ]
}

fn stderr() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"container does not exist".to_vec()),
        "[a-z0-9 /:`]{0,30}(No such file|does not exist)?[a-z0-9 /:`]{0,30}"
            .prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

/// Exit 0, an exit code, or death by a signal.
fn status() -> impl Strategy<Value = ExitStatus> {
    prop_oneof![
        Just(ExitStatus::from_raw(0)),
        (1i32..256).prop_map(|code| ExitStatus::from_raw(code << 8)),
        (1i32..32).prop_map(ExitStatus::from_raw),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn interpretation_is_total_and_typed(
        status in status(),
        stdout in stdout(),
        stderr in stderr(),
        id in "[a-z0-9]{1,8}",
    ) {
        let out = CapturedOutput { status, stdout, stderr };
        let answer = interpret_state_output(&id, COMMAND, &out);
        let stderr_text = out.stderr_text();
        if out.success() {
            match &answer {
                Ok(StateProbe::Present(state)) => {
                    let mut json = serde_json::json!({
                        "id": state.id, "pid": state.pid, "status": state.status.as_str(),
                    });
                    if let Some(bundle) = state.bundle.as_ref().and_then(|b| b.to_str()) {
                        json["bundle"] = serde_json::Value::from(bundle);
                    }
                    let again = parse_state(json.to_string().as_bytes());
                    prop_assert_eq!(again.ok(), Some(state.clone()));
                }
                Ok(StateProbe::Gone) => prop_assert!(false, "success read as gone"),
                Err(ProbeError::InvalidState { first_bytes, .. }) => {
                    let quoted = &out.stdout[..out.stdout.len().min(128)];
                    prop_assert_eq!(first_bytes, &String::from_utf8_lossy(quoted));
                }
                Err(ProbeError::UnknownStatus { status }) => {
                    prop_assert!(!["created", "running", "paused", "stopped"].contains(&status.as_str()));
                }
                Err(other) => prop_assert!(false, "unexpected error {other:?}"),
            }
            let lossy = String::from_utf8_lossy(&out.stdout);
            if serde_json::from_str::<serde_json::Value>(&lossy).is_err() {
                prop_assert!(matches!(answer, Err(ProbeError::InvalidState { .. })), "{:?}", answer);
            }
        } else {
            match &answer {
                Ok(StateProbe::Gone) => prop_assert!(
                    stderr_text.contains("does not exist") || stderr_text.contains("No such file")
                ),
                Ok(StateProbe::Present(_)) => prop_assert!(false, "failure read as present"),
                Err(ProbeError::CommandFailed { command, status, stderr }) => {
                    prop_assert_eq!(command, COMMAND);
                    prop_assert_eq!(*status, out.status.code());
                    prop_assert_eq!(stderr, &stderr_text);
                }
                Err(other) => prop_assert!(false, "unexpected error {other:?}"),
            }
            // stdout does not matter once the command failed.
            let other = CapturedOutput { stdout: b"{\"id\":\"x\",\"status\":\"running\"}".to_vec(), ..out.clone() };
            let again = interpret_state_output(&id, COMMAND, &other);
            prop_assert_eq!(format!("{again:?}"), format!("{answer:?}"));
        }
    }
}

/// Found by the `state_output` fuzz target: invalid UTF-8 inside a string
/// the parser skips (an annotation) does not make the state unreadable,
/// while invalid UTF-8 in a field it keeps does.
#[test]
fn invalid_utf8_is_tolerated_only_in_skipped_strings() {
    let skipped = b"{\"id\":\"abc\",\"status\":\"running\",\"annotations\":{\"k\":\"FAL\xd3E\"}}";
    let state = parse_state(skipped).expect("an annotation is skipped");
    assert_eq!(state.id, "abc");
    let kept = b"{\"id\":\"a\xd3c\",\"status\":\"running\"}";
    assert!(matches!(
        parse_state(kept),
        Err(ProbeError::InvalidState { .. })
    ));
}
