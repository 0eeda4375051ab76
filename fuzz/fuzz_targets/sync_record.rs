//! `parse_sync_record`: the records conmon writes on the sync pipe.
//!
//! Input: one record as received. Properties: no panic; only inputs over
//! `MAX_RECORD_LEN` are `Oversized`; refused inputs are `Garbage` quoting
//! at most 64 bytes; an accepted record was a JSON object, re-encodes with
//! `SyncRecord::encode` in no more bytes than it was read from, and that
//! encoding parses back to the same record (the parser never accepts what
//! it cannot re-encode); surrounding whitespace changes nothing; and a
//! record built from the input's bytes survives encode and parse.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sync_pipe::{parse_sync_record, SyncPipeError, SyncRecord, MAX_RECORD_LEN};

fuzz_target!(|input: &[u8]| {
    let parsed = parse_sync_record(input);
    match &parsed {
        Ok(record) => {
            assert!(input.len() <= MAX_RECORD_LEN);
            assert!(
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(input).is_ok()
            );
            let encoded = record.encode();
            assert!(
                encoded.len() <= input.len(),
                "{} > {}",
                encoded.len(),
                input.len()
            );
            assert_eq!(parse_sync_record(&encoded).ok().as_ref(), Some(record));
            assert_eq!(record.is_failure(), record.data < 0);
        }
        Err(SyncPipeError::Oversized { len }) => {
            assert_eq!(*len, input.len());
            assert!(*len > MAX_RECORD_LEN);
        }
        Err(SyncPipeError::Garbage { first_bytes }) => {
            assert!(input.len() <= MAX_RECORD_LEN);
            // Escaped, at most 64 characters of input (each escape takes
            // at most 10 bytes: `\u{10ffff}`).
            assert!(first_bytes.len() <= 64 * 10);
            assert!(!first_bytes.contains('\n') && !first_bytes.contains('\0'));
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }

    // Whitespace around a record changes nothing (within the size limit).
    if input.len() + 3 <= MAX_RECORD_LEN {
        let padded = [b" \t".as_slice(), input, b"\n"].concat();
        assert_eq!(parse_sync_record(&padded).ok(), parsed.ok());
    }

    // A record made from the input's bytes round-trips.
    if input.len() >= 8 {
        let (number, text) = input.split_at(8);
        let data = i64::from_le_bytes(number.try_into().expect("8 bytes"));
        let message = match text.first() {
            Some(0) => None,
            _ => Some(String::from_utf8_lossy(text).into_owned()),
        };
        let record = SyncRecord { data, message };
        assert_eq!(parse_sync_record(&record.encode()).ok(), Some(record));
    }
});
