//! Docker-compatible multiplexed stream framing, as used by the HTTP attach
//! endpoint when the container has no terminal.
//!
//! Each frame is an 8-byte header `[stream, 0, 0, 0, len (u32 big-endian)]`
//! followed by `len` payload bytes; stream 0 is stdin, 1 stdout, 2 stderr.
//! This module encodes frames (splitting payloads too large for one header)
//! and decodes a byte stream incrementally with [`MuxDecoder`], which copes
//! with frames split across arbitrary reads. It is pure: no I/O.

use crate::record::{AttachRecord, AttachStream};
use crate::AttachError;

/// Length of a frame header.
pub const MUX_HEADER_LEN: usize = 8;

/// Largest payload one frame header can describe.
pub const MAX_FRAME_PAYLOAD: usize = u32::MAX as usize;

/// Buffered bytes already consumed after which [`MuxDecoder`] compacts its
/// buffer (so a long-running decoder does not grow without bound).
const COMPACT_THRESHOLD: usize = 64 * 1024;

/// The stream a multiplexed frame belongs to (the header's first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MuxStream {
    /// Standard input (0).
    Stdin = 0,
    /// Standard output (1).
    Stdout = 1,
    /// Standard error (2).
    Stderr = 2,
}

impl MuxStream {
    /// Maps a header's stream byte to its stream; `None` above 2.
    pub fn from_byte(byte: u8) -> Option<MuxStream> {
        match byte {
            0 => Some(MuxStream::Stdin),
            1 => Some(MuxStream::Stdout),
            2 => Some(MuxStream::Stderr),
            _ => None,
        }
    }

    /// The header byte of this stream.
    pub fn as_byte(self) -> u8 {
        self as u8
    }
}

impl From<AttachStream> for MuxStream {
    fn from(stream: AttachStream) -> Self {
        match stream {
            AttachStream::Stdout => MuxStream::Stdout,
            AttachStream::Stderr => MuxStream::Stderr,
        }
    }
}

/// One multiplexed frame: a stream and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxFrame {
    /// The stream the payload belongs to.
    pub stream: MuxStream,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

impl From<AttachRecord> for MuxFrame {
    fn from(record: AttachRecord) -> Self {
        MuxFrame {
            stream: record.stream.into(),
            payload: record.data,
        }
    }
}

/// Builds the 8-byte header of a frame carrying `len` bytes of `stream`.
pub fn encode_header(stream: MuxStream, len: u32) -> [u8; MUX_HEADER_LEN] {
    let [a, b, c, d] = len.to_be_bytes();
    [stream.as_byte(), 0, 0, 0, a, b, c, d]
}

/// Parses an 8-byte frame header into its stream and payload length.
///
/// # Errors
///
/// [`AttachError::InvalidMuxHeader`] when the stream byte is above 2 or one
/// of the three padding bytes is not zero; the error shows all eight bytes.
pub fn parse_header(header: &[u8; MUX_HEADER_LEN]) -> Result<(MuxStream, u32), AttachError> {
    let [stream, p1, p2, p3, a, b, c, d] = *header;
    let Some(stream) = MuxStream::from_byte(stream) else {
        return Err(AttachError::InvalidMuxHeader {
            header: *header,
            reason: "stream byte must be 0 (stdin), 1 (stdout) or 2 (stderr)",
        });
    };
    if [p1, p2, p3] != [0, 0, 0] {
        return Err(AttachError::InvalidMuxHeader {
            header: *header,
            reason: "padding bytes 1..4 must be zero",
        });
    }
    Ok((stream, u32::from_be_bytes([a, b, c, d])))
}

impl MuxFrame {
    /// Creates a frame.
    pub fn new(stream: MuxStream, payload: impl Into<Vec<u8>>) -> Self {
        MuxFrame {
            stream,
            payload: payload.into(),
        }
    }

