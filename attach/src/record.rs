//! Records received on conmon's attach socket: one prefix byte naming the
//! stream, then the output bytes.
//!
//! conmon reads the container's output in chunks of at most 8192 bytes and
//! sends each chunk as one `SOCK_SEQPACKET` message with a prefix byte in
//! front: 2 for stdout, 3 for stderr (1, stdin, is never sent). With a
//! terminal all output arrives as stdout. This module is pure: decoding and
//! encoding of single records; the socket itself lives in `socket.rs`.

/// Largest output chunk conmon puts in one record (its `STDIO_BUF_SIZE`).
pub const MAX_RECORD_PAYLOAD: usize = 8192;

/// Receive buffer length for one attach record.
///
/// A record is one prefix byte plus up to [`MAX_RECORD_PAYLOAD`] bytes, so
/// the buffer must hold at least 8193 bytes: `SOCK_SEQPACKET` silently drops
/// the tail of a message that does not fit, and podman once lost one byte in
/// every 8192 by reading with an 8192-byte buffer. The extra margin (the
/// buffer is 16 KiB) saves a regrowth for a future conmon with slightly
/// larger records; a record that still does not fit is measured before it
/// is received and read whole into a larger buffer, never cut.
pub const RECORD_BUFFER_LEN: usize = 16 * 1024;

// The whole point of the constant: a full record must fit.
const _: () = assert!(RECORD_BUFFER_LEN > MAX_RECORD_PAYLOAD);

/// Prefix byte of a stdout record.
pub const STDOUT_PREFIX: u8 = 2;
/// Prefix byte of a stderr record.
pub const STDERR_PREFIX: u8 = 3;

/// The container output stream a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachStream {
    /// Standard output (prefix 2); all output when a terminal is used.
    Stdout,
    /// Standard error (prefix 3).
    Stderr,
}

impl AttachStream {
    /// Maps a record prefix byte to its stream; `None` for any other byte.
    pub fn from_prefix(prefix: u8) -> Option<AttachStream> {
        match prefix {
            STDOUT_PREFIX => Some(AttachStream::Stdout),
            STDERR_PREFIX => Some(AttachStream::Stderr),
            _ => None,
        }
    }

    /// The record prefix byte of this stream.
    pub fn prefix(self) -> u8 {
        match self {
            AttachStream::Stdout => STDOUT_PREFIX,
            AttachStream::Stderr => STDERR_PREFIX,
        }
    }
}

/// One chunk of container output received from the attach socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRecord {
    /// Which stream produced the bytes.
    pub stream: AttachStream,
    /// The output bytes, prefix removed.
    pub data: Vec<u8>,
}

/// How one raw message from the attach socket decodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodedRecord {
    /// A stdout or stderr record.
    Output(AttachRecord),
    /// A record whose prefix byte is not 2 or 3 (callers drop it).
    UnknownPrefix {
        /// The prefix byte.
        prefix: u8,
        /// Number of payload bytes after the prefix.
        len: usize,
    },
    /// A message without even a prefix byte.
    Empty,
}

impl AttachRecord {
    /// Decodes one raw message (prefix byte + payload).
    pub fn decode(raw: &[u8]) -> DecodedRecord {
        let Some((&prefix, payload)) = raw.split_first() else {
            return DecodedRecord::Empty;
        };
        match AttachStream::from_prefix(prefix) {
            Some(stream) => DecodedRecord::Output(AttachRecord {
                stream,
                data: payload.to_vec(),
            }),
            None => DecodedRecord::UnknownPrefix {
                prefix,
                len: payload.len(),
            },
        }
    }

    /// Encodes the record as conmon sends it: prefix byte, then the data.
    /// Useful for fakes and tests.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 1);
        out.push(self.stream.prefix());
        out.extend_from_slice(&self.data);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_map_to_streams() {
        assert_eq!(AttachStream::from_prefix(2), Some(AttachStream::Stdout));
        assert_eq!(AttachStream::from_prefix(3), Some(AttachStream::Stderr));
        for other in [0u8, 1, 4, 7, 255] {
            assert_eq!(AttachStream::from_prefix(other), None, "prefix {other}");
        }
        for stream in [AttachStream::Stdout, AttachStream::Stderr] {
            assert_eq!(AttachStream::from_prefix(stream.prefix()), Some(stream));
        }
    }

    #[test]
    fn decode_cases() {
        assert_eq!(AttachRecord::decode(&[]), DecodedRecord::Empty);
        assert_eq!(
            AttachRecord::decode(b"\x02hi"),
            DecodedRecord::Output(AttachRecord {
                stream: AttachStream::Stdout,
                data: b"hi".to_vec()
            })
        );
        assert_eq!(
            AttachRecord::decode(b"\x03"),
            DecodedRecord::Output(AttachRecord {
                stream: AttachStream::Stderr,
                data: Vec::new()
            })
        );
        assert_eq!(
            AttachRecord::decode(b"\x07abc"),
            DecodedRecord::UnknownPrefix { prefix: 7, len: 3 }
        );
    }

    #[test]
    fn encode_round_trips() {
        let record = AttachRecord {
            stream: AttachStream::Stderr,
            data: vec![0xAA; MAX_RECORD_PAYLOAD],
        };
        let raw = record.encode();
        assert_eq!(raw.len(), MAX_RECORD_PAYLOAD + 1);
        assert!(raw.len() <= RECORD_BUFFER_LEN);
        assert_eq!(AttachRecord::decode(&raw), DecodedRecord::Output(record));
    }
}
