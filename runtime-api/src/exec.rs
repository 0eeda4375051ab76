//! What a caller asks for when it runs an extra process in a running
//! container (`podman exec`), and the id of such an exec session.
//!
//! Plain data: the driver turns an [`ExecConfig`] into an OCI process spec
//! and conmon's argv.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use crate::{AttachOutcome, ContainerId, RuntimeError};

/// How to run one process inside a running container.
///
/// Build it with [`ExecConfig::new`] and set the public fields; a driver calls
/// [`validate`](ExecConfig::validate) before using it.
///
/// ```
/// use std::time::Duration;
/// use runtime_api::ExecConfig;
///
/// let mut exec = ExecConfig::new(["ls", "-l", "/"]);
/// exec.env.push("LANG=C".into());
/// exec.user = Some("nobody".into());
/// exec.timeout = Some(Duration::from_secs(10));
/// exec.validate()?;
///
/// exec.cwd = Some("relative/dir".into());
/// assert!(exec.validate().is_err());
/// # Ok::<(), runtime_api::RuntimeError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecConfig {
    /// The command and its arguments; must not be empty. `args[0]` is
    /// looked up in the container's `PATH` by the runtime.
    pub args: Vec<String>,
    /// `NAME=value` entries appended after the container's own environment
    /// (as podman does: a later entry for the same name wins in the runtime).
    pub env: Vec<String>,
    /// The working directory inside the container, absolute; `None` keeps
    /// the container's.
    pub cwd: Option<String>,
    /// Allocate a pseudo-terminal for the process (`false` unless asked,
    /// whatever the container itself uses).
    pub terminal: bool,
    /// Keep the process's stdin open so a caller can attach to it.
    pub stdin: bool,
    /// The user as `user[:group]`, each part a name or a number
    /// (`nobody`, `1000`, `tester:extra`, `1000:1000`); `None` runs the
    /// process as the container's own user and groups.
    pub user: Option<String>,
    /// Kill the process when it runs longer than this; `None` lets it
    /// run. Must not be zero. A process killed for it ends its session
    /// with [`RuntimeError::ExecTimedOut`] (from the session's completion
    /// or `exec_wait`) instead of an exit code, and is gone by then, inside
    /// the container's sandbox too.
    pub timeout: Option<Duration>,
    /// How long conmon waits after the process exits before running the
    /// container's exit command for the session (conmon's `--exit-delay`).
    pub exit_delay: Option<Duration>,
    /// Run with extended privileges (podman's `exec --privileged`): every
    /// capability the host allows, whatever the container was given.
    pub privileged: bool,
    /// Pass this many fds to the process (podman's `exec --preserve-fds`):
    /// the caller's fds 3..3+N become the process's 3..3+N. At most 1024.
    pub preserve_fds: u32,
    /// Capabilities added to the process (`NET_ADMIN` or `CAP_NET_ADMIN`,
    /// any case); a driver refuses a name it does not know.
    pub cap_add: Vec<String>,
    /// Capabilities removed from every set of the process; applied after
    /// `cap_add`.
    pub cap_drop: Vec<String>,
}

