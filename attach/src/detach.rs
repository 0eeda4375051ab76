//! Detach keys: the key sequence that ends an attach session without
//! stopping the container, and the pure matcher that finds it in input.
//!
//! The specification grammar is Docker's: a comma-separated list whose items
//! are each one literal ASCII character or one of `ctrl-a`..`ctrl-z`
//! (1..26), `ctrl-@` (0), `ctrl-[` (27), `ctrl-\` (28), `ctrl-]` (29),
//! `ctrl-^` (30), `ctrl-_` (31). The default is `ctrl-p,ctrl-q`; the empty
//! string means "never detach". [`DetachMatcher`] scans input for the
//! sequence across arbitrary read boundaries; `copy.rs` drives it.

use std::fmt;

use crate::AttachError;

/// The default detach key specification.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// A parsed detach key sequence (possibly empty: never detach).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DetachKeys {
    bytes: Vec<u8>,
}

impl DetachKeys {
    /// Parses a detach key specification.
    ///
    /// ```
    /// use attach::DetachKeys;
    ///
    /// assert_eq!(DetachKeys::parse("ctrl-p,ctrl-q")?.as_bytes(), &[16, 17]);
    /// assert_eq!(DetachKeys::parse("x,ctrl-@")?.as_bytes(), b"x\0");
    /// assert!(DetachKeys::parse("")?.is_never());
    /// assert!(DetachKeys::parse("ctrl-1").is_err());
    /// # Ok::<(), attach::AttachError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`AttachError::InvalidDetachKey`] naming the first item that is
    /// neither one ASCII character nor a known `ctrl-` name (including an
    /// empty item, as in `"a,,b"` or `"a,"`).
    pub fn parse(spec: &str) -> Result<DetachKeys, AttachError> {
        if spec.is_empty() {
            return Ok(DetachKeys::never());
        }
        let bytes = spec
            .split(',')
            .map(parse_key)
            .collect::<Result<Vec<u8>, AttachError>>()?;
        Ok(DetachKeys { bytes })
    }

    /// The empty sequence: input is never treated as a detach request.
    pub fn never() -> DetachKeys {
        DetachKeys { bytes: Vec::new() }
    }

    /// Returns `true` for the empty sequence.
    pub fn is_never(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The byte sequence that detaches.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Default for DetachKeys {
    /// `ctrl-p,ctrl-q`.
    fn default() -> Self {
        DetachKeys {
            bytes: vec![ctrl(b'p'), ctrl(b'q')],
        }
    }
}

impl fmt::Display for DetachKeys {
    /// Writes the canonical specification (`ctrl-` names for control
    /// bytes), which [`DetachKeys::parse`] reads back to the same keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &byte) in self.bytes.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match byte {
                0..=31 => write!(f, "ctrl-{}", char::from(byte + 0x40).to_ascii_lowercase())?,
                _ => write!(f, "{}", char::from(byte))?,
            }
        }
        Ok(())
    }
}

/// Control code of an ASCII letter or symbol (`ctrl(b'p') == 16`).
const fn ctrl(c: u8) -> u8 {
    c & 0x1f
}

