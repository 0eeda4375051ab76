//! `DetachKeys::parse` and `DetachMatcher` fed arbitrary chunkings.
//!
//! Input: `spec\0cuts\0payload`: a detach key specification (the default
//! `ctrl-p,ctrl-q` when it does not parse or is missing), chunk lengths
//! (one byte each), and the bytes typed. Properties: a parsed spec prints
//! back to itself; a refused one names one of its items; the whole
//! payload, the payload cut by `cuts`, and the payload byte by byte give
//! the same forwarded bytes and the same detach point, which is the first
//! occurrence of the keys; held-back bytes are always a proper prefix of
//! the keys and nothing is lost or duplicated.

#![no_main]

use attach::{AttachError, DetachKeys, DetachMatcher};
use libfuzzer_sys::fuzz_target;

/// Feeds `chunks` in order until a detach; returns what was forwarded
/// (with `finish` at the end) and whether it detached.
fn run<'a>(keys: &DetachKeys, chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<u8>, bool) {
    let mut matcher = DetachMatcher::new(keys);
    let mut forwarded = Vec::new();
    let mut consumed = Vec::new();
    for chunk in chunks {
        let (out, detached) = matcher.feed(chunk);
        forwarded.extend_from_slice(&out);
        if detached {
            assert!(matcher.pending().is_empty(), "a detach resets the matcher");
            return (forwarded, true);
        }
        consumed.extend_from_slice(chunk);
        let pending = matcher.pending();
        assert!(pending.len() < keys.as_bytes().len().max(1));
        assert!(keys.as_bytes().starts_with(pending));
        // Nothing lost, nothing duplicated: forwarded + held back = read.
        assert_eq!([forwarded.as_slice(), pending].concat(), consumed);
    }
    forwarded.extend(matcher.finish());
    assert!(matcher.pending().is_empty());
    (forwarded, false)
}

/// Splits `payload` into chunks of the lengths in `cuts` (cycled; a zero
/// length is an empty read), the rest in one piece.
fn chunked<'a>(payload: &'a [u8], cuts: &[u8]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = payload;
    for &cut in cuts.iter().cycle().take(payload.len() * 2) {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at(usize::from(cut).min(rest.len()));
        chunks.push(head);
        rest = tail;
    }
    chunks.push(rest);
    chunks
}

fuzz_target!(|input: &[u8]| {
    let mut parts = input.splitn(3, |&b| b == 0);
    let spec = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let cuts = parts.next().unwrap_or_default();
    let payload = parts.next().unwrap_or_default();

    let keys = match DetachKeys::parse(&spec) {
        Ok(keys) => {
            let printed = keys.to_string();
            assert_eq!(DetachKeys::parse(&printed).ok().as_ref(), Some(&keys));
            assert_eq!(keys.is_never(), spec.is_empty());
            keys
        }
        Err(AttachError::InvalidDetachKey { key }) => {
            assert!(
                spec.split(',').any(|item| item == key),
                "{key:?} in {spec:?}"
            );
            DetachKeys::default()
        }
        Err(other) => panic!("unexpected error {other:?}"),
    };

    let whole = run(&keys, [payload]);
    assert_eq!(run(&keys, chunked(payload, cuts)), whole);
    assert_eq!(run(&keys, payload.chunks(1)), whole);
    assert_eq!(run(&keys, [&[][..], payload, &[][..]]), whole);

    // The reference: the first occurrence of the keys, everything before
    // it forwarded.
    let k = keys.as_bytes();
    let first = if k.is_empty() {
        None
    } else {
        payload.windows(k.len()).position(|w| w == k)
    };
    match first {
        Some(start) => assert_eq!(whole, (payload[..start].to_vec(), true)),
        None => assert_eq!(whole, (payload.to_vec(), false)),
    }
});
