//! Parsing the status records conmon writes on the sync pipe with
//! `--api-version 1`: one JSON object per message, `{"data": <integer>}`
//! or `{"data": -1, "message": "<runtime stderr>"}`.

use serde_json::{Map, Value};

use crate::SyncPipeError;

/// The largest record accepted, in bytes (64 KiB). [`SyncReader`](crate::SyncReader)
/// receives into a buffer of this size.
pub const MAX_RECORD_LEN: usize = 64 * 1024;

/// How many leading bytes of a bad record are quoted in
/// [`SyncPipeError::Garbage`].
const QUOTED_BYTES: usize = 64;

/// One record conmon writes on the sync pipe (`--api-version 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRecord {
    /// A pid, an exit status, or a negative number for a failure.
    pub data: i64,
    /// The runtime's error text, present on failures.
    pub message: Option<String>,
}

impl SyncRecord {
    /// Whether the record reports a failure (`data < 0`).
    pub fn is_failure(&self) -> bool {
        self.data < 0
    }

    /// The record as one JSON object, `{"data":N}` or
    /// `{"data":N,"message":"..."}`, without whitespace (conmon adds
    /// spaces and a trailing newline, which [`parse_sync_record`] allows).
    ///
    /// [`parse_sync_record`] reads it back to the same record, and a record
    /// that function accepted encodes in at most as many bytes as it was
    /// read from, so the encoding is never [`SyncPipeError::Oversized`].
    ///
    /// ```
    /// use sync_pipe::{parse_sync_record, SyncRecord};
    ///
    /// let record = SyncRecord { data: -1, message: Some("exec failed\n".into()) };
    /// assert_eq!(record.encode(), b"{\"data\":-1,\"message\":\"exec failed\\n\"}");
    /// assert_eq!(parse_sync_record(&record.encode())?, record);
    /// # Ok::<(), sync_pipe::SyncPipeError>(())
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut object = Map::new();
        object.insert("data".to_owned(), Value::from(self.data));
        if let Some(message) = &self.message {
            object.insert("message".to_owned(), Value::String(message.clone()));
        }
        Value::Object(object).to_string().into_bytes()
    }
}

/// Parses one record: a JSON object with integer `"data"` and optional
/// string `"message"`; unknown keys are ignored; surrounding whitespace
/// (such as the trailing newline) is allowed.
///
/// # Errors
///
/// [`SyncPipeError::Oversized`] when `bytes` is longer than
/// [`MAX_RECORD_LEN`]; [`SyncPipeError::Garbage`] quoting the first 64
/// bytes for anything else that is not of that shape (not JSON, not an
/// object, missing `"data"`, non-integer `"data"`, non-string `"message"`,
/// empty input).
///
/// ```
/// let record = sync_pipe::parse_sync_record(b"{\"data\": 12345}\n")?;
/// assert_eq!(record.data, 12345);
/// assert!(!record.is_failure());
/// # Ok::<(), sync_pipe::SyncPipeError>(())
/// ```
pub fn parse_sync_record(bytes: &[u8]) -> Result<SyncRecord, SyncPipeError> {
    if bytes.len() > MAX_RECORD_LEN {
        return Err(SyncPipeError::Oversized { len: bytes.len() });
    }
    from_object(bytes).ok_or_else(|| SyncPipeError::Garbage {
        first_bytes: quote(bytes),
    })
}

/// The record in `bytes` if it is a JSON object of the expected shape.
fn from_object(bytes: &[u8]) -> Option<SyncRecord> {
    let object: Map<String, Value> = serde_json::from_slice(bytes).ok()?;
    // `as_i64` is `None` for floats (even `1.0`) and for integers beyond
    // the i64 range.
    let data = object.get("data")?.as_i64()?;
    let message = match object.get("message") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => return None,
    };
    Some(SyncRecord { data, message })
}