/// Parses one comma-separated item.
fn parse_key(key: &str) -> Result<u8, AttachError> {
    let invalid = || AttachError::InvalidDetachKey {
        key: key.to_owned(),
    };
    match key.as_bytes() {
        [c] if c.is_ascii() => Ok(*c),
        [b'c', b't', b'r', b'l', b'-', c] => match c {
            b'a'..=b'z' => Ok(c - b'a' + 1),
            b'@' => Ok(0),
            b'[' => Ok(27),
            b'\\' => Ok(28),
            b']' => Ok(29),
            b'^' => Ok(30),
            b'_' => Ok(31),
            _ => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}

/// Finds a detach sequence in a stream of input chunks.
///
/// Bytes that cannot be part of the sequence are returned for forwarding
/// immediately; bytes that might start it are held back until the next
/// bytes decide. When the sequence completes it is swallowed (never
/// forwarded) and [`feed`](DetachMatcher::feed) reports `detached`; input
/// after it in the same chunk is discarded, and the matcher starts afresh.
/// Overlaps are handled: with `ctrl-p,ctrl-q`, input `ctrl-p ctrl-p ctrl-q`
/// forwards the first `ctrl-p` and detaches.
#[derive(Debug, Clone)]
pub struct DetachMatcher {
    keys: Vec<u8>,
    /// Length of the prefix of `keys` matched by the held-back bytes.
    matched: usize,
}

impl DetachMatcher {
    /// Creates a matcher for `keys`.
    pub fn new(keys: &DetachKeys) -> Self {
        DetachMatcher {
            keys: keys.as_bytes().to_vec(),
            matched: 0,
        }
    }

    /// Scans `bytes`; returns the bytes to forward now and whether the
    /// detach sequence completed.
    pub fn feed(&mut self, bytes: &[u8]) -> (Vec<u8>, bool) {
        let mut forward = Vec::with_capacity(bytes.len());
        let detached = self.feed_into(bytes, &mut forward);
        (forward, detached)
    }

    /// [`feed`](DetachMatcher::feed) into a caller's buffer: appends the
    /// bytes to forward now to `forward` and returns whether the detach
    /// sequence completed. Lets a copy loop reuse one buffer.
    pub fn feed_into(&mut self, bytes: &[u8], forward: &mut Vec<u8>) -> bool {
        let Some(&first_key) = self.keys.first() else {
            forward.extend_from_slice(bytes);
            return false;
        };
        let mut rest = bytes;
        loop {
            if self.matched == 0 {
                // Nothing held back: every byte up to the next possible
                // start of the sequence goes through as it is.
                match rest.iter().position(|&b| b == first_key) {
                    Some(i) => {
                        forward.extend_from_slice(&rest[..i]);
                        rest = &rest[i..];
                    }
                    None => {
                        forward.extend_from_slice(rest);
                        return false;
                    }
                }
            }
            let Some((&byte, tail)) = rest.split_first() else {
                return false;
            };
            rest = tail;
            if self.keys.get(self.matched) == Some(&byte) {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return true;
                }
                continue;
            }
            // Mismatch: of the held-back bytes plus this one, keep the
            // longest suffix that still starts the sequence, forward the
            // rest. Candidates are tiny (a few keys), so a naive scan will do.
            let mut candidate = self.keys[..self.matched].to_vec();
            candidate.push(byte);
            let keep_from = (1..=candidate.len())
                .find(|&start| self.keys.starts_with(&candidate[start..]))
                .unwrap_or(candidate.len());
            forward.extend_from_slice(&candidate[..keep_from]);
            self.matched = candidate.len() - keep_from;
        }
    }

    /// The bytes currently held back (a proper prefix of the sequence).
    pub fn pending(&self) -> &[u8] {
        &self.keys[..self.matched]
    }

    /// Ends the input: returns the held-back bytes, which turned out not to
    /// be a detach sequence and must be forwarded, and resets the matcher.
    pub fn finish(&mut self) -> Vec<u8> {
        let pending = self.pending().to_vec();
        self.matched = 0;
        pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u8 = 16;
    const Q: u8 = 17;

    #[test]
    fn named_keys() {
        for (i, letter) in (b'a'..=b'z').enumerate() {
            let spec = format!("ctrl-{}", char::from(letter));
            let keys = DetachKeys::parse(&spec).expect("valid letter");
            assert_eq!(
                keys.as_bytes(),
                &[u8::try_from(i + 1).expect("small")],
                "{spec}"
            );
        }
        let symbols = [
            ("ctrl-@", 0u8),
            ("ctrl-[", 27),
            ("ctrl-\\", 28),
            ("ctrl-]", 29),
            ("ctrl-^", 30),
            ("ctrl-_", 31),
        ];
        for (spec, code) in symbols {
            assert_eq!(
                DetachKeys::parse(spec).expect(spec).as_bytes(),
                &[code],
                "{spec}"
            );
        }
    }

    #[test]
    fn literal_characters_and_lists() {
        let cases: &[(&str, &[u8])] = &[
            ("a", b"a"),
            ("A", b"A"),
            ("1", b"1"),
            (" ", b" "),
            ("-", b"-"),
            ("\\", b"\\"),
            ("ctrl-p,ctrl-q", &[P, Q]),
            ("ctrl-a,b,ctrl-@", &[1, b'b', 0]),
            ("x,x,x", b"xxx"),
        ];
        for (spec, bytes) in cases {
            assert_eq!(
                DetachKeys::parse(spec).expect(spec).as_bytes(),
                *bytes,
                "{spec:?}"
            );
        }
    }

    #[test]
    fn default_and_never() {
        assert_eq!(DetachKeys::default().as_bytes(), &[P, Q]);
        assert_eq!(
            DetachKeys::parse(DEFAULT_DETACH_KEYS).expect("default"),
            DetachKeys::default()
        );
        assert!(DetachKeys::parse("").expect("empty").is_never());
        assert_eq!(DetachKeys::never().as_bytes(), &[] as &[u8]);
        assert!(!DetachKeys::default().is_never());
    }

    #[test]
    fn invalid_items_are_named() {
        let cases = [
            ("ctrl-1", "ctrl-1"),
            ("ab", "ab"),
            ("ctrl-", "ctrl-"),
            ("ctrl-p,,ctrl-q", ""),
            ("ctrl-p,", ""),
            (",", ""),
            ("ctrl-P", "ctrl-P"),
            ("CTRL-p", "CTRL-p"),
            ("ctrl-pp", "ctrl-pp"),
            ("ctrl-p,ctrl-{", "ctrl-{"),
            ("é", "é"),
            ("ctrl-é", "ctrl-é"),
            ("x, y", " y"),
        ];
        for (spec, bad) in cases {
            match DetachKeys::parse(spec) {
                Err(AttachError::InvalidDetachKey { key }) => assert_eq!(key, bad, "{spec:?}"),
                other => panic!("{spec:?}: unexpected {other:?}"),
            }
        }
        let message = DetachKeys::parse("ctrl-p,ctrl-1")
            .expect_err("bad")
            .to_string();
        assert!(message.contains("\"ctrl-1\""), "{message}");
    }

    #[test]
    fn display_round_trips() {
        for spec in [
            "ctrl-p,ctrl-q",
            "a,ctrl-@,ctrl-\\,ctrl-_,~",
            "",
            "ctrl-[,ctrl-],ctrl-^",
        ] {
            let keys = DetachKeys::parse(spec).expect(spec);
            assert_eq!(keys.to_string(), spec);
            assert_eq!(
                DetachKeys::parse(&keys.to_string()).expect("round trip"),
                keys
            );
        }
    }

    /// `(keys, input, forwarded, detached)`; `forwarded` includes what
    /// `finish` returns when the input ends without a detach.
    fn matcher_table() -> Vec<(DetachKeys, Vec<u8>, Vec<u8>, bool)> {
        let pq = DetachKeys::default();
        let single = DetachKeys::parse("ctrl-x").expect("valid");
        let aab = DetachKeys::parse("a,a,b").expect("valid");
        let abab = DetachKeys::parse("a,b,a,c").expect("valid");
        vec![
            (pq.clone(), b"hello".to_vec(), b"hello".to_vec(), false),
            (pq.clone(), vec![P, Q], vec![], true),
            (pq.clone(), vec![b'a', P, Q, b'z'], vec![b'a'], true),
            (pq.clone(), vec![P, b'x'], vec![P, b'x'], false),
            (pq.clone(), vec![P, P, Q], vec![P], true),
            (pq.clone(), vec![P, P, P, Q], vec![P, P], true),
            (pq.clone(), vec![Q, P], vec![Q, P], false),
            (pq.clone(), vec![b'a', P], vec![b'a', P], false),
            (pq.clone(), vec![P, b'x', P, Q], vec![P, b'x'], true),
            (single.clone(), vec![b'a', 24, b'b'], vec![b'a'], true),
            (single, b"abc".to_vec(), b"abc".to_vec(), false),
            (aab.clone(), b"aaab".to_vec(), b"a".to_vec(), true),
            (aab.clone(), b"aaaab".to_vec(), b"aa".to_vec(), true),
            (aab.clone(), b"aac".to_vec(), b"aac".to_vec(), false),
            (aab, b"xaa".to_vec(), b"xaa".to_vec(), false),
            (abab.clone(), b"ababac".to_vec(), b"ab".to_vec(), true),
            (abab, b"abab".to_vec(), b"abab".to_vec(), false),
            (DetachKeys::never(), vec![P, Q, 0], vec![P, Q, 0], false),
        ]
    }

    /// Feeds `parts` in order, stopping at a detach; returns everything
    /// forwarded (plus `finish` at the end) and whether it detached.
    fn run(keys: &DetachKeys, parts: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut matcher = DetachMatcher::new(keys);
        let mut forwarded = Vec::new();
        for part in parts {
            let (out, detached) = matcher.feed(part);
            forwarded.extend(out);
            if detached {
                assert!(matcher.pending().is_empty());
                return (forwarded, true);
            }
        }
        forwarded.extend(matcher.finish());
        (forwarded, false)
    }

    #[test]
    fn matcher_whole_input() {
        for (keys, input, forwarded, detached) in matcher_table() {
            assert_eq!(
                run(&keys, &[&input]),
                (forwarded, detached),
                "keys {keys} input {input:?}"
            );
        }
    }

    #[test]
    fn matcher_split_at_every_position() {
        for (keys, input, forwarded, detached) in matcher_table() {
            for i in 0..=input.len() {
                for j in i..=input.len() {
                    let parts = [&input[..i], &input[i..j], &input[j..]];
                    assert_eq!(
                        run(&keys, &parts),
                        (forwarded.clone(), detached),
                        "keys {keys} input {input:?} splits at {i},{j}"
                    );
                }
            }
        }
    }

    #[test]
    fn matcher_byte_by_byte() {
        for (keys, input, forwarded, detached) in matcher_table() {
            let parts: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(
                run(&keys, &parts),
                (forwarded, detached),
                "keys {keys} input {input:?}"
            );
        }
    }

    #[test]
    fn matcher_holds_back_only_a_possible_start() {
        let mut matcher = DetachMatcher::new(&DetachKeys::default());
        assert_eq!(matcher.feed(&[b'a', P]), (vec![b'a'], false));
        assert_eq!(matcher.pending(), &[P]);
        assert_eq!(matcher.feed(&[P]), (vec![P], false));
        assert_eq!(matcher.pending(), &[P]);
        assert_eq!(matcher.finish(), vec![P]);
        assert!(matcher.pending().is_empty());
        // A fresh start after detaching.
        assert_eq!(matcher.feed(&[P, Q, b'z']), (vec![], true));
        assert_eq!(matcher.feed(b"z"), (b"z".to_vec(), false));
    }
}
