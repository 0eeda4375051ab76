//! Several attach records received in one go into one reusable buffer, so
//! that a busy session neither allocates per record nor writes its sinks
//! once per 8 KiB.
//!
//! Each record is received at the position of the last payload byte before
//! it: its prefix byte lands there, is read, and the saved payload byte is
//! put back. The payloads of consecutive records thus sit back to back, and
//! a run of records of one stream is a single slice (see
//! [`RecordBatch::runs`]). Every receive is given a window of exactly
//! [`MAX_BATCH_RECORD`] bytes, eight times the longest record conmon sends,
//! so whether a record fits never depends on where in the batch it lands.
//! A longer message is reported as [`AttachError::RecordTooLong`] after the
//! records before it; [`AttachReader::read_record`](crate::AttachReader::read_record)
//! measures each message first and reads any length whole, at the price
//! of a second system call per record.

use std::io;
use std::iter::FusedIterator;

use crate::record::{AttachStream, MAX_RECORD_PAYLOAD};
use crate::AttachError;

/// The longest message (prefix byte included) that
/// [`AttachReader::read_batch`](crate::AttachReader::read_batch) receives
/// whole: every receive is given a window of this length.
pub const MAX_BATCH_RECORD: usize = 64 * 1024;

/// Buffer length of a [`RecordBatch`]: room for at least 16 full records
/// of conmon (8192 bytes each) before less than a whole
/// [`MAX_BATCH_RECORD`] window is left.
pub const BATCH_BUFFER_LEN: usize = 192 * 1024;

const _: () = assert!(BATCH_BUFFER_LEN >= MAX_BATCH_RECORD + 16 * MAX_RECORD_PAYLOAD);

/// One record's place in the buffer.
#[derive(Debug, Clone, Copy)]
struct Entry {
    stream: AttachStream,
    start: usize,
    end: usize,
}

/// Records received together by
/// [`AttachReader::read_batch`](crate::AttachReader::read_batch).
///
/// Create one per session and pass it to every `read_batch`: its buffer
/// (192 KiB) is reused, and each call replaces the previous records.
///
/// ```
/// use attach::{AttachStream, RecordBatch};
///
/// let batch = RecordBatch::new();
/// assert!(batch.is_empty());
/// assert_eq!(batch.runs().count(), 0);
/// ```
#[derive(Debug)]
pub struct RecordBatch {
    buf: Box<[u8]>,
    /// End of the stored payload bytes. Payloads start at index 1; index 0
    /// is where the first record's prefix lands.
    end: usize,
    records: Vec<Entry>,
    /// The last receive found nothing more to read (or the end).
    drained: bool,
    /// conmon closed the connection.
    ended: bool,
    /// An error met after some records were received, reported by the next
    /// `read_batch` so that those records are delivered first.
    deferred: Option<AttachError>,
    /// A record received in the same system call as one too long, still in
    /// the buffer: the first of the batch after the error.
    held_back: Option<HeldBack>,
}

/// See [`RecordBatch::held_back`].
#[derive(Debug, Clone, Copy)]
struct HeldBack {
    prefix: u8,
    len: usize,
    payload_at: usize,
}

impl Default for RecordBatch {
    fn default() -> Self {
        RecordBatch::new()
    }
}

impl RecordBatch {
    /// An empty batch with a [`BATCH_BUFFER_LEN`] buffer.
    pub fn new() -> Self {
        RecordBatch {
            buf: vec![0; BATCH_BUFFER_LEN].into_boxed_slice(),
            end: 1,
            records: Vec::with_capacity(BATCH_BUFFER_LEN / MAX_RECORD_PAYLOAD + 1),
            drained: false,
            ended: false,
            deferred: None,
            held_back: None,
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Total payload bytes of all records.
    pub fn payload_len(&self) -> usize {
        self.end - 1
    }

    /// Whether the socket had nothing more to read when the batch was
    /// taken: the moment to flush buffered sinks, since the next read will
    /// wait. `false` when the batch stopped only because it was full.
    pub fn is_drained(&self) -> bool {
        self.drained
    }

    /// The records one by one, in the order received.
    pub fn records(&self) -> impl ExactSizeIterator<Item = (AttachStream, &[u8])> + '_ {
        self.records
            .iter()
            .map(|e| (e.stream, &self.buf[e.start..e.end]))
    }

    /// The records with consecutive ones of the same stream joined: the
    /// same bytes in the same order, in as few slices as possible.
    pub fn runs(&self) -> Runs<'_> {
        Runs {
            batch: self,
            next: 0,
        }
    }

    /// Forgets the records (keeps the buffer and the end-of-stream state).
    pub(crate) fn clear(&mut self) {
        self.end = 1;
        self.records.clear();
        self.drained = false;
    }

