//! The terminal a container asks for against the one its bundle declares.
//!
//! conmon allocates a terminal when it is given `-t` and the runtime makes
//! one when the bundle's `process.terminal` is true; when the two disagree
//! conmon fails late, after the runtime ran, with a message about a console
//! socket. podman leaves that to conmon; this driver reads the bundle before
//! anything is spawned and refuses the mismatch with a [`TerminalMismatch`]
//! naming both values.

use std::path::Path;

use runtime_api::{ContainerDescription, RuntimeError};

/// The description and the bundle disagree about a terminal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the container asks for terminal={requested} but its bundle's config.json has \
     process.terminal={bundle}; set both the same way"
)]
#[non_exhaustive]
pub struct TerminalMismatch {
    /// What the description asks for ([`ContainerDescription::terminal`]).
    pub requested: bool,
    /// The bundle's `process.terminal` (false when absent).
    pub bundle: bool,
}

/// The bundle's `process.terminal`, false when the bundle has no process
/// or does not say.
pub(crate) fn bundle_terminal(config_json: &Path) -> Result<bool, RuntimeError> {
    let text = std::fs::read(config_json)
        .map_err(|e| RuntimeError::io(format!("reading {}", config_json.display()), e))?;
    let config: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        RuntimeError::InvalidArgument(format!("{} is not JSON: {e}", config_json.display()))
    })?;
    Ok(config
        .pointer("/process/terminal")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false))
}

/// Refuses a container whose terminal setting differs from its bundle's.
pub(crate) fn check_terminal(
    c: &ContainerDescription,
    config_json: &Path,
) -> Result<(), RuntimeError> {
    let bundle = bundle_terminal(config_json)?;
    if bundle == c.terminal() {
        return Ok(());
    }
    Err(RuntimeError::driver(
        format!("creating container {}", c.id()),
        TerminalMismatch {
            requested: c.terminal(),
            bundle,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_api::{ContainerId, LogDriver};

    fn container(terminal: bool) -> ContainerDescription {
        ContainerDescription::builder(ContainerId::new("c1").unwrap(), "/b", "/r")
            .log(LogDriver::None, "/dev/null")
            .terminal(terminal)
            .build()
            .unwrap()
    }

    #[test]
    fn a_terminal_mismatch_names_both_values() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        for (bundle_json, bundle) in [
            (r#"{"process":{"terminal":true}}"#, true),
            (r#"{"process":{"terminal":false}}"#, false),
            (r#"{"process":{}}"#, false),
            (r#"{}"#, false),
        ] {
            std::fs::write(&config, bundle_json).unwrap();
            assert_eq!(bundle_terminal(&config).unwrap(), bundle);
            check_terminal(&container(bundle), &config).unwrap();
            let err = check_terminal(&container(!bundle), &config).unwrap_err();
            assert_eq!(
                err.driver_error::<TerminalMismatch>(),
                Some(&TerminalMismatch {
                    requested: !bundle,
                    bundle
                })
            );
            let text = err.to_string();
            assert!(text.contains(&format!("terminal={}", !bundle)), "{text}");
            assert!(
                text.contains(&format!("process.terminal={bundle}")),
                "{text}"
            );
        }
    }
}