    /// Encodes the frame: header then payload.
    ///
    /// A payload longer than [`MAX_FRAME_PAYLOAD`] (`u32::MAX`) bytes cannot
    /// be described by one header; it is then written as several
    /// consecutive frames of the same stream, which a reader concatenates to
    /// the same bytes. An empty payload yields a bare 8-byte header.
    pub fn encode(&self) -> Vec<u8> {
        encode_chunked(self.stream, &self.payload, MAX_FRAME_PAYLOAD)
    }
}

/// Splits `data` into frames of at most [`MAX_FRAME_PAYLOAD`] bytes each.
///
/// Empty `data` yields no frames (there is nothing to send).
pub fn encode_frames(stream: MuxStream, data: &[u8]) -> Vec<MuxFrame> {
    split_frames(stream, data, MAX_FRAME_PAYLOAD)
}

/// [`encode_frames`] with an arbitrary chunk limit (testable without 4 GiB
/// of memory).
fn split_frames(stream: MuxStream, data: &[u8], max_payload: usize) -> Vec<MuxFrame> {
    data.chunks(max_payload.max(1))
        .map(|chunk| MuxFrame::new(stream, chunk))
        .collect()
}

/// [`MuxFrame::encode`] with an arbitrary chunk limit.
fn encode_chunked(stream: MuxStream, payload: &[u8], max_payload: usize) -> Vec<u8> {
    let max_payload = max_payload.clamp(1, MAX_FRAME_PAYLOAD);
    let frames = payload.len().div_ceil(max_payload).max(1);
    let mut out = Vec::with_capacity(payload.len() + frames * MUX_HEADER_LEN);
    if payload.is_empty() {
        out.extend_from_slice(&encode_header(stream, 0));
        return out;
    }
    for chunk in payload.chunks(max_payload) {
        // `max_payload <= u32::MAX`, so every chunk length fits.
        let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&encode_header(stream, len));
        out.extend_from_slice(chunk);
    }
    out
}

/// Incremental decoder of a multiplexed byte stream.
///
/// Feed it whatever arrived with [`push`](MuxDecoder::push) and take whole
/// frames out with [`next_frame`](MuxDecoder::next_frame); a frame split
/// across pushes (even inside its header) comes out once complete. After an
/// error the stream is unrecoverable: the bad header stays at the front and
/// every further call reports it again.
#[derive(Debug, Default, Clone)]
pub struct MuxDecoder {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
}