/// The first [`QUOTED_BYTES`] bytes, decoded lossily and escaped so that
/// control characters and quotes are visible in a message.
fn quote(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(QUOTED_BYTES)];
    String::from_utf8_lossy(head).escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn garbage(bytes: &[u8]) -> String {
        match parse_sync_record(bytes) {
            Err(SyncPipeError::Garbage { first_bytes }) => first_bytes,
            other => panic!("expected Garbage for {bytes:?}, got {other:?}"),
        }
    }

    #[test]
    fn success_record() {
        let r = parse_sync_record(b"{\"data\": 12345}\n").ok();
        assert_eq!(
            r,
            Some(SyncRecord {
                data: 12345,
                message: None
            })
        );
    }

    #[test]
    fn failure_record() {
        let r =
            parse_sync_record(b"{\"data\": -1, \"message\": \"runtime stderr text\\n\"}\n").ok();
        assert_eq!(
            r,
            Some(SyncRecord {
                data: -1,
                message: Some("runtime stderr text\n".to_owned())
            })
        );
        assert!(r.is_some_and(|r| r.is_failure()));
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let r =
            parse_sync_record(b" {\"pipe\": \"x\", \"data\": 0, \"extra\": [1, {}]} \r\n\t").ok();
        assert_eq!(
            r,
            Some(SyncRecord {
                data: 0,
                message: None
            })
        );
    }

    #[test]
    fn null_message_is_none() {
        let r = parse_sync_record(b"{\"data\": 3, \"message\": null}").ok();
        assert_eq!(r.and_then(|r| r.message), None);
    }

    #[test]
    fn missing_data() {
        assert_eq!(
            garbage(b"{\"message\": \"x\"}"),
            "{\\\"message\\\": \\\"x\\\"}"
        );
    }

    #[test]
    fn string_data() {
        garbage(b"{\"data\": \"12\"}");
    }

    #[test]
    fn float_data() {
        garbage(b"{\"data\": 1.5}");
        garbage(b"{\"data\": 1.0}");
        garbage(b"{\"data\": 1e3}");
    }

    #[test]
    fn out_of_range_data() {
        garbage(b"{\"data\": 9223372036854775808}");
    }

    #[test]
    fn non_string_message() {
        garbage(b"{\"data\": 1, \"message\": 5}");
    }

    #[test]
    fn not_an_object() {
        garbage(b"[1]");
        garbage(b"12");
        garbage(b"{\"data\": 1} {\"data\": 2}");
    }

    #[test]
    fn garbage_is_quoted_and_escaped() {
        assert_eq!(garbage(b"abc"), "abc");
        assert_eq!(garbage(b"a\"b\n\0"), "a\\\"b\\n\\0");
        assert_eq!(garbage(b"\xff"), "\u{fffd}");
        let long = [b'z'; 200];
        assert_eq!(garbage(&long), "z".repeat(64));
    }

    #[test]
    fn garbage_message_reads_well() {
        let err = parse_sync_record(b"abc").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "conmon wrote a sync record that is not JSON of the form \
                 {\"data\": <integer>, \"message\": <string>}: \"abc\""
            )
        );
    }

    #[test]
    fn empty_input() {
        assert_eq!(garbage(b""), "");
        garbage(b"\n");
    }

    #[test]
    fn oversized() {
        let mut big = b"{\"data\": 1, \"message\": \"".to_vec();
        big.resize(MAX_RECORD_LEN + 10, b'a');
        big.extend_from_slice(b"\"}");
        let len = big.len();
        assert!(matches!(
            parse_sync_record(&big),
            Err(SyncPipeError::Oversized { len: l }) if l == len
        ));
        // Exactly at the limit is still parsed.
        let mut edge = b"{\"data\": 1}".to_vec();
        edge.resize(MAX_RECORD_LEN, b' ');
        assert!(parse_sync_record(&edge).is_ok());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_sync_record(&bytes);
        }

        #[test]
        fn never_panics_on_json_like_text(text in "[{}\\[\\]\":, 0-9a-z.eE+-]{0,80}") {
            let _ = parse_sync_record(text.as_bytes());
        }

        #[test]
        fn round_trips(data in any::<i64>(), message in proptest::option::of(any::<String>()), newline in any::<bool>()) {
            let value = match &message {
                Some(m) => serde_json::json!({ "data": data, "message": m }),
                None => serde_json::json!({ "data": data }),
            };
            let mut bytes = serde_json::to_vec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if newline {
                bytes.push(b'\n');
            }
            let parsed = parse_sync_record(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parsed, SyncRecord { data, message });
        }
    }
}
