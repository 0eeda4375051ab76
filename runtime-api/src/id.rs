//! Container identifiers, validated once so that every later use (file
//! names under the exit and persist directories, runtime command lines) is
//! safe: an id can never name a path outside its directory or split an argv.

use std::fmt;
use std::str::FromStr;

use crate::RuntimeError;

/// The longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

const RULE: &str = "1 to 128 bytes of [A-Za-z0-9_.-], not starting with '.' or '-'";

/// A container id: 1..=128 bytes of `[A-Za-z0-9_.-]`, not starting with `.`
/// or `-`.
///
/// ```
/// use runtime_api::ContainerId;
/// assert!(ContainerId::new("abc_1.2-x").is_ok());
/// for bad in ["", "../x", "a/b", "-flag", ".hidden", "has space", "nul\0"] {
///     assert!(ContainerId::new(bad).is_err(), "{bad:?}");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(String);

impl ContainerId {
    /// Validates `id` and wraps it.
    pub fn new(id: impl Into<String>) -> Result<Self, RuntimeError> {
        let id = id.into();
        let problem = if id.is_empty() {
            Some("it is empty".to_string())
        } else if id.len() > MAX_ID_LEN {
            Some(format!("it is {} bytes long", id.len()))
        } else if id.starts_with('.') || id.starts_with('-') {
            Some(format!("it starts with {:?}", &id[..1]))
        } else {
            id.bytes()
                .find(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))
                .map(|b| format!("it contains the byte {:?}", char::from(b)))
        };
        match problem {
            None => Ok(Self(id)),
            Some(problem) => Err(RuntimeError::InvalidArgument(format!(
                "container id {:?} is invalid: {problem}; an id must be {RULE}",
                truncate_for_message(&id)
            ))),
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn truncate_for_message(id: &str) -> String {
    id.chars().take(40).collect::<String>() + if id.chars().count() > 40 { "..." } else { "" }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ContainerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContainerId {
    type Err = RuntimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for ContainerId {
    type Error = RuntimeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet_up_to_128_bytes() {
        for ok in [
            "a",
            "A9",
            "x.y",
            "x-y",
            "x_y",
            "_lead",
            "0",
            &"a".repeat(128),
        ] {
            assert_eq!(ContainerId::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_each_broken_rule_and_names_the_rule() {
        let long = "a".repeat(129);
        let cases = [
            ("", "empty"),
            ("../x", "starts with"),
            ("a/b", "'/'"),
            (long.as_str(), "129 bytes"),
            ("a\0b", "'\\0'"),
            ("a b", "' '"),
            ("-rf", "starts with"),
            (".x", "starts with"),
            ("é", "byte"),
        ];
        for (bad, why) in cases {
            let err = ContainerId::new(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(err.contains(RULE), "{bad:?}: {err}");
            assert_eq!(
                RuntimeError::InvalidArgument(String::new()).exit_code(),
                125
            );
        }
    }
}
