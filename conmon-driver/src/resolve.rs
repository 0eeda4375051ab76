//! Finding the programs the driver runs: the runtime from its candidate
//! paths then `$PATH`, and conmon from podman's usual places then `$PATH`.
//! Only regular, executable files count.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use runtime_api::RuntimeError;

/// Where podman looks for conmon before `$PATH`.
pub const CONMON_CANDIDATES: &[&str] = &[
    "/usr/libexec/podman/conmon",
    "/usr/local/libexec/podman/conmon",
    "/usr/local/lib/podman/conmon",
    "/usr/bin/conmon",
    "/usr/sbin/conmon",
    "/usr/local/bin/conmon",
    "/usr/local/sbin/conmon",
];

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Searches the directories of `search_path` (a `$PATH` value) for `name`.
pub fn search_path(name: &str, search_path: Option<&OsStr>) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable_file(&path).then_some(path);
    }
    std::env::split_paths(search_path?)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable_file(candidate))
}

/// The first regular executable among `candidates`, else `name` on
/// `path_var`.
pub fn resolve_program(
    what: &str,
    name: &str,
    candidates: &[PathBuf],
    path_var: Option<&OsStr>,
) -> Result<PathBuf, RuntimeError> {
    if name.is_empty() {
        return Err(RuntimeError::InvalidArgument(format!(
            "the {what} must be given a non-empty name"
        )));
    }
    candidates
        .iter()
        .find(|c| is_executable_file(c))
        .cloned()
        .or_else(|| search_path(name, path_var))
        .ok_or_else(|| {
            RuntimeError::InvalidArgument(format!(
                "no valid executable found for {what} {name:?} (tried {} and $PATH)",
                if candidates.is_empty() {
                    "no candidate paths".to_string()
                } else {
                    candidates
                        .iter()
                        .map(|c| c.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_directories_and_non_executables_then_searches_path() {
        let dir = tempfile::tempdir().unwrap();
        let not_exec = dir.path().join("plain");
        std::fs::write(&not_exec, "x").unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tool = bin.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();

        let candidates = vec![
            dir.path().to_path_buf(),
            not_exec,
            dir.path().join("missing"),
        ];
        let found =
            resolve_program("OCI runtime", "tool", &candidates, Some(bin.as_os_str())).unwrap();
        assert_eq!(found, tool);

        let err = resolve_program("OCI runtime", "nope", &candidates, Some(bin.as_os_str()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"nope\""), "{err}");
        assert!(resolve_program("OCI runtime", "", &[], None).is_err());
    }
}