impl ExecConfig {
    /// A configuration running `args` as the container's user, without a
    /// terminal, in the container's working directory.
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            args: args.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Checks what can be checked without the container: a non-empty
    /// command, `NAME=value` environment entries with a non-empty name, an
    /// absolute working directory, a non-empty user, a non-zero timeout and
    /// no NUL byte anywhere. The error names the offending field and value.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let invalid = |msg: String| Err(RuntimeError::InvalidArgument(msg));
        if self.args.is_empty() {
            return invalid("exec args are empty: a command to run is required".into());
        }
        if let Some(arg) = self.args.iter().find(|a| a.contains('\0')) {
            return invalid(format!("exec argument {arg:?} contains a NUL byte"));
        }
        for item in &self.env {
            match item.split_once('=') {
                None => {
                    return invalid(format!(
                        "exec env entry {item:?} is not of the form NAME=value"
                    ))
                }
                Some(("", _)) => {
                    return invalid(format!("exec env entry {item:?} has an empty name"))
                }
                Some(_) if item.contains('\0') => {
                    return invalid(format!("exec env entry {item:?} contains a NUL byte"))
                }
                Some(_) => {}
            }
        }
        if let Some(cwd) = &self.cwd {
            if !cwd.starts_with('/') {
                return invalid(format!("exec cwd {cwd:?} is not an absolute path"));
            }
            if cwd.contains('\0') {
                return invalid(format!("exec cwd {cwd:?} contains a NUL byte"));
            }
        }
        if let Some(user) = &self.user {
            if user.is_empty() || user == ":" {
                return invalid(format!(
                    "exec user {user:?} is empty; leave it unset to run as the container's user"
                ));
            }
            if user.contains('\0') {
                return invalid(format!("exec user {user:?} contains a NUL byte"));
            }
        }
        if self.timeout == Some(Duration::ZERO) {
            return invalid("exec timeout is zero; leave it unset for no timeout".into());
        }
        if self.preserve_fds > 1024 {
            return invalid(format!(
                "exec preserve_fds {} is more than the 1024 supported",
                self.preserve_fds
            ));
        }
        if let Some(name) = self
            .cap_add
            .iter()
            .chain(&self.cap_drop)
            .find(|name| name.trim().is_empty() || name.contains('\0'))
        {
            return invalid(format!(
                "exec capability {name:?} is empty or holds a NUL byte"
            ));
        }
        Ok(())
    }
}

/// The id of an exec session: the same rule as a [`ContainerId`]
/// (1..=128 bytes of `[A-Za-z0-9_.-]`, not starting with `.` or `-`), since
/// it names files and conmon arguments the same way.
///
/// ```
/// use runtime_api::ExecSessionId;
/// assert_eq!(ExecSessionId::new("3f2a-exec")?.as_str(), "3f2a-exec");
/// assert!(ExecSessionId::new("../x").is_err());
/// # Ok::<(), runtime_api::RuntimeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecSessionId(String);

