//! Properties of the pure parts of the crate, run by `cargo test` on
//! stable: the detach key specification and matcher, and the multiplexed
//! frame decoder. The fuzz targets `detach_matcher` and `mux_frames`
//! (`fuzz/`) check the same invariants on inputs libFuzzer finds.

use attach::{
    encode_frames, AttachError, DetachKeys, DetachMatcher, MuxDecoder, MuxFrame, MuxStream,
    MUX_HEADER_LEN,
};
use proptest::prelude::*;

/// Feeds `chunks` until a detach; returns what was forwarded (with
/// `finish` when the input ran out) and whether it detached, checking on
/// the way that forwarded plus held-back bytes are exactly what was read.
fn run(keys: &DetachKeys, chunks: &[&[u8]]) -> Result<(Vec<u8>, bool), TestCaseError> {
    let mut matcher = DetachMatcher::new(keys);
    let mut forwarded = Vec::new();
    let mut consumed = Vec::new();
    for chunk in chunks {
        let (out, detached) = matcher.feed(chunk);
        forwarded.extend_from_slice(&out);
        if detached {
            prop_assert!(matcher.pending().is_empty());
            return Ok((forwarded, true));
        }
        consumed.extend_from_slice(chunk);
        let pending = matcher.pending();
        prop_assert!(pending.len() < keys.as_bytes().len().max(1));
        prop_assert!(keys.as_bytes().starts_with(pending));
        prop_assert_eq!([forwarded.as_slice(), pending].concat(), consumed.clone());
    }
    forwarded.extend(matcher.finish());
    Ok((forwarded, false))
}

/// `data` cut at the given positions (taken modulo its length, in order).
fn cut<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for point in points {
        chunks.push(&data[start..point]);
        start = point;
    }
    chunks.push(&data[start..]);
    chunks
}

/// One item of a detach key specification: a `ctrl-` name or a literal
/// ASCII character other than the separator.
fn key_item() -> impl Strategy<Value = String> {
    prop_oneof!["ctrl-[a-z@\\[\\\\\\]^_]", "[\\x00-\\x2b\\x2d-\\x7f]",]
}

/// Input drawn mostly from the key bytes, so that sequences occur.
fn typed(keys: &DetachKeys) -> impl Strategy<Value = Vec<u8>> {
    let mut alphabet = keys.as_bytes().to_vec();
    alphabet.extend_from_slice(b"ax\n");
    proptest::collection::vec(proptest::sample::select(alphabet), 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_parsed_spec_prints_back_to_itself(items in proptest::collection::vec(key_item(), 0..5)) {
        let spec = items.join(",");
        let keys = DetachKeys::parse(&spec).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(keys.as_bytes().len(), items.len());
        prop_assert_eq!(DetachKeys::parse(&keys.to_string()).ok(), Some(keys));
    }

    #[test]
    fn a_refused_spec_names_one_of_its_items(spec in "[a-z\\-,@\\[\\]^_é ]{0,20}") {
        match DetachKeys::parse(&spec) {
            Ok(keys) => {
                prop_assert_eq!(DetachKeys::parse(&keys.to_string()).ok(), Some(keys));
            }
            Err(AttachError::InvalidDetachKey { key }) => {
                prop_assert!(spec.split(',').any(|item| item == key), "{:?} in {:?}", key, spec);
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn any_chunking_gives_the_same_output_and_detach_point(
        (keys, input) in proptest::collection::vec(key_item(), 0..4)
            .prop_map(|items| DetachKeys::parse(&items.join(",")).unwrap_or_default())
            .prop_flat_map(|keys| { let input = typed(&keys); (Just(keys), input) }),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = run(&keys, &[&input])?;
        prop_assert_eq!(&run(&keys, &cut(&input, &cuts))?, &whole);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        prop_assert_eq!(&run(&keys, &bytes)?, &whole);
        // The reference: everything before the first occurrence of the keys.
        let k = keys.as_bytes();
        let first = if k.is_empty() { None } else { input.windows(k.len()).position(|w| w == k) };
        match first {
            Some(start) => prop_assert_eq!(whole, (input[..start].to_vec(), true)),
            None => prop_assert_eq!(whole, (input.clone(), false)),
        }
    }
}

/// Frames decoded from `chunks`, the bytes they used, and whether a bad
/// header stopped the decoder.
fn decode(chunks: &[&[u8]]) -> (Vec<MuxFrame>, usize, bool) {
    let mut decoder = MuxDecoder::new();
    let (mut frames, mut consumed) = (Vec::new(), 0);
    for chunk in chunks {
        decoder.push(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    consumed += MUX_HEADER_LEN + frame.payload.len();
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(_) => return (frames, consumed, true),
            }
        }
    }
    (frames, consumed, false)
}

fn frame() -> impl Strategy<Value = MuxFrame> {
    (0u8..3, proptest::collection::vec(any::<u8>(), 0..20)).prop_map(|(stream, payload)| {
        MuxFrame::new(
            MuxStream::from_byte(stream).unwrap_or(MuxStream::Stdout),
            payload,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frames_round_trip_through_any_chunking(
        frames in proptest::collection::vec(frame(), 0..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let bytes: Vec<u8> = frames.iter().flat_map(MuxFrame::encode).collect();
        let (got, consumed, failed) = decode(&cut(&bytes, &cuts));
        prop_assert!(!failed);
        prop_assert_eq!(consumed, bytes.len());
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn any_stream_decodes_the_same_in_chunks_and_re_encodes_to_its_bytes(
        bytes in proptest::collection::vec(prop_oneof![3 => 0u8..3, 1 => any::<u8>()], 0..64),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = decode(&[&bytes]);
        prop_assert_eq!(&decode(&cut(&bytes, &cuts)), &whole);
        let (frames, consumed, failed) = whole;
        let encoded: Vec<u8> = frames.iter().flat_map(MuxFrame::encode).collect();
        prop_assert_eq!(&encoded[..], &bytes[..consumed]);
        let mut decoder = MuxDecoder::new();
        decoder.push(&bytes[consumed..]);
        prop_assert_eq!(decoder.finish().is_ok(), consumed == bytes.len() && !failed);
    }

    #[test]
    fn encode_frames_splits_and_joins_back(
        data in proptest::collection::vec(any::<u8>(), 0..200),
        stream in 0u8..3,
    ) {
        let stream = MuxStream::from_byte(stream).unwrap_or(MuxStream::Stdout);
        let frames = encode_frames(stream, &data);
        prop_assert_eq!(frames.is_empty(), data.is_empty());
        let bytes: Vec<u8> = frames.iter().flat_map(MuxFrame::encode).collect();
        let (back, _, failed) = decode(&[&bytes]);
        prop_assert!(!failed);
        let joined: Vec<u8> = back.into_iter().flat_map(|f| f.payload).collect();
        prop_assert_eq!(joined, data);
    }
}
