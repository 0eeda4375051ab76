//! Signals as runtimes name them. A [`Signal`] is a number in 1..=64 that
//! can be parsed from `9`, `KILL` or `SIGKILL` and is rendered for runtime
//! command lines as its number, which every runtime accepts.

use std::fmt;
use std::str::FromStr;

use crate::RuntimeError;

/// A signal number in 1..=64.
///
/// ```
/// use runtime_api::Signal;
/// assert_eq!("SIGKILL".parse::<Signal>()?, Signal::KILL);
/// assert_eq!("term".parse::<Signal>()?.number(), 15);
/// assert!("SIGNOPE".parse::<Signal>().is_err());
/// # Ok::<(), runtime_api::RuntimeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

const NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

impl Signal {
    /// SIGKILL.
    pub const KILL: Signal = Signal(9);
    /// SIGTERM.
    pub const TERM: Signal = Signal(15);
    /// SIGINT.
    pub const INT: Signal = Signal(2);

    /// Wraps a signal number, rejecting anything outside 1..=64.
    pub fn new(number: i32) -> Result<Self, RuntimeError> {
        if (1..=64).contains(&number) {
            Ok(Self(number))
        } else {
            Err(RuntimeError::InvalidArgument(format!(
                "signal {number} is out of range 1..=64"
            )))
        }
    }

    /// The signal number.
    pub fn number(self) -> i32 {
        self.0
    }

    /// The conventional name without `SIG`, when it has one.
    pub fn name(self) -> Option<&'static str> {
        NAMES.iter().find(|(_, n)| *n == self.0).map(|(s, _)| *s)
    }
}

impl FromStr for Signal {
    type Err = RuntimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(n) = s.parse::<i32>() {
            return Self::new(n);
        }
        let upper = s.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some(offset) = bare.strip_prefix("RTMIN+") {
            if let Ok(n) = offset.parse::<i32>() {
                return Self::new(34 + n);
            }
        }
        NAMES
            .iter()
            .find(|(name, _)| *name == bare)
            .map(|(_, n)| Self(*n))
            .ok_or_else(|| RuntimeError::InvalidArgument(format!("unknown signal {s:?}")))
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_names_and_prefixed_names() {
        for (text, n) in [
            ("9", 9),
            ("KILL", 9),
            ("sigkill", 9),
            ("SIGRTMIN+2", 36),
            ("hup", 1),
        ] {
            assert_eq!(text.parse::<Signal>().unwrap().number(), n, "{text}");
        }
        for bad in ["0", "65", "-1", "SIGFOO", ""] {
            assert!(bad.parse::<Signal>().is_err(), "{bad}");
        }
        assert_eq!(Signal::TERM.name(), Some("TERM"));
        assert_eq!(Signal::KILL.to_string(), "9");
    }
}
