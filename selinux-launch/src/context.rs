//! SELinux security contexts (`user:role:type[:level]`) and the rule that
//! derives conmon's label from the engine's own.
//!
//! Parsing follows go-selinux's `NewContext`: the text is split on the first
//! three colons only, so an MLS/MCS level keeps its own colons
//! (`s0-s0:c0.c1023`). A context without a level (`user:role:type`) is valid,
//! as on hosts whose policy has MLS disabled.

use std::fmt;
use std::str::FromStr;

use crate::error::SelinuxError;

/// The MLS/MCS level podman gives conmon (sensitivity 0, no categories).
pub const CONMON_LEVEL: &str = "s0";

/// An SELinux security context, `user:role:type` with an optional level.
///
/// Parse one with [`str::parse`] or [`SecurityLabel::parse`]; `Display`
/// writes it back in the same form, so parsing then printing gives the input.
///
/// ```
/// use selinux_launch::SecurityLabel;
///
/// let label: SecurityLabel = "system_u:system_r:container_t:s0:c1,c2".parse()?;
/// assert_eq!(label.type_(), "container_t");
/// assert_eq!(label.level(), Some("s0:c1,c2"));
/// assert_eq!(label.to_string(), "system_u:system_r:container_t:s0:c1,c2");
/// # Ok::<(), selinux_launch::SelinuxError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecurityLabel {
    user: String,
    role: String,
    type_: String,
    level: Option<String>,
}

impl SecurityLabel {
    /// Parses `user:role:type` or `user:role:type:level`.
    ///
    /// # Errors
    ///
    /// [`SelinuxError::InvalidLabel`] naming the input when it has fewer
    /// than three parts, an empty part, or a NUL, whitespace or other
    /// control character (none can appear in a kernel context).
    pub fn parse(input: &str) -> Result<Self, SelinuxError> {
        let invalid = |reason| SelinuxError::InvalidLabel {
            input: input.to_owned(),
            reason,
        };
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "it contains whitespace, NUL or another control character",
            ));
        }
        let mut parts = input.splitn(4, ':');
        let (Some(user), Some(role), Some(type_)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("expected user:role:type[:level]"));
        };
        let level = parts.next();
        if user.is_empty() || role.is_empty() || type_.is_empty() || level == Some("") {
            return Err(invalid("a part of user:role:type[:level] is empty"));
        }
        Ok(SecurityLabel {
            user: user.to_owned(),
            role: role.to_owned(),
            type_: type_.to_owned(),
            level: level.map(str::to_owned),
        })
    }

    /// The SELinux user, e.g. `system_u`.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The role, e.g. `system_r`.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The type (domain), e.g. `container_runtime_t`.
    pub fn type_(&self) -> &str {
        &self.type_
    }

    /// The MLS/MCS level (sensitivity range and categories, which may hold
    /// colons, e.g. `s0-s0:c0.c1023`), or `None` when the context has none.
    pub fn level(&self) -> Option<&str> {
        self.level.as_deref()
    }

    /// This label with its level replaced by `level` (`None` removes it).
    ///
    /// # Errors
    ///
    /// [`SelinuxError::InvalidLabel`] when `level` is empty or holds
    /// whitespace or control characters.
    pub fn with_level(&self, level: Option<&str>) -> Result<Self, SelinuxError> {
        if let Some(level) = level {
            if level.is_empty() || level.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(SelinuxError::InvalidLabel {
                    input: format!("{}:{}:{}:{level}", self.user, self.role, self.type_),
                    reason: "the level is empty or holds whitespace or control characters",
                });
            }
        }
        Ok(SecurityLabel {
            level: level.map(str::to_owned),
            ..self.clone()
        })
    }
}

impl FromStr for SecurityLabel {
    type Err = SelinuxError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecurityLabel::parse(s)
    }
}

impl fmt::Display for SecurityLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.user, self.role, self.type_)?;
        if let Some(level) = &self.level {
            write!(f, ":{level}")?;
        }
        Ok(())
    }
}

