//! The OCI runtime's JSON error log: `last_oci_error` and
//! `classify_oci_message`.
//!
//! Input: the log's bytes. Properties: no panic; an entry found has an
//! error level (`error`, `fatal`, `panic`, any case) and one of the three
//! exit codes; the log split at any newline gives the second part's last
//! error, else the first part's; lines that are not JSON appended change
//! nothing; an error line appended is the answer; classification ignores
//! ASCII case.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sync_pipe::{classify_oci_message, last_oci_error, OciErrorKind};

fuzz_target!(|input: &[u8]| {
    let found = last_oci_error(input);
    if let Some(entry) = &found {
        assert!(["error", "fatal", "panic"]
            .iter()
            .any(|level| entry.level.eq_ignore_ascii_case(level)));
        assert!([125, 126, 127].contains(&entry.kind().exit_code()));
        let upper = entry.msg.to_ascii_uppercase();
        assert_eq!(classify_oci_message(&upper), entry.kind());
    }

    // Split at each newline (at most a few): the last part wins.
    for (at, _) in input
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .take(8)
    {
        let (head, tail) = (&input[..at], &input[at + 1..]);
        assert_eq!(found, last_oci_error(tail).or_else(|| last_oci_error(head)));
    }

    let junk = [
        input,
        b"\nnot json\n{\"msg\":\"no level\"}\n\xff\n".as_slice(),
    ]
    .concat();
    assert_eq!(last_oci_error(&junk), found);

    let text = String::from_utf8_lossy(input);
    let line = serde_json::json!({"level": "FATAL", "msg": text}).to_string();
    let appended = [input, b"\n", line.as_bytes()].concat();
    let last = last_oci_error(&appended).expect("the appended line");
    assert_eq!(
        (last.level.as_str(), last.msg.as_str()),
        ("FATAL", text.as_ref())
    );
    assert_eq!(last.kind(), classify_oci_message(&text));
    let kind = classify_oci_message(&text.to_ascii_uppercase());
    assert_eq!(kind, classify_oci_message(&text));
    assert!(matches!(
        kind,
        OciErrorKind::PermissionDenied | OciErrorKind::CommandNotFound | OciErrorKind::Other
    ));
});