impl ExecSessionId {
    /// Validates `id` with [`ContainerId`]'s rule and wraps it.
    pub fn new(id: impl Into<String>) -> Result<Self, RuntimeError> {
        match ContainerId::new(id) {
            Ok(id) => Ok(Self(id.as_str().to_string())),
            // Same rule, so reuse its message, naming what was checked.
            Err(RuntimeError::InvalidArgument(msg)) => Err(RuntimeError::InvalidArgument(
                msg.replacen("container id", "exec session id", 1),
            )),
            Err(other) => Err(other),
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExecSessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ExecSessionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for ExecSessionId {
    type Err = RuntimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for ExecSessionId {
    type Error = RuntimeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

/// A running exec session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecSession {
    /// The session's id.
    pub id: ExecSessionId,
    /// The exec'd process's pid (host pid namespace), when the runtime has
    /// one to report.
    pub pid: Option<i32>,
    /// The limit after which the process is killed, when one was asked.
    pub timeout: Option<Duration>,
}

impl ExecSession {
    /// A session `id` whose process is `pid`, with no timeout.
    pub fn new(id: ExecSessionId, pid: Option<i32>) -> Self {
        Self {
            id,
            pid,
            timeout: None,
        }
    }
}

/// How an attached exec session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecCompletion {
    /// Why the streams stopped.
    pub outcome: AttachOutcome,
    /// The process's exit code, when it exited (not after a detach or a
    /// cancellation: then `exec_wait` gives it later). A process killed at
    /// its [`ExecConfig::timeout`] has none: the completion answers
    /// [`RuntimeError::ExecTimedOut`].
    pub exit_code: Option<i32>,
}

impl ExecCompletion {
    /// A completion with `outcome` and, when the process exited, its code.
    pub fn new(outcome: AttachOutcome, exit_code: Option<i32>) -> Self {
        Self { outcome, exit_code }
    }
}

/// Drives an attached exec session's streams to their end.
pub type ExecFuture = Pin<Box<dyn Future<Output = Result<ExecCompletion, RuntimeError>> + Send>>;

/// An attached exec session: its identity, and a future that copies its
/// streams and resolves once they end (with the exit code, and the
/// session's files removed, when the process exited).
#[non_exhaustive]
pub struct ExecHandle {
    /// The session.
    pub session: ExecSession,
    /// Await this to run the session's streams to their end.
    pub completion: ExecFuture,
}

impl ExecHandle {
    /// A handle for `session` whose streams run in `completion`.
    pub fn new(session: ExecSession, completion: ExecFuture) -> Self {
        Self {
            session,
            completion,
        }
    }
}

impl fmt::Debug for ExecHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecHandle")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(config: &ExecConfig) -> String {
        match config.validate() {
            Err(RuntimeError::InvalidArgument(msg)) => msg,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn new_sets_args_and_safe_defaults() {
        let c = ExecConfig::new(vec!["sh".to_string(), "-c".into(), "true".into()]);
        assert_eq!(c.args, ["sh", "-c", "true"]);
        assert!(c.env.is_empty());
        assert_eq!(c.cwd, None);
        assert!(!c.terminal && !c.stdin);
        assert_eq!(c.user, None);
        assert_eq!((c.timeout, c.exit_delay), (None, None));
        c.validate().unwrap();
    }

    #[test]
    fn a_full_config_validates() {
        let mut c = ExecConfig::new(["id"]);
        c.env = vec!["A=1".into(), "EMPTY=".into(), "EQ=a=b".into()];
        c.cwd = Some("/tmp".into());
        c.terminal = true;
        c.stdin = true;
        c.user = Some("1000:1000".into());
        c.timeout = Some(Duration::from_secs(5));
        c.exit_delay = Some(Duration::ZERO);
        c.validate().unwrap();
    }

    #[test]
    fn each_invalid_field_is_named() {
        let base = ExecConfig::new(["true"]);
        let cases: Vec<(ExecConfig, &str)> = vec![
            (ExecConfig::new(Vec::<String>::new()), "args are empty"),
            (
                ExecConfig {
                    args: vec!["a\0b".into()],
                    ..base.clone()
                },
                "NUL",
            ),
            (
                ExecConfig {
                    env: vec!["OK=1".into(), "NOEQUALS".into()],
                    ..base.clone()
                },
                "\"NOEQUALS\" is not of the form NAME=value",
            ),
            (
                ExecConfig {
                    env: vec!["=value".into()],
                    ..base.clone()
                },
                "\"=value\" has an empty name",
            ),
            (
                ExecConfig {
                    env: vec!["A=\0".into()],
                    ..base.clone()
                },
                "NUL",
            ),
            (
                ExecConfig {
                    cwd: Some("tmp".into()),
                    ..base.clone()
                },
                "cwd \"tmp\" is not an absolute path",
            ),
            (
                ExecConfig {
                    cwd: Some(String::new()),
                    ..base.clone()
                },
                "cwd \"\"",
            ),
            (
                ExecConfig {
                    user: Some(String::new()),
                    ..base.clone()
                },
                "user \"\" is empty",
            ),
            (
                ExecConfig {
                    timeout: Some(Duration::ZERO),
                    ..base.clone()
                },
                "timeout is zero",
            ),
        ];
        for (config, needle) in cases {
            let msg = err_of(&config);
            assert!(msg.contains(needle), "{config:?}: {msg}");
        }
    }

    #[test]
    fn session_ids_follow_the_container_id_rule() {
        for ok in ["a", "0123abcdef", "x.y-z_1", &"f".repeat(128)] {
            assert_eq!(ExecSessionId::new(ok).unwrap().as_str(), ok);
            assert_eq!(ok.parse::<ExecSessionId>().unwrap().to_string(), ok);
        }
        for bad in ["", "../x", "a/b", "-x", ".x", "a b", &"f".repeat(129)] {
            let err = ExecSessionId::new(bad).unwrap_err().to_string();
            assert!(err.contains("exec session id"), "{bad:?}: {err}");
            assert!(!err.contains("container id"), "{bad:?}: {err}");
            assert!(ExecSessionId::try_from(bad.to_string()).is_err());
        }
    }
}