    pub(crate) fn take_deferred(&mut self) -> Option<AttachError> {
        self.deferred.take()
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.ended
    }

    /// Receives records with `recv` until the socket is found empty, the
    /// stream ends, an error occurs or no window is left.
    ///
    /// `recv` gets a window of exactly [`MAX_BATCH_RECORD`] bytes, and a
    /// second one after it whenever two fit: it receives the ready messages
    /// into them (at most one per window, without waiting) and returns their
    /// full lengths (`MSG_TRUNC`), 0 at the end of the stream. When a second
    /// window was offered and came back empty, the socket had nothing more:
    /// that is known without a receive that would block, which is what makes
    /// a session's every record cost one system call instead of two while
    /// the container writes slower than the session reads. Returns
    /// `Err(WouldBlock)` exactly when the socket was found empty (so the
    /// caller can clear readiness); other errors are kept in the batch.
    pub(crate) fn fill(
        &mut self,
        mut recv: impl FnMut(&mut [u8], Option<&mut [u8]>) -> io::Result<WindowLengths>,
    ) -> io::Result<()> {
        if let Some(held) = self.held_back.take() {
            self.accept(held.prefix, held.len, held.payload_at);
        }
        while !self.ended && self.deferred.is_none() {
            let slot = self.end - 1;
            let room = self.buf.len() - slot;
            if room < MAX_BATCH_RECORD {
                return Ok(());
            }
            let offers_second = room >= 2 * MAX_BATCH_RECORD;
            let saved = self.buf[slot];
            let (first, rest) = self.buf[slot..].split_at_mut(MAX_BATCH_RECORD);
            let second = offers_second.then(|| &mut rest[..MAX_BATCH_RECORD]);
            let received = recv(first, second);
            let prefix = self.buf[slot];
            self.buf[slot] = saved;
            let received = match received {
                Ok(received) => received,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.drained = true;
                    return Err(e);
                }
                Err(e) => {
                    self.drained = true;
                    self.deferred = Some(AttachError::io("receiving from the attach socket", e));
                    return Ok(());
                }
            };
            self.accept(prefix, received.first, slot + 1);
            if let Some(len) = received.second {
                let at = slot + MAX_BATCH_RECORD;
                let prefix = self.buf[at];
                if self.deferred.is_some() {
                    // Delivered after the error, as it came after the
                    // record the error is about.
                    self.held_back = Some(HeldBack {
                        prefix,
                        len,
                        payload_at: at + 1,
                    });
                } else if !self.ended {
                    self.accept(prefix, len, at + 1);
                }
            } else if offers_second && !self.ended {
                self.drained = true;
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        Ok(())
    }

    /// Takes one received message (prefix byte, full length) whose payload
    /// starts at `payload_at`, moving the payload to the end of the stored
    /// ones if it is not already there.
    fn accept(&mut self, prefix: u8, len: usize, payload_at: usize) {
        if len == 0 {
            self.ended = true;
            self.drained = true;
            return;
        }
        if len > MAX_BATCH_RECORD {
            self.deferred = Some(AttachError::RecordTooLong {
                len,
                limit: MAX_BATCH_RECORD,
            });
            return;
        }
        let Some(stream) = AttachStream::from_prefix(prefix) else {
            tracing::warn!(
                prefix,
                len = len - 1,
                "dropping attach record with unknown stream prefix"
            );
            return;
        };
        let payload = len - 1;
        if payload_at != self.end {
            self.buf
                .copy_within(payload_at..payload_at + payload, self.end);
        }
        self.records.push(Entry {
            stream,
            start: self.end,
            end: self.end + payload,
        });
        self.end += payload;
    }
}

/// What one receive of [`RecordBatch::fill`] got: the full length of the
/// message in the first window, and of the one in the second window when a
/// second was offered and a message was ready for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowLengths {
    pub(crate) first: usize,
    pub(crate) second: Option<usize>,
}

/// Iterator of [`RecordBatch::runs`].
#[derive(Debug)]
pub struct Runs<'a> {
    batch: &'a RecordBatch,
    next: usize,
}

impl<'a> Iterator for Runs<'a> {
    type Item = (AttachStream, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let records = &self.batch.records;
        let first = *records.get(self.next)?;
        let mut end = first.end;
        self.next += 1;
        while let Some(e) = records.get(self.next) {
            if e.stream != first.stream {
                break;
            }
            end = e.end;
            self.next += 1;
        }
        Some((first.stream, &self.batch.buf[first.start..end]))
    }
}

