//! Defensive parsers for cgroup and procfs files: a file holding one
//! number, a flat `key value` file (`memory.stat`, `cpu.stat`), and the
//! list of pids in `cgroup.procs`. Odd contents give `None` or skip the
//! line; nothing here panics on what the kernel (or a test) wrote.

use std::collections::HashMap;
use std::path::Path;

/// The single unsigned number in `text` (surrounding white space allowed);
/// `None` for anything else, `max` included.
pub fn single_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The `key value` pairs of a flat keyed file; lines that are not one key
/// and one unsigned number are skipped.
pub fn flat_keyed(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let key = words.next()?;
            let value = words.next()?.parse().ok()?;
            words.next().is_none().then(|| (key.to_string(), value))
        })
        .collect()
}

/// The number of pids listed in a `cgroup.procs` file (lines that are
/// not numbers are not counted).
pub fn count_pids(text: &str) -> u64 {
    let n = text
        .lines()
        .filter(|l| l.trim().parse::<u32>().is_ok())
        .count();
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The contents of `path`, or `None` when it cannot be read (a cgroup gone
/// or a controller not enabled are both ordinary).
pub fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// [`single_u64`] of the file at `path`.
pub fn read_u64(path: &Path) -> Option<u64> {
    read(path).as_deref().and_then(single_u64)
}

/// [`flat_keyed`] of the file at `path` (empty when unreadable).
pub fn read_keyed(path: &Path) -> HashMap<String, u64> {
    read(path).as_deref().map(flat_keyed).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_numbers_and_garbage() {
        assert_eq!(single_u64("42\n"), Some(42));
        assert_eq!(single_u64("  7 "), Some(7));
        for bad in [
            "",
            "max\n",
            "-1",
            "1 2",
            "12abc",
            "\u{0}",
            "99999999999999999999999",
        ] {
            assert_eq!(single_u64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keyed_files_skip_odd_lines() {
        let parsed =
            flat_keyed("usage_usec 100\nbroken\nuser_usec x\nthree words 1\n\nnr_periods 0\n");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed["usage_usec"], 100);
        assert_eq!(parsed["nr_periods"], 0);
        assert!(flat_keyed("\u{fffd}\u{0} \n-- --").is_empty());
    }

    #[test]
    fn pid_lists() {
        assert_eq!(count_pids("1\n22\n333\n"), 3);
        assert_eq!(count_pids("1\nzombie\n\n"), 1);
        assert_eq!(count_pids(""), 0);
    }
}
