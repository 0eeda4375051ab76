//! Requirement checks for tests that need root or external binaries.
//!
//! A test that cannot run on the current machine must never pass silently.
//! [`require`] returns `true` when everything is available; otherwise it
//! prints a loud `SKIPPED` line and returns `false` on a developer machine,
//! and panics (failing the test) when the `CI` environment variable is set.
//!
//! ```no_run
//! use testkit::{require, Need};
//!
//! if !require(&[Need::Root, Need::Binary("runc"), Need::Binary("conmon")]) {
//!     return;
//! }
//! // ... the real test ...
//! ```

use std::env;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Search path used by [`find_binary`] when `PATH` is unset.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One thing a test needs from its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Need {
    /// The test process must run with effective uid 0.
    Root,
    /// The named binary must be found by [`find_binary`].
    Binary(&'static str),
}

impl Need {
    /// Returns `true` when this requirement holds on the current machine.
    pub fn is_met(&self) -> bool {
        match self {
            Need::Root => is_root(),
            Need::Binary(name) => find_binary(name).is_some(),
        }
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Root => f.write_str("root privileges (effective uid 0)"),
            Need::Binary(name) => write!(f, "binary `{name}` on PATH"),
        }
    }
}

/// Returns `true` when the current process runs with effective uid 0.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Checks every requirement in `needs`.
///
/// - All satisfied: returns `true`.
/// - Something missing and the `CI` environment variable is set to a
///   non-empty value: panics with `requirement not met under CI: <what>`, so
///   the test fails.
/// - Something missing otherwise: prints
///   `SKIPPED <test thread name>: <what is missing>` to stderr and returns
///   `false`; the caller then returns early.
///
/// # Panics
///
/// Panics when a requirement is missing and `CI` is set. This is the point of
/// the function: a test must not pass silently in CI.
#[track_caller]
pub fn require(needs: &[Need]) -> bool {
    let missing = missing_description(needs);
    let under_ci = env::var_os("CI").is_some_and(|v| !v.is_empty());
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("<unnamed test>");
    match decide(missing.as_deref(), under_ci, name) {
        Decision::Run => true,
        Decision::Fail(message) => panic!("{message}"),
        Decision::Skip(message) => {
            eprintln!("{message}");
            false
        }
    }
}

/// Describes the unmet requirements among `needs`, or `None` when all hold.
fn missing_description(needs: &[Need]) -> Option<String> {
    let missing: Vec<String> = needs
        .iter()
        .filter(|need| !need.is_met())
        .map(ToString::to_string)
        .collect();
    if missing.is_empty() {
        None
    } else {
        Some(missing.join(", "))
    }
}

/// What [`require`] does, decided from plain data so it can be tested
/// without touching the process environment.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Run,
    Fail(String),
    Skip(String),
}

fn decide(missing: Option<&str>, under_ci: bool, test_name: &str) -> Decision {
    match missing {
        None => Decision::Run,
        Some(what) if under_ci => Decision::Fail(format!("requirement not met under CI: {what}")),
        Some(what) => Decision::Skip(format!(
            "SKIPPED {test_name}: {what} missing \
             (set CI=1 to turn this skip into a failure)"
        )),
    }
}

/// Finds a binary by name on `PATH` (or on a standard search path when
/// `PATH` is unset) and returns the first regular, executable file found.
///
/// A name containing `/` is treated as a path and checked directly.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    if name.is_empty() {
        return None;
    }
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable_file(&path).then_some(path);
    }
    let path_var = env::var_os("PATH");
    let search = path_var
        .as_deref()
        .unwrap_or_else(|| OsStr::new(DEFAULT_PATH));
    env::split_paths(search)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable_file(candidate))
}

/// Returns `true` for a regular file (after following symlinks) with at least
/// one execute bit set.
fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_runs() {
        assert_eq!(decide(None, true, "t"), Decision::Run);
        assert_eq!(decide(None, false, "t"), Decision::Run);
    }

    #[test]
    fn missing_under_ci_fails_with_reason() {
        assert_eq!(
            decide(Some("binary `x` on PATH"), true, "t"),
            Decision::Fail("requirement not met under CI: binary `x` on PATH".into())
        );
    }

    #[test]
    fn missing_outside_ci_skips_loudly_with_test_name() {
        match decide(Some("root privileges"), false, "my_test") {
            Decision::Skip(message) => {
                assert!(message.starts_with("SKIPPED my_test: root privileges"));
            }
            other => panic!("expected a skip, got {other:?}"),
        }
    }

    #[test]
    fn missing_description_lists_only_unmet_needs() {
        assert_eq!(missing_description(&[Need::Binary("sh")]), None);
        let what = missing_description(&[
            Need::Binary("sh"),
            Need::Binary("testkit-no-such-binary-a"),
            Need::Binary("testkit-no-such-binary-b"),
        ])
        .expect("two binaries are missing");
        assert_eq!(
            what,
            "binary `testkit-no-such-binary-a` on PATH, binary `testkit-no-such-binary-b` on PATH"
        );
    }

    #[test]
    fn require_with_everything_present_returns_true() {
        assert!(require(&[Need::Binary("sh")]));
        assert!(require(&[]));
    }
}
