//! Properties of the sync record parser and the OCI error log parser, run
//! by `cargo test` on stable; the fuzz targets `sync_record` and `oci_log`
//! (`fuzz/`) check the same invariants on inputs libFuzzer finds.

use std::io::Write;

use proptest::prelude::*;
use sync_pipe::{
    classify_oci_message, last_oci_error, parse_sync_record, read_oci_error, SyncPipeError,
    SyncRecord, MAX_RECORD_LEN,
};

/// Records as conmon writes them, near misses, and JSON-ish junk.
fn record_bytes() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        Just("1.0".to_owned()),
        Just("-0".to_owned()),
        Just("9223372036854775808".to_owned()),
        Just("null".to_owned()),
        ".{0,12}".prop_map(|s| serde_json::Value::from(s).to_string()),
        Just("\"\\u00e9\\ud83d\\ude00\\/\\t\"".to_owned()),
    ];
    let object = proptest::collection::vec(
        (
            prop_oneof![Just("data"), Just("message"), Just("pipe")],
            value,
            "[ \n]{0,2}",
        ),
        0..4,
    )
    .prop_map(|members| {
        let body: Vec<String> = members
            .iter()
            .map(|(key, value, space)| format!("{space}\"{key}\":{space}{value}"))
            .collect();
        format!("{{{}}}", body.join(",")).into_bytes()
    });
    prop_oneof![
        4 => object,
        1 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => "[{}\\[\\]\":, 0-9a-z.eE+-]{0,40}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn an_accepted_record_re_encodes_no_longer_and_parses_back(bytes in record_bytes()) {
        let parsed = parse_sync_record(&bytes);
        match &parsed {
            Ok(record) => {
                let encoded = record.encode();
                prop_assert!(encoded.len() <= bytes.len(), "{} > {}", encoded.len(), bytes.len());
                prop_assert_eq!(parse_sync_record(&encoded).ok(), Some(record.clone()));
            }
            Err(SyncPipeError::Garbage { first_bytes }) => {
                prop_assert!(!first_bytes.contains('\n'));
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
        let padded = [b" \t".as_slice(), &bytes, b"\r\n"].concat();
        prop_assert_eq!(parse_sync_record(&padded).ok(), parsed.ok());
    }

    #[test]
    fn any_record_survives_encode_and_parse(data in any::<i64>(), message in proptest::option::of(any::<String>())) {
        let record = SyncRecord { data, message };
        prop_assert_eq!(parse_sync_record(&record.encode()).ok(), Some(record));
    }
}

/// A record at the size limit, with nothing to spare: its encoding is
/// no longer, so it is never refused as oversized.
#[test]
fn a_record_at_the_limit_re_encodes_within_it() {
    let head = b"{\"data\":1,\"message\":\"";
    let mut bytes = head.to_vec();
    bytes.resize(MAX_RECORD_LEN - 2, b'a');
    bytes.extend_from_slice(b"\"}");
    assert_eq!(bytes.len(), MAX_RECORD_LEN);
    let record = parse_sync_record(&bytes).expect("at the limit");
    assert_eq!(record.encode(), bytes);
    assert_eq!(parse_sync_record(&record.encode()).ok(), Some(record));
}

/// Log lines a runtime writes, lines it might, and junk.
fn log_line() -> impl Strategy<Value = Vec<u8>> {
    let entry = (
        "error|ERROR|Fatal|panic|info|warning|",
        proptest::option::of(".{0,20}"),
    )
        .prop_map(|(level, msg)| {
            let mut json = serde_json::json!({"level": level, "time": "2026-01-02T03:04:05Z"});
            if let Some(msg) = msg {
                json["msg"] = serde_json::Value::from(msg);
            }
            json.to_string().into_bytes()
        });
    prop_oneof![
        4 => entry,
        1 => Just(b"{\"level\":\"error\",\"msg\":42}".to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..30),
    ]
}

fn log() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(log_line(), 0..8).prop_map(|lines| lines.join(&b'\n'))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_last_error_line_wins(head in log(), tail in log()) {
        let joined = [head.as_slice(), b"\n", &tail].concat();
        let found = last_oci_error(&joined);
        prop_assert_eq!(&found, &last_oci_error(&tail).or_else(|| last_oci_error(&head)));
        if let Some(entry) = &found {
            prop_assert!(["error", "fatal", "panic"].iter().any(|l| entry.level.eq_ignore_ascii_case(l)));
            prop_assert_eq!(classify_oci_message(&entry.msg.to_ascii_uppercase()), entry.kind());
        }
        let junk = [joined.as_slice(), b"\nnot json\n\xff\n"].concat();
        prop_assert_eq!(last_oci_error(&junk), found);
    }
}

proptest! {
    // Each case writes a file.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_log_file_reads_as_its_text(log in log()) {
        let mut file = tempfile::NamedTempFile::new().map_err(|e| TestCaseError::fail(e.to_string()))?;
        file.write_all(&log).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let from_file = read_oci_error(file.path()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(from_file, last_oci_error(&log));
    }
}
