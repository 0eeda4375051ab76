//! `/etc/passwd` and `/etc/group` parsing and exec user resolution, through
//! `resolve_exec_user_from_text`.
//!
//! Input: `spec\0passwd\0group`; a missing part is a missing file (and a
//! missing spec the container's own user). Properties: no panic; every
//! error is `InvalidArgument`; a numeric user or group part is the
//! resulting uid or gid; an explicit group means no supplementary groups;
//! supplementary groups are distinct; the home is never empty; an empty
//! spec is the container's user; comment, blank and colon-less lines, CRLF
//! line ends and leading blanks change nothing.

#![no_main]

use conmon_driver::{resolve_exec_user_from_text, ExecUser};
use libfuzzer_sys::fuzz_target;
use runtime_api::RuntimeError;

/// A spec part as the resolver reads it: `Some(Ok(id))` for an id in
/// range, `Some(Err(()))` for a number out of range, `None` for a name.
fn numeric(part: &str) -> Option<Result<u32, ()>> {
    let digits = part.strip_prefix(['+', '-']).unwrap_or(part);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = digits.trim_start_matches('0');
    let zero = value.is_empty();
    match value.parse::<u32>() {
        _ if zero => Some(Ok(0)),
        Ok(v) if v <= i32::MAX as u32 && !part.starts_with('-') => Some(Ok(v)),
        _ => Some(Err(())),
    }
}

/// The same files, with what the parser must skip or trim added.
fn noisy(text: &str) -> String {
    let mut out = String::from("# a comment:x:0:0::/comment:/bin/sh\r\n\r\n   \nno colons here\n");
    for line in text.split('\n') {
        out.push_str("  ");
        out.push_str(line);
        out.push_str("\r\n#:x:0:0:::\n");
    }
    out
}

const DEFAULT_USER: (u32, u32, Vec<u32>) = (1000, 1000, Vec::new());

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let mut parts = text.splitn(3, '\0');
    let spec = parts.next();
    let passwd = parts.next();
    let group = parts.next();
    let default = || (DEFAULT_USER.0, DEFAULT_USER.1, vec![10, 20]);

    let resolved = resolve_exec_user_from_text(passwd, group, spec, default());
    let spec = spec.unwrap_or("");
    match &resolved {
        Ok(ExecUser {
            uid,
            gid,
            additional_gids,
            home,
        }) => {
            assert!(!home.is_empty());
            let (user_part, group_part) = spec.split_once(':').unwrap_or((spec, ""));
            match numeric(user_part) {
                Some(Ok(id)) => assert_eq!(*uid, id),
                Some(Err(())) => panic!("out-of-range user {user_part:?} accepted"),
                None if user_part.is_empty() && group_part.is_empty() => {
                    assert_eq!((*uid, *gid, additional_gids.clone()), default());
                }
                None => {}
            }
            match numeric(group_part) {
                Some(Ok(id)) => assert_eq!(*gid, id),
                Some(Err(())) => panic!("out-of-range group {group_part:?} accepted"),
                None => {}
            }
            if !group_part.is_empty() {
                assert!(additional_gids.is_empty());
            }
            let mut seen = additional_gids.clone();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), additional_gids.len(), "duplicate groups");
        }
        Err(RuntimeError::InvalidArgument(message)) => assert!(!message.is_empty()),
        Err(other) => panic!("unexpected error {other:?}"),
    }

    // An empty spec and no spec are the same.
    if spec.is_empty() {
        let none = resolve_exec_user_from_text(passwd, group, None, default());
        assert_eq!(format!("{none:?}"), format!("{resolved:?}"));
    }

    // What the parser skips or trims does not change the answer.
    let (noisy_passwd, noisy_group) = (passwd.map(noisy), group.map(noisy));
    let again = resolve_exec_user_from_text(
        noisy_passwd.as_deref(),
        noisy_group.as_deref(),
        Some(spec),
        default(),
    );
    assert_eq!(format!("{again:?}"), format!("{resolved:?}"));
});