impl FusedIterator for Runs<'_> {}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// Plays messages into the windows as a SEQPACKET socket would: one per
    /// window, cut to the window, full length returned; then `WouldBlock`
    /// (or the end) when not even one is left.
    fn player(
        messages: Vec<Vec<u8>>,
        then: io::ErrorKind,
    ) -> impl FnMut(&mut [u8], Option<&mut [u8]>) -> io::Result<WindowLengths> {
        let mut messages = VecDeque::from(messages);
        let mut play = move |window: &mut [u8]| match messages.pop_front() {
            Some(m) => {
                let n = m.len().min(window.len());
                window[..n].copy_from_slice(&m[..n]);
                Some(m.len())
            }
            None if then == io::ErrorKind::UnexpectedEof => Some(0),
            None => None,
        };
        move |first: &mut [u8], second: Option<&mut [u8]>| {
            let Some(first) = play(first) else {
                return Err(then.into());
            };
            Ok(WindowLengths {
                first,
                second: second.and_then(&mut play),
            })
        }
    }

    fn record(prefix: u8, byte: u8, len: usize) -> Vec<u8> {
        let mut m = vec![byte; len + 1];
        m[0] = prefix;
        m
    }

    #[test]
    fn payloads_are_joined_per_stream_and_exact() {
        let mut batch = RecordBatch::new();
        let messages = vec![
            record(2, b'a', 8192),
            record(2, b'b', 10),
            record(3, b'c', 5),
            record(2, b'd', 8192),
            record(3, b'e', 0),
            record(3, b'f', 1),
        ];
        let result = batch.fill(player(messages, io::ErrorKind::WouldBlock));
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert!(batch.is_drained());
        assert_eq!(batch.len(), 6);
        assert_eq!(batch.payload_len(), 8192 + 10 + 5 + 8192 + 1);
        let records: Vec<(AttachStream, Vec<u8>)> =
            batch.records().map(|(s, d)| (s, d.to_vec())).collect();
        assert_eq!(records[0], (AttachStream::Stdout, vec![b'a'; 8192]));
        assert_eq!(records[1], (AttachStream::Stdout, vec![b'b'; 10]));
        assert_eq!(records[2], (AttachStream::Stderr, vec![b'c'; 5]));
        assert_eq!(records[3], (AttachStream::Stdout, vec![b'd'; 8192]));
        assert_eq!(records[4], (AttachStream::Stderr, vec![]));
        assert_eq!(records[5], (AttachStream::Stderr, vec![b'f']));
        let runs: Vec<(AttachStream, Vec<u8>)> =
            batch.runs().map(|(s, d)| (s, d.to_vec())).collect();
        let mut first = vec![b'a'; 8192];
        first.extend([b'b'; 10]);
        assert_eq!(
            runs,
            [
                (AttachStream::Stdout, first),
                (AttachStream::Stderr, vec![b'c'; 5]),
                (AttachStream::Stdout, vec![b'd'; 8192]),
                (AttachStream::Stderr, vec![b'f']),
            ]
        );
    }

    #[test]
    fn a_full_batch_stops_with_a_window_left_and_is_not_drained() {
        let mut batch = RecordBatch::new();
        let messages: Vec<Vec<u8>> = (0..40u8).map(|i| record(2, i, 8192)).collect();
        batch
            .fill(player(messages, io::ErrorKind::WouldBlock))
            .unwrap();
        assert!(!batch.is_drained());
        // 17 records of 8192 bytes leave less than a window of 64 KiB.
        assert_eq!(batch.len(), 17);
        let joined: Vec<u8> = batch.runs().flat_map(|(_, d)| d.to_vec()).collect();
        let expected: Vec<u8> = (0..17u8).flat_map(|i| vec![i; 8192]).collect();
        assert_eq!(joined, expected);
        batch.clear();
        assert!(batch.is_empty() && batch.payload_len() == 0);
    }

    #[test]
    fn unknown_prefixes_are_dropped_without_a_trace_in_the_payload() {
        let mut batch = RecordBatch::new();
        let messages = vec![record(2, b'x', 3), record(7, b'?', 9), record(2, b'y', 2)];
        let _ = batch.fill(player(messages, io::ErrorKind::WouldBlock));
        let runs: Vec<(AttachStream, Vec<u8>)> =
            batch.runs().map(|(s, d)| (s, d.to_vec())).collect();
        assert_eq!(runs, [(AttachStream::Stdout, b"xxxyy".to_vec())]);
    }

    #[test]
    fn end_of_stream_keeps_the_records_and_sticks() {
        let mut batch = RecordBatch::new();
        let messages = vec![record(3, b'z', 4)];
        batch
            .fill(player(messages, io::ErrorKind::UnexpectedEof))
            .unwrap();
        assert!(batch.is_ended() && batch.is_drained());
        assert_eq!(batch.len(), 1);
        batch.clear();
        batch
            .fill(|_, _| panic!("no receive after the end"))
            .expect("nothing to do");
        assert!(batch.is_empty() && batch.is_ended());
    }

    #[test]
    fn an_oversized_record_is_deferred_after_the_good_ones() {
        let mut batch = RecordBatch::new();
        let messages = vec![record(2, b'a', 1), record(2, b'b', MAX_BATCH_RECORD)];
        batch
            .fill(player(messages, io::ErrorKind::WouldBlock))
            .unwrap();
        assert_eq!(batch.len(), 1);
        match batch.take_deferred() {
            Some(AttachError::RecordTooLong { len, limit }) => {
                assert_eq!((len, limit), (MAX_BATCH_RECORD + 1, MAX_BATCH_RECORD));
            }
            other => panic!("unexpected {other:?}"),
        }
        // The largest record that fits is whole, wherever it lands.
        batch.clear();
        let mut messages: Vec<Vec<u8>> = (0..16u8).map(|i| record(2, i, 8192)).collect();
        messages.push(record(2, b'c', MAX_BATCH_RECORD - 1));
        let _ = batch.fill(player(messages, io::ErrorKind::WouldBlock));
        assert_eq!(batch.len(), 17);
        assert_eq!(batch.payload_len(), 16 * 8192 + MAX_BATCH_RECORD - 1);
    }

    #[test]
    fn receive_errors_are_deferred_and_interruptions_retried() {
        let mut batch = RecordBatch::new();
        let mut calls = 0;
        batch
            .fill(|first, second| {
                calls += 1;
                match (calls, second) {
                    (1, _) => Err(io::ErrorKind::Interrupted.into()),
                    (2, Some(second)) => {
                        first[..2].copy_from_slice(b"\x02k");
                        second[..2].copy_from_slice(b"\x03m");
                        Ok(WindowLengths {
                            first: 2,
                            second: Some(2),
                        })
                    }
                    _ => Err(io::ErrorKind::ConnectionReset.into()),
                }
            })
            .unwrap();
        assert_eq!(calls, 3);
        assert_eq!(batch.len(), 2);
        assert_eq!(
            batch.runs().map(|(_, d)| d.to_vec()).collect::<Vec<_>>(),
            [b"k".to_vec(), b"m".to_vec()]
        );
        assert!(matches!(
            batch.take_deferred(),
            Some(AttachError::Io { .. })
        ));
    }

    #[test]
    fn a_receive_of_two_that_brings_one_ends_the_batch_without_another_call() {
        let mut batch = RecordBatch::new();
        let mut calls = 0;
        let mut play = player(vec![record(2, b'q', 8192)], io::ErrorKind::WouldBlock);
        let result = batch.fill(|first, second| {
            calls += 1;
            assert!(second.is_some(), "an empty batch offers two windows");
            play(first, second)
        });
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert_eq!(calls, 1);
        assert!(batch.is_drained());
        assert_eq!(batch.records().next().unwrap().1, &[b'q'; 8192][..]);
    }

    #[test]
    fn the_record_received_with_one_too_long_comes_after_the_error() {
        let mut batch = RecordBatch::new();
        let messages = vec![
            record(2, b'a', 3),
            record(2, b'b', MAX_BATCH_RECORD),
            record(3, b'c', 4),
            record(2, b'd', 5),
        ];
        let mut play = player(messages, io::ErrorKind::WouldBlock);
        // One receive brings `a` and `b`, too long: `a` is delivered, then
        // the error.
        let _ = batch.fill(&mut play);
        let records: Vec<(AttachStream, Vec<u8>)> =
            batch.records().map(|(s, d)| (s, d.to_vec())).collect();
        assert_eq!(records, [(AttachStream::Stdout, b"aaa".to_vec())]);
        assert!(matches!(
            batch.take_deferred(),
            Some(AttachError::RecordTooLong { .. })
        ));
        batch.clear();
        let _ = batch.fill(&mut play);
        let records: Vec<(AttachStream, Vec<u8>)> =
            batch.records().map(|(s, d)| (s, d.to_vec())).collect();
        assert_eq!(
            records,
            [
                (AttachStream::Stderr, b"cccc".to_vec()),
                (AttachStream::Stdout, b"ddddd".to_vec())
            ]
        );

        // Too long in the first window, a record in the second: the error
        // first, then that record whole.
        let mut batch = RecordBatch::new();
        let messages = vec![record(2, b'x', MAX_BATCH_RECORD), record(3, b'y', 8192)];
        let mut play = player(messages, io::ErrorKind::WouldBlock);
        let _ = batch.fill(&mut play);
        assert!(batch.is_empty());
        assert!(batch.take_deferred().is_some());
        batch.clear();
        let result = batch.fill(&mut play);
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        let records: Vec<(AttachStream, Vec<u8>)> =
            batch.records().map(|(s, d)| (s, d.to_vec())).collect();
        assert_eq!(records, [(AttachStream::Stderr, vec![b'y'; 8192])]);
    }
}
