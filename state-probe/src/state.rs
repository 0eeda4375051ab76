//! Reading `RUNTIME state ID`.
//!
//! OCI runtimes print the state of a container as one JSON object, e.g. runc:
//! `{"ociVersion":"1.0.2","id":"abc","pid":4242,"status":"running",
//! "bundle":"/b","rootfs":"/b/rootfs","created":"…","owner":""}`. This module
//! turns that output, or the runtime's complaint that the container does not
//! exist, into a [`StateProbe`].

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;

use crate::command::{render_command, run_bounded, CapturedOutput};
use crate::error::ProbeError;

/// How many bytes of unparsable output are quoted in
/// [`ProbeError::InvalidState`].
const QUOTED_BYTES: usize = 128;

/// The status of a container as an OCI runtime reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeStatus {
    /// Created, its process waiting for `start`.
    Created,
    /// Its process is running.
    Running,
    /// Frozen by `pause`.
    Paused,
    /// Its process has exited.
    Stopped,
}

impl RuntimeStatus {
    /// Parses the status word the OCI runtime specification defines
    /// (`created`, `running`, `paused`, `stopped`).
    ///
    /// # Errors
    ///
    /// [`ProbeError::UnknownStatus`] for any other word.
    pub fn parse(word: &str) -> Result<Self, ProbeError> {
        match word {
            "created" => Ok(RuntimeStatus::Created),
            "running" => Ok(RuntimeStatus::Running),
            "paused" => Ok(RuntimeStatus::Paused),
            "stopped" => Ok(RuntimeStatus::Stopped),
            other => Err(ProbeError::UnknownStatus {
                status: other.to_owned(),
            }),
        }
    }

    /// The status word as the OCI runtime specification spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeStatus::Created => "created",
            RuntimeStatus::Running => "running",
            RuntimeStatus::Paused => "paused",
            RuntimeStatus::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for RuntimeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parts of a runtime's state output that a driver uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeState {
    /// The container id.
    pub id: String,
    /// The container's init pid; 0 when it has none (e.g. stopped) or the
    /// runtime left it out.
    pub pid: i32,
    /// The container's status.
    pub status: RuntimeStatus,
    /// The bundle directory, when the runtime reported a non-empty one.
    pub bundle: Option<PathBuf>,
}

/// The result of asking a runtime about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateProbe {
    /// The runtime knows the container.
    Present(RuntimeState),
    /// The runtime says the container does not exist.
    Gone,
}

/// The state object as runtimes print it; unknown keys are ignored.
#[derive(Deserialize)]
struct RawState {
    id: String,
    #[serde(default)]
    pid: i32,
    status: String,
    #[serde(default)]
    bundle: Option<PathBuf>,
}

/// Parses the JSON a runtime's `state` command prints.
///
/// `id` and `status` are required; `pid` defaults to 0 and `bundle` to
/// none (an empty bundle string also counts as none). Other keys are ignored.
///
/// # Errors
///
/// - [`ProbeError::InvalidState`] when `json` is not such an object.
/// - [`ProbeError::UnknownStatus`] when the status word is not one of the
///   four the OCI specification defines.
pub fn parse_state(json: &[u8]) -> Result<RuntimeState, ProbeError> {
    let raw: RawState = serde_json::from_slice(json).map_err(|e| ProbeError::InvalidState {
        first_bytes: String::from_utf8_lossy(&json[..json.len().min(QUOTED_BYTES)]).into_owned(),
        reason: e.to_string(),
    })?;
    Ok(RuntimeState {
        id: raw.id,
        pid: raw.pid,
        status: RuntimeStatus::parse(&raw.status)?,
        bundle: raw.bundle.filter(|b| !b.as_os_str().is_empty()),
    })
}

/// Interprets a finished `state` call of container `id`.
///
/// Success: stdout is parsed with [`parse_state`]. A failure is
/// [`StateProbe::Gone`] only when stderr says the *container* is missing:
/// runc's `container does not exist`, runsc's `loading container: file does
/// not exist`, or `does not exist` / `No such file` next to the id itself
/// (crun: ``error opening file `/run/crun/ID/status`: No such file or
/// directory``). Any other failure, such as the runtime failing to load a
/// shared library ("No such file or directory" about the library), is an
/// error: it must never be taken for an absent container.
///
/// # Errors
///
/// - [`ProbeError::CommandFailed`] for any other failure, with `command`,
///   the exit code and the trimmed stderr.
/// - The errors of [`parse_state`] for unparsable output.
pub fn interpret_state_output(
    id: &str,
    command: &str,
    out: &CapturedOutput,
) -> Result<StateProbe, ProbeError> {
    if out.success() {
        return parse_state(&out.stdout).map(StateProbe::Present);
    }
    let stderr = out.stderr_text();
    if says_container_missing(id, &stderr) {
        return Ok(StateProbe::Gone);
    }
    Err(ProbeError::CommandFailed {
        command: command.to_owned(),
        status: out.status.code(),
        stderr,
    })
}

/// Whether a runtime's stderr says container `id` does not exist.
fn says_container_missing(id: &str, stderr: &str) -> bool {
    const CONTAINER_MISSING: [&str; 2] = [
        // runc, youki
        "container does not exist",
        // runsc
        "loading container: file does not exist",
    ];
    if CONTAINER_MISSING.iter().any(|m| stderr.contains(m)) {
        return true;
    }
    let missing = stderr.contains("does not exist") || stderr.contains("No such file");
    missing && mentions_id(stderr, id)
}

/// Whether `text` holds `id` as a whole word of a message or path: not
/// inside a longer name.
fn mentions_id(text: &str, id: &str) -> bool {
    if id.is_empty() {
        return false;
    }
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    text.match_indices(id).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + id.len()..].chars().next();
        !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}

/// Runs `cmd`, already built by the caller as
/// `RUNTIME [global flags] state ID` for container `id`, with
/// [`run_bounded`] and interprets its output with
/// [`interpret_state_output`].
///
/// # Errors
///
/// Those of [`run_bounded`] and [`interpret_state_output`].
pub async fn probe_state(
    cmd: Command,
    id: &str,
    limit: Duration,
) -> Result<StateProbe, ProbeError> {
    let command = render_command(&cmd);
    let out = run_bounded(cmd, limit).await?;
    interpret_state_output(id, &command, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_round_trip() -> Result<(), ProbeError> {
        for status in [
            RuntimeStatus::Created,
            RuntimeStatus::Running,
            RuntimeStatus::Paused,
            RuntimeStatus::Stopped,
        ] {
            assert_eq!(RuntimeStatus::parse(status.as_str())?, status);
            assert_eq!(status.to_string(), status.as_str());
        }
        Ok(())
    }

    #[test]
    fn long_garbage_is_quoted_shortly() {
        let garbage = vec![b'x'; 10_000];
        let result = parse_state(&garbage);
        assert!(
            matches!(&result, Err(ProbeError::InvalidState { first_bytes, .. }) if first_bytes.len() == QUOTED_BYTES),
            "{result:?}"
        );
    }
}