/// The label podman launches conmon with, given the engine's current label.
///
/// The rule, from podman's `startCommandGivenSelinux` (the helper that starts
/// conmon, in `libpod/oci_conmon_linux.go`, earlier in
/// `libpod/oci_internal_linux.go`): when the current context has a level and
/// that level is not exactly `s0`, conmon gets the same user, role and type
/// with the level replaced by `s0`, so the container's processes (which run
/// at `s0` plus categories) can use the FIFOs conmon hands them. A context at
/// `s0` or without a level is left as it is; podman then sets no exec label
/// at all and conmon simply inherits the engine's context. Only the level
/// changes: a range such as `s0-s0:c0.c1023` also becomes plain `s0`.
///
/// ```
/// use selinux_launch::{conmon_label, SecurityLabel};
///
/// let engine: SecurityLabel = "unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023".parse()?;
/// assert_eq!(conmon_label(&engine).to_string(), "unconfined_u:unconfined_r:unconfined_t:s0");
/// # Ok::<(), selinux_launch::SelinuxError>(())
/// ```
pub fn conmon_label(current: &SecurityLabel) -> SecurityLabel {
    match current.level() {
        Some(level) if level != CONMON_LEVEL => SecurityLabel {
            level: Some(CONMON_LEVEL.to_owned()),
            ..current.clone()
        },
        _ => current.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_labels() {
        let table: &[(&str, &str, &str, &str, Option<&str>)] = &[
            ("u:r:t", "u", "r", "t", None),
            (
                "system_u:system_r:container_t:s0",
                "system_u",
                "system_r",
                "container_t",
                Some("s0"),
            ),
            (
                "system_u:system_r:container_t:s0:c1,c2",
                "system_u",
                "system_r",
                "container_t",
                Some("s0:c1,c2"),
            ),
            (
                "unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023",
                "unconfined_u",
                "unconfined_r",
                "unconfined_t",
                Some("s0-s0:c0.c1023"),
            ),
            (
                "staff_u:staff_r:staff_t:s0-s15:c0.c1023",
                "staff_u",
                "staff_r",
                "staff_t",
                Some("s0-s15:c0.c1023"),
            ),
        ];
        for &(input, user, role, type_, level) in table {
            let label = SecurityLabel::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(label.user(), user, "{input}");
            assert_eq!(label.role(), role, "{input}");
            assert_eq!(label.type_(), type_, "{input}");
            assert_eq!(label.level(), level, "{input}");
            assert_eq!(label.to_string(), input, "round trip of {input}");
            assert_eq!(input.parse::<SecurityLabel>().ok(), Some(label));
        }
    }

    #[test]
    fn rejects_invalid_labels_naming_the_input() {
        let table = [
            "",
            "kernel",
            "u:r",
            "u::t",
            ":r:t",
            "u:r:",
            "u:r:t:",
            "u:r:t:s0 ",
            "u:r:t\n",
            "u:r:t\0",
        ];
        for input in table {
            match SecurityLabel::parse(input) {
                Err(err @ SelinuxError::InvalidLabel { .. }) => {
                    let msg = err.to_string();
                    assert!(msg.contains(&format!("{input:?}")), "{msg} names {input:?}");
                }
                other => panic!("{input:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn conmon_gets_level_s0_when_the_level_differs() {
        let table = [
            (
                "system_u:system_r:container_runtime_t:s0",
                "system_u:system_r:container_runtime_t:s0",
            ),
            (
                "system_u:system_r:container_runtime_t",
                "system_u:system_r:container_runtime_t",
            ),
            (
                "system_u:system_r:container_runtime_t:s0:c1,c2",
                "system_u:system_r:container_runtime_t:s0",
            ),
            (
                "unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023",
                "unconfined_u:unconfined_r:unconfined_t:s0",
            ),
            (
                "staff_u:staff_r:staff_t:s0-s15:c0.c1023",
                "staff_u:staff_r:staff_t:s0",
            ),
            ("u:r:t:s1", "u:r:t:s0"),
            ("u:r:t:s0-s0", "u:r:t:s0"),
        ];
        for (current, expected) in table {
            let current = SecurityLabel::parse(current).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                conmon_label(&current).to_string(),
                expected,
                "from {current}"
            );
        }
    }

    #[test]
    fn with_level_replaces_or_removes_the_level() -> Result<(), SelinuxError> {
        let label = SecurityLabel::parse("u:r:t:s0:c1")?;
        assert_eq!(
            label.with_level(Some("s0:c5,c6"))?.to_string(),
            "u:r:t:s0:c5,c6"
        );
        assert_eq!(label.with_level(None)?.to_string(), "u:r:t");
        assert!(label.with_level(Some("")).is_err());
        assert!(label.with_level(Some("s0 c1")).is_err());
        Ok(())
    }
}