impl MuxDecoder {
    /// Creates an empty decoder.
    pub fn new() -> Self {
        MuxDecoder::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Number of bytes pushed but not yet returned in a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Returns the next complete frame, or `None` until enough bytes have
    /// been pushed.
    ///
    /// # Errors
    ///
    /// [`AttachError::InvalidMuxHeader`] when the next header is malformed.
    pub fn next_frame(&mut self) -> Result<Option<MuxFrame>, AttachError> {
        let available = &self.buf[self.pos..];
        let Some(header_bytes) = available.get(..MUX_HEADER_LEN) else {
            return Ok(None);
        };
        let mut header = [0u8; MUX_HEADER_LEN];
        header.copy_from_slice(header_bytes);
        let (stream, len) = parse_header(&header)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let Some(payload) = available[MUX_HEADER_LEN..].get(..len) else {
            return Ok(None);
        };
        let frame = MuxFrame::new(stream, payload);
        self.pos += MUX_HEADER_LEN + len;
        self.compact();
        Ok(Some(frame))
    }

    /// Checks that the stream ended on a frame boundary.
    ///
    /// # Errors
    ///
    /// [`AttachError::TruncatedMuxFrame`] when bytes of an incomplete frame
    /// are left, [`AttachError::InvalidMuxHeader`] when they start with a
    /// malformed header.
    pub fn finish(&self) -> Result<(), AttachError> {
        let available = &self.buf[self.pos..];
        if available.is_empty() {
            return Ok(());
        }
        let expected = match available.get(..MUX_HEADER_LEN) {
            Some(header_bytes) => {
                let mut header = [0u8; MUX_HEADER_LEN];
                header.copy_from_slice(header_bytes);
                let (_, len) = parse_header(&header)?;
                MUX_HEADER_LEN.saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
            }
            None => MUX_HEADER_LEN,
        };
        Err(AttachError::TruncatedMuxFrame {
            buffered: available.len(),
            expected,
        })
    }

    /// Drops consumed bytes once they are all consumed or pile up.
    fn compact(&mut self) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos >= COMPACT_THRESHOLD && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Vec<MuxFrame> {
        let mut decoder = MuxDecoder::new();
        decoder.push(bytes);
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame().expect("valid stream") {
            frames.push(frame);
        }
        decoder.finish().expect("ends on a boundary");
        frames
    }

    fn sample_frames() -> Vec<MuxFrame> {
        vec![
            MuxFrame::new(MuxStream::Stdout, b"hello\n".to_vec()),
            MuxFrame::new(MuxStream::Stderr, Vec::new()),
            MuxFrame::new(MuxStream::Stdin, vec![0u8, 1, 2, 255]),
            MuxFrame::new(MuxStream::Stderr, b"oops".to_vec()),
        ]
    }

    #[test]
    fn header_layout() {
        assert_eq!(
            encode_header(MuxStream::Stderr, 0x0102_0304),
            [2, 0, 0, 0, 1, 2, 3, 4]
        );
        assert_eq!(encode_header(MuxStream::Stdin, 0), [0; 8]);
        assert_eq!(
            encode_header(MuxStream::Stdout, u32::MAX),
            [1, 0, 0, 0, 255, 255, 255, 255]
        );
        for stream in [MuxStream::Stdin, MuxStream::Stdout, MuxStream::Stderr] {
            assert_eq!(MuxStream::from_byte(stream.as_byte()), Some(stream));
            assert_eq!(
                parse_header(&encode_header(stream, 77)).expect("valid"),
                (stream, 77)
            );
        }
    }

    #[test]
    fn frame_encoding() {
        let frame = MuxFrame::new(MuxStream::Stdout, b"abc".to_vec());
        assert_eq!(frame.encode(), b"\x01\0\0\0\0\0\0\x03abc".to_vec());
        let empty = MuxFrame::new(MuxStream::Stderr, Vec::new());
        assert_eq!(empty.encode(), vec![2, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn round_trip_whole() {
        let frames = sample_frames();
        let bytes: Vec<u8> = frames.iter().flat_map(MuxFrame::encode).collect();
        assert_eq!(decode_all(&bytes), frames);
    }

    #[test]
    fn round_trip_split_at_every_position() {
        let frames = sample_frames();
        let bytes: Vec<u8> = frames.iter().flat_map(MuxFrame::encode).collect();
        for split in 0..=bytes.len() {
            let mut decoder = MuxDecoder::new();
            let mut got = Vec::new();
            for part in [&bytes[..split], &bytes[split..]] {
                decoder.push(part);
                while let Some(frame) = decoder.next_frame().expect("valid") {
                    got.push(frame);
                }
            }
            decoder.finish().expect("boundary");
            assert_eq!(got, frames, "split at {split}");
        }
    }

    #[test]
    fn round_trip_byte_by_byte() {
        let frames = sample_frames();
        let bytes: Vec<u8> = frames.iter().flat_map(MuxFrame::encode).collect();
        let mut decoder = MuxDecoder::new();
        let mut got = Vec::new();
        for byte in &bytes {
            decoder.push(std::slice::from_ref(byte));
            while let Some(frame) = decoder.next_frame().expect("valid") {
                got.push(frame);
            }
        }
        assert_eq!(got, frames);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn zero_length_payload_is_a_frame() {
        let mut decoder = MuxDecoder::new();
        decoder.push(&[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            decoder.next_frame().expect("valid"),
            Some(MuxFrame::new(MuxStream::Stdout, Vec::new()))
        );
        assert_eq!(decoder.next_frame().expect("valid"), None);
    }

    #[test]
    fn bad_stream_byte_is_an_error_naming_the_bytes() {
        let mut decoder = MuxDecoder::new();
        decoder.push(&[3, 0, 0, 0, 0, 0, 0, 1, b'x']);
        let err = decoder.next_frame().expect_err("stream 3 is invalid");
        match &err {
            AttachError::InvalidMuxHeader { header, .. } => {
                assert_eq!(*header, [3, 0, 0, 0, 0, 0, 0, 1]);
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert!(
            err.to_string().contains("[03, 00, 00, 00, 00, 00, 00, 01]"),
            "{err}"
        );
        // The error is sticky.
        assert!(decoder.next_frame().is_err());
    }

    #[test]
    fn nonzero_padding_is_an_error() {
        for pad in 1..4 {
            let mut header = [1u8, 0, 0, 0, 0, 0, 0, 0];
            header[pad] = 0x80;
            let err = parse_header(&header).expect_err("padding must be zero");
            assert!(err.to_string().contains("padding"), "{err}");
            assert!(err.to_string().contains("80"), "{err}");
        }
    }

    #[test]
    fn incomplete_frames_wait_and_finish_reports_them() {
        let mut decoder = MuxDecoder::new();
        decoder.finish().expect("empty stream is fine");
        decoder.push(&[1, 0, 0]);
        assert_eq!(decoder.next_frame().expect("valid so far"), None);
        match decoder.finish() {
            Err(AttachError::TruncatedMuxFrame {
                buffered: 3,
                expected: 8,
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
        decoder.push(&[0, 0, 0, 0, 5, b'a', b'b']);
        assert_eq!(decoder.next_frame().expect("valid so far"), None);
        match decoder.finish() {
            Err(AttachError::TruncatedMuxFrame {
                buffered: 10,
                expected: 13,
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
        decoder.push(b"cde");
        assert_eq!(
            decoder.next_frame().expect("complete"),
            Some(MuxFrame::new(MuxStream::Stdout, b"abcde".to_vec()))
        );
        decoder.finish().expect("boundary");
    }

    #[test]
    fn oversized_payloads_are_split() {
        let data: Vec<u8> = (0..=9).collect();
        let frames = split_frames(MuxStream::Stderr, &data, 4);
        let lens: Vec<usize> = frames.iter().map(|f| f.payload.len()).collect();
        assert_eq!(lens, [4, 4, 2]);
        assert!(frames.iter().all(|f| f.stream == MuxStream::Stderr));
        let joined: Vec<u8> = frames.iter().flat_map(|f| f.payload.clone()).collect();
        assert_eq!(joined, data);
        assert!(encode_frames(MuxStream::Stdout, &[]).is_empty());
        assert_eq!(encode_frames(MuxStream::Stdout, b"xy").len(), 1);

        let encoded = encode_chunked(MuxStream::Stdout, &data, 4);
        let decoded = decode_all(&encoded);
        assert_eq!(decoded.len(), 3);
        let joined: Vec<u8> = decoded.into_iter().flat_map(|f| f.payload).collect();
        assert_eq!(joined, data);
    }

    #[test]
    fn decoder_compacts_long_streams() {
        let frame = MuxFrame::new(MuxStream::Stdout, vec![7u8; 1000]).encode();
        let mut decoder = MuxDecoder::new();
        let mut count = 0;
        for _ in 0..200 {
            decoder.push(&frame);
            decoder.push(&frame[..3]); // keep a partial frame buffered
            while let Some(f) = decoder.next_frame().expect("valid") {
                assert_eq!(f.payload.len(), 1000);
                count += 1;
            }
            // Complete the partial frame.
            decoder.push(&frame[3..]);
        }
        while decoder.next_frame().expect("valid").is_some() {
            count += 1;
        }
        assert_eq!(count, 400);
        assert!(decoder.buf.capacity() < 200 * frame.len());
    }

    #[test]
    fn records_become_frames() {
        let record = AttachRecord {
            stream: AttachStream::Stderr,
            data: b"err".to_vec(),
        };
        assert_eq!(
            MuxFrame::from(record),
            MuxFrame::new(MuxStream::Stderr, b"err".to_vec())
        );
        assert_eq!(MuxStream::from(AttachStream::Stdout), MuxStream::Stdout);
    }
}
