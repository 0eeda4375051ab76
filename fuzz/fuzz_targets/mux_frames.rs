//! The Docker multiplexed stream decoder, `MuxDecoder`, and its encoder.
//!
//! Input: one byte choosing the read sizes, then the received stream.
//! Properties: no panic; the stream read whole, in chunks and byte by byte
//! decodes to the same frames and stops at the same place; the frames
//! re-encode to exactly the bytes they were decoded from; an error names
//! the eight header bytes at that place and stays; `finish` is clean
//! exactly on a frame boundary; and any payload cut into frames by
//! `encode_frames` decodes back to itself.

#![no_main]

use attach::{
    encode_frames, encode_header, parse_header, AttachError, MuxDecoder, MuxFrame, MuxStream,
    MUX_HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;

/// What decoding `chunks` gave: the frames, the bytes they came from, the
/// error's header if any, and `finish`'s verdict as text.
#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<MuxFrame>,
    consumed: usize,
    error: Option<[u8; MUX_HEADER_LEN]>,
    finish: String,
}

fn decode<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut decoder = MuxDecoder::new();
    let mut frames = Vec::new();
    let mut consumed = 0;
    let mut pushed = 0;
    let mut error = None;
    'chunks: for chunk in chunks {
        decoder.push(chunk);
        pushed += chunk.len();
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    consumed += MUX_HEADER_LEN + frame.payload.len();
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(AttachError::InvalidMuxHeader { header, reason }) => {
                    assert!(!reason.is_empty());
                    // Sticky: asking again gives the same error.
                    assert!(matches!(
                        decoder.next_frame(),
                        Err(AttachError::InvalidMuxHeader { header: h, .. }) if h == header
                    ));
                    error = Some(header);
                    break 'chunks;
                }
                Err(other) => panic!("unexpected error {other:?}"),
            }
            assert_eq!(decoder.buffered(), pushed - consumed);
        }
    }
    let finish = match decoder.finish() {
        Ok(()) => "ok".to_owned(),
        Err(AttachError::TruncatedMuxFrame { buffered, expected }) => {
            assert!(buffered > 0 && buffered < expected);
            format!("truncated {expected}")
        }
        Err(AttachError::InvalidMuxHeader { .. }) => "invalid".to_owned(),
        Err(other) => panic!("unexpected error {other:?}"),
    };
    Outcome {
        frames,
        consumed,
        error,
        finish,
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&step, stream)) = input.split_first() else {
        return;
    };
    let step = usize::from(step % 32) + 1;

    let whole = decode([stream]);
    assert_eq!(decode(stream.chunks(step)), whole);
    assert_eq!(decode(stream.chunks(1)), whole);

    // The frames are exactly the bytes they were decoded from.
    let encoded: Vec<u8> = whole.frames.iter().flat_map(MuxFrame::encode).collect();
    assert_eq!(encoded, &stream[..whole.consumed]);
    let rest = &stream[whole.consumed..];
    match whole.error {
        Some(header) => {
            assert_eq!(&header[..], &rest[..MUX_HEADER_LEN]);
            assert!(parse_header(&header).is_err());
        }
        None if rest.is_empty() => assert_eq!(whole.finish, "ok"),
        None => {
            assert!(whole.finish.starts_with("truncated"));
            if let Some(header) = rest.get(..MUX_HEADER_LEN) {
                let header: [u8; MUX_HEADER_LEN] = header.try_into().expect("8 bytes");
                let (stream_kind, len) = parse_header(&header).expect("a valid header");
                assert_eq!(encode_header(stream_kind, len), header);
                assert!(rest.len() < MUX_HEADER_LEN + len as usize);
            }
        }
    }

    // Any payload, cut into frames and encoded, decodes back to itself.
    let kind = MuxStream::from_byte(step as u8 % 3).expect("0..3");
    let frames = encode_frames(kind, stream);
    let bytes: Vec<u8> = frames.iter().flat_map(MuxFrame::encode).collect();
    let back = decode(bytes.chunks(step));
    assert_eq!(back.finish, "ok");
    assert_eq!(back.frames, frames);
    let joined: Vec<u8> = back.frames.into_iter().flat_map(|f| f.payload).collect();
    assert_eq!(joined, stream);
});
